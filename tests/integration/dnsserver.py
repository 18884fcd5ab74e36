"""A test DNS server for DNSBL tests: UDP on loopback, answers from a
table the test controls.  Stdlib plus python3-dnslib.

    dns = FakeDNS()                  # listening on dns.addr ("127.0.0.1:PORT")
    dns.list("127.0.0.9", "bl.test", ["127.0.0.2"], ttl=300)
    dns.servfail("127.0.0.9", "bad.test")
    dns.silent("127.0.0.9", "slow.test")          # never answers
    dns.list("127.0.0.9", "late.test", ["127.0.0.2"], delay=3)
    ...
    dns.asked("127.0.0.9", "bl.test")             # how many queries came
    dns.close()

Names not in the table get NXDOMAIN with an SOA (TTL 60) in the authority
section.
"""
import ipaddress
import socket
import threading
import time

from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord


def qname(ip, domain):
    """The DNSBL query name of IP (v4: reversed octets, v6: nibbles)."""
    a = ipaddress.ip_address(ip)
    if a.version == 4:
        return ".".join(reversed(ip.split("."))) + "." + domain
    return ".".join(reversed(a.exploded.replace(":", ""))) + "." + domain


class FakeDNS:
    def __init__(self, port=0):
        """Listen on 127.0.0.1:PORT (0: any free port); OSError if it is taken."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.table = {}     # lowercase name -> dict(kind, addrs, ttl, delay)
        self.counts = {}    # lowercase name -> queries seen
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def list(self, ip, domain, answers=("127.0.0.2",), ttl=300, delay=0):
        self._set(ip, domain, dict(kind="a", addrs=list(answers), ttl=ttl, delay=delay))

    def delist(self, ip, domain):
        with self.lock:
            self.table.pop(qname(ip, domain).lower(), None)

    def servfail(self, ip, domain):
        self._set(ip, domain, dict(kind="servfail"))

    def silent(self, ip, domain):
        self._set(ip, domain, dict(kind="silent"))

    def garbage(self, ip, domain):
        """Answer with the query's ID and then bytes that are no DNS message."""
        self._set(ip, domain, dict(kind="garbage"))

    def asked(self, ip, domain):
        with self.lock:
            return self.counts.get(qname(ip, domain).lower(), 0)

    def _set(self, ip, domain, entry):
        with self.lock:
            self.table[qname(ip, domain).lower()] = entry

    def _serve(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                req = DNSRecord.parse(data)
            except Exception:
                continue
            name = str(req.q.qname).rstrip(".").lower()
            with self.lock:
                self.counts[name] = self.counts.get(name, 0) + 1
                entry = self.table.get(name)
            if entry and entry["kind"] == "silent":
                continue
            if entry and entry["kind"] == "garbage":
                self._send(data[:2] + b"\x81\x80\x00\x01\x00\x05" + b"\xff" * 40, peer)
                continue
            reply = req.reply()
            if entry is None:
                reply.header.rcode = RCODE.NXDOMAIN
                zone = name.split(".", 4)[-1] if name.count(".") >= 4 else name
                reply.add_auth(RR(zone, QTYPE.SOA, ttl=60, rdata=SOA(
                    "ns." + zone, "hostmaster." + zone, (1, 3600, 600, 86400, 60))))
            elif entry["kind"] == "servfail":
                reply.header.rcode = RCODE.SERVFAIL
            elif req.q.qtype == QTYPE.A:
                for a in entry["addrs"]:
                    reply.add_answer(RR(req.q.qname, QTYPE.A, ttl=entry["ttl"], rdata=A(a)))
            delay = entry["delay"] if entry and entry.get("delay") else 0
            if delay:
                threading.Timer(delay, self._send, (reply.pack(), peer)).start()
            else:
                self._send(reply.pack(), peer)

    def _send(self, data, peer):
        try:
            self.sock.sendto(data, peer)
        except OSError:
            pass

    def close(self):
        self.running = False
        self.sock.close()
        self.thread.join(2)
