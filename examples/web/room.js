/**
 * @file room.js: the chat page of chat-room, on page.js (the login, the
 * connection's state, errors, the chat form) and wsa-client.js. The page
 * and the WebSocket come from the same origin: ws(s)://this host/ws/chat.
 *
 * The client keeps the rooms joined here across reconnects and, when the
 * server keeps history (chat-room --history N), recovers what was missed:
 * each room's log shows its chats in offset order, each once. When a
 * rejoin could not recover everything, the log marks the gap. What I send
 * waits in the outbox until its copy comes back from the room.
 * For tests and the console, the client is `window.wsaClient`.
 */
import { $, addError, chatPage, line } from './page.js';

const el = {
  roomForm: $('room-form'), room: $('room'), rooms: $('rooms'), users: $('users'), logs: $('logs'),
  typing: $('typing'), outbox: $('outbox'),
};

/** Each room's log keeps this many lines; older ones are removed. */
const MAX_LOG_LINES = 500;
const NOTES = { queued: 'queued', sent: 'sent', undelivered: 'not delivered', lost: 'maybe not delivered' };

const { client, el: { send: sendButton }, me, setTyping } = chatPage({
  canSend: () => current !== null,
  state(state) {
    if (state === 'open') return;
    for (const room of rooms.values()) room.typing.clear();
    showUsers();
  },
  typing(on) {
    if (client.state === 'open' && current !== null) client.send('typing', { room: current, isTyping: on }, { queue: false });
  },
  send: (text) => client.send('chat', { room: current, message: text }),
  sent: (id, text) => addOutbox(id, current, text),
  refused: (text) => addError(`${text}; not reconnecting.`),
  closed({ code, reason }, next) {
    if (code === 1000) return;
    addError(`Connection closed: ${code}${reason ? ` (${reason})` : ''}${next}`);
  },
});

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
  sendButton.disabled = client.state === 'closed' || current === null;
}

function showUsers() {
  const room = rooms.get(current);
  el.users.textContent = room ? `In ${current}: ${[...room.users].sort().join(', ') || 'nobody yet'}` : 'Join a room.';
  el.typing.textContent = room && room.typing.size ? `${[...room.typing].sort().join(', ')} typing…` : '';
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

// --- the client's events -----------------------------------------------------------

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

client.on('error', () => {
  // A join the server refused ("Too many rooms") is forgotten by the client.
  for (const name of [...rooms.keys()]) if (!client.rooms.has(name)) removeRoom(name);
});

// --- the controls ---------------------------------------------------------------------

el.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = el.room.value.trim();
  if (!name) return;
  addRoom(name);
  client.join(name); // now, or at the login
  select(name);
});

select(null);
