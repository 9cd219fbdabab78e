"""Run libwsa's benchmarks and write BENCHMARKS.md and plots.

Every figure is measured in the same run as its baselines, on this machine:
the plain libwebsockets echo (one lws_write per writeable callback), the
coalesced libwebsockets echo (the ceiling of the stack), and the same
protocol written on Node.js with ws + jsonwebtoken (the usual alternative).
The server under test is pinned to one core, the load generator to the
other (but in the scenario threads, below). Every run is bounded in time.

The scenario attack keeps echo-chat's default limits against hostile
clients and measures a well-behaved client beside 10,000 connections that
never log in and 1,000 that flood messages. The last, topics, measures
what 16,000 topic names that collide in the library's topic map cost the
service loop, against 16,000 ordinary names. threads measures JSON echo,
logins and a publish to N subscribers against echo-chat with --threads 1
and --threads 2 and against the build before per-loop services (built
beside the current one), in one run, with nothing pinned: two loops need
both cores. metrics measures JSON echo with echo-chat's counters on and
off (--no-metrics), timed in alternating pairs and counted in
instructions. redis measures chat-room across two nodes sharing one
Redis (started by the scenario) against one node, with and without
--redis: delivery latency and rate, and a publish to 10,000 subscribers;
and Redis alone under redis-benchmark. joins measures a chat-room join's
CPU and a room's memory at 1 and at 128 rooms a connection. storm
measures 1,000 chat-room clients reconnecting at once, each having missed
100 messages, on two nodes sharing one Redis and on one node: the time
until all have recovered them, and the load on Redis. `--only
attack`, `--only topics`, `--only threads`, `--only deflate`, `--only
metrics`, `--only redis`, `--only joins`, `--only storm` or `--only
round2` runs one alone and replaces its section of the report and its
rows of the targets table (the rest is left as it is).

Usage: bench/run.py BUILDDIR [--quick]
                    [--only attack|deflate|joins|metrics|redis|round2|
                           storm|threads|topics]
                    [--out BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECRET = "bench-secret-bench-secret-bench-secret-0123"
SERVER_CPU = "0"
CLIENT_CPU = "1"
# The throughput and connection scenarios measure the library, not its
# defences: echo-chat's default limits (20 messages/s per connection,
# 256 connections per address, 10,000 in all, 200 token verifications a
# second per address) would cap them, so they are turned off there. The
# attack scenario keeps them.
UNLIMITED = ["--rate-limit", "unlimited", "--max-connections", "unlimited",
             "--max-connections-per-address", "unlimited",
             "--verify-rate", "unlimited"]


def proc_cpu_s(stat):
    """User + system CPU seconds in a /proc/.../stat file."""
    with open(stat) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile():
    """Soft descriptor limit up to the hard one (20,000 here), so a server
    can hold 19,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(cpu):
    """taskset's prefix for a process on core cpu; none when cpu is None
    (the threads scenario: every core is the server's and the load
    generator's to share)."""
    return [] if cpu is None else ["taskset", "-c", cpu]


class Server:
    """A server process pinned to cpu (SERVER_CPU unless told; None: not
    pinned); its URL is its first line."""

    def __init__(self, name, argv, env=None, cpu=SERVER_CPU):
        self.name = name
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            pinned(cpu) + argv, stdout=subprocess.PIPE,
            stderr=self.err, env=env, text=True, preexec_fn=raise_nofile)
        line = self._first_line(15)
        if not line.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"{name}: no URL on stdout ({line!r}): "
                               + self.stderr())
        self.url = line.strip()

    def _first_line(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
        return self.proc.stdout.readline()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        return proc_cpu_s(f"/proc/{self.proc.pid}/stat")

    def threads_cpu_s(self):
        """{thread id: CPU seconds} of each of its threads."""
        out = {}
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                out[tid] = proc_cpu_s(
                    f"/proc/{self.proc.pid}/task/{tid}/stat")
            except OSError:
                pass
        return out

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def servers(build, which):
    """argv and protocol of each server, by name."""
    node = os.path.join(HERE, "node-peer", "server.js")
    table = {
        "lws-plain": ([os.path.join(build, "bench/baselines/lws-echo-plain"),
                       "--port", "0"], "raw"),
        "lws-coalesced": ([os.path.join(
            build, "bench/baselines/lws-echo-coalesced"), "--port", "0"],
            "raw"),
        "libwsa": ([os.path.join(build, "examples/echo-chat/echo-chat"),
                    "--port", "0", "--jwt-secret", SECRET] + UNLIMITED,
                   "wsa"),
        "node": (["node", node, "--port", "0", "--jwt-secret", SECRET],
                 "wsa"),
        # Not a server under test: the fastest peer the load generator
        # has, to show the generator is not what limits the others.
        "fastecho": ([os.path.join(build, "bench/loadgen/wsa-fastecho"),
                      "--port", "0"], "raw"),
    }
    return {k: table[k] for k in which}


def realtime():
    """chrt's prefix for a real-time measuring client, where allowed."""
    ok = subprocess.run(["chrt", "-f", "10", "true"],
                        capture_output=True).returncode == 0
    return ["chrt", "-f", "10"] if ok else []


def loadgen(build, url, proto, args, timeout, refused_ok=False, prio=(),
            cpu=CLIENT_CPU):
    """Its JSON; with refused_ok, also when no connection was set up
    (then "refused" holds the HTTP status of the answer, if it had one).
    prio prefixes the generator's command (realtime()); cpu is its core
    (None: not pinned)."""
    argv = pinned(cpu) + list(prio) + [
            os.path.join(build, "bench/loadgen/wsa-loadgen"), "--url", url,
            "--proto", proto, "--secret", SECRET] + [str(a) for a in args]
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    r = json.loads(lines[-1]) if lines else None
    if refused_ok and out.returncode == 1 and r and not r["conns_ok"]:
        m = re.search(r"\(HTTP/1\.[01] (\d{3})", out.stderr)
        r["refused"] = m.group(1) if m else "no answer"
        return r
    if out.returncode != 0 or not r:
        raise RuntimeError(f"loadgen {args} failed ({out.returncode}): "
                           + out.stderr[-1500:])
    return r


def echo(build, name, spec, conns, inflight, size, duration):
    # server_cpu_s: over the whole load generator run (set-up and warm-up
    # included), the span of wall_total_s.
    return profiled(build, name, spec[0], spec[1],
                    ["--mode", "echo", "--conns", conns, "--inflight",
                     inflight, "--size", size, "--duration", duration,
                     "--warmup", 1], duration + 60, perf=False)


def connect(build, name, spec, duration, es256_key=None):
    argv, proto = list(spec[0]), spec[1]
    extra = []
    if es256_key:
        argv = [a for a in argv if a not in ("--jwt-secret", SECRET)]
        argv += ["--jwt-public-key", es256_key[1], "--jwt-alg", "ES256"]
        extra = ["--es256-key", es256_key[0]]
    srv = Server(name, argv)
    try:
        return loadgen(build, srv.url, proto,
                       ["--mode", "connect", "--duration", duration,
                        "--concurrency", 32] + extra, duration + 60)
    finally:
        srv.stop()


def idle_memory(build, name, spec, conns):
    """Server RSS growth per idle (authenticated) connection."""
    argv, proto = spec
    srv = Server(name, argv)
    gen = None
    try:
        # One connection first, so one-time allocations are in the base.
        warm = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU,
             os.path.join(build, "bench/loadgen/wsa-loadgen"), "--url",
             srv.url, "--proto", proto, "--secret", SECRET, "--mode", "idle",
             "--conns", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        if not warm.stdout.readline().startswith("READY 1 0"):
            raise RuntimeError(f"{name}: warm-up connection failed")
        base = srv.rss_kib()
        gen = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU,
             os.path.join(build, "bench/loadgen/wsa-loadgen"), "--url",
             srv.url, "--proto", proto, "--secret", SECRET, "--mode", "idle",
             "--conns", str(conns)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = gen.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "READY":
            raise RuntimeError(f"{name}: idle connections not ready: "
                               + gen.stderr.read()[-1500:])
        ok, failed = int(ready[1]), int(ready[2])
        rss = srv.rss_kib()
        warm.stdin.close()
        warm.wait(30)
        return {"conns": ok, "failed": failed, "base_kib": base,
                "rss_kib": rss,
                "kib_per_conn": (rss - base) / ok if ok else float("nan")}
    finally:
        if gen:
            gen.stdin.close()
            gen.wait(60)
        srv.stop()


def fanout(build, quick):
    """One publish to N subscribers against a loop of N sends by id; the
    benchmark runs its own server and subscriber processes."""
    argv = [os.path.join(build, "bench/fanout/wsa-fanout-bench")]
    if quick:
        argv += ["--sizes", "1,100,1000"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                         preexec_fn=raise_nofile)
    if out.returncode:
        raise RuntimeError("fan-out benchmark failed: " + out.stderr[-1500:])
    return [json.loads(l) for l in out.stdout.splitlines()
            if l.startswith("{")]


# The attack scenario: who connects from where. echo-chat allows 256
# connections per address by default, so the 10,000 that never log in come
# from 60 addresses (167 each) and the 1,000 flooders from 8 (125 each);
# the well-behaved client has 127.0.0.1 to itself. "idle" is a reference:
# as many connections, but logged in and quiet.
ATTACK = {"unauth": (10000, 2, 60), "flood": (1000, 62, 8)}
CROWD = {"idle": (10000, 2, 60)}
PROBE_RATE = 15  # messages/s: under the default limit of 20, burst 50
# Its connections: four give 1,200 round trips in 20 s, so that its p99
# is not just its three slowest replies.
PROBE_CONNS = 4
PROBE_TRIES = 5  # a refused well-behaved client tries again, 1 s apart


def read_line(f, timeout):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(f, selectors.EVENT_READ)
    return f.readline() if sel.select(timeout) else ""


class Crowd:
    """wsa-loadgens holding their connections (table: mode -> (conns,
    first source address, addresses)) until stop(), or 120 s; each prints
    READY after set-up, its JSON at the end."""

    def __init__(self, build, url, table):
        self.gens, self.errs, self.ready = {}, {}, {}
        for mode, (conns, first, naddr) in table.items():
            self.errs[mode] = tempfile.TemporaryFile(mode="w+")
            self.gens[mode] = subprocess.Popen(
                ["taskset", "-c", CLIENT_CPU,
                 os.path.join(build, "bench/loadgen/wsa-loadgen"), "--url",
                 url, "--secret", SECRET, "--mode", mode, "--conns",
                 str(conns), "--src-first", str(first), "--src-addrs",
                 str(naddr), "--duration", "120"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self.errs[mode], text=True)

    def fail(self, mode, what):
        self.errs[mode].seek(0)
        raise RuntimeError(f"{mode}: {what}: "
                           + self.errs[mode].read()[-1500:])

    def wait_ready(self):
        for mode, g in self.gens.items():
            line = read_line(g.stdout, 60).split()
            if len(line) != 3 or line[0] != "READY":
                self.fail(mode, "not in place")
            self.ready[mode] = (int(line[1]), int(line[2]))

    def stop(self):
        """EOF on their stdin ends the hold; returns their JSON."""
        res = {}
        for mode, g in self.gens.items():
            out, _ = g.communicate("", timeout=60)
            lines = [l for l in out.splitlines() if l.startswith("{")]
            if g.returncode != 0 or not lines:
                self.fail(mode, f"exit status {g.returncode}")
            res[mode] = json.loads(lines[-1])
            res[mode]["ready"] = self.ready[mode]
        return res

    def kill(self):
        for g in self.gens.values():
            if g.poll() is None:
                g.kill()
                g.wait()


def attack(build, quick):
    """A well-behaved client (PROBE_CONNS connections, PROBE_RATE
    messages/s each, one in flight) alone; beside 10,000 idle
    authenticated connections (what as many connections cost, hostile
    or not); then beside 10,000 connections that upgrade and never log
    in (each reopened when the auth timeout closes it) and 1,000 that log
    in and send as fast as their sockets take (each reopened when the
    server closes it). echo-chat keeps its default limits, but for
    --max-connections 12000, so that all of them fit. The well-behaved
    client runs at real-time priority where allowed: it shares its core
    with the attackers' generators, which on a real network would be
    other hosts, and it measures the server, not them."""
    dur = 5 if quick else 20
    argv = [os.path.join(build, "examples/echo-chat/echo-chat"), "--port",
            "0", "--jwt-secret", SECRET, "--max-connections", "12000"]
    probe = ["--mode", "echo", "--conns", PROBE_CONNS, "--rate", PROBE_RATE,
             "--src-addrs", 1, "--duration", dur, "--warmup", 1]
    rt = realtime()
    srv = Server("libwsa", argv)
    crowds = []

    def beside(table, settle):
        """The probe while the crowd holds on; the server's CPU share."""
        crowds.append(Crowd(build, srv.url, table))
        crowds[-1].wait_ready()
        time.sleep(settle)
        cpu0, t0 = srv.cpu_s(), time.time()
        refused = []
        for _ in range(PROBE_TRIES):
            r = loadgen(build, srv.url, "wsa", probe, dur + 60, True, rt)
            if r["conns_ok"]:
                break
            refused.append(r["refused"])
            time.sleep(1)
        r["refused"] = refused
        r["server_cpu"] = (srv.cpu_s() - cpu0) / (time.time() - t0)
        r["server_rss_kib"] = srv.rss_kib()
        r["server_fds"] = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
        r["crowd"] = crowds[-1].stop()
        return r
    try:
        quiet = loadgen(build, srv.url, "wsa", probe, dur + 60, prio=rt)
        quiet["server_fds"] = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
        idle = beside(CROWD, 1)
        time.sleep(1)  # the idle crowd's closes are through
        # 3 s past the set-up: the flooders' close-reopen churn is on.
        under = beside(ATTACK, 3)
        return {"quiet": quiet, "idle": idle, "under": under,
                "realtime": bool(rt),
                "attackers": under.pop("crowd")}
    finally:
        for c in crowds:
            c.kill()
        srv.stop()


def topics(build, quick):
    """16,000 topic names in one bucket of an unseeded FNV-1a-64 map
    against 16,000 ordinary ones, each set joined, published to and left
    by 125 connections (128 topics each); the benchmark runs its server
    and clients in one process and pins its two threads itself (the
    service loop on the first core allowed, the calls and the clients on
    the second)."""
    argv = [os.path.join(build, "bench/topics/wsa-topics-bench")]
    if quick:
        argv += ["--rounds", "2", "--set-seconds", "5", "--cap-seconds",
                 "5"]
    # It bounds itself (60 s a phase at most, every wait 60 s); this is
    # a last resort.
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError("topics benchmark failed: " + out.stderr[-1500:])
    lines = [json.loads(l) for l in out.stdout.splitlines()
             if l.startswith("{")]
    if len(lines) != 4:
        raise RuntimeError("topics benchmark: no figures: "
                           + out.stderr[-1500:])
    return {"sets": lines[:3], "ratios": lines[3]}


def es256_keys(tmp):
    priv = os.path.join(tmp, "es256.pem")
    pub = os.path.join(tmp, "es256.pub.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey",
                    "-noout", "-out", priv + ".sec1"], check=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in",
                    priv + ".sec1", "-out", priv], check=True)
    subprocess.run(["openssl", "ec", "-in", priv, "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return priv, pub


def fmt(x, unit=""):
    if isinstance(x, float):
        if x >= 100:
            return f"{x:,.0f}{unit}"
        return f"{x:.2f}{unit}"
    return f"{x:,}{unit}" if isinstance(x, int) else str(x)


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def plot(tmp, out_png, title, xlabel, series, logx=True):
    """series: {name: [(x, y), ...]}; a PNG through gnuplot."""
    data = os.path.join(tmp, os.path.basename(out_png) + ".dat")
    plots = []
    with open(data, "w") as f:
        for i, (name, pts) in enumerate(series.items()):
            for x, y in pts:
                f.write(f"{x} {y}\n")
            f.write("\n\n")
            plots.append(f"'{data}' index {i} with linespoints lw 2 "
                         f"title '{name}'")
    script = "\n".join([
        "set terminal pngcairo size 900,540 font ',11'" if has_cairo()
        else "set terminal png size 900,540",
        f"set output '{out_png}'",
        f"set title '{title}'",
        f"set xlabel '{xlabel}'",
        "set ylabel 'messages/s'",
        "set logscale x" if logx else "",
        "set grid",
        "set key outside right",
        "set yrange [0:*]",
        "plot " + ", ".join(plots),
    ])
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def has_cairo():
    out = subprocess.run(["gnuplot", "-e", "set terminal"],
                         capture_output=True, text=True)
    return "pngcairo" in out.stdout + out.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true",
                    help="shorter runs, fewer points (for a smoke test)")
    ap.add_argument("--only", choices=sorted(ALONE),
                    help="run this scenario alone and replace its section "
                         "of --out")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    opt = ap.parse_args()
    build = os.path.abspath(opt.build)
    if opt.only:
        run_alone(build, opt)
        return
    dur = 2 if opt.quick else 5
    names = ["lws-plain", "lws-coalesced", "libwsa", "node"]
    spec = servers(build, names)
    res = {}
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="wsa-bench-")

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] {msg}", file=sys.stderr,
              flush=True)

    # 0. The load generator's own ceiling.
    log("echo 16x16 fastecho (load generator ceiling)")
    res["ceiling"] = echo(build, "fastecho", servers(build, ["fastecho"])[
        "fastecho"], 16, 16, 16, dur)

    # 1. The target: 16 connections x 16 in flight, 16-byte messages.
    res["target"] = {}
    for n in names:
        log(f"echo 16x16 {n}")
        res["target"][n] = echo(build, n, spec[n], 16, 16, 16, dur)

    # 2. Connections: 1, 100, 1000, several in flight.
    res["conns"] = {n: [] for n in names}
    for conns, inflight in ([(1, 8), (100, 4), (1000, 2)] if not opt.quick
                            else [(1, 8), (100, 4)]):
        for n in names:
            log(f"echo {conns}x{inflight} {n}")
            r = echo(build, n, spec[n], conns, inflight, 16, dur)
            res["conns"][n].append((conns, inflight, r))

    # 3. Message sizes, 16 connections x 4 in flight.
    sizes = [16, 256, 4096, 16384, 65000] if not opt.quick else [16, 4096]
    res["sizes"] = {n: [] for n in names}
    for size in sizes:
        for n in names:
            log(f"echo size {size} {n}")
            r = echo(build, n, spec[n], 16, 4, size, dur)
            res["sizes"][n].append((size, r))

    # 4. Connect + upgrade (+ login) rate.
    priv, pub = es256_keys(tmp)
    res["connect"] = {}
    for n in names:
        log(f"connect {n}")
        res["connect"][n] = connect(build, n, spec[n], dur)
    for n in ("libwsa", "node"):
        log(f"connect ES256 {n}")
        res["connect"][n + " ES256"] = connect(build, n, spec[n], dur,
                                               (priv, pub))

    # 5. Memory per idle connection.
    res["memory"] = {}
    for conns in ([10000, 19000] if not opt.quick else [2000]):
        for n in names:
            log(f"idle {conns} {n}")
            res["memory"][(n, conns)] = idle_memory(build, n, spec[n],
                                                    conns)
    # 6. Fan-out: one publish against a loop of per-connection sends.
    log("fan-out")
    res["fanout"] = fanout(build, opt.quick)
    # 7. A well-behaved client beside hostile ones.
    log("attack: 10,000 that never log in, 1,000 flooding")
    res["attack"] = attack(build, opt.quick)
    # 8. Topic names that collide in the topic map.
    log("topics: 16,000 colliding names against 16,000 ordinary")
    res["topics"] = topics(build, opt.quick)
    # 9. One service loop against two, and against the build before
    # per-loop services (nothing pinned).
    log(f"threads: one loop against two, and against {OLD_COMMIT}")
    res["threads"] = threads(build, opt.quick)
    log("done")
    write_report(opt.out, res, tmp, opt.quick, time.time() - t0)
    print(open(opt.out).read())


def run_alone(build, opt):
    """--only NAME: that scenario, its section spliced into --out, and
    its row of the targets table replaced (or added to the table)."""
    run, write, head, row_start, target, what = ALONE[opt.only]
    t0 = time.time()
    print(what, file=sys.stderr, flush=True)
    L = []
    a = run(build, opt.quick)
    write(L.append, a,
          f"Measured alone by `bench/run.py --only {opt.only}` on "
          f"{datetime.date.today()}"
          + (", quick mode" if opt.quick else "")
          + f", in {time.time() - t0:.0f} s. ")
    section = "\n".join(L) + "\n"
    old = open(opt.out).read() if os.path.exists(opt.out) else ""
    start = old.find(head)
    if start >= 0:
        end = old.find("\n## ", start + 1)
        new = old[:start] + section + (old[end + 1:] if end >= 0 else "")
    elif "## What limits what" in old:
        i = old.index("## What limits what")
        new = old[:i] + section + old[i:]
    else:
        new = old + ("\n" if old else "") + section
    # The targets table's rows follow the section they sum up.
    rows = target(a, f" ({opt.only} section re-measured alone)")
    if isinstance(rows, str):
        rows, row_start = [rows], (row_start,)
    for start, row in zip(row_start, rows):
        new = splice_row(new, start, row)
    with open(opt.out, "w") as f:
        f.write(new)
    print("\n".join(rows) + "\n\n" + section)


def splice_row(text, row_start, row):
    """text with the targets table's line starting with row_start
    replaced by row, or row added at the end of that table."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(row_start):
            lines[i] = row
            return "\n".join(lines)
    if "## Targets" not in lines:
        return text
    i = lines.index("## Targets") + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    while i < len(lines) and lines[i].startswith("|"):
        i += 1
    lines.insert(i, row)
    return "\n".join(lines)


ATTACK_HEAD = "## A well-behaved client beside hostile ones"


def write_attack(w, a, when=""):
    q, i, u = a["quiet"], a["idle"], a["under"]
    un, fl = a["attackers"]["unauth"], a["attackers"]["flood"]

    def code(r, table, c):
        return fmt(r[table].get(str(c), 0))

    w(ATTACK_HEAD)
    w("")
    w(when + "echo-chat with its default limits against hostile clients "
      "(20 messages/s per connection with a burst of 50, then "
      "`Rate limit exceeded` and, on abuse, a close with 1008; 256 "
      "connections per address; 10 s to log in), but for "
      "`--max-connections 12000` so that everyone below fits. A "
      f"well-behaved client ({PROBE_CONNS} connections from 127.0.0.1, "
      f"{PROBE_RATE} messages/s each, one in flight) is measured alone; "
      f"beside {fmt(CROWD['idle'][0])} idle authenticated connections "
      "(what as many connections cost, hostile or not); then "
      f"beside {fmt(ATTACK['unauth'][0])} connections that upgrade and "
      "never log in (each opened again when the auth timeout closes "
      f"it; from {ATTACK['unauth'][2]} addresses) and "
      f"{fmt(ATTACK['flood'][0])} that log in and send 16-byte chat "
      "messages as fast as their sockets take them, without reading "
      "the replies first (each logs in again when the server closes it; "
      f"from {ATTACK['flood'][2]} addresses). Server on core "
      f"{SERVER_CPU}, the three load generators on core {CLIENT_CPU}"
      + (", the well-behaved client among them at real-time priority "
         "(on a real network the attackers' generators would be other "
         "hosts; here they must not delay the client measuring the "
         "server)." if a.get("realtime") else
         " (the well-behaved client too, at normal priority: chrt was "
         "not allowed)."))
    w("")
    w("| well-behaved client | connections refused | replies | errors | "
      "p50 µs | p99 µs | p99.9 µs | max µs | server CPU |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (("alone", q),
                    (f"beside {fmt(CROWD['idle'][0])} idle", i),
                    ("under attack", u)):
        cpu = f"{r['server_cpu']:.0%}" if "server_cpu" in r else ""
        refused = ", ".join(r.get("refused", [])) or "0"
        if r["conns_ok"]:
            lat = (f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} | "
                   f"{fmt(r['p999_us'])} | {fmt(r['max_us'])}")
        else:
            lat = "never connected | | |"
        w(f"| {name} | {refused} | {fmt(r['messages'])} | {r['errors']} | "
          f"{lat} | {cpu} |")
    for name, b in (("alone", q), (f"beside {fmt(CROWD['idle'][0])} idle",
                                   i)):
        if not (u["conns_ok"] and b["conns_ok"]):
            continue
        w(f"| under attack / {name} | | | | "
          f"{ratio(u['p50_us'], b['p50_us'])} | "
          f"{ratio(u['p99_us'], b['p99_us'])} | "
          f"{ratio(u['p999_us'], b['p999_us'])} | "
          f"{ratio(u['max_us'], b['max_us'])} | |")
    w("")
    w(f"A refused well-behaved client tries again a second later, "
      f"{PROBE_TRIES} times at most; \"connections refused\" lists the "
      "HTTP status of each refusal.")
    w("")
    w("| attackers (whole run) | connections (in place after set-up) "
      "| upgrades | refused (503) | closed by the server (1008) | other "
      "closes | set up again | messages sent | `Rate limit exceeded` |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (("never log in", un), ("flood", fl)):
        closes = r["closed_by_code"]
        other = sum(n for c, n in closes.items() if c != "1008")
        w(f"| {name} | {fmt(r['conns'])} ({fmt(r['ready'][0])}) | "
          f"{fmt(r['upgrades'])} | "
          f"{code(r, 'refused_by_status', 503)} | "
          f"{code(r, 'closed_by_code', 1008)} | {fmt(other)} | "
          f"{fmt(r['reconnects'])} | {fmt(r['sent'])} | "
          f"{fmt(r['rate_limited'])} |")
    # Descriptors beyond the server's own and one per connection the
    # generators hold: connections the server closed, not yet released.
    held = q["server_fds"] + sum(c for c, _, _ in ATTACK.values())
    extra = u["server_fds"] - held
    w("")
    w(f"The attackers' counts cover their set-up and the "
      f"{un['duration_s']:.0f} s they held on after it (3 s of settling, "
      f"then the well-behaved client's "
      f"{u['warmup_s'] + u['duration_s']:.0f} s). Messages sent are those "
      "the flooders' sockets took; most die in the server's receive "
      "buffers when it closes the connection. Server while attacked: "
      f"RSS {u['server_rss_kib'] / 1024:.1f} MiB, "
      f"{fmt(u['server_fds'])} descriptors (beside the idle ones: "
      f"{i['server_rss_kib'] / 1024:.1f} MiB, {fmt(i['server_fds'])})"
      + (f"; {fmt(extra)} more than the generators hold connections: "
         "connections the server has closed but not released yet, which "
         "still count against its connection limits (the refusals of "
         "attackers that stayed under them)." if extra > 100 else "."))
    w("")
    w(attack_verdict(a))
    w("")


def attack_served(a):
    """Whether the well-behaved client was served as if alone: never
    refused, no error, p99 at most twice its p99 alone."""
    q, u = a["quiet"], a["under"]
    return (u["conns_ok"] and not u["refused"] and not u["errors"]
            and u["p99_us"] <= 2 * q["p99_us"])


def attack_verdict(a):
    q, u = a["quiet"], a["under"]
    n = len(u["refused"])
    times = f"{n} time{'' if n == 1 else 's'}"
    if not u["conns_ok"]:
        return (f"The well-behaved client was refused {times} and never "
                "connected: **not** served.")
    said = (f"The well-behaved client was refused {times} before it "
            f"connected, then got {u['errors']} errors; "
            f"its p99 under attack is {ratio(u['p99_us'], q['p99_us'])} "
            "its p99 alone: ")
    if attack_served(a):
        return said + "within its normal latency (at most 2x)."
    return said + "**not** served within its normal latency (no refusal, " \
        "no error, at most 2x)."


NOTES = """## What limits what

- **Logins.** A login costs libwsa one more round trip than a bare
  upgrade (the login message and its `auth` answer: a `recv()` and a
  `send()` more per connection), plus the JSON and the HMAC. The upgrade
  rate of lws-plain is itself close to what one core of the load generator
  can open and close (see its CPU in connect mode), so the ratio
  understates neither. Debian's libwebsockets 4.1.6 is built with `_DEBUG`:
  on every close it scans its whole descriptor table (about 10 us at the
  20,000-descriptor limit), in every server here alike. ES256 logins are
  bounded by OpenSSL's ECDSA verify (about 70 us).
- **Large messages.** libwebsockets 4.1.6 reads a connection no more
  than the buffer it holds for it (`rx_buffer_size`: 1024 in libwsa, for
  memory; 4096 in the baselines), so from 4 KiB on a message is five or
  more reads and wake-ups and a reassembly, which sets the rate more than
  the JSON does ("Round two" measures it with a larger buffer too).
- **One connection.** libwsa writes what a round of its loop queued
  before the loop waits again; the baselines write from lws' writeable
  callback, one poll round later, but on lws' own `poll()` loop, where
  asking for POLLOUT costs no system call. With many connections in
  flight libwsa writes many replies in one `send()` and pulls ahead.
- **Fan-out.** A publish serialises and frames the message once, then
  copies the frame into each subscriber's queue; the loop serialises once
  per call. Past a few thousand subscribers the time goes to writing to
  that many sockets (one `send()` each, on the two cores the subscribers
  also use), which both share.
- **Many connections.** libwebsockets 4.1.6 polls with `poll()`, whose
  cost grows with the number of descriptors; libwsa keeps no
  libwebsockets timer per connection (their list is sorted by walking it),
  so setting up 19,000 connections stays near linear otherwise.
"""


def targets(w, res):
    """The targets of the benchmark issue, met or not, from this run."""
    t, c, m = res["target"], res["connect"], res["memory"]
    thr = t["libwsa"]["msgs_per_s"] / t["lws-plain"]["msgs_per_s"]
    log_ratio = c["libwsa"]["per_s"] / c["lws-plain"]["per_s"]
    mem = [r for (n, _), r in m.items() if n == "libwsa"]
    worst = max(r["kib_per_conn"] for r in mem)
    held = max(r["conns"] for r in mem)
    failed = sum(r["failed"] for r in mem)

    def mark(ok):
        return "met" if ok else "**missed**"
    w("## Targets")
    w("")
    w("| target | this run | |")
    w("|---|---|---|")
    w(f"| JSON echo (16 x 16) >= 1.5x lws-plain | {thr:.2f}x | "
      f"{mark(thr >= 1.5)} |")
    w(f"| HS256 logins/s >= 0.7x lws-plain upgrades/s | {log_ratio:.2f}x | "
      f"{mark(log_ratio >= 0.7)} |")
    w(f"| <= 3 KiB per idle authenticated connection | {worst:.2f} KiB | "
      f"{mark(worst <= 3)} |")
    w(f"| 19,000 authenticated connections held | {fmt(held)} held, "
      f"{failed} failed | {mark(held >= 19000 and not failed)} |")
    if "attack" in res:
        w(attack_target(res["attack"]))
    if "topics" in res:
        w(topics_target(res["topics"]))
    if "threads" in res:
        for row in threads_target(res["threads"]):
            w(row)
    w("")


ATTACK_TARGET = ("| well-behaved client beside 10,000 unauthenticated and "
                 "1,000 flooding: never refused, no error, p99 <= 2x alone |")


def attack_target(a, note=""):
    """The attack's row of the targets table."""
    q, u = a["quiet"], a["under"]
    got = (f"{ratio(u['p99_us'], q['p99_us'])}, " if u["conns_ok"]
           else "never connected, ")
    ok = "met" if attack_served(a) else "**missed**"
    return (f"{ATTACK_TARGET} {got}{len(u['refused'])} refusals, "
            f"{u['errors']} errors{note} | {ok} |")


def write_report(path, res, tmp, quick, took):
    plots = os.path.join(ROOT, "bench", "plots")
    os.makedirs(plots, exist_ok=True)
    L = []
    w = L.append
    t = res["target"]
    plain = t["lws-plain"]["msgs_per_s"]
    w("# Benchmarks")
    w("")
    w(f"Measured by `bench/run` on {datetime.date.today()} "
      f"({platform.machine()}, {os.cpu_count()} cores; server pinned to "
      f"core {SERVER_CPU}, load generator to core {CLIENT_CPU})"
      + (", quick mode" if quick else "") + f", in {took:.0f} s. "
      "Every ratio compares figures of the same run.")
    w("")
    w("Servers: **lws-plain** is the plain libwebsockets echo (no JSON, no "
      "auth, one `lws_write` per writeable callback); **lws-coalesced** "
      "the best echo libwebsockets 4.1.6 allows (queued replies framed into "
      "one raw write): the ceiling of the stack; **libwsa** the echo-chat "
      "example (JWT login, JSON parse, handler, JSON reply); **node** the "
      "same protocol on Node.js with `ws` and `jsonwebtoken`.")
    w("")
    targets(w, res)
    w("## Authenticated JSON echo, 16 connections x 16 in flight, 16 B")
    w("")
    w("| server | messages/s | vs lws-plain | p50 µs | p99 µs | server CPU "
      "| load generator CPU |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for n, r in t.items():
        w(f"| {n} | {fmt(r['msgs_per_s'])} | "
          f"{ratio(r['msgs_per_s'], plain)} | {fmt(r['p50_us'])} | "
          f"{fmt(r['p99_us'])} | "
          f"{r['server_cpu_s'] / r['wall_total_s']:.0%} | "
          f"{r['client_cpu_s'] / r['wall_s']:.0%} |")
    lw = t["libwsa"]["msgs_per_s"]
    ce = res["ceiling"]
    w("")
    w(f"The load generator is not the limit: against `wsa-fastecho` (a "
      f"minimal epoll echo, no JSON) it drives {fmt(ce['msgs_per_s'])} "
      f"messages/s in the same setting, "
      f"{ratio(ce['msgs_per_s'], max(r['msgs_per_s'] for r in t.values()))} "
      f"the fastest server above, with its own CPU shown in the last "
      f"column.")
    w(f"libwsa / lws-plain: **{ratio(lw, plain)}** (target 1.5x); "
      f"libwsa / lws-coalesced: **{ratio(lw, t['lws-coalesced']['msgs_per_s'])}**; "
      f"libwsa / node: **{ratio(lw, t['node']['msgs_per_s'])}**.")
    w("")
    w("## Throughput and latency against connections (16 B)")
    w("")
    w("| server | connections x in flight | messages/s | vs lws-plain "
      "| p50 µs | p99 µs |")
    w("|---|---|---:|---:|---:|---:|")
    base = {(c, k): r["msgs_per_s"]
            for c, k, r in res["conns"]["lws-plain"]}
    series = {}
    for n, rows in res["conns"].items():
        series[n] = []
        for c, k, r in rows:
            w(f"| {n} | {c} x {k} | {fmt(r['msgs_per_s'])} | "
              f"{ratio(r['msgs_per_s'], base[(c, k)])} | "
              f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} |")
            series[n].append((c, r["msgs_per_s"]))
    plot(tmp, os.path.join(plots, "throughput-connections.png"),
         "Echo throughput against connections (16 B)", "connections",
         series)
    w("")
    w("![throughput against connections](bench/plots/"
      "throughput-connections.png)")
    w("")
    w("## Throughput against message size (16 connections x 4 in flight)")
    w("")
    w("| server | size | messages/s | MB/s | vs lws-plain | p99 µs |")
    w("|---|---:|---:|---:|---:|---:|")
    base = {s: r["msgs_per_s"] for s, r in res["sizes"]["lws-plain"]}
    series = {}
    for n, rows in res["sizes"].items():
        series[n] = []
        for s, r in rows:
            w(f"| {n} | {s} | {fmt(r['msgs_per_s'])} | "
              f"{r['msgs_per_s'] * s / 1e6:.1f} | "
              f"{ratio(r['msgs_per_s'], base[s])} | {fmt(r['p99_us'])} |")
            series[n].append((s, r["msgs_per_s"]))
    plot(tmp, os.path.join(plots, "throughput-size.png"),
         "Echo throughput against message size", "message size (bytes)",
         series)
    w("")
    w("![throughput against message size](bench/plots/throughput-size.png)")
    w("")
    w("## Connect + upgrade (+ login) rate")
    w("")
    w("32 attempts in flight. For lws-plain and lws-coalesced a connection "
      "is an upgrade only; for libwsa and node it is an upgrade and a JWT "
      "login answered with `auth`.")
    w("")
    w("| server | per second | vs lws-plain upgrades | time to "
      "authenticated p50 µs | p99 µs |")
    w("|---|---:|---:|---:|---:|")
    cbase = res["connect"]["lws-plain"]["per_s"]
    for n, r in res["connect"].items():
        w(f"| {n} | {fmt(r['per_s'])} | {ratio(r['per_s'], cbase)} | "
          f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} |")
    w("")
    w("## Memory per idle connection")
    w("")
    w("Server RSS growth over N idle connections (authenticated for libwsa "
      "and node), divided by N.")
    w("")
    w("| server | connections | KiB per connection | server RSS MiB |")
    w("|---|---:|---:|---:|")
    for (n, c), r in res["memory"].items():
        w(f"| {n} | {fmt(r['conns'])} | {r['kib_per_conn']:.2f} | "
          f"{r['rss_kib'] / 1024:.1f} |")
    w("")
    w("## Fan-out: one publish to N subscribers")
    w("")
    w("A topic of N authenticated subscribers (in other processes); the "
      "time from the call until the last subscriber has the message, "
      "median of the rounds, against the same message sent by a loop of "
      "`wsa_server_send` calls, one per subscriber. Server and "
      "subscribers share the two cores here (not pinned).")
    w("")
    w("| N | publish: last µs | deliveries/s | loop: last µs | "
      "deliveries/s | publish / loop |")
    w("|---:|---:|---:|---:|---:|---:|")
    rows = {}
    for r in res["fanout"]:
        rows.setdefault(r["n"], {})[r["mode"]] = r
    for n in sorted(rows):
        p, l = rows[n]["publish"], rows[n]["loop"]
        w(f"| {fmt(n)} | {fmt(p['median_last_us'])} | "
          f"{fmt(p['deliveries_per_s'])} | {fmt(l['median_last_us'])} | "
          f"{fmt(l['deliveries_per_s'])} | "
          f"{ratio(p['deliveries_per_s'], l['deliveries_per_s'])} |")
    w("")
    if "attack" in res:
        write_attack(w, res["attack"])
    if "topics" in res:
        write_topics(w, res["topics"])
    if "threads" in res:
        write_threads(w, res["threads"])
    w(NOTES)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump({k: str(v) for k, v in res.items()}, f)


TOPICS_HEAD = "## Topic names chosen to collide"
TOPICS_TARGET = ("| 16,000 topic names in one bucket of unseeded FNV-1a-64: "
                 "join, publish and leave each <= 2x ordinary names |")
TOPICS_OPS = ("join", "publish", "leave")


def topics_met(t):
    return all(t["ratios"][f"{o}_ratio"] <= 2 for o in TOPICS_OPS)


def topics_target(t, note=""):
    """The topics' row of the targets table."""
    got = ", ".join(f"{o} {t['ratios'][o + '_ratio']:.2f}x"
                    for o in TOPICS_OPS)
    ok = "met" if topics_met(t) else "**missed**"
    return f"{TOPICS_TARGET} {got}{note} | {ok} |"


def write_topics(w, t, when=""):
    sets, r = t["sets"], t["ratios"]
    col = sets[1]
    w(TOPICS_HEAD)
    w("")
    w(when + "Topic names come from clients (the chat-room example joins "
      "any room a client names, up to 255 bytes), so names that collide "
      "under an unkeyed hash can be found offline; the maps now hash with "
      "SipHash-2-4 under a key drawn per process. (Before that change, "
      "with unseeded FNV-1a-64, the same program measured colliding names "
      "at 143x ordinary ones to join, 70x to publish to and 50x to leave, "
      "and one round of colliding joins held the loop 5 s.) "
      "`wsa-topics-bench` "
      "makes 16,000 that all fall into one bucket under unseeded "
      "FNV-1a-64 with the bucket taken from the low bits (their hashes "
      "share the low 16 bits: one bucket for every table of up to 65,536; "
      "made at run time in milliseconds, each an ordinary prefix and 0 to "
      "4 characters that steer the hash), and 16,000 ordinary names of the "
      "same shape and lengths (`room-NNNNN-` and alphanumerics, 18 to 40 "
      "bytes). One process: the server on its own thread with its default "
      "limits, and 125 WebSocket clients logged in with HS256 tokens; the "
      "service thread on one core, the calls and the clients on the "
      "other. For each set the main thread joins every connection to 128 "
      "topics (the default cap per connection) with `wsa_server_join`, "
      "publishes once to every topic with `wsa_server_publish` and leaves "
      "them all with `wsa_server_leave`. Those calls are carried out by "
      "the service thread, so every lookup in the map is made by the loop "
      "that serves all the clients. Time per call: from the first call "
      "until the last message has arrived (one is sent after every 1,000 "
      "calls; for publishes, every delivery counts), divided by the calls; "
      "loop CPU: the service thread's CPU time meanwhile, per call. "
      "Medians of the rounds (join, publish, leave) each set had time "
      "for, after an untimed round. The ordinary names are measured before "
      "and after the colliding ones, and the ratio compares the colliding "
      "figure with their mean.")
    w("")
    w("| names | rounds | join µs | loop CPU µs | publish µs | loop CPU µs "
      "| leave µs | loop CPU µs |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    capped = []
    for s in sets:
        cells = [str(s["rounds"])]
        for o in TOPICS_OPS:
            cells += [fmt(s[o]["us"]), fmt(s[o]["loop_cpu_us"])]
            capped += [f"{s['set']} {o}: {fmt(p['ops'])} calls"
                       for p in s[o]["rounds"] if p["capped"]]
        w(f"| {s['set']} | " + " | ".join(cells) + " |")
    cells = [""]
    for o in TOPICS_OPS:
        cells += [f"**{r[o + '_ratio']:.2f}x**",
                  f"{r[o + '_loop_cpu_ratio']:.2f}x"]
    w("| colliding / ordinary | " + " | ".join(cells) + " |")
    w("")
    if capped:
        w("Stopped at the time limit (`--cap-seconds`): "
          + "; ".join(capped) + ". Their figures are the rate so far, "
          "over fewer and so shorter chains.")
        w("")
    first = col["join"]["rounds"][0]
    drift = [r[o + "_drift"] for o in TOPICS_OPS]
    w(f"The ordinary names again against the first time: join "
      f"{drift[0]:.2f}x, publish {drift[1]:.2f}x, leave {drift[2]:.2f}x"
      + (" (more than 1.5x: something else ran on the machine, and the "
         "ratios are unsure)" if any(d > 1.5 or d < 1 / 1.5 for d in drift)
         else "")
      + f". One round of colliding joins held the loop "
      f"{first['us'] * first['ops'] / 1e6:.1f} s, during which it served "
      "no one else.")
    w("")
    verdict = ", ".join(f"{o} {r[o + '_ratio']:.2f}x" for o in TOPICS_OPS)
    w(f"Target: a colliding name costs at most 2x an ordinary one to "
      f"join, publish to and leave: {verdict}: "
      + ("met." if topics_met(t) else "**missed**."))
    w("")


# The threads scenario: one service loop against two, and against the
# build before the per-loop redesign, in one run.
OLD_COMMIT = "c52a735"  # the last commit before per-loop services
# (size, connections, in flight): JSON echo; (concurrency): logins;
# subscribers: fan-out.
THREADS_ECHO = [(16, 16, 16), (1024, 16, 16)]
THREADS_LOGIN_CONCURRENCY = 64
THREADS_FANOUT_SIZES = (1, 1000)
THREADS_FANOUT_ROUNDS = 20
# Turns (each server once) per measurement, and each echo or login
# run's warm-up and measured seconds: many short turns rather than a few
# long ones, since this machine's speed changes from one run to the next
# (by up to half, in steps) more than within one.
THREADS_TURNS = {"echo": 9, "logins": 7, "fan-out": 3}
THREADS_WARMUP = 0.5
THREADS_SECONDS = 1
# A turn during which something else on the machine kept more than this
# much of a core busy is measured again (at most THREADS_REDO times a
# measurement): this machine is shared.
THREADS_OTHER_MAX = 0.25
THREADS_REDO = 2
# Checks made by hand when --threads 1 came out below the build before
# in a measurement that is not a target; kept in the report beside the
# figures they explain.
THREADS_CHECKED = {
    "logins": (
        "Checked by hand on 2026-12-07 (at 237a430): the server's "
        "user-space instructions a login are the same at both commits "
        "(callgrind, one loop, 3 s of logins each: 246,500 a login at "
        "both), its system calls fewer at "
        "the new one (strace: 2 `getpeername` a login instead of 3, 1 "
        "`fcntl` instead of 3, no `poll`), and in 8 alternations of the "
        "two pinned as the connect section pins them (server on core 0, "
        "load generator on core 1) `--threads 1` made 19,259 logins/s "
        "to the build before's 17,764 (medians, 1.08x): where `--threads "
        "1` comes out below the build before unpinned, that is this "
        "machine, not more work."),
    "fan-out": (
        "Checked by hand on 2026-12-07: with the same program at both "
        "commits the server spends 7% fewer instructions a round at the "
        "new one (callgrind) and makes the same system calls (strace: "
        "sends, epoll changes, reads), and in 8 more alternations of the "
        "two (40 rounds each, at 237a430) the median time to last was "
        "5,686 µs before and 5,680 µs at `--threads 1`."),
}


def git(*args, **kw):
    return subprocess.run(["git", "-C", ROOT] + list(args),
                          capture_output=True, text=True, check=True,
                          **kw).stdout.strip()


def old_build(build, log):
    """Build OLD_COMMIT beside the current tree (release, no tests):
    its sources from `git archive` (no worktree to clean up) in
    BUILD/old-SHA/src, built in BUILD/old-SHA/build; kept, so that a
    rerun only checks it with ninja. Returns (sha, its build dir)."""
    sha = git("rev-parse", "--verify", OLD_COMMIT + "^{commit}")
    base = os.path.join(build, "old-" + sha[:12])
    src, out = os.path.join(base, "src"), os.path.join(base, "build")
    if not os.path.isdir(src):
        log(f"threads: unpacking {sha[:12]} into {src}")
        part = src + ".part"
        subprocess.run(["rm", "-rf", part], check=True)
        os.makedirs(part)
        arch = subprocess.Popen(["git", "-C", ROOT, "archive", sha],
                                stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", part], stdin=arch.stdout,
                       check=True, timeout=120)
        arch.stdout.close()
        if arch.wait(60):
            raise RuntimeError(f"git archive {sha} failed")
        os.rename(part, src)
    if not os.path.exists(os.path.join(out, "build.ninja")):
        log(f"threads: meson setup {out}")
        subprocess.run(["rm", "-rf", out], check=True)
        subprocess.run(["meson", "setup", out, src, "--buildtype=release",
                        "-Dtests=false"], check=True, timeout=300,
                       capture_output=True)
    log(f"threads: ninja -C {out}")
    r = subprocess.run(["ninja", "-C", out, "examples/echo-chat/echo-chat",
                        "bench/fanout/wsa-fanout-bench"],
                       capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(f"building {sha[:12]} failed: "
                           + (r.stdout + r.stderr)[-1500:])
    return sha, out


def known_flags(binary):
    """The options a program's --help names."""
    r = subprocess.run([binary, "--help"], capture_output=True, text=True,
                       timeout=10)
    return set(re.findall(r"--[a-z][a-z-]*", r.stdout + r.stderr))


def lifted(flags):
    """UNLIMITED, less the options a binary does not know."""
    out = []
    for i in range(0, len(UNLIMITED), 2):
        if UNLIMITED[i] in flags:
            out += UNLIMITED[i:i + 2]
    return out


def machine_cpu():
    """The machine's busy and stolen CPU seconds so far (/proc/stat),
    and the time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return {"busy": (user + nice + system + irq + softirq) / tick,
            "steal": steal / tick, "t": time.monotonic()}


def procs_cpu():
    """{pid: (name, CPU seconds)} of every process."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
            name = st[st.index("(") + 1:st.rindex(")")]
            out[pid] = (name, proc_cpu_s(f"/proc/{pid}/stat"))
        except (OSError, ValueError):
            pass
    return out


def others(p0, p1, wall, skip):
    """The processes other than skip (and the load generator) that used
    at least 5% of a core between two procs_cpu(): [(name, cores)]."""
    got = {}
    for pid, (name, cpu) in p1.items():
        if pid in skip or name.startswith("wsa-"):
            continue
        d = (cpu - p0.get(pid, (name, 0))[1]) / wall
        got[name] = got.get(name, 0) + d
    return sorted(((n, c) for n, c in got.items() if c >= 0.05),
                  key=lambda x: -x[1])


def threads_variants(build, old):
    """(name, argv, fan-out argv) of the three servers compared."""
    new = os.path.join(build, "examples/echo-chat/echo-chat")
    prev = os.path.join(old, "examples/echo-chat/echo-chat")
    if "--threads" not in known_flags(new):
        raise RuntimeError(f"{new} has no --threads")
    base = ["--port", "0", "--jwt-secret", SECRET]
    nfan = os.path.join(build, "bench/fanout/wsa-fanout-bench")
    ofan = os.path.join(old, "bench/fanout/wsa-fanout-bench")
    return [
        ("old", [prev] + base + lifted(known_flags(prev)), [ofan]),
        ("new1", [new] + base + lifted(known_flags(new)) +
         ["--threads", "1"], [nfan, "--threads", "1"]),
        ("new2", [new] + base + lifted(known_flags(new)) +
         ["--threads", "2"], [nfan, "--threads", "2"]),
    ]


def unpinned(build, name, argv, args, timeout):
    """A load generator run against a server, neither pinned; the CPU
    each used meanwhile (in cores: CPU seconds over the wall time of the
    generator's run, set-up and warm-up included), per server thread too,
    and the machine's."""
    srv = Server(name, argv, cpu=None)
    try:
        p0, m0, s0 = procs_cpu(), machine_cpu(), srv.threads_cpu_s()
        r = loadgen(build, srv.url, "wsa", args, timeout, cpu=None)
        s1, m1, p1 = srv.threads_cpu_s(), machine_cpu(), procs_cpu()
    finally:
        srv.stop()
    wall = m1["t"] - m0["t"]
    r["others"] = others(p0, p1, wall, {str(srv.proc.pid)})
    loops = sorted(((s1[t] - s0.get(t, 0)) / wall for t in s1),
                   reverse=True)
    r["server_cores"] = sum(loops)
    r["loop_cores"] = loops
    r["gen_cores"] = r["client_cpu_total_s"] / wall
    r["busy_cores"] = (m1["busy"] - m0["busy"]) / wall
    r["steal_cores"] = (m1["steal"] - m0["steal"]) / wall
    r["other_cores"] = r["busy_cores"] - r["server_cores"] - r["gen_cores"]
    return r


def fanout_run(argv, sizes, rounds):
    """wsa-fanout-bench's publish figures by N, and the CPU the rest of
    the machine used meanwhile."""
    p0, m0 = procs_cpu(), machine_cpu()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv + ["--sizes", ",".join(map(str, sizes)),
                                 "--rounds", str(rounds)],
                         capture_output=True, text=True, timeout=300,
                         preexec_fn=raise_nofile)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m1, p1 = machine_cpu(), procs_cpu()
    if out.returncode:
        raise RuntimeError(f"{argv}: " + out.stderr[-1500:])
    wall = m1["t"] - m0["t"]
    own = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / wall
    return {"sizes": {r["n"]: r for r in map(json.loads, (
                l for l in out.stdout.splitlines() if l.startswith("{")))
                if r["mode"] == "publish"},
            "own_cores": own,
            "other_cores": (m1["busy"] - m0["busy"]) / wall - own,
            "others": others(p0, p1, wall, set())}


def callgrind_ir(build, name, argv, args, dur, out):
    """The instructions callgrind counted in a server over a load
    generator run of dur seconds, and the generator's JSON."""
    srv = Server(name, ["valgrind", "--tool=callgrind",
                        f"--callgrind-out-file={out}"] + argv, cpu=None)
    try:
        r = loadgen(build, srv.url, "wsa", args + ["--duration", dur],
                    dur + 120, cpu=None)
    finally:
        srv.stop()
    with open(out) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1]), r
    raise RuntimeError(f"{name}: no totals in {out}")


def instructions(build, variants, quick, log, echo=None):
    """User-space instructions per echoed message of each server at each
    size of echo (THREADS_ECHO unless given), counted by callgrind: (Ir
    of a long run - Ir of a short one) / (messages - messages), so that
    start, set-up and stop cancel. Not timed, so the machine's noise does not reach it."""
    if not shutil.which("valgrind"):
        log("no valgrind: instructions not counted")
        return None
    short, long = (1, 3) if quick else (1, 4)
    tmp = tempfile.mkdtemp(prefix="wsa-threads-cg-")
    out = {"seconds": (short, long), "sizes": {}}
    try:
        for size, conns, k in echo or THREADS_ECHO:
            args = ["--mode", "echo", "--conns", conns, "--inflight", k,
                    "--size", size, "--warmup", 0]
            got = out["sizes"][size] = {}
            for name, argv, _ in variants:
                log(f"instructions {size} B {name} (callgrind)")
                i1, r1 = callgrind_ir(build, name, argv, args, short,
                                      os.path.join(tmp, f"{name}-1"))
                i2, r2 = callgrind_ir(build, name, argv, args, long,
                                      os.path.join(tmp, f"{name}-2"))
                got[name] = (i2 - i1) / (r2["messages"] - r1["messages"])
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return out


def login_profile(build, variant, quick, log):
    """Where a login's instructions go in one loop's server (callgrind,
    user space, start-up included): the totals and the shares of
    libwebsockets' close, the token's verification and the shared
    limits' functions."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        return None
    name, argv, _ = variant
    log(f"login profile {name} (callgrind)")
    tmp = tempfile.mkdtemp(prefix="wsa-threads-cg-")
    try:
        out = os.path.join(tmp, "login")
        total, r = callgrind_ir(build, name, argv, [
            "--mode", "connect", "--concurrency",
            THREADS_LOGIN_CONCURRENCY, "--warmup", 0], 2 if quick else 3,
            out)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                               "--threshold=100", out], capture_output=True,
                              text=True, timeout=120).stdout
    finally:
        subprocess.run(["rm", "-rf", tmp])
    inc = {}
    for m in re.finditer(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:(\w+)[ @]",
                         text, re.M):
        inc.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    guard = sum(v for k, v in inc.items() if k.startswith("wsa__guard_")
                and k not in ("wsa__guard_init", "wsa__guard_free"))
    logins = r["completed"]
    return {"logins": logins, "ir_per_login": total / logins,
            "close_share": inc.get("lws_close_free_wsi", 0) / total,
            "jwt_share": inc.get("wsa_jwt_verifier", 0) / total,
            "guard_share": guard / total,
            "guard_ir_per_login": guard / logins,
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}


def threads(build, quick):
    """JSON echo, HS256 logins and a publish to N subscribers against
    echo-chat (wsa-fanout-bench for the publish) at OLD_COMMIT (one
    loop), and at this tree with --threads 1 and --threads 2, in turn,
    nothing pinned; medians of the rounds."""
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] threads: {msg}", file=sys.stderr,
              flush=True)

    sha, old = old_build(build, log)
    V = threads_variants(build, old)
    dur = THREADS_SECONDS
    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "lib", "include",
                "examples").splitlines()
    res = {"old": sha, "new": head, "dirty": len(dirty), "duration": dur,
           "cores": os.cpu_count(), "variants": [v[0] for v in V],
           "echo": [], "redone": []}

    def rounds(what, run):
        """Turns of the three; a turn that other work disturbed is
        measured again, THREADS_REDO times at most."""
        runs = {name: [] for name, _, _ in V}
        redo = THREADS_REDO
        rep = 0
        reps = 1 if quick else THREADS_TURNS[what.split()[0]]
        while rep < reps:
            turn = {}
            for v in V:
                log(f"{what} {v[0]} ({rep + 1}/{reps})")
                turn[v[0]] = run(v)
            worst = max(turn.values(), key=lambda x: x["other_cores"])
            if worst["other_cores"] > THREADS_OTHER_MAX and redo:
                redo -= 1
                who = ", ".join(f"{n} {c:.2f}" for n, c in worst["others"])
                log(f"{what}: other work took {worst['other_cores']:.2f} "
                    f"cores ({who or 'not a process still running'}): "
                    "this turn again")
                res["redone"].append((what, worst["other_cores"],
                                      worst["others"]))
                continue
            for k, x in turn.items():
                runs[k].append(x)
            rep += 1
        return runs

    for size, conns, k in THREADS_ECHO:
        res["echo"].append({
            "size": size, "conns": conns, "inflight": k,
            "runs": rounds(f"echo {size} B {conns}x{k}", lambda v: unpinned(
                build, v[0], v[1],
                ["--mode", "echo", "--conns", conns, "--inflight", k,
                 "--size", size, "--duration", dur, "--warmup",
                 THREADS_WARMUP], dur + 60))})
    res["login"] = {
        "concurrency": THREADS_LOGIN_CONCURRENCY,
        "runs": rounds("logins", lambda v: unpinned(
            build, v[0], v[1],
            ["--mode", "connect", "--duration", dur, "--warmup",
             THREADS_WARMUP, "--concurrency", THREADS_LOGIN_CONCURRENCY],
            dur + 60))}
    fan_rounds = 5 if quick else THREADS_FANOUT_ROUNDS
    res["fanout"] = {
        "sizes": THREADS_FANOUT_SIZES, "rounds": fan_rounds,
        "runs": rounds("fan-out", lambda v: fanout_run(
            v[2], THREADS_FANOUT_SIZES, fan_rounds))}
    res["instructions"] = instructions(build, V, quick, log)
    res["login_profile"] = login_profile(build, V[1], quick, log)
    res["took"] = time.time() - t0
    log("done")
    return res


THREADS_HEAD = "## Service threads: one loop against two"
THREADS_TARGET_SCALE = ("| JSON echo: `--threads 2` >= 1.3x `--threads 1` "
                        "(2 cores, shared with the load generator) |")
THREADS_TARGET_OLD = ("| JSON echo: `--threads 1` within 5% of the build "
                      f"before per-loop services (`{OLD_COMMIT}`) |")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def th_label(t, v):
    return {"old": f"`{t['old'][:7]}` (before)", "new1": "`--threads 1`",
            "new2": "`--threads 2`"}[v]


def th_span(xs, f=fmt):
    return f"{f(min(xs))} to {f(max(xs))}" if len(xs) > 1 else ""


def th_cpu(runs, key="server_cores"):
    """Median cores; for servers with several loops, each loop's too."""
    total = med([r[key] for r in runs])
    if key != "server_cores" or len(runs[0]["loop_cores"]) < 2:
        return f"{total:.2f}"
    n = min(len(r["loop_cores"]) for r in runs)
    loops = [med([r["loop_cores"][i] for r in runs]) for i in range(n)]
    busy = [x for x in loops if x >= 0.01]
    return f"{total:.2f} ({' + '.join(f'{x:.2f}' for x in busy)})"


def th_per(runs, rate, key="server_cores"):
    """Median CPU µs per operation."""
    return med([r[key] / r[rate] * 1e6 for r in runs if r[rate]])


def th_fan(t, v, n, key):
    return [r["sizes"][n][key] for r in t["fanout"]["runs"][v]
            if key in r["sizes"][n]]


def th_series(t):
    """[(measure, {server: [its rate in each turn]})]: the figures the
    ratios compare."""
    V = t["variants"]
    out = [(f"echo {e['size']}", {v: [r["msgs_per_s"] for r in
                                      e["runs"][v]] for v in V})
           for e in t["echo"]]
    out.append(("logins", {v: [r["per_s"] for r in t["login"]["runs"][v]]
                           for v in V}))
    n = max(t["fanout"]["sizes"])
    out.append((f"fan-out {n}", {v: th_fan(t, v, n, "deliveries_per_s")
                                 for v in V}))
    return out


PAIRS = {"old": ("new1", "old"), "scale": ("new2", "new1")}


def threads_ratios(t, per_turn=False):
    """{(measure, "old"|"scale"): ratio}: --threads 1 / before, and
    --threads 2 / --threads 1, of the medians; with per_turn, the list
    of the ratios within each turn instead."""
    out = {}
    for name, m in th_series(t):
        for k, (a, b) in PAIRS.items():
            out[(name, k)] = ([x / y for x, y in zip(m[a], m[b])]
                              if per_turn else med(m[a]) / med(m[b]))
    return out


def threads_met(t):
    """(scale, old): whether --threads 2 made at least 1.3x --threads 1
    in JSON echo, and --threads 1 at least 0.95x the build before, at
    every size measured."""
    r = threads_ratios(t)
    return tuple(all(v >= limit for (k, w), v in r.items()
                     if w == which and k.startswith("echo"))
                 for which, limit in (("scale", 1.3), ("old", 0.95)))


def th_measure_name(k):
    if k.startswith("echo "):
        s = int(k.split()[1])
        return f"echo {s // 1024} KiB" if s >= 1024 else f"echo {s} B"
    return k.replace("fan-out ", "fan-out to ").replace("1000", "1,000")


def th_ir(t, v, size=None):
    """Instructions a message of server v at size (the first echo size
    unless told), or None."""
    i = t.get("instructions")
    return i["sizes"][size or t["echo"][0]["size"]][v] if i else None


def th_size(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def th_ir_ratios(t, a="new1", b="old"):
    """a's instructions a message over b's, at each echo size: text."""
    if not t.get("instructions"):
        return ""
    return ", ".join(f"{th_ir(t, a, e['size']) / th_ir(t, b, e['size']):.3f}x"
                     f" ({th_size(e['size'])})" for e in t["echo"])


def threads_target(t, note=""):
    """The scenario's two rows of the targets table."""
    r = threads_ratios(t)
    scale, old = threads_met(t)

    def mark(ok):
        return "met" if ok else "**missed**"

    def got(which, echo):
        return ", ".join(f"{th_measure_name(k)} {v:.2f}x"
                         for (k, w), v in r.items()
                         if w == which and k.startswith("echo") == echo)
    ir = th_ir_ratios(t)
    more = (f"; instructions a message {ir}" if ir else "") + \
        f"; not in the target: {got('old', False)}"
    return [f"{THREADS_TARGET_SCALE} {got('scale', True)}{note} | "
            f"{mark(scale)} |",
            f"{THREADS_TARGET_OLD} {got('old', True)}{more}{note} | "
            f"{mark(old)} |"]


def write_threads(w, t, when=""):
    V = t["variants"]
    r = threads_ratios(t)
    turns = {k: len(m["old"]) for k, m in th_series(t)}
    ne, nl = turns[f"echo {t['echo'][0]['size']}"], turns["logins"]
    nf = turns[f"fan-out {max(t['fanout']['sizes'])}"]
    w(THREADS_HEAD)
    w("")
    dirty = (f" (and uncommitted changes to {t['dirty']} files in lib/, "
             "include/ and examples/, being edited meanwhile)"
             if t["dirty"] else "")
    w(when + f"The build before the per-loop redesign, `{t['old'][:7]}`, "
      "is built beside the current tree (`git archive` into "
      f"`build-bench/old-{t['old'][:12]}/`, release, no tests; kept for "
      "the next run) and measured in the same run as the current one, "
      f"`{t['new'][:7]}`{dirty}, with `--threads 1` and `--threads 2`. "
      "echo-chat's throughput limits are lifted as in the throughput "
      "sections (`--verify-rate` is passed to a binary only when its "
      "`--help` names it). **Nothing is pinned**: two loops need both "
      "cores, and the load generator (one process, one thread) shares "
      "them; it is not a second machine. The three servers take turns "
      "(before, `--threads 1`, `--threads 2`): "
      f"{ne} turn{'s' * (ne > 1)} for each echo, {nl} for the logins, "
      f"{nf} for the publish (an echo or login run: {THREADS_WARMUP} s "
      f"of warm-up, then {t['duration']} s measured), so that drift on "
      "this shared machine falls on all three alike; the figures are "
      "medians, the range is over the turns. A turn during which "
      f"other work kept more than {THREADS_OTHER_MAX} of a core busy "
      f"is measured again ({THREADS_REDO} times at most a measurement; "
      + (f"{len(t['redone'])} this run: "
         + "; ".join(f"{what}, {c:.2f} cores"
                     + (" (" + ", ".join(n for n, _ in o[:3]) + ")"
                        if o else "")
                     for what, c, o in t["redone"])
         if t["redone"] else "none this run")
      + "). CPU is in cores (CPU seconds from /proc over the "
      "load generator's run, set-up and warm-up included, divided by its "
      "wall time): the server (and each of its loops), the load "
      "generator, the rest of the busy time of the machine (`other`: "
      "kernel threads, and other processes: this machine is shared), and "
      "time stolen by the hypervisor.")
    w("")
    w("| measure | server | rate | range | vs `--threads 1` | p50 µs | "
      "p99 µs | server CPU (loops) | load generator CPU | other | stolen "
      "| server CPU µs per op |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(f"JSON echo {e['size']} B, {e['conns']} x {e['inflight']} "
             "(messages/s)", e["runs"], "msgs_per_s") for e in t["echo"]]
    rows.append((f"HS256 logins, {t['login']['concurrency']} in flight "
                 "(logins/s)", t["login"]["runs"], "per_s"))
    for what, runs, rate in rows:
        base = med([x[rate] for x in runs["new1"]])
        for v in V:
            rr = runs[v]
            rates = [x[rate] for x in rr]
            w(f"| {what} | {th_label(t, v)} | {fmt(med(rates))} | "
              f"{th_span(rates)} | {ratio(med(rates), base)} | "
              f"{fmt(med([x['p50_us'] for x in rr]))} | "
              f"{fmt(med([x['p99_us'] for x in rr]))} | {th_cpu(rr)} | "
              f"{med([x['gen_cores'] for x in rr]):.2f} | "
              f"{med([x['other_cores'] for x in rr]):.2f} | "
              f"{med([x['steal_cores'] for x in rr]):.2f} | "
              f"{th_per(rr, rate):.2f} |")
    w("")
    f = t["fanout"]
    w(f"A publish to N subscribers: `wsa-fanout-bench` (the fan-out "
      "section's program, given `--threads`; the build before has its "
      "own copy, one loop), its server in-process with its limits lifted, "
      "`wsa_server_publish` called from the application's thread (so "
      "every loop gets the message through its work queue: one push per "
      "loop), the subscribers HS256-logged-in connections of one other "
      "process (one thread, epoll) spread by the kernel over the loops; "
      f"{f['rounds']} rounds a run, then the median of the {nf} runs' "
      "medians. Time to last: from the call until the last subscriber "
      "has the message; call: how long `wsa_server_publish` held the "
      "calling thread.")
    w("")
    w("| N | server | time to last µs | range | deliveries/s | vs "
      "`--threads 1` | call µs |")
    w("|---:|---|---:|---|---:|---:|---:|")
    for n in f["sizes"]:
        base = med(th_fan(t, "new1", n, "deliveries_per_s"))
        for v in V:
            last = th_fan(t, v, n, "median_last_us")
            dps = th_fan(t, v, n, "deliveries_per_s")
            call = th_fan(t, v, n, "median_call_us")
            w(f"| {fmt(n)} | {th_label(t, v)} | {fmt(med(last))} | "
              f"{th_span(last)} | {fmt(med(dps))} | "
              f"{ratio(med(dps), base)} | "
              f"{fmt(med(call)) if call else 'n/a'} |")
    w("")
    names = list(dict.fromkeys(k for k, _ in r))
    w("| ratio of the medians | " + " | ".join(
        th_measure_name(k) for k in names) + " | target |")
    w("|---|" + "---:|" * len(names) + "---|")
    w("| `--threads 1` / before | " + " | ".join(
        (f"{r[(k, 'old')]:.2f}x" if r[(k, "old")] >= 0.95 else
         f"**{r[(k, 'old')]:.2f}x**") for k in names)
      + " | >= 0.95 for JSON echo (bold: below 0.95) |")
    w("| `--threads 2` / `--threads 1` | " + " | ".join(
        f"{r[(k, 'scale')]:.2f}x" for k in names) + " | >= 1.3 for JSON "
      "echo |")
    pt = threads_ratios(t, per_turn=True)
    for k, label in (("old", "`--threads 1` / before"),
                     ("scale", "`--threads 2` / `--threads 1`")):
        w(f"| {label}, within each turn | " + " | ".join(
            f"{min(pt[(n, k)]):.2f} to {max(pt[(n, k)]):.2f}x"
            for n in names) + " | |")
    w("")
    scale, old = threads_met(t)
    ins = t.get("instructions")
    e16 = [x["msgs_per_s"] for x in t["echo"][0]["runs"]["new1"]]
    if len(e16) > 1:
        w(f"On this machine the same server's JSON echo figure varied "
          f"by up to {max(e16) / min(e16):.2f}x between turns of this run "
          "(`--threads 1`, 16 B): a 5% difference between two servers "
          "is well inside that, which is why the turns are interleaved "
          "and their medians compared, and why the instructions a "
          "message are counted too.")
        w("")
    if ins:
        w("Instructions a message, counted rather than timed (callgrind, "
          "user space only: the server's code and its libraries, not the "
          "kernel; JSON echo as above; the count of a "
          f"{ins['seconds'][1]} s run less that of a "
          f"{ins['seconds'][0]} s one over the messages between them, so "
          "that start, set-up and stop cancel): "
          + "; ".join(f"{th_size(e['size'])}: " + ", ".join(
              f"{th_label(t, v)} {fmt(th_ir(t, v, e['size']))}"
              for v in V) for e in t["echo"])
          + f". `--threads 1` / before **{th_ir_ratios(t)}**; "
          f"`--threads 2` / `--threads 1` "
          f"{th_ir_ratios(t, 'new2', 'new1')}. "
          "The machine's noise does not reach this count: it says "
          "whether the code got heavier, the timed figures what came of "
          "it here.")
        w("")
    w("Targets: `--threads 2` at least 1.3x `--threads 1` in JSON echo "
      "messages/s: " + ("met" if scale else "**missed**") + "; "
      "`--threads 1` within 5% of the build before the redesign in JSON "
      "echo messages/s: " + ("met." if old else "**missed**."))
    w("")
    write_threads_limits(w, t)


def approx(x):
    """x to two significant figures, for a model's figures."""
    if x <= 0:
        return fmt(x)
    digits = len(str(int(x))) - 2
    return f"{round(x, -digits) if digits > 0 else round(x):,.0f}"


def write_threads_limits(w, t):
    """What limits the figures here, and a model of 16 cores, from this
    run's figures."""
    n = t["cores"]
    ins, prof = t.get("instructions"), t.get("login_profile")
    e = t["echo"][0]
    n1, n2 = e["runs"]["new1"], e["runs"]["new2"]
    c1, c2 = th_per(n1, "msgs_per_s"), th_per(n2, "msgs_per_s")
    g1 = th_per(n1, "msgs_per_s", "gen_cores")
    g2 = th_per(n2, "msgs_per_s", "gen_cores")
    o2 = max(th_per(n2, "msgs_per_s", "other_cores"), 0)
    m2 = med([x["msgs_per_s"] for x in n2])
    busy2 = med([x["busy_cores"] for x in n2])
    la, lb = (med([x["loop_cores"][i] for x in n2]) for i in range(2))
    ceil = n / (c2 + g2 + o2) * 1e6
    L1, L2 = t["login"]["runs"]["new1"], t["login"]["runs"]["new2"]
    l1, l2 = th_per(L1, "per_s"), th_per(L2, "per_s")
    lg2 = th_per(L2, "per_s", "gen_cores")
    lo2 = max(th_per(L2, "per_s", "other_cores"), 0)
    lr1 = med([x["per_s"] for x in L1])
    lr2 = med([x["per_s"] for x in L2])
    lbusy2 = med([x["busy_cores"] for x in L2])
    lceil1, lceil2 = 1e6 / l1, n / (l2 + lg2 + lo2) * 1e6
    small, big = min(t["fanout"]["sizes"]), max(t["fanout"]["sizes"])
    call1 = med(th_fan(t, "new1", small, "median_call_us"))
    call2 = med(th_fan(t, "new2", small, "median_call_us"))
    push = max(call2 - call1, 0)
    r, pt = threads_ratios(t), threads_ratios(t, per_turn=True)
    fk = f"fan-out {big}"
    w("### What limits them here")
    w("")
    w(f"- **JSON echo.** One loop is one core: `--threads 1` keeps its "
      f"loop at {med([x['server_cores'] for x in n1]):.2f} of a core "
      f"({c1:.2f} µs of server CPU a message, 16 B), the load generator "
      f"needing {g1:.2f} µs a message beside it. With `--threads 2` the "
      f"loops take {la:.2f} and {lb:.2f} of a core ({c2:.2f} µs a "
      f"message, both together), the load generator {g2:.2f} µs a "
      f"message and other work {o2:.2f}, and the machine is "
      f"{busy2:.2f} of {n} cores busy"
      + (": the cores are the limit, not the loops. At these costs "
         f"{n} cores give at most {n} / ({c2:.2f} + {g2:.2f} + "
         f"{o2:.2f}) µs = {fmt(ceil)} messages/s, and `--threads 2` "
         f"made {fmt(m2)} ({m2 / ceil:.0%} of that)."
         if busy2 >= 0.9 * n else
         f", not all of {n}: what was left idle is time a loop or the "
         "load generator waited for the other.")
      + (" The loops' shares differ, as their connections may: "
         "SO_REUSEPORT hashes each connection's addresses and ports to "
         "one listener, and 16 connections seldom split 8 and 8." if
         abs(la - lb) > 0.1 * max(la, lb) else "")
      + " Nothing shared is touched per message (the rate limiter is "
      "the connection's, the limits' lock is not taken, a reply is "
      "written by the connection's own loop)"
      + (f": callgrind counts {fmt(th_ir(t, 'new2'))} "
         f"instructions a message with two loops, "
         f"{fmt(th_ir(t, 'new1'))} with one." if ins else ".")
      + " On loopback a `send()` also does the receiving side's TCP "
      "work, so part of each side's CPU is the other's.")
    w(f"- **Logins.** A login cycle (connect, upgrade, login, `auth`, "
      f"close) costs the server {l1:.0f} µs of CPU with one loop and "
      f"{l2:.0f} µs with two, and the load generator {lg2:.0f} µs: "
      f"{lg2 / l2:.0%} of the server's, on the same cores. One loop "
      f"does at most 1 / {l1:.0f} µs = {fmt(lceil1)} logins/s (it made "
      f"{fmt(lr1)}); two loops and the generator on {n} cores at most "
      f"{n} / ({l2:.0f} + {lg2:.0f} + {lo2:.0f}) µs = {fmt(lceil2)}, "
      f"{lceil2 / lceil1:.2f}x one loop: all the gain this machine can "
      f"show, and `--threads 2` made {fmt(lr2)} ({lbusy2:.2f} of {n} "
      "cores busy; three busy threads on two cores lose some of it to "
      "waiting for each other)."
      + (f" Per login, callgrind counts {fmt(prof['ir_per_login'])} "
         "instructions of the server's (one loop, user space): "
         f"{prof['close_share']:.0%} in libwebsockets' close of the "
         "connection, nearly all a scan of its whole descriptor table "
         f"({fmt(prof['nofile'])} entries at this descriptor limit), "
         "which Debian's `_DEBUG` build of lws 4.1.6 makes on every "
         f"close; {prof['jwt_share']:.0%} verifying the token; "
         f"{prof['guard_share']:.1%} in the shared limits' functions "
         "(lock held or not)." if prof else "")
      + f" `--threads 1` / before: {r[('logins', 'old')]:.2f}x, from "
      f"{min(pt[('logins', 'old')]):.2f} to "
      f"{max(pt[('logins', 'old')]):.2f}x within the turns. "
      + THREADS_CHECKED["logins"])
    w(f"- **Fan-out.** To {fmt(big)} subscribers, the time to last is "
      "set by the subscribers' process as much as by the server: one "
      "thread reading a thousand sockets, on the two cores the loops "
      "use too. Two loops halve the server's part of the work, not "
      "theirs, and take a core they would have had: `--threads 2` / "
      f"`--threads 1` {r[(fk, 'scale')]:.2f}x. `--threads 1` / before "
      f"{r[(fk, 'old')]:.2f}x, from {min(pt[(fk, 'old')]):.2f} to "
      f"{max(pt[(fk, 'old')]):.2f}x within the turns. "
      + THREADS_CHECKED["fan-out"]
      + " A publish from the application's thread pushes one work "
      f"item per loop: the call took {call1:.2f} µs with one loop and "
      f"{call2:.2f} µs with two (N = {small}), about {push:.2f} µs a "
      "push (an allocation, the queue's lock, a wake-up of the loop).")
    w("")
    per_core = 1e6 / c2
    w("### A model of 16 cores")
    w("")
    w("From the figures above, with the clients on other machines (a "
      "NIC instead of loopback changes the kernel's part of the work, "
      "so this is a model, not a measurement):")
    w("")
    w(f"- **JSON echo** needs {c2:.2f} µs of a core a message with two "
      f"loops ({c1:.2f} with one): a loop does about {approx(per_core)} "
      f"messages/s, 16 loops on 16 cores about {approx(16 * per_core)}, "
      "if the traffic is spread. Nothing is shared per message, so "
      "this is linear until the NIC, the kernel's network stack or "
      "memory bandwidth is the limit. The spreading is the kernel's: "
      "SO_REUSEPORT hashes each connection to one loop, where it stays "
      "for its life. Over thousands of connections the loops get "
      "nearly equal shares (10,000 over 16: 625 each, the busiest some "
      "10% over); over a few, or when a few connections carry most of "
      "the traffic, one loop is the bottleneck while others idle, and "
      "nothing moves a connection. Each loop also needs enough in "
      "flight to stay busy: here about 8 connections x 16 in flight a "
      "loop kept each near a core.")
    lock = ""
    if prof and ins:
        # Instructions a microsecond of server CPU, at least: the echo's
        # instructions over its whole CPU (kernel time included).
        rate = th_ir(t, "new1") / c1
        held = prof["guard_ir_per_login"] / rate
        lock = (" The limits' functions take "
                f"{fmt(prof['guard_ir_per_login'])} instructions a login "
                f"(callgrind), at most {held:.2f} µs "
                f"here (at {approx(rate)} or more instructions a µs, the "
                "echo's pace): even if all of it were under the lock, "
                f"the lock would pass {approx(1e6 / held)} logins/s, "
                f"{1e6 / held / (16e6 / l2):.1f}x what 16 loops ask of "
                "it at this cost a login; moving its cache line between "
                "16 cores adds to each hold, so it is where logins stop "
                "scaling past 16 cores, not before.")
    w(f"- **Logins**: {l2:.0f} µs of server CPU each, about "
      f"{approx(1e6 / l2)} a second a core, {approx(16e6 / l2)} on 16. The "
      "limits (connections in all, per address, per user, the "
      "verification budget) are shared by every loop under one lock, "
      "taken per connection, never per message: 6 times a connection "
      "with the limits lifted as here (accept, socket open, admit at "
      "the upgrade, attach when established, detach, socket closed), "
      "2 more each for the verification budget and the per-user limit "
      "when they are on." + lock)
    w("- **Presence** (chat-room's joins and leaves): one lock over the "
      "server-wide table of who is in which topic, taken per join and "
      "leave, never per message. `wsa_server_topic_users`, which "
      "chat-room calls on every join, builds the room's list under that "
      "lock, so a join to a room of U users holds it for time "
      "proportional to U: big rooms with many joins a second serialise "
      "there, whatever the loops.")
    w(f"- **Fan-out** to L loops costs the publishing thread L - 1 queue "
      f"pushes (L when it is not a loop; about {push:.2f} µs each here: "
      f"some {15 * push:.0f} µs a publish at 16 loops), and wakes every "
      "other loop whether or not it has a member of the topic (the "
      "in-process broker sends every message to every loop). Big topics "
      "gain: each loop delivers to its own members in parallel (1,000 "
      "subscribers: about 63 a loop). Small ones do not: a room of 5 on "
      "16 loops costs 15 pushes and up to 15 wake-ups a message for at "
      "most 5 deliveries, so many small rooms of chatty users stop "
      "scaling with loops well before big rooms do; sending only to "
      "the loops that have members would fix that.")
    w("")


# --only NAME: (run, write its section, its heading, the start of its
# targets row, that row, what it does).
DEFLATE_HEAD = "## permessage-deflate: chat-sized JSON"
DEFLATE_TARGET = "| permessage-deflate: bytes on the wire and server CPU a chat message, against none |"


def deflate_run(build, quick):
    """echo-chat with and without --permessage-deflate, one after the
    other in this run: bytes and server CPU per chat message, memory per
    connection."""
    sys.path.insert(0, HERE)
    import deflate as d
    token = subprocess.run(
        [os.path.join(build, "examples/wsa-token/wsa-token"), "--secret",
         SECRET, "--uid", "bench", "--ttl", "3600"], capture_output=True,
        text=True, check=True).stdout.strip()
    argv = [os.path.join(build, "examples/echo-chat/echo-chat"), "--port",
            "0", "--jwt-secret", SECRET] + UNLIMITED
    out = {}
    for name, extra in (("none", []), ("deflate", ["--permessage-deflate"])):
        srv = Server(name, argv + extra)
        try:
            r = d.exchange(srv, token, bool(extra), 16,
                           500 if quick else 3000)
            r["kib_per_conn"] = d.memory(srv, token, bool(extra),
                                         200 if quick else 1000)
            out[name] = r
        finally:
            srv.stop()
    return out


def deflate_target(r, note=""):
    n, z = r["none"], r["deflate"]
    return (f"{DEFLATE_TARGET} received {ratio(z['rcvd_b'], n['rcvd_b'])}, "
            f"sent {ratio(z['sent_b'], n['sent_b'])}, server CPU "
            f"{ratio(z['cpu_us'], n['cpu_us'])}{note} | measured |")


def write_deflate(w, r, when=""):
    n, z = r["none"], r["deflate"]
    w(DEFLATE_HEAD)
    w("")
    w(when + f"echo-chat with and without `--permessage-deflate`, one "
      f"after the other in the same run, pinned to one core; a raw Python "
      f"client (bench/deflate.py) on 16 connections, 4 in flight each, "
      f"{n['messages']:,} chat messages of {n['payload_b']:.0f} bytes on "
      f"average ({{\"type\":\"chat\",\"message\":...}}, 100 to 300 "
      f"bytes of English-like words), compressed by the client with "
      f"context takeover as browsers do. Bytes are counted at the "
      f"client's socket (frames and headers; not TCP/IP), per message "
      f"echoed; server CPU from /proc/PID/stat over the exchange; memory "
      f"is the server's RSS growth per connection that logged in and had "
      f"one message echoed (1,000 connections; 200 in quick mode).")
    w("")
    w("| | client to server B/msg | server to client B/msg | server CPU "
      "µs/msg | KiB per connection |")
    w("|---|---|---|---|---|")
    for k, v in (("none", n), ("permessage-deflate", z)):
        w(f"| {k} | {v['sent_b']:.1f} | {v['rcvd_b']:.1f} | "
          f"{v['cpu_us']:.2f} | {v['kib_per_conn']:.2f} |")
    w(f"| deflate / none | {ratio(z['sent_b'], n['sent_b'])} | "
      f"{ratio(z['rcvd_b'], n['rcvd_b'])} | "
      f"{ratio(z['cpu_us'], n['cpu_us'])} | "
      f"{ratio(z['kib_per_conn'], n['kib_per_conn'])} |")
    w("")
    w("The server resets its compressor after every message (no context "
      "takeover on its side: an idle connection holds no compressor; "
      "a 4 KiB window and memLevel 5 while it writes), so its replies "
      "gain less than the client's messages, which keep the client's "
      "context. The memory per connection is mostly the decompressor lws "
      "keeps once a compressed message came (zlib's inflate state and its "
      "32 KiB window, and lws' 1 KiB buffers): a client that offers "
      "client_no_context_takeover lets the server drop it after each "
      "message. Reproduce: `bench/run --only deflate`.")
    w("")



JOINS_HEAD = "## Rooms: a join's cost and a room's memory, at 1 and at 128 a connection"
JOINS_TARGET = ("| chat-room: a join's server CPU and a room's memory at 128 "
                "rooms a connection against at 1 |")


def joins_run(build, quick):
    """bench/rooms/joins.py against this build's chat-room."""
    argv = ["/usr/bin/python3", os.path.join(HERE, "rooms", "joins.py"),
            "--chat-room",
            os.path.join(build, "examples/chat-room/chat-room")]
    if quick:
        argv += ["--conns", "50"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError("joins benchmark failed: " + out.stderr[-1500:])
    return json.loads(out.stdout.splitlines()[-1])


def joins_target(r, note=""):
    return (f"{JOINS_TARGET} join {r['join_us_first']:.1f} µs at 1, "
            f"{r['join_us_at_cap']:.1f} µs at 128 "
            f"({ratio(r['join_us_at_cap'], r['join_us_first'])}); "
            f"{r['bytes_per_room_1']:,.0f} B a room at 1, "
            f"{r['bytes_per_room_cap']:,.0f} B at 128{note} | measured |")


def write_joins(w, r, when=""):
    n, cap = r["conns"], r["cap"]
    w(JOINS_HEAD)
    w("")
    w(when + f"chat-room (`--threads 1`, every limit at its default) and "
      f"{n} connections from one address (Debian's python3-websockets, "
      f"bench/rooms/joins.py), each a user of its own. In round k every "
      f"connection joins its k-th room, all at once, and waits for its "
      f"`joined`; {cap} rounds, paced under the default rate. Every room "
      f"is a room of its own with a name of {r['name_bytes']} bytes (the "
      f"longest chat-room takes), so each join also makes a topic: the "
      f"worst case a client can choose. A join's cost is the server's "
      f"CPU time over a round (its threads' schedstat) divided by the "
      f"joins: the parse, the topic and membership, the `joined` and the "
      f"system calls; the medians of the first 8 and of the last 8 rounds. "
      f"Memory is the server's resident set. A join past the cap was "
      f"answered `Too many rooms`.")
    w("")
    w("| | rooms a connection after the join | server CPU µs a join | "
      "bytes a room (resident) |")
    w("|---|---:|---:|---:|")
    w(f"| first rooms | 1 to 8 | {r['join_us_first']:.1f} | "
      f"{r['bytes_per_room_1']:,.0f} (round 1) |")
    w(f"| at the cap | {cap - 7} to {cap} | "
      f"{r['join_us_at_cap']:.1f} | {r['bytes_per_room_cap']:,.0f} "
      f"(rounds 2 to {cap}) |")
    w(f"| at the cap / first | | "
      f"{ratio(r['join_us_at_cap'], r['join_us_first'])} | "
      f"{ratio(r['bytes_per_room_cap'], r['bytes_per_room_1'])} |")
    w("")
    w(f"Resident: {r['rss_start_kib']:,} KiB at the start, "
      f"{r['rss_logged_in_kib']:,} KiB with {n} logged in, "
      f"{r['rss_1_kib']:,} KiB at one room each, {r['rss_cap_kib']:,} KiB "
      f"at {cap} each. The membership is found by one lookup (the loop's "
      f"map keyed by connection and topic), not a walk of the "
      f"connection's rooms; what a join at the cap costs more is the "
      f"same lookups in maps {cap} times fuller ({n * cap:,} memberships "
      f"and topics: more cache misses), not the connection's own rooms. "
      f"A room of its own holds its name twice (the "
      f"loop's topic and the presence table), the membership, a presence "
      f"count and their map entries: at the default limits, 10,000 "
      f"connections in 128 such rooms each would hold about "
      f"{10000 * cap * r['bytes_per_room_cap'] / 1e9:.1f} GB (SECURITY.md). "
      f"Reproduce: `bench/run --only joins`.")
    w("")


# The storm scenario: clients that all lost their connections come back
# at once and recover what their rooms published meanwhile (PROTOCOL.md
# 6.1), on two chat-room nodes sharing one Redis (started by the
# scenario), on one node with Redis and on one node keeping its history
# in process. Nothing is pinned: the nodes, Redis and the clients share
# the 2 cores.
STORM_HEAD = ("## Reconnect storm: 1,000 clients recovering 100 missed "
              "messages each")
STORM_TARGET = ("| chat-room: 1,000 clients reconnecting at once, each "
                "having missed 100 messages: time until all have "
                "recovered; Redis load |")
# 10 rooms of 100: each room's missed chats are read from its history by
# 100 clients (what a storm asks of the history: the same stretch many
# times), and a join tells 99 others, as in a chat room of that size.
STORM = {"clients": 1000, "rooms": 10, "missed": 100}
STORM_QUICK = {"clients": 200, "rooms": 4, "missed": 20}
# chat-room keeps this many chats a room: exactly the missed ones.
STORM_HISTORY = 100
STORM_SIZE = 64  # bytes of each chat message's text
# The clients come from 127.0.0.2 on, this many addresses: about 16
# clients an address (8 on each node), far under the defaults of 256
# connections and a burst of 256 token verifications an address.
STORM_ADDRS = 64
STORM_TURNS = 3
STORM_LAYOUTS = (("two", "two nodes, one Redis"),
                 ("one-redis", "one node with Redis"),
                 ("one", "one node without Redis"))
# A storm during which other work kept more than this much of a core busy
# is measured again, STORM_REDO times at most each; the try with the
# least other work is kept.
STORM_OTHER_MAX = 0.25
STORM_REDO = 2
STORM_MIN_WALL = 0.2


def storm_one(build, layout, redis, prefix, p):
    """One storm: wsa-rooms-bench --mode recover against fresh nodes."""
    nodes = redis_nodes(build, layout, redis, prefix,
                        ["--history", str(STORM_HISTORY)])
    watch = {f"node{i + 1}": n.proc.pid for i, n in enumerate(nodes)}
    if layout != "one":
        watch["redis"] = redis.proc.pid
    # Client g joins on node g % 2 and comes back on the other one; the
    # publishers are on node 1, within chat-room's default rate (15 a
    # second after a burst of 40, under 20 and 50): every limit stays at
    # its default.
    args = ["--mode", "recover", "--pub-url", nodes[0].url, "--clients",
            p["clients"], "--rooms", p["rooms"], "--missed", p["missed"],
            "--size", STORM_SIZE, "--src-first", 2, "--src-addrs",
            STORM_ADDRS]
    for n in nodes:
        args += ["--join-url", n.url]
    for n in reversed(nodes):
        args += ["--back-url", n.url]
    if layout != "one":
        args += ["--redis", f"127.0.0.1:{redis.port}"]
    try:
        r = rooms_bench(build, args, watch, 150)
        # Other work: the machine's busy time less the measured
        # processes' and softirq's (where the loopback's packets are
        # mostly handled, charged to no process).
        mine = sum(r["cpu_s"].values()) + r["client_cpu_s"]
        r["storm_other_cores"] = max(
            0.0, (r["machine_busy_s"] - mine - r["softirq_s"])
            / r["cpu_wall_s"])
        r["nodes_log"] = [n.stderr()[-400:] for n in nodes]
        return r
    finally:
        for n in nodes:
            n.stop()


def storm_run(build, quick):
    """The storm in each layout, the layouts taking turns (quick: fewer
    clients and messages, one turn, no wait for a quiet machine)."""
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] storm: {msg}", file=sys.stderr,
              flush=True)

    p = STORM_QUICK if quick else STORM
    res = {"head": git("rev-parse", "--short", "HEAD"),
           "dirty": len(git("status", "--porcelain", "--", "lib",
                            "include", "examples").splitlines()),
           "turns": 1 if quick else STORM_TURNS, "p": p, "redone": [],
           "runs": {k: [] for k, _ in STORM_LAYOUTS},
           "redis_version": subprocess.run(
               ["redis-server", "--version"], capture_output=True,
               text=True).stdout.split(" sha=")[0]}
    redis = Redis()
    seq = [0]
    res["quiet_wait_s"] = 0.0

    def quiet():
        """Wait for half a second in which other processes keep less
        than REDIS_QUIET of a core busy, within what is left of
        REDIS_QUIET_WAIT."""
        mine = {str(os.getpid()), str(redis.proc.pid)}
        while not quick and res["quiet_wait_s"] < REDIS_QUIET_WAIT:
            p0, m0, t1 = procs_cpu(), machine_cpu(), time.monotonic()
            time.sleep(0.5)
            m1, wall = machine_cpu(), time.monotonic() - t1
            busy = sum(c for _, c in others(p0, procs_cpu(), wall, mine))
            busy += (m1["steal"] - m0["steal"]) / wall
            if busy < REDIS_QUIET:
                return
            res["quiet_wait_s"] += time.monotonic() - t1
    try:
        for turn in range(res["turns"]):
            order = list(STORM_LAYOUTS)
            if turn % 2:
                order.reverse()
            for layout, _ in order:
                tries = []
                while True:
                    seq[0] += 1
                    what = f"{layout} ({turn + 1}/{res['turns']})"
                    quiet()
                    log(what)
                    r = storm_one(build, layout, redis, f"storm{seq[0]}", p)
                    log(f"{layout}: all recovered in {r['storm_s']:.3f} s, "
                        f"other work {r['storm_other_cores']:.2f} cores")
                    tries.append(r)
                    # Below STORM_MIN_WALL the 10 ms clock ticks of /proc
                    # make the other work's share meaningless.
                    if quick or r["storm_other_cores"] <= STORM_OTHER_MAX \
                            or r["cpu_wall_s"] < STORM_MIN_WALL \
                            or len(tries) > STORM_REDO:
                        break
                    res["redone"].append((what, r["storm_other_cores"]))
                # The try the least disturbed.
                r = min(tries, key=lambda x: x["storm_other_cores"])
                res["runs"][layout].append(r)
    finally:
        redis.stop()
    res["took"] = time.time() - t0
    return res


def st_med(runs, f):
    return med([f(r) for r in runs])


def st_span(runs, f, fmt_=lambda x: f"{x:.2f}"):
    xs = sorted(f(r) for r in runs)
    return fmt_(xs[0]) if len(xs) == 1 else f"{fmt_(xs[0])} to {fmt_(xs[-1])}"


def st_nodes_cpu(r):
    return sum(v for k, v in r["cpu_s"].items() if k.startswith("node"))


def storm_target(a, note=""):
    two, one = a["runs"]["two"], a["runs"]["one"]
    n = a["p"]["clients"]
    return (f"{STORM_TARGET} two nodes, one Redis: all {n:,} recovered in "
            f"{st_med(two, lambda r: r['storm_s']):.2f} s (a client's p50 "
            f"{st_med(two, lambda r: r['recovered_ms']['p50']):.0f} ms, p99 "
            f"{st_med(two, lambda r: r['recovered_ms']['p99']):.0f} ms); "
            f"Redis {st_med(two, lambda r: r['cpu_s']['redis']):.2f} s CPU, "
            f"{st_med(two, lambda r: r['redis']['commands']) / n:.0f} "
            f"commands a client; one node without Redis: "
            f"{st_med(one, lambda r: r['storm_s']):.2f} s{note} | measured |")


def write_storm(w, a, when=""):
    p, runs = a["p"], a["runs"]
    names = dict(STORM_LAYOUTS)
    N, R, M = p["clients"], p["rooms"], p["missed"]
    w(STORM_HEAD)
    w("")
    w(when + f"chat-room at `{a['head']}`"
      + (f" (with {a['dirty']} files changed under lib, include or "
         "examples)" if a["dirty"] else "")
      + f" with `--history {STORM_HISTORY}`, every limit at its default, "
      f"in three layouts: **two nodes** sharing one {a['redis_version']} "
      "(started by the benchmark on a free loopback port, no "
      "persistence), **one node with Redis**, and **one node without "
      "Redis** (the history kept in process). The clients are "
      "`wsa-rooms-bench --mode recover` (bench/rooms: plain sockets and "
      "epoll, chat-room's protocol), each a user of its own, from "
      f"{STORM_ADDRS} source addresses (127.0.0.2 on). {N:,} clients in "
      f"{R} rooms of {N // R} log in (HS256) and join; each notes its "
      "room's position from `joined`. Then every socket is cut (a "
      "reset: no close handshake), and one publisher a room, on node 1, "
      f"publishes {M} chats of {STORM_SIZE} bytes (15 a second after a "
      "burst of 40: under the default 20 a second and burst of 50 a "
      "connection; the publishers are gone before the storm). Then all "
      f"{N:,} connect again at once (their `connect()`s within the "
      "spread below), with two nodes each on the other node than "
      "before; each logs in and joins with `since` its position. A "
      f"client has recovered when it has had its room's {M} chats, each "
      "once, in order (offsets one more each in the same epoch, the "
      "messages in the order published), then `joined` with `recovered` "
      "true at the room's last offset; anything after that (half a "
      "second is watched) would be a chat sent twice. **The storm's "
      "time** is from the first reconnect's `connect()` until the last "
      "client has recovered; a client's time is from that same instant. "
      "CPU is each process' user + system time over the storm, Redis' "
      "from /proc; Redis' commands are the change in `INFO "
      "commandstats` over the storm (a command a script calls counts "
      "too, inside its `EVAL`). **Nothing is pinned**: the nodes, Redis "
      "and the clients share the 2 cores. The layouts take turns ("
      f"{rd_turns(a['turns'])}, the order reversed every other turn, "
      "fresh nodes and a fresh prefix in Redis each run); medians of the "
      "turns, ranges over them. A storm during which other work on this "
      f"shared machine kept more than {STORM_OTHER_MAX} of a core busy "
      f"(the machine's busy time less the measured processes' and "
      "softirq's, over the storm: the table's last column) is "
      f"measured again ({STORM_REDO} times at most each, the try with "
      "the least other work kept; a storm shorter "
      f"than {STORM_MIN_WALL} s is not, /proc's clock ticks of 10 ms "
      "being too coarse for it; before each storm the benchmark waited "
      "for half a second in which other processes kept less than "
      f"{REDIS_QUIET} of a core busy, {a['quiet_wait_s']:.0f} s in all, "
      f"at most {REDIS_QUIET_WAIT} s)"
      + (f": {len(a['redone'])} times (the other work of the tries "
         f"followed by another: {min(x[1] for x in a['redone']):.2f} to "
         f"{max(x[1] for x in a['redone']):.2f} of a core)."
         if a["redone"] else "; none was."))
    w("")
    w("| layout | all recovered (s) | a client: p50 ms | p99 ms | "
      "upgraded, p99 ms | first missed chat, p50 ms | nodes' CPU s | "
      "Redis CPU s | Redis commands | recovered exactly | other work, "
      "cores |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, _ in STORM_LAYOUTS:
        rs = runs[k]
        red = k != "one"
        w(f"| {names[k]} | {st_med(rs, lambda r: r['storm_s']):.3f} "
          f"({st_span(rs, lambda r: r['storm_s'], lambda x: f'{x:.3f}')}) | "
          f"{st_med(rs, lambda r: r['recovered_ms']['p50']):.0f} | "
          f"{st_med(rs, lambda r: r['recovered_ms']['p99']):.0f} | "
          f"{st_med(rs, lambda r: r['upgraded_ms']['p99']):.0f} | "
          f"{st_med(rs, lambda r: r['first_chat_ms']['p50']):.0f} | "
          f"{st_med(rs, st_nodes_cpu):.2f} | "
          + (f"{st_med(rs, lambda r: r['cpu_s']['redis']):.2f} | "
             f"{st_med(rs, lambda r: r['redis']['commands']):,.0f} | "
             if red else "- | - | ")
          + f"{min(r['recovered_exactly'] for r in rs):,} of {N:,} | "
          f"{st_med(rs, lambda r: r['storm_other_cores']):.2f} |")
    w("")
    two = runs["two"]
    last = two[-1]
    w(f"Every run: {N:,} clients each recovered exactly its {M} (in all "
      f"{N * M:,} chats a run), none twice, none out of order, none "
      "missing, every `joined` with `recovered` true (a run that did not "
      "would have failed the scenario). The connects of a storm spread "
      f"over {st_med(two, lambda r: r['connects_spread_ms']):.0f} ms "
      "(two nodes; the clients open them one after another from "
      f"{two[-1]['processes']} process"
      + ("es" if two[-1]["processes"] > 1 else "")
      + ": wsa-rooms-bench spreads its clients over processes of at "
      "most 5,000, under the 20,000 descriptors a process may have "
      "here), so a client's time from its own `connect()` differs from "
      "the table's by no more than that: its p99 "
      f"{st_med(two, lambda r: r['own_ms']['p99']):.0f} ms with two "
      "nodes.")
    w("")
    pairs = N // R * (N // R - 1) // 2 * R
    share = st_med(runs["two"], lambda r: r["presence_before_joined_listed"]
                   / max(1, r["presence_joins"]))

    def pres(k):
        rs = runs[k]
        early = st_med(rs, lambda r: r["presence_before_joined_listed"])
        return (f"{st_med(rs, lambda r: r['presence_joins']):,.0f} "
                f"({early:,.0f} before its `joined`)")
    w("**Presence.** As the rooms filled again each client was told of "
      "the others' joins (a user of its own each): presence events to "
      f"the clients over the storm, {names['two']} {pres('two')}, "
      f"{names['one-redis']} {pres('one-redis')}, {names['one']} "
      f"{pres('one')}. Each pair of clients in a room needs one: the "
      "later to join finds the earlier in its `joined`'s `users`, the "
      f"earlier is told of the later, {pairs:,} in all. \"Before its "
      "`joined`\" counts the events a client got before its own "
      "`joined` naming a user that `joined` then listed: redundant "
      "(the client hears of that user twice)"
      + (f"; with two nodes they were {share:.0%} of the storm's "
         "presence events" if share else "")
      + ". The benchmark's clients "
      "count them and do not fail on them: PROTOCOL.md has the sender "
      "of a join get `joined` and the room's other members the "
      "`presence`, and says nothing of events before `joined`.")
    w("")
    w(f"**Redis over a storm, two nodes** (the last run; {N:,} clients): "
      f"{last['redis']['commands']:,} commands "
      f"({last['redis']['commands'] / N:.1f} a client), "
      f"{last['redis']['net_in_bytes'] / 1e6:.1f} MB in and "
      f"{last['redis']['net_out_bytes'] / 1e6:.1f} MB out, "
      f"{last['cpu_s']['redis']:.2f} s of CPU "
      f"({last['cpu_s']['redis'] / N * 1e6:.0f} µs a client) in "
      f"{last['cpu_wall_s']:.2f} s; node 1 {last['cpu_s']['node1']:.2f} s, "
      f"node 2 {last['cpu_s']['node2']:.2f} s, the clients "
      f"{last['client_cpu_s']:.2f} s.")
    w("")
    w("| command | calls | a client | µs in Redis (INFO) | µs a call |")
    w("|---|---:|---:|---:|---:|")
    bc = last["redis"]["by_command"]
    for name in sorted(bc, key=lambda x: -bc[x]["usec"]):
        c = bc[name]
        w(f"| {name.upper()} | {c['calls']:,} | {c['calls'] / N:.2f} | "
          f"{c['usec']:,} | {c['usec'] / c['calls']:.1f} |")
    w("")
    for line in storm_reading(a):
        w(line)
    w("")


def storm_reading(a):
    """What limits the time, from this run's figures."""
    runs, p = a["runs"], a["p"]
    N = p["clients"]
    two, oner, one = runs["two"], runs["one-redis"], runs["one"]
    t2, t1r, t1 = (st_med(x, lambda r: r["storm_s"])
                   for x in (two, oner, one))
    red = st_med(two, lambda r: r["cpu_s"]["redis"])
    out2 = st_med(two, lambda r: r["redis"]["net_out_bytes"])
    n2, n1 = st_med(two, st_nodes_cpu), st_med(one, st_nodes_cpu)
    cl2 = st_med(two, lambda r: r["client_cpu_s"])
    soft2 = st_med(two, lambda r: r["softirq_s"])
    other2 = st_med(two, lambda r: r["storm_other_cores"])
    busy2 = st_med(two, lambda r: r["machine_busy_s"] / r["cpu_wall_s"])
    up99 = st_med(two, lambda r: r["upgraded_ms"]["p99"])
    chat50 = st_med(two, lambda r: r["first_chat_ms"]["p50"])
    rec50 = st_med(two, lambda r: r["recovered_ms"]["p50"])
    up1 = st_med(one, lambda r: r["upgraded_ms"]["p99"])
    rec1 = st_med(one, lambda r: r["recovered_ms"]["p50"])
    work = red + n2 + cl2 + soft2
    est = max(red, work / 2)
    bc = two[-1]["redis"]["by_command"]
    twice = st_med(two, lambda r: r["presence_before_joined_listed"]) \
        > N * (p["clients"] // p["rooms"] - 1) / 4

    def per(cmd):
        return bc.get(cmd, {"calls": 0})["calls"] / N
    return [
        "**What limits the time.** Not the token verification limit: "
        f"{N:,} clients from {STORM_ADDRS} addresses are about "
        f"{N // STORM_ADDRS} an address, within the default burst of 256 "
        "verifications an address (and an address may hold only 256 "
        "connections at the defaults, so even a storm from one address "
        "stays within that burst); every client had upgraded within "
        f"{up99:.0f} ms (p99, two nodes). With Redis, the clients wait "
        "for Redis' answers: a client's first missed chat came "
        f"{chat50:.0f} ms after the first connect at the median, and "
        "half the clients had "
        f"recovered only {rec50:.0f} ms after it, of {t2 * 1e3:.0f} ms for "
        "all. Each join from a position costs Redis "
        f"{per('eval'):.0f} scripts ({per('hkeys'):.0f} HKEYS of the "
        f"room's users against {per('hsetnx'):.0f} HSETNX: the presence "
        "script runs twice, once for the join and once for `joined`'s "
        f"users; and the recovery's, which reads the {p['missed']} kept "
        "with one XRANGE) and "
        f"{two[-1]['redis']['commands'] / N:.0f} commands in all, and "
        f"{out2 / N / 1e3:.0f} KB of replies; on Redis' one thread that "
        f"was {red:.2f} s of CPU over the storm ({red / N * 1e6:.0f} µs a "
        f"client): the floor of a storm of {N:,} on one Redis, "
        "however many nodes. The nodes used "
        f"{n2:.2f} s between them with Redis against {n1:.2f} s for one "
        "node without (the missed chats come as Redis replies to parse"
        + (", and each client was told of most others' joins twice, "
           "above" if twice else "") + "), "
        f"the clients {cl2:.2f} s, the loopback's softirq {soft2:.2f} s: "
        f"{work:.2f} s of work in all, and with other work on this "
        f"shared machine ({other2:.2f} of a core at the median) the 2 "
        f"cores were {busy2:.0%} busy over the storm, so Redis had about "
        f"{red / t2:.0%} of a core. Alone on the 2 cores the storm would "
        f"take at best about {est:.2f} s (the larger of that work over 2 "
        "cores and Redis' own time on its one thread: an estimate, not a "
        f"measure). One node with Redis took {t1r:.2f} s"
        + (", so two nodes against one is not what costs"
           if t1r >= 0.8 * t2 else "") + ". One node without Redis "
        f"took {t1:.2f} s ({ratio(t2, t1)} two nodes with Redis against "
        "it): its history is read in process with no round trip, and "
        f"its one loop did everything in {n1:.2f} s of CPU"
        + (", the last upgrades waiting behind the first recoveries "
           f"(upgraded p99 {up1:.0f} ms against a client's recovery p50 "
           f"{rec1:.0f} ms)" if up1 > rec1 else "") + "."]


# The metrics scenario: JSON echo with echo-chat's counters on (its
# default) and off (--no-metrics), both serving --metrics, in one run.
# (size, connections, in flight).
METRICS_ECHO = [(16, 16, 16), (4096, 16, 16)]
# Pairs of runs (on then off, off then on, ...), each its warm-up and
# measured seconds: drift on this machine (whole runs 1.5x apart) falls
# on both alike, and the medians are compared.
METRICS_PAIRS = 5
METRICS_WARMUP = 0.5
METRICS_SECONDS = 2
METRICS_HEAD = "## Metrics: counting on against off"
METRICS_TARGET = ("| JSON echo (16 x 16, 16 B and 4 KiB) with metrics "
                  "counting on within 3% of `--no-metrics` |")


def metrics_variants(build):
    """(name, argv) of echo-chat counting and not; the same exposition
    path in both, so that counting is the only difference."""
    argv = [os.path.join(build, "examples/echo-chat/echo-chat"), "--port",
            "0", "--jwt-secret", SECRET, "--metrics", "/metrics"] + UNLIMITED
    return [("on", argv), ("off", argv + ["--no-metrics"])]


def scrape_received(url):
    """wsa_messages_received_total of type chat on /ws/chat, from the
    exposition of the server at url (ws://HOST:PORT/ws/chat)."""
    import urllib.request
    base = "http" + url[2:].split("/ws/", 1)[0]
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^wsa_messages_received_total\{[^}]*type="chat"[^}]*\} '
                  r'(\S+)$', text, re.M)
    if not m:
        raise RuntimeError("no wsa_messages_received_total of type chat "
                           "in the exposition")
    return float(m.group(1))


def metrics_echo(build, name, argv, size, conns, k, dur):
    """One pinned echo run (as the throughput sections): the generator's
    JSON, the server's CPU, and what its exposition counted."""
    srv = Server(name, argv)
    try:
        cpu0 = srv.cpu_s()
        r = loadgen(build, srv.url, "wsa",
                    ["--mode", "echo", "--conns", conns, "--inflight", k,
                     "--size", size, "--duration", dur, "--warmup",
                     METRICS_WARMUP], dur + 60)
        r["server_cpu_s"] = srv.cpu_s() - cpu0
        r["counted"] = scrape_received(srv.url)
    finally:
        srv.stop()
    # The variant counts what it was sent (warm-up included), or nothing.
    if (r["counted"] < r["messages"]) if name == "on" else r["counted"]:
        raise RuntimeError(f"metrics {name}: {r['counted']:.0f} chat "
                           f"messages counted for {r['messages']} echoed")
    return r


def metrics_run(build, quick):
    """JSON echo, counting on and off in alternating pairs, pinned; then
    the instructions a message of each under callgrind."""
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] metrics: {msg}", file=sys.stderr,
              flush=True)

    V = metrics_variants(build)
    pairs = 1 if quick else METRICS_PAIRS
    dur = 1 if quick else METRICS_SECONDS
    res = {"pairs": pairs, "duration": dur, "echo": [],
           "head": git("rev-parse", "--short", "HEAD"),
           "dirty": len(git("status", "--porcelain", "--", "lib",
                            "include", "examples").splitlines())}
    for size, conns, k in METRICS_ECHO:
        runs = {"on": [], "off": []}
        for i in range(pairs):
            for name, argv in (V if i % 2 == 0 else V[::-1]):
                log(f"echo {size} B {conns}x{k} {name} ({i + 1}/{pairs})")
                runs[name].append(metrics_echo(build, name, argv, size,
                                               conns, k, dur))
        res["echo"].append({"size": size, "conns": conns, "inflight": k,
                            "runs": runs})
    res["instructions"] = instructions(
        build, [(n, a, None) for n, a in V], quick, log, METRICS_ECHO)
    res["took"] = time.time() - t0
    log("done")
    return res


def mx_rate(runs):
    return med([r["msgs_per_s"] for r in runs])


def mx_cores(runs):
    """The server's CPU over the generator's whole run (set-up and
    warm-up included), in cores."""
    return med([r["server_cpu_s"] / r["wall_total_s"] for r in runs])


def mx_cpu_us(runs):
    """Server CPU µs a message: its cores over the measured rate (the
    off variant counts no messages to divide by)."""
    return med([r["server_cpu_s"] / r["wall_total_s"] * 1e6 /
                r["msgs_per_s"] for r in runs])


def metrics_ratios(m):
    """{size: (on / off messages/s, on / off instructions or None)}."""
    out = {}
    for e in m["echo"]:
        on, off = e["runs"]["on"], e["runs"]["off"]
        ir = (m["instructions"] or {}).get("sizes", {}).get(e["size"])
        out[e["size"]] = (mx_rate(on) / mx_rate(off),
                          ir["on"] / ir["off"] if ir else None)
    return out


def metrics_target(m, note=""):
    r = metrics_ratios(m)
    ok = all(t >= 0.97 for t, _ in r.values())
    got = "; ".join(
        f"{th_size(s)} {t:.3f}x" + (f" (instructions a message {i:.3f}x)"
                                    if i else "")
        for s, (t, i) in r.items())
    return (f"{METRICS_TARGET} {got}{note} | "
            f"{'met' if ok else '**missed**'} |")


def write_metrics(w, m, when=""):
    r = metrics_ratios(m)
    w(METRICS_HEAD)
    w("")
    w(when + f"echo-chat at `{m['head']}`"
      + (f" (with {m['dirty']} files changed under lib, include or "
         "examples)" if m["dirty"] else "")
      + ", counting (its default) and with `--no-metrics` (it counts "
      "nothing), both with `--metrics /metrics` and the throughput "
      "sections' limits lifted; server pinned to core 0, load generator "
      f"to core 1; JSON echo, 16 connections x 16 in flight. {m['pairs']} "
      f"pairs of runs, on then off, then off then on, and so on ("
      f"{METRICS_WARMUP} s of warm-up, then {m['duration']} s measured, "
      "a fresh server each), so that drift on this machine falls on both "
      "alike; medians, the range is over the runs. After each run the "
      "exposition is read: the counting server must have counted every "
      "message echoed, the other none. Server CPU is in cores, over the "
      "load generator's whole run (set-up and warm-up included); a "
      "message's share is that over the measured rate.")
    w("")
    w("| size | metrics | messages/s | range | vs off | p50 µs | p99 µs "
      "| server CPU | server CPU µs a message |")
    w("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for e in m["echo"]:
        off = mx_rate(e["runs"]["off"])
        for name in ("on", "off"):
            runs = e["runs"][name]
            rates = [x["msgs_per_s"] for x in runs]
            w(f"| {th_size(e['size'])} | {name} | {fmt(mx_rate(runs))} | "
              f"{th_span(rates)} | {ratio(mx_rate(runs), off)} | "
              f"{fmt(med([x['p50_us'] for x in runs]))} | "
              f"{fmt(med([x['p99_us'] for x in runs]))} | "
              f"{mx_cores(runs):.2f} | {mx_cpu_us(runs):.2f} |")
    w("")
    within = []
    for e in m["echo"]:
        pr = [a["msgs_per_s"] / b["msgs_per_s"]
              for a, b in zip(e["runs"]["on"], e["runs"]["off"])]
        within.append(f"{th_size(e['size'])} {min(pr):.2f} to "
                      f"{max(pr):.2f}x")
    w("On / off within each pair: " + ", ".join(within) + ".")
    w("")
    ins = m["instructions"]
    if ins:
        a, b = ins["seconds"]
        parts = [f"{th_size(s)}: on {fmt(round(v['on']))}, off "
                 f"{fmt(round(v['off']))}, **{v['on'] / v['off']:.3f}x**"
                 for s, v in ins["sizes"].items()]
        w("Instructions a message, counted rather than timed (callgrind, "
          "user space only: the server's code and its libraries, not the "
          f"kernel; the same echo, the count of a {b} s run less that of "
          f"a {a} s one over the messages between them, so that start, "
          "set-up and stop cancel): " + "; ".join(parts) + ". The "
          "machine's noise does not reach this count, but it misses the "
          "clock: valgrind hides the vDSO, so the two clock_gettime calls "
          "a counting server makes around each handler call (for "
          "wsa_handler_duration_seconds) are system calls there, outside "
          "user space, where natively they are vDSO calls of some tens of "
          "nanoseconds each.")
    else:
        w("Instructions a message: not counted (no valgrind).")
    w("")
    met = all(t >= 0.97 for t, _ in r.values())
    w("Target: JSON echo with metrics counting on within 3% of "
      f"`--no-metrics` in messages/s: {'met' if met else '**missed**'} ("
      + ", ".join(f"{th_size(s)} {t:.3f}x" for s, (t, _) in r.items())
      + "). Reproduce: `bench/run --only metrics`.")
    w("")


# The redis scenario: chat-room on two nodes sharing one Redis, against
# one node (with and without --redis), in one run. Nothing is pinned:
# two nodes, Redis and the clients share the two cores.
REDIS_HEAD = "## Across nodes: two chat-rooms sharing one Redis"
REDIS_TARGET = ("| chat-room across two nodes sharing one Redis, against "
                "one node: delivery latency, messages/s, a publish to "
                "10,000 |")
# Delivery at a chat pace: ROOMS rooms, each one sender sending RATE
# messages a second (under chat-room's default 20 a second per
# connection: every limit stays at its default) and RECEIVERS receivers.
REDIS_PACED = {"rooms": 20, "receivers": 10, "rate": 15}
# As fast as it goes: a few rooms, each sender keeping WINDOW messages in
# flight (one is done when every receiver of its room has it).
REDIS_MAX = {"rooms": 4, "receivers": 10, "window": 16}
# The same with one receiver a room, two nodes only: with the run above,
# it splits node 2's work a message into what each message costs it and
# what each delivery does.
REDIS_MAX1 = {"rooms": 4, "receivers": 1, "window": 16}
REDIS_SIZE = 64  # bytes of each chat message's text
REDIS_SECONDS = {"paced": 4, "max": 2, "max1": 2}
REDIS_WARMUP = 1
# Turns: every layout once a turn, so that drift on this shared machine
# falls on all alike; medians over the turns.
REDIS_TURNS = 3
# A run during which other processes kept more than this much of a core
# busy is measured again, REDIS_REDO times at most in the scenario.
REDIS_OTHER_MAX = 0.25
REDIS_REDO = 6
# Before each run, up to this long in all, the scenario waits for a
# half second in which other processes keep less than REDIS_QUIET of a
# core busy.
REDIS_QUIET = 0.15
REDIS_QUIET_WAIT = 45
REDIS_FANOUT = 10000
REDIS_FANOUT_ROUNDS = 20
# The fan-out's subscribers come from this many source addresses
# (127.0.0.2 on): at most 157 each, under the default 256 a server
# allows an address (and its burst of 256 token verifications).
REDIS_FANOUT_ADDRS = 64
# chat-room allows 10,000 connections in all by default: 10,000
# subscribers and the publisher on one node are 10,001.
REDIS_FANOUT_MAX_CONNS = "12000"
REDIS_LAYOUTS = (("two", "two nodes, one Redis"),
                 ("one-redis", "one node with Redis"),
                 ("one", "one node without Redis"))


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """redis-server on a free loopback port, no persistence; answered
    PING before this returns (10 s at most)."""

    def __init__(self):
        import socket
        if not shutil.which("redis-server"):
            raise RuntimeError("no redis-server (scripts/deps test "
                               "installs it)")
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"redis://127.0.0.1:{self.port}"
        end = time.time() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > end:
                self.stop()
                self.log.seek(0)
                raise RuntimeError("redis-server did not answer PING: "
                                   + self.log.read().decode()[-1000:])
            time.sleep(0.05)

    def cmd(self, *args):
        """One command; its reply, decoded simply (a status, an error, a
        number or a bulk string; an array as a list of those)."""
        import socket
        req = f"*{len(args)}\r\n" + "".join(
            f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), 2) as s:
            s.sendall(req.encode())
            f = s.makefile("rb")

            def one():
                line = f.readline().decode().rstrip("\r\n")
                kind, rest = line[:1], line[1:]
                if kind in "+-":
                    return rest
                if kind == ":":
                    return int(rest)
                if kind == "$":
                    return None if rest == "-1" else \
                        f.read(int(rest) + 2)[:-2].decode(errors="replace")
                if kind == "*":
                    return [one() for _ in range(int(rest))]
                raise OSError(f"redis: unexpected reply {line!r}")
            return one()

    def cpu_s(self):
        return proc_cpu_s(f"/proc/{self.proc.pid}/stat")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rooms_bench(build, args, watch, timeout):
    """wsa-rooms-bench's JSON; watch: {name: pid} whose CPU it reports.
    "others": the other processes that kept 5% of a core or more busy
    meanwhile (this machine is shared), and the time stolen by the
    hypervisor in the measured window when 5% or more; "other_cores"
    their sum."""
    argv = [os.path.join(build, "bench/rooms/wsa-rooms-bench"), "--secret",
            SECRET] + [str(a) for a in args]
    for name, pid in watch.items():
        argv += ["--watch", f"{name}:{pid}"]
    p0, t0 = procs_cpu(), time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=timeout, preexec_fn=raise_nofile)
    p1, t1 = procs_cpu(), time.monotonic()
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"wsa-rooms-bench {args[:2]} failed "
                           f"({out.returncode}): " + out.stderr[-1500:])
    r = json.loads(lines[-1])
    r["log"] = out.stderr[-600:]
    r["others"] = others(p0, p1, t1 - t0,
                         {str(p) for p in watch.values()}
                         | {str(os.getpid())})
    # CPU the hypervisor gave to other guests during the measured
    # window counts as other work too: this machine is a shared guest.
    stolen = r["steal_s"] / r["cpu_wall_s"] if r.get("cpu_wall_s") else 0
    if stolen >= 0.05:
        r["others"].append(("stolen by the hypervisor", stolen))
    r["other_cores"] = sum(c for _, c in r["others"])
    return r


def redis_nodes(build, layout, redis, prefix, extra=(), extra1=()):
    """The chat-room nodes of a layout: [node 1] or [node 1, node 2];
    extra goes to every node, extra1 to node 1 only."""
    argv = [os.path.join(build, "examples/chat-room/chat-room"), "--port",
            "0", "--jwt-secret", SECRET] + list(extra)
    red = ["--redis", redis.url, "--redis-prefix", prefix]
    if layout == "one":
        return [Server("node 1", argv + list(extra1), cpu=None)]
    if layout == "one-redis":
        return [Server("node 1", argv + red + list(extra1), cpu=None)]
    nodes = [Server("node 1", argv + red + list(extra1), cpu=None)]
    try:
        nodes.append(Server("node 2", argv + red, cpu=None))
    except Exception:
        nodes[0].stop()
        raise
    return nodes


def redis_deliver(build, layout, redis, prefix, load):
    """One delivery run: senders on node 1, receivers on the last node."""
    p = {"paced": REDIS_PACED, "max": REDIS_MAX, "max1": REDIS_MAX1}[load]
    # The throughput senders go past chat-room's 20 messages a second per
    # connection (the point of the run), so the sender's node lifts the
    # rate limit; the receivers send nothing after their join.
    extra1 = ["--rate-limit", "unlimited"] if load != "paced" else []
    nodes = redis_nodes(build, layout, redis, prefix, (), extra1)
    watch = {f"node{i + 1}": n.proc.pid for i, n in enumerate(nodes)}
    if layout != "one":
        watch["redis"] = redis.proc.pid
    args = ["--mode", "deliver", "--send-url", nodes[0].url, "--recv-url",
            nodes[-1].url, "--rooms", p["rooms"], "--receivers",
            p["receivers"], "--size", REDIS_SIZE, "--duration",
            REDIS_SECONDS[load], "--warmup", REDIS_WARMUP]
    args += (["--rate", p["rate"]] if load == "paced"
             else ["--window", p["window"]])
    if layout != "one":
        # A subscriber of the rooms' channels beside the nodes: when a
        # message has reached Redis' fan-out.
        args += ["--tap", f"127.0.0.1:{redis.port}", "--tap-pattern",
                 f"{prefix}:t:bench-room-*"]
    try:
        t0 = [n.threads_cpu_s() for n in nodes]
        r = rooms_bench(build, args, watch, REDIS_SECONDS[load] + 90)
        t1 = [n.threads_cpu_s() for n in nodes]
        # Each node's CPU over the whole run, its loop's (the main
        # thread: one service thread) and the rest's (the Redis thread).
        r["threads"] = {}
        for i, n in enumerate(nodes):
            d = {t: t1[i][t] - t0[i].get(t, 0) for t in t1[i]}
            loop = d.get(str(n.proc.pid), 0)
            r["threads"][f"node{i + 1}"] = {
                "loop": loop, "other": sum(d.values()) - loop}
        r["nodes_log"] = [n.stderr()[-400:] for n in nodes]
        return r
    finally:
        for n in nodes:
            n.stop()


def redis_fanout(build, layout, redis, prefix, rounds):
    """A publish to REDIS_FANOUT subscribers, spread over the layout's
    nodes (the publisher on node 1)."""
    nodes = redis_nodes(build, layout, redis, prefix,
                        ["--max-connections", REDIS_FANOUT_MAX_CONNS])
    watch = {f"node{i + 1}": n.proc.pid for i, n in enumerate(nodes)}
    if layout != "one":
        watch["redis"] = redis.proc.pid
    args = ["--mode", "fanout", "--pub-url", nodes[0].url, "--subs",
            REDIS_FANOUT, "--rounds", rounds, "--src-first", 2,
            "--src-addrs", REDIS_FANOUT_ADDRS]
    for n in nodes:
        args += ["--sub-url", n.url]
    try:
        base = {f"node{i + 1}": n.rss_kib() for i, n in enumerate(nodes)}
        r = rooms_bench(build, args, watch, 240)
        # Resident memory a connection: the nodes' growth from start to
        # every subscriber in the room (the publisher too on node 1).
        conns = REDIS_FANOUT + 1
        grown = sum(r["rss_kib"][k] - base[k] for k in base)
        r["kib_per_conn"] = grown / conns
        # The nodes' CPU a delivery over the rounds (warm-up included).
        r["node_us_per_delivery"] = sum(
            r["cpu_s"][k] for k in base) / ((rounds + 1) * REDIS_FANOUT) \
            * 1e6
        return r
    finally:
        for n in nodes:
            n.stop()


# redis-benchmark's runs: (subscribers of the channel, clients, in
# flight each, requests, in quick mode): one client unpipelined (a round
# trip each: what one PUBLISH costs alone), then 50 clients 16 in flight
# each (the ceiling) to 0, 2 and 8 subscribers (the rooms' nodes).
REDIS_BENCH_RUNS = ((2, 1, 1, 50000, 20000), (0, 50, 16, 600000, 200000),
                    (2, 50, 16, 600000, 200000), (8, 50, 16, 300000, 100000))


def redis_benchmark(redis, quick):
    """redis-benchmark's PUBLISH to a channel redis-cli subscribers
    listen on; Redis' CPU over each run."""
    if not shutil.which("redis-benchmark"):
        return None
    import csv
    import io
    # The payload: a chat message of the runs above as a node publishes
    # it (its size read with MONITOR).
    payload = "x" * redis_payload_size()
    out = {"payload_b": len(payload), "runs": []}
    # redis-cli prints every message it gets: on a busy machine it falls
    # behind the publishers, and past Redis' default output limit for a
    # subscriber (32 MiB, or 8 MiB for 60 s) Redis would drop it. Lifted
    # here, the nodes' runs being over: the subscribers measure nothing.
    redis.cmd("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
    for k, clients, pipe, n, nq in REDIS_BENCH_RUNS:
        n = nq if quick else n
        subs = [subprocess.Popen(["redis-cli", "-p", str(redis.port),
                                  "SUBSCRIBE", "bench-ch"],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                for _ in range(k)]
        try:
            end = time.time() + 10
            while redis.cmd("PUBSUB", "NUMSUB", "bench-ch")[1] < k:
                if time.time() > end:
                    raise RuntimeError("redis-cli subscribers not in "
                                       "place")
                time.sleep(0.05)
            c0, t0 = redis.cpu_s(), time.time()
            r = subprocess.run(
                ["redis-benchmark", "-p", str(redis.port), "-c",
                 str(clients), "-P", str(pipe), "-n", str(n), "--csv",
                 "PUBLISH", "bench-ch", payload],
                capture_output=True, text=True, timeout=120)
            wall, cpu = time.time() - t0, redis.cpu_s() - c0
            kept = redis.cmd("PUBSUB", "NUMSUB", "bench-ch")[1]
        finally:
            for sub in subs:
                sub.terminate()
                sub.wait(10)
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        if r.returncode or not rows:
            raise RuntimeError("redis-benchmark failed: "
                               + (r.stdout + r.stderr)[-800:])
        if kept != k:
            raise RuntimeError(f"redis-benchmark: {k - kept} of {k} "
                               "subscribers dropped by Redis")
        row = rows[-1]
        out["runs"].append({
            "subscribers": k, "clients": clients, "pipeline": pipe,
            "requests": n, "rps": float(row["rps"]),
            "p50_ms": float(row.get("p50_latency_ms", "nan")),
            "p99_ms": float(row.get("p99_latency_ms", "nan")),
            "redis_cores": cpu / wall, "redis_us": cpu / n * 1e6})
    return out


# Bytes of the channel message a node publishes for one chat message of
# the throughput runs; read with MONITOR in redis_run() (None until then).
REDIS_PAYLOAD = {"size": None}


def redis_payload_size():
    return REDIS_PAYLOAD["size"] or 200


def redis_monitor(build, redis, prefix):
    """What a node sends Redis for one chat message across two nodes:
    MONITOR while one sender sends a few; the commands seen, by name,
    and the largest PUBLISH's payload."""
    import socket
    nodes = redis_nodes(build, "two", redis, prefix)
    s = socket.create_connection(("127.0.0.1", redis.port), 5)
    try:
        s.sendall(b"MONITOR\r\n")
        f = s.makefile("rb")
        if not f.readline().startswith(b"+OK"):
            raise RuntimeError("redis: MONITOR refused")
        rooms_bench(build, ["--mode", "deliver", "--send-url",
                            nodes[0].url, "--recv-url", nodes[1].url,
                            "--rooms", 1, "--receivers", 1, "--size",
                            REDIS_SIZE, "--rate", 10, "--duration", 1,
                            "--warmup", 0, "--settle", 0.3], {}, 60)
        s.settimeout(0.5)
        text = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                text += chunk
        except socket.timeout:
            pass
    finally:
        s.close()
        for n in nodes:
            n.stop()
    cmds, biggest, sample = {}, 0, ""
    for line in text.decode(errors="replace").splitlines():
        m = re.match(r'^\+[\d.]+ \[[^]]*\] "([^"]+)"(.*)$', line)
        if not m:
            continue
        name = m.group(1).upper()
        cmds[name] = cmds.get(name, 0) + 1
        if name == "PUBLISH":
            parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
            if len(parts) >= 2:
                # MONITOR escapes the payload; unescape to count bytes.
                raw = parts[1].encode().decode("unicode_escape")
                if len(raw) > biggest:
                    biggest, sample = len(raw), line[:300]
    return {"commands": cmds, "publish_b": biggest, "sample": sample}


# Where a message's time goes: the system calls of one room (one sender
# on node 1, one receiver on the last node, at a chat pace) under
# `perf trace`, followed message by message from the sender's send() to
# the receiver's recv(). Tracing slows every call it sees, so the hops'
# sum is above the untraced latency; their shares are what it shows.
REDIS_PATH_SECONDS = 5
# (label, who, system call or "wake" (the end of an epoll_wait), test of
# its return value and arguments); each is looked for after the one
# before it, within 5 ms of the send.
PATH_TWO = [
    ("the sender's send()", "client", "sendto", "chat"),
    ("node 1's loop wakes", "n1.loop", "wake", "any"),
    ("node 1's loop reads the message", "n1.loop", "recvfrom", "chat"),
    ("it hands the PUBLISH to its Redis thread (eventfd)", "n1.loop",
     "write", "eventfd"),
    ("node 1's Redis thread wakes", "n1.redis", "wake", "any"),
    ("it writes the PUBLISH", "n1.redis", "write", "publish"),
    ("redis-server wakes", "redis", "wake", "any"),
    ("it reads the PUBLISH", "redis", "read", "publish"),
    ("it has written the message to every subscribed node", "redis",
     "last-write", "publish"),
    ("node 2's Redis thread wakes", "n2.redis", "wake", "any"),
    ("node 2's Redis thread reads the message", "n2.redis", "read",
     "publish"),
    ("it hands it to its loop (eventfd)", "n2.redis", "write", "eventfd"),
    ("node 2's loop wakes", "n2.loop", "wake", "any"),
    ("node 2's loop sends the message to the receiver", "n2.loop",
     "sendto", "delivery"),
    ("the receiver's recv()", "client", "recvfrom", "receiver"),
]
PATH_ONE = [
    ("the sender's send()", "client", "sendto", "chat"),
    ("the node's loop wakes", "n1.loop", "wake", "any"),
    ("the loop reads the message", "n1.loop", "recvfrom", "chat"),
    ("it has sent the message to the sender and the receiver", "n1.loop",
     "last-sendto", "delivery"),
    ("the receiver's recv()", "client", "recvfrom", "receiver"),
]


def path_trace(text, roles, recv_fds):
    """[(label, median µs since the send, median µs since the step
    before)] and how many messages were followed, from perf trace's
    text."""
    done = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): \S+/(\d+) "
                      r"(\w+)\((.*?)\)\s+= (-?\d+)")
    cont = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): \S+/(\d+)\s+"
                      r"\.\.\. \[continued\]: (\w+)\(\)\)\s+= (-?\d+)")
    ev = []
    for line in text.splitlines():
        m = done.match(line)
        if m:
            t, _, tid, sc, args, ret = m.groups()
            if tid in roles:
                fd = re.match(r"fd: (\d+)", args)
                ev.append((float(t) * 1e3, roles[tid], sc, int(ret),
                           int(fd.group(1)) if fd else -1))
            continue
        m = cont.match(line)
        if m and m.group(3) in roles and m.group(4) == "epoll_wait" \
                and int(m.group(5)) > 0:
            ev.append(((float(m.group(1)) + float(m.group(2))) * 1e3,
                       roles[m.group(3)], "wake", int(m.group(5)), -1))
    ev.sort()
    steps = PATH_TWO if "n2.loop" in roles.values() else PATH_ONE

    def fits(e, who, sc, test):
        t, role, call, ret, fd = e
        if role != who or call != sc.replace("last-", ""):
            return False
        return {"any": True, "chat": 90 <= ret <= 130, "eventfd": ret == 8,
                "publish": ret > 200, "delivery": ret > 100,
                "receiver": ret > 100 and fd in recv_fds}[test]
    got = {s[0]: [] for s in steps}
    for i, e in enumerate(ev):
        if not fits(e, "client", "sendto", "chat"):
            continue
        t0, j, times = e[0], i, []
        for label, who, sc, test in steps[1:]:
            k = j + 1
            while k < len(ev) and ev[k][0] - t0 < 5000 and \
                    not fits(ev[k], who, sc, test):
                k += 1
            if k >= len(ev) or ev[k][0] - t0 >= 5000:
                break
            if sc == "last-write":  # its last such write before it waits
                n = k + 1
                while n < len(ev) and ev[n][0] - t0 < 5000 and not (
                        ev[n][1] == who and ev[n][2] == "wake"):
                    if fits(ev[n], who, sc, test):
                        k = n
                    n += 1
            times.append(ev[k][0] - t0)
            j = k
        else:
            got[steps[0][0]].append(0.0)
            for (label, *_), x in zip(steps[1:], times):
                got[label].append(x)
    n = len(got[steps[0][0]])
    out, prev = [], None
    for label, *_ in steps:
        xs = got[label]
        step = med([b - a for a, b in zip(got[prev], xs)]) if prev else 0.0
        out.append((label, med(xs) if xs else float("nan"), step))
        prev = label
    return out, n


def redis_path(build, layout, redis, prefix):
    """One room's messages under perf trace (None without perf)."""
    if not shutil.which("perf"):
        return None
    nodes = redis_nodes(build, layout, redis, prefix)
    gen = trace = None
    try:
        argv = [os.path.join(build, "bench/rooms/wsa-rooms-bench"),
                "--secret", SECRET, "--mode", "deliver", "--send-url",
                nodes[0].url, "--recv-url", nodes[-1].url, "--rooms", "1",
                "--receivers", "1", "--rate", "15", "--size",
                str(REDIS_SIZE), "--warmup", "0", "--settle", "1.5",
                "--duration", str(REDIS_PATH_SECONDS)]
        gen = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(0.7)  # its connections are set up; it waits 1.5 s
        pids = [n.proc.pid for n in nodes] + [gen.pid] + (
            [redis.proc.pid] if layout != "one" else [])
        roles = {str(gen.pid): "client", str(redis.proc.pid): "redis"}
        for i, n in enumerate(nodes):
            for tid in os.listdir(f"/proc/{n.proc.pid}/task"):
                roles[tid] = f"n{i + 1}." + (
                    "loop" if tid == str(n.proc.pid) else "redis")
        out = tempfile.NamedTemporaryFile(suffix=".trace")
        trace = subprocess.Popen(
            ["perf", "trace", "-o", out.name, "-p",
             ",".join(map(str, pids)), "-e",
             "sendto,recvfrom,read,write,epoll_wait", "--", "sleep",
             str(REDIS_PATH_SECONDS + 1)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        gout, gerr = gen.communicate(timeout=60)
        terr = trace.communicate(timeout=60)[1]
        if gen.returncode or trace.returncode:
            raise RuntimeError("path trace failed: "
                               + (gerr + terr)[-800:])
        m = re.search(r"receivers fd (\d+) to (\d+)", gerr)
        recv = set(range(int(m.group(1)), int(m.group(2)) + 1))
        r = json.loads([l for l in gout.splitlines()
                        if l.startswith("{")][-1])
        steps, n = path_trace(open(out.name).read(), roles, recv)
        return {"steps": steps, "messages": n, "untraced": None,
                "p50_us": r["p50_us"]}
    finally:
        for p in (gen, trace):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        for n in nodes:
            n.stop()


def redis_run(build, quick):
    """Delivery at a chat pace and as fast as it goes, in three layouts
    taking turns; a publish to 10,000 subscribers in the same three;
    Redis alone under redis-benchmark."""
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] redis: {msg}", file=sys.stderr,
              flush=True)

    chat = os.path.join(build, "examples/chat-room/chat-room")
    if "--redis" not in known_flags(chat):
        raise RuntimeError(f"{chat} has no --redis: this build has no "
                           "Redis broker")
    res = {"head": git("rev-parse", "--short", "HEAD"),
           "dirty": len(git("status", "--porcelain", "--", "lib",
                            "include", "examples").splitlines()),
           "turns": 1 if quick else REDIS_TURNS, "deliver": {},
           "fanout": {}, "redis_version": subprocess.run(
               ["redis-server", "--version"], capture_output=True,
               text=True).stdout.split(" sha=")[0]}
    redis = Redis()
    seq = [0]
    res["redone"] = []

    res["quiet_wait_s"] = 0.0

    def quiet():
        """Wait for the machine to be quiet, within what is left of
        REDIS_QUIET_WAIT."""
        mine = {str(os.getpid()), str(redis.proc.pid)}
        while res["quiet_wait_s"] < REDIS_QUIET_WAIT:
            p0, m0, t0 = procs_cpu(), machine_cpu(), time.monotonic()
            time.sleep(0.5)
            m1, wall = machine_cpu(), time.monotonic() - t0
            busy = sum(c for _, c in others(p0, procs_cpu(), wall, mine))
            busy += (m1["steal"] - m0["steal"]) / wall
            if busy < REDIS_QUIET:
                return
            res["quiet_wait_s"] += time.monotonic() - t0

    def undisturbed(what, run):
        """run(), again while other work disturbed it (REDIS_REDO times
        at most in the scenario)."""
        while True:
            quiet()
            log(what)
            r = run()
            if r["other_cores"] <= REDIS_OTHER_MAX or \
                    len(res["redone"]) >= REDIS_REDO:
                return r
            who = ", ".join(f"{n} {c:.2f}" for n, c in r["others"])
            log(f"other work took {r['other_cores']:.2f} cores ({who}): "
                "again")
            res["redone"].append((what, r["other_cores"], r["others"]))

    def prefix():
        # A fresh prefix a run: nothing left from the one before.
        seq[0] += 1
        return f"bench{seq[0]}"
    try:
        log("what a node sends Redis (MONITOR)")
        res["monitor"] = redis_monitor(build, redis, prefix())
        REDIS_PAYLOAD["size"] = res["monitor"]["publish_b"] or None
        for load in ("paced", "max"):
            res["deliver"][load] = {k: [] for k, _ in REDIS_LAYOUTS}
        res["deliver"]["max1"] = {"two": []}
        for turn in range(res["turns"]):
            for load in ("paced", "max", "max1"):
                order = [x for x in REDIS_LAYOUTS
                         if x[0] in res["deliver"][load]]
                if turn % 2:
                    order.reverse()
                for layout, _ in order:
                    what = f"deliver {load} {layout} ({turn + 1}/" \
                        f"{res['turns']})"
                    res["deliver"][load][layout].append(undisturbed(
                        what, lambda: redis_deliver(
                            build, layout, redis, prefix(), load)))
        rounds = 5 if quick else REDIS_FANOUT_ROUNDS
        for layout, _ in REDIS_LAYOUTS:
            res["fanout"][layout] = undisturbed(
                f"publish to {REDIS_FANOUT:,} {layout}",
                lambda: redis_fanout(build, layout, redis, prefix(),
                                     rounds))
        res["path"] = {}
        for layout in ("one", "two"):
            log(f"a message's path, {layout} (perf trace)")
            res["path"][layout] = redis_path(build, layout, redis,
                                             prefix())
        log("redis-benchmark PUBLISH")
        res["redis_benchmark"] = redis_benchmark(redis, quick)
        res["redis_info"] = redis.cmd("INFO", "cpu")
    finally:
        redis.stop()
    res["took"] = time.time() - t0
    log("done")
    return res


def rd_med(runs, key):
    return med([r[key] for r in runs])


def rd_cores(runs, who):
    """Median cores a process used over the measured window."""
    xs = [r["cpu_s"][who] / r["cpu_wall_s"] for r in runs
          if who in r["cpu_s"]]
    return med(xs) if xs else None


def rd_us(runs, who, per="published_per_s"):
    """Median CPU µs a published message (or delivery) of a process."""
    xs = []
    for r in runs:
        n = r[per] * r["duration_s"]
        c = r["cpu_s"].get(who) if who != "client" else r["client_cpu_s"]
        if c is not None and n:
            xs.append(c / n * 1e6)
    return med(xs) if xs else None


def rd_f(x, unit=""):
    return "" if x is None else fmt(x, unit)


def redis_ratios(a):
    """The ratios the targets row and the text quote."""
    d, f = a["deliver"], a["fanout"]
    out = {}
    for load in ("paced", "max"):
        for k in ("p50_us", "p99_us", "p999_us", "msgs_per_s"):
            out[(load, k)] = (rd_med(d[load]["two"], k) /
                              rd_med(d[load]["one"], k))
            out[(load, k, "one-redis")] = (
                rd_med(d[load]["one-redis"], k) /
                rd_med(d[load]["one"], k))
    out["fanout"] = (f["two"]["median_last_us"] /
                     f["one"]["median_last_us"])
    out["fanout one-redis"] = (f["one-redis"]["median_last_us"] /
                               f["one"]["median_last_us"])
    return out


def redis_target(a, note=""):
    d, f, r = a["deliver"], a["fanout"], redis_ratios(a)
    p, m = d["paced"], d["max"]
    return (f"{REDIS_TARGET} chat pace p50 "
            f"{fmt(rd_med(p['two'], 'p50_us'))} µs against "
            f"{fmt(rd_med(p['one'], 'p50_us'))} µs ("
            f"{r[('paced', 'p50_us')]:.2f}x), p99 "
            f"{r[('paced', 'p99_us')]:.2f}x; "
            f"{fmt(rd_med(m['two'], 'msgs_per_s'))} messages/s against "
            f"{fmt(rd_med(m['one'], 'msgs_per_s'))} "
            f"({r[('max', 'msgs_per_s')]:.2f}x); to 10,000: "
            f"{fmt(f['two']['median_last_us'] / 1e3)} ms against "
            f"{fmt(f['one']['median_last_us'] / 1e3)} ms "
            f"({r['fanout']:.2f}x){note} | measured |")


def rd_split(runs, node):
    """The share of a node's CPU its loop thread used (the rest: its
    Redis thread), median over runs."""
    xs = []
    for r in runs:
        t = r.get("threads", {}).get(node)
        if t and t["loop"] + t["other"]:
            xs.append(t["loop"] / (t["loop"] + t["other"]))
    return med(xs) if xs else None


def nth(n):
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, ... 21st."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def rd_turns(n):
    return f"{n} turn{'' if n == 1 else 's'}"


def write_redis(w, a, when=""):
    d, f = a["deliver"], a["fanout"]
    names = dict(REDIS_LAYOUTS)
    P, M = REDIS_PACED, REDIS_MAX
    r = redis_ratios(a)
    w(REDIS_HEAD)
    w("")
    w(when + f"chat-room at `{a['head']}`"
      + (f" (with {a['dirty']} files changed under lib, include or "
         "examples)" if a["dirty"] else "")
      + " in three layouts: **two nodes** (two chat-room processes "
      f"started with `--redis` on one {a['redis_version']}, which the "
      "benchmark starts on a free loopback port without persistence; "
      "senders on node 1, receivers in the same rooms on node 2: every "
      "message crosses Redis), **one node with Redis** (senders and "
      "receivers on one chat-room with `--redis`: what the broker costs "
      "a node whose rooms have no member elsewhere) and **one node** "
      "without `--redis`, the baseline. The clients are "
      "`wsa-rooms-bench` (bench/rooms: plain sockets and epoll, "
      "chat-room's protocol; source addresses 127.0.0.2 on). Each chat "
      "message carries its room's sequence number and the "
      "CLOCK_MONOTONIC instant before its `send()`; a delivery's latency "
      "is the instant the receiver read it less that, and every receiver "
      "checks the order (a gap counts as lost, an earlier message as "
      "reordered). **Nothing is pinned**: the nodes, Redis and the "
      "clients share the 2 cores. The layouts take turns ("
      f"{rd_turns(a['turns'])}, the order reversed every other turn, "
      "fresh nodes and a fresh channel prefix each run); medians of the "
      "turns, ranges over them. CPU is each process' user + system time "
      "over the measured window, in cores, and per published message. A "
      f"run during which other processes (or the hypervisor's other "
      f"guests) kept more than "
      f"{REDIS_OTHER_MAX} of a core busy is measured again "
      f"({REDIS_REDO} times at most in the scenario; before each run "
      f"it waited for half a second in which they kept less than "
      f"{REDIS_QUIET} of a core busy, {a['quiet_wait_s']:.0f} s in all, "
      f"at most {REDIS_QUIET_WAIT} s)"
      + (": " + "; ".join(f"{x[0]} ({x[1]:.2f} cores: " + ", ".join(
          n for n, _ in x[2]) + ")" for x in a["redone"]) + "."
         if a["redone"] else "; none was.")
      + " Every other limit is at its default unless said below.")
    w("")
    w(f"**At a chat pace**, every limit at chat-room's default: "
      f"{P['rooms']} rooms, each with one sender sending "
      f"{P['rate']} messages a second ({REDIS_SIZE}-byte text, under the "
      f"default 20 a second a connection) on a fixed schedule, and "
      f"{P['receivers']} receivers: {P['rooms'] * P['rate']} messages "
      f"and {P['rooms'] * P['rate'] * P['receivers']:,} deliveries a "
      f"second; {REDIS_WARMUP} s of warm-up, then "
      f"{REDIS_SECONDS['paced']} s measured. \"Sender's copy\": the "
      "sender's own copy of its message, node 1's reply (never through "
      "Redis). \"At Redis\": when the message reached a subscriber of "
      "the rooms' channels that the client process keeps beside the "
      "nodes (PSUBSCRIBE; node 1's PUBLISH carries the chat message's "
      "JSON as it is, stamp included): sender, node 1, Redis' fan-out.")
    w("")
    w("| layout | deliveries/s | p50 µs | p99 µs | p99.9 µs | max µs | "
      "sender's copy p50 µs | at Redis p50 µs | at Redis p99 µs | lost | "
      "reordered | CPU node 1 | node 2 | Redis | clients |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      "---:|---:|")
    for k, name in REDIS_LAYOUTS:
        runs = d["paced"][k]
        tap = k != "one" and rd_med(runs, "tap_samples")
        w(f"| {name} | {fmt(rd_med(runs, 'deliveries_per_s'))} | "
          f"{fmt(rd_med(runs, 'p50_us'))} | {fmt(rd_med(runs, 'p99_us'))} "
          f"| {fmt(rd_med(runs, 'p999_us'))} | "
          f"{fmt(rd_med(runs, 'max_us'))} | "
          f"{fmt(rd_med(runs, 'reply_p50_us'))} | "
          + (f"{fmt(rd_med(runs, 'tap_p50_us'))} | "
             f"{fmt(rd_med(runs, 'tap_p99_us'))} | " if tap else "| | ")
          + f"{sum(x['lost'] for x in runs)} | "
          f"{sum(x['reordered'] for x in runs)} | "
          f"{rd_f(rd_cores(runs, 'node1'))} | "
          f"{rd_f(rd_cores(runs, 'node2'))} | "
          f"{rd_f(rd_cores(runs, 'redis'))} | "
          f"{fmt(med([x['client_cpu_s'] / x['cpu_wall_s'] for x in runs]))}"
          " |")
    for k in ("two", "one-redis"):
        key = () if k == "two" else (k,)
        w(f"| {names[k]} / one node | | "
          + " | ".join(f"**{r[('paced', q) + key]:.2f}x**"
                       for q in ("p50_us", "p99_us", "p999_us"))
          + " | | | | | | | | | | |")
    w("")
    w("Over the turns, p50 (µs): " + "; ".join(
        f"{names[k]} {th_span([x['p50_us'] for x in d['paced'][k]])}"
        for k, _ in REDIS_LAYOUTS) + "; p99.9: " + "; ".join(
        f"{names[k]} {th_span([x['p999_us'] for x in d['paced'][k]])}"
        for k, _ in REDIS_LAYOUTS) + ". A p99.9 is about the "
      f"{nth(int(rd_med(d['paced']['one'], 'samples')) // 1000)}-worst of "
      f"{fmt(int(rd_med(d['paced']['one'], 'samples')))} deliveries a run: "
      "on this shared machine it moves with whatever else ran.")
    w("")
    write_redis_path(w, a)
    w(f"**As fast as it goes**: {M['rooms']} rooms of one sender and "
      f"{M['receivers']} receivers, each sender keeping {M['window']} "
      "messages in flight (a message is done when every receiver of its "
      "room has it). The sender's node lifts its rate limit "
      "(`--rate-limit unlimited`): going past 20 messages a second a "
      "connection is the point here; the receivers send nothing after "
      f"their join. {REDIS_WARMUP} s of warm-up, then "
      f"{REDIS_SECONDS['max']} s measured. Latency here is queueing (the "
      "window over the rate). The loop's share: of the node's CPU over "
      "the run, what its service thread used (the rest is its Redis "
      "thread).")
    w("")
    w("| layout | messages/s | range | vs one node | deliveries/s | p50 µs "
      "| p99 µs | CPU node 1 | node 2 | Redis | clients | CPU µs a "
      "message: node 1 | node 2 | Redis | loop's share: node 1 | node 2 |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      "---:|---:|---:|")
    base = rd_med(d["max"]["one"], "msgs_per_s")
    for k, name in REDIS_LAYOUTS:
        runs = d["max"][k]
        rate = rd_med(runs, "msgs_per_s")
        s1, s2 = rd_split(runs, "node1"), rd_split(runs, "node2")
        w(f"| {name} | {fmt(rate)} | "
          f"{th_span([x['msgs_per_s'] for x in runs])} | "
          f"**{ratio(rate, base)}** | "
          f"{fmt(rd_med(runs, 'deliveries_per_s'))} | "
          f"{fmt(rd_med(runs, 'p50_us'))} | {fmt(rd_med(runs, 'p99_us'))} "
          f"| {rd_f(rd_cores(runs, 'node1'))} | "
          f"{rd_f(rd_cores(runs, 'node2'))} | "
          f"{rd_f(rd_cores(runs, 'redis'))} | "
          f"{fmt(med([x['client_cpu_s'] / x['cpu_wall_s'] for x in runs]))}"
          f" | {rd_f(rd_us(runs, 'node1'))} | {rd_f(rd_us(runs, 'node2'))} "
          f"| {rd_f(rd_us(runs, 'redis'))} | "
          f"{'' if s1 is None or k == 'one' else f'{s1:.0%}'} | "
          f"{'' if s2 is None else f'{s2:.0%}'} |")
    w("")
    m10, m1 = d["max"]["two"], d["max1"]["two"]
    n10, n1 = rd_us(m10, "node2"), rd_us(m1, "node2")
    k10, k1 = REDIS_MAX["receivers"], REDIS_MAX1["receivers"]
    per_del = (n10 - n1) / (k10 - k1)
    w(f"With {k1} receiver a room instead of {k10} (two nodes, else the "
      f"same): {fmt(rd_med(m1, 'msgs_per_s'))} messages/s (range "
      f"{th_span([x['msgs_per_s'] for x in m1])}), p50 "
      f"{fmt(rd_med(m1, 'p50_us'))} µs; CPU a message: node 1 "
      f"{rd_f(rd_us(m1, 'node1'))} µs, node 2 {rd_f(n1)} µs, Redis "
      f"{rd_f(rd_us(m1, 'redis'))} µs. So on node 2 a delivery costs "
      f"about ({fmt(n10)} - {fmt(n1)}) / {k10 - k1} = {fmt(per_del)} µs "
      f"and a message from Redis {fmt(n1 - per_del)} µs besides, at "
      "these rates (many messages a wake-up). In chat-room the sender is "
      "a member of its room, so node 1 is subscribed to the room's "
      "channel too and Redis sends it each of its own messages back "
      "(it drops them by the node id in the envelope): with two nodes "
      "Redis writes every message twice.")
    w("")
    lost = sum(x["lost"] + x["reordered"] for load in d.values()
               for runs in load.values() for x in runs)
    w(f"Lost or reordered over every delivery run: {lost}.")
    w("")
    fr = f["one"]["rounds"]
    w(f"**A publish to {REDIS_FANOUT:,} subscribers**: one room; one "
      "publisher on node 1 sends a chat message, and the time to last "
      "is from just before its `send()` until the last subscriber has "
      f"it (median of {fr} rounds after one of warm-up; a round starts "
      "once the last one has arrived everywhere). Two nodes: "
      f"{REDIS_FANOUT // 2:,} subscribers on each; one node: all "
      f"{REDIS_FANOUT:,}. The subscribers are 2 client processes of "
      f"{REDIS_FANOUT // 2:,} connections in every layout (a process "
      "may hold 20,000 descriptors), from "
      f"{REDIS_FANOUT_ADDRS} source addresses (at most "
      f"{-(-REDIS_FANOUT // REDIS_FANOUT_ADDRS)} connections each, under "
      "the default 256 an address); the limits stay at their defaults "
      f"but `--max-connections {REDIS_FANOUT_MAX_CONNS}` (10,000 "
      "subscribers and the publisher are more than the default 10,000 "
      "on one node). The subscribers share one uid: chat-room tells a "
      "room when a uid's first connection joins, and 10,000 distinct "
      "uids joining one room would cost 50 million presence deliveries "
      "before the first round.")
    w("")
    w("| layout | time to last µs | p90 µs | range | node 1's last µs | "
      "node 2's first µs | node 2's last µs | deliveries/s | time / one "
      "node's | set-up s | node KiB a connection | node CPU µs a delivery "
      "|")
    w("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, name in REDIS_LAYOUTS:
        x = f[k]
        pn = x["per_node"]
        w(f"| {name} | {fmt(x['median_last_us'])} | "
          f"{fmt(x['p90_last_us'])} | {fmt(x['min_last_us'])} to "
          f"{fmt(x['max_last_us'])} | {fmt(pn[0]['median_last_us'])} | "
          + (f"{fmt(pn[1]['median_first_us'])} | "
             f"{fmt(pn[1]['median_last_us'])} | " if len(pn) > 1
             else "| | ")
          + f"{fmt(x['deliveries_per_s'])} | "
          f"**{ratio(x['median_last_us'], f['one']['median_last_us'])}** | "
          f"{x['setup_s']:.2f} | {x['kib_per_conn']:.2f} | "
          f"{x['node_us_per_delivery']:.2f} |")
    w("")
    w("Node KiB a connection: the nodes' resident memory once every "
      "subscriber had joined, less theirs at start, over the "
      f"{REDIS_FANOUT + 1:,} connections (logged in, in one room; "
      "user space only, not the kernel's socket buffers). Node CPU a "
      "delivery: the nodes' CPU over the rounds, over the deliveries "
      "(one `send()` each: a subscriber gets one message a round).")
    w("")
    rb, mon = a.get("redis_benchmark"), a.get("monitor")
    if mon:
        cmds = ", ".join(f"{k} {v}" for k, v in sorted(
            mon["commands"].items(), key=lambda kv: -kv[1]))
        w(f"What the nodes send Redis (MONITOR while one sender on node 1 "
          f"sent 10 messages to one receiver on node 2, their joins, "
          f"heartbeats and leaves included): {cmds}. A chat message is "
          f"one PUBLISH of {mon['publish_b']} bytes (an envelope with the "
          "node's id, the topic and the frame's JSON); a join or a leave "
          "one EVAL of a script, a SUBSCRIBE or UNSUBSCRIBE when it is "
          "the node's first or last member of the room; each node "
          "heartbeats and reaps (EVAL) once a second.")
        w("")
    if rb:
        w(f"**Redis alone** ({a['redis_version']}): `redis-benchmark` "
          f"PUBLISH of {rb['payload_b']} bytes (the size above) to a "
          "channel that 0, 2 or 8 `redis-cli` processes subscribe to (a "
          "room with members on that many nodes), on the same machine; "
          "Redis' CPU over the run, per PUBLISH. redis-benchmark and the "
          "subscribers share the 2 cores with Redis: below 1 core, Redis "
          "was not all that limited the rate; the CPU a PUBLISH is the "
          "figure to scale by. (For these runs only, Redis' output limit "
          "for a subscriber is lifted: a `redis-cli` that falls 32 MiB "
          "behind would be dropped. A node that falls that far behind is "
          "dropped too, and resubscribes.)")
        w("")
        w("| subscribers | clients x in flight | PUBLISH/s | p50 ms | p99 ms "
          "| Redis CPU | Redis CPU µs a PUBLISH |")
        w("|---:|---|---:|---:|---:|---:|---:|")
        for x in rb["runs"]:
            w(f"| {x['subscribers']} | {x['clients']} x {x['pipeline']} | "
              f"{fmt(x['rps'])} | {x['p50_ms']:.3f} | {x['p99_ms']:.3f} | "
              f"{x['redis_cores']:.2f} | {x['redis_us']:.2f} |")
        w("")
    for line in redis_findings(a):
        w(line)
    w("")
    w("Reproduce: `bench/run --only redis`.")
    w("")


def write_redis_path(w, a):
    """Where a message's time goes at a chat pace."""
    d, paths = a["deliver"]["paced"], a.get("path") or {}
    two, one = rd_med(d["two"], "p50_us"), rd_med(d["one"], "p50_us")
    tap, copy = rd_med(d["two"], "tap_p50_us"), rd_med(d["two"],
                                                       "reply_p50_us")
    w(f"**Where the time goes at a chat pace.** Untraced, from the table "
      f"above (medians, two nodes): the message reached Redis' fan-out "
      f"{fmt(tap)} µs after the sender's `send()` (its own copy came "
      f"back from node 1 at {fmt(copy)} µs) and the receiver on node 2 "
      f"{fmt(two - tap)} µs after that; on one node the whole way took "
      f"{fmt(one)} µs. Each half across nodes costs about what the whole "
      "way on one node does: a message crosses 3 processes and wakes 6 "
      "sleeping threads (node 1's loop, node 1's Redis thread, "
      "redis-server, node 2's Redis thread, node 2's loop, the receiver) "
      "where on one node it wakes 2 (the loop, the receiver).")
    w("")
    if not (paths.get("two") and paths.get("one")):
        w("(perf was not there: the path was not traced.)")
        w("")
        return
    p2, p1 = paths["two"], paths["one"]
    w(f"Traced: one room of one sender and one receiver at "
      f"{REDIS_PACED['rate']} messages a second, every system call of the "
      "nodes, Redis and the client recorded by `perf trace` for "
      f"{REDIS_PATH_SECONDS} s and {p2['messages']} messages (two nodes) "
      f"and {p1['messages']} (one node) followed call by call; medians. "
      "Tracing slows every call and the tracer shares the cores: the "
      f"traced ways took {fmt(p2['steps'][-1][1])} and "
      f"{fmt(p1['steps'][-1][1])} µs (the client's own clock in those "
      f"runs: {fmt(p2['p50_us'])} and {fmt(p1['p50_us'])} µs) against "
      f"{fmt(two)} and {fmt(one)} µs untraced in the table above, the "
      "more calls the more slowed; read the steps for their order and "
      "shares, not as costs. \"Wakes\": the end of its `epoll_wait`.")
    w("")
    w("| step, two nodes | µs since the send | step µs |")
    w("|---|---:|---:|")
    for label, at, step in p2["steps"]:
        w(f"| {label} | {fmt(at)} | {fmt(step)} |")
    wakes = sum(s for l, _, s in p2["steps"] if l.endswith("wakes"))
    w("")
    w("| step, one node | µs since the send | step µs |")
    w("|---|---:|---:|")
    for label, at, step in p1["steps"]:
        w(f"| {label} | {fmt(at)} | {fmt(step)} |")
    w("")
    total = p2["steps"][-1][1]
    redis_work = next(s for l, _, s in p2["steps"]
                      if l.startswith("it reads the PUBLISH"))
    w(f"Across nodes {fmt(wakes)} µs of the traced {fmt(total)} "
      f"({wakes / total:.0%}) are threads waking up, Redis' reading of "
      f"the PUBLISH {fmt(redis_work)} µs; the rest is the nodes' work "
      "(parse, reply, envelope, hand-offs) and Redis' writes to the "
      "subscribed nodes (each loopback `write()` also does the receiving "
      "side's TCP work).")
    w("")


def redis_findings(a):
    """What the figures say (from this run)."""
    d, f, r = a["deliver"], a["fanout"], redis_ratios(a)
    p, m = d["paced"], d["max"]
    two, one = rd_med(p["two"], "p50_us"), rd_med(p["one"], "p50_us")
    rb = a.get("redis_benchmark")
    out = [f"In short: across two nodes a chat message took {fmt(two)} µs "
           f"at the median against {fmt(one)} µs on one node "
           f"({r[('paced', 'p50_us')]:.2f}x, {fmt(two - one)} µs more)"]
    if rb:
        rtt = rb["runs"][0]["p50_ms"] * 1e3
        out[0] += (f"; a PUBLISH round trip from one client that keeps "
                   f"Redis busy takes {fmt(rtt)} µs at the median, so the "
                   f"extra is {(two - one) / rtt:.1f} such round trips: "
                   "the way has 3 processes and 6 thread wake-ups where "
                   "one node has 1 and 2, and at a chat pace each "
                   "sleeping thread must be woken; Redis' own work on a "
                   "message is a small part of it")
    o1, o2 = rd_us(m["one"], "node1"), rd_us(m["one-redis"], "node1")
    out[0] += (f". As fast as it goes, two nodes carried "
               f"{fmt(rd_med(m['two'], 'msgs_per_s'))} messages/s "
               f"({r[('max', 'msgs_per_s')]:.2f}x one node) with Redis at "
               f"{rd_f(rd_cores(m['two'], 'redis'))} of a core; with "
               f"`--redis` a lone node spends {fmt(o2)} µs of CPU a "
               f"message against {fmt(o1)} without "
               f"({o2 / o1:.2f}x: the envelope, the hand-off, its Redis "
               "thread's PUBLISH and reading its own message back). A "
               f"publish to {REDIS_FANOUT:,} took "
               f"{r['fanout']:.2f}x as long over two nodes as on one.")
    return out



# ------------------------------------------------------------ round two

R2_HEAD = ("## Round two: every message size, logins, memory, one message "
           "in flight")
R2_TARGET = (
    "| JSON echo (16 x 4) >= 1.0x lws-plain at every size from 16 B to "
    "64 KiB |",
    "| HS256 logins/s >= 0.8x lws-plain upgrades/s (token at the upgrade "
    "beside) |",
    "| <= 2 KiB per idle authenticated connection |",
    "| one message in flight on 16 connections (16 B) >= 0.9x lws-plain |",
    "| no first-round target lost: JSON echo (16 x 16, 16 B) >= 1.5x "
    "lws-plain |",
    "| no first-round target lost: 19,000 authenticated connections held |",
)
R2_SIZES = [16, 256, 4096, 16384, 65000]
# The receive buffer measured beside the default (1024): what a host with
# large messages would choose, at its cost in memory.
R2_RX = 16384


def perf_split(data):
    """The server's samples by library and its hottest symbols."""
    def report(sort):
        out = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children",
             "--sort", sort, "-g", "none"], capture_output=True, text=True)
        rows = []
        for line in out.stdout.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+(.*\S)", line)
            if m:
                rows.append((float(m.group(1)), m.group(2)))
        return rows
    libs = [(p, n.replace("[kernel.kallsyms]", "kernel"))
            for p, n in report("dso")]
    syms = [(p, re.sub(r"\s+", " ", n)) for p, n in report("dso,sym")]
    return {"libs": libs[:6], "syms": syms[:8]}


def profiled(build, name, argv, proto, args, timeout, perf=True):
    """The load generator's result against a server, recorded by perf
    (when asked and perf can record here): "profile" holds where its CPU
    went."""
    srv = Server(name, argv)
    want, perf, data = perf, None, None
    try:
        if want and shutil.which("perf"):
            fd, data = tempfile.mkstemp(prefix="wsa-perf-")
            os.close(fd)
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-e", "cpu-clock", "-o", data,
                 "-p", str(srv.proc.pid)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        cpu0 = srv.cpu_s()
        r = loadgen(build, srv.url, proto, args, timeout)
        r["server_cpu_s"] = srv.cpu_s() - cpu0
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        srv.stop()
    # perf exits 130 after SIGINT, with the data written.
    if perf and os.path.getsize(data) > 0:
        r["profile"] = perf_split(data)
    if data:
        os.unlink(data)
    return r


R2_REPS = 3  # measured runs of each, interleaved; their median counts


def r2_median(runs):
    """The run whose rate is the median of runs (msgs_per_s or per_s)."""
    key = "msgs_per_s" if "msgs_per_s" in runs[0] else "per_s"
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def r2_run(build, quick):
    dur = 2 if quick else 4
    reps = 1 if quick else R2_REPS
    spec = servers(build, ["lws-plain", "libwsa"])
    plain, wsa = spec["lws-plain"], spec["libwsa"]
    big = (wsa[0] + ["--rx-buffer-size", str(R2_RX)], "wsa")
    out = {"sizes": [], "latency": {}, "logins": {}, "memory": {},
           "reps": reps}

    def log(what):
        print(f"round two: {what}", file=sys.stderr, flush=True)

    def measured(cases, args_of):
        """{key: median run} of each case, its runs interleaved so that
        a slow spell of this shared machine falls on all of them; then
        one more run of each under perf, for its profile only (perf's
        own cost stays out of the figures)."""
        runs = {k: [] for k, _, _ in cases}
        for rep in range(reps):
            for key, (argv, proto), extra in cases:
                log(f"{args_of(key)[:2]} {key} run {rep + 1}")
                runs[key].append(profiled(build, key, argv, proto,
                                          args_of(key) + extra, dur + 60,
                                          perf=False))
        got = {k: r2_median(v) for k, v in runs.items()}
        for key, (argv, proto), extra in cases:
            log(f"{args_of(key)[:2]} {key} profiled")
            got[key]["profile"] = profiled(build, key, argv, proto,
                                           args_of(key) + extra,
                                           dur + 60).get("profile")
        return got

    # No warm-up: the server's CPU is counted over the whole run,
    # divided by what the window counted.
    def echo_args(conns, inflight, size):
        return ["--mode", "echo", "--conns", conns, "--inflight", inflight,
                "--size", size, "--duration", dur, "--warmup", 0]
    for size in (R2_SIZES if not quick else [16, 4096]):
        row = measured([("plain", plain, []), ("wsa", wsa, []),
                        ("big", big, [])],
                       lambda k, size=size: echo_args(16, 4, size))
        row["size"] = size
        out["sizes"].append(row)
    for inflight in (1, 16):
        got = measured([("plain", plain, []), ("wsa", wsa, [])],
                       lambda k, n=inflight: echo_args(16, n, 16))
        for key, r in got.items():
            out["latency"][(inflight, key)] = r
    conn = ["--mode", "connect", "--duration", dur, "--concurrency", 32,
            "--warmup", 0]
    out["logins"] = measured([("plain", plain, []), ("login", wsa, []),
                              ("upgrade", wsa, ["--token-at-upgrade"])],
                             lambda k: list(conn))
    # The first round's 19,000 held, and the memory of each.
    n = 19000 if not quick else 2000
    for key, s in (("plain", plain), ("wsa", wsa), ("big", big)):
        log(f"{n} idle {key}")
        out["memory"][key] = idle_memory(build, key, s, n)
    return out


def r2_ratios(a):
    size = {r["size"]: r["wsa"]["msgs_per_s"] / r["plain"]["msgs_per_s"]
            for r in a["sizes"]}
    big = {r["size"]: r["big"]["msgs_per_s"] / r["plain"]["msgs_per_s"]
           for r in a["sizes"]}
    lg, lat = a["logins"], a["latency"]
    return {
        "size": size, "big": big,
        "login": lg["login"]["per_s"] / lg["plain"]["per_s"],
        "upgrade": lg["upgrade"]["per_s"] / lg["plain"]["per_s"],
        "one": lat[(1, "wsa")]["msgs_per_s"] / lat[(1, "plain")]["msgs_per_s"],
        "sixteen": (lat[(16, "wsa")]["msgs_per_s"]
                    / lat[(16, "plain")]["msgs_per_s"]),
        "kib": a["memory"]["wsa"]["kib_per_conn"],
        "big_kib": a["memory"]["big"]["kib_per_conn"],
    }


def r2_target(a, note=""):
    r, m = r2_ratios(a), a["memory"]["wsa"]

    def mark(ok):
        return "met" if ok else "**missed**"
    sizes = ", ".join(f"{s} B {v:.2f}x" for s, v in r["size"].items())
    worst = min(r["size"].values())
    return [
        f"{R2_TARGET[0]} {sizes}; with rx_buffer_size {R2_RX}: "
        + ", ".join(f"{s} B {v:.2f}x" for s, v in r["big"].items())
        + f"{note} | {mark(worst >= 1.0)} |",
        f"{R2_TARGET[1]} {r['login']:.2f}x; token at the upgrade "
        f"{r['upgrade']:.2f}x{note} | {mark(r['login'] >= 0.8)} |",
        f"{R2_TARGET[2]} {r['kib']:.2f} KiB (with rx_buffer_size {R2_RX}: "
        f"{r['big_kib']:.2f} KiB){note} | {mark(r['kib'] <= 2)} |",
        f"{R2_TARGET[3]} {r['one']:.2f}x{note} | {mark(r['one'] >= 0.9)} |",
        f"{R2_TARGET[4]} {r['sixteen']:.2f}x{note} | "
        f"{mark(r['sixteen'] >= 1.5)} |",
        f"{R2_TARGET[5]} {fmt(m['conns'])} held, {m['failed']} failed"
        f"{note} | {mark(m['conns'] >= 19000 and not m['failed'])} |",
    ]


def r2_profile(w, title, r):
    p = r.get("profile")
    if not p:
        w(f"- {title}: no profile (perf could not record here).")
        return
    libs = ", ".join(f"{n} {v:.0f}%" for v, n in p["libs"])
    syms = ", ".join(f"`{n.split(' ')[-1]}` ({n.split(' ')[0]}) {v:.1f}%"
                     for v, n in p["syms"][:6])
    w(f"- {title}: {libs}. Hottest: {syms}.")


def write_r2(w, a, when=""):
    r = r2_ratios(a)
    w(R2_HEAD)
    w("")
    w(f"{when}The targets of the second performance round, each against "
      "lws-plain in the same run; the server pinned to core 0, the load "
      "generator to core 1. libwsa is echo-chat with its default "
      f"rx_buffer_size (1024) and, beside it, with `--rx-buffer-size "
      f"{R2_RX}`. Each figure is the median of {a['reps']} runs, the "
      "servers' runs interleaved. Profiles: perf samples of the server "
      "process (`cpu-clock`) in one more run of each, by library, then the "
      "hottest symbols.")
    w("")
    w("| size | lws-plain msg/s | libwsa msg/s | vs lws-plain | "
      f"rx {R2_RX} msg/s | vs lws-plain | lws-plain CPU µs/msg | "
      "libwsa CPU µs/msg |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in a["sizes"]:
        p, q, b = row["plain"], row["wsa"], row["big"]
        w(f"| {row['size']} | {fmt(p['msgs_per_s'])} | "
          f"{fmt(q['msgs_per_s'])} | {ratio(q['msgs_per_s'], p['msgs_per_s'])}"
          f" | {fmt(b['msgs_per_s'])} | "
          f"{ratio(b['msgs_per_s'], p['msgs_per_s'])} | "
          f"{fmt(p['server_cpu_s'] * 1e6 / max(p['messages'], 1))} | "
          f"{fmt(q['server_cpu_s'] * 1e6 / max(q['messages'], 1))} |")
    w("")
    w("| connections x in flight (16 B) | lws-plain msg/s | libwsa msg/s | "
      "vs lws-plain | lws-plain p50 µs | libwsa p50 µs |")
    w("|---|---:|---:|---:|---:|---:|")
    for k in (1, 16):
        p, q = a["latency"][(k, "plain")], a["latency"][(k, "wsa")]
        w(f"| 16 x {k} | {fmt(p['msgs_per_s'])} | {fmt(q['msgs_per_s'])} | "
          f"{ratio(q['msgs_per_s'], p['msgs_per_s'])} | {fmt(p['p50_us'])} "
          f"| {fmt(q['p50_us'])} |")
    w("")
    lg = a["logins"]
    w("| 32 attempts in flight | per second | vs lws-plain | p50 µs | "
      "p99 µs | server CPU µs each |")
    w("|---|---:|---:|---:|---:|---:|")
    for k, label in (("plain", "lws-plain: upgrade"),
                     ("login", "libwsa: upgrade, login message, `auth`"),
                     ("upgrade", "libwsa: token at the upgrade, `auth`")):
        x = lg[k]
        w(f"| {label} | {fmt(x['per_s'])} | "
          f"{ratio(x['per_s'], lg['plain']['per_s'])} | {fmt(x['p50_us'])}"
          f" | {fmt(x['p99_us'])} | "
          f"{fmt(x['server_cpu_s'] * 1e6 / max(x['completed'], 1))} |")
    w("")
    m = a["memory"]
    w("| idle connections | server | KiB per connection |")
    w("|---:|---|---:|")
    for k, label in (("plain", "lws-plain"), ("wsa", "libwsa"),
                     ("big", f"libwsa, rx_buffer_size {R2_RX}")):
        w(f"| {fmt(m[k]['conns'])} | {label} | "
          f"{m[k]['kib_per_conn']:.2f} |")
    w("")
    w("Where the server's time goes:")
    w("")
    for row in a["sizes"]:
        r2_profile(w, f"echo 16 x 4, {row['size']} B, libwsa", row["wsa"])
    r2_profile(w, "echo 16 x 1, 16 B, libwsa", a["latency"][(1, "wsa")])
    r2_profile(w, "echo 16 x 1, 16 B, lws-plain",
               a["latency"][(1, "plain")])
    r2_profile(w, "logins, libwsa", lg["login"])
    r2_profile(w, "token at the upgrade, libwsa", lg["upgrade"])
    r2_profile(w, "upgrades, lws-plain", lg["plain"])
    w("")
    w(R2_READING)
    w("")
    w("Reproduce: `bench/run --only round2`.")
    w("")


# What the figures above have shown on this machine, and why; the
# figures themselves are the run's.
R2_READING = """What limits each, as measured:

- **Messages of every size.** libwsa reads plain connections on its own
  loops itself (`lib/core/read.c`: one `recv()` takes what is waiting, up
  to the loop's 64 KiB buffer; frames are unmasked where they lie) and
  now writes them itself too (`write_raw`: one `send()` of a
  connection's queue at the end of the round, without lws' writeable
  round). A message's UTF-8 is checked once, by the parser, not also
  before it; the parser's and the serialiser's string scans take sixteen
  bytes at a time (SSE2); a reply is serialised straight into the
  connection's output queue; and a loop keeps its emptied output buffers
  for the next replies, so a busy loop neither allocates one per reply
  nor grows it by copying into fresh pages (page faults were a tenth of
  the server's time at 16 KiB). What remains from 4 KiB up is the copies
  (the kernel's, jansson's of each string) and the scans, against a byte
  echo that does none of it.
- **Memory per idle connection.** libwebsockets' own share (`struct lws`
  about 990 bytes, its WebSocket state about 230, its buffer 148) is
  about three quarters of what an idle connection costs and out of our
  reach. libwsa's connection is now 376 bytes (malloc's 384-byte class;
  504 before): its indexes by id and by uid are links inside it (no entry
  or user allocation of their own), its list nodes do not name their
  list, its reassembly and output buffers are one pointer each (NULL
  while idle), and the id of the message being handled is the loop's.
  The rest is the identity (uid, email and claims in one allocation) and
  the indexes' buckets. `tests/test_memory.c` counts what the library
  holds per idle connection (448 bytes of its own allocations).
- **Logins.** Debian's libwebsockets is built with `_DEBUG`: on every
  close it scans its whole descriptor table (20,000 entries here; the
  hottest libwebsockets address in the login profiles, about 30% of the
  CPU of both servers). Beyond that, a login costs libwsa about 12 µs
  more than a bare upgrade costs lws-plain, in two parts. The kernel's
  share is about 6 µs more: the login is a second exchange (a read, a
  write of the `auth` answer, whose delivery on loopback the server's
  core pays, and a wake-up), and libev's `epoll` registers each socket
  (`epoll_ctl`), where lws-plain's `poll()` does not. The rest is
  user-space spread thin: the JWT check (the HMAC, whose OpenSSL context
  is copied and freed per token, base64url, two small parses), the
  connection's set-up and limits, and allocations. This session took out
  what was clearly waste (three `inet_ntop` and two `getpeername` per
  connection, jansson's parser for the token, a slower base64url); what
  would remove the rest is a libwebsockets built without `_DEBUG` (the
  scan goes, which helps both servers alike but leaves the login's fixed
  cost a smaller share), and a login that needs no second exchange. A
  token at the upgrade saves that exchange, yet costs as much: Debian's
  libwebsockets parses request headers a byte at a time with a debug log
  call per byte (about 150 instructions a byte), and the token adds some
  200 bytes to the request.
- **One message in flight.** The kernel's work a message is the same
  for both servers (one read, one write, a share of a wake-up: about 4.5
  µs in alternated runs here). libwsa's user-space share is about two
  and a half times lws-plain's: jansson's values (about 21
  allocations a message for the parsed message and the reply, most of
  malloc's and free's share, and their deletion), the parse, the
  handler's reply and its serialisation, and the clock reads of the
  handler-duration histogram. With many messages in flight the kernel's
  work is shared by each round of the loop and libwsa pulls ahead (16 x
  16). What would remove the rest is a handler API that does not hand
  the host jansson values (a parsed view over the message where it lies,
  and a reply writer), which is a new API, not a faster one.
- **This machine.** Two cores shared with other tenants: the same run
  repeated moved by up to 1.5x (logins most), hence the medians."""

ALONE = {
    "round2": (r2_run, write_r2, R2_HEAD, R2_TARGET, r2_target,
               "round two: every size, logins, memory, one in flight"),
    "attack": (attack, write_attack, ATTACK_HEAD, ATTACK_TARGET,
               attack_target,
               "attack: 10,000 that never log in, 1,000 flooding"),
    "topics": (topics, write_topics, TOPICS_HEAD, TOPICS_TARGET,
               topics_target,
               "topics: 16,000 colliding names against 16,000 ordinary"),
    "deflate": (deflate_run, write_deflate, DEFLATE_HEAD, DEFLATE_TARGET,
                deflate_target,
                "deflate: chat-sized JSON with and without "
                "permessage-deflate"),
    "metrics": (metrics_run, write_metrics, METRICS_HEAD, METRICS_TARGET,
                metrics_target,
                "metrics: JSON echo with counting on and off"),
    "redis": (redis_run, write_redis, REDIS_HEAD, REDIS_TARGET,
              redis_target,
              "redis: two chat-room nodes sharing one Redis against one "
              "node"),
    "joins": (joins_run, write_joins, JOINS_HEAD, JOINS_TARGET,
              joins_target,
              "joins: a join's cost and a room's memory at 1 and 128 rooms"),
    "storm": (storm_run, write_storm, STORM_HEAD, STORM_TARGET,
              storm_target,
              "storm: 1,000 clients reconnecting at once, each having "
              "missed 100 messages"),
    "threads": (threads, write_threads, THREADS_HEAD,
                (THREADS_TARGET_SCALE, THREADS_TARGET_OLD), threads_target,
                f"threads: one loop against two, and against {OLD_COMMIT}"),
}


if __name__ == "__main__":
    main()
