#!/usr/bin/env node
// chat-room's page (examples/web/room.html) in Debian's Chromium, driven
// by playwright-core, against chat-room --history 200 at its default
// limits, through a TCP proxy that the test controls: the page goes
// offline (its connections cut, new ones refused) while another client
// chats in its room, comes back by itself and shows every chat once, in
// order; after chat-room restarts without Redis (a new epoch) the page
// marks the gap.
//
//   node room-e2e.mjs --chat-room PATH --wsa-token PATH --out DIR
//
// DIR receives chat-room.png (after the recovery), chat-room-gap.png
// (after the restart), room-e2e.log, chat-room's standard error,
// the browser's console and every WebSocket frame. One PASS/FAIL line per
// check, then "N passed, N failed". Exit status: 0, 1 on a failure, 77
// (skip) when /usr/bin/chromium or node_modules is missing.
// WSA_SERVER_WRAPPER runs chat-room under a wrapper such as valgrind.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const here = path.dirname(fileURLToPath(import.meta.url));
const wrapper = (process.env.WSA_SERVER_WRAPPER ?? '').split(/\s+/).filter(Boolean);
const slow = wrapper.length ? 4 : 1;
const T = { launch: 90_000, server: 15_000 * slow, step: 10_000 * slow, reconnect: 20_000 * slow };

const opts = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (!['--chat-room', '--wsa-token', '--out'].includes(k) || v === undefined) {
    console.error('usage: node room-e2e.mjs --chat-room PATH --wsa-token PATH --out DIR');
    process.exit(2);
  }
  opts[k.slice(2)] = path.resolve(v);
}
if (!opts['chat-room'] || !opts['wsa-token'] || !opts.out) {
  console.error('usage: node room-e2e.mjs --chat-room PATH --wsa-token PATH --out DIR');
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} is missing (apt-get install chromium)`);
  process.exit(77);
}
if (!fs.existsSync(path.join(here, 'node_modules', 'playwright-core'))) {
  console.log(`SKIP: no node_modules in ${here} (run npm ci there)`);
  process.exit(77);
}
const { chromium } = await import('playwright-core');
const { WebSocket } = await import('ws');
const out = opts.out;
fs.mkdirSync(out, { recursive: true });
const logFile = fs.createWriteStream(path.join(out, 'room-e2e.log'));
const consoleFile = fs.createWriteStream(path.join(out, 'room-console.log'));
const framesFile = fs.createWriteStream(path.join(out, 'room-frames.log'));
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(3)}s`;
const log = (...a) => logFile.write(`${stamp()} ${a.join(' ')}\n`);

const SECRET = randomBytes(32).toString('hex');
const mint = (uid) => execFileSync(opts['wsa-token'], ['--secret', SECRET, '--uid', uid, '--ttl', '3600'],
  { encoding: 'utf8' }).trim();

// --- chat-room and the proxy in front of it ---------------------------------------

let serverCount = 0;

/** chat-room --history 200 on `port` (0: a free one). */
async function startServer(port = 0) {
  const n = ++serverCount;
  const cmd = [...wrapper, opts['chat-room'], '--port', String(port), '--jwt-secret', SECRET, '--history', '200'];
  log('start', n, cmd.join(' ').replace(SECRET, 'S'));
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr.pipe(fs.createWriteStream(path.join(out, `chat-room-${n}.log`)));
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  const line = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('chat-room printed no URL')), T.server);
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(buf.slice(0, nl).trim()); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`chat-room exited (${code}) before listening`)); });
  });
  log('listening', n, line);
  return { proc, exited, url: line, port: Number(/:(\d+)\//.exec(line)[1]) };
}

async function stopServer(srv) {
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return srv.exited;
  srv.proc.kill('SIGTERM');
  const timer = setTimeout(() => srv.proc.kill('SIGKILL'), T.server);
  const status = await srv.exited;
  clearTimeout(timer);
  return status;
}

async function restartServer(port) {
  const deadline = Date.now() + T.server;
  for (;;) {
    try {
      return await startServer(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200)); // a port in TIME_WAIT: a retry, not synchronisation
    }
  }
}

/**
 * A TCP proxy to 127.0.0.1:`target`: the page's only way to the server.
 * offline() cuts every connection through it and refuses new ones until
 * online().
 */
async function startProxy(target) {
  const pairs = new Set();
  let offline = false;
  const srv = net.createServer((down) => {
    if (offline) { down.resetAndDestroy(); return; }
    const up = net.connect(target, '127.0.0.1');
    const pair = [down, up];
    pairs.add(pair);
    const end = () => { down.destroy(); up.destroy(); pairs.delete(pair); };
    for (const s of pair) { s.on('error', end); s.on('close', end); }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/`,
    offline() {
      offline = true;
      for (const [down, up] of pairs) { down.resetAndDestroy(); up.destroy(); }
    },
    online() { offline = false; },
    close() { this.offline(); srv.close(); },
  };
}

/** A raw `ws` member of `room`; chat(text) resolves with its own copy. */
async function sender(url, uid, room) {
  const ws = new WebSocket(url);
  const waiting = [];
  const next = (pred, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${uid}: no ${what}`)), T.step);
    waiting.push({ pred, resolve: (m) => { clearTimeout(timer); resolve(m); } });
  });
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    const i = waiting.findIndex((w) => w.pred(m));
    if (i >= 0) waiting.splice(i, 1)[0].resolve(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const auth = next((m) => m.type === 'auth', 'auth');
  ws.send(JSON.stringify({ type: 'login', token: mint(uid) }));
  await auth;
  const joined = next((m) => m.type === 'joined', 'joined');
  ws.send(JSON.stringify({ type: 'join', room }));
  await joined;
  let n = 0;
  const chat = (message) => {
    const id = `${uid}-${++n}`;
    const copy = next((m) => m.type === 'chat' && m.id === id, `copy of ${id}`);
    ws.send(JSON.stringify({ type: 'chat', room, message, id }));
    return copy;
  };
  return { ws, chat };
}

// --- the page ----------------------------------------------------------------------------

/** The chats of a room's log, in the page's order: {text, offset, epoch}. */
const logOf = (page, room) => page.evaluate((r) => {
  const ol = [...document.querySelectorAll('#logs ol.log')].find((x) => x.dataset.room === r);
  return [...(ol?.children ?? [])].map((li) => ({ kind: li.dataset.kind, text: li.querySelector('.text').textContent,
    offset: li.dataset.offset === undefined ? null : Number(li.dataset.offset), epoch: li.dataset.epoch ?? null }));
}, room);

/** Waits until the room's log holds `n` chats. */
const waitChats = (page, room, n, timeout = T.step) => page.waitForFunction(([r, k]) => {
  const ol = [...document.querySelectorAll('#logs ol.log')].find((x) => x.dataset.room === r);
  return ol && ol.querySelectorAll('li[data-kind="chat"]').length >= k;
}, [room, n], { timeout });

const waitState = (page, state, timeout = T.step) =>
  page.waitForSelector(`#state[data-state="${state}"]`, { state: 'attached', timeout });

function assert(ok, message) {
  if (!ok) throw new Error(message);
}

let passed = 0;
let failed = 0;

async function check(name, fn, page) {
  const start = Date.now();
  try {
    await fn();
    passed++;
    console.log(`PASS ${name} (${Date.now() - start} ms)`);
    log('PASS', name);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err.message.split('\n')[0]}`);
    log('FAIL', name, err.stack);
    await page?.screenshot({ path: path.join(out, `fail-room-${name.split(' ')[0]}.png`) }).catch(() => {});
  }
}

let browser;
let server;
let proxy;
const problems = [];

async function main() {
  server = await startServer();
  proxy = await startProxy(server.port);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: T.launch });
  log('chromium', browser.version());
  const context = await browser.newContext({ viewport: { width: 880, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(T.step);
  let sockets = 0;
  page.on('websocket', (ws) => {
    const tag = `ws${++sockets}`;
    framesFile.write(`${stamp()} ${tag} open ${ws.url()}\n`);
    ws.on('framesent', (f) => framesFile.write(`${stamp()} ${tag} > ${f.payload}\n`));
    ws.on('framereceived', (f) => framesFile.write(`${stamp()} ${tag} < ${f.payload}\n`));
    ws.on('close', () => framesFile.write(`${stamp()} ${tag} closed\n`));
  });
  page.on('console', (msg) => {
    consoleFile.write(`${stamp()} ${msg.type()}: ${msg.text()}\n`);
    if (/Content Security Policy/i.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(`uncaught ${err.message}`));
  const room = 'lobby';
  let s; // the other client, straight to chat-room
  const sent = []; // every chat of the room, as its sender's copy
  let epoch;

  await check('a join', async () => {
    await page.goto(proxy.url);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    await page.fill('#token', mint('pat'));
    await page.click('#connect');
    await waitState(page, 'open');
    await page.fill('#room', room);
    await page.click('#join');
    await page.waitForFunction(() => /^In lobby: .*pat/.test(document.getElementById('users').textContent));
    s = await sender(server.url, 'sam', room);
    // Text, not markup, whatever the message holds.
    for (const m of ['<img src=x onerror="window.pwned=1">', 'before 1']) sent.push(await s.chat(m));
    await page.fill('#message', 'mine before');
    await page.click('#send');
    await waitChats(page, room, 3);
    epoch = sent[0].epoch;
    const got = (await logOf(page, room)).filter((l) => l.kind === 'chat');
    assert(got[0].text === `sam: ${sent[0].message}` && got[2].text === 'pat: mine before',
      `log: ${JSON.stringify(got)}`);
    assert(await page.evaluate(() => !window.pwned && !document.querySelector('#logs img')), 'markup was run');
    assert(await page.locator('#outbox li').count() === 0, 'my chat is still in the outbox');
  }, page);

  await check('b offline-and-back', async () => {
    const before = (await logOf(page, room)).filter((l) => l.kind === 'chat');
    proxy.offline();
    await page.waitForSelector('#state[data-state="reconnecting"], #state[data-state="unreachable"]',
      { state: 'attached' });
    // Meanwhile: 30 chats of the other client (with its join, the two
    // before and the five after, within the default burst of 50), and one
    // typed on the page, which waits in its outbox.
    const missed = await Promise.all(Array.from({ length: 30 }, (_, k) => s.chat(`missed ${k}`)));
    sent.push(...missed);
    await page.fill('#message', 'mine offline');
    await page.click('#send');
    await page.waitForSelector('#outbox li[data-state="queued"]', { state: 'attached' });
    proxy.online();
    await waitState(page, 'open', T.reconnect);
    const after = await Promise.all(Array.from({ length: 5 }, (_, k) => s.chat(`after ${k}`)));
    sent.push(...after);
    const total = before.length + missed.length + after.length + 1;
    await waitChats(page, room, total, T.reconnect);
    await page.waitForSelector('#outbox li', { state: 'detached' });
    await page.evaluate(() => window.wsaClient.request('ping')); // anything late comes before its pong
    const got = (await logOf(page, room)).filter((l) => l.kind === 'chat');
    const offsets = got.map((l) => l.offset);
    const first = offsets[0];
    assert(got.length === total && offsets.every((o, k) => o === first + k) && got.every((l) => l.epoch === epoch),
      `${got.length} chats of ${total}, offsets ${JSON.stringify(offsets)}`);
    const texts = got.map((l) => l.text);
    for (const m of [...missed, ...after]) {
      assert(texts.filter((t) => t === `sam: ${m.message}`).length === 1 &&
        got.find((l) => l.text === `sam: ${m.message}`).offset === m.offset, `"${m.message}" not once at ${m.offset}`);
    }
    assert(texts.filter((t) => t === 'pat: mine offline').length === 1, 'my offline chat not once');
    assert(await page.locator('#logs li[data-kind="gap"]').count() === 0, 'a gap marked after a full recovery');
    await page.locator('#message').blur();
    await page.screenshot({ path: path.join(out, 'chat-room.png'), fullPage: true });
  }, page);

  await check('c new-epoch-gap', async () => {
    // chat-room restarts without Redis: the room's history is gone (a new
    // epoch); the page comes back, marks the gap, and shows what follows.
    const lastBefore = (await logOf(page, room)).filter((l) => l.kind === 'chat').at(-1);
    s.ws.close();
    const status = await stopServer(server);
    assert(status === 0, `chat-room exited with ${status}`);
    server = await restartServer(server.port);
    await page.waitForSelector('#logs li[data-kind="gap"]', { state: 'attached', timeout: T.reconnect });
    s = await sender(server.url, 'sam', room);
    const fresh = await s.chat('after the restart');
    await page.waitForFunction(() => [...document.querySelectorAll('#logs li[data-kind="chat"] .text')]
      .some((e) => e.textContent === 'sam: after the restart'));
    const log2 = await logOf(page, room);
    const gapAt = log2.findIndex((l) => l.kind === 'gap');
    const lastAt = log2.findIndex((l) => l.kind === 'chat' && l.offset === lastBefore.offset && l.epoch === lastBefore.epoch);
    const freshAt = log2.findIndex((l) => l.text === 'sam: after the restart');
    assert(gapAt === lastAt + 1 && freshAt > gapAt && log2[freshAt].epoch === fresh.epoch && fresh.epoch !== epoch,
      `gap at ${gapAt}, last seen at ${lastAt}, the new chat at ${freshAt}`);
    await page.screenshot({ path: path.join(out, 'chat-room-gap.png'), fullPage: true });
  }, page);

  await check('d page-clean', async () => {
    assert(problems.length === 0, problems.join('; '));
    assert(!/token=/.test(page.url()), 'a token in the URL');
  });
  s?.ws.close();
}

const timer = setTimeout(() => {
  console.log('FAIL the whole run took longer than 120 s');
  process.exit(1);
}, 120_000);
try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL setup: ${err.message}`);
  log(err.stack);
} finally {
  await browser?.close().catch(() => {});
  proxy?.close();
  if (server) {
    const status = await stopServer(server);
    if (status !== 0) {
      failed++;
      console.log(`FAIL server-exit: chat-room exited with ${status}`);
    }
  }
  clearTimeout(timer);
}
console.log(`${passed} passed, ${failed} failed`);
log(`${passed} passed, ${failed} failed`);
await new Promise((r) => logFile.end(r));
process.exit(failed ? 1 : 0);
