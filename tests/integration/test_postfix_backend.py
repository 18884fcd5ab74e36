"""Self-test of postfix_backend.PostfixBackend (needs root and Debian's postfix).

Run: /usr/bin/python3 -m pytest tests/integration/test_postfix_backend.py
"""

from __future__ import annotations

import os
import smtplib
import socket
import struct
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_backend import PostfixBackend, _proc_starttime, free_port  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/sbin/postfix"),
    reason="needs root and an installed postfix")


# ----------------------------------------------------------------------
# helpers

class RawSMTP:
    """Minimal line-based SMTP client over a raw socket (lets us send a
    PROXY header or XCLIENT before/within the dialogue)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(10)
        self.buf = b""

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(4096)
                if not data:
                    raise ConnectionError(f"EOF after {lines!r} {self.buf!r}")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return int(lines[-1][:3]), "\n".join(lines)

    def cmd(self, line: str, expect: int) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        code, text = self.reply()
        assert code == expect, f"{line!r}: expected {expect}, got {text!r}"
        return text

    def send_mail(self, rcpt: str, body_marker: str) -> None:
        self.cmd("MAIL FROM:<sender@sender.test>", 250)
        self.cmd(f"RCPT TO:<{rcpt}>", 250)
        self.cmd("DATA", 354)
        self.sock.sendall(
            f"From: sender@sender.test\r\nTo: {rcpt}\r\n"
            f"Subject: {body_marker}\r\n\r\n{body_marker}\r\n.\r\n".encode())
        code, text = self.reply()
        assert code == 250, text
        self.cmd("QUIT", 221)


def marker() -> str:
    return "mark-" + uuid.uuid4().hex


def pass_connection(pass_socket: str, client: socket.socket, attrs: dict[str, str]) -> socket.socket:
    """Hand ``client`` to the ``smtpd pass`` service like postscreen does:
    LOCAL_SEND_FD (SCM_RIGHTS with one NUL byte) followed by attr_print0
    (name\\0value\\0 ... \\0).  Returns the IPC socket; smtpd closes it once
    it has taken over the connection."""
    ipc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ipc.connect(pass_socket)
    socket.send_fds(ipc, [b"\0"], [client.fileno()])
    payload = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in attrs.items())
    ipc.sendall(payload + b"\0")
    return ipc


# ----------------------------------------------------------------------
# fixture: one instance for the module; teardown proves it is fully gone

@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    backend = PostfixBackend(str(tmp_path_factory.mktemp("postfix")))
    try:
        t0 = time.monotonic()
        backend.start()
        print(f"\nstart took {time.monotonic() - t0:.2f}s: {backend!r}")
        yield backend
    finally:
        pids = {p: _proc_starttime(p) for p in backend.pids()}
        t0 = time.monotonic()
        backend.stop()
        print(f"\nstop took {time.monotonic() - t0:.2f}s")
        alive = [p for p, st in pids.items() if st is not None and _proc_starttime(p) == st]
        assert not alive, f"processes survived stop(): {alive}"


# ----------------------------------------------------------------------
# tests

def test_plain_delivery_from_127_0_0_5(pf):
    m = marker()
    with smtplib.SMTP(pf.host, pf.plain_port, timeout=10,
                      source_address=("127.0.0.5", 0)) as s:
        s.sendmail("sender@sender.test", ["someone@example.test"],
                   f"From: sender@sender.test\r\nTo: someone@example.test\r\n"
                   f"Subject: {m}\r\n\r\nbody {m}\r\n")
    msg = pf.wait_for_message(m)
    assert "Received: from " in msg and "[127.0.0.5]" in msg
    assert "Delivered-To: someone@example.test" in msg
    assert "Return-Path: <sender@sender.test>" in msg
    assert msg in pf.messages()
    pf.wait_for_log(r"postfix/plain/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.5\]")
    # arbitrary local part (the lambda form of wait_for_message)
    m2 = marker()
    with smtplib.SMTP(pf.host, pf.plain_port, timeout=10) as s:
        s.sendmail("", ["Weird.Local+Part@example.test"], f"Subject: {m2}\r\n\r\nx\r\n")
    pf.wait_for_message(lambda t: m2 in t and "X-Original-To: Weird.Local+Part@example.test" in t)


def test_other_domains_rejected(pf):
    with smtplib.SMTP(pf.host, pf.plain_port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("sender@sender.test")
        code, text = s.rcpt("someone@elsewhere.test")
        assert code == 554 and b"Relay access denied" in text, (code, text)


def test_proxy_v1(pf):
    m = marker()
    since = pf.log_offset()
    with socket.create_connection((pf.host, pf.proxy_port), timeout=10) as sock:
        sock.sendall(b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\n")
        c = RawSMTP(sock)
        code, banner = c.reply()
        assert code == 220, banner
        c.cmd("EHLO client.test", 250)
        c.send_mail("proxy-v1@example.test", m)
    pf.wait_for_log(r"postfix/proxy/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.9\]",
                    since=since)
    pf.wait_for_log(r"client=unknown\[127\.0\.0\.9\]", since=since)
    assert "[127.0.0.9]" in pf.wait_for_message(m)


def test_proxy_v2(pf):
    m = marker()
    since = pf.log_offset()
    addrs = socket.inet_aton("127.0.0.19") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40001, 25)
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs
    with socket.create_connection((pf.host, pf.proxy_port), timeout=10) as sock:
        sock.sendall(header)
        c = RawSMTP(sock)
        assert c.reply()[0] == 220
        c.cmd("EHLO client.test", 250)
        c.send_mail("proxy-v2@example.test", m)
    pf.wait_for_log(r"connect from unknown\[127\.0\.0\.19\]", since=since)
    pf.wait_for_message(m)


def test_xclient(pf):
    m = marker()
    since = pf.log_offset()
    with socket.create_connection((pf.host, pf.xclient_port), timeout=10) as sock:
        c = RawSMTP(sock)
        assert c.reply()[0] == 220
        ehlo = c.cmd("EHLO client.test", 250)
        assert "XCLIENT" in ehlo
        c.cmd("XCLIENT ADDR=127.0.0.10", 220)
        c.cmd("EHLO client.test", 250)
        c.send_mail("xclient@example.test", m)
    pf.wait_for_log(r"postfix/xclient/smtpd\[\d+\]: \w+: client=\S*\[127\.0\.0\.10\]",
                    since=since)
    assert "[127.0.0.10]" in pf.wait_for_message(m)


def test_plain_port_refuses_xclient(pf):
    with smtplib.SMTP(pf.host, pf.plain_port, timeout=10) as s:
        s.ehlo("client.test")
        assert not s.has_extn("xclient")


def test_pass_socket_handoff(pf):
    import stat
    assert pf.pass_socket == os.path.join(pf.queue_dir, "private", "smtpd")
    assert stat.S_ISSOCK(os.stat(pf.pass_socket).st_mode)
    # Hand over a connection the way postscreen does, claiming the client
    # is 127.0.0.11:40011.
    m = marker()
    since = pf.log_offset()
    # A real TCP connection; we pass its accepted (server) end.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    client = socket.create_connection(lsock.getsockname(), timeout=10)
    server_side, _ = lsock.accept()
    lsock.close()
    try:
        ipc = pass_connection(pf.pass_socket, server_side, {
            "client_address": "127.0.0.11", "client_port": "40011",
            "server_address": "127.0.0.1", "server_port": "25"})
        server_side.close()
        ipc.settimeout(10)
        assert ipc.recv(1) == b""  # smtpd closes the IPC channel
        ipc.close()
        c = RawSMTP(client)
        code, banner = c.reply()
        assert code == 220 and pf.hostname in banner, banner
        c.cmd("EHLO client.test", 250)
        c.send_mail("pass@example.test", m)
    finally:
        client.close()
    pf.wait_for_log(r"postfix/pass/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.11\]",
                    since=since)
    pf.wait_for_message(m)


def test_check_is_clean(pf):
    assert "warning" not in pf.check().lower()


def test_second_instance_coexists_and_stops_cleanly(tmp_path, pf):
    """Another instance at the same time (other basedir, other ports);
    stop() leaves no process behind and releases the ports."""
    other = PostfixBackend(str(tmp_path / "second"), hostname="mx2.test")
    try:
        other.start()
        ports = {other.plain_port, other.proxy_port, other.xclient_port}
        assert not ports & {pf.plain_port, pf.proxy_port, pf.xclient_port}
        assert other.pass_socket != pf.pass_socket
        with smtplib.SMTP(other.host, other.plain_port, timeout=10) as s:
            assert b"mx2.test" in s.ehlo("client.test")[1]
        pids = {p: _proc_starttime(p) for p in other.pids()}
        assert other.master_pid in pids and len(pids) > 1
    finally:
        t0 = time.monotonic()
        other.stop()
        took = time.monotonic() - t0
    alive = [p for p, st in pids.items() if _proc_starttime(p) == st]
    assert not alive, f"processes survived stop(): {alive}"
    assert other.master_pid is None and not other.running
    assert took < 10
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other.host, port), timeout=2).close()
    other.stop()  # idempotent
    # the first instance is unaffected
    assert pf.running


def test_free_port():
    p1, p2 = free_port(), free_port()
    assert p1 != p2 and 1024 <= p1 <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", p1))
