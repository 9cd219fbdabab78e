/* libFuzzer harness: the message path of a real server, over loopback.
 *
 * On the first input a server starts on 127.0.0.1, port 0, on a thread of
 * its own: one route, PATH, with a few handlers that hand parts of the
 * message back to the library (echo, topics, any-thread sends, closes), and
 * a verifier that knows a handful of fixed tokens (one answered from
 * another thread). A client of this file's own (RFC 6455, masked frames)
 * logs in and keeps its connection.
 *
 * Each input goes to the server as one text message: usually on the
 * logged-in connection (on every 16th input in fragments with pings in
 * between, on every 64th followed by enough padding to pass the message
 * size limit), and on every 8th input as the first message of a fresh
 * connection, through the auth gate. After it a {"type":"ping","id":...}
 * must be answered by its pong within WAIT_MS, or by a close (invalid
 * UTF-8, an oversized or refused message, a handler's close). After a
 * close the client connects and logs in again, and that must work too.
 * A server that hangs, crashes or stops answering aborts the run; the
 * sanitizers watch the server thread as well.
 *
 * At exit the server is stopped and freed, so LeakSanitizer sees the
 * teardown. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "wsa.h"

#define PATH	    "/fuzz"
#define UID	    "fuzzer"
#define WAIT_MS	    5000	/* for one answer of the server */
#define BUDGET_MS   8000	/* for everything one input does */
#define MAX_FRAME   (16u << 20) /* the server never sends near this */
#define MAX_MESSAGE 65536	/* the server's default limit */

static wsa_server *srv;
static pthread_t service;
static int port;
static atomic_int async_pending; /* verifier threads still running */
static unsigned long pings;	 /* ids of our pings */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_message: %s\n", what);
	abort();
}

/* ----------------------------------------------------------- server */

static const char *str_member(const json_t *msg, const char *name)
{
	return json_string_value(json_object_get(msg, name));
}

static bool str_is(const json_t *msg, const char *name, const char *want)
{
	const char *s = str_member(msg, name);

	return s && !strcmp(s, want);
}

static void on_echo(wsa_conn *conn, json_t *msg, void *ud)
{
	(void)ud;
	wsa_conn_send(conn, msg);
}

/* Join the topic, then publish the message to it (maybe not to us). */
static void on_join(wsa_conn *conn, json_t *msg, void *ud)
{
	const char *topic = str_member(msg, "topic");
	bool except = json_is_true(json_object_get(msg, "except"));

	(void)ud;
	if (!topic)
		return;
	if (wsa_conn_join(conn, topic) == WSA_OK &&
	    !wsa_conn_in_topic(conn, topic))
		fail("joined a topic, but not in it");
	wsa_server_publish(srv, topic, msg, except ? wsa_conn_id(conn) : NULL);
}

static void on_leave(wsa_conn *conn, json_t *msg, void *ud)
{
	const char *topic = str_member(msg, "topic");

	(void)ud;
	if (topic && wsa_conn_leave(conn, topic) == WSA_OK &&
	    wsa_conn_in_topic(conn, topic))
		fail("left a topic, but still in it");
}

/* Who we are, as the library sees it. */
static void on_whoami(wsa_conn *conn, json_t *msg, void *ud)
{
	const char *topics[4];
	size_t n = wsa_conn_topics(conn, topics, 4);

	(void)msg, (void)ud;
	if (!wsa_conn_is_authenticated(conn) || !wsa_conn_uid(conn))
		fail("a handler ran for a connection not authenticated");
	wsa_conn_send_new(
	    conn,
	    json_pack("{s:s, s:s?, s:O?, s:I, s:I}", "uid", wsa_conn_uid(conn),
		      "email", wsa_conn_email(conn), "claims",
		      wsa_conn_claims(conn), "topics", (json_int_t)n, "queued",
		      (json_int_t)wsa_conn_queued_bytes(conn)));
}

static void on_close_msg(wsa_conn *conn, json_t *msg, void *ud)
{
	(void)ud;
	wsa_conn_close(conn,
		       (int)json_integer_value(json_object_get(msg, "code")),
		       str_member(msg, "reason"));
}

static void on_error_msg(wsa_conn *conn, json_t *msg, void *ud)
{
	const char *text = str_member(msg, "message");

	(void)ud;
	wsa_conn_send_error(conn, text ? text : "no message");
}

/* The any-thread calls, made from the service thread: "payload" to this
 * connection by id, by uid and to the whole route. */
static void on_send(wsa_conn *conn, json_t *msg, void *ud)
{
	json_t *payload = json_object_get(msg, "payload");

	(void)ud;
	wsa_server_send(srv, wsa_conn_id(conn), payload);
	wsa_server_send_uid(srv, wsa_conn_uid(conn), payload);
	wsa_server_broadcast(srv, PATH, payload);
	if (json_is_true(json_object_get(msg, "close")))
		wsa_server_close(srv, wsa_conn_id(conn), 4000, "asked to");
}

static void on_open(wsa_conn *conn, void *ud)
{
	(void)ud;
	wsa_conn_join(conn, "everyone");
}

static void on_closed(wsa_conn *conn, int code, void *ud)
{
	(void)ud;
	if (code < 1000 || code > 4999)
		fail("a close handler got a code outside 1000..4999");
	(void)conn;
}

struct later {
	wsa_auth *auth;
};

static void *answer_later(void *arg)
{
	struct later *l = arg;

	wsa_auth_accept(l->auth, json_pack("{s:s}", "sub", UID));
	free(l);
	atomic_fetch_sub(&async_pending, 1);
	return NULL;
}

/* Answer a login from another thread. */
static void verify_async(wsa_auth *auth)
{
	struct later *l = malloc(sizeof(*l));
	pthread_t t;

	if (!l) {
		wsa_auth_reject(auth, "out of memory");
		return;
	}
	l->auth = auth;
	atomic_fetch_add(&async_pending, 1);
	if (pthread_create(&t, NULL, answer_later, l)) {
		atomic_fetch_sub(&async_pending, 1);
		free(l);
		wsa_auth_reject(auth, "no thread");
		return;
	}
	pthread_detach(t);
}

static bool token_is(const char *token, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(token, want, len);
}

/* The fixed tokens: "letmein" is the fuzzer, "other" another user (a
 * refresh with it fails), "nouser" a claim set naming nobody, "expired"
 * a token past its exp, "async" the fuzzer answered from a thread. */
static void verify(wsa_auth *auth, const char *token, size_t len, void *ud)
{
	(void)ud;
	if (token[len] != '\0')
		fail("the token given to the verifier is not NUL-terminated");
	if (token_is(token, len, "letmein"))
		wsa_auth_accept(auth, json_pack("{s:s, s:s}", "uid", UID,
						"email", "fuzz@example.com"));
	else if (token_is(token, len, "other"))
		wsa_auth_accept(auth, json_pack("{s:s}", "uid", "intruder"));
	else if (token_is(token, len, "nouser"))
		wsa_auth_accept(auth, json_pack("{s:s}", "uid", ""));
	else if (token_is(token, len, "expired"))
		wsa_auth_accept(auth, json_pack("{s:s, s:I}", "uid", UID, "exp",
						(json_int_t)time(NULL) - 1));
	else if (token_is(token, len, "async"))
		verify_async(auth);
	else
		wsa_auth_reject(auth, "unknown token");
}

static void quiet(wsa_log_level level, const char *conn_id, const char *route,
		  const char *msg, void *ud)
{
	(void)conn_id, (void)route, (void)ud;
	if (level <= WSA_LOG_ERR)
		fprintf(stderr, "server: %s\n", msg);
}

static void *serve(void *arg)
{
	(void)arg;
	if (wsa_server_run(srv) != WSA_OK)
		fail("wsa_server_run failed");
	return NULL;
}

static void server_start(void)
{
	static const struct {
		const char *type;
		wsa_message_fn fn;
	} handlers[] = {
	    {"echo", on_echo},	     {"join", on_join},
	    {"leave", on_leave},     {"whoami", on_whoami},
	    {"close", on_close_msg}, {"error", on_error_msg},
	    {"send", on_send},
	};
	wsa_config cfg;
	wsa_route *route;

	wsa_config_init(&cfg);
	cfg.log = quiet;
	cfg.drain_timeout_ms = 1000;
	/* One connection sends as fast as inputs come, and half the inputs
	 * are failed logins: the limits would only get in the way. */
	cfg.rate_limit = WSA_UNLIMITED;
	cfg.max_failed_logins = WSA_UNLIMITED;
	cfg.verify_rate = WSA_UNLIMITED;
	if (wsa_server_new(&srv, &cfg) ||
	    wsa_route_add(srv, PATH, on_open, on_closed, NULL, &route) ||
	    wsa_set_verifier(srv, verify, NULL))
		fail("cannot set up the server");
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (wsa_route_handle(route, handlers[i].type, handlers[i].fn,
				     NULL))
			fail("cannot add a handler");
	port = wsa_server_port(srv);
	if (pthread_create(&service, NULL, serve, NULL))
		fail("cannot start the service thread");
}

/* ----------------------------------------------------------- client */

struct ws {
	int fd; /* -1: not connected */
	unsigned char *in;
	size_t in_len, in_cap; /* received, not yet parsed */
	unsigned char *msg;
	size_t msg_len, msg_cap; /* a data message being reassembled */
	bool msg_done;		 /* msg holds a whole message, handed out */
	uint32_t rng;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline of one wait: WAIT_MS from now, within the input's
 * budget. */
static long long wait_until(long long budget)
{
	long long d = now_ms() + WAIT_MS;

	return d < budget ? d : budget;
}

static void grow(unsigned char **p, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 4096;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	if (!(*p = realloc(*p, n)))
		fail("out of memory in the client");
	*cap = n;
}

static void ws_drop(struct ws *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_len = c->msg_len = 0;
	c->msg_done = false;
}

/* Send all n bytes by the deadline; -1 when the connection is gone or the
 * deadline passed. */
static int send_all(struct ws *c, const void *p, size_t n, long long deadline)
{
	const char *s = p;

	while (n) {
		struct pollfd pfd = {c->fd, POLLOUT, 0};
		long long left = deadline - now_ms();
		ssize_t w;

		if (left <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR) /* libFuzzer's timer */
				continue;
			return -1;
		}
		if (!pfd.revents)
			continue;
		w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One masked frame. */
static int send_frame(struct ws *c, int opcode, bool fin, const void *data,
		      size_t n, long long deadline)
{
	unsigned char *f = malloc(n + 14), *m;
	size_t h = 2;
	int rc;

	if (!f)
		fail("out of memory in the client");
	f[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		f[1] = (unsigned char)(0x80 | n);
	} else if (n <= 0xffff) {
		f[1] = 0x80 | 126;
		f[2] = (unsigned char)(n >> 8);
		f[3] = (unsigned char)n;
		h = 4;
	} else {
		f[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		h = 10;
	}
	c->rng = c->rng * 1103515245u + 12345u;
	m = f + h;
	memcpy(m, &c->rng, 4);
	for (size_t i = 0; i < n; i++)
		m[4 + i] = ((const unsigned char *)data)[i] ^ m[i & 3];
	rc = send_all(c, f, h + 4 + n, deadline);
	free(f);
	return rc;
}

/* Read what has come, waiting until the deadline: 1 read, 0 timeout, -1
 * closed. */
static int fill(struct ws *c, long long deadline)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	long long left = deadline - now_ms();
	ssize_t r;

	if (left <= 0)
		return 0;
	if (poll(&pfd, 1, (int)left) < 0)
		return errno == EINTR ? 1 : -1;
	if (!pfd.revents)
		return 0;
	grow(&c->in, &c->in_cap, c->in_len + 65536);
	r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (r <= 0)
		return -1;
	c->in_len += (size_t)r;
	return 1;
}

/* The frame at the start of c->in: its opcode, FIN, payload (unmasked in
 * place) and whole length; 0 while it is incomplete. */
static size_t parse_frame(struct ws *c, int *op, bool *fin,
			  unsigned char **payload, size_t *n)
{
	unsigned char *p = c->in;
	size_t h = 2, len;
	bool masked;

	if (c->in_len < 2)
		return 0;
	*op = p[0] & 0x0f;
	*fin = p[0] & 0x80;
	masked = p[1] & 0x80;
	len = p[1] & 0x7f;
	if (len == 126)
		h = 4;
	else if (len == 127)
		h = 10;
	if (c->in_len < h + (masked ? 4 : 0))
		return 0;
	if (len == 126)
		len = (size_t)p[2] << 8 | p[3];
	else if (len == 127)
		len = 0;
	for (size_t i = 0; h == 10 && i < 8; i++)
		len = len << 8 | p[2 + i];
	if (len > MAX_FRAME)
		fail("the server sent an absurdly large frame");
	if (c->in_len < h + (masked ? 4 : 0) + len)
		return 0;
	*payload = p + h + (masked ? 4 : 0);
	if (masked) /* servers must not mask; take it anyway */
		for (size_t i = 0; i < len; i++)
			(*payload)[i] ^= p[h + (i & 3)];
	*n = len;
	return h + (masked ? 4 : 0) + len;
}

/* Act on one frame; 1 when a data message is complete in c->msg, -1 on a
 * close (answered), else 0. */
static int take_frame(struct ws *c, int op, bool fin, unsigned char *p,
		      size_t n, long long deadline)
{
	switch (op) {
	case 0x8: /* echo the code, then hang up */
		send_frame(c, 0x8, true, p, n < 2 ? n : 2, deadline);
		return -1;
	case 0x9:
		return send_frame(c, 0xA, true, p, n, deadline) ? -1 : 0;
	case 0xA:
		return 0;
	default:
		grow(&c->msg, &c->msg_cap, c->msg_len + n + 1);
		memcpy(c->msg + c->msg_len, p, n);
		c->msg_len += n;
		if (c->msg_len > MAX_FRAME)
			fail("the server sent an absurdly large message");
		return fin;
	}
}

/* The next data message into c->msg: 1, 0 on timeout, -1 once the
 * connection is closed. */
static int next_message(struct ws *c, long long deadline)
{
	if (c->msg_done) {
		c->msg_len = 0;
		c->msg_done = false;
	}
	for (;;) {
		int op, rc;
		bool fin;
		unsigned char *p;
		size_t n, whole;

		while ((whole = parse_frame(c, &op, &fin, &p, &n))) {
			rc = take_frame(c, op, fin, p, n, deadline);
			memmove(c->in, c->in + whole, c->in_len - whole);
			c->in_len -= whole;
			if (rc) {
				c->msg_done = rc > 0;
				return rc;
			}
		}
		if ((rc = fill(c, deadline)) <= 0)
			return rc;
	}
}

/* Send a ping and wait for its pong: 1, 0 on timeout, -1 when the
 * connection closed first. Other messages are read and dropped. */
static int ping(struct ws *c, long long budget)
{
	char req[64], id[32];
	long long deadline = wait_until(budget);
	int rc;

	snprintf(id, sizeof(id), "fz-%lu", ++pings);
	snprintf(req, sizeof(req), "{\"type\":\"ping\",\"id\":\"%s\"}", id);
	if (send_frame(c, 0x1, true, req, strlen(req), deadline))
		return -1;
	while ((rc = next_message(c, deadline)) > 0) {
		json_t *m = json_loadb((char *)c->msg, c->msg_len, 0, NULL);
		bool pong = str_is(m, "type", "pong") && str_is(m, "id", id);

		json_decref(m);
		if (pong)
			return 1;
	}
	return rc;
}

/* Wait for a non-blocking connect() to finish: 0 connected, else -1
 * with errno set. */
static int connected(int fd, long long deadline)
{
	struct pollfd pfd = {fd, POLLOUT, 0};
	int err = 0;
	socklen_t len = sizeof(err);

	for (;;) {
		long long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return -1;
	errno = err;
	return err ? -1 : 0;
}

/* Connect and upgrade; -1 when the server does not take the
 * connection, with why in *why. */
static int ws_connect(struct ws *c, long long budget, const char **why)
{
	static const char tail[] = "\r\n\r\n";
	static char reason[160];
	struct sockaddr_in a = {.sin_family = AF_INET};
	long long deadline = wait_until(budget);
	char req[256];
	int one = 1, rc;

	static unsigned next_src;
	struct sockaddr_in src = {.sin_family = AF_INET};

	ws_drop(c);
	*why = reason;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Many connections a second, each leaving a TIME_WAIT behind: spread
	 * them over 127.0.0.1-250, or the ports of one source address run
	 * out within a minute. */
	src.sin_addr.s_addr = htonl(0x7f000001u + next_src++ % 250);
	/* Non-blocking from the start: libFuzzer's timer signal would
	 * interrupt a blocking connect() half way (EINTR). */
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&src, sizeof(src)) ||
	    (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) &&
	     errno != EINPROGRESS && errno != EINTR) ||
	    connected(c->fd, deadline)) {
		snprintf(reason, sizeof(reason), "socket/bind/connect: %s",
			 strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(req, sizeof(req),
		 "GET " PATH " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: bGlid3NhLWZ1enotY2xpZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n\r\n",
		 port);
	if (send_all(c, req, strlen(req), deadline)) {
		snprintf(reason, sizeof(reason), "upgrade request not sent");
		return -1;
	}
	for (;;) { /* the response head; frames may follow it at once */
		for (size_t i = 0; i + 4 <= c->in_len; i++) {
			if (memcmp(c->in + i, tail, 4))
				continue;
			if (c->in_len < 12 ||
			    memcmp(c->in, "HTTP/1.1 101", 12)) {
				snprintf(reason, sizeof(reason),
					 "answered '%.*s'",
					 (int)(c->in_len < 40 ? c->in_len : 40),
					 (const char *)c->in);
				return -1;
			}
			memmove(c->in, c->in + i + 4, c->in_len - i - 4);
			c->in_len -= i + 4;
			return 0;
		}
		if (c->in_len > 8192) {
			snprintf(reason, sizeof(reason),
				 "response head too long");
			return -1;
		}
		rc = fill(c, deadline);
		if (rc <= 0) {
			snprintf(
			    reason, sizeof(reason),
			    rc ? "closed before the upgrade answer (%zu bytes)"
			       : "no upgrade answer in time (%zu bytes)",
			    c->in_len);
			return -1;
		}
	}
}

/* Fail the run, saying why the server did not take a connection. */
static void fail_connect(const char *why)
{
	char what[256];

	snprintf(what, sizeof(what),
		 "the server does not take a new connection: %s", why);
	fail(what);
}

/* A connection logged in as the fuzzer, checked with a ping. */
static void login(struct ws *c, long long budget)
{
	static const char msg[] = "{\"type\":\"login\",\"token\":\"letmein\"}";

	const char *why;

	if (ws_connect(c, budget, &why))
		fail_connect(why);
	if (send_frame(c, 0x1, true, msg, sizeof(msg) - 1, wait_until(budget)))
		fail("cannot send a login");
	if (ping(c, budget) != 1)
		fail("no pong after a login (refused, or no answer in time)");
}

/* ----------------------------------------------------------- inputs */

static struct ws conn = {.fd = -1};

/* The input in two to four fragments, pings between them. */
static int send_fragments(struct ws *c, const uint8_t *data, size_t size,
			  long long deadline)
{
	size_t parts = 2 + size % 3, at = 0;

	for (size_t i = 0; i < parts; i++) {
		size_t end = i + 1 == parts ? size : size * (i + 1) / parts;

		if (send_frame(c, i ? 0x0 : 0x1, i + 1 == parts, data + at,
			       end - at, deadline))
			return -1;
		if (i + 1 < parts && send_frame(c, 0x9, true, "x", 1, deadline))
			return -1;
		at = end;
	}
	return 0;
}

/* The input, then spaces to pass the size limit: a close (1009). */
static int send_oversized(struct ws *c, const uint8_t *data, size_t size,
			  long long deadline)
{
	size_t pad = MAX_MESSAGE + 1;
	char *spaces = malloc(pad);
	int rc;

	if (!spaces)
		fail("out of memory in the client");
	memset(spaces, ' ', pad);
	rc = send_frame(c, 0x1, false, data, size, deadline);
	if (!rc)
		rc = send_frame(c, 0x0, true, spaces, pad, deadline);
	free(spaces);
	return rc;
}

/* The logged-in connection answers a ping, logging in again first when
 * it was closed. */
static void check_answers(long long budget)
{
	int rc = conn.fd >= 0 ? ping(&conn, budget) : -1;

	if (rc == 0)
		fail("no pong and no close in time on the logged-in "
		     "connection");
	if (rc < 0)
		login(&conn, budget);
}

/* The input on the logged-in connection. */
static void on_logged_in(const uint8_t *data, size_t size, unsigned long n,
			 long long budget)
{
	long long deadline = wait_until(budget);
	int rc;

	if (conn.fd < 0)
		login(&conn, budget);
	if (n % 64 == 37)
		rc = send_oversized(&conn, data, size, deadline);
	else if (n % 16 == 5)
		rc = send_fragments(&conn, data, size, deadline);
	else
		rc = send_frame(&conn, 0x1, true, data, size, deadline);
	if (!rc && (rc = ping(&conn, budget)) == 0)
		fail("no pong and no close in time after an input");
	if (n % 64 == 37 && rc > 0)
		fail("an oversized message was taken");
	if (rc < 0) { /* the server closed: it must take us back */
		ws_drop(&conn);
		login(&conn, budget);
	}
}

/* The input as the first message of a fresh connection; then the
 * logged-in connection must still be answered. */
static void on_fresh(const uint8_t *data, size_t size, long long budget)
{
	struct ws fresh = {.fd = -1, .rng = (uint32_t)size};

	const char *why;

	if (ws_connect(&fresh, budget, &why))
		fail_connect(why);
	if (!send_frame(&fresh, 0x1, true, data, size, wait_until(budget)) &&
	    ping(&fresh, budget) == 0)
		fail("a fresh connection got no pong and no close in time");
	ws_drop(&fresh);
	free(fresh.in);
	free(fresh.msg);
	check_answers(budget);
}

static void teardown(void)
{
	long long until = now_ms() + WAIT_MS;

	ws_drop(&conn);
	free(conn.in);
	free(conn.msg);
	/* Every login must be answered before the server is freed. */
	while (atomic_load(&async_pending) && now_ms() < until)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	if (atomic_load(&async_pending))
		fail("a verifier thread did not finish");
	wsa_server_stop(srv);
	pthread_join(service, NULL);
	wsa_server_free(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned long n;
	long long budget = now_ms() + BUDGET_MS;

	if (!srv) {
		signal(SIGPIPE, SIG_IGN);
		/* OpenSSL registers its exit handler on first use (the server's
		 * first connection id): it must come before ours, so that it
		 * runs after the teardown, once the service thread has ended
		 * and freed its OpenSSL state. */
		OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
		server_start();
		atexit(teardown);
		conn.rng = 0x5eed;
	}
	if (++n % 8 == 0)
		on_fresh(data, size, budget);
	else
		on_logged_in(data, size, n, budget);
	return 0;
}
