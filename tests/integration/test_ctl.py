"""mxscreenctl, the allowlist control tool, against the LMDB file of a
running mxscreen: list, show, add, del, expire, dump and load, as text and
JSON, and its refusals."""
import json
import os
import re
import subprocess

from mxs import BIN, Mxscreen, pregreet_params, SilentBackend, assert_held, recv_line

CTL = os.path.join(os.path.dirname(BIN), "mxscreenctl")
TEASER = b"220-mxscreen.test ESMTP\r\n"


def params(backend):
    return pregreet_params(backend)


def ctl(mx, *args, stdin=None, check=True):
    r = subprocess.run([CTL, "-c", mx.cf_path, *args], input=stdin, capture_output=True,
                       text=True, timeout=20)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    if check:
        assert r.returncode == 0, r.stderr
    return r


def screened(mx, src):
    """A new client: the teaser; it waits and passes (PASS NEW)."""
    s = mx.connect(src=src)
    assert recv_line(s) == TEASER
    mx.wait_for_log(rf"PASS NEW \[{re.escape(src)}\]:\d+$")
    s.close()


def straight_through(mx, src):
    s = mx.connect(src=src)
    assert_held(s)
    s.close()
    mx.wait_for_log(rf"PASS OLD \[{re.escape(src)}\]:\d+$")


def teased(mx, src):
    s = mx.connect(src=src)
    assert recv_line(s) == TEASER
    s.close()


def test_list_and_show_what_the_daemon_wrote(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be)) as mx:
            screened(mx, "127.0.15.1")
            out = ctl(mx, "list").stdout
            m = re.fullmatch(r"127\.0\.15\.1 pregreet=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) "
                             r"dnsbl=off pipelining=off non_smtp=off bare_newline=off OLD\n", out)
            assert m, out
            data = json.loads(ctl(mx, "-j", "list").stdout)
            assert [d["address"] for d in data] == ["127.0.15.1"]
            assert data[0]["status"] == "OLD"
            assert data[0]["tests"]["pregreet"]["local"] == m.group(1)
            assert data[0]["tests"]["pregreet"]["enabled"] is True
            assert data[0]["tests"]["dnsbl"] == {"expires": 1, "local": "off", "enabled": False}
            one = json.loads(ctl(mx, "-j", "show", "127.0.15.1").stdout)
            assert one == data[0]
            r = ctl(mx, "show", "127.0.15.2", check=False)
            assert r.returncode == 1 and "127.0.15.2: not in the allowlist" in r.stderr
    finally:
        be.close()


def test_add_expire_and_del_while_the_daemon_runs(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be)) as mx:
            ctl(mx, "add", "127.0.16.1")
            straight_through(mx, "127.0.16.1")
            ctl(mx, "expire", "127.0.16.1", "pregreet")
            assert ctl(mx, "list").stdout.endswith(" NEW\n")
            teased(mx, "127.0.16.1")
            ctl(mx, "add", "127.0.16.2", "3600")
            straight_through(mx, "127.0.16.2")
            ctl(mx, "del", "127.0.16.2")
            teased(mx, "127.0.16.2")
            r = ctl(mx, "del", "127.0.16.2", check=False)
            assert r.returncode == 1 and "not in the allowlist" in r.stderr
    finally:
        be.close()


def test_dump_and_load_round_trip_text_and_json(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be)) as mx:
            ctl(mx, "add", "127.0.17.1")
            ctl(mx, "add", "2001:db8:1:2::/64", "600")
            text = ctl(mx, "dump").stdout
            lines = text.splitlines()
            assert [l.split()[0] for l in lines] == ["127.0.17.1", "2001:db8:1:2::/64"]
            assert all(re.fullmatch(r"\S+ \d+;\d+;\d+;\d+;\d+", l) for l in lines), text
            js = ctl(mx, "-j", "dump").stdout
            assert json.loads(js) == [{"address": l.split()[0], "record": l.split()[1]}
                                      for l in lines]
            for form, data in (("text", text), ("json", js)):
                other = os.path.join(workdir, f"other-{form}.lmdb")
                r = subprocess.run([CTL, "-m", f"lmdb:{other}", "load"], input=data,
                                   capture_output=True, text=True, timeout=20)
                assert r.returncode == 0, r.stderr
                assert "2 records loaded" in r.stderr
                r = subprocess.run([CTL, "-m", f"lmdb:{other}", "dump"], capture_output=True,
                                   text=True, timeout=20)
                assert r.stdout == text
            # Loaded into the daemon's own file: the daemon sees it.
            ctl(mx, "load", stdin="# moved from another host\n127.0.17.9 " +
                lines[0].split()[1] + "\n")
            straight_through(mx, "127.0.17.9")
    finally:
        be.close()


def test_bad_input_is_refused_and_nothing_is_written(workdir):
    be = SilentBackend()
    try:
        with Mxscreen(workdir, params(be)) as mx:
            for args, stdin, why in [
                (["add", "300.1.1.1"], None, r'"300\.1\.1\.1": not an IPv4 or IPv6 address'),
                (["add", "127.0.18.1", "soon"], None, r'"soon": not a number of seconds'),
                (["expire", "127.0.18.1", "greylist"], None, r'"greylist": not a test'),
                (["load"], "127.0.18.2 1;2;3;4;5\n127.0.18.3 1;2;x;4;5\n",
                 r'line 2: "1;2;x;4;5": not a record'),
                (["load"], "127.0.18.2 1;2;3;4;5\nnot-an-address 1;2;3;4;5\n",
                 r'line 2: "not-an-address": not an address'),
                (["load"], '[{"address": "127.0.18.2"}]', r"entry 1: expected"),
                (["frobnicate"], None, r"usage: mxscreenctl"),
            ]:
                r = ctl(mx, *args, stdin=stdin, check=False)
                assert r.returncode == 1, (args, r.stdout, r.stderr)
                assert re.search(why, r.stderr), (args, r.stderr)
            # The good first line of a refused load was not written either.
            assert ctl(mx, "dump").stdout == ""
            r = subprocess.run([CTL, "-m", "memory:", "list"], capture_output=True, text=True,
                               timeout=20)
            assert r.returncode == 1 and "memory cache" in r.stderr
            r = subprocess.run([CTL, "-c", os.path.join(workdir, "missing.cf"), "list"],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 1 and "missing.cf" in r.stderr
    finally:
        be.close()
