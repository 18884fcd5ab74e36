/*
 * dashboard - the live dashboard page, served as is by the stats listener
 *
 * The page is src/stats/dashboard.html, compiled into the binary by
 * scripts/embed.py (a build step): one self-contained HTML document with
 * its CSS and JavaScript inline, which fetches /stats from the same
 * listener and nothing from anywhere else.
 */
#ifndef MXS_DASHBOARD_H
#define MXS_DASHBOARD_H

#include <stddef.h>

extern const char stats_dashboard_html[];
extern const size_t stats_dashboard_html_len;

#endif
