/*
 * fuzz_smtp_parse - the SMTP engine's parsers over one command line
 * (src/smtp/parse.c), in the order the engine's execute() uses them
 *
 * Input: one byte B (the log buffer size and the address format), then a
 * command line as a client sends it (cut at a NUL, as the engine does).
 * Checked:
 *   - smtp_valid_utf8() and smtp_is_header() agree with independent
 *     reference implementations (Unicode table 3-7; Postfix's is_header())
 *   - smtp_next_token() cuts the line into its maximal runs of non-spaces,
 *     in order, in place
 *   - smtp_extract_addr() (after the ':' of MAIL FROM / RCPT TO, and over
 *     the whole argument text) never grows the text
 *   - smtp_log_address() output fits its buffer, is NUL-terminated and
 *     printable; smtp_printable() leaves only printable ASCII
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtp/parse.h"
#include "util/mem.h"

/* Well-formed UTF-8 by the byte ranges of Unicode's table 3-7. */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c == 0xe0)
            need = 2, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            need = 2;
        else if (c == 0xed)
            need = 2, hi = 0x9f;
        else if (c == 0xf0)
            need = 3, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            need = 3;
        else if (c == 0xf4)
            need = 3, hi = 0x8f;
        else
            return false;
        if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

/* Postfix's is_header(): printable ASCII other than ':' and space, [ \t]*, ':'. */
static bool ref_is_header(const char *s)
{
    size_t i = 0;

    while (s[i] > 0x20 && s[i] < 0x7f && s[i] != ':')
        i++;
    if (i == 0)
        return false;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    return s[i] == ':';
}

static bool all_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Tokenize a copy of LINE and check the tokens against the line itself. */
static void check_tokens(const char *line)
{
    char *copy = xstrdup(line), *p = copy, *tok;
    size_t want = 0, got = 0;

    for (size_t i = 0; line[i]; i++)
        if (line[i] != ' ' && (i == 0 || line[i - 1] == ' '))
            want++;
    size_t end_prev = 0;
    while ((tok = smtp_next_token(&p)) != NULL) {
        size_t at = (size_t)(tok - copy), len = strlen(tok);
        FUZZ_CHECK(len > 0 && strchr(tok, ' ') == NULL);
        FUZZ_CHECK(memcmp(tok, line + at, len) == 0);
        /* Only spaces between the last token and this one; the run is maximal. */
        for (size_t i = end_prev; i < at; i++)
            FUZZ_CHECK(line[i] == ' ');
        FUZZ_CHECK(line[at + len] == ' ' || line[at + len] == '\0');
        end_prev = at + len;
        got++;
    }
    FUZZ_CHECK(got == want);
    FUZZ_CHECK(*p == '\0');
    free(copy);
}

/* Extract an address from TEXT and log it into a LEN-byte buffer. */
static void check_address(const char *text, size_t len, bool internal)
{
    char *addr = smtp_extract_addr(text);
    char *buf = xmalloc(len + 1);

    FUZZ_CHECK(strlen(addr) <= strlen(text));
    buf[len] = 'X'; /* a canary past the end */
    smtp_log_address(buf, len, addr, internal);
    FUZZ_CHECK(strlen(buf) < len);
    FUZZ_CHECK(buf[len] == 'X');
    FUZZ_CHECK(all_printable(buf));
    free(buf);
    free(addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const verbs[] = {"HELO", "EHLO", "STARTTLS", "XCLIENT", "XFORWARD",
                                        "AUTH", "MAIL", "RCPT",     "DATA",    "BDAT",
                                        "RSET", "NOOP", "VRFY",     "ETRN",    "QUIT"};

    if (size < 1)
        return 0;
    size_t loglen = (size_t)(data[0] & 0x7f) * 4 + 1;
    bool internal = data[0] & 0x80;
    char *buf = fuzz_str(data + 1, size - 1);
    size_t n = strlen(buf);

    FUZZ_CHECK(smtp_valid_utf8(buf, n) == ref_utf8((const unsigned char *)buf, n));
    check_tokens(buf);

    /* As execute(): the first token is the command, the rest its arguments. */
    char *args = buf;
    char *command = smtp_next_token(&args);
    if (command == NULL)
        command = args;
    const char *verb = NULL;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcasecmp(command, verbs[i]) == 0)
            verb = verbs[i];
    FUZZ_CHECK(smtp_is_header(command) == ref_is_header(command));
    FUZZ_CHECK(smtp_valid_utf8(command, strlen(command)) ==
               ref_utf8((const unsigned char *)command, strlen(command)));
    if (verb && (strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0)) {
        const char *colon = strchr(args, ':');
        if (colon)
            check_address(colon + 1, loglen, internal);
    }
    check_address(args, loglen, internal);

    size_t clen = strlen(command);
    smtp_printable(command);
    FUZZ_CHECK(strlen(command) == clen && all_printable(command));
    free(buf);
    return 0;
}
