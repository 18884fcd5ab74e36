#!/usr/bin/python3
"""mxscreen benchmarks: mxscreen against the physical limit (refsrv) and
against a real Postfix postscreen, in one run (issue 7).  See bench/README.md.

    python3 bench/run.py [--quick] [--duration S] [--rounds N] [--only W1,W3]
                         [--no-postscreen] [--json FILE] [--scaling]
                         [--pause-while PATTERN]

Run as root (cgroups, Postfix, privileged ports for the DNS responder).
Stdlib only.  Every process it starts is stopped by PID; the cgroups and the
temporary directory it creates are removed; the whole run is bounded in time
(SIGALRM) and stops by itself.

Exit status: 0 when every workload ran (whether or not its targets were
met: this is a measurement), 1 when a workload could not run, 2 on bad
usage, 3 when the time budget ran out or the run was interrupted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

NOFILE = 262144          # RLIMIT_NOFILE for everything this script starts
TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")
CG_V1 = "/sys/fs/cgroup/cpuacct"
CG_V2 = "/sys/fs/cgroup"

# Source address ranges (loadgen -b), one per purpose, so that no client of
# one workload is ever known to a server from another.
SRC_KNOWN = "127.1.0.1"      # W1: allowlisted (warmed) clients
SRC_BOTS = "127.2.0.1"       # W2: pregreet bots, never allowlisted
SRC_HELD = "127.3.0.1"       # W3: clients held in the greet wait
SRC_LISTED = "127.5.0.1"     # W5: listed bots
SRC_PROBE = "127.9.0.1"      # W3: the probe's allowlisted clients
SRC_NEW = (127 << 24) | (16 << 16) | 1   # W4: a fresh address per session

ZONES = ("bl1.bench.test", "bl2.bench.test", "bl3.bench.test")

TARGETS = {  # name -> (comparison, value, text)
    "W1": ("<=", 1.6, "≤ 1.6× limit"),
    "W2": ("<=", 1.4, "≤ 1.4× limit"),
    "W3rss": ("<=", 512, "≤ 512 B/conn"),
    "W3rate": (">=", 0.90, "≥ 90% of rate with 1,000 held"),
    "W4": ("<=", 3.0, "≤ 3× limit"),
    "W5": ("<=", 0.0, "0 queries/conn"),
}


class BenchError(Exception):
    """A workload (or a server it needs) could not run."""


class OutOfTime(BaseException):
    """The run's time budget is spent (SIGALRM) or it was interrupted."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ip_add(first: str, n: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", struct.unpack(
        "!I", socket.inet_aton(first))[0] + n))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def raise_nofile() -> None:
    """preexec_fn: let the child hold NOFILE descriptors, or as many as the
    hard limit allows where it cannot be raised (no CAP_SYS_RESOURCE, as in
    some containers)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------------------
# Time budget, and yielding the machine to another job


class Clock:
    """The run's time budget.  SIGALRM raises OutOfTime when it is spent;
    time spent waiting for the machine (--pause-while) does not count."""

    def __init__(self, budget: float):
        self.budget = budget
        self.start = time.monotonic()
        self.paused = 0.0
        signal.signal(signal.SIGALRM, self._alarm)
        self.arm()

    def _alarm(self, *_):
        raise OutOfTime(f"time budget of {self.budget:.0f}s spent")

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start - self.paused)

    def arm(self) -> None:
        signal.alarm(max(1, int(self.left() + 0.999)))

    def pause(self, seconds: float) -> None:
        signal.alarm(0)
        time.sleep(seconds)
        self.paused += seconds
        self.arm()

    @staticmethod
    def disarm() -> None:
        signal.alarm(0)


class Gate:
    """--pause-while PATTERN: before each measurement, wait (30 s steps, at
    most MAX seconds in all) while a process whose command line contains a
    PATTERN runs; a measurement during which one started is repeated."""

    def __init__(self, patterns: list[str] | None, clock: Clock, max_wait: float):
        self.patterns = [p.encode() for p in patterns or []]
        self.clock = clock
        self.max_wait = max_wait
        self.waited = 0.0
        self.mine = set()
        pid = os.getpid()
        while pid > 1:  # this process and its ancestors never count
            self.mine.add(pid)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break

    def busy(self) -> list[int]:
        if not self.patterns:
            return []
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.mine:
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ")
            except OSError:
                continue
            if any(p in cmd for p in self.patterns) and not self._ours(int(name)):
                found.append(int(name))
        return found

    @staticmethod
    def _ours(pid: int) -> bool:
        """PID is a descendant of this script (its DNS responder is a fork
        with the same command line)."""
        me = os.getpid()
        for _ in range(64):
            pid = _ppid(pid)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    def wait(self) -> None:
        while True:
            pids = self.busy()
            if not pids:
                return
            if self.waited >= self.max_wait:
                raise BenchError(f"the machine stayed busy (PIDs {pids}) for "
                                 f"{self.waited:.0f}s")
            log(f"pausing: {', '.join(p.decode() for p in self.patterns)}: PIDs {pids} "
                f"running; checking again in 30s")
            self.clock.pause(30)
            self.waited += 30

    def run(self, what, fn, tries: int = 3):
        """fn() on an idle machine; again if the machine got busy meanwhile."""
        for i in range(tries):
            self.wait()
            result = fn()
            if not self.busy():
                return result
            log(f"{what}: the machine got busy during the measurement; repeating it")
        return result


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


# ---------------------------------------------------------------------------
# CPU accounting


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, starttime, utime+stime+cutime+cstime ticks)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # rest[0] is field 3 (state): utime..cstime are fields 14-17, starttime 22
        out[int(name)] = (int(rest[1]), int(rest[19]),
                          int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]))
    return out


def proc_cpu(pid: int) -> tuple[int, int] | None:
    """(starttime, utime+stime ticks) of one process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[19]), int(rest[11]) + int(rest[12])


class CpuGroup:
    """CPU time of all the processes of one server.

    With cgroups: a cgroup v1 cpuacct group (or a v2 group) that the server's
    processes are moved into before any load, so that children they fork
    later are in it too; usage_ns() reads cpuacct.usage (cpu.stat's
    usage_usec in v2).  Without: the sum of utime+stime+cutime+cstime over
    the process trees of the PIDs added (a process that exited without being
    waited for is lost: a caveat of that fallback)."""

    mode = None  # "v1", "v2" or "proc", decided once by detect()

    @classmethod
    def detect(cls, force_proc: bool = False) -> str:
        cls.mode = "proc"
        if force_proc or os.geteuid() != 0:
            return cls.mode
        for mode, base in (("v1", CG_V1), ("v2", CG_V2)):
            if mode == "v1" and not os.path.exists(os.path.join(base, "cpuacct.usage")):
                continue
            if mode == "v2" and not os.path.exists(os.path.join(base, "cgroup.controllers")):
                continue
            probe = os.path.join(base, f"mxbench-{os.getpid()}-probe")
            try:
                os.mkdir(probe)
                os.rmdir(probe)
            except OSError:
                continue
            cls.mode = mode
            break
        return cls.mode

    def __init__(self, name: str):
        self.name = f"mxbench-{os.getpid()}-{name}"
        self.roots: list[int] = []
        self.path = None
        if self.mode == "v1":
            self.path = os.path.join(CG_V1, self.name)
        elif self.mode == "v2":
            self.path = os.path.join(CG_V2, self.name)
        if self.path:
            os.mkdir(self.path)

    def add(self, pids) -> None:
        for pid in pids:
            self.roots.append(pid)
            if self.path:
                try:
                    with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                        f.write(f"{pid}\n")
                except ProcessLookupError:
                    pass

    def pids(self) -> list[int]:
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        table = _proc_table()
        out = set()
        todo = [p for p in self.roots if p in table]
        while todo:
            p = todo.pop()
            if p in out:
                continue
            out.add(p)
            todo.extend(c for c, v in table.items() if v[0] == p)
        return sorted(out)

    def usage_ns(self) -> int:
        if self.mode == "v1":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read())
        if self.mode == "v2":
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) * 1000
            return 0
        table = _proc_table()
        total = 0
        for p in self.pids():
            if p in table:
                total += table[p][2]
        return int(total * TICK_NS)

    def remove(self) -> None:
        if not self.path:
            return
        root = os.path.dirname(self.path)
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                # Processes still in it (should not happen: they were all
                # stopped): give them back to the root group.
                try:
                    for p in self.pids():
                        with open(os.path.join(root, "cgroup.procs"), "w") as f:
                            f.write(f"{p}\n")
                except OSError:
                    pass
                time.sleep(0.1)
        log(f"warning: could not remove cgroup {self.path}")


class ExeCpu:
    """utime+stime of the processes of a CpuGroup whose executable has a
    given name (postscreen's own CPU inside the whole Postfix)."""

    def __init__(self, group: CpuGroup, exe: str):
        self.group, self.exe = group, exe

    def snapshot(self) -> dict[int, tuple[int, int]]:
        out = {}
        for p in self.group.pids():
            try:
                if os.path.basename(os.readlink(f"/proc/{p}/exe")) != self.exe:
                    continue
            except OSError:
                continue
            c = proc_cpu(p)
            if c:
                out[p] = c
        return out

    @staticmethod
    def delta_ns(before: dict, after: dict) -> int:
        ticks = 0
        for p, (st, t) in after.items():
            b = before.get(p)
            ticks += t - (b[1] if b and b[0] == st else 0)
        return int(ticks * TICK_NS)


# ---------------------------------------------------------------------------
# Process and resource bookkeeping


class Cleanup:
    """LIFO of things to undo; every step bounded, errors reported only."""

    def __init__(self):
        self.steps = []

    def push(self, what: str, fn) -> None:
        self.steps.append((what, fn))

    def drop(self, fn) -> None:
        self.steps = [s for s in self.steps if s[1] != fn]

    def run(self) -> None:
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - keep cleaning up
                log(f"cleanup: {what}: {e!r}")


def stop_proc(p: subprocess.Popen, timeout: float = 10.0, sig=signal.SIGTERM) -> int | None:
    """Stop one child by its PID: SIG, then SIGKILL after TIMEOUT."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    return p.returncode


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def vm_rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} for {pid}")


def time_wait() -> int | None:
    """TCP sockets in TIME_WAIT (/proc/net/sockstat)."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    w = line.split()
                    return int(w[w.index("tw") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def tail(path: str, n: int = 3000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# The DNS responder (W4, W5): a minimal authoritative server for the three
# DNSBL zones, fast enough to stay out of the way (no DNS library).


def _dns_serve(sock: socket.socket, listed: frozenset, counter) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.alarm(0)
    suffixes = [b"".join(bytes([len(l)]) + l.encode() for l in z.split(".")) + b"\0"
                for z in ZONES]
    a_tail = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + bytes([127, 0, 0, 2])
    soa_fixed = struct.pack("!IIIII", 1, 3600, 600, 86400, 60)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        try:
            data, peer = recvfrom(4096)
        except InterruptedError:
            continue
        counter.value += 1
        if len(data) < 17 or data[2] & 0x80:
            continue
        i, n = 12, len(data)
        while i < n and data[i]:
            i += data[i] + 1
        if i + 5 > n:
            continue
        qend = i + 1
        qname = data[12:qend].lower()
        qtype = data[qend] << 8 | data[qend + 1]
        head = data[:2] + bytes([0x84 | (data[2] & 0x79)])
        question = data[12:qend + 4]
        if qname in listed:
            if qtype == 1:
                out = head + b"\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + a_tail
            else:
                out = head + b"\x80\x00\x01\x00\x00\x00\x00\x00\x00" + question
        else:
            for suf in suffixes:
                if qname.endswith(suf):
                    ptr = struct.pack("!H", 0xC000 | (qend - len(suf)))
                    soa = (ptr + struct.pack("!HHIH", 6, 1, 60, 24) + ptr + ptr + soa_fixed)
                    out = head + b"\x83\x00\x01\x00\x00\x00\x01\x00\x00" + question + soa
                    break
            else:
                out = head + b"\x83\x00\x01\x00\x00\x00\x00\x00\x00" + question
        try:
            sendto(out, peer)
        except OSError:
            pass


def dnsbl_qname_wire(ip: str, zone: str) -> bytes:
    labels = list(reversed(ip.split("."))) + zone.split(".")
    return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"


class DnsServer:
    """The responder in a child process (own CPU, stopped by PID): NXDOMAIN
    with an SOA (TTL 60) for every name of the zones, except the LISTED
    addresses, which get 127.0.0.2 with TTL 300 in every zone."""

    def __init__(self, listed_ips: list[str]):
        self.sock = None
        for last in range(153, 200):  # port 53 (postscreen's stub resolver needs it)
            addr = f"127.0.0.{last}"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, addr
            break
        if self.sock is None:
            raise BenchError("no free 127.0.0.x:53 for the DNS responder")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        listed = frozenset(dnsbl_qname_wire(ip, z) for ip in listed_ips for z in ZONES)
        ctx = multiprocessing.get_context("fork")
        self.counter = ctx.RawValue("Q", 0)
        self.proc = ctx.Process(target=_dns_serve, args=(self.sock, listed, self.counter),
                                daemon=True)
        self.proc.start()
        self.sock.close()  # the child has its own copy
        self.cpu = CpuGroup("dns")
        self.cpu.add([self.proc.pid])

    @property
    def queries(self) -> int:
        return self.counter.value

    def stop(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.join(5)
            if self.proc.is_alive():
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.join(5)
        self.cpu.remove()


# ---------------------------------------------------------------------------
# Servers


class Server:
    """What a workload measures: a port, a CpuGroup for all of the server's
    processes, and optionally the screening process's own CPU (postscreen's
    inside the whole Postfix) and a 'behind' group (mxscreen's backend)."""

    kind = "?"
    name = "?"
    port = 0
    cpu: CpuGroup
    behind: CpuGroup | None = None

    def screen_snapshot(self):
        return None

    def screen_delta_ns(self, before, after) -> int | None:
        return None

    def screener_pid(self) -> int | None:
        return None


class RefSrv(Server):
    """refsrv (the responder limit), or with BACKEND refrelay (the relay
    limit: a PROXY v2 relay to BACKEND, a refsrv -p)."""

    kind = "ref"

    def __init__(self, bench, name: str, flags: list[str], backend: "RefSrv | None" = None):
        self.name = name
        self.port = free_port()
        self.out = os.path.join(bench.tmp, f"{name}.out")
        self._addr = f"127.0.0.1:{self.port}"
        if "-u" in flags:
            # Postfix's smtpd pass service on a UNIX socket (pass hand-off).
            self._addr = os.path.join(bench.tmp, f"{name}.sock")
            argv = [bench.bin("refsrv"), "-u", self._addr]
        elif backend is None:
            argv = [bench.bin("refsrv"), *flags, f"127.0.0.1:{self.port}"]
        else:
            argv = [bench.bin("refrelay"), f"127.0.0.1:{self.port}", backend.addr]
            self.kind = "relay"
            self.behind = backend.cpu
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        bench.cleanup.push(f"stop {name}", self.stop)
        deadline = time.monotonic() + 10
        while "ready" not in tail(self.out):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{os.path.basename(argv[0])} {name} did not start: "
                                 f"{tail(self.out)}")
            time.sleep(0.02)
        self.cpu = CpuGroup(name)
        self.cpu.add([self.proc.pid])

    @property
    def addr(self) -> str:
        return self._addr

    def screener_pid(self):
        return self.proc.pid

    def stop(self) -> None:
        stop_proc(self.proc)
        self.cpu.remove()


class Mx(Server):
    kind = "mx"

    BASE = {
        "myhostname": "mx.example.test",
        "smtpd_banner": "$myhostname ESMTP",
        "mynetworks": "127.0.0.1/32",
        "mxscreen_user": "nobody",
        "mxscreen_shutdown_timeout": "2s",
        "postscreen_pre_queue_limit": "100000",
        "postscreen_post_queue_limit": "100000",
        "postscreen_client_connection_count_limit": "0",
        "postscreen_greet_banner": "",
        "postscreen_dnsbl_sites": "",
    }

    def __init__(self, bench, name: str, params: dict, backend: RefSrv | None,
                 handoff: str = "proxy", port: int | None = None, preload: list[str] = (),
                 cache_file: str | None = None):
        self.bench = bench
        self.name = name
        self.port = port or free_port()
        d = os.path.join(bench.tmp, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        self.log_path = os.path.join(d, "mxscreen.log")
        self.err_path = os.path.join(d, "mxscreen.stderr")
        self.cf_path = os.path.join(d, "mxscreen.cf")
        self.cache = cache_file or os.path.join(d, "cache.lmdb")
        cf = dict(self.BASE)
        cf.update({
            "mxscreen_listen": f"127.0.0.1:{self.port}",
            "maillog_file": self.log_path,
            "data_directory": d,
            "postscreen_cache_map": f"lmdb:{self.cache}",
            "mxscreen_handoff": handoff,
            "mxscreen_backend": backend.addr if backend else "127.0.0.1:9",
        })
        cf.update(params)
        with open(self.cf_path, "w") as f:
            for k, v in cf.items():
                f.write(f"{k} = {v}\n")
        if preload:
            self.preload(preload)
        self.behind = backend.cpu if backend else None
        self.cpu = CpuGroup(name)
        self.proc = None
        try:
            self.start()
        except BaseException:
            self.cpu.remove()
            raise

    def preload(self, addrs: list[str], ttl: int = 86400) -> None:
        """Allowlist ADDRS in the cache with mxscreenctl load (every test
        passed until now + TTL)."""
        t = int(time.time()) + ttl
        text = "".join(f"{a} {t};{t};{t};{t};{t}\n" for a in addrs)
        r = subprocess.run([self.bench.bin("mxscreenctl"), "-c", self.cf_path, "load"],
                           input=text, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"mxscreenctl load: {r.stderr.strip()}")

    def start(self) -> None:
        open(self.log_path, "w").close()  # "starting mxscreen" of this start only
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([self.bench.bin("mxscreen"), "-c", self.cf_path],
                                     stdout=self.err, stderr=self.err,
                                     stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        self.bench.cleanup.push(f"stop {self.name}", self.stop)
        self.cpu.add([self.proc.pid])
        deadline = time.monotonic() + 15
        while "starting mxscreen" not in tail(self.log_path, 100000):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                msg = (tail(self.err_path) + tail(self.log_path)).strip()
                self.stop()
                raise BenchError(f"mxscreen {self.name} did not start: {msg}")
            time.sleep(0.02)

    def screener_pid(self):
        return self.proc.pid if self.proc else None

    def screen_snapshot(self):
        return proc_cpu(self.proc.pid)

    def screen_delta_ns(self, before, after):
        if before and after and before[0] == after[0]:
            return int((after[1] - before[1]) * TICK_NS)
        return None

    def stop(self) -> None:
        if self.proc is not None:
            rc = stop_proc(self.proc, timeout=15)
            self.err.close()
            if rc not in (0, None, -signal.SIGTERM):
                log(f"warning: mxscreen {self.name} exited {rc}: {tail(self.err_path, 500)}")
            self.proc = None
        self.cpu.remove()
        self.bench.cleanup.drop(self.stop)


class Postscreen(Server):
    """A private real Postfix (tests/integration/postscreen_ref.py), started
    once and reconfigured per workload; all of its processes in one group."""

    kind = "ps"
    name = "postscreen"

    BASE = {
        "postscreen_pre_queue_limit": "100000",
        "postscreen_post_queue_limit": "100000",
        "postscreen_client_connection_count_limit": "0",
        # W1's mail session: accept mail for loadgen's recipient domain and
        # throw it away (discard(8)) instead of delivering it.
        "virtual_mailbox_domains": "example.test ref.example",
        "virtual_transport": "discard",
    }

    def __init__(self, bench, resolv_conf: str | None):
        from postscreen_ref import RealPostscreen  # noqa: E402
        self.bench = bench
        self.ps = RealPostscreen(os.path.join(bench.tmp, "postfix"), dict(self.BASE),
                                 resolv_conf=resolv_conf)
        self.cpu = None
        bench.cleanup.push("stop postscreen", self.stop)
        self.ps.start()
        self.port = self.ps.port
        self.cpu = CpuGroup("postfix")
        self.cpu.add(self.all_pids())
        self.screen = ExeCpu(self.cpu, "postscreen")

    def all_pids(self) -> list[int]:
        pids = set(self.ps.backend.pids())
        pids.update(self.ps._config_procs())
        return sorted(pids)

    def reconfigure(self, params: dict) -> None:
        p = dict(self.BASE)
        p.update(params)
        self.ps.reconfigure(p)
        # A reload can fork new daemons from the master: they inherit its
        # group.  Processes found here but not in it (none expected) are
        # moved too.
        missing = set(self.all_pids()) - set(self.cpu.pids())
        if missing:
            self.cpu.add(sorted(missing))

    def screener_pid(self):
        pids = [p for p in self.cpu.pids() if _exe(p) == "postscreen"]
        return pids[0] if len(pids) == 1 else None

    def screen_snapshot(self):
        return self.screen.snapshot()

    def screen_delta_ns(self, before, after):
        return ExeCpu.delta_ns(before, after)

    def stop(self) -> None:
        self.ps.stop()
        if self.cpu:
            self.cpu.remove()


def _exe(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# The bench


def agg(samples: list[dict]) -> dict:
    """Sum of the rounds of one server: sessions, CPU; latencies are the
    median over the rounds of each round's percentile."""
    ok = [s for s in samples if s]
    if not ok:
        return {}
    sess = sum(s["sessions"] for s in ok)
    out = {
        "rounds": len(ok),
        "sessions": sess,
        "errors": sum(s["errors"] for s in ok),
        "elapsed_s": round(sum(s["elapsed"] for s in ok), 3),
        "rate": round(sess / max(1e-9, sum(s["elapsed"] for s in ok)), 1),
        "greet_p50_us": statistics.median(s["greet_us"]["p50"] for s in ok),
        "greet_p99_us": statistics.median(s["greet_us"]["p99"] for s in ok),
        "session_p50_us": statistics.median(s["session_us"]["p50"] for s in ok),
        "session_p99_us": statistics.median(s["session_us"]["p99"] for s in ok),
        "loadgen_cpu_s": round(sum(s["cpu_s"] for s in ok), 3),
        # Each round on its own, to see drift (TIME_WAIT sockets pile up
        # over a run and make every TCP session a little dearer).
        "per_round": [{
            "sessions": s["sessions"], "rate": s["rate"],
            "cpu_us_per_session": round(s["cpu_ns"] / 1000 / s["sessions"], 2)
            if s["sessions"] else None,
            "greet_p50_us": s["greet_us"]["p50"],
            "time_wait_before": s.get("time_wait_before")} for s in ok],
    }
    for key, name, scale, digits in (
            ("cpu_ns", "cpu_us_per_session", 1000, 2),
            ("screen_ns", "screen_us_per_session", 1000, 2),
            ("behind_ns", "behind_us_per_session", 1000, 2),
            ("dns_ns", "dns_us_per_session", 1000, 2),
            ("dns_queries", "dns_queries_per_session", 1, 3)):
        vals = [s.get(key) for s in ok]
        if sess and all(v is not None for v in vals):
            out[name] = round(sum(vals) / scale / sess, digits)
    return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.cleanup = Cleanup()
        self.builddir = os.path.abspath(args.builddir)
        self.results = {"workloads": {}, "targets": [], "notes": [], "failures": []}
        self.rows = []      # printed table rows
        self.tmp = None
        self.ps = None
        self.ps_error = None
        self.dns = None
        self.shared = {}    # name -> RefSrv
        self.new_cursor = 0  # W4: next fresh source address
        self.ps_dns = False  # postscreen's resolver points at our DNS responder
        self.have_refrelay = False

    # -- setup ---------------------------------------------------------------

    def bin(self, name: str) -> str:
        return os.path.join(self.builddir, name)

    def build(self) -> None:
        if not os.path.exists(os.path.join(self.builddir, "build.ninja")):
            log(f"meson setup {self.builddir}")
            r = subprocess.run(["meson", "setup", self.builddir, "-Dbuildtype=release",
                                "-Dwerror=true"], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0:
                raise BenchError(f"meson setup failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        targets = ["mxscreen", "mxscreenctl", "loadgen", "refsrv"]
        self.have_refrelay = os.path.exists(os.path.join(ROOT, "bench", "refrelay.c"))
        if self.have_refrelay:
            targets.append("refrelay")
        r = subprocess.run(["ninja", "-C", self.builddir, *targets], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise BenchError(f"ninja failed:\n{r.stdout[-4000:]}{r.stderr[-2000:]}")
        for b in targets:
            if not os.access(self.bin(b), os.X_OK):
                raise BenchError(f"{self.bin(b)} missing after the build")

    def refsrv(self, name: str, flags: list[str], backend: RefSrv | None = None) -> RefSrv:
        if name not in self.shared:
            self.shared[name] = RefSrv(self, name, flags, backend)
        return self.shared[name]

    def postscreen(self) -> Postscreen | None:
        """The shared real postscreen, started on first use; None (with the
        reason noted) when it is turned off or cannot run."""
        if self.args.no_postscreen:
            return None
        if self.ps is None and self.ps_error is None:
            resolv = None
            try:
                from postscreen_ref import private_resolv_conf_unavailable
                why = private_resolv_conf_unavailable()
                if why is None and self.dns_server() is not None:
                    resolv = os.path.join(self.tmp, "resolv.conf")
                    with open(resolv, "w") as f:
                        f.write(f"nameserver {self.dns.addr}\noptions timeout:1 attempts:1\n")
                    os.chmod(resolv, 0o644)
                elif why is not None:
                    self.note(f"postscreen's DNSBL lookups cannot use the test DNS server: {why}")
                log("starting a private Postfix postscreen")
                self.ps = Postscreen(self, resolv)
                self.ps_dns = resolv is not None
            except Exception as e:  # noqa: BLE001
                self.ps_error = f"{type(e).__name__}: {e}"
                self.fail(f"postscreen could not start: {self.ps_error}")
        return self.ps

    def dns_server(self) -> DnsServer:
        if self.dns is None:
            listed = [ip_add(SRC_LISTED, i) for i in range(self.args.listed_pool)]
            self.dns = DnsServer(listed)
            self.cleanup.push("stop the DNS responder", self.dns.stop)
            log(f"DNS responder on {self.dns.addr}:53 (pid {self.dns.proc.pid})")
        return self.dns

    def note(self, text: str) -> None:
        if text not in self.results["notes"]:
            self.results["notes"].append(text)
            log(f"note: {text}")

    def fail(self, text: str) -> None:
        self.results["failures"].append(text)
        log(f"FAILED: {text}")

    # -- running load ----------------------------------------------------------

    def loadgen(self, port: int, mode: str, *, c: int, d: float, s: int = 1,
                b: str = SRC_KNOWN, n: int = 0) -> dict:
        argv = [self.bin("loadgen"), "-t", f"127.0.0.1:{port}", "-m", mode, "-c", str(c),
                "-d", f"{d:.3f}", "-s", str(s), "-b", b]
        if n:
            argv += ["-n", str(n)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=d + 30,
                           preexec_fn=raise_nofile)
        if r.returncode != 0 or not r.stdout.strip():
            raise BenchError(f"loadgen {' '.join(argv[1:])} failed ({r.returncode}): "
                             f"{r.stderr.strip()}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def measure(self, srv: Server, what: str, mode: str, *, c: int, d: float, s: int = 1,
                b: str = SRC_KNOWN, n: int = 0, dns: bool = False) -> dict:
        """One measured loadgen run against SRV, with the CPU its processes
        (and its screener, its backend, the DNS responder) used meanwhile."""

        def once():
            tw = time_wait()
            c0 = srv.cpu.usage_ns()
            b0 = srv.behind.usage_ns() if srv.behind else None
            s0 = srv.screen_snapshot()
            q0 = self.dns.queries if dns and self.dns else None
            n0 = self.dns.cpu.usage_ns() if dns and self.dns else None
            res = self.loadgen(srv.port, mode, c=c, d=d, s=s, b=b, n=n)
            # Let the server finish what the load left it (the last closes;
            # Postfix's queue): until it uses less than 1% of a core, for at
            # most 5 s.
            t_end = time.monotonic() + 5
            last = srv.cpu.usage_ns()
            while True:
                time.sleep(0.2)
                now = srv.cpu.usage_ns()
                if now - last < 2_000_000 or time.monotonic() > t_end:
                    break
                last = now
            res["cpu_ns"] = now - c0
            res["behind_ns"] = srv.behind.usage_ns() - b0 if srv.behind else None
            res["screen_ns"] = srv.screen_delta_ns(s0, srv.screen_snapshot())
            if srv.kind in ("ref", "relay"):
                res["screen_ns"] = res["cpu_ns"]
            if srv.kind == "mx" and res["screen_ns"] is None:
                res["screen_ns"] = res["cpu_ns"]
            if srv.kind == "ps" and res["screen_ns"] is not None:
                res["behind_ns"] = res["cpu_ns"] - res["screen_ns"]
            if dns and self.dns:
                res["dns_queries"] = self.dns.queries - q0
                res["dns_ns"] = self.dns.cpu.usage_ns() - n0
            res["time_wait_before"] = tw
            return res

        res = self.gate.run(what, once)
        us = res["cpu_ns"] / 1000 / res["sessions"] if res["sessions"] else float("nan")
        log(f"{what}: {res['sessions']} sessions, {res['errors']} errors, "
            f"{res['rate']:.0f}/s, {us:.1f} µs CPU/session, greet p50 "
            f"{res['greet_us']['p50'] / 1000:.2f} ms")
        return res

    def rounds_over(self, servers: dict, what: str, run_one) -> dict:
        """Alternate: round 1 runs every server once, then round 2 (in a
        rotated order), ...; returns name -> aggregated result."""
        samples = {k: [] for k in servers}
        names = list(servers)
        for r in range(self.args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                samples[name].append(run_one(name, servers[name],
                                             f"{what} {name} round {r + 1}/{self.args.rounds}"))
        return {k: agg(v) for k, v in samples.items()}

    def warm(self, srv: Server, mode: str, **kw) -> None:
        """Unmeasured warm-up (page cache, allocator, Postfix processes)."""
        self.gate.wait()
        self.loadgen(srv.port, mode, **kw)

    def row(self, workload: str, name: str, r: dict) -> None:
        self.rows.append((workload, name, r))

    def target(self, key: str, label: str, value, detail: str = "") -> None:
        cmp_, limit, text = TARGETS[key]
        if value is None:
            verdict = "n/a"
        else:
            verdict = "PASS" if (value <= limit if cmp_ == "<=" else value >= limit) else "MISS"
        self.results["targets"].append({"target": key, "what": label, "measured": value,
                                        "limit": f"{cmp_} {limit}", "text": text,
                                        "verdict": verdict, "detail": detail})

    @property
    def per_server(self) -> float:
        return max(0.5, self.args.duration / self.args.rounds)

    # -- workloads -------------------------------------------------------------

    def w1(self) -> dict:
        """Known clients, greeting only and a full mail session."""
        a = self.args
        S = a.known_sources
        params = {"postscreen_greet_banner": "$smtpd_banner", "postscreen_greet_wait": "1s"}
        ref = self.refsrv("ref", [])
        be_p = self.refsrv("backend-proxy", ["-p"])
        be_x = self.refsrv("backend-xclient", ["-x"])
        be_u = self.refsrv("backend-pass", ["-u"])
        servers = {}
        mxp = Mx(self, "mx-proxy", params, be_p, "proxy")
        servers["mxscreen-proxy"] = mxp
        mxx = Mx(self, "mx-xclient", params, be_x, "xclient")
        servers["mxscreen-xclient"] = mxx
        mxu = Mx(self, "mx-pass", params, be_u, "pass")
        servers["mxscreen-pass"] = mxu
        servers["limit"] = ref
        if self.have_refrelay:
            servers["relay-limit"] = self.refsrv("relay", [], be_p)
        ps = self.postscreen()
        if ps:
            ps.reconfigure(params)
            servers["postscreen"] = ps
        try:
            # Warm the allowlists: every known source once, through the
            # 1 s greet wait, so that it is PASS NEW (and PASS OLD from then on).
            for name, srv in servers.items():
                if srv.kind in ("ref", "relay"):
                    continue
                self.gate.wait()
                w = self.loadgen(srv.port, "greet", c=S, d=20, s=S, b=SRC_KNOWN, n=S)
                if w["sessions"] != S:
                    raise BenchError(f"W1 warm-up of {name}: {w['sessions']} of {S} "
                                     f"sessions passed ({w['errors']} errors)")
            for srv in servers.values():
                self.warm(srv, "mail", c=a.concurrency, d=0.5, s=S, b=SRC_KNOWN)
            out = {}
            for mode in ("greet", "mail"):
                def one(name, srv, what, mode=mode):
                    return self.measure(srv, what, mode, c=a.concurrency, d=self.per_server,
                                        s=S, b=SRC_KNOWN)
                res = self.rounds_over(servers, f"W1 {mode}", one)
                for name, r in res.items():
                    self.row(f"W1 {mode}", name, r)
                lim = res["limit"].get("cpu_us_per_session")
                for name in ("mxscreen-proxy", "mxscreen-xclient", "mxscreen-pass"):
                    v = res[name].get("cpu_us_per_session")
                    self.target("W1", f"W1 {mode}, {name.split('-')[1]} hand-off: "
                                "mxscreen / limit", ratio(v, lim))
                if "relay-limit" in res:
                    self.target("W1", f"W1 {mode}, proxy hand-off: mxscreen / relay limit "
                                "(refrelay)", cpu_ratio(res, "mxscreen-proxy", "relay-limit"))
                self.vs_postscreen(f"W1 {mode}", res, "mxscreen-proxy")
                out[mode] = res
            self.note("W1: in pass mode refsrv -u plays Postfix's smtpd pass service: mxscreen "
                      "sends it the client socket and it serves the session; mxscreen's CPU "
                      "column is mxscreen alone, behind is that refsrv")
            if "relay-limit" in servers:
                self.note("W1: the relay limit is refrelay (a PROXY v2 relay that decides and "
                          "logs nothing) in front of the same refsrv -p as mxscreen's proxy "
                          "hand-off; its CPU column is refrelay's, behind is the refsrv's")
            if ps:
                self.note("W1: postscreen's clients are in its cache (warmed like mxscreen's: "
                          "each source once through a 1 s greet wait, PASS NEW; measured "
                          "sessions are PASS OLD), handed to its smtpd by the pass service; "
                          "its mail goes to discard(8)")
            return out
        finally:
            mxp.stop()
            mxx.stop()
            mxu.stop()

    def vs_postscreen(self, label: str, res: dict, mx: str) -> None:
        ps = res.get("postscreen")
        if not ps:
            return
        m = res[mx]
        entry = {
            "screener": ratio(m.get("screen_us_per_session"), ps.get("screen_us_per_session")),
            "whole": ratio(add(m.get("cpu_us_per_session"), m.get("behind_us_per_session")),
                           ps.get("cpu_us_per_session")),
        }
        self.results.setdefault("vs_postscreen", {})[label] = entry

    def w2(self) -> dict:
        """Pregreet bot flood against the drop action."""
        a = self.args
        params = {"postscreen_greet_banner": "$smtpd_banner", "postscreen_greet_wait": "6s",
                  "postscreen_greet_action": "drop"}
        ref = self.refsrv("ref", [])
        be_p = self.refsrv("backend-proxy", ["-p"])
        mx = Mx(self, "mx-w2", params, be_p)
        servers = {"mxscreen": mx, "limit": ref}
        ps = self.postscreen()
        if ps:
            ps.reconfigure(params)
            servers["postscreen"] = ps
        try:
            pool = a.bot_pool
            for name, srv in servers.items():
                self.warm(srv, "greet" if srv.kind == "ref" else "pregreet", c=a.concurrency,
                          d=0.5, s=pool, b=SRC_BOTS)

            def one(name, srv, what):
                # The limit: a greeting-only session (it would never close on a
                # pregreet bot); the screeners: bots that talk first.
                return self.measure(srv, what, "greet" if srv.kind == "ref" else "pregreet",
                                    c=a.concurrency, d=self.per_server, s=pool, b=SRC_BOTS)
            res = self.rounds_over(servers, "W2 pregreet", one)
            for name, r in res.items():
                self.row("W2 pregreet", name, r)
            self.target("W2", "W2 pregreet drop: mxscreen / limit",
                        cpu_ratio(res, "mxscreen", "limit"))
            self.vs_postscreen("W2 pregreet", res, "mxscreen")
            self.note("W2: the limit is refsrv serving a greeting-only session (220, QUIT, "
                      "221); the bots' sources are never allowlisted")
            return res
        finally:
            mx.stop()

    def w3(self) -> dict:
        """Connections held in the greet wait: RSS per connection, and the
        accept rate of a probe meanwhile."""
        a = self.args
        params = {"postscreen_greet_banner": "$smtpd_banner", "postscreen_greet_wait": "60s",
                  "postscreen_greet_action": "ignore"}
        be_p = self.refsrv("backend-proxy", ["-p"])
        probes = [ip_add(SRC_PROBE, i) for i in range(16)]
        use_ps = self.postscreen() is not None
        out = {"levels": a.held_levels, "mxscreen": {}, "postscreen": {}}
        for level in a.held_levels:
            for name in (["mxscreen", "postscreen"] if use_ps else ["mxscreen"]):
                def fresh_hold(name=name, level=level):
                    # A fresh screening process for every try: memory the
                    # allocator kept from an earlier hold would be reused.
                    if name == "mxscreen":
                        srv = Mx(self, f"mx-w3-{level}", params, be_p, preload=probes)
                    else:
                        srv = self.ps
                        # Probes: allowlisted by permit_mynetworks.
                        srv.reconfigure(dict(params, mynetworks="127.0.0.1/32 127.9.0.0/24"))
                    try:
                        return self.hold_once(srv, name, level)
                    finally:
                        if name == "mxscreen":
                            srv.stop()
                r = self.gate.run(f"W3 {level} held {name}", fresh_hold)
                out[name][level] = r
                self.row(f"W3 {level} held", name, r)
        self.note("W3: RSS per held connection = (VmRSS while holding - VmRSS before) / "
                  "connections held, of the mxscreen process / the postscreen process; "
                  "the probe's clients are allowlisted (mxscreen: in its cache, loaded with "
                  "mxscreenctl; postscreen: permit_mynetworks)")
        for name in ("mxscreen", "postscreen"):
            per = out[name]
            if not per:
                continue
            top, low = max(per), min(per)
            for level in sorted(per):
                if name == "mxscreen":
                    self.target("W3rss", f"W3 RSS per held connection, {level:,} held, "
                                f"mxscreen (B)", per[level].get("rss_per_conn_b"))
            rate_ratio = ratio(per[top].get("rate"), per[low].get("rate"))
            out[f"{name}_rate_ratio"] = rate_ratio
            if name == "mxscreen":
                if top == low:
                    self.note("W3: one hold level only, no rate ratio")
                else:
                    self.target("W3rate", f"W3 probe rate with {top:,} held / with {low:,} "
                                "held, mxscreen", rate_ratio)
            else:
                self.results.setdefault("vs_postscreen", {})["W3"] = {
                    "postscreen_rate_ratio": rate_ratio,
                    "postscreen_rss_per_conn_b": {l: per[l].get("rss_per_conn_b")
                                                  for l in sorted(per)}}
        return out

    def hold_once(self, srv: Server, name: str, level: int) -> dict:
        a = self.args
        # Warm the path and (postscreen) start a fresh postscreen process.
        self.loadgen(srv.port, "greet", c=4, d=0.5, s=16, b=SRC_PROBE)
        time.sleep(0.5)
        pid = srv.screener_pid()
        if pid is None:
            raise BenchError(f"W3: cannot tell {name}'s screening process")
        rss0, anon0, fd0 = vm_rss_kb(pid), vm_rss_kb(pid, "RssAnon"), fd_count(pid)
        ramp_timeout = level / a.hold_rate + 20
        hold_d = ramp_timeout + a.probe_duration + 30
        hold_out = os.path.join(self.tmp, f"hold-{name}-{level}.out")
        with open(hold_out, "w") as f:
            hold = subprocess.Popen(
                [self.bin("loadgen"), "-t", f"127.0.0.1:{srv.port}", "-m", "hold", "-c",
                 str(level), "-d", f"{hold_d:.0f}", "-s", str(level), "-b", SRC_HELD,
                 "-w", f"{1000 / a.hold_rate:.4f}"],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=raise_nofile)
        self.cleanup.push("stop the W3 hold loadgen", lambda: stop_proc(hold, 5))
        try:
            t0 = time.monotonic()
            deadline = t0 + ramp_timeout
            held, last, last_change = 0, -1, t0
            while time.monotonic() < deadline:
                held = fd_count(pid) - fd0
                if held >= level:
                    break
                if held != last:
                    last, last_change = held, time.monotonic()
                elif time.monotonic() - last_change > 10:
                    break  # no progress for 10 s
                if hold.poll() is not None:
                    raise BenchError(f"W3 hold loadgen exited early: {tail(hold_out)}")
                time.sleep(0.1)
            ramp = time.monotonic() - t0
            time.sleep(1.0)  # let the server finish what the last accepts started
            held = fd_count(pid) - fd0
            rss1, anon1 = vm_rss_kb(pid), vm_rss_kb(pid, "RssAnon")
            if held < level * 0.98:
                self.note(f"W3 {name}: only {held} of {level} connections held after "
                          f"{ramp:.1f}s")
            probe = self.loadgen(srv.port, "greet", c=8, d=a.probe_duration, s=16,
                                 b=SRC_PROBE)
            held_after = fd_count(pid) - fd0
        finally:
            stop_proc(hold, 5)
        # The server lets the held connections go before the next level.
        deadline = time.monotonic() + 20
        while fd_count(pid) > fd0 + 16 and time.monotonic() < deadline:
            time.sleep(0.1)
        r = {
            "held": held,
            "held_after_probe": held_after,
            "ramp_s": round(ramp, 2),
            "rss_before_kb": rss0,
            "rss_held_kb": rss1,
            "rss_per_conn_b": round((rss1 - rss0) * 1024 / held, 1) if held > 0 else None,
            "pid": pid,
            "rss_anon_before_kb": anon0,
            "rss_anon_held_kb": anon1,
            "anon_per_conn_b": round((anon1 - anon0) * 1024 / held, 1) if held > 0 else None,
            "sessions": probe["sessions"],
            "errors": probe["errors"],
            "rate": probe["rate"],
            "greet_p50_us": probe["greet_us"]["p50"],
            "greet_p99_us": probe["greet_us"]["p99"],
            "session_p50_us": probe["session_us"]["p50"],
            "session_p99_us": probe["session_us"]["p99"],
        }
        log(f"W3 {name} {level} held: {held} held in {ramp:.1f}s, RSS {rss0} -> {rss1} KiB "
            f"({r['rss_per_conn_b']} B/conn), probe {probe['rate']:.0f}/s, greet p50 "
            f"{probe['greet_us']['p50'] / 1000:.2f} ms")
        return r

    def dnsbl_params(self) -> dict:
        return {"postscreen_greet_banner": "", "postscreen_dnsbl_sites": " ".join(ZONES),
                "postscreen_dnsbl_threshold": "1", "postscreen_dnsbl_action": "drop",
                "postscreen_greet_wait": "6s"}

    def w4(self) -> dict:
        """New clients, three DNSBLs answered by a local DNS responder."""
        a = self.args
        dns = self.dns_server()
        params = self.dnsbl_params()
        ref = self.refsrv("ref", [])
        be_p = self.refsrv("backend-proxy", ["-p"])
        mx = Mx(self, "mx-w4", dict(params, mxscreen_dns_servers=f"{dns.addr}:53"), be_p)
        servers = {"mxscreen": mx, "limit": ref}
        if self.have_refrelay:
            servers["relay-limit"] = self.refsrv("relay", [], be_p)
        ps = self.postscreen()
        if ps and self.ps_dns:
            ps.reconfigure(params)
            servers["postscreen"] = ps
        elif ps:
            self.note("W4/W5: postscreen left out: its resolver cannot be pointed at the "
                      "test DNS server here")
        try:
            def fresh(count: int) -> str:
                first = SRC_NEW + self.new_cursor
                self.new_cursor += count
                return socket.inet_ntoa(struct.pack("!I", first))

            for name, srv in servers.items():
                self.warm(srv, "greet", c=a.concurrency, d=0.5, s=1 << 16, b=fresh(1 << 16))
            span = 1 << 18

            def one(name, srv, what):
                # Every session from an address never seen before (and never
                # again): a new client for the allowlist and the DNSBL results.
                r = self.measure(srv, what, "greet", c=a.concurrency, d=self.per_server,
                                 s=span, b=fresh(span), dns=srv.kind not in ("ref", "relay"))
                if r["sessions"] + r["errors"] > span:
                    self.note(f"W4: {what} used some source addresses twice")
                return r
            res = self.rounds_over(servers, "W4 new+DNSBL", one)
            for name, r in res.items():
                self.row("W4 new+DNSBL", name, r)
            self.target("W4", "W4 new clients, 3 DNSBLs: mxscreen / limit",
                        cpu_ratio(res, "mxscreen", "limit"))
            if "relay-limit" in res:
                # mxscreen hands each new client off over a second TCP
                # connection, as in W1: the relay limit is the physical floor.
                self.target("W4", "W4 new clients, 3 DNSBLs: mxscreen / relay limit (refrelay)",
                            cpu_ratio(res, "mxscreen", "relay-limit"))
            self.vs_postscreen("W4 new+DNSBL", res, "mxscreen")
            self.note("W4: each session comes from a fresh address (not in any allowlist, no "
                      "DNSBL result to reuse); 3 zones answered NXDOMAIN by the local "
                      "responder; the pregreet test is off (empty postscreen_greet_banner), "
                      "so the screening ends when the 3 answers are in, then PASS NEW and "
                      "hand-off; the limit is refsrv's greeting-only session")
            return res
        finally:
            mx.stop()

    def w5(self) -> dict:
        """Listed bots from a small pool, again and again: DNS queries per
        connection after the first round."""
        a = self.args
        dns = self.dns_server()
        params = self.dnsbl_params()
        be_p = self.refsrv("backend-proxy", ["-p"])
        mx = Mx(self, "mx-w5", dict(params, mxscreen_dns_servers=f"{dns.addr}:53"), be_p)
        servers = {"mxscreen": mx}
        ps = self.postscreen()
        if ps and self.ps_dns:
            ps.reconfigure(params)
            servers["postscreen"] = ps
        pool = a.listed_pool
        try:
            for name, srv in servers.items():
                # The first round: every bot once (its 3 queries are expected).
                self.gate.wait()
                q0 = dns.queries
                w = self.loadgen(srv.port, "pregreet", c=pool, d=20, s=pool, b=SRC_LISTED,
                                 n=pool)
                log(f"W5 {name} first round: {w['sessions']} sessions, "
                    f"{dns.queries - q0} DNS queries")

            def one(name, srv, what):
                return self.measure(srv, what, "pregreet", c=min(a.concurrency, pool),
                                    d=self.per_server, s=pool, b=SRC_LISTED, dns=True)
            res = self.rounds_over(servers, "W5 listed bots", one)
            for name, r in res.items():
                self.row("W5 listed bots", name, r)
            self.target("W5", "W5 DNS queries per connection after the first round, mxscreen",
                        res["mxscreen"].get("dns_queries_per_session"))
            if "postscreen" in res:
                self.results.setdefault("vs_postscreen", {})["W5"] = {
                    "postscreen_dns_queries_per_session":
                        res["postscreen"].get("dns_queries_per_session")}
            self.note(f"W5: {pool} bots, listed in all 3 zones (TTL 300 s), connect and talk "
                      "at once (loadgen -m pregreet; the pregreet test is off) and are dropped "
                      "(postscreen_dnsbl_action = drop)")
            return res
        finally:
            mx.stop()

    def scaling(self) -> dict:
        """Beyond one core: two mxscreen processes on one port
        (mxscreen_reuseport), sharing one allowlist file, against one."""
        a = self.args
        params = {"postscreen_greet_banner": "$smtpd_banner", "postscreen_greet_wait": "1s",
                  "mxscreen_reuseport": "yes"}
        be_p = self.refsrv("backend-proxy", ["-p"])
        first = Mx(self, "mx-scale-1", params, be_p)
        second = None
        try:
            try:
                second = Mx(self, "mx-scale-2", params, be_p, port=first.port,
                            cache_file=first.cache)
            except BenchError as e:
                msg = str(e).splitlines()[-1][:300]
                self.note("scaling: a second mxscreen cannot listen on the same port "
                          "(mxscreen_reuseport = yes did not help): " + msg)
                return {"supported": False, "error": msg}
            S = a.known_sources
            self.gate.wait()
            self.loadgen(first.port, "greet", c=S, d=20, s=S, b=SRC_KNOWN, n=S)
            self.loadgen(first.port, "greet", c=2 * a.concurrency, d=0.5, s=S, b=SRC_KNOWN)

            def run(procs: list[Mx]) -> dict:
                def once():
                    c0 = [m.cpu.usage_ns() for m in procs]
                    res = self.loadgen(first.port, "greet", c=2 * a.concurrency,
                                       d=self.per_server * 2, s=S, b=SRC_KNOWN)
                    time.sleep(0.3)
                    res["cpu_ns_per_process"] = [m.cpu.usage_ns() - c
                                                 for m, c in zip(procs, c0)]
                    return res
                r = self.gate.run(f"scaling, {len(procs)} process(es)", once)
                n = max(1, r["sessions"])
                out = {"rate": r["rate"], "sessions": r["sessions"], "errors": r["errors"],
                       "cpu_us_per_session": round(sum(r["cpu_ns_per_process"]) / 1000 / n, 2),
                       "share_of_sessions_cpu": [round(c / max(1, sum(r["cpu_ns_per_process"])), 3)
                                                 for c in r["cpu_ns_per_process"]],
                       "greet_p50_us": r["greet_us"]["p50"], "greet_p99_us": r["greet_us"]["p99"]}
                log(f"scaling, {len(procs)} process(es): {r['rate']:.0f}/s, "
                    f"{out['cpu_us_per_session']} µs CPU/session, CPU shares "
                    f"{out['share_of_sessions_cpu']}")
                return out
            r2 = run([first, second])
            second.stop()
            second = None
            r1 = run([first])
            out = {"supported": True, "one": r1, "two": r2,
                   "speedup": ratio(r2["rate"], r1["rate"])}
            self.note(f"scaling (mxscreen_reuseport = yes, W1 greet, PASS OLD): 2 processes "
                      f"{r2['rate']:.0f}/s, {r2['cpu_us_per_session']} µs/session (CPU shares "
                      f"{r2['share_of_sessions_cpu']}); 1 process {r1['rate']:.0f}/s, "
                      f"{r1['cpu_us_per_session']} µs/session: {out['speedup']}x on "
                      f"{os.cpu_count()} cores shared with loadgen and the backend")
            return out
        finally:
            if second:
                second.stop()
            first.stop()

    # -- output ------------------------------------------------------------------

    def print_table(self) -> None:
        def f(v, scale=1.0, fmt="{:.1f}"):
            return "-" if v is None else fmt.format(v / scale)

        out = sys.stdout
        print("\nCPU in µs per completed session: CPU = all of the server's processes, "
              "screen = the screening\nprocess alone, behind = its backend (mxscreen: "
              "refsrv; postscreen: the rest of Postfix)", file=out)
        hdr = (f"{'workload':<16} {'server':<17} {'sess/s':>8} {'err':>5} "
               f"{'CPU µs':>9} {'screen µs':>9} {'behind µs':>9} "
               f"{'greet p50/p99 ms':>17} {'session p50/p99 ms':>19}")
        print(hdr, file=out)
        print("-" * len(hdr), file=out)
        for wl, name, r in self.rows:
            if wl.startswith("W3"):
                continue
            print(f"{wl:<16} {name:<17} {f(r.get('rate'), fmt='{:.0f}'):>8} "
                  f"{r.get('errors', '-'):>5} {f(r.get('cpu_us_per_session')):>9} "
                  f"{f(r.get('screen_us_per_session')):>9} "
                  f"{f(r.get('behind_us_per_session')):>9} "
                  f"{f(r.get('greet_p50_us'), 1000, '{:.2f}') + '/' + f(r.get('greet_p99_us'), 1000, '{:.2f}'):>17} "
                  f"{f(r.get('session_p50_us'), 1000, '{:.2f}') + '/' + f(r.get('session_p99_us'), 1000, '{:.2f}'):>19}",
                  file=out)
        w5 = [(n, r) for wl, n, r in self.rows if wl.startswith("W5")]
        if w5:
            print("\nW5 DNS queries per connection after the first round: " + ", ".join(
                f"{n} {f(r.get('dns_queries_per_session'), fmt='{:.3f}')}" for n, r in w5),
                file=out)
        w3 = [(wl, n, r) for wl, n, r in self.rows if wl.startswith("W3")]
        if w3:
            hdr3 = (f"{'W3 held':<16} {'server':<17} {'held':>7} {'ramp s':>7} "
                    f"{'RSS before MiB':>15} {'RSS held MiB':>13} {'B/conn':>8} "
                    f"{'probe /s':>9} {'probe greet p50/p99 ms':>23}")
            print("\n" + hdr3, file=out)
            print("-" * len(hdr3), file=out)
            for wl, n, r in w3:
                print(f"{wl:<16} {n:<17} {r['held']:>7} {r['ramp_s']:>7.1f} "
                      f"{r['rss_before_kb'] / 1024:>15.1f} {r['rss_held_kb'] / 1024:>13.1f} "
                      f"{f(r.get('rss_per_conn_b'), fmt='{:.0f}'):>8} {r['rate']:>9.0f} "
                      f"{f(r['greet_p50_us'], 1000, '{:.2f}') + '/' + f(r['greet_p99_us'], 1000, '{:.2f}'):>23}",
                      file=out)
        vs = self.results.get("vs_postscreen", {})
        if vs:
            print("\nmxscreen / postscreen (CPU per session; screener = the mxscreen process vs "
                  "the postscreen process,\nwhole = mxscreen + its refsrv backend vs all of "
                  "Postfix):", file=out)
            for label, e in vs.items():
                print(f"  {label:<16} " + ", ".join(f"{k} {v}" for k, v in e.items()), file=out)
        print("\nTargets:", file=out)
        for t in self.results["targets"]:
            m = t["measured"]
            ms = "-" if m is None else (f"{m:.0f}" if t["target"] == "W3rss" else
                                        f"{m:.3f}" if t["target"] == "W5" else f"{m:.2f}")
            print(f"  {t['verdict']:<5} {t['what']:<66} {ms:>8}  target {t['text']}", file=out)
        if self.results["notes"]:
            print("\nNotes:", file=out)
            for n in self.results["notes"]:
                print(f"  - {n}", file=out)
        if self.results["failures"]:
            print("\nCould not run:", file=out)
            for n in self.results["failures"]:
                print(f"  - {n}", file=out)
        out.flush()


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def cpu_ratio(res, num, den):
    """CPU per session of server NUM over that of server DEN in results RES."""
    return ratio(res[num].get("cpu_us_per_session"), res[den].get("cpu_us_per_session"))


def add(a, b):
    return None if a is None or b is None else a + b


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short runs for a CI smoke test (the whole run < 2 minutes)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of load per server and workload, split over the rounds "
                        "(default 9, --quick 1.5)")
    p.add_argument("--rounds", type=int, default=None,
                   help="alternation rounds per workload (default 3, --quick 1)")
    p.add_argument("--only", default="W1,W2,W3,W4,W5",
                   help="comma-separated workloads to run (W1..W5)")
    p.add_argument("--no-postscreen", action="store_true",
                   help="do not start a real Postfix postscreen")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--scaling", action="store_true",
                   help="also try several mxscreen processes on one port")
    p.add_argument("--builddir", default=os.path.join(ROOT, "build-bench"),
                   help="release build tree (created with meson if missing)")
    p.add_argument("--concurrency", type=int, default=20,
                   help="loadgen's concurrent sessions (W1, W2, W4; default 20)")
    p.add_argument("--held", default=None,
                   help="W3 hold levels, comma-separated (default 1000,5000,15000)")
    p.add_argument("--hold-rate", type=float, default=2000,
                   help="W3: connections opened per second while filling the hold "
                        "(default 2000; postscreen's listen backlog is 100)")
    p.add_argument("--pause-while", metavar="PATTERN", action="append",
                   help="before each measurement, wait while a process whose command line "
                        "contains PATTERN runs (e.g. scripts/test.sh); may be repeated")
    p.add_argument("--pause-max", type=float, default=1800,
                   help="give up after waiting this long in all for --pause-while (s)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop the run after this many seconds (default: from the options)")
    p.add_argument("--proc-cpu", action="store_true",
                   help="measure CPU from /proc instead of cgroups")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (logs, configurations)")
    a = p.parse_args(argv)
    a.only = [w.strip().upper() for w in a.only.split(",") if w.strip()]
    bad = [w for w in a.only if w not in ("W1", "W2", "W3", "W4", "W5")]
    if bad:
        p.error(f"unknown workload(s): {', '.join(bad)}")
    if a.duration is None:
        a.duration = 1.5 if a.quick else 9.0
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    if a.duration <= 0 or a.rounds < 1 or a.concurrency < 1:
        p.error("--duration, --rounds and --concurrency must be positive")
    if a.held is None:
        a.held_levels = [1000, 15000] if a.quick else [1000, 5000, 15000]
    else:
        a.held_levels = sorted({int(x) for x in a.held.split(",")})
    a.probe_duration = 1.0 if a.quick else 4.0
    if a.hold_rate <= 0:
        p.error("--hold-rate must be positive")
    a.known_sources = 64
    a.bot_pool = 1000
    a.listed_pool = 20
    if a.budget is None:
        per_wl = a.duration * 4 + 40
        est = 60 + per_wl * 2 * len([w for w in a.only if w != "W3"])
        if "W3" in a.only:
            est += sum(2 * (l / a.hold_rate + a.probe_duration + 15) for l in a.held_levels)
        if a.scaling:
            est += 60 + 4 * a.duration / a.rounds
        a.budget = min(est * 1.5, 3600)
        if a.quick:
            a.budget = min(a.budget, 170)
    return a


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("run.py: run as root (cgroups, Postfix, port 53 on loopback)", file=sys.stderr)
        return 2
    raise_nofile()  # inherited by everything started below, Postfix included
    bench = Bench(a)
    clock = Clock(a.budget)
    bench.gate = Gate(a.pause_while, clock, a.pause_max)

    def interrupted(signum, _frame):
        raise OutOfTime(f"interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    cg = CpuGroup.detect(a.proc_cpu)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu_accounting": cg,
            "cores": os.cpu_count(), "kernel": os.uname().release,
            "options": {k: v for k, v in vars(a).items()}}
    bench.results["meta"] = meta
    status = 0
    try:
        bench.tmp = tempfile.mkdtemp(prefix="mxbench-")
        os.chmod(bench.tmp, 0o755)
        if not a.keep:
            bench.cleanup.push("remove the temporary directory",
                               lambda: shutil.rmtree(bench.tmp, ignore_errors=True))
        bench.gate.wait()
        log(f"building in {bench.builddir}")
        bench.build()
        log(f"CPU accounting: {cg}; temporary directory {bench.tmp}; budget {a.budget:.0f}s")
        if cg == "proc":
            bench.note("CPU from /proc (utime+stime+cutime+cstime of the process trees), "
                       "not from cgroups")
        for w in a.only:
            try:
                log(f"=== {w}")
                bench.results["workloads"][w] = getattr(bench, w.lower())()
            except BenchError as e:
                bench.fail(f"{w}: {e}")
            except Exception as e:  # noqa: BLE001 - the next workload may still run
                bench.fail(f"{w}: {type(e).__name__}: {e}")
                traceback.print_exc(file=sys.stderr)
        if a.scaling:
            try:
                bench.results["scaling"] = bench.scaling()
            except BenchError as e:
                bench.fail(f"scaling: {e}")
    except OutOfTime as e:
        bench.fail(f"stopped: {e}")
        status = 3
    except BenchError as e:
        bench.fail(str(e))
    finally:
        Clock.disarm()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        bench.cleanup.run()
        if a.keep and bench.tmp:
            log(f"kept {bench.tmp}")
    bench.results["meta"]["elapsed_s"] = round(time.monotonic() - clock.start, 1)
    bench.print_table()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(bench.results, f, indent=2, default=str)
            f.write("\n")
    if status == 0 and bench.results["failures"]:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
