"""STARTTLS in the SMTP engine (spec §1.8, §3.3): replies, log lines and TLS.

The certificate is made at test time with the openssl command.  mxscreen
reads it as root, before it drops privileges, so the key can stay 0600.
Settings as in test_engine.py (mynetworks = 127.0.0.1/32, smtpd_banner =
$myhostname ESMTP, myhostname = mxscreen.test); a source address per
dialogue.
"""
import contextlib
import os
import re
import socket
import ssl
import time

import pytest

from mxs import (BYE, Client, connect_line, greet, hangup_line, KEYWORDS, MAIL_OK, Mxscreen,
                 noqueue, OK, R450, R502, R550_PROTO, SilentBackend)
from tlsclient import READY, client_context, starttls

R530 = b"530 5.7.0 Must issue a STARTTLS command first\r\n"
R454 = b"454 4.7.0 TLS not available due to local problem\r\n"

BASE = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_banner": "$myhostname ESMTP",
    "postscreen_bare_newline_enable": "yes",  # a deep test, so that clients meet the engine
}


def ehlo_reply(starttls):
    words = list(KEYWORDS)
    if starttls:
        words.insert(words.index("ETRN") + 1, "STARTTLS")
    lines = ["mxscreen.test"] + words
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{k}\r\n".encode()
                    for i, k in enumerate(lines))


EHLO_TLS_OFFERED = ehlo_reply(True)
EHLO_PLAIN = ehlo_reply(False)

_ips = (f"127.1.{a}.{b}" for a in range(0, 256) for b in range(2, 255))


def greeted(mx, ip=None):
    """A new client that has read the engine's greeting."""
    return greet(mx, ip or new_ip())


def new_ip():
    return next(_ips)










@pytest.fixture(scope="module")
def backend():
    sb = SilentBackend()
    yield sb
    sb.close()


@pytest.fixture
def tls_params(tlsdir):
    return {"smtpd_tls_cert_file": os.path.join(tlsdir, "cert.pem"),
            "smtpd_tls_key_file": os.path.join(tlsdir, "key.pem")}


@contextlib.contextmanager
def mxscreen(workdir, backend, params):
    mx = Mxscreen(workdir, dict(BASE, mxscreen_backend=backend.addr, **params)).start()
    try:
        yield mx
    finally:
        Client.close_all(mx)
        mx.stop()


@pytest.fixture
def may(workdir, backend, tls_params):
    with mxscreen(workdir, backend, dict(tls_params, postscreen_tls_security_level="may")) as mx:
        yield mx


def test_starttls_dialogue(may):
    c = greeted(may)
    assert c.cmd("EHLO x") == EHLO_TLS_OFFERED
    tls = starttls(c)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert c.cmd("EHLO y") == EHLO_PLAIN  # no STARTTLS in TLS
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    assert c.cmd("STARTTLS") == b"554 5.5.1 Error: TLS already active\r\n"
    assert c.cmd("NOOP") == OK
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), noqueue(c, R450, helo="y"), f"PASS NEW {c.ep}",
                  f"DISCONNECT {c.ep}"])


def test_starttls_without_ehlo_and_state_reset(may):
    """STARTTLS needs no EHLO; TLS forgets HELO and MAIL (not the protocol)."""
    c = greeted(may)
    assert c.cmd("EHLO x") == EHLO_TLS_OFFERED
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    starttls(c)
    assert c.cmd("RCPT TO:<c@d>") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
    assert c.cmd("RCPT TO:<c@d>") == R450
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), noqueue(c, R450, helo=""), f"PASS NEW {c.ep}",
                  f"DISCONNECT {c.ep}"])

    c = greeted(may)
    starttls(c)
    assert c.cmd("HELO z") == b"250 mxscreen.test\r\n"
    assert c.cmd("QUIT") == BYE
    c.rest()
    c.expect_log([connect_line(c), f"DISCONNECT {c.ep}"])


def test_starttls_with_argument(may):
    c = greeted(may)
    assert c.cmd("STARTTLS now") == b"501 Syntax: EHLO hostname\r\n"  # sic, Postfix 3.7
    assert c.cmd("QUIT") == BYE
    c.rest()


def test_pipelining_test_under_tls(workdir, backend, tls_params):
    with mxscreen(workdir, backend, dict(tls_params, postscreen_tls_security_level="may",
                                         postscreen_pipelining_enable="yes")) as mx:
        c = greeted(mx)
        starttls(c)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")  # one TLS record
        assert c.reply() == EHLO_PLAIN
        assert c.reply() == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R550_PROTO
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c),
                      f"COMMAND PIPELINING from {c.ep} after EHLO: MAIL FROM:<a@b>\\r\\n",
                      noqueue(c, R550_PROTO), f"DISCONNECT {c.ep}"])


def test_plaintext_after_starttls_is_not_executed_in_tls(may):
    """Commands pipelined behind STARTTLS in plaintext must not be taken as
    sent under TLS (CVE-2011-0411-style injection)."""
    c = greeted(may)
    c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@x>\r\n")
    assert c.reply() == READY
    # Nothing more in plaintext.
    c.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c.sock.recv(1, socket.MSG_PEEK)
    c.sock = client_context().wrap_socket(c.sock)
    # Only the reply to what was sent under TLS.
    assert c.cmd("NOOP") == OK
    assert c.cmd("RCPT TO:<c@d>") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert c.cmd("QUIT") == BYE
    assert c.rest() == b""
    c.expect_log([connect_line(c), f"PASS NEW {c.ep}", f"DISCONNECT {c.ep}"])


def test_large_tls_record_is_read_completely(may):
    """Three long commands in one TLS record (more than mxscreen reads at
    once): all of them are answered without more input from the client."""
    c = greeted(may)
    starttls(c)
    c.send(b"".join(b"NOOP " + bytes([65 + i]) * 2000 + b"\r\n" for i in range(3)))
    for _ in range(3):
        assert c.reply(timeout=3) == OK
    assert c.cmd("QUIT") == BYE
    c.rest()


@pytest.mark.parametrize("params", [
    {"postscreen_tls_security_level": "encrypt"},
    {"postscreen_enforce_tls": "yes"},
    {"smtpd_tls_security_level": "encrypt"},
    {"postscreen_tls_security_level": "secure"},
], ids=["level encrypt", "legacy enforce_tls", "smtpd level", "secure"])
def test_mandatory_tls(workdir, backend, tls_params, params):
    with mxscreen(workdir, backend, dict(tls_params, **params)) as mx:
        if params.get("postscreen_tls_security_level") == "secure":
            mx.wait_for_log(r'warning: postscreen_tls_security_level: unsupported TLS level '
                            r'"secure", using "encrypt"')
        c = greeted(mx)
        assert c.cmd("NOOP") == OK
        assert c.cmd("HELO x") == b"250 mxscreen.test\r\n"
        assert c.cmd("EHLO x") == EHLO_TLS_OFFERED
        for cmd in ["MAIL FROM:<a@b>", "RCPT TO:<c@d>", "VRFY x", "ETRN x", "RSET", "DATA",
                    "BDAT 10"]:
            assert c.cmd(cmd) == R530, cmd
        # Unknown and disabled commands are not "known, enabled" commands.
        assert c.cmd("AUTH PLAIN") == R502
        assert c.cmd("bogus") == R502
        starttls(c)
        assert c.cmd("EHLO x") == EHLO_PLAIN
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R450
        assert c.cmd("QUIT") == BYE
        c.rest()
        c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])

        c = greeted(mx)
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""


@pytest.mark.parametrize("params,offered", [
    ({"postscreen_use_tls": "yes"}, True),
    ({"smtpd_use_tls": "yes"}, True),
    ({"smtpd_tls_security_level": "may"}, True),
    ({"postscreen_use_tls": "yes", "postscreen_tls_security_level": "none"}, False),
    ({"postscreen_enforce_tls": "yes", "postscreen_tls_security_level": "may"}, True),
    ({}, False),
], ids=["legacy use_tls", "smtpd_use_tls", "smtpd level may", "level none wins",
        "level may wins", "off"])
def test_opportunistic_tls_switches(workdir, backend, tls_params, params, offered):
    with mxscreen(workdir, backend, dict(tls_params, **params)) as mx:
        c = greeted(mx)
        assert c.cmd("EHLO x") == (EHLO_TLS_OFFERED if offered else EHLO_PLAIN)
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK  # TLS is not required
        if offered:
            starttls(c)
            assert c.cmd("NOOP") == OK
        else:
            assert c.cmd("STARTTLS") == b"502 5.5.1 Error: command not implemented\r\n"
        assert c.cmd("QUIT") == BYE
        c.rest()


def test_no_certificate_gives_454_and_plaintext_goes_on(workdir, backend):
    with mxscreen(workdir, backend, {"postscreen_tls_security_level": "may"}) as mx:
        assert any(l.startswith("warning: ") and "TLS" in l for l in mx.log_lines()), \
            mx.log_lines()
        c = greeted(mx)
        assert c.cmd("EHLO x") == EHLO_TLS_OFFERED
        assert c.cmd("STARTTLS") == R454
        assert c.cmd("NOOP") == OK
        assert c.cmd("MAIL FROM:<a@b>") == MAIL_OK
        assert c.cmd("RCPT TO:<c@d>") == R450
        assert c.cmd("QUIT") == BYE
        assert c.rest() == b""
        c.expect_log([connect_line(c), noqueue(c, R450), f"PASS NEW {c.ep}",
                      f"DISCONNECT {c.ep}"])


def test_unreadable_certificate_gives_454(workdir, backend, tlsdir):
    with mxscreen(workdir, backend, {"postscreen_tls_security_level": "may",
                                     "smtpd_tls_cert_file": os.path.join(tlsdir, "nonexistent.pem"),
                                     "smtpd_tls_key_file": os.path.join(tlsdir, "key.pem")}) as mx:
        c = greeted(mx)
        assert c.cmd("STARTTLS") == R454
        assert c.cmd("NOOP") == OK
        assert c.cmd("QUIT") == BYE
        c.rest()


def test_chain_files(workdir, backend, tlsdir):
    chain = os.path.join(workdir, "chain.pem")
    with open(chain, "w") as out:
        for f in ("key.pem", "cert.pem"):
            with open(os.path.join(tlsdir, f)) as inp:
                out.write(inp.read())
    os.chmod(chain, 0o600)
    with mxscreen(workdir, backend, {"postscreen_tls_security_level": "may",
                                     "smtpd_tls_chain_files": chain}) as mx:
        c = greeted(mx)
        tls = starttls(c)
        cert = tls.getpeercert(binary_form=True)
        assert cert
        assert c.cmd("NOOP") == OK
        assert c.cmd("QUIT") == BYE
        c.rest()


def test_garbage_instead_of_client_hello(may):
    c = greeted(may)
    assert c.cmd("STARTTLS") == READY
    c.send(b"this is not a TLS ClientHello\r\n" * 4)
    c.rest(timeout=5)  # closed (perhaps after a TLS alert)
    c.expect_log([connect_line(c),
                  re.compile(rf"warning: TLS handshake failed for {re.escape(c.ep)}: .+"),
                  hangup_line(c), f"DISCONNECT {c.ep}"])
    # The daemon goes on serving others, in TLS too.
    o = greeted(may)
    starttls(o)
    assert o.cmd("NOOP") == OK
    assert o.cmd("QUIT") == BYE
    assert may.alive()


def test_client_hangs_up_during_handshake(may):
    c = greeted(may)
    assert c.cmd("STARTTLS") == READY
    c.close()
    may.wait_for_log(rf"DISCONNECT {re.escape(c.ep)}")
    # A warning about the broken handshake may come first.
    lines = [l for l in c.log() if not l.startswith("warning: TLS handshake failed for ")]
    assert len(lines) == 3, c.log()
    assert lines[0] == connect_line(c)
    assert hangup_line(c).fullmatch(lines[1]), lines
    assert lines[2] == f"DISCONNECT {c.ep}"
    assert may.alive()


def test_tls_hangup_after_handshake(may):
    c = greeted(may)
    starttls(c)
    assert c.cmd("EHLO x") == EHLO_PLAIN
    c.sock.close()
    c.expect_log([connect_line(c), hangup_line(c), f"DISCONNECT {c.ep}"])


def test_protocol_floor(workdir, backend, tls_params):
    with mxscreen(workdir, backend, dict(tls_params, postscreen_tls_security_level="may",
                                         smtpd_tls_protocols=">=TLSv1.3")) as mx:
        c = greeted(mx)
        assert c.cmd("STARTTLS") == READY
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client_context(maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(c.sock)
        mx.wait_for_log(rf"warning: TLS handshake failed for {re.escape(c.ep)}: ")
        c.expect_log([connect_line(c),
                      re.compile(rf"warning: TLS handshake failed for {re.escape(c.ep)}: .+"),
                      hangup_line(c), f"DISCONNECT {c.ep}"])

        c = greeted(mx)
        tls = starttls(c)
        assert tls.version() == "TLSv1.3"
        assert c.cmd("QUIT") == BYE


def test_tls12_client_with_the_default_protocols(may):
    c = greeted(may)
    tls = starttls(c, client_context(maximum=ssl.TLSVersion.TLSv1_2))
    assert tls.version() == "TLSv1.2"
    assert c.cmd("NOOP") == OK
    assert c.cmd("QUIT") == BYE


def test_silent_client_after_starttls_is_timed_out(workdir, backend, tls_params):
    with mxscreen(workdir, backend, dict(tls_params, postscreen_tls_security_level="may",
                                         postscreen_command_time_limit="2s")) as mx:
        c = greeted(mx)
        assert c.cmd("STARTTLS") == READY
        t0 = time.time()
        assert c.rest(timeout=6) == b""
        assert 1.5 < time.time() - t0 < 4
        c.expect_log([connect_line(c),
                      re.compile(rf"warning: TLS handshake failed for {re.escape(c.ep)}: .+"),
                      hangup_line(c), f"DISCONNECT {c.ep}"])

        # Under TLS, the command time limit and its 421 as in plaintext.
        c = greeted(mx)
        starttls(c)
        t0 = time.time()
        assert c.rest(timeout=6) == b"421 4.4.2 mxscreen.test Error: timeout exceeded\r\n"
        assert 1.5 < time.time() - t0 < 4
        c.expect_log([connect_line(c), f"COMMAND TIME LIMIT from {c.ep} after STARTTLS",
                      f"DISCONNECT {c.ep}"])


def test_reload_keeps_the_key_it_can_no_longer_read(may):
    """At a reload mxscreen runs as mxscreen_user and cannot read the 0600
    key any more: STARTTLS keeps the context loaded at start-up, with a
    warning, instead of losing TLS."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mxscreen must start privileged and drop to nobody")
    import signal
    os.kill(may.proc.pid, signal.SIGHUP)
    may.wait_for_log(r"configuration reloaded")
    assert re.search(r"warning: reload: .*; STARTTLS keeps the certificate and key loaded "
                     r"before \(restart mxscreen to load new ones\)", may.log_text()), \
        may.log_text()
    c = greeted(may)
    assert c.cmd("EHLO x") == EHLO_TLS_OFFERED
    tls = starttls(c)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert c.cmd("QUIT") == BYE
    c.rest()
