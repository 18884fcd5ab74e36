"""The DNSBL/DNSWL test (spec §1.3, §1.7, §2.2) against a test DNS server
on loopback (dnsserver.py), with the safe-DNSBL rules of mxscreen."""
import re
import time

import pytest

from mxs import Mxscreen, assert_held, recv_all, recv_line, recv_reply




def start(workdir, dns, backend, **kw):
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "mxscreen_backend": backend.addr,
        "mxscreen_dns_servers": dns.addr,
        "postscreen_dnsbl_sites": "bl.test*2 bl2.test wl.test*-5",
        "postscreen_dnsbl_threshold": "2",
        "postscreen_greet_wait": "3s",
    }
    p.update({k if k.startswith(("mxscreen_", "smtpd_")) else f"postscreen_{k}": v
              for k, v in kw.items()})
    return Mxscreen(workdir, p).start()


def lines_for(mx, ip):
    return [re.sub(r"\]:\d+", "]:P", l) for l in mx.log_lines() if f"[{ip}]" in l]


def handed_off(mx, ip):
    s = mx.connect(src=ip)
    assert_held(s)
    return s


def test_not_listed_passes_at_once(workdir, dns, backend):
    mx = start(workdir, dns, backend)
    try:
        t0 = time.time()
        s = handed_off(mx, "127.0.7.1")
        mx.wait_for_log(r"PASS NEW \[127\.0\.7\.1\]:\d+$")
        assert time.time() - t0 < 2  # all answers in: no full greet wait
        s.close()
        assert dns.asked("127.0.7.1", "bl.test") == 1
        assert dns.asked("127.0.7.1", "wl.test") == 1
    finally:
        mx.stop()


def test_score_below_threshold_passes(workdir, dns, backend):
    dns.list("127.0.7.2", "bl2.test")  # weight 1 < threshold 2
    mx = start(workdir, dns, backend)
    try:
        handed_off(mx, "127.0.7.2").close()
        mx.wait_for_log(r"PASS NEW \[127\.0\.7\.2\]:\d+$")
        assert not any("DNSBL rank" in l for l in mx.log_lines())
    finally:
        mx.stop()


@pytest.mark.parametrize("lists,name", [
    ({"bl.test": 2}, "bl.test"),                        # one list at the threshold
    ({"bl2.test": 1, "bl.test": 2}, "bl.test"),         # 1 + 2: the heavier names it
])
def test_listed_drop(workdir, dns, backend, lists, name):
    ip = "127.0.7.3"
    for d in lists:
        dns.list(ip, d)
    mx = start(workdir, dns, backend, dnsbl_action="drop")
    try:
        s = mx.connect(src=ip)
        assert recv_all(s) == (f"521 5.7.1 Service unavailable; client [{ip}] blocked using "
                               f"{name}\r\n").encode()
        mx.wait_for_log(rf"DISCONNECT \[{re.escape(ip)}\]:\d+$")
        assert lines_for(mx, ip)[1:] == [f"DNSBL rank {sum(lists.values())} for [{ip}]:P",
                                         f"DISCONNECT [{ip}]:P"]
    finally:
        mx.stop()


def test_two_lists_add_up(workdir, dns, backend):
    ip = "127.0.7.4"
    mx = start(workdir, dns, backend, dnsbl_sites="a.test b.test", dnsbl_action="drop")
    try:
        dns.list(ip, "a.test")
        dns.list(ip, "b.test")
        s = mx.connect(src=ip)
        assert recv_all(s).startswith(b"521 5.7.1 Service unavailable; client [127.0.7.4] "
                                      b"blocked using ")
        mx.wait_for_log(rf"DNSBL rank 2 for \[127\.0\.7\.4\]:\d+$")
    finally:
        mx.stop()


def test_listed_enforce_reject_at_rcpt_with_the_list_name(workdir, dns, backend):
    ip = "127.0.7.5"
    dns.list(ip, "KEY.bl.test", ["127.0.0.4"])
    mx = start(workdir, dns, backend, dnsbl_sites="KEY.bl.test=127.0.0.[2..11]*3",
               dnsbl_action="enforce", dnsbl_reply_map="inline:{KEY.bl.test=bl.test}")
    try:
        s = mx.connect(src=ip)
        assert recv_line(s) == b"220 mxscreen.test ESMTP\r\n"
        for cmd in (b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n"):
            s.sendall(cmd)
            recv_reply(s)
        s.sendall(b"RCPT TO:<c@d>\r\n")
        want = f"550 5.7.1 Service unavailable; client [{ip}] blocked using bl.test"
        assert recv_reply(s) == (want + "\r\n").encode()
        s.sendall(b"QUIT\r\n")
        recv_all(s)
        mx.wait_for_log(rf"DISCONNECT \[{re.escape(ip)}\]:\d+$")
        log = lines_for(mx, ip)
        assert log[1] == f"DNSBL rank 3 for [{ip}]:P"
        assert log[2] == (f"NOQUEUE: reject: RCPT from [{ip}]:P: {want}; from=<a@b>, "
                          "to=<c@d>, proto=SMTP, helo=<x>")
        assert not any("KEY" in l for l in log)
    finally:
        mx.stop()


def test_filter_not_matched_is_not_listed(workdir, dns, backend):
    ip = "127.0.7.6"
    dns.list(ip, "bl.test", ["127.0.0.20"])
    mx = start(workdir, dns, backend, dnsbl_sites="bl.test=127.0.0.[2..11]*3")
    try:
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
    finally:
        mx.stop()


def test_listed_ignore_is_logged_and_handed_off_but_not_passed(workdir, dns, backend):
    ip = "127.0.7.7"
    dns.list(ip, "bl.test")
    mx = start(workdir, dns, backend, dnsbl_action="ignore")
    try:
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"DNSBL rank 2 for \[{re.escape(ip)}\]:\d+$")
        time.sleep(0.2)
        assert not any("PASS" in l for l in lines_for(mx, ip))
    finally:
        mx.stop()


def test_listed_result_is_reused_while_valid(workdir, dns, backend):
    ip = "127.0.7.8"
    dns.list(ip, "bl.test", ttl=600)
    mx = start(workdir, dns, backend, dnsbl_action="drop")
    try:
        for _ in range(3):
            s = mx.connect(src=ip)
            assert recv_all(s).startswith(b"521 5.7.1 ")
        assert dns.asked(ip, "bl.test") == 1  # a reconnecting bot costs no queries
    finally:
        mx.stop()


def test_error_code_answer_is_not_a_listing(workdir, dns, backend):
    ip = "127.0.7.9"
    dns.list(ip, "bl.test", ["127.255.255.254"])
    mx = start(workdir, dns, backend, dnsbl_action="drop")
    try:
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        mx.wait_for_log(r"warning: DNSBL bl\.test answered 127\.255\.255\.254 for "
                        r"9\.7\.0\.127\.bl\.test: an error code, not a listing")
    finally:
        mx.stop()


def test_servfail_fails_open_with_one_warning_a_minute(workdir, dns, backend):
    mx = start(workdir, dns, backend, dnsbl_action="drop", dnsbl_sites="bad.test*2")
    try:
        for i in range(3):
            ip = f"127.0.8.{i + 1}"
            dns.servfail(ip, "bad.test")
            handed_off(mx, ip).close()
            mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$", timeout=15)
        warnings = [l for l in mx.log_lines() if "DNSBL lookup error" in l]
        assert len(warnings) == 1, warnings
    finally:
        mx.stop()


def test_slow_list_after_the_wait_gives_a_partial_score(workdir, dns, backend):
    ip = "127.0.7.10"
    dns.list(ip, "bl.test", delay=4)  # answers after the 1 s greet wait
    mx = start(workdir, dns, backend, dnsbl_action="drop", greet_wait="1s")
    try:
        t0 = time.time()
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        assert 0.9 < time.time() - t0 < 3
    finally:
        mx.stop()


def test_dnswl_client_skips_every_other_test(workdir, dns, backend):
    ip = "127.0.7.11"
    dns.list(ip, "wl.test", ["127.0.10.2"])
    mx = start(workdir, dns, backend, dnsbl_allowlist_threshold="-1",
               greet_banner="$smtpd_banner", greet_wait="6s", pipelining_enable="yes",
               bare_newline_enable="yes")
    try:
        t0 = time.time()
        s = mx.connect(src=ip)
        assert recv_line(s) == b"220-mxscreen.test ESMTP\r\n"
        # No 6 s wait and no deep tests: straight to the backend.
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        assert time.time() - t0 < 2
        assert_held(s)
        s.close()
        # And the next time, known: no teaser, no queries.
        n = dns.asked(ip, "wl.test")
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS OLD \[{re.escape(ip)}\]:\d+$")
        assert dns.asked(ip, "wl.test") == n
    finally:
        mx.stop()


def test_pregreet_still_waits_the_full_greet_wait(workdir, dns, backend):
    ip = "127.0.7.12"
    mx = start(workdir, dns, backend, greet_banner="$smtpd_banner", greet_wait="2s")
    try:
        t0 = time.time()
        s = mx.connect(src=ip)
        assert recv_line(s) == b"220-mxscreen.test ESMTP\r\n"
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        assert time.time() - t0 >= 1.9  # DNS was quick; the pregreet wait is not shortened
        s.close()
    finally:
        mx.stop()


def test_not_listed_ttl_is_the_soa_ttl_and_only_expired_tests_repeat(workdir, dns, backend):
    """An NXDOMAIN's SOA TTL (60 s in the test server) is the DNSBL pass TTL,
    clamped here to max 2 s; pregreet lasts a day.  Later, only the DNSBL
    test is due again: no teaser, one more query, PASS OLD."""
    ip = "127.0.7.13"
    mx = start(workdir, dns, backend, greet_banner="$smtpd_banner", greet_wait="1s",
               dnsbl_max_ttl="2s", dnsbl_min_ttl="1s")
    try:
        s = mx.connect(src=ip)
        assert recv_line(s) == b"220-mxscreen.test ESMTP\r\n"
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        s.close()
        assert dns.asked(ip, "bl.test") == 1
        time.sleep(3.5)  # expiry times have whole seconds
        s = handed_off(mx, ip)  # no teaser: pregreet is still valid
        mx.wait_for_log(rf"PASS OLD \[{re.escape(ip)}\]:\d+$")
        s.close()
        assert dns.asked(ip, "bl.test") == 2
    finally:
        mx.stop()


def test_not_listed_result_lasts_the_soa_ttl(workdir, dns, backend):
    """RFC 2308: the NXDOMAIN's SOA TTL (60 s here) is how long "not listed"
    holds, not the 1 s minimum: a client back after 2.5 s is not queried."""
    ip = "127.0.7.14"
    mx = start(workdir, dns, backend, dnsbl_min_ttl="1s", dnsbl_max_ttl="1h")
    try:
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        time.sleep(2.5)
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS OLD \[{re.escape(ip)}\]:\d+$")
        assert dns.asked(ip, "bl.test") == 1
    finally:
        mx.stop()


def test_concurrent_sessions_share_one_lookup(workdir, dns, backend):
    ip = "127.0.7.15"
    dns.list(ip, "bl.test", delay=1)
    mx = start(workdir, dns, backend, dnsbl_action="drop")
    try:
        a = mx.connect(src=ip)
        b = mx.connect(src=ip)
        for s in (a, b):
            assert recv_all(s).startswith(b"521 5.7.1 Service unavailable; client [127.0.7.15]")
        assert dns.asked(ip, "bl.test") == 1
    finally:
        mx.stop()


@pytest.mark.parametrize("kind", ["huge", "garbage"])
def test_bad_answers_fail_open_and_service_goes_on(workdir, dns, backend, kind):
    ip = "127.0.7.16" if kind == "huge" else "127.0.7.17"
    if kind == "huge":
        # 120 A records: more than a UDP answer holds (and than mxscreen reads).
        dns.list(ip, "bl.test", [f"127.0.{i // 250}.{i % 250 + 2}" for i in range(120)])
    else:
        dns.garbage(ip, "bl.test")
    mx = start(workdir, dns, backend, dnsbl_sites="bl.test=127.0.5.5*2", greet_wait="2s")
    try:
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$", timeout=10)
        # Another client right after is served normally.
        handed_off(mx, "127.0.7.18").close()
        mx.wait_for_log(r"PASS NEW \[127\.0\.7\.18\]:\d+$", timeout=10)
    finally:
        mx.stop()


def test_silent_list_times_out_with_postscreens_warning(workdir, dns, backend):
    ip = "127.0.7.19"
    dns.silent(ip, "bl.test")
    mx = start(workdir, dns, backend, dnsbl_timeout="1s", greet_wait="2s")
    try:
        t0 = time.time()
        handed_off(mx, ip).close()
        mx.wait_for_log(r"warning: dnsblog reply timeout 1s for bl\.test$")
        # A query that never answers never completes: the whole wait, then a
        # partial score (the other lists said "not listed").
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        assert time.time() - t0 >= 1.9
    finally:
        mx.stop()


def test_delisted_client_passes_once_the_listing_expires(workdir, dns, backend):
    ip = "127.0.7.20"
    dns.list(ip, "bl.test", ttl=1)
    mx = start(workdir, dns, backend, dnsbl_action="drop", dnsbl_min_ttl="1s")
    try:
        s = mx.connect(src=ip)
        assert recv_all(s).startswith(b"521 5.7.1 ")
        dns.delist(ip, "bl.test")
        time.sleep(2.2)
        handed_off(mx, ip).close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$")
        assert dns.asked(ip, "bl.test") == 2
    finally:
        mx.stop()


def test_ipv6_client_is_looked_up_by_its_nibbles(workdir, dns, backend):
    """An IPv6 client (::1 here) is asked for as 32 reversed nibbles."""
    import socket
    from mxs import free_port
    try:
        port = free_port("::1")
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    dns.list("::1", "bl.test")
    mx = start(workdir, dns, backend, dnsbl_action="drop", mxscreen_listen=f"[::1]:{port}")
    try:
        s = socket.create_connection(("::1", port), timeout=10)
        assert recv_all(s) == (b"521 5.7.1 Service unavailable; client [::1] blocked using "
                               b"bl.test\r\n")
        mx.wait_for_log(r"DNSBL rank 2 for \[::1\]:\d+$")
        assert dns.asked("::1", "bl.test") == 1
    finally:
        mx.stop()
