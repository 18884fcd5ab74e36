"""One Redis for a fleet, over a real network: three network namespaces play
three hosts.  The hub runs redis-server and the client; hosts A and B each
run an mxscreen, joined to the hub by a veth pair.  A client that passed on
A is PASS OLD at its first connection to B.

    hub: lo 198.18.0.1/32 (the client), to-a 198.18.1.1/24, to-b 198.18.2.1/24,
         redis-server bound to 198.18.1.1 and 198.18.2.1
    a:   to-hub 198.18.1.2/24, route to 198.18.0.1 via 198.18.1.1, mxscreen A
    b:   to-hub 198.18.2.2/24, route to 198.18.0.1 via 198.18.2.1, mxscreen B

198.18.0.0/15 is set aside for network tests (RFC 2544).  Needs root (ip
netns add); skipped with a message otherwise.  Every process is stopped by
PID, then the veths and namespaces are deleted."""
import os
import re
import signal
import subprocess
import time

import pytest

from mxs import Mxscreen, SilentBackend, pregreet_params, assert_held, free_port, recv_line
from redisserver import RedisServer, netns_socket

TEASER = b"220-mxscreen.test ESMTP\r\n"
CLIENT = "198.18.0.1"
HUB_A, A_ADDR = "198.18.1.1", "198.18.1.2"
HUB_B, B_ADDR = "198.18.2.1", "198.18.2.2"


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Net:
    """The three namespaces, named after this process (mxs-hub-PID, ...)."""

    def __init__(self):
        pid = os.getpid()
        self.hub, self.a, self.b = f"mxs-hub-{pid}", f"mxs-a-{pid}", f"mxs-b-{pid}"
        self.made = []

    def setup(self):
        r = ip("netns", "add", self.hub, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot create a network namespace (ip netns add: "
                        f"{r.stderr.strip()}): this test needs root")
        self.made.append(self.hub)
        for ns in (self.a, self.b):
            ip("netns", "add", ns)
            self.made.append(ns)
        for ns in self.made:
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", self.hub, "addr", "add", f"{CLIENT}/32", "dev", "lo")
        # Each pair is made inside the namespaces: the names never meet the
        # host's own interfaces.
        for ns, hub_if, hub_addr, addr in ((self.a, "to-a", HUB_A, A_ADDR),
                                           (self.b, "to-b", HUB_B, B_ADDR)):
            ip("-n", self.hub, "link", "add", hub_if, "type", "veth", "peer", "name", "to-hub",
               "netns", ns)
            ip("-n", self.hub, "addr", "add", f"{hub_addr}/24", "dev", hub_if)
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "to-hub")
            ip("-n", self.hub, "link", "set", hub_if, "up")
            ip("-n", ns, "link", "set", "to-hub", "up")
            ip("-n", ns, "route", "add", f"{CLIENT}/32", "via", hub_addr)

    def teardown(self):
        if self.hub in self.made:
            for hub_if in ("to-a", "to-b"):
                ip("-n", self.hub, "link", "del", hub_if, check=False)
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)
        self.made = []


class NetnsMxscreen(Mxscreen):
    """An Mxscreen run in network namespace NS (`ip netns exec NS`, which
    execs: the PID is mxscreen's), listening on ADDR; its clients connect
    from the hub, from CLIENT."""

    def __init__(self, workdir, params, name, ns, addr, client_ns):
        port = free_port()
        super().__init__(workdir, dict(params, mxscreen_listen=f"{addr}:{port}"), name=name)
        self.port = port
        self.ns = ns
        self.addr = addr
        self.client_ns = client_ns

    def argv(self):
        return ["ip", "netns", "exec", self.ns] + super().argv()

    def connect(self, src=CLIENT, timeout=10):
        s = netns_socket(self.client_ns)
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((self.addr, self.port))
        return s


@pytest.fixture
def fleet(workdir):
    """The network, and a list for every process the test starts (killed by
    PID before the namespaces go)."""
    net = Net()
    procs = []
    try:
        net.setup()
        yield net, procs
    finally:
        for p in reversed(procs):
            if isinstance(p, RedisServer):
                p.kill()
            elif isinstance(p, Mxscreen):
                if p.proc is not None:
                    if p.proc.poll() is None:
                        os.kill(p.proc.pid, signal.SIGKILL)
                        p.proc.wait()
                    p.err.close()
                    p.proc = None
            else:
                p.close()
        net.teardown()


def params(backend, cache_map, fallback):
    return pregreet_params(backend, postscreen_cache_map=cache_map,
                           mxscreen_redis_password="fleet-pw",
                           mxscreen_cache_fallback_map=fallback)


def test_client_passed_on_host_a_is_pass_old_on_host_b(workdir, fleet):
    net, procs = fleet
    r = RedisServer(workdir, password="fleet-pw", bind=(HUB_A, HUB_B), netns=net.hub)
    procs.append(r)
    r.start()
    hosts = {}
    for name, ns, addr, hub_addr in (("a", net.a, A_ADDR, HUB_A), ("b", net.b, B_ADDR, HUB_B)):
        be = SilentBackend(netns_socket(ns))  # on the host's own loopback
        procs.append(be)
        cache_map = f"redis:{hub_addr}:{r.port}"
        mx = NetnsMxscreen(workdir, params(be, cache_map, f"lmdb:{workdir}/{name}-fallback.lmdb"),
                           name, ns, addr, net.hub)
        procs.append(mx)
        mx.start()
        mx.wait_for_log(rf"cache {re.escape(cache_map)}/0: connected$")
        hosts[name] = mx
    a, b = hosts["a"], hosts["b"]
    # Both hosts reach Redis over their own link.
    peers = {re.search(r"\baddr=([\d.]+):", l).group(1)
             for l in r.command("CLIENT", "LIST").splitlines()}
    assert {A_ADDR, B_ADDR} <= peers, peers

    # The client, in the hub, passes on A ...
    s = a.connect()
    port = s.getsockname()[1]
    assert recv_line(s, timeout=5) == TEASER
    a.wait_for_log(rf"CONNECT from \[{CLIENT}\]:{port} to \[{A_ADDR}\]:{a.port}$")
    a.wait_for_log(rf"PASS NEW \[{CLIENT}\]:{port}$", timeout=5)
    s.close()
    value = r.wait_key(f"mxscreen:{CLIENT}")
    assert re.fullmatch(r"\d+;\d+;\d+;\d+;\d+", value), value
    assert r.ttl(f"mxscreen:{CLIENT}") > 0

    # ... and B, which never saw it, hands it off at once.
    t0 = time.time()
    s = b.connect()
    port = s.getsockname()[1]
    b.wait_for_log(rf"PASS OLD \[{CLIENT}\]:{port}$", timeout=5)
    assert time.time() - t0 < 1.0
    assert_held(s, 0.3)
    s.close()
    assert "PASS NEW" not in b.log_text()
    assert "unavailable" not in a.log_text() + b.log_text()

    for mx in (a, b):
        mx.stop()
    r.stop()


def test_network_namespaces_are_gone_afterwards():
    """The fixture of the test above deleted what it made (run after it)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=10).stdout
    assert f"-{os.getpid()}" not in out, out
