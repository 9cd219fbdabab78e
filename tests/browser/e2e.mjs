#!/usr/bin/env node
// End-to-end tests of the chat page (examples/web/) in Debian's Chromium,
// driven by playwright-core, against a real echo-chat that serves it.
//
//   node e2e.mjs --echo-chat PATH --wsa-token PATH --out DIR
//
// DIR receives echo-chat.png (the chat after an echo), e2e.log, the
// servers' standard error, the browser's console and every WebSocket
// frame. One PASS/FAIL line per check, then "N passed, N failed".
// Exit status: 0, 1 on a failure, 77 (skip) when /usr/bin/chromium or
// node_modules (npm ci in tests/browser) is missing.
// WSA_SERVER_WRAPPER, as for the interop suites, runs echo-chat under a
// wrapper such as valgrind.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  assert, browserRun, count, launch, minter, needChromium, options, retry, startServer, stopServer,
  waitRetry, waitState,
} from './common.mjs';

const T = { launch: 90_000, server: 15_000, page: 10_000, step: 10_000, reconnect: 20_000 };

const opts = options('usage: node e2e.mjs --echo-chat PATH --wsa-token PATH --out DIR',
  ['echo-chat', 'wsa-token', 'out']);
needChromium();
const { chromium } = await import('playwright-core');
const out = opts.out;
const { log, problems: pageProblems, openPage: newPage, step: check, run } = browserRun(out);
const mint = minter(opts['wsa-token'], 3600);

// --- echo-chat ---------------------------------------------------------------

/** One echo-chat process; `url` is the page's, `ws` the WebSocket's. */
class EchoChat {
  constructor(extra = []) { this.extra = extra; this.port = 0; }

  async start(port = this.port) {
    const srv = await startServer(opts['echo-chat'], port, this.extra, {
      timeout: T.server, log,
      stderr: (stream, n) => stream.pipe(fs.createWriteStream(path.join(out, `echo-chat-${n}.log`))),
    });
    this.srv = srv;
    const m = /^ws:\/\/127\.0\.0\.1:(\d+)\/ws\/chat$/.exec(srv.url);
    if (!m) throw new Error(`unexpected first line: ${srv.url}`);
    this.port = Number(m[1]);
    this.url = `http://127.0.0.1:${this.port}/`;
    return this;
  }

  /** Starts again on the same port; retries a moment if it is not free yet. */
  restart() {
    return retry(() => this.start(this.port), T.server, (err) => log('restart failed, again:', err.message));
  }

  async stop() {
    if (!this.srv || this.srv.proc.exitCode !== null || this.srv.proc.signalCode !== null) return;
    const status = await stopServer(this.srv, T.server);
    log('stopped', status);
    if (status !== 0) throw new Error(`echo-chat exited with ${status} after SIGTERM`);
  }
}

// --- the browser ---------------------------------------------------------------

let browser;

/** A fresh context and page on `server`'s chat page, with its WebSockets counted. */
async function openPage(server, name) {
  const { page, context, sockets } = await newPage(browser, { name, height: 600, timeout: T.step });
  await page.goto(server.url, { timeout: T.page });
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  // Every close the client reports, for the checks.
  await page.evaluate(() => {
    window.closes = [];
    window.wsaClient.on('close', (d) => window.closes.push(d));
  });
  return { page, context, sockets };
}

/** Waits until the chat log holds the server lines `texts`, in that order. */
function waitEchoes(page, texts, timeout = T.step) {
  return page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#log li[data-kind="server"] .text')].map((e) => e.textContent);
    let i = 0;
    for (const t of got) if (t === want[i]) i++;
    return i === want.length;
  }, texts, { timeout });
}

const waitError = (page, pattern, timeout = T.step) =>
  page.waitForFunction((src) => new RegExp(src).test(document.getElementById('errors').textContent),
    pattern.source, { timeout });

async function chat(page, text) {
  await page.locator('#message').pressSequentially(text); // input events: typing
  await page.click('#send');
}

/** Submits each text through the chat form at once, as fast typing would. */
function typeLines(page, texts) {
  return page.evaluate((list) => {
    const input = document.getElementById('message');
    const form = document.getElementById('chat-form');
    for (const t of list) { input.value = t; form.requestSubmit(); }
  }, texts);
}

/** The state (queued, sent, undelivered) of the last line of mine with each text. */
function lineStates(page, texts) {
  return page.evaluate((list) => {
    const mine = [...document.querySelectorAll('#log li[data-kind="me"]')];
    return list.map((t) => mine.findLast((li) => li.querySelector('.text').textContent === t)?.dataset.state ?? 'missing');
  }, texts);
}

const countOf = (list) => list.reduce((o, x) => ({ ...o, [x]: (o[x] ?? 0) + 1 }), {});

// --- checks --------------------------------------------------------------------

const server = new EchoChat();
const devServer = new EchoChat(['--dev-tokens']);
const deflateServer = new EchoChat(['--permessage-deflate']);
let A; // alice's page, through (a), (d), (c), (e)

async function main() {
  await server.start(0);
  try {
    browser = await launch(chromium, T.launch);
  } catch (err) {
    count.failed++;
    console.log(`FAIL launch: ${err.message.split('\n')[0]}`);
    return;
  }
  log('chromium', browser.version());

  await check('a login-and-echo', async () => {
    A = await openPage(server, 'a');
    const { page, sockets } = A;
    await page.fill('#token', mint('alice'));
    await page.click('#connect');
    await waitState(page, 'open');
    assert((await page.textContent('#state')).includes('alice'), 'the state does not name alice');
    await chat(page, 'Hello!');
    await waitEchoes(page, ['Echo: Hello!']);
    await page.locator('#message').blur();
    await page.screenshot({ path: path.join(out, 'echo-chat.png'), fullPage: true });
    const sent = sockets[0].sent.map((p) => JSON.parse(p));
    assert(sent[0].type === 'login' && typeof sent[0].token === 'string', 'the first frame is not the login');
    const typing = sent.filter((m) => m.type === 'typing').map((m) => m.isTyping);
    assert(typing[0] === true && typing.at(-1) === false, `typing frames: ${JSON.stringify(typing)}`);
    assert(sockets.length === 1, `${sockets.length} WebSockets`);
  }, () => A?.page);

  await check('d request-reply', async () => {
    const { page, sockets } = A;
    const reply = await page.evaluate(() => window.wsaClient.request('ping'));
    assert(reply.type === 'pong', `reply ${JSON.stringify(reply)}`);
    assert(reply.id !== undefined && sockets.at(-1).sent.some((p) => {
      const m = JSON.parse(p);
      return m.type === 'ping' && m.id === reply.id;
    }), `the pong's id ${reply.id} is not that of a ping sent`);
    const err = await page.evaluate(() => window.wsaClient.request('no-such-type', { x: 1 })
      .then((r) => `resolved ${JSON.stringify(r)}`, (e) => e.message));
    assert(err === 'Unknown message type', `unknown type: ${err}`);
    const echo = await page.evaluate(() => window.wsaClient.request('chat', { message: 'by request' }));
    assert(echo.message === 'Echo: by request' && echo.id !== undefined, `chat reply ${JSON.stringify(echo)}`);
  }, () => A?.page);

  await check('g rate-limit', async () => {
    // 80 at once on an open connection: the server takes a burst of 50,
    // then 20 a second, and refused what came faster ("Rate limit
    // exceeded", dropped). The client paces them: every one echoed, in
    // order, none refused, every line of the page "sent" (issue 19, item 1).
    const { page } = A;
    const texts = Array.from({ length: 80 }, (_, i) => `flood ${i}`);
    await typeLines(page, texts);
    await waitEchoes(page, texts.map((t) => `Echo: ${t}`), T.reconnect);
    const errors = await page.textContent('#errors');
    assert(!/Rate limit exceeded/.test(errors), `errors: ${errors}`);
    const states = await lineStates(page, texts);
    assert(states.every((s) => s === 'sent'), `line states: ${JSON.stringify(countOf(states))}`);
    assert(A.sockets.length === 1 && await page.evaluate(() => window.wsaClient.state) === 'open',
      'the connection did not survive the flood');
  }, () => A?.page);

  let R;
  await check('i token-refresh', async () => {
    // A second client on a fresh page, with a token that expires in 3 s:
    // it must send a new login on the same connection before then, and
    // the server must not close it with "Token expired" after the first
    // token's exp.
    R = await openPage(server, 'i');
    const { page, sockets } = R;
    const short = mint('carol', { ttl: 3 });
    const long = mint('carol');
    const exp = JSON.parse(Buffer.from(short.split('.')[1], 'base64url')).exp * 1000;
    await page.evaluate(async (tokens) => {
      const { WsaClient } = await import('/wsa-client.js');
      const url = new URL('/ws/chat', location.href);
      url.protocol = 'ws:';
      const c = new WsaClient(url.href, { getToken: () => tokens.shift(), refreshBeforeMs: 1500, minRefreshMs: 1000 });
      window.refresh = { auths: [], closes: [], errors: [] };
      c.on('auth', (d) => window.refresh.auths.push(d));
      c.on('close', (d) => window.refresh.closes.push(d));
      c.on('error', (d) => window.refresh.errors.push(d.message));
      window.refreshClient = c;
      await c.connect();
    }, [short, long]);
    await page.waitForFunction(() => window.refresh.auths.some((a) => a.refreshed), null, { timeout: 5000 });
    assert(Date.now() < exp, 'refreshed only after exp');
    // Past the first token's exp (plus a second), the connection is still the same and open.
    await page.waitForFunction((t) => Date.now() > t, exp + 1000, { timeout: 6000 });
    const r = await page.evaluate(() => window.refreshClient.request('ping').then((p) => ({ p, ...window.refresh })));
    assert(r.p.type === 'pong' && r.closes.length === 0 && r.errors.length === 0, JSON.stringify(r));
    const logins = sockets[0].sent.map((p) => JSON.parse(p)).filter((m) => m.type === 'login');
    assert(sockets.length === 1 && logins.length === 2 && logins[1].token === long, 'not one connection with two logins');
  }, () => R?.page);
  await R?.context.close();

  let B;
  await check('b bad-token-refused', async () => {
    B = await openPage(server, 'b');
    const { page, sockets } = B;
    await page.fill('#token', mint('mallory', { secret: randomBytes(32).toString('hex') }));
    await page.click('#connect');
    await waitError(page, /Login refused: Authentication failed/);
    await waitState(page, 'closed');
    assert(sockets.length === 1, `${sockets.length} WebSockets`);
    const closes = await page.evaluate(() => window.closes);
    assert(closes.length === 1 && closes[0].code === 1008 && !closes[0].willReconnect, `closes ${JSON.stringify(closes)}`);
    // Longer than the largest first backoff (500 ms): no WebSocket may come.
    const again = await page.waitForEvent('websocket', { timeout: 2500 }).then(() => true, () => false);
    assert(!again && sockets.length === 1, 'the client opened another WebSocket after the refusal');
    assert(await page.isEnabled('#connect'), 'Connect is not enabled again');
    await page.screenshot({ path: path.join(out, 'refused.png'), fullPage: true });
  }, () => B?.page);
  await B?.context.close();

  await check('c reconnect-after-restart', async () => {
    const { page, sockets } = A;
    const before = sockets.length;
    await server.stop();
    await waitRetry(page);
    await waitError(page, /Connection closed: 1001 \(Server stopping\); reconnecting in/);
    await server.restart();
    await waitState(page, 'open', T.reconnect);
    assert(sockets.length > before, 'no new WebSocket');
    const closes = await page.evaluate(() => window.closes);
    assert(closes.some((c) => c.code === 1001 && c.willReconnect), `closes ${JSON.stringify(closes)}`);
    const login = JSON.parse(sockets.at(-1).sent[0] ?? 'null');
    assert(login?.type === 'login', 'the new connection did not log in first');
    await chat(page, 'After the restart');
    await waitEchoes(page, ['Echo: After the restart']);
  }, () => A?.page);

  await check('e queue-while-disconnected', async () => {
    // 100 typed while the server is down (the client's maxQueue): they
    // show "queued"; once it is back every one is echoed in order and
    // shows "sent". They used to go out at once after the login: the
    // server's rate dropped a quarter while the page showed all as sent
    // (issue 19, item 1).
    const { page, sockets } = A;
    await server.stop();
    await waitRetry(page);
    const texts = Array.from({ length: 100 }, (_, i) => `queued ${i}`);
    await typeLines(page, texts);
    assert(await page.evaluate(() => window.wsaClient.queued) === 100, 'not 100 messages queued');
    let states = await lineStates(page, texts);
    assert(states.every((s) => s === 'queued'), `while down: ${JSON.stringify(countOf(states))}`);
    const before = sockets.length;
    await server.restart();
    await waitEchoes(page, texts.map((t) => `Echo: ${t}`), T.reconnect);
    const sent = sockets.at(-1).sent.map((p) => JSON.parse(p));
    assert(sockets.length > before, 'no new WebSocket');
    assert(sent[0].type === 'login', 'not logged in first');
    const chats = sent.filter((m) => m.type === 'chat').map((m) => m.message);
    assert(JSON.stringify(chats.slice(0, 100)) === JSON.stringify(texts), `sent in another order: ${chats}`);
    states = await lineStates(page, texts);
    assert(states.every((s) => s === 'sent'), `after: ${JSON.stringify(countOf(states))}`);
  }, () => A?.page);

  await check('k disconnect-discards', async () => {
    // Disconnect while lines wait: the client discards them and says so;
    // each shows "not delivered", and stays so after Connect (the page
    // used to clear every "queued" mark on the next open: 3 shown as
    // sent, 0 delivered; issue 19, item 2).
    const { page } = A;
    await server.stop();
    await waitRetry(page);
    const texts = ['lost 1', 'lost 2', 'lost 3'];
    await typeLines(page, texts);
    await page.click('#disconnect');
    await waitState(page, 'closed');
    await page.waitForFunction((want) => want.every((t) => [...document.querySelectorAll('#log li[data-kind="me"]')]
      .some((li) => li.querySelector('.text').textContent === t && li.dataset.state === 'undelivered')), texts);
    assert(/not delivered/.test(await page.textContent('#log')), 'no line says "not delivered"');
    await server.restart();
    await page.click('#connect');
    await waitState(page, 'open', T.reconnect);
    await page.evaluate(() => window.wsaClient.request('ping'));
    const states = await lineStates(page, texts);
    assert(states.every((s) => s === 'undelivered'), `after Connect: ${JSON.stringify(states)}`);
    const echoed = await page.evaluate(() => [...document.querySelectorAll('#log li[data-kind="server"] .text')]
      .map((e) => e.textContent).filter((t) => t.startsWith('Echo: lost')));
    assert(echoed.length === 0, `echoed: ${echoed}`);
  }, () => A?.page);

  await check('m log-trimmed', async () => {
    // A long-lived page: the log keeps its last 500 lines (issue 19,
    // item 11). 600 lines through the page's own handler of the client's
    // "message" event.
    const { page } = A;
    const n = await page.evaluate(() => {
      for (let i = 0; i < 600; i++) {
        window.wsaClient.dispatchEvent(new CustomEvent('message', { detail: { type: 'chat', message: `line ${i}` } }));
      }
      const log = document.getElementById('log');
      return { count: log.children.length, last: log.lastElementChild.querySelector('.text').textContent };
    });
    assert(n.count <= 500 && n.last === 'line 599', `log: ${JSON.stringify(n)}`);
  }, () => A?.page);

  let F;
  await check('f dev-tokens', async () => {
    // Without --dev-tokens: no button to use.
    const { page } = A;
    assert(!(await page.isVisible('#dev-token')) && await page.isDisabled('#dev-token'),
      'the dev token button is offered without --dev-tokens');
    await devServer.start(0);
    F = await openPage(devServer, 'f');
    await F.page.waitForSelector('#dev-token:not([disabled])', { state: 'visible' });
    await F.page.fill('#uid', 'bob');
    await F.page.click('#dev-token');
    await waitState(F.page, 'open');
    assert((await F.page.textContent('#state')).includes('bob'), 'the state does not name bob');
    assert(F.sockets.length === 1, `${F.sockets.length} WebSockets`);
    await chat(F.page, 'Hi from bob');
    await waitEchoes(F.page, ['Echo: Hi from bob']);
  }, () => F?.page);

  let G;
  await check('j permessage-deflate', async () => {
    // Chromium offers permessage-deflate on every WebSocket: with
    // --permessage-deflate echo-chat takes it, and the page works as before.
    await deflateServer.start(0);
    G = await openPage(deflateServer, 'g');
    await G.page.fill('#token', mint('gina'));
    await G.page.click('#connect');
    await waitState(G.page, 'open');
    await chat(G.page, 'Compressed hello');
    await waitEchoes(G.page, ['Echo: Compressed hello']);
    // A socket of its own, to read what Chromium negotiated; a message
    // larger than lws' 1 KiB chunk comes back whole.
    const big = 'abc '.repeat(5000);
    const r = await G.page.evaluate(async ({ url, token, big }) => {
      const ws = new WebSocket(url);
      const next = () => new Promise((resolve, reject) => {
        ws.onmessage = (e) => resolve(JSON.parse(e.data));
        ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
      });
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      ws.send(JSON.stringify({ type: 'login', token }));
      const auth = await next();
      ws.send(JSON.stringify({ type: 'chat', message: big }));
      const echo = await next();
      ws.close();
      return { extensions: ws.extensions, auth: auth.type, echo: echo.message };
    }, { url: `ws://127.0.0.1:${deflateServer.port}/ws/chat`, token: mint('gina'), big });
    assert(/^permessage-deflate/.test(r.extensions), `extensions: ${JSON.stringify(r.extensions)}`);
    assert(r.auth === 'auth', `login answer ${r.auth}`);
    assert(r.echo === `Echo: ${big}`, 'the large message did not come back whole');
  }, () => G?.page);

  await check('h page-clean', async () => {
    assert(pageProblems.length === 0, pageProblems.join('; '));
  });
}

await run(main, 150_000, async () => {
  await browser?.close().catch(() => {});
  for (const s of [server, devServer, deflateServer]) {
    await s.stop().catch((err) => {
      count.failed++;
      console.log(`FAIL server-exit: ${err.message}`);
    });
  }
});
