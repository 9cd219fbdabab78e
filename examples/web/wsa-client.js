/**
 * @file wsa-client.js: a browser client for libwsa's authenticated
 * WebSocket protocol (PROTOCOL.md, wsa(7)). An ES module without
 * dependencies or a build step; it also runs under Node.js with a
 * WebSocket implementation passed in the options.
 *
 * What it does for its user:
 * - logs in first on every connection, with a token from `getToken()`, and
 *   waits for the server's verdict before anything else is sent;
 * - refreshes the token on the live connection before its `exp`;
 * - holds messages sent while it is not logged in (at most `maxQueue`) and
 *   sends them, in order, once it is;
 * - matches replies to requests by `id`;
 * - sends a `ping` every `heartbeatMs` and drops a connection that stays
 *   silent `heartbeatTimeoutMs` longer;
 * - reconnects after an abnormal close, with exponential backoff and
 *   jitter, and logs in again; never after `close()`, nor after the server
 *   refused the login;
 * - holds its messages for `rateLimitPauseMs` after a "Rate limit exceeded".
 *
 * @example
 * import { WsaClient } from './wsa-client.js';
 * const client = new WsaClient('wss://example.org/ws/chat', {
 *   getToken: async () => (await fetch('/my/token')).text(),
 * });
 * client.on('message', (msg) => console.log(msg));
 * await client.connect();
 * client.send('chat', { message: 'Hello!' });
 * const pong = await client.request('ping');
 */

/** The errors with which the server refuses a login (wsa(7)). */
const AUTH_ERRORS = new Set([
  'Authentication failed',
  'First message must be login with token',
  'Authentication timeout',
]);

/**
 * Close codes after which the client reconnects, when they did not end a
 * login: the server stopping (1001), no status (1005), a connection lost
 * (1006), after the login a policy close (1008: token expired, rate limit,
 * send queue full; a new login decides), internal error (1011), service
 * restart (1012), try again later (1013), bad gateway (1014). 1000 and the
 * host's own codes 3000-4999 (a logout, say) are final, as are 1002, 1003,
 * 1007, 1009 and 1010, which say that this client sent something wrong.
 */
const RECONNECT_CODES = new Set([1001, 1005, 1006, 1008, 1011, 1012, 1013, 1014]);

/** CustomEvent, or what stands for it where there is none (Node.js 18). */
const DetailEvent = globalThis.CustomEvent ?? class extends Event {
  constructor(type, init) { super(type); this.detail = init?.detail; }
};

/**
 * The default options of {@link WsaClient}.
 * @type {Readonly<WsaClientOptions>}
 */
export const DEFAULTS = Object.freeze({
  getToken: null,
  refreshBeforeMs: 60_000,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  heartbeatMs: 25_000,
  heartbeatTimeoutMs: 10_000,
  maxQueue: 100,
  rateLimitPauseMs: 1_000,
  reconnect: Object.freeze({ initialMs: 500, maxMs: 30_000, factor: 2, jitter: 'full', maxAttempts: Infinity }),
  WebSocket: undefined, // globalThis.WebSocket at construction
  random: Math.random,
});

/**
 * @typedef {object} WsaClientOptions
 * @property {() => (string|Promise<string>)} getToken Returns the token to
 *   log in with; called before every login, first, again or refresh. A
 *   rejection is retried with the reconnect backoff; an empty token is a
 *   failed login.
 * @property {number} [refreshBeforeMs=60000] Refresh this long before the
 *   token's `exp` (read from the JWT payload, unverified), or at half its
 *   remaining life when that is later. A token without `exp` is not
 *   refreshed.
 * @property {number} [requestTimeoutMs=10000] Default timeout of
 *   {@link WsaClient#request}, and how long the server has to answer a login.
 * @property {number} [connectTimeoutMs=10000] How long the WebSocket may
 *   take to open.
 * @property {number} [heartbeatMs=25000] Send a ping this often once logged
 *   in; 0 turns the heartbeat off.
 * @property {number} [heartbeatTimeoutMs=10000] A connection from which
 *   nothing arrives this long after a ping is dropped (and reconnected).
 * @property {number} [maxQueue=100] Messages held while not logged in (or
 *   during a rate-limit pause); beyond, `send` throws and `request` rejects.
 * @property {number} [rateLimitPauseMs=1000] After "Rate limit exceeded",
 *   hold outgoing messages this long.
 * @property {false|{initialMs?: number, maxMs?: number, factor?: number,
 *   jitter?: 'full'|'equal'|'none', maxAttempts?: number}} [reconnect]
 *   Backoff before reconnect attempt n (from 0): `min(maxMs, initialMs *
 *   factor ** n)`, then with 'full' jitter a random delay up to it, with
 *   'equal' jitter half of it plus a random delay up to the other half.
 *   The count restarts at each accepted login. `false`: never reconnect.
 * @property {typeof WebSocket} [WebSocket] The WebSocket constructor
 *   (injectable for tests); default: the global one.
 * @property {() => number} [random=Math.random] Source of jitter (for tests).
 */

/**
 * The claims of a JWT (its payload), or null when it has none that can be
 * read. The token is not verified: this is for display, and to know when
 * to refresh it.
 * @param {string} token
 * @returns {object|null}
 */
export function tokenClaims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/** The `exp` of a JWT in milliseconds, or null. */
function tokenExpiry(token) {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
}

/**
 * A connection to one libwsa route that logs in, stays logged in and
 * comes back by itself.
 *
 * Events (an `EventTarget`; each event is a `CustomEvent` whose `detail`
 * is given here, and {@link WsaClient#on} hands the detail to a callback):
 * - `state` `{state, previous, delayMs?, attempt?}`: `state` is one of
 *   'connecting' (getting a token, opening the socket), 'authenticating'
 *   (login sent), 'open' (logged in), 'reconnecting' (waiting `delayMs`
 *   before attempt `attempt`), 'closed';
 * - `auth` `{message, refreshed}`: a login (or a refresh) was accepted;
 * - `authfailed` `{message, code}`: the server refused the login; the
 *   client is closed and will not reconnect;
 * - `message`: every server message that is neither an error nor a reply
 *   to a request (the parsed object);
 * - `error` `{message, source, data?, error?}`: `source` 'server' for an
 *   error message that is not a reply to a request, and for every "Rate
 *   limit exceeded" (then `rateLimited` is true); 'client' for what went
 *   wrong here (a token that could not be fetched, a reply that is not
 *   JSON...);
 * - `close` `{code, reason, willReconnect, delayMs?}`: a connection ended.
 */
export class WsaClient extends EventTarget {
  #url;
  #opts;
  #ws = null;
  #state = 'closed';
  #wanted = false; // connect() was called and neither close() nor a refusal since
  #authed = false;
  #authError = null; // the server's refusal of a login on this connection
  #token = null;
  #gen = 0; // bumped per connection attempt: stale callbacks check it
  #attempt = 0;
  #nextId = 1;
  #queue = []; // {msg, entry?} not yet sent
  #pending = new Map(); // id -> {resolve, reject, timer, sent}
  #timers = {}; // connect, login, reconnect, refresh, heartbeat, pong, pause
  #ours = new Set(); // ids whose replies are not the user's: pings, timed-out requests
  #paused = false; // after "Rate limit exceeded"
  #ready = null; // {promise, resolve, reject} of connect()

  /**
   * @param {string} url The route's URL, `ws://` or `wss://`.
   * @param {WsaClientOptions} options `getToken` is required.
   */
  constructor(url, options) {
    super();
    this.#url = url;
    this.#opts = { ...DEFAULTS, ...options,
      reconnect: options?.reconnect === false ? false : { ...DEFAULTS.reconnect, ...options?.reconnect } };
    this.#opts.WebSocket ??= globalThis.WebSocket;
    if (typeof this.#opts.getToken !== 'function') throw new TypeError('options.getToken must be a function');
    if (typeof this.#opts.WebSocket !== 'function') throw new TypeError('no WebSocket implementation');
  }

  /** The current state: 'connecting', 'authenticating', 'open', 'reconnecting' or 'closed'. */
  get state() { return this.#state; }

  /** How many messages wait to be sent. */
  get queued() { return this.#queue.length; }

  /**
   * Calls `fn(detail)` on each event of a type.
   * @param {string} type
   * @param {(detail: any) => void} fn
   * @returns {() => void} removes the listener
   */
  on(type, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Connects and logs in, reconnecting as needed; does nothing when already
   * under way.
   * @returns {Promise<void>} resolved at the first accepted login; rejected
   *   when the login is refused, on `close()`, or when the client gives up.
   */
  connect() {
    if (!this.#wanted) {
      this.#wanted = true;
      this.#attempt = 0;
      let resolve, reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      promise.catch(() => {}); // a caller that does not wait has the events
      this.#ready = { promise, resolve, reject };
      this.#open();
    }
    return this.#ready.promise;
  }

  /**
   * Closes the connection for good (until the next `connect()`): no
   * reconnect; pending requests and queued messages are rejected.
   * @param {number} [code=1000] 1000 or 3000-4999
   * @param {string} [reason='']
   */
  close(code = 1000, reason = '') {
    if (!this.#wanted && !this.#ws) return;
    this.#wanted = false;
    const ws = this.#ws;
    const err = new Error('Closed by the client');
    this.#detach(err);
    if (ws) {
      try { ws.close(code, reason); } catch { ws.close(); } // a code the browser refuses
      this.#emit('close', { code, reason, willReconnect: false });
    }
    this.#stop(err);
  }

  /**
   * Sends a message `{type, ...fields}` without waiting for an answer. When
   * the client is not logged in, or holds messages after a rate limit, the
   * message is queued and sent in order later; a message written to a
   * connection that then drops may be lost (use `request` to know).
   * @param {string} type
   * @param {object} [fields]
   * @param {{queue?: boolean}} [options] `queue: false`: drop the message
   *   rather than queue it (for what is stale later, such as "typing").
   * @returns {boolean} false when dropped because of `queue: false`
   * @throws {Error} when the queue already holds `maxQueue` messages
   */
  send(type, fields = {}, { queue = true } = {}) {
    const msg = this.#build(type, fields);
    if (!queue && !this.#canSend()) return false;
    this.#enqueue({ msg });
    return true;
  }

  /**
   * Sends `{type, ...fields, id}` with a fresh `id` and waits for the reply
   * that carries the same `id`.
   * @param {string} type
   * @param {object} [fields]
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<object>} the reply; rejected with an Error whose
   *   message is the server's on an error reply, or on timeout (counted from
   *   this call, queueing included), or when the connection closes after the
   *   request was sent, or when the queue is full.
   */
  request(type, fields = {}, { timeoutMs = this.#opts.requestTimeoutMs } = {}) {
    const msg = this.#build(type, fields);
    const id = msg.id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, sent: false };
      entry.timer = setTimeout(() => {
        this.#pending.delete(id);
        if (entry.sent) this.#ours.add(id); // its late reply is dropped
        const i = this.#queue.findIndex((item) => item.entry === entry);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new Error(`Request timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, entry);
      try {
        this.#enqueue({ msg, entry });
      } catch (err) {
        clearTimeout(entry.timer);
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  // --- connection ----------------------------------------------------------

  async #open() {
    const gen = ++this.#gen;
    this.#setState('connecting');
    let token;
    try {
      token = await this.#opts.getToken();
    } catch (err) {
      if (gen !== this.#gen) return;
      this.#clientError(`Could not get a token: ${err?.message ?? err}`, err);
      this.#next(true, null);
      return;
    }
    if (gen !== this.#gen) return; // close() meanwhile
    if (typeof token !== 'string' || !token) {
      this.#refused('No token to log in with', 1008);
      return;
    }
    this.#token = token;
    let ws;
    try {
      ws = new this.#opts.WebSocket(this.#url);
    } catch (err) { // a malformed URL: nothing to retry
      this.#clientError(`Cannot open ${this.#url}: ${err?.message ?? err}`, err);
      this.#wanted = false;
      this.#stop(err);
      return;
    }
    this.#ws = ws;
    this.#timer('connect', this.#opts.connectTimeoutMs, () => this.#drop('Connect timeout'));
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      this.#clear('connect');
      this.#setState('authenticating');
      this.#write({ type: 'login', token, id: this.#nextId++ });
      this.#timer('login', this.#opts.requestTimeoutMs, () => this.#drop('Login timeout'));
    };
    ws.onmessage = (event) => { if (ws === this.#ws) this.#receive(event.data); };
    ws.onclose = (event) => { if (ws === this.#ws) this.#closed(event.code, event.reason); };
    ws.onerror = () => {}; // a close event follows, with the code
  }

  /** The socket closed (or was dropped): decide what comes next. */
  #closed(code, reason) {
    const wasAuthed = this.#authed;
    const authError = this.#authError;
    this.#detach();
    if (authError || (!wasAuthed && code === 1008)) {
      this.#refused(authError ?? (reason || 'Authentication failed'), code, { code, reason, willReconnect: false });
      return;
    }
    this.#next(RECONNECT_CODES.has(code), { code, reason });
  }

  /** After a lost connection (`closed`) or a failed attempt: again or stop. */
  #next(retryable, closed) {
    const r = this.#opts.reconnect;
    const again = this.#wanted && retryable && r && this.#attempt < r.maxAttempts;
    const delayMs = again ? this.#backoff() : undefined;
    if (closed) this.#emit('close', { ...closed, willReconnect: Boolean(again), delayMs });
    if (!again) {
      this.#wanted = false;
      this.#stop(new Error(closed ? `Connection closed (${closed.code}${closed.reason ? ' ' + closed.reason : ''})`
        : 'Could not get a token'));
      return;
    }
    const attempt = this.#attempt;
    this.#setState('reconnecting', { delayMs, attempt });
    this.#timer('reconnect', delayMs, () => this.#open());
  }

  #backoff() {
    const { initialMs, maxMs, factor, jitter } = this.#opts.reconnect;
    const base = Math.min(maxMs, initialMs * factor ** this.#attempt++);
    const r = this.#opts.random();
    if (jitter === 'full') return Math.round(base * r);
    if (jitter === 'equal') return Math.round(base / 2 + (base / 2) * r);
    return base;
  }

  /** The login was refused: final. `closed`: the close event to follow. */
  #refused(message, code, closed = null) {
    this.#wanted = false;
    this.#detach();
    this.#emit('authfailed', { message, code });
    if (closed) this.#emit('close', closed);
    this.#stop(new Error(message));
  }

  /** Ends the client's activity: rejects what waits, state 'closed'. */
  #stop(err) {
    this.#clear('reconnect');
    this.#gen++;
    for (const [id, entry] of this.#pending) {
      clearTimeout(entry.timer);
      entry.reject(err);
      this.#pending.delete(id);
    }
    this.#queue = [];
    this.#ready?.reject(err);
    this.#ready = null;
    this.#setState('closed');
  }

  /** Forgets the current socket: timers, handlers, requests in flight. */
  #detach(err = new Error('Connection closed')) {
    const ws = this.#ws;
    for (const name of ['connect', 'login', 'refresh', 'heartbeat', 'pong', 'pause']) this.#clear(name);
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.#ws = null;
    this.#authed = false;
    this.#authError = null;
    this.#ours.clear();
    this.#paused = false;
    for (const [id, entry] of this.#pending) {
      if (!entry.sent) continue; // still queued: goes out on the next connection
      clearTimeout(entry.timer);
      entry.reject(err);
      this.#pending.delete(id);
    }
  }

  /** Gives up on a socket that does not answer, as if it had dropped. */
  #drop(reason) {
    const ws = this.#ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(4000, reason); } catch { /* not open yet */ }
    this.#closed(1006, reason);
  }

  // --- incoming ------------------------------------------------------------

  #receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      msg = null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this.#clientError('The server sent a message that is not a JSON object with a type', null, data);
      return;
    }
    this.#clear('pong'); // anything proves the connection alive
    if (this.#ours.delete(msg.id) && msg.type !== 'error') return; // a heartbeat's pong
    if (msg.type === 'auth') {
      this.#accepted(msg);
      return;
    }
    if (msg.type === 'error' && AUTH_ERRORS.has(msg.message)) {
      this.#authError = msg.message; // the server closes with 1008 next
      return;
    }
    const rateLimited = msg.type === 'error' && msg.message === 'Rate limit exceeded';
    if (rateLimited) this.#pause();
    const entry = msg.id !== undefined ? this.#pending.get(msg.id) : undefined;
    if (entry) {
      this.#pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.type === 'error') entry.reject(Object.assign(new Error(String(msg.message)), { reply: msg }));
      else entry.resolve(msg);
    }
    if (msg.type === 'error' && (!entry || rateLimited)) {
      this.#emit('error', { message: String(msg.message), source: 'server', data: msg, rateLimited });
    } else if (!entry) {
      this.#emit('message', msg);
    }
  }

  #accepted(msg) {
    const refreshed = this.#authed;
    this.#clear('login');
    this.#authed = true;
    this.#attempt = 0;
    this.#armRefresh();
    if (!refreshed) {
      this.#setState('open');
      this.#startHeartbeat();
    }
    this.#emit('auth', { message: msg.message, refreshed });
    if (!refreshed) {
      this.#ready?.resolve();
      this.#flush();
    }
  }

  // --- outgoing ------------------------------------------------------------

  #build(type, fields) {
    if (typeof type !== 'string' || !type) throw new TypeError('type must be a non-empty string');
    return Object.assign({ type }, fields, { type });
  }

  #canSend() {
    return this.#authed && !this.#paused && this.#queue.length === 0;
  }

  #enqueue(item) {
    if (this.#canSend()) {
      this.#sendItem(item);
      return;
    }
    if (this.#queue.length >= this.#opts.maxQueue) {
      throw new Error(`Send queue full (${this.#opts.maxQueue} messages)`);
    }
    this.#queue.push(item);
  }

  #flush() {
    while (this.#queue.length && this.#authed && !this.#paused) {
      this.#sendItem(this.#queue.shift());
    }
  }

  #sendItem({ msg, entry }) {
    if (entry) entry.sent = true;
    this.#write(msg);
  }

  #write(msg) {
    this.#ws.send(JSON.stringify(msg));
  }

  #pause() {
    this.#paused = true;
    this.#timer('pause', this.#opts.rateLimitPauseMs, () => {
      this.#paused = false;
      this.#flush();
    });
  }

  #startHeartbeat() {
    const { heartbeatMs, heartbeatTimeoutMs } = this.#opts;
    if (!heartbeatMs) return;
    const beat = () => {
      const id = this.#nextId++;
      this.#ours.add(id);
      this.#write({ type: 'ping', id });
      this.#timer('heartbeat', heartbeatMs, beat);
      if (!this.#timers.pong) this.#timer('pong', heartbeatTimeoutMs, () => this.#drop('Heartbeat timeout'));
    };
    this.#timer('heartbeat', heartbeatMs, beat);
  }

  /** Schedules the next refresh from the current token's `exp`. */
  #armRefresh(delayMs) {
    if (delayMs === undefined) {
      const exp = tokenExpiry(this.#token);
      if (exp === null) return;
      const left = exp - Date.now();
      delayMs = Math.max(left - this.#opts.refreshBeforeMs, left / 2);
    }
    const gen = this.#gen;
    // setTimeout takes at most 2^31-1 ms; a later refresh re-arms.
    const capped = Math.min(Math.max(delayMs, 0), 2 ** 31 - 1);
    this.#timer('refresh', capped, () => capped < delayMs ? this.#armRefresh(delayMs - capped) : this.#refresh(gen));
  }

  async #refresh(gen) {
    let token;
    try {
      token = await this.#opts.getToken();
    } catch (err) {
      if (gen !== this.#gen || !this.#authed) return;
      this.#clientError(`Could not get a token to refresh: ${err?.message ?? err}`, err);
      const left = (tokenExpiry(this.#token) ?? 0) - Date.now();
      if (left > 2000) this.#armRefresh(left / 2);
      return;
    }
    if (gen !== this.#gen || !this.#authed) return;
    if (typeof token !== 'string' || !token || token === this.#token) {
      this.#clientError('getToken gave no new token: the current one will expire');
      return;
    }
    this.#token = token;
    this.#write({ type: 'login', token, id: this.#nextId++ });
  }

  // --- small helpers -------------------------------------------------------

  #timer(name, ms, fn) {
    clearTimeout(this.#timers[name]);
    this.#timers[name] = setTimeout(fn, ms);
  }

  #clear(name) {
    clearTimeout(this.#timers[name]);
    delete this.#timers[name];
  }

  #setState(state, extra = {}) {
    if (state === this.#state && state !== 'reconnecting') return;
    const previous = this.#state;
    this.#state = state;
    this.#emit('state', { state, previous, ...extra });
  }

  #clientError(message, error = null, data = undefined) {
    this.#emit('error', { message, source: 'client', error, data });
  }

  #emit(type, detail) {
    this.dispatchEvent(new DetailEvent(type, { detail }));
  }
}
