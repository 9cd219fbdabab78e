#!/usr/bin/python3
"""Frame-level tests of echo-chat (RFC 6455 sections 5 to 8).

The cases follow, in spirit, sections 1 to 7 of the Autobahn TestSuite:
framing, pings and pongs, reserved bits, opcodes, fragmentation, UTF-8 and
closing, plus masking and the size limit. Frames are built and parsed by
hand on raw sockets, so that a frame a client library would refuse to
send can be sent. The law is RFC 6455 and /work/shared/PROTOCOL.md (the
frame rules of section 3 hold before the login too).

The server here is plain (no TLS, no permessage-deflate) on loops of
its own, so libwsa reads and parses its connections' frames itself
(lib/core/read.c), and every case asserts RFC 6455's answer. Cases that
once asserted a deviation of libwebsockets 4.1.6, which read them before,
now assert the RFC: a control frame over 125 bytes (s2_ping_126_bytes,
s2_pong_126_bytes, s7_close_payload_126_bytes), an unmasked frame
(m_unmasked_*) and a 64-bit length with its top bit set are closed with
1002 instead of a hang-up; every ping of ten in one write is answered,
not only the first; reserved bits get 1002 and the stream ends at once,
not at a 5 s close-ack timeout; close codes 1012-1014 are echoed, not
rewritten to 1002; a header announcing too much is refused before any
of its payload comes. Those deviations still hold where libwebsockets
reads (TLS, permessage-deflate, a host's loop): SECURITY.md, "RFC 6455
at the frame level". A case named "[lws decides: ...]" asserts exactly
what libwebsockets does, so that it fails when that changes.

One echo-chat with its default limits serves every case; each case uses
fresh connections, and after it another client must still log in and get
its chat echoed. Tokens come from wsa-token with the server's secret.

    /usr/bin/python3 tests/interop/test_frames.py \\
        --echo-chat build/examples/echo-chat/echo-chat \\
        --wsa-token build/examples/wsa-token/wsa-token

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
Output: one "PASS name" / "FAIL name" line per case, then a last line
"N passed, N failed"; the exit status is non-zero on any failure.
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without its packages)

from test_echo_chat import SECRET, Failure, check  # noqa: E402

NET_TIMEOUT = base.NET_TIMEOUT
AUTH_OK = {"type": "auth", "message": "Authenticated"}
ERR_FORMAT = {"type": "error", "message": "Invalid message format"}
MAX_MESSAGE = 65536  # max_message_size, default
MAX_LOGIN = 16384  # max_login_size, default
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
HANGUP = "hang-up"  # the TCP stream ended (FIN or reset), no close frame


# --------------------------------------------------------------------------
# frames

def frame(op, payload=b"", fin=True, rsv=0, mask=True, key=None,
          length=None):
    """One client frame as bytes. rsv: the three RSV bits (0-7); length:
    the length to announce instead of len(payload); key: the mask key
    (default random)."""
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (op & 0xF)
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code=None, reason=b""):
    return b"" if code is None else struct.pack("!H", code) + reason


def chat(text):
    """A chat message as UTF-8 bytes (text may be str or bytes)."""
    if isinstance(text, str):
        text = text.encode()
    return b'{"type":"chat","message":"' + text + b'"}'


def fragments(data, cuts, op=TEXT):
    """data cut at the offsets in cuts, as a first frame and
    continuations."""
    edges = [0] + list(cuts) + [len(data)]
    parts = [data[a:b] for a, b in zip(edges, edges[1:])]
    return b"".join(frame(op if i == 0 else CONT, p,
                          fin=i == len(parts) - 1)
                    for i, p in enumerate(parts))


class Frame:
    def __init__(self, b0, b1, payload):
        self.fin = bool(b0 & 0x80)
        self.rsv = b0 >> 4 & 7
        self.op = b0 & 0xF
        self.masked = bool(b1 & 0x80)
        self.payload = payload

    def __repr__(self):
        return "<frame op=%#x fin=%d rsv=%d %r>" % (
            self.op, self.fin, self.rsv, self.payload[:80])


# --------------------------------------------------------------------------
# a raw client

class Peer:
    """One WebSocket connection on a plain socket. Every read is bounded
    by a deadline; nothing here sleeps."""

    def __init__(self, url, extensions=None, early=b""):
        """extensions: a Sec-WebSocket-Extensions offer (bytes); what the
        server answers is in self.extensions, and a permessage-deflate
        answer makes compressed messages from the server readable.
        early: bytes sent in the same write as the upgrade request, before
        its answer (which RFC 6455 4.1 forbids a client)."""
        self.url = url
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port),
                                             timeout=NET_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n%s\r\n"
            % (u.path.encode(), u.hostname.encode(), u.port, key,
               b"Sec-WebSocket-Extensions: %s\r\n" % extensions
               if extensions else b"") + early)
        self.buf = b""
        self.close_sent = False
        self.eof = False
        deadline = time.monotonic() + NET_TIMEOUT
        while b"\r\n\r\n" not in self.buf:
            check(self._fill(deadline), "no upgrade answer: %r"
                  % self.buf[:200])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        check(lines[0].split()[1:2] == [b"101"],
              "upgrade refused: %r" % lines[0])
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (ln.partition(b":") for ln in lines[1:])}
        check(headers.get(b"sec-websocket-accept") == accept,
              "bad Sec-WebSocket-Accept: %r" % headers)
        self.extensions = headers.get(b"sec-websocket-extensions")
        # The server keeps its compression context unless it said not to.
        self.inflater = (zlib.decompressobj(-15) if self.extensions and
                         self.extensions.startswith(b"permessage-deflate")
                         else None)

    def _fill(self, deadline):
        """Read more into buf; False at EOF or reset (or timeout)."""
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def send(self, data):
        """Send bytes; a server that already hung up is not an error here
        (what it answered is read and checked afterwards)."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def send_frame(self, op, payload=b"", **kw):
        if op == CLOSE:
            self.close_sent = True
        self.send(frame(op, payload, **kw))

    def send_close(self, code=None, reason=b""):
        self.send_frame(CLOSE, close_payload(code, reason))

    def next(self, timeout=NET_TIMEOUT):
        """The next server frame, HANGUP, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not self._fill(deadline):
                if self.eof:
                    check(not self.buf, "the stream ended inside a frame: "
                          "%r" % self.buf[:80])
                    return HANGUP
                return None

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        n, i = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, i = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < i + n:
            return None
        f = Frame(b[0], b[1], b[i:i + n])
        self.buf = b[i + n:]
        # what a server must send (RFC 6455 5.1, 5.2, 5.5)
        check(not f.masked, "the server masked a frame: %r" % f)
        check(f.rsv == 0 or (self.inflater and f.rsv == 4 and
                             f.op in (TEXT, BINARY)),
              "the server set RSV bits: %r" % f)
        check(f.op in (CONT, TEXT, BINARY, CLOSE, PING, PONG),
              "the server used opcode %#x" % f.op)
        if f.op & 8:
            check(f.fin and len(f.payload) <= 125,
                  "bad control frame from the server: %r" % f)
        return f

    def message(self, timeout=NET_TIMEOUT, what="a message"):
        """The next text message as a JSON object (server fragments are
        joined; pings from the server are answered)."""
        data, compressed = b"", None
        while True:
            f = self.next(timeout)
            check(f is not None, "no %s within %.0f s" % (what, timeout))
            check(f is not HANGUP, "the server hung up while waiting for "
                  "%s" % what)
            if f.op == PING:
                self.send_frame(PONG, f.payload)
                continue
            check(f.op in (TEXT, CONT), "expected %s, got %r" % (what, f))
            if compressed is None:
                compressed = f.rsv == 4
            data += f.payload
            if f.fin:
                break
        if compressed:
            data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
        obj = json.loads(data.decode("utf-8"))
        check(isinstance(obj, dict), "not a JSON object: %r" % data[:200])
        return obj

    def expect(self, want):
        got = self.message(what=json.dumps(want))
        check(got == want, "expected %s, got %s" % (want, got))

    def expect_echo(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        got = self.message(what="the echo of %r" % text[:40])
        ts = got.get("timestamp")
        want = {"type": "chat", "message": "Echo: " + text,
                "from": "server", "timestamp": ts}
        check(isinstance(ts, int) and got == want,
              "expected the echo of %r, got %r" % (text[:60],
                                                  str(got)[:200]))

    def expect_pong(self, payload):
        f = self.next()
        check(f is not None and f is not HANGUP and f.op == PONG,
              "expected a pong, got %r" % (f,))
        check(f.payload == payload, "pong payload %r, not the ping's %r"
              % (f.payload[:60], payload[:60]))

    def login(self, token):
        self.send_frame(TEXT, json.dumps({"type": "login",
                                          "token": token}).encode())
        self.expect(AUTH_OK)

    def expect_close(self, code, reason=None, acked=True,
                     within=NET_TIMEOUT):
        """The next frame is a close with this code (1005: no payload),
        nothing before it. Answered (unless we closed first); then the
        server must end the TCP stream within `within` seconds (acked),
        or, where libwebsockets misreads our answer (not acked), must not
        for a while."""
        f = self.next()
        check(f is not None, "no close %d within %.0f s" % (code,
                                                           NET_TIMEOUT))
        check(f is not HANGUP, "hung up without a close frame, where "
              "close %d was due" % code)
        check(f.op == CLOSE, "expected close %d, got %r" % (code, f))
        check(len(f.payload) != 1, "a close payload of one byte")
        got = struct.unpack("!H", f.payload[:2])[0] if f.payload else 1005
        check(got == code, "expected close %d, got %d (%r)"
              % (code, got, f.payload[2:]))
        try:
            f.payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise Failure("the close reason is not UTF-8: %r" % f.payload)
        if reason is not None:
            check(f.payload[2:] == reason, "close reason %r, expected %r"
                  % (f.payload[2:], reason))
        if not self.close_sent:
            self.send_close(None if code == 1005 else code)
        if acked:
            self.expect_hangup("after the close", within)
        else:
            self.expect_silence(0.3)
        return f.payload[2:]

    def expect_hangup(self, when="", within=NET_TIMEOUT):
        """The server ends the TCP stream with no frame (more)."""
        f = self.next(within)
        check(f is HANGUP, "expected the server to hang up%s, got %s"
              % (" " + when if when else "",
                 "nothing within %.1f s" % within if f is None
                 else repr(f)))

    def expect_silence(self, seconds):
        """Nothing at all from the server for this long (a bounded read,
        for what must not happen)."""
        f = self.next(seconds)
        check(f is None, "expected nothing for %.1f s, got %r"
              % (seconds, f))

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# the server, the token, the check after every case

class Frames(base.Context):
    """One echo-chat with default limits (only the secret is given)."""

    def __init__(self, echo_chat, wsa_token):
        super().__init__(echo_chat, wsa_token)
        self._token = None

    def server_args(self, kind):
        check(kind == "default", "one server only")
        return ["--jwt-secret", SECRET]

    @property
    def token(self):
        if self._token is None:
            self._token = self.wsa_token_cli("--secret", SECRET, "--uid",
                                             "frames", "--ttl", "3600")
        return self._token


def served(t, srv):
    """The server runs, and a new client logs in and gets its echo."""
    check(srv.alive(), "echo-chat died during the case (exit %r)"
          % srv.proc.returncode)
    p = Peer(srv.url)
    try:
        p.login(t.token)
        p.send_frame(TEXT, chat("still there?"))
        p.expect_echo("still there?")
        p.send_close(1000)
        p.expect_close(1000)
    except Failure as e:
        raise Failure("after the case, a new client was not served: %s" % e)
    finally:
        p.close()
    check(srv.alive(), "echo-chat died (exit %r)" % srv.proc.returncode)


CASES = []


def register(name, fn, login, lws):
    async def run(t):
        srv = t.server()

        def body():
            p = Peer(srv.url)
            p.token, p.logged_in = t.token, login
            try:
                if login:
                    p.login(t.token)
                fn(p)
            finally:
                p.close()
        await asyncio.to_thread(body)
        await asyncio.to_thread(served, t, srv)
    run.__name__ = name + ("" if login else "_before_login") + (
        " [lws decides: %s]" % lws if lws else "")
    CASES.append(run)


def case(login=(True,), lws=None):
    """Register fn(peer), run on a fresh connection after a login (and/or
    before one: login=(True, False)). lws: what libwebsockets decides in
    this case, which fn asserts."""
    def wrap(fn):
        for li in login:
            register(fn.__name__, fn, li, lws)
        return fn
    return wrap


def variants(prefix, table, login=(True,), lws=None):
    """One case per (name, value) of table, running fn(peer, value)."""
    def wrap(fn):
        for name, value in table:
            for li in login:
                register("%s_%s" % (prefix, name),
                         lambda p, v=value: fn(p, v), li, lws)
        return fn
    return wrap


BOTH = (True, False)


def closed_with(p, data, code):
    p.send(data)
    p.expect_close(code)


# ==========================================================================
# 1. framing: text, binary, empty, the three length encodings

@variants("s1_text_echoed_length", [("7bit", 60), ("125", 125),
                                     ("16bit", 126), ("16bit_max", 65535),
                                     ("64bit", MAX_MESSAGE)])
def _text_length(p, n):
    text = "a" * (n - len(chat("")))
    p.send_frame(TEXT, chat(text))
    p.expect_echo(text)


@case()
def s1_text_then_ping_pong_message(p):
    p.send_frame(TEXT, b'{"type":"ping"}')
    p.expect({"type": "pong"})


@case()
def s1_empty_text_frame_is_a_format_error(p):
    p.send_frame(TEXT, b"")
    p.expect(ERR_FORMAT)
    p.send_frame(TEXT, chat("on"))
    p.expect_echo("on")


@case(login=BOTH)
def s1_binary_frame_1003(p):
    closed_with(p, frame(BINARY, chat("bin")), 1003)


@case()
def s1_empty_binary_frame_1003(p):
    closed_with(p, frame(BINARY, b""), 1003)


@case()
def s1_frame_sent_a_byte_at_a_time(p):
    for b in frame(TEXT, chat("slow")):
        p.send(bytes([b]))
    p.expect_echo("slow")


@case()
def s1_zero_mask_key(p):
    p.send_frame(TEXT, chat("zero key"), key=b"\0\0\0\0")
    p.expect_echo("zero key")


@case()
def s1_three_messages_in_one_write(p):
    p.send(b"".join(frame(TEXT, chat(str(i))) for i in range(3)))
    for i in range(3):
        p.expect_echo(str(i))


# ==========================================================================
# 2. pings and pongs

@variants("s2_ping_answered_with_its_payload", [
    ("empty", b""), ("text", b"Hello, world!"),
    ("binary", bytes(range(125))), ("125_bytes", b"*" * 125)],
    login=BOTH)
def _ping(p, payload):
    p.send_frame(PING, payload)
    p.expect_pong(payload)


@case()
def s2_ping_126_bytes(p):
    # RFC 6455 5.5: a control frame carries 125 bytes at most
    closed_with(p, frame(PING, b"*" * 126), 1002)


@case()
def s2_pong_126_bytes(p):
    closed_with(p, frame(PONG, b"*" * 126), 1002)


@case()
def s2_unsolicited_pong_ignored(p):
    p.send_frame(PONG, b"unasked")
    p.send_frame(PONG, b"")
    p.send_frame(TEXT, chat("after pongs"))
    p.expect_echo("after pongs")


@case()
def s2_ten_pings_one_after_another(p):
    for i in range(10):
        p.send_frame(PING, b"ping %d" % i)
        p.expect_pong(b"ping %d" % i)


@case()
def s2_ten_pings_in_one_write(p):
    p.send(b"".join(frame(PING, b"ping %d" % i) for i in range(10)) +
           frame(TEXT, chat("after pings")))
    for i in range(10):
        p.expect_pong(b"ping %d" % i)
    p.expect_echo("after pings")


@case()
def s2_ping_with_fin_clear_1002(p):
    closed_with(p, frame(PING, b"x", fin=False), 1002)


# ==========================================================================
# 3. reserved bits (no extension is negotiated here)

def rsv_closed(p, data):
    closed_with(p, data, 1002)


@variants("s3_rsv_bits_1002", [("rsv1", 4), ("rsv2", 2), ("rsv3", 1),
                               ("all", 7)])
def _rsv(p, rsv):
    rsv_closed(p, frame(TEXT, chat("rsv"), rsv=rsv))


@case(login=(False,))
def s3_rsv1_1002(p):
    rsv_closed(p, frame(TEXT, b'{"type":"login"}', rsv=4))


@case()
def s3_rsv_on_a_ping_1002(p):
    rsv_closed(p, frame(PING, b"x", rsv=2))


@case()
def s3_rsv_on_a_continuation_1002(p):
    rsv_closed(p, frame(TEXT, b'{"type":', fin=False) +
               frame(CONT, b'"ping"}', rsv=1))


@case()
def s3_rsv_stream_ends_at_once(p):
    # After a broken frame nothing can be parsed, our close included:
    # the server ends its side after its close, not at a timeout.
    p.send(frame(TEXT, chat("rsv"), rsv=4))
    p.close_sent = True  # we never answer
    p.expect_close(1002, within=INSIDE_FRAME_HANGUP)


# ==========================================================================
# 4. opcodes

@variants("s4_reserved_opcode_1002",
          [("%#x" % op, op) for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE,
                                       0xF)])
def _opcode(p, op):
    closed_with(p, frame(op, b"payload"), 1002)


@case(login=(False,))
def s4_reserved_opcode_3_1002(p):
    closed_with(p, frame(3), 1002)


@case()
def s4_reserved_opcode_inside_a_fragmented_message_1002(p):
    closed_with(p, frame(TEXT, b'{"type":', fin=False) + frame(0xB), 1002)


# ==========================================================================
# 5. fragmentation

@case()
def s5_text_in_two_fragments(p):
    data = chat("two parts")
    p.send(fragments(data, [10]))
    p.expect_echo("two parts")


@case(login=(False,))
def s5_login_in_three_fragments(p):
    data = json.dumps({"type": "login", "token": p.token}).encode()
    p.send(fragments(data, [5, len(data) - 5]))
    p.expect(AUTH_OK)


@case()
def s5_text_in_one_byte_fragments(p):
    data = chat("frag")
    p.send(fragments(data, range(1, len(data))))
    p.expect_echo("frag")


@case()
def s5_empty_fragments(p):
    data = chat("empties")
    p.send(frame(TEXT, b"", fin=False) + frame(CONT, data, fin=False) +
           frame(CONT, b"", fin=False) + frame(CONT, b""))
    p.expect_echo("empties")


@case()
def s5_ping_between_fragments(p):
    data = chat("pinged")
    p.send(frame(TEXT, data[:9], fin=False) + frame(PING, b"mid") +
           frame(CONT, data[9:]))
    p.expect_pong(b"mid")
    p.expect_echo("pinged")


@case()
def s5_pings_between_fragments_each_answered(p):
    data = chat("three pings")
    for i, (a, b) in enumerate([(0, 5), (5, 15), (15, 20)]):
        p.send(frame(TEXT if i == 0 else CONT, data[a:b], fin=False))
        p.send_frame(PING, b"%d" % i)
        p.expect_pong(b"%d" % i)
    p.send_frame(CONT, data[20:])
    p.expect_echo("three pings")


@case()
def s5_pong_between_fragments_ignored(p):
    data = chat("ponged")
    p.send(frame(TEXT, data[:9], fin=False) + frame(PONG, b"x") +
           frame(CONT, data[9:]))
    p.expect_echo("ponged")


@variants("s5_continuation_without_a_start_1002",
          [("final", True), ("not_final", False)], login=BOTH)
def _cont_alone(p, fin):
    closed_with(p, frame(CONT, chat("orphan"), fin=fin), 1002)


@case()
def s5_continuation_after_a_whole_message_1002(p):
    p.send_frame(TEXT, chat("whole"))
    p.expect_echo("whole")
    closed_with(p, frame(CONT, b"more"), 1002)


@variants("s5_new_message_before_the_last_ended_1002",
          [("text", TEXT), ("binary", BINARY)])
def _interleaved(p, op):
    closed_with(p, frame(TEXT, b'{"type":', fin=False) +
                frame(op, chat("x")), 1002)


@variants("s5_fragmented_control_frame_1002",
          [("ping", PING), ("pong", PONG), ("close", CLOSE)])
def _fragmented_control(p, op):
    closed_with(p, frame(op, b"\x03\xe8", fin=False) + frame(CONT, b"x"),
                1002)


@case()
def s5_fragmented_binary_1003(p):
    closed_with(p, frame(BINARY, b"ab", fin=False) + frame(CONT, b"cd"),
                1003)


# ==========================================================================
# 6. UTF-8

VALID_UTF8 = [
    ("greek", "κόσμε"),
    ("u0080", "\u0080"), ("u07ff", "\u07ff"), ("u0800", "\u0800"),
    ("ud7ff", "\ud7ff"), ("ue000", "\ue000"), ("ufffd", "\ufffd"),
    ("uffff", "\uffff"), ("u10000", "\U00010000"),
    ("u10ffff", "\U0010ffff"), ("mixed", "a€𝄞é\u07ff"),
]


@variants("s6_valid_utf8_echoed", VALID_UTF8, login=(True,))
def _valid_utf8(p, text):
    p.send_frame(TEXT, chat(text))
    p.expect_echo(text)


@case()
def s6_valid_utf8_cut_inside_characters_by_fragments(p):
    text = "𝄞€é"  # 4, 3 and 2 bytes
    data = chat(text)
    start = data.index(text.encode())
    for cut in range(start + 1, start + 9):  # every cut inside the text
        p.send(fragments(data, [cut]))
        p.expect_echo(text)


@case()
def s6_valid_utf8_cut_at_every_byte(p):
    text = "κ𝄞€"
    data = chat(text)
    p.send(fragments(data, range(1, len(data))))
    p.expect_echo(text)


@case()
def s6_valid_utf8_across_the_servers_read_pieces(p):
    # 3-byte characters over several KiB: the server reads in pieces
    # that cut them
    text = "€" * 5000
    p.send_frame(TEXT, chat(text))
    p.expect_echo(text)


INVALID_UTF8 = [
    ("lone_continuation_80", b"\x80"),
    ("lone_continuation_bf", b"\xbf"),
    ("lead_c0", b"\xc0\x80"), ("lead_c1", b"\xc1\xbf"),
    ("lead_f5", b"\xf5\x80\x80\x80"), ("lead_ff", b"\xff"),
    ("lead_fe", b"\xfe"),
    ("overlong_slash_2", b"\xc0\xaf"), ("overlong_slash_3", b"\xe0\x80\xaf"),
    ("overlong_slash_4", b"\xf0\x80\x80\xaf"),
    ("overlong_max_3", b"\xe0\x9f\xbf"), ("overlong_max_4", b"\xf0\x8f\xbf\xbf"),
    ("surrogate_d800", b"\xed\xa0\x80"), ("surrogate_dfff", b"\xed\xbf\xbf"),
    ("surrogate_pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above_u10ffff", b"\xf4\x90\x80\x80"),
    ("max_4_byte_form", b"\xf7\xbf\xbf\xbf"),
    ("five_byte_form", b"\xf8\x88\x80\x80\x80"),
    ("six_byte_form", b"\xfc\x84\x80\x80\x80\x80"),
    ("lead_then_ascii", b"\xc2A"), ("three_byte_lead_then_ascii",
                                    b"\xe2\x82A"),
    ("truncated_at_message_end", None),
    ("outside_a_json_string", b"\xff"),
    # whole texts (the parser stops at the first error it meets; UTF-8
    # anywhere in the text still decides first)
    ("after_a_json_syntax_error",
     ("text", b'{"type":"chat",,"message":"ok\xffok"}')),
    ("in_text_that_is_not_json", ("text", b"hello \xc3( world")),
    ("after_the_json_value_ends",
     ("text", b'{"type":"chat","message":"x"} \xe2\x82\xac\xed\xa0\x80')),
    ("in_a_key", ("text", b'{"type":"chat","\xf4\x90\x80\x80":1}')),
    ("after_an_escape", ("text", b'{"type":"chat","message":"\\n\xc0\xaf"}')),
    ("truncated_inside_an_unclosed_string",
     ("text", b'{"type":"chat","message":"x\xf0\x9d\x84')),
]


@variants("s6_invalid_utf8_1007", INVALID_UTF8)
def _invalid_utf8(p, bad):
    if bad is None:  # valid so far, but the message ends inside "€"
        data = chat("x") + b"\xe2\x82"
    elif isinstance(bad, tuple):
        data = bad[1]
    elif bad == b"\xff":
        data = b"\xff"
    else:
        data = chat(b"ok" + bad + b"ok")
    closed_with(p, frame(TEXT, data), 1007)


@case(login=(False,))
def s6_invalid_utf8_1007(p):
    closed_with(p, frame(TEXT, b'{"type":"login","token":"\xed\xa0\x80"}'),
                1007)


@variants("s6_invalid_utf8_in_a_broken_login_1007", [
    ("after_a_syntax_error", b'{"type":"login",,"token":"\xff"}'),
    ("not_json", b"\xe0\x80\x80"),
], login=(False,))
def _invalid_utf8_login(p, data):
    closed_with(p, frame(TEXT, data), 1007)


@case()
def s6_valid_utf8_outside_strings_is_a_format_error(p):
    # well-formed UTF-8 where JSON allows none: the text is not JSON
    p.send_frame(TEXT, b'{"type":"chat","message":\xc3\xa9}')
    p.expect({"type": "error", "message": "Invalid message format"})
    p.send_frame(TEXT, chat("still open"))
    p.expect_echo("still open")


@case()
def s6_invalid_utf8_in_the_last_fragment_after_a_syntax_error_1007(p):
    closed_with(p, frame(TEXT, b'{"type":"chat",,', fin=False) +
                frame(CONT, b'"message":"\xff"}'), 1007)


@case()
def s6_invalid_utf8_split_across_fragments_1007(p):
    # each fragment alone could be the start or end of a character
    closed_with(p, frame(TEXT, chat("x")[:-2] + b"\xf4", fin=False) +
                frame(CONT, b"\x90\x80\x80" + b'"}'), 1007)


@case()
def s6_invalid_utf8_fails_before_the_message_ends(p):
    # RFC 6455 8.1: fail fast; the rest of the message never comes
    closed_with(p, frame(TEXT, b'{"type":"chat","message":"\xce\xba\xed'
                         b'\xa0\x80', fin=False), 1007)


@case()
def s6_message_ending_inside_a_character_across_fragments_1007(p):
    closed_with(p, frame(TEXT, chat("x")[:-2], fin=False) +
                frame(CONT, b'"}\xf0\x9d', fin=False) +
                frame(CONT, b"\x84"), 1007)


# ==========================================================================
# 7. closing

@case(login=BOTH)
def s7_empty_close_answered(p):
    p.send_close()
    p.expect_close(1005)


@case()
def s7_close_1000_with_reason(p):
    p.send_close(1000, "bye, κόσμε".encode())
    p.expect_close(1000)


@case()
def s7_close_with_a_123_byte_reason(p):
    p.send_close(1000, b"r" * 123)
    p.expect_close(1000)


@case()
def s7_close_payload_126_bytes(p):
    closed_with(p, frame(CLOSE, close_payload(1000, b"r" * 124)), 1002)


@case(login=BOTH)
def s7_close_payload_of_one_byte_1002(p):
    p.send_frame(CLOSE, b"\x03")
    p.expect_close(1002)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
               3999, 4000, 4999]


@variants("s7_valid_close_code_echoed", [(str(c), c) for c in VALID_CODES])
def _valid_code(p, code):
    p.send_close(code, b"reason")
    p.expect_close(code)


@variants("s7_close_code_registered_after_rfc6455_echoed", [
    (str(c), c) for c in (1012, 1013, 1014)])
def _late_code(p, code):
    p.send_close(code)
    p.expect_close(code)


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                 5000, 65535]


@variants("s7_invalid_close_code_1002", [(str(c), c) for c in INVALID_CODES])
def _invalid_code(p, code):
    p.send_close(code, b"reason")
    p.expect_close(1002)


@variants("s7_invalid_close_code_1002", [("5000", 5000), ("0", 0)],
          login=(False,))
def _invalid_code_before_login(p, code):
    p.send_close(code)
    p.expect_close(1002)


@variants("s7_close_reason_not_utf8_1007", [
    ("byte_ff", b"\xff"), ("surrogate", b"ok\xed\xa0\x80"),
    ("cut_character", b"ok\xe2\x82")], login=BOTH)
def _close_reason(p, reason):
    p.send_close(1000, reason)
    p.expect_close(1007)


@case()
def s7_data_after_close_ignored(p):
    p.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, chat("late")) +
           frame(PING, b"late"))
    p.close_sent = True
    p.expect_close(1000)


@case()
def s7_second_close_after_the_first_ignored(p):
    p.send(frame(CLOSE, close_payload(1000)) +
           frame(CLOSE, close_payload(1001)))
    p.close_sent = True
    p.expect_close(1000)


# ==========================================================================
# masking and lengths

@case(login=BOTH)
def m_unmasked_text_frame_1002(p):
    # RFC 6455 5.1: a server closes on an unmasked client frame
    if not p.logged_in:  # the login itself, unmasked
        closed_with(p, frame(TEXT, json.dumps(
            {"type": "login", "token": p.token}).encode(), mask=False),
            1002)
        return
    closed_with(p, frame(TEXT, chat("unmasked"), mask=False), 1002)


@case()
def m_unmasked_ping_1002(p):
    closed_with(p, frame(PING, b"bare", mask=False), 1002)


def announce(n, first=b'{"type":"chat","message":"'):
    """A text frame header announcing n bytes (with its mask key), and
    the first bytes of its payload, masked."""
    key = os.urandom(4)
    return frame(TEXT, length=n, key=key), bytes(
        b ^ key[i % 4] for i, b in enumerate(first))


# The client is inside the frame when the server refuses it: its answering
# close would be read as payload, so the server must not wait for it (its
# close deadline is 3 s).
INSIDE_FRAME_HANGUP = 1.5


@variants("z_frame_announcing_more_than_the_limit_1009", [
    ("2_32", 1 << 32), ("2_62", 1 << 62), ("limit_plus_1", MAX_MESSAGE + 1),
    ("2_63_minus_1", (1 << 63) - 1)], login=BOTH)
def _announce(p, n):
    p.send(b"".join(announce(n)))
    p.expect_close(1009, within=INSIDE_FRAME_HANGUP)


@case(login=(False,))
def z_login_over_the_login_limit_1009(p):
    p.send(b"".join(announce(MAX_LOGIN + 1, b'{"type":"login"')))
    p.expect_close(1009, within=INSIDE_FRAME_HANGUP)


@variants("z_frame_header_alone_1009", [
    ("2_62", 1 << 62), ("limit_plus_1", MAX_MESSAGE + 1)], login=BOTH)
def _header_alone(p, n):
    # refused on the header: not a byte of the payload is sent
    head, _ = announce(n)
    p.send(head)
    p.expect_close(1009, within=INSIDE_FRAME_HANGUP)


@case()
def z_length_with_the_top_bit_set_1002(p):
    p.send(struct.pack("!BBQ", 0x81, 0xFF, 1 << 63) + os.urandom(4) + b"x")
    p.expect_close(1002, within=INSIDE_FRAME_HANGUP)


@case()
def z_fragments_adding_up_over_the_limit_1009(p):
    half = b"a" * (MAX_MESSAGE // 2 + 1)
    closed_with(p, frame(TEXT, half, fin=False) + frame(CONT, half), 1009)


@case()
def z_endless_empty_continuations_then_too_much_1009(p):
    p.send(frame(TEXT, b"[", fin=False) +
           b"".join(frame(CONT, b"", fin=False) for _ in range(200)) +
           frame(CONT, b"a" * MAX_MESSAGE))
    p.expect_close(1009)


# ==========================================================================
# how the server reads: pieces, many messages, headers cut anywhere

def dribble(p, data, cuts):
    """Send data in pieces cut at cuts, nothing coming back between them
    (a bounded read that also lets the server read each piece alone)."""
    edges = [0] + list(cuts) + [len(data)]
    for a, b in zip(edges, edges[1:]):
        p.send(data[a:b])
        if b < len(data):
            p.expect_silence(0.02)


@variants("r_header_cut_at_every_byte", [("7bit", 100), ("16bit", 300),
                                          ("64bit", MAX_MESSAGE)])
def _header_cut(p, n):
    text = "h" * (n - len(chat("")))
    data = frame(TEXT, chat(text))
    hlen = len(data) - n
    dribble(p, data, range(1, hlen + 1))
    p.expect_echo(text)


@case()
def r_message_over_many_reads(p):
    text = "€" * 20000  # 60,000 bytes in 40 pieces, cutting characters
    data = frame(TEXT, chat(text))
    dribble(p, data, range(1500, len(data), 1500))
    p.expect_echo(text)


@case()
def r_fragments_over_many_reads_with_pings(p):
    data = chat("x" * 30000)
    parts = [frame(TEXT if i == 0 else CONT, data[a:a + 3000],
                   fin=a + 3000 >= len(data))
             for i, a in enumerate(range(0, len(data), 3000))]
    for i, part in enumerate(parts):
        dribble(p, part, [len(part) // 2])
        if i < len(parts) - 1:  # answered at once, inside the message
            p.send_frame(PING, b"%d" % i)
            p.expect_pong(b"%d" % i)
    p.expect_echo("x" * 30000)


@case()
def r_forty_messages_in_one_write(p):
    # within the default burst of the rate limit (50)
    p.send(b"".join(frame(TEXT, chat("m%d" % i)) for i in range(40)))
    for i in range(40):
        p.expect_echo("m%d" % i)


@case(login=BOTH)
def r_control_frame_cut_by_reads(p):
    data = frame(PING, b"p" * 125)
    dribble(p, data, [1, 2, 6, 50, 100])
    p.expect_pong(b"p" * 125)


@variants("u_frames_pipelined_behind_the_upgrade_1002", [
    ("login_and_chat", True), ("half_a_header", False)], login=(False,))
def _pipelined(p, whole):
    # RFC 6455 4.1 forbids it. libwebsockets has read these bytes with the
    # upgrade request and would parse them later; the server finds them
    # there at the end of the upgrade's round (lib/core/read.c) and closes
    # with 1002: nothing of them is delivered.
    login = frame(TEXT, json.dumps({"type": "login",
                                    "token": p.token}).encode())
    early = login + frame(TEXT, chat("early")) if whole else login[:1]
    q = Peer(p.url, early=early)
    try:
        q.close_sent = True  # inside a frame: our close would be payload
        q.expect_close(1002, within=INSIDE_FRAME_HANGUP)
    finally:
        q.close()


if __name__ == "__main__":
    sys.exit(base.main(CASES, Frames, __doc__))
