"""Run a real redis-server for a test, and talk to it.

Stdlib only.  ``RedisServer`` writes a configuration file into the test's
directory and runs ``redis-server`` (Debian 12: Redis 7.0) in the
foreground, without persistence, so that every start is empty; it is
stopped (SIGTERM), killed (SIGKILL) and restarted on the same port by PID.
``command()`` speaks RESP2 over a socket of its own (a tiny client below),
authenticating as the server asks.

With ``netns=NAME`` the server runs in that network namespace (``ip netns
exec NAME redis-server ...``, which execs: the PID is redis-server's), and
the test's own connections are made from inside it too (``in_netns``: a
thread that enters the namespace, so the socket lives there).
"""
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time

from mxs import free_port, read_text

CLONE_NEWNET = 0x40000000


class RedisError(Exception):
    """An error reply ("-ERR ...", "-WRONGPASS ...")."""


# ---- Network namespaces -----------------------------------------------------


def in_netns(netns, fn, *args, **kw):
    """FN(*ARGS, **KW) in network namespace NETNS (a name under
    /var/run/netns, as `ip netns` makes), or here when NETNS is None.  Runs
    in a thread of its own that enters the namespace (setns(2) changes the
    calling thread only), so sockets made there belong to it and can be
    used from any thread afterwards."""
    if netns is None:
        return fn(*args, **kw)
    out = {}

    def run():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {netns}: {os.strerror(e)}")
            finally:
                os.close(fd)
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def netns_socket(netns, family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A new socket in network namespace NETNS (None: here)."""
    return in_netns(netns, socket.socket, family, type)


# ---- A tiny RESP2 client ----------------------------------------------------


class Resp:
    """One connection to a Redis server: call(*args) sends a command and
    returns its reply as Python values (simple string: str, integer: int,
    bulk string: str or None, array: list or None); an error reply raises
    RedisError."""

    def __init__(self, host="127.0.0.1", port=6379, unix=None, timeout=5, netns=None):
        if unix:
            self.sock = netns_socket(netns, socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = netns_socket(netns, fam)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"Redis closed the connection (read {line!r})")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode(errors="surrogateescape")
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("Redis closed the connection in a reply")
            return data[:-2].decode(errors="surrogateescape")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise ConnectionError(f"not a RESP2 reply: {line!r}")


# ---- The server -------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own in WORKDIR.

    PASSWORD sets the default user's password (requirepass); USER and
    USER_PASSWORD add an ACL user with every right and switch the default
    user off (unless PASSWORD is given too: then the default user keeps
    that password).  BIND is the list of addresses to listen on (loopback by
    default); UNIXSOCKET=True (or a path) listens on a UNIX socket as well,
    mode 0777, WORKDIR/NAME.sock by default.  NETNS runs the server in that
    network namespace; HOST is the address the test connects to (the first
    of BIND by default)."""

    def __init__(self, workdir, password=None, user=None, user_password=None, port=None,
                 bind=("127.0.0.1",), unixsocket=None, netns=None, host=None, name="redis"):
        if user and not user_password:
            raise ValueError("an ACL user needs user_password")
        self.dir = workdir
        self.password = password
        self.user = user
        self.user_password = user_password
        self.bind = list(bind)
        self.netns = netns
        self.host = host or self.bind[0]
        self.port = port if port is not None else free_port(
            "127.0.0.1" if netns else self.bind[0])
        if unixsocket is True:
            unixsocket = os.path.join(workdir, f"{name}.sock")
        self.unixsocket = unixsocket
        self.conf_path = os.path.join(workdir, f"{name}.conf")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.out_path = os.path.join(workdir, f"{name}.stdout")
        self.proc = None
        self._out = None
        self._write_conf()

    def _write_conf(self):
        loopback = all(a in ("127.0.0.1", "::1", "-::1") or a.startswith("127.")
                       for a in self.bind)
        lines = [
            f"bind {' '.join(self.bind)}",
            f"port {self.port}",
            'save ""',
            "appendonly no",
            f"dir {self.dir}",
            "daemonize no",
            f"logfile {self.log_path}",
            "loglevel notice",
            "databases 16",
        ]
        if not loopback:
            lines.append("protected-mode no")
        if self.unixsocket:
            lines += [f"unixsocket {self.unixsocket}", "unixsocketperm 777"]
        if self.user:
            if self.password:
                lines.append(f"user default on >{self.password} ~* &* +@all")
            else:
                lines.append("user default off")
            lines.append(f"user {self.user} on >{self.user_password} ~* &* +@all")
        elif self.password:
            lines.append(f"requirepass {self.password}")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- names as mxscreen writes them --

    @property
    def map(self):
        """postscreen_cache_map for this server, over TCP."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis:{host}:{self.port}"

    def map_db(self, db):
        return f"{self.map}/{db}"

    @property
    def unix_map(self):
        return f"redis:unix:{self.unixsocket}"

    def name(self, db=0):
        """The cache's name in mxscreen's log lines (always with /DB)."""
        return self.map_db(db)

    # -- the process --

    def start(self, timeout=10):
        if self.alive():
            raise RuntimeError("redis-server is already running")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self._out = open(self.out_path, "a")
        self.proc = subprocess.Popen(prefix + ["redis-server", self.conf_path],
                                     stdout=self._out, stderr=self._out,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._reap()
                raise RuntimeError(f"redis-server exited {rc}: {self.log_text()}"
                                   f"{self.out_text()}")
            try:
                # Answered, and by this process (not another one on the port).
                if self.pid_answering(timeout=1) == self.proc.pid:
                    return self
            except (OSError, ConnectionError, RedisError) as e:
                last = e
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING ({last}): {self.log_text()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self):
        self.proc = None
        if self._out:
            self._out.close()
            self._out = None

    def stop(self, timeout=10):
        """SIGTERM by PID and wait (SIGKILL if it does not exit)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reap()

    def kill(self):
        """SIGKILL by PID and wait: the server vanishes mid-run."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reap()

    def restart(self, timeout=10):
        """Start again on the same port, empty (nothing is persisted)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        return read_text(self.log_path)

    def out_text(self):
        return read_text(self.out_path)

    # -- talking to it --

    def connect(self, timeout=5, db=0, auth=True, unix=False):
        """A Resp connection, authenticated as the server asks (AUTH) and on
        database DB (SELECT)."""
        c = Resp(self.host, self.port, unix=self.unixsocket if unix else None,
                 timeout=timeout, netns=self.netns)
        try:
            if auth and self.user:
                c.call("AUTH", self.user, self.user_password)
            elif auth and self.password:
                c.call("AUTH", self.password)
            if db:
                c.call("SELECT", db)
        except BaseException:
            c.close()
            raise
        return c

    def pid_answering(self, timeout=5):
        """The PID of the redis-server that answers on our port."""
        info = self.command("INFO", "server", timeout=timeout)
        for line in info.splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        raise ConnectionError("no process_id in INFO")

    def command(self, *args, db=0, timeout=5):
        with self.connect(timeout=timeout, db=db) as c:
            return c.call(*args)

    def keys(self, pattern="*", db=0):
        return sorted(self.command("KEYS", pattern, db=db))

    def get(self, key, db=0):
        return self.command("GET", key, db=db)

    def set(self, key, value, ex=None, db=0):
        args = ["SET", key, value] + (["EX", ex] if ex else [])
        return self.command(*args, db=db)

    def ttl(self, key, db=0):
        return self.command("TTL", key, db=db)

    def delete(self, *keys, db=0):
        return self.command("DEL", *keys, db=db)

    def flushall(self):
        return self.command("FLUSHALL")

    def pause(self, ms):
        """Every client's commands wait MS milliseconds (CLIENT PAUSE ALL):
        a Redis that accepts connections but answers late."""
        return self.command("CLIENT", "PAUSE", ms, "ALL")

    def wait_key(self, key, db=0, timeout=5):
        """KEY's value, waiting until it is there."""
        deadline = time.time() + timeout
        while True:
            v = self.get(key, db=db)
            if v is not None:
                return v
            if time.time() > deadline:
                raise TimeoutError(f"no key {key!r} in Redis db {db}: "
                                   f"{self.keys('*', db=db)}")
            time.sleep(0.02)
