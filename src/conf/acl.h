/*
 * acl - postscreen_access_list: the permanent allow/deny list
 *
 * A list of permit_mynetworks, permit, reject, dunno and type:table items,
 * evaluated left to right until one decides (spec §2.3).  A table's value
 * is itself a list of those words (no nested tables).  Unknown words in
 * the configured list are refused at load time; unknown words in a table
 * result draw postscreen's warning at run time and mean "no decision".
 */
#ifndef MXS_ACL_H
#define MXS_ACL_H

#include <stddef.h>

#include "conf/addrlist.h"
#include "net/addr.h"

enum acl_verdict {
    ACL_DUNNO,  /* no decision: run the tests */
    ACL_PERMIT, /* allowlisted */
    ACL_REJECT, /* denylisted */
};

struct acl;

struct acl *acl_parse(const char *text, const struct addrlist *mynetworks, char *err,
                      size_t errlen);
void acl_free(struct acl *a);
enum acl_verdict acl_eval(const struct acl *a, const struct endpoint *client);

#endif
