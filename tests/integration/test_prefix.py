"""Prefix aggregation (mxscreen_cache_ipv4_prefix, mxscreen_cache_ipv6_prefix):
the allowlist and the per-client connection limit count a whole network as
one client, while every log line keeps the real address.  Off by default."""
import os
import re

from mxs import Mxscreen, SilentBackend, assert_held, pregreet_params, recv_line, run_mxscreen

TEASER = b"220-mxscreen.test ESMTP\r\n"


def params(backend, **kw):
    return pregreet_params(backend, **kw)


def pass_pregreet(mx, src, head=b""):
    """A patient client: the teaser, the wait, PASS NEW, handed off.  With
    HEAD (a PROXY header) SRC is the address the header gives."""
    s = mx.connect(src="127.0.0.1" if head else src)
    if head:
        s.sendall(head)
    assert recv_line(s) == TEASER
    mx.wait_for_log(rf"PASS NEW \[{re.escape(src)}\]:\d+$")
    s.close()


def comes_back(mx, src, head=b""):
    """Straight to the (silent) backend: no teaser, PASS OLD."""
    s = mx.connect(src="127.0.0.1" if head else src)
    if head:
        s.sendall(head)
    assert_held(s)
    s.close()
    mx.wait_for_log(rf"PASS OLD \[{re.escape(src)}\]:\d+$")


def test_ipv4_network_shares_the_allowlist(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be, mxscreen_cache_ipv4_prefix="24")) as mx:
            pass_pregreet(mx, "127.0.9.1")
            # Another address of the same /24 is known at once...
            comes_back(mx, "127.0.9.200")
            # ...one of another /24 is not.
            s = mx.connect(src="127.0.10.1")
            assert recv_line(s) == TEASER
            s.close()
            # Log lines name the real addresses, never the network.
            assert not any("/24" in l for l in mx.log_lines()), mx.log_text()
    finally:
        be.close()


def test_off_by_default_every_address_is_its_own_client(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be)) as mx:
            pass_pregreet(mx, "127.0.11.1")
            s = mx.connect(src="127.0.11.2")
            assert recv_line(s) == TEASER
            s.close()
    finally:
        be.close()


def test_ipv4_network_shares_the_connection_limit(workdir):
    be = SilentBackend()
    try:
        p = params(be, mxscreen_cache_ipv4_prefix="24", postscreen_greet_wait="5s",
                   postscreen_client_connection_count_limit="1")
        with Mxscreen(workdir, p) as mx:
            held = mx.connect(src="127.0.12.1")
            assert recv_line(held) == TEASER
            s = mx.connect(src="127.0.12.2")
            assert recv_line(s) == b"421 4.7.0 Error: too many connections\r\n"
            s.close()
            mx.wait_for_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.12\.2\]:\d+: too many "
                            r"connections$")
            # Another network is not counted with it.
            other = mx.connect(src="127.0.13.1")
            assert recv_line(other) == TEASER
            other.close()
            held.close()
    finally:
        be.close()


def v1(src):
    return f"PROXY TCP6 {src} 2001:db8::25 40000 25\r\n".encode()


def test_ipv6_network_shares_the_allowlist(workdir):
    """IPv6 clients come through a load balancer's PROXY header (loopback
    has one IPv6 address): a /64 is one client, a /48 neighbour is not."""
    be = SilentBackend()
    try:
        p = params(be, mxscreen_cache_ipv6_prefix="64",
                   postscreen_upstream_proxy_protocol="haproxy")
        with Mxscreen(workdir, p) as mx:
            pass_pregreet(mx, "2001:db8:1:2::10", head=v1("2001:db8:1:2::10"))
            comes_back(mx, "2001:db8:1:2:ffff::99", head=v1("2001:db8:1:2:ffff::99"))
            s = mx.connect()
            s.sendall(v1("2001:db8:1:3::10"))
            assert recv_line(s) == TEASER
            s.close()
            assert not any("/64" in l for l in mx.log_lines()), mx.log_text()
    finally:
        be.close()


def test_bad_prefix_stops_start_up(workdir):
    cf = os.path.join(workdir, "bad.cf")
    with open(cf, "w") as f:
        f.write("mxscreen_cache_ipv4_prefix = 33\n")
    r = run_mxscreen(["-c", cf, "-t"])
    assert r.returncode == 1
    assert re.search(r"bad\.cf, line 1: parameter mxscreen_cache_ipv4_prefix: .*33", r.stderr), \
        r.stderr
