/**
 * @file app.js: the chat page of echo-chat, on wsa-client.js. The page and
 * the WebSocket come from the same origin: ws(s)://this host/ws/chat.
 * For tests and the console, the client is `window.wsaClient`.
 */
import { WsaClient, tokenClaims } from './wsa-client.js';

const $ = (id) => document.getElementById(id);
const el = {
  state: $('state'), token: $('token'), uid: $('uid'), devBox: $('dev-token-box'),
  devToken: $('dev-token'), loginForm: $('login-form'), connect: $('connect'),
  disconnect: $('disconnect'), log: $('log'), typing: $('typing'),
  chatForm: $('chat-form'), message: $('message'), send: $('send'), errors: $('errors'),
};

const TYPING_IDLE_MS = 1500;
const CLOSE_CODES = {
  1000: 'normal close', 1001: 'server stopping', 1003: 'binary message refused',
  1005: 'no status', 1006: 'connection lost', 1007: 'invalid UTF-8', 1008: 'policy',
  1009: 'message too big', 1011: 'server error', 1012: 'server restarting', 1013: 'try again later',
};

/** Where the token comes from: the field, or /dev/token for a uid. */
let devUid = null;

async function fetchDevToken(uid) {
  const res = await fetch(`/dev/token?uid=${encodeURIComponent(uid)}`, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.token !== 'string') {
    throw new Error(body.error ?? `HTTP ${res.status}`);
  }
  return body.token;
}

async function getToken() {
  if (devUid !== null) { // a fresh one for every login, so refresh works
    const token = await fetchDevToken(devUid);
    el.token.value = token;
    return token;
  }
  return el.token.value.trim();
}

const wsUrl = new URL('/ws/chat', location.href);
wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
const client = new WsaClient(wsUrl.href, {
  getToken,
  reconnect: { initialMs: 500, maxMs: 10_000, factor: 2, jitter: 'full' },
});
window.wsaClient = client;

// --- the page's lists ------------------------------------------------------

/** The chat log keeps this many lines; older ones are removed. */
const MAX_LOG_LINES = 500;

/** What a line of mine says about its message, by the client's events. */
const NOTES = { queued: ' (queued)', sent: '', undelivered: ' (not delivered)' };

function addLine(kind, text, { time = Date.now(), id } = {}) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const t = document.createElement('time');
  const when = new Date(time);
  t.dateTime = when.toISOString();
  t.textContent = when.toLocaleTimeString();
  const span = document.createElement('span');
  span.className = 'text';
  span.textContent = text;
  li.append(t, span);
  if (id !== undefined) {
    li.dataset.id = String(id);
    const note = document.createElement('span');
    note.className = 'note';
    li.append(note);
    setLineState(li, 'queued');
  }
  el.log.append(li);
  while (el.log.children.length > MAX_LOG_LINES) el.log.firstElementChild.remove();
  el.log.scrollTop = el.log.scrollHeight;
  return li;
}

/** A line of mine shows its message's state: queued, sent, undelivered. */
function setLineState(li, state, reason) {
  li.dataset.state = state;
  const note = li.querySelector('.note');
  note.textContent = NOTES[state];
  note.title = reason ?? '';
}

function lineOf(id) {
  return el.log.querySelector(`li[data-id="${id}"]`);
}

/** Adds an error line; the same text again bumps a counter instead. */
function addError(text) {
  const last = el.errors.lastElementChild;
  if (last && last.dataset.text === text) {
    last.dataset.count = String(Number(last.dataset.count) + 1);
    last.textContent = `${text} (×${last.dataset.count})`;
    return;
  }
  const li = document.createElement('li');
  li.dataset.text = text;
  li.dataset.count = '1';
  li.textContent = text;
  el.errors.append(li);
  while (el.errors.children.length > 50) el.errors.firstElementChild.remove();
}

function describeClose({ code, reason }) {
  const name = CLOSE_CODES[code] ?? (code >= 3000 ? 'closed by the server' : 'closed');
  return `${code} (${reason || name})`;
}

// --- the client's events ---------------------------------------------------

client.on('state', ({ state, delayMs, attempt }) => {
  if (state === 'connecting') refused = false;
  el.state.dataset.state = state;
  let text = state;
  if (state === 'reconnecting') text = `reconnecting in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt + 1})`;
  if (state === 'unreachable') text = `unreachable: ${attempt} attempts failed; trying again in ${(delayMs / 1000).toFixed(1)} s`;
  if (state === 'open') {
    const claims = tokenClaims(el.token.value.trim());
    const who = claims?.uid ?? claims?.sub;
    if (who) text = `open, as ${who}`;
  }
  el.state.textContent = text;
  el.connect.disabled = state !== 'closed';
  el.disconnect.disabled = state === 'closed';
  el.send.disabled = state === 'closed';
  if (state !== 'open') setTyping(false);
});

client.on('auth', ({ refreshed }) => {
  addLine('system', refreshed ? 'Token refreshed.' : 'Logged in.');
});

let refused = false; // the close that follows a refusal says nothing more

client.on('authfailed', ({ message, code }) => {
  refused = true;
  addError(`Login refused: ${message}${code ? ` (close ${code})` : ''}`);
  addLine('system', 'Login refused; not reconnecting.');
});

client.on('close', (detail) => {
  if (refused) return;
  const next = detail.willReconnect ? `; reconnecting in ${(detail.delayMs / 1000).toFixed(1)} s` : '';
  if (detail.code !== 1000) addError(`Connection closed: ${describeClose(detail)}${next}`);
  else addLine('system', `Disconnected${next}.`);
});

client.on('message', (msg) => {
  if (msg.type === 'chat') addLine('server', String(msg.message), { time: msg.timestamp ?? Date.now() });
  else addLine('system', `Server: ${JSON.stringify(msg)}`);
});

// Each line I typed follows its message: queued, sent, or not delivered.
for (const state of ['queued', 'sent', 'undelivered']) {
  client.on(state, ({ id, reason }) => {
    const li = lineOf(id);
    if (li) setLineState(li, state, reason);
  });
}

client.on('undelivered', ({ reason }) => addError(`A message was not delivered: ${reason}`));

client.on('error', ({ message, rateLimited }) => {
  addError(rateLimited ? `${message}: messages held for a moment` : message);
});

// --- the controls ----------------------------------------------------------

el.token.addEventListener('input', () => { devUid = null; });

el.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (devUid === null && !el.token.value.trim()) {
    addError('Paste a token first' + (el.devBox.hidden ? '.' : ', or get a dev token.'));
    el.token.focus();
    return;
  }
  client.connect().catch(() => {}); // the events tell what happened
});

el.disconnect.addEventListener('click', () => client.close());

el.devToken.addEventListener('click', async () => {
  const uid = el.uid.value.trim();
  el.devToken.disabled = true;
  try {
    el.token.value = await fetchDevToken(uid);
    devUid = uid;
    client.close();
    client.connect().catch(() => {});
  } catch (err) {
    addError(`Could not get a dev token for "${uid}": ${err.message}`);
  } finally {
    el.devToken.disabled = false;
  }
});

let typing = false;
let typingTimer = 0;

function setTyping(on) {
  clearTimeout(typingTimer);
  if (on === typing) return;
  typing = on;
  el.typing.textContent = on ? 'You are typing (the server is told)…' : '';
  if (client.state === 'open') client.send('typing', { isTyping: on }, { queue: false });
}

el.message.addEventListener('input', () => {
  if (client.state !== 'open') return;
  if (!el.message.value) {
    setTyping(false);
    return;
  }
  setTyping(true);
  typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
});

el.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = el.message.value;
  if (!text.trim()) return;
  setTyping(false);
  let id;
  try {
    id = client.send('chat', { message: text });
  } catch (err) { // the queue is full
    addError(err.message);
    return;
  }
  addLine('me', text, { id }); // queued until the client says it was sent
  el.message.value = '';
  el.message.focus();
});

// --- /dev/token: offered when echo-chat runs with --dev-tokens --------------

(async () => {
  try {
    // Without a uid the endpoint answers 400; without --dev-tokens, 404.
    const res = await fetch('/dev/token', { cache: 'no-store' });
    if (res.status === 400 || res.ok) {
      el.devBox.hidden = false;
      el.devToken.disabled = false;
    }
  } catch { /* no endpoint */ }
  document.body.dataset.ready = 'true';
})();
