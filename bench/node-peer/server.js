'use strict';

// The echo-chat protocol of libwsa (PROTOCOL.md §2, §3 and §5) on Node.js,
// written the way a team would with ws and jsonwebtoken. It is the "usual
// alternative" the benchmarks compare libwsa against.
//
//   node server.js [--host H] [--port P]
//                  [--jwt-secret S | --jwt-public-key PEMFILE] [--jwt-alg ALG]
//                  [--auth-timeout-ms N] [--max-message-size BYTES]
//
// The secret may also come from WSA_JWT_SECRET. The first line printed on
// stdout is the URL of the endpoint; SIGTERM or SIGINT stop the server.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const { parseArgs } = require('util');
const jwt = require('jsonwebtoken');
const { WebSocket, WebSocketServer } = require('ws');

const ROUTE = '/ws/chat';
const CLOSE_GOING_AWAY = 1001;
const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_POLICY_VIOLATION = 1008;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once beyond this

const USAGE = `usage: node server.js [--host H] [--port P]
       [--jwt-secret S | --jwt-public-key PEMFILE] [--jwt-alg ALG]
       [--auth-timeout-ms N] [--max-message-size BYTES]
  the secret may also be given in WSA_JWT_SECRET`;

function usageError(message) {
  console.error(`node-peer: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseInteger(name, text, min, max) {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    usageError(`bad --${name}: ${text}`);
  }
  return n;
}

function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8080' },
        'jwt-secret': { type: 'string' },
        'jwt-public-key': { type: 'string' },
        'jwt-alg': { type: 'string' },
        'auth-timeout-ms': { type: 'string', default: '10000' },
        'max-message-size': { type: 'string', default: '65536' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    usageError(err.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  return {
    host: values.host,
    port: parseInteger('port', values.port, 0, 65535),
    secret: values['jwt-secret'] || process.env.WSA_JWT_SECRET,
    publicKeyFile: values['jwt-public-key'],
    alg: values['jwt-alg'],
    authTimeoutMs: parseInteger('auth-timeout-ms', values['auth-timeout-ms'],
      1, 86400000),
    maxMessageSize: parseInteger('max-message-size',
      values['max-message-size'], 1, 2 ** 30),
  };
}

// The key and the one algorithm tokens must be signed with. The key is
// parsed once here: given a string, jsonwebtoken parses it on every login
// (and tries it as a PEM first: 0.3 ms per HS256 verify instead of 6 us).
function loadVerifier(opts) {
  if (opts.publicKeyFile && opts.secret) {
    usageError('give a secret or a public key, not both');
  }
  if (opts.publicKeyFile) {
    try {
      const pem = fs.readFileSync(opts.publicKeyFile);
      return { key: crypto.createPublicKey(pem), alg: opts.alg || 'RS256' };
    } catch (err) {
      console.error(`node-peer: ${opts.publicKeyFile}: ${err.message}`);
      process.exit(1);
    }
  }
  if (!opts.secret) {
    usageError('no JWT secret: use --jwt-secret, WSA_JWT_SECRET or '
      + '--jwt-public-key');
  }
  return {
    key: crypto.createSecretKey(Buffer.from(opts.secret)),
    alg: opts.alg || 'HS256',
  };
}

// Returns the identity a token grants, or throws saying why it grants none.
// jsonwebtoken checks the signature, the algorithm, exp and nbf; exp must
// be there, and so must a user.
function verifyToken(verifier, token) {
  const claims = jwt.verify(token, verifier.key,
    { algorithms: [verifier.alg] });
  if (typeof claims !== 'object' || claims === null) {
    throw new Error('payload is not a JSON object');
  }
  if (typeof claims.exp !== 'number') {
    throw new Error('no exp claim');
  }
  const uid = 'uid' in claims ? claims.uid : claims.sub;
  if (typeof uid !== 'string' || uid === '') {
    throw new Error('no uid or sub claim');
  }
  return { uid, exp: claims.exp };
}

// A message is a JSON object, or null when it is not one.
function parseMessage(data) {
  try {
    const msg = JSON.parse(data.toString());
    return msg !== null && typeof msg === 'object' && !Array.isArray(msg)
      ? msg : null;
  } catch {
    return null;
  }
}

// Replies carry the id of the message they answer (PROTOCOL.md §3).
function idOf(msg) {
  const id = msg && msg.id;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

function reply(ws, body, id) {
  if (id !== undefined) {
    body.id = id;
  }
  ws.send(JSON.stringify(body));
}

function replyError(ws, message, id) {
  reply(ws, { type: 'error', message }, id);
}

// ws sends the close frame after everything already queued.
function fail(ws, message, id) {
  replyError(ws, message, id);
  ws.close(CLOSE_POLICY_VIOLATION, message);
}

class Session {
  constructor(ws, verifier, opts, peer) {
    this.ws = ws;
    this.verifier = verifier;
    this.peer = peer;
    this.uid = null;
    this.expiryTimer = null;
    this.authTimer = setTimeout(() => fail(ws, 'Authentication timeout'),
      opts.authTimeoutMs);
  }

  onMessage(data, isBinary) {
    if (this.ws.readyState !== WebSocket.OPEN) {
      return; // closing: what the peer still sends is dropped
    }
    if (isBinary) {
      this.ws.close(CLOSE_UNSUPPORTED_DATA, 'Binary messages not supported');
      return;
    }
    const msg = parseMessage(data);
    if (this.uid === null) {
      this.login(msg);
    } else {
      this.dispatch(msg);
    }
  }

  // The first message must be a login; verification is synchronous, so
  // messages sent right behind it are handled after it, in order.
  login(msg) {
    const id = idOf(msg);
    if (!msg || msg.type !== 'login' || typeof msg.token !== 'string'
        || msg.token === '') {
      fail(this.ws, 'First message must be login with token', id);
      return;
    }
    const identity = this.verify(msg.token);
    if (!identity) {
      fail(this.ws, 'Authentication failed', id);
      return;
    }
    clearTimeout(this.authTimer);
    this.uid = identity.uid;
    this.armExpiry(identity.exp);
    reply(this.ws, { type: 'auth', message: 'Authenticated' }, id);
  }

  // A login on an authenticated connection refreshes its token, for the
  // same user only.
  refresh(msg, id) {
    const identity = typeof msg.token === 'string' && msg.token !== ''
      ? this.verify(msg.token) : null;
    if (!identity || identity.uid !== this.uid) {
      fail(this.ws, 'Authentication failed', id);
      return;
    }
    this.armExpiry(identity.exp);
    reply(this.ws, { type: 'auth', message: 'Authenticated' }, id);
  }

  // The reason a token is refused is logged, never sent to the client.
  verify(token) {
    try {
      return verifyToken(this.verifier, token);
    } catch (err) {
      console.error(`node-peer: ${this.peer}: login refused: ${err.message}`);
      return null;
    }
  }

  armExpiry(exp) {
    clearTimeout(this.expiryTimer);
    const delay = exp * 1000 - Date.now();
    this.expiryTimer = setTimeout(() => {
      if (exp * 1000 > Date.now()) {
        this.armExpiry(exp); // a long-lived token outlasts one timer
      } else {
        fail(this.ws, 'Token expired');
      }
    }, Math.min(Math.max(delay, 0), MAX_TIMER_MS));
  }

  dispatch(msg) {
    const id = idOf(msg);
    if (!msg || typeof msg.type !== 'string') {
      replyError(this.ws, 'Invalid message format', id);
      return;
    }
    switch (msg.type) {
      case 'chat':
        if (typeof msg.message !== 'string') {
          replyError(this.ws, 'Invalid message format', id);
          return;
        }
        reply(this.ws, {
          type: 'chat',
          message: `Echo: ${msg.message}`,
          from: 'server',
          timestamp: Date.now(),
        }, id);
        return;
      case 'typing':
        return; // nothing to answer
      case 'ping':
        reply(this.ws, { type: 'pong' }, id);
        return;
      case 'login':
        this.refresh(msg, id);
        return;
      default:
        replyError(this.ws, 'Unknown message type', id);
    }
  }

  onClose() {
    clearTimeout(this.authTimer);
    clearTimeout(this.expiryTimer);
  }
}

function onSocketError(err) {
  console.error(`node-peer: socket error before upgrade: ${err.message}`);
}

// Only ROUTE is served; any other path is refused before the handshake.
function onUpgrade(wss, req, socket, head) {
  socket.on('error', onSocketError);
  const path = req.url.split('?')[0];
  if (path !== ROUTE) {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n'
      + 'Content-Length: 0\r\n\r\n');
    return;
  }
  socket.removeListener('error', onSocketError);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
}

function onConnection(ws, req, verifier, opts) {
  const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  const session = new Session(ws, verifier, opts, peer);
  ws.on('message', (data, isBinary) => session.onMessage(data, isBinary));
  ws.on('close', () => session.onClose());
  // ws closes the connection itself (1009 too big, 1007 bad UTF-8, ...);
  // the error only says why.
  ws.on('error', (err) => console.error(`node-peer: ${peer}: ${err.message}`));
}

// Every connection is closed with 1001 after what is queued for it.
function shutdown(server, wss) {
  server.close();
  for (const ws of wss.clients) {
    ws.close(CLOSE_GOING_AWAY, 'Server shutting down');
  }
  setTimeout(() => process.exit(0), 2000).unref(); // peers that never answer
}

function main() {
  const opts = parseOptions();
  const verifier = loadVerifier(opts);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxMessageSize,
  });
  const server = http.createServer((req, res) => {
    res.writeHead(404).end();
  });

  wss.on('connection', (ws, req) => onConnection(ws, req, verifier, opts));
  server.on('upgrade', (req, socket, head) => onUpgrade(wss, req, socket, head));
  server.listen(opts.port, opts.host, () => {
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    console.log(`ws://${host}:${server.address().port}${ROUTE}`);
  });
  server.on('error', (err) => {
    console.error(`node-peer: ${opts.host}:${opts.port}: ${err.message}`);
    process.exit(1);
  });
  process.on('SIGTERM', () => shutdown(server, wss));
  process.on('SIGINT', () => shutdown(server, wss));
}

main();
