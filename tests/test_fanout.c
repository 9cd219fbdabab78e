/* Fan-out at scale, with real sockets: 1,000 connections in one topic get
 * 10,000 messages published at once from 4 host threads, every one, each
 * thread's in order; a reader that never reads is cut off at the queue
 * bound while the others get everything; a stop under load delivers what
 * was published before it, then closes with 1001. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <wsa.h>

#include "check.h"
#include "serve.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET	"0123456789abcdef0123456789abcdef"
#define T	10000
#define THREADS 4

static void on_sub(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	CHECK_INT(
	    wsa_conn_join(c, json_string_value(json_object_get(msg, "topic"))),
	    WSA_OK);
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "subbed"));
}

/* The next start's drain timeout, or 0 for the default. */
static unsigned drain_ms;

static bool start(struct server *s, size_t max_queued)
{
	wsa_config cfg;
	wsa_route *r;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	cfg.max_queued_bytes = max_queued;
	if (drain_ms)
		cfg.drain_timeout_ms = drain_ms;
	/* 1,000 subscribers from one address, logging in at once: the
	 * test is about fan-out, not the per-address limits. */
	cfg.max_connections_per_address = WSA_UNLIMITED;
	cfg.verify_rate = WSA_UNLIMITED;
	if (wsa_server_new(&s->srv, &cfg) || wsa_jwt_new(&s->jwt) ||
	    wsa_jwt_add_key(s->jwt, NULL, "HS256", SECRET, strlen(SECRET)) ||
	    wsa_set_verifier(s->srv, wsa_jwt_verifier, s->jwt) ||
	    wsa_route_add(s->srv, "/ws/fan", NULL, NULL, NULL, &r) ||
	    wsa_route_handle(r, "sub", on_sub, NULL))
		return false;
	s->port = wsa_server_port(s->srv);
	return pthread_create(&s->thread, NULL, serve_run, s) == 0;
}

/* A logged-in connection subscribed to topic, or NULL. */
static wsc *subscriber(const struct server *s, int i, const char *topic)
{
	char uid[32], text[1024];
	json_t *m;
	wsc *c = wsc_connect("127.0.0.1", s->port, "/ws/fan", NULL, T, NULL);

	if (!c)
		return NULL;
	snprintf(uid, sizeof(uid), "s%d", i);
	serve_login(c, SECRET, uid);
	snprintf(text, sizeof(text), "{\"type\":\"sub\",\"topic\":\"%s\"}",
		 topic);
	wsc_send_text(c, text, strlen(text));
	json_decref(wsc_recv_json(c, T)); /* auth */
	m = wsc_recv_json(c, T);
	if (!m ||
	    strcmp(json_string_value(json_object_get(m, "type")), "subbed")) {
		json_decref(m);
		wsc_close(c);
		return NULL;
	}
	json_decref(m);
	return c;
}

struct pub {
	wsa_server *srv;
	const char *topic;
	int thread, count;
	size_t pad;
};

static void *publisher(void *arg)
{
	struct pub *p = arg;
	char *pad = calloc(1, p->pad + 1);

	memset(pad, 'x', p->pad);
	for (int i = 0; i < p->count; i++) {
		json_t *m = json_pack("{s:s,s:i,s:i,s:s}", "type", "p", "t",
				      p->thread, "n", i, "pad", pad);

		CHECK_INT(wsa_server_publish(p->srv, p->topic, m, NULL),
			  WSA_OK);
		json_decref(m);
	}
	free(pad);
	return NULL;
}

struct reader {
	wsc *c;
	int next[THREADS];
	long got;
	int close_code; /* 0 while open */
};

/* Read what is there on c: count messages and check each thread's order
 * (the text is as the library writes it: type, t, n, pad). */
static void drain(struct reader *r)
{
	wsc_frame f;

	while (wsc_recv(r->c, &f, 0) == 1) {
		int t = -1, n = -1;

		if (f.opcode == WSC_CLOSE) {
			r->close_code = wsc_close_code(&f);
			wsc_frame_free(&f);
			return;
		}
		if (sscanf((char *)f.data, "{\"type\":\"p\",\"t\":%d,\"n\":%d",
			   &t, &n) == 2 &&
		    t >= 0 && t < THREADS) {
			if (n != r->next[t])
				CHECK_INT(n, r->next[t]);
			r->next[t] = n + 1;
			r->got++;
		}
		wsc_frame_free(&f);
	}
}

/* Read from every reader until each has want messages (or has closed),
 * or the deadline; returns the total received. */
static long read_all(struct reader *r, int n, long want, int deadline_s)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	time_t end = time(NULL) + deadline_s;
	long total;
	int i, left;

	do {
		left = 0;
		for (i = 0; i < n; i++) {
			p[i].fd = wsc_fd(r[i].c);
			p[i].events = POLLIN;
			p[i].revents = 0;
			left += r[i].got < want && !r[i].close_code;
		}
		if (!left || poll(p, (nfds_t)n, 1000) < 0)
			break;
		for (i = 0; i < n; i++)
			if (p[i].revents)
				drain(&r[i]);
	} while (time(NULL) < end);
	for (total = 0, i = 0; i < n; i++)
		total += r[i].got;
	free(p);
	return total;
}

static void test_thousand(void)
{
	/* WSA_FANOUT_SCALE=N divides both, for runs under valgrind. */
	const char *scale_env = getenv("WSA_FANOUT_SCALE");
	int scale = scale_env && atoi(scale_env) > 0 ? atoi(scale_env) : 1;
	int nsub = 1000 / scale, per = 2500 / scale, i;
	struct reader *r = calloc((size_t)nsub, sizeof(*r));
	struct pub pubs[THREADS];
	pthread_t th[THREADS];
	struct server s;
	long total;

	CHECK(start(&s, 0));
	for (i = 0; i < nsub; i++) {
		r[i].c = subscriber(&s, i, "fan");
		CHECK(r[i].c != NULL);
		if (!r[i].c)
			return;
	}
	for (i = 0; i < THREADS; i++) {
		pubs[i] = (struct pub){s.srv, "fan", i, per, 0};
		pthread_create(&th[i], NULL, publisher, &pubs[i]);
	}
	total = read_all(r, nsub, (long)per * THREADS, 120);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(total, (long)nsub * per * THREADS);
	fprintf(stderr,
		"fan-out: %d subscribers x %d messages: %ld delivered\n", nsub,
		per * THREADS, total);
	for (i = 0; i < nsub; i++)
		wsc_close(r[i].c);
	free(r);
	serve_finish(&s);
}

/* One subscriber never reads: cut off with 1008 at the bound (1 MiB)
 * once the kernel's buffers are full too; the others, which read, get
 * every message. Published in rounds that the readers drain, so only the
 * one that does not read falls behind. */
static void test_slow_reader(void)
{
	int nsub = 5, rounds = 100, per_round = 100, i, k;
	struct reader r[5] = {0};
	char pad[2001];
	struct server s;
	wsc *slow;
	long total = 0;

	memset(pad, 'x', 2000);
	pad[2000] = '\0';
	/* The slow one is read only after every round, and its close waits
	 * behind full buffers till then: that must not time out first (the
	 * rounds take long under valgrind). The test is about the queue's
	 * bound, not the drain timeout. */
	drain_ms = 300000;
	CHECK(start(&s, 0));
	drain_ms = 0;
	slow = subscriber(&s, 99, "big");
	for (i = 0; i < nsub; i++)
		r[i].c = subscriber(&s, i, "big");
	for (k = 0; k < rounds; k++) {
		for (i = 0; i < per_round; i++) {
			json_t *m =
			    json_pack("{s:s,s:i,s:i,s:s}", "type", "p", "t", 0,
				      "n", k * per_round + i, "pad", pad);

			CHECK_INT(wsa_server_publish(s.srv, "big", m, NULL),
				  WSA_OK);
			json_decref(m);
		}
		total = read_all(r, nsub, (long)(k + 1) * per_round, 60);
	}
	CHECK_INT(total, (long)nsub * rounds * per_round);
	for (i = 0; i < nsub; i++)
		CHECK_INT(r[i].close_code, 0);
	/* Whatever was written before the cut, then the close. */
	CHECK_INT(wsc_wait_close(slow, T), 1008);
	wsc_close(slow);
	for (i = 0; i < nsub; i++)
		wsc_close(r[i].c);
	serve_finish(&s);
}

/* Publish, then stop at once, before the clients read: every message
 * published before the stop arrives (within the queue bound: 8,000 small
 * messages), then 1001. */
static void test_stop_under_load(void)
{
	int nsub = 20, per = 2000, i;
	struct reader r[20] = {0};
	struct pub pubs[THREADS];
	pthread_t th[THREADS];
	struct server s;
	long total;

	CHECK(start(&s, 0));
	for (i = 0; i < nsub; i++)
		r[i].c = subscriber(&s, i, "last");
	for (i = 0; i < THREADS; i++) {
		pubs[i] = (struct pub){s.srv, "last", i, per, 0};
		pthread_create(&th[i], NULL, publisher, &pubs[i]);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	wsa_server_stop(s.srv);
	total = read_all(r, nsub, (long)per * THREADS + 1, 120);
	CHECK_INT(total, (long)nsub * per * THREADS);
	for (i = 0; i < nsub; i++) {
		CHECK_INT(r[i].close_code, 1001);
		wsc_close(r[i].c);
	}
	pthread_join(s.thread, NULL);
	wsa_server_free(s.srv);
	wsa_jwt_free(s.jwt);
}

int main(void)
{
	struct rlimit rl;

	/* 1,000 connections, both ends in this process. */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	test_thousand();
	test_slow_reader();
	test_stop_under_load();
	return check_status("test_fanout");
}
