/*
 * libwsa - authenticated WebSocket endpoints for C services.
 *
 * One header. Everything public is prefixed wsa_ / WSA_. No libwebsockets
 * type appears here; JSON values are jansson's json_t.
 *
 * Threads. A server runs cfg.threads event loops ("service threads"; 1
 * by default): wsa_server_run() runs the first on the calling thread and
 * starts a thread for each other. Each loop has its own listening socket
 * on the server's port, and the kernel spreads new connections among them;
 * a connection stays on its loop. Every callback about a connection (open,
 * close, message handlers, presence) and every verifier call for its
 * logins run on its service thread; a GET handler runs on the service
 * thread of the request; the log sink on any service thread, so with
 * several threads it may be called from several at once. Functions marked
 * "any thread" may be called from any thread, and wsa_server_stop() also
 * from a signal handler; wsa_conn_ functions belong to the service thread
 * of their connection (inside callbacks); the rest to the thread that owns
 * the server before wsa_server_run() starts and after it returns. What a
 * thread sends, publishes or closes through the server is carried out in
 * the order it called, on every loop.
 *
 * json_t ownership follows jansson: a message given to a handler is
 * borrowed for the duration of the call; a function that takes a
 * "const json_t *" borrows it and serialises it before returning; a
 * function ending in _new takes the caller's reference, even when it fails.
 */
#ifndef WSA_H
#define WSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wsa_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WSA_BUILDING) && defined(__GNUC__)
#define WSA_EXPORT __attribute__((visibility("default")))
#else
#define WSA_EXPORT
#endif

/*
 * Error codes: 0 is success, failures are negative and grouped by kind.
 * WSA_ERRORS(X) is the one table; X(name, value, text).
 */
#define WSA_ERRORS(X)                                                          \
	X(WSA_OK, 0, "success")                                                \
	/* -1 .. -19: use of the API and resources */                          \
	X(WSA_EINVAL, -1, "invalid argument")                                  \
	X(WSA_ENOMEM, -2, "out of memory")                                     \
	X(WSA_EEXIST, -3, "already exists")                                    \
	X(WSA_ESTATE, -5, "not allowed in the current state")                  \
	X(WSA_ECLOSED, -6, "connection is closed or closing")                  \
	X(WSA_ENOTHREAD, -8, "called from the wrong thread")                   \
	X(WSA_ELIMIT, -9, "a configured limit is reached")                     \
	/* -20 .. -39: setting up the server */                                \
	X(WSA_ELISTEN, -20, "cannot listen on the address and port")           \
	X(WSA_ELWS, -21, "libwebsockets could not create the server")          \
	X(WSA_ENOVERIFIER, -22, "no token verifier is set")                    \
	X(WSA_ETLS, -23, "TLS certificate or key is unreadable or unusable")   \
	/* -40 .. -59: keys and verifier configuration */                      \
	X(WSA_EKEY, -40, "key is empty, unreadable or unsuitable")             \
	X(WSA_EALG, -41, "algorithm not supported")                            \
	X(WSA_EKID, -42, "key id missing or repeated")                         \
	/* -60 .. -79: why a token was rejected */                             \
	X(WSA_ETOKEN_FORMAT, -60, "token is malformed")                        \
	X(WSA_ETOKEN_SIZE, -61, "token is too large")                          \
	X(WSA_ETOKEN_HEADER, -62, "token header is not acceptable")            \
	X(WSA_ETOKEN_ALG, -63, "token algorithm is not allowed")               \
	X(WSA_ETOKEN_KID, -64, "token key id names no configured key")         \
	X(WSA_ETOKEN_SIGNATURE, -65, "token signature is invalid")             \
	X(WSA_ETOKEN_EXPIRED, -66, "token has expired")                        \
	X(WSA_ETOKEN_NOT_YET_VALID, -67, "token is not yet valid")             \
	X(WSA_ETOKEN_ISSUER, -68, "token issuer is not accepted")              \
	X(WSA_ETOKEN_AUDIENCE, -69, "token audience is not accepted")          \
	X(WSA_ETOKEN_CLAIMS, -70, "token claims are invalid")                  \
	X(WSA_ETOKEN_IDENTITY, -71, "token names no user")

enum wsa_error {
#define WSA_ERROR_ENUM_(name, value, text) name = (value),
	WSA_ERRORS(WSA_ERROR_ENUM_)
#undef WSA_ERROR_ENUM_
};

/*
 * Describe an error code.
 * err: a value returned by a wsa_ function.
 * Returns a static string; "unknown error" for a value not in WSA_ERRORS.
 * Any thread. Since 0.1.
 */
WSA_EXPORT const char *wsa_strerror(int err);

/*
 * The library's version, as WSA_VERSION_NUMBER encodes it.
 * Returns (major << 16) | (minor << 8) | patch of the linked library.
 * Any thread. Since 0.1.
 */
WSA_EXPORT unsigned wsa_version(void);

/* WebSocket close codes the library uses (RFC 6455 section 7.4.1). */
enum wsa_close_code {
	WSA_CLOSE_NORMAL = 1000,
	WSA_CLOSE_GOING_AWAY = 1001,
	WSA_CLOSE_UNSUPPORTED = 1003,
	WSA_CLOSE_INVALID_PAYLOAD = 1007,
	WSA_CLOSE_POLICY = 1008,
	WSA_CLOSE_TOO_BIG = 1009,
	WSA_CLOSE_INTERNAL = 1011,
	WSA_CLOSE_TRY_AGAIN_LATER = 1013,
};

/* Log levels, as syslog numbers them. */
typedef enum wsa_log_level {
	WSA_LOG_ERR = 3,
	WSA_LOG_WARNING = 4,
	WSA_LOG_NOTICE = 5,
	WSA_LOG_INFO = 6,
	WSA_LOG_DEBUG = 7,
} wsa_log_level;

/*
 * A log sink. conn_id and route are NULL when the line is not about one
 * connection; msg is one line without a newline. Every pointer is valid
 * only during the call. Called on any service thread, several at once
 * with several threads (or on the thread in
 * wsa_server_new / wsa_server_free); must not call back into the server.
 */
typedef void (*wsa_log_fn)(wsa_log_level level, const char *conn_id,
			   const char *route, const char *msg, void *userdata);

typedef struct wsa_server wsa_server;
typedef struct wsa_route wsa_route;
typedef struct wsa_conn wsa_conn;
typedef struct wsa_auth wsa_auth;
typedef struct wsa_jwt wsa_jwt;

/* A count limit of wsa_config set to this is off. */
#define WSA_UNLIMITED 0xffffffffu

/*
 * Server configuration. Initialise with wsa_config_init(), then change the
 * fields you need; a zero in any number field but port and idle_timeout_ms
 * means "the default", and WSA_UNLIMITED turns a count limit off.
 * auth_timeout_ms bounds the time from the WebSocket's opening to an
 * accepted login, so it also bounds a verifier that does not answer;
 * handshake_timeout_ms bounds the time before it (TCP, TLS, HTTP upgrade).
 * size is the size of the program's wsa_config, which wsa_config_init()
 * records: a library newer than the header a program was built with gives
 * the fields it does not know their defaults (docs/ABI.md).
 */
typedef struct wsa_config {
	size_t size;		 /* set by wsa_config_init(); never change it */
	const char *host;	 /* IP address to listen on; "127.0.0.1" */
	int port;		 /* TCP port; 0 picks a free one */
	size_t max_message_size; /* bytes over all fragments; default 65536 */
	unsigned auth_timeout_ms;  /* to be authenticated; default 10000 */
	unsigned idle_timeout_ms;  /* close silent connections (1001); 0: off */
	unsigned drain_timeout_ms; /* stop: flush time; default 5000 */
	wsa_log_level log_level;   /* most verbose level emitted; NOTICE */
	wsa_log_fn log;		   /* NULL: one line per entry on stderr */
	void *log_userdata;
	size_t rx_buffer_size; /* bytes read at once, held per connection
				  where libwebsockets reads (TLS, deflate,
				  a host's loop); elsewhere a read's bound
				  before the login; default 1024 (128 to
				  1 MiB) */
	/* Origins a browser's upgrade may come from, e.g.
	 * "https://app.example.org", compared exactly; NULL-terminated, copied.
	 * An upgrade whose Origin is not listed, repeated or unreadable gets
	 * HTTP 403; one without Origin (not a browser) goes on to the login.
	 * NULL (the default): no check. */
	const char *const *allowed_origins;
	size_t max_queued_bytes; /* a connection with more queued for it and
				    not yet written is closed, 1008 "Send
				    queue full"; default 1 MiB */

	/* TLS: wss:// when tls_cert_file is set. PEM files, read by
	 * wsa_server_new (WSA_ETLS when unreadable or the key does not match
	 * the certificate). TLS 1.2 at least; ALPN offers http/1.1 only. */
	const char *tls_cert_file; /* certificate, then any intermediate
				      certificates of its chain */
	const char *tls_key_file;  /* unencrypted private key */

	/* Limits against hostile clients (SECURITY.md, installed in
	 * share/doc/libwsa). An upgrade beyond a
	 * connection limit gets HTTP 503. TCP connections not yet upgraded
	 * may be as many again, per server and per address; beyond that a
	 * new one is hung up at once. */
	unsigned max_connections;	      /* WebSockets at once; 10000 */
	unsigned max_connections_per_address; /* per client address (an
						 IPv6 /64); 256. Users
						 behind one NAT share it */
	unsigned rate_limit; /* messages a second per connection after the
				login; 20. Beyond: {"type":"error",
				"message":"Rate limit exceeded"}, the
				message dropped, and the connection not
				read until one more may come */
	unsigned rate_burst; /* messages taken at once above the rate; 50.
				More refusals than this in a row: closed,
				1008 */
	unsigned handshake_timeout_ms; /* accept to WebSocket; 5000, whole
					  seconds (rounded up) */
	size_t max_login_size;	       /* bytes of a message before the login is
					  accepted; 16384. Beyond: closed, 1009 */
	/* Token verifications per second per client address; 200, and
	 * verify_burst (256) at once. Logins beyond the budget wait, in
	 * order of arrival, for their turn (within the auth timeout); none
	 * fails because of it. A token at the upgrade cannot wait: it is
	 * verified at once and charged to the budget. */
	unsigned verify_rate;
	unsigned verify_burst;
	/* Failed logins per client address in a minute beyond which its
	 * logins fail unverified; off (WSA_UNLIMITED) by default: everyone
	 * behind one NAT would share the count. Turn it on only for a
	 * verifier whose tokens can be guessed (short opaque session ids);
	 * a login counts when it starts and is given back when it succeeds. */
	unsigned max_failed_logins;
	/* Connections of one identity (uid) at once, counted at login;
	 * off by default. A login beyond it is closed with 1013 "Too many
	 * connections", whatever its address. */
	unsigned max_connections_per_user;
	/* Topics one connection may be in at once; 128. wsa_conn_join()
	 * beyond it fails with WSA_ELIMIT. */
	unsigned max_topics_per_connection;
	/* Liveness: a WebSocket ping to each connection silent for
	 * ping_interval_ms (25000; WSA_UNLIMITED: no pings), and a
	 * connection that sends nothing, not even the pong, within
	 * pong_timeout_ms (10000) after it is hung up (its close handler
	 * sees 1006): a peer that vanished without a FIN must not hold its
	 * slot until TCP gives up. */
	unsigned ping_interval_ms;
	unsigned pong_timeout_ms;
	/* Service threads, each an event loop with its connections; 1 to 32,
	 * default 1. Limits, topics, users and revocation are the server's,
	 * across all of them. */
	unsigned threads;
	bool permessage_deflate; /* RFC 7692 compression, when a client offers
				    it; off by default (wsa(7) on its cost) */
	/* Count nothing (wsa_server_metrics() then reads zeros); off by
	 * default: counting costs each loop a few plain additions. */
	bool metrics_off;
	/* With TLS, the TLS 1.2 cipher suites offered, in OpenSSL's syntax;
	 * NULL: ECDHE with AES-GCM or ChaCha20-Poly1305 only (Mozilla's
	 * "intermediate" profile, no CBC). TLS 1.3 keeps OpenSSL's suites,
	 * all of them AEAD. Copied. Since 0.4. */
	const char *tls_ciphers;
	/* Fields are only ever added here, at the end, and a field's zero
	 * must mean what a program built without it expects. */
} wsa_config;

/*
 * Fill the first size bytes of a configuration with the defaults and
 * record size in cfg->size; what wsa_config_init() expands to.
 * cfg: the configuration; size: sizeof(wsa_config) of the caller's header
 * (bytes beyond the fields the library knows are zeroed).
 * Any thread. Since 0.2.
 */
WSA_EXPORT void wsa_config_init_size(wsa_config *cfg, size_t size);

/*
 * Fill a configuration with the defaults: every field is overwritten, and
 * cfg->size set. A macro, so the size is the caller's. Since 0.1.
 */
#define wsa_config_init(cfg) wsa_config_init_size((cfg), sizeof(wsa_config))

/*
 * Create a server and start listening.
 * out: receives the server on success, NULL on failure.
 * cfg: configuration, copied (strings included); NULL for the defaults.
 * Returns WSA_OK, WSA_EINVAL (out NULL, cfg->size not set by
 * wsa_config_init() or set by a newer header whose fields this library
 * does not know are not zero, port outside 0..65535, host NULL
 * or empty, log_level not a wsa_log_level, rx_buffer_size under 128 or
 * over 1 MiB, a
 * TLS certificate without a key or a key without one), WSA_ETLS (the
 * certificate or key cannot be read or do not match, or tls_ciphers names
 * no suite OpenSSL has), WSA_ELISTEN (the
 * address cannot be bound), WSA_ELWS or WSA_ENOMEM. The port is bound on
 * return, so wsa_server_port() tells the real port at once.
 * Any thread; the server then belongs to it. Since 0.1.
 */
WSA_EXPORT int wsa_server_new(wsa_server **out, const wsa_config *cfg);

/* The event loops a host may run a server on. */
typedef enum wsa_loop_kind {
	WSA_LOOP_LIBEV = 1, /* loop: a struct ev_loop * */
	WSA_LOOP_LIBUV = 2, /* loop: a uv_loop_t * */
	WSA_LOOP_GLIB = 3,  /* loop: a GMainLoop * */
} wsa_loop_kind;

/*
 * Create a server served by an event loop the host runs, with no thread
 * of the server's: connections, timers and the work of any-thread calls
 * are all served by that loop's thread as it runs. libwebsockets loads
 * its glue for the loop at run time (Debian: libwebsockets-evlib-ev,
 * -uv or -glib). Serving begins at wsa_server_start(), called on the
 * loop's thread, which from then on is the server's service thread.
 * Returns what wsa_server_new() does, and WSA_EINVAL for a NULL loop, an
 * unknown kind or cfg->threads other than 1; WSA_ELWS when the glue
 * cannot be loaded. The loop's thread. Since 0.2.
 */
WSA_EXPORT int wsa_server_new_on_loop(wsa_server **out, const wsa_config *cfg,
				      wsa_loop_kind kind, void *loop);

/*
 * The TCP port the server listens on (the real one when cfg.port was 0);
 * -1 for NULL. Any thread. Since 0.1.
 */
WSA_EXPORT int wsa_server_port(const wsa_server *srv);

/*
 * Run the server on the calling thread until wsa_server_stop().
 * Returns WSA_OK after a stop has closed every connection (or the drain
 * timeout passed), WSA_EINVAL for NULL, WSA_ENOVERIFIER when no verifier
 * was set, WSA_ESTATE when the server is running or already ran, or runs
 * on the host's loop (wsa_server_new_on_loop).
 * The calling thread runs the first loop; a thread is started for each
 * other. WSA_ENOMEM when one cannot be started (the others are stopped
 * again). Since 0.1.
 */
WSA_EXPORT int wsa_server_run(wsa_server *srv);

/*
 * Start serving and return at once. A server of its own loops runs each
 * on a thread it starts (the owning thread goes on with its work; end
 * with wsa_server_stop() and wsa_server_wait(), or wsa_server_free()). A
 * server on the host's loop is served by that loop from here on, on its
 * thread: call this on it.
 * Returns WSA_OK, WSA_EINVAL for NULL, WSA_ENOVERIFIER when no verifier
 * was set, WSA_ESTATE when it was started or ran already, WSA_ENOMEM when
 * a thread cannot be started (the others are stopped and joined).
 * The owning thread. Since 0.2.
 */
WSA_EXPORT int wsa_server_start(wsa_server *srv);

/*
 * Wait for the threads of a server started with wsa_server_start() to
 * end, which they do once a stop has drained their connections.
 * Returns WSA_OK, WSA_EINVAL for NULL, WSA_ESTATE when it was not
 * started or runs on the host's loop. The owning thread. Since 0.2.
 */
WSA_EXPORT int wsa_server_wait(wsa_server *srv);

/*
 * Ask a running server to stop: every connection gets the messages queued
 * for it, then a close with 1001 "Server stopping"; then wsa_server_run()
 * returns, the threads of wsa_server_start() end, and the stopped
 * handler runs. A stop before the start makes the server stop as soon as
 * it starts. On the host's loop the loop goes on with its own work.
 * Any thread, and async-signal-safe. Since 0.1.
 */
WSA_EXPORT void wsa_server_stop(wsa_server *srv);

/*
 * Called once after a stop, when every connection has closed (or the
 * drain timeout passed), on the thread of the last loop to drain: for a
 * server on the host's loop, that loop's thread. It must not free the
 * server; it may stop the host's loop, or arrange for the free.
 */
typedef void (*wsa_stopped_fn)(wsa_server *srv, void *userdata);

/*
 * Set the stopped handler. Returns WSA_OK, WSA_EINVAL for NULL srv,
 * WSA_ESTATE once started. The owning thread, before the start. Since 0.2.
 */
WSA_EXPORT int wsa_server_on_stopped(wsa_server *srv, wsa_stopped_fn fn,
				     void *userdata);

/*
 * Free a server. One still running on threads of its own (after
 * wsa_server_start()) is stopped and waited for first. Connections still
 * open are closed and their close handlers run during this call. Logins
 * a verifier has not answered are dropped: every wsa_auth of the server
 * must be answered before this call, never after. NULL is ignored.
 * On the host's loop: call it on the loop's thread, not from within a
 * handler of this server; the loop stays usable. With libuv, lws closes
 * its handles as the loop runs on, and the server's memory is released
 * then: run the loop (uv_run) until it returns before uv_loop_close().
 * Not while wsa_server_run() runs; the owning thread. Since 0.1.
 */
WSA_EXPORT void wsa_server_free(wsa_server *srv);

/*
 * Queue a JSON object for the connection with id conn_id, from any thread.
 * msg: borrowed and serialised before the call returns (it must not change
 * during the call). The message is written once its loop takes
 * the call, in the order calls were made; it is dropped if by then the
 * connection is gone, closing, or not authenticated.
 * Returns WSA_OK (queued), WSA_EINVAL (not a connection id, or msg not an
 * object), WSA_ENOMEM, WSA_ESTATE (the server is stopping).
 * Any thread. Since 0.1.
 */
WSA_EXPORT int wsa_server_send(wsa_server *srv, const char *conn_id,
			       const json_t *msg);

/* As wsa_server_send(), but takes the reference to msg, even on failure.
 * Any thread. Since 0.1. */
WSA_EXPORT int wsa_server_send_new(wsa_server *srv, const char *conn_id,
				   json_t *msg);

/*
 * Close the connection with id conn_id, from any thread, after what is
 * queued for it: as wsa_conn_close() does, once its loop takes
 * the call (nothing happens if the connection is gone by then).
 * code, reason: as for wsa_conn_close().
 * Returns WSA_OK (queued), WSA_EINVAL, WSA_ENOMEM, WSA_ESTATE.
 * Any thread. Since 0.1.
 */
WSA_EXPORT int wsa_server_close(wsa_server *srv, const char *conn_id, int code,
				const char *reason);

/*
 * Queue a JSON object for every authenticated connection in a topic (see
 * wsa_conn_join()), but the one with id except_conn_id when that is not
 * NULL, from any thread. msg is borrowed, serialised once before the call
 * returns; each member's copy is queued when their loop takes the
 * call, in the order calls were made. Every copy is the same: none carries
 * the "id" of a message being handled, not even the sender's.
 * Returns WSA_OK (queued), WSA_EINVAL (topic empty or over 1024 bytes, msg
 * not an object, except_conn_id not an id), WSA_ENOMEM, WSA_ESTATE.
 * Any thread. Since 0.1.
 */
WSA_EXPORT int wsa_server_publish(wsa_server *srv, const char *topic,
				  const json_t *msg,
				  const char *except_conn_id);

/* As wsa_server_publish(), to every authenticated connection of the route
 * with this path. Any thread. Since 0.1. */
WSA_EXPORT int wsa_server_broadcast(wsa_server *srv, const char *path,
				    const json_t *msg);

/* As wsa_server_publish(), to every authenticated connection whose
 * identity is uid. Any thread. Since 0.1. */
WSA_EXPORT int wsa_server_send_uid(wsa_server *srv, const char *uid,
				   const json_t *msg);

/*
 * The server's counters, gauges and histograms now, merged over its
 * loops: a new JSON object keyed by metric name (wsa(7) lists them).
 * Read without stopping any loop; NULL for NULL or when memory is short.
 * Any thread. Since 0.2.
 */
WSA_EXPORT json_t *wsa_server_metrics(wsa_server *srv);

/*
 * The same as Prometheus' text exposition (format 0.0.4): a new
 * NUL-terminated string to free(), its length in *len (len may be NULL);
 * NULL for NULL or when memory is short. Any thread. Since 0.2.
 */
WSA_EXPORT char *wsa_server_metrics_text(wsa_server *srv, size_t *len);

/*
 * The host's check of a request for the metrics path: peer is the
 * client's address, authorization its Authorization header (NULL when
 * absent). Return 0 to serve the metrics, or an HTTP status (401, 403)
 * to refuse. Called on the service thread of the request.
 */
typedef int (*wsa_metrics_check_fn)(const char *peer, const char *authorization,
				    void *userdata);

/*
 * Serve wsa_server_metrics_text() at GET path on the server's port. A
 * request with an Origin header is refused (403) unless that origin is
 * in cfg.allowed_origins, so a page of another site cannot read it;
 * check (may be NULL) decides then. Returns WSA_OK, WSA_EINVAL (path not
 * starting with "/"), WSA_EEXIST (path served already), WSA_ESTATE
 * (started), WSA_ENOMEM. The owning thread, before the start. Since 0.2.
 */
WSA_EXPORT int wsa_server_metrics_path(wsa_server *srv, const char *path,
				       wsa_metrics_check_fn check,
				       void *userdata);

/* An answer made by a wsa_http_fn. The library allocates it; size is
 * the size of the library's, so a handler built against a newer header
 * tests a field added later with WSA_HTTP_REPLY_HAS() before setting it.
 * Fields are only ever added at the end. */
typedef struct wsa_http_reply {
	size_t size;		  /* set by the library; never change it */
	int status;		  /* HTTP status; 0: 200 */
	const char *content_type; /* static string; NULL: application/json */
	char *body;		  /* malloc'd, taken by the library; or NULL */
	size_t len;		  /* bytes of body */
} wsa_http_reply;

/* Whether the library's wsa_http_reply has field. */
#define WSA_HTTP_REPLY_HAS(reply, field)                                       \
	((reply)->size >=                                                      \
	 offsetof(wsa_http_reply, field) + sizeof((reply)->field))

/* Make the answer to a GET (or HEAD: the same answer, its body not
 * sent) of a path. args: the query's arguments
 * ("name=value", as libwebsockets decodes them: %-escapes and '+'
 * resolved), NULL-terminated, at most 32. reply: zeroed but for size;
 * fill it. Runs on their connection's service thread. */
typedef void (*wsa_http_fn)(const char *const *args, wsa_http_reply *reply,
			    void *userdata);

/*
 * Serve a fixed body at a path for plain GET and HEAD requests (a page, a
 * script), over the port of the WebSockets: HTTP 200 with content_type,
 * "X-Content-Type-Options: nosniff", "Cache-Control: no-cache",
 * "Referrer-Policy: no-referrer" and "Content-Security-Policy:
 * frame-ancestors 'none'" (wsa_server_http_header() changes them). HEAD
 * gets the headers alone; another method 405 with "Allow: GET, HEAD";
 * other paths 404.
 * path: exact ("/", "/app.js"), not a route's; copied. content_type:
 * copied. body: len bytes, copied.
 * Returns WSA_OK, WSA_EINVAL, WSA_EEXIST (path served already),
 * WSA_ESTATE (running), WSA_ENOMEM. Before wsa_server_run(). Since 0.2.
 */
WSA_EXPORT int wsa_server_http_file(wsa_server *srv, const char *path,
				    const char *content_type, const void *body,
				    size_t len);

/*
 * Answer GET and HEAD requests for a path with a function, the way
 * wsa_server_http_file() does with a fixed body. Returns the same codes
 * as wsa_server_http_file().
 * Before wsa_server_run(). Since 0.2.
 */
WSA_EXPORT int wsa_server_http_get(wsa_server *srv, const char *path,
				   wsa_http_fn fn, void *userdata);

/*
 * Set a header of every answer at a path served by wsa_server_http_file(),
 * wsa_server_http_get() or wsa_server_metrics_path(): a page's
 * Content-Security-Policy, for one. name: a field name, compared without
 * case; one of the library's defaults (X-Content-Type-Options,
 * Cache-Control, Referrer-Policy, Content-Security-Policy) is replaced,
 * another added; set again, it replaces the value set before. value: the
 * field's value, or NULL to send none (a default dropped). Both copied.
 * Returns WSA_OK, WSA_EINVAL (path not served; a name that is no HTTP
 * token or is one the library writes itself: Content-Length,
 * Content-Type, Transfer-Encoding, Connection, Keep-Alive, Upgrade, Allow,
 * Strict-Transport-Security; a value with a control character or longer
 * than 4096 bytes), WSA_ESTATE (running), WSA_ENOMEM.
 * Before wsa_server_run(). Since 0.5.
 */
WSA_EXPORT int wsa_server_http_header(wsa_server *srv, const char *path,
				      const char *name, const char *value);

/*
 * A header of the request a wsa_http_fn answers: its value, or NULL when
 * the request has none (or an empty one). reply: the reply the handler
 * was given, which stands for its request. name: compared without case.
 * A header sent more than once: the values joined with "," (for the
 * fields libwebsockets knows, such as Host, Origin, Cookie,
 * Authorization; of others, the first). The string is the library's,
 * valid until the handler returns. Only inside the handler, on its
 * thread. Since 0.5.
 */
WSA_EXPORT const char *wsa_http_request_header(const wsa_http_reply *reply,
					       const char *name);

/*
 * Close every connection whose identity is uid (a logout), from any
 * thread: as wsa_server_close() does for each, once the service loop
 * takes the call. Connections still logging in are not affected.
 * Returns WSA_OK (queued), WSA_EINVAL, WSA_ENOMEM, WSA_ESTATE.
 * Any thread. Since 0.2.
 */
WSA_EXPORT int wsa_server_close_uid(wsa_server *srv, const char *uid, int code,
				    const char *reason);

/*
 * Revoke every token issued before a time, from any thread: connections
 * whose claims have an "iat" before it (or none, or not a number) are
 * closed with code and reason, and from then on such tokens fail at login
 * ("Authentication failed"). The time only moves forward: an earlier one
 * than already set changes nothing.
 * before: seconds since the Unix epoch.
 * Returns WSA_OK (queued), WSA_EINVAL, WSA_ENOMEM, WSA_ESTATE.
 * Any thread. Since 0.2.
 */
WSA_EXPORT int wsa_server_revoke_before(wsa_server *srv, long long before,
					int code, const char *reason);

/* wsa_conn_join() and wsa_conn_leave() for the connection with id
 * conn_id, from any thread, once its loop takes the call (an
 * unauthenticated or gone connection is left alone). Returns WSA_OK
 * (queued), WSA_EINVAL, WSA_ENOMEM, WSA_ESTATE. Any thread. Since 0.1. */
WSA_EXPORT int wsa_server_join(wsa_server *srv, const char *conn_id,
			       const char *topic);
WSA_EXPORT int wsa_server_leave(wsa_server *srv, const char *conn_id,
				const char *topic);

/*
 * The connections of the calling service thread in a topic: up to max of
 * them into out (out may be NULL), in no particular order. Returns how
 * many there are (0 for none, or off a service thread). With several
 * threads, members on the other threads are not listed: see
 * wsa_server_topic_users(). The pointers are valid during the callback.
 * Service thread. Since 0.1.
 */
WSA_EXPORT size_t wsa_server_topic_conns(wsa_server *srv, const char *topic,
					 wsa_conn **out, size_t max);

/*
 * The users in a topic, on every service thread: a new JSON array of the
 * uids of its authenticated members, each once, in no particular order
 * (empty for none); NULL for bad arguments or when memory is short.
 * Any thread. Since 0.2.
 */
WSA_EXPORT json_t *wsa_server_topic_users(wsa_server *srv, const char *topic);

/*
 * Called when a user comes into a topic (joined true: the first of its
 * connections joined, on any service thread) or goes (false: the last
 * left, or closed). conn is the connection that joined or left (when it
 * closes, it can be read but no longer sent to). The decision is the
 * server's, so it comes once however the user's connections are spread
 * over threads. Called on conn's service thread (during
 * wsa_server_free(), on the freeing thread), inside wsa_conn_join(),
 * wsa_conn_leave(), the join or leave of wsa_server_join() and
 * wsa_server_leave(), or after the close handler; any wsa_server_ call is
 * allowed, and wsa_conn_ calls on conn but joins and leaves.
 */
typedef void (*wsa_presence_fn)(wsa_conn *conn, const char *topic, bool joined,
				void *userdata);

/*
 * Set the server's presence handler (NULL: none).
 * Returns WSA_OK, WSA_EINVAL (srv NULL), WSA_ESTATE (running).
 * Before wsa_server_run(). Since 0.2.
 */
WSA_EXPORT int wsa_server_on_presence(wsa_server *srv, wsa_presence_fn fn,
				      void *userdata);

/*
 * Called when a user comes into a topic or goes from it, as
 * wsa_presence_fn is, but by uid: on every broker, and for departures
 * found without a connection (a node of the cluster that died: its users
 * are taken out within a bounded time, see wsa_server_use_redis()).
 * conn_id is the connection whose join or leave it was (on this node), or
 * NULL. With Redis the decision is the cluster's and comes once, on the
 * node where it was made, after the Redis round trip: on conn_id's service
 * thread, or the first one when conn_id is NULL. Any wsa_server_ call is
 * allowed.
 */
typedef void (*wsa_presence_uid_fn)(wsa_server *srv, const char *topic,
				    const char *uid, bool joined,
				    const char *conn_id, void *userdata);

/*
 * Set the server's presence handler by uid (NULL: none); it may be set
 * beside wsa_server_on_presence(), and is the one to use with Redis.
 * Returns WSA_OK, WSA_EINVAL (srv NULL), WSA_ESTATE (running).
 * Before wsa_server_run(). Since 0.3.
 */
WSA_EXPORT int wsa_server_on_presence_uid(wsa_server *srv,
					  wsa_presence_uid_fn fn,
					  void *userdata);

/* ----------------------------------------------------------------- nodes */

/*
 * Share topics, sends to a uid, closes by uid, revocations, route
 * broadcasts and presence with every other node (process or machine)
 * that uses the same Redis instances and prefix. A node subscribes to a
 * topic's channel only while it has a member in it; a message is
 * serialised once per node and reaches each node in the order its
 * publisher sent it on that topic (or uid). Delivery across nodes is at
 * most once: while an instance is unreachable each node serves its own
 * connections as a lone node, the loss is logged once and counted, and
 * the client reconnects with backoff and jitter and resubscribes.
 * urls: n URLs "redis://[[user]:password@]host[:port][/db]" (port 6379,
 * db 0 by default), one per instance; a topic or uid lives on the
 * instance its name maps to by a jump consistent hash, so every node must
 * list the same instances in the same order. prefix: the start of every
 * channel and key (NULL: "wsa"), at most 64 bytes, so several
 * applications can share one Redis. The Redis client runs on a thread of
 * its own; it never blocks a service thread.
 * Returns WSA_OK, WSA_EINVAL (srv NULL, a bad URL, n 0 or over 64, a bad
 * prefix), WSA_ESTATE (running, or Redis set already), WSA_ENOMEM.
 * Before wsa_server_run(). Since 0.3.
 */
WSA_EXPORT int wsa_server_use_redis(wsa_server *srv, const char *const *urls,
				    size_t n, const char *prefix);

/* ---------------------------------------------------------------- routes */

/* Called on the connection's service thread when a connection on the route is
 * authenticated (its first accepted login, or its upgrade with a token), not
 * when its WebSocket opens. Any wsa_conn_ call is allowed. */
typedef void (*wsa_open_fn)(wsa_conn *conn, void *userdata);

/* Called on the connection's service thread (during wsa_server_free(),
 * on the freeing thread) exactly once for every connection that
 * reached the route, authenticated or not, whatever ended it. code is the
 * close code sent or received (1006 when the peer vanished). The connection
 * can be read but no longer sent to, and is still in its topics (it leaves
 * them after the call, and is freed). */
typedef void (*wsa_close_fn)(wsa_conn *conn, int code, void *userdata);

/* Called on the connection's service thread for an authenticated
 * connection's message
 * whose "type" the handler was registered for. msg is borrowed for the
 * call; keep it with json_incref(). Any wsa_conn_ call is allowed. */
typedef void (*wsa_message_fn)(wsa_conn *conn, json_t *msg, void *userdata);

/*
 * Serve WebSocket upgrades to a path.
 * path: the exact request path, starting with "/" (the query string is not
 * part of it); copied.
 * on_open, on_close: may be NULL. userdata: given to both.
 * out: receives the route (owned by the server); may be NULL.
 * Returns WSA_OK, WSA_EINVAL (path not starting with "/"), WSA_EEXIST,
 * WSA_ESTATE (the server has started), WSA_ENOMEM.
 * Before wsa_server_run(). Since 0.1.
 */
WSA_EXPORT int wsa_route_add(wsa_server *srv, const char *path,
			     wsa_open_fn on_open, wsa_close_fn on_close,
			     void *userdata, wsa_route **out);

/*
 * Handle messages of one "type" on a route. A handler for "ping" replaces
 * the built-in pong; "login" cannot be handled (it is the auth gate's).
 * type: copied, not empty. fn: not NULL. userdata: given to fn.
 * Returns WSA_OK, WSA_EINVAL, WSA_EEXIST, WSA_ESTATE, WSA_ENOMEM.
 * Before wsa_server_run(). Since 0.1.
 */
WSA_EXPORT int wsa_route_handle(wsa_route *route, const char *type,
				wsa_message_fn fn, void *userdata);

/*
 * Refuse messages of one "type" to connections whose claims lack a value:
 * they get {"type":"error","message":"Forbidden"} and the connection goes
 * on. The claim holds the value when it is that string, an array holding
 * that string, or a string of space-separated words (an OAuth "scope")
 * one of which is it. Several requirements for a type must all hold.
 * type, claim, value: copied, not empty; type may have a handler or not.
 * Returns WSA_OK, WSA_EINVAL, WSA_ESTATE, WSA_ENOMEM.
 * Before wsa_server_run(). Since 0.2.
 */
WSA_EXPORT int wsa_route_require(wsa_route *route, const char *type,
				 const char *claim, const char *value);

/*
 * Let a route take the token at the upgrade as well as in a first-message
 * login: from "Authorization: Bearer TOKEN", or, for browsers (which
 * cannot set headers), from a Sec-WebSocket-Protocol entry
 * "wsa.bearer.TOKEN" offered together with "wsa", the protocol the server
 * then selects. Never from the query string. The verifier must decide
 * during its call (the built-in JWT verifier does): a token it refuses,
 * or does not decide on at once, gets HTTP 401 and no WebSocket. An
 * accepted connection is told {"type":"auth","message":"Authenticated"}
 * as it opens; one without a token at the upgrade logs in as usual.
 * Returns WSA_OK, WSA_EINVAL, WSA_ESTATE. Before wsa_server_run().
 * Since 0.2.
 */
WSA_EXPORT int wsa_route_upgrade_token(wsa_route *route, bool allow);

/*
 * The route's path. Borrowed, valid as long as the server.
 * Any thread. Since 0.1.
 */
WSA_EXPORT const char *wsa_route_path(const wsa_route *route);

/* ----------------------------------------------------------- verifiers */

/*
 * A token verifier. It is given the token of a login (not NUL-terminated
 * beyond len, though token[len] is '\0') and must answer exactly once with
 * wsa_auth_accept() or wsa_auth_reject(), now or later, from any thread.
 * token is valid until that answer. Called on the connection's service
 * thread (several may call it at once with several threads); may call
 * wsa_auth_ functions and nothing else of the server. While a verifier has
 * not answered, the connection's further messages wait, in order.
 */
typedef void (*wsa_verify_fn)(wsa_auth *auth, const char *token, size_t len,
			      void *userdata);

/*
 * Set the server's token verifier (for every route).
 * fn: the verifier; userdata: given to it (for the built-in JWT verifier:
 * a wsa_jwt *, which must outlive the server).
 * Returns WSA_OK, WSA_EINVAL (fn NULL), WSA_ESTATE (the server has started).
 * Before wsa_server_run(). Since 0.1.
 */
WSA_EXPORT int wsa_set_verifier(wsa_server *srv, wsa_verify_fn fn,
				void *userdata);

/*
 * Accept a login.
 * claims: the token's claims, taken (a new reference, even on failure). It
 * must be an object with a non-empty string "uid" (or, without "uid", a
 * non-empty string "sub"); "email" and a numeric "exp" are used when
 * present (the connection is closed with "Token expired" when exp passes).
 * A refresh that names another user than the connection's is still
 * refused, after this call.
 * Returns WSA_OK, or WSA_ETOKEN_IDENTITY (the login is then rejected).
 * After the call auth is gone. Any thread, once per auth. Since 0.1.
 */
WSA_EXPORT int wsa_auth_accept(wsa_auth *auth, json_t *claims);

/*
 * Reject a login; the client gets "Authentication failed" and a close, 1008.
 * reason: logged, never sent; copied; may be NULL.
 * After the call auth is gone. Any thread, once per auth. Since 0.1.
 */
WSA_EXPORT void wsa_auth_reject(wsa_auth *auth, const char *reason);

/*
 * The id of the connection that sent the login. Borrowed, valid until the
 * answer. Any thread. Since 0.1.
 */
WSA_EXPORT const char *wsa_auth_conn_id(const wsa_auth *auth);

/* ------------------------------------------------ built-in JWT verifier */

/*
 * Create a JWT verifier with no keys. Defaults: "exp" required, leeway 0,
 * no issuer or audience check, "typ" (when present) must be "JWT", tokens
 * of at most 8192 bytes.
 * Returns WSA_OK, WSA_EINVAL (out NULL) or WSA_ENOMEM. Any thread.
 * Since 0.1.
 */
WSA_EXPORT int wsa_jwt_new(wsa_jwt **out);

/*
 * Add a key, pinned to one algorithm.
 * kid: the key id that tokens name in their header, or NULL for the only
 * key (a verifier holds either one key without an id or keys that all have
 * a distinct, non-empty one). alg: exactly one of HS256 HS384 HS512 RS256
 * RS384 RS512 ES256 ES384 ES512. key, len: for HS*, the secret (at least
 * 32 bytes for HS256, 48 for HS384, 64 for HS512; text that looks like a
 * PEM key is refused); for RS* and ES*, a PEM public key ("PUBLIC KEY", or
 * "RSA PUBLIC KEY"; any private key material is refused): RSA (not
 * RSA-PSS) of at least 2048 bits, EC on P-256, P-384, P-521 for ES256,
 * ES384, ES512. Copied and parsed now.
 * Returns WSA_OK, WSA_EINVAL, WSA_EALG, WSA_EKEY, WSA_EKID, WSA_ENOMEM.
 * Not while the verifier is in use by a running server. Since 0.1.
 */
WSA_EXPORT int wsa_jwt_add_key(wsa_jwt *jwt, const char *kid, const char *alg,
			       const void *key, size_t len);

/* Require "iss" to equal iss (copied; NULL: no check). Returns WSA_OK,
 * WSA_EINVAL (jwt NULL), WSA_ENOMEM. Not while in use. Since 0.1. */
WSA_EXPORT int wsa_jwt_set_issuer(wsa_jwt *jwt, const char *iss);

/* Require "aud" (a string, or an array of strings) to contain aud
 * (copied; NULL: no check). Returns WSA_OK, WSA_EINVAL (jwt NULL),
 * WSA_ENOMEM. Not while in use. Since 0.1. */
WSA_EXPORT int wsa_jwt_set_audience(wsa_jwt *jwt, const char *aud);

/* Require the header's "typ", when present, to equal typ exactly (copied;
 * default "JWT"; NULL accepts any). Returns WSA_OK, WSA_EINVAL (jwt NULL),
 * WSA_ENOMEM. Not while in use. Since 0.1. */
WSA_EXPORT int wsa_jwt_set_typ(wsa_jwt *jwt, const char *typ);

/* Seconds of clock skew allowed on exp, nbf and iat (default 0). Not
 * while in use. Since 0.1. */
WSA_EXPORT void wsa_jwt_set_leeway(wsa_jwt *jwt, unsigned seconds);

/* Whether "exp" is required (default true). Not while in use. Since 0.1. */
WSA_EXPORT void wsa_jwt_set_require_exp(wsa_jwt *jwt, bool required);

/* Largest token accepted, in bytes (default 8192; 0 restores it). Not
 * while in use. Since 0.1. */
WSA_EXPORT void wsa_jwt_set_max_size(wsa_jwt *jwt, size_t bytes);

/*
 * Verify a token now. A token has expired once now >= exp + leeway, and
 * is not yet valid while now + leeway < nbf or now + leeway < iat.
 * token, len: the compact JWS (token[len] need not be '\0').
 * claims: receives a new reference to the claim set on success (NULL on
 * failure); may be NULL.
 * Returns WSA_OK or a WSA_ETOKEN_ code saying why the token was rejected;
 * WSA_EINVAL for a NULL jwt or token or a verifier without keys;
 * WSA_ENOMEM.
 * Any thread, concurrently with other verifies. Since 0.1.
 */
WSA_EXPORT int wsa_jwt_verify(const wsa_jwt *jwt, const char *token, size_t len,
			      json_t **claims);

/*
 * A wsa_verify_fn that verifies with wsa_jwt_verify() at once; pass the
 * wsa_jwt as userdata to wsa_set_verifier(). Since 0.1.
 */
WSA_EXPORT void wsa_jwt_verifier(wsa_auth *auth, const char *token, size_t len,
				 void *jwt);

/* Free a verifier; NULL is ignored. Not while in use. Since 0.1. */
WSA_EXPORT void wsa_jwt_free(wsa_jwt *jwt);

/* --------------------------------------------------------- connections */

/* The wsa_conn_ functions belong to the connection's service thread:
 * call them from
 * callbacks. Strings in a handler's message may contain NUL characters
 * (JSON allows them): read them with json_string_length(). */

/* The connection id: 22 characters of base57, unique in the process; the
 * first names its service thread, the others are random.
 * Borrowed, valid as long as the connection. Since 0.1. */
WSA_EXPORT const char *wsa_conn_id(const wsa_conn *conn);

/* The route the connection is on. Since 0.1. */
WSA_EXPORT wsa_route *wsa_conn_route(const wsa_conn *conn);

/* Whether a login was accepted on the connection. Since 0.1. */
WSA_EXPORT bool wsa_conn_is_authenticated(const wsa_conn *conn);

/* The identity: the token's "uid", or "sub" where there is no "uid"; NULL
 * before authentication. Borrowed; valid until the next refresh. Since 0.1. */
WSA_EXPORT const char *wsa_conn_uid(const wsa_conn *conn);

/* The token's "email" when it is a string, else NULL. Borrowed; valid until
 * the next refresh. Since 0.1. */
WSA_EXPORT const char *wsa_conn_email(const wsa_conn *conn);

/* The whole claim set of the accepted token, NULL before authentication.
 * Borrowed (json_incref() to keep it; do not modify it); valid until the
 * next refresh. Since 0.1. */
WSA_EXPORT json_t *wsa_conn_claims(const wsa_conn *conn);

/* A pointer of the host's, NULL until set. Since 0.1. */
WSA_EXPORT void *wsa_conn_userdata(const wsa_conn *conn);
WSA_EXPORT void wsa_conn_set_userdata(wsa_conn *conn, void *userdata);

/*
 * Queue a JSON object for the connection.
 * msg: borrowed and serialised before the call returns. While a handler
 * runs for a message carrying "id", replies to that message's connection
 * get the same "id" (unless msg has one).
 * Returns WSA_OK, WSA_EINVAL (not an object), WSA_ECLOSED, WSA_ENOMEM,
 * WSA_ENOTHREAD (not on the connection's service thread).
 * Service thread. Since 0.1.
 */
WSA_EXPORT int wsa_conn_send(wsa_conn *conn, const json_t *msg);

/* As wsa_conn_send(), but takes the reference to msg, even on failure.
 * Since 0.1. */
WSA_EXPORT int wsa_conn_send_new(wsa_conn *conn, json_t *msg);

/*
 * Queue {"type":"error","message":message} (with the current "id", as
 * wsa_conn_send()). message: UTF-8, copied.
 * Returns as wsa_conn_send(). Service thread. Since 0.1.
 */
WSA_EXPORT int wsa_conn_send_error(wsa_conn *conn, const char *message);

/*
 * Close the connection after what is queued for it has been written.
 * code: 1000-1003, 1007-1014 or 3000-4999 (the codes RFC 6455 lets an
 * endpoint send); reason: UTF-8, at most 123 bytes, may be NULL. Later
 * sends fail with WSA_ECLOSED.
 * Returns WSA_OK, WSA_EINVAL, WSA_ECLOSED, WSA_ENOTHREAD. Service thread.
 * Since 0.1.
 */
WSA_EXPORT int wsa_conn_close(wsa_conn *conn, int code, const char *reason);

/*
 * Join a topic (a named group for wsa_server_publish(); created by its
 * first member, gone with its last). Joining twice is one membership; a
 * closing connection leaves all its topics.
 * topic: non-empty, at most 1024 bytes, copied.
 * Returns WSA_OK, WSA_EINVAL, WSA_ECLOSED, WSA_ELIMIT (the connection is
 * in max_topics_per_connection topics already), WSA_ENOMEM,
 * WSA_ENOTHREAD. Service thread. Since 0.1.
 */
WSA_EXPORT int wsa_conn_join(wsa_conn *conn, const char *topic);

/*
 * Called when a wsa_conn_join_async() has taken effect on every node:
 * users is the topic's users then (uids, each once, the joiner's
 * included; borrowed for the call, NULL when memory was short). Any
 * wsa_conn_ call is allowed.
 */
typedef void (*wsa_joined_fn)(wsa_conn *conn, const char *topic, json_t *users,
			      void *userdata);

/*
 * Join a topic as wsa_conn_join() does, then call fn on the connection's
 * service thread once the membership has reached every node: from then
 * on the connection gets every message published to the topic anywhere.
 * Without Redis, fn is called before this returns; with it, after a round
 * trip to Redis (at once when Redis is unreachable, with this node's
 * users). fn is not called if the connection leaves the topic or closes
 * first. Joining a topic the connection is in calls fn again.
 * Returns as wsa_conn_join(). Service thread. Since 0.3.
 */
WSA_EXPORT int wsa_conn_join_async(wsa_conn *conn, const char *topic,
				   wsa_joined_fn fn, void *userdata);

/* The longest epoch of a topic's history, in characters. */
#define WSA_EPOCH_MAX 16
/* The most publications a topic's history may keep. */
#define WSA_HISTORY_MAX 100000

/* A position in a topic's history: the offset of a kept publication (1,
 * 2, ... in the order they were made; 0: before the first) within an
 * epoch, which changes whenever the history was lost. */
typedef struct wsa_position {
	unsigned long long offset;
	char epoch[WSA_EPOCH_MAX + 1]; /* NUL-terminated */
} wsa_position;

/*
 * Keep a history of the topics whose names start with prefix ("": every
 * topic): their last size kept publications (wsa_conn_publish(),
 * wsa_server_publish_kept()), each for ttl_ms after it was made. A topic
 * takes the rule of the longest prefix it matches. A topic's history, and
 * with it its epoch, is forgotten when nothing was kept in it for ttl_ms.
 * With Redis the history is kept there, shared by the nodes.
 * Returns WSA_OK, WSA_EINVAL (size 0 or over WSA_HISTORY_MAX, ttl_ms 0,
 * prefix NULL, over 1024 bytes or given before), WSA_ELIMIT (16 prefixes),
 * WSA_ENOMEM, WSA_ESTATE (running). Before wsa_server_run(). Since 0.5.
 */
WSA_EXPORT int wsa_server_topic_history(wsa_server *srv, const char *prefix,
					unsigned size, unsigned ttl_ms);

/*
 * Publish msg to a topic as the sending connection's reply: every member
 * gets it, conn included (when it is a member), whose copy carries the
 * "id" of the message being handled. When the topic keeps a history,
 * the publication is kept and every copy carries its position,
 * "offset" (a number) and "epoch" (a string), which msg must not have;
 * members get kept publications in the order of their offsets. msg is
 * borrowed, serialised before the call returns; the copies are queued
 * when the loops take them (conn's own copy too: it is not queued
 * before this returns).
 * Returns WSA_OK, WSA_EINVAL (topic as for wsa_conn_join(), msg not an
 * object or with "offset" or "epoch" in a kept topic), WSA_ECLOSED,
 * WSA_ENOMEM, WSA_ENOTHREAD, WSA_ESTATE (stopping). Service thread.
 * Since 0.5.
 */
WSA_EXPORT int wsa_conn_publish(wsa_conn *conn, const char *topic,
				const json_t *msg);

/*
 * As wsa_server_publish(), kept in the topic's history when it has one
 * (each copy then carries "offset" and "epoch", as wsa_conn_publish()
 * says). Returns WSA_OK (queued), WSA_EINVAL (as wsa_server_publish(),
 * or msg with "offset" or "epoch" in a kept topic), WSA_ENOMEM,
 * WSA_ESTATE (stopping). Any thread. Since 0.5.
 */
WSA_EXPORT int wsa_server_publish_kept(wsa_server *srv, const char *topic,
				       const json_t *msg,
				       const char *except_conn_id);

/*
 * Called when a wsa_conn_join_since() has taken effect, after the
 * publications the connection missed were queued: users as for
 * wsa_joined_fn; now: the topic's position then (NULL when the topic
 * keeps no history); recovered: whether every kept publication after
 * since was queued (false without since, in another epoch, or when some
 * of them are no longer kept). Any wsa_conn_ call is allowed.
 */
typedef void (*wsa_recovered_fn)(wsa_conn *conn, const char *topic,
				 json_t *users, const wsa_position *now,
				 bool recovered, void *userdata);

/*
 * Join a topic, as wsa_conn_join_async() does, from a position: first the
 * kept publications after since (NULL: none) are queued to the
 * connection, in order, then fn is called; from then on the connection
 * gets every publication after the position fn is given, none twice and
 * none missed (a kept publication made while the join is under way may
 * reach the connection before fn is called: a client keeps the highest
 * offset it saw). Joining a topic the connection is in already queues
 * nothing and calls fn with recovered false.
 * Returns WSA_OK, WSA_EINVAL, WSA_ECLOSED, WSA_ELIMIT (as
 * wsa_conn_join()), WSA_ENOMEM, WSA_ENOTHREAD, WSA_ESTATE (a join of the
 * topic from a position under way: that one answers). Service thread.
 * Since 0.5.
 */
WSA_EXPORT int wsa_conn_join_since(wsa_conn *conn, const char *topic,
				   const wsa_position *since,
				   wsa_recovered_fn fn, void *userdata);

/* Leave a topic (nothing when not in it). Returns WSA_OK, WSA_EINVAL,
 * WSA_ENOTHREAD. Service thread. Since 0.1. */
WSA_EXPORT int wsa_conn_leave(wsa_conn *conn, const char *topic);

/* The topics the connection is in: up to max names into out (out may be
 * NULL), in no particular order; returns how many there are. The names
 * are valid while the connection is in them (in the close handler, it
 * still is). Service thread. Since 0.1. */
WSA_EXPORT size_t wsa_conn_topics(const wsa_conn *conn, const char **out,
				  size_t max);

/* Whether the connection is in the topic. Service thread. Since 0.1. */
WSA_EXPORT bool wsa_conn_in_topic(const wsa_conn *conn, const char *topic);

/* Bytes queued for the connection and not yet written. Since 0.1. */
WSA_EXPORT size_t wsa_conn_queued_bytes(const wsa_conn *conn);

#ifdef __cplusplus
}
#endif

#endif /* WSA_H */
