#!/usr/bin/python3
"""echo-chat --metrics: the Prometheus exposition, checked three ways.

One echo-chat with `--metrics /metrics --allow-origin http://good.example`
is given a known set of events (logins accepted and refused, a login
timeout, a token expiry, a refresh, messages of each kind, a burst beyond
the rate limit, refused upgrades, closes); then

- its exposition is scraped with urllib and every value compared with what
  the clients saw (counters exactly, gauges once the closes are done);
- Debian's `promtool check metrics` must find nothing to say about it;
- a Browser-style request from an origin not allowed is refused (403);
- Debian's Prometheus server scrapes it on loopback and its HTTP API must
  return the count of accepted logins.

Clients are Debian's python3-websockets and PyJWT, through the helpers of
test_echo_chat.py next to this file. Prometheus and promtool come from
Debian's `prometheus` package (scripts/deps test installs it); without
/usr/bin/prometheus the suite is skipped (77).

    /usr/bin/python3 tests/interop/test_metrics.py \\
        --echo-chat build/examples/echo-chat/echo-chat

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
"""

import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without its packages)

from test_echo_chat import (SECRET, OTHER_SECRET, AUTH_OK, PONG,  # noqa: E402
                            ERR_AUTH, ERR_TIMEOUT, ERR_EXPIRED, ERR_UNKNOWN,
                            ERR_FORMAT, check, claims, hs)

from websockets.exceptions import ConnectionClosed  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
if not (os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)):
    sys.stderr.write("no %s or %s (Debian's prometheus package): skipping\n"
                     % (PROMETHEUS, PROMTOOL))
    sys.exit(77)

# The whole story is one case and Prometheus needs a few scrapes; under a
# wrapper (valgrind) echo-chat is some 20 times slower.
SLOW = 4 if base.WRAPPER else 1
base.CASE_TIMEOUT = 60.0 * SLOW
PROMETHEUS_TIMEOUT = 60.0 * SLOW

GOOD_ORIGIN = "http://good.example"
EVIL_ORIGIN = "http://evil.example"
ROUTE = "/ws/chat"
ERR_RATE = {"type": "error", "message": "Rate limit exceeded"}
# echo-chat's default rate burst: a burst this much beyond it is refused
# in part, but far below the refusals in a row that close a connection
# (one more than the burst).
RATE_BURST = 50
BURST = RATE_BURST + 20

# What the exposition must hold, by kind (histograms by base name).
GAUGES = ["wsa_connections", "wsa_connections_authenticated",
          "wsa_queued_bytes"]
COUNTERS = ["wsa_upgrades_refused_total", "wsa_logins_total",
            "wsa_token_refreshes_total", "wsa_token_expiries_total",
            "wsa_messages_received_total", "wsa_messages_sent_total",
            "wsa_sent_bytes_total", "wsa_errors_sent_total",
            "wsa_rate_limited_total", "wsa_closes_total",
            "wsa_slow_consumer_closes_total", "wsa_publishes_total",
            "wsa_deliveries_total"]
HISTOGRAMS = ["wsa_handler_duration_seconds", "wsa_verify_duration_seconds",
              "wsa_publish_duration_seconds"]
LOGIN_RESULTS = ["accepted", "expired", "bad_signature", "malformed",
                 "unknown_key", "claims", "revoked", "throttled", "timeout",
                 "rejected", "limit"]


# --------------------------------------------------------------------------
# the text format (0.0.4)

LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
SAMPLE_RE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)'
                       r'(?:\s+-?\d+)?$')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


class Exposition:
    """A scrape: samples by (name, sorted labels), HELP and TYPE by name."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.help = {}
        self.type = {}
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "HELP":
                    self.help[parts[2]] = parts[3] if len(parts) > 3 else ""
                elif len(parts) >= 4 and parts[1] == "TYPE":
                    self.type[parts[2]] = parts[3].strip()
                continue
            m = SAMPLE_RE.match(line)
            check(m, "line %d is not a sample: %r" % (n, line))
            labels, rest = {}, m.group(2) or ""
            while rest.strip():
                lm = LABEL_RE.match(rest)
                check(lm, "line %d: bad labels: %r" % (n, line))
                labels[lm.group(1)] = unescape(lm.group(2))
                rest = rest[lm.end():]
            key = (m.group(1), tuple(sorted(labels.items())))
            check(key not in self.samples, "line %d repeats a series: %r"
                  % (n, line))
            self.samples[key] = float(m.group(3))

    def get(self, name, **labels):
        """The value of one series, or None when it is absent."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def series(self, name):
        """{labels dict as sorted tuple: value} of one metric name."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}

    def value(self, name, **labels):
        v = self.get(name, **labels)
        check(v is not None, "no series %s%s in the exposition"
              % (name, fmt_labels(labels)))
        return v


def fmt_labels(labels):
    if not labels:
        return ""
    return "{%s}" % ",".join('%s="%s"' % kv for kv in sorted(
        labels.items() if isinstance(labels, dict) else labels))


def http_get(url, headers=None, timeout=base.NET_TIMEOUT * SLOW):
    """(status, headers, body text) of a GET; 4xx and 5xx included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def metrics_url(srv, path="/metrics"):
    return "http://127.0.0.1:%d%s" % (srv.port, path)


async def scrape(srv):
    status, headers, body = await asyncio.to_thread(http_get,
                                                    metrics_url(srv))
    check(status == 200, "GET /metrics: HTTP %d: %r" % (status, body[:200]))
    return Exposition(body), headers


async def scrape_until(srv, want, what, timeout=base.NET_TIMEOUT * SLOW):
    """Scrape until want(exposition) is true (the server counts a close
    when it has finished it, not when the client has)."""
    deadline = time.monotonic() + timeout
    while True:
        e, _ = await scrape(srv)
        if want(e):
            return e
        if time.monotonic() > deadline:
            raise base.Failure("%s: not so within %.0f s" % (what, timeout))
        await asyncio.sleep(0.05)


def free_port():
    """A port nothing listens on now (Prometheus takes no port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# clients that tally what the server sent them

class Tally:
    """What the server sent to the clients: text messages and their bytes
    on the wire (frame headers included), by error text too."""

    def __init__(self):
        self.messages = 0
        self.frame_bytes = 0
        self.errors = {}

    def add(self, text):
        n = len(text.encode())
        self.messages += 1
        self.frame_bytes += n + (2 if n < 126 else 4 if n < 65536 else 10)
        obj = json.loads(text)
        if obj.get("type") == "error":
            self.errors[obj["message"]] = self.errors.get(
                obj["message"], 0) + 1
        return obj


async def recv(t, ws, timeout=base.NET_TIMEOUT * SLOW, what="a message"):
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise base.Failure("no message within %.1f s while waiting for %s"
                           % (timeout, what))
    except ConnectionClosed as e:
        raise base.Failure("connection closed (%r) while waiting for %s"
                           % (e.rcvd.code if e.rcvd else None, what))
    check(isinstance(msg, str), "binary frame: %r" % msg[:80])
    return t.tally.add(msg)


async def expect(t, ws, want, timeout=base.NET_TIMEOUT * SLOW):
    got = await recv(t, ws, timeout, base.js(want))
    check(got == want, "expected %s, got %s" % (base.js(want), base.js(got)))


async def login(t, ws, token=None):
    await base.send(ws, {"type": "login", "token": token or hs(claims())})
    await expect(t, ws, AUTH_OK)


async def refused_login(t, url, token):
    """A login the verifier refuses: error, then the server's close."""
    ws = await base.connect(url)
    try:
        await base.send(ws, {"type": "login", "token": token})
        await expect(t, ws, ERR_AUTH)
        await base.expect_close(ws, 1008, base.NET_TIMEOUT * SLOW)
    finally:
        await ws.close()


async def close_1000(ws):
    await asyncio.wait_for(ws.close(1000), base.NET_TIMEOUT * SLOW)
    check(ws.close_code == 1000, "close answered with %r" % ws.close_code)


# --------------------------------------------------------------------------
# context

class Metrics(base.Context):
    """"default": echo-chat with the exposition at /metrics and an origin
    allow-list; "plain": without --metrics; "off": --metrics with
    --no-metrics. Default limits in all: the rate-limit case is about the
    default burst."""

    def __init__(self, *a):
        super().__init__(*a)
        self.tally = Tally()
        self.final = None  # the exposition after the events
        self.expected = {}

    def server_args(self, kind):
        common = ["--jwt-secret", SECRET]
        if kind == "default":
            return common + ["--metrics", "/metrics",
                             "--allow-origin", GOOD_ORIGIN]
        if kind == "plain":
            return common
        if kind == "off":
            return common + ["--metrics", "/metrics", "--no-metrics"]
        raise KeyError(kind)

    def need_final(self):
        check(self.final is not None, "no exposition after the events (the "
              "first case failed)")
        return self.final


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# --------------------------------------------------------------------------
# the events, and the exposition that must follow from them

N_ACCEPTED = 5       # plain logins, closed by the client with 1000
N_CHAT = 7
N_TYPING = 3
N_PING = 2           # on the message connection; the burst adds its own


async def produce(t, srv):
    """Drive the events; returns the counts a correct exposition shows."""
    url = srv.url
    # A connection that never logs in, opened first: echo-chat's default
    # auth timeout (10 s) runs out while the rest happens, so the timeout
    # case needs no shorter setting.
    idle = await base.connect(url)
    idle_opened = time.monotonic()
    conns = []
    for i in range(N_ACCEPTED):
        ws = await base.connect(url)
        conns.append(ws)
        await login(t, ws, hs(claims(uid="user%d" % i)))
    # Open now: the idle one and the five; five of them authenticated.
    await scrape_until(
        srv, lambda e: e.get("wsa_connections", route=ROUTE) == 6 and
        e.get("wsa_connections_authenticated", route=ROUTE) == 5,
        "wsa_connections 6 and wsa_connections_authenticated 5 while open")

    # Logins the verifier refuses, one of each kind echo-chat can produce
    # (it has one key without an id, so a token's kid is ignored there and
    # unknown_key cannot happen: it must stay 0).
    await refused_login(t, url, hs(claims(exp=base.now() - 60)))
    await refused_login(t, url, hs(claims(), key=OTHER_SECRET))
    await refused_login(t, url, "abc.def")

    # Upgrades refused at the HTTP level.
    await base.expect_http_status(base.with_path(url, "/nope"), 404)
    await base.expect_http_status(url, 403, origin=EVIL_ORIGIN)

    # Messages of each kind on one connection, and a refresh.
    a = conns[0]
    for i in range(N_CHAT):
        await base.send(a, {"type": "chat", "message": "m%d" % i})
        got = await recv(t, a, what="chat echo")
        check(got.get("message") == "Echo: m%d" % i, "echo: %r" % got)
    for i in range(N_TYPING):
        await base.send(a, {"type": "typing", "isTyping": i % 2 == 0})
    for _ in range(N_PING):
        await base.send(a, {"type": "ping"})
        await expect(t, a, PONG)
    await base.send(a, {"type": "nope"})
    await expect(t, a, ERR_UNKNOWN)
    await base.send(a, "not json")
    await expect(t, a, ERR_FORMAT)
    await login(t, a, hs(claims(uid="user0", ttl=600)))

    # A burst beyond the rate burst on another connection: each message
    # is answered, with a pong or with the refusal.
    b = conns[1]
    await asyncio.gather(*(base.send(b, {"type": "ping"})
                           for _ in range(BURST)))
    pongs = refusals = 0
    for _ in range(BURST):
        got = await recv(t, b, what="pong or refusal")
        if got == PONG:
            pongs += 1
        else:
            check(got == ERR_RATE, "burst answer: %r" % got)
            refusals += 1
    check(refusals >= 1, "a burst of %d pings beyond a burst of %d was "
          "not refused once" % (BURST, RATE_BURST))

    # A token that expires on the live connection.
    x = await base.connect(url)
    await login(t, x, hs(claims(uid="short", ttl=2)))
    await expect(t, x, ERR_EXPIRED, timeout=5 * SLOW)
    await base.expect_close(x, 1008, base.NET_TIMEOUT * SLOW)

    # The idle connection's auth timeout.
    left = 10.0 - (time.monotonic() - idle_opened)
    await expect(t, idle, ERR_TIMEOUT,
                 timeout=max(0.0, left) + base.NET_TIMEOUT * SLOW)
    await base.expect_close(idle, 1008, base.NET_TIMEOUT * SLOW)

    for ws in conns:
        await close_1000(ws)

    return {
        "accepted": N_ACCEPTED + 1,  # and the one that expired
        "pongs": N_PING + pongs,
        "refusals": refusals,
        "closes": {"1000": N_ACCEPTED, "1008": 5},
    }


@case
async def metrics_count_what_happened(t):
    srv = t.server()
    exp = t.expected = await produce(t, srv)
    e = await scrape_until(
        srv, lambda e: e.get("wsa_connections", route=ROUTE) == 0 and
        e.get("wsa_queued_bytes") == 0 and
        sum(e.series("wsa_closes_total").values()) >= 10,
        "wsa_connections 0, wsa_queued_bytes 0 and 10 closes counted after "
        "the closes")
    t.final = e
    want = [
        ("wsa_connections", {"route": ROUTE}, 0),
        ("wsa_connections_authenticated", {"route": ROUTE}, 0),
        ("wsa_queued_bytes", {}, 0),
        ("wsa_logins_total", {"result": "accepted"}, exp["accepted"]),
        ("wsa_logins_total", {"result": "expired"}, 1),
        ("wsa_logins_total", {"result": "bad_signature"}, 1),
        ("wsa_logins_total", {"result": "malformed"}, 1),
        ("wsa_logins_total", {"result": "timeout"}, 1),
        ("wsa_token_refreshes_total", {}, 1),
        ("wsa_token_expiries_total", {}, 1),
        ("wsa_upgrades_refused_total", {"status": "404"}, 1),
        ("wsa_upgrades_refused_total", {"status": "403"}, 1),
        ("wsa_messages_received_total", {"route": ROUTE, "type": "chat"},
         N_CHAT),
        ("wsa_messages_received_total", {"route": ROUTE, "type": "typing"},
         N_TYPING),
        ("wsa_messages_received_total", {"route": ROUTE, "type": "ping"},
         exp["pongs"]),
        # the unknown type and the text that is not JSON
        ("wsa_messages_received_total", {"route": ROUTE, "type": "other"},
         2),
        ("wsa_messages_sent_total", {}, t.tally.messages),
        ("wsa_rate_limited_total", {}, exp["refusals"]),
        ("wsa_slow_consumer_closes_total", {}, 0),
        ("wsa_publishes_total", {}, 0),
        ("wsa_deliveries_total", {}, 0),
    ]
    for text, n in sorted(t.tally.errors.items()):
        want.append(("wsa_errors_sent_total", {"message": text}, n))
    for code, n in exp["closes"].items():
        want.append(("wsa_closes_total", {"code": code}, n))
    bad = []
    for name, labels, n in want:
        got = e.get(name, **labels)
        if got != n:
            bad.append("%s%s = %s, expected %d" % (
                name, fmt_labels(labels), got, n))
    # Every login result is there, those that did not happen at 0.
    for r in LOGIN_RESULTS:
        got = e.get("wsa_logins_total", result=r)
        if got is None:
            bad.append('wsa_logins_total{result="%s"} absent' % r)
        elif not any(w[0] == "wsa_logins_total" and w[1]["result"] == r
                     for w in want) and got != 0:
            bad.append('wsa_logins_total{result="%s"} = %s, expected 0'
                       % (r, got))
    # Only what happened: no other close code, error text or refused
    # status above 0, and no message type of the route but those above.
    for name, key, seen in (
            ("wsa_closes_total", "code", exp["closes"]),
            ("wsa_errors_sent_total", "message", t.tally.errors),
            ("wsa_upgrades_refused_total", "status", {"403", "404"}),
            ("wsa_messages_received_total", "type",
             {"chat", "typing", "ping", "other"})):
        for labels, v in e.series(name).items():
            d = dict(labels)
            if d.get(key) not in seen and v != 0:
                bad.append("%s%s = %s, expected 0 or absent"
                           % (name, fmt_labels(labels), v))
    # The bytes of the messages' frames (headers included; close frames
    # are not messages): what the clients got, to the byte.
    sent = e.value("wsa_sent_bytes_total")
    if sent != t.tally.frame_bytes:
        bad.append("wsa_sent_bytes_total = %s, expected %d (the text "
                   "frames the clients got)" % (sent, t.tally.frame_bytes))
    check(not bad, "the exposition disagrees with what happened:\n  "
          + "\n  ".join(bad))


def histogram_problems(e, name, count=None, at_least=None):
    """Buckets cumulative and ending at +Inf == _count; _sum >= 0."""
    bad = []
    buckets = sorted(((float(dict(k)["le"]), v) for k, v in
                      e.series(name + "_bucket").items()),
                     key=lambda x: x[0])
    n = e.get(name + "_count")
    s = e.get(name + "_sum")
    if not buckets or buckets[-1][0] != math.inf:
        bad.append("%s has no +Inf bucket" % name)
    elif n is None or buckets[-1][1] != n:
        bad.append("%s: +Inf bucket %s, _count %s" % (name, buckets[-1][1],
                                                      n))
    if any(b[1] > c[1] for b, c in zip(buckets, buckets[1:])):
        bad.append("%s: buckets not cumulative: %r" % (name, buckets))
    if s is None or s < 0:
        bad.append("%s_sum: %s" % (name, s))
    if count is not None and n != count:
        bad.append("%s_count = %s, expected %d" % (name, n, count))
    if at_least is not None and (n or 0) < at_least:
        bad.append("%s_count = %s, expected at least %d" % (name, n,
                                                            at_least))
    return bad


@case
async def metrics_histograms_are_whole(t):
    e = t.need_final()
    bad = []
    # echo-chat has handlers for chat and typing (ping is the library's).
    bad += histogram_problems(e, "wsa_handler_duration_seconds",
                              count=N_CHAT + N_TYPING)
    # Every login that reached the verifier: the accepted ones and the
    # refresh at least.
    bad += histogram_problems(e, "wsa_verify_duration_seconds",
                              at_least=t.expected["accepted"] + 1)
    # echo-chat publishes nothing.
    bad += histogram_problems(e, "wsa_publish_duration_seconds", count=0)
    check(not bad, "\n".join(bad))


@case
async def metrics_every_metric_has_help_and_type(t):
    e = t.need_final()
    bad = []
    for names, kind in ((GAUGES, "gauge"), (COUNTERS, "counter"),
                        (HISTOGRAMS, "histogram")):
        for name in names:
            if e.type.get(name) != kind:
                bad.append("# TYPE %s: %r, expected %s"
                           % (name, e.type.get(name), kind))
            if not e.help.get(name, "").strip():
                bad.append("# HELP %s missing or empty" % name)
            sample = name + "_count" if kind == "histogram" else name
            if not e.series(sample):
                bad.append("no sample of %s" % sample)
    check(not bad, "\n".join(bad))


@case
async def metrics_content_type_is_text_004(t):
    _, headers = await scrape(t.server())
    ct = headers.get("Content-Type", "")
    parts = [p.strip() for p in ct.split(";")]
    check(parts[0] == "text/plain" and "version=0.0.4" in parts,
          "Content-Type: %r" % ct)


@case
async def metrics_pass_promtool_check(t):
    e = t.need_final()
    r = await asyncio.to_thread(subprocess.run, [PROMTOOL, "check",
                                                 "metrics"],
                                input=e.text, capture_output=True,
                                text=True, timeout=60)
    # promtool exits 1 on a text it cannot parse, 3 on lint problems
    # (names, units, HELP), each printed; 0 only when it has nothing to
    # say.
    check(r.returncode == 0, "promtool check metrics exited %d:\n%s"
          % (r.returncode, (r.stdout + r.stderr).strip()))


@case
async def metrics_refused_to_origin_not_allowed(t):
    url = metrics_url(t.server())
    status, _, body = await asyncio.to_thread(http_get, url,
                                              {"Origin": EVIL_ORIGIN})
    check(status == 403, "GET /metrics with Origin %s: HTTP %d"
          % (EVIL_ORIGIN, status))
    check("wsa_" not in body, "the refusal carries metrics: %r" % body[:200])
    status, _, body = await asyncio.to_thread(http_get, url,
                                              {"Origin": GOOD_ORIGIN})
    check(status == 200 and "wsa_logins_total" in body,
          "GET /metrics with Origin %s: HTTP %d" % (GOOD_ORIGIN, status))


@case
async def metrics_scraped_by_prometheus(t):
    srv = t.server()
    want = t.expected.get("accepted")
    check(want, "no count of accepted logins (the first case failed)")
    e, _ = await scrape(srv)
    check(e.get("wsa_logins_total", result="accepted") == want,
          "accepted logins changed since the events")
    tmp = tempfile.mkdtemp(prefix="wsa-prometheus-")
    port = free_port()
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n"
                "  scrape_interval: 1s\n"
                "  scrape_timeout: 1s\n"
                "scrape_configs:\n"
                "  - job_name: echo-chat\n"
                "    metrics_path: /metrics\n"
                "    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % srv.port)
    log = open(os.path.join(tmp, "prometheus.log"), "w+")
    proc = subprocess.Popen(
        [PROMETHEUS, "--config.file=" + config,
         "--web.listen-address=127.0.0.1:%d" % port,
         "--storage.tsdb.path=" + os.path.join(tmp, "data")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    api = "http://127.0.0.1:%d/api/v1/query?query=" % port + \
        urllib.parse.quote('wsa_logins_total{result="accepted"}')
    last = "nothing"
    try:
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        while True:
            check(proc.poll() is None, "prometheus exited %r"
                  % proc.returncode)
            try:
                status, _, body = await asyncio.to_thread(http_get, api,
                                                          None, 5)
                last = "HTTP %d %s" % (status, body[:300])
                r = json.loads(body) if status == 200 else {}
                res = r.get("data", {}).get("result", [])
                if res:
                    check(len(res) == 1, "several series: %r" % res)
                    check(res[0]["metric"].get("job") == "echo-chat",
                          "series of another job: %r" % res)
                    if float(res[0]["value"][1]) == want:
                        break
            except (OSError, ValueError) as ex:
                last = repr(ex)  # not listening yet
            if time.monotonic() > deadline:
                log.seek(0)
                raise base.Failure(
                    "Prometheus did not report %d accepted logins within "
                    "%.0f s; last answer: %s\n  prometheus log:\n%s"
                    % (want, PROMETHEUS_TIMEOUT, last, "\n".join(
                        "    | " + ln for ln in
                        log.read().splitlines()[-20:])))
            await asyncio.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@case
async def metrics_path_is_404_without_option(t):
    srv = t.server("plain")
    status, _, body = await asyncio.to_thread(http_get, metrics_url(srv))
    check(status == 404, "GET /metrics without --metrics: HTTP %d" % status)
    check("wsa_" not in body, "metrics without --metrics: %r" % body[:200])


@case
async def metrics_no_metrics_counts_nothing(t):
    srv = t.server("off")
    tally, t.tally = t.tally, Tally()  # not the default server's
    try:
        async with base.client(srv.url) as ws:
            await login(t, ws)
            await base.send(ws, {"type": "chat", "message": "x"})
            await recv(t, ws, what="chat echo")
            await base.send(ws, {"type": "ping"})
            await expect(t, ws, PONG)
    finally:
        t.tally = tally

    def nonzero(e):
        return ["%s%s %s" % (k[0], fmt_labels(k[1]), v)
                for k, v in sorted(e.samples.items()) if v != 0]
    # One scrape, not a poll: a gauge that counted the connection may
    # still show it, and must not (the server counts nothing).
    e, _ = await scrape(srv)
    check(e.get("wsa_logins_total", result="accepted") is not None,
          "no wsa_logins_total with --no-metrics")
    check(not nonzero(e), "--no-metrics counted: " + ", ".join(nonzero(e)))


def main():
    return base.main(CASES, make_context=Metrics, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
