"""Comparison runs: mxscreen against a REAL Postfix 3.7 postscreen.

One real postscreen (postscreen_ref.RealPostscreen) is started for the whole
module and reconfigured per parameter set; one mxscreen is started per
parameter set with the same settings.  Each scripted dialogue is played
against both, from the same client address (the two daemons have separate
caches, and every dialogue uses an address of its own, so no dialogue sees
what another one left in a cache).  Then:

- the replies (greeting included) must be the same, byte for byte: both
  daemons use the same myhostname and banner, so nothing in them may differ;
- the log lines of the connection must be the same full texts, in order,
  once client ports, the server port and timing numbers are normalised and
  the lines that only one side writes by design are dropped.  Every line a
  daemon writes while the dialogue runs is compared, not only those that
  name the client: dialogues run one at a time, so any other line (a
  warning, say) is a difference too.

Clients that pass the deep tests get postscreen's "450 4.3.2" and are not
handed off from the SMTP engine; mxscreen's backend is an unused loopback
port (nothing may ever be handed off there), except for the reconnect
dialogue, which needs a backend that greets.
"""
import os
import re
import shutil
import socket
import tempfile
import threading
import time

import pytest

from mxs import Mxscreen, free_port
from postscreen_ref import RealPostscreen

HOSTNAME = "mx.example.test"

# Settings that both daemons get (postscreen_ref.py writes these into the
# real postscreen's main.cf on its own; they are repeated here for mxscreen).
COMMON = {
    "myhostname": HOSTNAME,
    "smtpd_banner": "$myhostname ESMTP",
    "mynetworks": "127.0.0.1/32",
    "postscreen_access_list": "permit_mynetworks",
    "postscreen_greet_banner": "",
    "postscreen_dnsbl_sites": "",
    # From postfix_backend.py's main.cf, read by postscreen too.
    "compatibility_level": "3.6",
    "smtpd_tls_security_level": "none",
}

DEEP = {
    "postscreen_pipelining_enable": "yes",
    "postscreen_non_smtp_command_enable": "yes",
    "postscreen_bare_newline_enable": "yes",
    "postscreen_bare_newline_action": "enforce",
}

# Clients in this network are denylisted by the cidr table of the denylist
# parameter sets; all other dialogues use 127.0.0.0/24.
DENY_NET = "127.0.1"

REPLY_TIMEOUT = 4.0  # > mxscreen's 2 s read-before-close at session end
LOG_TIMEOUT = 8.0


def deep(**kw):
    p = dict(DEEP)
    p.update({k if k == "soft_bounce" else f"postscreen_{k}": v for k, v in kw.items()})
    return p


# ----------------------------------------------------------------------
# dialogues


def pregreet(**kw):
    """The pregreet test on (teaser = smtpd_banner), a short greet wait."""
    p = {"postscreen_greet_banner": "$smtpd_banner", "postscreen_greet_wait": "2s"}
    p.update({f"postscreen_{k}": v for k, v in kw.items()})
    return p


def cmd(line):
    """One command line (CRLF added) and its reply."""
    return [("send", line + b"\r\n"), ("recv",)]


def cmds(*lines):
    out = []
    for line in lines:
        out += cmd(line)
    return out


class Dialogue:
    def __init__(self, name, steps, params=None, net="127.0.0", backend="unused",
                 teaser=False):
        self.name = name
        self.teaser = teaser
        self.steps = steps
        self.params = DEEP if params is None else params
        self.net = net
        self.backend = backend

    def __repr__(self):
        return self.name


ASSORTED = [b"NOOP", b"RSET", b"VRFY x", b"ETRN x", b"ETRN", b"VRFY", b"HELO", b"EHLO",
            b"MAIL", b"MAIL FROM:<a@b>", b"MAIL FROM:<a@b>", b"RCPT", b"STARTTLS",
            b"STARTTLS x", b"AUTH PLAIN", b"XCLIENT a", b"BDAT 10"]

MAIL_RCPT = [b"MAIL FROM:<a@b>", b"RCPT TO:<c@d>"]

DIALOGUES = [
    Dialogue("ehlo_mail_rcpt_quit", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT")),
    Dialogue("helo_mail_rcpt_data", cmds(b"HELO x", *MAIL_RCPT, b"DATA", b"QUIT")),
    Dialogue("pipelining",
             [("send", b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), ("recv",), ("recv",)]
             + cmds(b"RCPT TO:<c@d>", b"QUIT")),
    Dialogue("http_get", cmds(b"GET / HTTP/1.0", b"QUIT")),
    Dialogue("http_post", cmds(b"POST / HTTP/1.1", b"QUIT")),
    Dialogue("http_connect", cmds(b"CONNECT host:443 HTTP/1.1", b"QUIT")),
    Dialogue("header_line", cmds(b"Subject: hi", b"QUIT")),
    Dialogue("bare_newline",
             [("send", b"EHLO x\n"), ("recv",)] + cmds(*MAIL_RCPT, b"QUIT")),
    Dialogue("assorted_commands", cmds(*ASSORTED)),
    Dialogue("bogus_then_1abc", cmds(b"bogus", b"1abc", b"QUIT")),
    Dialogue("noop_21", cmds(*[b"NOOP"] * 21, b"QUIT")),
    Dialogue("line_3000_bytes", cmds(b"A" * 3000, b"QUIT")),
    Dialogue("nul_byte", cmds(b"NO\x00OP", b"QUIT")),
    Dialogue("non_utf8", cmds(b"\xff\xfe", b"QUIT")),
    Dialogue("rcpt_without_mail", cmds(b"RCPT TO:<c@d>", b"QUIT")),
    # The NOQUEUE line's from=/to= formatting of quoted and source-routed
    # addresses (one backslash on the wire).
    Dialogue("quoted_route_addresses",
             cmds(b"EHLO x", b'MAIL FROM:<@r1,@r2:"a b"@c.d>', b"RCPT TO:<x\\y@e.f>",
                  b"QUIT")),
    Dialogue("hangup_after_ehlo", cmds(b"EHLO x")),
    # Other parameter sets.
    Dialogue("pipelining_drop",
             [("send", b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), ("recv",), ("recv",)]
             + cmds(b"QUIT"),
             params=deep(pipelining_action="drop")),
    Dialogue("bare_newline_drop", [("send", b"EHLO x\n"), ("recv",)] + cmds(b"QUIT"),
             params=deep(bare_newline_action="drop")),
    Dialogue("non_smtp_enforce",
             cmds(b"GET / HTTP/1.0", b"EHLO x", *MAIL_RCPT, b"QUIT"),
             params=deep(non_smtp_command_action="enforce")),
    Dialogue("pipelining_ignore",
             [("send", b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), ("recv",), ("recv",)]
             + cmds(b"RCPT TO:<c@d>", b"QUIT"),
             params=deep(pipelining_action="ignore")),
    Dialogue("soft_bounce_non_smtp_drop", cmds(b"GET / HTTP/1.0", b"QUIT"),
             params=deep(soft_bounce="yes", non_smtp_command_action="drop")),
    Dialogue("helo_required",
             cmds(b"MAIL FROM:<a@b>", b"EHLO x", *MAIL_RCPT, b"QUIT"),
             params=deep(helo_required="yes")),
    Dialogue("postscreen_disable_vrfy",
             cmds(b"EHLO x", b"VRFY x", b"QUIT"),
             params=deep(disable_vrfy_command="yes")),
    Dialogue("disable_vrfy",
             cmds(b"EHLO x", b"VRFY x", b"QUIT"),
             params=dict(DEEP, disable_vrfy_command="yes")),
    Dialogue("discard_ehlo_keywords",
             cmds(b"EHLO x", b"BDAT 10", b"QUIT"),
             params=deep(discard_ehlo_keywords="chunking,dsn")),
    Dialogue("reject_footer", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT"),
             params=deep(reject_footer="Contact $server_name\\nfor $client_address")),
    Dialogue("command_count_limit_5", cmds(*[b"NOOP"] * 6, b"QUIT"),
             params=deep(command_count_limit="5")),
    Dialogue("command_time_limit_silent_client", [("recv", 6.0)],
             params=deep(command_time_limit="2s")),
    Dialogue("denylist_enforce", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT"),
             params={"postscreen_access_list": "permit_mynetworks, cidr:{denylist}",
                     "postscreen_denylist_action": "enforce"},
             net=DENY_NET),
    Dialogue("denylist_drop", cmds(b"QUIT"),
             params={"postscreen_access_list": "permit_mynetworks, cidr:{denylist}",
                     "postscreen_denylist_action": "drop"},
             net=DENY_NET),
    Dialogue("allowlist_veto", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT"),
             params=deep(allowlist_interfaces="!127.0.0.1, static:all")),
    # The pregreet test: a bot that talks before the greeting is complete.
    Dialogue("pregreet_drop", cmds(b"EHLO bot"), teaser=True,
             params=pregreet(greet_action="drop")),
    Dialogue("pregreet_enforce", cmds(b"EHLO bot", *MAIL_RCPT, b"QUIT"), teaser=True,
             params=pregreet(greet_action="enforce")),
    Dialogue("pregreet_enforce_pipelined",
             [("send", b"EHLO bot\r\nMAIL FROM:<a@b>\r\n"), ("recv",), ("recv",)]
             + cmds(b"RCPT TO:<c@d>", b"QUIT"), teaser=True,
             params=pregreet(greet_action="enforce", pipelining_enable="yes")),
    Dialogue("pregreet_hangup", [], teaser=True, params=pregreet()),
]


# ----------------------------------------------------------------------
# the client side


def read_reply(sock, timeout=REPLY_TIMEOUT):
    """One complete SMTP reply (up to its "ddd " last line), byte by byte so
    that pipelined replies stay apart.  If the server closes first: what
    came, then b"<EOF>" (a connection reset counts as a close: whether the
    kernel sends FIN or RST depends on unread data and timing, not on the
    daemon's behaviour); if nothing completes in time: then b"<TIMEOUT>"."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        if buf.endswith(b"\r\n"):
            last = buf[:-2].rsplit(b"\r\n", 1)[-1]
            if re.match(rb"^\d{3}(?: |$)", last):
                return buf
        try:
            c = sock.recv(1)
        except socket.timeout:
            return buf + b"<TIMEOUT>"
        except (ConnectionResetError, BrokenPipeError):
            return buf + b"<EOF>"
        if not c:
            return buf + b"<EOF>"
        buf += c


def read_line(sock, timeout=REPLY_TIMEOUT):
    """One reply line: the "220-" teaser is not a complete reply."""
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\r\n"):
        try:
            c = sock.recv(1)
        except socket.timeout:
            return buf + b"<TIMEOUT>"
        except (ConnectionResetError, BrokenPipeError):
            return buf + b"<EOF>"
        if not c:
            return buf + b"<EOF>"
        buf += c
    return buf


def run_dialogue(port, src, steps, teaser=False):
    """Play ``steps`` from ``src``; return the transcript as a list of
    ("S", reply) / ("C", sent) pairs, greeting first (with TEASER, only its
    "220-" line: the client talks before the greeting is complete).  Stops
    at the first server close."""
    s = socket.socket()
    try:
        s.bind((src, 0))
        s.settimeout(REPLY_TIMEOUT)
        s.connect(("127.0.0.1", port))
        out = [("S", read_line(s) if teaser else read_reply(s))]
        closed = out[-1][1].endswith(b"<EOF>")
        for step in steps:
            if closed:
                break
            if step[0] == "send":
                out.append(("C", step[1]))
                try:
                    s.sendall(step[1])
                except OSError:
                    out.append(("S", b"<EOF>"))
                    closed = True
            elif step[0] == "recv":
                r = read_reply(s, *step[1:])
                out.append(("S", r))
                closed = r.endswith(b"<EOF>")
            else:
                raise ValueError(step)
    finally:
        s.close()
    return out


def show(transcript):
    def short(b):
        return b if len(b) <= 400 else b[:40] + b"...(%d bytes)..." % len(b) + b[-12:]
    return "\n".join(f"  {who}: {short(data)!r}" for who, data in transcript)


# ----------------------------------------------------------------------
# logs


def normalise(lines):
    """Ports and timings out; lines that only one side writes by design
    dropped."""
    out = []
    for line in lines:
        # postscreen only: its on-disk cache's periodic cleanup (mxscreen's
        # cache is in memory and has no such line).
        if re.match(r"cache \S+ full cleanup: ", line):
            continue
        # mxscreen only: its own start and stop lines.
        if re.match(r"(starting mxscreen |stopping|stopped$)", line):
            continue
        line = re.sub(r"(\[[0-9A-Fa-f.:]+\]):\d+", r"\1:P", line)
        line = re.sub(r"(\[[0-9A-Fa-f.:]+\])\d+", r"\1P", line)
        line = re.sub(r"HANGUP after \d+(?:\.\d+)?", "HANGUP after T", line)
        line = re.sub(r"(PREGREET \d+ after )\d+(?:\.\d+)?", r"\1T", line)
        out.append(line)
    return out


def wait_lines(get_lines, since, regex, what):
    """Poll get_lines()[since:] until a line matches ``regex``."""
    pat = re.compile(regex)
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        lines = get_lines()[since:]
        if any(pat.search(line) for line in lines):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: no log line matching {regex!r} within "
                                 f"{LOG_TIMEOUT}s; new lines: {lines!r}")
        time.sleep(0.02)


# ----------------------------------------------------------------------
# the two daemons


class GreetingBackend:
    """A stand-in MTA for mxscreen's hand-off: greets like the smtpd behind
    the real postscreen, answers QUIT and closes (ignores everything else,
    the PROXY header included)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    @staticmethod
    def _session(c):
        with c:
            try:
                c.settimeout(10)
                c.sendall(f"220 {HOSTNAME} ESMTP\r\n".encode())
                buf = b""
                while b"QUIT\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        return
                    buf += d
                c.sendall(b"221 2.0.0 Bye\r\n")
            except OSError:
                pass

    def close(self):
        self.sock.close()


class Pair:
    """The real postscreen and an mxscreen with the same settings."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="mxs-compare-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.denylist = os.path.join(self.base, "denylist.cidr")
        with open(self.denylist, "w") as f:
            f.write(f"{DENY_NET}.0/24 reject\n")
        os.chmod(self.denylist, 0o644)
        self.ps = RealPostscreen(os.path.join(self.base, "postscreen"), dict(DEEP),
                                 hostname=HOSTNAME)
        self.mx = None
        self.key = None
        self.n = 0
        self.greeter = GreetingBackend()
        self.ips = {}

    def start(self):
        os.makedirs(self.ps.basedir, exist_ok=True)
        os.chmod(self.ps.basedir, 0o755)
        self.ps.start()

    def params(self, d):
        return {k: v.replace("{denylist}", self.denylist) for k, v in d.params.items()}

    def use(self, d):
        params = self.params(d)
        key = (tuple(sorted(params.items())), d.backend)
        if key == self.key:
            return
        if self.mx is not None:
            mx, self.mx, self.key = self.mx, None, None
            mx.stop()
        if params != self.ps.params:
            self.ps.reconfigure(params)
        self.n += 1
        workdir = os.path.join(self.base, f"mx{self.n}")
        os.mkdir(workdir)
        os.chmod(workdir, 0o755)
        mxp = dict(COMMON)
        mxp.update(params)
        mxp["mxscreen_backend"] = (self.greeter.addr if d.backend == "greeter"
                                   else f"127.0.0.1:{free_port()}")
        self.mx = Mxscreen(workdir, mxp).start()
        self.key = key

    def ip(self, net):
        """A client address of its own for each dialogue."""
        self.ips[net] = self.ips.get(net, 1) + 1
        assert self.ips[net] < 255
        return f"{net}.{self.ips[net]}"

    def stop(self):
        try:
            if self.mx is not None:
                self.mx.stop()
        finally:
            self.ps.stop()
            self.greeter.close()
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    p.start()
    try:
        yield p
    finally:
        p.stop()


def compare_connection(pair, d, src, steps, done_re, compare_replies=True):
    """Play ``steps`` from ``src`` against both daemons; compare replies and
    normalised log lines.  Returns the two transcripts."""
    ps, mx = pair.ps, pair.mx
    ps_mark, mx_mark = ps.mark(), len(mx.log_lines())
    t_ps = run_dialogue(ps.port, src, steps, d.teaser)
    t_mx = run_dialogue(mx.port, src, steps, d.teaser)
    wait_lines(ps.log_lines, ps_mark, done_re, "postscreen")
    wait_lines(mx.log_lines, mx_mark, done_re, "mxscreen")
    time.sleep(0.1)  # give lines after the last expected one a chance to show
    ps_log, mx_log = ps.log_lines(ps_mark), mx.log_lines()[mx_mark:]
    report = (f"dialogue {d.name} from {src}\n--- postscreen:\n{show(t_ps)}\n"
              + "".join(f"  L: {line}\n" for line in ps_log)
              + f"--- mxscreen:\n{show(t_mx)}\n"
              + "".join(f"  L: {line}\n" for line in mx_log))
    print(report)
    if compare_replies:
        assert t_mx == t_ps, "replies differ\n" + report
    assert normalise(mx_log) == normalise(ps_log), "log lines differ\n" + report
    return t_ps, t_mx


# Known mismatches found by this comparison, to be fixed in the daemon (then
# remove the entry; strict, so a fix shows up as XPASS -> failure).
XFAIL = {}


def params_for(ds):
    return [pytest.param(d, id=d.name,
                         marks=[pytest.mark.xfail(strict=True, reason=XFAIL[d.name])]
                         if d.name in XFAIL else [])
            for d in ds]


@pytest.mark.parametrize("d", params_for(DIALOGUES))
def test_same_replies_and_log(pair, d):
    pair.use(d)
    src = pair.ip(d.net)
    ip = re.escape(src)
    compare_connection(pair, d, src, d.steps, rf"^(DISCONNECT|PASS OLD) \[{ip}\]:")


RECONNECT = Dialogue("reconnect_after_pass", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT"),
                     backend="greeter")


@pytest.mark.parametrize("d", params_for([RECONNECT]))
def test_reconnect_after_pass_is_handed_off(pair, d):
    """A client that passed the deep tests (QUIT after RCPT) comes back from
    the same address: both hand it off at once (PASS OLD).  The replies of
    the second session come from the MTA behind, which differs (smtpd behind
    postscreen, a stand-in behind mxscreen), so only the log lines are
    compared there; the first session is compared in full."""
    pair.use(d)
    src = pair.ip(d.net)
    ip = re.escape(src)
    compare_connection(pair, d, src, d.steps, rf"^DISCONNECT \[{ip}\]:")
    t_ps, t_mx = compare_connection(pair, d, src, cmds(b"QUIT"), rf"^PASS OLD \[{ip}\]:",
                                    compare_replies=False)
    # Sanity: both clients did reach an MTA that greets.
    assert t_ps[0] == ("S", f"220 {HOSTNAME} ESMTP\r\n".encode()), show(t_ps)
    assert t_mx[0] == ("S", f"220 {HOSTNAME} ESMTP\r\n".encode()), show(t_mx)
