"""Replay after the deep tests (mxscreen_deep_test_handoff = replay).

A new client that passes every due deep test at its first RCPT is not told
to come back: mxscreen connects to the backend, replays the client's
EHLO/HELO, MAIL and RCPT, gives the client the backend's RCPT reply and
joins the two connections.  When the backend cannot take the client, the
client gets postscreen's 450 (and is allowlisted for its next connection).

The backends are the session's real Postfix (conftest.py), fake Python
backends (fakebackend.py) for the ways a backend can fail, and for the
last test a second Postfix that sends mail through mxscreen.  Settings as
in test_engine.py: mynetworks = 127.0.0.1/32, so that clients from
127.0.0.N (N != 1) are screened, and a source address per dialogue, so
that no pass of one dialogue helps another.  mxs.py sets "reconnect" in
its base parameters; every mxscreen here asks for "replay" explicitly.
"""
import contextlib
import os
import re
import smtplib
import socket
import tempfile
import time
import uuid

import pytest

from fakebackend import FakeBackend, ehlo_reply as backend_ehlo, parse_ssl_tlv
from mxs import (BYE, GREETING, KEYWORDS, MAIL_OK, OK, R450, R550_PROTO, Client, Mxscreen,
                 connect_line, free_port, greet, noqueue)
from tlsclient import client_context, starttls
from postfix_backend import private_postfix

RCPT_OK = b"250 2.1.5 Ok\r\n"
R354 = b"354 End data with <CR><LF>.<CR><LF>\r\n"

BASE = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_banner": "$myhostname ESMTP",
    "mxscreen_deep_test_handoff": "replay",
}
DEEP = {
    "postscreen_pipelining_enable": "yes",
    "postscreen_non_smtp_command_enable": "yes",
    "postscreen_bare_newline_enable": "yes",
}


def ehlo(keywords=KEYWORDS, tls=False):
    """mxscreen's EHLO reply offering KEYWORDS (and STARTTLS after ETRN)."""
    words = list(keywords)
    if tls:
        words.insert(words.index("ETRN") + 1 if "ETRN" in words else len(words), "STARTTLS")
    lines = ["mxscreen.test"] + words
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{k}\r\n".encode()
                    for i, k in enumerate(lines))


EHLO = ehlo()

# A client address of its own for every dialogue: 127.0.0.40 to .90, then
# 127.0.2.2 and up.
_ips = (f"127.0.{a}.{b}" for a in range(0, 256)
        for b in (range(40, 91) if a == 0 else range(2, 255)) if a != 1)


def new_ip():
    return next(_ips)


def params_for(mode, backend, **extra):
    """mxscreen's parameters for a replay to BACKEND by MODE (proxy,
    proxy-v1, xclient), with the three deep tests and EXTRA."""
    p = dict(BASE, **DEEP, mxscreen_handoff=mode.split("-")[0], mxscreen_backend=backend)
    if mode == "proxy-v1":
        p["mxscreen_proxy_protocol"] = "v1"
    p.update(extra)
    return p


def postfix_addr(pf, mode):
    return f"127.0.0.1:{pf.xclient_port if mode == 'xclient' else pf.proxy_port}"


@contextlib.contextmanager
def mxscreen(workdir, params, learn=True):
    """A started mxscreen; with LEARN, after its first EHLO probe answered
    (so that its EHLO reply is the one for the backend)."""
    mx = Mxscreen(workdir, params).start()
    try:
        if learn:
            mx.wait_for_log(r"backend \S+ offers EHLO keywords: ")
        yield mx
    finally:
        Client.close_all(mx)
        mx.stop()


class SmtpPeer(Client):
    """mxscreen's view of an smtplib.SMTP client: its endpoint and log lines."""

    def __init__(self, mx, smtp):
        self.mx = mx
        self.sock = smtp.sock
        self.ip, self.port = smtp.sock.getsockname()
        self.ep = f"[{self.ip}]:{self.port}"
        self._mine = re.compile(rf"\[{re.escape(self.ip)}\]:?{self.port}(?!\d)")


def smtp_client(mx, ip):
    return smtplib.SMTP("127.0.0.1", mx.port, source_address=(ip, 0), timeout=15,
                        local_hostname="client.example")


def replay_line(c, backend, reply):
    return f"REPLAY {c.ep} to {backend}: RCPT {reply}"


def fallback_lines(c, backend):
    return [f"warning: replay of {c.ep} to {backend} failed: the client is told to try again"]


def no_warnings(mx):
    assert not [l for l in mx.log_lines() if l.startswith("warning:")], mx.log_text()


@pytest.fixture
def tls(tlsdir):
    """mxscreen's parameters for opportunistic STARTTLS."""
    return {"smtpd_tls_cert_file": os.path.join(tlsdir, "cert.pem"),
            "smtpd_tls_key_file": os.path.join(tlsdir, "key.pem"),
            "postscreen_tls_security_level": "may"}


# ---- a real Postfix behind mxscreen --------------------------------------


def deliver(pf, mx, ip, mode, use_tls=False):
    """A new client from IP sends one message in its first connection;
    returns (its SmtpPeer, the message as delivered)."""
    tag = uuid.uuid4().hex
    since = pf.log_offset()
    s = smtp_client(mx, ip)
    code, text = s.ehlo()
    assert code == 250
    if use_tls:
        assert b"STARTTLS" in text.split(b"\n")
        assert s.starttls(context=client_context())[0] == 220
        code, text = s.ehlo()
        assert code == 250 and b"STARTTLS" not in text.split(b"\n")
    assert b"PIPELINING" not in text.split(b"\n")
    peer = SmtpPeer(mx, s)
    assert s.mail("sender@remote.example") == (250, b"2.1.0 Ok")
    assert s.rcpt("someone@example.test") == (250, b"2.1.5 Ok")  # Postfix's reply
    code, text = s.data(f"Subject: {tag}\r\n\r\nreplayed via {mode}\r\n")
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), (code, text)
    assert s.quit()[0] == 221
    s.close()
    msg = pf.wait_for_message(tag)
    # Postfix saw the real client and its HELO, not mxscreen.
    pf.wait_for_log(rf"\]: [0-9A-F]+: client=unknown\[{re.escape(ip)}\]$", since=since)
    assert re.search(rf"^Received: from client\.example \(unknown \[{re.escape(ip)}\]\)$",
                     msg, re.M), msg
    assert f"replayed via {mode}" in msg
    return peer, msg


@pytest.mark.parametrize("mode", ["proxy", "proxy-v1", "xclient"])
def test_new_client_delivers_in_its_first_connection(postfix, workdir, mode):
    """All three deep tests pass at RCPT, the backend answers that RCPT and
    the rest of the session goes to Postfix: no "come back later"."""
    backend = postfix_addr(postfix, mode)
    with mxscreen(workdir, params_for(mode, backend)) as mx:
        ip = new_ip()
        peer, _ = deliver(postfix, mx, ip, mode)
        peer.expect_log([connect_line(peer), f"PASS NEW {peer.ep}",
                         replay_line(peer, backend, "250 2.1.5 Ok")])
        # Allowlisted: the next connection goes to Postfix at once.
        c = Client(mx, ip)
        assert c.reply() == b"220 mx.test ESMTP Postfix (test backend)\r\n"
        assert c.cmd("QUIT") == BYE
        c.expect_log([connect_line(c), f"PASS OLD {c.ep}"])
        no_warnings(mx)


def test_bdat_after_the_replay(postfix, workdir):
    """CHUNKING, offered since Postfix offers it: BDAT after the replayed
    RCPT goes to Postfix like any other command."""
    backend = postfix_addr(postfix, "proxy")
    with mxscreen(workdir, params_for("proxy", backend)) as mx:
        tag = uuid.uuid4().hex
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@remote.example>") == MAIL_OK
        assert c.cmd("RCPT TO:<chunk@example.test>") == RCPT_OK
        chunk = f"Subject: {tag}\r\n\r\nin one chunk\r\n".encode()
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        assert re.fullmatch(rb"250 2\.0\.0 Ok: \d+ bytes queued as [0-9A-F]+\r\n", c.reply())
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        assert "in one chunk" in postfix.wait_for_message(tag)
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                      replay_line(c, backend, "250 2.1.5 Ok")])


@pytest.mark.parametrize("mode", ["proxy", "xclient"])
def test_new_client_delivers_over_starttls(postfix, workdir, tls, mode):
    """A client that did STARTTLS with mxscreen keeps its TLS session; the
    backend gets the replay and the rest of the session in plaintext."""
    backend = postfix_addr(postfix, mode)
    with mxscreen(workdir, params_for(mode, backend, **tls)) as mx:
        ip = new_ip()
        peer, _ = deliver(postfix, mx, ip, mode, use_tls=True)
        peer.expect_log([connect_line(peer), f"PASS NEW {peer.ep}",
                         replay_line(peer, backend, "250 2.1.5 Ok")])
        no_warnings(mx)


@pytest.mark.parametrize("order", [
    ["bad@nowhere.invalid", "one@example.test", "two@example.test"],
    ["one@example.test", "bad@nowhere.invalid", "two@example.test"],
], ids=["refused first", "accepted first"])
def test_several_recipients_one_refused_by_postfix(postfix, workdir, order):
    """The first RCPT is the replayed one and gets Postfix's own reply, a
    refusal included; the later RCPTs go to Postfix directly."""
    backend = postfix_addr(postfix, "proxy")
    with mxscreen(workdir, params_for("proxy", backend)) as mx:
        ip = new_ip()
        tag = uuid.uuid4().hex
        since = postfix.log_offset()
        s = smtp_client(mx, ip)
        s.ehlo()
        peer = SmtpPeer(mx, s)
        assert s.mail("sender@remote.example")[0] == 250
        denied = (554, b"5.7.1 <bad@nowhere.invalid>: Relay access denied")
        for rcpt in order:
            assert s.rcpt(rcpt) == (denied if "invalid" in rcpt else (250, b"2.1.5 Ok")), rcpt
        assert s.data(f"Subject: {tag}\r\n\r\nx\r\n")[0] == 250
        s.quit()
        first = "554 5.7.1 <bad@nowhere.invalid>: Relay access denied" \
            if "invalid" in order[0] else "250 2.1.5 Ok"
        peer.expect_log([connect_line(peer), f"PASS NEW {peer.ep}",
                         replay_line(peer, backend, first)])
        # Postfix itself refused the recipient, and delivered to the others.
        postfix.wait_for_log(rf"(NOQUEUE|[0-9A-F]+): reject: RCPT from "
                             rf"unknown\[{re.escape(ip)}\]: 554 5\.7\.1 "
                             r"<bad@nowhere\.invalid>: Relay access denied", since=since)
        deadline = time.time() + 20
        while True:
            got = sorted(re.search(r"^X-Original-To: (.*)$", m, re.M).group(1)
                         for m in postfix.messages() if tag in m)
            if len(got) >= 2 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert got == ["one@example.test", "two@example.test"]
        no_warnings(mx)


@pytest.mark.parametrize("again", [["RSET", "MAIL FROM:<a@remote.example>"],
                                   ["MAIL FROM:<a@remote.example>"]],
                         ids=["RSET then MAIL", "MAIL again"])
def test_postfix_refusing_mail_answers_the_rcpt(postfix, workdir, again):
    """Postfix refuses the replayed MAIL (an unknown parameter): its 555 is
    the client's RCPT reply, and the client goes on talking to Postfix."""
    backend = postfix_addr(postfix, "proxy")
    with mxscreen(workdir, params_for("proxy", backend)) as mx:
        tag = uuid.uuid4().hex
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@remote.example> FOO=bar") == MAIL_OK
        assert c.cmd("RCPT TO:<c@example.test>") == b"555 5.5.4 Unsupported option: FOO=bar\r\n"
        for line in again:
            assert c.cmd(line) == (OK if line == "RSET" else MAIL_OK), line
        assert c.cmd("RCPT TO:<c@example.test>") == RCPT_OK
        assert c.cmd("DATA") == R354
        assert re.fullmatch(rb"250 2\.0\.0 Ok: queued as [0-9A-F]+\r\n",
                            c.cmd(f"Subject: {tag}\r\n\r\nx\r\n.".encode()))
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        postfix.wait_for_message(tag)
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                      f"REPLAY {c.ep} to {backend}: MAIL refused: "
                      "555 5.5.4 Unsupported option: FOO=bar"])
        no_warnings(mx)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("size", [0, 200000], ids=["data", "whole message"])
def test_pipelined_bytes_after_the_replayed_rcpt_reach_postfix(postfix, workdir, tls, use_tls,
                                                                size):
    """Without the pipelining test, a client may send DATA, even its whole
    message and QUIT, behind the replayed RCPT: those bytes go on to the
    backend, in plaintext and from inside TLS, and arrive intact."""
    backend = postfix_addr(postfix, "proxy")
    params = params_for("proxy", backend, postscreen_pipelining_enable="no", **tls)
    with mxscreen(workdir, params) as mx:
        tag = uuid.uuid4().hex
        body = "".join(f"{i:07d} {tag}\r\n" for i in range(size // 42))
        c = greet(mx, new_ip())
        if use_tls:
            starttls(c)
        assert c.cmd("EHLO x") == ehlo(tls=not use_tls)
        assert c.cmd("MAIL FROM:<a@remote.example>") == MAIL_OK
        if size:
            c.send(f"RCPT TO:<p@example.test>\r\nDATA\r\nSubject: {tag}\r\n\r\n{body}.\r\n"
                   "QUIT\r\n".encode())
            assert c.reply() == RCPT_OK
            assert c.reply() == R354
            assert c.reply().startswith(b"250 2.0.0 Ok: queued as ")
            assert c.reply() == BYE
        else:
            c.send(b"RCPT TO:<p@example.test>\r\nDATA\r\n")
            assert c.reply() == RCPT_OK
            assert c.reply() == R354
            assert c.cmd(f"Subject: {tag}\r\n\r\nx\r\n.".encode()).startswith(b"250 2.0.0 Ok")
            assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        msg = postfix.wait_for_message(tag)
        assert msg.replace("\r\n", "\n").endswith(body.replace("\r\n", "\n") or "x\n")
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                      replay_line(c, backend, "250 2.1.5 Ok")])
        no_warnings(mx)


def test_pass_mode_never_replays(postfix, workdir):
    """The pass service takes a fresh socket only: postscreen's 450 at RCPT,
    no EHLO probe; the next connection is handed to smtpd."""
    params = dict(BASE, **DEEP, mxscreen_handoff="pass", mxscreen_backend=postfix.pass_socket,
                  mxscreen_user="postfix")
    with mxscreen(workdir, params, learn=False) as mx:
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == EHLO
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@example.test>") == R450
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), noqueue(c, R450, rcpt="c@example.test"),
                      f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])
        time.sleep(0.1)
        c2 = Client(mx, c.ip)
        assert c2.reply() == b"220 mx.test ESMTP Postfix (test backend)\r\n"
        assert c2.cmd("QUIT") == BYE
        c2.expect_log([connect_line(c2), f"PASS OLD {c2.ep}"])
        assert "offers EHLO keywords" not in mx.log_text()
        assert "REPLAY" not in mx.log_text()


# ---- backends that cannot take the client ---------------------------------


def test_backend_down_gives_450_and_the_retry_gets_through(workdir):
    """No backend at the replay: postscreen's 450, but the client passed,
    so its next connection goes to the backend at once (PASS OLD)."""
    port = free_port()
    backend = f"127.0.0.1:{port}"
    with mxscreen(workdir, params_for("proxy", backend), learn=False) as mx:
        mx.wait_for_log(rf"^.*warning: cannot learn the EHLO keywords of backend {backend}: "
                        rf"cannot connect to service {backend}: Connection refused "
                        r"\(asking again every 30s\)$")
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == EHLO  # postscreen's list: nothing learned
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R450
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.close()
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}", *fallback_lines(c, backend),
                      noqueue(c, R450), f"DISCONNECT {c.ep}"])
        lines = mx.log_lines()
        i = lines.index(fallback_lines(c, backend)[0])
        assert lines[i - 1] == f"warning: cannot connect to service {backend}: Connection refused"

        with FakeBackend(port=port) as fb:
            time.sleep(0.1)
            c2 = Client(mx, c.ip)
            assert c2.reply() == b"220 fake.test ESMTP\r\n"
            assert c2.cmd("QUIT") == BYE
            conn = fb.wait_conn(c.ip)
            assert conn.closed.wait(5)
            assert (conn.proxy["version"], conn.proxy["sport"], conn.proxy["dst"],
                    conn.proxy["dport"]) == (2, c2.port, "127.0.0.1", mx.port)
            assert conn.commands == ["QUIT"]
            c2.expect_log([connect_line(c2), f"PASS OLD {c2.ep}"])


class FullBacklog:
    """A listener whose accept queue is full: connect() hangs (SYN dropped)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.fill = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(self.sock.getsockname())
            except BlockingIOError:
                pass
            self.fill.append(f)
        time.sleep(0.1)

    def close(self):
        for f in self.fill:
            f.close()
        self.sock.close()


def failing(make, why, probe=None, extra=None, helo="EHLO x", secs=(0, 2)):
    """One way of failing: MAKE() gives the backend; WHY is the warning
    that says why the replay failed (BACKEND and EP filled in); PROBE the
    probe's reason (a pattern; None: the probe succeeds); EXTRA mxscreen
    parameters; HELO the client's; SECS the least and most seconds from RCPT
    to its reply."""
    return dict(make=make, why=why, probe=probe, extra=extra or {}, helo=helo, secs=secs)


FAILING = {
    "greets 554": failing(
        lambda: FakeBackend(greeting=b"554 5.3.2 fake.test No thanks\r\n"),
        "backend BACKEND greeted with: 554 5.3.2 fake.test No thanks",
        r"backend BACKEND greeted with: 554 5\.3\.2 fake\.test No thanks"),
    "refuses EHLO": failing(
        lambda: FakeBackend(ehlo=b"502 5.5.2 Error: command not recognized\r\n"),
        "backend BACKEND refused EHLO: 502 5.5.2 Error: command not recognized",
        r"backend BACKEND refused EHLO: 502 5\.5\.2 Error: command not recognized"),
    "refuses EHLO 421": failing(
        lambda: FakeBackend(ehlo=b"421 4.3.2 fake.test shutting down\r\n"),
        "backend BACKEND refused EHLO: 421 4.3.2 fake.test shutting down",
        r"backend BACKEND refused EHLO: 421 4\.3\.2 fake\.test shutting down"),
    "refuses HELO": failing(
        lambda: FakeBackend(replies={"HELO": b"501 5.5.2 Syntax: HELO hostname\r\n"}),
        "backend BACKEND refused HELO: 501 5.5.2 Syntax: HELO hostname", helo="HELO x"),
    "never greets": failing(
        lambda: FakeBackend(greeting=None),
        "backend BACKEND: timeout during the hand-off of EP",
        r"backend BACKEND: timeout during the hand-off of \[127\.0\.0\.1\]:\d+",
        extra={"mxscreen_backend_timeout": "1s"}, secs=(0.9, 4)),
    "slow overall": failing(
        lambda: FakeBackend(greeting_delay=0.7, reply_delay=0.7),
        "backend BACKEND: timeout during the hand-off of EP",
        extra={"mxscreen_backend_timeout": "1s", "mxscreen_backend_connect_timeout": "1s"},
        secs=(1.8, 4)),
    "silent at MAIL": failing(
        lambda: FakeBackend(replies={"MAIL": b""}),
        "backend BACKEND: timeout during the hand-off of EP",
        extra={"mxscreen_backend_timeout": "1s"}, secs=(0.9, 4)),
    "closes at RCPT": failing(
        lambda: FakeBackend(replies={"RCPT": None}),
        "backend BACKEND closed the connection during the hand-off"),
    "closes after greeting": failing(
        lambda: FakeBackend(close_after_greeting=True),
        "backend BACKEND closed the connection during the hand-off",
        r"backend BACKEND closed the connection during the hand-off"),
    "malformed greeting": failing(
        lambda: FakeBackend(greeting=b"hello there\r\n"),
        "backend BACKEND: malformed reply: hello there",
        r"backend BACKEND: malformed reply: hello there"),
    "malformed MAIL reply": failing(
        lambda: FakeBackend(replies={"MAIL": b"250-2.1.0 Ok\r\nthen garbage\r\n"}),
        "backend BACKEND: malformed reply: then garbage"),
    "connect timeout": failing(
        FullBacklog, "cannot connect to service BACKEND: Connection timed out",
        r"cannot connect to service BACKEND: Connection timed out",
        extra={"mxscreen_backend_connect_timeout": "1s"}, secs=(0.8, 4)),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_failing_backend_falls_back_to_450(workdir, case):
    """A backend that cannot take the replay: a warning says why, the
    client gets postscreen's 450 and its session goes on with the engine;
    it passed all the same.  A probe that fails warns once."""
    f = FAILING[case]
    fb = f["make"]()
    try:
        backend = fb.addr
        with mxscreen(workdir, params_for("proxy", backend, **f["extra"]), learn=False) as mx:
            if f["probe"]:
                probe = mx.wait_for_log(r"warning: cannot learn the EHLO keywords of .*$").group(0)
            else:
                mx.wait_for_log(r"backend \S+ offers EHLO keywords: ")
            c = greet(mx, new_ip())
            helo = f["helo"]
            # With or without the probe's answer, this backend offers
            # what postscreen's EHLO does.
            assert c.cmd(helo) == (EHLO if helo.startswith("EHLO") else b"250 mxscreen.test\r\n")
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            t0 = time.time()
            assert c.cmd("RCPT TO:<c@d>") == R450
            assert f["secs"][0] <= time.time() - t0 < f["secs"][1]
            assert c.cmd("NOOP") == OK  # still the engine
            assert c.cmd("QUIT") == BYE
            assert c.rest() == b""
            cause = "warning: " + f["why"].replace("BACKEND", backend).replace("EP", c.ep)
            mine = [cause] if c.ep in cause else []
            proto = "ESMTP" if helo.startswith("EHLO") else "SMTP"
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}", *mine,
                          *fallback_lines(c, backend), noqueue(c, R450, proto=proto),
                          f"DISCONNECT {c.ep}"])
            lines = mx.log_lines()
            i = lines.index(fallback_lines(c, backend)[0])
            assert lines[i - 1] == cause
            assert len([l for l in lines if "cannot learn the EHLO keywords" in l]) == \
                (1 if f["probe"] else 0)
            # Passed: the next connection goes to the backend at connect.
            time.sleep(0.1)
            c2 = Client(mx, c.ip)
            time.sleep(0.3)
            assert c2.log()[:2] == [connect_line(c2), f"PASS OLD {c2.ep}"]
            if f["probe"]:
                probe_re = f["probe"].replace("BACKEND", re.escape(backend))
                assert re.fullmatch(rf"warning: cannot learn the EHLO keywords of backend "
                                    rf"{re.escape(backend)}: {probe_re} \(asking again every "
                                    r"30s\)", probe), probe
    finally:
        fb.close()


def test_client_leaving_during_the_replay(workdir):
    """A client that hangs up right after its RCPT, while the backend is
    still slow to greet: the replay completes, the joined connection ends
    at once, the backend's connection is closed, and mxscreen goes on."""
    with FakeBackend(greeting_delay=0.5) as fb:
        with mxscreen(workdir, params_for("proxy", fb.addr)) as mx:
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == EHLO
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            c.send(b"RCPT TO:<c@d>\r\n")
            c.close()
            conn = fb.wait_conn(c.ip)
            assert conn.closed.wait(5)
            assert conn.commands == ["EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>"]
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          replay_line(c, fb.addr, "250 2.1.5 Ok")])
            c = greet(mx, new_ip())
            assert c.cmd("QUIT") == BYE
            assert mx.alive()


# ---- what the client may use: the backend's EHLO keywords -----------------


@pytest.mark.parametrize("offered,extra,learned,promised", [
    (["SIZE 1000000", "8BITMIME"], {}, "SIZE 8BITMIME (SIZE 1000000)",
     ["SIZE 1000000", "8BITMIME"]),
    (["PIPELINING", "SIZE 1000000", "8BITMIME"], {"message_size_limit": "500000"},
     "SIZE 8BITMIME PIPELINING (SIZE 1000000)", ["SIZE 500000", "8BITMIME"]),
    (["SIZE", "DSN", "PIPELINING", "XCLIENT NAME ADDR"], {}, "SIZE DSN PIPELINING XCLIENT",
     ["SIZE 10240000", "DSN"]),
    (["PIPELINING", "AUTH PLAIN", "STARTTLS"], {}, "STARTTLS AUTH PIPELINING", []),
    (["PIPELINING", "SIZE 20000000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
      "SMTPUTF8", "CHUNKING"], {},
     "SIZE VRFY ETRN ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING PIPELINING "
     "(SIZE 20000000)", KEYWORDS),
], ids=["size and 8bitmime", "smaller own limit", "size without limit", "none", "postfix"])
def test_ehlo_offers_only_what_the_backend_offers(workdir, offered, extra, learned, promised):
    """Once the probe has learned the backend's keywords, mxscreen's EHLO
    offers those of SIZE, VRFY, ETRN, ENHANCEDSTATUSCODES, 8BITMIME, DSN,
    SMTPUTF8, CHUNKING the backend offers too (never PIPELINING), with
    the smaller SIZE."""
    with FakeBackend(ehlo=backend_ehlo(offered)) as fb:
        with mxscreen(workdir, params_for("proxy", fb.addr, **extra), learn=False) as mx:
            mx.wait_for_log(rf"backend {re.escape(fb.addr)} offers EHLO keywords: "
                            rf"{re.escape(learned)}$")
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(promised)
            assert c.cmd("QUIT") == BYE
            # The probe is mxscreen's own connection, with its own EHLO.
            probe = fb.conns[0]
            assert probe.closed.wait(5)
            assert probe.proxy["src"] == "127.0.0.1"
            assert probe.commands == ["EHLO mxscreen.test", "QUIT"]


def test_reconnect_mode_offers_postscreens_keywords(workdir):
    """In reconnect mode the backend is not asked; EHLO is postscreen's."""
    with FakeBackend(ehlo=backend_ehlo(["SIZE 1000000"])) as fb:
        params = params_for("proxy", fb.addr, mxscreen_deep_test_handoff="reconnect")
        with mxscreen(workdir, params, learn=False) as mx:
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == EHLO
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == R450
            assert c.cmd("QUIT") == BYE
            time.sleep(0.2)
            assert fb.conns == []
            assert "EHLO keywords" not in mx.log_text()


def test_probe_asks_again_until_the_backend_answers(workdir):
    """A failing probe warns once and asks again (here every second, the
    probe interval); when the backend answers, that is logged and the next
    EHLO offers what it learned.  Later probes notice changes."""
    port = free_port()
    backend = f"127.0.0.1:{port}"
    params = params_for("proxy", backend, mxscreen_backend_probe_interval="1s")
    with mxscreen(workdir, params, learn=False) as mx:
        mx.wait_for_log(r"cannot learn the EHLO keywords")
        time.sleep(1.5)  # at least one more failed probe: no second warning
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == EHLO
        offers = [["SIZE 1000000", "8BITMIME"], ["SIZE 1000000", "8BITMIME", "DSN"]]
        with FakeBackend(port=port, ehlo=lambda n: backend_ehlo(offers[min(n, 2) - 1])) as fb:
            mx.wait_for_log(rf"backend {re.escape(backend)} offers EHLO keywords: "
                            r"SIZE 8BITMIME \(SIZE 1000000\)$", timeout=5)
            mx.wait_for_log(rf"backend {re.escape(backend)} answers EHLO again$")
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(offers[0])
            mx.wait_for_log(rf"backend {re.escape(backend)} offers EHLO keywords: "
                            r"SIZE 8BITMIME DSN \(SIZE 1000000\)$", timeout=5)
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(offers[1])
            assert all(conn.proxy["src"] == "127.0.0.1" for conn in fb.conns)
        lines = mx.log_lines()
        warned = [l for l in lines if "cannot learn the EHLO keywords" in l]
        assert len(warned) == 1, lines
        # The warning tells when the probe asks again: every second here.
        assert warned[0] == (f"warning: cannot learn the EHLO keywords of backend {backend}: "
                             f"cannot connect to service {backend}: Connection refused "
                             "(asking again every 1s)")


LIMITED = ["SIZE 1000000", "8BITMIME"]

# id: (HELO or EHLO line or None, MAIL line, RCPT line, the keywords the
# backend lacks (None: replayed))
PARAMETERS = {
    "plain": ("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", None),
    "offered parameters": ("EHLO x", "MAIL FROM:<a@b> SIZE=500 BODY=8BITMIME", "RCPT TO:<c@d>",
                           None),
    "body 7bit": ("EHLO x", "MAIL FROM:<a@b> BODY=7BIT", "RCPT TO:<c@d>", None),
    "lower case": ("EHLO x", "mail from:<a@b> size=500", "rcpt to:<c@d>", None),
    "smtputf8": ("EHLO x", "MAIL FROM:<a@b> SMTPUTF8", "RCPT TO:<c@d>", "SMTPUTF8"),
    "dsn in mail": ("EHLO x", "MAIL FROM:<a@b> RET=HDRS ENVID=x1", "RCPT TO:<c@d>", "DSN"),
    "dsn in rcpt": ("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d> NOTIFY=NEVER", "DSN"),
    "orcpt": ("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d> ORCPT=rfc822;c@d", "DSN"),
    "two missing": ("EHLO x", "MAIL FROM:<a@b> SMTPUTF8 ENVID=x", "RCPT TO:<c@d>",
                    "DSN SMTPUTF8"),
    "quoted space": ("EHLO x", 'MAIL FROM:<"a b"@c> SIZE=5', "RCPT TO:<c@d>", None),
    "helo": ("HELO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", None),
    "helo and size": ("HELO x", "MAIL FROM:<a@b> SIZE=500", "RCPT TO:<c@d>", "SIZE"),
    "helo and 8bitmime": ("HELO x", "MAIL FROM:<a@b> BODY=8BITMIME", "RCPT TO:<c@d>",
                          "8BITMIME"),
    "no helo": (None, "MAIL FROM:<a@b>", "RCPT TO:<c@d>", None),
}


@pytest.fixture(scope="module")
def limited():
    """A fake backend offering SIZE 1000000 and 8BITMIME only, and an
    mxscreen in front that has learned that."""
    d = tempfile.mkdtemp(prefix="mxs-replay-", dir="/tmp")
    os.chmod(d, 0o755)
    with FakeBackend(ehlo=backend_ehlo(LIMITED)) as fb:
        with mxscreen(d, params_for("proxy", fb.addr)) as mx:
            yield fb, mx


@pytest.mark.parametrize("case", list(PARAMETERS))
def test_parameters_need_the_backends_keywords(limited, case):
    """The client's MAIL and RCPT lines are replayed as sent, unless they use
    a keyword the backend did not offer in its reply to the replayed EHLO
    (or the client said HELO): then postscreen's 450."""
    fb, mx = limited
    helo, mail, rcpt, missing = PARAMETERS[case]
    c = greet(mx, new_ip())
    if helo:
        assert c.cmd(helo) == (ehlo(LIMITED) if helo.startswith("EHLO")
                               else b"250 mxscreen.test\r\n")
    assert c.cmd(mail) == MAIL_OK
    reply = c.cmd(rcpt)
    conn = fb.wait_conn(c.ip)
    if missing is None:
        assert reply == RCPT_OK
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        conn.closed.wait(5)
        assert conn.commands == ([helo] if helo else []) + [mail, rcpt, "QUIT"]
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                      replay_line(c, fb.addr, "250 2.1.5 Ok")])
    else:
        assert reply == R450
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        assert conn.closed.wait(5)
        assert conn.commands == [helo]  # no MAIL for a backend that cannot take it
        helo_arg = helo.split()[1]
        proto = "ESMTP" if helo.startswith("EHLO") else "SMTP"
        sender = re.search(r"<(.*?)>", mail).group(1)
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                      f"warning: backend {fb.addr} does not offer {missing}, which {c.ep} uses",
                      *fallback_lines(c, fb.addr),
                      noqueue(c, R450, sender=sender, rcpt="c@d", helo=helo_arg, proto=proto),
                      f"DISCONNECT {c.ep}"])
    # A truthful PROXY v2 header, without TLS.
    assert (conn.proxy["version"], conn.proxy["sport"], conn.proxy["dst"], conn.proxy["dport"],
            conn.proxy["tlvs"]) == (2, c.port, "127.0.0.1", mx.port, [])


def test_the_last_helo_and_mail_are_replayed(limited):
    """The backend hears the client's last HELO/EHLO and its MAIL after the
    last reset, not what came before."""
    fb, mx = limited
    c = greet(mx, new_ip())
    assert c.cmd("EHLO first") == ehlo(LIMITED)
    assert c.cmd("MAIL FROM:<old@b>") == MAIL_OK
    assert c.cmd("RSET") == OK
    assert c.cmd("MAIL FROM:<older@b>") == MAIL_OK
    assert c.cmd("HELO second") == b"250 mxscreen.test\r\n"
    assert c.cmd("RCPT TO:<c@d>") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert c.cmd("MAIL FROM:<new@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    conn = fb.wait_conn(c.ip)
    assert conn.closed.wait(5)
    assert conn.commands == ["HELO second", "MAIL FROM:<new@b>", "RCPT TO:<c@d>", "QUIT"]
    c.expect_log([connect_line(c), f"PASS NEW {c.ep}", replay_line(c, fb.addr, "250 2.1.5 Ok")])


def test_no_helo_and_a_parameter_needs_the_keyword_too(limited):
    """A client that sent no EHLO at all has been offered nothing: its
    SMTPUTF8 parameter is a keyword the backend never offered to it, as
    after HELO, so postscreen's 450 (not a replay)."""
    fb, mx = limited
    c = greet(mx, new_ip())
    assert c.cmd("MAIL FROM:<a@b> SMTPUTF8") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                  f"warning: backend {fb.addr} does not offer SMTPUTF8, which {c.ep} uses",
                  *fallback_lines(c, fb.addr), noqueue(c, R450, helo="", proto="SMTP"),
                  f"DISCONNECT {c.ep}"])


@pytest.mark.parametrize("reply", [
    b"452 4.2.2 <full@d>: Mailbox full\r\n",
    b"550-5.1.1 <full@d>: no such user\r\n550-5.1.1 try another\r\n550 5.1.1 one more line\r\n",
], ids=["452", "multi-line 550"])
def test_backend_rcpt_reply_is_given_verbatim(limited, reply):
    """Whatever the backend answers the replayed RCPT is the client's reply,
    byte for byte; the next RCPT goes to the backend directly."""
    fb, mx = limited
    fb.replies["RCPT TO:<full@d>"] = reply
    try:
        c = greet(mx, new_ip())
        assert c.cmd("EHLO x") == ehlo(LIMITED)
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<full@d>") == reply
        assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        conn = fb.wait_conn(c.ip)
        conn.closed.wait(5)
        assert conn.commands == ["EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<full@d>",
                                 "RCPT TO:<c@d>", "QUIT"]
        first = reply.split(b"\r\n")[0].decode()
        c.expect_log([connect_line(c), f"PASS NEW {c.ep}", replay_line(c, fb.addr, first)])
    finally:
        del fb.replies["RCPT TO:<full@d>"]


def test_replay_checks_its_own_ehlo_reply_but_the_probe_keeps_the_list(workdir):
    """A backend may tailor its EHLO reply to the client: the replay checks
    the client against the reply it got, while the list mxscreen offers
    stays the probe's (no change logged)."""
    probe = ["SIZE 1000000", "8BITMIME", "DSN"]
    tailored = ["SIZE 1000000", "8BITMIME"]
    with FakeBackend(ehlo=lambda n: backend_ehlo(probe if n == 1 else tailored)) as fb:
        with mxscreen(workdir, params_for("proxy", fb.addr)) as mx:
            mx.wait_for_log(r"offers EHLO keywords: SIZE 8BITMIME DSN \(SIZE 1000000\)$")
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(probe)
            assert c.cmd("MAIL FROM:<a@b> RET=HDRS") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == R450
            assert c.cmd("QUIT") == BYE
            c.rest()
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          f"warning: backend {fb.addr} does not offer DSN, which {c.ep} uses",
                          *fallback_lines(c, fb.addr),
                          noqueue(c, R450), f"DISCONNECT {c.ep}"])
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(probe)
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
            assert c.cmd("QUIT") == BYE
            c.rest()
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          replay_line(c, fb.addr, "250 2.1.5 Ok")])
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(probe)
            assert c.cmd("QUIT") == BYE
            assert len([l for l in mx.log_lines() if "offers EHLO keywords" in l]) == 1


def test_replay_ehlo_reply_serves_until_a_probe_answers(workdir):
    """While no probe has answered, the EHLO reply a replay got is the list
    mxscreen offers from then on."""
    learned = ["SIZE 1000000", "8BITMIME"]
    fails = b"421 4.3.2 fake.test busy\r\n"
    with FakeBackend(ehlo=lambda n: fails if n == 1 else backend_ehlo(learned)) as fb:
        with mxscreen(workdir, params_for("proxy", fb.addr), learn=False) as mx:
            mx.wait_for_log(r"warning: cannot learn the EHLO keywords of backend")
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == EHLO  # postscreen's list: nothing learned
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
            assert c.cmd("QUIT") == BYE
            c.rest()
            mx.wait_for_log(rf"backend {re.escape(fb.addr)} offers EHLO keywords: "
                            r"SIZE 8BITMIME \(SIZE 1000000\)$")
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          replay_line(c, fb.addr, "250 2.1.5 Ok")])
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(learned)
            assert c.cmd("QUIT") == BYE


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_tls_client_replayed_with_ssl_tlv(workdir, tls, version):
    """After STARTTLS the backend hears the replay in plaintext; the PROXY
    v2 header says how the client is encrypted (PP2_TYPE_SSL: client SSL,
    verify 1, version and cipher).  v1 has no room for that."""
    with FakeBackend() as fb:
        params = params_for("proxy", fb.addr, mxscreen_proxy_protocol=version, **tls)
        with mxscreen(workdir, params) as mx:
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(tls=True)
            tsock = starttls(c)
            assert c.cmd("EHLO y") == EHLO
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
            assert c.cmd("DATA") == R354
            assert c.cmd("Subject: x\r\n\r\nbody\r\n.") == b"250 2.0.0 Ok: queued as FAKE1\r\n"
            assert c.cmd("QUIT") == BYE
            conn = fb.wait_conn(c.ip)
            conn.closed.wait(5)
            assert conn.commands == ["EHLO y", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA",
                                     "QUIT"]
            assert conn.data == [b"Subject: x\r\n\r\nbody\r\n"]
            assert (conn.proxy["version"], conn.proxy["sport"], conn.proxy["dport"]) == \
                (int(version[1]), c.port, mx.port)
            if version == "v2":
                assert [t for t, _ in conn.proxy["tlvs"]] == [0x20]
                client, verify, sub = parse_ssl_tlv(conn.proxy["tlvs"][0][1])
                assert (client, verify) == (0x01, 1)
                assert sub[0x21].startswith(b"TLSv1.") and sub[0x21] == tsock.version().encode()
                assert sub[0x23] and sub[0x23] == tsock.cipher()[0].encode()
                assert sorted(sub) == [0x21, 0x23]
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          replay_line(c, fb.addr, "250 2.1.5 Ok")])
            no_warnings(mx)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_backend_on_a_unix_socket(workdir, version):
    """A PROXY backend on a UNIX socket: the probe, which has no TCP
    endpoints of its own, sends a header without addresses (v2 LOCAL, v1
    UNKNOWN); a replay sends the client's."""
    path = os.path.join(workdir, "backend.sock")
    with FakeBackend(unix=path, ehlo=backend_ehlo(LIMITED)) as fb:
        params = params_for("proxy", path, mxscreen_proxy_protocol=version)
        with mxscreen(workdir, params) as mx:
            probe = fb.conns[0]
            assert probe.closed.wait(5)
            assert probe.proxy["raw"] == (b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
                                          if version == "v2" else b"PROXY UNKNOWN\r\n")
            assert probe.commands == ["EHLO mxscreen.test", "QUIT"]
            c = greet(mx, new_ip())
            assert c.cmd("EHLO x") == ehlo(LIMITED)
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == RCPT_OK
            assert c.cmd("QUIT") == BYE
            assert c.rest() == b""
            conn = fb.wait_conn(c.ip)
            assert (conn.proxy["version"], conn.proxy["sport"], conn.proxy["dst"],
                    conn.proxy["dport"]) == (int(version[1]), c.port, "127.0.0.1", mx.port)
            c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                          replay_line(c, path, "250 2.1.5 Ok")])
            no_warnings(mx)


# ---- bots are still caught --------------------------------------------------


# id: (what the client sends after the greeting, one write per element,
# with the replies it expects; the log line of the failed test)
BOTS = {
    "ehlo and mail together": (
        [(b"EHLO x\r\nMAIL FROM:<a@b>\r\n", [EHLO, MAIL_OK]),
         (b"RCPT TO:<c@d>\r\n", [R550_PROTO])],
        "COMMAND PIPELINING from EP after EHLO: MAIL FROM:<a@b>\\r\\n"),
    "mail and rcpt together": (
        [(b"EHLO x\r\n", [EHLO]),
         (b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", [MAIL_OK, R550_PROTO])],
        "COMMAND PIPELINING from EP after MAIL: RCPT TO:<c@d>\\r\\n"),
    "rcpt and data together": (
        [(b"EHLO x\r\n", [EHLO]), (b"MAIL FROM:<a@b>\r\n", [MAIL_OK]),
         (b"RCPT TO:<c@d>\r\nDATA\r\n", [R550_PROTO])],
        "COMMAND PIPELINING from EP after RCPT: DATA\\r\\n"),
    "bare newline": (
        [(b"EHLO x\n", [EHLO]), (b"MAIL FROM:<a@b>\r\n", [MAIL_OK]),
         (b"RCPT TO:<c@d>\r\n", [R550_PROTO])],
        "BARE NEWLINE from EP after EHLO x"),
}


@pytest.fixture(scope="module")
def full():
    """A fake backend like Postfix, and an mxscreen in front (bare newline
    enforced)."""
    d = tempfile.mkdtemp(prefix="mxs-replay-", dir="/tmp")
    os.chmod(d, 0o755)
    with FakeBackend() as fb:
        with mxscreen(d, params_for("proxy", fb.addr,
                                    postscreen_bare_newline_action="enforce")) as mx:
            yield fb, mx


@pytest.mark.parametrize("case", list(BOTS))
def test_bots_are_not_replayed(full, case):
    """A client that fails a deep test is never replayed: 550 at RCPT, and
    the backend hears of it not at all."""
    fb, mx = full
    steps, failure = BOTS[case]
    c = greet(mx, new_ip())
    for data, replies in steps:
        c.send(data)
        for r in replies:
            assert c.reply() == r
    c.close()
    time.sleep(0.2)
    log = c.log()
    assert log[:3] == [connect_line(c), failure.replace("EP", c.ep), noqueue(c, R550_PROTO)], log
    assert not any(l.startswith(("PASS", "REPLAY")) for l in log), log
    assert fb.client_conns(c.ip) == []
    assert [conn.proxy["src"] for conn in fb.conns] == ["127.0.0.1"]  # the probe only


@pytest.mark.parametrize("bot", [False, True], ids=["patient", "pregreet"])
def test_pregreet_test_before_the_replay(workdir, bot):
    """With the pregreet test too: a patient client is replayed after the
    greeting wait, a client that talks first is not."""
    with FakeBackend() as fb:
        params = params_for("proxy", fb.addr, postscreen_greet_banner="$smtpd_banner",
                            postscreen_greet_wait="1s")
        with mxscreen(workdir, params) as mx:
            c = Client(mx, new_ip())
            if bot:
                c.send(b"EHLO x\r\n")
            t0 = time.time()
            assert c.reply() == b"220-mxscreen.test ESMTP\r\n" + GREETING
            # The wait ends early for a client that talked first.
            assert (0 if bot else 0.8) <= time.time() - t0 < 3
            if not bot:
                c.send(b"EHLO x\r\n")
            assert c.reply() == EHLO
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == (R450 if bot else RCPT_OK)
            assert c.cmd("QUIT") == BYE
            assert c.rest() == b""
            if bot:
                c.expect_log([connect_line(c), re.compile(
                              rf"PREGREET 8 after [0-9.]+ from {re.escape(c.ep)}: EHLO x\\r\\n"),
                              noqueue(c, R450), f"DISCONNECT {c.ep}"])
                assert fb.client_conns(c.ip) == []
            else:
                c.expect_log([connect_line(c), f"PASS NEW {c.ep}",
                              replay_line(c, fb.addr, "250 2.1.5 Ok")])
                assert fb.wait_conn(c.ip).commands[:3] == ["EHLO x", "MAIL FROM:<a@b>",
                                                           "RCPT TO:<c@d>"]


# ---- a real Postfix sends through mxscreen ---------------------------------


def test_postfix_relays_through_mxscreen_on_the_first_attempt(postfix, workdir):
    """Postfix's smtp client is a well-behaved new client: with all deep
    tests on, its message reaches the backend Postfix on the first try
    (status=sent, never deferred)."""
    backend = postfix_addr(postfix, "proxy")
    ip = new_ip()
    with mxscreen(workdir, params_for("proxy", backend)) as mx:
        with private_postfix("mxs-sender-", hostname="sender.test", main_cf_extra={
            "inet_protocols": "ipv4",
            "virtual_mailbox_domains": "",
            "relay_domains": "example.test",
            "transport_maps": f"inline:{{ example.test=smtp:[127.0.0.1]:{mx.port} }}",
            "smtp_bind_address": ip,
            "smtp_helo_name": "sender.test",
        }) as sender:
            tag = uuid.uuid4().hex
            since = postfix.log_offset()
            with smtplib.SMTP("127.0.0.1", sender.plain_port, timeout=15) as s:
                s.sendmail("a@sender.test", ["far@example.test"],
                           f"Subject: {tag}\r\n\r\nrelayed\r\n")
            msg = postfix.wait_for_message(tag, timeout=30)
            assert re.search(rf"^Received: from sender\.test \(unknown \[{re.escape(ip)}\]\)$",
                             msg, re.M), msg
            postfix.wait_for_log(rf"client=unknown\[{re.escape(ip)}\]$", since=since)
            m = sender.wait_for_log(r"to=<far@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                                    rf"{mx.port},.* status=(\w+)")
            assert m.group(1) == "sent", sender.log_text()[-3000:]
            assert "status=deferred" not in sender.log_text(), sender.log_text()[-3000:]
        lines = [l for l in mx.log_lines() if f"[{ip}]" in l]
        assert [re.sub(r":\d+", ":P", l) for l in lines] == [
            f"CONNECT from [{ip}]:P to [127.0.0.1]:P", f"PASS NEW [{ip}]:P",
            f"REPLAY [{ip}]:P to 127.0.0.1:P: RCPT 250 2.1.5 Ok"], lines
        no_warnings(mx)


# ---- TLS from mxscreen to the backend (mxscreen_backend_tls) -------------


@pytest.fixture(scope="module")
def tls_postfix(tlsdir):
    """A backend Postfix that offers STARTTLS and logs TLS sessions."""
    with private_postfix("mxs-pftls-", main_cf_extra={
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": os.path.join(tlsdir, "cert.pem"),
        "smtpd_tls_key_file": os.path.join(tlsdir, "key.pem"),
        "smtpd_tls_loglevel": "1",
    }) as pf:
        yield pf


@pytest.mark.parametrize("mode", ["proxy", "xclient"])
def test_backend_tls_carries_a_tls_client_to_postfix_under_tls(tls_postfix, workdir, tls, mode):
    """With mxscreen_backend_tls, a client that used TLS with mxscreen is
    replayed under TLS: Postfix logs a TLS session for the client's own
    address and stamps the message ESMTPS; a plaintext client stays plain."""
    backend = postfix_addr(tls_postfix, mode)
    with mxscreen(workdir, params_for(mode, backend, mxscreen_backend_tls="yes", **tls)) as mx:
        ip = new_ip()
        since = tls_postfix.log_offset()
        peer, msg = deliver(tls_postfix, mx, ip, mode, use_tls=True)
        assert re.search(r"^\s+by mx\.test \(Postfix\) with ESMTPS id ", msg, re.M), msg
        tls_postfix.wait_for_log(rf"Anonymous TLS connection established from "
                                 rf"unknown\[{re.escape(ip)}\]: TLSv1\.[23] ", since=since)
        peer.expect_log([connect_line(peer), f"PASS NEW {peer.ep}",
                         replay_line(peer, backend, "250 2.1.5 Ok")])
        # A client without TLS is replayed in plaintext, as it came.
        ip2 = new_ip()
        since = tls_postfix.log_offset()
        _, msg2 = deliver(tls_postfix, mx, ip2, mode)
        assert re.search(r"^\s+by mx\.test \(Postfix\) with ESMTP id ", msg2, re.M), msg2
        assert not re.search(rf"TLS connection established from unknown\[{re.escape(ip2)}\]",
                             tls_postfix.log_text()[since:])
        no_warnings(mx)


@pytest.mark.parametrize("size", [0, 300000], ids=["data", "large message"])
def test_backend_tls_relays_a_pipelined_message_whole(tls_postfix, workdir, tls, size):
    """Bytes pipelined after the replayed RCPT, a large message included,
    reach Postfix whole through the TLS-to-TLS relay."""
    backend = postfix_addr(tls_postfix, "proxy")
    p = params_for("proxy", backend, mxscreen_backend_tls="yes",
                   postscreen_pipelining_enable="no", **tls)
    with mxscreen(workdir, p) as mx:
        c = greet(mx, new_ip())
        assert c.cmd("EHLO client.example")[:4] == b"250-"
        starttls(c)
        assert c.cmd("EHLO client.example")[:4] == b"250-"
        assert c.cmd("MAIL FROM:<a@remote.example>") == MAIL_OK
        tag = uuid.uuid4().hex
        body = "".join(f"line {i} {'x' * 60}\r\n" for i in range(size // 70))
        c.send("RCPT TO:<big@example.test>\r\nDATA\r\n".encode())
        assert c.reply() == b"250 2.1.5 Ok\r\n"
        assert c.reply().startswith(b"354 ")
        c.send(f"Subject: {tag}\r\n\r\n{body}.\r\nQUIT\r\n".encode())
        assert c.reply(timeout=30).startswith(b"250 2.0.0 Ok: queued as ")
        assert c.reply() == b"221 2.0.0 Bye\r\n"
        msg = tls_postfix.wait_for_message(tag, timeout=30)
        assert body.replace("\r\n", "\n") in msg.replace("\r\n", "\n")
        assert re.search(r"with ESMTPS id ", msg), msg[:600]
        no_warnings(mx)


@pytest.mark.parametrize("case", ["no STARTTLS", "STARTTLS refused"])
def test_backend_tls_unavailable_falls_back_to_450(workdir, tls, case):
    """A backend that cannot take TLS when mxscreen_backend_tls asks for it:
    the TLS client is not replayed in plaintext behind its back; it gets
    the 450 and a warning says why."""
    if case == "no STARTTLS":
        fb = FakeBackend()
        why = (f"warning: backend {{b}} does not offer STARTTLS (mxscreen_backend_tls) "
               "for {ep}")
    else:
        fb = FakeBackend(ehlo=backend_ehlo(["SIZE 10240000", "8BITMIME", "STARTTLS"]),
                         replies={"STARTTLS": b"454 4.7.0 TLS not available\r\n"})
        why = "warning: backend {b} refused STARTTLS: 454 4.7.0 TLS not available"
    with fb:
        p = params_for("proxy", fb.addr, mxscreen_backend_tls="yes", **tls)
        with mxscreen(workdir, p) as mx:
            c = greet(mx, new_ip())
            assert c.cmd("EHLO client.example")[:4] == b"250-"
            starttls(c)
            assert c.cmd("EHLO client.example")[:4] == b"250-"
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            assert c.cmd("RCPT TO:<c@d>") == R450
            assert c.cmd("QUIT") == BYE
            lines = mx.log_lines()
            cause = why.format(b=fb.addr, ep=c.ep)
            assert cause in lines, lines
            assert fallback_lines(c, fb.addr)[0] in lines
            # The backend never heard MAIL.
            assert not any(cmd.startswith("MAIL") for conn in fb.conns for cmd in conn.commands)


@pytest.mark.parametrize("helo", ["HELO client.example", None], ids=["HELO", "no HELO"])
def test_backend_tls_whatever_the_client_says_after_starttls(tls_postfix, workdir, tls, helo):
    """A TLS client that says HELO, or nothing, after STARTTLS is still
    replayed under TLS: mxscreen says its own EHLO to get STARTTLS, then
    replays the client's HELO (or none) under TLS."""
    backend = postfix_addr(tls_postfix, "proxy")
    with mxscreen(workdir, params_for("proxy", backend, mxscreen_backend_tls="yes", **tls)) as mx:
        ip = new_ip()
        since = tls_postfix.log_offset()
        c = greet(mx, ip)
        assert c.cmd("EHLO client.example")[:4] == b"250-"
        starttls(c)
        if helo:
            assert c.cmd(helo) == b"250 mxscreen.test\r\n"
        assert c.cmd("MAIL FROM:<a@remote.example>") == MAIL_OK
        assert c.cmd("RCPT TO:<someone@example.test>") == b"250 2.1.5 Ok\r\n"
        tag = uuid.uuid4().hex
        assert c.cmd("DATA").startswith(b"354 ")
        assert c.cmd(f"Subject: {tag}\r\n\r\nhello\r\n.").startswith(b"250 2.0.0 Ok: queued as ")
        assert c.cmd("QUIT") == BYE
        msg = tls_postfix.wait_for_message(tag)
        # Under TLS (Postfix keeps "ESMTP" from the EHLO before STARTTLS).
        assert re.search(r"^\s+by mx\.test \(Postfix\) with E?SMTPS id ", msg, re.M), msg
        log = tls_postfix.log_text()[since:]
        assert re.search(rf"Anonymous TLS connection established from unknown\[{re.escape(ip)}\]",
                         log), log
        # Postfix forgets the EHLO said before STARTTLS: it has the client's.
        name = "client.example" if helo else "unknown"
        assert re.search(rf"^Received: from {re.escape(name)} \(unknown \[{re.escape(ip)}\]\)$",
                         msg, re.M), msg
        no_warnings(mx)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_backend_reply_before_a_reset_reaches_the_client(workdir, tls, use_tls):
    """A backend that answers DATA and resets the connection while the
    client's message is still flowing to it: the client still reads that
    answer (the relay keeps reading a side it can no longer write to)."""
    with FakeBackend(replies={"DATA": ("RST", b"554 5.3.0 fake.test no thanks\r\n")}) as fb:
        p = params_for("proxy", fb.addr, postscreen_pipelining_enable="no", **tls)
        with mxscreen(workdir, p) as mx:
            c = greet(mx, new_ip())
            assert c.cmd("EHLO client.example")[:4] == b"250-"
            if use_tls:
                starttls(c)
                assert c.cmd("EHLO client.example")[:4] == b"250-"
            assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
            body = b"x" * 70 + b"\r\n"
            try:
                c.send(b"RCPT TO:<c@d>\r\nDATA\r\n" + body * 4000)
            except OSError:
                pass  # the reset may reach the client first: its reply must not
            assert c.reply() == b"250 2.1.5 Ok\r\n"
            assert c.reply() == b"554 5.3.0 fake.test no thanks\r\n"
