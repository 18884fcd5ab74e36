"""A private, throw-away REAL Postfix postscreen(8) for behaviour comparison.

Stdlib only.  Built on postfix_backend.PostfixBackend (same directory layout,
same notes on running Postfix from a private config directory as root; read
the docstring of postfix_backend.py first)::

    from postscreen_ref import RealPostscreen

    with RealPostscreen("/tmp/psref", {"postscreen_pipelining_enable": "yes"}) as ps:
        s = socket.create_connection(("127.0.0.1", ps.port),
                                     source_address=("127.0.0.2", 0))
        ...
        ps.wait_for_log(r"DISCONNECT \\[127\\.0\\.0\\.2\\]")
        print(ps.log_lines())

What runs (everything below ``basedir``, listening on 127.0.0.1 only, never
/etc/postfix, /var/spool/postfix or port 25)::

    127.0.0.1:PORT inet n - n - 1 postscreen     PORT = ps.port, free port
    smtpd     pass  - - n - - smtpd              the after-postscreen smtpd
    dnsblog   unix  - - n - 0 dnsblog
    tlsproxy  unix  - - n - 0 tlsproxy
    + the usual internal services from postfix_backend.py (cleanup, qmgr,
      postlog for the maillog file, ...)

main.cf is postfix_backend.py's, with these changes (``params`` last; a
parameter given twice is replaced, not repeated)::

    myhostname = <hostname>
    smtpd_banner = $myhostname ESMTP
    mynetworks = 127.0.0.1/32
    postscreen_access_list = permit_mynetworks
    postscreen_greet_banner =
    postscreen_dnsbl_sites =
    postscreen_cache_map = btree:$data_directory/postscreen_cache
    <params>

So clients from 127.0.0.2 .. 127.0.0.254 are not allowlisted and do get
tested, while 127.0.0.1 is PASS'ed by the access list.  The empty
postscreen_greet_banner disables the pregreet test (no 220- teaser, no
greet_wait delay); without DNSBL sites there are no early tests at all, so a
new client gets postscreen's "220 <hostname> ESMTP" at once.  Note that
smtpd's own greeting is the same text; to tell them apart, pass e.g.
``smtpd_options={"smtpd_banner": "$myhostname ESMTP smtpd"}`` (``-o``
overrides for the ``smtpd pass`` service only), or look at the log.

The postscreen cache is ``basedir/spool/data/postscreen_cache.db``
(``data_directory`` is the relative "data", see postfix_backend.py).
start() and reconfigure() delete it, so results never leak between runs or
parameter sets; use a fresh client address (127.0.0.x) per dialogue to keep
dialogues within one parameter set independent.

Logging: postscreen logs through postlogd(8) into ``basedir/maillog``
(maillog_file), tag ``<syslog_name>/postscreen[PID]`` (``postfix/postscreen``
unless params set syslog_name).  log_lines() returns postscreen's lines only,
in file order, each reduced to the text after ``"]: "``.  postscreen is a
single process (maxproc 1) and postlogd writes datagrams in arrival order, so
the order is postscreen's own.  Lines appear shortly *after* the event
(postlogd is asynchronous): use wait_for_log() instead of reading at once.

DNS (DNSBL comparisons): postscreen's DNSBL lookups are made by dnsblog(8)
with the system stub resolver, which reads /etc/resolv.conf and cannot be
given a port.  With ``resolv_conf=PATH`` (a resolv.conf such as
"nameserver 127.0.0.1" + "options timeout:1 attempts:1"), ``postfix start``
runs as ``unshare --mount --propagation private -- sh -c 'mount --bind PATH
/etc/resolv.conf && exec postfix -c CONFIG_DIR start'``: master(8) and all
the daemons it forks, dnsblog included, live in that private mount
namespace and see PATH as /etc/resolv.conf; the machine's /etc/resolv.conf
is not changed and no other process sees the mount.  The namespace goes
away with its last process (stop() kills them all by PID as usual; reload
keeps it, since the master stays).  start() checks through
/proc/MASTER/root that the master really sees PATH.  The DNS server must
then listen on port 53 of the address in PATH.  PATH must be readable by
the mail_owner user (dnsblog does not run as root).
private_resolv_conf_unavailable() says whether this works on this machine
(root, unshare(1), mount namespaces allowed).

reconfigure(params) rewrites main.cf with a new parameter set (replacing the
previous ``params``; hostname/smtpd_options stay), deletes the cache and runs
``postfix reload``; it returns when the old postscreen process (which still
had the old settings and the old cache open) has exited, so the next
connection is served by a fresh postscreen with the new settings and an empty
cache.  The port stays the same.  Close your connections first: a session
still open during reconfigure() finishes with the old settings.

start() truncates the maillog and deletes the cache; stop() keeps the port,
so stop() + start() reuses it if it is still free.

Run this file directly for a self-check that starts postscreen, runs a set
of SMTP dialogues from 127.0.0.x and prints replies and log lines::

    /usr/bin/python3 tests/integration/postscreen_ref.py [BASEDIR]
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from postfix_backend import (  # noqa: E402
    POSTFIX, PostfixBackend, PostfixError, _proc_starttime, free_port)

UNSHARE = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin") or "unshare"

__all__ = ["RealPostscreen", "PostfixError", "private_resolv_conf_unavailable"]


def _format_options(options: dict) -> str:
    """master.cf ``-o`` lines; values with blanks use the {name = value}
    form (Postfix >= 3.0)."""
    out = []
    for k, v in options.items():
        v = str(v)
        if v == "" or re.search(r"\s", v):
            out.append(f"  -o {{ {k} = {v} }}\n")
        else:
            out.append(f"  -o {k}={v}\n")
    return "".join(out)


def private_resolv_conf_unavailable() -> str | None:
    """None if ``resolv_conf=`` can work here (unshare(1) can make a
    private mount namespace and bind-mount a file over /etc/resolv.conf in
    it, without the machine's own /etc/resolv.conf changing); else the
    reason, for a pytest skip."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, Postfix as root)"
    if not os.path.exists(UNSHARE):
        return "unshare(1) (util-linux) not installed"
    try:
        with open("/etc/resolv.conf", "rb") as f:
            before = f.read()
    except OSError as e:
        return f"cannot read /etc/resolv.conf: {e}"
    probe = b"# postscreen_ref.py probe\nnameserver 127.0.0.1\n"
    with tempfile.NamedTemporaryFile(prefix="resolv-probe-") as tmp:
        tmp.write(probe)
        tmp.flush()
        try:
            r = subprocess.run(
                [UNSHARE, "--mount", "--propagation", "private", "--",
                 "/bin/sh", "-c",
                 'mount --bind "$1" /etc/resolv.conf && cat /etc/resolv.conf',
                 "sh", tmp.name],
                capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"unshare -m failed: {e}"
    with open("/etc/resolv.conf", "rb") as f:
        after = f.read()
    if after != before:  # must never happen with a private namespace
        raise PostfixError("/etc/resolv.conf changed by the unshare probe")
    if r.returncode != 0 or r.stdout != probe:
        return ("unshare -m + mount --bind over /etc/resolv.conf does not "
                f"work here (exit {r.returncode}): "
                f"{(r.stderr or r.stdout).decode('utf-8', 'replace').strip()}")
    return None


class _PostscreenInstance(PostfixBackend):
    """PostfixBackend with postscreen in front of a ``smtpd pass`` service
    instead of the three plain/proxy/xclient smtpd listeners."""

    def __init__(self, basedir: str, hostname: str, params: dict,
                 smtpd_options: dict, resolv_conf: str | None = None):
        super().__init__(basedir, hostname=hostname)
        self.params = dict(params)
        self.smtpd_options = dict(smtpd_options)
        self.resolv_conf = resolv_conf
        self.port: int | None = None
        self.keep_port: int | None = None  # reuse this port on restart

    def _postfix(self, *args: str, timeout: float = 30.0):
        """As the base, but with ``resolv_conf`` set, ``postfix start``
        runs in a private mount namespace where that file is bind-mounted
        over /etc/resolv.conf: master(8) and every daemon it forks
        (postscreen, dnsblog) inherit the namespace and so use that
        resolver configuration; the rest of the machine does not see the
        mount (unshare(1) makes the new namespace's mounts private, so
        nothing propagates back).  reload/stop only signal the master and
        need no namespace."""
        if self.resolv_conf is None or args[:1] != ("start",):
            return super()._postfix(*args, timeout=timeout)
        script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
        argv = [UNSHARE, "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh", self.resolv_conf,
                POSTFIX, "-c", self.config_dir, *args]
        with tempfile.TemporaryFile() as out:
            r = subprocess.run(argv, env=self._env(), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT,
                               timeout=timeout, check=False)
            out.seek(0)
            r.stdout = out.read().decode("utf-8", "replace")
        return r

    def _main_cf(self) -> str:
        overrides = {
            "myhostname": self.hostname,
            "smtpd_banner": "$myhostname ESMTP",
            "mynetworks": "127.0.0.1/32",
            "postscreen_access_list": "permit_mynetworks",
            "postscreen_greet_banner": "",
            "postscreen_dnsbl_sites": "",
            "postscreen_cache_map": "btree:$data_directory/postscreen_cache",
        }
        overrides.update({k: str(v) for k, v in self.params.items()})
        # Drop the base's definitions of overridden parameters (all base
        # parameters are one-line "name = value" entries), then append.
        kept = []
        for line in super()._main_cf().splitlines():
            m = re.match(r"([A-Za-z0-9_]+)\s*=", line)
            if m and m.group(1) in overrides:
                continue
            kept.append(line)
        kept.append("")
        kept.append("# postscreen_ref.py: postscreen comparison settings")
        for k, v in overrides.items():
            if "\n" in v:
                raise ValueError(f"newline in value of {k}")
            kept.append(f"{k} = {v}".rstrip())
        return "\n".join(kept) + "\n"

    def _master_cf(self) -> str:
        base = super()._master_cf()
        i = base.find("\npickup ")
        if i < 0:
            raise PostfixError("postfix_backend master.cf layout changed: "
                               "no pickup line")
        return (
            "# Generated by postscreen_ref.py - private test instance.\n"
            "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
            f"{self.host}:{self.port} inet n - n - 1 postscreen\n"
            f"{self.pass_service} pass - - n - - smtpd\n"
            f"{_format_options(self.smtpd_options)}"
            "dnsblog   unix  -       -       n       -       0       dnsblog\n"
            "tlsproxy  unix  -       -       n       -       0       tlsproxy\n"
            + base[i + 1:])

    def _write_config(self) -> None:
        # Called by PostfixBackend.start() once per attempt (it retries with
        # fresh ports when one is taken), and by reconfigure().
        if self.port is None or self.master_pid is None:
            if self.keep_port is not None:
                self.port, self.keep_port = self.keep_port, None
            else:
                self.port = free_port(self.host)
        super()._write_config()

    def _listening(self) -> bool:
        want = f"0100007F:{self.port:04X}"
        try:
            with open("/proc/net/tcp") as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and fields[1] == want:
                        break
                else:
                    return False
        except OSError:
            return False
        return os.path.exists(self.pass_socket)


class RealPostscreen:
    """A real Postfix postscreen(8) on 127.0.0.1:``port`` (see module doc).

    ``params``         main.cf parameters applied last (postscreen_* or any)
    ``hostname``       myhostname; the greeting is "220 <hostname> ESMTP"
    ``smtpd_options``  ``-o`` overrides for the ``smtpd pass`` service
    ``resolv_conf``    a resolv.conf for the instance's own resolver (see
                       the module doc, "DNS"); None: the system's

    Attributes: ``port`` (set by start()), ``host`` ("127.0.0.1"),
    ``basedir``, ``log_path``, ``cache_path``, ``config_dir``, ``backend``
    (the underlying PostfixBackend subclass, for pids()/log_text()/...).
    """

    START_TIMEOUT = 20.0
    RELOAD_TIMEOUT = 10.0

    def __init__(self, basedir: str, params: dict | None = None,
                 hostname: str = "mx.example.test",
                 smtpd_options: dict | None = None,
                 resolv_conf: str | None = None):
        if resolv_conf is not None:
            resolv_conf = os.path.abspath(resolv_conf)
        self.resolv_conf = resolv_conf
        self.backend = _PostscreenInstance(basedir, hostname, params or {},
                                           smtpd_options or {}, resolv_conf)
        self.basedir = self.backend.basedir
        self.host = self.backend.host
        self.hostname = hostname
        self.log_path = self.backend.log_path
        self.config_dir = self.backend.config_dir
        self.cache_path = os.path.join(self.backend.data_dir,
                                       "postscreen_cache.db")
        self._atexit_registered = False

    # ------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        return self.backend.port

    @property
    def params(self) -> dict:
        return dict(self.backend.params)

    def __enter__(self) -> "RealPostscreen":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<RealPostscreen {self.basedir} port={self.port} "
                f"master={self.backend.master_pid}>")

    def _clear_cache(self) -> None:
        for p in (self.cache_path,
                  os.path.join(self.backend.data_dir, "postscreen_cache")):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def start(self) -> None:
        """Start the instance (with an empty postscreen cache); return when
        the postscreen port accepts connections.  Raises PostfixError."""
        self.backend.master_pid = self.backend._read_master_pid()
        if self.backend.master_pid is not None:
            self.backend.stop()  # left over from an earlier run here
        os.makedirs(self.backend.data_dir, exist_ok=True)
        self._clear_cache()
        # A fresh log per start(), so log_lines() shows this run only.
        # (Nothing writes to it now: postlogd is not running.)
        if os.path.exists(self.log_path):
            os.truncate(self.log_path, 0)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self.backend.start()
        if self.resolv_conf is not None:
            self._check_resolver()

    def _check_resolver(self) -> None:
        """The master (whose namespace its children inherit) must see
        resolv_conf as /etc/resolv.conf, and this process must not."""
        with open(self.resolv_conf, "rb") as f:
            want = f.read()
        master = self.backend.master_pid
        try:
            with open(f"/proc/{master}/root/etc/resolv.conf", "rb") as f:
                seen = f.read()
            other_ns = (os.readlink(f"/proc/{master}/ns/mnt")
                        != os.readlink("/proc/self/ns/mnt"))
        except OSError as e:
            self.stop()
            raise PostfixError(f"cannot check the master's resolv.conf: {e}")
        if seen != want or not other_ns:
            self.stop()
            raise PostfixError(
                f"master {master} does not use {self.resolv_conf} in a "
                f"private mount namespace (own namespace: {other_ns}; "
                f"its /etc/resolv.conf: {seen!r})")

    def _config_procs(self) -> dict[int, int]:
        """pid -> starttime of every live process started for this
        instance's config dir (Postfix daemons carry MAIL_CONFIG=config_dir
        in their environment), including postscreen "draining" copies that
        left the master's process group after a reload."""
        want = b"MAIL_CONFIG=" + os.fsencode(self.config_dir) + b"\0"
        out = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if env.startswith(want) or b"\0" + want in env:
                st = _proc_starttime(int(name))
                if st is not None:
                    out[int(name)] = st
        return out

    def stop(self) -> None:
        """``postfix stop``, then SIGKILL any survivor by PID.  Idempotent.

        Also kills (by PID) postscreen copies still draining connections
        that were open during a reconfigure(): they are not in the master's
        process group, so ``postfix stop`` does not reach them."""
        if self.backend.port is not None:
            self.backend.keep_port = self.backend.port
        self.backend._remember_pids()
        members = set(self.backend._known_pids)
        procs = self._config_procs()
        for p, st in procs.items():
            if p not in members:  # a draining orphan: no reason to wait
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.backend._known_pids.setdefault(p, st)
        self.backend.stop()
        # postscreen runs in its own session (not in the master's process
        # group); when the master goes away it forks a draining copy if a
        # client is still connected, which would survive "postfix stop".
        deadline = time.monotonic() + 5
        while True:
            procs = self._config_procs()
            if not procs:
                break
            if time.monotonic() > deadline:
                raise PostfixError(f"processes of {self.basedir} survived "
                                   f"SIGKILL: {sorted(procs)}")
            for p in procs:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    @property
    def running(self) -> bool:
        return self.backend.running

    def _postscreen_pids(self) -> list[int]:
        out = []
        for p in self.backend.pids():
            try:
                exe = os.readlink(f"/proc/{p}/exe")
            except OSError:
                continue
            if os.path.basename(exe) == "postscreen":
                out.append(p)
        return out

    def reconfigure(self, params: dict) -> None:
        """Replace the parameter set, clear the cache, ``postfix reload``.

        Returns when the postscreen process of the previous configuration
        has exited; the next connection starts a fresh postscreen with the
        new settings and an empty cache.  Port unchanged.  Connections that
        are still open keep being served with the OLD settings (and the old,
        now unlinked, cache file) by a forked "draining" copy of the old
        postscreen (event_server_drain()); it exits when they end, and stop()
        kills it too (found by MAIL_CONFIG=config_dir in its environment:
        postscreen runs in its own session, outside the master's process
        group)."""
        if not self.running:
            self.backend.params = dict(params)
            return
        old = {p: _proc_starttime(p) for p in self._postscreen_pids()}
        self.backend.params = dict(params)
        self.backend._write_config()
        self._clear_cache()
        r = self.backend._postfix("reload", timeout=self.RELOAD_TIMEOUT)
        if r.returncode != 0:
            raise PostfixError(self.backend._failure(
                f"postfix reload failed (exit {r.returncode})", r.stdout))
        deadline = time.monotonic() + self.RELOAD_TIMEOUT
        while any(_proc_starttime(p) == st for p, st in old.items()):
            if time.monotonic() > deadline:
                raise PostfixError(self.backend._failure(
                    "old postscreen did not exit after reload", r.stdout))
            time.sleep(0.02)
        self.backend._remember_pids()

    # ------------------------------------------------------------------
    # log

    def _line_re(self) -> re.Pattern:
        tag = self.backend.params.get("syslog_name", "postfix")
        # "Nov 21 11:35:11 mx postfix/postscreen[3717]: CONNECT from ..."
        return re.compile(r"^\S.*?\s" + re.escape(str(tag))
                          + r"/postscreen\[\d+\]: (.*)$")

    def log_text(self) -> str:
        """The whole maillog (all services)."""
        return self.backend.log_text()

    def log_lines(self, since: int = 0) -> list[str]:
        """postscreen's maillog lines, in order, text after "]: ".
        ``since``: skip that many lines (a previous len(log_lines()))."""
        pat = self._line_re()
        out = []
        for line in self.log_text().splitlines():
            m = pat.search(line)
            if m:
                out.append(m.group(1))
        return out[since:]

    def mark(self) -> int:
        """Current number of postscreen log lines, for ``since=``."""
        return len(self.log_lines())

    def wait_for_log(self, regex: str, timeout: float = 10, *,
                     since: int = 0) -> str:
        """Poll until a postscreen log line (text after "]: ", from index
        ``since`` of log_lines()) matches ``regex`` (re.search); return that
        line.  Raises TimeoutError with postscreen's log."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(since)
            for line in lines:
                if pat.search(line):
                    return line
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no postscreen log line matching {regex!r} after "
                    f"{timeout}s; maillog tail:\n{self.log_text()[-6000:]}")
            time.sleep(0.02)


# ----------------------------------------------------------------------
# self-check / transcript recorder

def _read_reply(sock, timeout: float = 3.0) -> bytes:
    """Read one complete SMTP reply (up to a "ddd " final line), or what
    arrived before EOF/timeout (then tagged <EOF>/<TIMEOUT>)."""
    import socket as _socket
    sock.settimeout(timeout)
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for ln in lines[:-1]:
            if re.match(rb"^\d{3}(?: |$)", ln):
                return buf
        try:
            c = sock.recv(1)
        except _socket.timeout:
            return buf + b"<TIMEOUT>"
        except ConnectionResetError:
            return buf + b"<RESET>"
        if not c:
            return buf + b"<EOF>"
        buf += c


def _dialogue(ps: RealPostscreen, src: str, steps, title: str,
              replies_per_step=None, final_wait: str | None = None) -> None:
    """Connect from ``src``, read the greeting, send each step (bytes) and
    read one reply per step (or replies_per_step[i]); print everything."""
    import socket as _socket
    since = ps.mark()
    print(f"=== {title} (from {src}) ===")
    s = _socket.socket()
    s.bind((src, 0))
    s.connect((ps.host, ps.port))
    try:
        print(f"  S: {_read_reply(s)!r}")
        for i, data in enumerate(steps):
            if isinstance(data, tuple):  # ("sleep", seconds)
                time.sleep(data[1])
                continue
            try:
                s.sendall(data)
            except OSError as e:
                print(f"  C: {data!r}  -> send failed: {e}")
                break
            n = replies_per_step[i] if replies_per_step else 1
            shown = data if len(data) <= 80 else data[:40] + b"..." + data[-10:]
            print(f"  C: {shown!r}")
            for _ in range(n):
                r = _read_reply(s)
                print(f"  S: {r!r}")
                if r.endswith((b"<EOF>", b"<RESET>")):
                    break
            else:
                continue
            break
    finally:
        s.close()
    ip = re.escape(src)
    try:
        ps.wait_for_log(final_wait or
                        rf"(DISCONNECT|PASS NEW|PASS OLD|COMMAND COUNT LIMIT"
                        rf"|COMMAND TIME LIMIT) \[{ip}\]",
                        timeout=3, since=since)
    except TimeoutError:
        print("  (no DISCONNECT/PASS line within 3s)")
    time.sleep(0.1)  # let postlogd catch up with trailing lines
    for line in ps.log_lines(since):
        print(f"  L: {line!r}")


def _self_check(basedir: str) -> None:
    import subprocess
    params = {
        "postscreen_pipelining_enable": "yes",
        "postscreen_non_smtp_command_enable": "yes",
        "postscreen_bare_newline_enable": "yes",
        "postscreen_bare_newline_action": "enforce",
    }
    before = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                            text=True).stdout.count("postfix")
    t0 = time.monotonic()
    with RealPostscreen(basedir, params) as ps:
        print(f"started in {time.monotonic() - t0:.2f}s: {ps!r}")
        n = [1]

        def ip():
            n[0] += 1
            return f"127.0.0.{n[0]}"

        _dialogue(ps, ip(), [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n",
                             b"RCPT TO:<c@d>\r\n", b"QUIT\r\n"],
                  "EHLO/MAIL/RCPT/QUIT")
        _dialogue(ps, ip(), [b"GET / HTTP/1.0\r\n"], "non-SMTP command")
        _dialogue(ps, ip(), [b"EHLO x\n", b"QUIT\r\n"], "bare newline")
        if "--short" in sys.argv:
            pass
        else:
            _dialogue(ps, ip(), [b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n",
                                 b"RCPT TO:<c@d>\r\n", b"DATA\r\n",
                                 b"QUIT\r\n"], "(1) HELO/MAIL/RCPT/DATA")
            _dialogue(ps, ip(), [b"EHLO x\r\nMAIL FROM:<a@b>\r\n", b"QUIT\r\n"],
                      "(2) pipelining", replies_per_step=[2, 1])
            _dialogue(ps, ip(), [b"FOO: bar\r\n"], "(3) header line")
            cmds = [b"NOOP", b"RSET", b"VRFY x", b"ETRN x", b"ETRN", b"VRFY",
                    b"HELO", b"EHLO", b"MAIL", b"MAIL FROM:<a@b>",
                    b"MAIL FROM:<a@b>", b"RCPT", b"STARTTLS", b"STARTTLS x",
                    b"AUTH PLAIN", b"XCLIENT a", b"BDAT 10"]
            _dialogue(ps, ip(), [c + b"\r\n" for c in cmds],
                      "(4a) assorted commands (BDAT/DATA end the session)")
            _dialogue(ps, ip(), [b"bogus\r\n", b"1abc\r\n", b"QUIT\r\n"],
                      "(4b) assorted commands, continued")
            _dialogue(ps, ip(), [b"NOOP\r\n"] * 25 + [b"QUIT\r\n"],
                      "(5) 25 x NOOP")
            _dialogue(ps, ip(), [b"A" * 3000 + b"\r\n", b"QUIT\r\n"],
                      "(6) 3000-byte line")
            _dialogue(ps, ip(), [b"NO\x00OP\r\n", b"QUIT\r\n"], "(7) NUL byte")
            _dialogue(ps, ip(), [b"\xff\xfe\r\n", b"QUIT\r\n"], "(8) non-UTF-8")
            a = ip()
            _dialogue(ps, a, [b"RCPT TO:<c@d>\r\n", b"QUIT\r\n"],
                      "(9) RCPT without MAIL")
            _dialogue(ps, a, [b"EHLO y\r\n", b"QUIT\r\n"],
                      "(9b) next connection, same address",
                      final_wait=rf"(PASS|DISCONNECT).*\[{re.escape(a)}\]")
            print("--- smtpd lines for the (9b) address ---")
            for line in ps.log_text().splitlines():
                if "/smtpd[" in line and f"[{a}]" in line:
                    print("  " + re.sub(r"^.*?\]: ", "", line))
        t1 = time.monotonic()
    print(f"stopped in {time.monotonic() - t1:.2f}s, "
          f"total {time.monotonic() - t0:.2f}s")
    after = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                           text=True).stdout.count("postfix")
    print(f"processes mentioning postfix: before={before} after={after}")
    left = [p for p in ps.backend._known_pids]
    assert not left, left


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    _self_check(args[0] if args else "/tmp/postscreen-ref-selfcheck")
