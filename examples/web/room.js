/**
 * @file room.js: the chat page of chat-room, on wsa-client.js. The page
 * and the WebSocket come from the same origin: ws(s)://this host/ws/chat.
 *
 * The client keeps the rooms joined here across reconnects and, when the
 * server keeps history (chat-room --history N), recovers what was missed:
 * each room's log shows its chats in offset order, each once. When a
 * rejoin could not recover everything, the log marks the gap. What I send
 * waits in the outbox until its copy comes back from the room.
 * For tests and the console, the client is `window.wsaClient`.
 */
import { WsaClient, tokenClaims } from './wsa-client.js';

const $ = (id) => document.getElementById(id);
const el = {
  state: $('state'), token: $('token'), uid: $('uid'), devBox: $('dev-token-box'),
  devToken: $('dev-token'), loginForm: $('login-form'), disconnect: $('disconnect'),
  connect: $('connect'), roomForm: $('room-form'), room: $('room'), rooms: $('rooms'),
  users: $('users'), logs: $('logs'), typing: $('typing'), outbox: $('outbox'),
  chatForm: $('chat-form'), message: $('message'), send: $('send'), errors: $('errors'),
};

const TYPING_IDLE_MS = 1500;
/** Each room's log keeps this many lines; older ones are removed. */
const MAX_LOG_LINES = 500;
const NOTES = { queued: 'queued', sent: 'sent', undelivered: 'not delivered', lost: 'maybe not delivered' };

let devUid = null;

async function fetchDevToken(uid) {
  const res = await fetch(`/dev/token?uid=${encodeURIComponent(uid)}`, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.token !== 'string') throw new Error(body.error ?? `HTTP ${res.status}`);
  return body.token;
}

async function getToken() {
  if (devUid !== null) { // a fresh one for every login, so refresh works
    el.token.value = await fetchDevToken(devUid);
  }
  return el.token.value.trim();
}

/** The uid of the token in the field: chats from it are mine. */
function me() {
  const claims = tokenClaims(el.token.value.trim());
  return claims?.uid ?? claims?.sub ?? null;
}

const wsUrl = new URL('/ws/chat', location.href);
wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
const client = new WsaClient(wsUrl.href, {
  getToken,
  reconnect: { initialMs: 500, maxMs: 10_000, factor: 2, jitter: 'full' },
});
window.wsaClient = client;

// --- rooms ---------------------------------------------------------------------

/** room -> {log, tab, users: Set, typing: Set} */
const rooms = new Map();
let current = null;

function addRoom(name) {
  if (rooms.has(name)) return rooms.get(name);
  const log = document.createElement('ol');
  log.className = 'log';
  log.dataset.room = name;
  log.setAttribute('role', 'log');
  log.setAttribute('aria-label', `Messages of ${name}`);
  log.hidden = true;
  el.logs.append(log);
  const tab = document.createElement('li');
  tab.dataset.room = name;
  const show = document.createElement('button');
  show.type = 'button';
  show.className = 'show';
  show.textContent = name;
  show.addEventListener('click', () => select(name));
  const leave = document.createElement('button');
  leave.type = 'button';
  leave.className = 'leave';
  leave.textContent = 'Leave';
  leave.setAttribute('aria-label', `Leave ${name}`);
  leave.addEventListener('click', () => {
    client.leave(name);
    removeRoom(name);
  });
  tab.append(show, leave);
  el.rooms.append(tab);
  const room = { log, tab, users: new Set(), typing: new Set() };
  rooms.set(name, room);
  return room;
}

function removeRoom(name) {
  const room = rooms.get(name);
  if (!room) return;
  room.log.remove();
  room.tab.remove();
  rooms.delete(name);
  if (current === name) select(rooms.keys().next().value ?? null);
}

function select(name) {
  setTyping(false);
  current = name;
  for (const [n, room] of rooms) {
    room.log.hidden = n !== name;
    room.tab.dataset.current = String(n === name);
  }
  showUsers();
  el.send.disabled = client.state === 'closed' || current === null;
}

function showUsers() {
  const room = rooms.get(current);
  el.users.textContent = room ? `In ${current}: ${[...room.users].sort().join(', ') || 'nobody yet'}` : 'Join a room.';
  el.typing.textContent = room && room.typing.size ? `${[...room.typing].sort().join(', ')} typing…` : '';
}

function line(kind, text, time = Date.now()) {
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
  return li;
}

function append(room, li, before = null) {
  room.log.insertBefore(li, before);
  while (room.log.children.length > MAX_LOG_LINES) room.log.firstElementChild.remove();
  room.log.scrollTop = room.log.scrollHeight;
}

/** A chat in its room's log, in offset order within its epoch. */
function addChat(msg) {
  const room = rooms.get(msg.room);
  if (!room) return;
  const li = line('chat', `${msg.from}: ${msg.message}`, msg.timestamp ?? Date.now());
  li.dataset.from = String(msg.from);
  li.dataset.message = String(msg.message);
  if (msg.from === me()) li.dataset.mine = 'true';
  let before = null;
  if (Number.isSafeInteger(msg.offset)) {
    li.dataset.offset = String(msg.offset);
    li.dataset.epoch = String(msg.epoch);
    // The client hands them over in order; a later one already shown goes after.
    before = [...room.log.children].find((x) => x.dataset.kind === 'chat' && x.dataset.epoch === li.dataset.epoch &&
      Number(x.dataset.offset) > msg.offset) ?? null;
  }
  append(room, li, before);
}

/** Marks where a room's log may miss messages: after what was seen last. */
function addGap(name, previous) {
  const room = rooms.get(name);
  if (!room) return;
  const li = line('gap', 'Some messages of this room may be missing here (not recovered after the reconnect).');
  const seen = [...room.log.children].filter((x) => x.dataset.kind === 'chat' && previous &&
    x.dataset.epoch === previous.epoch && Number(x.dataset.offset) <= previous.offset);
  append(room, li, seen.length ? seen[seen.length - 1].nextSibling : room.log.firstElementChild);
}

// --- the outbox: my messages until their copy comes back ------------------------

function addOutbox(id, room, text) {
  const li = document.createElement('li');
  li.dataset.id = String(id);
  li.dataset.room = room;
  li.dataset.message = text;
  li.textContent = `${room}: ${text} `;
  const note = document.createElement('span');
  note.className = 'note';
  li.append(note);
  el.outbox.append(li);
  setOutboxState(li, 'queued');
}

/** written: an undelivered message that the server may have had. */
function setOutboxState(li, state, reason, written = false) {
  li.dataset.state = state;
  const note = li.querySelector('.note');
  note.textContent = `(${NOTES[state === 'undelivered' && written ? 'lost' : state]})`;
  note.title = reason ?? '';
}

/** My chat came back from its room: its outbox line goes. Recovered
 * copies carry no id: the oldest line of the same text that may not have
 * been delivered is the one. */
function settleOutbox(msg) {
  const lines = [...el.outbox.children];
  const li = msg.id !== undefined ? lines.find((x) => x.dataset.id === String(msg.id))
    : msg.from === me() ? lines.find((x) => x.dataset.state === 'undelivered' && x.dataset.room === msg.room &&
      x.dataset.message === msg.message) : undefined;
  li?.remove();
}

// --- errors ----------------------------------------------------------------------

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

// --- the client's events -----------------------------------------------------------

let refused = false;

client.on('state', ({ state, delayMs, attempt }) => {
  if (state === 'connecting') refused = false;
  el.state.dataset.state = state;
  let text = state;
  if (state === 'reconnecting') text = `reconnecting in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt + 1})`;
  if (state === 'unreachable') text = `unreachable: ${attempt} attempts failed; trying again in ${(delayMs / 1000).toFixed(1)} s`;
  if (state === 'open' && me()) text = `open, as ${me()}`;
  el.state.textContent = text;
  el.connect.disabled = state !== 'closed';
  el.disconnect.disabled = state === 'closed';
  el.send.disabled = state === 'closed' || current === null;
  if (state !== 'open') {
    setTyping(false);
    for (const room of rooms.values()) room.typing.clear();
    showUsers();
  }
});

client.on('authfailed', ({ message, code }) => {
  refused = true;
  addError(`Login refused: ${message}${code ? ` (close ${code})` : ''}; not reconnecting.`);
});

client.on('close', ({ code, reason, willReconnect, delayMs }) => {
  if (refused || code === 1000) return;
  addError(`Connection closed: ${code}${reason ? ` (${reason})` : ''}` +
    `${willReconnect ? `; reconnecting in ${(delayMs / 1000).toFixed(1)} s` : ''}`);
});

client.on('message', (msg) => {
  const room = rooms.get(msg.room);
  switch (msg.type) {
    case 'chat':
      settleOutbox(msg);
      addChat(msg);
      break;
    case 'joined':
      if (!room) break;
      room.users = new Set(Array.isArray(msg.users) ? msg.users.map(String) : []);
      break;
    case 'presence':
      if (!room) break;
      if (msg.event === 'join') room.users.add(String(msg.uid)); else room.users.delete(String(msg.uid));
      room.typing.delete(String(msg.uid));
      append(room, line('presence', `${msg.uid} ${msg.event === 'join' ? 'joined' : 'left'}`));
      break;
    case 'typing':
      if (!room) break;
      if (msg.isTyping) room.typing.add(String(msg.userId)); else room.typing.delete(String(msg.userId));
      break;
    default:
      break;
  }
  if (msg.room === current) showUsers();
});

client.on('recovery', ({ room, recovered, previous }) => {
  if (!recovered) addGap(room, previous);
});

for (const state of ['queued', 'sent', 'undelivered']) {
  client.on(state, ({ id, reason, written }) => {
    const li = el.outbox.querySelector(`li[data-id="${id}"]`);
    if (li) setOutboxState(li, state, reason, written);
  });
}

client.on('error', ({ message, rateLimited }) => {
  addError(rateLimited ? `${message}: messages held for a moment` : message);
  // A join the server refused ("Too many rooms") is forgotten by the client.
  for (const name of [...rooms.keys()]) if (!client.rooms.has(name)) removeRoom(name);
});

// --- the controls ---------------------------------------------------------------------

el.token.addEventListener('input', () => { devUid = null; });

el.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (devUid === null && !el.token.value.trim()) {
    addError('Paste a token first' + (el.devBox.hidden ? '.' : ', or get a dev token.'));
    el.token.focus();
    return;
  }
  client.connect().catch(() => {});
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

el.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = el.room.value.trim();
  if (!name) return;
  addRoom(name);
  client.join(name); // now, or at the login
  select(name);
});

let typing = false;
let typingTimer = 0;

function setTyping(on) {
  clearTimeout(typingTimer);
  if (on === typing) return;
  typing = on;
  if (client.state === 'open' && current !== null) client.send('typing', { room: current, isTyping: on }, { queue: false });
}

el.message.addEventListener('input', () => {
  if (client.state !== 'open' || current === null) return;
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
  if (!text.trim() || current === null) return;
  setTyping(false);
  let id;
  try {
    id = client.send('chat', { room: current, message: text });
  } catch (err) { // the queue is full
    addError(err.message);
    return;
  }
  addOutbox(id, current, text);
  el.message.value = '';
  el.message.focus();
});

select(null);

// --- /dev/token: offered when chat-room runs with --dev-tokens --------------------

(async () => {
  try {
    const res = await fetch('/dev/token', { cache: 'no-store' });
    if (res.status === 400 || res.ok) {
      el.devBox.hidden = false;
      el.devToken.disabled = false;
    }
  } catch { /* no endpoint */ }
  document.body.dataset.ready = 'true';
})();
