#!/usr/bin/python3
"""Hostile-input tests for the echo-chat example of libwsa.

Each case is one attack of a class RFC 8725 (JWT best current practices) or
the OWASP WebSocket guidance names, with the secure answer asserted exactly;
after it, a well-behaved client from another address (127.0.0.2) must still
log in and get its chat echoed, and every server the case touched must still
run.  Attackers connect from 127.0.0.10 and up, a fresh address each time,
because the server throttles failed logins per client address.  The law is
/work/shared/PROTOCOL.md and the limits of wsa_config (include/wsa.h).

The plumbing (server process, client helpers, token minting, the runner) is
imported from test_echo_chat.py next to this file.  Run with the Debian
interpreter (the one that has python3-websockets, -jwt, -cryptography):

    /usr/bin/python3 tests/interop/test_hostile.py \\
        --echo-chat build/examples/echo-chat/echo-chat \\
        --wsa-token build/examples/wsa-token/wsa-token

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
Output: one "PASS name" / "FAIL name" line per case, then a last line
"N passed, N failed"; the exit status is non-zero on any failure, 77 when
the Python packages are missing.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without the packages)

from test_echo_chat import (  # noqa: E402
    AUTH_OK, ERR_AUTH, ERR_FIRST, ERR_FORMAT, ERR_TIMEOUT, HS256_HDR, SECRET,
    ConnectionClosed, Failure, RawWS, b64u, check, claims, client, connect,
    craft, expect, expect_close, expect_error_close, expect_http_status, hs,
    js, now, ping_pong, recv_json, send, ws_frame)

ERR_RATE = {"type": "error", "message": "Rate limit exceeded"}
ERR_FORBIDDEN = {"type": "error", "message": "Forbidden"}
GOOD_ADDR = "127.0.0.2"  # the well-behaved client after each case
SURVIVAL_TIMEOUT = 5.0
CUT_OFF_LIMIT = 5.0  # a slow client must be cut off within this
WS_ERRORS = base.websockets.exceptions.WebSocketException


# --------------------------------------------------------------------------
# source addresses

_attackers = itertools.count()


def attacker():
    """A fresh loopback address: 127.0.0.10, .11, ... then 127.0.1.10 ..."""
    n = next(_attackers)
    return "127.0.%d.%d" % (n // 240, 10 + n % 240)


def src(addr=None):
    """connect() keywords for a connection from addr (default: fresh)."""
    return {"local_addr": (addr or attacker(), 0)}


# --------------------------------------------------------------------------
# servers: one shared echo-chat per option set ("kind")

KINDS = {
    "default": [],
    "short": ["--auth-timeout-ms", "1000", "--handshake-timeout-ms", "1000"],
    "big": ["--max-message-size", "262144"],
    "rate": ["--rate-limit", "5", "--rate-burst", "10"],
    "throttle": ["--max-failed-logins", "3"],
    "max5": ["--max-connections", "5"],
    "origin": ["--allow-origin", "https://good.example"],
    "scope": ["--require", "chat:scope=chat:write"],
    "role": ["--require", "chat:role=admin"],
    "tls": ["--handshake-timeout-ms", "1000"],
}


class TLSFiles:
    """A self-signed certificate for 127.0.0.1 (and a key that does not
    match it), made with the openssl command."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsa-hostile-tls-")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.other_key = os.path.join(self.dir, "other-key.pem")
        openssl = shutil.which("openssl")
        check(openssl, "no openssl command")
        for args in (["req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                      self.key, "-out", self.cert, "-days", "2", "-subj",
                      "/CN=127.0.0.1", "-addext",
                      "subjectAltName=IP:127.0.0.1"],
                     ["genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-out",
                      self.other_key]):
            r = subprocess.run([openssl] + args, capture_output=True,
                               timeout=30)
            check(r.returncode == 0, "openssl %s failed: %s" % (
                args[0], r.stderr.decode(errors="replace")))

    def context(self, min_version=None, max_version=None):
        """A client context that trusts the certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if min_version:
                ctx.minimum_version = min_version
            if max_version:
                ctx.maximum_version = max_version
        return ctx


class Hostile(base.Context):
    def __init__(self, echo_chat, wsa_token):
        super().__init__(echo_chat, wsa_token)
        self._tls = None

    @property
    def tls(self):
        if self._tls is None:
            self._tls = TLSFiles()
        return self._tls

    def server_args(self, kind):
        if kind in ("rs256", "es256"):
            return super().server_args(kind)
        args = ["--jwt-secret", SECRET] + KINDS[kind]
        if kind == "tls":
            args += ["--tls-cert", self.tls.cert, "--tls-key", self.tls.key]
        return args

    def server(self, kind="default"):
        srv = super().server(kind)
        srv.kind = kind
        return srv

    def good_token(self, kind, uid="survivor"):
        """A token the server of this kind accepts (with the scope and the
        role that the "scope" and "role" servers ask for chat)."""
        if kind == "rs256":
            return base.rs(self.keys.rsa, claims(uid=uid))
        if kind == "es256":
            return base.rs(self.keys.ec, claims(uid=uid), "ES256")
        return hs(claims(uid=uid, scope="chat:write", role="admin"))

    def client_kw(self, kind):
        return {"ssl": self.tls.context()} if kind == "tls" else {}

    def cleanup(self):
        super().cleanup()
        if self._tls is not None:
            shutil.rmtree(self._tls.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# the check after every case

async def expect_echo(ws, text, mid=None, timeout=base.NET_TIMEOUT):
    got = await recv_json(ws, timeout, what="the echo of %r" % text[:40])
    ts = got.get("timestamp")
    want = {"type": "chat", "message": "Echo: " + text, "from": "server",
            "timestamp": ts}
    if mid is not None:
        want["id"] = mid
    check(isinstance(ts, int) and not isinstance(ts, bool) and got == want,
          "expected %s, got %s" % (js(want), js(got)[:300]))


async def chat_echo(ws, text, mid=None):
    msg = {"type": "chat", "message": text}
    if mid is not None:
        msg["id"] = mid
    await send(ws, msg)
    await expect_echo(ws, text, mid)


async def survives(t, srv):
    """The server runs, and a well-behaved client from GOOD_ADDR logs in
    and gets {"type":"chat","message":"Echo: x",...} in bounded time."""
    check(srv.alive(), "echo-chat [%s] died during the case (exit %r)"
          % (srv.kind, srv.proc.returncode))

    async def well_behaved():
        async with client(srv.url, **src(GOOD_ADDR),
                          **t.client_kw(srv.kind)) as ws:
            await base.login(ws, t.good_token(srv.kind))
            await chat_echo(ws, "x")
    try:
        await asyncio.wait_for(well_behaved(), SURVIVAL_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure("after the attack, echo-chat [%s] did not serve a "
                      "well-behaved client within %.0f s"
                      % (srv.kind, SURVIVAL_TIMEOUT))
    except Failure as e:
        raise Failure("after the attack, echo-chat [%s] failed a "
                      "well-behaved client: %s" % (srv.kind, e))
    except (OSError, WS_ERRORS) as e:
        raise Failure("after the attack, echo-chat [%s] refused a "
                      "well-behaved client: %r" % (srv.kind, e))
    check(srv.alive(), "echo-chat [%s] died (exit %r)"
          % (srv.kind, srv.proc.returncode))


CASES = []


def case(fn):
    """Register a case; after it, every server it used must survive."""
    async def run(t):
        await fn(t)
        used = [s for s in t.used if s in t.shared.values()]
        for srv in dict.fromkeys(used) or [t.server()]:
            await survives(t, srv)
    run.__name__ = fn.__name__
    CASES.append(run)
    return fn


def variants(prefix, table):
    """Register one case per (name, value) of table, running fn(t, value)."""
    def register(fn):
        for name, value in table:
            async def one(t, value=value):
                await fn(t, value)
            one.__name__ = "%s_%s" % (prefix, name)
            case(one)
        return fn
    return register


# --------------------------------------------------------------------------
# attack helpers

async def login_refused(t, token, kind="default"):
    """A login with this token, from a fresh address: error, close 1008."""
    async with client(t.url(kind), **src(), **t.client_kw(kind)) as ws:
        await send(ws, {"type": "login", "token": token})
        await expect_error_close(ws, ERR_AUTH)


async def closed_with(t, raw, code, do_login=True, kind="default"):
    """Send raw (a str, bytes or a list of fragments); expect a close."""
    async with client(t.url(kind), **src()) as ws:
        if do_login:
            await base.login(ws)
        await send(ws, raw)
        await expect_close(ws, code)


async def content_error(t, raw, error, kind="default"):
    """After login, raw gets the error and the connection goes on."""
    async with client(t.url(kind), **src()) as ws:
        await base.login(ws)
        t0 = time.monotonic()
        await send(ws, raw)
        await expect(ws, error)
        check(time.monotonic() - t0 < 3, "the answer took %.1f s"
              % (time.monotonic() - t0))
        await ping_pong(ws)


def push(sock, data, chunk=16384):
    """Send data until the server says something or stops taking it."""
    for i in range(0, len(data), chunk):
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return
        try:
            sock.sendall(data[i:i + chunk])
        except OSError:
            return


def raw_close_code(url, data, do_login):
    """On a raw connection (after a login when do_login), send data
    (bytes); return the close code and the text frames before it."""
    raw = RawWS(url, source=attacker())
    try:
        if do_login:
            raw.login()
        push(raw.sock, data)
        texts, code = raw.recv_close_code()
        return code, texts
    finally:
        raw.close()


async def raw_closed_with(t, data, code, do_login=True):
    got, texts = await asyncio.to_thread(raw_close_code, t.url(), data,
                                         do_login)
    check(got == code, "expected close %d, got %r (texts before: %r)"
          % (code, got, texts))
    check(not texts, "messages before the close: %r" % texts)


def host_port(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port


def upgrade_request(url, headers="", key=True):
    host, port = host_port(url)
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n%sSec-WebSocket-Version: 13\r\n%s\r\n"
            % (urllib.parse.urlsplit(url).path, host, port,
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               if key else "", headers)).encode()


def raw_http_status(url, request):
    """Send an HTTP request as is; the status code of the answer, or None
    when the server closed without one."""
    sock = socket.create_connection(host_port(url), timeout=base.NET_TIMEOUT,
                                    source_address=(attacker(), 0))
    got = b""
    try:
        push(sock, request)
        while b"\r\n" not in got:
            try:
                data = sock.recv(4096)
            except ConnectionError:
                data = b""
            except socket.timeout:
                raise Failure("no HTTP answer within %.0f s"
                              % base.NET_TIMEOUT)
            if not data:
                break
            got += data
    finally:
        sock.close()
    if not got:
        return None
    parts = got.split(b"\r\n", 1)[0].split()
    check(len(parts) >= 2 and parts[0].startswith(b"HTTP/1."),
          "not an HTTP answer: %r" % got[:200])
    return int(parts[1])


def cut_off(addr, payload, pace=None, first=b"", limit=CUT_OFF_LIMIT,
            wrap=None):
    """Connect, send `first` at once, then payload a byte every `pace`
    seconds; return (seconds until the server closed, bytes received).
    Fails when the server has not closed within `limit` seconds."""
    sock = socket.create_connection(addr, timeout=base.NET_TIMEOUT,
                                    source_address=(attacker(), 0))
    t0 = time.monotonic()
    got, sent = b"", 0
    try:
        if first:
            sock.sendall(first)
        while True:
            left = t0 + limit - time.monotonic()
            if left <= 0:
                raise Failure("still connected after %.1f s (%d of %d "
                              "bytes dribbled; received %r)"
                              % (limit, sent, len(payload), got[:200]))
            wait = min(left, pace) if pace else left
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                try:
                    data = sock.recv(4096)
                except ConnectionError:
                    data = b""
                if not data:
                    return time.monotonic() - t0, got
                got += data
            elif pace and sent < len(payload):
                try:
                    sock.send(payload[sent:sent + 1])
                except OSError:
                    return time.monotonic() - t0, got
                sent += 1
    finally:
        sock.close()


def check_cut_off(elapsed, got, timeout_s=1.0):
    check(not got.startswith(b"HTTP/1.1 101"),
          "the slow client was upgraded: %r" % got[:200])
    check(elapsed >= timeout_s / 2, "cut off after %.2f s, well before the "
          "%.0f s handshake timeout" % (elapsed, timeout_s))


# ==========================================================================
# JWT (RFC 8725): tokens that must be refused at login

def alg_none(alg, signed):
    si = b64u(js({"alg": alg, "typ": "JWT"})) + "." + b64u(js(claims()))
    return craft({"alg": alg, "typ": "JWT"}, claims()) if signed else si + "."


@variants("jwt_alg_none", [("none", "none"), ("None", "None"),
                           ("NONE", "NONE"), ("nOnE", "nOnE")])
async def _alg_none(t, alg):
    # unsigned ("h.p.") and with an HMAC signature over it: both refused
    await login_refused(t, alg_none(alg, False))
    await login_refused(t, alg_none(alg, True))


async def key_confusion(t, kind, pem):
    """HS256 signed with the server's public key (the file's bytes, the
    same without the final newline, its DER form) as the HMAC secret."""
    der = base64.b64decode(b"".join(ln for ln in pem.splitlines()
                                    if b"-----" not in ln))
    good = t.good_token(kind)
    for key in (pem, pem.rstrip(b"\n"), der):
        await login_refused(t, craft(HS256_HDR, claims(), key=key), kind)
    async with client(t.url(kind), **src()) as ws:  # the key itself is right
        await base.login(ws, good)


@case
async def jwt_key_confusion_hs256_signed_with_rsa_public_key(t):
    await key_confusion(t, "rs256", t.keys.rsa_pem)


@case
async def jwt_key_confusion_hs256_signed_with_ec_public_key(t):
    await key_confusion(t, "es256", t.keys.ec_pem)


@case
async def jwt_hs512_with_the_hs256_secret(t):
    await login_refused(t, hs(claims(), alg="HS512"))


@case
async def jwt_hs384_with_the_hs256_secret(t):
    await login_refused(t, hs(claims(), alg="HS384"))


@case
async def jwt_claims_tampered_signature_kept(t):
    h, _, s = hs(claims(uid="alice")).split(".")
    await login_refused(t, ".".join([h, b64u(js(claims(uid="admin"))), s]))


@case
async def jwt_header_alg_swapped_signature_kept(t):
    _, p, s = hs(claims()).split(".")
    await login_refused(t, ".".join([b64u(js({"alg": "HS512",
                                              "typ": "JWT"})), p, s]))


@case
async def jwt_signature_stripped(t):
    h, p, _ = hs(claims()).split(".")
    await login_refused(t, h + "." + p + ".")


@case
async def jwt_exp_in_the_past(t):
    await login_refused(t, hs({"uid": "alice", "exp": now() - 1}))


@case
async def jwt_exp_as_string(t):
    await login_refused(t, craft(HS256_HDR, {"uid": "alice",
                                             "exp": str(now() + 300)}))


@case
async def jwt_exp_missing(t):
    await login_refused(t, hs({"uid": "alice"}))


@case
async def jwt_nbf_in_the_future(t):
    await login_refused(t, hs(claims(nbf=now() + 60)))


@case
async def jwt_no_uid_no_sub(t):
    await login_refused(t, hs({"exp": now() + 300, "email": "a@example.com",
                               "scope": "chat:write"}))


@case
async def jwt_uid_not_a_string(t):
    await login_refused(t, craft(HS256_HDR, {"uid": ["admin"],
                                             "exp": now() + 300}))


@case
async def jwt_token_8193_bytes(t):
    await login_refused(t, base.token_of_length(8193))


@case
async def jwt_duplicate_claim(t):
    raw = '{"uid":"alice","exp":%d,"uid":"admin"}' % (now() + 300)
    await login_refused(t, craft(HS256_HDR, raw))


@case
async def jwt_duplicate_header_member(t):
    await login_refused(t, craft('{"alg":"HS256","typ":"JWT","alg":"none"}',
                                 claims()))


@case
async def jwt_crit_header(t):
    await login_refused(t, craft({"alg": "HS256", "typ": "JWT",
                                  "crit": ["exp"], "exp": 1}, claims()))


@case
async def jwt_embedded_jwk_with_attacker_key(t):
    evil = "attacker-chosen-secret-0123456789abcdef"
    await login_refused(t, craft({"alg": "HS256", "typ": "JWT", "jwk": {
        "kty": "oct", "k": b64u(evil)}}, claims(uid="admin"), key=evil))


@case
async def jwt_jku_pointing_at_attacker(t):
    evil = "attacker-chosen-secret-0123456789abcdef"
    await login_refused(t, craft({"alg": "HS256",
                                  "jku": "https://evil.example/jwks.json"},
                                 claims(uid="admin"), key=evil))


@case
async def jwt_kid_path_traversal_empty_key(t):
    # a kid naming /dev/null, signed with the empty key it would read
    await login_refused(t, craft({"alg": "HS256", "typ": "JWT",
                                  "kid": "../../../../../../dev/null"},
                                 claims(uid="admin"), key=b""))


@case
async def jwt_explicit_typ_other_than_jwt(t):
    await login_refused(t, craft({"alg": "HS256", "typ": "at+jwt"},
                                 claims()))


@case
async def jwt_nul_inside_token(t):
    await login_refused(t, hs(claims()) + "\u0000" + "x")


def malformed_tokens():
    good = hs(claims())
    h, p, s = good.split(".")
    return [
        "a.b.c", "..", "....", "." * 4000, "a." * 4000 + "a",
        "!!!.###.$$$", " " + good, good + " ", good + "\n",
        h + "." + p + "." + s + "=", h + ". " + p + "." + s,
        "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9", "%00.%00.%00",
        b64u(os.urandom(6000)), good.replace(".", ".\u200b"),
        craft(HS256_HDR, "not json"), craft("not json", claims()),
        b64u(js(HS256_HDR)) + "." + b64u(js(claims())) + "." + "A" * 43,
    ]


@case
async def jwt_malformed_segments_and_base64_junk(t):
    for tok in malformed_tokens():
        await login_refused(t, tok)


# ==========================================================================
# login and the time and bytes before it

def login_of_size(n):
    """A login message of exactly n bytes (its token is junk)."""
    base_len = len(js({"type": "login", "token": ""}))
    return js({"type": "login", "token": "a" * (n - base_len)})


@case
async def prelogin_login_at_max_login_size_16384_is_verified(t):
    msg = login_of_size(16384)
    check(len(msg) == 16384, "bad size")
    async with client(t.url(), **src()) as ws:
        await send(ws, msg)
        await expect_error_close(ws, ERR_AUTH)


@case
async def prelogin_login_16385_bytes_1009(t):
    await closed_with(t, login_of_size(16385), 1009, do_login=False)


@case
async def prelogin_login_16385_bytes_in_fragments_1009(t):
    msg = login_of_size(16385)
    await closed_with(t, [msg[i:i + 1000] for i in range(0, len(msg), 1000)],
                      1009, do_login=False)


@case
async def prelogin_login_1mb_1009(t):
    await closed_with(t, login_of_size(1 << 20), 1009, do_login=False)


@case
async def prelogin_other_message_over_login_size_1009(t):
    await closed_with(t, js({"type": "chat", "message": "c" * 20000}), 1009,
                      do_login=False)


@case
async def prelogin_deeply_nested_first_message(t):
    async with client(t.url(), **src()) as ws:
        await send(ws, "[" * 16000)
        await expect_error_close(ws, ERR_FIRST)


@case
async def prelogin_binary_login_1003(t):
    await closed_with(t, js({"type": "login", "token": hs(claims())}).encode(),
                      1003, do_login=False)


@case
async def prelogin_invalid_utf8_login_1007(t):
    await raw_closed_with(t, ws_frame(1, b'{"type":"login","token":"\xff"}'),
                          1007, do_login=False)


@case
async def prelogin_query_string_token_is_not_used(t):
    url = t.url() + "?token=" + urllib.parse.quote(hs(claims()))
    async with client(url, **src()) as ws:
        await send(ws, {"type": "chat", "message": "no login"})
        await expect_error_close(ws, ERR_FIRST)


@case
async def prelogin_login_dribbled_in_fragments_auth_timeout(t):
    text = js({"type": "login", "token": hs(claims())})

    async def dribble():
        for ch in text:
            yield ch
            await asyncio.sleep(0.05)
    async with client(t.url("short"), **src()) as ws:
        t0 = time.monotonic()
        sender = asyncio.ensure_future(ws.send(dribble()))
        try:
            await expect(ws, ERR_TIMEOUT, timeout=CUT_OFF_LIMIT)
            elapsed = time.monotonic() - t0
            await expect_close(ws, 1008)
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
        check(0.8 <= elapsed < 3, "Authentication timeout after %.2f s with "
              "a 1 s auth timeout" % elapsed)


def raw_dribble_login(url):
    """Upgrade, then send one login frame a byte every 50 ms; return the
    texts before the close, the close code and when the first came."""
    raw = RawWS(url, source=attacker())
    try:
        t0 = time.monotonic()
        data = ws_frame(1, js({"type": "login",
                               "token": hs(claims())}).encode())
        for i in range(len(data)):
            readable, _, _ = select.select([raw.sock], [], [], 0.05)
            if readable or raw.buf:
                break
            raw.sock.send(data[i:i + 1])
            check(time.monotonic() - t0 < CUT_OFF_LIMIT, "not cut off")
        texts, code = raw.recv_close_code()
        return texts, code, time.monotonic() - t0
    finally:
        raw.close()


@case
async def prelogin_login_dribbled_bytewise_auth_timeout(t):
    texts, code, elapsed = await asyncio.to_thread(raw_dribble_login,
                                                   t.url("short"))
    check([json.loads(x) for x in texts] == [ERR_TIMEOUT] and code == 1008,
          "expected %s then close 1008, got %r then %r"
          % (js(ERR_TIMEOUT), texts, code))
    check(elapsed < 3, "cut off after %.2f s with a 1 s auth timeout"
          % elapsed)


# ==========================================================================
# the HTTP upgrade: slow, idle, oversized and malformed clients

async def handshake_cut_off(t, payload, pace=None, first=b""):
    url = t.url("short")
    elapsed, got = await asyncio.to_thread(cut_off, host_port(url), payload,
                                           pace, first)
    check_cut_off(elapsed, got)


@case
async def handshake_dribbled_a_byte_at_a_time_cut_off(t):
    url = t.url("short")
    await handshake_cut_off(t, upgrade_request(url), pace=0.1)


@case
async def handshake_request_line_then_stall_cut_off(t):
    await handshake_cut_off(t, b"", first=b"GET /ws/chat HTTP/1.1\r\n")


@case
async def handshake_idle_tcp_connection_cut_off(t):
    await handshake_cut_off(t, b"")


@case
async def handshake_100k_header_not_upgraded(t):
    url = t.url()
    req = upgrade_request(url, "X-Junk: %s\r\n" % ("j" * 100000))
    status = await asyncio.to_thread(raw_http_status, url, req)
    check(status != 101, "upgraded with a 100 KB header")
    check(status is None or 400 <= status < 500,
          "expected a 4xx or a close, got HTTP %r" % status)


@case
async def handshake_1k_subprotocol_header_431(t):
    # libwebsockets 4.1.6 cannot take this header over 127 bytes: refused
    # with an answer (wsa(7)), not dropped.  (Request headers over 8 KiB
    # in all are dropped by libwebsockets without one: see the 100 KB
    # case.)
    await expect_http_status(t.url(), 431, **src(),
                             subprotocols=["wsa", "x" * 1000])


@case
async def handshake_5k_cookie_431(t):
    # Headers past the server's 4 KiB limit but inside libwebsockets'
    # 8 KiB buffer: judged by the server, 431 (PROTOCOL.md §1), for an
    # upgrade and for a page alike.  Before, libwebsockets' 4 KiB buffer
    # overflowed and the connection was dropped without an answer.
    url = t.url()
    cookie = "Cookie: c=%s\r\n" % ("k" * 5000)
    status = await asyncio.to_thread(raw_http_status, url,
                                     upgrade_request(url, cookie))
    check(status == 431, "upgrade with a 5 KB cookie: HTTP %r" % status)
    host, port = host_port(url)
    req = ("GET / HTTP/1.1\r\nHost: %s:%d\r\n%sConnection: close\r\n\r\n"
           % (host, port, cookie)).encode()
    status = await asyncio.to_thread(raw_http_status, url, req)
    check(status == 431, "GET / with a 5 KB cookie: HTTP %r" % status)


def oversized_requests(url, n):
    """n requests whose headers overflow libwebsockets' buffer, one a
    connection; how many got any answer."""
    answered = 0
    req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"f" * 9000 + b"\r\n\r\n"
    for _ in range(n):
        sock = socket.create_connection(host_port(url),
                                        timeout=base.NET_TIMEOUT,
                                        source_address=(attacker(), 0))
        try:
            push(sock, req)
            try:
                answered += bool(sock.recv(4096))
            except ConnectionError:
                pass
        finally:
            sock.close()
    return answered


HELD_RE = re.compile(r"\((\d+) more like it in the last [\d.]+ s\)")


@case
async def handshake_200_oversized_requests_logged_at_most_once_a_second(t):
    # Past libwebsockets' 8 KiB header buffer the server cannot judge: a
    # silent close, and in the log at most one line a second with a count
    # of the others (PROTOCOL.md §1), not one line each.  A server of its
    # own, so that its stderr holds only this case's lines.
    srv = t.own_server(["--jwt-secret", SECRET], name="oversized")
    try:
        answered = await asyncio.to_thread(oversized_requests, srv.url, 200)
        check(not answered, "%d of 200 oversized requests were answered"
              % answered)

        def lines():
            return [ln for ln in srv.stderr_text().splitlines()
                    if "Ran out of header data space" in ln]

        def counted():
            # a line stands for itself, a count line for the ones held
            return sum(int(m.group(1)) if m else 1
                       for m in map(HELD_RE.search, lines()))
        # the count of the held-back ones comes within a second or two
        deadline = time.monotonic() + 5
        while counted() < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        got = lines()
        check(len(got) <= 4, "%d log lines for 200 oversized requests:\n%s"
              % (len(got), "\n".join(got[:10])))
        check(counted() == 200, "the log accounts for %d of 200 oversized "
              "requests:\n%s" % (counted(), "\n".join(got)))
    finally:
        srv.stop()


@case
async def log_100_refused_logins_at_most_a_line_a_second(t):
    # Any line a stranger can cause is held to one a second with a count
    # of the others: here "login rejected", 100 times from one client.
    srv = t.own_server(["--jwt-secret", SECRET], name="loglimit")
    try:
        for _ in range(100):
            async with client(srv.url, **src()) as ws:
                await send(ws, {"type": "login", "token": "x.y.z"})
                await expect_error_close(ws, ERR_AUTH)
        rx = re.compile(r"login rejected(?:: (\d+) more in the last)?")

        def counted():
            return sum(int(m.group(1)) if m.group(1) else 1
                       for m in map(rx.search, srv.stderr_text().splitlines())
                       if m)
        deadline = time.monotonic() + 5
        while counted() < 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        got = [ln for ln in srv.stderr_text().splitlines()
               if "login rejected" in ln]
        # 100 logins take a second or so: a line and a count per second
        check(len(got) <= 8, "%d log lines for 100 refused logins:\n%s"
              % (len(got), "\n".join(got[:12])))
        check(counted() == 100, "the log accounts for %d of 100 refused "
              "logins:\n%s" % (counted(), "\n".join(got)))
    finally:
        srv.stop()


# ==========================================================================
# plain HTTP on the WebSocket port (PROTOCOL.md §1; RFC 9110)

def http_exchange(url, request):
    """Send request (bytes; the last of them asks Connection: close); all
    the server sent until it closed."""
    sock = socket.create_connection(host_port(url), timeout=base.NET_TIMEOUT,
                                    source_address=(attacker(), 0))
    got = b""
    try:
        sock.sendall(request)
        while True:
            data = sock.recv(65536)
            if not data:
                return got
            got += data
    finally:
        sock.close()


def split_answer(data):
    """(status, headers dict, the rest) of the first answer in data, the
    rest being its body and whatever follows it."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        name, _, value = ln.partition(":")
        check(name.lower() not in headers, "header %s twice" % name)
        headers[name.lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def req(method, path, close=False):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
            % (method, path, "Connection: close\r\n" if close else "")).encode()


def page_policy():
    """The policy of the page's <meta> Content-Security-Policy."""
    page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "examples", "web", "index.html")
    with open(page, encoding="utf-8") as f:
        m = re.search(r'<meta http-equiv="Content-Security-Policy" '
                      r'content="([^"]*)"', f.read())
    check(m, "index.html has no <meta> Content-Security-Policy")
    return m.group(1).rstrip("; ")


@case
async def http_head_gets_get_headers_and_no_body(t):
    url = t.url()
    for path in ("/", "/index.html", "/app.js", "/nope"):
        got = await asyncio.to_thread(http_exchange, url,
                                      req("GET", path, close=True))
        g_status, g_headers, g_body = split_answer(got)
        # HEAD, then GET /nope on the same connection: the second answer
        # must come right after the first one's headers
        got = await asyncio.to_thread(
            http_exchange, url, req("HEAD", path) + req("GET", "/nope",
                                                         close=True))
        h_status, h_headers, rest = split_answer(got)
        check(h_status == g_status,
              "HEAD %s: %d, GET: %d" % (path, h_status, g_status))
        check(h_headers == g_headers, "HEAD %s headers %r, GET's %r"
              % (path, h_headers, g_headers))
        check(int(h_headers["content-length"]) == len(g_body),
              "HEAD %s: Content-Length %s, GET's body %d bytes"
              % (path, h_headers["content-length"], len(g_body)))
        check(rest.startswith(b"HTTP/1.1 404 "),
              "after HEAD %s the next answer starts with %r"
              % (path, rest[:40]))


@variants("http_other_method_on_page_405", [
    (m.lower(), m) for m in ("POST", "OPTIONS", "PUT", "DELETE", "PATCH")])
async def _http_405(t, method):
    got = await asyncio.to_thread(
        http_exchange, t.url(),
        ("%s / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
         % method).encode() + req("GET", "/nope", close=True))
    status, headers, rest = split_answer(got)
    check(status == 405, "%s /: HTTP %d" % (method, status))
    allow = {m.strip() for m in headers.get("allow", "").split(",")}
    check(allow == {"GET", "HEAD"}, "Allow: %r" % headers.get("allow"))
    body = rest[:int(headers["content-length"])]
    check(rest[len(body):].startswith(b"HTTP/1.1 404 "),
          "the request after %s was answered %r" % (method,
                                                    rest[len(body):][:40]))


@case
async def http_other_method_on_unknown_path_404(t):
    got = await asyncio.to_thread(http_exchange, t.url(),
                                  req("POST", "/nope", close=True))
    check(split_answer(got)[0] == 404, "POST /nope: %r" % got[:40])


@case
async def http_page_security_headers(t):
    want = page_policy() + "; frame-ancestors 'none'"
    for path in ("/", "/index.html"):
        got = await asyncio.to_thread(http_exchange, t.url(),
                                      req("GET", path, close=True))
        status, headers, _ = split_answer(got)
        check(status == 200, "GET %s: %d" % (path, status))
        check(headers.get("content-security-policy") == want,
              "GET %s: Content-Security-Policy %r, not %r"
              % (path, headers.get("content-security-policy"), want))
        check(headers.get("x-content-type-options") == "nosniff",
              "GET %s: X-Content-Type-Options %r"
              % (path, headers.get("x-content-type-options")))
        check(headers.get("referrer-policy") == "no-referrer",
              "GET %s: Referrer-Policy %r"
              % (path, headers.get("referrer-policy")))
    # what else is served, and a 404, cannot be framed either
    for path in ("/app.js", "/nope"):
        got = await asyncio.to_thread(http_exchange, t.url(),
                                      req("GET", path, close=True))
        csp = split_answer(got)[1].get("content-security-policy", "")
        check("frame-ancestors 'none'" in csp,
              "GET %s: Content-Security-Policy %r" % (path, csp))


def idle_sockets(url, n, addr):
    return [socket.create_connection(host_port(url), timeout=base.NET_TIMEOUT,
                                     source_address=(addr, 0))
            for _ in range(n)]


def hung_up(sock):
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


@case
async def handshake_600_idle_tcp_from_one_address_bounded(t):
    # sockets that never send a request must not use up descriptors:
    # beyond the bound (wsa(7): twice the 256 WebSockets an address may
    # have, 512) they are closed at once; other addresses are served
    url = t.url()
    socks = await asyncio.to_thread(idle_sockets, url, 600, attacker())
    try:
        async with client(url, **src()) as ws:
            await base.login(ws)
            await chat_echo(ws, "beside idle sockets")
        # A loop handles its accepts in order, but with several service
        # threads the 600 are spread over their listeners: wait (bounded)
        # until the ones beyond the bound have been hung up.
        closed, deadline = set(), time.monotonic() + base.NET_TIMEOUT
        while len(closed) < 88 and time.monotonic() < deadline:
            readable, _, _ = select.select(
                [s for s in socks if s not in closed], [], [], 0.2)
            closed.update(s for s in readable if hung_up(s))
        # and none more than those
        readable, _, _ = select.select(
            [s for s in socks if s not in closed], [], [], 0.2)
        closed.update(s for s in readable if hung_up(s))
        still_open = len(socks) - len(closed)
        check(still_open == 512, "%d of 600 idle TCP connections from one "
              "address still open, not 512" % still_open)
    finally:
        for sock in socks:
            sock.close()


@case
async def handshake_without_websocket_key_not_upgraded(t):
    url = t.url()
    status = await asyncio.to_thread(raw_http_status, url,
                                     upgrade_request(url, key=False))
    check(status != 101, "upgraded without Sec-WebSocket-Key")


# ==========================================================================
# token at the upgrade

def bearer(token):
    return {"extra_headers": {"Authorization": "Bearer " + token}}


def bearer_protocol(token):
    return {"subprotocols": ["wsa", "wsa.bearer." + token]}


def short_token(key=SECRET, ttl=300, alg="HS256"):
    """A token of about 100 bytes: the whole Sec-WebSocket-Protocol value
    "wsa, wsa.bearer.TOKEN" stays within 127 bytes (libwebsockets 4.1.6
    drops longer ones; the library answers 431 to them)."""
    tok = craft({"alg": alg}, {"sub": "u", "exp": now() + ttl}, key=key)
    if alg == "none":
        tok = tok.rsplit(".", 1)[0] + "."
    check(len("wsa, wsa.bearer." + tok) <= 127, "token too long")
    return tok


@case
async def upgrade_bearer_header_valid_is_authenticated(t):
    async with client(t.url(), **src(), **bearer(hs(claims()))) as ws:
        await expect(ws, AUTH_OK)
        await chat_echo(ws, "via header", mid=1)


async def subprotocol_login(t, token):
    try:
        ws = await connect(t.url(), **src(), **bearer_protocol(token))
    except base.InvalidStatusCode as e:
        raise Failure("a valid %d-byte token as a subprotocol entry: the "
                      "upgrade was refused with HTTP %d"
                      % (len(token), e.status_code))
    try:
        check(ws.subprotocol == "wsa", "selected subprotocol %r, not 'wsa'"
              % ws.subprotocol)
        await expect(ws, AUTH_OK)
        await chat_echo(ws, "via subprotocol")
    finally:
        await close_all([ws])


@case
async def upgrade_bearer_subprotocol_short_token_is_authenticated(t):
    await subprotocol_login(t, short_token())


@case
async def upgrade_bearer_subprotocol_typical_jwt_is_431(t):
    # A typical token (header with typ, uid, exp, email: ~190 bytes) does
    # not fit the 127 bytes libwebsockets 4.1.6 allows the whole
    # Sec-WebSocket-Protocol header: a clear 431, never a silent drop.
    token = hs(claims(email="alice@example.com"))
    await expect_http_status(t.url(), 431, **src(), **bearer_protocol(token))


def bad_upgrade_tokens():
    return [("bad_signature", short_token(key=base.OTHER_SECRET)),
            ("expired", short_token(ttl=-1)),
            ("alg_none", short_token(alg="none")),
            ("junk", "a.b.c")]


@variants("upgrade_bearer_401", [(n, n) for n, _ in bad_upgrade_tokens()])
async def _upgrade_401(t, name):
    token = dict(bad_upgrade_tokens())[name]
    await expect_http_status(t.url(), 401, **src(), **bearer(token))
    await expect_http_status(t.url(), 401, **src(), **bearer_protocol(token))


@case
async def upgrade_bearer_header_without_scope_then_forbidden(t):
    url = t.url("scope")
    async with client(url, **src(), **bearer(hs(claims()))) as ws:
        await expect(ws, AUTH_OK)
        await send(ws, {"type": "chat", "message": "no scope", "id": 3})
        await expect(ws, dict(ERR_FORBIDDEN, id=3))
        await ping_pong(ws)


# ==========================================================================
# failed-login throttle per client address (--max-failed-logins 3)

@case
async def throttle_after_3_failed_logins_even_valid_token_fails(t):
    url, addr = t.url("throttle"), attacker()
    for _ in range(3):
        async with client(url, **src(addr)) as ws:
            await send(ws, {"type": "login",
                            "token": hs(claims(), key=base.OTHER_SECRET)})
            await expect_error_close(ws, ERR_AUTH)
    async with client(url, **src(addr)) as ws:
        await send(ws, {"type": "login", "token": hs(claims())})
        await expect_error_close(ws, ERR_AUTH)
    await expect_http_status(url, 401, **src(addr), **bearer(hs(claims())))
    await expect_http_status(url, 401, **src(addr),
                             **bearer_protocol(short_token()))
    async with client(url, **src()) as ws:  # another address
        await base.login(ws)
        await chat_echo(ws, "other address")


@case
async def default_no_lockout_after_100_failed_logins_from_one_address(t):
    # Users behind one NAT share an address: with the default settings no
    # number of failures from it makes a valid token fail.
    url, addr = t.url(), attacker()
    for i in range(100):
        token = ["a.b.c", hs(claims(), key=base.OTHER_SECRET),
                 hs(claims(ttl=-60))][i % 3]
        async with client(url, **src(addr)) as ws:
            await send(ws, {"type": "login", "token": token})
            await expect_error_close(ws, ERR_AUTH)
    async with client(url, **src(addr)) as ws:
        await base.login(ws)
        await chat_echo(ws, "valid after 100 failures")


@case
async def throttle_below_the_limit_valid_login_accepted(t):
    url, addr = t.url("throttle"), attacker()
    for _ in range(2):
        async with client(url, **src(addr)) as ws:
            await send(ws, {"type": "login", "token": "a.b.c"})
            await expect_error_close(ws, ERR_AUTH)
    async with client(url, **src(addr)) as ws:
        await base.login(ws)
        await chat_echo(ws, "third try")


# ==========================================================================
# rate limit after login (--rate-limit 5 --rate-burst 10)

def chat_msg(i):
    m = {"type": "chat", "message": "m%d" % i}
    if i % 2 == 0:
        m["id"] = i
    return m


@case
async def rate_limit_burst_then_refusals_then_1008(t):
    # --rate-limit 5 --rate-burst 10: the burst is echoed; then the server
    # refuses a message, reads nothing for 200 ms, takes one, refuses the
    # next... and closes with 1008 at the 11th refusal in a row.
    async with client(t.url("rate"), **src()) as ws:
        await base.login(ws)
        for i in range(40):
            await send(ws, chat_msg(i))
        for i in range(10):
            await expect_echo(ws, "m%d" % i, chat_msg(i).get("id"))
        refused, last = 0, None
        for i in range(10, 40):
            try:
                got = json.loads(await asyncio.wait_for(ws.recv(),
                                                        base.NET_TIMEOUT))
            except ConnectionClosed:
                break
            want = dict(ERR_RATE)
            if "id" in chat_msg(i):
                want["id"] = i
            if got == want:
                refused += 1
                check(last != "refused",
                      "two refusals in a row at m%d: the connection was "
                      "read before the rate allowed a message" % i)
                last = "refused"
            else:
                check(got.get("message") == "Echo: m%d" % i,
                      "m%d: neither its echo nor a refusal: %r" % (i, got))
                last = "echoed"
        check(refused == 11, "closed after %d refusals, not 11" % refused)
        await expect_close(ws, 1008)


@case
async def rate_limit_refills_at_the_rate(t):
    async with client(t.url("rate"), **src()) as ws:
        await base.login(ws)
        for i in range(11):
            await send(ws, chat_msg(i))
        for i in range(10):
            await expect_echo(ws, "m%d" % i, chat_msg(i).get("id"))
        await expect(ws, dict(ERR_RATE, id=10))
        await asyncio.sleep(1.1)  # the point: 5 a second come back
        for i in range(20, 25):
            await send(ws, chat_msg(i))
        for i in range(20, 25):
            await expect_echo(ws, "m%d" % i, chat_msg(i).get("id"))


@case
async def rate_limit_100_pipelined_behind_login_default_20_50(t):
    # 100 messages right behind the login, on the default limits: the
    # burst of 50 is echoed, the rest are taken as the rate allows (20 a
    # second) or refused, one refusal per pause, too few to be closed.
    async with client(t.url(), **src()) as ws:
        t0 = time.monotonic()
        await send(ws, {"type": "login", "token": hs(claims())})
        for i in range(100):
            await send(ws, {"type": "chat", "message": "f%d" % i, "id": i})
        await expect(ws, AUTH_OK)
        echoed = []
        for i in range(100):
            got = await recv_json(ws, what="the answer to f%d" % i)
            if got == dict(ERR_RATE, id=i):
                continue
            check(got.get("type") == "chat" and got.get("id") == i and
                  got.get("message") == "Echo: f%d" % i,
                  "answer %d out of order or wrong: %s" % (i, js(got)))
            echoed.append(i)
        elapsed = time.monotonic() - t0
        check(echoed[:50] == list(range(50)),
              "the first 50 (the burst) were not all echoed: refused %s"
              % sorted(set(range(50)) - set(echoed))[:20])
        extra = len(echoed) - 50
        check(extra <= 20 * elapsed + 1, "%d echoes beyond the burst in "
              "%.2f s at 20 a second" % (extra, elapsed))
        await send(ws, {"type": "ping", "id": "p"})
        got = await recv_json(ws, what="pong or a rate-limit refusal")
        check(got in ({"type": "pong", "id": "p"}, dict(ERR_RATE, id="p")),
              "the connection did not go on: %s" % js(got))


# ==========================================================================
# message contents after login

@case
async def msg_deeply_nested_65536_brackets(t):
    await content_error(t, "[" * 65536, ERR_FORMAT)


@case
async def msg_deeply_nested_100000_brackets(t):
    await content_error(t, "[" * 100000, ERR_FORMAT, kind="big")


@case
async def msg_deeply_nested_balanced_array(t):
    await content_error(t, "[" * 32768 + "]" * 32768, ERR_FORMAT)


@case
async def msg_deeply_nested_array_as_chat_message(t):
    await content_error(t, '{"type":"chat","message":%s}'
                        % ("[" * 30000 + "]" * 30000), ERR_FORMAT)


@case
async def msg_deeply_nested_objects_as_chat_message(t):
    await content_error(t, '{"type":"chat","message":%s0%s}'
                        % ('{"a":' * 10000, "}" * 10000), ERR_FORMAT)


def padded_to(prefix, item, sep, suffix, size):
    """prefix + items joined by sep + suffix, space-padded to size bytes."""
    items, n = [], len(prefix) + len(suffix)
    for i in itertools.count():
        s = item(i)
        if n + len(s) + (len(sep) if items else 0) > size:
            break
        n += len(s) + (len(sep) if items else 0)
        items.append(s)
    text = prefix + sep.join(items) + " " * (size - n) + suffix
    check(len(text.encode()) == size, "bad padding")
    return text


async def huge_allowed(t, text, label):
    async with client(t.url(), **src()) as ws:
        await base.login(ws)
        t0 = time.monotonic()
        await send(ws, text)
        await expect_echo(ws, label)
        check(time.monotonic() - t0 < 2, "the echo took %.1f s"
              % (time.monotonic() - t0))
        await ping_pong(ws)


@case
async def msg_65536_bytes_of_array_elements_echoed(t):
    await huge_allowed(t, padded_to('{"type":"chat","message":"arr","pad":[',
                                    lambda i: "0", ",", "]}", 65536), "arr")


@case
async def msg_65536_bytes_of_object_members_echoed(t):
    await huge_allowed(t, padded_to('{"type":"chat","message":"keys",',
                                    lambda i: '"k%d":0' % i, ",", "}", 65536),
                       "keys")


def chat_of_size(n):
    base_len = len(js({"type": "chat", "message": ""}))
    return js({"type": "chat", "message": "o" * (n - base_len)})


@case
async def msg_65537_bytes_1009(t):
    await closed_with(t, chat_of_size(65537), 1009)


@case
async def msg_65537_bytes_in_fragments_1009(t):
    text = chat_of_size(65537)
    await closed_with(t, [text[i:i + 4096] for i in range(0, len(text), 4096)],
                      1009)


@case
async def msg_65537_one_byte_fragments_1009(t):
    text = chat_of_size(65537).encode()
    frames = b"".join(ws_frame(1 if i == 0 else 0, text[i:i + 1],
                               fin=i == len(text) - 1)
                      for i in range(len(text)))
    await raw_closed_with(t, frames, 1009)


@case
async def msg_frame_header_announcing_2_62_bytes_1009_at_once(t):
    # the header, its mask and the first bytes: refused before any more
    mask = os.urandom(4)
    start = b'{"type":"chat","message":"' + b"x" * 100
    await raw_closed_with(t, struct.pack("!BBQ", 0x81, 0xFF, 1 << 62) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(start)),
                          1009)


@variants("msg_invalid_utf8", [
    ("byte_ff", [b'{"type":"chat","message":"\xff\xfe"}']),
    ("overlong_slash", [b'{"type":"chat","message":"\xc0\xaf"}']),
    ("utf16_surrogate", [b'{"type":"chat","message":"\xed\xa0\x80"}']),
    ("above_u10ffff", [b'{"type":"chat","message":"\xf4\x90\x80\x80"}']),
    ("truncated_at_end", [b'{"type":"chat","message":"x"}\xe2\x82']),
    ("split_across_fragments", [b'{"type":"chat","message":"\xe2\x82',
                                b'A"}']),
])
async def _invalid_utf8(t, parts):
    frames = b"".join(ws_frame(1 if i == 0 else 0, p, fin=i == len(parts) - 1)
                      for i, p in enumerate(parts))
    await raw_closed_with(t, frames, 1007)


@case
async def msg_binary_after_login_1003(t):
    await closed_with(t, b'{"type":"chat","message":"bin"}', 1003)


def slow_reader_socket(url):
    """A socket from a fresh address with a tiny receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((attacker(), 0))
    sock.settimeout(base.NET_TIMEOUT)
    sock.connect(host_port(url))
    sock.setblocking(False)
    return sock


async def log_line(srv, text, before, timeout):
    """Wait (bounded) until srv's stderr holds text more than `before`
    times; only a hint of when to go on, never asserted."""
    deadline = time.monotonic() + timeout
    while (srv.stderr_text().lower().count(text) <= before and
           time.monotonic() < deadline):
        await asyncio.sleep(0.02)


@case
async def msg_slow_reader_send_queue_full_1008(t):
    # 120 echoes of 50 KB (6 MB) for a client that reads nothing: more than
    # the 1 MiB send queue and the socket buffers can hold
    srv = t.server()
    seen = srv.stderr_text().lower().count("send queue full")
    ws = await connect(srv.url, sock=slow_reader_socket(srv.url),
                       max_queue=1, read_limit=4096)
    try:
        await base.login(ws)
        for i in range(120):
            await send(ws, {"type": "chat", "message": "q" * 50000, "id": i})
        # read nothing until the server has had all of it (on a slow build
        # a reader starting early keeps up with it)
        await log_line(srv, "send queue full", seen, 10)
        echoes = 0
        while True:
            try:
                msg = await asyncio.wait_for(ws.recv(), base.NET_TIMEOUT)
            except ConnectionClosed:
                break
            except asyncio.TimeoutError:
                raise Failure("neither all echoes nor a close within %.0f s "
                              "(%d echoes)" % (base.NET_TIMEOUT, echoes))
            check(json.loads(msg).get("id") == echoes,
                  "echo %d out of order" % echoes)
            echoes += 1
        check(echoes < 120, "all 120 echoes (6 MB) were delivered: the send "
              "queue was not bounded")
        check(ws.close_code == 1008 and ws.close_reason == "Send queue full",
              "expected close 1008 'Send queue full' after %d echoes, got %r "
              "%r" % (echoes, ws.close_code, ws.close_reason))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), base.NET_TIMEOUT)


# ==========================================================================
# connection counts

async def open_many(url, n, addr):
    """n connections (no login) from addr, opened 50 at a time."""
    conns = []
    for i in range(0, n, 50):
        got = await asyncio.gather(*[connect(url, **src(addr))
                                     for _ in range(min(50, n - i))],
                                   return_exceptions=True)
        conns += [c for c in got if not isinstance(c, BaseException)]
        bad = [c for c in got if isinstance(c, BaseException)]
        if bad:
            await close_all(conns)
            raise Failure("%d of the first %d connections from %s refused: "
                          "%r" % (len(bad), n, addr, bad[0]))
    return conns


async def close_all(conns):
    async def one(ws):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), base.NET_TIMEOUT)
    await asyncio.gather(*[one(ws) for ws in conns])


@case
async def conn_300_from_one_address_default_limit_256_then_503(t):
    url, addr = t.url(), attacker()
    conns = await open_many(url, 256, addr)
    try:
        for _ in range(300 - 256):
            await expect_http_status(url, 503, **src(addr))
        async with client(url, **src()) as ws:  # another address
            await base.login(ws)
            await chat_echo(ws, "next door")
    finally:
        await close_all(conns)
    async with client(url, **src(addr)) as ws:  # the slots came back
        await base.login(ws)


@case
async def conn_max_connections_5_sixth_gets_503(t):
    url = t.url("max5")
    conns = []
    try:
        for _ in range(5):
            conns.append(await connect(url, **src()))
        await expect_http_status(url, 503, **src())
        await conns.pop().close()
        async with client(url, **src()) as ws:
            await base.login(ws)
            await chat_echo(ws, "freed slot")
    finally:
        await close_all(conns)


# ==========================================================================
# cross-site WebSocket hijacking (--allow-origin https://good.example)

@variants("origin_403", [
    ("evil", "https://evil.example"),
    ("suffix_trick", "https://good.example.evil.example"),
    ("prefix_trick", "https://evilgood.example"),
    ("other_scheme", "http://good.example"),
    ("other_port", "https://good.example:8443"),
    ("trailing_slash", "https://good.example/"),
    ("letter_case", "https://GOOD.example"),
    ("null", "null"),
])
async def _origin_403(t, origin):
    await expect_http_status(t.url("origin"), 403, **src(), origin=origin)


@case
async def origin_repeated_header_403(t):
    url = t.url("origin")
    req = upgrade_request(url, "Origin: https://good.example\r\n"
                          "Origin: https://evil.example\r\n")
    status = await asyncio.to_thread(raw_http_status, url, req)
    check(status == 403, "expected HTTP 403, got %r" % status)


@case
async def origin_listed_is_served(t):
    async with client(t.url("origin"), **src(),
                      origin="https://good.example") as ws:
        await base.login(ws)
        await chat_echo(ws, "good origin")


# ==========================================================================
# claims a message type requires (--require chat:scope=chat:write)

async def scoped(t, scope, allowed):
    c = claims() if scope is None else claims(scope=scope)
    async with client(t.url("scope"), **src()) as ws:
        await base.login(ws, craft(HS256_HDR, c))
        if allowed:
            await chat_echo(ws, "scoped", mid="s")
        else:
            await send(ws, {"type": "chat", "message": "scoped", "id": "s"})
            await expect(ws, dict(ERR_FORBIDDEN, id="s"))
            await send(ws, {"type": "typing", "isTyping": True})
            await ping_pong(ws)  # it goes on; typing needs nothing


@variants("require_forbidden", [
    ("no_scope", None), ("other_scope", "read"),
    ("longer_word", "chat:writer"), ("shorter_word", "chat:writ"),
    ("letter_case", "CHAT:WRITE"), ("comma_list", "read,chat:write"),
    ("number", 1), ("object", {"chat:write": True}),
    ("nested_array", [["chat:write"]]),
])
async def _require_forbidden(t, scope):
    await scoped(t, scope, False)


@variants("require_allowed", [
    ("exact", "chat:write"), ("space_separated", "read chat:write"),
    ("array", ["read", "chat:write"]),
])
async def _require_allowed(t, scope):
    await scoped(t, scope, True)


async def claim_token(t, kind, claim, allowed):
    """A token minted by wsa-token --claim, on a server that requires a
    claim for chat."""
    tok = t.wsa_token_cli("--secret", SECRET, "--uid", "carol",
                          "--claim", claim)
    async with client(t.url(kind), **src()) as ws:
        await base.login(ws, tok)
        if allowed:
            await chat_echo(ws, "claimed", mid="c")
        else:
            await send(ws, {"type": "chat", "message": "claimed", "id": "c"})
            await expect(ws, dict(ERR_FORBIDDEN, id="c"))


@variants("wsa_token_claim", [
    ("role", ("role", "role=admin", True)),
    ("other_role", ("role", "role=user", False)),
    ("json_array", ("scope", 'scope=["read","chat:write"]', True)),
    ("string", ("scope", "scope=chat:write", True)),
    ("json_number", ("role", "role=1", False)),
])
async def _wsa_token_claim(t, spec):
    await claim_token(t, *spec)


# ==========================================================================
# TLS (--tls-cert, --tls-key)

@case
async def tls_wss_login_and_chat(t):
    srv = t.server("tls")
    check(srv.url.startswith("wss://"), "URL %r is not wss://" % srv.url)
    async with client(srv.url, **src(), ssl=t.tls.context()) as ws:
        await base.login(ws)
        await chat_echo(ws, "over TLS")


@case
async def tls_plain_ws_to_the_tls_port_fails(t):
    url = t.url("tls").replace("wss://", "ws://", 1)
    t0 = time.monotonic()
    try:
        ws = await connect(url, **src(), open_timeout=CUT_OFF_LIMIT)
    except (OSError, EOFError, asyncio.TimeoutError, WS_ERRORS):
        check(time.monotonic() - t0 < CUT_OFF_LIMIT,
              "plain HTTP held for %.1f s" % (time.monotonic() - t0))
        return
    await ws.close()
    raise Failure("a plain ws:// WebSocket was opened on the TLS port")


def tls_handshake(addr, ctx, alpn=None):
    """A TLS handshake from a fresh address: (version, ALPN protocol,
    cipher suite), or the exception that ended it."""
    sock = socket.create_connection(addr, timeout=base.NET_TIMEOUT,
                                    source_address=(attacker(), 0))
    try:
        if alpn:
            ctx.set_alpn_protocols(alpn)
        tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        try:
            return (tls.version(), tls.selected_alpn_protocol(),
                    tls.cipher()[0])
        finally:
            tls.close()
    except (ssl.SSLError, OSError) as e:
        return e
    finally:
        sock.close()


@case
async def tls_1_1_client_refused(t):
    addr = host_port(t.url("tls"))
    ctx = t.tls.context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # else OpenSSL 3 won't offer
    except ssl.SSLError:
        ctx = None
    got = await asyncio.to_thread(tls_handshake, addr, ctx) if ctx else None
    if got is None or (isinstance(got, ssl.SSLError) and
                       "NO_PROTOCOLS_AVAILABLE" in str(got).upper()):
        # this client cannot speak TLS 1.1 here: show 1.2 is the floor
        # that works instead
        got = await asyncio.to_thread(tls_handshake, addr, t.tls.context(
            max_version=ssl.TLSVersion.TLSv1_2))
        check(isinstance(got, tuple) and got[0] == "TLSv1.2",
              "TLS 1.2 handshake: %r" % (got,))
        return
    check(isinstance(got, BaseException),
          "a TLS 1.1 client was accepted: %r" % (got,))


@case
async def tls_1_2_client_accepted(t):
    url = t.url("tls")
    ctx = t.tls.context(max_version=ssl.TLSVersion.TLSv1_2)
    async with client(url, **src(), ssl=ctx) as ws:
        got = ws.transport.get_extra_info("ssl_object").version()
        check(got == "TLSv1.2", "negotiated %r" % got)
        await base.login(ws)
        await chat_echo(ws, "TLS 1.2")


@case
async def tls_alpn_h2_never_selected(t):
    addr = host_port(t.url("tls"))
    got = await asyncio.to_thread(tls_handshake, addr, t.tls.context(),
                                  ["h2", "http/1.1"])
    check(isinstance(got, tuple) and got[1] in (None, "http/1.1"),
          "ALPN h2,http/1.1: %r" % (got,))
    got = await asyncio.to_thread(tls_handshake, addr, t.tls.context(),
                                  ["h2"])
    check(not isinstance(got, tuple) or got[1] is None,
          "ALPN h2 alone: %r" % (got,))


# The certificate is ECDSA: the ECDHE-ECDSA suites are the ones that could
# be agreed on.
CBC_SUITES = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
              "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"]
AEAD_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256",
               "ECDHE-ECDSA-AES256-GCM-SHA384",
               "ECDHE-ECDSA-CHACHA20-POLY1305"]


@variants("tls_1_2_suite", [
    (("cbc_refused_" if cbc else "aead_served_")
     + c.lower().replace("-", "_"), (c, cbc))
    for cbc, suites in ((True, CBC_SUITES), (False, AEAD_SUITES))
    for c in suites])
async def _tls_suite(t, spec):
    suite, cbc = spec
    ctx = t.tls.context(max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(suite)
    got = await asyncio.to_thread(tls_handshake, host_port(t.url("tls")), ctx)
    if cbc:
        check(isinstance(got, BaseException),
              "TLS 1.2 with %s (CBC) was agreed: %r" % (suite, got))
    else:
        check(isinstance(got, tuple) and got[2] == suite,
              "TLS 1.2 offering only %s: %r" % (suite, got))


def page_headers(url, ctx=None):
    """The status line and headers of GET / (over TLS with ctx)."""
    sock = socket.create_connection(host_port(url), timeout=base.NET_TIMEOUT,
                                    source_address=(attacker(), 0))
    if ctx:
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    got = b""
    try:
        # Not push(): over TLS 1.3 the server's session tickets make the
        # socket readable before anything is asked.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        while b"\r\n\r\n" not in got:
            data = sock.recv(4096)
            if not data:
                break
            got += data
    finally:
        sock.close()
    return got.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()


@case
async def tls_page_carries_hsts_plain_page_none(t):
    head = await asyncio.to_thread(page_headers, t.url("tls"),
                                   t.tls.context())
    check(head.startswith("http/1.1 200"), "GET / over TLS: %r" % head[:80])
    check("\r\nstrict-transport-security: max-age=63072000" in head,
          "no HSTS over TLS: %r" % head)
    head = await asyncio.to_thread(page_headers, t.url("default"))
    check(head.startswith("http/1.1 200"), "GET /: %r" % head[:80])
    check("strict-transport-security" not in head,
          "HSTS over plain HTTP: %r" % head)


def partial_client_hello(ctx):
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    return hello[:len(hello) // 2]


@case
async def tls_half_a_client_hello_then_stall_cut_off(t):
    addr = host_port(t.url("tls"))
    elapsed, got = await asyncio.to_thread(
        cut_off, addr, b"", None, partial_client_hello(t.tls.context()))
    check_cut_off(elapsed, got)


@case
async def tls_key_not_matching_certificate_refused_at_start(t):
    await base.refused_to_start(t, ["--jwt-secret", SECRET, "--tls-cert",
                                    t.tls.cert, "--tls-key",
                                    t.tls.other_key])

if __name__ == "__main__":
    sys.exit(base.main(CASES, Hostile, __doc__))
