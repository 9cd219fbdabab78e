"""bench/run.py --only deflate: permessage-deflate against none, same run.

Chat-sized JSON ({"type":"chat","message":...}, 100 to 300 bytes of
English-like text from a fixed seed) echoed by echo-chat with and without
--permessage-deflate. The client is a raw socket client (compressing with
context takeover, as browsers do); bytes are counted at its socket (every
byte sent and received, frame headers included, TCP/IP headers not);
the server's CPU is read from /proc/PID/stat around the exchange; memory
is the server's RSS growth over N connections that logged in and had one
message echoed.
"""
import base64
import os
import random
import socket
import struct
import zlib

WORDS = ("the a to and of in is it you that he was for on are with as I "
         "his they be at one have this from or had by hot word but what "
         "some we can out other were all there when up use your how said "
         "an each she which do their time if will way about many then "
         "them write would like so these her long make thing see him two "
         "has look more day could go come did number sound no most people "
         "my over know water than call first who may down side been now "
         "find meeting tomorrow deploy build release ticket merged review "
         "thanks sounds good lunch coffee later").split()


def messages(n, seed=7):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        target = rnd.randint(100, 300)
        words = []
        while len(" ".join(words)) < target - 28:
            words.append(rnd.choice(WORDS))
        out.append(b'{"type":"chat","message":"%s"}'
                   % " ".join(words).encode())
    return out


class Client:
    """One connection; counts the bytes of its socket."""

    def __init__(self, url, token, deflate):
        host, port = url.split("//")[1].split("/")[0].split(":")
        self.s = socket.create_connection((host, int(port)), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = self.rcvd = 0
        self.buf = b""
        key = base64.b64encode(os.urandom(16))
        self._send(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket"
                   b"\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   b"Sec-WebSocket-Version: 13\r\n%s\r\n" % (
                       key, b"Sec-WebSocket-Extensions: permessage-deflate;"
                       b" client_max_window_bits\r\n" if deflate else b""))
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.deflate = b"permessage-deflate" in head.lower()
        if deflate and not self.deflate:
            raise RuntimeError("permessage-deflate not negotiated")
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)
        self.send(b'{"type":"login","token":"%s"}' % token.encode())
        if b"Authenticated" not in self.recv():
            raise RuntimeError("login failed")

    def _send(self, b):
        self.s.sendall(b)
        self.sent += len(b)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise RuntimeError("server hung up")
        self.rcvd += len(d)
        self.buf += d

    def send(self, payload):
        rsv = 0
        if self.deflate:
            payload = self.comp.compress(payload) + self.comp.flush(
                zlib.Z_SYNC_FLUSH)
            payload, rsv = payload[:-4], 0x40
        n = len(payload)
        head = (struct.pack("!BB", 0x81 | rsv, 0x80 | n) if n < 126 else
                struct.pack("!BBH", 0x81 | rsv, 0x80 | 126, n))
        self._send(head + b"\0\0\0\0" + payload)  # a zero mask key

    def recv(self):
        data, first = b"", None
        while True:
            while len(self.buf) < 2 or len(self.buf) < self._need():
                self._fill()
            b0, n, i = self.buf[0], self.buf[1] & 0x7F, 2
            if n == 126:
                n, i = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                n, i = struct.unpack("!Q", self.buf[2:10])[0], 10
            payload, self.buf = self.buf[i:i + n], self.buf[i + n:]
            if b0 & 0x0F == 0x9:  # a ping: answered
                self._send(struct.pack("!BB", 0x8A, 0x80 | n) +
                           b"\0\0\0\0" + payload)
                continue
            if first is None:
                first = b0
            data += payload
            if b0 & 0x80:
                break
        if first & 0x40:
            data = self.decomp.decompress(data + b"\x00\x00\xff\xff")
        return data

    def _need(self):
        """The bytes the frame at the head of buf needs."""
        b, n = self.buf, self.buf[1] & 0x7F
        if n < 126:
            return 2 + n
        if n == 126:
            return 4 if len(b) < 4 else 4 + struct.unpack("!H", b[2:4])[0]
        return 10 if len(b) < 10 else 10 + struct.unpack("!Q", b[2:10])[0]


def exchange(srv, token, deflate, conns, per_conn, inflight=4):
    """Echo per_conn messages on each of conns connections (inflight at
    a time each); bytes and server CPU per message."""
    cs = [Client(srv.url, token, deflate) for _ in range(conns)]
    msgs = messages(per_conn)
    s0 = sum(c.sent for c in cs)
    r0 = sum(c.rcvd for c in cs)
    cpu0 = srv.cpu_s()
    for c in cs:
        for m in msgs[:inflight]:
            c.send(m)
    for i in range(per_conn):
        for c in cs:
            c.recv()
            if i + inflight < per_conn:
                c.send(msgs[i + inflight])
    cpu = srv.cpu_s() - cpu0
    n = conns * per_conn
    res = {"messages": n,
           "payload_b": sum(len(m) for m in msgs) / per_conn,
           "sent_b": (sum(c.sent for c in cs) - s0) / n,
           "rcvd_b": (sum(c.rcvd for c in cs) - r0) / n,
           "cpu_us": cpu / n * 1e6}
    for c in cs:
        c.s.close()
    return res


def memory(srv, token, deflate, conns):
    """Server RSS growth per connection that logged in and had one chat
    message echoed, KiB."""
    warm = Client(srv.url, token, deflate)
    base = srv.rss_kib()
    cs = []
    for _ in range(conns):
        c = Client(srv.url, token, deflate)
        c.send(messages(1)[0])
        c.recv()
        cs.append(c)
    kib = (srv.rss_kib() - base) / conns
    for c in cs + [warm]:
        c.s.close()
    return kib
