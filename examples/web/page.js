/**
 * @file page.js: what the two chat pages (app.js of echo-chat, room.js of
 * chat-room) share, on wsa-client.js: the client on ws(s)://this
 * host/ws/chat, the login form (a token pasted, or one from /dev/token
 * when the server runs with --dev-tokens), Connect and Disconnect, the
 * connection's state, the error list, the typing indicator and the chat
 * form. Each page says what is its own through the hooks of chatPage().
 */
import { WsaClient, tokenClaims } from './wsa-client.js';

export const $ = (id) => document.getElementById(id);

const TYPING_IDLE_MS = 1500;

async function fetchDevToken(uid) {
  const res = await fetch(`/dev/token?uid=${encodeURIComponent(uid)}`, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.token !== 'string') throw new Error(body.error ?? `HTTP ${res.status}`);
  return body.token;
}

/** A log line: its time and its text (text, never markup). */
export function line(kind, text, time = Date.now()) {
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

/** Adds an error line; the same text again bumps a counter instead. */
export function addError(text) {
  const errors = $('errors');
  const last = errors.lastElementChild;
  if (last && last.dataset.text === text) {
    last.dataset.count = String(Number(last.dataset.count) + 1);
    last.textContent = `${text} (×${last.dataset.count})`;
    return;
  }
  const li = document.createElement('li');
  li.dataset.text = text;
  li.dataset.count = '1';
  li.textContent = text;
  errors.append(li);
  while (errors.children.length > 50) errors.firstElementChild.remove();
}

/**
 * Sets up the page's client and its shared controls; returns
 * {client, el, me, setTyping}. The client is also `window.wsaClient`.
 * Hooks (each called with the client's events or the page's input):
 * - canSend(): whether a chat may be sent now, besides being connected;
 * - state(state): after the shared part of a state change;
 * - typing(on): I started or stopped typing (tell the server);
 * - send(text): sends a chat, returns its id (throws when the queue is full);
 * - sent(id, text): shows a chat just handed to the client;
 * - refused(text): a login refused, `text` says so;
 * - closed(detail, next): a close not after a refusal; `next` says when
 *   the client tries again, or is ''.
 */
export function chatPage(hooks) {
  const el = {
    state: $('state'), token: $('token'), uid: $('uid'), devBox: $('dev-token-box'),
    devToken: $('dev-token'), loginForm: $('login-form'), connect: $('connect'),
    disconnect: $('disconnect'), chatForm: $('chat-form'), message: $('message'), send: $('send'),
  };

  /** Where the token comes from: the field, or /dev/token for a uid. */
  let devUid = null;

  async function getToken() {
    if (devUid !== null) { // a fresh one for every login, so refresh works
      el.token.value = await fetchDevToken(devUid);
    }
    return el.token.value.trim();
  }

  /** The uid of the token in the field. */
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

  // --- typing ----------------------------------------------------------------

  let typing = false;
  let typingTimer = 0;

  function setTyping(on) {
    clearTimeout(typingTimer);
    if (on === typing) return;
    typing = on;
    hooks.typing(on);
  }

  // --- the client's events ---------------------------------------------------

  let refused = false; // the close that follows a refusal says nothing more

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
    el.send.disabled = state === 'closed' || !hooks.canSend();
    if (state !== 'open') setTyping(false);
    hooks.state(state);
  });

  client.on('authfailed', ({ message, code }) => {
    refused = true;
    hooks.refused(`Login refused: ${message}${code ? ` (close ${code})` : ''}`);
  });

  client.on('close', (detail) => {
    if (refused) return;
    hooks.closed(detail, detail.willReconnect ? `; reconnecting in ${(detail.delayMs / 1000).toFixed(1)} s` : '');
  });

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

  el.message.addEventListener('input', () => {
    if (client.state !== 'open' || !hooks.canSend()) return;
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
    if (!text.trim() || !hooks.canSend()) return;
    setTyping(false);
    let id;
    try {
      id = hooks.send(text);
    } catch (err) { // the queue is full
      addError(err.message);
      return;
    }
    hooks.sent(id, text);
    el.message.value = '';
    el.message.focus();
  });

  // --- /dev/token: offered when the server runs with --dev-tokens ------------
  // After the page's own script has run: the answer comes in a later task.

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

  return { client, el, me, setTyping };
}
