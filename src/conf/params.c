/*
 * params - the parameter table; see params.h.
 */
#include <string.h>

#include "conf/params.h"

const struct param_def param_table[P__COUNT] = {
#define PARAM_ROW(id, name, type, def, min, max, unit, words, flags)                               \
    [P_##id] = {name, type, def, min, max, unit, words, flags},
    CONF_PARAMS(PARAM_ROW)
#undef PARAM_ROW
};

/* The id of the parameter called NAME, or -1. */
int param_lookup(const char *name)
{
    for (int i = 0; i < P__COUNT; i++)
        if (strcmp(param_table[i].name, name) == 0)
            return i;
    return -1;
}
