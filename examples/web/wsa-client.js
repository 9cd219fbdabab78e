/**
 * @file wsa-client.js: a browser client for libwsa's authenticated
 * WebSocket protocol (PROTOCOL.md, wsa(7)). An ES module without
 * dependencies or a build step; it also runs under Node.js with a
 * WebSocket implementation passed in the options.
 *
 * What it does for its user:
 * - logs in first on every connection, with a token from `getToken()`, and
 *   waits for the server's verdict before anything else is sent;
 * - refreshes the token on the live connection before it expires, timed
 *   from when the token was received and its lifetime (`exp - iat`), not
 *   from the local clock, and never more often than `minRefreshMs`;
 * - holds messages sent while it is not logged in (at most `maxQueue`) and
 *   sends them, in order, once it is, paced to the server's rate limit
 *   (`rate`); a message the server refuses with "Rate limit exceeded" is
 *   held and sent again, in its place;
 * - tells the app what became of each message `send()` took: `queued`,
 *   `sent` (written to a logged-in connection), or `undelivered` (dropped
 *   by `close()`, by the end of the client, or on a connection lost before
 *   the server answered it or anything sent after it) — none is lost
 *   silently;
 * - matches replies to requests by `id`;
 * - sends a `ping` every `heartbeatMs` and drops a connection that stays
 *   silent `heartbeatTimeoutMs` longer;
 * - reconnects after an abnormal close, with exponential backoff and
 *   jitter, and logs in again; the backoff restarts only after a
 *   connection stayed logged in `reconnect.stableMs`; after
 *   `reconnect.unreachableAfter` failures in a row the state is
 *   'unreachable' (retries go on at the cap); never reconnects after
 *   `close()`, nor after the server refused the login;
 * - keeps the rooms of `join(room)` (until `leave(room)`) across
 *   reconnects (and `close()`), for a host that speaks PROTOCOL.md
 *   section 6.1 (libwsa's topic history, as chat-room --history N): it
 *   follows each room's position (the highest `offset` of the current
 *   `epoch`, from its `chat`s and `joined`), joins again after every
 *   login, ahead of what waits, with `since` that position, so that the
 *   server sends what was missed, and drops a message whose offset is
 *   at or before the position in the same epoch: within the server's
 *   history window, a room's messages come once each, in order. A
 *   `recovery` event says whether the rejoin recovered everything
 *   (`recovered` false: the history no longer held it, or the room's
 *   epoch changed; the app's view may have a gap there). With a host
 *   without history, rooms are still joined again, without `since`.
 *
 * The client owns the `id` member of what it sends: `send()` and
 * `request()` set it (a caller's `id` is replaced), so that a reply or a
 * refusal names the message. Replies to `send()` messages (an echo, say)
 * carry that id.
 *
 * @example
 * import { WsaClient } from './wsa-client.js';
 * const client = new WsaClient('wss://example.org/ws/chat', {
 *   getToken: async () => (await fetch('/my/token')).text(),
 * });
 * client.on('message', (msg) => console.log(msg));
 * client.on('undelivered', ({ id, reason }) => console.log(id, 'lost:', reason));
 * await client.connect();
 * const id = client.send('chat', { message: 'Hello!' });
 * const pong = await client.request('ping');
 * // Rooms (chat-room): joined again after each reconnect, nothing missed.
 * client.join('lobby');
 * client.on('recovery', ({ room, recovered }) => recovered || console.log(room, 'may have a gap'));
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

/**
 * Ids of messages whose replies are not the user's (heartbeat pings,
 * requests that timed out) are remembered up to this many; past it the
 * oldest is forgotten, and a reply to it, should one still come, is passed
 * on as a `message`.
 */
const MAX_IGNORED_IDS = 256;

/**
 * Messages written and not yet answered (by a reply to them or to
 * something written after them) are tracked up to this many; past it the
 * oldest is taken as delivered.
 */
const MAX_IN_FLIGHT = 1000;

/** CustomEvent, or what stands for it where there is none (Node.js 18). */
const DetailEvent = globalThis.CustomEvent ?? class extends Event {
  constructor(type, init) { super(type); this.detail = init?.detail; }
};

/** A clock that the user's setting of the date does not move (ms). */
const monotonic = () => globalThis.performance.now();

/**
 * The default options of {@link WsaClient}.
 * @type {Readonly<WsaClientOptions>}
 */
export const DEFAULTS = Object.freeze({
  getToken: null,
  refreshBeforeMs: 60_000,
  minRefreshMs: 10_000,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  heartbeatMs: 25_000,
  heartbeatTimeoutMs: 10_000,
  maxQueue: 100,
  rate: Object.freeze({ perSecond: 16, burst: 40 }),
  rateLimitPauseMs: 1_000,
  reconnect: Object.freeze({
    initialMs: 500, maxMs: 30_000, factor: 2, jitter: 'full', maxAttempts: Infinity,
    stableMs: 10_000, unreachableAfter: 5,
  }),
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
 *   token expires, or at half its remaining life when that is later. When
 *   it expires is counted from the moment `getToken` gave it: its lifetime
 *   is `exp - iat` (read from the JWT payload, unverified), so a local
 *   clock hours off does not matter; a token without `iat` is timed by
 *   `exp` against the local clock. A token without `exp` is not refreshed.
 * @property {number} [minRefreshMs=10000] The least time between two
 *   logins on one connection: a token that seems to expire sooner is
 *   refreshed no earlier (and if it does expire, the server closes and the
 *   client logs in again, with backoff).
 * @property {number} [requestTimeoutMs=10000] Default timeout of
 *   {@link WsaClient#request}, and how long the server has to answer a login.
 * @property {number} [connectTimeoutMs=10000] How long the WebSocket may
 *   take to open.
 * @property {number} [heartbeatMs=25000] Send a ping this often once logged
 *   in; 0 turns the heartbeat off.
 * @property {number} [heartbeatTimeoutMs=10000] A connection from which
 *   nothing arrives this long after a ping is dropped (and reconnected).
 * @property {number} [maxQueue=100] Messages held while not logged in (or
 *   waiting for their turn under `rate`); beyond, `send` throws and
 *   `request` rejects. Messages the server refused and that go out again
 *   do not count against it, nor what the client sends of its own (joins
 *   of rooms, heartbeats, refreshes).
 * @property {false|{perSecond?: number, burst?: number}} [rate] Pacing of
 *   everything written after a login (pings and refreshes included):
 *   `burst` at once, then `perSecond`. The default stays under libwsa's
 *   default limit (20 a second, a burst of 50) with room for the
 *   heartbeat; a host with a lower limit wants a lower rate here. After a
 *   "Rate limit exceeded" the rate is halved for the rest of the
 *   connection. Order holds while the pace is within the server's limit;
 *   under a lower limit, a message written behind a refused one may be
 *   handled before the refused one goes again. `false`: no pacing.
 * @property {number} [rateLimitPauseMs=1000] After "Rate limit exceeded",
 *   hold outgoing messages this long.
 * @property {false|{initialMs?: number, maxMs?: number, factor?: number,
 *   jitter?: 'full'|'equal'|'none', maxAttempts?: number, stableMs?: number,
 *   unreachableAfter?: number}} [reconnect]
 *   Backoff before reconnect attempt n (from 0): `min(maxMs, initialMs *
 *   factor ** n)`, then with 'full' jitter a random delay up to it, with
 *   'equal' jitter half of it plus a random delay up to the other half.
 *   n counts the failures in a row: connections that did not open, were
 *   not logged in, or closed before they had stayed logged in `stableMs`.
 *   After `unreachableAfter` of them the state is 'unreachable' instead of
 *   'reconnecting'; it goes on trying. `false`: never reconnect.
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

const isNumber = (x) => typeof x === 'number' && Number.isFinite(x);

/**
 * When a token received at `receivedAt` (monotonic ms) expires, on the
 * monotonic clock, or null when it has no `exp`: its lifetime `exp - iat`
 * from when it came, not `exp` against a local clock that may be off.
 */
function tokenDeadline(token, receivedAt) {
  const claims = tokenClaims(token);
  if (!isNumber(claims?.exp)) return null;
  const life = isNumber(claims.iat) ? (claims.exp - claims.iat) * 1000 : claims.exp * 1000 - Date.now();
  return receivedAt + life;
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
 *   after `attempt` failures in a row), 'unreachable' (the same, after
 *   `reconnect.unreachableAfter` failures in a row), 'closed';
 * - `auth` `{message, refreshed}`: a login (or a refresh) was accepted;
 * - `authfailed` `{message, code}`: the server refused the login; the
 *   client is closed and will not reconnect;
 * - `queued` `{id, message, reason?}`: a message of `send()` (but for
 *   those with `queue: false`) waits: not
 *   logged in, its turn under the rate, or (with `reason` "Rate limit
 *   exceeded") refused by the server and held to be sent again;
 * - `sent` `{id, message}`: it was written to a logged-in connection;
 * - `undelivered` `{id, message, reason, written}`: it will not be sent:
 *   `close()` or the end of the client discarded it (`written` false), or
 *   the connection was lost after it was written and before the server
 *   answered it or anything after it (`written` true: the server may or
 *   may not have had it); the client does not send it again;
 * - `message`: every server message that is neither an error nor a reply
 *   to a request (the parsed object);
 * - `error` `{message, source, data?, error?}`: `source` 'server' for an
 *   error message that is not a reply to a request, and for every "Rate
 *   limit exceeded" (then `rateLimited` is true); 'client' for what went
 *   wrong here (a token that could not be fetched, a reply that is not
 *   JSON...);
 * - `close` `{code, reason, willReconnect, delayMs?}`: a connection ended;
 * - `recovery` `{room, recovered, offset, epoch, previous}`: the server
 *   answered a rejoin of a room of `join()` from `previous` (`{offset,
 *   epoch}`, the last position seen): `recovered` true when every message
 *   after it came (they came, as `message`s, before this event); false
 *   when some were lost (beyond the history, expired, or a new epoch), so
 *   the app's view has a gap after `previous`. `offset`/`epoch`: the
 *   room's position now. A message of a new epoch outside a rejoin (the
 *   room's history was lost while connected) raises it too, recovered
 *   false, before that message.
 *
 * `queued`, `sent` and `undelivered` are dispatched in a microtask, after
 * the `send()` that caused them has returned the message's id.
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
  #tokenDeadline = null; // monotonic ms at which #token expires
  #lastLogin = 0; // monotonic ms of the last login written
  #gen = 0; // bumped per connection attempt: stale callbacks check it
  #attempt = 0; // failures in a row
  #nextId = 1;
  #queue = []; // {msg, entry?, user?} not yet sent, in id order
  #inFlight = []; // {msg, entry?, user?, kind} written on this connection, unanswered
  #pending = new Map(); // id -> {resolve, reject, timer, sent}
  #timers = {}; // connect, login, reconnect, refresh, heartbeat, pong, pause, pace, stable
  #ours = new Set(); // ids whose replies are not the user's: pings, timed-out requests
  #paused = false; // after "Rate limit exceeded"
  #bucket = null; // {tokens, at, perSecond, burst} of the pacing
  #later = []; // message events waiting for their microtask
  #rooms = new Map(); // room -> {offset, epoch, joining}: join() remembered, its last position
  #joinIds = new Map(); // id of a join written on this connection -> room
  #ready = null; // {promise, resolve, reject} of connect()

  /**
   * @param {string} url The route's URL, `ws://` or `wss://`.
   * @param {WsaClientOptions} options `getToken` is required.
   */
  constructor(url, options) {
    super();
    this.#url = url;
    this.#opts = { ...DEFAULTS, ...options,
      reconnect: options?.reconnect === false ? false : { ...DEFAULTS.reconnect, ...options?.reconnect },
      rate: options?.rate === false ? false : { ...DEFAULTS.rate, ...options?.rate } };
    this.#opts.WebSocket ??= globalThis.WebSocket;
    if (typeof this.#opts.getToken !== 'function') throw new TypeError('options.getToken must be a function');
    if (typeof this.#opts.WebSocket !== 'function') throw new TypeError('no WebSocket implementation');
  }

  /**
   * The current state: 'connecting', 'authenticating', 'open',
   * 'reconnecting', 'unreachable' or 'closed'.
   */
  get state() { return this.#state; }

  /** How many messages wait to be sent. */
  get queued() { return this.#queue.length; }

  /**
   * The rooms of {@link WsaClient#join}, each with the last position seen
   * in it: `{offset, epoch}` (both null before the first).
   * @returns {Map<string, {offset: number|null, epoch: string|null}>} a copy
   */
  get rooms() {
    return new Map([...this.#rooms].map(([room, { offset, epoch }]) => [room, { offset, epoch }]));
  }

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
   * reconnect; pending requests are rejected, and each message still
   * queued is discarded with an `undelivered` event. Messages already
   * written go out before the close frame. Does nothing when closed.
   * @param {number} [code=1000] 1000 or 3000-4999
   * @param {string} [reason='']
   */
  close(code = 1000, reason = '') {
    if (!this.#wanted && !this.#ws) return;
    this.#wanted = false;
    const ws = this.#ws;
    const err = new Error('Closed by the client');
    this.#detach(err, true);
    if (ws) {
      try { ws.close(code, reason); } catch { ws.close(); } // a code the browser refuses
      this.#emit('close', { code, reason, willReconnect: false });
    }
    this.#stop(err);
  }

  /**
   * Sends a message `{type, ...fields, id}` without waiting for an answer.
   * When the client is not logged in, or the message must wait for its
   * turn under the rate, it is queued and sent in order later. Its fate is
   * told by the events `queued`, `sent` and `undelivered`, which name it by
   * the id returned.
   * @param {string} type
   * @param {object} [fields]
   * @param {{queue?: boolean}} [options] `queue: false`: drop the message
   *   rather than queue it (for what is stale later, such as "typing"); no
   *   event names such a message.
   * @returns {number|null} the message's `id`; null when dropped because
   *   of `queue: false`
   * @throws {Error} when the queue already holds `maxQueue` messages
   */
  send(type, fields = {}, { queue = true } = {}) {
    const msg = this.#build(type, fields);
    if (!queue && !this.#canSend()) return null;
    msg.id = this.#nextId++;
    this.#enqueue({ msg, user: queue });
    return msg.id;
  }

  /**
   * Sends `{type, ...fields, id}` with a fresh `id` and waits for the reply
   * that carries the same `id`. A request the server refuses with "Rate
   * limit exceeded" is held and sent again, like a message of `send()`.
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
        if (entry.sent) this.#ignore(id); // its late reply is dropped
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

  /**
   * Joins a room (a topic of PROTOCOL.md section 6) and stays in it: the
   * client sends `{type:'join', room}` now or at the login, and again after
   * every reconnect, then with `since` = the last position it saw in the
   * room, so that the server sends what was missed (section 6.1). The
   * rooms outlast `close()`: the next `connect()` joins them again too.
   * Does nothing for a room already joined. A refusal of the join (an
   * error reply, such as "Too many rooms") forgets the room.
   * @param {string} room
   */
  join(room) {
    if (typeof room !== 'string' || !room) throw new TypeError('room must be a non-empty string');
    if (this.#rooms.has(room)) return;
    this.#rooms.set(room, { offset: null, epoch: null, joining: false });
    if (this.#authed) this.#enqueue(this.#joinItem(room));
  }

  /**
   * Leaves a room of {@link WsaClient#join} and forgets its position: a
   * `{type:'leave', room}` when the join was sent on this connection.
   * @param {string} room
   */
  leave(room) {
    if (!this.#rooms.delete(room)) return;
    const i = this.#queue.findIndex((q) => q.kind === 'join' && q.msg.room === room);
    if (i >= 0) { // its join has not gone out: nothing to undo
      this.#queue.splice(i, 1);
      return;
    }
    if (this.#authed) this.#enqueue({ msg: { type: 'leave', room, id: this.#nextId++ }, kind: 'leave' });
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
    this.#setToken(token);
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
      this.#lastLogin = monotonic();
      this.#ws.send(JSON.stringify({ type: 'login', token, id: this.#nextId++ }));
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
    const attempt = this.#attempt; // failures in a row, this one included
    this.#setState(attempt >= r.unreachableAfter ? 'unreachable' : 'reconnecting', { delayMs, attempt });
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
    for (const item of this.#queue) {
      if (item.user) this.#emitLater('undelivered', { id: item.msg.id, message: item.msg, reason: err.message, written: false });
    }
    this.#queue = [];
    this.#ready?.reject(err);
    this.#ready = null;
    this.#setState('closed');
  }

  /**
   * Forgets the current socket: timers, handlers, requests in flight.
   * Messages of `send()` written and not answered are reported
   * undelivered, unless the client closes (`closing`): then they go out
   * ahead of the close frame.
   */
  #detach(err = new Error('Connection closed'), closing = false) {
    const ws = this.#ws;
    for (const name of ['connect', 'login', 'refresh', 'heartbeat', 'pong', 'pause', 'pace', 'stable']) this.#clear(name);
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.#ws = null;
    this.#authed = false;
    this.#authError = null;
    this.#ours.clear();
    this.#joinIds.clear();
    for (const pos of this.#rooms.values()) pos.joining = false;
    this.#paused = false;
    this.#bucket = null;
    const reason = `${err.message} before the server answered`;
    for (const item of this.#inFlight) {
      if (item.user && !closing) this.#emitLater('undelivered', { id: item.msg.id, message: item.msg, reason, written: true });
    }
    this.#inFlight = [];
    // Refreshes and heartbeats that waited for their turn belong to this connection.
    this.#queue = this.#queue.filter((item) => !item.kind);
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
    const rateLimited = msg.type === 'error' && msg.message === 'Rate limit exceeded';
    const again = this.#answered(msg.id, rateLimited);
    if (rateLimited) this.#pause();
    if (this.#ours.delete(msg.id) && msg.type !== 'error') return; // a heartbeat's pong
    if (msg.type === 'auth') {
      this.#accepted(msg);
      return;
    }
    if (msg.type === 'error' && AUTH_ERRORS.has(msg.message)) {
      this.#authError = msg.message; // the server closes with 1008 next
      return;
    }
    const entry = !again && msg.id !== undefined ? this.#pending.get(msg.id) : undefined;
    if (entry) {
      this.#pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.type === 'error') entry.reject(Object.assign(new Error(String(msg.message)), { reply: msg }));
      else entry.resolve(msg);
    }
    if (msg.type === 'error' && !again && this.#joinIds.has(msg.id)) this.#rooms.delete(this.#joinIds.get(msg.id));
    if (msg.type === 'error' && (!entry || rateLimited)) {
      this.#emit('error', { message: String(msg.message), source: 'server', data: msg, rateLimited });
    } else if (!entry && this.#position(msg)) {
      this.#emit('message', msg);
    }
  }

  /**
   * Follows the position of the rooms of `join()` (PROTOCOL.md section
   * 6.1): a message carrying `room`, an integer `offset` and an `epoch` at
   * or before the last one seen in that room and epoch was had already
   * (a recovery overlapping what came live): false, it is dropped. A
   * `joined` moves the position to the room's, and answers a join from a
   * position with a `recovery` event; so does a message of another epoch
   * outside a join (the room's history was lost meanwhile).
   */
  #position(msg) {
    const pos = typeof msg.room === 'string' ? this.#rooms.get(msg.room) : undefined;
    if (!pos || !Number.isSafeInteger(msg.offset) || typeof msg.epoch !== 'string') return true;
    if (msg.type === 'joined') {
      const since = pos.joining;
      pos.joining = false;
      const previous = since && since.epoch !== null ? since : null;
      if (msg.epoch !== pos.epoch || pos.offset === null || msg.offset > pos.offset) {
        pos.offset = msg.offset;
        pos.epoch = msg.epoch;
      }
      if (previous) {
        const recovered = msg.recovered === true && msg.epoch === previous.epoch;
        this.#emit('recovery', { room: msg.room, recovered, offset: pos.offset, epoch: pos.epoch, previous });
      }
      return true;
    }
    if (msg.epoch === pos.epoch && pos.offset !== null && msg.offset <= pos.offset) return false;
    const lost = pos.epoch !== null && msg.epoch !== pos.epoch && !pos.joining;
    const previous = lost ? { offset: pos.offset, epoch: pos.epoch } : null;
    pos.offset = msg.offset;
    pos.epoch = msg.epoch;
    if (lost) this.#emit('recovery', { room: msg.room, recovered: false, offset: msg.offset, epoch: msg.epoch, previous });
    return true;
  }

  /** A join of a room, from its last position when there is one. */
  #joinItem(room) {
    const pos = this.#rooms.get(room);
    const msg = { type: 'join', room, id: this.#nextId++ };
    if (pos.epoch !== null) msg.since = { offset: pos.offset, epoch: pos.epoch };
    pos.joining = { offset: pos.offset, epoch: pos.epoch };
    this.#joinIds.set(msg.id, room);
    return { msg, kind: 'join' };
  }

  /**
   * A reply carrying `id` arrived. The server handles a connection's
   * messages in order, so what was written before that message has been
   * handled too; the message itself was, unless it was `refused` for the
   * rate: then it goes back into the queue, in its place, to be sent
   * again. Returns true when it did.
   */
  #answered(id, refused) {
    if (id === undefined) return false;
    const i = this.#inFlight.findIndex((item) => item.msg.id === id);
    if (i < 0) return false;
    const item = this.#inFlight[i];
    this.#inFlight.splice(0, i + 1);
    if (!refused || item.kind === 'ping') return false;
    if (item.entry) item.entry.sent = false;
    const at = item.kind ? 0 : this.#queue.findIndex((q) => !q.kind && q.msg.id > id);
    this.#queue.splice(at < 0 ? this.#queue.length : at, 0, item);
    if (item.user) this.#emitLater('queued', { id, message: item.msg, reason: 'Rate limit exceeded' });
    return true;
  }

  #accepted(msg) {
    const refreshed = this.#authed;
    this.#clear('login');
    this.#authed = true;
    this.#armRefresh();
    if (!refreshed) {
      const { perSecond, burst } = this.#opts.rate || {};
      this.#bucket = this.#opts.rate ? { tokens: burst, at: monotonic(), perSecond, burst } : null;
      // The backoff restarts once this connection has lasted.
      if (this.#opts.reconnect) this.#timer('stable', this.#opts.reconnect.stableMs, () => { this.#attempt = 0; });
      this.#setState('open');
      this.#startHeartbeat();
    }
    this.#emit('auth', { message: msg.message, refreshed });
    if (!refreshed) {
      // The rooms first, so that what waits for them finds them joined.
      this.#queue.unshift(...[...this.#rooms.keys()].map((room) => this.#joinItem(room)));
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
    return this.#authed && !this.#paused && this.#queue.length === 0 && this.#paceWait() === 0;
  }

  #enqueue(item) {
    if (this.#canSend()) {
      this.#sendItem(item);
      return;
    }
    if (this.#queue.filter((q) => !q.kind).length >= this.#opts.maxQueue) {
      throw new Error(`Send queue full (${this.#opts.maxQueue} messages)`);
    }
    this.#queue.push(item);
    if (item.user) this.#emitLater('queued', { id: item.msg.id, message: item.msg });
    this.#flush();
  }

  /** Writes what waits, as far as the rate allows; a timer does the rest. */
  #flush() {
    this.#clear('pace');
    while (this.#queue.length && this.#authed && !this.#paused) {
      const wait = this.#paceWait();
      if (wait > 0) {
        this.#timer('pace', wait, () => this.#flush());
        return;
      }
      this.#sendItem(this.#queue.shift());
    }
  }

  #sendItem(item) {
    if (item.entry) item.entry.sent = true;
    if (item.kind === 'login') this.#lastLogin = monotonic();
    this.#write(item.msg, item);
    if (item.user) this.#emitLater('sent', { id: item.msg.id, message: item.msg });
  }

  /** Writes on the logged-in connection, counted against the rate. */
  #write(msg, item) {
    this.#ws.send(JSON.stringify(msg));
    if (this.#bucket) this.#bucket.tokens -= 1;
    this.#inFlight.push(item);
    if (this.#inFlight.length > MAX_IN_FLIGHT) this.#inFlight.shift();
  }

  /** Milliseconds until the rate lets one more message go; 0: now. */
  #paceWait() {
    const b = this.#bucket;
    if (!b) return 0;
    const now = monotonic();
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) * b.perSecond) / 1000);
    b.at = now;
    return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) * 1000) / b.perSecond);
  }

  /** "Rate limit exceeded": hold everything a while, then go slower. */
  #pause() {
    if (this.#paused) return;
    this.#paused = true;
    if (this.#bucket) {
      this.#bucket.tokens = Math.min(this.#bucket.tokens, 0);
      this.#bucket.perSecond = Math.max(1, this.#bucket.perSecond / 2);
      this.#bucket.burst = Math.max(1, Math.floor(this.#bucket.burst / 2));
    }
    this.#timer('pause', this.#opts.rateLimitPauseMs, () => {
      this.#paused = false;
      this.#flush();
    });
  }

  /** Heartbeats and refreshes go ahead of what waits, still paced. */
  #control(msg, kind) {
    const item = { msg, kind };
    if (this.#paused || this.#paceWait() > 0) {
      const at = this.#queue.findIndex((q) => !q.kind);
      this.#queue.splice(at < 0 ? this.#queue.length : at, 0, item);
      this.#flush();
    } else {
      this.#sendItem(item);
    }
  }

  #startHeartbeat() {
    const { heartbeatMs, heartbeatTimeoutMs } = this.#opts;
    if (!heartbeatMs) return;
    const beat = () => {
      const id = this.#nextId++;
      this.#ignore(id);
      this.#control({ type: 'ping', id }, 'ping');
      this.#timer('heartbeat', heartbeatMs, beat);
      if (!this.#timers.pong) this.#timer('pong', heartbeatTimeoutMs, () => this.#drop('Heartbeat timeout'));
    };
    this.#timer('heartbeat', heartbeatMs, beat);
  }

  #setToken(token) {
    this.#token = token;
    this.#tokenDeadline = tokenDeadline(token, monotonic());
  }

  /**
   * Schedules the next refresh: `refreshBeforeMs` before the token
   * expires, or at half its remaining life when that is later, and never
   * sooner than `minRefreshMs` after the last login. `delayMs`: at most
   * then (a retry).
   */
  #armRefresh(delayMs) {
    if (this.#tokenDeadline === null) return;
    const now = monotonic();
    if (delayMs === undefined) {
      const left = this.#tokenDeadline - now;
      delayMs = Math.max(left - this.#opts.refreshBeforeMs, left / 2);
    }
    delayMs = Math.max(delayMs, this.#lastLogin + this.#opts.minRefreshMs - now);
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
      const left = this.#tokenDeadline - monotonic();
      if (left > 2000) this.#armRefresh(left / 2);
      return;
    }
    if (gen !== this.#gen || !this.#authed) return;
    if (typeof token !== 'string' || !token || token === this.#token) {
      this.#clientError('getToken gave no new token: the current one will expire');
      return;
    }
    this.#setToken(token);
    this.#control({ type: 'login', token, id: this.#nextId++ }, 'login');
  }

  // --- small helpers -------------------------------------------------------

  /** Drops a reply to `id` when it comes; remembers a bounded number. */
  #ignore(id) {
    this.#ours.add(id);
    if (this.#ours.size > MAX_IGNORED_IDS) this.#ours.delete(this.#ours.values().next().value);
  }

  #timer(name, ms, fn) {
    clearTimeout(this.#timers[name]);
    this.#timers[name] = setTimeout(fn, ms);
  }

  #clear(name) {
    clearTimeout(this.#timers[name]);
    delete this.#timers[name];
  }

  #setState(state, extra = {}) {
    if (state === this.#state && state !== 'reconnecting' && state !== 'unreachable') return;
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

  /** Dispatches a message's event once the running call has returned. */
  #emitLater(type, detail) {
    if (!this.#later.length) {
      queueMicrotask(() => {
        const events = this.#later;
        this.#later = [];
        for (const [t, d] of events) this.#emit(t, d);
      });
    }
    this.#later.push([type, detail]);
  }
}
