"""Faults the daemon must survive.  Descriptors exhausted: accept() fails
with EMFILE, mxscreen pauses new connections for a second with one warning
(not one per attempt), and serves the waiting clients once descriptors are
free again; the clients it already held are not disturbed."""
import re
import time

from mxs import Mxscreen, SilentBackend, recv_line

TEASER = b"220-mxscreen.test ESMTP\r\n"


class LimitedMxscreen(Mxscreen):
    """mxscreen with at most NOFILE open descriptors (prlimit)."""

    def __init__(self, workdir, params, nofile):
        super().__init__(workdir, params)
        self.nofile = nofile

    def argv(self):
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] + super().argv()


def test_descriptors_exhausted_accept_pauses_once_and_recovers(workdir, count_fault):
    be = SilentBackend()
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "30s",
        "mxscreen_backend": be.addr,
    }
    try:
        with LimitedMxscreen(workdir, p, nofile=48) as mx:
            held = []
            # More clients than descriptors: the first ones are held in the
            # greet wait (each gets the teaser), the rest wait in the backlog.
            for i in range(60):
                held.append(mx.connect(src=f"127.0.70.{i + 1}"))
            mx.wait_for_log(r"warning: accept: Too many open files -- pausing new "
                            r"connections for 1s$", timeout=10)
            teased = 0
            for s in held:
                s.settimeout(0.2)
                try:
                    if s.recv(64) == TEASER:
                        teased += 1
                except OSError:
                    pass
            assert 20 <= teased < 60, teased
            time.sleep(2.5)  # several pauses: still one warning
            warnings = [l for l in mx.log_lines() if "Too many open files" in l]
            assert len(warnings) == 1, warnings
            # Descriptors come back: the held clients leave.
            for s in held:
                s.close()
            # A new client is served again, within a pause or two.
            t0 = time.time()
            s = mx.connect(src="127.0.71.1")
            assert recv_line(s, timeout=10) == TEASER
            assert time.time() - t0 < 5
            s.close()
            mx.wait_for_log(r"CONNECT from \[127\.0\.71\.1\]:\d+", timeout=5)
            assert "panic" not in mx.log_text() and not re.search(r"fatal:", mx.log_text())
    finally:
        be.close()


# ---- Faults of the neighbours: DNS, the backend, the allowlist's disk ------
#
# Each row breaks one neighbour and checks (1) the log line that says so,
# (2) what a new client gets meanwhile, and (3) that an allowlisted
# sender's mail keeps flowing through the backend wherever the design
# allows (everywhere but a backend that is itself down; there, it flows
# again as soon as the backend is back).

import os
import subprocess

import pytest

from conftest import RowCounter, report_line
from fakebackend import FakeBackend
from mxs import free_port, recv_all, recv_reply

ALLOWED_NET = "127.0.12.0/24"
NEW = "127.0.13.1"


def fault_params(workdir, dns_addr, backend_addr, **kw):
    table = os.path.join(workdir, "allow.cidr")
    with open(table, "w") as f:
        f.write(f"{ALLOWED_NET} permit\n")
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "1s",
        "postscreen_access_list": f"permit_mynetworks, cidr:{table}",
        "postscreen_dnsbl_sites": "bl.test",
        "postscreen_dnsbl_threshold": "1",
        "postscreen_dnsbl_action": "enforce",
        "postscreen_dnsbl_timeout": "2s",
        "mxscreen_dns_servers": dns_addr,
        "mxscreen_backend": backend_addr,
        "mxscreen_backend_connect_timeout": "2s",
    }
    p.update(kw)
    return p


def deliver(mx, fb, src, body=b"Subject: fault test\r\n\r\nstill flowing\r\n"):
    """An allowlisted sender's whole SMTP transaction through mxscreen."""
    s = mx.connect(src=src)
    assert recv_line(s).startswith(b"220 fake.test"), src
    for cmd, code in [(b"EHLO sender.example", b"250"), (b"MAIL FROM:<a@sender.example>", b"250"),
                      (b"RCPT TO:<b@rcpt.example>", b"250"), (b"DATA", b"354")]:
        s.sendall(cmd + b"\r\n")
        assert recv_reply(s).startswith(code), cmd
    s.sendall(body + b".\r\n")
    assert recv_reply(s).startswith(b"250 2.0.0 Ok: queued")
    s.sendall(b"QUIT\r\n")
    assert recv_reply(s).startswith(b"221")
    s.close()
    conn = fb.wait_conn(src)
    deadline = time.time() + 5
    while body not in conn.data and time.time() < deadline:
        time.sleep(0.02)
    assert body in conn.data


def new_client_passes(mx):
    """A new client waits out the greet wait and is handed off: PASS NEW."""
    s = mx.connect(src=NEW)
    assert recv_line(s) == TEASER
    assert recv_line(s, timeout=10).startswith(b"220 fake.test")
    s.close()
    mx.wait_for_log(rf"PASS NEW \[{re.escape(NEW)}\]")


def row_dns_down(workdir, dns):
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    with FakeBackend() as fb:
        with Mxscreen(workdir, fault_params(workdir, closed, fb.addr)) as mx:
            new_client_passes(mx)  # fails open
            mx.wait_for_log(r"warning: DNSBL lookup error for DNS query \S+\.bl\.test: .*; "
                            r"counted as not listed")
            deliver(mx, fb, "127.0.12.1")


def row_dns_slow(workdir, dns):
    dns.list(NEW, "bl.test", delay=3)  # listed, but after the greet wait
    with FakeBackend() as fb:
        with Mxscreen(workdir, fault_params(workdir, dns.addr, fb.addr)) as mx:
            t0 = time.time()
            new_client_passes(mx)  # the partial score: not listed yet
            assert time.time() - t0 < 2.5
            deliver(mx, fb, "127.0.12.2")


def row_dns_silent(workdir, dns):
    dns.silent(NEW, "bl.test")
    with FakeBackend() as fb:
        with Mxscreen(workdir, fault_params(workdir, dns.addr, fb.addr)) as mx:
            new_client_passes(mx)
            mx.wait_for_log(r"warning: dnsblog reply timeout 2s for bl\.test")
            deliver(mx, fb, "127.0.12.3")


def row_dns_garbage(workdir, dns):
    dns.garbage(NEW, "bl.test")
    with FakeBackend() as fb:
        with Mxscreen(workdir, fault_params(workdir, dns.addr, fb.addr)) as mx:
            new_client_passes(mx)
            mx.wait_for_log(r"warning: (DNSBL lookup error for DNS query|dnsblog reply "
                            r"timeout)")
            deliver(mx, fb, "127.0.12.4")


def row_backend_down_then_back(workdir, dns):
    port = free_port()
    with Mxscreen(workdir, fault_params(workdir, dns.addr, f"127.0.0.1:{port}")) as mx:
        s = mx.connect(src="127.0.12.5")
        assert recv_all(s) == b"421 4.3.2 All server ports are busy\r\n"
        s.close()
        mx.wait_for_log(r"warning: cannot connect to service 127\.0\.0\.1:\d+: "
                        r"Connection refused")
        with FakeBackend(port=port) as fb:  # back on the same port
            deliver(mx, fb, "127.0.12.6")


def row_backend_slow_to_greet(workdir, dns):
    with FakeBackend(greeting_delay=1.5) as fb:
        with Mxscreen(workdir, fault_params(workdir, dns.addr, fb.addr)) as mx:
            deliver(mx, fb, "127.0.12.7")
            new_client_passes(mx)


def row_backend_closes_mid_session(workdir, dns):
    with FakeBackend(replies={"MAIL FROM:<drop@sender.example>": None}) as fb:
        with Mxscreen(workdir, fault_params(workdir, dns.addr, fb.addr)) as mx:
            s = mx.connect(src="127.0.12.8")
            assert recv_line(s).startswith(b"220 fake.test")
            s.sendall(b"EHLO x\r\n")
            recv_reply(s)
            s.sendall(b"MAIL FROM:<drop@sender.example>\r\n")
            assert recv_all(s) == b""  # the backend went: so does the relay
            s.close()
            deliver(mx, fb, "127.0.12.9")
            new_client_passes(mx)


def row_cache_disk_full(workdir, dns):
    """The allowlist's file system is full: writes fail with a warning,
    clients are still screened and served (just not remembered)."""
    mnt = os.path.join(workdir, "full")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        with FakeBackend() as fb:
            p = fault_params(workdir, dns.addr, fb.addr,
                             postscreen_cache_map=f"lmdb:{mnt}/cache.lmdb")
            with Mxscreen(workdir, p) as mx:
                # Fill what the cache file has not taken yet.
                fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while os.write(fd, b"\0" * 4096) > 0:
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
                for i in range(1, 40):  # enough new records to need new pages
                    ip = f"127.0.14.{i}"
                    s = mx.connect(src=ip)
                    assert recv_line(s) == TEASER
                    assert recv_line(s, timeout=10).startswith(b"220 fake.test")
                    s.close()
                    mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]")
                    if re.search(r"warning: cache lmdb:\S+: update error", mx.log_text()):
                        break
                mx.wait_for_log(r"warning: cache lmdb:\S+: update error for 127\.0\.14\.\d+: ")
                deliver(mx, fb, "127.0.12.10")
                assert mx.alive()
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


FAULTS = [row_dns_down, row_dns_slow, row_dns_silent, row_dns_garbage,
          row_backend_down_then_back, row_backend_slow_to_greet, row_backend_closes_mid_session,
          row_cache_disk_full]


FAULT_ROWS = RowCounter("faults survived")


@pytest.fixture(scope="module")
def fault_summary(request):
    """One line at the end: "faults survived: N passed, ..."."""
    yield
    report_line(request.config, FAULT_ROWS.line())


@pytest.fixture
def count_fault(request, fault_summary):
    yield
    FAULT_ROWS.record(request.node)


@pytest.mark.parametrize("row", FAULTS, ids=[f.__name__[4:] for f in FAULTS])
def test_fault_survived(workdir, dns, row, count_fault):
    row(workdir, dns)
