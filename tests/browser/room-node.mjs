// examples/web/wsa-client.js on Node's `ws` against chat-room --history
// 200 at its default limits (PROTOCOL.md 6.1): a client in a room whose
// socket is cut while others send 100 chats comes back by itself and has
// every chat once, in order, with chats still coming during its rejoin;
// a room it left is not joined again; after chat-room restarts without
// Redis (a new epoch) the `recovery` event says recovered false and the
// room's new chats come through; with --redis, after a restart it says
// recovered true and what was sent meanwhile came once, in order.
//
//   node room-node.mjs --chat-room PATH --wsa-token PATH [--redis-server PATH]
//
// Without --redis-server (or with a path that does not exist) the Redis
// part is skipped, and says so.
// Exits 77 (skipped) without node_modules; WSA_SERVER_WRAPPER (valgrind)
// goes before chat-room.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  check, finish, importWs, minter, options, part, recordEvents, retry, sender as member, startServer,
  stopServer, wrapper,
} from './common.mjs';

const opts = options('usage: node room-node.mjs --chat-room PATH --wsa-token PATH [--redis-server PATH]',
  ['chat-room', 'wsa-token'], ['redis-server']);
const WebSocket = await importWs();
const { WsaClient } = await import('../../examples/web/wsa-client.js');

const T = wrapper.length ? 60_000 : 10_000; // ms: bound on every wait
const mint = minter(opts['wsa-token'], 600);

/**
 * chat-room --history 200 on `port` (0: a free one), with `extra`
 * arguments; {proc, exited, url, port, waitLog(re)}: waitLog resolves
 * once its standard error (passed on) has had a line matching re.
 */
async function start(port = 0, extra = []) {
  let err = '';
  const logWaiters = new Set();
  const srv = await startServer(opts['chat-room'], port, ['--history', '200', ...extra], {
    timeout: T,
    stderr: (stream) => stream.on('data', (d) => {
      process.stderr.write(d);
      err += d;
      for (const w of logWaiters) w();
    }),
  });
  srv.waitLog = (re) => new Promise((resolve, reject) => {
    const w = () => { if (re.test(err)) { logWaiters.delete(w); clearTimeout(timer); resolve(); } };
    const timer = setTimeout(() => { logWaiters.delete(w); reject(new Error(`chat-room logged no ${re}`)); }, T);
    logWaiters.add(w);
    w();
  });
  return srv;
}

const stop = (srv) => stopServer(srv, T);

/** Starts chat-room again on `port`, retried while the port is not free yet. */
const restart = (port, extra = []) => retry(() => start(port, extra), T);

/**
 * A raw `ws` member of `room`: chat(text) sends and resolves with its own
 * copy (which carries the room's position).
 */
const sender = (url, uid, room) => member(url, uid, room, { mint, timeout: T });

/**
 * A WsaClient on `ws` whose sockets the test can cut, and whose logins
 * wait while `hold` is set (the client is offline meanwhile); its events
 * as {ev, ...detail}, and until(pred) on them.
 */
function roomClient(url, uid) {
  const sockets = [];
  const written = [];
  class CutWebSocket extends WebSocket {
    constructor(u) { super(u); sockets.push(this); }
    send(data) { written.push(JSON.parse(data)); super.send(data); }
  }
  let release = null;
  const gate = { hold: null };
  const c = new WsaClient(url, {
    WebSocket: CutWebSocket, heartbeatMs: 0, random: () => 0,
    getToken: async () => { if (gate.hold) await gate.hold; return mint(uid); },
    reconnect: { initialMs: 50 },
  });
  gate.close = () => { gate.hold = new Promise((r) => { release = r; }); };
  gate.open = () => { gate.hold = null; release?.(); };
  const { events, until } = recordEvents(c, ['state', 'message', 'recovery', 'error', 'close'], T);
  const chats = (room) => events.filter((e) => e.ev === 'message' && e.msgType === 'chat' && e.room === room);
  const cut = () => sockets[sockets.length - 1].terminate(); // no close frame, no leave
  return { c, events, until, chats, cut, gate, written, sockets };
}

const joinedIn = (room) => (ev) => ev.some((e) => e.ev === 'message' && e.msgType === 'joined' && e.room === room);

async function cutChecks(url) {
  const room = 'cut-room';
  const other = 'left-room';
  const a = roomClient(url, 'ada');
  a.c.join(room);
  a.c.join(other);
  await a.c.connect();
  await a.until((ev) => joinedIn(room)(ev) && joinedIn(other)(ev), 'joined both rooms');
  // Four senders, 25 chats each: every sender within the default burst.
  const senders = await Promise.all([0, 1, 2, 3].map((i) => sender(url, `s${i}`, room)));
  const before = await senders[0].chat('before');
  await a.until((ev) => a.chats(room).length === 1, 'the chat before the cut');
  a.c.leave(other);
  await a.until((ev) => ev.some((e) => e.msgType === 'left' && e.room === other), 'left');
  a.gate.close(); // offline: the next login waits
  const socketsBefore = a.sockets.length;
  a.cut();
  await a.until((ev) => ev.some((e) => e.ev === 'close' && e.code === 1006 && e.willReconnect), 'a close 1006');
  const missed = (await Promise.all(senders.map((s, i) =>
    Promise.all(Array.from({ length: 25 }, (_, k) => s.chat(`missed-${i}-${k}`))))))
    .flat().sort((x, y) => x.offset - y.offset);
  check(missed.length === 100 && missed.every((m, k) => m.offset === before.offset + 1 + k),
    `100 chats sent while the client was offline, offsets ${before.offset + 1}..${before.offset + 100}`);
  // Back online; more chats come while it joins again.
  a.gate.open();
  const during = Promise.all(senders.map((s, i) =>
    Promise.all(Array.from({ length: 5 }, (_, k) => s.chat(`during-${i}-${k}`)))));
  const live = (await during).flat();
  const total = 1 + missed.length + live.length;
  await a.until(() => a.chats(room).length >= total, `${total} chats`);
  await a.until((ev) => ev.some((e) => e.ev === 'recovery' && e.room === room), 'a recovery event');
  // Anything late would show up behind a round trip.
  await a.c.request('ping', {}, { timeoutMs: T });
  const got = a.chats(room);
  const offsets = got.map((m) => m.offset);
  const want = Array.from({ length: total }, (_, k) => before.offset + k);
  check(a.sockets.length === socketsBefore + 1, `it reconnected by itself (${a.sockets.length - socketsBefore} new socket)`);
  check(JSON.stringify(offsets) === JSON.stringify(want),
    `every chat once, in order: ${got.length} of ${total}` +
    (JSON.stringify(offsets) === JSON.stringify(want) ? '' : ` (${JSON.stringify(offsets)})`));
  const byOffset = new Map([before, ...missed, ...live].map((m) => [m.offset, m.message]));
  check(got.every((m) => byOffset.get(m.offset) === m.message), 'each with its text');
  const rec = a.events.filter((e) => e.ev === 'recovery');
  check(rec.length === 1 && rec[0].recovered === true && rec[0].previous?.offset === before.offset &&
    rec[0].previous?.epoch === before.epoch,
  `recovery: recovered true from the offset seen before the cut (${JSON.stringify(rec)})`);
  const joins = a.written.filter((m) => m.type === 'join');
  const rejoin = joins[joins.length - 1];
  check(joins.length === 3 && rejoin.room === room && rejoin.since?.offset === before.offset &&
    rejoin.since?.epoch === before.epoch,
  `joined again with since the last position; not the room it left (${JSON.stringify(joins.slice(2))})`);
  const pos = a.c.rooms.get(room);
  check(pos?.offset === want[want.length - 1] && !a.c.rooms.has(other),
    `rooms: the position is the last offset (${JSON.stringify([...a.c.rooms])})`);
  a.c.close();
  for (const s of senders) s.ws.close();
}

async function epochChecks(srv) {
  const room = 'epoch-room';
  const a = roomClient(srv.url, 'bea');
  a.c.join(room);
  await a.c.connect();
  await a.until(joinedIn(room), 'joined');
  const s = await sender(srv.url, 'sid', room);
  const c1 = await s.chat('one');
  const c2 = await s.chat('two');
  await a.until(() => a.chats(room).length === 2, 'two chats');
  s.ws.close();
  // The server goes (the client is told 1001 and comes back) and starts
  // again empty: a new epoch.
  a.gate.close();
  check(await stop(srv) === 0, 'chat-room exits 0 after SIGTERM');
  await a.until((ev) => ev.some((e) => e.ev === 'close' && e.willReconnect), 'the close of the stopped server');
  const srv2 = await restart(srv.port);
  a.gate.open();
  try {
    await a.until((ev) => ev.some((e) => e.ev === 'recovery'), 'a recovery event');
    const rec = a.events.find((e) => e.ev === 'recovery');
    check(rec.room === room && rec.recovered === false && rec.epoch !== c2.epoch &&
      rec.previous?.offset === c2.offset && rec.previous?.epoch === c1.epoch,
    `after a restart without Redis: recovery says recovered false, a new epoch (${JSON.stringify(rec)})`);
    // The room's new chats start again at offset 1: not taken as seen.
    const s2 = await sender(srv2.url, 'sid', room);
    const c3 = await s2.chat('three');
    await a.until(() => a.chats(room).length === 3, 'the chat of the new epoch');
    const last = a.chats(room)[2];
    check(last.message === 'three' && last.offset === c3.offset && last.epoch === rec.epoch,
      `the new epoch's chats come through (offset ${c3.offset})`);
    s2.ws.close();
  } finally {
    a.c.close();
    check(await stop(srv2) === 0, 'chat-room (again) exits 0 after SIGTERM');
  }
}

/** A port that was free a moment ago (for redis-server, which takes no 0). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** redis-server on a loopback port, without persistence. */
async function startRedis(bin) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsa-room-node-'));
  const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('redis-server not ready')), T);
    proc.stdout.on('data', (d) => {
      buf += d;
      if (/Ready to accept connections/.test(buf)) { clearTimeout(timer); resolve(); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code})`)); });
  });
  return { proc, exited, port, dir };
}

async function redisChecks(bin) {
  const redis = await startRedis(bin);
  const extra = ['--redis', `redis://127.0.0.1:${redis.port}`];
  const connected = new RegExp(`redis 127\\.0\\.0\\.1:${redis.port}: connected\\b`);
  let srv;
  let a;
  try {
    srv = await start(0, extra);
    await srv.waitLog(connected);
    const room = 'redis-room';
    a = roomClient(srv.url, 'cleo');
    a.c.join(room);
    await a.c.connect();
    await a.until(joinedIn(room), 'joined');
    const s = await sender(srv.url, 'sol', room);
    const before = [];
    for (let k = 0; k < 3; k++) before.push(await s.chat(`r${k}`));
    await a.until(() => a.chats(room).length === 3, 'three chats');
    s.ws.close();
    // chat-room restarts; its rooms' history is in Redis. Chats sent
    // meanwhile (on the new process) are recovered by the client.
    a.gate.close();
    check(await stop(srv) === 0, 'redis: chat-room exits 0 after SIGTERM');
    await a.until((ev) => ev.some((e) => e.ev === 'close' && e.willReconnect), 'the close of the stopped server');
    srv = await restart(srv.port, extra);
    await srv.waitLog(connected);
    const s2 = await sender(srv.url, 'sol', room);
    const missed = [];
    for (let k = 0; k < 10; k++) missed.push(await s2.chat(`m${k}`));
    a.gate.open();
    await a.until((ev) => ev.some((e) => e.ev === 'recovery'), 'a recovery event');
    await a.until(() => a.chats(room).length >= 13, '13 chats');
    await a.c.request('ping', {}, { timeoutMs: T });
    const rec = a.events.find((e) => e.ev === 'recovery');
    check(rec.recovered === true && rec.epoch === before[0].epoch && rec.previous?.offset === before[2].offset,
      `redis: after a restart, recovery says recovered true in the same epoch (${JSON.stringify(rec)})`);
    const got = a.chats(room);
    const want = [...before, ...missed];
    check(got.length === 13 && got.every((m, k) => m.offset === want[k].offset && m.message === want[k].message),
      `redis: the 10 sent meanwhile came once, in order (${JSON.stringify(got.map((m) => m.offset))})`);
    s2.ws.close();
  } finally {
    a?.c.close();
    if (srv) check(await stop(srv) === 0, 'redis: chat-room (again) exits 0 after SIGTERM');
    redis.proc.kill('SIGTERM');
    await redis.exited;
    fs.rmSync(redis.dir, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => { console.log('FAIL took longer than 60 s'); process.exit(1); }, 60_000);
let srv;
try {
  srv = await start();
  await part('socket cut', () => cutChecks(srv.url));
  await part('new epoch', () => epochChecks(srv));
  if (opts['redis-server'] && fs.existsSync(opts['redis-server'])) {
    await part('redis', () => redisChecks(opts['redis-server']));
  } else {
    console.log('SKIP redis: no redis-server (--redis-server PATH)');
  }
} catch (err) {
  check(false, err.message);
} finally {
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGTERM');
}
clearTimeout(timer);
finish();
