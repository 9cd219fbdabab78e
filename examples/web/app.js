/**
 * @file app.js: the chat page of echo-chat, on page.js (the login, the
 * connection's state, errors, the chat form) and wsa-client.js. The page
 * and the WebSocket come from the same origin: ws(s)://this host/ws/chat.
 * For tests and the console, the client is `window.wsaClient`.
 */
import { $, addError, chatPage, line } from './page.js';

const CLOSE_CODES = {
  1000: 'normal close', 1001: 'server stopping', 1003: 'binary message refused',
  1005: 'no status', 1006: 'connection lost', 1007: 'invalid UTF-8', 1008: 'policy',
  1009: 'message too big', 1011: 'server error', 1012: 'server restarting', 1013: 'try again later',
};

const log = $('log');
const typingNote = $('typing');

const { client } = chatPage({
  canSend: () => true,
  state: () => {},
  typing(on) {
    typingNote.textContent = on ? 'You are typing (the server is told)…' : '';
    if (client.state === 'open') client.send('typing', { isTyping: on }, { queue: false });
  },
  send: (text) => client.send('chat', { message: text }),
  sent: (id, text) => addLine('me', text, { id }), // queued until the client says it was sent
  refused(text) {
    addError(text);
    addLine('system', 'Login refused; not reconnecting.');
  },
  closed(detail, next) {
    if (detail.code !== 1000) addError(`Connection closed: ${describeClose(detail)}${next}`);
    else addLine('system', `Disconnected${next}.`);
  },
});

// --- the page's lists ------------------------------------------------------

/** The chat log keeps this many lines; older ones are removed. */
const MAX_LOG_LINES = 500;

/** What a line of mine says about its message, by the client's events. */
const NOTES = { queued: ' (queued)', sent: '', undelivered: ' (not delivered)' };

function addLine(kind, text, { time = Date.now(), id } = {}) {
  const li = line(kind, text, time);
  if (id !== undefined) {
    li.dataset.id = String(id);
    const note = document.createElement('span');
    note.className = 'note';
    li.append(note);
    setLineState(li, 'queued');
  }
  log.append(li);
  while (log.children.length > MAX_LOG_LINES) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
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
  return log.querySelector(`li[data-id="${id}"]`);
}

function describeClose({ code, reason }) {
  const name = CLOSE_CODES[code] ?? (code >= 3000 ? 'closed by the server' : 'closed');
  return `${code} (${reason || name})`;
}

// --- the client's events ---------------------------------------------------

client.on('auth', ({ refreshed }) => {
  addLine('system', refreshed ? 'Token refreshed.' : 'Logged in.');
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
