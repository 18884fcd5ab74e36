/*
 * test_cache - the allowlist store: LMDB and memory back ends, map names,
 * the retention rule, persistence across reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "session/verdict.h"

static char dir[] = "/tmp/mxs-test-cache-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

struct map_case {
    const char *map;
    const char *name; /* cache_name(), or NULL: refused */
};

static void test_map_names(void **state)
{
    char btree[256], lmdb[256], want_b[256], want_l[256], proxy[256];
    (void)state;
    snprintf(btree, sizeof(btree), "btree:%s/ps", dir);
    snprintf(want_b, sizeof(want_b), "lmdb:%s/ps.lmdb", dir);
    snprintf(lmdb, sizeof(lmdb), "lmdb:%s/c1", dir);
    snprintf(want_l, sizeof(want_l), "lmdb:%s/c1", dir);
    snprintf(proxy, sizeof(proxy), "proxy:btree:%s/ps", dir);
    const struct map_case cases[] = {
        {btree, want_b},        {proxy, want_b},           {lmdb, want_l},
        {"memory:", "memory:"}, {"memcache:/etc/x", NULL}, {"lmdb:relative/path", NULL},
        {"no-type", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        struct cache *c = cache_open(cases[i].map, err, sizeof(err));
        if (cases[i].name == NULL) {
            assert_null(c);
            assert_true(err[0] != '\0');
            assert_int_equal(cache_map_check(cases[i].map, err, sizeof(err)), -1);
            continue;
        }
        assert_non_null(c);
        assert_string_equal(cache_name(c), cases[i].name);
        assert_int_equal(cache_map_check(cases[i].map, err, sizeof(err)), 0);
        cache_free(c);
    }
}

/* Put, get, replace, and survive a reopen (LMDB) or not (memory). */
static void test_put_get_reopen(void **state)
{
    char map[256], buf[VERDICT_RECORD_MAX], err[256];
    (void)state;
    snprintf(map, sizeof(map), "lmdb:%s/c2", dir);
    struct cache *c = cache_open(map, err, sizeof(err));
    assert_non_null(c);
    assert_false(cache_get(c, "192.0.2.1", buf, sizeof(buf)));
    cache_put(c, "192.0.2.1", "1;2;3;4;5");
    cache_put(c, "2001:db8::1", "0;1;10;10;10");
    assert_true(cache_get(c, "192.0.2.1", buf, sizeof(buf)));
    assert_string_equal(buf, "1;2;3;4;5");
    cache_put(c, "192.0.2.1", "9;9;9;9;9");
    assert_true(cache_get(c, "192.0.2.1", buf, sizeof(buf)));
    assert_string_equal(buf, "9;9;9;9;9");
    /* A short buffer gets a cut copy, never an overflow. */
    char small[4];
    assert_true(cache_get(c, "192.0.2.1", small, sizeof(small)));
    assert_string_equal(small, "9;9");
    cache_free(c);
    c = cache_open(map, err, sizeof(err));
    assert_true(cache_get(c, "2001:db8::1", buf, sizeof(buf)));
    assert_string_equal(buf, "0;1;10;10;10");
    cache_free(c);
    c = cache_open("memory:", err, sizeof(err));
    cache_put(c, "192.0.2.1", "1;2;3;4;5");
    assert_true(cache_get(c, "192.0.2.1", buf, sizeof(buf)));
    cache_free(c);
}

/* An unusable file: a warning and the in-memory store, never a failure. */
static void test_unopenable_falls_back_to_memory(void **state)
{
    char err[256], buf[64];
    (void)state;
    struct cache *c = cache_open("lmdb:/proc/no-such-dir/cache", err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(cache_name(c), "memory:");
    cache_put(c, "192.0.2.9", "5;5;5;5;5");
    assert_true(cache_get(c, "192.0.2.9", buf, sizeof(buf)));
    cache_free(c);
}

/*
 * The retention rule (spec §5.3): a record is kept iff no enabled test
 * would be due at now - retention; disabled tests do not count; garbled
 * records read as "disabled when written" and so count as due once their
 * test is enabled.
 */
struct keep_case {
    const char *record;
    unsigned enabled;
    int kept;
};

static void run_retention(const char *map)
{
    const time_t now = 1000000, retention = 1000;
    const unsigned all = TEST_BIT(TEST_PREGREET) | TEST_BIT(TEST_DNSBL) | TEST_MASK_DEEP;
    const struct keep_case cases[] = {
        {"999500;999500;999500;999500;999500", all, 1}, /* due at now-500: not before */
        {"999000;999500;999500;999500;999500", all, 1}, /* exactly now-retention: kept */
        {"998999;999500;999500;999500;999500", all, 0}, /* one second older: dropped */
        {"0;999500;999500;999500;999500", all, 0},      /* never passed an enabled test */
        {"0;999500;999500;999500;999500", TEST_BIT(TEST_DNSBL), 1}, /* ... disabled one */
        {"1;1;1;1;1", 0, 1},                                        /* nothing enabled */
        {"garbage", TEST_BIT(TEST_PIPELINING), 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256], key[32];
        struct cache *c = cache_open(map, err, sizeof(err));
        assert_non_null(c);
        snprintf(key, sizeof(key), "192.0.2.%zu", i + 1);
        cache_put(c, key, cases[i].record);
        /* Earlier cases' records are in the same store: judge this key alone. */
        cache_cleanup_now(c, now, retention, cases[i].enabled, NULL);
        char buf[64];
        if (cases[i].kept)
            assert_true(cache_get(c, key, buf, sizeof(buf)));
        else
            assert_false(cache_get(c, key, buf, sizeof(buf)));
        cache_free(c);
    }
}

static void test_retention_lmdb(void **state)
{
    char map[256];
    (void)state;
    snprintf(map, sizeof(map), "lmdb:%s/c3", dir);
    run_retention(map);
}

static void test_retention_memory(void **state)
{
    (void)state;
    run_retention("memory:");
}

/* Many records, cleaned in steps: the counts add up. */
static void test_cleanup_many_in_steps(void **state)
{
    char map[256], err[256];
    (void)state;
    snprintf(map, sizeof(map), "lmdb:%s/c4", dir);
    struct cache *c = cache_open(map, err, sizeof(err));
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        cache_put(c, key, i % 3 == 0 ? "1;1;1;1;1" : "5000;5000;5000;5000;5000");
    }
    size_t retained = 0;
    size_t dropped = cache_cleanup_now(c, 4000, 0, TEST_BIT(TEST_PIPELINING), &retained);
    assert_int_equal(dropped, 667);
    assert_int_equal(retained, 1333);
    dropped = cache_cleanup_now(c, 4000, 0, TEST_BIT(TEST_PIPELINING), &retained);
    assert_int_equal(dropped, 0);
    assert_int_equal(retained, 1333); /* the last-cleanup stamp is not a record */
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_names),
        cmocka_unit_test(test_put_get_reopen),
        cmocka_unit_test(test_unopenable_falls_back_to_memory),
        cmocka_unit_test(test_retention_lmdb),
        cmocka_unit_test(test_retention_memory),
        cmocka_unit_test(test_cleanup_many_in_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
