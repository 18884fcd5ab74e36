import collections
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from dnsserver import FakeDNS  # noqa: E402
from mxs import SilentBackend  # noqa: E402
from postfix_backend import private_postfix  # noqa: E402


@pytest.fixture
def dns():
    """A test DNS server on loopback (dnsserver.py), for one test."""
    d = FakeDNS()
    yield d
    d.close()


@pytest.fixture
def backend():
    """A backend that accepts and never speaks (mxs.SilentBackend), for one
    test (modules that share one across their tests define their own)."""
    b = SilentBackend()
    yield b
    b.close()


@pytest.fixture(scope="session")
def postfix():
    with private_postfix() as pf:
        yield pf


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Note each phase's outcome on the test, for the fixtures below."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def workdir(request):
    """A directory of the test's own (logs, configuration, cache), below
    /tmp with mode 0755 for the unprivileged mxscreen.  Removed after a
    test that passed; kept, and named, after one that failed."""
    d = tempfile.mkdtemp(prefix="mxs-test-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\nkept for a look: {d}")


@pytest.fixture(scope="session")
def tlsdir():
    """A self-signed certificate and key for mxscreen's STARTTLS."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (Debian package openssl)")
    d = tempfile.mkdtemp(prefix="mxs-tls-", dir="/tmp")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                    "-days", "2", "-subj", "/CN=mxscreen.test"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(os.path.join(d, "key.pem"), 0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def report_line(config, line):
    """Write LINE in pytest's own output, past the output capture: what a
    test module tried and what held ("abuse rows: 42 passed")."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None:
        print(line)
        return
    with capman.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line(line)


class RowCounter:
    """Counts a table-driven module's rows by outcome, for one summary line
    at its end: a module says ``rows = RowCounter("abuse rows")`` and uses
    ``rows.fixtures()`` as its autouse fixtures."""

    def __init__(self, label):
        self.label = label
        self.results = collections.Counter()

    def line(self):
        return f"{self.label}: " + ", ".join(f"{n} {k}" for k, n in
                                             sorted(self.results.items()))

    def record(self, node):
        rep = getattr(node, "rep_call", None)
        if rep is None:
            self.results["errors"] += 1
        elif rep.skipped and hasattr(rep, "wasxfail"):
            self.results["xfailed"] += 1
        elif rep.passed and hasattr(rep, "wasxfail"):
            self.results["xpassed"] += 1
        else:
            self.results[rep.outcome] += 1
