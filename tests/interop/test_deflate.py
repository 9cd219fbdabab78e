#!/usr/bin/python3
"""permessage-deflate (RFC 7692) in echo-chat --permessage-deflate.

Debian's python3-websockets, which offers the extension by default,
negotiates it, logs in and has its messages echoed; the size limits count
inflated bytes; a decompression bomb is closed with 1009 while the server's
peak memory stays put; without the option nothing is negotiated. Raw cases
use the hand-made client of test_frames.py with an offer of the extension.

    /usr/bin/python3 tests/interop/test_deflate.py \\
        --echo-chat build/examples/echo-chat/echo-chat \\
        --wsa-token build/examples/wsa-token/wsa-token

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
"""

import asyncio
import contextlib
import json
import os
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without its packages)
import test_frames as tf  # noqa: E402

from test_echo_chat import SECRET, check  # noqa: E402

import websockets  # noqa: E402

MAX_MESSAGE = tf.MAX_MESSAGE
MAX_LOGIN = tf.MAX_LOGIN
OFFER = b"permessage-deflate; client_max_window_bits"
BOMB_SIZE = 100 << 20  # inflated; about 100 KiB on the wire
# How much the server's peak resident memory may grow while it refuses a
# bomb: its buffers are a few KiB, the bomb a hundred MiB.
HWM_SLACK = 8 << 20


class Deflate(base.Context):
    """echo-chat with --permessage-deflate ("default"), and without it
    ("plain"); default limits."""

    def server_args(self, kind):
        if kind == "default":
            return ["--jwt-secret", SECRET, "--permessage-deflate"]
        if kind == "plain":
            return ["--jwt-secret", SECRET]
        raise KeyError(kind)

    _token = None

    @property
    def token(self):
        if self._token is None:
            self._token = self.wsa_token_cli(
                "--secret", SECRET, "--uid", "deflate", "--ttl", "3600")
        return self._token


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def deflate(chunks):
    """One message's payload as a permessage-deflate sender makes it: raw
    deflate, flushed, without the final 00 00 ff ff."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = b"".join(c.compress(x) for x in chunks) + c.flush(zlib.Z_SYNC_FLUSH)
    check(out.endswith(b"\x00\x00\xff\xff"), "no sync flush marker")
    return out[:-4]


_BOMB = []


def bomb():
    """A chat message inflating to BOMB_SIZE bytes (made once)."""
    if not _BOMB:
        head = b'{"type":"chat","message":"'
        _BOMB.append(deflate([head] + [b"a" * (1 << 20)] *
                             (BOMB_SIZE >> 20)))
    return _BOMB[0]


def vm_hwm(pid):
    """The process's peak resident memory, bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def served(t, srv):
    """A new client negotiates, logs in and gets its echo."""
    with logged_in(t, srv) as p:
        p.send(tf.frame(tf.TEXT, deflate([tf.chat("still there?")]), rsv=4))
        p.expect_echo("still there?")
        p.send_close(1000)
        p.expect_close(1000)


async def login(ws, token):
    await ws.send(json.dumps({"type": "login", "token": token}))
    got = json.loads(await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT))
    check(got == tf.AUTH_OK, "login answered %r" % got)


async def echoed(ws, text):
    await ws.send(json.dumps({"type": "chat", "message": text}))
    got = json.loads(await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT))
    check(got.get("message") == "Echo: " + text,
          "expected the echo of %r, got %r" % (text[:40], str(got)[:200]))


def connect(url):
    # The client's own limit above ours: the server's answers are checked.
    return websockets.connect(url, max_size=4 * MAX_MESSAGE,
                              open_timeout=base.NET_TIMEOUT)


# ==========================================================================
# clients we did not write

@case
async def websockets_negotiates_logs_in_and_is_echoed(t):
    async with connect(t.url()) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        check(ext.startswith("permessage-deflate"),
              "extension not negotiated: %r" % ext)
        await login(ws, t.token)
        # Several, one larger than lws' 1 KiB chunks both ways (the answer
        # goes out in fragments), and several in flight at once.
        for text in ["Hello!", "x" * 20000, "héllo wörld", ""]:
            await echoed(ws, text)
        texts = ["m%d %s" % (i, "chat " * i) for i in range(30)]
        for text in texts:
            await ws.send(json.dumps({"type": "chat", "message": text}))
        for text in texts:
            got = json.loads(await asyncio.wait_for(ws.recv(),
                                                    base.NET_TIMEOUT))
            check(got.get("message") == "Echo: " + text,
                  "out of order or lost: %r" % str(got)[:100])
        await ws.send(json.dumps({"type": "ping"}))
        got = json.loads(await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT))
        check(got == {"type": "pong"}, "expected pong, got %r" % got)
        # WebSocket-level ping and pong through the extension.
        pong = await ws.ping(b"deflate")
        await asyncio.wait_for(pong, base.NET_TIMEOUT)


def padded(n, kind="chat", field="message"):
    """A message of exactly n bytes."""
    head = '{"type":"%s","%s":"' % (kind, field)
    return head + "a" * (n - len(head) - 2) + '"}'


@case
async def websockets_message_at_the_limit_accepted_one_over_1009(t):
    async with connect(t.url()) as ws:
        await login(ws, t.token)
        text = padded(MAX_MESSAGE)
        check(len(text) == MAX_MESSAGE, "bad padding")
        await ws.send(text)
        got = json.loads(await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT))
        check(got.get("type") == "chat" and
              len(got.get("message", "")) == len("Echo: ") + MAX_MESSAGE -
              len('{"type":"chat","message":""}'),
              "the message at the limit was not echoed: %r" % str(got)[:80])
        await ws.send(padded(MAX_MESSAGE + 1))
        try:
            await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT)
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1009,
                  "closed with %r, not 1009" % (e.rcvd,))
        else:
            raise base.Failure("a message over the limit was answered")


@case
async def websockets_login_over_the_login_limit_1009(t):
    async with connect(t.url()) as ws:
        await ws.send(padded(MAX_LOGIN + 1, "login", "token"))
        try:
            await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT)
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1009,
                  "closed with %r, not 1009" % (e.rcvd,))
        else:
            raise base.Failure("a login over its limit was answered")


@case
async def websockets_without_the_option_not_negotiated(t):
    async with connect(t.url("plain")) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        check(ext is None, "negotiated without --permessage-deflate: %r"
              % ext)
        await login(ws, t.token)
        await echoed(ws, "plain")


# ==========================================================================
# raw frames

def raw_case(kind="default"):
    def wrap(fn):
        async def run(t):
            srv = t.server(kind)
            await asyncio.to_thread(fn, t, srv)
            await asyncio.to_thread(served, t, t.server())
            check(srv.alive(), "echo-chat died (exit %r)"
                  % srv.proc.returncode)
        run.__name__ = fn.__name__
        CASES.append(run)
        return fn
    return wrap


@contextlib.contextmanager
def logged_in(t, srv, offer=OFFER):
    """A raw peer that offered the extensions offer (None: none), logged
    in; closed after."""
    p = tf.Peer(srv.url, offer)
    try:
        p.login(t.token)
        yield p
    finally:
        p.close()


def bomb_refused(t, srv, logged_in):
    data = tf.frame(tf.TEXT, bomb(), rsv=4)
    p = tf.Peer(srv.url, OFFER)
    try:
        check(p.inflater is not None, "not negotiated: %r" % p.extensions)
        if logged_in:
            p.login(t.token)
        before = vm_hwm(srv.proc.pid)
        # Sent aside: the server stops reading once it has refused it.
        sender = threading.Thread(target=p.send, args=(data,), daemon=True)
        sender.start()
        p.expect_close(1009)
        grew = vm_hwm(srv.proc.pid) - before
        check(grew < HWM_SLACK, "the server's peak memory grew by %d KiB "
              "for a bomb of %d bytes (%d on the wire)"
              % (grew >> 10, BOMB_SIZE, len(data)))
    finally:
        p.close()


@raw_case()
def raw_bomb_after_login_1009_memory_bounded(t, srv):
    bomb_refused(t, srv, True)


@raw_case()
def raw_bomb_before_login_1009_memory_bounded(t, srv):
    bomb_refused(t, srv, False)


@raw_case()
def raw_compressed_fragments_over_the_limit_1009(t, srv):
    # Each fragment small on the wire and within the limit once inflated;
    # together over it.
    with logged_in(t, srv) as p:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        half = b"a" * (MAX_MESSAGE // 2 + 1)
        first = c.compress(tf.chat("")[:-2] + half) + \
            c.flush(zlib.Z_SYNC_FLUSH)
        last = c.compress(half + b'"}') + c.flush(zlib.Z_SYNC_FLUSH)
        p.send(tf.frame(tf.TEXT, first, rsv=4, fin=False) +
               tf.frame(tf.CONT, last[:-4]))
        p.expect_close(1009)


@raw_case()
def raw_uncompressed_message_on_a_deflate_connection(t, srv):
    # RSV1 clear: the message is sent as it is, and read so.
    with logged_in(t, srv) as p:
        p.send_frame(tf.TEXT, tf.chat("as it is"))
        p.expect_echo("as it is")


@raw_case()
def raw_rsv1_without_the_offer_1002(t, srv):
    # The client did not offer the extension: RSV1 is refused as ever.
    with logged_in(t, srv, None) as p:
        check(p.extensions is None, "negotiated without an offer")
        p.send(tf.frame(tf.TEXT, deflate([tf.chat("x")]), rsv=4))
        p.expect_close(1002, acked=False)


# Where libwebsockets still reads the frames (TLS, permessage-deflate
# enabled on the server, a host's loop), its deviations from RFC 6455
# stand (SECURITY.md, "RFC 6455 at the frame level"); the plain server of
# test_frames.py answers as the RFC asks. Each is asserted here, on a
# connection of the deflate server without the extension, so that a
# change of libwebsockets shows.

@raw_case()
def raw_lws_decides_unmasked_frame_taken_as_masked(t, srv):
    with logged_in(t, srv, None) as p:
        p.send_frame(tf.TEXT, tf.chat("unmasked"), mask=False)
        p.expect_echo("unmasked")


@raw_case()
def raw_lws_decides_ping_of_126_bytes_hang_up(t, srv):
    with logged_in(t, srv, None) as p:
        p.send_frame(tf.PING, b"*" * 126)
        p.expect_hangup()


@raw_case()
def raw_lws_decides_ten_pings_in_one_write_one_pong(t, srv):
    with logged_in(t, srv, None) as p:
        p.send(b"".join(tf.frame(tf.PING, b"ping %d" % i)
                        for i in range(10)) +
               tf.frame(tf.TEXT, tf.chat("after pings")))
        p.expect_pong(b"ping 0")
        p.expect_echo("after pings")


@raw_case()
def raw_lws_decides_close_1012_answered_1002(t, srv):
    with logged_in(t, srv, None) as p:
        p.send_close(1012)
        p.expect_close(1002)


@raw_case()
def raw_lws_decides_length_with_the_top_bit_set_hang_up(t, srv):
    with logged_in(t, srv, None) as p:
        p.send(tf.struct.pack("!BBQ", 0x81, 0xFF, 1 << 63) +
               os.urandom(4) + b"x")
        p.expect_hangup()


@raw_case()
def raw_lws_decides_header_alone_unanswered_until_a_byte(t, srv):
    with logged_in(t, srv, None) as p:
        head, body = tf.announce(1 << 62)
        p.send(head)
        p.expect_silence(0.5)
        p.send(body[:1])
        p.expect_close(1009, within=tf.INSIDE_FRAME_HANGUP)


@raw_case()
def raw_rsv1_on_a_ping_answered(t, srv):
    # [lws decides] RFC 7692 reserves RSV1 for data frames, but
    # libwebsockets 4.1.6 takes it on a control frame of a connection that
    # negotiated the extension: the ping is answered.
    with logged_in(t, srv) as p:
        p.send(tf.frame(tf.PING, b"x", rsv=4))
        p.expect_pong(b"x")


@raw_case()
def raw_invalid_deflate_data_hang_up(t, srv):
    # [lws decides] zlib's error inside libwebsockets 4.1.6 drops the
    # connection without a close frame; the server goes on.
    with logged_in(t, srv) as p:
        p.send(tf.frame(tf.TEXT, b"\xff" * 64, rsv=4))
        p.expect_hangup("after invalid deflate data")


@raw_case()
def raw_server_frames_are_compressed_and_fragmented(t, srv):
    # An echo larger than lws' 1 KiB output chunk comes in fragments, RSV1
    # on the first only; a message behind it is not inside it.
    with logged_in(t, srv) as p:
        big = os.urandom(3000).hex()
        p.send(tf.frame(tf.TEXT, deflate([tf.chat(big)]), rsv=4) +
               tf.frame(tf.TEXT, deflate([tf.chat("after")]), rsv=4))
        p.expect_echo(big)
        p.expect_echo("after")


if __name__ == "__main__":
    sys.exit(base.main(CASES, Deflate, __doc__))
