"""The README's first command: the demo screens and delivers a message."""
import os
import subprocess

from mxs import BIN, ROOT


def test_demo_once_delivers_through_the_shipped_config():
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo.py"), "--once"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MXSCREEN_BIN=BIN))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ALLOWLISTED [127.0.0.2]" in out
    assert "client=unknown[127.0.0.2]" in out
    assert "Screened by mxscreen, delivered by Postfix." in out
    assert "demo finished" in out
