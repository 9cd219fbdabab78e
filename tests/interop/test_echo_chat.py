#!/usr/bin/python3
"""Black-box interoperability tests for the echo-chat example of libwsa.

The peer side is made only of code this project did not write: the client is
Debian's python3-websockets (10.4), tokens are minted with python3-jwt (PyJWT)
and python3-cryptography, or by hand with hashlib/hmac where a token must be
malformed on purpose.  The law is /work/shared/PROTOCOL.md (sections 1-5).

Run with the Debian interpreter (the one that has those packages):

    /usr/bin/python3 tests/interop/test_echo_chat.py \
        --echo-chat build/examples/echo-chat/echo-chat \
        --wsa-token build/examples/wsa-token/wsa-token

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
The binaries may also be given as environment variables WSA_ECHO_CHAT and
WSA_TOKEN_BIN.  Output: one "PASS name" / "FAIL name" line per case, then a
last line "N passed, N failed"; the exit status is non-zero on any failure.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

try:
    import jwt  # PyJWT
    import websockets
    from websockets.exceptions import ConnectionClosed, InvalidStatusCode
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "missing dependency (%s): run with /usr/bin/python3 and install "
        "python3-websockets python3-jwt python3-cryptography; "
        "skipping\n" % exc)
    sys.exit(77)  # meson: skipped

SECRET = "interop-secret-0123456789-abcdefghijklmnop"  # 42 bytes >= 32
OTHER_SECRET = "another-secret-0123456789-abcdefghijklmno"
STARTUP_TIMEOUT = 10.0
NET_TIMEOUT = 5.0
CASE_TIMEOUT = 30.0

AUTH_OK = {"type": "auth", "message": "Authenticated"}
PONG = {"type": "pong"}
ERR_FIRST = {"type": "error",
             "message": "First message must be login with token"}
ERR_AUTH = {"type": "error", "message": "Authentication failed"}
ERR_TIMEOUT = {"type": "error", "message": "Authentication timeout"}
ERR_EXPIRED = {"type": "error", "message": "Token expired"}
ERR_UNKNOWN = {"type": "error", "message": "Unknown message type"}
ERR_FORMAT = {"type": "error", "message": "Invalid message format"}


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# --------------------------------------------------------------------------
# tokens

def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


def now():
    return int(time.time())


def claims(uid="alice", ttl=300, **extra):
    c = {"uid": uid, "exp": now() + ttl}
    c.update(extra)
    return c


def hs(payload, alg="HS256", key=SECRET, headers=None):
    """A token minted by PyJWT."""
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def craft(header, payload, key=SECRET, digest=hashlib.sha256, sig=None):
    """A token assembled by hand; header/payload are dicts or raw JSON text.

    The signature is HMAC(digest) over the signing input unless sig (already
    base64url text) is given."""
    h = header if isinstance(header, str) else js(header)
    p = payload if isinstance(payload, str) else js(payload)
    signing_input = b64u(h) + "." + b64u(p)
    if sig is None:
        k = key.encode() if isinstance(key, str) else key
        sig = b64u(hmac.new(k, signing_input.encode(), digest).digest())
    return signing_input + "." + sig


HS256_HDR = {"alg": "HS256", "typ": "JWT"}


def token_of_length(n):
    """A valid HS256 token of exactly n bytes (padding claim adjusted)."""
    for hdr in (HS256_HDR, {"alg": "HS256"}, {"typ": "JWT", "alg": "HS256",
                                              "kid": "k"}):
        hlen = len(b64u(js(hdr)))
        base = claims(pad="")
        blen = len(js(base))
        for pad in range(n):
            m = blen + pad
            plen = (4 * m + 2) // 3
            total = hlen + 1 + plen + 1 + 43
            if total == n:
                tok = craft(hdr, claims(pad="x" * pad))
                assert len(tok) == n, len(tok)
                return tok
            if total > n:
                break
    raise RuntimeError("cannot craft token of %d bytes" % n)


# --------------------------------------------------------------------------
# server process

class StartupFailed(Exception):
    def __init__(self, msg, returncode, stderr):
        super().__init__(msg)
        self.returncode = returncode
        self.stderr = stderr


ALL_SERVERS = []  # every process started, for the final cleanup
# WSA_SERVER_WRAPPER (e.g. "valgrind -q --error-exitcode=99 ...") runs every
# server under a wrapper; a server that exits with WRAPPER_ERROR_STATUS
# fails the suite (see wrapper_verdicts).
WRAPPER = shlex.split(os.environ.get("WSA_SERVER_WRAPPER", ""))
# WSA_SERVER_ARGS (e.g. "--threads 2") is added to every server's command
# line: the same suites against another set-up of the same server.
EXTRA_ARGS = shlex.split(os.environ.get("WSA_SERVER_ARGS", ""))
WRAPPER_ERROR_STATUS = 99


class Server:
    """One echo-chat process, started with --port 0."""

    def __init__(self, binary, args, env=None, name=None):
        self.binary = binary
        self.args = list(args)
        self.env = env
        self.name = name or " ".join(args)
        self.proc = None
        self.url = None
        self.port = None
        self.errfile = None
        self.extra_stdout = []

    def start(self):
        ALL_SERVERS.append(self)
        self.errfile = tempfile.NamedTemporaryFile(
            prefix="echo-chat-stderr-", suffix=".log", delete=False)
        env = dict(os.environ)
        env.pop("WSA_JWT_SECRET", None)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(
            WRAPPER + [self.binary, "--port", "0"] + EXTRA_ARGS + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.errfile, env=env)
        lines = queue.Queue()

        def drain():
            first = True
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if first:
                    lines.put(line)
                    first = False
                else:
                    self.extra_stdout.append(line)
            if first:
                lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            self.kill()
            raise StartupFailed("echo-chat printed no URL within %.0f s"
                                % STARTUP_TIMEOUT, None, self.stderr_text())
        if line is None:
            try:
                rc = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
                rc = None
            raise StartupFailed("echo-chat closed stdout without printing a "
                                "URL (exit status %r)" % rc, rc,
                                self.stderr_text())
        scheme = "wss" if "--tls-cert" in self.args else "ws"
        m = re.fullmatch(scheme + r"://127\.0\.0\.1:(\d+)/ws/chat", line)
        if not m or int(m.group(1)) == 0:
            self.kill()
            raise StartupFailed("first stdout line is not the expected URL: "
                                "%r" % line, None, self.stderr_text())
        self.url = line
        self.port = int(m.group(1))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the process and wait (bounded: 5 s, 30 s under a
        wrapper); kill on timeout.

        Returns the exit status, or None when it had to be killed."""
        if timeout is None:
            timeout = 30.0 if WRAPPER else 5.0
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def stderr_text(self):
        if not self.errfile:
            return ""
        try:
            with open(self.errfile.name, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cleanup(self):
        self.kill()
        if self.errfile:
            self.errfile.close()
            with contextlib.suppress(OSError):
                os.unlink(self.errfile.name)
            self.errfile = None


# --------------------------------------------------------------------------
# client helpers

async def connect(url, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("open_timeout", NET_TIMEOUT)
    kw.setdefault("max_size", 1 << 22)
    return await asyncio.wait_for(websockets.connect(url, **kw),
                                  NET_TIMEOUT + 1)


@contextlib.asynccontextmanager
async def client(url, **kw):
    ws = await connect(url, **kw)
    try:
        yield ws
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), NET_TIMEOUT)


async def send(ws, msg):
    """Send a dict as JSON, or str/bytes/iterable as is; a connection the
    server already closed is not an error here (the close is checked by the
    caller)."""
    if isinstance(msg, dict):
        msg = js(msg)
    try:
        await asyncio.wait_for(ws.send(msg), NET_TIMEOUT)
    except ConnectionClosed:
        pass


async def recv_json(ws, timeout=NET_TIMEOUT, what="a message"):
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise Failure("no message within %.1f s while waiting for %s"
                      % (timeout, what))
    except ConnectionClosed as e:
        raise Failure("connection closed (code %r, reason %r) while waiting "
                      "for %s" % (e.rcvd.code if e.rcvd else None,
                                  e.rcvd.reason if e.rcvd else None, what))
    check(isinstance(msg, str), "expected a text frame, got binary %r"
          % (msg[:80],))
    try:
        obj = json.loads(msg)
    except ValueError:
        raise Failure("server sent text that is not JSON: %r" % msg[:200])
    check(isinstance(obj, dict), "server sent JSON that is not an object: %r"
          % msg[:200])
    return obj


async def expect(ws, expected, timeout=NET_TIMEOUT):
    got = await recv_json(ws, timeout, what=js(expected))
    check(got == expected, "expected %s, got %s" % (js(expected), js(got)))
    return got


async def expect_close(ws, code, timeout=NET_TIMEOUT):
    """The next thing from the server must be a close with this code."""
    deadline = time.monotonic() + timeout
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise Failure("no close %d within %.1f s" % (code, timeout))
    except ConnectionClosed:
        pass
    else:
        raise Failure("expected close %d, got a message first: %r"
                      % (code, msg[:200]))
    try:
        await asyncio.wait_for(ws.wait_closed(),
                               max(0.1, deadline - time.monotonic()) + 2)
    except asyncio.TimeoutError:
        raise Failure("closing handshake did not finish")
    check(ws.close_code == code, "expected close code %d, got %r (reason %r)"
          % (code, ws.close_code, ws.close_reason))


async def expect_error_close(ws, error, code=1008):
    await expect(ws, error)
    await expect_close(ws, code)


async def expect_silence(ws, seconds):
    """Nothing may arrive (and no close) during `seconds`."""
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    except ConnectionClosed as e:
        raise Failure("connection closed (code %r) where none was expected"
                      % (e.rcvd.code if e.rcvd else None))
    raise Failure("expected no message for %.1f s, got %r" % (seconds,
                                                               msg[:200]))


async def login(ws, token=None, mid=None):
    msg = {"type": "login", "token": token or hs(claims())}
    want = dict(AUTH_OK)
    if mid is not None:
        msg["id"] = mid
        want["id"] = mid
    await send(ws, msg)
    await expect(ws, want)


async def ping_pong(ws):
    await send(ws, {"type": "ping"})
    await expect(ws, PONG)


async def healthy(url, token=None):
    """A fresh client can still log in and get a pong."""
    async with client(url) as ws:
        await login(ws, token)
        await ping_pong(ws)


async def expect_http_status(url, status, **kw):
    """The upgrade is refused with this HTTP status (kw: for connect())."""
    try:
        ws = await connect(url, **kw)
    except InvalidStatusCode as e:
        check(e.status_code == status, "expected HTTP %d, got HTTP %d"
              % (status, e.status_code))
        return
    except (websockets.exceptions.InvalidHandshake, OSError,
            asyncio.TimeoutError) as e:
        cause = e.__cause__ or e.__context__
        raise Failure("expected HTTP %d, got no valid HTTP response: %r%s"
                      % (status, e, " (%r)" % cause if cause else ""))
    await ws.close()
    raise Failure("expected HTTP %d, but the WebSocket was opened" % status)


# --------------------------------------------------------------------------
# a very small raw WebSocket client (only for what websockets refuses to
# send: a text frame that is not valid UTF-8)

def ws_frame(opcode, payload, fin=True):
    """One masked client frame, as bytes."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawWS:
    def __init__(self, url, source=None):
        """source: the local address to connect from (None: any)."""
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection(
            (u.hostname, u.port), timeout=NET_TIMEOUT,
            source_address=(source, 0) if source else None)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n"
               % (u.path, u.hostname, u.port, key))
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv_some()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        check(b" 101 " in status + b" ", "raw upgrade refused: %r" % status)

    def _recv_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the TCP connection")
        return data

    def _read(self, n):
        while len(self.buf) < n:
            self.buf += self._recv_some()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(ws_frame(opcode, payload, fin))

    def login(self):
        """Log in with a valid token; the answer must be the auth one."""
        self.send_frame(1, js({"type": "login",
                               "token": hs(claims())}).encode())
        op, payload = self.recv_frame()
        check(op == 1 and json.loads(payload) == AUTH_OK,
              "raw login answer: %r %r" % (op, payload[:200]))

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        check(not b1 & 0x80, "server frame is masked")
        return b0 & 0x0F, self._read(n)

    def recv_close_code(self):
        """Read frames up to the close; return (texts before it, code)."""
        texts = []
        while True:
            try:
                op, payload = self.recv_frame()
            except (EOFError, ConnectionError):
                return texts, 1006
            except socket.timeout:
                raise Failure("no close frame within %.0f s (text frames "
                              "received before: %r)" % (NET_TIMEOUT, texts))
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if payload else \
                    1005
                with contextlib.suppress(OSError):
                    self.send_frame(8, payload[:2])
                return texts, code
            if op == 1:
                texts.append(payload.decode(errors="replace"))

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# --------------------------------------------------------------------------
# test registry and context

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


class Keys:
    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537,
                                            key_size=2048)
        self.rsa_other = rsa.generate_private_key(public_exponent=65537,
                                                  key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ec_other = ec.generate_private_key(ec.SECP256R1())
        self.dir = tempfile.mkdtemp(prefix="wsa-interop-keys-")
        self.rsa_pem = self._pub(self.rsa, "rsa.pub.pem")
        self.ec_pem = self._pub(self.ec, "ec.pub.pem")

    def _pub(self, key, name):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(pem)
        return pem

    def path(self, name):
        return os.path.join(self.dir, name)


class Context:
    def __init__(self, echo_chat, wsa_token):
        self.echo_chat = echo_chat
        self.wsa_token = wsa_token
        self.shared = {}
        self.used = []
        self._keys = None

    @property
    def keys(self):
        if self._keys is None:
            self._keys = Keys()
        return self._keys

    def server_args(self, kind):
        if kind == "default":
            # The default limits: dozens of cases fail a login from
            # 127.0.0.1 on purpose, and no valid login after them may be
            # refused for that.
            return ["--jwt-secret", SECRET]
        if kind == "small":
            return ["--jwt-secret", SECRET, "--max-message-size", "1024"]
        if kind == "timeout":
            return ["--jwt-secret", SECRET, "--auth-timeout-ms", "300"]
        if kind == "rs256":
            return ["--jwt-public-key", self.keys.path("rsa.pub.pem"),
                    "--jwt-alg", "RS256"]
        if kind == "es256":
            return ["--jwt-public-key", self.keys.path("ec.pub.pem"),
                    "--jwt-alg", "ES256"]
        raise KeyError(kind)

    def server(self, kind="default"):
        """A shared server for this option set (restarted if it died)."""
        srv = self.shared.get(kind)
        if srv is None or not srv.alive():
            srv = Server(self.echo_chat, self.server_args(kind),
                         name=kind).start()
            self.shared[kind] = srv
        self.used.append(srv)
        return srv

    def own_server(self, args, env=None, name=None):
        """A server owned by one case (the case stops it)."""
        srv = Server(self.echo_chat, args, env=env, name=name)
        self.used.append(srv)
        return srv.start()

    def url(self, kind="default"):
        return self.server(kind).url

    def cleanup(self):
        """Remove the temporary files (after the servers are gone)."""
        if self._keys is not None:
            shutil.rmtree(self._keys.dir, ignore_errors=True)

    def wsa_token_cli(self, *args):
        check(self.wsa_token, "no wsa-token binary given (--wsa-token)")
        r = subprocess.run([self.wsa_token] + list(args),
                           capture_output=True, timeout=10)
        check(r.returncode == 0, "wsa-token exited %d: %s"
              % (r.returncode, r.stderr.decode(errors="replace")))
        out = r.stdout.decode().strip()
        check("\n" not in out, "wsa-token printed more than one line: %r"
              % out)
        return out


def with_path(url, path):
    u = urllib.parse.urlsplit(url)
    return "ws://%s%s" % (u.netloc, path)


# ==========================================================================
# §1 connecting

@case
async def s1_unknown_path_is_http_404(t):
    await expect_http_status(with_path(t.url(), "/nope"), 404)
    await healthy(t.url())


@case
async def s1_trailing_slash_path_is_http_404(t):
    await expect_http_status(with_path(t.url(), "/ws/chat/"), 404)
    await healthy(t.url())


@case
async def s1_longer_path_is_http_404(t):
    await expect_http_status(with_path(t.url(), "/ws/chatx"), 404)
    await healthy(t.url())


@case
async def s1_root_path_is_http_404(t):
    await expect_http_status(with_path(t.url(), "/"), 404)


@case
async def s1_query_string_reaches_route(t):
    async with client(with_path(t.url(), "/ws/chat?x=1")) as ws:
        await login(ws)
        await ping_pong(ws)


# ==========================================================================
# §2 authentication gate: accepted logins

@case
async def s2_login_pyjwt_hs256_ok(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(email="alice@example.com")))
        await ping_pong(ws)


@case
async def s2_login_wsa_token_cli_ok(t):
    tok = t.wsa_token_cli("--secret", SECRET, "--uid", "bob",
                          "--email", "bob@example.com", "--ttl", "120")
    # the token is checked independently with PyJWT first
    hdr = jwt.get_unverified_header(tok)
    check(hdr.get("alg") == "HS256", "wsa-token header alg: %r" % hdr)
    c = jwt.decode(tok, SECRET, algorithms=["HS256"],
                   options={"require": ["exp"]})
    check(c.get("uid") == "bob" or (c.get("sub") == "bob" and "uid" not in c),
          "wsa-token uid claim: %r" % c)
    check(c.get("email") == "bob@example.com", "wsa-token email: %r" % c)
    check(abs(c["exp"] - (now() + 120)) <= 5, "wsa-token exp not now+ttl: %r"
          % c)
    async with client(t.url()) as ws:
        await login(ws, tok)
        await ping_pong(ws)


@case
async def s2_login_wsa_token_wrong_secret_rejected(t):
    tok = t.wsa_token_cli("--secret", OTHER_SECRET, "--uid", "bob")
    async with client(t.url()) as ws:
        await send(ws, {"type": "login", "token": tok})
        await expect_error_close(ws, ERR_AUTH)


def wsa_token_run(t, *args, env=None):
    """wsa-token's exit status, stdout and stderr."""
    check(t.wsa_token, "no wsa-token binary given (--wsa-token)")
    e = {k: v for k, v in os.environ.items() if k != "WSA_JWT_SECRET"}
    e.update(env or {})
    r = subprocess.run([t.wsa_token] + list(args), capture_output=True,
                       timeout=10, env=e)
    return r.returncode, r.stdout.decode(), r.stderr.decode(errors="replace")


@case
async def s2_wsa_token_refuses_a_secret_the_verifier_refuses(t):
    # The verifier's rule, not a copy: 31 bytes for HS256, 63 for HS512.
    for args in (["--secret", "a"], ["--secret", "s" * 31],
                 ["--secret", SECRET, "--alg", "HS512"]):
        rc, out, err = wsa_token_run(t, *args, "--uid", "bob")
        check(rc != 0 and not out,
              "wsa-token %r minted: %r (%d)" % (args, out, rc))
        check("secret" in err, "wsa-token %r: no word on the secret: %r"
              % (args, err))


@case
async def s2_wsa_token_secret_from_file_or_environment(t):
    with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
        f.write(SECRET + "\n")
        f.flush()
        rc, out, err = wsa_token_run(t, "--secret-file", f.name, "--uid",
                                     "bob")
    check(rc == 0, "--secret-file: %d %s" % (rc, err))
    tok_file = out.strip()
    rc, out, err = wsa_token_run(t, "--uid", "bob",
                                 env={"WSA_JWT_SECRET": SECRET})
    check(rc == 0, "WSA_JWT_SECRET: %d %s" % (rc, err))
    for tok in (tok_file, out.strip()):
        async with client(t.url()) as ws:
            await login(ws, tok)
            await ping_pong(ws)


LONG_SECRET = SECRET + "-" + SECRET[::-1]  # 85 bytes: HS512's 64 and more


@case
async def s2_wsa_token_hs512_accepted_by_an_hs512_server(t):
    rc, out, err = wsa_token_run(t, "--secret", LONG_SECRET, "--alg",
                                 "HS512", "--uid", "bob")
    check(rc == 0, "wsa-token --alg HS512: %d %s" % (rc, err))
    check(jwt.get_unverified_header(out.strip()).get("alg") == "HS512",
          "header: %r" % jwt.get_unverified_header(out.strip()))
    await starts_and_accepts(t, ["--jwt-secret", LONG_SECRET, "--jwt-alg",
                                 "HS512"], out.strip())


def dev_token(url, uid):
    """GET /dev/token?uid=... on the server of url: the token."""
    u = urllib.parse.urlsplit(url)
    with urllib.request.urlopen("http://%s/dev/token?uid=%s"
                                % (u.netloc, uid), timeout=5) as r:
        return json.loads(r.read())["token"]


@case
async def s2_dev_tokens_signed_with_the_servers_algorithm(t):
    srv = t.own_server(["--jwt-secret", LONG_SECRET, "--jwt-alg", "HS512",
                        "--dev-tokens"], name="dev512")
    try:
        tok = await asyncio.to_thread(dev_token, srv.url, "bob")
        check(jwt.get_unverified_header(tok).get("alg") == "HS512",
              "dev token header: %r" % jwt.get_unverified_header(tok))
        async with client(srv.url) as ws:
            await login(ws, tok)
            await ping_pong(ws)
    finally:
        rc = srv.stop()
    check(rc == 0, "exit status after SIGTERM: %r" % rc)


def dev_token_status(port, host, origin=None):
    """GET /dev/token?uid=eve on 127.0.0.1:port with these Host and Origin
    headers (None: none sent): the status and the JSON body."""
    lines = ["GET /dev/token?uid=eve HTTP/1.1"]
    if host is not None:
        lines.append("Host: " + host)
    if origin is not None:
        lines.append("Origin: " + origin)
    lines += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode())
        got = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    head, _, body = got.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


@case
async def s2_dev_token_only_for_loopback_host_and_own_origin(t):
    # A page of another site that points its own DNS name at this machine
    # (DNS rebinding) sends its name as Host, and its origin: refused, 403.
    # A loopback Host, a name given with --dev-tokens-host, and no Origin
    # (curl) or the page's own are served.
    srv = t.own_server(["--jwt-secret", SECRET, "--dev-tokens"],
                       name="devhost")
    port = srv.port
    own = "http://localhost:%d" % port
    try:
        for host, origin in [
                ("localhost:%d" % port, None), ("localhost", None),
                ("LOCALHOST:%d" % port, None), ("127.0.0.1:%d" % port, None),
                ("127.0.0.1", None), ("127.200.1.9:%d" % port, None),
                ("[::1]:%d" % port, None), ("[::1]", None),
                ("localhost:%d" % port, own),
                ("127.0.0.1:%d" % port, "http://127.0.0.1:%d" % port)]:
            status, body = await asyncio.to_thread(dev_token_status, port,
                                                   host, origin)
            check(status == 200 and body.get("uid") == "eve",
                  "Host %r, Origin %r: %d %r" % (host, origin, status, body))
        for host, origin in [
                ("evil.example:%d" % port, None), ("evil.example", None),
                ("127.0.0.1.evil.example", None), ("localhost.evil", None),
                ("[::2]:%d" % port, None), ("10.0.0.1:%d" % port, None),
                ("0.0.0.0:%d" % port, None), ("localhost:x", None),
                ("localhost, evil.example", None), ("", None), (None, None),
                ("localhost:%d" % port, "http://evil.example"),
                ("localhost:%d" % port, "https://localhost:%d" % port),
                ("localhost:%d" % port, "http://localhost:%d" % (port + 1)),
                ("localhost:%d" % port, "null"),
                ("dev.example:%d" % port, None),
                ("evil.example:%d" % port, "http://evil.example:%d" % port)]:
            status, body = await asyncio.to_thread(dev_token_status, port,
                                                   host, origin)
            check(status == 403 and "token" not in (body or {}),
                  "Host %r, Origin %r: %d %r, not 403"
                  % (host, origin, status, body))
    finally:
        rc = srv.stop()
    check(rc == 0, "exit status after SIGTERM: %r" % rc)
    # a name the host gave is served too
    srv = t.own_server(["--jwt-secret", SECRET, "--dev-tokens",
                        "--dev-tokens-host", "dev.example"], name="devhost2")
    try:
        for host, want in [("dev.example:%d" % srv.port, 200),
                           ("DEV.example", 200), ("evil.example", 403)]:
            status, _ = await asyncio.to_thread(dev_token_status, srv.port,
                                                host)
            check(status == want, "--dev-tokens-host dev.example, Host %r: "
                  "%d, not %d" % (host, status, want))
    finally:
        srv.stop()


@case
async def s2_login_sub_without_uid_ok(t):
    async with client(t.url()) as ws:
        await login(ws, hs({"sub": "carol", "exp": now() + 300}))


@case
async def s2_login_header_without_typ_ok(t):
    async with client(t.url()) as ws:
        await login(ws, craft({"alg": "HS256"}, claims()))


@case
async def s2_login_kid_ignored_with_single_key_ok(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(), headers={"kid": "whatever"}))


@case
async def s2_login_iss_aud_not_checked_when_not_configured(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(iss="https://issuer.example",
                                  aud="someone", iat=now(), nbf=now() - 5)))


@case
async def s2_login_token_exactly_8192_bytes_ok(t):
    tok = token_of_length(8192)
    async with client(t.url()) as ws:
        await login(ws, tok)


# ==========================================================================
# §2 first message is not a login

async def first_message_rejected(t, raw, mid=None):
    async with client(t.url()) as ws:
        await send(ws, raw)
        want = dict(ERR_FIRST)
        if mid is not None:
            want["id"] = mid
        await expect_error_close(ws, want)
    await healthy(t.url())


@case
async def s2_first_message_not_json(t):
    await first_message_rejected(t, "hello there")


@case
async def s2_first_message_json_array(t):
    await first_message_rejected(t, js([{"type": "login",
                                         "token": hs(claims())}]))


@case
async def s2_first_message_json_string(t):
    await first_message_rejected(t, js("login"))


@case
async def s2_first_message_json_null(t):
    await first_message_rejected(t, "null")


@case
async def s2_first_message_other_type_ping(t):
    await first_message_rejected(t, {"type": "ping"})


@case
async def s2_first_message_chat_before_login(t):
    await first_message_rejected(t, {"type": "chat", "message": "Hello!"})


@case
async def s2_first_message_without_type(t):
    await first_message_rejected(t, {"token": hs(claims())})


@case
async def s2_first_message_type_not_string(t):
    await first_message_rejected(t, {"type": 1, "token": hs(claims())})


@case
async def s2_first_message_login_missing_token(t):
    await first_message_rejected(t, {"type": "login"})


@case
async def s2_first_message_login_empty_token(t):
    await first_message_rejected(t, {"type": "login", "token": ""})


@case
async def s2_first_message_login_token_number(t):
    await first_message_rejected(t, {"type": "login", "token": 12345})


@case
async def s2_first_message_login_token_null(t):
    await first_message_rejected(t, {"type": "login", "token": None})


@case
async def s2_first_message_login_token_object(t):
    await first_message_rejected(t, {"type": "login",
                                     "token": {"jwt": hs(claims())}})


@case
async def s2_first_message_error_carries_string_id(t):
    await first_message_rejected(t, {"type": "chat", "message": "hi",
                                     "id": "x"}, mid="x")


@case
async def s2_first_message_missing_token_carries_id(t):
    await first_message_rejected(t, {"type": "login", "id": 11}, mid=11)


# ==========================================================================
# §2 tokens the verifier rejects

async def token_rejected(t, token, kind="default", mid=None, good=None):
    url = t.url(kind)
    async with client(url) as ws:
        msg = {"type": "login", "token": token}
        want = dict(ERR_AUTH)
        if mid is not None:
            msg["id"] = mid
            want["id"] = mid
        await send(ws, msg)
        await expect_error_close(ws, want)
    await healthy(url, good)


@case
async def s2_reject_wrong_secret(t):
    await token_rejected(t, hs(claims(), key=OTHER_SECRET))


@case
async def s2_reject_expired(t):
    await token_rejected(t, hs({"uid": "alice", "exp": now() - 1}))


@case
async def s2_reject_nbf_in_future(t):
    await token_rejected(t, hs(claims(nbf=now() + 2)))


@case
async def s2_reject_alg_none(t):
    tok = b64u(js({"alg": "none", "typ": "JWT"})) + "." + \
        b64u(js(claims())) + "."
    await token_rejected(t, tok)


@case
async def s2_reject_alg_none_with_signature(t):
    tok = craft({"alg": "none"}, claims())
    await token_rejected(t, tok)


@case
async def s2_reject_hs512_same_secret(t):
    await token_rejected(t, hs(claims(), alg="HS512"))


@case
async def s2_reject_hs384_same_secret(t):
    await token_rejected(t, hs(claims(), alg="HS384"))


@case
async def s2_reject_alg_lowercase_hs256(t):
    await token_rejected(t, craft({"alg": "hs256", "typ": "JWT"}, claims()))


@case
async def s2_reject_junk_char_in_signature(t):
    h, p, s = hs(claims()).split(".")
    await token_rejected(t, ".".join([h, p, s[:10] + "!" + s[10:]]))


@case
async def s2_reject_padding_on_signature(t):
    h, p, s = hs(claims()).split(".")
    check(len(s) % 4 != 0, "signature length unexpectedly a multiple of 4")
    await token_rejected(t, ".".join([h, p, s + "=" * (-len(s) % 4)]))


@case
async def s2_reject_padding_on_payload_signed(t):
    # the HMAC is computed over the padded text, so only the shape is wrong
    c = claims()
    while len(js(c)) % 3 == 0:
        c["x"] = c.get("x", "") + "x"
    p = base64.urlsafe_b64encode(js(c).encode()).decode()
    check(p.endswith("="), "payload not padded")
    h = b64u(js(HS256_HDR))
    si = h + "." + p
    s = b64u(hmac.new(SECRET.encode(), si.encode(), hashlib.sha256).digest())
    await token_rejected(t, si + "." + s)


@case
async def s2_reject_noncanonical_base64_signature(t):
    # 32 bytes -> 43 characters: the last one carries 2 unused bits, which
    # must be zero; setting one decodes to the same bytes
    h, p, s = hs(claims()).split(".")
    alphabet = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-_")
    i = alphabet.index(s[-1])
    check(i & 3 == 0, "canonical signature has non-zero trailing bits")
    await token_rejected(t, ".".join([h, p, s[:-1] + alphabet[i | 1]]))


@case
async def s2_reject_standard_base64_alphabet(t):
    # '+' or '/' instead of '-' or '_' somewhere in the signature
    for _ in range(200):
        h, p, s = hs(claims(n=os.urandom(4).hex())).split(".")
        if "-" in s or "_" in s:
            break
    check("-" in s or "_" in s, "could not get a signature with - or _")
    s = s.replace("-", "+").replace("_", "/")
    await token_rejected(t, ".".join([h, p, s]))


@case
async def s2_reject_header_crit(t):
    await token_rejected(t, craft({"alg": "HS256", "typ": "JWT",
                                   "crit": ["exp"]}, claims()))


@case
async def s2_reject_header_jku(t):
    await token_rejected(t, craft({"alg": "HS256",
                                   "jku": "https://evil.example/jwks"},
                                  claims()))


@case
async def s2_reject_header_jwk(t):
    await token_rejected(t, craft({"alg": "HS256", "jwk": {
        "kty": "oct", "k": b64u(SECRET)}}, claims()))


@case
async def s2_reject_header_x5u(t):
    await token_rejected(t, craft({"alg": "HS256",
                                   "x5u": "https://evil.example/cert"},
                                  claims()))


@case
async def s2_reject_header_x5c(t):
    await token_rejected(t, craft({"alg": "HS256", "x5c": ["MIIB"]},
                                  claims()))


@case
async def s2_reject_typ_at_jwt(t):
    await token_rejected(t, craft({"alg": "HS256", "typ": "at+jwt"},
                                  claims()))


@case
async def s2_reject_no_uid_no_sub(t):
    await token_rejected(t, hs({"exp": now() + 300,
                                "email": "a@example.com"}))


@case
async def s2_reject_uid_empty(t):
    await token_rejected(t, hs(claims(uid="")))


@case
async def s2_reject_sub_empty_without_uid(t):
    await token_rejected(t, hs({"sub": "", "exp": now() + 300}))


@case
async def s2_reject_uid_number(t):
    await token_rejected(t, craft(HS256_HDR, {"uid": 42,
                                              "exp": now() + 300}))


@case
async def s2_reject_exp_string(t):
    await token_rejected(t, craft(HS256_HDR, {"uid": "alice",
                                              "exp": str(now() + 300)}))


@case
async def s2_reject_exp_missing(t):
    await token_rejected(t, hs({"uid": "alice"}))


@case
async def s2_reject_nbf_string(t):
    await token_rejected(t, craft(HS256_HDR, claims(nbf=str(now() - 10))))


@case
async def s2_reject_iat_string(t):
    await token_rejected(t, craft(HS256_HDR, claims(iat=str(now()))))


@case
async def s2_reject_token_8193_bytes(t):
    await token_rejected(t, token_of_length(8193))


@case
async def s2_reject_token_over_10kb(t):
    tok = hs(claims(pad="y" * 10000))
    check(len(tok) > 10240, "token not over 10 KB")
    await token_rejected(t, tok)


@case
async def s2_reject_two_segments(t):
    h, p, _ = hs(claims()).split(".")
    await token_rejected(t, h + "." + p)


@case
async def s2_reject_four_segments(t):
    tok = hs(claims())
    await token_rejected(t, tok + "." + tok.split(".")[2])


@case
async def s2_reject_empty_payload_segment(t):
    h = b64u(js(HS256_HDR))
    si = h + "."
    s = b64u(hmac.new(SECRET.encode(), si.encode(), hashlib.sha256).digest())
    await token_rejected(t, si + "." + s)


@case
async def s2_reject_header_not_object(t):
    await token_rejected(t, craft('["HS256"]', claims()))


@case
async def s2_reject_payload_not_object(t):
    await token_rejected(t, craft(HS256_HDR, '"alice"'))


@case
async def s2_reject_duplicate_claim(t):
    raw = '{"uid":"alice","exp":%d,"uid":"mallory"}' % (now() + 300)
    await token_rejected(t, craft(HS256_HDR, raw))


@case
async def s2_reject_duplicate_header_member(t):
    await token_rejected(t, craft('{"alg":"HS256","alg":"none"}', claims()))


@case
async def s2_reject_nul_in_claim(t):
    await token_rejected(t, craft(HS256_HDR, claims(uid="alice\u0000admin")))


@case
async def s2_reject_garbage_token(t):
    await token_rejected(t, "not.a.jwt")


@case
async def s2_reject_auth_failed_carries_id(t):
    await token_rejected(t, hs(claims(), key=OTHER_SECRET), mid=9)


# ==========================================================================
# §2 timeout, pipelining, ids, fragments

@case
async def s2_auth_timeout(t):
    url = t.url("timeout")
    async with client(url) as ws:
        t0 = time.monotonic()
        await expect(ws, ERR_TIMEOUT, timeout=3)
        elapsed = time.monotonic() - t0
        check(elapsed >= 0.2, "timeout error came after %.3f s, before the "
              "300 ms auth timeout" % elapsed)
        await expect_close(ws, 1008)
    await healthy(url)


@case
async def s2_auth_timeout_not_hit_by_quick_login(t):
    url = t.url("timeout")
    async with client(url) as ws:
        await login(ws)
        await expect_silence(ws, 0.6)  # twice the auth timeout: no close
        await ping_pong(ws)


@case
async def s2_pipelined_messages_behind_login(t):
    async with client(t.url()) as ws:
        await send(ws, {"type": "login", "token": hs(claims())})
        for i in range(3):
            await send(ws, {"type": "chat", "message": "m%d" % i})
        await expect(ws, AUTH_OK)
        for i in range(3):
            got = await recv_json(ws)
            check(got.get("type") == "chat" and
                  got.get("message") == "Echo: m%d" % i,
                  "echo %d out of order or wrong: %s" % (i, js(got)))
        await ping_pong(ws)


@case
async def s2_pipelined_messages_behind_bad_login_dropped(t):
    async with client(t.url()) as ws:
        await send(ws, {"type": "login", "token": hs(claims(),
                                                     key=OTHER_SECRET)})
        for i in range(3):
            await send(ws, {"type": "chat", "message": "m%d" % i})
        await expect_error_close(ws, ERR_AUTH)
    await healthy(t.url())


@case
async def s2_auth_answer_carries_numeric_id(t):
    async with client(t.url()) as ws:
        await login(ws, mid=7)


@case
async def s2_auth_answer_carries_string_id(t):
    async with client(t.url()) as ws:
        await login(ws, mid="login-1")


@case
async def s2_fragmented_login_ok(t):
    text = js({"type": "login", "token": hs(claims())})
    async with client(t.url()) as ws:
        await send(ws, [text[i:i + 20] for i in range(0, len(text), 20)])
        await expect(ws, AUTH_OK)
        await ping_pong(ws)


# ==========================================================================
# §2 expiry and refresh on a live connection

@case
async def s2_live_token_expiry(t):
    async with client(t.url()) as ws:
        exp = now() + 2
        await login(ws, hs({"uid": "alice", "exp": exp}))
        got = await recv_json(ws, timeout=5, what="Token expired")
        arrived = time.time()
        check(got == ERR_EXPIRED, "expected %s, got %s" % (js(ERR_EXPIRED),
                                                          js(got)))
        check(arrived >= exp - 0.05, "Token expired sent %.3f s before exp"
              % (exp - arrived))
        await expect_close(ws, 1008)
    await healthy(t.url())


@case
async def s2_refresh_same_uid_replaces_token(t):
    async with client(t.url()) as ws:
        exp1 = now() + 2
        await login(ws, hs({"uid": "alice", "exp": exp1}))
        exp2 = exp1 + 6
        await login(ws, hs({"uid": "alice", "exp": exp2}), mid="r1")
        # the point of this case: nothing may come until 4 s after exp1
        await expect_silence(ws, exp1 + 4 - time.time())
        await ping_pong(ws)
        # ... and the new exp is enforced in turn
        got = await recv_json(ws, timeout=exp2 - time.time() + 3,
                              what="Token expired for the refreshed token")
        check(got == ERR_EXPIRED, "expected %s, got %s" % (js(ERR_EXPIRED),
                                                          js(got)))
        check(time.time() >= exp2 - 0.05, "refreshed token expired early")
        await expect_close(ws, 1008)


@case
async def s2_refresh_other_uid_rejected(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(uid="alice")))
        await send(ws, {"type": "login", "token": hs(claims(uid="mallory"))})
        await expect_error_close(ws, ERR_AUTH)
    await healthy(t.url())


@case
async def s2_refresh_sub_identity_other_user_rejected(t):
    async with client(t.url()) as ws:
        await login(ws, hs({"sub": "alice", "exp": now() + 300}))
        await send(ws, {"type": "login",
                        "token": hs({"sub": "bob", "exp": now() + 300})})
        await expect_error_close(ws, ERR_AUTH)


@case
async def s2_refresh_invalid_token_rejected(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(uid="alice")))
        await send(ws, {"type": "login",
                        "token": hs(claims(uid="alice"), key=OTHER_SECRET)})
        await expect_error_close(ws, ERR_AUTH)
    await healthy(t.url())


@case
async def s2_refresh_expired_token_rejected(t):
    async with client(t.url()) as ws:
        await login(ws, hs(claims(uid="alice")))
        await send(ws, {"type": "login",
                        "token": hs({"uid": "alice", "exp": now() - 5})})
        await expect_error_close(ws, ERR_AUTH)


# ==========================================================================
# §2 asymmetric keys

def rs(key, payload, alg="RS256"):
    return jwt.encode(payload, key, algorithm=alg)


@case
async def s2_rs256_login_ok(t):
    async with client(t.url("rs256")) as ws:
        await login(ws, rs(t.keys.rsa, claims()))
        await ping_pong(ws)


@case
async def s2_rs256_key_confusion_hs256_with_pem_rejected(t):
    tok = craft(HS256_HDR, claims(), key=t.keys.rsa_pem)
    await token_rejected(t, tok, "rs256", good=rs(t.keys.rsa, claims()))


@case
async def s2_rs256_other_private_key_rejected(t):
    await token_rejected(t, rs(t.keys.rsa_other, claims()), "rs256",
                         good=rs(t.keys.rsa, claims()))


@case
async def s2_rs256_server_rejects_rs384_token(t):
    await token_rejected(t, rs(t.keys.rsa, claims(), "RS384"), "rs256",
                         good=rs(t.keys.rsa, claims()))


@case
async def s2_rs256_server_rejects_ps256_token(t):
    await token_rejected(t, rs(t.keys.rsa, claims(), "PS256"), "rs256",
                         good=rs(t.keys.rsa, claims()))


@case
async def s2_rs256_server_rejects_alg_none(t):
    tok = b64u(js({"alg": "none"})) + "." + b64u(js(claims())) + "."
    await token_rejected(t, tok, "rs256", good=rs(t.keys.rsa, claims()))


@case
async def s2_es256_login_ok(t):
    async with client(t.url("es256")) as ws:
        await login(ws, rs(t.keys.ec, claims(), "ES256"))
        await ping_pong(ws)


@case
async def s2_es256_key_confusion_hs256_with_pem_rejected(t):
    tok = craft(HS256_HDR, claims(), key=t.keys.ec_pem)
    await token_rejected(t, tok, "es256",
                         good=rs(t.keys.ec, claims(), "ES256"))


@case
async def s2_es256_other_private_key_rejected(t):
    await token_rejected(t, rs(t.keys.ec_other, claims(), "ES256"), "es256",
                         good=rs(t.keys.ec, claims(), "ES256"))


@case
async def s2_es256_server_rejects_rs256_token(t):
    await token_rejected(t, rs(t.keys.rsa, claims()), "es256",
                         good=rs(t.keys.ec, claims(), "ES256"))


@case
async def s2_es256_der_signature_rejected(t):
    # JWS ES256 signatures are raw r||s (64 bytes); a DER one must not pass
    from cryptography.hazmat.primitives import hashes
    si = b64u(js({"alg": "ES256", "typ": "JWT"})) + "." + b64u(js(claims()))
    der = t.keys.ec.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
    await token_rejected(t, si + "." + b64u(der), "es256",
                         good=rs(t.keys.ec, claims(), "ES256"))


# ==========================================================================
# command line: secrets

async def refused_to_start(t, args, env=None):
    srv = Server(t.echo_chat, args, env=env, name="refusal")
    t.used.append(srv)
    try:
        srv.start()
    except StartupFailed as e:
        check(e.returncode is not None and e.returncode != 0,
              "expected a non-zero exit, got %r (%s)" % (e.returncode, e))
        err = e.stderr.lower()
        check("secret" in err or "key" in err,
              "stderr does not explain the refusal (no word 'secret' or "
              "'key'): %r" % e.stderr[-500:])
        return
    srv.stop()
    raise Failure("echo-chat started (%s) with args %r" % (srv.url, args))


async def starts_and_accepts(t, args, token, env=None, reject=None):
    srv = t.own_server(args, env=env, name="own")
    try:
        async with client(srv.url) as ws:
            await login(ws, token)
            await ping_pong(ws)
        if reject:
            async with client(srv.url) as ws:
                await send(ws, {"type": "login", "token": reject})
                await expect_error_close(ws, ERR_AUTH)
    finally:
        rc = srv.stop()
    check(rc == 0, "exit status after SIGTERM: %r" % rc)


@case
async def cli_rx_buffer_size_under_128_refused(t):
    # A ping of 125 bytes would not fit libwebsockets' buffer.
    await refused_to_start(t, ["--jwt-secret", SECRET, "--rx-buffer-size",
                               "127"])


@case
async def cli_rx_buffer_size_16384_serves_large_messages(t):
    srv = t.own_server(["--jwt-secret", SECRET, "--rx-buffer-size",
                        "16384"], name="rx16k")
    try:
        async with client(srv.url) as ws:
            await login(ws, hs(claims()))
            for size in (100, 4096, 16384, 60000):
                text = "x" * size
                await send(ws, {"type": "chat", "message": text})
                got = await recv_json(ws)
                check(got.get("message") == "Echo: " + text,
                      "echo of %d bytes: %r" % (size, str(got)[:80]))
    finally:
        rc = srv.stop()
    check(rc == 0, "exit status after SIGTERM: %r" % rc)


@case
async def cli_hs256_secret_31_bytes_refused(t):
    await refused_to_start(t, ["--jwt-secret", "s" * 31])


@case
async def cli_hs256_secret_32_bytes_starts(t):
    s = "k" * 32
    await starts_and_accepts(t, ["--jwt-secret", s], hs(claims(), key=s))


@case
async def cli_hs384_secret_47_bytes_refused(t):
    await refused_to_start(t, ["--jwt-secret", "s" * 47, "--jwt-alg",
                               "HS384"])


@case
async def cli_hs384_secret_48_bytes_pinned(t):
    s = "k" * 48
    await starts_and_accepts(t, ["--jwt-secret", s, "--jwt-alg", "HS384"],
                             hs(claims(), alg="HS384", key=s),
                             reject=hs(claims(), alg="HS256", key=s))


@case
async def cli_hs512_secret_63_bytes_refused(t):
    await refused_to_start(t, ["--jwt-secret", "s" * 63, "--jwt-alg",
                               "HS512"])


@case
async def cli_hs512_secret_64_bytes_pinned(t):
    s = "k" * 64
    await starts_and_accepts(t, ["--jwt-secret", s, "--jwt-alg", "HS512"],
                             hs(claims(), alg="HS512", key=s),
                             reject=hs(claims(), alg="HS256", key=s))


@case
async def cli_secret_from_environment(t):
    s = "e" * 40
    await starts_and_accepts(t, [], hs(claims(), key=s),
                             env={"WSA_JWT_SECRET": s},
                             reject=hs(claims(), key=SECRET))


@case
async def cli_short_secret_from_environment_refused(t):
    await refused_to_start(t, [], env={"WSA_JWT_SECRET": "short"})


# ==========================================================================
# §3 after authentication (and §5 echo-chat)

@case
async def s3_chat_echo_format(t):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, {"type": "chat", "message": "Hello!"})
        got = await recv_json(ws)
        ms = time.time() * 1000
        ts = got.get("timestamp")
        check(isinstance(ts, int) and not isinstance(ts, bool),
              "timestamp is not an integer: %s" % js(got))
        check(abs(ts - ms) < 5000, "timestamp %r is %.0f ms off now"
              % (ts, ts - ms))
        want = {"type": "chat", "message": "Echo: Hello!", "from": "server",
                "timestamp": ts}
        check(got == want, "expected %s, got %s" % (js(want), js(got)))


@case
async def s3_chat_echo_unicode(t):
    async with client(t.url()) as ws:
        await login(ws)
        m = "h\u00e9llo \u2603 \U0001F600 \"q\" \\ \n"
        await send(ws, {"type": "chat", "message": m})
        got = await recv_json(ws)
        check(got.get("message") == "Echo: " + m, "echo: %s" % js(got))


@case
async def s3_chat_echo_keeps_escaped_nul(t):
    # JSON text may hold U+0000 in a string; the echo must keep all of it
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, {"type": "chat", "message": "a\u0000b"})
        got = await recv_json(ws)
        check(got.get("message") == "Echo: a\u0000b",
              "echo of a message with U+0000: %s" % js(got))


@case
async def s3_typing_gets_no_reply(t):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, {"type": "typing", "isTyping": True})
        await send(ws, {"type": "typing", "isTyping": False, "id": 3})
        await ping_pong(ws)


@case
async def s3_ping_pong(t):
    async with client(t.url()) as ws:
        await login(ws)
        await ping_pong(ws)
        await ping_pong(ws)


async def content_error(t, raw, error, mid=None):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, raw)
        want = dict(error)
        if mid is not None:
            want["id"] = mid
        await expect(ws, want)
        await ping_pong(ws)  # the connection goes on


@case
async def s3_unknown_type_error_goes_on(t):
    await content_error(t, {"type": "dance"}, ERR_UNKNOWN)


@case
async def s3_empty_string_type_is_unknown(t):
    # "" is a string: unknown type, not a format error
    await content_error(t, {"type": ""}, ERR_UNKNOWN)


@case
async def s3_invalid_format_not_json(t):
    await content_error(t, "this is not json", ERR_FORMAT)


@case
async def s3_invalid_format_json_array(t):
    await content_error(t, js([{"type": "ping"}]), ERR_FORMAT)


@case
async def s3_invalid_format_json_scalar(t):
    await content_error(t, "42", ERR_FORMAT)


@case
async def s3_invalid_format_no_type(t):
    await content_error(t, {"message": "Hello!"}, ERR_FORMAT)


@case
async def s3_invalid_format_type_not_string(t):
    await content_error(t, {"type": 5, "message": "Hello!"}, ERR_FORMAT)


@case
async def s3_invalid_format_empty_text(t):
    await content_error(t, "", ERR_FORMAT)


@case
async def s3_chat_without_message(t):
    await content_error(t, {"type": "chat"}, ERR_FORMAT)


@case
async def s3_chat_message_not_string(t):
    await content_error(t, {"type": "chat", "message": 12}, ERR_FORMAT)


@case
async def s3_id_on_pong(t):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, {"type": "ping", "id": "p1"})
        await expect(ws, {"type": "pong", "id": "p1"})
        await send(ws, {"type": "ping", "id": 2})
        await expect(ws, {"type": "pong", "id": 2})


@case
async def s3_id_on_unknown_type_error(t):
    await content_error(t, {"type": "dance", "id": 5}, ERR_UNKNOWN, mid=5)


@case
async def s3_id_on_invalid_format_error(t):
    await content_error(t, {"type": 5, "id": "f"}, ERR_FORMAT, mid="f")


@case
async def s3_id_on_chat_format_error(t):
    await content_error(t, {"type": "chat", "id": 6}, ERR_FORMAT, mid=6)


@case
async def s3_id_on_chat_echo(t):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, {"type": "chat", "message": "Hello!", "id": "c1"})
        got = await recv_json(ws)
        ts = got.get("timestamp")
        want = {"type": "chat", "message": "Echo: Hello!", "from": "server",
                "timestamp": ts, "id": "c1"}
        check(isinstance(ts, int) and got == want,
              "expected %s, got %s" % (js(want), js(got)))


@case
async def s3_binary_frame_after_login_1003(t):
    async with client(t.url()) as ws:
        await login(ws)
        await send(ws, b'{"type":"ping"}')
        await expect_close(ws, 1003)
    await healthy(t.url())


@case
async def s3_binary_frame_as_login_1003(t):
    async with client(t.url()) as ws:
        await send(ws, js({"type": "login", "token": hs(claims())}).encode())
        await expect_close(ws, 1003)
    await healthy(t.url())


@case
async def s3_oversized_message_1009(t):
    url = t.url("small")
    async with client(url) as ws:
        await login(ws)
        await send(ws, {"type": "chat", "message": "x" * 2000})
        await expect_close(ws, 1009)
    await healthy(url)


@case
async def s3_oversized_login_1009(t):
    url = t.url("small")
    async with client(url) as ws:
        await send(ws, {"type": "login", "token": "a" * 2000})
        await expect_close(ws, 1009)
    await healthy(url)


@case
async def s3_message_exactly_at_limit_ok(t):
    url = t.url("small")
    async with client(url) as ws:
        await login(ws)
        base = js({"type": "chat", "message": ""})
        msg = js({"type": "chat", "message": "z" * (1024 - len(base))})
        check(len(msg.encode()) == 1024, "bad test message size")
        await send(ws, msg)
        got = await recv_json(ws)
        check(got.get("message") == "Echo: " + "z" * (1024 - len(base)),
              "no echo of the 1024-byte message: %s" % js(got)[:200])
        await send(ws, msg + " ")
        await expect_close(ws, 1009)


@case
async def s3_fragmented_message_answered_once(t):
    async with client(t.url()) as ws:
        await login(ws)
        text = js({"type": "chat", "message": "Hello fragments!", "id": 1})
        await send(ws, [text[i:i + 3] for i in range(0, len(text), 3)])
        got = await recv_json(ws)
        check(got.get("message") == "Echo: Hello fragments!" and
              got.get("id") == 1, "fragmented echo: %s" % js(got))
        await ping_pong(ws)  # and nothing else came in between


@case
async def s3_fragments_over_limit_1009(t):
    url = t.url("small")
    async with client(url) as ws:
        await login(ws)
        text = js({"type": "chat", "message": "f" * 2000})
        await send(ws, [text[i:i + 100] for i in range(0, len(text), 100)])
        await expect_close(ws, 1009)
    await healthy(url)


@case
async def s3_default_limit_65536_ok(t):
    async with client(t.url()) as ws:
        await login(ws)
        base = js({"type": "chat", "message": ""})
        msg = js({"type": "chat", "message": "d" * (65536 - len(base))})
        await send(ws, msg)
        got = await recv_json(ws)
        check(got.get("type") == "chat" and
              len(got.get("message", "")) == 6 + 65536 - len(base),
              "no echo of the 65536-byte message")


@case
async def s3_default_limit_65537_1009(t):
    async with client(t.url()) as ws:
        await login(ws)
        base = js({"type": "chat", "message": ""})
        await send(ws, js({"type": "chat",
                           "message": "d" * (65537 - len(base))}))
        await expect_close(ws, 1009)
    await healthy(t.url())


def raw_invalid_utf8(url, do_login):
    raw = RawWS(url)
    try:
        if do_login:
            raw.login()
        if do_login:
            raw.send_frame(1, b'{"type":"chat","message":"\xff\xfe"}')
        else:
            raw.send_frame(1, b'{"type":"login","token":"\xff\xfe"}')
        texts, code = raw.recv_close_code()
        check(code == 1007, "expected close 1007, got %r (texts before: %r)"
              % (code, texts))
        check(not texts, "messages before the close: %r" % texts)
    finally:
        raw.close()


@case
async def s3_invalid_utf8_after_login_1007(t):
    await asyncio.to_thread(raw_invalid_utf8, t.url(), True)
    await healthy(t.url())


@case
async def s3_invalid_utf8_as_login_1007(t):
    await asyncio.to_thread(raw_invalid_utf8, t.url(), False)
    await healthy(t.url())


@case
async def s3_isolation_other_client_unaffected(t):
    # a hostile client next to a live one: the live one keeps working
    async with client(t.url()) as good:
        await login(good)
        async with client(t.url()) as bad:
            await send(bad, b"\x00\x01")
            await expect_close(bad, 1003)
        async with client(t.url()) as bad:
            await send(bad, {"type": "login", "token": "x.y.z"})
            await expect_error_close(bad, ERR_AUTH)
        await ping_pong(good)


# ==========================================================================
# §4 liveness and shutdown

@case
async def s4_websocket_ping_answered(t):
    async with client(t.url()) as ws:
        await login(ws)
        waiter = await ws.ping(b"abc")
        try:
            await asyncio.wait_for(waiter, NET_TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure("no WebSocket pong within %.0f s" % NET_TIMEOUT)


async def shutdown_case(t, sig):
    srv = t.own_server(["--jwt-secret", SECRET], name="shutdown")
    try:
        a = await connect(srv.url)
        b = await connect(srv.url)
        c = await connect(srv.url)  # not logged in
        await login(a)
        await login(b, hs(claims(uid="bob")))
        await ping_pong(a)
        t0 = time.monotonic()
        srv.send_signal(sig)
        for ws in (a, b, c):
            await expect_close(ws, 1001)
        try:
            rc = await asyncio.to_thread(srv.proc.wait, 5)
        except subprocess.TimeoutExpired:
            raise Failure("echo-chat still running 5 s after the signal")
        check(rc == 0, "exit status %r after %s" % (rc, sig.name))
        check(time.monotonic() - t0 < 5, "shutdown took too long")
    finally:
        srv.kill()


@case
async def s4_sigterm_closes_1001_and_exits_0(t):
    await shutdown_case(t, signal.SIGTERM)


@case
async def s4_sigint_closes_1001_and_exits_0(t):
    await shutdown_case(t, signal.SIGINT)


# ==========================================================================
# runner

def stderr_tail(srv, n=30):
    lines = srv.stderr_text().splitlines()
    return "\n".join("    | " + ln for ln in lines[-n:])


async def run_case(t, fn):
    t.used = []
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(fn(t), CASE_TIMEOUT)
        dead = [s for s in t.used if s in t.shared.values() and not
                s.alive()]
        check(not dead, "shared server(s) died: %s" % ", ".join(
            "%s (exit %r)" % (s.name, s.proc.returncode) for s in dead))
        return None
    except asyncio.TimeoutError:
        if time.monotonic() - t0 >= CASE_TIMEOUT - 0.5:
            return "case timed out after %.0f s" % CASE_TIMEOUT
        return "a bounded wait timed out:\n" + traceback.format_exc().rstrip()
    except Failure as e:
        return str(e)
    except StartupFailed as e:
        return "%s\n  stderr:\n%s" % (e, "\n".join(
            "    | " + ln for ln in e.stderr.splitlines()[-30:]))
    except Exception:
        return traceback.format_exc().rstrip()


async def run_all(t, cases, verbose):
    passed = failed = 0
    for fn in cases:
        t0 = time.monotonic()
        err = await run_case(t, fn)
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("PASS %s%s" % (fn.__name__,
                                 " (%.2f s)" % dt if verbose else ""),
                  flush=True)
        else:
            failed += 1
            print("FAIL %s (%.2f s)" % (fn.__name__, dt))
            for line in err.splitlines():
                print("  " + line)
            seen = set()
            for srv in t.used:
                if id(srv) in seen or srv.errfile is None:
                    continue
                seen.add(id(srv))
                print("  echo-chat [%s] %s stderr (last lines):"
                      % (srv.name, " ".join(srv.args)))
                print(stderr_tail(srv))
            sys.stdout.flush()
    # the shared servers must all stop cleanly on SIGTERM
    for kind, srv in sorted(t.shared.items()):
        rc = srv.stop()
        name = "teardown_%s_server_exits_0_on_sigterm" % kind
        if rc == 0:
            passed += 1
            print("PASS " + name)
        else:
            failed += 1
            print("FAIL %s\n  exit status %r (None: killed after 5 s)"
                  % (name, rc))
            print(stderr_tail(srv))
    return passed, failed


def wrapper_verdicts():
    """With WSA_SERVER_WRAPPER set: stop every server still running and
    count one failure for each that the wrapper failed (memory errors,
    leaks). Returns (passed, failed)."""
    if not WRAPPER:
        return 0, 0
    bad = []
    for srv in ALL_SERVERS:
        rc = srv.stop(timeout=30.0)
        if rc == WRAPPER_ERROR_STATUS:
            bad.append(srv)
    for srv in bad:
        print("FAIL wrapper_clean [%s]\n%s" % (srv.name, stderr_tail(srv)))
    if not bad:
        print("PASS wrapper_clean (%d servers)" % len(ALL_SERVERS))
    return (0, len(bad)) if bad else (1, 0)


def main(cases=None, make_context=None, doc=None):
    """The command line; test_hostile.py runs its own cases and context
    (a Context subclass) through it."""
    doc = doc or __doc__
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--echo-chat", default=os.environ.get("WSA_ECHO_CHAT"))
    ap.add_argument("--wsa-token", default=os.environ.get("WSA_TOKEN_BIN"))
    ap.add_argument("-k", action="append", default=[],
                    help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    cases = [c for c in (CASES if cases is None else cases)
             if not args.k or any(k in c.__name__ for k in args.k)]
    if args.list:
        for c in cases:
            print(c.__name__)
        return 0
    if not args.echo_chat or not os.access(args.echo_chat, os.X_OK):
        print("echo-chat binary not found or not executable: %r "
              "(--echo-chat PATH)" % args.echo_chat, file=sys.stderr)
        return 2
    if args.wsa_token and not os.access(args.wsa_token, os.X_OK):
        print("wsa-token binary not executable: %r" % args.wsa_token,
              file=sys.stderr)
        return 2
    t = (make_context or Context)(
        os.path.abspath(args.echo_chat),
        os.path.abspath(args.wsa_token) if args.wsa_token else None)
    start = time.monotonic()
    try:
        passed, failed = asyncio.run(run_all(t, cases, args.verbose))
        p, f = wrapper_verdicts()
        passed, failed = passed + p, failed + f
    finally:
        for srv in ALL_SERVERS:
            srv.cleanup()
        t.cleanup()
    if args.verbose:
        print("(%.1f s)" % (time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
