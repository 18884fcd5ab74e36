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


def test_descriptors_exhausted_accept_pauses_once_and_recovers(workdir):
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
