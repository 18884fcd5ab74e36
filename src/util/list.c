/*
 * list - walk a Postfix list value; see list.h.
 */
#include <ctype.h>

#include "util/list.h"

/* The next element of the list at *CURSOR, or NULL at the end. */
const char *list_next(const char **cursor, size_t *len)
{
    const char *p = *cursor;
    int level = 0;

    while (*p == ',' || isspace((unsigned char)*p))
        p++;
    if (*p == '\0') {
        *cursor = p;
        return NULL;
    }
    const char *start = p;
    while (*p && (level > 0 || (*p != ',' && !isspace((unsigned char)*p)))) {
        if (*p == '{')
            level++;
        else if (*p == '}' && level > 0)
            level--;
        p++;
    }
    *len = (size_t)(p - start);
    *cursor = p;
    return start;
}
