"""The pregreet test (spec §1.3): the "220-" teaser, the greet wait, a
client that talks before its turn, and the X21 path (spec §1.4)."""
import re
import time

from mxs import Mxscreen, recv_all, recv_line, recv_reply

TEASER = b"220-mxscreen.test ESMTP\r\n"
EHLO_REPLY = (b"250-mxscreen.test\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
              b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
              b"250 CHUNKING\r\n")


def params(**kw):
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "1s",
        "mxscreen_backend": "127.0.0.1:1",
    }
    p.update({f"postscreen_{k}": v for k, v in kw.items()})
    return p


def lines_for(mx, src):
    return [l for l in mx.log_lines() if f"[{src}]" in l]


def test_teaser_wait_then_real_postfix_then_pass_old(postfix, workdir):
    src = "127.0.3.1"
    p = params(greet_wait="2s")
    p["mxscreen_backend"] = f"127.0.0.1:{postfix.proxy_port}"
    with Mxscreen(workdir, p) as mx:
        s = mx.connect(src=src)
        t0 = time.time()
        assert recv_line(s) == TEASER
        assert time.time() - t0 < 0.5
        # Postfix's own greeting completes the multi-line reply after the wait.
        line = recv_line(s, timeout=5)
        waited = time.time() - t0
        assert line.startswith(b"220 "), line
        assert 1.9 <= waited < 3.5, waited
        s.sendall(b"QUIT\r\n")
        assert recv_line(s).startswith(b"221 ")
        # The relayed session ends: Postfix closes, then so do we.  A
        # connection that overlaps it is a second concurrent one from the
        # address, which (as in postscreen) does not consult the cache.
        assert recv_all(s) == b""
        s.close()
        time.sleep(0.3)
        mx.wait_for_log(rf"PASS NEW \[{src}\]:\d+$")
        # Known now: no teaser, no wait, PASS OLD.
        s = mx.connect(src=src)
        t0 = time.time()
        line = recv_line(s, timeout=5)
        assert line.startswith(b"220 ") and time.time() - t0 < 1.0, line
        s.close()
        mx.wait_for_log(rf"PASS OLD \[{src}\]:\d+$")
        log = lines_for(mx, src)
        assert [l.split(" [")[0] for l in log] == ["CONNECT from", "PASS NEW",
                                                   "CONNECT from", "PASS OLD"], log


def test_pregreet_drop(workdir):
    src = "127.0.3.2"
    with Mxscreen(workdir, params(greet_action="drop")) as mx:
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        s.sendall(b"EHLO bot\r\n")
        assert recv_all(s) == b"521 5.5.1 Protocol error\r\n"
        mx.wait_for_log(rf"DISCONNECT \[{src}\]:\d+$")
        log = lines_for(mx, src)
        assert re.fullmatch(rf"PREGREET 10 after [0-9.]+ from \[{src}\]:\d+: EHLO bot\\r\\n",
                            log[1]), log
        assert len(log) == 3, log


def test_pregreet_enforce_no_greeting_and_550(workdir):
    src = "127.0.3.3"
    with Mxscreen(workdir, params(greet_action="enforce", greet_wait="3s")) as mx:
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        t0 = time.time()
        s.sendall(b"EHLO bot\r\n")
        # No "220 " greeting: the early bytes are the first command.
        assert recv_reply(s) == EHLO_REPLY
        assert time.time() - t0 < 1.0  # nothing else to wait for
        s.sendall(b"MAIL FROM:<a@b>\r\n")
        assert recv_reply(s) == b"250 2.1.0 Ok\r\n"
        s.sendall(b"RCPT TO:<c@d>\r\n")
        assert recv_reply(s) == b"550 5.5.1 Protocol error\r\n"
        s.sendall(b"QUIT\r\n")
        assert recv_all(s) == b"221 2.0.0 Bye\r\n"
        mx.wait_for_log(rf"DISCONNECT \[{src}\]:\d+$")
        log = lines_for(mx, src)
        assert log[1].startswith("PREGREET 10 after ") and log[1].endswith(": EHLO bot\\r\\n")
        assert log[2].endswith(": 550 5.5.1 Protocol error; from=<a@b>, to=<c@d>, "
                               "proto=ESMTP, helo=<bot>"), log
        assert not any("PASS" in l for l in log), log


def test_pregreet_ignore_forgotten_and_repeated(workdir):
    src = "127.0.3.4"
    with Mxscreen(workdir, params(greet_action="ignore")) as mx:
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        s.sendall(b"EHLO bot\r\n")
        # Hand-off is tried at once (it fails here: the X21 path).
        assert recv_line(s, timeout=2) == b"220 mxscreen.test ESMTP\r\n"
        assert recv_all(s) == b"421 4.3.2 No system resources\r\n"
        mx.wait_for_log(rf"DISCONNECT \[{src}\]:\d+$")
        log = lines_for(mx, src)
        assert not any("PASS" in l for l in log), log
        # Not passed: the next connection gets the teaser again.
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        s.close()


def test_hangup_during_greet_wait(workdir):
    src = "127.0.3.5"
    with Mxscreen(workdir, params(greet_wait="3s")) as mx:
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        time.sleep(0.2)
        s.close()
        m = mx.wait_for_log(rf"HANGUP after (\S+) from \[{src}\]:\d+ in tests before SMTP "
                            r"handshake$")
        assert float(m.group(1)) < 1.5
        mx.wait_for_log(rf"DISCONNECT \[{src}\]:\d+$")
        assert not any("PASS" in l for l in lines_for(mx, src))


def test_x21_hand_off_failure_after_the_teaser(workdir):
    src = "127.0.3.6"
    with Mxscreen(workdir, params()) as mx:
        s = mx.connect(src=src)
        assert recv_line(s) == TEASER
        # The greet wait passes, the backend is down: a 421 now would break
        # the multi-line greeting, so the engine completes it first...
        assert recv_line(s, timeout=3) == b"220 mxscreen.test ESMTP\r\n"
        # ...and answers the first command (other than QUIT) with the 421.
        s.sendall(b"EHLO x\r\n")
        assert recv_all(s) == b"421 4.3.2 No system resources\r\n"
        mx.wait_for_log(rf"DISCONNECT \[{src}\]:\d+$")
        log = lines_for(mx, src)
        assert log[1].startswith("PASS NEW "), log
        assert any(l == "warning: cannot connect to service 127.0.0.1:1: Connection refused"
                   for l in mx.log_lines())
        # QUIT is still answered politely on that path.
        s = mx.connect(src="127.0.3.7")
        assert recv_line(s) == TEASER
        assert recv_line(s, timeout=3) == b"220 mxscreen.test ESMTP\r\n"
        s.sendall(b"QUIT\r\n")
        assert recv_all(s) == b"221 2.0.0 Bye\r\n"


def test_stress_shortens_the_greet_wait(workdir):
    p = params(greet_wait="${stress?{1}:{9}}s", pre_queue_limit="10",
               pipelining_enable="yes")
    with Mxscreen(workdir, p) as mx:
        held = []
        for i in range(9):
            s = mx.connect(src=f"127.0.4.{i + 1}")
            assert recv_line(s) == TEASER
            held.append(s)
        mx.wait_for_log(r"entering STRESS mode with 9 connections$")
        # The ninth was admitted under stress: its wait is 1 s, not 9.
        t0 = time.time()
        assert recv_line(held[8], timeout=5) == b"220 mxscreen.test ESMTP\r\n"
        assert time.time() - t0 < 2.5
        for s in held:
            s.close()
