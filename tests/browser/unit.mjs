#!/usr/bin/env node
// Unit tests of examples/web/wsa-client.js under Node.js, with a fake
// WebSocket and a scripted server: what a real server rarely does on cue
// (a silent connection, a refused socket, a token about to expire).
// Needs nothing but node. One PASS/FAIL line per test; exit 1 on failure.
import { WsaClient, tokenClaims } from '../../examples/web/wsa-client.js';

/** A WebSocket whose other end is `FakeWS.server` (or the test itself). */
class FakeWS {
  static all = [];
  static server = null; // (ws, msg) => void: answers what the client sends
  static onnew = null; // (ws) => void: default accepts the connection
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWS.all.push(this);
    setTimeout(() => (FakeWS.onnew ?? ((ws) => ws.accept()))(this), 0);
  }
  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    const msg = JSON.parse(data);
    this.sent.push(msg);
    setTimeout(() => FakeWS.server?.(this, msg), 0);
  }
  close(code, reason) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new Error('InvalidAccessError');
    this.closedWith = { code, reason };
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? '' }), 0);
  }
  // the server's side
  accept() { if (this.readyState === 0) { this.readyState = 1; this.onopen?.({}); } }
  push(obj) { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(obj) }); }
  drop(code = 1006, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** echo-chat's answers (PROTOCOL.md §2, §3, §5). */
function echoServer(ws, msg) {
  const id = msg.id !== undefined ? { id: msg.id } : {};
  if (msg.type === 'login') {
    ws.push({ type: 'auth', message: 'Authenticated', ...id });
  } else if (msg.type === 'ping') {
    ws.push({ type: 'pong', ...id });
  } else if (msg.type === 'chat') {
    ws.push({ type: 'chat', message: `Echo: ${msg.message}`, from: 'server', ...id });
  } else if (msg.type !== 'typing') {
    ws.push({ type: 'error', message: 'Unknown message type', ...id });
  }
}

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`;
}

const FAST = { initialMs: 20, maxMs: 100, factor: 2, jitter: 'none' };
let tokens = 0;
function make(options = {}) {
  const client = new WsaClient('ws://test/ws/chat', {
    getToken: async () => jwt({ uid: 'alice', n: ++tokens, exp: Date.now() / 1000 + 3600 }),
    WebSocket: FakeWS, heartbeatMs: 0, reconnect: FAST, ...options,
  });
  const events = [];
  for (const type of ['state', 'auth', 'authfailed', 'message', 'error', 'close']) {
    client.on(type, (detail) => events.push({ ...detail, type, msgType: detail?.type }));
  }
  return { client, events };
}

/** Resolves when `pred()` holds; polls, bounded by `ms`. */
async function until(pred, ms = 2000, what = 'condition') {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const tick = (ms) => new Promise((r) => setTimeout(r, ms)); // only to see that nothing happens
function assert(ok, message) { if (!ok) throw new Error(message); }
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('logs in first, flushes the queue in order after auth', async () => {
  const { client, events } = make();
  client.send('chat', { message: 'one' });
  const r = client.request('ping');
  client.send('chat', { message: 'two' });
  assert(client.queued === 3, 'not queued');
  await client.connect();
  const ws = FakeWS.all.at(-1);
  assert(ws.sent[0].type === 'login' && ws.sent[0].token, 'first message is not the login');
  assert(eq(ws.sent.slice(1).map((m) => m.type), ['chat', 'ping', 'chat']), 'order');
  assert((await r).type === 'pong', 'request');
  await until(() => events.filter((e) => e.type === 'message').length === 2, 1000, 'echoes');
  assert(eq(events.filter((e) => e.type === 'state').map((e) => e.state), ['connecting', 'authenticating', 'open']), 'states');
  client.close();
});

test('request: reply by id, error reply, timeout, closed connection', async () => {
  const { client, events } = make();
  await client.connect();
  const ws = FakeWS.all.at(-1);
  const pong = await client.request('ping');
  assert(pong.id === ws.sent.at(-1).id, 'id');
  const err = await client.request('nope').catch((e) => e);
  assert(err instanceof Error && err.message === 'Unknown message type', `error reply: ${err}`);
  assert(!events.some((e) => e.type === 'error'), 'an error reply also came as an error event');
  FakeWS.server = () => {};
  const t = await client.request('slow', {}, { timeoutMs: 30 }).catch((e) => e);
  assert(/timed out/.test(t.message), `timeout: ${t.message}`);
  ws.push({ type: 'late', id: ws.sent.at(-1).id });
  await tick(20);
  assert(!events.some((e) => e.type === 'message' && e.msgType === 'late'), 'a late reply was emitted');
  const inflight = client.request('slow');
  ws.drop(1006);
  const c = await inflight.catch((e) => e);
  assert(c.message === 'Connection closed', `on close: ${c.message}`);
  client.close();
});

test('ids of timed-out requests: a bounded number remembered', async () => {
  // Issue 19, item 11: each request that timed out left its id in a set
  // until the next reconnect. 300 time out: the late reply to the last
  // is still dropped; the first has been forgotten (256 kept), so its
  // reply, should it still come, is passed on.
  const { client, events } = make({ rate: false });
  await client.connect();
  const ws = FakeWS.all.at(-1);
  FakeWS.server = () => {};
  const first = ws.sent.length;
  await Promise.all(Array.from({ length: 300 }, () => client.request('slow', {}, { timeoutMs: 1 }).catch(() => {})));
  const ids = ws.sent.slice(first).map((m) => m.id);
  assert(ids.length === 300, `${ids.length} sent`);
  ws.push({ type: 'late', id: ids.at(-1) });
  ws.push({ type: 'late', id: ids[0] });
  const late = events.filter((e) => e.type === 'message' && e.msgType === 'late').map((e) => e.id);
  assert(eq(late, [ids[0]]), `late replies passed on: ${late}`);
  client.close();
});

test('a refused login: authfailed, no reconnect', async () => {
  FakeWS.server = (ws, msg) => {
    if (msg.type === 'login') { ws.push({ type: 'error', message: 'Authentication failed', id: msg.id }); ws.drop(1008, ''); }
  };
  const { client, events } = make();
  const before = FakeWS.all.length;
  const err = await client.connect().catch((e) => e);
  assert(err.message === 'Authentication failed', `connect(): ${err.message}`);
  const failed = events.find((e) => e.type === 'authfailed');
  assert(failed?.message === 'Authentication failed' && failed.code === 1008, 'authfailed event');
  assert(events.find((e) => e.type === 'close')?.willReconnect === false, 'close says it reconnects');
  await tick(150);
  assert(FakeWS.all.length === before + 1 && client.state === 'closed', 'reconnected after a refusal');
});

test('a 1008 before auth without a message is a refusal too', async () => {
  FakeWS.server = (ws) => ws.drop(1008, 'Policy');
  const { client, events } = make();
  await client.connect().catch(() => {});
  assert(events.some((e) => e.type === 'authfailed' && e.message === 'Policy'), 'no authfailed');
});

test('backoff: exponential, capped, jitter full/equal', async () => {
  FakeWS.onnew = (ws) => ws.drop(1006);
  const delays = async (reconnect, random, n) => {
    const { client, events } = make({ reconnect, random });
    client.connect();
    const waits = () => events.filter((e) => e.state === 'reconnecting' || e.state === 'unreachable');
    await until(() => waits().length >= n, 3000, 'reconnects');
    client.close();
    return waits().slice(0, n).map((e) => e.delayMs);
  };
  let d = await delays(FAST, Math.random, 5);
  assert(eq(d, [20, 40, 80, 100, 100]), `none: ${d}`);
  d = await delays({ ...FAST, jitter: 'full' }, () => 0.5, 4);
  assert(eq(d, [10, 20, 40, 50]), `full: ${d}`);
  d = await delays({ ...FAST, jitter: 'equal' }, () => 0, 4);
  assert(eq(d, [10, 20, 40, 50]), `equal: ${d}`);
  const { client } = make({ reconnect: { ...FAST, maxAttempts: 2 } });
  await client.connect().catch(() => {});
  assert(client.state === 'closed', 'maxAttempts');
});

test('backoff restarts only after a connection stayed logged in stableMs', async () => {
  // Issue 19, item 4: each accepted login used to restart the count.
  const { client, events } = make({ reconnect: { ...FAST, stableMs: 60 } });
  await client.connect();
  const waits = () => events.filter((e) => e.state === 'reconnecting').map((e) => e.delayMs);
  for (let n = 1; n <= 2; n++) { // dropped at once after the login: the delay grows
    FakeWS.all.at(-1).drop(1006);
    await until(() => client.state === 'open' && waits().length === n, 1000, `reconnect ${n}`);
  }
  await tick(100); // logged in past stableMs
  FakeWS.all.at(-1).drop(1006);
  await until(() => waits().length === 3, 1000, 'reconnect 3');
  assert(eq(waits(), [20, 40, 20]), `delays ${waits()}`);
  client.close();
});

test('close codes: which reconnect', async () => {
  for (const [code, again] of [[1001, true], [1006, true], [1011, true], [1000, false], [4001, false], [1009, false]]) {
    FakeWS.all.length = 0;
    const { client, events } = make();
    await client.connect();
    FakeWS.all.at(-1).drop(code, 'x');
    const close = events.find((e) => e.type === 'close');
    assert(close.code === code && close.willReconnect === again, `${code}: ${JSON.stringify(close)}`);
    if (again) await until(() => client.state === 'open' && FakeWS.all.length === 2, 1000, `reconnect after ${code}`);
    else assert(client.state === 'closed', `${code} left ${client.state}`);
    client.close();
  }
});

test('an expired token after auth: reconnect with a new token', async () => {
  const { client, events } = make();
  await client.connect();
  const first = FakeWS.all.at(-1);
  first.push({ type: 'error', message: 'Token expired' });
  first.drop(1008, '');
  await until(() => events.filter((e) => e.type === 'auth').length === 2, 1000, 'second login');
  const second = FakeWS.all.at(-1);
  assert(second !== first && second.sent[0].token !== first.sent[0].token, 'the same token again');
  assert(events.some((e) => e.type === 'error' && e.message === 'Token expired'), 'no error event');
  client.close();
});

test('close() by the user: no reconnect, queue and requests rejected', async () => {
  const { client, events } = make();
  await client.connect();
  FakeWS.server = () => {};
  const r = client.request('slow');
  client.close();
  assert((await r.catch((e) => e.message)) === 'Closed by the client', 'request not rejected');
  const n = FakeWS.all.length;
  await tick(100);
  assert(FakeWS.all.length === n && client.state === 'closed', 'reconnected');
  assert(events.find((e) => e.type === 'close')?.willReconnect === false, 'close event');
  assert(FakeWS.all.at(-1).closedWith.code === 1000, 'not closed with 1000');
});

test('heartbeat: a silent connection is dropped and reconnected', async () => {
  const { client, events } = make({ heartbeatMs: 30, heartbeatTimeoutMs: 40 });
  await client.connect();
  const ws = FakeWS.all.at(-1);
  await until(() => ws.sent.some((m) => m.type === 'ping'), 500, 'a ping');
  assert(!events.some((e) => e.type === 'message'), 'a heartbeat pong reached the user');
  FakeWS.server = (w, msg) => { if (msg.type === 'login') echoServer(w, msg); }; // pings unanswered
  await until(() => events.some((e) => e.type === 'close'), 1000, 'the drop');
  const close = events.find((e) => e.type === 'close');
  assert(close.code === 1006 && close.reason === 'Heartbeat timeout' && close.willReconnect, JSON.stringify(close));
  assert(ws.closedWith?.code === 4000, 'the dead socket was not closed');
  await until(() => client.state === 'open' && FakeWS.all.at(-1) !== ws, 1000, 'reconnect');
  client.close();
});

test('refresh: a new login on the live connection before exp', async () => {
  let n = 0;
  const { client, events } = make({
    refreshBeforeMs: 200, minRefreshMs: 0,
    getToken: async () => jwt({ uid: 'alice', n: ++n, exp: (Date.now() + (n === 1 ? 400 : 3_600_000)) / 1000 }),
  });
  await client.connect();
  const ws = FakeWS.all.at(-1);
  await until(() => events.some((e) => e.type === 'auth' && e.refreshed), 1000, 'the refresh');
  const logins = ws.sent.filter((m) => m.type === 'login');
  assert(logins.length === 2 && logins[1].token !== logins[0].token, 'no second login on the same socket');
  assert(tokenClaims(logins[1].token).n === 2, 'not the new token');
  assert(FakeWS.all.at(-1) === ws && client.state === 'open', 'not the same connection');
  client.close();
});

test('a refused refresh: authfailed, no reconnect', async () => {
  let n = 0;
  const { client, events } = make({
    refreshBeforeMs: 200, minRefreshMs: 0,
    getToken: async () => jwt({ uid: 'alice', n: ++n, exp: (Date.now() + 300) / 1000 }),
  });
  await client.connect();
  FakeWS.server = (ws, msg) => {
    if (msg.type === 'login') { ws.push({ type: 'error', message: 'Authentication failed', id: msg.id }); ws.drop(1008); }
  };
  await until(() => client.state === 'closed', 1000, 'the refusal');
  assert(events.some((e) => e.type === 'authfailed'), 'no authfailed');
});

test('rate limit: an error event, then messages held for a while', async () => {
  const { client, events } = make({ rateLimitPauseMs: 100 });
  await client.connect();
  const ws = FakeWS.all.at(-1);
  ws.push({ type: 'error', message: 'Rate limit exceeded' });
  const e = events.find((x) => x.type === 'error');
  assert(e?.rateLimited && e.source === 'server', 'no rate-limit error event');
  const sent = ws.sent.length;
  client.send('chat', { message: 'held' });
  assert(ws.sent.length === sent && client.queued === 1, 'sent during the pause');
  await until(() => ws.sent.length === sent + 1, 1000, 'the flush');
  client.close();
});

test('the queue is bounded; queue:false drops', async () => {
  const { client } = make({ maxQueue: 3 });
  assert(client.send('typing', { isTyping: true }, { queue: false }) === null, 'queue:false queued');
  for (let i = 0; i < 3; i++) client.send('chat', { message: String(i) });
  let threw = false;
  try { client.send('chat', { message: 'x' }); } catch (e) { threw = /queue full/.test(e.message); }
  assert(threw, 'the 4th send did not throw');
  assert(/queue full/.test((await client.request('ping').catch((e) => e)).message), 'request not rejected');
});

test('getToken failing: retried with backoff, no authfailed', async () => {
  let n = 0;
  const { client, events } = make({
    getToken: async () => { if (++n < 3) throw new Error('token service down'); return jwt({ uid: 'a' }); },
  });
  await client.connect();
  assert(n === 3 && !events.some((e) => e.type === 'authfailed'), 'not retried');
  assert(events.filter((e) => e.type === 'error' && e.source === 'client').length === 2, 'errors');
  client.close();
});

test('connect timeout: a socket that never opens is retried', async () => {
  let n = 0;
  FakeWS.onnew = (ws) => { if (++n > 1) ws.accept(); };
  const { client, events } = make({ connectTimeoutMs: 40 });
  await client.connect();
  assert(n === 2 && events.find((e) => e.type === 'close')?.reason === 'Connect timeout', 'not retried');
  client.close();
});

// --- rooms (PROTOCOL.md 6.1) ---------------------------------------------------

/** A room server: joins answered with `joined` at the room's position. */
function roomServer(pos, extra = () => {}) {
  return (ws, msg) => {
    const id = msg.id !== undefined ? { id: msg.id } : {};
    if (msg.type === 'join') {
      extra(ws, msg);
      ws.push({ type: 'joined', room: msg.room, users: ['alice'], offset: pos.offset, epoch: pos.epoch,
        ...(msg.since ? { recovered: msg.since.epoch === pos.epoch } : {}), ...id });
    } else if (msg.type === 'leave') {
      ws.push({ type: 'left', room: msg.room, ...id });
    } else {
      echoServer(ws, msg);
    }
  };
}

test('rooms: joined before what waits, again after a reconnect from the last position', async () => {
  const pos = { offset: 4, epoch: 'e1' };
  FakeWS.server = roomServer(pos);
  const { client, events } = make();
  client.join('r');
  client.send('chat', { room: 'r', message: 'hi' });
  await client.connect();
  let ws = FakeWS.all.at(-1);
  assert(eq(ws.sent.map((m) => m.type), ['login', 'join', 'chat']) && !ws.sent[1].since, `first: ${JSON.stringify(ws.sent)}`);
  await until(() => events.some((e) => e.msgType === 'joined'), 1000, 'joined');
  ws.push({ type: 'chat', room: 'r', from: 'bob', message: 'm5', offset: 5, epoch: 'e1' });
  ws.drop(1006);
  await until(() => FakeWS.all.at(-1) !== ws && FakeWS.all.at(-1).sent.length >= 2, 1000, 'the rejoin');
  ws = FakeWS.all.at(-1);
  assert(eq(ws.sent[1], { type: 'join', room: 'r', id: ws.sent[1].id, since: { offset: 5, epoch: 'e1' } }),
    `rejoin: ${JSON.stringify(ws.sent[1])}`);
  client.close();
});

test('rooms: what was seen already is dropped; recovery true, then false on a new epoch', async () => {
  const pos = { offset: 0, epoch: 'e1' };
  const recoveries = [];
  FakeWS.server = roomServer(pos, (ws, msg) => {
    // Overlap: the server sends again what the client had (1, 2) and one more (3).
    if (msg.since) for (const o of [1, 2, 3]) ws.push({ type: 'chat', room: 'r', message: `m${o}`, offset: o, epoch: pos.epoch });
  });
  const { client, events } = make();
  client.on('recovery', (d) => recoveries.push(d));
  client.join('r');
  await client.connect();
  await until(() => events.some((e) => e.msgType === 'joined'), 1000, 'joined');
  let ws = FakeWS.all.at(-1);
  for (const o of [1, 2, 2, 1]) ws.push({ type: 'chat', room: 'r', message: `m${o}`, offset: o, epoch: 'e1' });
  ws.drop(1006);
  pos.offset = 3;
  await until(() => recoveries.length === 1, 1000, 'a recovery');
  const chats = () => events.filter((e) => e.msgType === 'chat').map((e) => e.offset);
  assert(eq(chats(), [1, 2, 3]), `chats: ${chats()}`);
  assert(recoveries[0].recovered === true && eq(recoveries[0].previous, { offset: 2, epoch: 'e1' }) &&
    recoveries[0].offset === 3, `recovery: ${JSON.stringify(recoveries[0])}`);
  // The room's history lost while connected: a chat of a new epoch.
  ws = FakeWS.all.at(-1);
  ws.push({ type: 'chat', room: 'r', message: 'n1', offset: 1, epoch: 'e2' });
  assert(recoveries.length === 2 && recoveries[1].recovered === false && recoveries[1].epoch === 'e2', 'new epoch');
  assert(eq(chats(), [1, 2, 3, 1]), `after the new epoch: ${chats()}`);
  assert(eq(client.rooms.get('r'), { offset: 1, epoch: 'e2' }), 'position');
  // A message of a room not joined through join() passes as it is.
  ws.push({ type: 'chat', room: 'x', message: 'x', offset: 1, epoch: 'e2' });
  ws.push({ type: 'chat', room: 'x', message: 'x', offset: 1, epoch: 'e2' });
  assert(events.filter((e) => e.room === 'x').length === 2, 'other room filtered');
  client.close();
});

test('rooms: leave before the join went out sends nothing; a refused join is forgotten', async () => {
  FakeWS.server = (ws, msg) => {
    if (msg.type === 'join' && msg.room === 'full') ws.push({ type: 'error', message: 'Too many rooms', id: msg.id });
    else roomServer({ offset: 0, epoch: 'e' })(ws, msg);
  };
  const { client, events } = make();
  client.join('a');
  client.join('b');
  client.leave('a');
  await client.connect();
  const ws = FakeWS.all.at(-1);
  assert(eq(ws.sent.map((m) => [m.type, m.room ?? null]), [['login', null], ['join', 'b']]),
    `sent: ${JSON.stringify(ws.sent)}`);
  client.join('full');
  await until(() => events.some((e) => e.type === 'error'), 1000, 'the refusal');
  assert(eq([...client.rooms.keys()], ['b']), `rooms: ${[...client.rooms.keys()]}`);
  client.leave('b');
  await until(() => events.some((e) => e.msgType === 'left'), 1000, 'left');
  assert(client.rooms.size === 0, 'rooms after leave');
  client.close();
});

let passed = 0;
let failed = 0;
for (const { name, fn } of tests) {
  FakeWS.server = echoServer;
  FakeWS.onnew = null;
  try {
    await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('test timed out')), 5000))]);
    passed++;
    console.log(`PASS ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err.message}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
