"""mxscreen_reuseport: several mxscreen processes on one port (SO_REUSEPORT),
sharing one LMDB allowlist, the kernel spreading the connections; without
it, a second process on a port in use stops with the address and the cause."""
import re
import time

from mxs import Mxscreen, pregreet_params, SilentBackend, assert_held, free_port, recv_line, run_mxscreen

TEASER = b"220-mxscreen.test ESMTP\r\n"


def params(workdir, backend, port, **kw):
    return pregreet_params(backend, mxscreen_listen=f"127.0.0.1:{port}",
                           postscreen_cache_map=f"lmdb:{workdir}/shared-cache", **kw)


def passed(a, b, how):
    """PASS NEW or PASS OLD lines of both processes together."""
    return sum(len(re.findall(rf"PASS {how} \[127\.0\.40\.\d+\]", mx.log_text())) for mx in (a, b))


def test_two_processes_share_a_port_and_the_allowlist(workdir):
    be = SilentBackend()
    port = free_port()
    p = params(workdir, be, port, mxscreen_reuseport="yes")
    try:
        with Mxscreen(workdir, p, name="a") as a, Mxscreen(workdir, p, name="b") as b:
            a.port = b.port = port
            # New clients: each is screened by whichever process the kernel
            # picked, and both processes get some.
            srcs = [f"127.0.40.{i}" for i in range(1, 41)]
            socks = []
            for src in srcs:
                s = a.connect(src=src)
                assert recv_line(s) == TEASER
                socks.append(s)
            deadline = time.time() + 10
            while time.time() < deadline and passed(a, b, "NEW") < len(srcs):
                time.sleep(0.05)
            assert passed(a, b, "NEW") == len(srcs)
            for s in socks:
                s.close()
            log_a, log_b = a.log_text(), b.log_text()
            assert "CONNECT from" in log_a and "CONNECT from" in log_b, (log_a, log_b)
            # Whichever process takes them now, the clients are known (one file).
            for src in srcs[:10]:
                s = a.connect(src=src)
                assert_held(s, 0.3)
                s.close()
            deadline = time.time() + 10
            while time.time() < deadline and passed(a, b, "OLD") < 10:
                time.sleep(0.05)
            assert passed(a, b, "OLD") == 10
    finally:
        be.close()


def test_without_reuseport_a_port_in_use_stops_the_second_process(workdir):
    be = SilentBackend()
    port = free_port()
    p = params(workdir, be, port)
    try:
        with Mxscreen(workdir, p, name="a"):
            second = Mxscreen(workdir, p, name="b")
            r = run_mxscreen(["-c", second.cf_path])
            assert r.returncode == 1
            assert f"listen 127.0.0.1:{port}: Address already in use" in r.stderr + \
                second.log_text()
    finally:
        be.close()
