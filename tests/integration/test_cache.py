"""The persistent allowlist cache (LMDB): PASS NEW then PASS OLD across a
restart and across processes, the cleanup and its retention rule, the
last-cleanup time kept in the file, postscreen map names, and a file that
cannot be opened."""
import os
import time

from mxs import Mxscreen, SilentBackend, assert_held, recv_line, recv_reply

EHLO_LAST = b"250 CHUNKING\r\n"


def params(workdir, backend, **kw):
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_pipelining_enable": "yes",
        "mxscreen_backend": backend.addr,
        "postscreen_cache_map": f"lmdb:{workdir}/shared-cache",
    }
    p.update(kw)
    return p


def pass_deep_tests(mx, src):
    """A well-behaved client: EHLO, MAIL, RCPT (450), QUIT; PASS NEW."""
    s = mx.connect(src=src)
    assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
    s.sendall(b"EHLO client.example\r\n")
    assert recv_reply(s).endswith(EHLO_LAST)
    s.sendall(b"MAIL FROM:<a@b.example>\r\n")
    assert recv_reply(s) == b"250 2.1.0 Ok\r\n"
    s.sendall(b"RCPT TO:<c@d.example>\r\n")
    assert recv_reply(s) == b"450 4.3.2 Service currently unavailable\r\n"
    s.sendall(b"QUIT\r\n")
    assert recv_reply(s) == b"221 2.0.0 Bye\r\n"
    s.close()
    mx.wait_for_log(rf"PASS NEW \[{src}\]:\d+$")


def handed_off(mx, src):
    """The client goes to the (silent) backend: no engine greeting."""
    s = mx.connect(src=src)
    assert_held(s)
    s.close()
    mx.wait_for_log(rf"PASS OLD \[{src}\]:\d+$")


def test_pass_new_then_pass_old_across_a_restart(workdir):
    be = SilentBackend()
    try:
        mx = Mxscreen(workdir, params(workdir, be), name="one")
        with mx:
            pass_deep_tests(mx, "127.0.5.1")
        # A new process, the same file: the client is known.
        mx2 = Mxscreen(workdir, params(workdir, be), name="two")
        with mx2:
            handed_off(mx2, "127.0.5.1")
            assert not any("PASS NEW" in l for l in mx2.log_lines())
    finally:
        be.close()


def test_two_processes_share_one_file(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(workdir, be), name="a") as a, \
                Mxscreen(workdir, params(workdir, be), name="b") as b:
            pass_deep_tests(a, "127.0.5.2")
            handed_off(b, "127.0.5.2")
            pass_deep_tests(b, "127.0.5.3")
            handed_off(a, "127.0.5.3")
    finally:
        be.close()


def test_cleanup_time_is_kept_in_the_file(workdir):
    be = SilentBackend()
    try:
        p = params(workdir, be, postscreen_cache_cleanup_interval="1h")
        with Mxscreen(workdir, p, name="first") as mx:
            mx.wait_for_log(rf"cache lmdb:{workdir}/shared-cache full cleanup: "
                            r"retained=0 dropped=0 entries$")
        # Restarted within the interval: the next run is an hour after the
        # last one, not now.
        with Mxscreen(workdir, p, name="second") as mx:
            time.sleep(1.0)
            assert "cleanup" not in mx.log_text()
    finally:
        be.close()


def test_cleanup_drops_what_the_retention_rule_drops(workdir):
    be = SilentBackend()
    try:
        p = params(workdir, be, postscreen_cache_cleanup_interval="1s",
                   postscreen_cache_retention_time="1s", postscreen_pipelining_ttl="1s")
        with Mxscreen(workdir, p) as mx:
            pass_deep_tests(mx, "127.0.5.4")
            # Expired at +1 s, kept for 1 s more, then dropped by a run.
            mx.wait_for_log(r"full cleanup: retained=0 dropped=1 entries$", timeout=8)
            # Forgotten: tested again, so the engine greets.
            s = mx.connect(src="127.0.5.4")
            assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
            s.close()
    finally:
        be.close()


def test_postscreen_btree_map_is_kept_as_lmdb(workdir):
    be = SilentBackend()
    try:
        p = params(workdir, be, postscreen_cache_map=f"btree:{workdir}/postscreen_cache")
        with Mxscreen(workdir, p) as mx:
            mx.wait_for_log(rf"postscreen_cache_map: btree:{workdir}/postscreen_cache is kept as "
                            rf"lmdb:{workdir}/postscreen_cache\.lmdb$")
            pass_deep_tests(mx, "127.0.5.5")
            handed_off(mx, "127.0.5.5")
        assert os.path.exists(f"{workdir}/postscreen_cache.lmdb")
    finally:
        be.close()


def test_cache_that_cannot_be_opened_warns_and_service_goes_on(workdir):
    be = SilentBackend()
    try:
        p = params(workdir, be, postscreen_cache_map="lmdb:/proc/no-such-dir/cache")
        with Mxscreen(workdir, p) as mx:
            mx.wait_for_log(r"warning: cannot open the allowlist cache lmdb:/proc/no-such-dir/"
                            r"cache: .*; clients are remembered in memory until mxscreen stops$")
            pass_deep_tests(mx, "127.0.5.6")
            handed_off(mx, "127.0.5.6")
    finally:
        be.close()


def test_no_cache_map_tests_every_time(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(workdir, be, postscreen_cache_map="")) as mx:
            pass_deep_tests(mx, "127.0.5.7")
            s = mx.connect(src="127.0.5.7")
            assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
            s.close()
    finally:
        be.close()


def test_a_killed_process_leaves_a_readable_cache(workdir):
    be = SilentBackend()
    try:
        mx = Mxscreen(workdir, params(workdir, be), name="killed")
        mx.start()
        pass_deep_tests(mx, "127.0.5.8")
        # No clean shutdown: SIGKILL right after the update.
        mx.proc.kill()
        mx.proc.wait()
        mx.proc = None
        mx.err.close()
        with Mxscreen(workdir, params(workdir, be), name="after") as mx2:
            handed_off(mx2, "127.0.5.8")
    finally:
        be.close()


def test_pass_old_while_an_earlier_connection_is_relayed(workdir):
    """A known client's second connection, while its first is relayed to
    the backend (and still counts for its address), finds nothing due in
    the expiry times the first holds and is logged PASS OLD, as postscreen
    logs it (it would have found them in its cache)."""
    from fakebackend import FakeBackend
    with FakeBackend() as fb:
        p = params(workdir, fb, postscreen_pipelining_enable="no",
                   postscreen_greet_banner="$smtpd_banner", postscreen_greet_wait="1s")
        with Mxscreen(workdir, p) as mx:
            first = mx.connect(src="127.0.5.9")
            while not recv_line(first).startswith(b"220 "):  # teaser, wait, backend
                pass
            mx.wait_for_log(r"PASS NEW \[127\.0\.5\.9\]:\d+$")
            second = mx.connect(src="127.0.5.9")  # the first is still relayed
            assert recv_line(second).startswith(b"220 fake.test")  # at once: no teaser
            mx.wait_for_log(r"PASS OLD \[127\.0\.5\.9\]:\d+$")
            second.close()
            first.close()
