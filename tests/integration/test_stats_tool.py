"""mxscreen-stats, the log report tool, on real logs.

(a) mxscreen serves a scripted mix of clients (a new client that passes, its
    return as PASS OLD, a pregreet bot, a DNSBL-listed client rejected at
    RCPT, a client that hangs up in the greet wait); the report of its log
    has exactly the numbers that mix must give.
(b) the same mix against a REAL Postfix postscreen (postscreen_ref.py) and
    an mxscreen with the same settings, both asking one test DNS server:
    the two reports agree on every verdict, test, rank, reject and top list
    (the addresses are the same too).  Only postscreen's log has dnsblog's
    "listed by domain" lines (mxscreen has no dnsblog), so only its report
    lists DNSBL sites from them.
(c) gzip input (whole, or as one of several files) and standard input give
    the same JSON as the plain file; a broken gzip file is one error line.
(d) -H writes one HTML page that fetches nothing and shows the numbers.
(e) -u: journalctl is run as "journalctl -o short-iso -u UNIT --no-pager"
    (a stand-in journalctl on PATH checks its arguments and prints the log
    in short-iso form: same report); no journalctl, a failing journalctl,
    and a unit without entries each give one line and exit status 1.  The
    real journalctl is used for the unknown unit: it answers "-- No entries
    --" whether or not journald runs (as in this container), so that case
    needs no journald and is not skipped.
"""
import gzip
import html.parser
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from dnsserver import FakeDNS
from mxs import BIN, Mxscreen, SilentBackend, recv_line, recv_reply
from postscreen_ref import RealPostscreen, private_resolv_conf_unavailable

STATS = os.path.join(os.path.dirname(BIN), "mxscreen-stats")
HOSTNAME = "mx.example.test"
TEASER = f"220-{HOSTNAME} ESMTP\r\n".encode()

# The settings of the mix, for both daemons: the pregreet test (the "220-"
# teaser, a 1 s greet wait, bots dropped) and one DNSBL of weight 2 whose
# listed clients are rejected at RCPT.  mxscreen logs with its default
# syslog_name (tag "mxscreen") in (a), and as "postfix/postscreen" next to
# the real one in (b) (for Postfix, syslog_name is only the first part of
# the tag: it stays "postfix").
MIX = {
    "myhostname": HOSTNAME,
    "smtpd_banner": "$myhostname ESMTP",
    "mynetworks": "127.0.0.1/32",
    "postscreen_access_list": "permit_mynetworks",
    "compatibility_level": "3.6",
    "postscreen_greet_banner": "$smtpd_banner",
    "postscreen_greet_wait": "1s",
    "postscreen_greet_action": "drop",
    "postscreen_dnsbl_sites": "bl.test*2",
    "postscreen_dnsbl_action": "enforce",
}


def stats(*args, stdin=None, env=None, check=True):
    r = subprocess.run([STATS, *args], input=stdin, capture_output=True, timeout=60, env=env)
    err = r.stderr.decode(errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    if check:
        assert r.returncode == 0, err
    return r


def stats_json(*args, **kw):
    return json.loads(stats("-j", *args, **kw).stdout)


# ----------------------------------------------------------------------
# the mix of clients


def play_mix(port, net, wait_for, dns, handed_off=None):
    """Play the mix against the daemon on PORT, clients from NET.x;
    WAIT_FOR(regex) waits for a log line of that daemon, HANDED_OFF(ip)
    until the MTA behind it is done with a client it took over (the
    daemon consults its cache only for a client's sole connection)."""
    new, bot, listed, hangup = (f"{net}.{i}" for i in (1, 2, 3, 4))
    dns.list(listed, "bl.test", ["127.0.0.2"])

    def connect(src):
        return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))

    # A new client waits out the greet wait and passes; handed off.
    s = connect(new)
    assert recv_line(s) == TEASER
    wait_for(rf"PASS NEW \[{re.escape(new)}\]:\d+$")
    s.close()
    if handed_off:
        handed_off(new)
    time.sleep(0.3)
    # It comes back: allowlisted, handed off at once.
    s = connect(new)
    wait_for(rf"PASS OLD \[{re.escape(new)}\]:\d+$")
    s.close()
    # A bot talks first: PREGREET, dropped.
    s = connect(bot)
    s.sendall(b"EHLO bot.example\r\n")
    wait_for(rf"DISCONNECT \[{re.escape(bot)}\]:\d+$")
    s.close()
    # A listed client: DNSBL rank 2, rejected at RCPT.
    s = connect(listed)
    assert recv_line(s) == TEASER
    assert recv_line(s, timeout=5) == f"220 {HOSTNAME} ESMTP\r\n".encode()
    s.sendall(b"EHLO client.example\r\n")
    assert recv_reply(s).startswith(b"250-")
    s.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert recv_reply(s).startswith(b"250 ")
    s.sendall(b"RCPT TO:<b@example.net>\r\n")
    assert recv_reply(s) == (f"550 5.7.1 Service unavailable; client [{listed}] blocked using "
                             "bl.test\r\n").encode()
    s.sendall(b"QUIT\r\n")
    wait_for(rf"DISCONNECT \[{re.escape(listed)}\]:\d+$")
    s.close()
    # A client that hangs up in the greet wait.
    s = connect(hangup)
    assert recv_line(s) == TEASER
    s.close()
    wait_for(rf"DISCONNECT \[{re.escape(hangup)}\]:\d+$")
    return new, bot, listed, hangup


def expected_verdicts():
    """What the mix gives: row -> (connections, addresses); the rest 0."""
    v = {
        "connect": (5, 4),
        "pass_new": (1, 1),
        "pass_old": (1, 1),
        "pregreet": (1, 1),
        "dnsbl_rank": (1, 1),
        "hangup_before_handshake": (1, 1),
        "noqueue_reject_rcpt": (1, 1),
        "disconnect": (3, 3),
    }
    return v


def check_mix_report(rep, net):
    """The report of one daemon's log after play_mix(): every number."""
    bot, listed = f"{net}.2", f"{net}.3"
    want = expected_verdicts()
    got = {k: (x["connections"], x["addresses"]) for k, x in rep["verdicts"].items()}
    for k, x in got.items():
        assert x == want.get(k, (0, 0)), (k, x, rep["verdicts"])
    assert len(got) == 24, sorted(got)
    assert rep["tests_failed"] == {
        "pregreet": {"connections": 1, "addresses": 1},
        "dnsbl": {"connections": 1, "addresses": 1},
        "pipelining": {"connections": 0, "addresses": 0},
        "non_smtp": {"connections": 0, "addresses": 0},
        "bare_newline": {"connections": 0, "addresses": 0},
        "any": {"connections": 2, "addresses": 2},
    }
    assert rep["rejected"] == {"connections": 2, "addresses": 2}
    assert rep["pass_new_to_old"] == {"pass_new_addresses": 1, "came_back_pass_old": 1,
                                      "percent": 100.0}
    assert rep["dnsbl_ranks"] == [{"rank": 2, "connections": 1, "addresses": 1}]
    assert rep["blocked_using"] == [{"site": "bl.test", "rejects": 1, "addresses": 1}]
    assert rep["noqueue_replies"] == [{"reply": "550 5.7.1 Service unavailable", "lines": 1,
                                       "addresses": 1}]
    assert rep["top_rejected_addresses"] == [
        {"address": bot, "rejected": 1, "connections": 1},
        {"address": listed, "rejected": 1, "connections": 1}]
    assert rep["top_rejected_networks"] == [{"network": f"{net}.0/24", "rejected": 2,
                                             "addresses": 2}]
    assert rep["addresses"]["distinct"] == 4
    assert rep["legacy_words"] == 0
    assert rep["warnings"]["total"] == 0, rep["warnings"]
    assert rep["events"]["fatal"] == 0


# Message texts of postscreen's vocabulary (not warnings): lines that the
# report must understand.
VOCABULARY = re.compile(r"(CONNECT from|PASS (NEW|OLD)|PREGREET|DNSBL rank|HANGUP|"
                        r"NOQUEUE: reject:|DISCONNECT) |cache \S+ (full|partial) cleanup: ")
SYSLOG = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ (\S+)\[\d+\]: (.*)$")


@pytest.fixture(scope="module")
def mx_log():
    """(a)'s run: mxscreen's log after the mix, kept for (c) and (d)."""
    base = tempfile.mkdtemp(prefix="mxs-stats-", dir="/tmp")
    os.chmod(base, 0o755)
    dns = FakeDNS()
    backend = SilentBackend()
    p = dict(MIX, mxscreen_dns_servers=dns.addr, mxscreen_backend=backend.addr)
    try:
        with Mxscreen(base, p) as mx:
            clients = play_mix(mx.port, "127.0.72", mx.wait_for_log, dns)
        yield mx.log_path, clients
    finally:
        dns.close()
        backend.close()
        shutil.rmtree(base, ignore_errors=True)


def test_a_mxscreen_log_gives_the_mix(mx_log):
    path, _ = mx_log
    rep = stats_json(path)
    check_mix_report(rep, "127.0.72")
    with open(path) as f:
        lines = f.read().splitlines()
    texts = [SYSLOG.match(line) for line in lines]
    assert all(texts), lines
    assert {m.group(2) for m in texts} == {"mxscreen"}
    # Every line is postscreen's (tag "mxscreen"); the ones outside the
    # vocabulary are mxscreen's start and stop lines.
    assert rep["lines"]["total"] == len(lines)
    assert rep["lines"]["postscreen"] == len(lines)
    assert rep["lines"]["other"] == 0 and rep["lines"]["dnsblog"] == 0
    unknown = [m.group(3) for m in texts if not VOCABULARY.match(m.group(3))]
    assert rep["lines"]["unknown"] == len(unknown), unknown
    assert any(u.startswith("starting mxscreen") for u in unknown), unknown
    cleanups = [m for m in texts if m.group(3).startswith("cache ")]
    assert rep["events"]["cache_cleanup"] == len(cleanups)
    assert rep["time"]["first"] == texts[0].group(1)
    assert rep["time"]["last"] == texts[-1].group(1)
    assert rep["time"]["seconds"] >= 1  # the greet waits
    # The text report has the same numbers.
    text = stats(path).stdout.decode()
    assert re.search(r"^  CONNECT +5 +4$", text, re.M), text
    assert "PASS NEW -> PASS OLD: 1 of 1 addresses with PASS NEW came back PASS OLD " \
           "(100.0%)\n" in text, text
    assert re.search(r"^  rank 2 +1 +1$", text, re.M), text


# ----------------------------------------------------------------------
# (b) the real postscreen


@pytest.fixture(scope="module")
def pair_logs():
    """The mix against a real postscreen and against mxscreen, both asking
    one FakeDNS on 127.0.0.1:53 (postscreen's dnsblog cannot use another
    port: postscreen_ref.py gives its Postfix a private resolv.conf)."""
    reason = private_resolv_conf_unavailable()
    if reason:
        pytest.skip(f"the real postscreen's DNSBL lookups need a private resolv.conf: {reason}")
    try:
        dns = FakeDNS(port=53)
    except OSError as e:
        pytest.skip(f"the test DNS server for the real postscreen needs UDP 127.0.0.1:53: {e}")
    base = tempfile.mkdtemp(prefix="mxs-stats-pair-", dir="/tmp")
    os.chmod(base, 0o755)
    resolv = os.path.join(base, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    os.chmod(resolv, 0o644)
    ps = RealPostscreen(os.path.join(base, "postscreen"), dict(MIX), hostname=HOSTNAME,
                        resolv_conf=resolv)
    backend = SilentBackend()
    mxdir = os.path.join(base, "mx")
    os.mkdir(mxdir)
    os.chmod(mxdir, 0o755)
    try:
        os.makedirs(ps.basedir, exist_ok=True)
        os.chmod(ps.basedir, 0o755)
        ps.start()
        net = "127.0.73"
        def smtpd_done(ip):
            deadline = time.monotonic() + 10
            pat = re.compile(rf"postfix/smtpd\[\d+\]: disconnect from \S+\[{re.escape(ip)}\]")
            while not pat.search(ps.log_text()):
                assert time.monotonic() < deadline, ps.log_text()
                time.sleep(0.02)

        play_mix(ps.port, net, lambda rx: ps.wait_for_log(rx), dns, smtpd_done)
        time.sleep(0.3)  # postlogd writes shortly after the event
        ps_log = os.path.join(base, "postscreen.log")
        shutil.copy(ps.log_path, ps_log)
        p = dict(MIX, mxscreen_dns_servers="127.0.0.1:53", mxscreen_backend=backend.addr,
                 syslog_name="postfix/postscreen")
        with Mxscreen(mxdir, p) as mx:
            play_mix(mx.port, net, mx.wait_for_log, dns)
        yield ps_log, mx.log_path, net
    finally:
        try:
            ps.stop()
        finally:
            dns.close()
            backend.close()
            shutil.rmtree(base, ignore_errors=True)


COMPARED = ["verdicts", "legacy_words", "tests_failed", "rejected", "pass_new_to_old",
            "dnsbl_ranks", "blocked_using", "noqueue_replies", "top_rejected_addresses",
            "top_rejected_networks", "addresses", "warnings", "events"]


def test_b_same_numbers_for_mxscreen_and_real_postscreen(pair_logs):
    ps_log, mx_log_path, net = pair_logs
    ps, mx = stats_json(ps_log), stats_json(mx_log_path)
    # Each is right on its own ...
    check_mix_report(ps, net)
    check_mix_report(mx, net)
    # ... and they agree, apart from what dnsblog alone logs.
    ps_events = dict(ps["events"], dnsblog_listed=0)
    mx_events = dict(mx["events"])
    for key in COMPARED:
        a, b = (ps_events, mx_events) if key == "events" else (ps[key], mx[key])
        assert a == b, f"{key}: postscreen {a} != mxscreen {b}"
    # postscreen's maillog has the other Postfix daemons' lines and dnsblog's.
    assert ps["lines"]["other"] > 0
    assert ps["lines"]["dnsblog"] == 1
    assert ps["events"]["dnsblog_listed"] == 1
    assert ps["dnsbl_sites"] == [{"site": "bl.test", "clients": 1, "lines": 1}]
    assert mx["dnsbl_sites"] == []
    assert ps["lines"]["unknown"] == 0, "a postscreen line the parser does not know"


# ----------------------------------------------------------------------
# (c) gzip and standard input


def test_c_gzip_and_stdin_give_the_same_json(mx_log, tmp_path):
    path, _ = mx_log
    with open(path, "rb") as f:
        data = f.read()
    plain = stats("-j", path).stdout
    rep = json.loads(plain)
    assert rep["verdicts"]["connect"]["connections"] == 5
    gz = tmp_path / "mx.log.gz"
    gz.write_bytes(gzip.compress(data))
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert stats("-j", str(gz)).stdout == plain
    assert stats("-j", stdin=data).stdout == plain
    assert stats("-j", "-", stdin=data).stdout == plain
    assert stats("-j", "-", stdin=gzip.compress(data)).stdout == plain
    # A log split in two, the older part rotated and compressed.
    lines = data.splitlines(keepends=True)
    half = len(lines) // 2
    old, new = tmp_path / "mx.log.1.gz", tmp_path / "mx.log"
    old.write_bytes(gzip.compress(b"".join(lines[:half])))
    new.write_bytes(b"".join(lines[half:]))
    assert stats("-j", str(old), str(new)).stdout == plain
    # The other way round: the same counts.
    assert stats_json(str(new), str(old))["verdicts"] == rep["verdicts"]
    # A gzip file cut short, and a missing file: one line, exit status 1.
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(data)[:-20])
    r = stats("-j", str(cut), check=False)
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().count("\n") == 1 and str(cut) in r.stderr.decode(), r.stderr
    r = stats(str(tmp_path / "nosuch.log"), check=False)
    assert r.returncode == 1
    assert r.stderr.decode() == f"mxscreen-stats: {tmp_path}/nosuch.log: No such file or " \
                                "directory\n"


# ----------------------------------------------------------------------
# (d) HTML


class TagChecker(html.parser.HTMLParser):
    """Tags and attributes of a page; every element closed in order."""
    VOID = {"meta", "br", "img", "link", "input", "hr", "col", "area", "base", "source", "rect"}

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.attrs, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_d_html_is_one_page_that_fetches_nothing(mx_log):
    path, (new, bot, listed, hangup) = mx_log
    page = stats("-H", path).stdout.decode()
    assert page.startswith("<!DOCTYPE html>\n")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    low = page.lower()
    for ref in ("http://", "https://", "//", "<script", "<link", "<img", "<iframe", "@import",
                "url("):
        assert ref not in low, ref
    p = TagChecker()
    p.feed(page)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert not any(k in ("src", "href") for k, _ in p.attrs)
    assert p.tags.count("style") == 1 and p.tags.count("svg") >= 4
    # The numbers: verdict rows, one bar per verdict seen, the top lists.
    assert "<tr><td>CONNECT</td><td>5</td><td>4</td></tr>" in page
    assert "<tr><td>PASS NEW</td><td>1</td><td>1</td></tr>" in page
    assert "<tr><td>DISCONNECT</td><td>3</td><td>3</td></tr>" in page
    assert "<tr><td>rank 2</td><td>1</td><td>1</td></tr>" in page
    assert f"<tr><td>{bot}</td><td>1</td><td>1</td></tr>" in page
    assert f"<tr><td>{listed}</td><td>1</td><td>1</td></tr>" in page
    assert "<tr><td>127.0.72.0/24</td><td>2</td><td>2</td></tr>" in page
    verdict_svg = page.split("<h2>Verdicts</h2>")[1].split("</svg>")[0]
    assert verdict_svg.count("<rect") == 8, verdict_svg
    assert ">5</text>" in verdict_svg


# ----------------------------------------------------------------------
# (e) the journal


def short_iso(log_text):
    """mxscreen's log as journalctl -o short-iso shows it."""
    year = time.localtime().tm_year
    out = ["-- Journal begins at Sat 2026-01-03 10:00:00 UTC, ends at Sat 2026-01-03 11:00:00 "
           "UTC. --"]
    for line in log_text.splitlines():
        t = time.strptime(f"{year} {line[:15]}", "%Y %b %d %H:%M:%S")
        out.append(time.strftime("%Y-%m-%dT%H:%M:%S+0000", t) + line[15:])
    return "\n".join(out) + "\n"


def fake_journalctl(d, script):
    path = os.path.join(d, "journalctl")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, stat.S_IRWXU)
    return dict(os.environ, PATH=f"{d}:/usr/bin:/bin")


def test_e_unit_runs_journalctl_and_reads_its_output(mx_log, tmp_path):
    path, _ = mx_log
    with open(path) as f:
        text = f.read()
    (tmp_path / "journal.txt").write_text(short_iso(text))
    env = fake_journalctl(str(tmp_path), f"""
[ "$*" = "-o short-iso -u mxscreen.service --no-pager" ] || {{ echo "bad args: $*" >&2; exit 2; }}
cat {tmp_path}/journal.txt
""")
    plain = stats_json(path)
    journal = stats_json("-u", "mxscreen.service", env=env)
    assert journal["time"]["seconds"] == plain["time"]["seconds"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", journal["time"]["first"])
    del journal["time"], plain["time"]
    assert journal == plain
    # Saved journalctl output is an input file like any other ("-- ... --"
    # notes are other lines there).
    saved = stats_json(str(tmp_path / "journal.txt"))
    assert saved["verdicts"] == plain["verdicts"] and saved["lines"]["other"] == 1


def test_e_unit_errors_are_one_line_and_exit_1(tmp_path):
    # No journalctl at all.
    empty = tmp_path / "empty"
    empty.mkdir()
    r = stats("-u", "mxscreen.service", env=dict(os.environ, PATH=str(empty)), check=False)
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == b"mxscreen-stats: cannot run journalctl: No such file or directory\n"
    # journalctl fails.
    env = fake_journalctl(str(tmp_path), 'echo "Failed to add filter for units: No data" >&2\n'
                                         "exit 1\n")
    r = stats("-u", "x.service", env=env, check=False)
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == (b"mxscreen-stats: journalctl -u x.service failed (exit 1): Failed to add "
                        b"filter for units: No data\n")
    # An unknown unit, with the real journalctl.
    real = shutil.which("journalctl", path="/usr/bin:/bin")
    if real is None:
        pytest.skip("journalctl is not installed (package systemd)")
    r = stats("-u", "mxscreen-no-such-unit-1234.service", check=False)
    assert (r.returncode, r.stdout) == (1, b"")
    err = r.stderr.decode()
    assert err.count("\n") == 1, err
    assert err.startswith("mxscreen-stats: journalctl -u mxscreen-no-such-unit-1234.service: no "
                          "journal entries"), err
