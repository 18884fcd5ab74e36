"""postscreen_upstream_proxy_protocol = haproxy: PROXY v1/v2 from a load balancer."""
import socket
import struct
import time
import uuid

import pytest

from mxs import Mxscreen, recv_all, recv_line

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_tcp4(src, dst, sport, dport, cmd=0x21, tlv=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlv
    return V2SIG + bytes([cmd, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def lb(postfix, workdir):
    with Mxscreen(workdir, {"postscreen_upstream_proxy_protocol": "haproxy",
                            "postscreen_upstream_proxy_timeout": "1s",
                            "mxscreen_backend": f"127.0.0.1:{postfix.proxy_port}",
                            "postscreen_access_list": "permit_mynetworks",
                            "mynetworks": "127.0.0.0/8 192.0.2.0/24"}) as mx:
        yield mx


def smtp_through(sock, tag):
    """A whole SMTP dialogue on an already-connected socket."""
    assert recv_line(sock).startswith(b"220 ")
    def cmd(line, code):
        sock.sendall(line + b"\r\n")
        while True:
            r = recv_line(sock)
            assert r[:3] == code, (line, r)
            if r[3:4] == b" ":
                return
    cmd(b"EHLO lb.example", b"250")
    cmd(b"MAIL FROM:<a@remote.example>", b"250")
    cmd(b"RCPT TO:<u@example.test>", b"250")
    cmd(b"DATA", b"354")
    cmd(f"Subject: {tag}\r\n\r\nthrough the lb\r\n.".encode(), b"250")
    cmd(b"QUIT", b"221")


def test_v1_header_gives_real_client(lb, postfix):
    c = lb.connect(src="127.0.0.80")
    c.sendall(b"PROXY TCP4 192.0.2.10 198.51.100.25 40001 25\r\n")
    tag = uuid.uuid4().hex
    smtp_through(c, tag)
    lb.wait_for_log(r"CONNECT from \[192\.0\.2\.10\]:40001 to \[198\.51\.100\.25\]:25")
    lb.wait_for_log(r"ALLOWLISTED \[192\.0\.2\.10\]:40001")
    postfix.wait_for_message(tag)
    postfix.wait_for_log(r"client=unknown\[192\.0\.2\.10\]")


def test_v2_header_with_tlv_gives_real_client(lb, postfix):
    c = lb.connect(src="127.0.0.81")
    # A TLV (type 0x04, NOOP) that must be skipped, and the header and the
    # first SMTP bytes in one segment would be read wrongly if over-consumed.
    c.sendall(v2_tcp4("192.0.2.11", "198.51.100.25", 40002, 25, tlv=b"\x04\x00\x02xx"))
    tag = uuid.uuid4().hex
    smtp_through(c, tag)
    lb.wait_for_log(r"CONNECT from \[192\.0\.2\.11\]:40002 to \[198\.51\.100\.25\]:25")
    postfix.wait_for_log(r"client=unknown\[192\.0\.2\.11\]")


def test_v2_local_uses_socket_endpoints(lb):
    c = lb.connect(src="127.0.0.82")
    c.sendall(V2SIG + bytes([0x20, 0x00]) + b"\x00\x00")
    assert recv_line(c).startswith(b"220 ")
    lb.wait_for_log(rf"CONNECT from \[127\.0\.0\.82\]:\d+ to \[127\.0\.0\.1\]:{lb.port}")
    c.close()


def test_header_split_across_segments(lb):
    c = lb.connect(src="127.0.0.83")
    c.sendall(b"PROXY TCP4 192.0.2.12 ")
    time.sleep(0.2)
    c.sendall(b"198.51.100.25 40003 25\r\n")
    assert recv_line(c).startswith(b"220 ")
    lb.wait_for_log(r"CONNECT from \[192\.0\.2\.12\]:40003")
    c.close()


@pytest.mark.parametrize("data,reason", [
    (b"GET / HTTP/1.0\r\n\r\n", r"bad or missing protocol header: GET / HTTP/1\.0\\r\\n\\r\\n"),
    (b"PROXY UNKNOWN\r\n", r"bad or missing protocol type: PROXY UNKNOWN\\r\\n"),
    (b"PROXY TCP4 192.0.2.1 nonsense 1 25\r\n", r"bad or missing server address"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n", r"bad or missing server port"),
    (b"PROXY TCP4 ::1 192.0.2.2 1 25\r\n", r"bad or missing client address"),
    (V2SIG + bytes([0x31, 0x11]) + b"\x00\x0c" + b"\x00" * 12, r"unrecognized protocol version"),
    (V2SIG + bytes([0x22, 0x11]) + b"\x00\x0c" + b"\x00" * 12, r"bad command in proxy header"),
    (V2SIG + bytes([0x21, 0x31]) + b"\x00\x0c" + b"\x00" * 12, r"unsupported network protocol"),
    (V2SIG + bytes([0x21, 0x11]) + b"\x00\x04" + b"\x00" * 4, r"short address field"),
    (b"X" * 200, r"missing protocol header terminator"),
])
def test_malformed_header_gets_421_and_no_connect(lb, data, reason):
    c = lb.connect(src="127.0.0.84")
    c.sendall(data)
    assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
    lb.wait_for_log(r"warning: haproxy read: " + reason)
    assert "CONNECT from" not in lb.log_text()


def test_silent_client_times_out(lb):
    c = lb.connect(src="127.0.0.85")
    t0 = time.time()
    assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
    assert 0.8 < time.time() - t0 < 4
    lb.wait_for_log(r"warning: haproxy read: time limit exceeded")


def test_trickling_client_cannot_extend_the_time_limit(lb):
    c = lb.connect(src="127.0.0.86")
    t0 = time.time()
    for ch in b"PROXY TCP4 ":
        try:
            c.sendall(bytes([ch]))
        except OSError:
            break
        time.sleep(0.15)
    assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
    assert time.time() - t0 < 3
    lb.wait_for_log(r"warning: haproxy read: time limit exceeded")


def test_half_header_then_close(lb):
    c = lb.connect(src="127.0.0.87")
    c.sendall(b"PROXY TCP4 192.0.2")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"421 4.3.2 No system resources\r\n"
    lb.wait_for_log(r"warning: haproxy read: EOF")
    assert lb.alive()
