"""The stats listener (issue 9): /metrics, /stats and the dashboard, after a
scripted mix of real clients, checked against what was sent, against the
log, with `promtool check metrics` and in headless Chromium; its limits
(bad and huge requests get a 4xx and cost the SMTP clients nothing); and
the mxscreen_stats_listen checks."""
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time

import pytest

from fakebackend import FakeBackend
from mxs import BIN, ROOT, Mxscreen, free_port, recv_all, recv_line, run_mxscreen

ARTIFACTS = os.path.join(ROOT, "test-artifacts")

# The mix: address -> what it does.
NEW1, NEW2, BOT, LISTED, HANGUP, ALLOWED, DENIED = (
    "127.0.8.1", "127.0.8.2", "127.0.8.3", "127.0.8.4", "127.0.8.5", "127.0.8.7", "127.0.8.8")


def http(port, request, host="127.0.0.1", unix=None, timeout=10):
    """Send REQUEST (bytes) and read the whole response: (status, headers, body)."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(unix)
    else:
        s = socket.create_connection((host, port), timeout=timeout)
    with s:
        s.sendall(request)
        data = recv_all(s, timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def get(port, path, **kw):
    return http(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                **kw)


def get_json(port):
    status, headers, body = get(port, "/stats")
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(body)


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): value}, and the
    families' HELP/TYPE."""
    samples, types, helps = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps[line.split()[2]] = line
        elif line.startswith("# TYPE "):
            types[line.split()[2]] = line.split()[3]
        elif line and not line.startswith("#"):
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
            assert m, f"bad sample line: {line!r}"
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types, helps


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def start(workdir, dns, backend, name="mx", **kw):
    table = os.path.join(workdir, "access.cidr")
    with open(table, "w") as f:
        f.write(f"{ALLOWED}/32 permit\n{DENIED}/32 reject\n")
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "1s",
        "postscreen_greet_action": "drop",
        "postscreen_access_list": f"permit_mynetworks, cidr:{table}",
        "postscreen_denylist_action": "drop",
        "postscreen_dnsbl_sites": "bl.test",
        "postscreen_dnsbl_threshold": "1",
        "postscreen_dnsbl_action": "drop",
        "mxscreen_dns_servers": dns.addr,
        "mxscreen_backend": backend.addr,
        "mxscreen_stats_listen": f"127.0.0.1:{free_port()}",
    }
    p.update(kw)
    mx = Mxscreen(workdir, p, name=name).start()
    mx.stats_port = int(p["mxscreen_stats_listen"].rsplit(":", 1)[1]) \
        if not p["mxscreen_stats_listen"].startswith("/") else None
    return mx


def greeted(s):
    """Read the greeting to its last line (the teaser "220-", then the
    backend's "220 " once the client has passed)."""
    while True:
        line = recv_line(s)
        assert line.startswith(b"220"), line
        if line.startswith(b"220 "):
            return line


def run_mix(mx, dns):
    """The scripted clients; returns once the log shows each one's end."""
    dns.list(LISTED, "bl.test")
    # Two new clients pass (PASS NEW) and are handed off; the first comes back (PASS OLD).
    for ip in (NEW1, NEW2):
        s = mx.connect(src=ip)
        greeted(s)  # the backend's greeting, after the wait
        s.close()
        mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]")
    s = mx.connect(src=NEW1)
    greeted(s)
    s.close()
    mx.wait_for_log(rf"PASS OLD \[{re.escape(NEW1)}\]")
    # A bot that talks first, a listed client, one that hangs up.
    s = mx.connect(src=BOT)
    s.sendall(b"EHLO bot.test\r\n")
    assert b"521 5.5.1 Protocol error" in recv_all(s)
    s.close()
    s = mx.connect(src=LISTED)
    assert b"521 5.7.1 Service unavailable; client [127.0.8.4] blocked using bl.test" \
        in recv_all(s)
    s.close()
    s = mx.connect(src=HANGUP)
    s.close()
    mx.wait_for_log(rf"HANGUP after \S+ from \[{re.escape(HANGUP)}\]")
    # The access list's permit and reject.
    s = mx.connect(src=ALLOWED)
    greeted(s)
    s.close()
    s = mx.connect(src=DENIED)
    assert b"521 5.3.2 Service currently unavailable" in recv_all(s)
    s.close()
    mx.wait_for_log(rf"DENYLISTED \[{re.escape(DENIED)}\]")


def log_count(mx, regex):
    return sum(1 for l in mx.log_lines() if re.search(regex, l))


def test_counts_equal_what_was_sent_and_what_was_logged(workdir, dns):
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb)
        try:
            run_mix(mx, dns)
            # The DNS answer for the hang-up may come after its HANGUP line.
            time.sleep(0.5)
            st = get_json(mx.stats_port)
            status, headers, body = get(mx.stats_port, "/metrics")
            assert status == 200
            assert headers["content-type"].startswith("text/plain; version=0.0.4")
            samples, types, helps = parse_metrics(body.decode())
        finally:
            mx.stop()

    # What was sent.
    assert st["connections"] == 8
    assert st["verdicts"] == {"allowlisted": 1, "denylisted": 1, "allowlist_veto": 0,
                              "pass_old": 1, "pass_new": 2, "hangup": 1}
    assert st["failures"]["pregreet"] == {"ignore": 0, "enforce": 0, "drop": 1}
    assert st["failures"]["dnsbl"] == {"ignore": 0, "enforce": 0, "drop": 1}
    for t in ("pipelining", "non_smtp", "bare_newline"):
        assert st["failures"][t] == {"ignore": 0, "enforce": 0, "drop": 0}
    assert st["rejected"] == 3
    assert st["limits"] == dict.fromkeys(st["limits"], 0)
    # The allowlist: NEW1, NEW2, BOT, LISTED and HANGUP were looked up and not
    # found; NEW1's second visit was a hit; the access list decided the rest.
    assert st["cache"]["lookups"] == {"hit": 1, "stale": 0, "miss": 5}
    assert st["cache"]["writes"] == 2 and st["cache"]["write_errors"] == 0
    assert st["cache"]["entries"] == 2 and st["cache"]["up"] is True
    # Every client whose early tests ran was looked up once on bl.test.
    asked = sum(dns.asked(ip, "bl.test") for ip in (NEW1, NEW2, BOT, LISTED, HANGUP))
    (bl,) = st["dnsbl"]["lists"]
    assert bl["name"] == "bl.test"
    assert bl["queries"] == asked == 5
    assert bl["listed"] == 1 and bl["not_listed"] == 4
    assert bl["errors"] == bl["error_codes"] == bl["timeouts"] == 0
    assert bl["rtt"]["count"] == 5
    assert st["greet_wait"]["count"] == 5  # NEW1, NEW2, BOT, LISTED, HANGUP
    assert st["handoff"]["handoffs"]["proxy"] == 4  # NEW1 twice, NEW2, ALLOWED
    assert st["handoff"]["relay_bytes"]["to_client"] >= 4 * len(b"220 fake.test ESMTP\r\n")
    assert st["sessions"]["early"] == st["sessions"]["engine"] == 0
    rejects = [(r["client"], r["reason"], r["action"]) for r in st["recent_rejects"]]
    assert rejects == [(DENIED, "DENYLISTED", "drop"), (LISTED, "DNSBL", "drop"),
                       (BOT, "PREGREET", "drop")]  # newest first
    assert st["history"]["samples"][-1][1] == 8

    # The same numbers in /metrics, and the log's.
    assert metric(samples, "mxscreen_connections_total") == 8 == log_count(mx, r"^CONNECT from")
    for verdict, regex in [("pass_new", r"^PASS NEW "), ("pass_old", r"^PASS OLD "),
                           ("allowlisted", r"^ALLOWLISTED "), ("denylisted", r"^DENYLISTED "),
                           ("hangup", r"^HANGUP ")]:
        assert metric(samples, "mxscreen_verdicts_total", verdict=verdict) == \
            st["verdicts"][verdict] == log_count(mx, regex), verdict
    assert metric(samples, "mxscreen_test_failures_total", test="pregreet", action="drop") == \
        1 == log_count(mx, r"^PREGREET ")
    assert metric(samples, "mxscreen_test_failures_total", test="dnsbl", action="drop") == \
        1 == log_count(mx, r"^DNSBL rank ")
    assert metric(samples, "mxscreen_dnsbl_queries_total", list="bl.test") == 5
    assert metric(samples, "mxscreen_dnsbl_listed_total", list="bl.test") == 1
    assert metric(samples, "mxscreen_dnsbl_query_duration_seconds_count", list="bl.test") == 5
    assert metric(samples, "mxscreen_dnsbl_query_duration_seconds_bucket", list="bl.test",
                  le="+Inf") == 5
    assert metric(samples, "mxscreen_cache_lookups_total", result="hit") == 1
    assert metric(samples, "mxscreen_cache_entries") == 2
    assert metric(samples, "mxscreen_handoffs_total", mode="proxy") == 4
    assert metric(samples, "mxscreen_greet_wait_seconds_count") == 5
    assert metric(samples, "mxscreen_rejected_clients_total") == 3
    # mxscreen-stats reads the same numbers from the log.
    tool = os.path.join(os.path.dirname(BIN), "mxscreen-stats")
    rep = json.loads(subprocess.run([tool, "-j", mx.log_path], capture_output=True, check=True,
                                    timeout=60).stdout)["verdicts"]
    for key, want in [("connect", st["connections"]), ("pass_new", st["verdicts"]["pass_new"]),
                      ("pass_old", st["verdicts"]["pass_old"]),
                      ("allowlisted", st["verdicts"]["allowlisted"]),
                      ("denylisted", st["verdicts"]["denylisted"]),
                      ("pregreet", st["failures"]["pregreet"]["drop"]),
                      ("dnsbl_rank", st["failures"]["dnsbl"]["drop"]),
                      ("hangup_before_handshake", st["verdicts"]["hangup"])]:
        assert rep[key]["connections"] == want, key
    # Conventions: every family has HELP and TYPE; counters end in _total.
    names = {n for n, _ in samples}
    for n in names:
        fam = re.sub(r"_(bucket|sum|count)$", "", n) if n not in types else n
        assert fam in types and fam in helps, n
        if types[fam] == "counter":
            assert fam.endswith("_total"), fam


def test_promtool_accepts_the_metrics(workdir, dns):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (Debian package prometheus, scripts/install-deps.sh)"
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb)
        try:
            run_mix(mx, dns)
            status, _, body = get(mx.stats_port, "/metrics")
        finally:
            mx.stop()
    assert status == 200
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert r.stdout.strip() == b"" and r.stderr.strip() == b"", (r.stdout + r.stderr).decode()


def test_bad_and_huge_requests_get_4xx_and_cost_nothing_else(workdir, dns):
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb, postscreen_dnsbl_sites="")
        port = mx.stats_port
        try:
            # More than HTTP_MAX_CONNS (32) idle connections: the extra ones
            # are closed at once, the first 32 at the 5 s limit.
            idle = [socket.create_connection(("127.0.0.1", port), timeout=10)
                    for _ in range(40)]
            time.sleep(0.3)
            closed = 0
            for c in idle:
                c.setblocking(False)
                try:
                    closed += c.recv(1) == b""
                except BlockingIOError:
                    pass
            assert closed == 8, closed
            time.sleep(5)
            for c in idle:
                c.settimeout(2)
                assert c.recv(1) == b""
                c.close()
            # A slow client holds an unfinished request all along.
            slow = socket.create_connection(("127.0.0.1", port), timeout=10)
            slow.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n")
            rows = [
                (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
                (b"DELETE /stats HTTP/1.1\r\nHost: x\r\n\r\n", 405),
                (b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
                (b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
                (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) +
                 b"\r\n\r\n", 400),
                # No line end at all: nothing to answer; closed after HTTP_TIMEOUT (5 s).
                (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, "closed"),
                (b"HELLO\r\n\r\n", 400),
                (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", 431),
                (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
                (b"GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
                 b"x" * 100000, 413),
                (b"GET /stats HTTP/2.0\r\n\r\n", 400),
            ]
            for req, want in rows:
                t0 = time.time()
                status, headers, _ = http(port, req)
                if want == "closed":
                    assert status is None and time.time() - t0 < 8
                elif want is None:
                    assert status is not None and 400 <= status < 500, (req[:40], status)
                else:
                    assert status == want, (req[:40], status)
                if want == 405:
                    assert headers.get("allow") == "GET, HEAD"
                # Meanwhile an SMTP client gets its teaser at once, and /stats answers.
                t0 = time.time()
                c = mx.connect(src="127.0.8.20")
                assert recv_line(c, timeout=2).startswith(b"220-")
                assert time.time() - t0 < 1
                c.close()
                assert get_json(port)["version"]
            status, headers, body = http(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n"
                                               b"Connection: close\r\n\r\n")
            assert status == 200 and body == b""
            slow.close()
            assert mx.alive()
        finally:
            mx.stop()


@pytest.mark.parametrize("value,ok", [
    ("0.0.0.0:9325", False), ("192.0.2.1:9325", False), ("*:9325", False), (":9325", False),
    ("[2001:db8::1]:9325", False), ("localhost:9325", False), ("127.0.0.1", False),
    ("127.0.0.1:9325", True), ("127.1.2.3:9325", True), ("[::1]:9325", True),
    ("/run/mxscreen/stats.sock", True),
])
def test_stats_listen_is_loopback_or_a_unix_socket(workdir, value, ok):
    cf = os.path.join(workdir, "main.cf")
    with open(cf, "w") as f:
        f.write("# stats\nmxscreen_listen = 127.0.0.1:2525\n")
        f.write(f"mxscreen_stats_listen = {value}\n")
    r = run_mxscreen(["-c", cf, "-t"])
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1
        assert f"{cf}, line 3: parameter mxscreen_stats_listen:" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1


def test_unix_socket_listener(workdir, dns):
    path = os.path.join(workdir, "stats.sock")
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb, mxscreen_stats_listen=path, postscreen_dnsbl_sites="")
        try:
            st = os.stat(path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
            if os.geteuid() == 0:  # given to mxscreen_user (nobody)
                import pwd
                assert st.st_uid == pwd.getpwnam("nobody").pw_uid
            c = mx.connect(src=NEW1)
            greeted(c)
            c.close()
            mx.wait_for_log(r"PASS NEW")
            status, _, body = get(None, "/stats", unix=path)
            assert status == 200 and json.loads(body)["verdicts"]["pass_new"] == 1
            status, _, body = get(None, "/metrics", unix=path)
            assert b"mxscreen_verdicts_total{verdict=\"pass_new\"} 1\n" in body
        finally:
            mx.stop()
    # A socket left behind is replaced at the next start.
    assert os.path.exists(path)
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb, name="mx2", mxscreen_stats_listen=path,
                   postscreen_dnsbl_sites="")
        try:
            assert get(None, "/stats", unix=path)[0] == 200
        finally:
            mx.stop()


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_dashboard_renders_live_numbers_in_headless_chromium(workdir, dns):
    browser = chromium()
    assert browser, "chromium is missing (Debian package chromium, scripts/install-deps.sh)"
    with FakeBackend() as fb:
        mx = start(workdir, dns, fb)
        try:
            run_mix(mx, dns)
            time.sleep(0.5)
            port = mx.stats_port
            status, headers, page = get(port, "/")
            assert status == 200 and headers["content-type"].startswith("text/html")
            assert "connect-src 'self'" in headers["content-security-policy"]
            # Self-contained: nothing is fetched from anywhere but /stats.
            assert not re.search(rb"(src|href)\s*=\s*[\"']?(https?:)?//", page)
            st = get_json(port)
            url = f"http://127.0.0.1:{port}/"
            profile = os.path.join(workdir, "chromium-profile")
            common = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                      f"--user-data-dir={profile}", "--virtual-time-budget=6000",
                      "--window-size=1400,1500"]
            r = subprocess.run(common + ["--dump-dom", url], capture_output=True, timeout=120)
            dom = r.stdout.decode(errors="replace")
            assert 'data-rendered="' in dom, (r.stderr.decode(errors="replace")[-2000:], dom[:2000])
            os.makedirs(ARTIFACTS, exist_ok=True)
            shot = os.path.join(ARTIFACTS, "dashboard.png")
            if os.path.exists(shot):
                os.unlink(shot)
            subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True,
                           timeout=120)
        finally:
            mx.stop()

    def value(id_):
        m = re.search(rf'id="{id_}"[^>]*data-value="(\d+)"', dom) or \
            re.search(rf'data-value="(\d+)"[^>]*id="{id_}"', dom)
        assert m, f"no #{id_} in the page"
        return int(m.group(1))

    # The tiles carry the live numbers.
    assert value("tile-connect") == st["connections"] == 8
    assert value("tile-pass_new") == 2 and value("tile-pass_old") == 1
    assert value("tile-rejected") == 3 and value("tile-hangup") == 1
    # The rate chart has a line per series, with points.
    for series in ("connect", "pass_new", "pass_old", "allowlisted", "rejected", "hangup"):
        m = re.search(rf'<polyline[^>]*data-series="{series}"[^>]*data-points="(\d+)"', dom)
        assert m and int(m.group(1)) >= 1, series
    # The failures chart, the DNSBL table, the rejected clients.
    assert re.search(r'<rect[^>]*data-test="pregreet"[^>]*data-action="drop"[^>]*'
                     r'data-count="1"', dom)
    assert 'data-list="bl.test"' in dom
    for ip in (BOT, LISTED, DENIED):
        assert f"[{ip}]:" in dom
    # The screenshot is kept as an artifact.
    assert os.path.getsize(shot) > 20000
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
