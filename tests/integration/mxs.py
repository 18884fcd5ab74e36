"""Start mxscreen for a test and talk to it over real sockets.

Stdlib only.  ``Mxscreen`` writes a configuration file, starts the binary
named by $MXSCREEN_BIN (default: build/mxscreen) in the foreground with its
log in a file, waits until it listens, and stops it by PID with SIGTERM,
checking that it exited 0 and that no sanitizer complained on stderr.
"""
import os
import re
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MXSCREEN_BIN", os.path.join(ROOT, "build", "mxscreen"))


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def read_text(path):
    """A file's text, or "" while it does not exist."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def pregreet_params(backend, **kw):
    """Settings for the tests of the allowlist: the pregreet test only, with
    the "220-" teaser and a 1 s greet wait (a new client passes, PASS NEW;
    a known one is handed at once to BACKEND, PASS OLD), plus KW."""
    p = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_banner": "$myhostname ESMTP",
        "postscreen_greet_banner": "$smtpd_banner",
        "postscreen_greet_wait": "1s",
        "mxscreen_backend": backend.addr,
    }
    p.update(kw)
    return p


def run_mxscreen(args, timeout=10):
    """Run the binary to completion (for -n, -t and bad configurations)."""
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)


class Mxscreen:
    def __init__(self, workdir, params, name="mx"):
        self.dir = workdir
        self.port = free_port()
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.err_path = os.path.join(workdir, f"{name}.stderr")
        self.cf_path = os.path.join(workdir, f"{name}.cf")
        base = {
            "mxscreen_listen": f"127.0.0.1:{self.port}",
            "maillog_file": self.log_path,
            "mxscreen_user": "nobody",
            "postscreen_greet_banner": "",
            "myhostname": "mxscreen.test",
            "mxscreen_shutdown_timeout": "2s",
            # Each test has its own allowlist, kept across restarts in WORKDIR.
            "postscreen_cache_map": f"lmdb:{os.path.join(workdir, name + '-cache.lmdb')}",
            # postscreen's behaviour after the deep tests (450, come back),
            # which most tests check; the replay tests ask for "replay".
            "mxscreen_deep_test_handoff": "reconnect",
        }
        base.update(params)
        self.params = base
        with open(self.cf_path, "w") as f:
            for k, v in base.items():
                f.write(f"{k} = {v}\n")
        self.proc = None

    def argv(self):
        """The command that runs this instance (a subclass may wrap it)."""
        return [BIN, "-c", self.cf_path]

    def start(self, timeout=10):
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.argv(), stdout=self.err,
                                     stderr=self.err, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mxscreen exited {self.proc.returncode}: "
                                   f"{self.stderr_text()} {self.log_text()}")
            if "starting mxscreen" in self.log_text():
                return self
            time.sleep(0.02)
        raise RuntimeError("mxscreen did not start: " + self.log_text())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stderr_text(self):
        return read_text(self.err_path)

    def log_text(self):
        return read_text(self.log_path)

    def log_lines(self):
        """Log lines without the "Mon DD HH:MM:SS host tag[pid]: " prefix."""
        return [re.sub(r"^\w{3} \d\d \d\d:\d\d:\d\d \S+ \S+\[\d+\]: ", "", l)
                for l in self.log_text().splitlines()]

    def wait_for_log(self, regex, timeout=10):
        deadline = time.time() + timeout
        while True:
            m = re.search(regex, self.log_text(), re.M)
            if m:
                return m
            if time.time() > deadline:
                raise TimeoutError(f"no log line matching {regex!r} in:\n{self.log_text()}")
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15, expect_rc=0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.err.close()
            self.proc = None
        err = self.stderr_text()
        assert "Sanitizer" not in err and "runtime error:" not in err, err
        assert rc == expect_rc, f"mxscreen exit status {rc}\n{err}\n{self.log_text()}"

    def connect(self, src="127.0.0.1", timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout,
                                     source_address=(src, 0))
        return s


def recv_line(sock, timeout=10):
    """Read one CRLF-terminated line (bytes, with the CRLF)."""
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        buf += c
    return buf


def recv_all(sock, timeout=10):
    """Read until the peer closes."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            c = sock.recv(4096)
        except ConnectionResetError:
            break
        if not c:
            break
        out += c
    return out


class SilentBackend:
    """A TCP server that accepts connections and never says a word (on
    SOCK, a fresh TCP socket of the caller's, for example one made in
    another network namespace)."""

    def __init__(self, sock=None):
        self.sock = sock or socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"

    def close(self):
        self.sock.close()


def assert_held(sock, wait=0.5):
    """The client got no reply and no close within WAIT seconds: it is held
    (in hand-off to a backend that has not greeted yet)."""
    sock.settimeout(wait)
    try:
        data = sock.recv(1)
    except socket.timeout:
        return
    raise AssertionError(f"client was answered or closed: {data!r}")


# ---- Dialogues with the SMTP engine ---------------------------------------


def recv_reply(sock, timeout=10):
    """Read one complete SMTP reply: every line of a multi-line reply, up to
    and including the "NNN " line (bytes, CRLFs kept).  Returns what it got
    when the peer closes early."""
    out = b""
    while True:
        line = recv_line(sock, timeout)
        out += line
        if not line.endswith(b"\n") or line[3:4] == b" ":
            return out


def vm_rss_kb(pid):
    """Resident set size of process PID in KiB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


class Client:
    """One client connection to MX from source address IP.

    ``ep`` is the endpoint as mxscreen logs it (``[ADDR]:PORT``); log()
    gives mxscreen's log lines about this connection only (the lines that
    name its address and port, with or without the colon between them)."""

    def __init__(self, mx, ip, timeout=10):
        self.mx = mx
        self.ip = ip
        self.sock = mx.connect(src=ip, timeout=timeout)
        self.port = self.sock.getsockname()[1]
        mx.__dict__.setdefault("clients", []).append(self)
        self.ep = f"[{ip}]:{self.port}"
        self._mine = re.compile(rf"\[{re.escape(ip)}\]:?{self.port}(?!\d)")

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, timeout=10):
        return recv_reply(self.sock, timeout)

    def cmd(self, line, timeout=10):
        """Send LINE (str or bytes) with CRLF and return the reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def rest(self, timeout=10):
        """Everything until the server closes the connection."""
        return recv_all(self.sock, timeout)

    def close(self):
        self.sock.close()

    def log(self):
        return [l for l in self.mx.log_lines() if self._mine.search(l)]

    @staticmethod
    def close_all(mx):
        """Close every Client of MX (before stopping it, so that mxscreen
        need not wait for them)."""
        for c in mx.__dict__.pop("clients", []):
            c.close()

    def expect_log(self, expected, timeout=5):
        """Wait until log() is exactly EXPECTED: a list of strings, or of
        compiled patterns for lines with variable parts (fullmatch)."""
        def same(got):
            return len(got) == len(expected) and all(
                e.fullmatch(g) if isinstance(e, re.Pattern) else e == g
                for e, g in zip(expected, got))
        deadline = time.time() + timeout
        while True:
            got = self.log()
            if same(got):
                return got
            if time.time() > deadline:
                raise AssertionError(f"log of {self.ep}:\n  got      {got!r}\n"
                                     f"  expected {expected!r}")
            time.sleep(0.02)


# The SMTP engine's greeting with the tests' settings (myhostname mxscreen.test,
# smtpd_banner = $myhostname ESMTP), and the log lines every engine dialogue has.
GREETING = b"220 mxscreen.test ESMTP\r\n"

# postscreen's EHLO keywords (after the host name) and the engine's replies.
KEYWORDS = ["SIZE 10240000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
            "SMTPUTF8", "CHUNKING"]
OK = b"250 2.0.0 Ok\r\n"
MAIL_OK = b"250 2.1.0 Ok\r\n"
R450 = b"450 4.3.2 Service currently unavailable\r\n"
R550_PROTO = b"550 5.5.1 Protocol error\r\n"
R502 = b"502 5.5.2 Error: command not recognized\r\n"
BYE = b"221 2.0.0 Bye\r\n"


def connect_line(c):
    return f"CONNECT from {c.ep} to [127.0.0.1]:{c.mx.port}"


def hangup_line(c):
    return re.compile(rf"HANGUP after \d+(\.\d+)? from {re.escape(c.ep)} "
                      r"in tests after SMTP handshake")


def noqueue(c, reply, sender="a@b", rcpt="c@d", proto="ESMTP", helo="x"):
    """The NOQUEUE line of a rejected RCPT (REPLY as bytes, with CRLF)."""
    return (f"NOQUEUE: reject: RCPT from {c.ep}: {reply.decode().rstrip()}; "
            f"from=<{sender}>, to=<{rcpt}>, proto={proto}, helo=<{helo}>")


def greet(mx, ip):
    """A new Client from IP that has read the engine's greeting."""
    c = Client(mx, ip)
    assert c.reply() == GREETING
    return c
