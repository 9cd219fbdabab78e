// What the tests of tests/browser/ against a real server share (e2e.mjs,
// room-e2e.mjs, ws-node.mjs, room-node.mjs): their command line, the skips,
// the JWT secret and wsa-token, starting and stopping echo-chat or
// chat-room (after WSA_SERVER_WRAPPER, such as valgrind), a raw `ws`
// member of a room, a WsaClient's events to wait on, the PASS/FAIL count,
// and for the two in Chromium their logs, pages and checks.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const SECRET = randomBytes(32).toString('hex');
export const wrapper = (process.env.WSA_SERVER_WRAPPER ?? '').split(/\s+/).filter(Boolean);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the command line and the skips --------------------------------------------

/**
 * The command line: `--NAME PATH` pairs, each NAME one of `required` or
 * `optional`, every one of `required` given; each PATH made absolute.
 * Otherwise prints `usage` and exits 2.
 */
export function options(usage, required, optional = []) {
  const opts = {};
  const names = [...required, ...optional].map((n) => `--${n}`);
  for (let i = 2; i < process.argv.length; i += 2) {
    const [k, v] = [process.argv[i], process.argv[i + 1]];
    if (!names.includes(k) || v === undefined) {
      console.error(usage);
      process.exit(2);
    }
    opts[k.slice(2)] = path.resolve(v);
  }
  if (required.some((n) => !opts[n])) {
    console.error(usage);
    process.exit(2);
  }
  return opts;
}

/** Exits 77 (skipped) without Chromium or node_modules; 1 on a Node.js older than 20. */
export function needChromium() {
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`SKIP: ${CHROMIUM} is missing (apt-get install chromium)`);
    process.exit(77);
  }
  if (!fs.existsSync(path.join(here, 'node_modules', 'playwright-core'))) {
    console.log(`SKIP: no node_modules in ${here} (run npm ci there)`);
    process.exit(77);
  }
  if (Number(process.versions.node.split('.')[0]) < 20) {
    console.log(`FAIL node: playwright-core needs Node.js 20 or later; this is ${process.version}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

/** The WebSocket class of `ws`; exits 77 (skipped) without node_modules. */
export async function importWs() {
  try {
    return (await import('ws')).WebSocket;
  } catch {
    console.log('SKIP: no node_modules (npm ci in tests/browser)');
    process.exit(77);
  }
}

/** A function that mints a token for a uid with wsa-token at `tool`: by SECRET, valid `ttl` seconds. */
export function minter(tool, ttl) {
  return (uid, { secret = SECRET, ttl: t = ttl } = {}) =>
    execFileSync(tool, ['--secret', secret, '--uid', uid, '--ttl', String(t)], { encoding: 'utf8' }).trim();
}

// --- the servers ---------------------------------------------------------------

let serverCount = 0;

/**
 * Starts the server at `bin` (echo-chat or chat-room) on `port` (0: a
 * free one) with the JWT secret and `extra` arguments; resolves with {proc, exited, url, port} once it printed its
 * URL, the first line of its standard output; rejects after `timeout` ms
 * or when it exits first. Its standard error is this process's, or handed
 * to stderr(stream, n), the n-th server started; log(...) is told of the
 * start and of the URL.
 */
export async function startServer(bin, port, extra, { timeout, stderr = null, log = null }) {
  const n = ++serverCount;
  const name = path.basename(bin);
  const cmd = [...wrapper, bin, '--port', String(port), '--jwt-secret', SECRET, ...extra];
  log?.('start', n, cmd.join(' ').replace(SECRET, 'S'));
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', stderr ? 'pipe' : 'inherit'] });
  stderr?.(proc.stderr, n);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${name} printed no URL`)), timeout);
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(buf.slice(0, nl).trim()); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}) before listening`)); });
    proc.on('error', reject);
  });
  log?.('listening', n, url);
  return { proc, exited, url, port: Number(/:(\d+)\//.exec(url)?.[1]) };
}

/** SIGTERM to a server (SIGKILL after `timeout` ms); resolves with its exit status. */
export async function stopServer(srv, timeout) {
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return srv.exited;
  srv.proc.kill('SIGTERM');
  const timer = setTimeout(() => srv.proc.kill('SIGKILL'), timeout);
  const status = await srv.exited;
  clearTimeout(timer);
  return status;
}

/** fn() again until it resolves, for up to `ms`: a server started on a port not free yet. */
export async function retry(fn, ms, onError = () => {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      onError(err);
      await sleep(200); // a port in TIME_WAIT: a retry, not synchronisation
    }
  }
}

// --- clients -------------------------------------------------------------------

/**
 * A raw `ws` member of `room` at `url`, logged in with mint(uid):
 * chat(text) sends and resolves with its own copy (which carries the
 * room's position); each wait bounded by `timeout` ms.
 */
export async function sender(url, uid, room, { mint, timeout }) {
  const WebSocket = await importWs();
  const ws = new WebSocket(url);
  const waiting = [];
  const next = (pred, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${uid}: no ${what} within ${timeout} ms`)), timeout);
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

/**
 * The events `names` of the WsaClient `c` as {ev, msgType, ...detail},
 * and until(pred, what, ms): resolves once pred(events) holds, rejects
 * after ms (`timeout` unless given).
 */
export function recordEvents(c, names, timeout) {
  const events = [];
  const waiters = new Set();
  for (const ev of names) {
    c.on(ev, (d) => { events.push({ ...d, ev, msgType: d?.type }); for (const w of waiters) w(); });
  }
  const until = (pred, what, ms = timeout) => new Promise((resolve, reject) => {
    const w = () => {
      if (!pred(events)) return;
      waiters.delete(w); clearTimeout(timer); resolve();
    };
    const timer = setTimeout(() => { waiters.delete(w); reject(new Error(`no ${what} within ${ms} ms`)); }, ms);
    waiters.add(w);
    w();
  });
  return { events, until };
}

// --- PASS and FAIL ---------------------------------------------------------------

export const count = { passed: 0, failed: 0 };

/** One PASS or FAIL line. */
export function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (ok) count.passed++; else count.failed++;
}

/** One part of the checks: a throw is its failure (named `label`: ...), not the others'. */
export async function part(label, fn) {
  try { await fn(); } catch (err) { check(false, `${label}: ${err.message}`); }
}

/** The last line, "N passed, N failed", and the exit status: 1 on a failure. */
export function finish() {
  console.log(`${count.passed} passed, ${count.failed} failed`);
  process.exit(count.failed ? 1 : 0);
}

// --- in Chromium -------------------------------------------------------------------

/**
 * The logs of a run in Chromium, in `out`: PREFIXe2e.log (the run),
 * PREFIXconsole.log (the pages' consoles), PREFIXframes.log (every
 * WebSocket frame); and CSP violations and uncaught exceptions of the
 * pages, in `problems`.
 */
export function browserRun(out, prefix = '') {
  fs.mkdirSync(out, { recursive: true });
  const logFile = fs.createWriteStream(path.join(out, `${prefix}e2e.log`));
  const consoleFile = fs.createWriteStream(path.join(out, `${prefix}console.log`));
  const framesFile = fs.createWriteStream(path.join(out, `${prefix}frames.log`));
  const t0 = Date.now();
  const stamp = () => `${((Date.now() - t0) / 1000).toFixed(3)}s`;
  const log = (...a) => logFile.write(`${stamp()} ${a.join(' ')}\n`);
  const problems = [];

  /**
   * A fresh context and page, the page's WebSockets (each with the
   * payloads it sent, `sent`) and its console logged, its problems kept;
   * `name` (or none) in front of each line.
   */
  async function openPage(browser, { name = '', height, timeout }) {
    const pre = name ? `${name} ` : '';
    const context = await browser.newContext({ viewport: { width: 880, height } });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    const sockets = [];
    page.on('websocket', (ws) => {
      const n = sockets.push(ws);
      const tag = `${pre}ws${n}`;
      ws.sent = [];
      framesFile.write(`${stamp()} ${tag} open ${ws.url()}\n`);
      ws.on('framesent', (f) => { ws.sent.push(f.payload); framesFile.write(`${stamp()} ${tag} > ${f.payload}\n`); });
      ws.on('framereceived', (f) => framesFile.write(`${stamp()} ${tag} < ${f.payload}\n`));
      ws.on('close', () => framesFile.write(`${stamp()} ${tag} closed\n`));
    });
    page.on('console', (msg) => {
      consoleFile.write(`${stamp()} ${pre}${msg.type()}: ${msg.text()}\n`);
      if (/Content Security Policy/i.test(msg.text())) problems.push(`${name ? `${name}: ` : ''}${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`${name ? `${name}: ` : ''}uncaught ${err.message}`));
    return { page, context, sockets };
  }

  /**
   * One check: fn's throw is its failure, with a screenshot of `page` (or
   * of what page() returns) as fail-PREFIXNAME.png.
   */
  async function step(name, fn, page) {
    const start = Date.now();
    try {
      await fn();
      count.passed++;
      console.log(`PASS ${name} (${Date.now() - start} ms)`);
      log('PASS', name);
    } catch (err) {
      count.failed++;
      console.log(`FAIL ${name}: ${err.message.split('\n')[0]}`);
      log('FAIL', name, err.stack);
      const p = typeof page === 'function' ? page() : page;
      await p?.screenshot({ path: path.join(out, `fail-${prefix}${name.split(' ')[0]}.png`) }).catch(() => {});
    }
  }

  /**
   * Runs main() within `limitMs`, then cleanup() whatever happened; a throw
   * of main is a FAIL setup. Ends with "N passed, N failed" and exits.
   */
  async function run(main, limitMs, cleanup) {
    const timer = setTimeout(() => {
      console.log(`FAIL the whole run took longer than ${limitMs / 1000} s`);
      process.exit(1);
    }, limitMs);
    try {
      await main();
    } catch (err) {
      count.failed++;
      console.log(`FAIL setup: ${err.message}`);
      log(err.stack);
    } finally {
      await cleanup();
      clearTimeout(timer);
    }
    console.log(`${count.passed} passed, ${count.failed} failed`);
    log(`${count.passed} passed, ${count.failed} failed`);
    await new Promise((r) => logFile.end(r));
    process.exit(count.failed ? 1 : 0);
  }

  return { log, stamp, problems, openPage, step, run };
}

/** Launches Chromium (playwright-core's `chromium`) headless. */
export function launch(chromium, timeout) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout });
}

/** Waits until the page's connection state is `state`. */
export const waitState = (page, state, timeout) =>
  page.waitForSelector(`#state[data-state="${state}"]`, { state: 'attached', timeout });

/** Waits for a retry: 'reconnecting', or 'unreachable' after failures in a row. */
export const waitRetry = (page, timeout) =>
  page.waitForSelector('#state[data-state="reconnecting"], #state[data-state="unreachable"]',
    { state: 'attached', timeout });

export function assert(ok, message) {
  if (!ok) throw new Error(message);
}
