"""The allowlist in Redis (postscreen_cache_map = redis:...): records under
the prefix with postscreen's value and a TTL from the retention rule, one
Redis shared by several mxscreen processes (prefix, database, password, ACL
user, IPv6, UNIX socket), the local LMDB fallback while Redis is down or
slow and the catch-up when it returns, start-up refusals, and mxscreenctl
against Redis.  A real redis-server (redisserver.py) on loopback; every
process is stopped by PID."""
import json
import os
import re
import subprocess
import time

import pytest

from mxs import BIN, Mxscreen, pregreet_params, assert_held, free_port, recv_line, run_mxscreen
from redisserver import RedisServer

CTL = os.path.join(os.path.dirname(BIN), "mxscreenctl")
TEASER = b"220-mxscreen.test ESMTP\r\n"
RECORD = re.compile(r"\d+;\d+;\d+;\d+;\d+")
# The time a client may wait for the teaser or its hand-off while Redis is
# down or slow (mxscreen_redis_timeout_ms is 200 ms by default).
PROMPT = 1.0


# ---- Fixtures: every process of a test is stopped by PID ---------------------


@pytest.fixture
def redis(workdir):
    """redis(**kw): a RedisServer in the test's directory, started unless
    start=False; every one is killed at the end of the test."""
    servers = []

    def make(start=True, **kw):
        kw.setdefault("name", f"redis{len(servers)}")
        r = RedisServer(workdir, **kw)
        servers.append(r)
        if start:
            r.start()
        return r

    yield make
    for r in servers:
        r.kill()


@pytest.fixture
def mxes():
    """mxes(workdir, params, name): an Mxscreen (not started) that is killed
    at the end of the test if the test did not stop it."""
    made = []

    def make(workdir, params, name="mx"):
        mx = Mxscreen(workdir, params, name=name)
        made.append(mx)
        return mx

    yield make
    for mx in made:
        if mx.proc is not None:
            if mx.proc.poll() is None:
                mx.proc.kill()
                mx.proc.wait()
            mx.err.close()
            mx.proc = None



# ---- Helpers -----------------------------------------------------------------


def fallback_map(workdir, name):
    return f"lmdb:{workdir}/{name}-fallback.lmdb"


def params(workdir, backend, cache_map, name="mx", **kw):
    """The pregreet test only (greet wait 1 s), the allowlist in CACHE_MAP,
    the LMDB fallback in a file of this instance's own."""
    return pregreet_params(backend, postscreen_cache_map=cache_map,
                           mxscreen_cache_fallback_map=fallback_map(workdir, name), **kw)


def connected(mx, name):
    return mx.wait_for_log(rf"cache {re.escape(name)}: connected$")


def unavailable_re(name, fallback=None):
    """The one warning of an outage (REASON in the group "why")."""
    then = (f"deciding from {re.escape(fallback)} until it returns" if fallback
            else "screening clients as new until it returns")
    return rf"warning: cache {re.escape(name)}: unavailable \((?P<why>.+)\): {then}$"


def count(mx, regex):
    return len([l for l in mx.log_lines() if re.search(regex, l)])


def screened(mx, src, within=PROMPT):
    """A new client: the teaser at once (within WITHIN seconds), then it
    waits out the greet wait and passes (PASS NEW)."""
    t0 = time.time()
    s = mx.connect(src=src)
    port = s.getsockname()[1]
    assert recv_line(s, timeout=5) == TEASER
    took = time.time() - t0
    assert took < within, f"teaser for {src} after {took:.2f} s"
    mx.wait_for_log(rf"PASS NEW \[{re.escape(src)}\]:{port}$", timeout=5)
    s.close()


def straight_through(mx, src, within=PROMPT):
    """A known client: PASS OLD within WITHIN seconds, no teaser (held by
    the silent backend)."""
    t0 = time.time()
    s = mx.connect(src=src)
    port = s.getsockname()[1]
    mx.wait_for_log(rf"PASS OLD \[{re.escape(src)}\]:{port}$", timeout=5)
    took = time.time() - t0
    assert took < within, f"PASS OLD for {src} after {took:.2f} s"
    assert_held(s, 0.3)
    s.close()
    return took


def teased(mx, src, within=PROMPT):
    """Tested again: the teaser (then the client goes away)."""
    t0 = time.time()
    s = mx.connect(src=src)
    assert recv_line(s, timeout=5) == TEASER
    assert time.time() - t0 < within
    s.close()


def ctl(*args, stdin=None, check=True):
    r = subprocess.run([CTL, *args], input=stdin, capture_output=True, text=True, timeout=20)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def fields(record):
    assert RECORD.fullmatch(record), record
    return [int(x) for x in record.split(";")]


# ---- 1. Written to Redis, read back from Redis -------------------------------


@pytest.mark.parametrize("fallback", ["yes", "no"])
def test_pass_new_is_a_redis_record_and_the_next_connection_reads_it(workdir, redis, mxes,
                                                                      backend, fallback):
    r = redis()
    # Greet TTL 1 h, retention 2 h: the record's pregreet stamp is now + 1 h
    # and the retention rule would drop it 3 h from now.
    mx = mxes(workdir, params(workdir, backend, r.map, mxscreen_cache_fallback=fallback,
                              postscreen_greet_ttl="1h",
                              postscreen_cache_retention_time="2h"))
    with mx:
        connected(mx, r.name())
        t0 = int(time.time())
        screened(mx, "127.0.20.1")
        value = r.wait_key("mxscreen:127.0.20.1")
        t1 = int(time.time()) + 1
        greet, dnsbl, pipelining, non_smtp, bare_newline = fields(value)
        assert t0 + 3600 - 1 <= greet <= t1 + 3600, (value, t0, t1)
        # The tests that are off are "disabled" (1), as in postscreen.
        assert [dnsbl, pipelining, non_smtp, bare_newline] == [1, 1, 1, 1], value
        ttl = r.ttl("mxscreen:127.0.20.1")
        assert 3 * 3600 - 60 <= ttl <= 3 * 3600 + 1, ttl
        assert r.keys() == ["mxscreen:127.0.20.1"]
        if fallback == "yes":
            # Written to the fallback file too; take it out of there, so
            # that only Redis can know the client.
            ctl("-m", fallback_map(workdir, "mx"), "del", "127.0.20.1")
        straight_through(mx, "127.0.20.1")
        # Nothing else was ever said about the cache.
        assert count(mx, r"unavailable|available again|caught up") == 0, mx.log_text()


# ---- 2. One Redis for a fleet -----------------------------------------------

FLEET = {
    "defaults": dict(server={}, params={}, db=None, prefix="mxscreen:"),
    "prefix_and_db": dict(server={}, params={"mxscreen_redis_prefix": "fleet-7:"}, db=5,
                          prefix="fleet-7:"),
    "password": dict(server={"password": "pw-one"},
                     params={"mxscreen_redis_password": "pw-one"}, db=None, prefix="mxscreen:"),
    "acl_user": dict(server={"user": "mxs", "user_password": "pw-two"},
                     params={"mxscreen_redis_user": "mxs", "mxscreen_redis_password": "pw-two"},
                     db=1, prefix="mxscreen:"),
    "ipv6": dict(server={"bind": ("::1",)}, params={}, db=2, prefix="mxscreen:"),
}


@pytest.mark.parametrize("variant", list(FLEET))
def test_two_instances_share_one_redis(workdir, redis, mxes, backend, variant):
    v = FLEET[variant]
    r = redis(**v["server"])
    db = v["db"] or 0
    cache_map = r.map_db(v["db"]) if v["db"] is not None else r.map
    a = mxes(workdir, params(workdir, backend, cache_map, name="a", **v["params"]), name="a")
    b = mxes(workdir, params(workdir, backend, cache_map, name="b", **v["params"]), name="b")
    with a, b:
        connected(a, r.name(db))
        connected(b, r.name(db))
        screened(a, "127.0.21.1")
        assert RECORD.fullmatch(r.wait_key(v["prefix"] + "127.0.21.1", db=db))
        # B never saw the client, and its own fallback file is empty.
        straight_through(b, "127.0.21.1")
        screened(b, "127.0.21.2")
        r.wait_key(v["prefix"] + "127.0.21.2", db=db)
        straight_through(a, "127.0.21.2")
        assert not any("PASS NEW" in l for l in b.log_lines() if "127.0.21.1" in l)
        assert r.keys("*", db=db) == [v["prefix"] + "127.0.21.1", v["prefix"] + "127.0.21.2"]
        if db:
            assert r.keys("*", db=0) == []
        for key in r.keys("*", db=db):
            assert r.ttl(key, db=db) > 0


# ---- 3. Redis killed mid-run -------------------------------------------------


def test_redis_killed_fallback_decides_then_catch_up(workdir, redis, mxes, backend):
    r = redis()
    fb = fallback_map(workdir, "a")
    a = mxes(workdir, params(workdir, backend, r.map, name="a"), name="a")
    with a:
        connected(a, r.name())
        screened(a, "127.0.22.1")
        r.wait_key("mxscreen:127.0.22.1")
        r.kill()
        # Known before the outage: the fallback file knows it, at once.
        straight_through(a, "127.0.22.1")
        a.wait_for_log(unavailable_re(r.name(), fb), timeout=5)
        # New clients during the outage: greeted at once, and they pass.
        new = [f"127.0.22.{i}" for i in range(2, 6)]
        socks = []
        for src in new:
            t0 = time.time()
            s = a.connect(src=src)
            assert recv_line(s, timeout=5) == TEASER
            assert time.time() - t0 < PROMPT, src
            socks.append(s)
        for src in new:
            a.wait_for_log(rf"PASS NEW \[{re.escape(src)}\]:\d+$", timeout=5)
        for s in socks:
            s.close()
        # ... and they are remembered (by the fallback file).
        straight_through(a, "127.0.22.2")
        assert count(a, unavailable_re(r.name(), fb)) == 1, a.log_text()

        # Back, empty, on the same port.
        r.restart()
        a.wait_for_log(rf"cache {re.escape(r.name())}: available again$", timeout=40)
        m = a.wait_for_log(rf"cache {re.escape(r.name())}: caught up (\d+) records written "
                           r"while it was unavailable$", timeout=10)
        # The four new clients at least (127.0.22.1 and .2 were written again
        # by their PASS OLD; whether those count is the implementation's).
        assert 4 <= int(m.group(1)) <= 6, m.group(0)
        log = a.log_text()
        assert log.index("available again") < log.index("caught up"), log
        for src in new:
            assert RECORD.fullmatch(r.wait_key("mxscreen:" + src, timeout=5))
            assert r.ttl("mxscreen:" + src) > 0
        assert count(a, unavailable_re(r.name(), fb)) == 1, a.log_text()

        # Another instance, with an empty fallback file of its own, learns
        # about the outage's clients from Redis.
        b = mxes(workdir, params(workdir, backend, r.map, name="b"), name="b")
        with b:
            connected(b, r.name())
            straight_through(b, "127.0.22.3")
            straight_through(b, "127.0.22.5")
            assert "unavailable" not in b.log_text()
        # And A reads Redis again once its own copy is gone.
        ctl("-m", fb, "del", "127.0.22.4")
        straight_through(a, "127.0.22.4")


# ---- 3b. Writes merge; parallel connections ----------------------------------


def test_a_write_never_undoes_another_hosts_pass(workdir, redis, mxes, backend):
    """Redis holds a record whose pregreet pass has expired but whose DNSBL
    pass (from another host) lasts a year: this host tests the client
    (pregreet is due), and its write keeps the other host's DNSBL pass
    (each test's later expiry wins); the TTL comes from the merged record."""
    r = redis()
    now = int(time.time())
    year = now + 365 * 86400
    r.set("mxscreen:127.0.27.1", f"{now - 10};{year};1;1;1")
    mx = mxes(workdir, params(workdir, backend, r.map, postscreen_greet_ttl="1h",
                              postscreen_dnsbl_sites="",
                              postscreen_cache_retention_time="2h"))
    with mx:
        connected(mx, r.name())
        # Tested again (the teaser), and PASS OLD: the client is not new.
        s = mx.connect(src="127.0.27.1")
        port = s.getsockname()[1]
        assert recv_line(s, timeout=5) == TEASER
        mx.wait_for_log(rf"PASS OLD \[127\.0\.27\.1\]:{port}$", timeout=5)
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            f = fields(r.get("mxscreen:127.0.27.1"))
            if f[0] > now:
                break
            time.sleep(0.05)
        assert abs(f[0] - (now + 3600)) <= 3, f
        assert f[1] == year, f  # the other host's pass is kept
        # Only pregreet is enabled here: its expiry plus the retention time.
        assert abs(r.ttl("mxscreen:127.0.27.1") - (3600 + 7200)) <= 5


def test_parallel_connections_while_redis_answers_slowly(workdir, redis, mxes, backend):
    """Two connections of a known client at once, while Redis takes 300 ms
    to answer (within the deadline): neither is screened again."""
    r = redis()
    mx = mxes(workdir, params(workdir, backend, r.map, mxscreen_redis_timeout_ms="2000"))
    with mx:
        connected(mx, r.name())
        screened(mx, "127.0.28.1")
        r.wait_key("mxscreen:127.0.28.1")
        # Only in Redis: the local copy must not be what answers.
        ctl("-m", fallback_map(workdir, "mx"), "del", "127.0.28.1")
        r.pause(300)
        a = mx.connect(src="127.0.28.1")
        b = mx.connect(src="127.0.28.1")
        for s in (a, b):
            port = s.getsockname()[1]
            mx.wait_for_log(rf"PASS OLD \[127\.0\.28\.1\]:{port}$", timeout=5)
            assert_held(s, 0.3)
            s.close()
        assert "unavailable" not in mx.log_text()


# ---- 4. Redis slow -----------------------------------------------------------


def test_redis_slow_clients_are_not_held_up(workdir, redis, mxes, backend):
    r = redis()
    fb = fallback_map(workdir, "mx")
    mx = mxes(workdir, params(workdir, backend, r.map))
    with mx:
        connected(mx, r.name())
        screened(mx, "127.0.23.1")
        r.wait_key("mxscreen:127.0.23.1")
        # Redis accepts connections but answers nothing for 3 s.
        r.pause(3000)
        straight_through(mx, "127.0.23.1")
        screened(mx, "127.0.23.2")
        m = mx.wait_for_log(unavailable_re(r.name(), fb), timeout=5)
        assert m.group("why") == "timed out", m.group(0)
        mx.wait_for_log(rf"cache {re.escape(r.name())}: available again$", timeout=30)
        assert count(mx, unavailable_re(r.name(), fb)) == 1, mx.log_text()
        # What was written meanwhile reaches Redis.
        assert RECORD.fullmatch(r.wait_key("mxscreen:127.0.23.2", timeout=10))
        straight_through(mx, "127.0.23.2")


def test_redis_timeout_ms_is_the_deadline_of_a_lookup(workdir, redis, mxes, backend):
    r = redis()
    mx = mxes(workdir, params(workdir, backend, r.map, mxscreen_redis_timeout_ms="700"))
    with mx:
        connected(mx, r.name())
        screened(mx, "127.0.29.1")
        r.wait_key("mxscreen:127.0.29.1")
        r.pause(2500)
        paused = time.time()
        # The lookup waits 700 ms for Redis, then the fallback file decides.
        took = straight_through(mx, "127.0.29.1", within=1.5)
        assert took >= 0.6, took
        m = mx.wait_for_log(unavailable_re(r.name(), fallback_map(workdir, "mx")), timeout=5)
        assert m.group("why") == "timed out", m.group(0)
        time.sleep(max(0.0, paused + 2.6 - time.time()))
        mx.wait_for_log(rf"cache {re.escape(r.name())}: available again$", timeout=30)


# ---- 5. Start-up: refusals are fatal, absence is not -------------------------

FATAL = {
    "wrong_password": ({"password": "right-pw"}, {"mxscreen_redis_password": "wrong-pw"},
                       None, "WRONGPASS"),
    "no_password": ({"password": "right-pw"}, {}, None, "NOAUTH"),
    "password_but_none_needed": ({}, {"mxscreen_redis_password": "extra-pw"}, None,
                                 "without any password configured"),
    "unknown_user": ({"user": "mxs", "user_password": "u-pw"},
                     {"mxscreen_redis_user": "stranger", "mxscreen_redis_password": "u-pw"},
                     None, "WRONGPASS"),
    "user_wrong_password": ({"user": "mxs", "user_password": "u-pw"},
                            {"mxscreen_redis_user": "mxs", "mxscreen_redis_password": "bad"},
                            None, "WRONGPASS"),
    "user_needed": ({"user": "mxs", "user_password": "u-pw"}, {}, None, "NOAUTH"),
    "db_out_of_range": ({}, {}, 99, "DB index is out of range"),
}


@pytest.mark.parametrize("case", list(FATAL))
def test_redis_refusal_at_start_is_fatal(workdir, redis, mxes, backend, case):
    server, extra, db, words = FATAL[case]
    r = redis(**server)
    cache_map = r.map_db(db) if db is not None else r.map
    mx = mxes(workdir, params(workdir, backend, cache_map, **extra))
    res = run_mxscreen(["-c", mx.cf_path], timeout=15)
    assert res.returncode == 1, (res.returncode, res.stderr, mx.log_text())
    text = res.stderr + mx.log_text()
    assert "Sanitizer" not in res.stderr and "runtime error:" not in res.stderr, res.stderr
    fatal = [l for l in text.splitlines() if "fatal:" in l]
    assert fatal, text
    assert re.search(rf"fatal: postscreen_cache_map: {re.escape(r.name(db or 0))}: .*"
                     rf"{re.escape(words)}", fatal[0]), fatal
    # The password mxscreen was given is not written out.
    if extra.get("mxscreen_redis_password"):
        assert extra["mxscreen_redis_password"] not in text, text


def test_redis_down_at_start_is_not_fatal(workdir, mxes, backend):
    port = free_port()
    name = f"redis:127.0.0.1:{port}/0"
    fb = fallback_map(workdir, "mx")
    mx = mxes(workdir, params(workdir, backend, f"redis:127.0.0.1:{port}"))
    with mx:
        m = mx.wait_for_log(unavailable_re(name, fb), timeout=5)
        assert m.group("why") == "Connection refused", m.group(0)
        screened(mx, "127.0.27.1")
        straight_through(mx, "127.0.27.1")
        screened(mx, "127.0.27.2")
        assert count(mx, unavailable_re(name, fb)) == 1, mx.log_text()
        assert count(mx, r"cache .*: connected$") == 0, mx.log_text()


# ---- 6. No fallback ----------------------------------------------------------


def test_no_fallback_redis_down_clients_are_screened_as_new(workdir, redis, mxes, backend):
    r = redis(start=False)
    mx = mxes(workdir, params(workdir, backend, r.map, mxscreen_cache_fallback="no"))
    with mx:
        m = mx.wait_for_log(unavailable_re(r.name()), timeout=5)
        assert m.group("why") == "Connection refused", m.group(0)
        screened(mx, "127.0.26.1")
        # Not remembered anywhere: tested again, promptly.
        teased(mx, "127.0.26.1")
        teased(mx, "127.0.26.2")
        assert count(mx, unavailable_re(r.name())) == 1, mx.log_text()
        assert "deciding from" not in mx.log_text()
        # Redis comes up: the allowlist works again.
        r.start()
        mx.wait_for_log(rf"cache {re.escape(r.name())}: available again$", timeout=40)
        screened(mx, "127.0.26.3")
        r.wait_key("mxscreen:127.0.26.3")
        straight_through(mx, "127.0.26.3")
        # Nothing was pending: no catch-up.
        assert "caught up" not in mx.log_text()
    assert not os.path.exists(fallback_map(workdir, "mx")[len("lmdb:"):])


# ---- 7. mxscreenctl against Redis --------------------------------------------


def test_ctl_dump_from_lmdb_load_into_redis_and_manage_it(workdir, redis, mxes, backend):
    r = redis()
    # A host that used LMDB: one client it screened, one added by hand.
    old = mxes(workdir, params(workdir, backend, f"lmdb:{workdir}/old.lmdb", name="old"),
               name="old")
    with old:
        screened(old, "127.0.24.1")
    ctl("-c", old.cf_path, "add", "127.0.24.2", "3600")
    text = ctl("-c", old.cf_path, "dump").stdout
    lines = text.splitlines()
    assert [l.split()[0] for l in lines] == ["127.0.24.1", "127.0.24.2"], text

    # Loaded into Redis by map name.
    res = ctl("-m", r.map, "load", stdin=text)
    assert "2 records loaded" in res.stderr, res.stderr
    assert r.keys() == ["mxscreen:127.0.24.1", "mxscreen:127.0.24.2"]
    for l in lines:
        addr, record = l.split()
        assert r.get("mxscreen:" + addr) == record
        assert r.ttl("mxscreen:" + addr) > 0

    new = mxes(workdir, params(workdir, backend, r.map, name="new"), name="new")
    # Read back through a configuration that names Redis: the same dump.
    assert ctl("-c", new.cf_path, "dump").stdout == text
    assert json.loads(ctl("-c", new.cf_path, "-j", "dump").stdout) == [
        {"address": l.split()[0], "record": l.split()[1]} for l in lines]
    listed = ctl("-c", new.cf_path, "list").stdout
    assert re.fullmatch(r"127\.0\.24\.1 pregreet=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d dnsbl=off "
                        r"pipelining=off non_smtp=off bare_newline=off OLD\n"
                        r"127\.0\.24\.2 pregreet=.* OLD\n", listed), listed
    shown = json.loads(ctl("-c", new.cf_path, "-j", "show", "127.0.24.2").stdout)
    assert shown["address"] == "127.0.24.2" and shown["status"] == "OLD", shown
    res = ctl("-c", new.cf_path, "show", "127.0.24.9", check=False)
    assert res.returncode == 1 and "127.0.24.9: not in the allowlist" in res.stderr

    with new:
        connected(new, r.name())
        # Only ever in the other host's LMDB file: PASS OLD here, from Redis.
        straight_through(new, "127.0.24.1")
        straight_through(new, "127.0.24.2")
        assert "PASS NEW" not in new.log_text()

        # While Redis answers, it alone decides (the daemon's fallback file
        # has both clients since their PASS OLD): what is expired or deleted
        # there is tested again.
        ctl("-c", new.cf_path, "expire", "127.0.24.2", "pregreet")
        assert ctl("-c", new.cf_path, "show", "127.0.24.2").stdout.endswith(" NEW\n")
        teased(new, "127.0.24.2")

        ctl("-c", new.cf_path, "del", "127.0.24.1")
        assert r.get("mxscreen:127.0.24.1") is None
        teased(new, "127.0.24.1")
        res = ctl("-c", new.cf_path, "del", "127.0.24.1", check=False)
        assert res.returncode == 1 and "not in the allowlist" in res.stderr

        ctl("-c", new.cf_path, "add", "127.0.24.3", "600")
        assert RECORD.fullmatch(r.get("mxscreen:127.0.24.3") or "")
        assert 0 < r.ttl("mxscreen:127.0.24.3")
        straight_through(new, "127.0.24.3")


def test_ctl_reads_password_user_prefix_and_db_from_the_configuration(workdir, redis, mxes,
                                                                       backend):
    r = redis(user="mxs", user_password="ctl-pw")
    mx = mxes(workdir, params(workdir, backend, r.map_db(3), mxscreen_redis_user="mxs",
                              mxscreen_redis_password="ctl-pw",
                              mxscreen_redis_prefix="site9:"))
    ctl("-c", mx.cf_path, "add", "127.0.25.1")
    assert r.keys("*", db=3) == ["site9:127.0.25.1"]
    assert r.keys("*", db=0) == []
    assert ctl("-c", mx.cf_path, "list").stdout.startswith("127.0.25.1 pregreet=")
    data = json.loads(ctl("-c", mx.cf_path, "-j", "list").stdout)
    assert [d["address"] for d in data] == ["127.0.25.1"]
    # Without the credentials Redis says no, and so does mxscreenctl.
    res = ctl("-m", r.map_db(3), "list", check=False)
    assert res.returncode == 1 and res.stderr.strip(), res
    assert "ctl-pw" not in res.stderr
    with mx:
        connected(mx, r.name(3))
        straight_through(mx, "127.0.25.1")


# ---- 8. A UNIX socket --------------------------------------------------------


def test_unix_socket_map(workdir, redis, mxes, backend):
    # mxscreen runs as nobody: WORKDIR is 0755 and the socket 0777.
    r = redis(unixsocket=True)
    name = r.unix_map
    a = mxes(workdir, params(workdir, backend, r.unix_map, name="a"), name="a")
    b = mxes(workdir, params(workdir, backend, r.map, name="b"), name="b")
    with a, b:
        connected(a, name)
        connected(b, r.name())
        screened(a, "127.0.28.1")
        assert RECORD.fullmatch(r.wait_key("mxscreen:127.0.28.1"))
        straight_through(b, "127.0.28.1")
        screened(b, "127.0.28.2")
        r.wait_key("mxscreen:127.0.28.2")
        straight_through(a, "127.0.28.2")
    res = ctl("-m", r.unix_map, "dump")
    assert [l.split()[0] for l in res.stdout.splitlines()] == ["127.0.28.1", "127.0.28.2"]


# ---- 9. The map's syntax -----------------------------------------------------

# (configuration, parameter named, what the fatal line quotes: one of these)
BAD_MAPS = [
    ("postscreen_cache_map = redis:two words:6379\n", "postscreen_cache_map", ("two words",)),
    ("postscreen_cache_map = redis:127.0.0.1:99999\n", "postscreen_cache_map", ("99999",)),
    ("postscreen_cache_map = redis:127.0.0.1:6379/x\n", "postscreen_cache_map",
     ("6379/x", '"x"', "/x")),
    ("postscreen_cache_map = redis:127.0.0.1:6379\nmxscreen_redis_timeout_ms = soon\n",
     "mxscreen_redis_timeout_ms", ("soon",)),
    ("postscreen_cache_map = redis:127.0.0.1:6379\nmxscreen_cache_fallback = maybe\n",
     "mxscreen_cache_fallback", ("maybe",)),
]


@pytest.mark.parametrize("text,param,values", BAD_MAPS,
                         ids=["host", "port", "db", "timeout", "fallback"])
def test_bad_redis_settings_are_refused_by_check(workdir, text, param, values):
    path = os.path.join(workdir, "main.cf")
    with open(path, "w") as f:
        f.write(text)
    res = run_mxscreen(["-c", path, "-t"])
    assert res.returncode == 1, (res.returncode, res.stderr)
    fatal = [l for l in res.stderr.splitlines() if "fatal:" in l]
    assert len(fatal) == 1, res.stderr
    line = text.splitlines().index(next(l for l in text.splitlines() if l.startswith(param))) + 1
    assert f"{path}, line {line}" in fatal[0], fatal[0]
    assert f"parameter {param}" in fatal[0], fatal[0]
    assert any(v in fatal[0] for v in values), fatal[0]


@pytest.mark.parametrize("cache_map", ["redis:127.0.0.1:6379", "redis:127.0.0.1:6379/15",
                                       "redis:[::1]:6379/2", "redis:unix:/run/redis/redis.sock"])
def test_good_redis_maps_pass_the_check(workdir, cache_map):
    path = os.path.join(workdir, "main.cf")
    with open(path, "w") as f:
        f.write(f"postscreen_cache_map = {cache_map}\nmxscreen_redis_prefix = mx1:\n"
                f"mxscreen_redis_timeout_ms = 500\nmxscreen_cache_fallback = no\n")
    res = run_mxscreen(["-c", path, "-t"])
    assert res.returncode == 0, res.stderr


# ---- Redis closing an idle link; Redis refusing a write ----------------------


def test_an_idle_link_that_redis_closes_is_reopened_silently(workdir, redis, mxes, backend):
    """Redis's "timeout" closes mxscreen's idle link: no outage is logged,
    and the next lookup is answered by Redis again."""
    r = redis()
    mx = mxes(workdir, params(workdir, backend, r.map))
    with mx:
        connected(mx, r.name())
        screened(mx, "127.0.31.1")
        r.wait_key("mxscreen:127.0.31.1")
        r.command("CONFIG", "SET", "timeout", "1")
        time.sleep(3)  # closed by Redis at least once meanwhile
        # Only in Redis: the local copy must not be what answers.
        ctl("-m", fallback_map(workdir, "mx"), "del", "127.0.31.1")
        straight_through(mx, "127.0.31.1")
        assert "unavailable" not in mx.log_text(), mx.log_text()
        assert count(mx, r"cache .*: connected$") == 1


def test_a_write_redis_refused_reaches_it_later(workdir, redis, mxes, backend):
    """Redis out of memory refuses a PASS NEW's write while the link stays
    up: the record is kept pending locally and merged within the 30 s retry
    once Redis takes writes again."""
    r = redis()
    mx = mxes(workdir, params(workdir, backend, r.map))
    with mx:
        connected(mx, r.name())
        r.command("CONFIG", "SET", "maxmemory", "1")
        screened(mx, "127.0.32.1")
        mx.wait_for_log(r"warning: cache .*: update error for 127\.0\.32\.1: .*OOM", timeout=5)
        assert r.get("mxscreen:127.0.32.1") is None
        r.command("CONFIG", "SET", "maxmemory", "0")
        assert RECORD.fullmatch(r.wait_key("mxscreen:127.0.32.1", timeout=40))
        mx.wait_for_log(rf"cache {re.escape(r.name())}: caught up 1 records written while it "
                        r"was unavailable$", timeout=5)
        assert "unavailable (" not in mx.log_text()
