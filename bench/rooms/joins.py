#!/usr/bin/python3
"""What a room costs chat-room: a join's CPU and a membership's memory, at
one room per connection and at the cap (128), every limit at its default.

One chat-room process (`--threads 1`), CONNS connections from 127.0.0.1
(Debian's python3-websockets), each a user of its own, logged in with
HS256 tokens. Then RANKS rounds: in round k every connection joins its
k-th room, one join each, all at once, and waits for its `joined`. Every
room is a room of its own, named with the longest name chat-room takes
(255 bytes), so each membership also makes a topic: the worst case a
client can choose. After the last round one more join must be refused
with "Too many rooms" (the cap at its default).

A round's cost is the server's CPU time over the round (the sum of its
threads' time on a CPU, /proc/PID/task/*/schedstat, in ns) divided by the
joins; it holds the join's parse, the topic, the membership, the reply
and the frame's write and read system calls. The rounds keep under the
default rate (20 a second after a burst of 50): after the first 40, a
round starts at least 60 ms after the one before. Memory is the
process' resident set (VmRSS) after the logins, after round 1 and after
the last round.

Prints one JSON object on stdout; `bench/run --only joins` writes the
section of BENCHMARKS.md from it.

    bench/rooms/joins.py --chat-room build/examples/chat-room/chat-room
"""

import argparse
import asyncio
import glob
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))
import test_echo_chat as base  # noqa: E402

ROOM_MAX = 255          # chat-room's longest room name (PROTOCOL.md 6)
CAP = 128               # max_topics_per_connection's default
BURST_ROUNDS = 40       # under the default burst of 50
ROUND_GAP = 0.060       # s: under the default 20 a second


def cpu_ns(pid):
    total = 0
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def room(i, k):
    head = "r%d-%d-" % (i, k)
    return head + "x" * (ROOM_MAX - len(head))


async def join(ws, name):
    await base.send(ws, {"type": "join", "room": name})
    got = await base.recv_json(ws, what="joined " + name[:16])
    base.check(got.get("type") == "joined" and got.get("room") == name,
               "join answered with %s" % json.dumps(got)[:200])


async def run(binary, conns):
    srv = base.Server(binary, ["--jwt-secret", base.SECRET, "--threads",
                               "1"], name="chat-room").start()
    try:
        pid = srv.proc.pid
        rss0 = rss_kib(pid)
        socks = []
        for i in range(conns):
            ws = await base.connect(srv.url)
            await base.login(ws, base.hs(base.claims(uid="u%d" % i)))
            socks.append(ws)
        rss_in = rss_kib(pid)
        per_round, rss = [], {}
        last = 0.0
        for k in range(1, CAP + 1):
            if k > BURST_ROUNDS:
                wait = last + ROUND_GAP - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # pacing, not synchronisation
            last = time.monotonic()
            c0 = cpu_ns(pid)
            await asyncio.gather(*(join(ws, room(i, k))
                                   for i, ws in enumerate(socks)))
            per_round.append((cpu_ns(pid) - c0) / conns / 1000.0)
            if k in (1, CAP):
                rss[k] = rss_kib(pid)
        await asyncio.sleep(ROUND_GAP)
        await base.send(socks[0], {"type": "join", "room": room(0, 0)})
        got = await base.recv_json(socks[0], what="Too many rooms")
        base.check(got == {"type": "error", "message": "Too many rooms"},
                   "join past the cap answered %s" % json.dumps(got))
        for ws in socks:
            await ws.close()
        return {
            "conns": conns, "cap": CAP, "name_bytes": ROOM_MAX,
            "rss_start_kib": rss0, "rss_logged_in_kib": rss_in,
            "rss_1_kib": rss[1], "rss_cap_kib": rss[CAP],
            "join_us_rounds": per_round,
            "join_us_first": statistics.median(per_round[:8]),
            "join_us_at_cap": statistics.median(per_round[-8:]),
            "round1_us": per_round[0], "round_cap_us": per_round[-1],
            "bytes_per_room_1": (rss[1] - rss_in) * 1024.0 / conns,
            "bytes_per_room_cap":
                (rss[CAP] - rss[1]) * 1024.0 / (conns * (CAP - 1)),
        }
    finally:
        srv.stop()
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chat-room", required=True)
    ap.add_argument("--conns", type=int, default=200,
                    help="connections (at most 256: the default limit per "
                         "address)")
    opt = ap.parse_args()
    r = asyncio.run(run(opt.chat_room, opt.conns))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
