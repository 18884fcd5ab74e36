"""The abuse suite (issue 8, item 2): misbehaving clients on real sockets.

Table-driven: ROWS, at the end of this file, has one row per misbehaviour
and pytest runs each as a case of its own (test_abuse[ROW]).  A row is

  * a name;
  * the client's behaviour: a function of a Ctx that opens the
    misbehaving connections (one, or a crowd of thousands) and returns
    them, each with every byte it read from mxscreen;
  * the expected reply: the whole transcript of each such connection
    (bytes, a compiled pattern that must match all of it, or a predicate);
  * the expected log line: a regex in which {ep} stands for the
    connection's "[ADDR]:PORT"; every connection must get exactly one
    such line (a connection may ask for more lines of its own, see Bad.logs).

and every case also checks, whatever the row:

  * that a well-behaved client served AT THE SAME TIME gets its normal
    service (Row.good, class Good): the attack signals when the
    misbehaviour is in place (Ctx.hold, or Ctx.engaged for an attack that
    goes on by itself) and keeps it there until the good client is done.
    "new": a client never seen before gets the teaser within GOOD_BOUND,
    the greeting after the greet wait, passes the deep test at RCPT and is
    replayed to the backend, where its message arrives; "known": a client
    already in the allowlist is handed straight to the backend (PASS OLD)
    and its message arrives; "relaying": a known client whose session with
    the backend began before the attack finishes its message during it
    (for the hand-off queue limit, where every newcomer is rightly turned
    away); "teaser": a newcomer gets its teaser within GOOD_BOUND;
  * that mxscreen is whole afterwards: alive, no session left in any phase
    and both queues back at 0 (its /stats), no descriptors left behind
    (/proc/PID/fd), no panic or fatal line, and a clean exit 0 on SIGTERM
    with no sanitizer report (mxs.Mxscreen.stop).

The backend is a FakeBackend (fakebackend.py) with two more knobs by client
address (AbuseBackend): hold its greeting (the client stays in hand-off)
or delay it.  mxscreen screens every client but 127.0.0.1 and 127.9.0.0/16
(mynetworks, allowlisted): the pregreet test with a 1 s greet wait, then
the bare newline test in the engine, and a client that passes is replayed
to the backend in the same connection.

Load rows are bounded in count (2,000 slow clients, 10,000 connections
from one address, 1,500 and 5,000 addresses at once) and in time, and stop
by themselves.  The counts are the same on every build: nothing is timed
except against generous bounds (GOOD_BOUND, the limits' own times), so the
ASan build runs the same table (the module takes about 2 minutes on either
build, mostly greet waits and time limits).  The 5,000-address row needs
more than 5,000 descriptors in this process and in mxscreen (which
inherits them): the module raises its soft RLIMIT_NOFILE to the hard limit
and checks mxscreen's own limit in /proc/PID/limits (a host whose hard limit
is too low skips that row, saying so).

A row that exposes a real defect of mxscreen is marked
xfail(strict=True, reason="BUG: ...") rather than weakened.  The module
ends with one line, "abuse rows: N passed ...".
"""
import collections
import json
import os
import random
import re
import resource
import selectors
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import pytest

from conftest import RowCounter, report_line
from fakebackend import FULL_EHLO, FakeBackend
from mxs import (BIN, BYE, GREETING, MAIL_OK, OK, R450, R502, Mxscreen, free_port, recv_all,
                 recv_line, vm_rss_kb)
from tlsclient import client_context

CTL = os.path.join(os.path.dirname(BIN), "mxscreenctl")

TEASER = b"220-mxscreen.test ESMTP\r\n"
HELO_OK = b"250 mxscreen.test\r\n"
READY = b"220 2.0.0 Ready to start TLS\r\n"
R421_LIMIT = b"421 mxscreen.test Service unavailable - try again later\r\n"
R421_TIMEOUT = b"421 4.4.2 mxscreen.test Error: timeout exceeded\r\n"
R421_TOO_MANY = b"421 4.7.0 Error: too many connections\r\n"
R421_SERVER_BUSY = b"421 4.3.2 All server ports are busy\r\n"
R421_SCREENING_BUSY = b"421 4.3.2 All screening ports are busy\r\n"
R521_PROTO = b"521 5.5.1 Protocol error\r\n"
R521_NONSMTP = b"521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"
# The backend's own replies (fakebackend.py).
FB_GREETING = b"220 fake.test ESMTP\r\n"
FB_RCPT_OK = b"250 2.1.5 Ok\r\n"
FB_354 = b"354 End data with <CR><LF>.<CR><LF>\r\n"

# The engine's EHLO reply, whatever keywords the backend lets it offer.
EHLO_ANY = rb"250-mxscreen\.test\r\n(?:250-[^\r\n]*\r\n)*250 [^\r\n]*\r\n"

GOOD_BOUND = 5.0  # seconds: a good client's teaser, greeting or reply
HOLD_MAX = 120.0  # seconds an attack waits for the good client at most
SETTLE = 30.0  # seconds for the log and the session counts to settle
ENDPOINT = r"\[[0-9.]+\]:\d+"

BASE = {
    "mynetworks": "127.0.0.1/32 127.9.0.0/16",
    "smtpd_banner": "$myhostname ESMTP",
    "postscreen_greet_banner": "$smtpd_banner",
    "postscreen_greet_wait": "1s",
    "postscreen_bare_newline_enable": "yes",
    "mxscreen_deep_test_handoff": "replay",
    "postscreen_command_time_limit": "30s",
    # The default (100) would turn the crowds away; the row about this
    # limit sets its own.
    "postscreen_pre_queue_limit": "10000",
}


# ---- the backend ----------------------------------------------------------


class AbuseBackend(FakeBackend):
    """A FakeBackend that, by client address (the PROXY header's source),
    holds the greeting until release() (HOLD_IPS: the client stays in
    hand-off) or delays it (DELAY: seconds; a replay waits that long)."""

    def __init__(self, **kw):
        self.hold_ips = set()
        self.delay = {}
        self.released = threading.Event()
        super().__init__(**kw)

    def _read_proxy(self, c):
        rest = super()._read_proxy(c)
        src = c.proxy.get("src") if c.proxy else None
        if src in self.hold_ips:
            self.released.wait(HOLD_MAX)
        if self.delay.get(src):
            time.sleep(self.delay[src])
        return rest

    def release(self):
        self.released.set()

    def close(self):
        self.released.set()
        super().close()


# ---- misbehaving connections ---------------------------------------------


class Bad:
    """One misbehaving connection from IP: its endpoint as mxscreen logs it
    and ``got``, every byte it has read.  ``logs``: the log line templates
    it must get, and ``want`` the transcript, when not the row's own."""

    def __init__(self, ctx, ip, rcvbuf=None, timeout=30, port=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((ip, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port or ctx.mx.port))
        self.sock = s
        self.ip = ip
        self.port = s.getsockname()[1]
        self.ep = f"[{ip}]:{self.port}"
        self.got = b""
        self.logs = None
        self.want = None
        self.done = False
        ctx.opened.append(self)

    def send(self, data):
        self.sock.sendall(data)

    def read_exact(self, n, timeout=30):
        self.sock.settimeout(timeout)
        want = len(self.got) + n
        while len(self.got) < want:
            d = self.sock.recv(want - len(self.got))
            if not d:
                break
            self.got += d
        return self.got[want - n:]

    def expect(self, data, timeout=30):
        """Read len(DATA) bytes; they must be DATA."""
        start = len(self.got)
        self.read_exact(len(data), timeout)
        assert self.got[start:] == data, (f"{self.ep} read {self.got[start:]!r}, expected "
                                          f"{data!r} (all so far: {self.got!r})")

    def reply(self, timeout=30):
        """One whole SMTP reply (all its lines)."""
        start = len(self.got)
        self.sock.settimeout(timeout)
        while True:
            d = self.sock.recv(1)
            if not d:
                break
            self.got += d
            if d != b"\n":
                continue
            line_start = max(start, self.got.rfind(b"\n", start, len(self.got) - 1) + 1)
            if self.got[line_start + 3:line_start + 4] == b" ":
                break
        return self.got[start:]

    def some(self, timeout=2):
        """Whatever arrives within TIMEOUT (at least one read)."""
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return b""
        self.got += d
        return d

    def rest(self, timeout=30):
        """Everything until mxscreen closes (a reset ends it too); what came
        is kept in ``got`` even when TIMEOUT (for each read) passes first."""
        self.sock.settimeout(timeout)
        while True:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            self.got += d
        self.done = True
        return self.got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def rst(self):
        """Close with a reset (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class Seen:
    """A connection of a crowd, already closed: its endpoint and transcript."""

    def __init__(self, ip, port, got):
        self.ip, self.port, self.got = ip, port, got
        self.ep = f"[{ip}]:{port}"
        self.logs = self.want = None


# ---- the context of one row ----------------------------------------------


class Ctx:
    """What an attack works with: the row's INDEX (its addresses), the
    mxscreen MX, the backend FB, every socket it opens (closed by the
    harness), and the hold/release handshake with the good client."""

    def __init__(self, index, mx, fb):
        self.index = index
        self.mx = mx
        self.fb = fb
        self.opened = []
        self.engaged = threading.Event()
        self.release = threading.Event()

    def bad_ip(self, k=0):
        """The K-th address of this row's misbehaving clients (screened)."""
        return f"127.{20 + self.index}.{k // 250}.{k % 250 + 2}"

    def allowed_ip(self, k=0):
        """An address in mynetworks (allowlisted: straight to the backend)."""
        return f"127.9.{self.index}.{k + 2}"

    def good_ip(self, k=0):
        return f"127.200.{self.index}.{k + 2}"

    def hold(self):
        """The misbehaviour is in place: let the good client run, and wait
        until it is done."""
        self.engaged.set()
        assert self.release.wait(HOLD_MAX), "the good client never finished"

    def stats(self):
        return mx_stats(self.mx)

    def wait_stats(self, pred, what, timeout=SETTLE):
        deadline = time.time() + timeout
        while True:
            st = self.stats()
            if pred(st):
                return st
            if time.time() > deadline:
                raise AssertionError(f"mxscreen never had {what}: {st['sessions']} "
                                     f"{st['queues']}")
            time.sleep(0.05)


def mx_stats(mx):
    url = f"http://127.0.0.1:{mx.stats_port}/stats"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise ValueError("no Max open files")


def c_escape(data):
    """Peer bytes as mxscreen (and postscreen) log them: printable ASCII as
    is, a backslash doubled, \\a \\b \\f \\n \\r \\t \\v by name, every
    other byte as \\ooo; the first 100 bytes."""
    named = {7: "a", 8: "b", 12: "f", 10: "n", 13: "r", 9: "t", 11: "v"}
    out = []
    for ch in data[:100]:
        if ch == 0x5c:
            out.append("\\\\")
        elif 0x20 <= ch < 0x7f:
            out.append(chr(ch))
        elif ch in named:
            out.append("\\" + named[ch])
        else:
            out.append(f"\\{ch:03o}")
    return "".join(out)


def client_hello():
    """The first flight of a real TLS client (Python's ssl): a ClientHello."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="mxscreen.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS handshake without a server")


def garbage(n, seed, exclude=b""):
    """N bytes of seeded binary noise without the bytes in EXCLUDE."""
    rnd = random.Random(seed)
    keep = bytes(b for b in range(256) if b not in exclude)
    return bytes(rnd.choice(keep) for _ in range(n))


def send_in_thread(b, data):
    """Send DATA on B from a thread (mxscreen may close mid-way)."""
    def run():
        try:
            b.sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ---- the well-behaved clients --------------------------------------------


def deliver(sock, tag):
    """After the backend has the client (its RCPT answered, or its EHLO):
    DATA, the message, QUIT; mxscreen then closes."""
    def reply():
        return recv_reply_within(sock, GOOD_BOUND)
    sock.sendall(b"DATA\r\n")
    assert reply() == FB_354
    sock.sendall(f"Subject: {tag}\r\n\r\nhello\r\n.\r\n".encode())
    r = reply()
    assert r.startswith(b"250 2.0.0 Ok: queued as FAKE"), r
    sock.sendall(b"QUIT\r\n")
    assert reply() == BYE
    assert recv_all(sock, GOOD_BOUND) == b""


def recv_reply_within(sock, timeout):
    """One SMTP reply, each byte within TIMEOUT."""
    sock.settimeout(timeout)
    out = b""
    while True:
        d = sock.recv(1)
        if not d:
            return out
        out += d
        if d == b"\n":
            last = out[out.rfind(b"\n", 0, len(out) - 1) + 1:]
            if last[3:4] == b" ":
                return out


def good_connect(ctx, ip):
    s = socket.socket()
    s.bind((ip, 0))
    s.settimeout(GOOD_BOUND)
    s.connect(("127.0.0.1", ctx.mx.port))
    ctx.opened.append(s)
    return s


def message_arrived(ctx, ip, tag):
    conn = ctx.fb.wait_conn(ip, timeout=GOOD_BOUND)
    deadline = time.time() + GOOD_BOUND
    while not any(tag.encode() in d for d in conn.data):
        assert time.time() < deadline, f"no message {tag} from {ip} at the backend: {conn!r}"
        time.sleep(0.02)


def good_new(ctx):
    """A client never seen: teaser, greeting, engine, replay, message (in
    reconnect mode: 450 at RCPT, then straight through when it comes back)."""
    ip = ctx.good_ip(0)
    tag = f"good-new-{ctx.index}"
    t0 = time.time()
    s = good_connect(ctx, ip)
    assert recv_line(s, GOOD_BOUND) == TEASER
    assert time.time() - t0 < GOOD_BOUND, "the teaser came late"
    greet_wait = int(ctx.mx.params["postscreen_greet_wait"].rstrip("s"))
    line = recv_line(s, greet_wait + GOOD_BOUND)
    assert line == GREETING, line
    s.sendall(b"EHLO good.example\r\n")
    assert re.fullmatch(EHLO_ANY, recv_reply_within(s, GOOD_BOUND))
    s.sendall(b"MAIL FROM:<good@example.org>\r\n")
    assert recv_reply_within(s, GOOD_BOUND) == MAIL_OK
    s.sendall(b"RCPT TO:<user@example.net>\r\n")
    if ctx.mx.params["mxscreen_deep_test_handoff"] == "replay":
        assert recv_reply_within(s, GOOD_BOUND) == FB_RCPT_OK  # the backend's, replayed
        deliver(s, tag)
    else:
        # postscreen's way: come back later, and go straight through then.
        assert recv_reply_within(s, GOOD_BOUND) == R450
        s.sendall(b"QUIT\r\n")
        assert recv_reply_within(s, GOOD_BOUND) == BYE
        s.close()
        ctx.mx.wait_for_log(rf"DISCONNECT \[{re.escape(ip)}\]:\d+$", timeout=GOOD_BOUND)
        s = known_session(ctx, ip)
        finish_known(ctx, s, ip, tag)
        return
    s.close()
    message_arrived(ctx, ip, tag)
    ctx.mx.wait_for_log(rf"PASS NEW \[{re.escape(ip)}\]:\d+$", timeout=GOOD_BOUND)


def seed_known(ctx, ip):
    """Put IP in mxscreen's allowlist (as an earlier pass would have)."""
    r = subprocess.run([CTL, "-c", ctx.mx.cf_path, "add", ip], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "Sanitizer" not in r.stderr, r.stderr


def known_session(ctx, ip):
    """A known client: straight to the backend (PASS OLD), its greeting
    within GOOD_BOUND; returns the socket after EHLO."""
    t0 = time.time()
    s = good_connect(ctx, ip)
    assert recv_reply_within(s, GOOD_BOUND) == FB_GREETING
    assert time.time() - t0 < GOOD_BOUND, "the greeting came late"
    s.sendall(b"EHLO known.example\r\n")
    assert recv_reply_within(s, GOOD_BOUND) == FULL_EHLO
    return s


def finish_known(ctx, s, ip, tag):
    s.sendall(b"MAIL FROM:<known@example.org>\r\n")
    assert recv_reply_within(s, GOOD_BOUND) == MAIL_OK
    s.sendall(b"RCPT TO:<user@example.net>\r\n")
    assert recv_reply_within(s, GOOD_BOUND) == FB_RCPT_OK
    deliver(s, tag)
    s.close()
    message_arrived(ctx, ip, tag)


class Good:
    """The well-behaved clients of one row: prepare() before the attack,
    run() while it holds."""

    def __init__(self, ctx, modes):
        self.ctx = ctx
        self.modes = modes
        self.relaying = None

    def prepare(self):
        ctx = self.ctx
        if "known" in self.modes:
            seed_known(ctx, ctx.good_ip(1))
        if "relaying" in self.modes:
            ip = ctx.good_ip(2)
            seed_known(ctx, ip)
            self.relaying = known_session(ctx, ip)
            ctx.mx.wait_for_log(rf"PASS OLD \[{re.escape(ip)}\]:\d+$", timeout=GOOD_BOUND)

    def run(self):
        ctx = self.ctx
        if "teaser" in self.modes:
            t0 = time.time()
            s = good_connect(ctx, ctx.good_ip(3))
            assert recv_line(s, GOOD_BOUND) == TEASER
            assert time.time() - t0 < GOOD_BOUND
            s.close()
        if "relaying" in self.modes:
            finish_known(ctx, self.relaying, ctx.good_ip(2), f"good-relaying-{ctx.index}")
        if "known" in self.modes:
            ip = ctx.good_ip(1)
            s = known_session(ctx, ip)
            finish_known(ctx, s, ip, f"good-known-{ctx.index}")
            ctx.mx.wait_for_log(rf"PASS OLD \[{re.escape(ip)}\]:\d+$", timeout=GOOD_BOUND)
        if "new" in self.modes:
            good_new(ctx)


# ---- the attacks ----------------------------------------------------------
#
# Each takes the row's Ctx, calls ctx.hold() (or sets ctx.engaged) once the
# misbehaviour is in place, and returns the misbehaving connections.

COUNT_LIMIT = 5
LINE_LIMIT = 1000


def count_at_limit(ctx):
    """postscreen_command_count_limit = 5: five commands are answered, and
    QUIT (exempt) after them still is."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    for _ in range(COUNT_LIMIT):
        b.send(b"NOOP\r\n")
        b.expect(OK)
    ctx.hold()
    b.send(b"QUIT\r\n")
    b.rest()
    return [b]


def count_over_limit(ctx):
    """The sixth command is one too many."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    for _ in range(COUNT_LIMIT):
        b.send(b"NOOP\r\n")
        b.expect(OK)
    ctx.hold()
    b.send(b"NOOP\r\n")
    b.rest()
    return [b]


def line_at_limit(ctx):
    """line_length_limit = 1000: a line of 999 bytes (before CR LF) is the
    longest accepted."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    line = b"NOOP " + b"x" * (LINE_LIMIT - 1 - 5)
    assert len(line) == LINE_LIMIT - 1
    b.send(line + b"\r\n")
    b.expect(OK)
    ctx.hold()
    b.send(b"QUIT\r\n")
    b.rest()
    return [b]


def line_over_limit(ctx):
    """One byte more (1000 before CR LF) is too long."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"NOOP\r\n")
    b.expect(OK)
    ctx.hold()
    b.send(b"NOOP " + b"x" * (LINE_LIMIT - 5) + b"\r\n")
    b.rest()
    return [b]


def idle_in_engine(ctx):
    """postscreen_command_time_limit = 3s; the client says nothing."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    t0 = time.time()
    ctx.engaged.set()
    b.rest(timeout=3 + 30)
    waited = time.time() - t0
    assert 2.5 <= waited < 3 + GOOD_BOUND, f"ended after {waited:.1f}s, the limit is 3s"
    return [b]


CLIENT_LIMIT = 3


def client_limit_edge(ctx):
    """postscreen_client_connection_count_limit = 3: three connections from
    one address are screened, the fourth is turned away."""
    ip = ctx.bad_ip()
    held = [Bad(ctx, ip) for _ in range(CLIENT_LIMIT)]
    for h in held:
        h.expect(TEASER)
    fourth = Bad(ctx, ip)
    fourth.rest()
    ctx.hold()
    for h in held:  # still screened: nothing but the teaser (and the greeting)
        assert h.got == TEASER and h.some(0.1) in (b"", GREETING), h.got
        h.close()
    return [fourth]


PRE_QUEUE = 10


def pre_queue_edge(ctx):
    """postscreen_pre_queue_limit = 10: as in postscreen, the newcomer counts
    itself, so nine clients are screened and the tenth is turned away."""
    held = [Bad(ctx, ctx.bad_ip(k)) for k in range(PRE_QUEUE - 1)]
    for h in held:
        h.expect(TEASER)
    ctx.wait_stats(lambda st: st["queues"]["check"] == PRE_QUEUE - 1, "nine being screened")
    tenth = Bad(ctx, ctx.bad_ip(PRE_QUEUE))
    tenth.rest()
    ctx.hold()
    for h in held:
        assert R421_SCREENING_BUSY not in h.got + h.some(0.1), h.got
        h.close()
    return [tenth]


POST_QUEUE = 5


def post_queue_edge(ctx):
    """postscreen_post_queue_limit = 5: five allowlisted clients wait for a
    backend that has not greeted them; the sixth client is turned away."""
    ips = [ctx.allowed_ip(k) for k in range(POST_QUEUE)]
    ctx.fb.hold_ips.update(ips)
    held = [Bad(ctx, ip) for ip in ips]
    ctx.wait_stats(lambda st: st["queues"]["post"] == POST_QUEUE, "five in hand-off")
    for h in held:
        assert h.some(0.1) == b"", h.got
    sixth = Bad(ctx, ctx.allowed_ip(POST_QUEUE))
    sixth.rest()
    ctx.hold()
    ctx.fb.release()
    for h in held:  # the backend takes them now
        h.expect(FB_GREETING, timeout=GOOD_BOUND)
        h.close()
    return [sixth]


SLOW_CLIENTS = 2000
SLOW_TIME_LIMIT = 4
SLOW_LOG = "COMMAND TIME LIMIT from {ep} after CONNECT"


def slowloris(ctx):
    """2,000 clients from addresses of their own trickle one byte every
    half second and never end a line.  Half of them send their first byte
    during the greet wait (PREGREET; the action is ignore, so they go on
    into the engine), half after the greeting.  The command time limit (4 s
    from the greeting, however the bytes trickle) ends each one."""
    sel = selectors.DefaultSelector()
    conns = []
    deadline = time.time() + 120
    junk = b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP"

    def pump(timeout):
        for key, _ in sel.select(timeout):
            b = key.data
            try:
                d = b.sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                d = b""
            if d:
                b.got += d
                if b.early and not b.sent and b.got.startswith(TEASER):
                    b.sock.send(b"N")  # in the greet wait: a pregreet
                    b.sent = 1
                continue
            sel.unregister(b.sock)
            b.sock.close()
            b.done = True

    try:
        for k in range(SLOW_CLIENTS):
            b = Bad(ctx, ctx.bad_ip(k))
            b.sock.setblocking(False)
            b.early = k % 2 == 0
            b.sent = 0
            if b.early:
                b.logs = [SLOW_LOG, r"PREGREET 1 after \S+ from {ep}: N"]
            conns.append(b)
            sel.register(b.sock, selectors.EVENT_READ, b)
            if k % 100 == 99:
                pump(0)
        # Everyone has had the teaser (the early half has pregreeted).
        while any(not c.got.startswith(TEASER) for c in conns):
            assert time.time() < deadline, "teasers missing"
            pump(0.1)
        ctx.engaged.set()
        last = 0.0
        while not all(c.done for c in conns):
            assert time.time() < deadline, "slow clients still connected after 120 s"
            if time.time() - last >= 0.5:
                last = time.time()
                for c in conns:
                    if c.done or not c.got.startswith(TEASER + GREETING):
                        continue
                    try:
                        c.sock.send(junk[c.sent % len(junk):][:1])
                        c.sent += 1
                    except (BlockingIOError, OSError):
                        pass
            pump(0.1)
    finally:
        sel.close()
    return conns


def cpu_seconds(pid):
    """User and system CPU time of process PID so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_until_stalled(ctx, send, budget=64 << 20):
    """Push NOOPs with SEND (non-blocking) until mxscreen stops taking them
    (nothing taken for a second), never reading; returns the bytes pushed
    and the highest VmRSS of mxscreen meanwhile."""
    pid = ctx.mx.proc.pid
    chunk = b"NOOP\r\n" * 10000
    sent, blocked, peak, deadline = 0, None, 0, time.time() + 20
    while time.time() < deadline and sent < budget:
        try:
            sent += send(chunk)
            blocked = None
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            blocked = blocked or time.time()
            if time.time() - blocked > 1.0:
                break
            time.sleep(0.02)
        peak = max(peak, vm_rss_kb(pid))
    assert blocked is not None, f"mxscreen took {sent} bytes from a client that never reads"
    return sent, peak


def assert_stalled_cheaply(ctx, rss0, sent, peak):
    """While the client is stalled: mxscreen does not spin, and its memory
    grew by less than 20 MB; a good client is served meanwhile."""
    pid = ctx.mx.proc.pid
    cpu0 = cpu_seconds(pid)
    time.sleep(1.0)
    cpu = cpu_seconds(pid) - cpu0
    assert cpu < 0.3, f"mxscreen used {cpu:.2f}s of CPU in 1s with a stalled client"
    ctx.hold()
    peak = max(peak, vm_rss_kb(pid))
    assert peak - rss0 < 20 * 1024, (f"VmRSS grew from {rss0} to {peak} kB while a client "
                                     f"pushed {sent} bytes and read nothing")


def never_reads(ctx):
    """A client with a tiny receive window pipelines NOOPs and never reads
    a reply.  mxscreen must stop reading it (the output cap) rather than
    queue replies without bound: its VmRSS may not grow by 20 MB while the
    client pushes all it can (up to 64 MiB), and it must not spin."""
    b = Bad(ctx, ctx.bad_ip(), rcvbuf=4096)
    b.expect(TEASER + GREETING)
    rss0 = vm_rss_kb(ctx.mx.proc.pid)
    b.sock.setblocking(False)
    sent, peak = push_until_stalled(ctx, b.sock.send)
    assert_stalled_cheaply(ctx, rss0, sent, peak)
    # Read a little of what is due, then leave without reading the rest.
    b.sock.setblocking(True)
    b.read_exact(64 * 1024, timeout=30)
    b.close()
    return [b]


def never_reads_under_tls(ctx):
    """The same over TLS (STARTTLS first): OpenSSL's buffers are bounded too."""
    b = Bad(ctx, ctx.bad_ip(), rcvbuf=4096)
    b.expect(TEASER + GREETING)
    b.send(b"STARTTLS\r\n")
    b.expect(READY)
    tls = client_context().wrap_socket(b.sock)
    b.sock = tls
    rss0 = vm_rss_kb(ctx.mx.proc.pid)
    tls.setblocking(False)
    pending = []

    def send(chunk):
        # A TLS write that would block must be retried with the same data.
        data = pending[0] if pending else chunk
        pending[:] = [data]
        n = tls.send(data)
        pending.clear()
        return n
    sent, peak = push_until_stalled(ctx, send)
    assert_stalled_cheaply(ctx, rss0, sent, peak)
    tls.setblocking(True)
    tls.settimeout(30)
    while len(b.got) < len(TEASER + GREETING + READY) + 64 * 1024:
        d = tls.recv(16384)
        if not d:
            break
        b.got += d
    b.close()
    return [b]


def one_mebibyte_line(ctx):
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    ctx.engaged.set()
    t = send_in_thread(b, b"NOOP " + b"x" * (1 << 20) + b"\r\n")
    b.rest()
    t.join(30)
    return [b]


def nul_in_commands(ctx):
    """A NUL ends the command text, as in Postfix's C strings."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"NOOP\x00junk after the NUL\r\n")
    b.expect(OK)
    b.send(b"\x00EHLO x\r\n")
    b.expect(R502)
    ctx.hold()
    b.send(b"QU\x00IT\r\n")
    b.expect(R502)
    b.send(b"QUIT\r\n")
    b.rest()
    return [b]


NUL_PREGREET = b"\x00\x00\x00EHLO x\r\n"


def nul_pregreet(ctx):
    """NUL bytes before the greeting (postscreen_greet_action = drop)."""
    b = Bad(ctx, ctx.bad_ip())
    b.send(NUL_PREGREET)
    ctx.engaged.set()
    b.rest()
    return [b]


def garbage_without_newline(ctx):
    """4 KiB of binary noise with no line end: too long a line."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    ctx.engaged.set()
    t = send_in_thread(b, garbage(4096, seed=1, exclude=b"\r\n"))
    b.rest()
    t.join(30)
    return [b]


GARBAGE_LINE = b"\xff" + garbage(200, seed=2, exclude=b"\r\n\x00")


def garbage_line_non_smtp(ctx):
    """A line of binary noise (not UTF-8) with the non-SMTP command test on
    (action drop)."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    ctx.engaged.set()
    b.send(GARBAGE_LINE + b"\r\n")
    b.rest()
    return [b]


def cr_only_stream(ctx):
    """100,000 CRs and never a LF: postscreen's own 17-year memory bug (its
    length check skipped bytes after a CR).  Too long a line."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    ctx.engaged.set()
    t = send_in_thread(b, b"\r" * 100000)
    b.rest()
    t.join(30)
    return [b]


HELLO = client_hello()


def tls_hello_pregreet(ctx):
    """A TLS ClientHello as the first bytes (postscreen_greet_action = drop)."""
    b = Bad(ctx, ctx.bad_ip())
    b.send(HELLO)
    ctx.engaged.set()
    b.rest()
    return [b]


TLS_FAILED = r"warning: TLS handshake failed for {ep}: .+"
HANGUP_AFTER = r"HANGUP after \S+ from {ep} in tests after SMTP handshake"
HANGUP_BEFORE = r"HANGUP after \S+ from {ep} in tests before SMTP handshake"


def after_starttls(junk):
    """STARTTLS, then JUNK instead of a TLS handshake."""
    def attack(ctx):
        b = Bad(ctx, ctx.bad_ip())
        b.expect(TEASER + GREETING)
        b.send(b"STARTTLS\r\n")
        b.expect(READY)
        ctx.engaged.set()
        try:
            b.send(junk)
        except OSError:
            pass
        b.rest()
        b.logs = [TLS_FAILED, HANGUP_AFTER]
        return [b]
    return attack


def hello_then_garbage(ctx):
    """STARTTLS, a real ClientHello, the server's answer, then noise."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"STARTTLS\r\n")
    b.expect(READY)
    b.send(HELLO)
    b.read_exact(5, timeout=GOOD_BOUND)  # the server's first record header
    ctx.engaged.set()
    try:
        b.send(garbage(2048, seed=3))
    except OSError:
        pass
    b.rest()
    b.logs = [TLS_FAILED, HANGUP_AFTER]
    return [b]


def half_close_in_greet_wait(ctx):
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER)
    b.sock.shutdown(socket.SHUT_WR)
    ctx.engaged.set()
    b.rest()
    return [b]


def half_close_in_engine(ctx):
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.sock.shutdown(socket.SHUT_WR)
    ctx.engaged.set()
    b.rest()
    return [b]


def send_then_half_close(ctx):
    """Two commands and the end of the client's stream in one go: both are
    answered before the hang-up."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"HELO x\r\nNOOP\r\n")
    b.sock.shutdown(socket.SHUT_WR)
    ctx.engaged.set()
    b.rest()
    return [b]


def rst_in_greet_wait(ctx):
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER)
    b.rst()
    ctx.engaged.set()
    return [b]


def rst_in_engine(ctx):
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"HELO x\r\n")
    b.expect(HELO_OK)
    b.rst()
    ctx.engaged.set()
    return [b]


def rst_mid_relay(ctx):
    """An allowlisted client relayed to the backend resets mid-session: the
    backend's connection must be closed too."""
    ip = ctx.allowed_ip()
    b = Bad(ctx, ip)
    b.expect(FB_GREETING)
    b.send(b"EHLO x\r\n")
    b.expect(FULL_EHLO)
    b.send(b"MAIL FROM:<a@b>\r\n")
    b.expect(MAIL_OK)
    b.rst()
    conn = ctx.fb.wait_conn(ip)
    assert conn.closed.wait(GOOD_BOUND), "the backend's side of the relay stayed open"
    ctx.engaged.set()
    return [b]


def rst_mid_replay(ctx):
    """A new client passes at RCPT and resets while mxscreen replays it to
    a backend slow to greet (2 s): the replay goes on, finds the client
    gone, and everything is closed."""
    ip = ctx.bad_ip()
    ctx.fb.delay[ip] = 2
    b = Bad(ctx, ip)
    b.expect(TEASER + GREETING)
    b.send(b"EHLO x\r\n")
    b.reply()
    b.send(b"MAIL FROM:<a@b>\r\n")
    b.expect(MAIL_OK)
    b.send(b"RCPT TO:<c@d>\r\n")
    time.sleep(0.3)
    b.rst()
    ctx.engaged.set()
    conn = ctx.fb.wait_conn(ip, timeout=GOOD_BOUND + 2)
    assert conn.closed.wait(GOOD_BOUND + 2), "the backend's side of the replay stayed open"
    return [b]


BACKEND_GONE = b"451 4.3.0 Backend going away\r\n"


def backend_rst_mid_relay(ctx):
    """The backend says a last word and resets mid-relay: the client hears
    that word, then the end."""
    b = Bad(ctx, ctx.allowed_ip())
    b.expect(FB_GREETING)
    b.send(b"EHLO x\r\n")
    b.expect(FULL_EHLO)
    ctx.engaged.set()
    b.send(b"MAIL FROM:<rst@abuse.example>\r\n")
    b.rest()
    return [b]


LONG_EHLO = b"EHLO " + b"h" * 2040
LONG_MAIL = b'MAIL FROM:<"' + b'q\\"' * 600 + b'"@' + b"d" * 200 + b">"
LONG_RCPT = (b"RCPT TO:<@r1.example,@r2.example:" + b"u\x01\x7f\xff<>()" * 200
             + b"@example.net>")
assert max(map(len, (LONG_EHLO, LONG_MAIL, LONG_RCPT))) <= 2047  # line_length_limit - 1


def long_arguments(ctx):
    """EHLO, MAIL and RCPT with arguments as long as a line may be, full of
    quotes, backslashes, controls, 8-bit bytes and a source route; in
    reconnect mode RCPT is refused (450) with its NOQUEUE line, and in
    replay mode the three lines reach the backend exactly as sent."""
    ip = ctx.bad_ip()
    b = Bad(ctx, ip)
    b.expect(TEASER + GREETING)
    b.send(LONG_EHLO + b"\r\n")
    b.reply()
    b.send(LONG_MAIL + b"\r\n")
    b.expect(MAIL_OK)
    ctx.hold()
    b.send(LONG_RCPT + b"\r\n")
    b.reply()
    b.send(b"QUIT\r\n")
    b.rest()
    if ctx.mx.params["mxscreen_deep_test_handoff"] == "replay":
        conn = ctx.fb.wait_conn(ip, timeout=GOOD_BOUND)
        sent = [x.decode("utf-8", "replace") for x in (LONG_EHLO, LONG_MAIL, LONG_RCPT)]
        assert conn.commands[:3] == sent, conn.commands[:3]
    return [b]


def rst_right_after_connect(ctx):
    """Connect and reset at once, perhaps before mxscreen has accepted."""
    b = Bad(ctx, ctx.bad_ip())
    b.rst()
    ctx.engaged.set()
    return [b]


def half_close_during_handoff(ctx):
    """An allowlisted client says QUIT and ends its stream before the
    backend (1 s slow) has greeted: the QUIT still reaches the backend and
    the client still hears the greeting and the 221."""
    ip = ctx.allowed_ip()
    ctx.fb.delay[ip] = 1
    b = Bad(ctx, ip)
    b.send(b"QUIT\r\n")
    b.sock.shutdown(socket.SHUT_WR)
    ctx.engaged.set()
    b.rest()
    return [b]


def rst_during_handoff(ctx):
    """An allowlisted client resets while the backend (2 s slow) has not
    greeted it yet: the hand-off ends and its backend connection closes."""
    ip = ctx.allowed_ip()
    ctx.fb.delay[ip] = 2
    b = Bad(ctx, ip)
    conn = ctx.fb.wait_conn(ip, timeout=GOOD_BOUND)
    b.rst()
    ctx.engaged.set()
    assert conn.closed.wait(2 + GOOD_BOUND), "the backend's side of the hand-off stayed open"
    return [b]


def starttls_injection(ctx):
    """Plaintext pipelined after STARTTLS (CVE-2011-0411's trick) is not
    executed as if it came over TLS."""
    b = Bad(ctx, ctx.bad_ip())
    b.expect(TEASER + GREETING)
    b.send(b"STARTTLS\r\nNOOP\r\n")
    b.expect(READY)
    tls = client_context().wrap_socket(b.sock)
    b.sock = tls
    ctx.hold()
    tls.sendall(b"QUIT\r\n")
    b.rest()
    return [b]


def client_limit_counts_relays(ctx):
    """postscreen_client_connection_count_limit = 3 and three relayed
    sessions from one (allowlisted) address: README, "How mxscreen counts":
    the limit counts every connection mxscreen holds for an address, the
    whole relayed session included, so a fourth is turned away."""
    ip = ctx.allowed_ip()
    relayed = [Bad(ctx, ip) for _ in range(CLIENT_LIMIT)]
    for r in relayed:
        r.expect(FB_GREETING)
    ctx.wait_stats(lambda st: st["sessions"]["relay"] == CLIENT_LIMIT, "three relayed")
    fourth = Bad(ctx, ip)
    try:
        fourth.rest(timeout=GOOD_BOUND)
    except socket.timeout:
        pass  # relayed too, waiting for its EHLO: the limit did not apply
    ctx.hold()
    for r in relayed:
        r.close()
    return [fourth]


def never_reads_in_relay(ctx):
    """An allowlisted client relayed to the backend pipelines NOOPs and
    never reads: the relay (splice) must stall it without growing or
    spinning.  The backend ends it at its own time limit (3 s here), as
    Postfix would at smtpd_timeout."""
    b = Bad(ctx, ctx.allowed_ip(), rcvbuf=4096)
    b.expect(FB_GREETING)
    rss0 = vm_rss_kb(ctx.mx.proc.pid)
    b.sock.setblocking(False)
    sent, peak = push_until_stalled(ctx, b.sock.send)
    assert_stalled_cheaply(ctx, rss0, sent, peak)
    b.sock.setblocking(True)
    b.read_exact(64 * 1024, timeout=30)
    b.close()
    return [b]


SHUTDOWN_WAITING = 300
SHUTDOWN_ENGINE = 300


def sigterm_under_load(ctx):
    """SIGTERM while 300 clients wait in the greet wait, 300 sit in the
    engine (they talked early, PREGREET with the action ignore), one is in
    its TLS handshake, five wait in hand-off (the backend has not greeted
    them) and five are relayed: mxscreen stops accepting, gives them its
    shutdown time (2 s), exits 0 and the sanitizers find nothing."""
    waiting = [Bad(ctx, ctx.bad_ip(k)) for k in range(SHUTDOWN_WAITING)]
    engine = []
    for k in range(SHUTDOWN_ENGINE):
        e = Bad(ctx, ctx.bad_ip(SHUTDOWN_WAITING + k))
        e.send(b"NOOP\r\n")
        engine.append(e)
    tls = Bad(ctx, ctx.bad_ip(SHUTDOWN_WAITING + SHUTDOWN_ENGINE))
    tls.send(b"NOOP\r\n")
    held_ips = [ctx.allowed_ip(k) for k in range(5)]
    ctx.fb.hold_ips.update(held_ips)
    held = [Bad(ctx, ip) for ip in held_ips]
    relayed = [Bad(ctx, ctx.allowed_ip(5 + k)) for k in range(5)]
    for w in waiting:
        w.expect(TEASER)
        w.want = TEASER
    for e in engine:
        e.expect(TEASER + GREETING + OK)
        e.want = TEASER + GREETING + OK
    tls.expect(TEASER + GREETING + OK)
    tls.send(b"STARTTLS\r\n")
    tls.expect(READY)
    tls.want = TEASER + GREETING + OK + READY
    for r in relayed:
        r.expect(FB_GREETING)
        r.want = FB_GREETING
    for h in held:
        h.want = b""
    everyone = waiting + engine + [tls] + held + relayed
    n = len(everyone)
    ctx.wait_stats(lambda st: st["queues"]["post"] == 5 and st["sessions"]["relay"] == 5,
                   "five in hand-off and five relayed")
    ctx.hold()
    ctx.mx.stop()  # SIGTERM; exit 0, no sanitizer report
    for b in everyone:
        b.rest(timeout=GOOD_BOUND)
    text = ctx.mx.log_text()
    assert f"stopping on signal 15: {n} sessions in progress" in text, text[-2000:]
    assert re.search(r"stopping: shutdown time limit reached with \d+ sessions left", text)
    return everyone


SCREENING_LIMIT = 1000
SCREENING_CROWD = 1500


def screening_ports_flood(ctx):
    """postscreen_pre_queue_limit = 1000 and 1,500 clients from addresses
    of their own, one after the other: the first 999 are screened (STRESS
    mode from the 900th, at 90 %), the other 501 are turned away; when they
    leave, STRESS mode ends at 70 %, 700 connections."""
    held, turned = [], []
    for k in range(SCREENING_CROWD):
        b = Bad(ctx, ctx.bad_ip(k))
        first = b.read_exact(len(TEASER), timeout=GOOD_BOUND)
        if first == TEASER:
            b.want, b.logs = TEASER, [HANGUP_BEFORE]
            held.append(b)
        else:
            b.rest()
            turned.append(b)
    assert len(held) == SCREENING_LIMIT - 1, len(held)
    ctx.wait_stats(lambda st: st["queues"]["check"] == SCREENING_LIMIT - 1, "999 screened")
    ctx.hold()
    for b in held:
        b.close()
    ctx.mx.wait_for_log(r"leaving STRESS mode with \d+ connections$", timeout=SETTLE)
    text = "\n".join(ctx.mx.log_lines())
    assert re.findall(r"^(?:entering|leaving) STRESS mode with \d+ connections$", text, re.M) == [
        "entering STRESS mode with 900 connections", "leaving STRESS mode with 700 connections"]
    return held + turned


HTTP_TIME_LIMIT = 5  # README, "Metrics and the dashboard": 5 seconds to send a request


def stats_slowloris(ctx):
    """The stats listener (mxscreen_stats_listen, in the same event loop):
    a client trickles a request, one byte a second, never finishing it.
    README: "Requests are bounded: ... 5 seconds to send a request"."""
    b = Bad(ctx, ctx.bad_ip(), port=ctx.mx.stats_port)
    request = b"GET /stats HTTP/1.1\r\nHost: mxscreen.test\r\n" + b"X-Slow: y\r\n" * 100
    b.sock.setblocking(False)
    ctx.engaged.set()
    t0, closed_after = time.time(), None
    for i in range(len(request)):
        waited = time.time() - t0
        if waited > HTTP_TIME_LIMIT + GOOD_BOUND:
            break
        try:
            b.sock.send(request[i:i + 1])
            d = b.sock.recv(4096)
        except BlockingIOError:
            time.sleep(1)
            continue
        except OSError:
            d = b""
        b.got += d
        if not d:
            closed_after = waited
            break
    assert closed_after is not None, (
        f"the stats listener kept a request open for {time.time() - t0:.0f}s while it "
        f"trickled in (a byte a second); the limit is {HTTP_TIME_LIMIT}s")
    return [b]


FLOOD = 10000
FLOOD_LIMIT = 5


def one_address_flood(ctx):
    """postscreen_client_connection_count_limit = 5: five connections from
    one address are held in the engine while 10,000 more from it connect,
    read their 421 and close, one after the other."""
    ip = ctx.bad_ip()
    held = [Bad(ctx, ip) for _ in range(FLOOD_LIMIT)]
    for h in held:
        h.expect(TEASER)
    ctx.engaged.set()
    seen, deadline = [], time.time() + 180
    for _ in range(FLOOD):
        assert time.time() < deadline, f"only {len(seen)} connections in 180 s"
        s = socket.socket()
        s.bind((ip, 0))
        s.settimeout(30)
        s.connect(("127.0.0.1", ctx.mx.port))
        port = s.getsockname()[1]
        got = recv_all(s, 30)
        s.close()
        seen.append(Seen(ip, port, got))
    ctx.hold()
    for h in held:
        assert R421_TOO_MANY not in h.got, h.got
        h.close()
    return seen


CROWD = 5000


def crowd(ctx):
    """5,000 clients from 5,000 addresses at once, all held in the greet
    wait (30 s here), then they all leave."""
    pid = ctx.mx.proc.pid
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(soft, nofile_limit(pid)) < CROWD + 500:
        pytest.skip(f"needs {CROWD + 500} descriptors; this process has {soft} (hard {hard}), "
                    f"mxscreen {nofile_limit(pid)}")
    sel = selectors.DefaultSelector()
    conns = []
    deadline = time.time() + 120
    try:
        for k in range(CROWD):
            b = Bad(ctx, ctx.bad_ip(k))
            b.sock.setblocking(False)
            sel.register(b.sock, selectors.EVENT_READ, b)
            conns.append(b)
            if k % 250 == 249 or k == CROWD - 1:
                # This batch's teasers, before the next batch knocks.
                while any(len(c.got) < len(TEASER) for c in conns[-250:]):
                    assert time.time() < deadline, "teasers missing"
                    for key, _ in sel.select(0.1):
                        c = key.data
                        try:
                            d = c.sock.recv(4096)
                        except OSError:
                            d = b""
                        assert d, f"{c.ep} was closed in the greet wait"
                        c.got += d
        assert all(c.got == TEASER for c in conns)
        st = ctx.wait_stats(lambda st: st["sessions"]["early"] >= CROWD, "5,000 in the greet wait")
        assert st["queues"]["check"] >= CROWD
    finally:
        sel.close()
    ctx.hold()
    for c in conns:
        c.sock.close()
    return conns


# ---- the table ------------------------------------------------------------


@dataclass
class Row:
    name: str
    attack: Callable
    reply: Union[bytes, re.Pattern, Callable]  # each connection's whole transcript
    log: Optional[str]  # one line per connection; {ep} is its endpoint (None: no line)
    params: dict = field(default_factory=dict)
    good: tuple = ("new",)
    not_log: Optional[str] = None  # a template of lines the connection must not get
    tls: bool = False
    backend: dict = field(default_factory=dict)  # FakeBackend knobs
    stops: bool = False  # the attack stops mxscreen itself (and checks its exit)
    marks: tuple = ()


def never_reads_reply(got, head=TEASER + GREETING):
    """HEAD, then as many "250 2.0.0 Ok" as were read (the last perhaps
    cut short)."""
    tail = got[len(head):]
    return got.startswith(head) and (OK * (len(tail) // len(OK) + 1)).startswith(tail)


TLS_ALERT = rb"(?:\x15\x03[\x01-\x04]\x00\x02\x02[\x00-\xff])?"
AFTER_STARTTLS = re.escape(TEASER + GREETING + READY)

ROWS = [
    # -- every limit at its edge (spec §1.2 steps 4, 5, 9; §3.3) --
    Row("command_count_at_limit", count_at_limit,
        TEASER + GREETING + OK * COUNT_LIMIT + BYE,
        "DISCONNECT {ep}", not_log="COMMAND COUNT LIMIT from {ep} .*",
        params={"postscreen_command_count_limit": str(COUNT_LIMIT)}),
    Row("command_count_over_limit", count_over_limit,
        TEASER + GREETING + OK * COUNT_LIMIT + R421_LIMIT,
        "COMMAND COUNT LIMIT from {ep} after NOOP",
        params={"postscreen_command_count_limit": str(COUNT_LIMIT)}),
    Row("line_length_at_limit", line_at_limit, TEASER + GREETING + OK + BYE,
        "DISCONNECT {ep}", not_log="COMMAND LENGTH LIMIT from {ep} .*",
        params={"line_length_limit": str(LINE_LIMIT)}),
    Row("line_length_over_limit", line_over_limit, TEASER + GREETING + OK + R421_LIMIT,
        "COMMAND LENGTH LIMIT from {ep} after NOOP",
        params={"line_length_limit": str(LINE_LIMIT)}),
    Row("command_time_limit", idle_in_engine, TEASER + GREETING + R421_TIMEOUT,
        "COMMAND TIME LIMIT from {ep} after CONNECT",
        params={"postscreen_command_time_limit": "3s"}),
    Row("client_connection_count_limit", client_limit_edge, R421_TOO_MANY,
        "NOQUEUE: reject: CONNECT from {ep}: too many connections",
        params={"postscreen_client_connection_count_limit": str(CLIENT_LIMIT)}),
    Row("client_connection_count_limit_counts_relays", client_limit_counts_relays,
        R421_TOO_MANY, "NOQUEUE: reject: CONNECT from {ep}: too many connections",
        params={"postscreen_client_connection_count_limit": str(CLIENT_LIMIT)}),
    Row("pre_queue_limit", pre_queue_edge, R421_SCREENING_BUSY,
        "reject: connect from {ep}: all screening ports busy",
        params={"postscreen_pre_queue_limit": str(PRE_QUEUE)}, good=("known",)),
    Row("post_queue_limit", post_queue_edge, R421_SERVER_BUSY,
        "NOQUEUE: reject: CONNECT from {ep}: all server ports busy",
        params={"postscreen_post_queue_limit": str(POST_QUEUE)}, good=("relaying",)),
    # -- slowloris, and the client that never reads --
    Row("slowloris_2000", slowloris, TEASER + GREETING + R421_TIMEOUT, SLOW_LOG,
        params={"postscreen_command_time_limit": f"{SLOW_TIME_LIMIT}s",
                "postscreen_greet_wait": "2s"}),
    Row("never_reads_its_replies", never_reads, never_reads_reply, HANGUP_AFTER,
        params={"postscreen_command_count_limit": "100000000"}),
    Row("never_reads_its_replies_under_tls", never_reads_under_tls,
        lambda got: never_reads_reply(got, TEASER + GREETING + READY), HANGUP_AFTER,
        params={"postscreen_command_count_limit": "100000000"}, tls=True),
    Row("never_reads_in_relay", never_reads_in_relay,
        lambda got: never_reads_reply(got, FB_GREETING), "ALLOWLISTED {ep}",
        backend={"timeout": 3}),
    # -- malformed input --
    Row("long_arguments_refused", long_arguments,
        re.compile(re.escape(TEASER + GREETING) + EHLO_ANY + re.escape(MAIL_OK + R450 + BYE)),
        r"NOQUEUE: reject: RCPT from {ep}: 450 4\.3\.2 Service currently unavailable; "
        r"from=<.+>, to=<.+>, proto=ESMTP, helo=<h+>",
        params={"mxscreen_deep_test_handoff": "reconnect"}),
    Row("long_arguments_replayed", long_arguments,
        re.compile(re.escape(TEASER + GREETING) + EHLO_ANY + re.escape(MAIL_OK + FB_RCPT_OK)
                   + re.escape(BYE)),
        r"REPLAY {ep} to 127\.0\.0\.1:\d+: RCPT 250 2\.1\.5 Ok"),
    Row("one_mebibyte_line", one_mebibyte_line, TEASER + GREETING + R421_LIMIT,
        "COMMAND LENGTH LIMIT from {ep} after CONNECT"),
    Row("nul_bytes_in_commands", nul_in_commands, TEASER + GREETING + OK + R502 + R502 + BYE,
        "DISCONNECT {ep}", not_log="(?:BARE NEWLINE|NON-SMTP COMMAND) from {ep} .*"),
    Row("nul_bytes_before_the_greeting", nul_pregreet, TEASER + R521_PROTO,
        rf"PREGREET {len(NUL_PREGREET)} after \S+ from {{ep}}: "
        + re.escape(c_escape(NUL_PREGREET)),
        params={"postscreen_greet_action": "drop"}),
    Row("binary_garbage_without_newline", garbage_without_newline,
        TEASER + GREETING + R421_LIMIT, "COMMAND LENGTH LIMIT from {ep} after CONNECT"),
    Row("binary_garbage_line", garbage_line_non_smtp, TEASER + GREETING + R521_NONSMTP,
        r"NON-SMTP COMMAND from {ep} after CONNECT: .*",
        params={"postscreen_non_smtp_command_enable": "yes"}),
    Row("cr_only_stream", cr_only_stream, TEASER + GREETING + R421_LIMIT,
        "COMMAND LENGTH LIMIT from {ep} after CONNECT"),
    Row("tls_client_hello_before_greeting", tls_hello_pregreet, TEASER + R521_PROTO,
        rf"PREGREET {len(HELLO)} after \S+ from {{ep}}: " + re.escape(c_escape(HELLO)),
        params={"postscreen_greet_action": "drop"}),
    Row("tls_garbage_after_starttls", after_starttls(garbage(4096, seed=4)),
        re.compile(AFTER_STARTTLS + TLS_ALERT, re.S), TLS_FAILED, tls=True),
    Row("tls_oversized_record_after_starttls",
        after_starttls(b"\x16\x03\x01\xff\xff" + b"\x00" * 1000),
        re.compile(AFTER_STARTTLS + TLS_ALERT, re.S), TLS_FAILED, tls=True),
    Row("tls_hello_then_garbage", hello_then_garbage,
        re.compile(AFTER_STARTTLS + rb"\x16\x03\x03.*", re.S), TLS_FAILED, tls=True),
    Row("starttls_plaintext_injection", starttls_injection, TEASER + GREETING + READY + BYE,
        "DISCONNECT {ep}", tls=True),
    # -- half-open and reset connections --
    Row("half_close_in_greet_wait", half_close_in_greet_wait, TEASER, HANGUP_BEFORE),
    Row("half_close_in_engine", half_close_in_engine, TEASER + GREETING, HANGUP_AFTER),
    Row("send_then_half_close", send_then_half_close, TEASER + GREETING + HELO_OK + OK,
        HANGUP_AFTER),
    Row("rst_right_after_connect", rst_right_after_connect, b"", HANGUP_BEFORE),
    Row("rst_in_greet_wait", rst_in_greet_wait, TEASER, HANGUP_BEFORE),
    Row("rst_in_engine", rst_in_engine, TEASER + GREETING + HELO_OK, HANGUP_AFTER),
    Row("half_close_during_handoff", half_close_during_handoff, FB_GREETING + BYE,
        "ALLOWLISTED {ep}"),
    Row("rst_during_handoff", rst_during_handoff, b"", "ALLOWLISTED {ep}"),
    Row("rst_mid_relay", rst_mid_relay, FB_GREETING + FULL_EHLO + MAIL_OK, "ALLOWLISTED {ep}"),
    Row("rst_mid_replay", rst_mid_replay,
        re.compile(re.escape(TEASER + GREETING) + EHLO_ANY + re.escape(MAIL_OK)),
        "PASS NEW {ep}"),
    Row("backend_rst_mid_relay", backend_rst_mid_relay, FB_GREETING + FULL_EHLO + BACKEND_GONE,
        "ALLOWLISTED {ep}",
        backend={"replies": {"MAIL FROM:<rst@abuse.example>": ("RST", BACKEND_GONE)}}),
    # -- the stats listener shares the event loop --
    Row("stats_listener_slowloris", stats_slowloris, b"", None),
    # -- crowds --
    Row("one_address_10000_connections", one_address_flood, R421_TOO_MANY,
        "NOQUEUE: reject: CONNECT from {ep}: too many connections",
        params={"postscreen_client_connection_count_limit": str(FLOOD_LIMIT),
                "postscreen_command_time_limit": "300s"}),
    Row("screening_ports_flood_1500", screening_ports_flood, R421_SCREENING_BUSY,
        "reject: connect from {ep}: all screening ports busy",
        params={"postscreen_pre_queue_limit": str(SCREENING_LIMIT),
                "postscreen_greet_wait": "30s"}, good=("known",)),
    Row("5000_addresses_at_once", crowd, TEASER, HANGUP_BEFORE,
        params={"postscreen_greet_wait": "30s"}, good=("known", "teaser")),
    Row("sigterm_under_load", sigterm_under_load, b"",
        r"CONNECT from {ep} to \[127\.0\.0\.1\]:\d+",
        params={"postscreen_greet_wait": "30s"}, good=("known",), tls=True, stops=True),
]


# ---- the harness ----------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def descriptors():
    """Raise this process's descriptor limit (mxscreen inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


OUTCOMES = RowCounter("abuse rows")


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """One line at the end: "abuse rows: N passed, ..."."""
    yield
    report_line(request.config, OUTCOMES.line())


@pytest.fixture(autouse=True)
def count_result(request):
    yield
    OUTCOMES.record(request.node)


LOG_PREFIX = r"^\S+ +\S+ \S+ \S+ \S+\[\d+\]: "


def log_counts(text, template, ips):
    """How often each endpoint of an address in IPS has a line of TEMPLATE."""
    rx = re.compile(LOG_PREFIX + template.replace("{ep}", f"(?P<ep>{ENDPOINT})") + "$", re.M)
    got = collections.Counter()
    for m in rx.finditer(text):
        ep = m.group("ep")
        if ep[1:ep.index("]")] in ips:
            got[ep] += 1
    return got


def check_replies(row, bads):
    wrong = []
    for b in bads:
        want = getattr(b, "want", None)
        want = row.reply if want is None else want
        if isinstance(want, bytes):
            ok = b.got == want
        elif isinstance(want, re.Pattern):
            ok = want.fullmatch(b.got) is not None
        else:
            ok = want(b.got)
        if not ok:
            wrong.append((b.ep, b.got[:300]))
    assert not wrong, (f"{len(wrong)} of {len(bads)} connections read the wrong reply; "
                       f"the first: {wrong[:3]!r}")


def check_logs(row, mx, bads):
    """Each connection has exactly one line of each of its templates, and
    no other connection of these addresses has any."""
    ips = {b.ip for b in bads}
    wanted = collections.defaultdict(collections.Counter)
    for b in bads:
        for t in (b.logs or [row.log]):
            wanted[t][b.ep] += 1
    deadline = time.time() + SETTLE
    while True:
        text = mx.log_text()
        diffs = {t: (log_counts(text, t, ips), want) for t, want in wanted.items()}
        bad = {t: d for t, d in diffs.items() if d[0] != d[1]}
        if not bad:
            break
        if time.time() > deadline:
            t, (got, want) = next(iter(bad.items()))
            missing = list((want - got).items())[:3]
            extra = list((got - want).items())[:3]
            lines = [l for l in text.splitlines() if bads[0].ep in l][:10]
            raise AssertionError(f"log lines {t!r}: {sum(got.values())} of "
                                 f"{sum(want.values())}; missing {missing}, extra {extra}; "
                                 f"the first connection's lines: {lines}")
        time.sleep(0.25)
    if row.not_log:
        found = log_counts(text, row.not_log, ips)
        assert not found, f"unexpected {row.not_log!r} lines: {found}"


@pytest.mark.parametrize("row", [pytest.param(r, id=r.name, marks=list(r.marks)) for r in ROWS])
def test_abuse(row, request, workdir):
    index = ROWS.index(row)
    params = dict(BASE, **row.params)
    if row.tls:
        tlsdir = request.getfixturevalue("tlsdir")
        params.update({"smtpd_tls_cert_file": os.path.join(tlsdir, "cert.pem"),
                       "smtpd_tls_key_file": os.path.join(tlsdir, "key.pem"),
                       "postscreen_tls_security_level": "may"})
    fb = AbuseBackend(**row.backend)
    stats_port = free_port()
    params.update({"mxscreen_backend": fb.addr,
                   "mxscreen_stats_listen": f"127.0.0.1:{stats_port}"})
    mx = Mxscreen(workdir, params)
    mx.stats_port = stats_port
    ctx = Ctx(index, mx, fb)
    attack_thread = None
    try:
        mx.start()
        pid = mx.proc.pid
        if params["mxscreen_deep_test_handoff"] == "replay":
            # The first probe has answered: the engine's EHLO reply is the
            # one for this backend from now on.
            mx.wait_for_log(r"backend \S+ offers EHLO keywords: ", timeout=10)
        fds0 = open_fds(pid)
        good = Good(ctx, row.good)
        good.prepare()

        # The attack runs in a thread; the good client here, once it holds.
        out = {}

        def run_attack():
            try:
                out["bads"] = row.attack(ctx)
            except BaseException as e:  # noqa: B902 - re-raised below
                out["error"] = e
            finally:
                ctx.engaged.set()

        attack_thread = threading.Thread(target=run_attack, daemon=True)
        attack_thread.start()
        assert ctx.engaged.wait(HOLD_MAX + 60), "the attack never got going"
        if "error" not in out:
            try:
                good.run()
            finally:
                ctx.release.set()
        ctx.release.set()
        attack_thread.join(HOLD_MAX + 60)
        assert not attack_thread.is_alive(), "the attack did not stop"
        if "error" in out:
            raise out["error"]
        bads = out["bads"]

        # (1) the replies, (2) the log lines.
        check_replies(row, bads)
        if row.log is not None:
            check_logs(row, mx, bads)

        # (4) alive and whole: nothing left behind.
        if row.stops:
            return
        assert mx.alive(), mx.stderr_text()
        for c in ctx.opened:
            c.close()
        ctx.wait_stats(lambda st: not any(st["sessions"].values())
                       and st["queues"] == {"check": 0, "post": 0}, "no session left")
        # Relays keep up to 64 empty pipes for later (src/handoff/relay.c).
        deadline = time.time() + SETTLE
        while open_fds(pid) > fds0 + 2 * 64 + 8:
            assert time.time() < deadline, f"{open_fds(pid)} descriptors open, {fds0} at start"
            time.sleep(0.1)
        text = mx.log_text()
        assert not re.search(r"\b(panic|fatal):", text), text[-3000:]
    finally:
        ctx.release.set()
        fb.release()
        for c in ctx.opened:
            try:
                c.close()
            except OSError:
                pass
        if attack_thread is not None:
            attack_thread.join(30)
        try:
            mx.stop()  # exit 0, no sanitizer report
        finally:
            fb.close()
