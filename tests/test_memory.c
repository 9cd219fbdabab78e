/* What an idle authenticated connection holds of the library's own heap
 * (issue 15: memory per idle connection). The library's calls to malloc,
 * calloc, realloc, strdup and free are redirected here at link time
 * (-Wl,--wrap, as test_oom does); what the server's thread allocates is
 * counted in malloc's chunk sizes (glibc rounds a request up to 16-byte
 * steps, header included) until it is freed. A handler reads the count on
 * the server's thread, between two messages, so nothing is in flight
 * when it is read. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wsa.h>

#include "check.h"
#include "serve.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000
#define K      32 /* connections measured; the indexes do not grow */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void __real_free(void *p);

/* The server thread's live allocations: an open-addressed set of
 * pointers (the count stays far below its size). */
#define SLOTS 65536
static void *live[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t server_thread;
static atomic_bool counting;
static long long held; /* chunk bytes of what live holds */

static size_t chunk(void *p)
{
	return malloc_usable_size(p) + sizeof(size_t);
}

static size_t slot_of(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) &
	       (SLOTS - 1);
}

static void track(void *p)
{
	size_t i;

	if (!p || !atomic_load(&counting) ||
	    !pthread_equal(pthread_self(), server_thread))
		return;
	pthread_mutex_lock(&lock);
	for (i = slot_of(p); live[i]; i = (i + 1) & (SLOTS - 1))
		;
	live[i] = p;
	held += (long long)chunk(p);
	pthread_mutex_unlock(&lock);
}

/* p is being freed (or moved by realloc): forget it if counted. */
static void untrack(void *p)
{
	size_t i, j, k;

	if (!p)
		return;
	pthread_mutex_lock(&lock);
	for (i = slot_of(p); live[i] && live[i] != p; i = (i + 1) & (SLOTS - 1))
		;
	if (live[i]) {
		held -= (long long)chunk(p);
		live[i] = NULL;
		/* Re-place the run after the hole (linear probing). */
		for (j = (i + 1) & (SLOTS - 1); live[j];
		     j = (j + 1) & (SLOTS - 1)) {
			void *q = live[j];

			live[j] = NULL;
			for (k = slot_of(q); live[k]; k = (k + 1) & (SLOTS - 1))
				;
			live[k] = q;
		}
	}
	pthread_mutex_unlock(&lock);
}

void *__wrap_malloc(size_t n)
{
	void *p = __real_malloc(n);

	track(p);
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	void *p = __real_calloc(n, size);

	track(p);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	void *q;

	untrack(p);
	q = __real_realloc(p, n);
	track(q ? q : p);
	return q;
}

char *__wrap_strdup(const char *s)
{
	char *p = __real_strdup(s);

	track(p);
	return p;
}

void __wrap_free(void *p)
{
	untrack(p);
	__real_free(p);
}

static long long measured;

/* On the server's thread, between messages: what it holds now. */
static void on_measure(wsa_conn *c, json_t *msg, void *ud)
{
	(void)msg, (void)ud;
	pthread_mutex_lock(&lock);
	measured = held;
	pthread_mutex_unlock(&lock);
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "measured"));
}

/* The next message on c is of type type. */
static bool answered(wsc *c, const char *type)
{
	json_t *j = wsc_recv_json(c, T);
	const char *t = json_string_value(json_object_get(j, "type"));
	bool ok = t && !strcmp(t, type);

	json_decref(j);
	return ok;
}

/* Connect and log in as uid; NULL when that fails. */
static wsc *logged_in(int port, const char *uid)
{
	wsc *c = wsc_connect("127.0.0.1", port, "/ws", NULL, T, NULL);

	if (!c)
		return NULL;
	serve_login(c, SECRET, uid);
	if (!answered(c, "auth")) {
		wsc_close(c);
		return NULL;
	}
	return c;
}

/* What the server holds, read on its thread through c. */
static long long held_now(wsc *c)
{
	static const char m[] = "{\"type\":\"measure\"}";

	wsc_send_text(c, m, sizeof(m) - 1);
	CHECK(answered(c, "measured"));
	return measured;
}

/* A server at the default limits, quiet, with the test's verifier and
 * its route /ws, not yet running. */
static wsa_route *memory_server(struct server *s)
{
	wsa_config cfg;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	return serve_new(s, &cfg, SECRET);
}

/* K idle authenticated connections of K users, at the server's default
 * limits, after a first one has made the loop's indexes and buffers: each
 * holds its connection (a 376-byte struct, malloc's 384-byte chunk) and
 * its identity (uid, email and claims in one allocation: 64 here), and
 * nothing for its places in the indexes by id and by uid. */
static void idle_connections(void)
{
	struct server s;
	wsa_route *r;
	wsc *first, *c[K];
	long long before, after, closed;
	char uid[32];
	int i;

	r = memory_server(&s);
	wsa_route_handle(r, "measure", on_measure, NULL);
	s.port = wsa_server_port(s.srv);
	pthread_create(&s.thread, NULL, serve_run, &s);
	server_thread = s.thread;
	atomic_store(&counting, true);
	first = logged_in(s.port, "first");
	CHECK(first != NULL);
	if (!first) {
		serve_finish(&s);
		return;
	}
	before = held_now(first);
	for (i = 0; i < K; i++) {
		snprintf(uid, sizeof(uid), "user-%02d", i);
		c[i] = logged_in(s.port, uid);
		CHECK(c[i] != NULL);
	}
	after = held_now(first);
	fprintf(stderr, "an idle authenticated connection holds %lld bytes\n",
		(after - before) / K);
	CHECK((after - before) / K <= 384 + 64);
	for (i = 0; i < K; i++) {
		if (!c[i])
			continue;
		wsc_send_close(c[i], 1000, NULL);
		CHECK_INT(wsc_wait_close(c[i], T), 1000);
		/* The server ends the stream as it frees the connection, in
		 * the round that reads nothing of the next message yet. */
		CHECK_INT(wsc_wait_eof(c[i], T), 1);
		wsc_close(c[i]);
	}
	/* Closed connections give everything back. */
	closed = held_now(first);
	CHECK_INT(closed, before);
	atomic_store(&counting, false);
	wsc_close(first);
	serve_finish(&s);
}

/* Close c and wait until the server has freed it. */
static void closed_by_server(wsc *c)
{
	wsc_send_close(c, 1000, NULL);
	CHECK_INT(wsc_wait_close(c, T), 1000);
	CHECK_INT(wsc_wait_eof(c, T), 1);
	wsc_close(c);
}

/* A message to uid reaches c (and was sent after what c got before). */
static void reaches(wsa_server *srv, const char *uid, wsc *c)
{
	json_t *m = json_pack("{s:s}", "type", "to-uid");

	CHECK_INT(wsa_server_send_uid(srv, uid, m), WSA_OK);
	json_decref(m);
	CHECK(answered(c, "to-uid"));
}

/* The index of uids holds the first connection of each uid itself: when
 * that one closes, the next takes its place; when another closes, the
 * first stays. */
static void uid_index(void)
{
	struct server s;
	wsc *a, *b, *c;

	memory_server(&s);
	s.port = wsa_server_port(s.srv);
	pthread_create(&s.thread, NULL, serve_run, &s);
	a = logged_in(s.port, "twin");
	b = logged_in(s.port, "twin"); /* the newest is the index's entry */
	c = logged_in(s.port, "other");
	CHECK(a && b && c);
	if (!a || !b || !c)
		goto out;
	closed_by_server(b);
	reaches(s.srv, "twin", a);
	b = logged_in(s.port, "twin");
	CHECK(b != NULL);
	closed_by_server(a); /* now not the entry */
	a = NULL;
	if (b)
		reaches(s.srv, "twin", b);
	reaches(s.srv, "other", c);
out:
	if (a)
		wsc_close(a);
	if (b)
		wsc_close(b);
	if (c)
		wsc_close(c);
	serve_finish(&s);
}

int main(void)
{
	idle_connections();
	uid_index();
	return check_status("test_memory");
}
