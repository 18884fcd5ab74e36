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
#include "cache/redis.h"
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
        struct cache *c = cache_open(cases[i].map, NULL, err, sizeof(err));
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
    struct cache *c = cache_open(map, NULL, err, sizeof(err));
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
    c = cache_open(map, NULL, err, sizeof(err));
    assert_true(cache_get(c, "2001:db8::1", buf, sizeof(buf)));
    assert_string_equal(buf, "0;1;10;10;10");
    cache_free(c);
    c = cache_open("memory:", NULL, err, sizeof(err));
    cache_put(c, "192.0.2.1", "1;2;3;4;5");
    assert_true(cache_get(c, "192.0.2.1", buf, sizeof(buf)));
    cache_free(c);
}

/* An unusable file: a warning and the in-memory store, never a failure. */
static void test_unopenable_falls_back_to_memory(void **state)
{
    char err[256], buf[64];
    (void)state;
    struct cache *c = cache_open("lmdb:/proc/no-such-dir/cache", NULL, err, sizeof(err));
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
        struct cache *c = cache_open(map, NULL, err, sizeof(err));
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
    struct cache *c = cache_open(map, NULL, err, sizeof(err));
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

/* postscreen_cache_map = redis:...: what each form means, what is refused. */
struct target_case {
    const char *spec; /* after "redis:" */
    const char *name; /* NULL: refused */
    const char *host, *path;
    int port, db;
};

static void test_redis_targets(void **state)
{
    (void)state;
    const struct target_case cases[] = {
        {"127.0.0.1:6379", "redis:127.0.0.1:6379/0", "127.0.0.1", "", 6379, 0},
        {"127.0.0.1:6380/3", "redis:127.0.0.1:6380/3", "127.0.0.1", "", 6380, 3},
        {"redis.example:1", "redis:redis.example:1/0", "redis.example", "", 1, 0},
        {"localhost", "redis:localhost:6379/0", "localhost", "", 6379, 0},
        {"localhost/2", "redis:localhost:6379/2", "localhost", "", 6379, 2},
        {"[::1]:7000/15", "redis:[::1]:7000/15", "::1", "", 7000, 15},
        {"[2001:db8::5]", "redis:[2001:db8::5]:6379/0", "2001:db8::5", "", 6379, 0},
        {"unix:/run/redis/redis.sock", "redis:unix:/run/redis/redis.sock", "",
         "/run/redis/redis.sock", 6379, 0},
        {"unix:relative.sock", NULL, NULL, NULL, 0, 0},
        {"unix:", NULL, NULL, NULL, 0, 0},
        {"", NULL, NULL, NULL, 0, 0},
        {":6379", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:0", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:65536", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:6379x", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:6379/", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:6379/x", NULL, NULL, NULL, 0, 0},
        {"127.0.0.1:6379/-1", NULL, NULL, NULL, 0, 0},
        {"::1:6379", NULL, NULL, NULL, 0, 0},
        {"[::1", NULL, NULL, NULL, 0, 0},
        {"[::1]x", NULL, NULL, NULL, 0, 0},
        {"host name:1", NULL, NULL, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct redis_target t;
        char err[256] = "", map[300];
        int rc = redis_target_parse(cases[i].spec, &t, err, sizeof(err));
        snprintf(map, sizeof(map), "redis:%s", cases[i].spec);
        if (cases[i].name == NULL) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, cases[i].spec));
            assert_int_equal(cache_map_check(map, err, sizeof(err)), -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(t.name, cases[i].name);
        assert_string_equal(t.host, cases[i].host);
        assert_string_equal(t.path, cases[i].path);
        assert_int_equal(t.port, cases[i].port);
        assert_int_equal(t.db, cases[i].db);
        assert_int_equal(cache_map_check(map, err, sizeof(err)), 0);
        assert_true(cache_map_is_redis(map));
    }
    assert_true(cache_map_is_redis("proxy:REDIS:127.0.0.1:1"));
    assert_false(cache_map_is_redis("lmdb:/x"));
}

/* Which error replies at start-up mean "your settings are wrong". */
static void test_redis_refusals(void **state)
{
    (void)state;
    assert_true(redis_refusal("AUTH", "WRONGPASS invalid username-password pair"));
    assert_true(redis_refusal("AUTH", "ERR AUTH <password> called without any password "
                                      "configured for the default user"));
    assert_true(redis_refusal("PING", "NOAUTH Authentication required."));
    assert_true(redis_refusal("PING", "NOPERM this user has no permissions"));
    assert_true(redis_refusal("SELECT", "ERR DB index is out of range"));
    assert_false(redis_refusal("PING", "BUSY Redis is busy running a script."));
    assert_false(redis_refusal("SELECT", "BUSY Redis is busy running a script."));
    assert_false(redis_refusal("PING", "LOADING Redis is loading the dataset in memory"));
    assert_false(redis_refusal("AUTH", "LOADING Redis is loading the dataset in memory"));
    assert_false(redis_refusal("PING", "MASTERDOWN Link with MASTER is down"));
    assert_false(redis_refusal("PING", "ERR something else"));
}

/* Redis's TTL: until the retention rule would drop the record. */
struct ttl_case {
    const char *record;
    unsigned enabled;
    long ttl;
};

static void test_redis_ttl(void **state)
{
    (void)state;
    const time_t now = 1000000;
    const unsigned all = TEST_BIT(TEST_PREGREET) | TEST_BIT(TEST_DNSBL) | TEST_MASK_DEEP;
    const struct cache_opts o = {.retention = 1000, .cleanup_interval = 300};
    const struct ttl_case cases[] = {
        /* the earliest expiry of an enabled test, plus the retention time */
        {"1000500;1002000;1003000;1003000;1003000", all, 1500},
        {"1002000;1000500;1003000;1003000;1003000", all, 1500},
        /* a disabled test does not count */
        {"1000500;1002000;1003000;1003000;1003000", TEST_BIT(TEST_DNSBL), 3000},
        /* expired long ago: at least a second (Redis drops it then) */
        {"5;5;5;5;5", all, 1},
        /* an enabled test never passed: gone at the next cleanup run */
        {"1002000;1002000;0;0;0", all, 300},
        {"1002000;1002000;1;1;1", all, 300},
        /* ...unless the passed ones expire sooner than that */
        {"999000;999000;0;0;0", all, 1},
        {"999100;999100;0;0;0", all, 100},
        /* nothing enabled: the cleanup interval */
        {"1;1;1;1;1", 0, 300},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cache_opts oi = o;
        oi.enabled = cases[i].enabled;
        assert_int_equal(cache_record_ttl(&oi, cases[i].record, now), cases[i].ttl);
    }
    /* Cleanup off: the retention time caps it instead. */
    struct cache_opts off = {.retention = 1000, .cleanup_interval = 0, .enabled = all};
    assert_int_equal(cache_record_ttl(&off, "1002000;1002000;0;0;0", now), 1000);
}

static int count_record(void *ctx, const char *addr, const char *record)
{
    (void)addr;
    (void)record;
    (*(int *)ctx)++;
    return 0;
}

/* Keys that start with "_" (the cleanup stamp, pending marks) are not
 * clients: never listed, never dropped by the cleanup. */
static void test_marks_are_not_records(void **state)
{
    char map[256], err[256], buf[64];
    (void)state;
    snprintf(map, sizeof(map), "lmdb:%s/marks", dir);
    const char *maps[] = {map, "memory:"};
    for (size_t i = 0; i < 2; i++) {
        struct cache *c = cache_open(maps[i], NULL, err, sizeof(err));
        assert_non_null(c);
        cache_put(c, "_PENDING_ 192.0.2.1", "1");
        cache_put(c, "192.0.2.1", "5;5;5;5;5");
        cache_put(c, "192.0.2.2", "2000000;2000000;2000000;2000000;2000000");
        size_t kept = 0;
        assert_int_equal(cache_cleanup_now(c, 1000000, 1000, TEST_MASK_DEEP, &kept), 1);
        assert_int_equal(kept, 1);
        assert_true(cache_get(c, "_PENDING_ 192.0.2.1", buf, sizeof(buf)));
        if (i == 0) {
            int n = 0;
            assert_int_equal(cache_each(c, count_record, &n, err, sizeof(err)), 0);
            assert_int_equal(n, 1);
        }
        assert_int_equal(cache_del(c, "192.0.2.2", err, sizeof(err)), 1);
        assert_int_equal(cache_del(c, "192.0.2.2", err, sizeof(err)), 0);
        assert_false(cache_get(c, "192.0.2.2", buf, sizeof(buf)));
        cache_free(c);
    }
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
        cmocka_unit_test(test_redis_targets),
        cmocka_unit_test(test_redis_ttl),
        cmocka_unit_test(test_redis_refusals),
        cmocka_unit_test(test_marks_are_not_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
