"""A private, throw-away Postfix instance used as the backend MTA in tests.

Stdlib only.  Used both by the pytest fixtures and by demo scripts::

    from postfix_backend import PostfixBackend

    with PostfixBackend("/tmp/pfx") as pf:
        ...  # talk SMTP to pf.plain_port / pf.proxy_port / pf.xclient_port,
             # or hand a client fd to pf.pass_socket like postscreen does
        pf.wait_for_message("Subject: hello")
        pf.wait_for_log(r"client=unknown\\[127\\.0\\.0\\.9\\]")

Layout (everything lives under ``basedir``; nothing touches /etc/postfix,
/var/spool/postfix or port 25)::

    basedir/etc/main.cf, master.cf   config_directory (root, 0755)
    basedir/spool/                   queue_directory  (root, 0755, standard
                                     Postfix sub-directories, see below)
    basedir/spool/private/smtpd      the "smtpd pass" socket (pass_socket)
    basedir/spool/mail/new/          delivered messages, one file each
    basedir/spool/deliver.sh         the pipe(8) delivery script
    basedir/spool/data/              data_directory   (postfix, 0700; set as
                                     the relative path "data", see below)
    basedir/maillog                  maillog_file, written by postlogd(8)

Notes on what was needed to make this work on Debian 12 / Postfix 3.7:

* ``postfix -c DIR start|stop|check`` works as root *without*
  ``alternate_config_directories`` in /etc/postfix/main.cf and without any
  ``import_environment`` change (verified on Debian 12, Postfix 3.7.11):
  postfix(1) exports ``MAIL_CONFIG=DIR`` to postfix-script and master(8), and
  the default ``import_environment`` already contains MAIL_CONFIG, so every
  daemon reads DIR/main.cf.  The "unauthorized configuration directory"
  check only bites the set-gid commands (postqueue/postdrop, i.e. sendmail,
  "postfix flush"), which say: 'specify "alternate_config_directories = DIR"
  or "multi_instance_directories = DIR" in /etc/postfix/main.cf'.  This
  backend never uses them, so /etc/postfix stays untouched.  Postfix commands
  are run with a scrubbed environment (no inherited MAIL_CONFIG etc.).
* ``postfix set-permissions``/``post-install`` are NOT used: they also
  chown/chmod the shared files listed in /etc/postfix/postfix-files
  (/usr/sbin/postdrop, /usr/lib/postfix/..., /etc/postfix/...).  Instead the
  queue directory tree is created here by hand with exactly the owners and
  modes from postfix-files.  ``postfix start`` then runs ``post-install
  create-missing`` (a no-op) and ``postfix check``, which is clean.
* ``maillog_file`` must start with one of ``maillog_file_prefixes`` (default
  "/var, /dev/stdout"), so that parameter is set to basedir.  The log is
  written by the postlogd(8) service (``postlog unix-dgram`` in master.cf).
* ``basedir`` may live below a directory that unprivileged users cannot
  traverse (e.g. pytest's 0700 /tmp/pytest-of-root).  Postfix daemons chdir()
  to queue_directory as root before dropping privileges and then use relative
  paths (private/..., incoming/...), so that works, with two exceptions that
  are worked around here:
  - master(8) opens $data_directory/master.lock *as mail_owner*; with an
    absolute data_directory below a 0700 root directory that fails with
    "open lock file ...: Permission denied".  data_directory is therefore
    given as the relative path "data", which master, postfix-script (it
    cd's to queue_directory first) and "postfix check" resolve against
    queue_directory.  (Nothing else here uses data_directory but tlsmgr: no TLS
    session caches, address_verify_map is in-memory; tlsmgr(8), which
    STARTTLS needs for its random seed, keeps prng_exch there.)
  - delivery: virtual(8) must open an absolute mailbox path with a non-root
    uid (virtual_minimum_uid >= 1), which fails in such a tree.  So mail for
    example.test goes to a pipe(8) transport that runs "/bin/sh deliver.sh"
    as ``nobody`` (pipe refuses root and mail_owner) in its default working
    directory, queue_directory, and writes to the relative ``mail/tmp`` and
    renames into ``mail/new``.
  Consequence for callers: a process that is *not* root (e.g. mxscreen after
  dropping privileges to ``postfix``) can only reach ``pass_socket`` through
  its absolute path if every ancestor of basedir is searchable by it; either
  connect before dropping privileges, chdir to ``queue_directory`` first and
  use the relative ``private/smtpd`` (as postscreen does), or choose a
  traversable basedir.
* A main.cf younger than 2 s makes every Postfix program sleep (dict_load_file
  waits for the file to "settle"), which made "postfix start" take ~2 s; the
  generated files are therefore backdated.
* ``postfix stop`` (postfix-script) SIGTERMs master(8), which terminates its
  whole process group; stop() additionally snapshots the master and all its
  descendants beforehand (via /proc) and SIGKILLs any survivor.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable

__all__ = ["PostfixBackend", "PostfixError", "free_port"]

POSTFIX = shutil.which("postfix", path="/usr/sbin:/sbin:/usr/bin:/bin") or "/usr/sbin/postfix"

MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
LOCAL_DOMAIN = "example.test"
# pipe(8) refuses to run commands as root or as mail_owner.
DELIVERY_USER = "nobody"

# Ports handed out by free_port() in this process, so that two instances
# started back-to-back never get the same "free" port from the kernel.
_handed_out: set[tuple[str, int]] = set()
_port_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is currently free.

    The port is obtained by binding port 0; it is not reserved, so there is a
    small race window until the caller binds it.  Ports already returned by
    this function in this process are never returned twice.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _port_lock:
        for _ in range(100):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if (host, port) not in _handed_out:
                _handed_out.add((host, port))
                return port
    raise OSError(f"could not find a free port on {host}")


class PostfixError(RuntimeError):
    """Start/stop failure; the message includes Postfix output and log."""


def _proc_starttime(pid: int) -> int | None:
    """Start time (clock ticks since boot) of pid, None if gone/zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces/parens; fields after the last ')' are fixed.
    rest = data[data.rfind(")") + 2:].split()
    if rest[0] in ("Z", "X"):  # zombie/dead: no longer a running process
        return None
    return int(rest[19])  # field 22 overall


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        if rest[0] in ("Z", "X"):
            continue
        table[int(name)] = (int(rest[1]), int(rest[2]))
    return table


class PostfixBackend:
    """A private Postfix instance under ``basedir``.

    Attributes (ports are assigned by start()):

    ``host``          "127.0.0.1" - all TCP services listen there only
    ``plain_port``    plain smtpd (no PROXY, no XCLIENT)
    ``proxy_port``    smtpd with smtpd_upstream_proxy_protocol=haproxy
                      (PROXY v1 and v2)
    ``xclient_port``  smtpd with smtpd_authorized_xclient_hosts=127.0.0.0/8,
                      [::1]/128
    ``pass_socket``   absolute path of the UNIX socket of the
                      ``smtpd pass`` service (queue_directory/private/smtpd)
    ``pass_service``  "smtpd" (its master.cf service name, as postscreen's
                      smtpd_service_name)
    ``config_dir``, ``queue_dir``, ``data_dir``, ``mail_dir``, ``log_path``
    ``master_pid``    pid of master(8) while running, else None

    Mail to ``<anything>@example.test`` is accepted from any client and
    delivered into ``mail_dir/new/`` (one file per message and recipient);
    mail to any other domain is rejected (Relay access denied).
    """

    START_TIMEOUT = 20.0
    STOP_TIMEOUT = 15.0

    def __init__(self, basedir: str, hostname: str = "mx.test",
                 proxy_port: int | None = None,
                 main_cf_extra: dict[str, str] | None = None):
        """proxy_port: a fixed port for the PROXY-protocol smtpd (the demo
        uses 10025, where mxscreen's shipped configuration looks); by
        default every port is picked free.

        main_cf_extra: main.cf settings (name -> value) on top of the
        generated ones: a name the generated main.cf has gets its line
        replaced (so that no parameter is set twice), others are appended.
        E.g. a sending instance that relays example.test elsewhere::

            {"virtual_mailbox_domains": "", "relay_domains": "example.test",
             "transport_maps": "inline:{ example.test=smtp:[127.0.0.1]:2525 }"}
        """
        self.fixed_proxy_port = proxy_port
        self.main_cf_extra = dict(main_cf_extra or {})
        self.basedir = os.path.abspath(basedir)
        self.hostname = hostname
        self.host = "127.0.0.1"
        self.config_dir = os.path.join(self.basedir, "etc")
        self.queue_dir = os.path.join(self.basedir, "spool")
        self.data_dir = os.path.join(self.queue_dir, "data")
        self.mail_dir = os.path.join(self.queue_dir, "mail")
        self.log_path = os.path.join(self.basedir, "maillog")
        self.pass_service = "smtpd"
        self.pass_socket = os.path.join(self.queue_dir, "private", self.pass_service)
        self.plain_port: int | None = None
        self.proxy_port: int | None = None
        self.xclient_port: int | None = None
        self.master_pid: int | None = None
        self._known_pids: dict[int, int] = {}  # pid -> starttime
        self._atexit_registered = False

    # ------------------------------------------------------------------
    # context manager

    def __enter__(self) -> "PostfixBackend":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<PostfixBackend {self.basedir} master={self.master_pid} "
                f"plain={self.plain_port} proxy={self.proxy_port} "
                f"xclient={self.xclient_port}>")

    # ------------------------------------------------------------------
    # setup

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C",
            "LC_ALL": "C",
        }
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        return env

    def _postfix(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        # Output goes to a temporary file, not a pipe: the daemonized
        # master(8) keeps inherited descriptors open for a while (~2 s),
        # and waiting for EOF on a pipe would stall every start.
        with tempfile.TemporaryFile() as out:
            r = subprocess.run(
                [POSTFIX, "-c", self.config_dir, *args],
                env=self._env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout, check=False)
            out.seek(0)
            r.stdout = out.read().decode("utf-8", "replace")
        return r

    def _mkdir(self, path: str, uid: int, gid: int, mode: int) -> None:
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    def _write(self, path: str, text: str, mode: int = 0o644) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        # Backdate: Postfix's dict_load_file() refuses to read a file whose
        # mtime is less than 2 s old and sleeps/retries instead, which made
        # every postconf/postsuper/master run in "postfix start" ~2 s slower.
        past = time.time() - 60
        os.utime(tmp, (past, past))
        os.replace(tmp, path)

    def _setup_dirs(self) -> None:
        pf = pwd.getpwnam(MAIL_OWNER)
        uid, gid = pf.pw_uid, pf.pw_gid
        sgid = grp.getgrnam(SETGID_GROUP).gr_gid
        os.makedirs(self.basedir, exist_ok=True)
        self._mkdir(self.config_dir, 0, 0, 0o755)
        self._mkdir(self.data_dir, uid, gid, 0o700)
        self._mkdir(self.queue_dir, 0, 0, 0o755)
        # Owners/modes as in /etc/postfix/postfix-files.
        for sub in ("active", "bounce", "corrupt", "defer", "deferred",
                    "flush", "hold", "incoming", "private", "saved", "trace"):
            self._mkdir(os.path.join(self.queue_dir, sub), uid, gid, 0o700)
        self._mkdir(os.path.join(self.queue_dir, "maildrop"), uid, sgid, 0o730)
        self._mkdir(os.path.join(self.queue_dir, "public"), uid, sgid, 0o710)
        self._mkdir(os.path.join(self.queue_dir, "pid"), 0, 0, 0o755)
        # Mail spool, written by the pipe transport running as DELIVERY_USER.
        du = pwd.getpwnam(DELIVERY_USER)
        self._mkdir(self.mail_dir, du.pw_uid, du.pw_gid, 0o755)
        for sub in ("tmp", "new"):
            self._mkdir(os.path.join(self.mail_dir, sub), du.pw_uid, du.pw_gid, 0o755)

    def _main_cf(self) -> str:
        text = self._main_cf_base()
        if not self.main_cf_extra:
            return text
        extra = dict(self.main_cf_extra)
        lines = []
        for line in text.splitlines():
            name = line.split("=", 1)[0].strip() if "=" in line and not line.startswith(
                ("#", " ", "\t")) else None
            if name in extra:
                lines.append(f"{name} = {extra.pop(name)}")
            else:
                lines.append(line)
        if extra:
            lines.append("")
            lines.append("# main_cf_extra")
            lines.extend(f"{k} = {v}" for k, v in extra.items())
        return "\n".join(lines) + "\n"

    def _main_cf_base(self) -> str:
        return f"""\
# Generated by postfix_backend.py - private test instance, do not edit.
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {os.path.relpath(self.data_dir, self.queue_dir)}
mail_owner = {MAIL_OWNER}
setgid_group = {SETGID_GROUP}

myhostname = {self.hostname}
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128

# Logging to a private file through postlogd(8).
maillog_file = {self.log_path}
maillog_file_prefixes = {self.basedir}
syslog_name = postfix

# No DNS: no reverse lookups of clients, no outbound mail at all.
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
relayhost =
default_transport = error:outbound mail disabled in test backend
relay_transport = error:outbound mail disabled in test backend

# Local aliasing/delivery off; {LOCAL_DOMAIN} is a virtual mailbox domain
# where every local part exists, delivered by the "testdeliver" pipe(8).
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
virtual_alias_maps =
virtual_mailbox_domains = {LOCAL_DOMAIN}
virtual_mailbox_maps = static:OK
virtual_transport = testdeliver
testdeliver_destination_recipient_limit = 1

smtpd_banner = $myhostname ESMTP Postfix (test backend)
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit
smtpd_helo_required = no
smtpd_delay_reject = yes
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_tls_security_level = none
smtp_tls_security_level = none
in_flow_delay = 0
address_verify_map =
biff = no
notify_classes =

# Retry quickly if something gets deferred.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
"""

    def _master_cf(self) -> str:
        h = self.host
        return f"""\
# Generated by postfix_backend.py - private test instance, do not edit.
# service type  private unpriv  chroot  wakeup  maxproc command + args
{h}:{self.plain_port} inet n - n - - smtpd
  -o syslog_name=postfix/plain
{h}:{self.proxy_port} inet n - n - - smtpd
  -o syslog_name=postfix/proxy
  -o smtpd_upstream_proxy_protocol=haproxy
{h}:{self.xclient_port} inet n - n - - smtpd
  -o syslog_name=postfix/xclient
  -o smtpd_authorized_xclient_hosts=127.0.0.0/8,[::1]/128
{self.pass_service} pass - - n - - smtpd
  -o syslog_name=postfix/pass
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
# Delivery for {LOCAL_DOMAIN}: runs as {DELIVERY_USER} with cwd=queue_directory
# (pipe(8) default), so relative paths work even if basedir's ancestors
# are not searchable by {DELIVERY_USER}.
testdeliver unix -      n       n       -       -       pipe
  flags=DRO user={DELIVERY_USER} argv=/bin/sh deliver.sh
"""

    _DELIVER_SH = """\
#!/bin/sh
# pipe(8) delivery script of postfix_backend.py; cwd is queue_directory.
# Writes the message to mail/tmp and renames it into mail/new (maildir-like).
umask 022
n="$(date +%s.%N).$$"
cat > "mail/tmp/$n" || { rm -f "mail/tmp/$n"; exit 75; }
mv "mail/tmp/$n" "mail/new/$n" || exit 75
exit 0
"""

    def _write_config(self) -> None:
        self._write(os.path.join(self.config_dir, "main.cf"), self._main_cf())
        self._write(os.path.join(self.config_dir, "master.cf"), self._master_cf())
        self._write(os.path.join(self.queue_dir, "deliver.sh"), self._DELIVER_SH, 0o755)

    # ------------------------------------------------------------------
    # start / stop

    def _read_master_pid(self) -> int | None:
        """The pid in queue_directory/pid/master.pid if that process is
        alive and really is a Postfix master (guards against pid reuse)."""
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None
        if os.path.basename(exe) != "master" or _proc_starttime(pid) is None:
            return None
        return pid

    def _instance_pids(self) -> dict[int, int]:
        """pid -> starttime of the master and all its descendants/group."""
        master = self.master_pid
        if master is None:
            return {}
        table = _proc_table()
        members = {p for p, (_, pgid) in table.items() if pgid == master}
        if master in table:
            members.add(master)
        # Descendants that changed process group (defensive).
        changed = True
        while changed:
            changed = False
            for p, (ppid, _) in table.items():
                if ppid in members and p not in members:
                    members.add(p)
                    changed = True
        result = {}
        for p in members:
            st = _proc_starttime(p)
            if st is not None:
                result[p] = st
        return result

    def _remember_pids(self) -> None:
        for p, st in self._instance_pids().items():
            self._known_pids.setdefault(p, st)

    def _alive(self, pids: dict[int, int]) -> dict[int, int]:
        return {p: st for p, st in pids.items() if _proc_starttime(p) == st}

    def _listening(self) -> bool:
        # Look at /proc/net/tcp instead of connecting, so that readiness
        # probes don't leave "lost connection"/"haproxy read: EOF" noise in
        # the log.
        want = {f"0100007F:{p:04X}" for p in
                (self.plain_port, self.proxy_port, self.xclient_port)}
        try:
            with open("/proc/net/tcp") as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        want.discard(fields[1])
        except OSError:
            return False
        return not want and os.path.exists(self.pass_socket)

    def start(self) -> None:
        """Create the instance, start it and wait until all services answer.

        Raises PostfixError (with the Postfix output and log) on failure.
        """
        if self.master_pid is not None:
            raise PostfixError(f"{self!r} already started")
        if self._read_master_pid() is not None:
            # Left over from an earlier run in the same basedir (e.g. a
            # crashed test process): get rid of it first.
            self.stop()
        self._setup_dirs()
        last_err = None
        for attempt in range(3):  # retry with new ports if one got taken
            self.plain_port = free_port(self.host)
            self.proxy_port = self.fixed_proxy_port or free_port(self.host)
            self.xclient_port = free_port(self.host)
            self._write_config()
            try:
                os.unlink(self.pass_socket)  # stale from an earlier run
            except FileNotFoundError:
                pass
            offset = self.log_offset()
            try:
                self._start_once()
                return
            except PostfixError as e:
                last_err = e
                self.stop()
                if "Address already in use" not in self.log_text()[offset:]:
                    break
        assert last_err is not None
        raise last_err

    def _start_once(self) -> None:
        deadline = time.monotonic() + self.START_TIMEOUT
        try:
            r = self._postfix("start", timeout=self.START_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.master_pid = self._read_master_pid()
            raise PostfixError(self._failure("postfix start timed out", e.output))
        self.master_pid = self._read_master_pid()
        if r.returncode != 0:
            raise PostfixError(self._failure(
                f"postfix start failed (exit {r.returncode})", r.stdout))
        if self.master_pid is None:
            raise PostfixError(self._failure("no master.pid after start", r.stdout))
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self._remember_pids()
        while not self._listening():
            if time.monotonic() > deadline:
                raise PostfixError(self._failure(
                    "services did not come up within "
                    f"{self.START_TIMEOUT}s", r.stdout))
            if _proc_starttime(self.master_pid) is None:
                raise PostfixError(self._failure("master died", r.stdout))
            time.sleep(0.05)
        self._remember_pids()

    def _failure(self, what: str, output: str | bytes | None) -> str:
        if isinstance(output, bytes):
            output = output.decode("utf-8", "replace")
        return (f"{what} [{self.basedir}]\n"
                f"--- postfix output ---\n{output or ''}\n"
                f"--- {self.log_path} ---\n{self.log_text()[-8000:]}")

    def stop(self) -> None:
        """Stop the instance; make sure master and all children are gone.

        Idempotent, bounded in time (about STOP_TIMEOUT seconds at most).
        Raises PostfixError only if processes survive SIGKILL.
        """
        if self.master_pid is None:
            self.master_pid = self._read_master_pid()
        if self.master_pid is None and not self._known_pids:
            return
        self._remember_pids()
        pids = dict(self._known_pids)
        deadline = time.monotonic() + self.STOP_TIMEOUT
        try:
            # postfix-script stop sends SIGTERM to the master (which
            # terminates its process group) and waits up to 5 s, then
            # kill -9's the group itself.
            self._postfix("stop", timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # master is normally gone now; give children a moment to exit.
        grace = min(time.monotonic() + 3, deadline - 2)
        while self._alive(pids) and time.monotonic() < grace:
            time.sleep(0.02)
        leftover = self._alive(pids)
        if leftover:
            for p in leftover:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            while self._alive(leftover) and time.monotonic() < deadline:
                time.sleep(0.05)
        still = self._alive(pids)
        self.master_pid = None
        self._known_pids = {}
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if still:
            raise PostfixError(f"processes of {self.basedir} survived SIGKILL: "
                               f"{sorted(still)}")

    def pids(self) -> list[int]:
        """Live pids of this instance (master and children)."""
        self._remember_pids()
        return sorted(self._alive(self._known_pids))

    @property
    def running(self) -> bool:
        return self.master_pid is not None and _proc_starttime(self.master_pid) is not None

    def check(self) -> str:
        """Run ``postfix -c DIR check``; return its output (warnings)."""
        r = self._postfix("check")
        if r.returncode != 0:
            raise PostfixError(self._failure("postfix check failed", r.stdout))
        return r.stdout

    # ------------------------------------------------------------------
    # log

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        """Current end of log_text(); pass as ``since=`` to wait_for_log()
        to only match lines logged after this point."""
        return len(self.log_text())

    def wait_for_log(self, regex: str, timeout: float = 20, *,
                     since: int = 0, flags: int = re.MULTILINE) -> re.Match:
        """Poll the log until ``regex`` matches and return the match.

        The search starts at offset ``since`` of log_text() (e.g. a previous
        log_offset()); match positions are offsets into log_text().
        Raises TimeoutError with the log tail."""
        pat = re.compile(regex, flags)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            m = pat.search(text, since)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no match for {regex!r} in {self.log_path} after {timeout}s;"
                    f" log tail:\n{text[-6000:]}")
            time.sleep(0.05)

    # ------------------------------------------------------------------
    # delivered mail

    def message_files(self) -> list[str]:
        """Paths of delivered messages, oldest first."""
        d = os.path.join(self.mail_dir, "new")
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        paths = [os.path.join(d, n) for n in names]

        def key(p: str):
            try:
                return (os.stat(p).st_mtime_ns, p)
            except FileNotFoundError:
                return (0, p)
        return sorted(paths, key=key)

    def messages(self) -> list[str]:
        """Full texts of all delivered messages (one per recipient), oldest
        first, including headers added by Postfix (Return-Path,
        X-Original-To, Delivered-To, Received, ...)."""
        out = []
        for p in self.message_files():
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
        return out

    def clear_messages(self) -> None:
        for p in self.message_files():
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def wait_for_message(self, predicate_or_substring: str | Callable[[str], bool],
                         timeout: float = 20) -> str:
        """Poll until a delivered message satisfies the predicate (or contains
        the substring); return its text.  Raises TimeoutError."""
        if callable(predicate_or_substring):
            pred = predicate_or_substring
        else:
            needle = predicate_or_substring
            pred = lambda m: needle in m  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            for m in msgs:
                if pred(m):
                    return m
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no matching message for {predicate_or_substring!r} after "
                    f"{timeout}s ({len(msgs)} delivered); log tail:\n"
                    f"{self.log_text()[-6000:]}")
            time.sleep(0.05)


if __name__ == "__main__":  # tiny manual demo: python3 postfix_backend.py DIR
    import sys
    import smtplib
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/postfix-backend-demo"
    t0 = time.monotonic()
    with PostfixBackend(d) as pf:
        print(f"started in {time.monotonic() - t0:.2f}s: {pf!r}")
        with smtplib.SMTP(pf.host, pf.plain_port) as s:
            s.sendmail("a@sender.test", ["demo@example.test"],
                       "Subject: demo\r\n\r\nhello\r\n")
        print(pf.wait_for_message("Subject: demo"))
        t0 = time.monotonic()
    print(f"stopped in {time.monotonic() - t0:.2f}s")


@contextlib.contextmanager
def private_postfix(prefix: str = "mxs-postfix-", **kw):
    """A started PostfixBackend (KW: its arguments) in a fresh directory
    below /tmp with mode 0755, so that mxscreen running as an unprivileged
    user reaches its pass socket (pytest's own tmp dir is 0700); stopped
    and removed at the end."""
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(base, 0o755)
    pf = PostfixBackend(base, **kw)
    pf.start()
    try:
        yield pf
    finally:
        pf.stop()
        shutil.rmtree(base, ignore_errors=True)
