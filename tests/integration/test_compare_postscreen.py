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

The DNSBL/DNSWL dialogues (at the end) use a second pair whose postscreen
resolves through a test DNS server on 127.0.0.1:53, see "DNSBL / DNSWL"
below; they are skipped (with the reason) where that port or a private
mount namespace is not available.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from dnsserver import FakeDNS
from mxs import Mxscreen, free_port
from postscreen_ref import RealPostscreen, private_resolv_conf_unavailable

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
    # Replies before the engine get soft_bounce and the footer too.
    Dialogue("pregreet_drop_soft_bounce_footer", cmds(b"EHLO bot"), teaser=True,
             params=dict(pregreet(greet_action="drop",
                                  reject_footer="Footer for $client_address"),
                         soft_bounce="yes")),
]


# ----------------------------------------------------------------------
# the client side


def read_line(sock, timeout=REPLY_TIMEOUT):
    """One reply line, byte by byte so that pipelined replies stay apart
    (the "220-" teaser is a line, not a complete reply).  If the server
    closes first: what came, then b"<EOF>" (a connection reset counts as a
    close: whether the kernel sends FIN or RST depends on unread data and
    timing, not on the daemon's behaviour); if nothing completes in time:
    then b"<TIMEOUT>"."""
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


def read_reply(sock, timeout=REPLY_TIMEOUT):
    """One complete SMTP reply: lines up to its "ddd " last line (markers as
    read_line())."""
    buf = b""
    while True:
        line = read_line(sock, timeout)
        buf += line
        if not line.endswith(b"\r\n") or re.match(rb"^\d{3}(?: |\r\n)", line):
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
    """The real postscreen and an mxscreen with the same settings.

    ``resolv_conf``: the text of a resolv.conf for the real postscreen's
    resolver (postscreen_ref.py runs it in a private mount namespace with
    that file over /etc/resolv.conf); ``mx_extra``: settings that only
    mxscreen gets (its DNS server, say)."""

    def __init__(self, resolv_conf=None, mx_extra=None):
        self.base = tempfile.mkdtemp(prefix="mxs-compare-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.denylist = os.path.join(self.base, "denylist.cidr")
        with open(self.denylist, "w") as f:
            f.write(f"{DENY_NET}.0/24 reject\n")
        os.chmod(self.denylist, 0o644)
        self.resolv_conf = None
        if resolv_conf is not None:
            self.resolv_conf = os.path.join(self.base, "resolv.conf")
            with open(self.resolv_conf, "w") as f:
                f.write(resolv_conf)
            os.chmod(self.resolv_conf, 0o644)  # read by dnsblog as postfix
        self.mx_extra = dict(mx_extra or {})
        self.ps = RealPostscreen(os.path.join(self.base, "postscreen"), dict(DEEP),
                                 hostname=HOSTNAME, resolv_conf=self.resolv_conf)
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
        mxp.update(self.mx_extra)
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


def compare_connection(pair, d, src, steps, done_re, compare_replies=True,
                       teaser=None, observe=None):
    """Play ``steps`` from ``src`` against both daemons; compare replies and
    normalised log lines.  Returns the two transcripts.  ``teaser``
    overrides d.teaser; ``observe(who, seconds)`` is called right after
    each side's dialogue ("postscreen" first, then "mxscreen") with its
    duration."""
    ps, mx = pair.ps, pair.mx
    teaser = d.teaser if teaser is None else teaser
    ps_mark, mx_mark = ps.mark(), len(mx.log_lines())
    t0 = time.monotonic()
    t_ps = run_dialogue(ps.port, src, steps, teaser)
    if observe:
        observe("postscreen", time.monotonic() - t0)
    t0 = time.monotonic()
    t_mx = run_dialogue(mx.port, src, steps, teaser)
    if observe:
        observe("mxscreen", time.monotonic() - t0)
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


# ----------------------------------------------------------------------
# DNSBL / DNSWL (spec §1.3, §1.7, §2.2)
#
# Both daemons ask the same test DNS server (dnsserver.FakeDNS) on
# 127.0.0.1:53: mxscreen through mxscreen_dns_servers, the real postscreen's
# dnsblog(8) through the system stub resolver, which cannot take a port, so
# postscreen_ref.py runs that Postfix in a private mount namespace with a
# resolv.conf saying "nameserver 127.0.0.1" bind-mounted over
# /etc/resolv.conf (the machine's own file is not touched; the dnsbl_pair
# fixture checks that, and that no process of the namespace is left).
#
# Deliberate differences, not compared here: mxscreen treats answers in
# 127.255.255.0/24 as errors (asserted explicitly below), it logs warnings
# of its own for DNS errors (no dialogue here has one), and postscreen takes
# the not-listed TTL from the NXDOMAIN's SOA (invisible in replies and log).

DNSBL_NET = "127.0.2"
DNS_PORT = 53
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def _port_53_users():
    try:
        r = subprocess.run(["ss", "-lunpH", "sport = :53"], capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or "(ss shows no listener)"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(ss failed: {e})"


def _mount_ns_pids(ns):
    """PIDs of live processes in mount namespace ``ns`` ("mnt:[N]")."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/mnt") == ns:
                    out.append(int(name))
            except OSError:
                pass
    return out


def _resolv_conf_state():
    st = os.stat("/etc/resolv.conf")
    with open("/etc/resolv.conf", "rb") as f:
        data = f.read()
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if " /etc/resolv.conf " in line]
    return data, st.st_ino, st.st_mtime_ns, st.st_mode, mounts


@pytest.fixture(scope="module")
def dnsbl_pair():
    """A second Pair whose postscreen resolves through 127.0.0.1:53, where a
    FakeDNS (``pair.dns``) answers, and whose mxscreen asks the same."""
    reason = private_resolv_conf_unavailable()
    if reason:
        pytest.skip(f"DNSBL comparison needs a private resolv.conf for Postfix: {reason}")
    try:
        dns = FakeDNS(port=DNS_PORT)
    except OSError as e:
        pytest.skip(f"DNSBL comparison needs UDP 127.0.0.1:{DNS_PORT} for the test DNS "
                    f"server (Postfix's resolver cannot use another port): {e}; "
                    f"listeners: {_port_53_users()}")
    before = _resolv_conf_state()
    try:
        p = Pair(resolv_conf=RESOLV_CONF,
                 mx_extra={"mxscreen_dns_servers": f"127.0.0.1:{DNS_PORT}"})
    except BaseException:
        dns.close()
        raise
    p.dns = dns
    ns = None
    try:
        p.start()
        ns = os.readlink(f"/proc/{p.ps.backend.master_pid}/ns/mnt")
        yield p
    finally:
        try:
            p.stop()
        finally:
            dns.close()
        # Nothing of the namespace survives, and the machine's resolver
        # configuration is as it was.
        left = _mount_ns_pids(ns) if ns else []
        assert not left, f"processes left in postscreen's mount namespace: {left}"
        assert _resolv_conf_state() == before, "/etc/resolv.conf changed"


def dnsbl(sites, action="drop", **kw):
    """DNSBL settings (threshold 2) plus ``postscreen_KW`` ones."""
    p = {"postscreen_dnsbl_sites": sites, "postscreen_dnsbl_threshold": "2",
         "postscreen_dnsbl_action": action}
    p.update({f"postscreen_{k}": v for k, v in kw.items()})
    return p


class DnsblDialogue(Dialogue):
    """``listings``: (domain, answers, delay) for the client address, set in
    the FakeDNS before the dialogue.  ``handoff``: both daemons pass the
    client (PASS NEW) and hand it off, mxscreen to the greeter stand-in, so
    only the log lines are compared for that session (the replies come
    from different MTAs), and then it comes back once (PASS OLD, no DNS
    queries).  ``expect``: the replies (greeting first; None: any) that
    postscreen must give, ``expect_log``: postscreen's normalised log lines
    ("{ip}" = the client), so that each dialogue is known to test what it
    says and not merely that both agree.  ``max_seconds``: upper limit of
    each daemon's first session."""

    def __init__(self, name, steps, params, listings=(), handoff=False, teaser=False,
                 expect=None, expect_log=None, max_seconds=None):
        super().__init__(name, steps, params=params, net=DNSBL_NET,
                         backend="greeter" if handoff else "unused", teaser=teaser)
        self.listings = listings
        self.handoff = handoff
        self.expect = expect
        self.expect_log = expect_log
        self.max_seconds = max_seconds


def blocked(code, name):
    return (f"{code} 5.7.1 Service unavailable; client [{{ip}}] blocked using "
            f"{name}\r\n").encode()


def conn_line():
    return "CONNECT from [{ip}]:P to [127.0.0.1]:P"


DROP_LOG = [conn_line(), "DNSBL rank 2 for [{ip}]:P", "DISCONNECT [{ip}]:P"]
PASS_LOG = [conn_line(), "PASS NEW [{ip}]:P"]

DNSBL_DIALOGUES = [
    DnsblDialogue("dnsbl_not_listed", cmds(b"QUIT"), dnsbl("bl.test*2 bl2.test"),
                  handoff=True, expect_log=PASS_LOG, max_seconds=2),
    DnsblDialogue("dnsbl_listed_drop", cmds(b"QUIT"), dnsbl("bl.test*2"),
                  listings=[("bl.test", ["127.0.0.2"], 0)],
                  expect=[blocked(521, "bl.test"), b"<EOF>"], expect_log=DROP_LOG),
    DnsblDialogue("dnsbl_listed_enforce", cmds(b"EHLO x", *MAIL_RCPT, b"QUIT"),
                  dict(DEEP, **dnsbl("bl.test*2", action="enforce")),
                  listings=[("bl.test", ["127.0.0.2"], 0)],
                  expect=[f"220 {HOSTNAME} ESMTP\r\n".encode(), None, None,
                          blocked(550, "bl.test"), b"221 2.0.0 Bye\r\n"],
                  expect_log=[conn_line(), "DNSBL rank 2 for [{ip}]:P",
                              "NOQUEUE: reject: RCPT from [{ip}]:P: 550 5.7.1 Service "
                              "unavailable; client [{ip}] blocked using bl.test; "
                              "from=<a@b>, to=<c@d>, proto=ESMTP, helo=<x>",
                              "DISCONNECT [{ip}]:P"]),
    # Two lists of weight 1: with equal weights the answer that comes first
    # names the list (in both), so one answer is delayed to fix the order.
    DnsblDialogue("dnsbl_two_lists_drop_a_first", cmds(b"QUIT"), dnsbl("a.test b.test"),
                  listings=[("a.test", ["127.0.0.2"], 0), ("b.test", ["127.0.0.2"], 0.3)],
                  expect=[blocked(521, "a.test"), b"<EOF>"], expect_log=DROP_LOG),
    DnsblDialogue("dnsbl_two_lists_drop_b_first", cmds(b"QUIT"), dnsbl("a.test b.test"),
                  listings=[("a.test", ["127.0.0.2"], 0.3), ("b.test", ["127.0.0.2"], 0)],
                  expect=[blocked(521, "b.test"), b"<EOF>"], expect_log=DROP_LOG),
    DnsblDialogue("dnsbl_filter_not_matched", cmds(b"QUIT"),
                  dnsbl("bl.test=127.0.0.[2..11]*3"),
                  listings=[("bl.test", ["127.0.0.20"], 0)],
                  handoff=True, expect_log=PASS_LOG, max_seconds=2),
    # greet_wait 6s with the pregreet test due: the DNSWL answer ends it,
    # and the deep tests are skipped.  The client waits for the greeting
    # after the "220-" teaser.
    DnsblDialogue("dnswl_allowlist_threshold", [("recv",)] + cmds(b"QUIT"),
                  dict(DEEP, **dnsbl("bl.test*2 wl.test*-5", dnsbl_allowlist_threshold="-1",
                                     greet_banner="$smtpd_banner", greet_wait="6s")),
                  listings=[("wl.test", ["127.0.10.2"], 0)], handoff=True, teaser=True,
                  expect_log=PASS_LOG, max_seconds=2),
    DnsblDialogue("dnsbl_reply_map", cmds(b"QUIT"),
                  dnsbl("KEY.bl.test*2", dnsbl_reply_map="inline:{KEY.bl.test=bl.test}"),
                  listings=[("KEY.bl.test", ["127.0.0.2"], 0)],
                  expect=[blocked(521, "bl.test"), b"<EOF>"], expect_log=DROP_LOG),
]


def _fill(x, ip):
    if isinstance(x, bytes):
        return x.replace(b"{ip}", ip.encode())
    return x.replace("{ip}", ip)


def _check_expected(d, src, t_ps, ps_log):
    """postscreen did what the dialogue is about (mxscreen was compared)."""
    if d.expect is not None:
        got = [data for who, data in t_ps if who == "S"]
        for i, want in enumerate(d.expect):
            if want is not None:
                assert got[i] == _fill(want, src), f"postscreen reply {i}:\n{show(t_ps)}"
    if d.expect_log is not None:
        assert normalise(ps_log) == [_fill(x, src) for x in d.expect_log], ps_log


@pytest.mark.parametrize("d", params_for(DNSBL_DIALOGUES))
def test_dnsbl_same_replies_log_and_cache(dnsbl_pair, d):
    pair, dns = dnsbl_pair, dnsbl_pair.dns
    pair.use(d)
    src = pair.ip(d.net)
    ip = re.escape(src)
    for domain, answers, delay in d.listings:
        dns.list(src, domain, answers, delay=delay)
    domains = sorted({s.split("*")[0].split("=")[0]
                      for s in d.params["postscreen_dnsbl_sites"].split()})
    queries, seconds = {}, {}

    def observe(who, secs):
        seconds[who] = secs
        queries[who] = sum(dns.asked(src, dom) for dom in domains)

    ps_mark = pair.ps.mark()
    done = rf"^PASS NEW \[{ip}\]:" if d.handoff else rf"^DISCONNECT \[{ip}\]:"
    t_ps, t_mx = compare_connection(pair, d, src, d.steps, done,
                                    compare_replies=not d.handoff, observe=observe)
    _check_expected(d, src, t_ps, pair.ps.log_lines(ps_mark))
    # Both asked the test DNS server, once per domain (merged queries).
    n = len(domains)
    assert (queries["postscreen"], queries["mxscreen"]) == (n, 2 * n), queries
    if d.max_seconds is not None:
        assert max(seconds.values()) < d.max_seconds, seconds
    if d.handoff:
        # Both handed the client to an MTA that greets (after the teaser).
        greeting = f"220 {HOSTNAME} ESMTP\r\n".encode()
        for t in (t_ps, t_mx):
            assert t[1 if d.teaser else 0] == ("S", greeting), show(t)
        # The pass is cached: back at once, no teaser, no DNS queries.
        t_ps, t_mx = compare_connection(pair, d, src, cmds(b"QUIT"),
                                        rf"^PASS OLD \[{ip}\]:", compare_replies=False,
                                        teaser=False)
        for t in (t_ps, t_mx):
            assert t[0] == ("S", greeting), show(t)
        assert sum(dns.asked(src, dom) for dom in domains) == 2 * n


ERROR_CODE = DnsblDialogue("dnsbl_error_code_answer", cmds(b"QUIT"), dnsbl("bl.test*2"),
                           listings=[("bl.test", ["127.255.255.254"], 0)], handoff=True)


def test_dnsbl_error_code_answer_documented_difference(dnsbl_pair):
    """A deliberate difference: an answer in 127.255.255.0/24 (a DNSBL's
    error code, e.g. Spamhaus "query refused") is a listing for postscreen
    (drop) but an error for mxscreen (fail open: PASS NEW and a warning)."""
    pair, dns, d = dnsbl_pair, dnsbl_pair.dns, ERROR_CODE
    pair.use(d)
    src = pair.ip(d.net)
    ip = re.escape(src)
    dns.list(src, "bl.test", ["127.255.255.254"])
    ps_mark, mx_mark = pair.ps.mark(), len(pair.mx.log_lines())
    t_ps = run_dialogue(pair.ps.port, src, d.steps)
    t_mx = run_dialogue(pair.mx.port, src, d.steps)
    wait_lines(pair.ps.log_lines, ps_mark, rf"^DISCONNECT \[{ip}\]:", "postscreen")
    wait_lines(pair.mx.log_lines, mx_mark, rf"^PASS NEW \[{ip}\]:", "mxscreen")
    time.sleep(0.1)
    ps_log = normalise(pair.ps.log_lines(ps_mark))
    mx_log = normalise(pair.mx.log_lines()[mx_mark:])
    assert t_ps[0] == ("S", _fill(blocked(521, "bl.test"), src)), show(t_ps)
    assert ps_log == [_fill(x, src) for x in DROP_LOG], ps_log
    assert t_mx[0] == ("S", f"220 {HOSTNAME} ESMTP\r\n".encode()), show(t_mx)
    rev = ".".join(reversed(src.split(".")))
    # (a fresh mxscreen: its first error answer, so the warning is not
    # rate-limited away)
    assert len(mx_log) == 3, mx_log
    assert mx_log[0] == _fill(conn_line(), src), mx_log
    assert mx_log[1].startswith(f"warning: DNSBL bl.test answered 127.255.255.254 for "
                                f"{rev}.bl.test: an error code, not a listing"), mx_log
    assert mx_log[2] == f"PASS NEW [{src}]:P", mx_log
