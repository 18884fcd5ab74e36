import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from postfix_backend import PostfixBackend  # noqa: E402


@pytest.fixture(scope="session")
def postfix():
    # Below /tmp with mode 0755, so that mxscreen running as an unprivileged
    # user can reach the pass socket (pytest's own tmp dir is 0700).
    base = tempfile.mkdtemp(prefix="mxs-postfix-", dir="/tmp")
    os.chmod(base, 0o755)
    pf = PostfixBackend(base)
    pf.start()
    try:
        yield pf
    finally:
        pf.stop()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="mxs-test-", dir="/tmp")
    os.chmod(d, 0o755)
    return d
