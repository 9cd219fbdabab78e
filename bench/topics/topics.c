/* wsa-topics-bench: what the topic names a client picks cost the service
 * loop. 16,000 names that all fall into one bucket of the topic map under
 * unseeded FNV-1a-64 (the hash lib/map.c used, with the bucket taken from
 * the low bits) against 16,000 ordinary names, in the same run.
 *
 * The server runs in this process, on its own thread, with its default
 * limits. 125 WebSocket clients (tests/wsclient.c, plain sockets) log in
 * with an HS256 token; then, for each name set (ordinary, colliding,
 * ordinary again to show drift), the main thread joins each connection to
 * 128 topics (within the default cap per connection) with
 * wsa_server_join(), publishes once to every topic with
 * wsa_server_publish() and leaves them all with wsa_server_leave(). These
 * any-thread calls are carried out by the service thread, in order, so
 * every map lookup of the measurement is made by the loop that also
 * serves the sockets. The calls go in chunks of CHUNK, each followed by a
 * wsa_server_send() to one client: its arrival says the chunk is done.
 * An operation's time is from the first call until the last such message
 * (or, for a publish, the last delivery) has arrived; the service
 * thread's CPU time over the same span is reported beside it. Each set
 * runs up to --rounds rounds (join, publish, leave), none started after
 * --set-seconds, and reports their medians; an untimed round comes first.
 * No phase starts a chunk after --cap-seconds: the rate so far is then
 * reported, over fewer calls.
 *
 * Usage: wsa-topics-bench [--rounds 5] [--set-seconds 20]
 *                         [--cap-seconds 60] [--dump ordinary|colliding]
 * One JSON line per name set, then one with the ratios, on stdout; a table
 * and the line "topics: join ratio ..." on stderr. --dump prints the
 * names of a set, one a line. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsa.h>

#include "field.h"
#include "hs256.h"

#include "wsclient.h"

#define SECRET	      "topics-bench-secret-topics-bench-secret-0123"
#define PATH	      "/ws/topics"
#define NCONN	      125		 /* clients, all from 127.0.0.1 */
#define PER_CONN      128		 /* topics each: the default cap */
#define NNAMES	      (NCONN * PER_CONN) /* 16,000 per name set */
#define CHUNK	      1000 /* calls between two "chunk done" messages */
#define WINDOW	      2	   /* chunks in flight: the loop never waits for us */
#define NCHUNKS	      ((NNAMES + CHUNK - 1) / CHUNK)
#define TIMEOUT_MS    60000 /* any one wait */
#define MAX_ROUNDS    20
#define ID_LEN	      22
#define NAME_SHORTEST 16
#define NAME_LONGEST  40

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A failure ends the process at once: a service thread busy with a long
 * queue of colliding lookups must not hold it up. */
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wsa-topics-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* --------------------------------------------------------------- names */

#define FNV_BASIS  0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull
#define LOW_MASK   0xffffu /* bucket bits in common: 65,536 buckets */
#define TARGET	   0x5eedu /* the bucket (mod 65,536) of every colliding name */
#define SUFFIX_MAX 4	   /* steering characters at most (steer_init) */

static const char alnum[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = FNV_BASIS;

	while (*s)
		h = (h ^ (unsigned char)*s++) * FNV_PRIME;
	return h;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* The low 16 bits of FNV-1a-64 are a machine of their own with 65,536
 * states (a product's low bits depend only on the factors' low bits):
 * s' = ((s ^ c) * prime) mod 2^16. The prime is odd, so every state t
 * has a predecessor ((t * prime^-1) mod 2^16) ^ c for each character c.
 * A breadth-first walk back from TARGET gives every state the character
 * that takes it one step closer; with alphanumerics, four at most. So a
 * colliding name is any prefix and the few characters that lead from its
 * state to TARGET: no search, and 16,000 names in milliseconds. */
struct steer {
	unsigned char next[LOW_MASK + 1]; /* 0: TARGET itself */
	unsigned char depth[LOW_MASK + 1];
};

static void steer_init(struct steer *st)
{
	static uint16_t queue[LOW_MASK + 1];
	uint64_t inv = FNV_PRIME;
	bool seen[LOW_MASK + 1] = {false};
	size_t head = 0, tail = 0, i;

	for (i = 0; i < 5; i++) /* Newton: each round doubles the bits */
		inv *= 2 - FNV_PRIME * inv;
	memset(st, 0, sizeof(*st));
	seen[TARGET] = true;
	queue[tail++] = TARGET;
	while (head < tail) {
		unsigned t = queue[head++];
		unsigned base = (unsigned)((t * inv) & LOW_MASK);

		for (i = 0; i < sizeof(alnum) - 1; i++) {
			unsigned s = base ^ (unsigned char)alnum[i];

			if (seen[s])
				continue;
			seen[s] = true;
			st->next[s] = (unsigned char)alnum[i];
			st->depth[s] = (unsigned char)(st->depth[t] + 1);
			queue[tail++] = (uint16_t)s;
		}
	}
	if (tail != LOW_MASK + 1)
		die("names: %zu states cannot reach the target", tail);
	if (st->depth[queue[tail - 1]] > SUFFIX_MAX)
		die("names: a suffix of %d characters",
		    st->depth[queue[tail - 1]]);
}

/* Name i of each set: "room-NNNNN-", 5 to 25 random alphanumerics, then
 * for the colliding set the characters that steer it to TARGET and for
 * the ordinary set as many random ones: same lengths (16 to 40 bytes),
 * same prefixes, so the sets differ only in where FNV puts them. The
 * number at a fixed place makes every name distinct. */
static void make_names(char **ord, char **col)
{
	static struct steer st;
	uint64_t rng = 0x746f70696373ull; /* fixed: the same names every run */
	int i;

	steer_init(&st);
	for (i = 0; i < NNAMES; i++) {
		char buf[NAME_LONGEST + 1];
		int n = snprintf(buf, sizeof(buf), "room-%05d-", i), f, k;
		unsigned s;

		/* 11 + 5..25 + 0..4 bytes: 16 to 40. */
		f = 5 + (int)(rng_next(&rng) %
			      (NAME_LONGEST - 11 - SUFFIX_MAX - 4));
		for (k = 0; k < f; k++)
			buf[n++] = alnum[rng_next(&rng) % 62];
		buf[n] = 0;
		s = (unsigned)(fnv1a64(buf) & LOW_MASK);
		ord[i] = malloc(NAME_LONGEST + 1);
		col[i] = malloc(NAME_LONGEST + 1);
		if (!ord[i] || !col[i])
			die("out of memory");
		memcpy(ord[i], buf, (size_t)n);
		memcpy(col[i], buf, (size_t)n);
		for (k = 0; s != TARGET; k++) {
			col[i][n + k] = (char)st.next[s];
			ord[i][n + k] = alnum[rng_next(&rng) % 62];
			s = ((s ^ st.next[s]) * (unsigned)FNV_PRIME) & LOW_MASK;
		}
		col[i][n + k] = ord[i][n + k] = 0;
	}
}

/* The names are what this benchmark claims they are. */
static void check_names(char **ord, char **col)
{
	static bool used[LOW_MASK + 1];
	int i, buckets = 0;

	for (i = 0; i < NNAMES; i++) {
		size_t n = strlen(col[i]), k;

		if (n < NAME_SHORTEST || n > NAME_LONGEST ||
		    strlen(ord[i]) != n)
			die("names: name %d has %zu bytes", i, n);
		for (k = 0; k < n; k++)
			if (col[i][k] < 0x21 || col[i][k] > 0x7e ||
			    ord[i][k] < 0x21 || ord[i][k] > 0x7e)
				die("names: name %d is not printable", i);
		if ((fnv1a64(col[i]) & LOW_MASK) != TARGET)
			die("names: %s misses the bucket", col[i]);
		/* A map of 16,000 entries has 16,384 buckets. */
		k = fnv1a64(ord[i]) & 16383;
		buckets += !used[k];
		used[k] = true;
	}
	fprintf(stderr,
		"topics: names: the colliding ones share the low 16 bits of "
		"FNV-1a-64 (1 bucket of up to 65,536); the ordinary ones "
		"take %d of the 16,384 buckets a map of 16,000 has\n",
		buckets);
}

/* ------------------------------------------------------------- clients */

struct client {
	wsc *ws;
	char id[ID_LEN + 1];
	int count; /* the last "count" answer; -1: none yet */
	bool seen[PER_CONN];
};

struct bench {
	wsa_server *srv;
	wsa_jwt *jwt;
	pthread_t th;
	clockid_t loop_clock; /* the service thread's CPU time */
	struct client cl[NCONN];
	struct pollfd pfd[NCONN];
	bool sync[NCHUNKS]; /* chunk k's message has come */
	int delivered;
	int64_t t_last; /* the arrival of the latest awaited message */
};

/* A delivery of topic t to client i: its own, and once. */
static void on_delivery(struct bench *b, int i, const char *msg)
{
	char v[16];
	int t;

	if (bench_field(msg, "t", v, sizeof(v)))
		die("client %d: delivery without t: %.80s", i, msg);
	t = atoi(v);
	if (t < 0 || t >= NNAMES || t % NCONN != i)
		die("client %d: delivery of topic %d, not one of its own", i,
		    t);
	if (b->cl[i].seen[t / NCONN])
		die("client %d: topic %d delivered twice", i, t);
	b->cl[i].seen[t / NCONN] = true;
	b->delivered++;
	b->t_last = now_ns();
}

static void on_message(struct bench *b, int i, const char *msg)
{
	struct client *c = &b->cl[i];
	char type[16], v[64];

	if (bench_field(msg, "type", type, sizeof(type)))
		die("client %d: message without type: %.80s", i, msg);
	if (!strcmp(type, "m")) {
		on_delivery(b, i, msg);
	} else if (!strcmp(type, "sync") &&
		   !bench_field(msg, "k", v, sizeof(v)) && atoi(v) >= 0 &&
		   atoi(v) < NCHUNKS) {
		b->sync[atoi(v)] = true;
		b->t_last = now_ns();
	} else if (!strcmp(type, "count") &&
		   !bench_field(msg, "n", v, sizeof(v))) {
		c->count = atoi(v);
	} else if (!strcmp(type, "you") &&
		   !bench_field(msg, "id", v, sizeof(v)) &&
		   strlen(v) == ID_LEN) {
		memcpy(c->id, v, ID_LEN + 1);
	} else if (strcmp(type, "auth")) {
		die("client %d: unexpected message: %.120s", i, msg);
	}
}

/* Everything client i has received so far. */
static void drain(struct bench *b, int i)
{
	for (;;) {
		wsc_frame f;
		int r = wsc_recv(b->cl[i].ws, &f, 0);

		if (r == 0)
			return;
		if (r < 0)
			die("client %d: %s", i, wsc_error(b->cl[i].ws));
		if (f.opcode == WSC_CLOSE)
			die("client %d: closed by the server (%d) %s", i,
			    wsc_close_code(&f),
			    f.len > 2 ? (const char *)f.data + 2 : "");
		if (f.opcode == WSC_TEXT)
			on_message(b, i, (const char *)f.data);
		wsc_frame_free(&f);
	}
}

typedef bool (*done_fn)(const struct bench *b, int arg);

/* Read from every client until done(b, arg), at most TIMEOUT_MS. */
static void wait_for(struct bench *b, done_fn done, int arg, const char *what)
{
	int64_t deadline = now_ns() + (int64_t)TIMEOUT_MS * 1000000;
	int i;

	while (!done(b, arg)) {
		int64_t left = (deadline - now_ns()) / 1000000;
		int r;

		if (left <= 0)
			die("%s: not done in %d s", what, TIMEOUT_MS / 1000);
		r = poll(b->pfd, NCONN, (int)left);
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (i = 0; r > 0 && i < NCONN; i++)
			if (b->pfd[i].revents)
				drain(b, i);
	}
}

static bool ids_known(const struct bench *b, int arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NCONN; i++)
		if (!b->cl[i].id[0])
			return false;
	return true;
}

static bool counts_known(const struct bench *b, int arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NCONN; i++)
		if (b->cl[i].count < 0)
			return false;
	return true;
}

/* Chunks 0 to arg - 1 are done. */
static bool synced(const struct bench *b, int arg)
{
	int k;

	for (k = 0; k < arg; k++)
		if (!b->sync[k])
			return false;
	return true;
}

static bool all_delivered(const struct bench *b, int arg)
{
	return b->delivered >= arg;
}

static void send_json(struct bench *b, int i, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);

	if (!text || wsc_send_text(b->cl[i].ws, text, strlen(text)))
		die("client %d: send failed", i);
	free(text);
	json_decref(msg);
}

/* Every client connects, logs in and asks for its connection id. */
static void connect_all(struct bench *b, int port)
{
	char token[400];
	int i;

	bench_hs256_token(token, sizeof(token), SECRET, NULL);
	for (i = 0; i < NCONN; i++) {
		int status = 0;

		b->cl[i].ws =
		    wsc_connect("127.0.0.1", port, PATH, NULL, 5000, &status);
		if (!b->cl[i].ws)
			die("client %d: upgrade failed (HTTP %d)", i, status);
		b->pfd[i].fd = wsc_fd(b->cl[i].ws);
		b->pfd[i].events = POLLIN;
		send_json(
		    b, i,
		    json_pack("{s:s,s:s}", "type", "login", "token", token));
		send_json(b, i, json_pack("{s:s}", "type", "whoami"));
	}
	wait_for(b, ids_known, 0, "logins");
}

/* Each client asks how many topics its connection is in: client i must be
 * in those of 0 .. joined - 1 that are i modulo NCONN. Client messages are
 * rate limited, but a few are far below the default burst. */
static void check_counts(struct bench *b, int joined, const char *when)
{
	int i;

	for (i = 0; i < NCONN; i++) {
		b->cl[i].count = -1;
		send_json(b, i, json_pack("{s:s}", "type", "count"));
	}
	wait_for(b, counts_known, 0, "topic counts");
	for (i = 0; i < NCONN; i++) {
		int expect = joined > i ? (joined - i + NCONN - 1) / NCONN : 0;

		if (b->cl[i].count != expect)
			die("%s: client %d is in %d topics, not %d", when, i,
			    b->cl[i].count, expect);
	}
}

/* -------------------------------------------------------------- server */

static void on_whoami(wsa_conn *c, json_t *msg, void *ud)
{
	(void)msg;
	(void)ud;
	wsa_conn_send_new(
	    c, json_pack("{s:s,s:s}", "type", "you", "id", wsa_conn_id(c)));
}

static void on_count(wsa_conn *c, json_t *msg, void *ud)
{
	(void)msg;
	(void)ud;
	wsa_conn_send_new(c,
			  json_pack("{s:s,s:I}", "type", "count", "n",
				    (json_int_t)wsa_conn_topics(c, NULL, 0)));
}

static void quiet_log(wsa_log_level level, const char *conn_id,
		      const char *route, const char *msg, void *ud)
{
	(void)conn_id;
	(void)route;
	(void)ud;
	if (level <= WSA_LOG_WARNING)
		fprintf(stderr, "wsa-topics-bench: server: %s\n", msg);
}

static int run_rc;

static void *run_thread(void *srv)
{
	run_rc = wsa_server_run(srv);
	return NULL;
}

/* The service thread on the first CPU this process may use, this thread
 * (the calls and the clients) on the second: as a host's other threads
 * would be. Unpinned, the two sometimes share a core, and the loop then
 * takes the calls in larger batches, cheaper per call: the figures of one
 * process and the next differed by a third. */
static void pin(pthread_t loop)
{
	cpu_set_t allowed, one;
	int cpu, found = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		CPU_ZERO(&allowed);
	for (cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (pthread_setaffinity_np(found ? pthread_self() : loop,
					   sizeof(one), &one))
			break;
		fprintf(stderr, "topics: %s on CPU %d\n",
			found ? "calls and clients" : "service thread", cpu);
		found++;
	}
	if (found < 2)
		fprintf(stderr, "topics: threads not pinned (fewer than two "
				"CPUs allowed)\n");
}

/* The server on 127.0.0.1, a free port, with the default limits: none is
 * in the way (125 connections from one address, a few client messages
 * each; the calls from this thread are not rate limited). */
static int start_server(struct bench *b)
{
	wsa_config cfg;
	wsa_route *route;
	int rc;

	wsa_config_init(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = 0;
	cfg.log = quiet_log;
	cfg.log_level = WSA_LOG_WARNING;
	if ((rc = wsa_jwt_new(&b->jwt)) ||
	    (rc = wsa_jwt_add_key(b->jwt, NULL, "HS256", SECRET,
				  sizeof(SECRET) - 1)) ||
	    (rc = wsa_server_new(&b->srv, &cfg)) ||
	    (rc = wsa_set_verifier(b->srv, wsa_jwt_verifier, b->jwt)) ||
	    (rc = wsa_route_add(b->srv, PATH, NULL, NULL, NULL, &route)) ||
	    (rc = wsa_route_handle(route, "whoami", on_whoami, NULL)) ||
	    (rc = wsa_route_handle(route, "count", on_count, NULL)))
		die("server setup: %s", wsa_strerror(rc));
	if (pthread_create(&b->th, NULL, run_thread, b->srv) ||
	    pthread_getcpuclockid(b->th, &b->loop_clock))
		die("cannot start the service thread");
	pin(b->th);
	return wsa_server_port(b->srv);
}

/* ------------------------------------------------------------- phases */

enum op { OP_JOIN, OP_PUBLISH, OP_LEAVE, NOPS };
static const char *const op_name[NOPS] = {"join", "publish", "leave"};

struct phase {
	int ops;
	bool capped;	 /* stopped at the time cap */
	int64_t wall_ns; /* first call to the last awaited arrival */
	int64_t loop_ns; /* service thread CPU time meanwhile */
};

static int64_t loop_cpu_ns(const struct bench *b)
{
	struct timespec ts;

	clock_gettime(b->loop_clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One call for topic t: its connection is client t % NCONN. */
static void call(struct bench *b, enum op op, char **names, int t, json_t *msg)
{
	const char *id = b->cl[t % NCONN].id;
	int rc;

	if (op == OP_JOIN) {
		rc = wsa_server_join(b->srv, id, names[t]);
	} else if (op == OP_LEAVE) {
		rc = wsa_server_leave(b->srv, id, names[t]);
	} else {
		json_object_set_new(msg, "t", json_integer(t));
		rc = wsa_server_publish(b->srv, names[t], msg, NULL);
	}
	if (rc)
		die("%s %s: %s", op_name[op], names[t], wsa_strerror(rc));
}

/* The n calls of an operation, on the topics order[0..n-1], in chunks;
 * no chunk starts after cap_s seconds. */
static struct phase run_phase(struct bench *b, enum op op, const char *set,
			      char **names, const int *order, int n,
			      double cap_s)
{
	json_t *msg = json_pack("{s:s}", "type", "m");
	struct phase p = {0};
	int64_t t0, c0, shown;
	int k, j;

	memset(b->sync, 0, sizeof(b->sync));
	b->delivered = 0;
	for (j = 0; j < NCONN; j++)
		memset(b->cl[j].seen, 0, sizeof(b->cl[j].seen));
	t0 = shown = now_ns();
	c0 = loop_cpu_ns(b);
	for (k = 0; k * CHUNK < n; k++) {
		if (k >= WINDOW)
			wait_for(b, synced, k - WINDOW + 1, op_name[op]);
		if (now_ns() - t0 > (int64_t)(cap_s * 1e9)) {
			p.capped = true;
			break;
		}
		if (k >= WINDOW && now_ns() - shown > 2000000000) {
			/* Slow: show the rate so far. */
			shown = now_ns();
			fprintf(stderr,
				"topics: %s %s: %d done in %.1f s, %.0f/s\n",
				set, op_name[op], (k - WINDOW + 1) * CHUNK,
				(shown - t0) / 1e9,
				(k - WINDOW + 1) * CHUNK /
				    ((shown - t0) / 1e9));
		}
		for (j = k * CHUNK; j < n && j < (k + 1) * CHUNK; j++)
			call(b, op, names, order[j], msg);
		if (wsa_server_send_new(
			b->srv, b->cl[k % NCONN].id,
			json_pack("{s:s,s:i}", "type", "sync", "k", k)))
			die("%s: chunk message not queued", op_name[op]);
	}
	p.ops = k * CHUNK < n ? k * CHUNK : n;
	wait_for(b, synced, k, op_name[op]);
	if (op == OP_PUBLISH)
		wait_for(b, all_delivered, p.ops, "deliveries");
	p.wall_ns = b->t_last - t0;
	p.loop_ns = loop_cpu_ns(b) - c0;
	json_decref(msg);
	return p;
}

/* One round: join every topic (in order), publish to each and leave each
 * (in one shuffled order, the same for every set). A capped join leaves
 * fewer topics for the others. */
static void run_round(struct bench *b, struct phase *ph, const char *set,
		      char **names, const int *perm, double cap_s)
{
	static int order[NNAMES], ident[NNAMES];
	int i, n = 0, joined;

	for (i = 0; i < NNAMES; i++)
		ident[i] = i;
	ph[OP_JOIN] = run_phase(b, OP_JOIN, set, names, ident, NNAMES, cap_s);
	joined = ph[OP_JOIN].ops;
	check_counts(b, joined, "after the joins");
	for (i = 0; i < NNAMES; i++)
		if (perm[i] < joined)
			order[n++] = perm[i];
	ph[OP_PUBLISH] = run_phase(b, OP_PUBLISH, set, names, order, n, cap_s);
	ph[OP_LEAVE] = run_phase(b, OP_LEAVE, set, names, order, n, cap_s);
	if (ph[OP_LEAVE].ops < n) { /* leave the rest, untimed */
		for (i = ph[OP_LEAVE].ops; i < n; i++)
			call(b, OP_LEAVE, names, order[i], NULL);
		memset(b->sync, 0, sizeof(b->sync));
		if (wsa_server_send_new(
			b->srv, b->cl[0].id,
			json_pack("{s:s,s:i}", "type", "sync", "k", 0)))
			die("leave: chunk message not queued");
		wait_for(b, synced, 1, "leave");
	}
	check_counts(b, 0, "after the leaves");
}

struct set_result {
	const char *name;
	int rounds;
	struct phase ph[MAX_ROUNDS][NOPS];
	double us[NOPS], loop_us[NOPS]; /* medians of the rounds, per call */
};

static double us_per_op(int64_t ns, int ops)
{
	return ops ? ns / 1e3 / ops : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of n values (n >= 1); sorts v. */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Up to `rounds` rounds of a name set, none started after set_s seconds:
 * an ordinary round takes a tenth of a second, and its median is steadier
 * than one round; a colliding round on FNV-1a takes several seconds. */
static void run_set(struct bench *b, struct set_result *r, char **names,
		    const int *perm, int rounds, double set_s, double cap_s)
{
	int64_t t0 = now_ns();
	int o, k;

	for (k = 0; k < rounds && (k == 0 || now_ns() - t0 < set_s * 1e9); k++)
		run_round(b, r->ph[k], r->name, names, perm, cap_s);
	r->rounds = k;
	for (o = 0; o < NOPS; o++) {
		double us[MAX_ROUNDS], loop[MAX_ROUNDS];

		for (k = 0; k < r->rounds; k++) {
			us[k] = us_per_op(r->ph[k][o].wall_ns, r->ph[k][o].ops);
			loop[k] =
			    us_per_op(r->ph[k][o].loop_ns, r->ph[k][o].ops);
		}
		r->us[o] = median(us, r->rounds);
		r->loop_us[o] = median(loop, r->rounds);
	}
	fprintf(stderr, "topics: %s names: %d rounds in %.1f s\n", r->name,
		r->rounds, (now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------- report */

/* One JSON line for a set: medians, and every round's figures. */
static void print_set(const struct set_result *r)
{
	int o, k;

	printf("{\"set\":\"%s\",\"rounds\":%d", r->name, r->rounds);
	for (o = 0; o < NOPS; o++) {
		printf(",\"%s\":{\"us\":%.3f,\"loop_cpu_us\":%.3f,"
		       "\"rounds\":[",
		       op_name[o], r->us[o], r->loop_us[o]);
		for (k = 0; k < r->rounds; k++) {
			const struct phase *p = &r->ph[k][o];

			printf("%s{\"ops\":%d,\"us\":%.3f,\"loop_cpu_us\":%.3f,"
			       "\"capped\":%s}",
			       k ? "," : "", p->ops,
			       us_per_op(p->wall_ns, p->ops),
			       us_per_op(p->loop_ns, p->ops),
			       p->capped ? "true" : "false");
		}
		printf("]}");
	}
	printf("}\n");
}

static void report(const struct set_result *r)
{
	double ratio[NOPS], drift[NOPS], cpu[NOPS];
	bool met = true, capped = false, steady = true;
	int o, s, k;

	fprintf(stderr,
		"topics: %d connections x %d topics = %d per name set; "
		"us per call, first call to last arrival, median of the "
		"rounds (loop CPU us)\n",
		NCONN, PER_CONN, NNAMES);
	for (s = 0; s < 3; s++) {
		fprintf(stderr, "topics: %-14s", r[s].name);
		for (o = 0; o < NOPS; o++)
			fprintf(stderr, "  %s %9.2f (%8.2f)", op_name[o],
				r[s].us[o], r[s].loop_us[o]);
		for (k = 0; k < r[s].rounds; k++)
			for (o = 0; o < NOPS; o++)
				capped = capped || r[s].ph[k][o].capped;
		fprintf(stderr, "  %d round%s\n", r[s].rounds,
			r[s].rounds == 1 ? "" : "s");
		print_set(&r[s]);
	}
	/* Colliding against the mean of the two ordinary sets. */
	for (o = 0; o < NOPS; o++) {
		ratio[o] = r[1].us[o] / ((r[0].us[o] + r[2].us[o]) / 2);
		cpu[o] =
		    r[1].loop_us[o] / ((r[0].loop_us[o] + r[2].loop_us[o]) / 2);
		drift[o] = r[2].us[o] / r[0].us[o];
		met = met && ratio[o] <= 2;
	}
	if (capped)
		fprintf(stderr, "topics: some phases stopped at --cap-seconds: "
				"their figures are the rate so far\n");
	fprintf(stderr,
		"topics: drift (ordinary again / ordinary): join %.2fx, "
		"publish %.2fx, leave %.2fx\n",
		drift[0], drift[1], drift[2]);
	for (o = 0; o < NOPS; o++)
		steady = steady && drift[o] < 1.5 && drift[o] > 1 / 1.5;
	if (!steady)
		fprintf(stderr, "topics: the ordinary names drifted by more "
				"than 1.5x: something else was running; the "
				"ratios are unreliable\n");
	printf("{\"join_ratio\":%.3f,\"publish_ratio\":%.3f,"
	       "\"leave_ratio\":%.3f,\"join_drift\":%.3f,"
	       "\"publish_drift\":%.3f,\"leave_drift\":%.3f,"
	       "\"join_loop_cpu_ratio\":%.3f,\"publish_loop_cpu_ratio\":%.3f,"
	       "\"leave_loop_cpu_ratio\":%.3f}\n",
	       ratio[0], ratio[1], ratio[2], drift[0], drift[1], drift[2],
	       cpu[0], cpu[1], cpu[2]);
	fflush(stdout);
	/* The loop's CPU time is what the names cost it; the time to the
	 * last arrival also counts this thread, which shares its core with
	 * whatever else runs on the machine. */
	fprintf(stderr,
		"topics: loop CPU ratio: join %.2fx, publish %.2fx, leave "
		"%.2fx\n",
		cpu[0], cpu[1], cpu[2]);
	fprintf(stderr,
		"topics: join ratio %.2fx, publish ratio %.2fx, leave ratio "
		"%.2fx (colliding / ordinary; target <= 2x: %s)\n",
		ratio[0], ratio[1], ratio[2], met ? "met" : "MISSED");
}

/* --------------------------------------------------------------- main */

static int usage(void)
{
	fprintf(stderr,
		"usage: wsa-topics-bench [--rounds N] [--set-seconds S] "
		"[--cap-seconds S]\n"
		"                        [--dump ordinary|colliding]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static char *ord[NNAMES], *col[NNAMES];
	static int perm[NNAMES];
	static struct bench b;
	static struct set_result r[3] = {{.name = "ordinary"},
					 {.name = "colliding"},
					 {.name = "ordinary again"}};
	struct phase warm[NOPS];
	const char *dump = NULL;
	int rounds = 5;
	double set_s = 20; /* no new round of a set after this */
	double cap_s = 60; /* per phase: FNV-1a's colliding joins took 6 s */
	uint64_t rng = 0x7065726dull;
	int64_t t;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--set-seconds") && i + 1 < argc)
			set_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--cap-seconds") && i + 1 < argc)
			cap_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else
			return usage();
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || set_s < 0 || cap_s <= 0 ||
	    (dump && strcmp(dump, "ordinary") && strcmp(dump, "colliding")))
		return usage();
	t = now_ns();
	make_names(ord, col);
	if (dump) {
		for (i = 0; i < NNAMES; i++)
			puts(dump[0] == 'o' ? ord[i] : col[i]);
		return 0;
	}
	fprintf(stderr, "topics: names: 2 x %d made in %.1f ms\n", NNAMES,
		(now_ns() - t) / 1e6);
	check_names(ord, col);
	for (i = 0; i < NNAMES; i++)
		perm[i] = i;
	for (i = NNAMES - 1; i > 0; i--) {
		int k = (int)(rng_next(&rng) % (uint64_t)(i + 1)), x = perm[i];

		perm[i] = perm[k];
		perm[k] = x;
	}
	signal(SIGPIPE, SIG_IGN);
	connect_all(&b, start_server(&b));
	/* An untimed round first: the map's buckets, the allocator's arenas
	 * and the sockets' buffers grow to their size in it. */
	run_round(&b, warm, "warm-up", ord, perm, cap_s);
	for (i = 0; i < 3; i++)
		run_set(&b, &r[i], i == 1 ? col : ord, perm, rounds, set_s,
			cap_s);
	report(r);
	for (i = 0; i < NCONN; i++)
		wsc_close(b.cl[i].ws);
	wsa_server_stop(b.srv);
	pthread_join(b.th, NULL);
	wsa_server_free(b.srv);
	wsa_jwt_free(b.jwt);
	for (i = 0; i < NNAMES; i++) {
		free(ord[i]);
		free(col[i]);
	}
	if (run_rc)
		die("wsa_server_run: %s", wsa_strerror(run_rc));
	return 0;
}
