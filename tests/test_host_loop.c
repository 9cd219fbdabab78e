/* A server on the host's libuv loop, with no thread of its own, and a
 * server on threads of its own started in the background
 * (wsa_server_start): logins, echoes, any-thread sends, the stop, and
 * the free, with real clients on other threads. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>
#include <wsa.h>

#include "check.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000 /* ms: bound on every wait */

static void quiet_log(wsa_log_level l, const char *id, const char *route,
		      const char *msg, void *ud)
{
	(void)l, (void)id, (void)route, (void)msg, (void)ud;
}

/* The id of the last connection that logged in, for any-thread sends. */
static char last_id[32];
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong handler_thread; /* the thread handlers ran on */

static void on_open(wsa_conn *c, void *ud)
{
	(void)ud;
	pthread_mutex_lock(&id_lock);
	snprintf(last_id, sizeof(last_id), "%s", wsa_conn_id(c));
	pthread_mutex_unlock(&id_lock);
	atomic_store(&handler_thread, (unsigned long)pthread_self());
}

static pthread_mutex_t close_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t close_cond = PTHREAD_COND_INITIALIZER;
static int closes;

static void on_close(wsa_conn *c, int code, void *ud)
{
	(void)c, (void)code, (void)ud;
	pthread_mutex_lock(&close_lock);
	closes++;
	pthread_cond_broadcast(&close_cond);
	pthread_mutex_unlock(&close_lock);
}

/* Wait, bounded, for n closes in all. */
static bool wait_closes(int n)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += T / 1000;
	pthread_mutex_lock(&close_lock);
	while (closes < n && rc == 0)
		rc = pthread_cond_timedwait(&close_cond, &close_lock, &until);
	pthread_mutex_unlock(&close_lock);
	return closes >= n;
}

static void on_chat(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	atomic_store(&handler_thread, (unsigned long)pthread_self());
	wsa_conn_send(c, msg);
}

static wsa_jwt *jwt;

static wsa_server *make(const wsa_config *cfg, wsa_loop_kind kind, void *loop)
{
	wsa_server *srv;
	wsa_route *r;
	int rc = loop ? wsa_server_new_on_loop(&srv, cfg, kind, loop)
		      : wsa_server_new(&srv, cfg);

	CHECK_INT(rc, WSA_OK);
	if (rc)
		return NULL;
	CHECK_INT(wsa_set_verifier(srv, wsa_jwt_verifier, jwt), WSA_OK);
	CHECK_INT(wsa_route_add(srv, "/ws/chat", on_open, on_close, NULL, &r),
		  WSA_OK);
	CHECK_INT(wsa_route_handle(r, "chat", on_chat, NULL), WSA_OK);
	return srv;
}

static wsc *login(int port, const char *uid)
{
	char payload[128], *tok, msg[1024];
	wsc *c = wsc_connect("127.0.0.1", port, "/ws/chat", NULL, T, NULL);
	json_t *j;

	CHECK(c != NULL);
	if (!c)
		return NULL;
	snprintf(payload, sizeof(payload), "{\"uid\":\"%s\",\"exp\":%ld}", uid,
		 (long)time(NULL) + 600);
	tok = tok_hs256(SECRET, payload);
	snprintf(msg, sizeof(msg), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	free(tok);
	CHECK_INT(wsc_send_text(c, msg, strlen(msg)), 0);
	j = wsc_recv_json(c, T);
	CHECK(j &&
	      !strcmp(json_string_value(json_object_get(j, "type")), "auth"));
	json_decref(j);
	return c;
}

/* The next message's "type" is type; false otherwise. */
static bool next_is(wsc *c, const char *type)
{
	json_t *j = wsc_recv_json(c, T);
	bool ok = j && json_is_string(json_object_get(j, "type")) &&
		  !strcmp(json_string_value(json_object_get(j, "type")), type);

	json_decref(j);
	return ok;
}

/* A chat is echoed; then what this (another) thread sends, joins and
 * publishes through the server reaches the connection (uid), in order. */
static void exchange(wsa_server *srv, wsc *c, const char *uid)
{
	static const char chat[] = "{\"type\":\"chat\",\"n\":1}";
	json_t *j, *m;
	char id[32];
	size_t i;
	bool listed = false;

	CHECK_INT(wsc_send_text(c, chat, strlen(chat)), 0);
	j = wsc_recv_json(c, T);
	CHECK(j && json_integer_value(json_object_get(j, "n")) == 1);
	json_decref(j);
	pthread_mutex_lock(&id_lock);
	snprintf(id, sizeof(id), "%s", last_id);
	pthread_mutex_unlock(&id_lock);
	m = json_pack("{s:s}", "type", "note");
	CHECK_INT(wsa_server_send(srv, id, m), WSA_OK);
	CHECK(next_is(c, "note"));
	CHECK_INT(wsa_server_join(srv, id, "room"), WSA_OK);
	json_object_set_new(m, "type", json_string("in-room"));
	CHECK_INT(wsa_server_publish(srv, "room", m, NULL), WSA_OK);
	CHECK(next_is(c, "in-room"));
	/* The join was carried out before the publish reached it. */
	j = wsa_server_topic_users(srv, "room");
	for (i = 0; j && i < json_array_size(j); i++)
		listed |= !strcmp(json_string_value(json_array_get(j, i)), uid);
	CHECK(listed);
	json_decref(j);
	json_object_set_new(m, "type", json_string("to-all"));
	CHECK_INT(wsa_server_broadcast(srv, "/ws/chat", m), WSA_OK);
	CHECK(next_is(c, "to-all"));
	json_object_set_new(m, "type", json_string("to-user"));
	CHECK_INT(wsa_server_send_uid(srv, uid, m), WSA_OK);
	CHECK(next_is(c, "to-user"));
	json_decref(m);
}

/* ------------------------------------------------ the host's libuv loop */

struct uv_case {
	wsa_server *srv;
	int port;
	atomic_int ticks; /* the host's own timer */
	atomic_bool client_done;
	bool stopped;
	uv_loop_t *loop;
};

static void *uv_client(void *arg)
{
	struct uv_case *u = arg;
	wsc *c = login(u->port, "alice");
	int before;
	struct timespec t0, t;

	if (c) {
		exchange(u->srv, c, "alice");
		/* The host's timer keeps firing while the server serves. */
		before = atomic_load(&u->ticks);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			/* Nothing comes: a bounded pause on the socket. */
			json_decref(wsc_recv_json(c, 10));
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (atomic_load(&u->ticks) < before + 3 &&
			 t.tv_sec - t0.tv_sec < 5);
		CHECK(atomic_load(&u->ticks) >= before + 3);
	}
	/* Stop from this thread: the connection gets its 1001. */
	wsa_server_stop(u->srv);
	if (c) {
		CHECK_INT(wsc_wait_close(c, T), 1001);
		wsc_close(c);
	}
	atomic_store(&u->client_done, true);
	return NULL;
}

static void uv_tick(uv_timer_t *t)
{
	struct uv_case *u = t->data;

	atomic_fetch_add(&u->ticks, 1);
}

static void uv_stopped(wsa_server *srv, void *ud)
{
	struct uv_case *u = ud;

	(void)srv;
	u->stopped = true;
	uv_stop(u->loop);
}

static void test_uv_loop(void)
{
	static struct uv_case u;
	uv_loop_t loop;
	uv_timer_t timer;
	wsa_config cfg;
	pthread_t client;
	unsigned long main_thread = (unsigned long)pthread_self();

	memset(&u, 0, sizeof(u));
	u.loop = &loop;
	CHECK_INT(uv_loop_init(&loop), 0);
	wsa_config_init(&cfg);
	cfg.log = quiet_log;
	cfg.threads = 2;
	CHECK_INT(wsa_server_new_on_loop(&u.srv, &cfg, WSA_LOOP_LIBUV, &loop),
		  WSA_EINVAL); /* one loop: the host's */
	CHECK_INT(wsa_server_new_on_loop(&u.srv, NULL, (wsa_loop_kind)9, &loop),
		  WSA_EINVAL);
	cfg.threads = 1;
	u.srv = make(&cfg, WSA_LOOP_LIBUV, &loop);
	if (!u.srv)
		return;
	u.port = wsa_server_port(u.srv);
	CHECK_INT(wsa_server_on_stopped(u.srv, uv_stopped, &u), WSA_OK);
	CHECK_INT(wsa_server_run(u.srv), WSA_ESTATE); /* the host runs it */
	CHECK_INT(wsa_server_start(u.srv), WSA_OK);
	CHECK_INT(wsa_server_start(u.srv), WSA_ESTATE);
	CHECK_INT(wsa_server_wait(u.srv), WSA_ESTATE);
	uv_timer_init(&loop, &timer);
	timer.data = &u;
	uv_timer_start(&timer, uv_tick, 20, 20);
	CHECK_INT(pthread_create(&client, NULL, uv_client, &u), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(u.stopped);
	/* Handlers ran on the loop's thread: this one. */
	CHECK(atomic_load(&handler_thread) == main_thread);
	pthread_join(client, NULL);
	/* Freed with the host's timer still running: the loop goes on. */
	wsa_server_free(u.srv);
	{
		int before = atomic_load(&u.ticks);

		while (atomic_load(&u.ticks) < before + 2)
			uv_run(&loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0); /* nothing of ours left */
}

/* A free without a stop, on the loop: connections closed, loop usable. */
static void test_uv_free_unstopped(void)
{
	uv_loop_t loop;
	wsa_config cfg;
	wsa_server *srv;

	CHECK_INT(uv_loop_init(&loop), 0);
	wsa_config_init(&cfg);
	cfg.log = quiet_log;
	srv = make(&cfg, WSA_LOOP_LIBUV, &loop);
	if (!srv)
		return;
	CHECK_INT(wsa_server_start(srv), WSA_OK);
	uv_run(&loop, UV_RUN_NOWAIT);
	wsa_server_free(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
}

/* ------------------------------------------- threads of its own, started */

static atomic_int stopped_calls;

static void count_stopped(wsa_server *srv, void *ud)
{
	(void)srv, (void)ud;
	atomic_fetch_add(&stopped_calls, 1);
}

/* A server of two loops of its own, not started. */
static wsa_server *two_loops(void)
{
	wsa_config cfg;

	wsa_config_init(&cfg);
	cfg.log = quiet_log;
	cfg.threads = 2;
	return make(&cfg, WSA_LOOP_LIBEV, NULL);
}

static void test_background(void)
{
	wsa_server *srv;
	wsc *c;

	srv = two_loops();
	if (!srv)
		return;
	CHECK_INT(wsa_server_wait(srv), WSA_ESTATE); /* not started */
	CHECK_INT(wsa_server_on_stopped(srv, count_stopped, NULL), WSA_OK);
	CHECK_INT(wsa_server_start(srv), WSA_OK);
	CHECK_INT(wsa_server_run(srv), WSA_ESTATE);
	CHECK_INT(wsa_server_on_stopped(srv, count_stopped, NULL), WSA_ESTATE);
	/* This thread goes on: it is a client of its own server. */
	c = login(wsa_server_port(srv), "bob");
	if (c) {
		exchange(srv, c, "bob");
		wsa_server_stop(srv);
		CHECK_INT(wsc_wait_close(c, T), 1001);
		wsc_close(c);
	}
	CHECK_INT(wsa_server_wait(srv), WSA_OK);
	CHECK_INT(atomic_load(&stopped_calls), 1);
	wsa_server_free(srv);

	/* Freed while running: stopped and waited for by the free. */
	srv = two_loops();
	if (!srv)
		return;
	CHECK_INT(wsa_server_start(srv), WSA_OK);
	c = login(wsa_server_port(srv), "carol");
	wsa_server_free(srv);
	if (c) {
		CHECK_INT(wsc_wait_close(c, T), 1001);
		wsc_close(c);
	}
}

/* A counter of the snapshot: path of keys, NULL-terminated. */
static json_int_t metric(json_t *snap, ...)
{
	va_list ap;
	const char *k;
	json_t *v = snap;

	va_start(ap, snap);
	while (v && (k = va_arg(ap, const char *)))
		v = json_object_get(v, k);
	va_end(ap);
	return json_integer_value(v);
}

/* The host's check of the metrics path: a bearer secret. */
static int metrics_check(const char *peer, const char *authorization, void *ud)
{
	CHECK(peer && !strcmp(peer, "127.0.0.1"));
	CHECK(ud == (void *)&jwt);
	return authorization && !strcmp(authorization, "Bearer m3trics") ? 0
									 : 401;
}

/* GET path with extra header lines; the status, and the body in *body
 * when body is not NULL. */
static int get(int port, const char *path, const char *headers, char **body)
{
	char req[512], *resp = NULL;
	int status;

	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
		 path, headers);
	status = wsc_http_fetch("127.0.0.1", port, req, T, &resp);
	if (body)
		*body = resp;
	else
		free(resp);
	return status;
}

/* Counters of two loops, read from a thread that runs neither while
 * they serve, merged: logins, messages by type, the connections gauge,
 * closes by code; and the same in Prometheus' text. */
static void test_metrics_threads(void)
{
	static const char chat[] = "{\"type\":\"chat\",\"n\":1}";
	wsa_server *srv;
	wsc *c[8];
	json_t *snap = NULL, *j;
	char *text, uid[16];
	size_t i, len;
	int before;

	srv = two_loops();
	if (!srv)
		return;
	CHECK_INT(wsa_server_metrics_path(srv, "metrics", NULL, NULL),
		  WSA_EINVAL);
	CHECK_INT(wsa_server_metrics_path(srv, "/metrics", metrics_check, &jwt),
		  WSA_OK);
	CHECK_INT(wsa_server_metrics_path(srv, "/metrics", NULL, NULL),
		  WSA_EEXIST);
	CHECK_INT(wsa_server_start(srv), WSA_OK);
	CHECK_INT(wsa_server_metrics_path(srv, "/m2", NULL, NULL), WSA_ESTATE);
	for (i = 0; i < 8; i++) {
		snprintf(uid, sizeof(uid), "m%zu", i);
		c[i] = login(wsa_server_port(srv), uid);
		if (!c[i])
			continue;
		CHECK_INT(wsc_send_text(c[i], chat, sizeof(chat) - 1), 0);
		j = wsc_recv_json(c[i], T);
		CHECK(j != NULL);
		json_decref(j);
	}
	/* A broadcast from this thread to all eight, on both loops. */
	{
		json_t *m = json_pack("{s:s}", "type", "all");

		CHECK_INT(wsa_server_broadcast(srv, "/ws/chat", m), WSA_OK);
		json_decref(m);
		for (i = 0; i < 8; i++)
			if (c[i])
				CHECK(next_is(c[i], "all"));
	}
	/* Every answer came: each loop has counted what it answered. */
	snap = wsa_server_metrics(srv);
	CHECK_INT(metric(snap, "wsa_publishes_total", NULL), 1);
	CHECK_INT(metric(snap, "wsa_deliveries_total", NULL), 8);
	/* One observation per loop the publish reached. */
	CHECK(metric(snap, "wsa_publish_duration_seconds", "count", NULL) >= 1);
	CHECK_INT(metric(snap, "wsa_logins_total", "accepted", NULL), 8);
	CHECK_INT(metric(snap, "wsa_messages_received_total", "/ws/chat",
			 "chat", NULL),
		  8);
	CHECK_INT(metric(snap, "wsa_connections", "/ws/chat", NULL), 8);
	CHECK_INT(
	    metric(snap, "wsa_connections_authenticated", "/ws/chat", NULL), 8);
	CHECK_INT(metric(snap, "wsa_handler_duration_seconds", "count", NULL),
		  8);
	json_decref(snap);
	pthread_mutex_lock(&close_lock);
	before = closes;
	pthread_mutex_unlock(&close_lock);
	for (i = 0; i < 8; i++)
		if (c[i]) {
			wsc_send_close(c[i], 1000, "");
			CHECK_INT(wsc_wait_close(c[i], T), 1000);
			wsc_close(c[i]);
		}
	/* Counted before the close handler runs. */
	CHECK(wait_closes(before + 8));
	snap = wsa_server_metrics(srv);
	CHECK_INT(metric(snap, "wsa_connections", "/ws/chat", NULL), 0);
	CHECK_INT(metric(snap, "wsa_closes_total", "1000", NULL), 8);
	CHECK_INT(metric(snap, "wsa_queued_bytes", NULL), 0);
	json_decref(snap);
	text = wsa_server_metrics_text(srv, &len);
	CHECK(text && strlen(text) == len);
	/* Served behind the host's check; never to a foreign page. */
	{
		char *body = NULL;

		CHECK_INT(get(wsa_server_port(srv), "/metrics", "", NULL), 401);
		CHECK_INT(get(wsa_server_port(srv), "/metrics",
			      "Authorization: Bearer m3trics\r\n"
			      "Origin: http://evil.example\r\n",
			      NULL),
			  403);
		CHECK_INT(get(wsa_server_port(srv), "/metrics",
			      "Authorization: Bearer m3trics\r\n", &body),
			  200);
		CHECK(
		    body && strstr(body, "version=0.0.4") &&
		    strstr(body, "wsa_logins_total{result=\"accepted\"} 8\n"));
		free(body);
	}
	CHECK(text &&
	      strstr(text, "wsa_logins_total{result=\"accepted\"} 8\n"));
	CHECK(text && strstr(text, "# TYPE wsa_connections gauge\n"));
	free(text);
	wsa_server_free(srv);
}

int main(void)
{
	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", SECRET, strlen(SECRET)),
		  WSA_OK);
	test_uv_loop();
	test_uv_free_unstopped();
	test_background();
	test_metrics_threads();
	wsa_jwt_free(jwt);
	return check_status("test_host_loop");
}
