/*
 * parse - the small parsers of the SMTP engine, over peer text
 *
 *   smtp_next_token()   the next space-separated word of *P, NUL-terminated
 *                       in place (Postfix's mystrtok(&p, " "): tabs are not
 *                       separators); NULL at the end
 *   smtp_extract_addr() a MAIL/RCPT address as postscreen logs it: spaces
 *                       skipped, <...> unwrapped, quotes and \-escapes
 *                       removed, a source route "@a,@b:" dropped (malloc'd)
 *   smtp_is_header()    "name[ \t]*:" with a printable ASCII name
 *   smtp_valid_utf8()   well-formed UTF-8 (no overlongs, surrogates, or
 *                       code points past U+10FFFF)
 *   smtp_printable()    non-printable bytes replaced by '?', in place
 *   smtp_log_address()  an address for from=<>/to=<> in the "external"
 *                       info_log_address_format (a local part that is not
 *                       a dot-atom is quoted), made printable
 */
#ifndef MXS_PARSE_H
#define MXS_PARSE_H

#include <stdbool.h>
#include <stddef.h>

char *smtp_next_token(char **p);
char *smtp_extract_addr(const char *s);
bool smtp_is_header(const char *s);
bool smtp_valid_utf8(const char *s, size_t len);
void smtp_printable(char *s);
void smtp_log_address(char *buf, size_t len, const char *addr, bool internal);

#endif
