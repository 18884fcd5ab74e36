/*
 * caps - EHLO keywords offered and needed; see caps.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/caps.h"
#include "smtp/engine_int.h"

/* Parse the EHLO reply REPLY; see caps.h. */
bool caps_parse(struct ehlo_caps *caps, const char *reply, size_t len)
{
    const char *line = reply, *end = reply + len;
    bool first = true;

    if (len < 3 || strncmp(reply, "250", 3) != 0)
        return false;
    caps->mask = 0;
    caps->size = 0;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *stop = nl ? nl : end;
        if (stop > line && stop[-1] == '\r')
            stop--;
        /* "250-" or "250 " then the keyword; the first line is the name. */
        if (!first && stop - line > 4) {
            const char *kw = line + 4, *sp = kw;
            while (sp < stop && *sp != ' ' && *sp != '=')
                sp++;
            char word[32];
            size_t wlen = (size_t)(sp - kw);
            if (wlen < sizeof(word)) {
                memcpy(word, kw, wlen);
                word[wlen] = '\0';
                unsigned bit = ehlo_mask_parse(word);
                /* Only the real keyword, not Postfix's odd alias. */
                if (strcasecmp(word, "EHLO_MASK_SMTPUTF8") != 0 &&
                    strcasecmp(word, "SILENT-DISCARD") != 0)
                    caps->mask |= bit;
                if (bit == EHLO_SIZE && sp < stop)
                    caps->size = strtoll(sp + 1, NULL, 10);
            }
        }
        first = false;
        line = nl ? nl + 1 : end;
    }
    if (caps->size < 0)
        caps->size = 0;
    caps->known = true;
    return true;
}

/* Skip the address of "MAIL FROM:<...>" or "RCPT TO:<...>": quoted parts
 * and the angle brackets may hold spaces. */
static const char *after_address(const char *p)
{
    const char *colon = strchr(p, ':');

    if (colon == NULL)
        return p + strlen(p);
    p = colon + 1;
    while (*p == ' ')
        p++;
    if (*p != '<') {
        while (*p && *p != ' ')
            p++;
        return p;
    }
    bool quoted = false;
    for (p++; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == '>' && !quoted)
            return p + 1;
    }
    return p;
}

/* The keywords the parameters of LINE use; see caps.h. */
unsigned caps_needed(const char *line)
{
    const char *p = after_address(line);
    unsigned need = 0;

    while (*p) {
        while (*p == ' ')
            p++;
        const char *kw = p;
        while (*p && *p != ' ' && *p != '=')
            p++;
        size_t klen = (size_t)(p - kw);
        const char *val = NULL;
        size_t vlen = 0;
        if (*p == '=') {
            val = ++p;
            while (*p && *p != ' ')
                p++;
            vlen = (size_t)(p - val);
        }
#define IS(word) (klen == strlen(word) && strncasecmp(kw, word, klen) == 0)
        if (IS("SIZE"))
            need |= EHLO_SIZE;
        else if (IS("BODY") && val && vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
            need |= EHLO_8BITMIME;
        else if (IS("SMTPUTF8"))
            need |= EHLO_SMTPUTF8;
        else if (IS("RET") || IS("ENVID") || IS("NOTIFY") || IS("ORCPT"))
            need |= EHLO_DSN;
#undef IS
    }
    return need;
}

/* Keyword names of MASK, as the EHLO reply spells them; see caps.h. */
void caps_names(char *buf, size_t len, unsigned mask)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"SIZE", EHLO_SIZE},
        {"VRFY", EHLO_VRFY},
        {"ETRN", EHLO_ETRN},
        {"STARTTLS", EHLO_STARTTLS},
        {"AUTH", EHLO_AUTH},
        {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDSTATUSCODES},
        {"8BITMIME", EHLO_8BITMIME},
        {"DSN", EHLO_DSN},
        {"SMTPUTF8", EHLO_SMTPUTF8},
        {"CHUNKING", EHLO_CHUNKING},
        {"PIPELINING", EHLO_PIPELINING},
        {"XCLIENT", EHLO_XCLIENT},
        {"XFORWARD", EHLO_XFORWARD},
        {"VERP", EHLO_VERP},
    };
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(mask & names[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used) {
            buf[used] = '\0'; /* whole names only */
            break;
        }
        used += (size_t)n;
    }
}

/* Are two learned sets equal? */
bool caps_same(const struct ehlo_caps *a, const struct ehlo_caps *b)
{
    return a->known == b->known && a->mask == b->mask && a->size == b->size;
}

/* Is STARTTLS offered? */
bool caps_starttls(const struct ehlo_caps *caps)
{
    return (caps->mask & EHLO_STARTTLS) != 0;
}
