/*
 * list - walk a Postfix list value
 *
 * Postfix lists (access lists, address lists, listen addresses) separate
 * their elements with commas and/or white space; a "{...}" group (as in
 * "cidr:{{10.0.0.0/8 reject}}") is part of its element, spaces included.
 * list_next() returns the next element's start and length, or NULL at the
 * end, and advances *CURSOR.  Nothing is copied or allocated.
 */
#ifndef MXS_LIST_H
#define MXS_LIST_H

#include <stddef.h>

const char *list_next(const char **cursor, size_t *len);

#endif
