#!/usr/bin/env python3
"""echo-chat's protocol served by an event loop the program runs itself:
uv-chat (libuv), ev-chat (libev) and glib-chat (GLib), driven by Debian's
python3-websockets with tokens from PyJWT.

Each program prints echo-chat's URL line first, then "tick N" from its own
repeating timer. For each: logins and echoes are served; uv-chat and
ev-chat have exactly one thread (/proc/PID/task); uv-chat keeps ticking
while 1,000 clients are connected and logged in (from four loopback
addresses, 250 each: the default limit per address is 256); SIGTERM
closes clients with 1001 and the program exits 0 (uv-chat only after
uv_loop_close() found no handle left open).

    test_host_loops.py --uv-chat B [--ev-chat B] [--glib-chat B]

WSA_SERVER_WRAPPER (e.g. valgrind) is put before each program.
"""
import argparse
import asyncio
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time

import jwt
import websockets

SECRET = "host-loop-test-secret-0123456789abcdef"
WRAPPER = shlex.split(os.environ.get("WSA_SERVER_WRAPPER", ""))
SLOW = 10 if WRAPPER else 1  # valgrind: everything slower
failures = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def token(uid):
    return jwt.encode({"sub": uid, "exp": int(time.time()) + 600}, SECRET,
                      algorithm="HS256")


class Program:
    """One host-loop example, its stdout read by a thread: the URL, then
    tick lines counted as they come."""

    def __init__(self, binary, tick_ms):
        env = dict(os.environ, WSA_JWT_SECRET=SECRET)
        self.proc = subprocess.Popen(
            WRAPPER + [binary, "--port", "0", "--tick-ms", str(tick_ms)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True)
        self.url = None
        self.ticks = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr = []
        threading.Thread(target=self._err, daemon=True).start()
        with self.cond:
            self.cond.wait_for(lambda: self.url is not None,
                               timeout=30 * SLOW)

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                if self.url is None:
                    self.url = line.strip()
                elif line.startswith("tick "):
                    self.ticks += 1
                self.cond.notify_all()
        with self.cond:
            if self.url is None:
                self.url = ""
            self.cond.notify_all()

    def _err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_ticks(self, n, timeout):
        """Wait for n more ticks; whether they came."""
        with self.cond:
            target = self.ticks + n
            return self.cond.wait_for(lambda: self.ticks >= target,
                                      timeout=timeout)

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.proc.pid))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


async def login(url, uid, source=None):
    kw = {"local_addr": (source, 0)} if source else {}
    ws = await websockets.connect(url, open_timeout=30 * SLOW,
                                  close_timeout=10 * SLOW, **kw)
    await ws.send(json.dumps({"type": "login", "token": token(uid)}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 30 * SLOW))
    return ws, reply


async def echo_and_close(prog, name):
    ws, reply = await login(prog.url, "alice")
    check(reply == {"type": "auth", "message": "Authenticated"},
          name + ": login accepted")
    await ws.send(json.dumps({"type": "chat", "message": "hello"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
    check(reply.get("type") == "chat" and
          reply.get("message") == "Echo: hello", name + ": chat echoed")
    return ws


async def crowd(prog, n):
    """n clients logged in at once, from 127.0.0.2..5."""
    sources = ["127.0.0.%d" % (2 + i % 4) for i in range(n)]
    results = await asyncio.gather(
        *(login(prog.url, "user%d" % i, sources[i]) for i in range(n)),
        return_exceptions=True)
    conns = [r[0] for r in results if not isinstance(r, Exception)]
    ok = sum(1 for r in results if not isinstance(r, Exception) and
             r[1].get("type") == "auth")
    return conns, ok


async def run_one(name, binary, crowd_size, one_thread):
    prog = Program(binary, 100)
    check(bool(prog.url) and prog.url.startswith("ws://127.0.0.1:"),
          name + ": first line is echo-chat's URL")
    if not prog.url:
        print("".join(prog.stderr[-20:]), file=sys.stderr)
        prog.stop()
        return
    if one_thread:
        check(prog.threads() == 1, name + ": one thread (/proc/PID/task)")
    ws = await echo_and_close(prog, name)
    check(prog.wait_ticks(2, 10 * SLOW), name + ": its own timer fires")
    conns = []
    if crowd_size:
        conns, ok = await crowd(prog, crowd_size)
        check(ok == crowd_size,
              "%s: %d clients logged in (%d)" % (name, crowd_size, ok))
        # The loop serves both: the timer goes on with all connected.
        check(prog.wait_ticks(3, 10 * SLOW),
              "%s: timer fires with %d connected" % (name, len(conns)))
        if one_thread:
            check(prog.threads() == 1,
                  name + ": still one thread with the crowd")
        await ws.send(json.dumps({"type": "chat", "message": "again"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
        check(reply.get("message") == "Echo: again",
              name + ": echo with the crowd connected")
    rc = prog.stop()
    try:
        await asyncio.wait_for(ws.wait_closed(), 10 * SLOW)
    except asyncio.TimeoutError:
        pass
    check(ws.close_code == 1001, "%s: SIGTERM closes with 1001 (%r)" %
          (name, ws.close_code))
    for c in conns:
        c.transport.abort()
    check(rc == 0, "%s: exits 0 (%r)" % (name, rc))
    if rc != 0:
        print("".join(prog.stderr[-20:]), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uv-chat", required=True)
    ap.add_argument("--ev-chat")
    ap.add_argument("--glib-chat")
    a = ap.parse_args()
    # 1,000 client sockets in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run_one("uv-chat", a.uv_chat, 1000, True))
    if a.ev_chat:
        asyncio.run(run_one("ev-chat", a.ev_chat, 100, True))
    if a.glib_chat:
        # GLib may start a thread of its own; the server adds none.
        asyncio.run(run_one("glib-chat", a.glib_chat, 100, False))
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
