"""A tiny threaded SMTP server on loopback, as a backend that mxscreen hands
clients to (PROXY mode), with knobs for the ways a backend can misbehave.

Stdlib only.  Every connection is recorded as a ``Conn``: the PROXY header
it started with (v1 or v2, parsed, with the v2 TLVs), the command lines it
received and the message data.  mxscreen's own EHLO probes are recorded
too; ``client_conns(ip)`` picks the connections made for one client
address::

    with FakeBackend(ehlo=ehlo_reply(["SIZE 1000000", "8BITMIME"])) as fb:
        ...  # mxscreen_backend = fb.addr
        conn = fb.wait_conn("127.0.0.60")
        assert conn.commands[:2] == ["EHLO x", "MAIL FROM:<a@b>"]

Knobs: ``greeting`` (bytes, or None: never greet), ``close_after_greeting``
(send the greeting, then end the connection: a half-close, so that the peer
reads an end of file rather than a reset),
``ehlo`` (bytes, or a function of the connection number giving bytes),
``greeting_delay`` and ``reply_delay`` (seconds before the greeting, and
before every later reply), ``unix`` (listen on this UNIX socket path instead
of a TCP port), ``replies`` (a whole command line or a command
verb -> reply bytes, e.g. {"MAIL": b"452 ...\\r\\n"}; b"" says nothing, None
closes the connection, ("RST", bytes) says bytes and resets the connection),
``port`` (a fixed port, e.g. one mxscreen already points at).  Sockets have
time limits; close() stops the listener and every connection.
"""
import os
import socket
import struct
import threading
import time

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def ehlo_reply(keywords, name="fake.test"):
    """An EHLO reply: NAME, then one line per keyword."""
    lines = [name] + list(keywords)
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{k}\r\n".encode()
                    for i, k in enumerate(lines))


# What Postfix 3.7 offers (without STARTTLS/AUTH/XCLIENT).
FULL_EHLO = ehlo_reply(["PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES",
                        "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"])


def parse_tlvs(data):
    """TLVs (type, length, value) as a list of (type, value bytes)."""
    out = []
    while len(data) >= 3:
        t, n = data[0], struct.unpack("!H", data[1:3])[0]
        out.append((t, data[3:3 + n]))
        data = data[3 + n:]
    if data:
        raise ValueError(f"trailing TLV bytes {data!r}")
    return out


def parse_ssl_tlv(value):
    """The PP2_TYPE_SSL value: (client byte, verify, {subtype: bytes})."""
    client, verify = value[0], struct.unpack("!I", value[1:5])[0]
    return client, verify, dict(parse_tlvs(value[5:]))


class Conn:
    """One connection the fake backend accepted."""

    def __init__(self, number, sock):
        self.number = number
        self.sock = sock
        self.proxy = None  # dict: version, src, sport, dst, dport, tlvs, raw
        self.commands = []  # command lines received, without CRLF
        self.data = []  # message contents (DATA), bytes
        self.closed = threading.Event()
        self.error = None

    def __repr__(self):
        return f"<Conn {self.number} proxy={self.proxy} commands={self.commands}>"


class FakeBackend:
    def __init__(self, greeting=b"220 fake.test ESMTP\r\n", ehlo=FULL_EHLO, replies=None,
                 close_after_greeting=False, proxy=True, port=0, timeout=20,
                 greeting_delay=0, reply_delay=0, unix=None):
        self.greeting = greeting
        self.greeting_delay = greeting_delay
        self.reply_delay = reply_delay
        self.ehlo = ehlo
        self.replies = dict(replies or {})
        self.close_after_greeting = close_after_greeting
        self.proxy = proxy
        self.timeout = timeout
        self.unix = unix
        if unix:
            # A UNIX socket that an unprivileged mxscreen may connect to.
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix)
            os.chmod(unix, 0o777)
            self.port = None
            self.addr = unix
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
            self.port = self.sock.getsockname()[1]
            self.addr = f"127.0.0.1:{self.port}"
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.conns = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop.set()
        self._acceptor.join(5)
        self.sock.close()
        if self.unix:
            try:
                os.unlink(self.unix)
            except FileNotFoundError:
                pass
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)

    # ---- what was seen ----------------------------------------------------

    def client_conns(self, ip):
        """Connections whose PROXY header names IP as the client."""
        with self._lock:
            return [c for c in self.conns if c.proxy and c.proxy["src"] == ip]

    def wait_conn(self, ip, timeout=10):
        """The first connection for client IP (waits for it)."""
        deadline = time.time() + timeout
        while True:
            got = self.client_conns(ip)
            if got:
                return got[0]
            if time.time() > deadline:
                raise TimeoutError(f"no backend connection for {ip}: {self.conns!r}")
            time.sleep(0.02)

    # ---- the server -------------------------------------------------------

    def _accept_loop(self):
        n = 0
        while not self._stop.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            n += 1
            c = Conn(n, s)
            with self._lock:
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _recv_exact(self, c, n, buf):
        while len(buf) < n:
            d = c.sock.recv(4096)
            if not d:
                raise EOFError("closed in the PROXY header")
            buf += d
        return buf

    def _read_proxy(self, c):
        """Read and parse the PROXY header; returns the bytes after it."""
        buf = self._recv_exact(c, 6, b"")
        if buf.startswith(PROXY_V2_SIG[:6]):
            buf = self._recv_exact(c, 16, buf)
            if not buf.startswith(PROXY_V2_SIG):
                raise ValueError(f"bad PROXY v2 signature: {buf!r}")
            length = struct.unpack("!H", buf[14:16])[0]
            buf = self._recv_exact(c, 16 + length, buf)
            raw, rest = buf[:16 + length], buf[16 + length:]
            fam = raw[13]
            if raw[12] == 0x20 and fam == 0:  # LOCAL, no addresses
                c.proxy = {"version": 2, "command": 0x20, "src": None, "dst": None,
                           "sport": None, "dport": None, "tlvs": parse_tlvs(raw[16:]),
                           "raw": raw}
                return rest
            if fam != 0x11:
                raise ValueError(f"PROXY v2 family {fam:#x} (only TCP over IPv4 here)")
            body = raw[16:]
            c.proxy = {
                "version": 2, "command": raw[12],
                "src": socket.inet_ntoa(body[0:4]), "dst": socket.inet_ntoa(body[4:8]),
                "sport": struct.unpack("!H", body[8:10])[0],
                "dport": struct.unpack("!H", body[10:12])[0],
                "tlvs": parse_tlvs(body[12:]), "raw": raw,
            }
            return rest
        if buf.startswith(b"PROXY "):
            while b"\r\n" not in buf:
                d = c.sock.recv(4096)
                if not d:
                    raise EOFError("closed in the PROXY v1 header")
                buf += d
            line, rest = buf.split(b"\r\n", 1)
            f = line.decode().split()
            if f[1] == "UNKNOWN":
                c.proxy = {"version": 1, "src": None, "dst": None, "sport": None,
                           "dport": None, "tlvs": [], "raw": line + b"\r\n"}
            else:
                c.proxy = {"version": 1, "src": f[2], "dst": f[3], "sport": int(f[4]),
                           "dport": int(f[5]), "tlvs": [], "raw": line + b"\r\n"}
            return rest
        raise ValueError(f"no PROXY header: {buf!r}")

    def _serve(self, c):
        c.sock.settimeout(self.timeout)
        try:
            buf = self._read_proxy(c) if self.proxy else b""
            if self.greeting_delay:
                time.sleep(self.greeting_delay)
            if self.greeting is None:
                # Never greet: wait until the peer or close() ends it.
                while not self._stop.is_set() and c.sock.recv(4096):
                    pass
                return
            c.sock.sendall(self.greeting)
            if self.close_after_greeting:
                # End our side; read (and ignore) until the peer closes, so
                # that it sees an orderly end of file, never a reset.
                c.sock.shutdown(socket.SHUT_WR)
                while c.sock.recv(4096):
                    pass
                return
            self._dialogue(c, buf)
        except (OSError, EOFError, ValueError) as e:
            c.error = e
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            c.closed.set()

    def _dialogue(self, c, buf):
        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                d = c.sock.recv(4096)
                if not d:
                    return None
                buf += d
            text, buf = buf.split(b"\r\n", 1)
            return text.decode("utf-8", "replace")

        while not self._stop.is_set():
            cmd = line()
            if cmd is None:
                return
            c.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if self.reply_delay:
                time.sleep(self.reply_delay)
            canned = self.replies.get(cmd, self.replies.get(verb, False))
            if canned is None:
                return  # close the connection
            if isinstance(canned, tuple) and canned[0] == "RST":
                # Say this, then reset the connection (SO_LINGER 0).
                c.sock.sendall(canned[1])
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.sock.close()
                return
            if canned is not False:
                c.sock.sendall(canned)  # b"": say nothing
            elif verb == "EHLO":
                c.sock.sendall(self.ehlo(c.number) if callable(self.ehlo) else self.ehlo)
            elif verb == "HELO":
                c.sock.sendall(b"250 fake.test\r\n")
            elif verb == "MAIL":
                c.sock.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                c.sock.sendall(b"250 2.1.5 Ok\r\n")
            elif verb in ("RSET", "NOOP"):
                c.sock.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "DATA":
                c.sock.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while b"\r\n.\r\n" not in b"\r\n" + buf:
                    d = c.sock.recv(4096)
                    if not d:
                        return
                    buf += d
                whole = b"\r\n" + buf
                end = whole.index(b"\r\n.\r\n")
                c.data.append(whole[2:end + 2])
                buf = whole[end + 5:]
                c.sock.sendall(b"250 2.0.0 Ok: queued as FAKE%d\r\n" % len(c.data))
            elif verb == "QUIT":
                c.sock.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                c.sock.sendall(b"502 5.5.2 Error: command not recognized\r\n")
