// echo-chat with and without --permessage-deflate, driven by Node's `ws`
// (npm; a client we did not write, which offers permessage-deflate by
// default): what is negotiated, logins, echoes small and larger than
// lws' 1 KiB compression chunk, thirty in flight, and a close. Then
// examples/web/wsa-client.js on `ws` against echo-chat at its default
// limits: what it queued before the login all delivered, in order, paced
// to the server's rate; close() reporting what it discards; token refresh
// with the local clock hours off; backoff that grows and says
// 'unreachable'.
//
//   node ws-node.mjs --echo-chat PATH --wsa-token PATH
//
// Exits 77 (skipped) without node_modules; WSA_SERVER_WRAPPER (valgrind)
// goes before echo-chat.
import {
  check, finish, importWs, minter, options, part as partOf, recordEvents, startServer, stopServer, wrapper,
} from './common.mjs';

const opts = options('usage: node ws-node.mjs --echo-chat PATH --wsa-token PATH', ['echo-chat', 'wsa-token']);
const WebSocket = await importWs();

const T = wrapper.length ? 60_000 : 10_000; // ms: bound on every wait
const mint = minter(opts['wsa-token'], 600);

/** echo-chat on a free port; resolves with the process and its URL. */
const start = (extra) => startServer(opts['echo-chat'], 0, extra, { timeout: T });

/** Messages of ws as a queue: next() resolves with the next parsed one. */
function inbox(ws) {
  const got = [];
  const waiting = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (waiting.length) waiting.shift()(m); else got.push(m);
  });
  return () => new Promise((resolve, reject) => {
    if (got.length) return resolve(got.shift());
    const timer = setTimeout(() => reject(new Error('no message in time')), T);
    waiting.push((m) => { clearTimeout(timer); resolve(m); });
  });
}

async function session(url, deflate, name) {
  const ws = new WebSocket(url);
  const next = inbox(ws);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const negotiated = /^permessage-deflate/.test(ws.extensions);
  check(negotiated === deflate, `${name}: permessage-deflate ${deflate ? '' : 'not '}negotiated (${JSON.stringify(ws.extensions)})`);
  ws.send(JSON.stringify({ type: 'login', token: mint('nora') }));
  const auth = await next();
  check(auth.type === 'auth', `${name}: login accepted`);
  const big = 'The quick brown fox. '.repeat(1000); // 21 KB, compresses well
  ws.send(JSON.stringify({ type: 'chat', message: big }));
  check((await next()).message === `Echo: ${big}`, `${name}: a 21 KB message echoed whole`);
  for (let i = 0; i < 30; i++) ws.send(JSON.stringify({ type: 'chat', message: `m${i}` }));
  let inOrder = true;
  for (let i = 0; i < 30; i++) if ((await next()).message !== `Echo: m${i}`) inOrder = false;
  check(inOrder, `${name}: thirty in flight echoed in order`);
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000);
  check(await closed === 1000, `${name}: closed with 1000`);
}

// --- wsa-client.js ------------------------------------------------------------

const { WsaClient } = await import('../../examples/web/wsa-client.js');
const EVENTS = ['state', 'auth', 'authfailed', 'queued', 'sent', 'undelivered', 'message', 'error', 'close'];

/** A client on `ws`, its events as {ev, ...detail}, and until(pred) on them. */
function client(url, options) {
  const c = new WsaClient(url, { WebSocket, ...options });
  const { events, until } = recordEvents(c, EVENTS, T);
  const of = (ev) => events.filter((e) => e.ev === ev);
  return { c, events, until, of };
}

/** Runs fn with the client's Date (this process's) `offsetMs` off. */
async function withClock(offsetMs, fn) {
  const RealDate = globalThis.Date;
  globalThis.Date = class extends RealDate {
    constructor(...a) { if (a.length) super(...a); else super(RealDate.now() + offsetMs); }
    static now() { return RealDate.now() + offsetMs; }
  };
  try { return await fn(); } finally { globalThis.Date = RealDate; }
}

/**
 * The client's waits before it tries again, [state, delayMs] each
 * ('reconnecting' or 'unreachable'), once `n` have come (or the wait's
 * bound has passed).
 */
async function retries({ until, of }, n, what) {
  const waits = (ev) => ev.filter((e) => e.ev === 'state' && (e.state === 'reconnecting' || e.state === 'unreachable'));
  await until((ev) => waits(ev).length >= n, what).catch(() => {});
  return waits(of('state')).map((e) => [e.state, e.delayMs]);
}

/** One part of the checks: a throw is its failure, not the others'. */
const part = (name, fn) => partOf(`client: ${name}`, fn);

async function clientChecks(url) {
  await part('queued before the login', async () => {
    // Issue 19, item 1: 100 queued before the login (maxQueue) went out at
    // once and the server's rate (a burst of 50, then 20 a second) dropped
    // a quarter. Now paced: every one echoed, in order, none refused.
    const { c, of } = client(url, { getToken: () => mint('quinn'), heartbeatMs: 0 });
    const ids = [];
    for (let i = 0; i < 100; i++) ids.push(c.send('chat', { message: `q${i}` }));
    let after; // a ping behind the queue: its pong comes after every echo
    c.on('auth', () => queueMicrotask(() => { after ??= c.request('ping', {}, { timeoutMs: T }); }));
    await c.connect();
    await after.catch(() => {}); // (refused when the flood was not paced)
    const echoes = of('message').filter((m) => m.msgType === 'chat').map((m) => m.message);
    const want = ids.map((_, i) => `Echo: q${i}`);
    check(JSON.stringify(echoes) === JSON.stringify(want),
      `client: 100 queued before the login all echoed in order (${echoes.length} echoed)`);
    check(JSON.stringify(of('sent').map((e) => e.id)) === JSON.stringify(ids) && !of('undelivered').length,
      `client: a 'sent' for each, in order, no 'undelivered' (${of('sent').length}, ${of('undelivered').length})`);
    check(!of('error').some((e) => e.rateLimited), 'client: no "Rate limit exceeded" on the way');
    c.close();
  });
  await part('close', async () => {
    // Item 2: close() while messages wait names each as undelivered, and
    // none of them goes out on the next connect().
    const { c, until, of } = client(url, { getToken: () => mint('rita'), heartbeatMs: 0 });
    c.connect();
    const ids = [0, 1, 2].map((i) => c.send('chat', { message: `d${i}` }));
    c.close();
    await until((ev) => ev.filter((e) => e.ev === 'undelivered').length >= 3, 'undelivered events', 2000)
      .catch(() => {});
    const und = of('undelivered');
    check(JSON.stringify(und.map((e) => e.id)) === JSON.stringify(ids) && und.every((e) => !e.written && e.reason),
      `client: close() reports the 3 queued messages undelivered (${JSON.stringify(und.map((e) => e.id))})`);
    await c.connect();
    await c.request('ping');
    check(!of('message').some((m) => /^Echo: d/.test(m.message)) && !of('sent').length,
      'client: nothing close() discarded is sent on the next connect()');
    c.close();
  });
  // Item 3: the local clock hours off. Ahead: each new token looked
  // expired and was refreshed at once, in a loop; twenty round trips
  // bound the window in which to count the logins.
  await part('clock ahead', () => withClock(2 * 3600e3, async () => {
    let calls = 0;
    const { c, of } = client(url, { getToken: () => { calls++; return mint('sam'); }, heartbeatMs: 0 });
    await c.connect();
    for (let i = 0; i < 20; i++) await c.request('ping');
    check(calls === 1 && of('auth').length === 1, `client: clock 2 h ahead: no refresh loop (${calls} getToken calls)`);
    c.close();
  }));
  // Behind: a 4 s token looked good for 2 h and was not refreshed before
  // the server closed on its exp. refreshBeforeMs and minRefreshMs are
  // scaled to the short token.
  await part('clock behind', () => withClock(-2 * 3600e3, async () => {
    const { c, until, of } = client(url, { getToken: () => mint('tess', { ttl: 4 }), heartbeatMs: 0,
      refreshBeforeMs: 2000, minRefreshMs: 1000 });
    await c.connect();
    await until((ev) => ev.some((e) => (e.ev === 'auth' && e.refreshed) || e.ev === 'close'), 'refresh or close', 8000)
      .catch(() => {});
    check(of('auth').some((e) => e.refreshed) && !of('close').length,
      `client: clock 2 h behind: refreshed before exp (${JSON.stringify(of('close'))})`);
    c.close();
  }));
  await part('404', async () => {
    // Item 4, before any open: an upgrade refused at the HTTP level (404)
    // reaches the client as 1006; the delays grow and after three failures
    // the state says 'unreachable', and it goes on trying.
    const bad = url.replace(/\/ws\/chat$/, '/ws/no-such-route');
    const { c, until, of } = client(bad, { getToken: () => mint('uma'), heartbeatMs: 0,
      reconnect: { initialMs: 20, factor: 2, maxMs: 80, jitter: 'none', unreachableAfter: 3 } });
    c.connect();
    const w = await retries({ until, of }, 5, 'five retries');
    c.close();
    check(JSON.stringify(w) === JSON.stringify([['reconnecting', 20],
      ['reconnecting', 40], ['unreachable', 80], ['unreachable', 80], ['unreachable', 80]]),
      `client: 404 upgrades: backoff grows, 'unreachable' after 3 (${JSON.stringify(w)})`);
  });
}

/**
 * Item 1 with a host whose limit is below the client's pace (10 a second,
 * a burst of 30: a test about a limit): the server refuses some; the
 * client holds them and sends them again. None is lost.
 */
async function refusedChecks(url) {
  const { c, until, of } = client(url, { getToken: () => mint('wren'), heartbeatMs: 0 });
  await c.connect();
  const ids = [];
  for (let i = 0; i < 40; i++) ids.push(c.send('chat', { message: `r${i}` }));
  const echoes = (ev) => ev.filter((m) => m.ev === 'message' && /^Echo: r/.test(m.message));
  await until((ev) => echoes(ev).length >= 40, 'forty echoes').catch(() => {});
  const order = of('message').filter((m) => /^Echo: r/.test(m.message)).map((m) => m.message);
  const got = [...order].sort();
  const want = ids.map((_, i) => `Echo: r${i}`).sort();
  // Not asserted: a message written behind a refused one may be handled
  // before the refused one goes again (wsa-client.js, `rate`).
  const inOrder = JSON.stringify(order) === JSON.stringify(ids.map((_, i) => `Echo: r${i}`));
  const held = of('queued').filter((e) => e.reason === 'Rate limit exceeded').length;
  check(held > 0 && JSON.stringify(got) === JSON.stringify(want) && !of('undelivered').length,
    `client: a host limit below the pace: ${held} refused, held and sent again; ${got.length} of 40 echoed${inOrder ? ', in order' : ', not in order'}`);
  c.close();
}

/** Item 4 after a login: a server that accepts and then closes. */
async function backoffChecks(url) {
  const { c, until, of } = client(url, { getToken: () => mint('vera'), heartbeatMs: 0,
    reconnect: { initialMs: 100, factor: 2, maxMs: 400, jitter: 'none', unreachableAfter: 3 } });
  c.connect();
  const w = await retries({ until, of }, 3, 'three reconnects');
  const auths = of('auth').length;
  c.close();
  check(auths >= 3 && JSON.stringify(w.slice(0, 3)) === JSON.stringify([
    ['reconnecting', 100], ['reconnecting', 200], ['unreachable', 400]]),
  `client: accepted then closed: backoff grows (${auths} logins, ${JSON.stringify(w)})`);
}

/** checks(url) against echo-chat with `extra` arguments, which then exits 0 after SIGTERM. */
async function against(extra, name, checks) {
  let srv;
  try {
    srv = await start(extra);
    await checks(srv.url);
  } catch (err) {
    check(false, `${name}: ${err.message}`);
  } finally {
    if (srv) check(await stopServer(srv, T) === 0, `${name}: echo-chat exits 0 after SIGTERM`);
  }
}

const timer = setTimeout(() => { console.log('FAIL took longer than 120 s'); process.exit(1); }, 120_000);
for (const [extra, deflate, name] of [[['--permessage-deflate'], true, 'deflate'], [[], false, 'plain']]) {
  await against(extra, name, (url) => session(url, deflate, name));
}
// The client at the default limits; then against a server that closes a
// connection idle for 300 ms (a limit: the way to have a login accepted
// and the connection closed soon after, again and again); then one with a
// lower rate limit than the client assumes.
for (const [extra, checks, name] of [[[], clientChecks, 'client'], [['--idle-timeout-ms', '300'], backoffChecks, 'idle'],
  [['--rate-limit', '10', '--rate-burst', '30'], refusedChecks, 'rate']]) {
  await against(extra, name, checks);
}
clearTimeout(timer);
finish();
