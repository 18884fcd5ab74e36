"""The SMTP engine and the deep protocol tests (spec §1.4, §3.3, §4).

Every dialogue checks the exact reply bytes and the exact log lines of its
connection.  The expected texts are those of Postfix 3.7.11 postscreen with
the same settings: mynetworks = 127.0.0.1/32 (so clients from 127.0.x.y,
y != 1, are screened), smtpd_banner = $myhostname ESMTP, myhostname =
mxscreen.test, no pregreet test (empty postscreen_greet_banner, the mxs
default) and no DNSBL.  mxscreen remembers passes per client address, so
each dialogue uses a source address of its own (new_ip()).
"""
import contextlib
import os
import re
import socket
import tempfile
import threading
import time

import pytest

from mxs import (assert_held, BYE, Client, connect_line, greet, GREETING, hangup_line, KEYWORDS,
                 MAIL_OK, Mxscreen, noqueue, OK, R450, R502, R550_PROTO, SilentBackend, vm_rss_kb)

R521_PROTO = b"521 5.5.1 Protocol error\r\n"
R521_NONSMTP = b"521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"
R421 = b"421 mxscreen.test Service unavailable - try again later\r\n"
R421_TIMEOUT = b"421 4.4.2 mxscreen.test Error: timeout exceeded\r\n"

BASE = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_banner": "$myhostname ESMTP",
}
DEEP = {
    "postscreen_pipelining_enable": "yes",
    "postscreen_non_smtp_command_enable": "yes",
    "postscreen_bare_newline_enable": "yes",
    "postscreen_bare_newline_action": "enforce",
}


def ehlo_reply(keywords=KEYWORDS):
    lines = ["mxscreen.test"] + list(keywords)
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{k}\r\n".encode()
                    for i, k in enumerate(lines))


EHLO = ehlo_reply()

_ips = (f"127.0.{a}.{b}" for a in range(1, 256) for b in range(2, 255))


def greeted(mx, ip=None):
    """A new client that has read the engine's greeting."""
    return greet(mx, ip or new_ip())


def new_ip():
    """A client address no other dialogue of this module uses."""
    return next(_ips)










def quit_and_close(c):
    """QUIT, the last reply, the server's close; then close as clients do."""
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.close()


def assert_handed_off(mx, ip):
    """A new connection from IP goes straight to the backend: PASS OLD.
    (The previous session from IP has ended and its client has closed;
    a moment for mxscreen to see that close: see the test
    test_ended_session_no_longer_counts_for_its_address for why.)"""
    time.sleep(0.1)
    c = Client(mx, ip)
    assert_held(c.sock)
    c.expect_log([connect_line(c), f"PASS OLD {c.ep}"])
    c.close()


def assert_tested_again(mx, ip):
    """A new connection from IP gets the engine again (nothing was passed)."""
    c = greeted(mx, ip)
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


@pytest.fixture(scope="module")
def backend():
    sb = SilentBackend()
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def moddir():
    d = tempfile.mkdtemp(prefix="mxs-engine-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="module")
def engine(moddir, backend):
    """One mxscreen with all three deep tests, shared by the dialogues that
    need no special setting: pipelining enforce, non-SMTP drop, bare
    newline enforce."""
    with Mxscreen(moddir, dict(BASE, **DEEP, mxscreen_backend=backend.addr),
                  name="engine") as mx:
        yield mx
        Client.close_all(mx)


@contextlib.contextmanager
def mxscreen(workdir, backend, params, deep=DEEP):
    """An mxscreen of its own: BASE, the deep tests DEEP, and PARAMS."""
    mx = Mxscreen(workdir, dict(BASE, **deep, mxscreen_backend=backend.addr, **params)).start()
    try:
        yield mx
    finally:
        Client.close_all(mx)
        mx.stop()


# ---- the reference dialogues ---------------------------------------------


def test_new_client_passes_at_rcpt_then_is_handed_off(engine):
    c = greeted(engine)
    assert c.cmd("EHLO x") == EHLO
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    quit_and_close(c)
    c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])
    assert_handed_off(engine, c.ip)


def test_http_request_is_a_non_smtp_command(engine):
    c = greeted(engine)
    c.send(b"GET / HTTP/1.0\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c),
                  f"NON-SMTP COMMAND from {c.ep} after CONNECT: GET / HTTP/1.0",
                  f"DISCONNECT {c.ep}"])


def test_header_line_is_a_non_smtp_command(engine):
    c = greeted(engine)
    c.send(b"FOO: bar\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after CONNECT: FOO: bar",
                  f"DISCONNECT {c.ep}"])


def test_bare_newline_enforce(engine):
    c = greeted(engine)
    c.send(b"EHLO x\n")
    assert c.reply() == EHLO
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R550_PROTO
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), f"BARE NEWLINE from {c.ep} after EHLO x",
                  noqueue(c, R550_PROTO), f"DISCONNECT {c.ep}"])
    assert_tested_again(engine, c.ip)


def test_pipelining_enforce(engine):
    c = greeted(engine)
    c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
    assert c.reply() == EHLO
    assert c.reply() == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R550_PROTO
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c),
                  f"COMMAND PIPELINING from {c.ep} after EHLO: MAIL FROM:<a@b>\\r\\n",
                  noqueue(c, R550_PROTO), f"DISCONNECT {c.ep}"])
    assert_tested_again(engine, c.ip)


def test_pipelining_log_text_is_escaped_and_cut_to_100_bytes(engine):
    c = greeted(engine)
    # The first 100 bytes of the pending input, C-escaped.
    c.send(b"NOOP\r\n" + b"X\x01\t" * 60 + b"\r\n")
    assert c.reply() == OK
    assert c.reply() == R502
    assert c.cmd("QUIT") == BYE
    c.rest()
    text = "X\\001\\t" * 33 + "X"
    c.expect_log([connect_line(c), f"COMMAND PIPELINING from {c.ep} after NOOP: {text}",
                  f"DISCONNECT {c.ep}"])


# Each command alone in a fresh session: (commands before, command, reply).
COMMANDS = [
    ([], "NOOP", OK),
    ([], "noop", OK),
    ([], "RSET", OK),
    ([], "VRFY x", R450),
    ([], "VRFY", b"501 5.5.4 Syntax: VRFY address\r\n"),
    ([], "ETRN x", b"458 Unable to queue messages\r\n"),
    ([], "ETRN", b"500 Syntax: ETRN domain\r\n"),
    ([], "HELO x", b"250 mxscreen.test\r\n"),
    ([], "HELO", b"501 Syntax: HELO hostname\r\n"),
    ([], "EHLO", b"501 Syntax: EHLO hostname\r\n"),
    ([], "MAIL", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
    ([], "MAIL FROM <a@b>", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
    (["MAIL FROM:<a@b>"], "MAIL FROM:<a@b>", b"503 5.5.1 Error: nested MAIL command\r\n"),
    (["MAIL FROM:<a@b>", "RSET"], "MAIL FROM:<e@f>", MAIL_OK),
    (["MAIL FROM:<a@b>", "HELO x"], "MAIL FROM:<e@f>", MAIL_OK),
    (["MAIL FROM:<a@b>", "EHLO x"], "MAIL FROM:<e@f>", MAIL_OK),
    ([], "STARTTLS", b"502 5.5.1 Error: command not implemented\r\n"),
    ([], "STARTTLS x", b"501 Syntax: EHLO hostname\r\n"),
    ([], "AUTH PLAIN", R502),
    ([], "XCLIENT a", R502),
    ([], "XFORWARD a", R502),
    ([], "bogus", R502),
    ([], "", R502),
    ([], "NO\x00OP", R502),
    ([], "NO\rOP", R502),         # a bare CR ends nothing
    ([], "EHLO\tx", R502),        # tabs do not separate words
    ([], "  NOOP", OK),           # leading spaces do
    ([], "HELO   x", b"250 mxscreen.test\r\n"),
    ([], "Subject : hi", R502),   # the command word "Subject" has no colon
    ([], "QUIT-NOW", R502),
]


@pytest.mark.parametrize("before,command,expected", COMMANDS,
                         ids=[repr(" / ".join(c[0] + [c[1]])) for c in COMMANDS])
def test_command_reply(engine, before, command, expected):
    c = greeted(engine)
    for b in before:
        c.cmd(b)
    assert c.cmd(command) == expected
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


# Commands that mark the deep tests passed (any RCPT line) without a NOQUEUE line.
@pytest.mark.parametrize("before,command,expected", [
    ([], "RCPT TO:<c@d>", b"503 5.5.1 Error: need MAIL command\r\n"),
    (["MAIL FROM:<a@b>"], "RCPT", b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
    (["MAIL FROM:<a@b>"], "RCPT TO <c@d>", b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
], ids=["no MAIL", "no argument", "no colon"])
def test_any_rcpt_line_passes_the_deep_tests(engine, before, command, expected):
    c = greeted(engine)
    for b in before:
        c.cmd(b)
    assert c.cmd(command) == expected
    quit_and_close(c)
    c.expect_log([connect_line(c), f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])
    assert_handed_off(engine, c.ip)


def test_rcpt_after_helo_logs_smtp_and_unwrapped_addresses(engine):
    c = greeted(engine)
    assert c.cmd("HELO h.example") == b"250 mxscreen.test\r\n"
    assert c.cmd('MAIL FROM:<"a b"@c> SIZE=10') == MAIL_OK
    assert c.cmd("RCPT TO:<@r1,@r2:u@d> NOTIFY=NEVER") == R450
    assert c.cmd("RCPT TO:<>") == R450
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c),
                  noqueue(c, R450, sender='"a b"@c', rcpt="u@d", proto="SMTP", helo="h.example"),
                  noqueue(c, R450, sender='"a b"@c', rcpt="", proto="SMTP", helo="h.example"),
                  f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])


def test_rcpt_without_helo_logs_empty_helo(engine):
    c = greeted(engine)
    assert c.cmd("MAIL FROM:<>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), noqueue(c, R450, sender="", proto="SMTP", helo=""),
                  f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])


def test_unknown_then_digit_command(engine):
    c = greeted(engine)
    assert c.cmd("bogus") == R502
    c.send(b"1abc\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after UNIMPLEMENTED: 1abc ",
                  f"DISCONNECT {c.ep}"])


def test_command_after_known_command_names_it(engine):
    c = greeted(engine)
    assert c.cmd("NOOP") == OK
    c.send(b"POST /x HTTP/1.1\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c),
                  f"NON-SMTP COMMAND from {c.ep} after NOOP: POST /x HTTP/1.1",
                  f"DISCONNECT {c.ep}"])


@pytest.mark.parametrize("line,logged", [
    (b"Subject:hi", "Subject:hi "),
    (b"X-Foo\t: bar", "X-Foo?: bar"),   # header syntax allows white space before ":"
    (b":", ": "),                        # not a header; forbidden by /^[^A-Z]/
    (b"GET /" + b"a" * 200, "GET /" + "a" * 99),
    (b"/" + b"x" * 150 + b" y", "/" + "x" * 99 + " y"),
    (b"GET \x01\x7f\\", "GET \\001\\177\\\\"),
], ids=["no space", "tab before colon", "colon", "long rest", "long word", "escaped rest"])
def test_non_smtp_log_text(engine, line, logged):
    c = greeted(engine)
    c.send(line + b"\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after CONNECT: {logged}",
                  f"DISCONNECT {c.ep}"])


def test_bare_newline_log_text(engine):
    c = greeted(engine)
    c.send(b"NOOP " + b"x" * 200 + b"\n")
    assert c.reply() == OK
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), f"BARE NEWLINE from {c.ep} after NOOP " + "x" * 95,
                  f"DISCONNECT {c.ep}"])

    c = greeted(engine)
    c.send(b"\n")
    assert c.reply() == R502
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), f"BARE NEWLINE from {c.ep} after ", f"DISCONNECT {c.ep}"])


def test_count_limit_with_pipelined_input(engine):
    c = greeted(engine)
    c.send(b"NOOP\r\n" * 25)
    assert c.rest() == OK * 20 + R421
    c.expect_log([connect_line(c),
                  f"COMMAND PIPELINING from {c.ep} after NOOP: " + "NOOP\\r\\n" * 16 + "NOOP",
                  f"COMMAND COUNT LIMIT from {c.ep} after NOOP", f"DISCONNECT {c.ep}"])


def test_non_utf8_command(engine):
    c = greeted(engine)
    c.send(b"\xff\xfe\r\n")
    assert c.rest() == R521_NONSMTP
    c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after CONNECT: ?? ",
                  f"DISCONNECT {c.ep}"])


def test_command_count_limit(engine):
    c = greeted(engine)
    for _ in range(20):
        assert c.cmd("NOOP") == OK
    c.send(b"NOOP\r\n")
    assert c.rest() == R421
    c.expect_log([connect_line(c), f"COMMAND COUNT LIMIT from {c.ep} after NOOP",
                  f"DISCONNECT {c.ep}"])


def test_quit_is_exempt_from_the_count_limit(engine):
    c = greeted(engine)
    for _ in range(20):
        assert c.cmd("NOOP") == OK
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_unknown_commands_count_too(engine):
    c = greeted(engine)
    for _ in range(20):
        assert c.cmd("bogus") == R502
    c.send(b"NOOP\r\n")
    assert c.rest() == R421
    c.expect_log([connect_line(c), f"COMMAND COUNT LIMIT from {c.ep} after UNIMPLEMENTED",
                  f"DISCONNECT {c.ep}"])


def test_command_length_limit(engine):
    c = greeted(engine)
    c.send(b"A" * 3000 + b"\r\n")
    assert c.rest() == R421
    c.expect_log([connect_line(c), f"COMMAND LENGTH LIMIT from {c.ep} after CONNECT",
                  f"DISCONNECT {c.ep}"])


def test_command_length_limit_boundary(engine):
    # line_length_limit = 2048: a line of 2047 bytes is read, 2048 is too long.
    c = greeted(engine)
    assert c.cmd("NOOP") == OK
    assert c.cmd(b"A" * 2047) == R502
    c.send(b"A" * 2048 + b"\r\n")
    assert c.rest() == R421
    c.expect_log([connect_line(c), f"COMMAND LENGTH LIMIT from {c.ep} after UNIMPLEMENTED",
                  f"DISCONNECT {c.ep}"])


def test_data_after_rcpt_disconnects(engine):
    c = greeted(engine)
    assert c.cmd("HELO x") == b"250 mxscreen.test\r\n"
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    c.send(b"DATA\r\n")
    assert c.rest() == b"554 5.5.1 Error: no valid recipients\r\n"
    c.expect_log([connect_line(c), noqueue(c, R450, proto="SMTP"),
                  f"DATA without valid RCPT from {c.ep}", f"PASS NEW {c.ep}",
                  f"DISCONNECT {c.ep}"])


@pytest.mark.parametrize("before,command,expected", [
    ([], "DATA", b"503 5.5.1 Error: need RCPT command\r\n"),
    (["MAIL FROM:<a@b>"], "DATA x", b"501 5.5.4 Syntax: DATA\r\n"),
    (["MAIL FROM:<a@b>"], "DATA", b"554 5.5.1 Error: no valid recipients\r\n"),
], ids=["no MAIL", "argument", "no RCPT"])
def test_data_disconnects(engine, before, command, expected):
    c = greeted(engine)
    for b in before:
        c.cmd(b)
    c.send(command.encode() + b"\r\n")
    assert c.rest() == expected
    c.expect_log([connect_line(c), f"DATA without valid RCPT from {c.ep}",
                  f"DISCONNECT {c.ep}"])


@pytest.mark.parametrize("before,command,expected", [
    (["EHLO x", "MAIL FROM:<a@b>"], "BDAT 10", b"554 5.5.1 Error: no valid recipients\r\n"),
    (["EHLO x"], "BDAT 10 LAST", b"554 5.5.1 Error: need MAIL command\r\n"),
    (["EHLO x", "MAIL FROM:<a@b>"], "BDAT", b"501 5.5.4 Syntax: BDAT count [LAST]\r\n"),
], ids=["no RCPT", "no MAIL", "no size"])
def test_bdat_disconnects(engine, before, command, expected):
    c = greeted(engine)
    for b in before:
        c.cmd(b)
    c.send(command.encode() + b"\r\n")
    assert c.rest() == expected
    c.expect_log([connect_line(c), f"BDAT without valid RCPT from {c.ep}",
                  f"DISCONNECT {c.ep}"])


def test_bdat_is_exempt_from_the_pipelining_test(engine):
    c = greeted(engine)
    assert c.cmd("EHLO x") == EHLO
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    c.send(b"BDAT 5 LAST\r\nhello")
    assert c.rest() == b"554 5.5.1 Error: no valid recipients\r\n"
    c.expect_log([connect_line(c), f"BDAT without valid RCPT from {c.ep}",
                  f"DISCONNECT {c.ep}"])


def test_client_hangup(engine):
    c = greeted(engine)
    assert c.cmd("EHLO x") == EHLO
    c.close()
    c.expect_log([connect_line(c), hangup_line(c), f"DISCONNECT {c.ep}"])


def test_failed_test_is_logged_once_per_session(engine):
    c = greeted(engine)
    c.send(b"NOOP\r\nNOOP\r\n")
    assert c.reply() == OK and c.reply() == OK
    c.send(b"NOOP\nNOOP\n")
    assert c.reply() == OK and c.reply() == OK
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), f"COMMAND PIPELINING from {c.ep} after NOOP: NOOP\\r\\n",
                  f"BARE NEWLINE from {c.ep} after NOOP", f"DISCONNECT {c.ep}"])


def test_failure_after_rcpt_cancels_the_pass(engine):
    c = greeted(engine)
    assert c.cmd("EHLO x") == EHLO
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    c.send(b"NOOP\r\nNOOP\r\n")
    assert c.reply() == OK and c.reply() == OK
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), noqueue(c, R450),
                  f"COMMAND PIPELINING from {c.ep} after NOOP: NOOP\\r\\n",
                  f"DISCONNECT {c.ep}"])
    assert_tested_again(engine, c.ip)


def test_ended_session_no_longer_counts_for_its_address(workdir, backend):
    """postscreen forgets a session when it logs DISCONNECT: a client that
    has read the last reply and the close, but not yet closed its own end,
    does not count against its address any more."""
    with mxscreen(workdir, backend, {"postscreen_client_connection_count_limit": "1"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R450
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])
        n = Client(mx, c.ip)  # c is still open
        assert_held(n.sock)
        n.expect_log([connect_line(n), f"PASS OLD {n.ep}"])
        n.close()
        c.close()


def test_client_that_closes_after_a_flood_is_forgotten(workdir, backend):
    """A client cut off by the count limit in the middle of its input reads
    the 421, closes, and comes back: its old session is long gone."""
    with mxscreen(workdir, backend, {"postscreen_client_connection_count_limit": "1"},
                  deep={"postscreen_bare_newline_enable": "yes"}) as mx:
        c = greeted(mx)
        c.send(b"x\r\n" * 10000)
        assert c.rest() == R502 * 20 + R421
        time.sleep(0.2)  # the client takes a moment to close its end
        c.close()
        c.expect_log([connect_line(c), f"COMMAND COUNT LIMIT from {c.ep} after UNIMPLEMENTED",
                      f"DISCONNECT {c.ep}"])
        time.sleep(0.3)
        n = Client(mx, c.ip)
        assert n.reply() == GREETING
        assert n.cmd("QUIT") == BYE
        n.expect_log([connect_line(n), f"DISCONNECT {n.ep}"])


# ---- settings of the engine ----------------------------------------------


def test_helo_required(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_helo_required": "yes"}) as mx:
        c = greeted(mx)
        assert c.cmd("MAIL FROM:<a@b>") == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        assert c.cmd("ETRN x") == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        assert c.cmd("ETRN") == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        assert c.cmd("HELO x") == b"250 mxscreen.test\r\n"
        assert c.cmd("ETRN x") == b"458 Unable to queue messages\r\n"
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R450
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), noqueue(c, R450, proto="SMTP"), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])


def test_postscreen_disable_vrfy_command(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_disable_vrfy_command": "yes"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO  # the keyword follows disable_vrfy_command
        assert c.cmd("VRFY x") == b"502 5.5.1 VRFY command is disabled\r\n"
        assert c.cmd("VRFY") == b"501 5.5.4 Syntax: VRFY address\r\n"
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_disable_vrfy_command(workdir, backend):
    with mxscreen(workdir, backend, {"disable_vrfy_command": "yes"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == ehlo_reply([k for k in KEYWORDS if k != "VRFY"])
        assert c.cmd("VRFY x") == b"502 5.5.1 VRFY command is disabled\r\n"
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_message_size_limit_and_smtputf8_in_ehlo(workdir, backend):
    with mxscreen(workdir, backend, {"message_size_limit": "0", "smtputf8_enable": "no"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == ehlo_reply(
            ["SIZE"] + [k for k in KEYWORDS[1:] if k != "SMTPUTF8"])
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_discard_ehlo_keywords(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_discard_ehlo_keywords": "chunking, dsn"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == ehlo_reply(
            [k for k in KEYWORDS if k not in ("CHUNKING", "DSN")])
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        c.send(b"BDAT 10\r\n")
        assert c.rest() == b"502 5.5.1 Error: command not implemented\r\n"
        # The global list is not logged.
        c.expect_log([connect_line(c), f"BDAT without valid RCPT from {c.ep}",
                      f"DISCONNECT {c.ep}"])


def test_discard_ehlo_keyword_address_maps(workdir, backend):
    silent, loud, other = new_ip(), new_ip(), new_ip()
    maps = (f"cidr:{{{{{silent}/32 silent-discard, 8bitmime}}, "
            f"{{{loud}/32 8bitmime starttls}}}}")
    with mxscreen(workdir, backend,
                  {"postscreen_discard_ehlo_keyword_address_maps": maps}) as mx:
        no8bit = ehlo_reply([k for k in KEYWORDS if k != "8BITMIME"])
        c = greeted(mx, silent)
        assert c.cmd("EHLO x") == no8bit
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])

        c = greeted(mx, loud)
        assert c.cmd("EHLO x") == no8bit
        assert c.cmd("EHLO x") == no8bit
        assert c.cmd("STARTTLS") == b"502 5.5.1 Error: command not implemented\r\n"
        assert c.cmd("QUIT") == BYE
        c.rest()
        line = f"[{loud}]{c.port}: discarding EHLO keywords: 8BITMIME STARTTLS"
        c.expect_log([connect_line(c), line, line, f"DISCONNECT {c.ep}"])

        c = greeted(mx, other)
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_default_forbidden_commands(engine):
    for line in ["CONNECT mx.example:25 HTTP/1.1", "post / HTTP/1.0", "Get /", "1 2 3",
                 ".", "<html>"]:
        c = greeted(engine)
        c.send(line.encode() + b"\r\n")
        assert c.rest() == R521_NONSMTP, line
        word, _, rest = line.partition(" ")
        c.expect_log([connect_line(c),
                      f"NON-SMTP COMMAND from {c.ep} after CONNECT: {word} {rest}",
                      f"DISCONNECT {c.ep}"])


def test_custom_forbidden_commands(workdir, backend):
    with mxscreen(workdir, backend,
                  {"postscreen_forbidden_commands": "!get, get, hello, PUT"}) as mx:
        c = greeted(mx)
        assert c.cmd("GET /") == R502      # "!get" comes first
        assert c.cmd("CONNECT x") == R502  # not in this list
        assert c.cmd("1abc") == R502       # not in this list
        c.send(b"put /x\r\n")
        assert c.rest() == R521_NONSMTP
        c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after UNIMPLEMENTED: put /x",
                      f"DISCONNECT {c.ep}"])
        c = greeted(mx)
        c.send(b"HELLO there\r\n")
        assert c.rest() == R521_NONSMTP
        c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after CONNECT: HELLO there",
                      f"DISCONNECT {c.ep}"])


def test_command_filter(workdir, backend):
    # postscreen_command_filter is $-expanded as main.cf is read (unlike the
    # footer), so the table's "$1" is written "$$1".
    with mxscreen(workdir, backend,
                  {"postscreen_command_filter": "pcre:{{/^FOO (.*)/ NOOP $$1}}"}) as mx:
        c = greeted(mx)
        assert c.cmd("FOO x") == OK
        assert c.cmd("  FOO y") == OK  # leading white space is not part of the key
        assert c.cmd("BAR x") == R502
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c),
                      f'{c.ep}: replacing command "FOO x" with "NOOP x"',
                      f'{c.ep}: replacing command "  FOO y" with "NOOP y"',
                      f"DISCONNECT {c.ep}"])


def test_command_filter_result_is_tested(workdir, backend):
    # The replacement is what the engine sees, the non-SMTP test included.
    with mxscreen(workdir, backend,
                  {"postscreen_command_filter": "pcre:{{/^HI (.*)/ GET $$1}}"}) as mx:
        c = greeted(mx)
        c.send(b"HI /\r\n")
        assert c.rest() == R521_NONSMTP
        c.expect_log([connect_line(c), f'{c.ep}: replacing command "HI /" with "GET /"',
                      f"NON-SMTP COMMAND from {c.ep} after CONNECT: GET /",
                      f"DISCONNECT {c.ep}"])


def test_soft_bounce(workdir, backend):
    with mxscreen(workdir, backend, {"soft_bounce": "yes"}) as mx:
        c = greeted(mx)
        c.send(b"GET / HTTP/1.0\r\n")
        assert c.rest() == b"421 4.7.0 Error: I can break rules, too. Goodbye.\r\n"
        c.expect_log([connect_line(c),
                      f"NON-SMTP COMMAND from {c.ep} after CONNECT: GET / HTTP/1.0",
                      f"DISCONNECT {c.ep}"])

        c = greeted(mx)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
        assert c.reply() == EHLO
        assert c.reply() == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == b"450 4.5.1 Protocol error\r\n"
        assert c.cmd("bogus") == b"402 4.5.2 Error: command not recognized\r\n"
        assert c.cmd("RSET") == OK
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c),
                      f"COMMAND PIPELINING from {c.ep} after EHLO: MAIL FROM:<a@b>\\r\\n",
                      noqueue(c, b"450 4.5.1 Protocol error\r\n"), f"DISCONNECT {c.ep}"])


def test_reject_footer(workdir, backend):
    with mxscreen(workdir, backend,
                  {"postscreen_reject_footer": r"Contact $server_name\nfor $client_address"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == (
            "450-4.3.2 Service currently unavailable\r\n"
            "450-4.3.2 Contact mxscreen.test\r\n"
            f"450 4.3.2 for {c.ip}\r\n").encode()
        assert c.cmd("HELO") == ("501-Syntax: HELO hostname\r\n"
                                 "501-Contact mxscreen.test\r\n"
                                 f"501 for {c.ip}\r\n").encode()
        assert c.cmd("NOOP") == OK
        assert c.cmd("QUIT") == BYE
        c.rest()
        # The log has the reply without its footer.
        c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])


def test_reject_footer_with_same_line_continuation(workdir, backend):
    with mxscreen(workdir, backend,
                  {"postscreen_reject_footer": r"\c (port $client_port)"}) as mx:
        c = greeted(mx)
        assert c.cmd("VRFY x") == (
            f"450 4.3.2 Service currently unavailable (port {c.port})\r\n").encode()
        assert c.cmd("QUIT") == BYE
        c.rest()


def test_reject_footer_maps(workdir, backend):
    with mxscreen(workdir, backend, {
            "postscreen_reject_footer_maps":
                "inline:{{450 4.3.2 Service currently unavailable=Try later}}",
            "postscreen_reject_footer": "Other footer"}) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == (b"450-4.3.2 Service currently unavailable\r\n"
                                          b"450 4.3.2 Try later\r\n")
        # No map entry: the plain footer.
        assert c.cmd("bogus") == (b"502-5.5.2 Error: command not recognized\r\n"
                                  b"502 5.5.2 Other footer\r\n")
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])


# ---- the three actions of each deep test ---------------------------------


def deep(test, action):
    """Only TEST enabled, with ACTION."""
    return {f"postscreen_{test}_enable": "yes", f"postscreen_{test}_action": action}


def test_pipelining_drop(workdir, backend):
    with mxscreen(workdir, backend, {}, deep=deep("pipelining", "drop")) as mx:
        c = greeted(mx)
        c.send(b"EHLO x\r\nNOOP\r\n")
        assert c.rest() == R521_PROTO  # dropped before EHLO is executed
        c.expect_log([connect_line(c), f"COMMAND PIPELINING from {c.ep} after EHLO: NOOP\\r\\n",
                      f"DISCONNECT {c.ep}"])
        assert_tested_again(mx, c.ip)


def test_bare_newline_drop(workdir, backend):
    with mxscreen(workdir, backend, {}, deep=deep("bare_newline", "drop")) as mx:
        c = greeted(mx)
        c.send(b"EHLO x\n")
        assert c.rest() == R521_PROTO
        c.expect_log([connect_line(c), f"BARE NEWLINE from {c.ep} after EHLO x",
                      f"DISCONNECT {c.ep}"])
        assert_tested_again(mx, c.ip)


def test_non_smtp_drop(workdir, backend):
    with mxscreen(workdir, backend, {}, deep=deep("non_smtp_command", "drop")) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO
        c.send(b"Subject: hello\r\n")
        assert c.rest() == R521_NONSMTP
        c.expect_log([connect_line(c), f"NON-SMTP COMMAND from {c.ep} after EHLO: Subject: hello",
                      f"DISCONNECT {c.ep}"])
        assert_tested_again(mx, c.ip)


# The failing input for each test, and the replies to it when not dropped.
FAILURES = {
    "pipelining": (b"EHLO x\r\nMAIL FROM:<a@b>\r\n", EHLO + MAIL_OK,
                   "COMMAND PIPELINING from {ep} after EHLO: MAIL FROM:<a@b>\\r\\n"),
    "non_smtp_command": (b"GET / HTTP/1.0\r\n", R502,
                         "NON-SMTP COMMAND from {ep} after CONNECT: GET / HTTP/1.0"),
    "bare_newline": (b"EHLO x\n", EHLO, "BARE NEWLINE from {ep} after EHLO x"),
}


def fail_in_session(mx, test):
    """A greeted client that fails TEST (FAILURES) and, when the failing
    input left no sender, gives MAIL; returns the client."""
    data, replies, _ = FAILURES[test]
    c = greeted(mx)
    c.send(data)
    got = b""
    while len(got) < len(replies):
        got += c.reply()
    assert got == replies
    if test != "pipelining":
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    return c


@pytest.mark.parametrize("test", list(FAILURES))
def test_deep_test_enforce(workdir, backend, test):
    logged = FAILURES[test][2]
    with mxscreen(workdir, backend, {}, deep=deep(test, "enforce")) as mx:
        c = fail_in_session(mx, test)
        assert c.cmd("VRFY x") == R550_PROTO
        assert c.cmd("RCPT TO:<c@d>") == R550_PROTO
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), logged.format(ep=c.ep), noqueue(c, R550_PROTO, helo=(
            "" if test == "non_smtp_command" else "x"), proto=(
            "SMTP" if test == "non_smtp_command" else "ESMTP")), f"DISCONNECT {c.ep}"])
        assert_tested_again(mx, c.ip)


@pytest.mark.parametrize("test", list(FAILURES))
def test_deep_test_ignore_is_a_temporary_pass(workdir, backend, test):
    logged = FAILURES[test][2]
    with mxscreen(workdir, backend, {}, deep=deep(test, "ignore")) as mx:
        c = fail_in_session(mx, test)
        assert c.cmd("RCPT TO:<c@d>") == R450
        quit_and_close(c)
        c.expect_log([connect_line(c), logged.format(ep=c.ep), noqueue(c, R450, helo=(
            "" if test == "non_smtp_command" else "x"), proto=(
            "SMTP" if test == "non_smtp_command" else "ESMTP")), f"PASS NEW {c.ep}",
            f"DISCONNECT {c.ep}"])
        assert_handed_off(mx, c.ip)


def test_ignored_failure_alone_does_not_pass_the_other_tests(workdir, backend):
    # Pipelining ignored, but the client never reached RCPT: the bare
    # newline test is still due, so no PASS and the next session is tested.
    params = dict(deep("pipelining", "ignore"), postscreen_bare_newline_enable="yes")
    with mxscreen(workdir, backend, {}, deep=params) as mx:
        c = greeted(mx)
        c.send(b"NOOP\r\nNOOP\r\n")
        assert c.reply() == OK and c.reply() == OK
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), f"COMMAND PIPELINING from {c.ep} after NOOP: NOOP\\r\\n",
                      f"DISCONNECT {c.ep}"])
        assert_tested_again(mx, c.ip)


# ---- failures before the engine: opportunistic deep tests ----------------


def test_denylist_enforce_runs_the_engine_with_all_deep_tests(workdir, backend):
    plain, pipelined = new_ip(), new_ip()
    acl = f"permit_mynetworks, cidr:{{{{{plain}/32 reject}}, {{{pipelined}/32 reject}}}}"
    with mxscreen(workdir, backend, {"postscreen_access_list": acl,
                                     "postscreen_denylist_action": "enforce"}, deep={}) as mx:
        r550 = b"550 5.3.2 Service currently unavailable\r\n"
        c = greeted(mx, plain)
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("VRFY x") == r550
        assert c.cmd("RCPT TO:<c@d>") == r550
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), f"DENYLISTED {c.ep}", noqueue(c, r550),
                      f"DISCONNECT {c.ep}"])

        # Pipelining is disabled but tested now; its enforce reply is the last.
        c = greeted(mx, pipelined)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
        assert c.reply() == EHLO
        assert c.reply() == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R550_PROTO
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), f"DENYLISTED {c.ep}",
                      f"COMMAND PIPELINING from {c.ep} after EHLO: MAIL FROM:<a@b>\\r\\n",
                      noqueue(c, R550_PROTO), f"DISCONNECT {c.ep}"])

        # Next time: denylisted again, never handed off.
        c = greeted(mx, plain)
        c.send(b"GET /\r\n")  # non-SMTP drop (default action)
        assert c.rest() == R521_NONSMTP
        c.expect_log([connect_line(c), f"DENYLISTED {c.ep}",
                      f"NON-SMTP COMMAND from {c.ep} after CONNECT: GET /",
                      f"DISCONNECT {c.ep}"])


def test_allowlist_veto(workdir, backend):
    with mxscreen(workdir, backend,
                  {"postscreen_allowlist_interfaces": "!127.0.0.1 static:all"}, deep={}) as mx:
        ip = new_ip()
        for _ in range(2):
            c = greeted(mx, ip)
            assert c.cmd("EHLO x") == EHLO
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == R450
            assert c.cmd("QUIT") == BYE
            assert c.rest() == b""
            c.expect_log([connect_line(c), f"ALLOWLIST VETO {c.ep}", noqueue(c, R450),
                          f"DISCONNECT {c.ep}"])


# ---- time limits and misbehaving clients ---------------------------------


@pytest.fixture
def limited(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_command_time_limit": "2s"}) as mx:
        yield mx


def test_command_time_limit_silent_client(limited):
    c = greeted(limited)
    t0 = time.time()
    assert c.rest(timeout=6) == R421_TIMEOUT
    assert 1.8 < time.time() - t0 < 3.5
    c.expect_log([connect_line(c), f"COMMAND TIME LIMIT from {c.ep} after CONNECT",
                  f"DISCONNECT {c.ep}"])


def test_command_time_limit_after_ehlo(limited):
    c = greeted(limited)
    assert c.cmd("EHLO x") == EHLO
    t0 = time.time()
    assert c.rest(timeout=6) == R421_TIMEOUT
    assert 1.8 < time.time() - t0 < 3.5
    c.expect_log([connect_line(c), f"COMMAND TIME LIMIT from {c.ep} after EHLO",
                  f"DISCONNECT {c.ep}"])


def test_command_time_limit_is_per_command_not_per_read(limited):
    """A client that trickles a byte every 0.5 s is still cut off at 2 s,
    and other clients are served meanwhile."""
    c = greeted(limited)
    t0 = time.time()
    got = []

    def trickle():
        c.sock.settimeout(0.5)
        for b in b"NOOP NOOP NOOP NOOP NOOP":
            try:
                c.sock.send(bytes([b]))
                data = c.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            got.append((time.time() - t0, data))
            break
    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(0.3)
    # Another client, served promptly while the slow one is held.
    o = greeted(limited)
    t1 = time.time()
    assert o.cmd("EHLO x") == EHLO
    assert o.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert o.cmd("RCPT TO:<c@d>") == R450
    assert o.cmd("QUIT") == BYE
    assert time.time() - t1 < 1
    t.join(10)
    assert got, "the slow client was never cut off"
    when, data = got[0]
    assert data == R421_TIMEOUT
    assert 1.8 < when < 3.0
    c.expect_log([connect_line(c), f"COMMAND TIME LIMIT from {c.ep} after CONNECT",
                  f"DISCONNECT {c.ep}"])


def test_ten_thousand_junk_commands_in_one_send(workdir, backend):
    with mxscreen(workdir, backend, {}, deep={"postscreen_bare_newline_enable": "yes"}) as mx:
        c = greeted(mx)
        c.send(b"x\r\n" * 10000)
        assert c.rest() == R502 * 20 + R421
        c.expect_log([connect_line(c), f"COMMAND COUNT LIMIT from {c.ep} after UNIMPLEMENTED",
                      f"DISCONNECT {c.ep}"])
        o = greeted(mx)
        assert o.cmd("EHLO x") == EHLO
        assert o.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert o.cmd("RCPT TO:<c@d>") == R450
        assert o.cmd("QUIT") == BYE
        assert mx.alive()


def test_one_mebibyte_line(engine):
    c = greeted(engine)

    def send():
        try:
            c.sock.sendall(b"NOOP " + b"x" * (1 << 20) + b"\r\n")
        except OSError:
            pass  # the server closed: expected
    t = threading.Thread(target=send)
    t.start()
    assert c.rest() == R421
    t.join(10)
    c.expect_log([connect_line(c), f"COMMAND LENGTH LIMIT from {c.ep} after CONNECT",
                  f"DISCONNECT {c.ep}"])
    o = greeted(engine)
    assert o.cmd("NOOP") == OK
    assert o.cmd("QUIT") == BYE


def test_client_that_never_reads_cannot_grow_the_daemon(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_command_count_limit": "100000000"},
                  deep={"postscreen_bare_newline_enable": "yes"}) as mx:
        rss0 = vm_rss_kb(mx.proc.pid)
        c = greeted(mx)
        c.send(b"NOOP\r\n" * 5000)
        # Keep pushing, never reading, for up to 3 s or 64 MiB: a daemon
        # that kept reading would have to queue 2.5 times as many reply bytes.
        c.sock.setblocking(False)
        chunk = b"NOOP\r\n" * 10000
        sent, deadline, blocked = 0, time.time() + 3, None
        while time.time() < deadline and sent < 64 << 20:
            try:
                sent += c.sock.send(chunk)
                blocked = None
            except BlockingIOError:
                blocked = blocked or time.time()
                if time.time() - blocked > 0.5:
                    break  # mxscreen stopped reading
                time.sleep(0.02)
        rss = vm_rss_kb(mx.proc.pid)
        assert rss < 50 * 1024, f"VmRSS {rss} kB (at start {rss0} kB) after {sent} bytes"
        # Another client is served promptly.
        o = greeted(mx)
        t0 = time.time()
        assert o.cmd("EHLO x") == EHLO
        assert o.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert o.cmd("RCPT TO:<c@d>") == R450
        assert o.cmd("QUIT") == BYE
        assert time.time() - t0 < 1
        o.expect_log([connect_line(o), noqueue(o, R450), f"PASS NEW {o.ep}",
                      f"DISCONNECT {o.ep}"])
        c.close()
        c.expect_log([connect_line(c), hangup_line(c), f"DISCONNECT {c.ep}"])
        assert vm_rss_kb(mx.proc.pid) < 50 * 1024
