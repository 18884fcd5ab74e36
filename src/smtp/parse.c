/*
 * parse - SMTP engine parsers; see parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/parse.h"
#include "util/mem.h"
#include "util/sbuf.h"

/* Copy S with non-printable bytes replaced by '?', as Postfix's printable(). */
void smtp_printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

/* Postfix's valid_utf8_string(): well-formed UTF-8, no overlongs or surrogates. */
bool smtp_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        int n;
        unsigned min;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, min = 0x80, c &= 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, min = 0x800, c &= 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, min = 0x10000, c &= 0x07;
        else
            return false;
        if (end - p < n)
            return false;
        for (int i = 0; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        p += n;
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
    }
    return true;
}

/* Postfix's is_header(): "name[ \t]*:" with printable ASCII name. */
bool smtp_is_header(const char *s)
{
    size_t len = 0;
    bool space = false;

    for (;; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case ' ':
        case '\t':
            if (len == 0)
                return false;
            space = true;
            continue;
        case ':':
            return len > 0;
        default:
            if (c == 0 || c >= 0x80 || c < 0x20 || c == 0x7f || space)
                return false;
            len++;
        }
    }
}

/* The next space-separated token of *P (Postfix's mystrtok(&p, " ")). */
char *smtp_next_token(char **p)
{
    char *s = *p;

    while (*s == ' ')
        s++;
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    char *t = s;
    while (*s && *s != ' ')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return t;
}

/* MAIL/RCPT address: skip spaces, unwrap <...>, quotes and \-escapes, drop a source route. */
char *smtp_extract_addr(const char *s)
{
    struct sbuf b = SBUF_INIT;
    char stop = ' ';
    bool inquote = false;

    while (*s == ' ')
        s++;
    if (*s == '<') {
        s++;
        stop = '>';
    }
    for (; *s; s++) {
        if (!inquote && *s == stop)
            break;
        if (*s == '"') {
            inquote = !inquote;
        } else {
            if (*s == '\\' && *++s == '\0')
                break;
            sbuf_addc(&b, *s);
        }
    }
    char *addr = b.s ? sbuf_take(&b) : xstrdup("");
    char *colon;
    if (*addr == '@' && (colon = strchr(addr, ':')) != NULL)
        memmove(addr, colon + 1, strlen(colon + 1) + 1);
    return addr;
}

/*
 * An address in info_log_address_format "external" form: a local part
 * that is not a dot-atom is quoted, as Postfix's quote_822_local() does.
 */
void smtp_log_address(char *buf, size_t len, const char *addr, bool internal)
{
    const char *at = strrchr(addr, '@');
    size_t ll = at ? (size_t)(at - addr) : strlen(addr);
    bool quote = false;

    /* quote_822_local(): 8-bit clean; specials, controls and bad dots quote. */
    if (!internal && *addr) {
        quote = ll == 0;
        for (size_t i = 0; i < ll; i++) {
            unsigned char c = (unsigned char)addr[i];
            if (c < ' ' || c == ' ' || c == 0x7f || strchr("()<>@,;:\\\"[]", c) ||
                (c == '.' && (i == 0 || i + 1 == ll || addr[i + 1] == '.')))
                quote = true;
        }
    }
    if (quote) {
        struct sbuf b = SBUF_INIT;
        sbuf_addc(&b, '"');
        for (size_t i = 0; i < ll; i++) {
            if (addr[i] == '"' || addr[i] == '\\' || addr[i] == '\r')
                sbuf_addc(&b, '\\');
            sbuf_addc(&b, addr[i]);
        }
        sbuf_addc(&b, '"');
        sbuf_adds(&b, addr + ll);
        snprintf(buf, len, "%s", b.s);
        sbuf_free(&b);
    } else {
        snprintf(buf, len, "%s", addr);
    }
    smtp_printable(buf);
}
