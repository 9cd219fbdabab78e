#!/usr/bin/python3
"""Black-box interoperability tests of chat-room nodes that share Redis.

Several chat-room processes started with --redis (the broker of
wsa_server_use_redis(), include/wsa.h) must serve clients spread over them
as one chat-room serves its own: /work/shared/PROTOCOL.md section 6, with
presence decided for the whole cluster.  Each case starts its own
redis-server processes (on loopback ports this process keeps reserved, so
that nothing else takes them while Redis is down) and its own chat-room
nodes, with default limits, and stops them all at its end; a node must then
exit 0 on SIGTERM.  The peer side is Debian's python3-websockets and PyJWT
(the plumbing of test_echo_chat.py and the helpers of test_chat_room.py);
Redis is read with a few lines of RESP written here.

Run with the Debian interpreter:

    /usr/bin/python3 tests/interop/test_redis.py \
        --chat-room build/examples/chat-room/chat-room \
        --redis-server /usr/bin/redis-server

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
The binaries may also be given as the environment variables WSA_CHAT_ROOM
and WSA_REDIS_SERVER.  Output: one "PASS name" / "FAIL name" line per case,
then a last line "N passed, N failed"; the exit status is non-zero on any
failure.  Without redis-server the suite fails: it is never skipped.

Nothing is waited for with a sleep.  To show that something does NOT arrive
across nodes, a case sends a chat from the node where the unwanted message
would have been published, after the event that could have caused it: the
node publishes in order per room, so the unwanted message would come first
(a barrier).  Where an event is decided after a round trip to Redis (a join
or a leave), the barrier is a join of a newcomer on that node, which goes
through Redis after it.  States (a subscription dropped, Redis back) are
probed with bounded deadlines; sends keep to the default rate limit (pacing).
A node hands its publishes to a thread of its own: the presence event of a
join may still be on its way to Redis when the join is answered, and a node
that subscribes to the room meanwhile would get it.  Before a join on
another node, the cases wait until Redis has seen that event (a client of
Redis subscribed to the rooms' channels); one case, with a slow node, tests
that a later joiner is not told of an earlier join.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without the packages)

from test_echo_chat import (  # noqa: E402
    Failure, StartupFailed, check, claims, expect, expect_close, hs, js,
    recv_json, send)
from test_chat_room import (  # noqa: E402
    chat, disconnect, expect_copy, hchat, hchat_ok, hjoin, join, join_during,
    leave, presence, publish_many, quiet, typing, typing_msg)
from websockets.exceptions import ConnectionClosed  # noqa: E402

SECRET = base.SECRET
NET_TIMEOUT = base.NET_TIMEOUT
# Under WSA_SERVER_WRAPPER (valgrind) the nodes run several times slower.
SLOW = 3.0 if base.WRAPPER else 1.0
CASE_TIMEOUT = 45.0 * SLOW
REAP_TIMEOUT = 15.0 * SLOW  # a SIGKILLed node's users leave (about 7 s)
STOP_TIMEOUT = 3.0 * SLOW  # a node stopped with SIGTERM: its users leave
LOG_TIMEOUT = 10.0 * SLOW  # a node logs that Redis went away, or came back
RECOVERY_TIMEOUT = 20.0 * SLOW  # chats cross nodes again once Redis is back
STATE_TIMEOUT = 5.0 * SLOW  # a node subscribes to or drops a room's channel
POLL = 0.05  # between two looks at a state (a probe, not a delay)
PROBE_WAIT = 0.3  # how long one probe chat is given to cross
OUTAGE = 2.0  # least length of an outage: several reconnects fail in it
# chat-room's default rate limit is a burst of 50 messages, then 20 a
# second (GCRA, from the login on): a connection keeps to a stricter one of
# its own, a burst of 30, then one every 55 ms.
RATE_BURST = 30
RATE_GAP = 0.055


# --------------------------------------------------------------------------
# ports and processes

def reserve_port():
    """A loopback port bound (SO_REUSEADDR, not listening) by this process:
    a connection to it is refused, no other socket is given it, and
    redis-server (which sets SO_REUSEADDR) can still listen on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def redis_url(port):
    return "redis://127.0.0.1:%d" % port


ALL_REDIS = []  # every redis-server started, for the final cleanup
# setpriv (util-linux) makes a child die with this process, however this
# process dies.
SETPRIV = shutil.which("setpriv")
DIE_WITH_US = [SETPRIV, "--pdeathsig", "KILL"] if SETPRIV else []


class Redis:
    """One redis-server on 127.0.0.1:port, no persistence, its log kept."""

    def __init__(self, binary, workdir, port, name):
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.name = name
        self.proc = None
        self.log = []

    def start(self):
        ALL_REDIS.append(self)
        self.proc = subprocess.Popen(
            DIE_WITH_US + [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.workdir],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        ready = queue.Queue()

        def drain():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.log.append(line)
                if "Ready to accept connections" in line:
                    ready.put(True)
            ready.put(False)

        threading.Thread(target=drain, daemon=True).start()
        try:
            ok = ready.get(timeout=base.STARTUP_TIMEOUT)
        except queue.Empty:
            ok = None
        if not ok:
            self.kill()
            raise StartupFailed(
                "redis-server on port %d: %s" % (
                    self.port, "not ready within %.0f s"
                    % base.STARTUP_TIMEOUT if ok is None else
                    "exited (status %r)" % self.proc.returncode),
                self.proc.returncode, "\n".join(self.log))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM and wait (bounded); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


# --------------------------------------------------------------------------
# Redis, read over RESP

def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else bytes(a)
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


async def resp_reply(reader):
    line = await reader.readline()
    check(line.endswith(b"\r\n"), "redis: connection closed in a reply")
    kind, rest = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise Failure("redis answered an error: %s" % rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [await resp_reply(reader)
                                   for _ in range(n)]
    raise Failure("redis: unexpected reply %r" % line[:80])


async def redis_call(port, *args):
    """One command on a connection of its own; its reply."""
    async def call():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(resp_command(*args))
            await writer.drain()
            return await resp_reply(reader)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    what = "redis on port %d: %s" % (port, " ".join(args))
    try:
        return await asyncio.wait_for(call(), NET_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure("%s: no answer within %.0f s" % (what, NET_TIMEOUT))
    except (OSError, asyncio.IncompleteReadError) as e:
        raise Failure("%s: %r" % (what, e))


async def numsub(port, channel):
    """How many Redis clients are subscribed to the channel."""
    got = await redis_call(port, "PUBSUB", "NUMSUB", channel)
    check(isinstance(got, list) and len(got) == 2, "PUBSUB NUMSUB %s: %r"
          % (channel, got))
    return int(got[1])


async def channels(port, pattern="*"):
    return set(await redis_call(port, "PUBSUB", "CHANNELS", pattern))


async def until(probe, timeout, what):
    """Look at a state (probe: a coroutine function returning (done,
    state)) every POLL s until done, for at most timeout s; returns the
    state. A probe, not a delay."""
    deadline = time.monotonic() + timeout
    while True:
        done, state = await probe()
        if done:
            return state
        if time.monotonic() >= deadline:
            raise Failure("%s: not within %.1f s (last seen: %s)"
                          % (what, timeout, state))
        await asyncio.sleep(POLL)


async def numsub_until(port, channel, pred, what):
    async def probe():
        n = await numsub(port, channel)
        return pred(n), n
    return await until(probe, STATE_TIMEOUT, "PUBSUB NUMSUB %s: %s"
                       % (channel, what))


class Spy:
    """A client of one Redis subscribed to the pattern *:t:* (which PUBSUB
    NUMSUB and CHANNELS do not count): what the nodes publish to rooms,
    seen from Redis."""

    def __init__(self, port, news):
        self.port = port
        self.news = news  # set at each message
        self.seen = []  # (channel, payload)
        self.task = self.writer = None

    async def start(self):
        reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port), NET_TIMEOUT)
        self.writer.write(resp_command("PSUBSCRIBE", "*:t:*"))
        got = await asyncio.wait_for(resp_reply(reader), NET_TIMEOUT)
        check(isinstance(got, list) and got[:1] == ["psubscribe"],
              "redis on port %d: PSUBSCRIBE answered %r" % (self.port, got))
        self.task = asyncio.ensure_future(self.run(reader))
        return self

    async def run(self, reader):
        with contextlib.suppress(Failure, OSError, EOFError):
            while True:
                m = await resp_reply(reader)
                if isinstance(m, list) and len(m) == 4 and \
                        m[0] == "pmessage":
                    self.seen.append((m[2], m[3]))
                    self.news.set()

    def has(self, channel, needles):
        return any(ch == channel and all(n in text for n in needles)
                   for ch, text in self.seen)

    def close(self):
        if self.task:
            self.task.cancel()
        if self.writer:
            self.writer.close()


async def announced(spies, news, room, uid, event, prefix="wsa"):
    """Wait (bounded) until a node has published to Redis the presence
    event of uid in room: from then on, a node that subscribes to the room
    does not get it. The node hands a publish to its Redis thread and goes
    on: a join answered is not yet a presence published."""
    channel = "%s:t:%s" % (prefix, room)
    needles = ('"presence"', js(uid), '"%s"' % event)
    deadline = time.monotonic() + STATE_TIMEOUT
    while not any(spy.has(channel, needles) for spy in spies):
        left = deadline - time.monotonic()
        check(left > 0, "no presence %s of %s published on %s within %.0f "
              "s" % (event, uid, channel, STATE_TIMEOUT))
        news.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(news.wait(), left)


class LatencyProxy:
    """A TCP relay to a Redis port that holds what its clients send for
    `delay` s (a distant or busy Redis); what Redis sends goes back at
    once. The holding is the point of it, not a synchronisation."""

    def __init__(self, target, delay):
        self.target = target
        self.delay = delay
        self.server = None
        self.port = None
        self.tasks = []
        self.writers = []

    async def start(self):
        self.server = await asyncio.start_server(self.relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def relay(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                             self.target)
        self.writers += [writer, up_writer]
        held = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def take():
            while True:
                data = await reader.read(65536)
                held.put_nowait((loop.time() + self.delay, data))
                if not data:
                    return

        async def give():
            while True:
                when, data = await held.get()
                await asyncio.sleep(max(0.0, when - loop.time()))
                if not data:
                    up_writer.close()
                    return
                up_writer.write(data)
                await up_writer.drain()

        async def back():
            while True:
                data = await up_reader.read(65536)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        for fn in (take, give, back):
            self.tasks.append(asyncio.ensure_future(fn()))

    def close(self):
        self.server.close()
        for task in self.tasks:
            task.cancel()
        for w in self.writers:
            w.close()


# --------------------------------------------------------------------------
# the nodes' logs

def unreachable_re(port):
    return re.compile(r"redis 127\.0\.0\.1:%d: unreachable \(.*\); serving "
                      r"this node's connections alone" % port)


def connected_re(port):
    return re.compile(r"redis 127\.0\.0\.1:%d: connected\b" % port)


def log_hits(node, rx):
    """Indexes of the node's stderr lines that match rx."""
    return [i for i, ln in enumerate(node.stderr_text().splitlines())
            if rx.search(ln)]


async def wait_log(node, rx, after=-1):
    """The index of the first line of node's stderr past `after` that
    matches rx, waited for (bounded)."""
    async def probe():
        hits = [i for i in log_hits(node, rx) if i > after]
        return bool(hits), hits[0] if hits else "no such line"
    return await until(probe, LOG_TIMEOUT, "%s stderr: a line matching %r"
                       % (node.name, rx.pattern))


def check_logged_once(node, rx):
    hits = log_hits(node, rx)
    lines = node.stderr_text().splitlines()
    check(len(hits) == 1, "%s stderr: %d lines match %r (one per outage "
          "expected):\n%s" % (node.name, len(hits), rx.pattern, "\n".join(
              "    | " + lines[i] for i in hits[:10])))
    return hits[0]


async def outage_lasts(since):
    """Keep Redis away for OUTAGE s since `since`, so that several of the
    nodes' reconnects fail in it (a length, not a synchronisation)."""
    delay = since + OUTAGE - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# --------------------------------------------------------------------------
# per-case context: Redis instances, nodes and clients, all stopped at the
# end of the case

_serial = itertools.count(1)


class Pacer:
    """Every send of a connection keeps to chat-room's default rate limit,
    counted from the login: pacing, not synchronisation."""

    def __init__(self, ws):
        self.inner = ws.send
        self.tat = 0.0
        ws.send = self.send

    def logged_in(self):
        self.tat = 0.0  # a whole burst again, as the server's at login

    async def send(self, message):
        now = time.monotonic()
        self.tat = max(self.tat, now) + RATE_GAP
        delay = self.tat - now - RATE_GAP * RATE_BURST
        if delay > 0:
            await asyncio.sleep(delay)
        await self.inner(message)


class Cluster:
    def __init__(self, ctx):
        self.ctx = ctx
        self.tag = "c%d" % next(_serial)
        self.reserved = []
        self.redises = []
        self.spies = []
        self.news = asyncio.Event()
        self.proxies = []
        self.nodes = []
        self.conns = []
        self.notes = []

    def uid(self, name):
        return "%s@%s" % (name, self.tag)

    def room(self, name):
        return "%s#%s" % (name, self.tag)

    def note(self, text):
        """Said after the case's PASS/FAIL line with -v (timings)."""
        self.notes.append(text)

    def port(self):
        """A port of our own, for a Redis started now or later."""
        s = reserve_port()
        self.reserved.append(s)
        return s.getsockname()[1]

    async def redis(self, port=None):
        """A redis-server (on port, e.g. again after a stop), answering."""
        if port is None:
            port = self.port()
        red = Redis(self.ctx.redis_server, self.ctx.workdir, port,
                    "redis:%d" % port)
        self.redises.append(red)
        red.start()
        got = await redis_call(port, "PING")
        check(got == "PONG", "redis on port %d: PING answered %r"
              % (port, got))
        self.spies.append(await Spy(port, self.news).start())
        return red

    async def announced(self, room, uid, event, prefix="wsa"):
        await announced(self.spies, self.news, room, uid, event, prefix)

    async def latency_proxy(self, red, delay):
        proxy = await LatencyProxy(red.port, delay).start()
        self.proxies.append(proxy)
        return proxy

    async def node(self, shards, prefix=None, connected=True, history=0):
        """A chat-room node; shards: Redis instances or ports, in order.
        With connected, once it has logged that it is connected to each:
        before that, a join is answered with this node's users alone and
        registered in Redis when the connection comes (as after an
        outage, which the recovery cases test)."""
        args = ["--jwt-secret", SECRET]
        ports = [getattr(s, "port", s) for s in shards]
        for port in ports:
            args += ["--redis", redis_url(port)]
        if prefix is not None:
            args += ["--redis-prefix", prefix]
        if history:
            args += ["--history", str(history)]
        name = "node%d" % (len(self.nodes) + 1)
        srv = base.Server(self.ctx.chat_room, args, name=name)
        self.nodes.append(srv)
        srv.start()
        for port in ports if connected else ():
            await wait_log(srv, connected_re(port))
        return srv

    async def node_list(self, k, shards, prefix=None):
        return [await self.node(shards, prefix) for _ in range(k)]

    async def conn(self, node, uid):
        """A new client of node, logged in as uid."""
        ws = await base.connect(node.url)
        self.conns.append(ws)
        ws.uid = uid
        ws.node = node
        pacer = Pacer(ws)
        await base.login(ws, hs(claims(uid=uid)))
        pacer.logged_in()
        return ws

    async def newcomer(self, node, room, users, members):
        """A new user joins room on node; its joined lists users and
        itself; the next message of every other member is its presence
        join. Its join goes through Redis after anything the node sent
        there before: a barrier for presence decided on that node."""
        ws = await self.conn(node, self.uid("new%d" % len(self.conns)))
        await join(ws, room, users + [ws.uid])
        for m in members:
            await expect(m, presence(room, ws.uid, "join"))
        users.append(ws.uid)
        return ws

    async def close_all(self):
        async def close(ws):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), NET_TIMEOUT)
        await asyncio.gather(*(close(ws) for ws in self.conns))
        self.conns = []

    async def stop_nodes(self):
        """SIGTERM every node still running; each must exit 0."""
        live = [n for n in self.nodes if n.alive()]
        rcs = await asyncio.gather(*(asyncio.to_thread(n.stop)
                                     for n in live))
        bad = ["%s exit status %r after SIGTERM (None: killed, still "
               "running after 5 s)" % (n.name, rc)
               for n, rc in zip(live, rcs) if rc != 0]
        check(not bad, "; ".join(bad))

    def logs(self):
        out = []
        for n in self.nodes:
            if n.errfile is None:
                continue
            out.append("chat-room %s [%s] stderr (last lines):"
                       % (n.name, " ".join(n.args[2:])))
            out.append(stderr_tail(n))
        for r in self.redises:
            out.append("redis-server %s log (last lines):" % r.name)
            out.extend("    | " + ln for ln in [
                ln for ln in r.log if "overcommit" not in ln][-6:])
        return "\n".join(out)

    def cleanup(self):
        for n in self.nodes:
            n.kill()
        for x in self.spies + self.proxies:
            x.close()
        for r in self.redises:
            r.kill()
        for s in self.reserved:
            s.close()


# --------------------------------------------------------------------------
# protocol helpers

async def barrier(sender, room, receivers, text="barrier"):
    """sender chats in room: its own copy, then the next message of every
    receiver, must be that chat (anything its node had published to the
    room before would have come first)."""
    copy = await chat(sender, room, text)
    for ws in receivers:
        await expect_copy(ws, copy)
    return copy


async def all_of(*coros):
    """Run coroutines together; the first failure cancels the others."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def send_chats(ws, room, texts):
    for m in texts:
        await send(ws, {"type": "chat", "room": room, "message": m})


async def recv_n(ws, n, what, texts=()):
    """n messages; when one does not come, the failure says which came
    last, whether the rest came later (late or lost), and which of the
    chats of texts are missing."""
    got = []
    try:
        for i in range(n):
            got.append(await recv_json(ws, what="%s (%d of %d)"
                                       % (what, i + 1, n)))
            check(got[-1].get("type") != "error", "%s: got %s after %d "
                  "messages (the last: %s)" % (what, js(got[-1]), i,
                                               js(got[-2]) if i else None))
    except Failure as e:
        t0 = time.monotonic()
        late = []
        while len(got) + len(late) < n:
            m = await recv_next(ws, 2 * NET_TIMEOUT, what)
            if m is None:
                break
            late.append(m)
        seen = {m.get("message") for m in got + late}
        missing = [x for x in texts if x not in seen]
        errors = [m for m in got + late if m.get("type") != "chat"]
        if errors:
            missing.append("(and %d other messages came: %s)" % (
                len(errors), " ".join(js(m) for m in errors[:3])))
        raise Failure("%s; the last received: %s; in %.1f s more, %d more "
                      "came%s%s" % (e, js(got[-1]) if got else None,
                                    time.monotonic() - t0, len(late),
                                    ": " + " ".join(js(m) for m in late[:5])
                                    if late else "",
                                    "; never came: %s" % " ".join(missing)
                                    if missing else ""))
    return got


def check_chats(got, sender, room, texts, where):
    """got: the chats of one sender, in arrival order, must be texts."""
    for m in got:
        check(set(m) == {"type", "room", "from", "message", "timestamp"} and
              m.get("type") == "chat" and m.get("room") == room and
              m.get("from") == sender.uid,
              "%s: expected chats of %s in %s, got %s"
              % (where, sender.uid, js(room), js(m)))
    texts_got = [m["message"] for m in got]
    if texts_got == texts:
        return
    i = next((i for i, (x, y) in enumerate(zip(texts_got, texts))
              if x != y), min(len(texts_got), len(texts)))
    raise Failure("%s: the chats of %s are not all there in order: %d "
                  "received, %d sent; first difference at #%d: expected "
                  "%r, got %r" % (where, sender.uid, len(texts_got),
                                  len(texts), i, texts[i:i + 1],
                                  texts_got[i:i + 3]))


def split_by_sender(got, senders, where):
    runs = {s.uid: [] for s in senders}
    for m in got:
        check(m.get("from") in runs, "%s: unexpected message %s"
              % (where, js(m)))
        runs[m["from"]].append(m)
    return runs


# Across an outage of Redis, what a node announces about presence when
# Redis comes back is not specified: the recovery helpers below skip the
# room's presence events (noted, and checked at the end against the one
# rule that holds anyway: no connection hears of its own uid coming or
# going), and check every chat.

async def recv_next(ws, timeout, what):
    """The next message, or None when none came within timeout (a
    cancelled recv loses nothing)."""
    try:
        raw = await asyncio.wait_for(ws.recv(), max(0.0, timeout))
    except asyncio.TimeoutError:
        return None
    except ConnectionClosed as e:
        raise Failure("%s: connection closed (code %r) while waiting for %s"
                      % (ws.uid, e.rcvd.code if e.rcvd else None, what))
    try:
        got = json.loads(raw)
    except (TypeError, ValueError):
        raise Failure("%s: expected JSON text, got %r" % (ws.uid, raw[:200]))
    check(isinstance(got, dict), "%s: JSON that is not an object: %r"
          % (ws.uid, raw[:200]))
    return got


async def recv_within(ws, room, timeout, what, until_msg=None):
    """The next message that is not a presence event of room (or is
    until_msg), or None when none came within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = await recv_next(ws, deadline - time.monotonic(), what)
        if got is None or got == until_msg:
            return got
        if got.get("type") == "presence" and got.get("room") == room:
            ws.skipped = getattr(ws, "skipped", []) + [got]
            continue
        return got


async def quiet_after_outage(room, *conns):
    """quiet(), the room's presence events skipped."""
    for ws in conns:
        await send(ws, {"type": "ping"})
        got = await recv_within(ws, room, NET_TIMEOUT, "pong")
        check(got == base.PONG, "%s: expected nothing more (next message "
              "the pong), got %s" % (ws.uid, js(got)))


async def recv_chat(ws, room, sender, text, copy=None):
    """The next message but presence is sender's chat of text (equal to
    copy when given)."""
    got = await recv_within(ws, room, NET_TIMEOUT, "chat %r" % text)
    check(got is not None, "%s: no chat %r from %s within %.0f s"
          % (ws.uid, text, sender.uid, NET_TIMEOUT))
    check_chats([got], sender, room, [text], ws.uid)
    check(copy is None or got == copy, "%s: expected %s, got %s"
          % (ws.uid, js(copy), js(got)))
    return got


async def chat_across(sender, room, text, receivers):
    """A chat that each receiver gets (presence events skipped)."""
    await send(sender, {"type": "chat", "room": room, "message": text})
    copy = await recv_chat(sender, room, sender, text)
    for ws in receivers:
        await recv_chat(ws, room, sender, text, copy)


async def probe_across(sender, room, local, remote):
    """Once Redis is back: chats from sender, one every PROBE_WAIT s, until
    one reaches remote[0] (another node), then a last one. The members on
    sender's node (local) get every chat in order; each remote member gets
    probes only, in order (not the chats sent while Redis was away: at
    most once), then the last one. Returns the seconds it took."""
    t0 = time.monotonic()
    sent, first = [], None
    while first is None:
        check(time.monotonic() - t0 < RECOVERY_TIMEOUT,
              "no chat of %s (%s) reached %s (%s) within %.0f s of Redis "
              "coming back (%d sent)"
              % (sender.uid, sender.node.name, remote[0].uid,
                 remote[0].node.name, RECOVERY_TIMEOUT, len(sent)))
        sent.append("probe-%d" % len(sent))
        await chat_across(sender, room, sent[-1], local)
        first = await recv_within(remote[0], room, PROBE_WAIT, "a probe")
    took = time.monotonic() - t0
    sent.append("probe-end")
    await chat_across(sender, room, sent[-1], local)
    for i, ws in enumerate(remote):
        got = [first] if i == 0 else []
        while not got or got[-1].get("message") != "probe-end":
            m = await recv_within(ws, room, NET_TIMEOUT, "probe-end")
            check(m is not None, "%s: no probe-end within %.0f s (got %s)"
                  % (ws.uid, NET_TIMEOUT, [js(x) for x in got]))
            got.append(m)
        check_chats(got, sender, room, [m.get("message") for m in got],
                    ws.uid)
        idx = [sent.index(m["message"]) if m["message"] in sent else -1
               for m in got]
        check(-1 not in idx and idx == sorted(set(idx)),
              "%s (%s) after Redis came back: expected probes of %s in "
              "order, got %s" % (ws.uid, ws.node.name, sender.uid,
                                 [m["message"] for m in got]))
    return took


async def users_whole_again(t, node, room, users, members):
    """Once Redis is back: a newcomer on node joins room (again every
    PROBE_WAIT s, bounded) until its joined lists users and itself, the
    users of every node; every member then gets its presence join (other
    presence events skipped). Returns the seconds it took."""
    ws = await t.conn(node, t.uid("new%d" % len(t.conns)))
    want = set(users) | {ws.uid}
    t0 = time.monotonic()
    while True:
        await send(ws, {"type": "join", "room": room})
        got = await recv_within(ws, room, NET_TIMEOUT, "joined")
        check(got is not None and got.get("type") == "joined" and
              got.get("room") == room and isinstance(got.get("users"), list),
              "%s: expected joined, got %s" % (ws.uid, js(got)))
        if set(got["users"]) == want and len(got["users"]) == len(want):
            break
        check(time.monotonic() - t0 < RECOVERY_TIMEOUT,
              "%s (%s): joined still lists %s, not %s, after %.0f s of "
              "joins again" % (ws.uid, node.name, js(got["users"]),
                               js(sorted(want)), RECOVERY_TIMEOUT))
        await asyncio.sleep(PROBE_WAIT)
    took = time.monotonic() - t0
    mine = presence(room, ws.uid, "join")
    for m in members:
        got = await recv_within(m, room, NET_TIMEOUT, js(mine), mine)
        check(got == mine, "%s: expected %s, got %s"
              % (m.uid, js(mine), js(got)))
    users.append(ws.uid)
    return ws, took


def check_presence_after_outage(t, conns):
    """Note the presence events skipped since Redis came back; none may
    be about the receiver's own uid (PROTOCOL.md section 6: the others
    hear of a user, never the user itself)."""
    own = []
    for ws in conns:
        skipped = getattr(ws, "skipped", [])
        if skipped:
            t.note("%s got, after the outage: %s"
                   % (ws.uid, " ".join(js(m) for m in skipped)))
        own += ["%s got %s" % (ws.uid, js(m)) for m in skipped
                if m.get("uid") == ws.uid]
    check(not own, "after Redis came back, connections heard of their own "
          "uid: " + "; ".join(own))


# --------------------------------------------------------------------------
# cases

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# -- 1. one room over two nodes ----------------------------------------------

@case
async def two_nodes_join_chat_typing_leave_close(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    await join(b, r, [a.uid, b.uid])  # users on every node
    await expect(a, presence(r, b.uid, "join"))
    copy = await chat(a, r, "hello from node 1")
    await expect_copy(b, copy)
    copy = await chat(b, r, "hello from node 2")
    await expect_copy(a, copy)  # not alice's own chat back from Redis first
    await typing(a, r, True)
    await expect(b, typing_msg(r, a.uid, True))
    await typing(b, r, False)
    # published by node 2 after alice's typing reached it: alice's typing
    # coming back to her would be before it
    await expect(a, typing_msg(r, b.uid, False))
    await barrier(a, r, [b])  # bob's typing did not come back to him
    await quiet(a, b)
    await leave(b, r)
    await expect(a, presence(r, b.uid, "leave"))
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await disconnect(b)
    await expect(a, presence(r, b.uid, "leave"))
    users = [a.uid]
    await t.newcomer(n2, r, users, [a])  # bob is gone from the users
    await quiet(a)


@case
async def later_joiner_not_told_of_an_earlier_join(t):
    # Alice's join is answered before Bob joins on another node: his
    # joined lists her, and he must not hear of her coming as well
    # (presence goes to those already in the room, PROTOCOL.md section 6),
    # however long her node takes to publish it. Node 1 reaches Redis
    # through a relay that holds what it sends for 0.3 s: a busy node or a
    # distant Redis (the other cases wait for each such publication).
    red = await t.redis()
    relay = await t.latency_proxy(red, 0.3)
    n1 = await t.node([relay])
    n2 = await t.node([red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await barrier(a, r, [b])  # not alice's presence first
    await quiet(a, b)


# -- 2. order per sender ------------------------------------------------------

@case
async def order_200_chats_node1_to_node2(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    texts = ["m%03d" % i for i in range(200)]
    _, own, far = await all_of(
        send_chats(a, r, texts), recv_n(a, 200, "alice's own chats", texts),
        recv_n(b, 200, "alice's chats at bob", texts))
    check_chats(own, a, r, texts, "alice (node 1), her own copies")
    check_chats(far, a, r, texts, "bob (node 2)")
    if far != own:
        raise Failure("bob's copies differ from alice's (first: %s vs %s)"
                      % next((js(x), js(y)) for x, y in zip(far, own)
                             if x != y))
    await barrier(b, r, [a])  # none of alice's chats came back to her
    await quiet(a, b)


async def room_on_three_nodes(t, *names):
    """Three nodes on one Redis, a user of names on each, who join room R
    in turn; each hears of those who come after it. Returns the nodes,
    the connections and the room."""
    red = await t.redis()
    nodes = await t.node_list(3, [red])
    conns = [await t.conn(n, t.uid(name)) for n, name in zip(nodes, names)]
    r = t.room("R")
    for i, c in enumerate(conns):
        await join(c, r, [x.uid for x in conns[:i + 1]])
        if i == 0:
            await t.announced(r, c.uid, "join")
        for earlier in conns[:i]:
            await expect(earlier, presence(r, c.uid, "join"))
    return nodes, conns, r


@case
async def order_two_senders_three_nodes(t):
    (n1, n2, n3), (a, c, x), r = await room_on_three_nodes(
        t, "alice", "carol", "xavier")
    ta = ["a%03d" % i for i in range(100)]
    tc = ["c%03d" % i for i in range(100)]
    _, _, at_a, at_c, at_x = await all_of(
        send_chats(a, r, ta), send_chats(c, r, tc),
        recv_n(a, 200, "chats at alice", ta + tc),
        recv_n(c, 200, "chats at carol", ta + tc),
        recv_n(x, 200, "chats at xavier", ta + tc))
    for ws, got in ((a, at_a), (c, at_c), (x, at_x)):
        where = "%s (%s)" % (ws.uid, ws.node.name)
        runs = split_by_sender(got, [a, c], where)
        check_chats(runs[a.uid], a, r, ta, where)
        check_chats(runs[c.uid], c, r, tc, where)
    await barrier(x, r, [a, c])
    await quiet(a, c, x)


# -- 3. one user on two nodes -------------------------------------------------

@case
async def same_uid_two_nodes_presence_once(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    r = t.room("R")
    b = await t.conn(n1, t.uid("bob"))
    c = await t.conn(n2, t.uid("carol"))
    await join(b, r, [b.uid])
    await t.announced(r, b.uid, "join")
    await join(c, r, [b.uid, c.uid])
    await expect(b, presence(r, c.uid, "join"))
    watchers, users = [b, c], [b.uid, c.uid]
    alice = t.uid("alice")

    # first connection joins on node 1; the last one closes on node 2
    a1 = await t.conn(n1, alice)
    await join(a1, r, users + [alice])
    for ws in watchers:
        await expect(ws, presence(r, alice, "join"))
    users.append(alice)
    a2 = await t.conn(n2, alice)
    await join(a2, r, users)  # alice listed once
    watchers.append(await t.newcomer(n2, r, users, watchers + [a1, a2]))
    await barrier(b, r, watchers[1:] + [a1, a2])
    await leave(a1, r)  # alice is still in the room on node 2
    watchers.append(await t.newcomer(n1, r, users, watchers + [a2]))
    await disconnect(a2)  # her last connection anywhere
    for ws in watchers:
        await expect(ws, presence(r, alice, "leave"))
    users.remove(alice)

    # again the other way round: node 2 first, node 1 last
    a3 = await t.conn(n2, alice)
    await join(a3, r, users + [alice])
    for ws in watchers:
        await expect(ws, presence(r, alice, "join"))
    users.append(alice)
    a4 = await t.conn(n1, alice)
    await join(a4, r, users)
    watchers.append(await t.newcomer(n1, r, users, watchers + [a3, a4]))
    await disconnect(a3)
    watchers.append(await t.newcomer(n2, r, users, watchers + [a4]))
    await disconnect(a4)
    for ws in watchers:
        await expect(ws, presence(r, alice, "leave"))
    users.remove(alice)
    await t.newcomer(n1, r, users, watchers)
    await quiet(a1, *watchers)


# -- 4. a node that dies, a node that stops -----------------------------------

@case
async def node_sigkill_its_users_leave(t):
    (n1, n2, n3), (a, b, c), r = await room_on_three_nodes(
        t, "alice", "bob", "carol")
    t0 = time.monotonic()
    n2.kill()  # SIGKILL: nothing said to Redis
    for ws in (a, c):
        left = t0 + REAP_TIMEOUT - time.monotonic()
        await expect(ws, presence(r, b.uid, "leave"), timeout=max(0.1, left))
        t.note("%s got bob's leave %.1f s after SIGKILL"
               % (ws.uid, time.monotonic() - t0))
    # once each: a second leave from either node would come before these
    await barrier(c, r, [a])
    await barrier(a, r, [c])
    await t.newcomer(n1, r, [a.uid, c.uid], [a, c])  # bob not listed


@case
async def node_sigterm_its_users_leave_fast(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    t0 = time.monotonic()
    n2.send_signal(signal.SIGTERM)
    await expect(a, presence(r, b.uid, "leave"), timeout=STOP_TIMEOUT)
    t.note("bob's leave %.1f s after SIGTERM" % (time.monotonic() - t0))
    await expect_close(b, 1001)
    try:
        rc = await asyncio.to_thread(n2.proc.wait, 5)
    except subprocess.TimeoutExpired:
        raise Failure("node2 still running 5 s after SIGTERM")
    check(rc == 0, "node2 exit status %r after SIGTERM" % rc)
    await t.newcomer(n1, r, [a.uid], [a])  # bob not listed
    await quiet(a)


# -- 5. Redis stops and comes back on the same port ---------------------------

@case
async def redis_restarted_lone_nodes_then_across(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n1, t.uid("bob"))
    c = await t.conn(n2, t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await t.announced(r, b.uid, "join")
    await join(c, r, [a.uid, b.uid, c.uid])
    await expect(a, presence(r, c.uid, "join"))
    await expect(b, presence(r, c.uid, "join"))
    copy = await chat(a, r, "before")
    await expect_copy(b, copy)
    await expect_copy(c, copy)

    rc = await asyncio.to_thread(red.stop)
    check(rc == 0, "redis-server exit status %r after SIGTERM" % rc)
    t_down = time.monotonic()
    gone = unreachable_re(red.port)
    for n in (n1, n2):
        await wait_log(n, gone)
    t.note("both nodes logged the outage %.1f s after Redis stopped"
           % (time.monotonic() - t_down))

    # node 1 alone: its members see each other's joins, chats, typing
    d = await t.conn(n1, t.uid("dave"))
    await join(d, r, [a.uid, b.uid, d.uid])  # answered with node 1's users
    await expect(a, presence(r, d.uid, "join"))
    await expect(b, presence(r, d.uid, "join"))
    texts = ["down-%02d" % i for i in range(50)]
    _, own, at_b, at_d = await all_of(
        send_chats(a, r, texts), recv_n(a, 50, "alice's own chats", texts),
        recv_n(b, 50, "alice's chats at bob", texts),
        recv_n(d, 50, "alice's chats at dave", texts))
    check_chats(own, a, r, texts, "alice, Redis away")
    check(at_b == own and at_d == own, "bob's or dave's copies differ "
          "from alice's while Redis is away")
    await typing(b, r, True)
    await expect(a, typing_msg(r, b.uid, True))
    await expect(d, typing_msg(r, b.uid, True))
    await leave(d, r)
    await expect(a, presence(r, d.uid, "leave"))
    await expect(b, presence(r, d.uid, "leave"))
    await quiet(a, b, d)
    # node 2 alone too
    e = await t.conn(n2, t.uid("erin"))
    await join(e, r, [c.uid, e.uid])
    await expect(c, presence(r, e.uid, "join"))
    copy = await chat(e, r, "node 2 alone")
    await expect_copy(c, copy)
    await outage_lasts(t_down)
    down_at = {n.name: check_logged_once(n, gone) for n in (n1, n2)}

    await t.redis(red.port)
    took = await probe_across(a, r, [b], [c, e])
    t.note("node 1 -> node 2 again %.1f s after Redis restarted" % took)
    await probe_across(c, r, [e], [a, b])
    for n in (n1, n2):
        await wait_log(n, connected_re(red.port), after=down_at[n.name])
        check_logged_once(n, gone)
    f, took = await users_whole_again(t, n2, r, [a.uid, b.uid, c.uid, e.uid],
                                      [a, b, c, e])
    t.note("a join on node 2 lists every node's users %.1f s after the "
           "probes" % took)
    await quiet_after_outage(r, a, b, c, e, f)
    check_presence_after_outage(t, (a, b, c, e, f))


# -- 6. Redis absent at start -------------------------------------------------

@case
async def redis_absent_at_start_then_started(t):
    port = t.port()  # nothing listens there yet
    t_down = time.monotonic()
    n1 = await t.node([port], connected=False)
    n2 = await t.node([port], connected=False)
    gone = unreachable_re(port)
    for n in (n1, n2):
        await wait_log(n, gone)
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n1, t.uid("bob"))
    c = await t.conn(n2, t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await join(c, r, [c.uid])  # node 2's users only
    copy = await chat(a, r, "node 1 alone")
    await expect_copy(b, copy)
    copy = await chat(b, r, "node 1 alone too")
    await expect_copy(a, copy)
    await typing(a, r, True)
    await expect(b, typing_msg(r, a.uid, True))
    await leave(b, r)
    await expect(a, presence(r, b.uid, "leave"))
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await quiet(a, b, c)
    await outage_lasts(t_down)
    down_at = {n.name: check_logged_once(n, gone) for n in (n1, n2)}

    await t.redis(port)
    took = await probe_across(a, r, [b], [c])
    t.note("node 1 -> node 2 %.1f s after Redis started" % took)
    await probe_across(c, r, [], [a, b])
    for n in (n1, n2):
        await wait_log(n, connected_re(port), after=down_at[n.name])
        check_logged_once(n, gone)
    f, took = await users_whole_again(t, n1, r, [a.uid, b.uid, c.uid],
                                      [a, b, c])
    t.note("a join on node 1 lists every node's users %.1f s after the "
           "probes" % took)
    await quiet_after_outage(r, a, b, c, f)
    check_presence_after_outage(t, (a, b, c, f))


# -- 7. two shards ------------------------------------------------------------

@case
async def two_shards_rooms_spread_and_cross(t):
    red1, red2 = await t.redis(), await t.redis()
    n1, n2 = await t.node_list(2, [red1, red2])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    rooms = [t.room("S%d" % i) for i in range(20)]
    for r in rooms:
        await join(a, r, [a.uid])
        await t.announced(r, a.uid, "join")
    for r in rooms:
        await join(b, r, [a.uid, b.uid])
        await expect(a, presence(r, b.uid, "join"))
    want = {"wsa:t:" + r for r in rooms}
    on1 = await channels(red1.port, "wsa:t:*") & want
    on2 = await channels(red2.port, "wsa:t:*") & want
    t.note("rooms on shard 1: %d, on shard 2: %d" % (len(on1), len(on2)))
    check(on1 and on2, "every room on one shard: %d on %s, %d on %s"
          % (len(on1), red1.name, len(on2), red2.name))
    check(not on1 & on2, "rooms on both shards: %s" % sorted(on1 & on2))
    check(on1 | on2 == want, "rooms on no shard: %s"
          % sorted(want - on1 - on2))
    for r in rooms:
        copy = await chat(a, r, "a in " + r)
        await expect_copy(b, copy)
    for r in rooms:
        copy = await chat(b, r, "b in " + r)
        await expect_copy(a, copy)
    await quiet(a, b)


# -- 8. subscriptions and prefixes --------------------------------------------

@case
async def node_subscribed_to_room_only_while_member(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    b2 = await t.conn(n2, t.uid("bea"))
    r = t.room("R")
    ch = "wsa:t:" + r
    check(await numsub(red.port, ch) == 0, "%s has subscribers before "
          "anyone joined the room" % ch)
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    one = await numsub_until(red.port, ch, lambda n: n > 0,
                             "node 1 subscribed")
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    two = await numsub_until(red.port, ch, lambda n: n > one,
                             "node 2 subscribed too")
    await join(b2, r, [a.uid, b.uid, b2.uid])
    await expect(a, presence(r, b2.uid, "join"))
    await expect(b, presence(r, b2.uid, "join"))
    await leave(b, r)  # bea is still in the room on node 2
    await expect(a, presence(r, b.uid, "leave"))
    await expect(b2, presence(r, b.uid, "leave"))
    copy = await chat(a, r, "still there, bea?")
    await expect_copy(b2, copy)
    await leave(b2, r)  # node 2's last member
    await expect(a, presence(r, b2.uid, "leave"))
    await numsub_until(red.port, ch, lambda n: n == one,
                       "back to %d once node 2 has no member" % one)
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await numsub_until(red.port, ch, lambda n: n == two,
                       "%d again once bob is back" % two)
    await disconnect(b)  # a close leaves too
    await expect(a, presence(r, b.uid, "leave"))
    await numsub_until(red.port, ch, lambda n: n == one,
                       "back to %d once bob closed" % one)
    await leave(a, r)
    await numsub_until(red.port, ch, lambda n: n == 0,
                       "0 once nobody is in the room")
    await quiet(a, b2)


@case
async def prefixes_keep_apps_apart_on_one_redis(t):
    red = await t.redis()
    n1, n2 = await t.node_list(2, [red])  # default prefix: wsa
    n3, n4 = await t.node_list(2, [red], "app2")
    a = await t.conn(n1, t.uid("alice"))
    b = await t.conn(n2, t.uid("bob"))
    c = await t.conn(n3, t.uid("carol"))
    d = await t.conn(n4, t.uid("dave"))
    r = t.room("R")  # the same room name in both apps
    await join(a, r, [a.uid])
    await t.announced(r, a.uid, "join")
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await join(c, r, [c.uid])  # not alice nor bob
    await t.announced(r, c.uid, "join", "app2")
    await join(d, r, [c.uid, d.uid])
    await expect(c, presence(r, d.uid, "join"))
    for ch in ("wsa:t:" + r, "app2:t:" + r):
        await numsub_until(red.port, ch, lambda n: n > 0, "subscribed")
    copy = await chat(a, r, "wsa only")
    await expect_copy(b, copy)
    copy = await chat(c, r, "app2 only")
    await expect_copy(d, copy)
    await barrier(d, r, [c])  # nothing of alice's app came to carol
    await barrier(b, r, [a])  # nothing of carol's app came to alice
    await leave(c, r)
    await expect(d, presence(r, c.uid, "leave"))
    await disconnect(d)
    await numsub_until(red.port, "app2:t:" + r, lambda n: n == 0,
                       "0 once app2's room is empty")
    check(await numsub(red.port, "wsa:t:" + r) > 0, "wsa:t:%s lost its "
          "subscribers when app2's room emptied" % r)
    await barrier(b, r, [a])  # no presence of app2 reached alice
    await quiet(a, b, c)


# --------------------------------------------------------------------------
# runner

@case
async def concurrent_joins_no_user_told_twice(t):
    """30 users join one room at once, over two nodes: nobody hears of a
    user, before its own joined, that the joined then lists (a member
    heard of such users twice: the announcements reached it while its
    join was not answered yet)."""
    red = await t.redis()
    nodes = await t.node_list(2, [red])
    r = t.room("R")
    conns = [await t.conn(nodes[i % 2], t.uid("u%d" % i)) for i in range(30)]

    async def one(ws):
        await send(ws, {"type": "join", "room": r})
        early = set()
        while True:
            m = await recv_json(ws, what="joined %s" % r)
            if m.get("type") == "presence":
                early.add(m["uid"])
            elif m.get("type") == "joined":
                return early & set(m["users"])
    twice = await asyncio.gather(*(one(ws) for ws in conns))
    told = sum(len(x) for x in twice)
    check(told == 0, "%d users heard of before joined and listed in it "
          "(e.g. %s)" % (told, next(sorted(x) for x in twice if x)
                         if told else ""))


# -- history and recovery across nodes (PROTOCOL.md 6.1) -----------------------

async def history_nodes(t, size, nsenders):
    """Two nodes with --history size on one Redis; alice on node 1 and
    nsenders senders on node 2 in one room. Returns (node1, node2, room,
    alice, the room's epoch, the senders)."""
    red = await t.redis()
    n1 = await t.node([red], history=size)
    n2 = await t.node([red], history=size)
    r = t.room("R")
    a = await t.conn(n1, t.uid("alice"))
    epoch = (await hjoin(a, r))["epoch"]
    senders = [await t.conn(n2, t.uid("s%d" % i)) for i in range(nsenders)]
    for ws in senders:
        await hjoin(ws, r)
    return n1, n2, r, a, epoch, senders


async def recover_on(t, node, uid, room, since, want):
    """A new connection of uid on node joins room from since: exactly the
    chats want (the senders' copies), in order, then joined with
    recovered true at the last of them."""
    ws = await t.conn(node, uid)
    missed = []
    j = await hjoin(ws, room, since, missed)
    check(len(missed) == len(want), "%s: %d chats before joined, not %d"
          % (node.name, len(missed), len(want)))
    for c, got in zip(want, missed):
        hchat_ok(got, room, c["from"], c["message"], c["offset"],
                 since["epoch"])
    check(j["recovered"] is True and j["epoch"] == since["epoch"] and
          j["offset"] == (want[-1]["offset"] if want else since["offset"]),
          "%s: joined after recovery: %s" % (node.name, js(j)))
    return ws


@case
async def history_offline_100_recovered_on_either_node(t):
    n1, n2, r, a, epoch, senders = await history_nodes(t, 200, 4)
    first = await hchat(senders[0], r, "before")
    got = await recv_json(a, what="the first chat")
    while got.get("type") == "presence":
        got = await recv_json(a, what="the first chat")
    hchat_ok(got, r, senders[0].uid, "before", first["offset"], epoch)
    a.transport.abort()  # the socket cut
    copies = await publish_many(senders, r, 100, "missed")
    since = {"offset": first["offset"], "epoch": epoch}
    check([c["offset"] for c in copies] ==
          list(range(first["offset"] + 1, first["offset"] + 101)),
          "offsets: %s" % [c["offset"] for c in copies])
    a1 = await recover_on(t, n1, a.uid, r, since, copies)
    a2 = await recover_on(t, n2, a.uid, r, since, copies)
    live = await hchat(senders[1], r, "live")
    for ws in (a1, a2):
        got = await recv_json(ws, what="the live chat")
        while got.get("type") == "presence":
            got = await recv_json(ws, what="the live chat")
        hchat_ok(got, r, senders[1].uid, "live", live["offset"], epoch)
    await quiet(a1, a2)


@case
async def history_join_while_publishing_no_gap_no_duplicate(t):
    """Chats keep coming from the other node while the client joins from
    its position: it gets every offset after it once, in order."""
    n1, n2, r, a, epoch, senders = await history_nodes(t, 500, 2)
    before = await publish_many(senders, r, 40, "before")
    a2 = await t.conn(n1, t.uid("bob"))
    await join_during(a2, r, {"offset": before[9]["offset"], "epoch": epoch},
                      senders, 60, 90)
    await quiet(a2)


@case
async def history_beyond_size_not_recovered_with_redis(t):
    """Redis trims a stream by whole nodes (MAXLEN ~), so it may hold more
    than --history: the newest 10 are what is kept all the same."""
    n1, n2, r, a, epoch, senders = await history_nodes(t, 10, 2)
    a.transport.abort()
    copies = await publish_many(senders, r, 20, "m")
    ws = await t.conn(n1, a.uid)
    missed = []
    j = await hjoin(ws, r, {"offset": 0, "epoch": epoch}, missed)
    check([m["offset"] for m in missed] ==
          [c["offset"] for c in copies[10:]],
          "kept after 0: %s" % [m["offset"] for m in missed])
    check(j["recovered"] is False and j["offset"] == copies[-1]["offset"],
          "joined past the history: %s" % js(j))
    await quiet(ws)


@case
async def history_survives_a_node_restart_with_redis(t):
    red = await t.redis()
    n1 = await t.node([red], history=50)
    r = t.room("R")
    a = await t.conn(n1, t.uid("alice"))
    epoch = (await hjoin(a, r))["epoch"]
    copies = [await hchat(a, r, "m%d" % i) for i in range(3)]
    await t.close_all()
    await t.stop_nodes()
    n2 = await t.node([red], history=50)
    await recover_on(t, n2, t.uid("alice"), r,
                     {"offset": copies[0]["offset"], "epoch": epoch},
                     copies[1:])
    await recover_on(t, n2, t.uid("alice"), r,
                     {"offset": copies[2]["offset"], "epoch": epoch}, [])


def stderr_tail(srv, n=30):
    return "\n".join("    | " + ln
                     for ln in srv.stderr_text().splitlines()[-n:])


class Context:
    def __init__(self, chat_room, redis_server):
        self.chat_room = chat_room
        self.redis_server = redis_server
        self.workdir = tempfile.mkdtemp(prefix="wsa-redis-test-")

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


async def run_case(ctx, fn):
    """Returns (error text or None, notes)."""
    t = Cluster(ctx)
    t0 = time.monotonic()
    err = None
    try:
        await asyncio.wait_for(fn(t), CASE_TIMEOUT)
        await t.close_all()
        await t.stop_nodes()
    except asyncio.TimeoutError:
        if time.monotonic() - t0 >= CASE_TIMEOUT - 0.5:
            err = "case timed out after %.0f s" % CASE_TIMEOUT
        else:
            err = "a bounded wait timed out:\n" + \
                traceback.format_exc().rstrip()
    except Failure as e:
        err = str(e)
    except StartupFailed as e:
        err = "%s\n  output:\n%s" % (e, "\n".join(
            "    | " + ln for ln in e.stderr.splitlines()[-30:]))
    except Exception:
        err = traceback.format_exc().rstrip()
    finally:
        if err is not None:
            err += "\n" + t.logs()
        await t.close_all()
        t.cleanup()
    return err, t.notes


async def run_all(ctx, cases, verbose):
    passed = failed = 0
    for fn in cases:
        t0 = time.monotonic()
        err, notes = await run_case(ctx, fn)
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("PASS %s%s" % (fn.__name__,
                                 " (%.2f s)" % dt if verbose else ""))
        else:
            failed += 1
            print("FAIL %s (%.2f s)" % (fn.__name__, dt))
            for line in err.splitlines():
                print("  " + line)
        if verbose:
            for n in notes:
                print("  note: " + n)
        sys.stdout.flush()
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chat-room", default=os.environ.get("WSA_CHAT_ROOM"))
    ap.add_argument("--redis-server",
                    default=os.environ.get("WSA_REDIS_SERVER") or
                    shutil.which("redis-server"))
    ap.add_argument("-k", action="append", default=[],
                    help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    cases = [c for c in CASES
             if not args.k or any(k in c.__name__ for k in args.k)]
    if args.list:
        for c in cases:
            print(c.__name__)
        return 0
    if not args.chat_room or not os.access(args.chat_room, os.X_OK):
        print("chat-room binary not found or not executable: %r "
              "(--chat-room PATH)" % args.chat_room, file=sys.stderr)
        return 2
    if not args.redis_server or not os.access(args.redis_server, os.X_OK):
        print("redis-server not found or not executable: %r "
              "(--redis-server PATH; Debian's redis-server package, which "
              "scripts/deps test installs): this suite is not skipped "
              "without it" % args.redis_server, file=sys.stderr)
        return 1
    # meson stops a test that runs too long with SIGTERM: clean up then too
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx = Context(os.path.abspath(args.chat_room),
                  os.path.abspath(args.redis_server))
    start = time.monotonic()
    try:
        passed, failed = asyncio.run(run_all(ctx, cases, args.verbose))
        p, f = base.wrapper_verdicts()
        passed, failed = passed + p, failed + f
    finally:
        for srv in base.ALL_SERVERS:
            srv.cleanup()
        for red in ALL_REDIS:
            red.kill()
        ctx.cleanup()
    if args.verbose:
        print("(%.1f s)" % (time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
