"""The README's first command: the demo screens and delivers a message."""
import os
import re
import subprocess

from mxs import BIN, ROOT


def test_demo_once_delivers_through_the_shipped_config():
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo.py"), "--once"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MXSCREEN_BIN=BIN))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # The bot that talks first is seen; the new client waits, passes the
    # deep tests in mxscreen's engine and is delivered in that same
    # connection (the replay); the second time it goes straight through.
    assert re.search(r"PREGREET 18 after \S+ from \[127\.0\.0\.66\]:\d+: "
                     r"EHLO bot\.example\\r\\n", out), out
    assert re.search(r"PASS NEW \[127\.0\.0\.2\]:\d+", out), out
    assert re.search(r"REPLAY \[127\.0\.0\.2\]:\d+ to 127\.0\.0\.1:10025: RCPT 250 2\.1\.5 Ok",
                     out), out
    assert re.search(r"PASS OLD \[127\.0\.0\.2\]:\d+", out), out
    # First mxscreen's engine, after the greet wait; then Postfix at once.
    assert re.search(r"greeting after [5-9]\.\d s: (?!backend\.demo)", out), out
    assert re.search(r"greeting after [0-2]\.\d s: backend\.demo", out), out
    assert "client=unknown[127.0.0.2]" in out
    assert "Screened by mxscreen, delivered by Postfix." in out
    # The shipped configuration's stats listener counted the same clients.
    assert re.search(r'^mxscreen_verdicts_total\{verdict="pass_new"\} 1$', out, re.M), out
    assert re.search(r'^mxscreen_verdicts_total\{verdict="pass_old"\} 1$', out, re.M), out
    assert re.search(r'^mxscreen_test_failures_total\{test="pregreet",action="\w+"\} 1$', out,
                     re.M), out
    assert "demo finished" in out
