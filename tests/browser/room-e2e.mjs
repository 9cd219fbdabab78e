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
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  assert, browserRun, count, launch, minter, needChromium, options, retry, sender as member, startServer,
  stopServer, waitRetry, waitState, wrapper,
} from './common.mjs';

const slow = wrapper.length ? 4 : 1;
const T = { launch: 90_000, server: 15_000 * slow, step: 10_000 * slow, reconnect: 20_000 * slow };

const opts = options('usage: node room-e2e.mjs --chat-room PATH --wsa-token PATH --out DIR',
  ['chat-room', 'wsa-token', 'out']);
needChromium();
const { chromium } = await import('playwright-core');
const out = opts.out;
const { log, problems, openPage, step: check, run } = browserRun(out, 'room-');
const mint = minter(opts['wsa-token'], 3600);

// --- chat-room and the proxy in front of it ---------------------------------------

/** chat-room --history 200 on `port` (0: a free one). */
const startRoom = (port = 0) => startServer(opts['chat-room'], port, ['--history', '200'], {
  timeout: T.server, log,
  stderr: (stream, n) => stream.pipe(fs.createWriteStream(path.join(out, `chat-room-${n}.log`))),
});

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
const sender = (url, uid, room) => member(url, uid, room, { mint, timeout: T.step });

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

let browser;
let server;
let proxy;

async function main() {
  server = await startRoom();
  proxy = await startProxy(server.port);
  browser = await launch(chromium, T.launch);
  log('chromium', browser.version());
  const { page } = await openPage(browser, { height: 700, timeout: T.step });
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
    await waitRetry(page);
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
    const status = await stopServer(server, T.server);
    assert(status === 0, `chat-room exited with ${status}`);
    server = await retry(() => startRoom(server.port), T.server);
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

await run(main, 120_000, async () => {
  await browser?.close().catch(() => {});
  proxy?.close();
  if (server) {
    const status = await stopServer(server, T.server);
    if (status !== 0) {
      count.failed++;
      console.log(`FAIL server-exit: chat-room exited with ${status}`);
    }
  }
});
