// echo-chat with and without --permessage-deflate, driven by Node's `ws`
// (npm; a client we did not write, which offers permessage-deflate by
// default): what is negotiated, logins, echoes small and larger than
// lws' 1 KiB compression chunk, thirty in flight, and a close.
//
//   node ws-node.mjs --echo-chat PATH --wsa-token PATH
//
// Exits 77 (skipped) without node_modules; WSA_SERVER_WRAPPER (valgrind)
// goes before echo-chat.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const opts = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) opts[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!opts['echo-chat'] || !opts['wsa-token']) {
  console.error('usage: node ws-node.mjs --echo-chat PATH --wsa-token PATH');
  process.exit(2);
}
let WebSocket;
try {
  ({ WebSocket } = await import('ws'));
} catch {
  console.log('SKIP: no node_modules (npm ci in tests/browser)');
  process.exit(77);
}

const SECRET = randomBytes(32).toString('hex');
const wrapper = (process.env.WSA_SERVER_WRAPPER ?? '').split(/\s+/).filter(Boolean);
const T = wrapper.length ? 60_000 : 10_000; // ms: bound on every wait
let passed = 0;
let failed = 0;

function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (ok) passed++; else failed++;
}

const mint = (uid) => execFileSync(opts['wsa-token'], ['--secret', SECRET, '--uid', uid, '--ttl', '600'],
  { encoding: 'utf8' }).trim();

/** echo-chat on a free port; resolves with the process and its URL. */
function start(extra) {
  const cmd = [...wrapper, opts['echo-chat'], '--port', '0', '--jwt-secret', SECRET, ...extra];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('echo-chat printed no URL')), T);
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve({ proc, exited, url: buf.slice(0, nl).trim() }); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`echo-chat exited (${code})`)); });
  });
}

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

const timer = setTimeout(() => { console.log('FAIL took longer than 120 s'); process.exit(1); }, 120_000);
for (const [extra, deflate, name] of [[['--permessage-deflate'], true, 'deflate'], [[], false, 'plain']]) {
  let srv;
  try {
    srv = await start(extra);
    await session(srv.url, deflate, name);
  } catch (err) {
    check(false, `${name}: ${err.message}`);
  } finally {
    if (srv) {
      srv.proc.kill('SIGTERM');
      check(await srv.exited === 0, `${name}: echo-chat exits 0 after SIGTERM`);
    }
  }
}
clearTimeout(timer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
