/* Integration tests: a real server on 127.0.0.1 (port 0) on its own
 * thread, driven by the test's own WebSocket client over real sockets.
 * Every row of the protocol's auth gate and dispatcher tables. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wsa.h>

#include "check.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000 /* ms: bound on every wait */

/* ------------------------------------------------------------ fixture */

struct events {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int opens, closes, closes_authenticated, typing, chats;
	int last_close_code;
};

static struct events ev = {.lock = PTHREAD_MUTEX_INITIALIZER,
			   .cond = PTHREAD_COND_INITIALIZER};

static int count(int *counter)
{
	int n;

	pthread_mutex_lock(&ev.lock);
	n = *counter;
	pthread_mutex_unlock(&ev.lock);
	return n;
}

/* Wait until the counter reaches n (bounded by T); its value. */
static int wait_count(int *counter, int n)
{
	struct timespec dl;
	int v;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += T / 1000;
	pthread_mutex_lock(&ev.lock);
	while (*counter < n && !pthread_cond_timedwait(&ev.cond, &ev.lock, &dl))
		;
	v = *counter;
	pthread_mutex_unlock(&ev.lock);
	return v;
}

static void bump(int *counter)
{
	pthread_mutex_lock(&ev.lock);
	(*counter)++;
	pthread_cond_broadcast(&ev.cond);
	pthread_mutex_unlock(&ev.lock);
}

static void on_open(wsa_conn *c, void *ud)
{
	CHECK(ud == &ev);
	CHECK(wsa_conn_userdata(c) == NULL);
	wsa_conn_set_userdata(c, &ev); /* read back by whoami */
	bump(&ev.opens);
}

static void on_close(wsa_conn *c, int code, void *ud)
{
	(void)ud;
	pthread_mutex_lock(&ev.lock);
	ev.last_close_code = code;
	if (wsa_conn_is_authenticated(c))
		ev.closes_authenticated++;
	ev.closes++;
	pthread_cond_broadcast(&ev.cond);
	pthread_mutex_unlock(&ev.lock);
	/* The connection is gone for sending. */
	CHECK_INT(wsa_conn_send_error(c, "x"), WSA_ECLOSED);
}

/* Echo the message back as the host would, borrowed. */
static void on_chat(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	bump(&ev.chats);
	CHECK_INT(wsa_conn_send(c, msg), WSA_OK);
}

static void on_typing(wsa_conn *c, json_t *msg, void *ud)
{
	(void)c, (void)msg, (void)ud;
	bump(&ev.typing);
}

/* Reply with the identity; a new object, so the library adds "id". */
static void on_whoami(wsa_conn *c, json_t *msg, void *ud)
{
	const char *email = wsa_conn_email(c);

	(void)msg, (void)ud;
	CHECK(wsa_conn_userdata(c) == &ev);
	CHECK_STR(wsa_route_path(wsa_conn_route(c)), "/ws/chat");
	wsa_conn_send_new(
	    c, json_pack("{s:s,s:s,s:s?,s:O,s:s}", "type", "whoami", "uid",
			 wsa_conn_uid(c), "email", email, "claims",
			 wsa_conn_claims(c), "conn", wsa_conn_id(c)));
	CHECK(wsa_conn_queued_bytes(c) > 0);
}

static void on_bye(wsa_conn *c, json_t *msg, void *ud)
{
	/* Without a reason when asked (found by fuzzing: UB on a NULL one). */
	const char *reason =
	    json_is_true(json_object_get(msg, "silent")) ? NULL : "bye";

	(void)ud;
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "bye"));
	CHECK_INT(wsa_conn_close(c, 4000, reason), WSA_OK);
	CHECK_INT(wsa_conn_close(c, 4000, "bye"), WSA_ECLOSED);
	CHECK_INT(wsa_conn_send_error(c, "late"), WSA_ECLOSED);
}

/* Send n messages at once from a handler, each with a "pad" of size
 * bytes (and "step" more for each one before it): the queue keeps them
 * all, in order, whatever the socket takes. */
static void on_burst(wsa_conn *c, json_t *msg, void *ud)
{
	int i, n = (int)json_integer_value(json_object_get(msg, "n"));
	size_t size = (size_t)json_integer_value(json_object_get(msg, "size"));
	long step = (long)json_integer_value(json_object_get(msg, "step"));
	char *pad = calloc(1, size + (size_t)(n * labs(step)) + 1);

	(void)ud;
	for (i = 0; i < n; i++) {
		size_t k = size + (size_t)(i * step);

		memset(pad, 'p', k);
		pad[k] = '\0';
		wsa_conn_send_new(c, json_pack("{s:s,s:i,s:s}", "type", "seq",
					       "i", i, "pad", pad));
	}
	free(pad);
}

/* Topics from handlers: join, leave, count members, and publish to the
 * others of a topic. */
static wsa_server *topic_srv;

static void on_join(wsa_conn *c, json_t *msg, void *ud)
{
	const char *t = json_string_value(json_object_get(msg, "topic"));

	(void)ud;
	CHECK_INT(wsa_conn_join(c, t), WSA_OK);
	CHECK(wsa_conn_in_topic(c, t));
	wsa_conn_send_new(c, json_pack("{s:s,s:I}", "type", "joined", "n",
				       (json_int_t)wsa_server_topic_conns(
					   topic_srv, t, NULL, 0)));
}

static void on_leave(wsa_conn *c, json_t *msg, void *ud)
{
	const char *t = json_string_value(json_object_get(msg, "topic"));

	(void)ud;
	CHECK_INT(wsa_conn_leave(c, t), WSA_OK);
	CHECK(!wsa_conn_in_topic(c, t));
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "left"));
}

static void on_members(wsa_conn *c, json_t *msg, void *ud)
{
	const char *t = json_string_value(json_object_get(msg, "topic"));
	wsa_conn *some[4];
	size_t n = wsa_server_topic_conns(topic_srv, t, some, 4), i;

	(void)ud;
	for (i = 0; i < n && i < 4; i++)
		CHECK(wsa_conn_in_topic(some[i], t));
	wsa_conn_send_new(
	    c, json_pack("{s:s,s:I}", "type", "members", "n", (json_int_t)n));
}

static void on_shout(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	CHECK_INT(wsa_server_publish(topic_srv, "t", msg, wsa_conn_id(c)),
		  WSA_OK);
	/* On the service thread the publish is done: tell the sender. */
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "shouted"));
}

/* An asynchronous verifier: logins wait until the test releases them,
 * then are answered from another thread. */
struct slow {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	wsa_auth *pending;
	char *token;
	int calls;
	wsa_jwt *jwt;
};

static struct slow slow = {.lock = PTHREAD_MUTEX_INITIALIZER,
			   .cond = PTHREAD_COND_INITIALIZER};

/* Opaque tokens "tok-UID" name UID; anything else goes to the JWT
 * verifier. Short enough for a Sec-WebSocket-Protocol entry, which
 * libwebsockets 4.1.6 caps at 127 bytes for the whole header. */
static void short_verify(wsa_auth *auth, const char *token, size_t len,
			 void *ud)
{
	if (len > 4 && !memcmp(token, "tok-", 4))
		wsa_auth_accept(auth,
				json_pack("{s:s%}", "uid", token + 4, len - 4));
	else
		wsa_jwt_verifier(auth, token, len, ud);
}

static void slow_verify(wsa_auth *auth, const char *token, size_t len, void *ud)
{
	(void)ud;
	CHECK_INT(strlen(wsa_auth_conn_id(auth)), 22);
	pthread_mutex_lock(&slow.lock);
	slow.pending = auth;
	slow.token = strndup(token, len);
	slow.calls++;
	pthread_cond_broadcast(&slow.cond);
	pthread_mutex_unlock(&slow.lock);
}

/* Wait for a login to reach the slow verifier and answer it from this
 * (non-service) thread. */
static bool slow_answer(void)
{
	struct timespec dl;
	wsa_auth *a;
	json_t *claims = NULL;
	int rc;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += T / 1000;
	pthread_mutex_lock(&slow.lock);
	while (!slow.pending)
		if (pthread_cond_timedwait(&slow.cond, &slow.lock, &dl))
			break;
	a = slow.pending;
	slow.pending = NULL;
	pthread_mutex_unlock(&slow.lock);
	if (!a)
		return false;
	rc = wsa_jwt_verify(slow.jwt, slow.token, strlen(slow.token), &claims);
	free(slow.token);
	if (rc)
		wsa_auth_reject(a, wsa_strerror(rc));
	else
		wsa_auth_accept(a, claims);
	return true;
}

struct server {
	wsa_server *srv;
	wsa_jwt *jwt;
	pthread_t thread;
	int port;
	int run_rc;
};

static void *run_thread(void *arg)
{
	struct server *s = arg;

	s->run_rc = wsa_server_run(s->srv);
	return NULL;
}

static void quiet_log(wsa_log_level l, const char *id, const char *route,
		      const char *msg, void *ud)
{
	(void)l, (void)id, (void)route, (void)msg, (void)ud;
}

static unsigned jwt_leeway; /* for the next server_start */
static wsa_log_fn log_sink; /* for the next server_start; NULL: quiet */
/* More set-up for the next server_start, before it runs; or NULL. */
static void (*setup_more)(wsa_server *srv);

static bool server_start(struct server *s, const wsa_config *cfg_in,
			 wsa_verify_fn verify)
{
	wsa_config cfg;
	wsa_route *r;

	memset(s, 0, sizeof(*s));
	if (cfg_in)
		cfg = *cfg_in;
	else
		wsa_config_init(&cfg);
	if (log_sink)
		cfg.log = log_sink;
	else if (!getenv("WSA_TEST_LOG"))
		cfg.log = quiet_log;
	else
		cfg.log_level = WSA_LOG_DEBUG;
	if (wsa_server_new(&s->srv, &cfg) || wsa_jwt_new(&s->jwt) ||
	    wsa_jwt_add_key(s->jwt, NULL, "HS256", SECRET, strlen(SECRET)))
		return false;
	wsa_jwt_set_leeway(s->jwt, jwt_leeway);
	slow.jwt = s->jwt;
	if (wsa_set_verifier(s->srv, verify ? verify : wsa_jwt_verifier,
			     s->jwt) ||
	    wsa_route_add(s->srv, "/ws/chat", on_open, on_close, &ev, &r) ||
	    wsa_route_handle(r, "chat", on_chat, NULL) ||
	    wsa_route_handle(r, "typing", on_typing, NULL) ||
	    wsa_route_handle(r, "whoami", on_whoami, NULL) ||
	    wsa_route_handle(r, "bye", on_bye, NULL) ||
	    wsa_route_handle(r, "burst", on_burst, NULL) ||
	    wsa_route_handle(r, "join", on_join, NULL) ||
	    wsa_route_handle(r, "leave", on_leave, NULL) ||
	    wsa_route_handle(r, "members", on_members, NULL) ||
	    wsa_route_handle(r, "shout", on_shout, NULL) ||
	    /* "admin": whoami for holders of the admin scope in ops. */
	    wsa_route_handle(r, "admin", on_whoami, NULL) ||
	    wsa_route_require(r, "admin", "scope", "admin") ||
	    wsa_route_require(r, "admin", "groups", "ops") ||
	    wsa_route_upgrade_token(r, true))
		return false;
	topic_srv = s->srv;
	if (setup_more)
		setup_more(s->srv);
	s->port = wsa_server_port(s->srv);
	return pthread_create(&s->thread, NULL, run_thread, s) == 0;
}

static void server_stop(struct server *s)
{
	wsa_server_stop(s->srv);
	pthread_join(s->thread, NULL);
	CHECK_INT(s->run_rc, WSA_OK);
	wsa_server_free(s->srv);
	wsa_jwt_free(s->jwt);
}

/* --------------------------------------------------------- client side */

static char *token_for(const char *uid, long ttl)
{
	char payload[256];

	snprintf(payload, sizeof(payload),
		 "{\"uid\":\"%s\",\"email\":\"%s@example.org\",\"exp\":%ld}",
		 uid, uid, (long)time(NULL) + ttl);
	return tok_hs256(SECRET, payload);
}

static int ws_opened; /* upgrades that reached the route */

/* Upgrade to /ws/chat with extra headers (or NULL); the HTTP status,
 * and the connection in *out (closed when out is NULL). */
static int upgrade_status(const struct server *s, const char *headers,
			  wsc **out)
{
	int status = 0;
	wsc *c =
	    wsc_connect("127.0.0.1", s->port, "/ws/chat", headers, T, &status);

	ws_opened += status == 101;
	if (out)
		*out = c;
	else
		wsc_close(c);
	return status;
}

static wsc *open_ws(const struct server *s)
{
	wsc *c = NULL;

	CHECK_INT(upgrade_status(s, NULL, &c), 101);
	return c;
}

static void send_str(wsc *c, const char *s)
{
	CHECK_INT(wsc_send_text(c, s, strlen(s)), 0);
}

/* Send a login with tok, and free it. */
static void send_token(wsc *c, char *tok)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	free(tok);
	if (c)
		send_str(c, buf);
}

static void send_login(wsc *c, const char *uid, long ttl)
{
	send_token(c, token_for(uid, ttl));
}

/* Expect the next message to be exactly type/message (message may be
 * NULL), with id (a JSON text, or NULL for none). */
static void expect(wsc *c, const char *type, const char *message,
		   const char *id)
{
	json_t *m = wsc_recv_json(c, T), *want_id;

	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_STR(json_string_value(json_object_get(m, "type")), type);
	if (message)
		CHECK_STR(json_string_value(json_object_get(m, "message")),
			  message);
	want_id = id ? json_loads(id, JSON_DECODE_ANY, NULL) : NULL;
	CHECK(json_equal(json_object_get(m, "id"), want_id) ||
	      (!want_id && !json_object_get(m, "id")));
	json_decref(want_id);
	json_decref(m);
}

static wsc *login(const struct server *s, const char *uid)
{
	wsc *c = open_ws(s);

	if (!c)
		return NULL;
	send_login(c, uid, 600);
	expect(c, "auth", "Authenticated", NULL);
	return c;
}

static void expect_close(wsc *c, int code)
{
	CHECK_INT(wsc_wait_close(c, T), code);
	wsc_close(c);
}

static void expect_fail(wsc *c, const char *text, const char *id, int code)
{
	expect(c, "error", text, id);
	expect_close(c, code);
}

/* ------------------------------------------------------------ tests */

static void test_http_level(const struct server *s)
{
	int status = -1;
	wsc *c;

	c = wsc_connect("127.0.0.1", s->port, "/nope", NULL, T, &status);
	CHECK(c == NULL);
	CHECK_INT(status, 404);
	c = wsc_connect("127.0.0.1", s->port, "/ws/chat/", NULL, T, &status);
	CHECK(c == NULL);
	CHECK_INT(status, 404);
	c = wsc_connect("127.0.0.1", s->port, "/ws/chat?x=1", NULL, T, &status);
	CHECK_INT(status, 101);
	ws_opened++;
	wsc_close(c);
	CHECK_INT(wsc_http_status("127.0.0.1", s->port,
				  "GET /ws/chat HTTP/1.1\r\nHost: x\r\n\r\n",
				  T),
		  404);
	/* h2c would bypass the upgrade checks: it must be refused. */
	status =
	    wsc_http_status("127.0.0.1", s->port,
			    "GET /ws/chat HTTP/1.1\r\nHost: x\r\n"
			    "Connection: Upgrade, HTTP2-Settings\r\n"
			    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__"
			    "\r\n\r\n",
			    T);
	CHECK(status != 101);
	CHECK(status >= 400);
}

static void test_first_message(const struct server *s)
{
	static const char *const bad[] = {
	    "not json",
	    "[1,2]",
	    "\"login\"",
	    "{\"type\":\"chat\",\"message\":\"hi\"}",
	    "{\"type\":\"login\"}",
	    "{\"type\":\"login\",\"token\":\"\"}",
	    "{\"type\":\"login\",\"token\":42}",
	    "{\"token\":\"abc\"}",
	    "{\"type\":\"LOGIN\",\"token\":\"abc\"}",
	    "",
	};
	size_t i;
	wsc *c;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = open_ws(s);
		send_str(c, bad[i]);
		expect_fail(c, "First message must be login with token", NULL,
			    1008);
	}
	/* The id of a first message that is an object comes back. */
	c = open_ws(s);
	send_str(c, "{\"type\":\"chat\",\"id\":\"x\"}");
	expect_fail(c, "First message must be login with token", "\"x\"", 1008);
}

static void test_login(const struct server *s)
{
	char *tok, buf[1024];
	wsc *c;

	/* Accepted, with the id echoed. */
	c = open_ws(s);
	tok = token_for("alice", 600);
	snprintf(buf, sizeof(buf),
		 "{\"type\":\"login\",\"token\":\"%s\",\"id\":7}", tok);
	send_str(c, buf);
	expect(c, "auth", "Authenticated", "7");
	send_str(c, "{\"type\":\"whoami\",\"id\":\"q1\"}");
	{
		json_t *m = wsc_recv_json(c, T);

		CHECK_STR(json_string_value(json_object_get(m, "uid")),
			  "alice");
		CHECK_STR(json_string_value(json_object_get(m, "email")),
			  "alice@example.org");
		CHECK_STR(json_string_value(json_object_get(m, "id")), "q1");
		CHECK_INT(strlen(json_string_value(json_object_get(m, "conn"))),
			  22);
		CHECK(json_is_object(json_object_get(m, "claims")));
		json_decref(m);
	}
	wsc_close(c);
	free(tok);

	/* Rejected: wrong secret, expired, garbage. */
	c = open_ws(s);
	tok = tok_hs256("another-secret-another-secret-xx",
			"{\"uid\":\"a\",\"exp\":9999999999}");
	snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	free(tok);
	send_str(c, buf);
	expect_fail(c, "Authentication failed", NULL, 1008);

	c = open_ws(s);
	send_login(c, "bob", -10);
	expect_fail(c, "Authentication failed", NULL, 1008);

	c = open_ws(s);
	send_str(c, "{\"type\":\"login\",\"token\":\"a.b.c\",\"id\":\"z\"}");
	expect_fail(c, "Authentication failed", "\"z\"", 1008);
}

static void test_auth_timeout(void)
{
	struct server s;
	wsa_config cfg;
	wsc *c;

	wsa_config_init(&cfg);
	cfg.auth_timeout_ms = 200;
	CHECK(server_start(&s, &cfg, NULL));
	c = open_ws(&s);
	expect_fail(c, "Authentication timeout", NULL, 1008);
	/* A login in time is not cut off by the timer afterwards. */
	c = login(&s, "carol");
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
	wsc_close(c);
	server_stop(&s);
}

static void test_pipelined(const struct server *s)
{
	char *tok = token_for("dave", 600), buf[4096];
	int n, i;
	wsc *c = open_ws(s);

	/* Login and three chats in one write. */
	n = snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		     tok);
	free(tok);
	CHECK_INT(wsc_send_text(c, buf, (size_t)n), 0);
	for (i = 0; i < 3; i++) {
		n = snprintf(buf, sizeof(buf),
			     "{\"type\":\"chat\",\"message\":\"m%d\"}", i);
		CHECK_INT(wsc_send_text(c, buf, (size_t)n), 0);
	}
	expect(c, "auth", "Authenticated", NULL);
	for (i = 0; i < 3; i++) {
		json_t *m = wsc_recv_json(c, T);

		snprintf(buf, sizeof(buf), "m%d", i);
		CHECK_STR(json_string_value(json_object_get(m, "message")),
			  buf);
		json_decref(m);
	}
	wsc_close(c);
}

/* Append one masked text frame (mask 0, which RFC 6455 allows) to buf. */
static size_t put_frame(unsigned char *buf, const char *text)
{
	size_t n = strlen(text), h = 0;

	buf[h++] = 0x81;
	if (n < 126) {
		buf[h++] = (unsigned char)(0x80 | n);
	} else {
		buf[h++] = 0x80 | 126;
		buf[h++] = (unsigned char)(n >> 8);
		buf[h++] = (unsigned char)n;
	}
	memset(buf + h, 0, 4);
	memcpy(buf + h + 4, text, n);
	return h + 4 + n;
}

/* Login and 50 pings in a single TCP write, held by a slow verifier:
 * every ping is answered, in order, after the auth answer. */
static void test_async_one_write(void)
{
	struct server s;
	unsigned char *buf = malloc(8192);
	char *tok = token_for("pat", 600), text[1024];
	size_t n = 0;
	int i;
	wsc *c;

	CHECK(server_start(&s, NULL, slow_verify));
	c = open_ws(&s);
	snprintf(text, sizeof(text), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	n += put_frame(buf + n, text);
	for (i = 0; i < 50; i++) {
		snprintf(text, sizeof(text), "{\"type\":\"ping\",\"id\":%d}",
			 i);
		n += put_frame(buf + n, text);
	}
	CHECK_INT(wsc_send_raw(c, buf, n), 0);
	CHECK(slow_answer());
	expect(c, "auth", "Authenticated", NULL);
	for (i = 0; i < 50; i++) {
		json_t *m = wsc_recv_json(c, T);

		CHECK_STR(json_string_value(json_object_get(m, "type")),
			  "pong");
		CHECK_INT(json_integer_value(json_object_get(m, "id")), i);
		json_decref(m);
	}
	wsc_close(c);
	free(tok);
	free(buf);
	server_stop(&s);
}

/* A verifier that answers later, from another thread: nothing sent
 * behind the login reaches a handler before the answer, all of it after,
 * in order. */
static void test_async_verifier(void)
{
	struct server s;
	char *tok = token_for("erin", 600), buf[1024];
	int chats, i;
	wsc *c;

	CHECK(server_start(&s, NULL, slow_verify));
	c = open_ws(&s);
	snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	send_str(c, buf);
	for (i = 0; i < 5; i++) {
		snprintf(buf, sizeof(buf),
			 "{\"type\":\"chat\",\"message\":\"p%d\"}", i);
		send_str(c, buf);
	}
	/* The login reached the verifier; wait until it has been seen, then
	 * check that no chat got through before answering. */
	chats = count(&ev.chats);
	{
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += T / 1000;
		pthread_mutex_lock(&slow.lock);
		while (!slow.pending &&
		       !pthread_cond_timedwait(&slow.cond, &slow.lock, &dl))
			;
		pthread_mutex_unlock(&slow.lock);
	}
	CHECK_INT(count(&ev.chats), chats);
	CHECK(slow_answer());
	expect(c, "auth", "Authenticated", NULL);
	for (i = 0; i < 5; i++) {
		json_t *m = wsc_recv_json(c, T);

		snprintf(buf, sizeof(buf), "p%d", i);
		CHECK_STR(json_string_value(json_object_get(m, "message")),
			  buf);
		json_decref(m);
	}
	/* A refresh goes through the slow verifier too; messages behind it
	 * wait for it. */
	snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	send_str(c, buf);
	send_str(c, "{\"type\":\"ping\",\"id\":1}");
	CHECK(slow_answer());
	expect(c, "auth", "Authenticated", NULL);
	expect(c, "pong", NULL, "1");
	/* A rejection from another thread. */
	send_str(c, "{\"type\":\"login\",\"token\":\"x.y.z\"}");
	CHECK(slow_answer());
	expect_fail(c, "Authentication failed", NULL, 1008);
	/* A login whose connection is gone before the answer. */
	c = open_ws(&s);
	snprintf(buf, sizeof(buf), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	send_str(c, buf);
	wsc_close(c);
	CHECK(slow_answer());
	free(tok);
	server_stop(&s);
	CHECK_INT(slow.calls, 4);
}

static void test_expiry_and_refresh(const struct server *s)
{
	char *tok, buf[1024];
	wsc *c;

	/* exp passes on a live connection. */
	c = open_ws(s);
	send_login(c, "frank", 1);
	expect(c, "auth", "Authenticated", NULL);
	expect_fail(c, "Token expired", NULL, 1008);

	/* Refresh with the same identity: answered, and the new expiry
	 * replaces the old one. */
	c = open_ws(s);
	send_login(c, "gina", 2);
	expect(c, "auth", "Authenticated", NULL);
	tok = token_for("gina", 600);
	snprintf(buf, sizeof(buf),
		 "{\"type\":\"login\",\"token\":\"%s\",\"id\":\"r\"}", tok);
	free(tok);
	send_str(c, buf);
	expect(c, "auth", "Authenticated", "\"r\"");
	{
		/* The first token's exp passes within 2 s; the connection
		 * must stay. Waiting is the point of this check. */
		wsc_frame f;

		CHECK_INT(wsc_recv(c, &f, 3000), 0);
	}
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);

	/* Refresh for another identity. */
	send_login(c, "mallory", 600);
	expect_fail(c, "Authentication failed", NULL, 1008);

	/* Refresh with an invalid token, and with none. */
	c = login(s, "hank");
	send_str(c, "{\"type\":\"login\",\"token\":\"bad\"}");
	expect_fail(c, "Authentication failed", NULL, 1008);
	c = login(s, "hank");
	send_str(c, "{\"type\":\"login\"}");
	expect_fail(c, "Authentication failed", NULL, 1008);
}

static void test_dispatch(const struct server *s)
{
	static const char *const invalid[] = {
	    "nope",
	    "[]",
	    "42",
	    "{\"type\":3}",
	    "{\"message\":\"x\"}",
	    "{\"type\":\"a\",\"type\":\"b\"}",
	    "",
	};
	size_t i;
	wsc *c = login(s, "ivy");

	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
	{
		/* WebSocket-level ping: answered by a pong with its data. */
		wsc_frame f;

		CHECK_INT(wsc_send_frame(c, WSC_PING, true, "hb", 2), 0);
		CHECK_INT(wsc_recv(c, &f, T), 1);
		CHECK_INT(f.opcode, WSC_PONG);
		CHECK(f.len == 2 && !memcmp(f.data, "hb", 2));
		wsc_frame_free(&f);
	}
	send_str(c, "{\"type\":\"ping\",\"id\":\"p\"}");
	expect(c, "pong", NULL, "\"p\"");
	send_str(c, "{\"type\":\"ping\",\"id\":{\"x\":1}}"); /* not echoed */
	expect(c, "pong", NULL, NULL);
	send_str(c, "{\"type\":\"nothing\",\"id\":3.5}");
	expect(c, "error", "Unknown message type", "3.5");
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		send_str(c, invalid[i]);
		expect(c, "error", "Invalid message format", NULL);
	}
	/* NUL is allowed in strings, but no type holds one. */
	send_str(c, "{\"type\":\"ping\\u0000x\"}");
	expect(c, "error", "Unknown message type", NULL);
	send_str(c, "{\"type\":\"chat\",\"message\":\"a\\u0000b\"}");
	{
		wsc_frame f;
		json_t *m = NULL;

		if (wsc_recv(c, &f, T) == 1) {
			m = json_loadb((char *)f.data, f.len, JSON_ALLOW_NUL,
				       NULL);
			wsc_frame_free(&f);
		}
		CHECK_INT(json_string_length(json_object_get(m, "message")), 3);
		json_decref(m);
	}
	send_str(c, "{\"id\":9}");
	expect(c, "error", "Invalid message format", "9");
	/* A handler's reply carries the id; typing answers nothing. */
	send_str(c, "{\"type\":\"whoami\",\"id\":[1]}");
	expect(c, "whoami", NULL, NULL);
	send_str(c, "{\"type\":\"typing\",\"isTyping\":true}");
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
	CHECK(count(&ev.typing) >= 1);
	/* A message whose first fragment is empty (found by fuzzing: UB on
	 * an empty buffer). */
	CHECK_INT(wsc_send_frame(c, WSC_TEXT, false, "", 0), 0);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, true, "{\"type\":\"ping\"}", 15),
		  0);
	expect(c, "pong", NULL, NULL);
	/* A message in many fragments is one message. */
	CHECK_INT(wsc_send_frame(c, WSC_TEXT, false, "{\"type\"", 7), 0);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, false, ":\"pi", 4), 0);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, false, "", 0), 0);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, true, "ng\",\"id\":5}", 11), 0);
	expect(c, "pong", NULL, "5");
	/* The queue keeps every reply of a burst, in order. */
	send_str(c, "{\"type\":\"burst\",\"n\":500}");
	for (i = 0; i < 500; i++) {
		json_t *m = wsc_recv_json(c, T);

		CHECK_INT(json_integer_value(json_object_get(m, "i")), i);
		json_decref(m);
		if (!m)
			break;
	}
	/* 800 KB queued at once: written in batches, through short sends,
	 * every frame whole and in order. */
	send_str(c, "{\"type\":\"burst\",\"n\":400,\"size\":2000}");
	for (i = 0; i < 400; i++) {
		json_t *m = wsc_recv_json(c, T);

		CHECK_INT(json_integer_value(json_object_get(m, "i")), i);
		CHECK_INT(json_string_length(json_object_get(m, "pad")), 2000);
		json_decref(m);
		if (!m)
			break;
	}
	/* A host close: queued reply first, then the code. */
	send_str(c, "{\"type\":\"bye\"}");
	expect(c, "bye", NULL, NULL);
	expect_close(c, 4000);
	c = login(s, "ivy");
	send_str(c, "{\"type\":\"bye\",\"silent\":true}");
	expect(c, "bye", NULL, NULL);
	expect_close(c, 4000);
}

/* More than max_queued_bytes (1 MiB) queued for one connection: it is
 * closed with 1008, its close handler runs, another goes on. */
static void test_queue_limit(const struct server *s)
{
	wsc *slow = login(s, "sam"), *other = login(s, "tess");
	int closes = count(&ev.closes);

	send_str(slow, "{\"type\":\"burst\",\"n\":600,\"size\":2000}");
	expect_close(slow, 1008);
	send_str(other, "{\"type\":\"burst\",\"n\":3,\"size\":10}");
	for (int i = 0; i < 3; i++) {
		json_t *m = wsc_recv_json(other, T);

		CHECK_INT(json_integer_value(json_object_get(m, "i")), i);
		json_decref(m);
	}
	wsc_close(other);
	CHECK(count(&ev.closes) >= closes + 1);
}

/* Replies whose frame headers differ in length (2, 4 and 10 bytes: under
 * 126 bytes, under 64 KiB, more), one after another in one queue and
 * from one queue to the next, with the request's "id" spliced into them
 * or not. A reply is {"type":"seq","i":I,"pad":"..."}: 29 bytes and its
 * pad; 7 more with ,"id":7. */
static void test_reply_lengths(const struct server *s)
{
	static const struct {
		int n, size, step;
	} bursts[] = {
	    {12, 90, 1},    {12, 101, -1},    /* across 125 | 126 */
	    {1, 10, 0},	    {3, 65500, 4},    /* across 65535 | 65536 */
	    {3, 65510, -4}, {2, 96, 0},	      /* from 65536 on to short */
	    {1, 65600, 0},  {2, 1000, 65000}, /* long, then 1,000 and 66,000 */
	};
	wsc *c = login(s, "rhea");
	char req[160];
	size_t b;
	int i, id;

	for (id = 0; id < 2; id++)
		for (b = 0; b < sizeof(bursts) / sizeof(*bursts); b++) {
			snprintf(req, sizeof(req),
				 "{\"type\":\"burst\",\"n\":%d,\"size\":%d,"
				 "\"step\":%d%s}",
				 bursts[b].n, bursts[b].size, bursts[b].step,
				 id ? ",\"id\":7" : "");
			send_str(c, req);
			for (i = 0; i < bursts[b].n; i++) {
				json_t *m = wsc_recv_json(c, T);
				const json_t *pad = json_object_get(m, "pad");

				CHECK_INT(
				    json_integer_value(json_object_get(m, "i")),
				    i);
				CHECK_INT(json_string_length(pad),
					  bursts[b].size + i * bursts[b].step);
				CHECK_INT(json_object_size(m), 3 + id);
				if (id)
					CHECK_INT(json_integer_value(
						      json_object_get(m, "id")),
						  7);
				json_decref(m);
			}
		}
	wsc_close(c);
}

static void test_frame_rules(const struct server *s)
{
	char *big = malloc(70000);
	wsc *c;

	memset(big, 'a', 70000);
	memcpy(big, "{\"type\":\"chat\",\"message\":\"", 26);
	memcpy(big + 70000 - 2, "\"}", 2);

	/* Binary, after and before login. */
	c = login(s, "jay");
	CHECK_INT(wsc_send_frame(c, WSC_BINARY, true, "{}", 2), 0);
	expect_close(c, 1003);
	c = open_ws(s);
	CHECK_INT(wsc_send_frame(c, WSC_BINARY, true, "{}", 2), 0);
	expect_close(c, 1003);

	/* Over the size limit in one frame, in fragments, and as the login. */
	c = login(s, "kim");
	CHECK_INT(wsc_send_text(c, big, 70000), 0);
	expect_close(c, 1009);
	c = login(s, "kim");
	CHECK_INT(wsc_send_frame(c, WSC_TEXT, false, big, 40000), 0);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, true, big, 30000), 0);
	expect_close(c, 1009);
	c = open_ws(s);
	CHECK_INT(wsc_send_text(c, big, 70000), 0);
	expect_close(c, 1009);
	/* Exactly at the limit is fine. */
	c = login(s, "kim");
	CHECK_INT(wsc_send_text(c, big, 65536 - 2), 0);
	CHECK_INT(wsc_send_text(c, "\"}", 2), 0); /* separate message */
	expect(c, "error", "Invalid message format", NULL);
	expect(c, "error", "Invalid message format", NULL);
	wsc_close(c);

	/* A frame header announcing 2^62 bytes is refused at once. */
	c = login(s, "lee");
	{
		/* header, mask, then the first bytes of the payload */
		unsigned char hdr[30] = {0x81, 0xff, 0x40, 0, 0, 0, 0,
					 0,    0,    0,	   1, 2, 3, 4};

		CHECK_INT(wsc_send_raw(c, hdr, sizeof(hdr)), 0);
	}
	expect_close(c, 1009);

	/* Invalid UTF-8. */
	c = login(s, "max");
	CHECK_INT(
	    wsc_send_text(c, "{\"type\":\"chat\",\"message\":\"\xff\"}", 29),
	    0);
	expect_close(c, 1007);
	free(big);
}

/* The close handler sees the code the server answered with: the peer's
 * own when its close frame is valid, 1002 or 1007 when it is not (never
 * the peer's invalid code, never an echo of it). */
static void test_peer_close(const struct server *s)
{
	static const struct {
		const char *payload;
		size_t len;
		int answer;
	} cases[] = {
	    {"\x10\xe1", 2, 4321},	      /* valid: echoed */
	    {"\x03\xe8ok \xc3\xa9", 7, 1000}, /* valid reason */
	    {"", 0, 1005},		      /* no code: empty echo */
	    {"\x03", 1, 1002},		      /* one byte */
	    {"\x13\x88", 2, 1002},	      /* 5000 */
	    {"\xff\xff", 2, 1002},	      /* 65535 */
	    {"\x03\xe8\xff", 3, 1007},	      /* reason not UTF-8 */
	    {"\x03\xe8\xe2\x82", 4, 1007},    /* reason cut mid-character */
	};
	size_t i;

	/* Earlier connections closed first: each close below is ours. */
	CHECK_INT(wait_count(&ev.closes, ws_opened), ws_opened);
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int closes = count(&ev.closes);
		wsc *c = i % 2 ? login(s, "pat") : open_ws(s);

		CHECK_INT(wsc_send_frame(c, WSC_CLOSE, true, cases[i].payload,
					 cases[i].len),
			  0);
		CHECK_INT(wsc_wait_close(c, T), cases[i].answer);
		CHECK_INT(wsc_wait_eof(c, T), 1);
		wsc_close(c);
		CHECK_INT(wait_count(&ev.closes, closes + 1), closes + 1);
		CHECK_INT(count(&ev.last_close_code), cases[i].answer);
	}
}

static void test_ids_unique(const struct server *s)
{
	char seen[20][23];
	int i, j;
	static const char alphabet[] =
	    "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

	for (i = 0; i < 20; i++) {
		wsc *c = login(s, "olga");
		json_t *m;

		send_str(c, "{\"type\":\"whoami\"}");
		m = wsc_recv_json(c, T);
		snprintf(seen[i], sizeof(seen[i]), "%s",
			 json_string_value(json_object_get(m, "conn")));
		json_decref(m);
		wsc_close(c);
		CHECK_INT(strlen(seen[i]), 22);
		CHECK_INT(strspn(seen[i], alphabet), 22);
		for (j = 0; j < i; j++)
			CHECK(strcmp(seen[i], seen[j]));
	}
}

/* With a leeway, a token past its exp is accepted, and the connection
 * lives until exp + leeway, not a moment less. */
static void test_leeway(void)
{
	struct server s;
	wsc *c;

	jwt_leeway = 3;
	CHECK(server_start(&s, NULL, NULL));
	jwt_leeway = 0;
	c = open_ws(&s);
	send_login(c, "quinn", -1);
	expect(c, "auth", "Authenticated", NULL);
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
	{
		wsc_frame f;

		CHECK_INT(wsc_recv(c, &f, 800), 0); /* not closed at once */
	}
	expect_fail(c, "Token expired", NULL, 1008);
	server_stop(&s);
}

/* Sends from host threads, addressed by connection id: all arrive, each
 * thread's in order; a close by id from another thread. */
struct remote_job {
	wsa_server *srv;
	const char *conn_id;
	int thread, count;
};

static void *remote_sender(void *arg)
{
	struct remote_job *j = arg;
	int i;

	for (i = 0; i < j->count; i++)
		CHECK_INT(
		    wsa_server_send_new(j->srv, j->conn_id,
					json_pack("{s:s,s:i,s:i}", "type", "r",
						  "t", j->thread, "n", i)),
		    WSA_OK);
	return NULL;
}

static void test_remote(void)
{
	struct remote_job jobs[4];
	pthread_t th[4];
	int next[4] = {0}, i, got = 0;
	char id[23] = "";
	struct server s;
	json_t *m;
	wsc *c;

	CHECK(server_start(&s, NULL, NULL));
	c = login(&s, "rita");
	send_str(c, "{\"type\":\"whoami\"}");
	m = wsc_recv_json(c, T);
	snprintf(id, sizeof(id), "%s",
		 json_string_value(json_object_get(m, "conn")));
	json_decref(m);
	for (i = 0; i < 4; i++) {
		jobs[i] = (struct remote_job){s.srv, id, i, 2500};
		pthread_create(&th[i], NULL, remote_sender, &jobs[i]);
	}
	for (; got < 10000; got++) {
		int t, n;

		m = wsc_recv_json(c, T);
		if (!m)
			break;
		t = (int)json_integer_value(json_object_get(m, "t"));
		n = (int)json_integer_value(json_object_get(m, "n"));
		CHECK(t >= 0 && t < 4);
		if (t >= 0 && t < 4)
			CHECK_INT(n, next[t]++);
		json_decref(m);
	}
	CHECK_INT(got, 10000);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* Unknown ids are dropped; bad arguments refused. */
	CHECK_INT(wsa_server_send_new(s.srv, "2222222222222222222222",
				      json_pack("{s:s}", "type", "x")),
		  WSA_OK);
	CHECK_INT(wsa_server_send_new(s.srv, "short", json_object()),
		  WSA_EINVAL);
	CHECK_INT(wsa_server_send_new(s.srv, id, json_array()), WSA_EINVAL);
	CHECK_INT(wsa_server_close(s.srv, id, 1005, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_close(s.srv, id, 4001, "by id"), WSA_OK);
	expect_close(c, 4001);
	wsa_server_stop(s.srv);
	CHECK_INT(wsa_server_send_new(s.srv, id, json_object()), WSA_ESTATE);
	server_stop(&s);
}

struct publish_job {
	wsa_server *srv;
	int thread, count;
};

/* The fan-out calls borrow: this one takes the message, for brevity. */
static int publish_new(wsa_server *srv, const char *topic, json_t *msg,
		       const char *except)
{
	int rc = wsa_server_publish(srv, topic, msg, except);

	json_decref(msg);
	return rc;
}

static void *publisher(void *arg)
{
	struct publish_job *j = arg;

	for (int i = 0; i < j->count; i++)
		CHECK_INT(publish_new(j->srv, "t",
				      json_pack("{s:s,s:i,s:i}", "type", "p",
						"t", j->thread, "n", i),
				      NULL),
			  WSA_OK);
	return NULL;
}

static json_t *ask(wsc *c, const char *text)
{
	send_str(c, text);
	return wsc_recv_json(c, T);
}

/* The next message is type, or (type NULL) none comes before a pong. */
static void next_is(wsc *c, const char *type)
{
	json_t *m;

	send_str(c, "{\"type\":\"ping\"}");
	m = wsc_recv_json(c, T);
	CHECK_STR(json_string_value(json_object_get(m, "type")),
		  type ? type : "pong");
	json_decref(m);
	if (type)
		expect(c, "pong", NULL, NULL);
}

#define NSUB 20

static void test_topics(void)
{
	struct publish_job jobs[4];
	pthread_t th[4];
	wsc *c[NSUB];
	struct server s;
	char id[23], uid[16];
	json_t *m;
	int i, k;

	CHECK(server_start(&s, NULL, NULL));
	for (i = 0; i < NSUB; i++) {
		snprintf(uid, sizeof(uid), "u%d", i < 2 ? 0 : i);
		c[i] = login(&s, uid); /* c[0] and c[1] are both user u0 */
		m = ask(c[i], "{\"type\":\"join\",\"topic\":\"t\"}");
		CHECK_INT(json_integer_value(json_object_get(m, "n")), i + 1);
		json_decref(m);
	}
	/* Four threads publish at once: everyone gets everything, each
	 * thread's messages in order. */
	for (i = 0; i < 4; i++) {
		jobs[i] = (struct publish_job){s.srv, i, 500};
		pthread_create(&th[i], NULL, publisher, &jobs[i]);
	}
	for (k = 0; k < NSUB; k++) {
		int next[4] = {0}, got;

		for (got = 0; got < 2000; got++) {
			int t, n;

			m = wsc_recv_json(c[k], T);
			if (!m)
				break;
			t = (int)json_integer_value(json_object_get(m, "t"));
			n = (int)json_integer_value(json_object_get(m, "n"));
			if (t >= 0 && t < 4)
				CHECK_INT(n, next[t]++);
			json_decref(m);
		}
		CHECK_INT(got, 2000);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* Published by a member to the others only. */
	send_str(c[5], "{\"type\":\"shout\"}");
	expect(c[5], "shouted", NULL, NULL);
	for (k = 0; k < NSUB; k++)
		next_is(c[k], k == 5 ? NULL : "shout");
	/* To one user's connections; to the route. */
	m = json_pack("{s:s}", "type", "to-u0");
	CHECK_INT(wsa_server_send_uid(s.srv, "u0", m), WSA_OK);
	json_decref(m);
	/* Calls from this thread are queued; once one recipient has its
	 * message every recipient's is queued, so a ping then tells the
	 * rest. */
	expect(c[0], "to-u0", NULL, NULL);
	expect(c[1], "to-u0", NULL, NULL);
	next_is(c[2], NULL);
	m = json_pack("{s:s}", "type", "all");
	CHECK_INT(wsa_server_broadcast(s.srv, "/ws/chat", m), WSA_OK);
	json_decref(m);
	for (k = 0; k < NSUB; k++)
		expect(c[k], "all", NULL, NULL);
	/* Leaving, by message and by closing. */
	m = ask(c[3], "{\"type\":\"leave\",\"topic\":\"t\"}");
	CHECK_STR(json_string_value(json_object_get(m, "type")), "left");
	json_decref(m);
	for (k = 10; k < NSUB; k++)
		wsc_close(c[k]);
	/* Closes are handled in order, before the next message: ask until
	 * the count settles at the 9 left, bounded. */
	for (i = 0; i < 100; i++) {
		m = ask(c[0], "{\"type\":\"members\",\"topic\":\"t\"}");
		k = (int)json_integer_value(json_object_get(m, "n"));
		json_decref(m);
		if (k == 9)
			break;
	}
	CHECK_INT(k, 9);
	/* Joined from another thread, by id. */
	m = ask(c[3], "{\"type\":\"whoami\"}");
	snprintf(id, sizeof(id), "%s",
		 json_string_value(json_object_get(m, "conn")));
	json_decref(m);
	CHECK_INT(wsa_server_join(s.srv, id, "z"), WSA_OK);
	CHECK_INT(
	    publish_new(s.srv, "z", json_pack("{s:s}", "type", "zed"), NULL),
	    WSA_OK);
	expect(c[3], "zed", NULL, NULL);
	CHECK_INT(wsa_server_leave(s.srv, id, "z"), WSA_OK);
	CHECK_INT(
	    publish_new(s.srv, "z", json_pack("{s:s}", "type", "zed"), NULL),
	    WSA_OK);
	/* A marker queued after the publish: nothing may come before it. */
	CHECK_INT(
	    wsa_server_send_new(s.srv, id, json_pack("{s:s}", "type", "mark")),
	    WSA_OK);
	expect(c[3], "mark", NULL, NULL);
	CHECK_INT(publish_new(s.srv, "", json_object(), NULL), WSA_EINVAL);
	for (k = 0; k < 10; k++)
		wsc_close(c[k]);
	server_stop(&s);
}

/* With an allow-list, only listed origins reach the gate; a repeated or
 * unlisted Origin gets 403; no Origin at all goes on. */
static void test_origin(void)
{
	static const char *const origins[] = {"https://good.example",
					      "http://localhost:8080", NULL};
	static const struct {
		const char *headers;
		int status;
	} cases[] = {
	    {"Origin: https://good.example\r\n", 101},
	    {"Origin: http://localhost:8080\r\n", 101},
	    {NULL, 101},
	    {"Origin: https://evil.example\r\n", 403},
	    {"Origin: https://good.example.evil\r\n", 403},
	    {"Origin: HTTPS://GOOD.EXAMPLE\r\n", 403},
	    {"Origin: null\r\n", 403},
	    {"Origin: https://good.example\r\nOrigin: https://good.example\r\n",
	     403},
	};
	struct server s;
	wsa_config cfg;
	size_t i;

	wsa_config_init(&cfg);
	cfg.allowed_origins = origins;
	CHECK(server_start(&s, &cfg, NULL));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status = 0;
		wsc *c = wsc_connect("127.0.0.1", s.port, "/ws/chat",
				     cases[i].headers, T, &status);

		CHECK_INT(status, cases[i].status);
		if (c && status == 101) {
			ws_opened++;
			send_login(c, "olive", 600);
			expect(c, "auth", "Authenticated", NULL);
		}
		wsc_close(c);
	}
	server_stop(&s);
}

static void test_idle(void)
{
	struct server s;
	wsa_config cfg;
	wsc *c;

	wsa_config_init(&cfg);
	cfg.idle_timeout_ms = 300;
	CHECK(server_start(&s, &cfg, NULL));
	c = login(&s, "nina");
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
	expect_close(c, 1001);
	server_stop(&s);
}

/* Stop: queued replies go out, then 1001 to everyone; close handlers
 * run once each. */
static void test_stop(void)
{
	struct server s;
	wsc *a, *b;
	int i, closes;

	CHECK(server_start(&s, NULL, NULL));
	a = login(&s, "oscar");
	b = open_ws(&s);
	closes = count(&ev.closes);
	send_str(a, "{\"type\":\"burst\",\"n\":200}");
	{
		/* The burst has begun before the stop. */
		json_t *m = wsc_recv_json(a, T);

		CHECK_INT(json_integer_value(json_object_get(m, "i")), 0);
		json_decref(m);
	}
	wsa_server_stop(s.srv);
	pthread_join(s.thread, NULL);
	CHECK_INT(s.run_rc, WSA_OK);
	for (i = 1; i < 200; i++) {
		json_t *m = wsc_recv_json(a, T);

		CHECK_INT(json_integer_value(json_object_get(m, "i")), i);
		json_decref(m);
		if (!m)
			break;
	}
	CHECK_INT(wsc_wait_close(a, T), 1001);
	CHECK_INT(wsc_wait_close(b, T), 1001);
	CHECK_INT(count(&ev.closes), closes + 2);
	wsc_close(a);
	wsc_close(b);
	wsa_server_free(s.srv);
	wsa_jwt_free(s.jwt);
}

/* A program's wsa_config is as large as its header says (cfg->size): a
 * shorter one from an older header, a longer one from a newer. Buffers of
 * exactly that size, so a sanitizer sees any access beyond. */
/* The older layout is read through the current type on purpose. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
static void test_config_size(void)
{
	/* The first sized layout (0.2.0) ends with permessage_deflate. */
	size_t old = offsetof(wsa_config, permessage_deflate) + sizeof(bool);
	size_t big = sizeof(wsa_config) + 16;
	wsa_config *cfg = malloc(big), zero = {0};
	wsa_server *srv;

	CHECK(cfg != NULL);
	CHECK_INT(wsa_server_new(&srv, &zero), WSA_EINVAL); /* no init */
	cfg = realloc(cfg, old);
	wsa_config_init_size(cfg, old);
	CHECK(cfg->size == old && cfg->threads == 1);
	cfg->log = quiet_log;
	CHECK_INT(wsa_server_new(&srv, cfg), WSA_OK);
	wsa_server_free(srv);
	cfg->size = old - 1; /* shorter than any sized layout */
	CHECK_INT(wsa_server_new(&srv, cfg), WSA_EINVAL);
	cfg = realloc(cfg, big);
	memset(cfg, 0xff, big);
	wsa_config_init_size(cfg, big);
	CHECK(cfg->size == big && ((unsigned char *)cfg)[big - 1] == 0);
	cfg->log = quiet_log;
	CHECK_INT(wsa_server_new(&srv, cfg), WSA_OK); /* unknown fields 0 */
	wsa_server_free(srv);
	((unsigned char *)cfg)[big - 1] = 1; /* a field this library lacks */
	CHECK_INT(wsa_server_new(&srv, cfg), WSA_EINVAL);
	free(cfg);
}
#pragma GCC diagnostic pop

static void test_api_errors(void)
{
	wsa_server *srv, *srv2;
	wsa_route *r;
	wsa_config cfg;

	CHECK_INT(wsa_server_new(NULL, NULL), WSA_EINVAL);
	wsa_config_init(&cfg);
	cfg.log = quiet_log;
	cfg.port = 70000;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_EINVAL);
	CHECK(srv == NULL);
	cfg.port = 0;
	cfg.rx_buffer_size = (1u << 20) + 1;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_EINVAL);
	cfg.rx_buffer_size = 127; /* a control frame would not fit */
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_EINVAL);
	cfg.rx_buffer_size = 0; /* the default */
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	CHECK(wsa_server_port(srv) > 0);
	cfg.port = wsa_server_port(srv); /* taken */
	CHECK_INT(wsa_server_new(&srv2, &cfg), WSA_ELISTEN);
	CHECK_INT(wsa_route_add(srv, "nope", NULL, NULL, NULL, &r), WSA_EINVAL);
	CHECK_INT(wsa_route_add(srv, "/a", NULL, NULL, NULL, &r), WSA_OK);
	CHECK_STR(wsa_route_path(r), "/a");
	CHECK_INT(wsa_route_add(srv, "/a", NULL, NULL, NULL, NULL), WSA_EEXIST);
	CHECK_INT(wsa_route_handle(r, "login", on_chat, NULL), WSA_EINVAL);
	CHECK_INT(wsa_route_handle(r, "x", on_chat, NULL), WSA_OK);
	CHECK_INT(wsa_route_handle(r, "x", on_chat, NULL), WSA_EEXIST);
	CHECK_INT(wsa_set_verifier(srv, NULL, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_run(srv), WSA_ENOVERIFIER);
	CHECK_INT(wsa_set_verifier(srv, slow_verify, NULL), WSA_OK);
	wsa_server_stop(srv); /* before run: run returns at once */
	CHECK_INT(wsa_server_run(srv), WSA_OK);
	CHECK_INT(wsa_server_run(srv), WSA_ESTATE);
	CHECK_INT(wsa_route_add(srv, "/b", NULL, NULL, NULL, NULL), WSA_ESTATE);
	wsa_server_free(srv);
	wsa_server_free(NULL);
	CHECK_STR(wsa_strerror(WSA_ELISTEN),
		  "cannot listen on the address and port");
	CHECK_STR(wsa_strerror(12345), "unknown error");
	CHECK_INT(wsa_version(), WSA_VERSION_NUMBER);
}

/* ------------------------------------------------- limits and tokens */

/* A token for uid with extra claims (JSON members, or ""). */
static char *token_with(const char *uid, const char *extra)
{
	char payload[512];

	snprintf(payload, sizeof(payload), "{\"uid\":\"%s\",\"exp\":%ld%s%s}",
		 uid, (long)time(NULL) + 600, *extra ? "," : "", extra);
	return tok_hs256(SECRET, payload);
}

static wsc *login_with(const struct server *s, const char *uid,
		       const char *extra)
{
	wsc *c = open_ws(s);

	send_token(c, token_with(uid, extra));
	if (!c)
		return NULL;
	expect(c, "auth", "Authenticated", NULL);
	return c;
}

/* The connection still answers a ping. */
static void expect_alive(wsc *c)
{
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong", NULL, NULL);
}

/* Upgrades are refused (503) past the server's and an address's limit,
 * and let in again once a connection has gone. */
static void test_connection_limits(void)
{
	struct server s;
	wsa_config cfg;
	wsc *a1, *a2, *b1, *c;
	int closes;

	wsa_config_init(&cfg);
	cfg.max_connections = 3;
	cfg.max_connections_per_address = 2;
	CHECK(server_start(&s, &cfg, NULL));
	wsc_set_source("127.0.0.11");
	CHECK_INT(upgrade_status(&s, NULL, &a1), 101);
	CHECK_INT(upgrade_status(&s, NULL, &a2), 101);
	CHECK_INT(upgrade_status(&s, NULL, NULL), 503);
	wsc_set_source("127.0.0.12");
	CHECK_INT(upgrade_status(&s, NULL, &b1), 101);
	wsc_set_source("127.0.0.13"); /* the server is full */
	CHECK_INT(upgrade_status(&s, NULL, NULL), 503);
	/* Connections held over the limit never reached the route; those
	 * let in still work. */
	send_login(a1, "lim", 600);
	expect(a1, "auth", "Authenticated", NULL);
	closes = count(&ev.closes);
	wsc_send_close(a2, 1000, NULL);
	CHECK_INT(wsc_wait_close(a2, T), 1000);
	wsc_close(a2);
	/* Once the server has closed it, its place is free again. */
	CHECK_INT(wait_count(&ev.closes, closes + 1), closes + 1);
	wsc_set_source("127.0.0.11");
	CHECK_INT(upgrade_status(&s, NULL, &c), 101);
	wsc_close(c);
	wsc_close(a1);
	wsc_close(b1);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* A connection the server is closing, waiting for a peer that never
 * answers its close frame, keeps no one out. */
static void test_closing_leaves_limits(void)
{
	struct server s;
	wsa_config cfg;
	wsc *mute, *other, *c = NULL;

	wsa_config_init(&cfg);
	cfg.max_connections_per_address = 2;
	CHECK(server_start(&s, &cfg, NULL));
	wsc_set_source("127.0.0.41");
	mute = open_ws(&s);
	other = open_ws(&s);
	CHECK_INT(upgrade_status(&s, NULL, NULL), 503);
	/* A binary frame: the server closes with 1003 and waits up to 3 s
	 * for a close frame this client never sends (it does not read). */
	CHECK_INT(wsc_send_frame(mute, WSC_BINARY, true, "x", 1), 0);
	CHECK_INT(wsc_wait_close(other, 0), 0); /* (other is still open) */
	/* At once, well before that wait is over: let in. The close frame
	 * reaching the server is the event; retry briefly for it. */
	{
		struct timespec t0, t;
		int status = 0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			wsc_close(c);
			c = NULL;
			status = upgrade_status(&s, NULL, &c);
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (status != 101 &&
			 (t.tv_sec - t0.tv_sec) * 1000 +
				 (t.tv_nsec - t0.tv_nsec) / 1000000 <
			     1500);
		CHECK_INT(status, 101);
	}
	wsc_close(c);
	wsc_close(other);
	wsc_close(mute);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* Sockets that are not WebSockets yet: as many again as the WebSockets
 * an address may have; past that, hung up at once. */
static void test_socket_limits(void)
{
	struct server s;
	wsa_config cfg;
	wsc *raw[4], *extra, *c = NULL;
	int i, status = 0;
	struct timespec t0, t;

	wsa_config_init(&cfg);
	cfg.max_connections_per_address = 2;
	CHECK(server_start(&s, &cfg, NULL));
	wsc_set_source("127.0.0.31");
	for (i = 0; i < 4; i++) {
		raw[i] = wsc_connect_raw("127.0.0.1", s.port, T);
		CHECK(raw[i] != NULL);
	}
	extra = wsc_connect_raw("127.0.0.1", s.port, T);
	CHECK(extra != NULL);
	if (extra)
		CHECK_INT(wsc_wait_eof(extra, T), 1);
	wsc_close(extra);
	for (i = 0; i < 4; i++) /* the server still holds them */
		CHECK_INT(wsc_wait_eof(raw[i], 0), 0);
	for (i = 0; i < 4; i++)
		wsc_close(raw[i]);
	/* The server counts them down as it sees them close: retry until
	 * an upgrade goes through, for at most T. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		wsc_close(c);
		c = wsc_connect("127.0.0.1", s.port, "/ws/chat", NULL, T,
				&status);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (status != 101 && (t.tv_sec - t0.tv_sec) * 1000 < T);
	CHECK_INT(status, 101);
	ws_opened += status == 101;
	wsc_close(c);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* Past the rate and its burst a message is refused with its id, and the
 * connection is not read until it may send again; past the burst in
 * refusals it is closed. */
/* Pings with ids first .. first + n - 1, without waiting. */
static void send_pings(wsc *c, int first, int n)
{
	int i;

	for (i = first; i < first + n; i++) {
		char msg[64];

		snprintf(msg, sizeof(msg), "{\"type\":\"ping\",\"id\":%d}", i);
		send_str(c, msg);
	}
}

static void test_rate_limit(void)
{
	struct server s;
	wsa_config cfg;
	int i, next = 0, pongs = 0, errors = 0, code = 0;
	wsc *c, *other;

	wsa_config_init(&cfg);
	cfg.rate_limit = 10; /* a message every 100 ms */
	cfg.rate_burst = 5;
	CHECK(server_start(&s, &cfg, NULL));
	c = login(&s, "flood");
	other = login(&s, "calm");
	send_pings(c, 0, 30);
	/* In order: the burst, then a refusal each time the connection is
	 * read again and one more message fits, until the refusals pass
	 * the burst. */
	while (!code) {
		wsc_frame f;
		json_t *m;

		if (wsc_recv(c, &f, T) != 1)
			break;
		if (f.opcode == WSC_CLOSE) {
			code = wsc_close_code(&f);
			wsc_frame_free(&f);
			break;
		}
		m = json_loadb((const char *)f.data, f.len, 0, NULL);
		wsc_frame_free(&f);
		CHECK_INT((int)json_integer_value(json_object_get(m, "id")),
			  next++);
		if (!strcmp(json_string_value(json_object_get(m, "type")),
			    "pong")) {
			pongs++;
		} else {
			CHECK_STR(
			    json_string_value(json_object_get(m, "message")),
			    "Rate limit exceeded");
			CHECK(pongs >= 5);
			errors++;
		}
		json_decref(m);
	}
	CHECK_INT(code, 1008);
	CHECK_INT(errors, 6);
	CHECK(pongs >= 10); /* one more after each pause */
	wsc_close(c);
	/* The others are not affected. */
	expect_alive(other);
	wsc_close(other);
	/* Logging in again does not refill the burst: from the abuser's
	 * address one message goes at once, then one per cost... */
	c = login(&s, "flood");
	send_pings(c, 0, 2);
	expect(c, "pong", NULL, "0");
	expect(c, "error", "Rate limit exceeded", "1");
	/* Invalid UTF-8 closes (1007) over the limit too, whatever else is
	 * wrong with the text: the rate verdict never hides it. */
	{
		static const char bad[] =
		    "{\"type\":\"ping\",,\"id\":\"\xc0\xaf\"}";

		CHECK_INT(wsc_send_text(c, bad, sizeof(bad) - 1), 0);
	}
	expect_close(c, 1007);
	/* ...while another address has its burst. */
	wsc_set_source("127.0.0.51");
	c = login(&s, "calm");
	send_pings(c, 0, 5);
	for (i = 0; i < 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "%d", i);
		expect(c, "pong", NULL, id);
	}
	wsc_close(c);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* A message type that needs claims: refused without them, with its id;
 * the connection goes on. */
static void test_required_claims(void)
{
	static const struct {
		const char *claims;
		bool allowed;
	} cases[] = {
	    {"\"scope\":\"read admin\",\"groups\":[\"dev\",\"ops\"]", true},
	    {"\"scope\":\"admin\",\"groups\":\"ops\"", true},
	    {"\"scope\":\"read\",\"groups\":[\"ops\"]", false},
	    {"\"scope\":\"administrator\",\"groups\":[\"ops\"]", false},
	    {"\"scope\":\"admin\"", false},
	    {"\"scope\":[\"admin\"],\"groups\":[\"ops\"]", true},
	    {"\"scope\":\"admin\",\"groups\":[\"ops \"]", false},
	    {"\"scope\":1,\"groups\":[\"ops\"]", false},
	    {"", false},
	};
	struct server s;
	size_t i;

	CHECK(server_start(&s, NULL, NULL));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wsc *c = login_with(&s, "ada", cases[i].claims);

		send_str(c, "{\"type\":\"admin\",\"id\":7}");
		if (cases[i].allowed)
			expect(c, "whoami", NULL, "7");
		else
			expect(c, "error", "Forbidden", "7");
		expect_alive(c);
		wsc_close(c);
	}
	server_stop(&s);
}

/* A token at the upgrade, in the Authorization header or a subprotocol
 * entry; 401 when it is refused; never from the query string. */
static void test_upgrade_token(void)
{
	char *good = token_for("uma", 600), *expired = token_for("uma", -60);
	char hdr[2048], proto[64] = "";
	struct server s;
	wsc *c;

	CHECK(server_start(&s, NULL, NULL));
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, &c), 101);
	expect(c, "auth", "Authenticated", NULL);
	send_str(c, "{\"type\":\"whoami\"}");
	expect(c, "whoami", NULL, NULL);
	wsc_close(c);

	snprintf(hdr, sizeof(hdr), "authorization: bearer   %s  \r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, &c), 101);
	expect(c, "auth", "Authenticated", NULL);
	wsc_close(c);

	/* Too long for libwebsockets 4.1.6 (127 bytes): a clear refusal. */
	snprintf(hdr, sizeof(hdr),
		 "Sec-WebSocket-Protocol: wsa, wsa.bearer.%s\r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 431);
	server_stop(&s);

	CHECK(server_start(&s, NULL, short_verify));
	CHECK_INT(
	    upgrade_status(
		&s, "Sec-WebSocket-Protocol: wsa, wsa.bearer.tok-uma\r\n", &c),
	    101);
	CHECK(c && wsc_header(c, "Sec-WebSocket-Protocol", proto,
			      sizeof(proto)) >= 0);
	CHECK_STR(proto, "wsa");
	expect(c, "auth", "Authenticated", NULL);
	send_str(c, "{\"type\":\"whoami\"}");
	expect(c, "whoami", NULL, NULL);
	wsc_close(c);

	/* Refused: expired, forged, empty, twice, in both places. */
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", expired);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 401);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %sx\r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 401);
	CHECK_INT(upgrade_status(&s, "Authorization: Bearer \r\n", NULL), 401);
	CHECK_INT(upgrade_status(&s,
				 "Sec-WebSocket-Protocol: wsa, "
				 "wsa.bearer.tok-a, wsa.bearer.tok-b\r\n",
				 NULL),
		  401);
	CHECK_INT(upgrade_status(
		      &s, "Sec-WebSocket-Protocol: wsa, wsa.bearer.\r\n", NULL),
		  401);
	snprintf(hdr, sizeof(hdr),
		 "Authorization: Bearer %s\r\n"
		 "Sec-WebSocket-Protocol: wsa, wsa.bearer.tok-uma\r\n",
		 good);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 401);

	/* Another scheme is not ours: the first message logs in. */
	CHECK_INT(upgrade_status(&s, "Authorization: Basic dTpw\r\n", &c), 101);
	send_login(c, "uma", 600);
	expect(c, "auth", "Authenticated", NULL);
	wsc_close(c);

	/* A token in the query string is no login. */
	snprintf(hdr, sizeof(hdr), "/ws/chat?token=%s", good);
	c = wsc_connect("127.0.0.1", s.port, hdr, NULL, T, NULL);
	ws_opened += c != NULL;
	send_str(c, "{\"type\":\"ping\"}");
	expect_fail(c, "First message must be login with token", NULL, 1008);
	server_stop(&s);

	/* A verifier that answers later cannot serve an upgrade: 401. */
	CHECK(server_start(&s, NULL, slow_verify));
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 401);
	CHECK(slow_answer()); /* answered late: dropped, no leak */
	server_stop(&s);
	free(good);
	free(expired);
}

struct revoke_job {
	wsa_server *srv;
	bool by_uid;
	long long before;
	int rc;
};

static void *revoke_thread(void *arg)
{
	struct revoke_job *j = arg;

	j->rc = j->by_uid
		    ? wsa_server_close_uid(j->srv, "bob", 4002, "Logged out")
		    : wsa_server_revoke_before(j->srv, j->before, 4001,
					       "Token revoked");
	return NULL;
}

/* Logout by uid and revocation by issue time, from another thread. */
static void test_revocation(void)
{
	long now = (long)time(NULL);
	char old_iat[32], new_iat[32];
	struct revoke_job job;
	struct server s;
	pthread_t th;
	wsc *old, *fresh, *no_iat, *bob1, *bob2, *later;

	snprintf(old_iat, sizeof(old_iat), "\"iat\":%ld", now - 100);
	snprintf(new_iat, sizeof(new_iat), "\"iat\":%ld", now);
	CHECK(server_start(&s, NULL, NULL));
	old = login_with(&s, "olga", old_iat);
	fresh = login_with(&s, "fred", new_iat);
	no_iat = login_with(&s, "nina", "");
	bob1 = login_with(&s, "bob", new_iat);
	bob2 = login_with(&s, "bob", new_iat);

	job = (struct revoke_job){s.srv, false, now - 10, -1};
	pthread_create(&th, NULL, revoke_thread, &job);
	pthread_join(th, NULL);
	CHECK_INT(job.rc, WSA_OK);
	expect_close(old, 4001);
	expect_close(no_iat, 4001);
	expect_alive(fresh);
	/* Tokens issued before the time no longer log in. */
	later = open_ws(&s);
	send_token(later, token_with("olga", old_iat));
	expect_fail(later, "Authentication failed", NULL, 1008);
	/* An earlier time changes nothing. */
	CHECK_INT(wsa_server_revoke_before(s.srv, now - 1000, 4001, NULL),
		  WSA_OK);
	expect_alive(fresh);

	job = (struct revoke_job){s.srv, true, 0, -1};
	pthread_create(&th, NULL, revoke_thread, &job);
	pthread_join(th, NULL);
	CHECK_INT(job.rc, WSA_OK);
	expect_close(bob1, 4002);
	expect_close(bob2, 4002);
	expect_alive(fresh);
	wsc_close(fresh);

	CHECK_INT(wsa_server_close_uid(s.srv, "", 4002, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_close_uid(s.srv, "bob", 1005, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_revoke_before(s.srv, 0, 4001, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_revoke_before(NULL, 5, 4001, NULL), WSA_EINVAL);
	server_stop(&s);
}

/* Before the login: a message over max_login_size is closed with 1009;
 * failed logins from one address throttle its logins, not others'. */
static void test_preauth_limits(void)
{
	struct server s;
	wsa_config cfg;
	char big[600], hdr[1024];
	char *good = token_for("tom", 600);
	wsc *c;
	int i;

	wsa_config_init(&cfg);
	cfg.max_login_size = 512;
	cfg.max_failed_logins = 3;
	CHECK(server_start(&s, &cfg, NULL));
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	c = open_ws(&s);
	send_str(c, big);
	expect_close(c, 1009);
	/* After the login the message size limit applies. */
	c = login(&s, "tom");
	send_str(c, big);
	expect(c, "error", "Invalid message format", NULL);
	wsc_close(c);

	wsc_set_source("127.0.0.21");
	for (i = 0; i < 3; i++) {
		c = open_ws(&s);
		send_str(c, "{\"type\":\"login\",\"token\":\"a.b.c\"}");
		expect_fail(c, "Authentication failed", NULL, 1008);
	}
	/* Throttled: even a good token fails, at the upgrade too. */
	c = open_ws(&s);
	send_login(c, "tom", 600);
	expect_fail(c, "Authentication failed", NULL, 1008);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", good);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 401);
	wsc_set_source("127.0.0.22");
	c = login(&s, "tom");
	wsc_close(c);
	CHECK_INT(upgrade_status(&s, hdr, &c), 101);
	expect(c, "auth", "Authenticated", NULL);
	wsc_close(c);
	wsc_set_source(NULL);
	free(good);
	server_stop(&s);
}

/* A client that dribbles its upgrade is cut off at the handshake
 * timeout, however steadily the bytes come. */
static void test_handshake_timeout(void)
{
	static const char start[] = "GET /ws/chat HTTP/1.1\r\nHost: x\r\n"
				    "Upgrade: websocket\r\nX-Slow: ";
	struct server s;
	wsa_config cfg;
	struct timespec t0, t1;
	int i, eof = 0;
	wsc *c;

	wsa_config_init(&cfg);
	cfg.handshake_timeout_ms = 1000;
	CHECK(server_start(&s, &cfg, NULL));
	c = wsc_connect_raw("127.0.0.1", s.port, T);
	CHECK(c != NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (c)
		wsc_send_raw(c, start, sizeof(start) - 1);
	/* One more header byte every 50 ms, for up to 8 s. */
	for (i = 0; c && i < 160 && !eof; i++)
		eof = wsc_send_raw(c, "a", 1) < 0 || wsc_wait_eof(c, 50) == 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(eof);
	/* Cut off at the timeout (whole seconds), not at lws' own 10 s. */
	CHECK(t1.tv_sec - t0.tv_sec < 4);
	wsc_close(c);
	/* A socket that sends nothing at all goes the same way. */
	c = wsc_connect_raw("127.0.0.1", s.port, T);
	CHECK(c && wsc_wait_eof(c, 4000) == 1);
	wsc_close(c);
	server_stop(&s);
}

static const char page[] = "<!doctype html><title>x</title>";

/* GET /hello?...: the arguments back, one a line; 418 for "teapot". */
static void hello(const char *const *args, wsa_http_reply *reply, void *ud)
{
	char text[256] = "";
	size_t i;

	CHECK(ud == &ev);
	CHECK(reply->size == sizeof(*reply) && WSA_HTTP_REPLY_HAS(reply, len));
	for (i = 0; args[i]; i++) {
		if (!strcmp(args[i], "teapot")) {
			reply->status = 418;
			return;
		}
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "%s\n", args[i]);
	}
	reply->content_type = "text/plain";
	reply->body = strdup(text);
	reply->len = strlen(text);
}

/* GET /headers: the request's Host, X-Custom (a field lws does not
 * know), Origin and X-Missing, one a line, "-" for none; its own
 * reply's headers are not the request's. */
static void headers(const char *const *args, wsa_http_reply *reply, void *ud)
{
	static const char *const names[] = {"Host", "x-CUSTOM", "Origin",
					    "X-Missing"};
	char text[512] = "";
	const char *v;
	size_t i;

	(void)args, (void)ud;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		v = wsa_http_request_header(reply, names[i]);
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "%s\n", v ? v : "-");
	}
	/* Not a field name: no answer. */
	CHECK(!wsa_http_request_header(reply, "Bad Name"));
	CHECK(!wsa_http_request_header(reply, ""));
	CHECK(!wsa_http_request_header(NULL, "Host"));
	reply->content_type = "text/plain";
	reply->body = strdup(text);
	reply->len = strlen(text);
}

static void serve_http(wsa_server *srv)
{
	wsa_http_reply fake = {.size = sizeof(fake)};

	CHECK_INT(
	    wsa_server_http_file(srv, "/", "text/html", page, sizeof(page) - 1),
	    WSA_OK);
	CHECK_INT(wsa_server_http_file(srv, "/", "text/html", page, 1),
		  WSA_EEXIST);
	CHECK_INT(wsa_server_http_file(srv, "/empty", "text/plain", NULL, 0),
		  WSA_OK);
	CHECK_INT(wsa_server_http_get(srv, "/hello", hello, &ev), WSA_OK);
	CHECK_INT(wsa_server_http_get(srv, "/headers", headers, NULL), WSA_OK);
	CHECK_INT(wsa_server_http_get(srv, "hello", hello, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_http_get(srv, "/x", NULL, NULL), WSA_EINVAL);
	CHECK_INT(wsa_server_http_file(srv, "/x", NULL, page, 1), WSA_EINVAL);
	/* A page's headers: a default replaced, one dropped, one added,
	 * one set twice. */
	CHECK_INT(wsa_server_http_header(srv, "/", "Content-Security-Policy",
					 "default-src 'self'"),
		  WSA_OK);
	CHECK_INT(wsa_server_http_header(srv, "/", "referrer-policy", NULL),
		  WSA_OK);
	CHECK_INT(
	    wsa_server_http_header(srv, "/", "X-Frame-Options", "SAMEORIGIN"),
	    WSA_OK);
	CHECK_INT(wsa_server_http_header(srv, "/", "x-frame-options", "DENY"),
		  WSA_OK);
	CHECK_INT(wsa_server_http_header(srv, "/nope", "X-A", "1"), WSA_EINVAL);
	CHECK_INT(wsa_server_http_header(srv, "/", "Content-Length", "1"),
		  WSA_EINVAL);
	CHECK_INT(wsa_server_http_header(srv, "/", "allow", "GET"), WSA_EINVAL);
	CHECK_INT(wsa_server_http_header(srv, "/", "X A", "1"), WSA_EINVAL);
	CHECK_INT(wsa_server_http_header(srv, "/", "X-A", "1\r\nX-B: 2"),
		  WSA_EINVAL);
	CHECK_INT(wsa_server_http_header(NULL, "/", "X-A", "1"), WSA_EINVAL);
	/* Only a reply the library made stands for a request. */
	CHECK(!wsa_http_request_header(&fake, "Host"));
}

/* Send request as is; the status, and the whole answer in *resp
 * (malloc'd) when not NULL. */
static int fetch_raw(const struct server *s, const char *req, char **resp)
{
	char *r = NULL;
	int status = wsc_http_fetch("127.0.0.1", s->port, req, T, &r);

	if (resp)
		*resp = r ? r : strdup("");
	else
		free(r);
	return status;
}

/* Fetch path with GET (or another method); the status, and the body in
 * *body (malloc'd) when not NULL. */
static int fetch(const struct server *s, const char *method, const char *path,
		 char **body)
{
	char req[512], *resp = NULL, *b;
	int status;

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n",
		 method, path);
	status = fetch_raw(s, req, &resp);
	if (body) {
		b = strstr(resp, "\r\n\r\n");
		*body = strdup(b ? b + 4 : "");
	}
	free(resp);
	return status;
}

/* The answer's header section, lower case, with "\r\n" before each
 * line; "" when none. malloc'd. */
static char *head_of(const char *resp)
{
	const char *end = strstr(resp, "\r\n\r\n");
	size_t n = end ? (size_t)(end - resp) + 2 : 0, i;
	char *h = malloc(n + 3);

	h[0] = '\r', h[1] = '\n';
	for (i = 0; i < n; i++)
		h[i + 2] = (char)tolower((unsigned char)resp[i]);
	h[n + 2] = '\0';
	return h;
}

/* HEAD, 405 and the headers of answers, at the C API. */
static void test_http_methods(const struct server *s)
{
	char *get = NULL, *head = NULL, *g, *h, *body = NULL;

	/* HEAD: GET's headers and nothing after them, so a request behind
	 * it on the same connection is answered at once. */
	CHECK_INT(fetch_raw(s,
			    "GET / HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n",
			    &get),
		  200);
	CHECK_INT(fetch_raw(s,
			    "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
			    "GET /nope HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n",
			    &head),
		  200);
	g = head_of(get);
	h = head_of(head);
	CHECK(strstr(get, page) != NULL);
	CHECK(strstr(h, "\r\ncontent-length: 31\r\n") != NULL);
	CHECK_STR(g, h);
	CHECK(!strncmp(strstr(head, "\r\n\r\n") + 4, "HTTP/1.1 404", 12));
	/* The host's headers for "/", the library's defaults elsewhere. */
	CHECK(strstr(g, "\r\ncontent-security-policy: default-src 'self'\r\n"));
	CHECK(!strstr(g, "referrer-policy"));
	CHECK(strstr(g, "\r\nx-frame-options: deny\r\n"));
	CHECK(!strstr(g, "sameorigin"));
	CHECK(strstr(g, "\r\nx-content-type-options: nosniff\r\n"));
	free(g), free(h), free(get), free(head);
	CHECK_INT(fetch_raw(s,
			    "GET /empty HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n",
			    &get),
		  200);
	g = head_of(get);
	CHECK(strstr(g, "\r\ncontent-security-policy: frame-ancestors "
			"'none'\r\n"));
	CHECK(strstr(g, "\r\nreferrer-policy: no-referrer\r\n"));
	free(g), free(get);
	/* A handler runs for HEAD too; its body is not sent. */
	CHECK_INT(fetch(s, "HEAD", "/hello?a", &body), 200);
	CHECK_STR(body, "");
	free(body);
	/* Other methods on a served path: 405 with Allow; elsewhere 404. */
	CHECK_INT(fetch_raw(s,
			    "OPTIONS /hello HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n",
			    &get),
		  405);
	g = head_of(get);
	CHECK(strstr(g, "\r\nallow: get, head\r\n"));
	free(g), free(get);
	CHECK_INT(fetch(s, "PUT", "/", NULL), 405);
	CHECK_INT(fetch(s, "DELETE", "/empty", NULL), 405);
	CHECK_INT(fetch(s, "POST", "/nope", NULL), 404);
	CHECK_INT(fetch(s, "HEAD", "/nope", &body), 404);
	CHECK_STR(body, "");
	free(body);
}

/* A handler reads its request's headers. */
static void test_http_request_headers(const struct server *s)
{
	char *body = NULL;

	CHECK_INT(fetch_raw(s,
			    "GET /headers HTTP/1.1\r\nHost: h.example:1\r\n"
			    "X-Custom: c v\r\nOrigin: http://o.example\r\n"
			    "Connection: close\r\n\r\n",
			    &body),
		  200);
	CHECK(strstr(body, "\r\n\r\nh.example:1\nc v\nhttp://o.example\n-\n"));
	free(body);
	/* Repeated: joined, so never mistaken for one value. */
	CHECK_INT(fetch_raw(s,
			    "GET /headers HTTP/1.1\r\nHost: a\r\nHost: b\r\n"
			    "Connection: close\r\n\r\n",
			    &body),
		  200);
	CHECK(strstr(body, "\r\n\r\na,") && strstr(body, " b\n-\n-\n-\n"));
	free(body);
}

/* Plain HTTP on the WebSockets' port: fixed bodies, GET handlers, 404
 * for the rest; WebSockets are not disturbed. */
static void test_http(void)
{
	struct server s;
	char *body = NULL;
	wsc *c;

	setup_more = serve_http;
	CHECK(server_start(&s, NULL, NULL));
	setup_more = NULL;
	CHECK_INT(fetch(&s, "GET", "/", &body), 200);
	CHECK_STR(body, page);
	free(body);
	CHECK_INT(fetch(&s, "GET", "/?a=1", NULL), 200);
	CHECK_INT(fetch(&s, "GET", "/empty", &body), 200);
	CHECK_STR(body, "");
	free(body);
	CHECK_INT(fetch(&s, "GET", "/hello?uid=ann&x=%41%26b", &body), 200);
	CHECK_STR(body, "uid=ann\nx=A&b\n");
	free(body);
	CHECK_INT(fetch(&s, "GET", "/hello", &body), 200);
	CHECK_STR(body, "");
	free(body);
	CHECK_INT(fetch(&s, "GET", "/hello?teapot", NULL), 418);
	CHECK_INT(fetch(&s, "GET", "/nope", NULL), 404);
	CHECK_INT(fetch(&s, "GET", "/ws/chat", NULL), 404);
	CHECK_INT(fetch(&s, "POST", "/", NULL), 405);
	CHECK_INT(wsa_server_http_file(s.srv, "/late", "text/plain", "x", 1),
		  WSA_ESTATE);
	CHECK_INT(wsa_server_http_header(s.srv, "/", "X-Late", "1"),
		  WSA_ESTATE);
	test_http_methods(&s);
	test_http_request_headers(&s);
	c = login(&s, "hal");
	expect_alive(c);
	wsc_close(c);
	server_stop(&s);
}

static void test_tls_config(void)
{
	wsa_config cfg;
	wsa_server *srv = NULL;
	char dir[] = "/tmp/wsa-tls-XXXXXX", cert[64], key[64];
	FILE *f;

	wsa_config_init(&cfg);
	cfg.log = quiet_log;
	cfg.tls_cert_file = "/nonexistent/cert.pem";
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_EINVAL); /* no key */
	cfg.tls_key_file = "/nonexistent/key.pem";
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_ETLS);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	f = fopen(cert, "w");
	fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	      f);
	fclose(f);
	f = fopen(key, "w");
	fputs("not a key\n", f);
	fclose(f);
	cfg.tls_cert_file = cert;
	cfg.tls_key_file = key;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_ETLS);
	CHECK(srv == NULL);
	/* A real pair: then the cipher list is what decides. */
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd),
			 "openssl req -x509 -newkey ec -pkeyopt "
			 "ec_paramgen_curve:prime256v1 -nodes -keyout %s "
			 "-out %s -days 1 -subj /CN=127.0.0.1 2>/dev/null",
			 key, cert);
		CHECK(system(cmd) == 0);
	}
	cfg.tls_ciphers = "NO-SUCH-SUITE";
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_ETLS);
	CHECK(srv == NULL);
	cfg.tls_ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	wsa_server_free(srv);
	srv = NULL;
	cfg.tls_ciphers = NULL; /* the default profile */
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	wsa_server_free(srv);
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

/* ------------------------------------------- behind one address (NAT) */

/* With the default settings, failed logins from an address never make
 * a valid token fail: thousands of users may share that address. */
static void test_nat_logins(void)
{
	struct server s;
	char payload[256], *tok, hdr[1024];
	wsc *c;
	int i;

	CHECK(server_start(&s, NULL, NULL));
	wsc_set_source("127.0.0.61");
	for (i = 0; i < 100; i++) {
		c = open_ws(&s);
		if (i % 3 == 0) { /* expired */
			send_login(c, "neighbour", -60);
		} else if (i % 3 == 1) { /* signed with another secret */
			snprintf(payload, sizeof(payload),
				 "{\"uid\":\"n\",\"exp\":%ld}",
				 (long)time(NULL) + 600);
			send_token(c, tok_hs256("another-secret-another-secret-"
						"another-secret",
						payload));
		} else { /* malformed */
			send_str(c, "{\"type\":\"login\",\"token\":\"a.b\"}");
		}
		expect_fail(c, "Authentication failed", NULL, 1008);
	}
	c = login(&s, "valid");
	expect_alive(c);
	wsc_close(c);
	tok = token_for("valid", 600);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
	free(tok);
	CHECK_INT(upgrade_status(&s, hdr, &c), 101);
	expect(c, "auth", "Authenticated", NULL);
	wsc_close(c);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* A verifier that answers from its own thread, rejecting every token:
 * counts the logins that reach it. */
struct rejector {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	wsa_auth *queue[512];
	int n, calls;
	bool done;
};

static struct rejector rej = {.lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER};

static void rejecting_verify(wsa_auth *auth, const char *token, size_t len,
			     void *ud)
{
	(void)token, (void)len, (void)ud;
	pthread_mutex_lock(&rej.lock);
	rej.calls++;
	if (rej.n < 512)
		rej.queue[rej.n++] = auth;
	pthread_cond_broadcast(&rej.cond);
	pthread_mutex_unlock(&rej.lock);
}

static void *rejector_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&rej.lock);
	for (;;) {
		while (!rej.n && !rej.done)
			pthread_cond_wait(&rej.cond, &rej.lock);
		if (!rej.n)
			break;
		wsa_auth_reject(rej.queue[--rej.n], "bad token");
	}
	pthread_mutex_unlock(&rej.lock);
	return NULL;
}

/* The opt-in throttle holds for a verifier that answers later from
 * another thread: of 200 bad logins sent at once from one address, at
 * most max_failed_logins reach it (each counts as it starts). */
static void test_throttle_async(void)
{
	enum { N = 200 };
	struct server s;
	wsa_config cfg;
	pthread_t th;
	wsc *c[N];
	int i;

	wsa_config_init(&cfg);
	cfg.max_failed_logins = 30;
	CHECK(server_start(&s, &cfg, rejecting_verify));
	pthread_create(&th, NULL, rejector_thread, NULL);
	wsc_set_source("127.0.0.62");
	for (i = 0; i < N; i++)
		c[i] = open_ws(&s);
	for (i = 0; i < N; i++)
		if (c[i])
			send_str(c[i], "{\"type\":\"login\",\"token\":\"x\"}");
	for (i = 0; i < N; i++)
		if (c[i])
			expect_fail(c[i], "Authentication failed", NULL, 1008);
	pthread_mutex_lock(&rej.lock);
	CHECK(rej.calls <= 30);
	CHECK(rej.calls > 0);
	rej.done = true;
	pthread_cond_broadcast(&rej.cond);
	pthread_mutex_unlock(&rej.lock);
	pthread_join(th, NULL);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* Logins beyond an address's verification budget wait for their turn
 * instead of failing; one that cannot be served within the auth timeout
 * is closed as a timeout. */
static void test_verify_budget(void)
{
	enum { N = 6 };
	struct server s;
	wsa_config cfg;
	wsc *c[N];
	int i;

	wsa_config_init(&cfg);
	cfg.verify_rate = 20;
	cfg.verify_burst = 2;
	CHECK(server_start(&s, &cfg, NULL));
	wsc_set_source("127.0.0.63");
	for (i = 0; i < N; i++)
		c[i] = open_ws(&s);
	for (i = 0; i < N; i++)
		send_login(c[i], "queued", 600);
	for (i = 0; i < N; i++) {
		expect(c[i], "auth", "Authenticated", NULL);
		wsc_close(c[i]);
	}
	server_stop(&s);

	/* One verification a second, and 300 ms to log in: the second login
	 * cannot have its turn in time. */
	cfg.verify_rate = 1;
	cfg.verify_burst = 1;
	cfg.auth_timeout_ms = 300;
	CHECK(server_start(&s, &cfg, NULL));
	c[0] = open_ws(&s);
	c[1] = open_ws(&s);
	send_login(c[0], "first", 600);
	expect(c[0], "auth", "Authenticated", NULL);
	send_login(c[1], "second", 600);
	expect_fail(c[1], "Authentication timeout", NULL, 1008);
	expect_alive(c[0]);
	wsc_close(c[0]);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* max_connections_per_user counts an identity's connections wherever
 * they come from: the one too many is closed with 1013 (503 with a token
 * at the upgrade); other users and addresses are untouched. */
static void test_user_limit(void)
{
	struct server s;
	wsa_config cfg;
	wsc *a1, *a2, *a3, *b;
	char *tok, hdr[1024];

	wsa_config_init(&cfg);
	cfg.max_connections_per_user = 2;
	CHECK(server_start(&s, &cfg, NULL));
	wsc_set_source("127.0.0.64");
	a1 = login(&s, "ann");
	wsc_set_source("127.0.0.65");
	a2 = login(&s, "ann");
	a3 = open_ws(&s);
	send_login(a3, "ann", 600);
	expect_close(a3, 1013);
	tok = token_for("ann", 600);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
	free(tok);
	CHECK_INT(upgrade_status(&s, hdr, NULL), 503);
	b = login(&s, "bob");
	expect_alive(b);
	/* Once one of ann's is gone (a1, a2 and b are open), she may open
	 * another. */
	wait_count(&ev.closes, ws_opened - 3);
	wsc_close(a1);
	CHECK_INT(wait_count(&ev.closes, ws_opened - 2), ws_opened - 2);
	CHECK_INT(upgrade_status(&s, hdr, &a3), 101);
	expect(a3, "auth", "Authenticated", NULL);
	/* A connection the server is closing, whose peer has not answered
	 * the close yet, no longer counts. */
	send_str(a2, "{\"type\":\"bye\"}");
	expect(a2, "bye", NULL, NULL);
	a1 = login(&s, "ann");
	expect_alive(a1);
	wsc_close(a1);
	wsc_close(a3);
	wsc_close(a2);
	wsc_close(b);
	wsc_set_source(NULL);
	server_stop(&s);
}

/* Join n topics "PREFIX-i" at once: how many joins succeeded, and the
 * code of the last. */
static void on_join_many(wsa_conn *c, json_t *msg, void *ud)
{
	const char *prefix = json_string_value(json_object_get(msg, "prefix"));
	int i, n = (int)json_integer_value(json_object_get(msg, "n"));
	int ok = 0, rc = WSA_OK;
	char name[64];

	(void)ud;
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s-%d", prefix, i);
		rc = wsa_conn_join(c, name);
		ok += rc == WSA_OK;
	}
	wsa_conn_send_new(
	    c, json_pack("{s:s,s:i,s:i,s:I}", "type", "joined", "ok", ok, "rc",
			 rc, "in", (json_int_t)wsa_conn_topics(c, NULL, 0)));
}

static void add_join_many(wsa_server *srv)
{
	wsa_route *r = NULL;

	/* The route exists already: a second one on another path. */
	CHECK_INT(wsa_route_add(srv, "/ws/many", on_open, on_close, &ev, &r),
		  WSA_OK);
	CHECK_INT(wsa_route_handle(r, "join_many", on_join_many, NULL), WSA_OK);
}

/* A connection is in at most max_topics_per_connection topics (128 by
 * default): joining one more fails with WSA_ELIMIT, and leaving makes
 * room again. */
static void test_topic_cap(void)
{
	struct server s;
	json_t *m;
	wsc *c;
	int status = 0;

	setup_more = add_join_many;
	CHECK(server_start(&s, NULL, NULL));
	setup_more = NULL;
	c = wsc_connect("127.0.0.1", s.port, "/ws/many", NULL, T, &status);
	CHECK_INT(status, 101);
	ws_opened += status == 101;
	send_login(c, "joiner", 600);
	expect(c, "auth", "Authenticated", NULL);
	send_str(c, "{\"type\":\"join_many\",\"prefix\":\"a\",\"n\":200}");
	m = wsc_recv_json(c, T);
	CHECK_INT(json_integer_value(json_object_get(m, "ok")), 128);
	CHECK_INT(json_integer_value(json_object_get(m, "rc")), WSA_ELIMIT);
	CHECK_INT(json_integer_value(json_object_get(m, "in")), 128);
	json_decref(m);
	/* Joining a topic it is in already is no new membership. */
	send_str(c, "{\"type\":\"join_many\",\"prefix\":\"a\",\"n\":128}");
	m = wsc_recv_json(c, T);
	CHECK_INT(json_integer_value(json_object_get(m, "ok")), 128);
	json_decref(m);
	wsc_close(c);
	server_stop(&s);
}

/* Liveness: a peer that stops answering is hung up within the ping
 * interval and the pong timeout (its close handler sees 1006), while a
 * peer that answers the server's pings stays. */
static void test_liveness(void)
{
	struct server s;
	wsa_config cfg;
	wsc *alive, *silent;
	wsc_frame f;
	struct timespec t0, now;
	int closes;

	wsa_config_init(&cfg);
	cfg.ping_interval_ms = 200;
	cfg.pong_timeout_ms = 300;
	CHECK(server_start(&s, &cfg, NULL));
	alive = login(&s, "alive");
	silent = login(&s, "silent");
	closes = count(&ev.closes);
	/* Read (and so answer pings) on one connection only, until the
	 * other is closed. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (wsc_recv(alive, &f, 50) == 1)
			wsc_frame_free(&f);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (count(&ev.closes) == closes && now.tv_sec - t0.tv_sec < 5);
	CHECK_INT(count(&ev.closes), closes + 1);
	CHECK_INT(ev.last_close_code, 1006);
	CHECK_INT(wsc_wait_eof(silent, T), 1);
	CHECK(wsc_pings_received(alive) >= 1);
	expect_alive(alive);
	wsc_close(silent);
	wsc_close(alive);
	server_stop(&s);
}

/* Captured log lines, for test_log_escaping. */
static struct {
	pthread_mutex_t lock;
	char text[16384];
	size_t len;
	int lines;
} logged = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void capture_log(wsa_log_level l, const char *id, const char *route,
			const char *msg, void *ud)
{
	size_t n = strlen(msg);

	(void)l, (void)id, (void)route, (void)ud;
	pthread_mutex_lock(&logged.lock);
	if (logged.len + n + 2 < sizeof(logged.text)) {
		memcpy(logged.text + logged.len, msg, n);
		logged.len += n;
		logged.text[logged.len++] = '\x1e'; /* between lines */
		logged.text[logged.len] = '\0';
	}
	logged.lines++;
	pthread_mutex_unlock(&logged.lock);
}

/* What a peer chose (a token's uid here) reaches the log escaped: a
 * newline in it cannot forge a second line. */
static void test_log_escaping(void)
{
	struct server s;
	wsa_config cfg;
	char payload[256];
	wsc *c;

	wsa_config_init(&cfg);
	cfg.log_level = WSA_LOG_INFO;
	log_sink = capture_log;
	CHECK(server_start(&s, &cfg, NULL));
	log_sink = NULL;
	c = open_ws(&s);
	snprintf(payload, sizeof(payload),
		 "{\"uid\":\"mallory\\nwsa: error forged\\u0007\\u0085\","
		 "\"exp\":%ld}",
		 (long)time(NULL) + 600);
	send_token(c, tok_hs256(SECRET, payload));
	expect(c, "auth", "Authenticated", NULL);
	expect_alive(c);
	wsc_close(c);
	server_stop(&s);
	pthread_mutex_lock(&logged.lock);
	CHECK(logged.lines > 0);
	CHECK(strstr(logged.text, "as mallory\\x0awsa: error "
				  "forged\\x07\\xc2\\x85") != NULL);
	CHECK(!strchr(logged.text, '\n') && !strchr(logged.text, '\a'));
	pthread_mutex_unlock(&logged.lock);
}

/* --------------------------------------------- several service threads */

/* A room across loops: join answers with the users on every loop,
 * "say" and "type" go to the others in the room, presence comes from
 * the server's decision. */
static void on_room_join(wsa_conn *c, json_t *msg, void *srv)
{
	(void)msg;
	CHECK_INT(wsa_conn_join(c, "room"), WSA_OK);
	wsa_conn_send_new(c, json_pack("{s:s,s:o}", "type", "joined", "users",
				       wsa_server_topic_users(srv, "room")));
}

static void on_room_say(wsa_conn *c, json_t *msg, void *srv)
{
	json_t *out =
	    json_pack("{s:s,s:s,s:O}", "type", "said", "from", wsa_conn_uid(c),
		      "text", json_object_get(msg, "text"));

	CHECK_INT(wsa_server_publish(srv, "room", out, wsa_conn_id(c)), WSA_OK);
	json_decref(out);
}

static void on_room_id(wsa_conn *c, json_t *msg, void *srv)
{
	(void)msg, (void)srv;
	wsa_conn_send_new(
	    c, json_pack("{s:s,s:s}", "type", "id", "id", wsa_conn_id(c)));
}

static void on_room_presence(wsa_conn *c, const char *topic, bool joined,
			     void *srv)
{
	json_t *out =
	    json_pack("{s:s,s:s,s:s}", "type", "presence", "uid",
		      wsa_conn_uid(c), "event", joined ? "join" : "leave");

	wsa_server_publish(srv, topic, out, wsa_conn_id(c));
	json_decref(out);
}

static void add_room(wsa_server *srv)
{
	wsa_route *r = NULL;

	CHECK_INT(wsa_route_add(srv, "/ws/room", on_open, on_close, &ev, &r),
		  WSA_OK);
	CHECK_INT(wsa_route_handle(r, "join", on_room_join, srv), WSA_OK);
	CHECK_INT(wsa_route_handle(r, "say", on_room_say, srv), WSA_OK);
	CHECK_INT(wsa_route_handle(r, "id", on_room_id, srv), WSA_OK);
	CHECK_INT(wsa_server_on_presence(srv, on_room_presence, srv), WSA_OK);
}

/* A connection to /ws/room logged in as uid, on the loop whose letter is
 * the first of its connection id; NULL when none landed there in 64
 * tries (the kernel spreads connections over the loops). */
static wsc *room_conn(const struct server *s, const char *uid, char loop)
{
	for (int i = 0; i < 64; i++) {
		int status = 0;
		wsc *c = wsc_connect("127.0.0.1", s->port, "/ws/room", NULL, T,
				     &status);
		json_t *m;
		bool here;

		CHECK_INT(status, 101);
		if (!c)
			return NULL;
		ws_opened++;
		send_login(c, uid, 600);
		expect(c, "auth", "Authenticated", NULL);
		send_str(c, "{\"type\":\"id\"}");
		m = wsc_recv_json(c, T);
		here = json_string_value(json_object_get(m, "id")) &&
		       json_string_value(json_object_get(m, "id"))[0] == loop;
		json_decref(m);
		if (here)
			return c;
		wsc_close(c);
	}
	return NULL;
}

/* The next message is a {"type":type,KEY:VALUE}. */
static void expect_member(wsc *c, const char *type, const char *key,
			  const char *value)
{
	json_t *m = wsc_recv_json(c, T);

	CHECK_STR(json_string_value(json_object_get(m, "type")), type);
	CHECK_STR(json_string_value(json_object_get(m, key)), value);
	json_decref(m);
}

static void *close_alice(void *srv)
{
	CHECK_INT(wsa_server_close_uid(srv, "alice", 4001, "bye"), WSA_OK);
	return NULL;
}

/* Two clients on different service threads in one room see each other's
 * messages and presence; a second connection of a user on the other
 * thread makes no presence; a close by uid from a thread of the host's
 * closes the user's connections on both threads, and the room hears the
 * user leave once. */
static void test_threads_room(void)
{
	struct server s;
	wsa_config cfg;
	wsc *a, *a2, *b;
	json_t *m;
	pthread_t th;

	wsa_config_init(&cfg);
	cfg.threads = 2;
	setup_more = add_room;
	CHECK(server_start(&s, &cfg, NULL));
	setup_more = NULL;
	a = room_conn(&s, "alice", '2'); /* loop 0 */
	b = room_conn(&s, "bob", '3');	 /* loop 1 */
	a2 = room_conn(&s, "alice", '3');
	CHECK(a && b && a2);
	if (!a || !b || !a2)
		goto out;
	send_str(a, "{\"type\":\"join\"}");
	expect(a, "joined", NULL, NULL);
	send_str(b, "{\"type\":\"join\"}");
	m = wsc_recv_json(b, T);
	CHECK_INT(json_array_size(json_object_get(m, "users")), 2);
	json_decref(m);
	expect_member(a, "presence", "uid", "bob");
	send_str(a, "{\"type\":\"say\",\"text\":\"hi from 0\"}");
	expect_member(b, "said", "text", "hi from 0");
	send_str(b, "{\"type\":\"say\",\"text\":\"hi from 1\"}");
	expect_member(a, "said", "text", "hi from 1");
	/* alice is present already: her second connection makes no
	 * presence for bob, and bob's next message is alice's chat. */
	send_str(a2, "{\"type\":\"join\"}");
	expect(a2, "joined", NULL, NULL);
	send_str(a2, "{\"type\":\"say\",\"text\":\"second\"}");
	expect_member(b, "said", "text", "second");
	expect_member(a, "said", "text", "second");
	pthread_create(&th, NULL, close_alice, s.srv);
	pthread_join(th, NULL);
	CHECK_INT(wsc_wait_close(a, T), 4001);
	CHECK_INT(wsc_wait_close(a2, T), 4001);
	expect_member(b, "presence", "event", "leave");
	expect_alive(b);
out:
	wsc_close(a);
	wsc_close(a2);
	wsc_close(b);
	server_stop(&s);
}

/* Two servers in one process, each of two threads, on their own ports:
 * each serves its clients, and a topic of one is not the other's. */
static void test_two_servers(void)
{
	struct server s1, s2;
	wsa_config cfg;
	wsc *c1, *c2;
	json_t *msg = json_pack("{s:s}", "type", "news");

	wsa_config_init(&cfg);
	cfg.threads = 2;
	CHECK(server_start(&s1, &cfg, NULL));
	CHECK(server_start(&s2, &cfg, NULL));
	CHECK(s1.port != s2.port);
	c1 = login(&s1, "one");
	c2 = login(&s2, "two");
	send_str(c1, "{\"type\":\"join\",\"topic\":\"t\"}");
	expect(c1, "joined", NULL, NULL);
	send_str(c2, "{\"type\":\"join\",\"topic\":\"t\"}");
	expect(c2, "joined", NULL, NULL);
	CHECK_INT(wsa_server_publish(s1.srv, "t", msg, NULL), WSA_OK);
	expect(c1, "news", NULL, NULL);
	expect_alive(c2); /* its next message is the pong, not the news */
	CHECK_INT(wsa_server_publish(s2.srv, "t", msg, NULL), WSA_OK);
	expect(c2, "news", NULL, NULL);
	expect_alive(c1);
	json_decref(msg);
	wsc_close(c1);
	wsc_close(c2);
	server_stop(&s1);
	server_stop(&s2);
}

int main(void)
{
	struct server s;

	fprintf(stderr, "-- %s\n", "api_errors");
	test_config_size();
	test_api_errors();
	CHECK(server_start(&s, NULL, NULL));
	fprintf(stderr, "-- %s\n", "http_level");
	test_http_level(&s);
	fprintf(stderr, "-- %s\n", "first_message");
	test_first_message(&s);
	fprintf(stderr, "-- %s\n", "login");
	test_login(&s);
	fprintf(stderr, "-- %s\n", "pipelined");
	test_pipelined(&s);
	fprintf(stderr, "-- %s\n", "expiry_and_refresh");
	test_expiry_and_refresh(&s);
	fprintf(stderr, "-- %s\n", "dispatch");
	test_dispatch(&s);
	fprintf(stderr, "-- %s\n", "queue_limit");
	test_queue_limit(&s);
	test_reply_lengths(&s);
	fprintf(stderr, "-- %s\n", "frame_rules");
	test_frame_rules(&s);
	fprintf(stderr, "-- %s\n", "peer_close");
	test_peer_close(&s);
	fprintf(stderr, "-- %s\n", "ids_unique");
	test_ids_unique(&s);
	server_stop(&s);
	CHECK_INT(count(&ev.closes), ws_opened);
	/* Every connection that reached the route was closed exactly once,
	 * and every authenticated one was opened once. */
	CHECK_INT(count(&ev.closes_authenticated), count(&ev.opens));
	fprintf(stderr, "-- %s\n", "auth_timeout");
	test_auth_timeout();
	fprintf(stderr, "-- %s\n", "async_verifier");
	test_async_verifier();
	fprintf(stderr, "-- %s\n", "async_one_write");
	test_async_one_write();
	fprintf(stderr, "-- %s\n", "idle");
	fprintf(stderr, "-- %s\n", "origin");
	test_origin();
	fprintf(stderr, "-- %s\n", "topics");
	test_topics();
	fprintf(stderr, "-- %s\n", "remote");
	test_remote();
	fprintf(stderr, "-- %s\n", "leeway");
	test_leeway();
	test_idle();
	fprintf(stderr, "-- %s\n", "stop");
	test_stop();
	fprintf(stderr, "-- %s\n", "connection_limits");
	test_connection_limits();
	fprintf(stderr, "-- %s\n", "closing_leaves_limits");
	test_closing_leaves_limits();
	fprintf(stderr, "-- %s\n", "socket_limits");
	test_socket_limits();
	fprintf(stderr, "-- %s\n", "rate_limit");
	test_rate_limit();
	fprintf(stderr, "-- %s\n", "required_claims");
	test_required_claims();
	fprintf(stderr, "-- %s\n", "upgrade_token");
	test_upgrade_token();
	fprintf(stderr, "-- %s\n", "revocation");
	test_revocation();
	fprintf(stderr, "-- %s\n", "preauth_limits");
	test_preauth_limits();
	fprintf(stderr, "-- %s\n", "handshake_timeout");
	test_handshake_timeout();
	fprintf(stderr, "-- %s\n", "http");
	test_http();
	fprintf(stderr, "-- %s\n", "tls_config");
	test_tls_config();
	fprintf(stderr, "-- %s\n", "nat_logins");
	test_nat_logins();
	fprintf(stderr, "-- %s\n", "throttle_async");
	test_throttle_async();
	fprintf(stderr, "-- %s\n", "verify_budget");
	test_verify_budget();
	fprintf(stderr, "-- %s\n", "user_limit");
	test_user_limit();
	fprintf(stderr, "-- %s\n", "topic_cap");
	test_topic_cap();
	fprintf(stderr, "-- %s\n", "liveness");
	test_liveness();
	fprintf(stderr, "-- %s\n", "log_escaping");
	test_log_escaping();
	fprintf(stderr, "-- %s\n", "threads_room");
	test_threads_room();
	fprintf(stderr, "-- %s\n", "two_servers");
	test_two_servers();
	CHECK_INT(count(&ev.closes), ws_opened);
	CHECK_INT(count(&ev.closes_authenticated), count(&ev.opens));
	return check_status("test_server");
}
