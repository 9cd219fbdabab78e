/* Nodes of a cluster in one process, through Redis: servers of one and
 * two service threads share topics (in each publisher's order, once),
 * sends and closes by uid, revocations, route broadcasts and presence by
 * uid through redis-server processes this test starts (the program's
 * path is the first argument); topics over two shards; a Redis that comes
 * late, one that goes and comes back; frees while Redis is away and while
 * messages are on their way. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wsa.h>

#include "check.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET	 "0123456789abcdef0123456789abcdef"
#define T	 10000 /* ms: bound on every wait */
#define REDIS_MS 20000 /* ms: bound on Redis coming (back) into use */
#define CHAT	 "/ws/chat"
#define OTHER	 "/ws/other"

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait, bounded, until *v (guarded by lock, signalled on cond) is at
 * least n. */
static bool wait_count(pthread_mutex_t *lock, pthread_cond_t *cond,
		       const int *v, int n, int ms)
{
	struct timespec until;
	int rc = 0;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(lock);
	while (*v < n && rc == 0)
		rc = pthread_cond_timedwait(cond, lock, &until);
	ok = *v >= n;
	pthread_mutex_unlock(lock);
	return ok;
}

/* ------------------------------------------------------------- Redis */

static const char *redis_path;

struct redis {
	pid_t pid; /* 0: not running */
	int port;
	char log[64];
};

/* Every redis-server of the test: none outlives it. */
static struct redis redis[3];

/* A TCP port of 127.0.0.1 that nothing listens on (the kernel's pick,
 * given back at once); 0 on failure. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	if (fd < 0)
		return 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* A TCP connection to 127.0.0.1:port; -1 when refused. */
static int dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The end of the one RESP reply at p (NUL-terminated at end), or NULL
 * while it is not all there. */
static const char *resp_end(const char *p, const char *end)
{
	const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
	long n;

	if (!nl)
		return NULL;
	n = strtol(p + 1, NULL, 10);
	if (*p == '$')
		return n < 0		       ? nl + 1
		       : end - nl - 1 >= n + 2 ? nl + 1 + n + 2
					       : NULL;
	if (*p != '*')
		return nl + 1;
	for (p = nl + 1; n > 0 && p; n--)
		p = resp_end(p, end);
	return p;
}

/* Send an inline command to the Redis at port and return its whole
 * reply (malloc'd, NUL-terminated), or NULL after T. */
static char *redis_call(int port, const char *cmd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	long long end = now_ms() + T;
	int fd = dial(port);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t k;

	if (fd < 0 || send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0)
		goto fail;
	buf[0] = '\0';
	while (!resp_end(buf, buf + len)) {
		if (poll(&p, 1, (int)(end - now_ms())) != 1)
			goto fail;
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		k = recv(fd, buf + len, cap - len - 1, 0);
		if (k <= 0)
			goto fail;
		len += (size_t)k;
		buf[len] = '\0';
	}
	close(fd);
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* The channels Redis at port has subscribers for: a new JSON array of
 * strings, NULL when it does not answer. */
static json_t *redis_channels(int port)
{
	char *reply = redis_call(port, "PUBSUB CHANNELS *\r\n"), *p, *nl;
	json_t *names = NULL;
	long n, len;

	if (!reply || reply[0] != '*')
		goto out;
	names = json_array();
	n = strtol(reply + 1, &p, 10);
	for (; n > 0 && (p = strchr(p, '$')); n--) {
		len = strtol(p + 1, &nl, 10);
		json_array_append_new(names, json_stringn(nl + 2, (size_t)len));
		p = nl + 2 + len;
	}
out:
	free(reply);
	return names;
}

/* Stop r: killed and reaped (on every path, failures included). */
static void redis_stop(struct redis *r)
{
	if (!r->pid)
		return;
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
	/* Its log is kept for a test that failed. */
	if (!check_failures_)
		unlink(r->log);
}

static void redis_stop_all(void)
{
	for (size_t i = 0; i < sizeof(redis) / sizeof(redis[0]); i++)
		redis_stop(&redis[i]);
}

/* Wait, bounded, until r answers PING; false if it ended first. It
 * offers nothing to wait on until it listens: connections are retried. */
static bool redis_ready(struct redis *r)
{
	long long end = now_ms() + T;
	char *pong;
	bool ok = false;

	while (!ok && now_ms() < end) {
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
			r->pid = 0;
			break;
		}
		pong = redis_call(r->port, "PING\r\n");
		ok = pong && !strcmp(pong, "+PONG\r\n");
		free(pong);
		if (!ok)
			poll(NULL, 0, 10);
	}
	if (!ok)
		fprintf(stderr, "redis-server on port %d did not start (%s)\n",
			r->port, r->log);
	return ok;
}

/* Start redis-server on port (0: a free one), output to a file, and wait
 * until it answers. */
static bool redis_start(struct redis *r, int port)
{
	long maxfd = sysconf(_SC_OPEN_MAX);
	pid_t parent = getpid();
	char p[16];
	int fd;

	r->port = port ? port : free_port();
	snprintf(p, sizeof(p), "%d", r->port);
	snprintf(r->log, sizeof(r->log), "test_redis-%d.log", r->port);
	fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	r->pid = fork();
	if (r->pid == 0) {
		/* Never outlive the test, even one that crashed, nor hold
		 * the servers' sockets. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(fd, 1);
		dup2(fd, 2);
		for (int i = 3; i < maxfd; i++)
			close(i);
		execl(redis_path, redis_path, "--port", p, "--bind",
		      "127.0.0.1", "--save", "", "--appendonly", "no",
		      (char *)NULL);
		_exit(127);
	}
	close(fd);
	if (r->pid < 0) {
		r->pid = 0;
		return false;
	}
	return redis_ready(r);
}

/* ------------------------------------------------------------- nodes */

static wsa_jwt *jwt;
static bool verbose; /* WSA_TEST_VERBOSE: every log line to stderr */

struct node {
	wsa_server *srv;
	int port;
	int no;
	/* Log lines about Redis, guarded by log_lock. */
	int down_lines; /* "unreachable" */
	int up_lines;	/* "connected" */
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;

static void node_log(wsa_log_level level, const char *id, const char *route,
		     const char *msg, void *ud)
{
	struct node *n = ud;
	bool redis = !strncmp(msg, "redis ", 6);
	int down = redis && strstr(msg, ": unreachable (") != NULL;
	int up = redis && strstr(msg, ": connected") != NULL;

	(void)id, (void)route;
	if (down || up) {
		pthread_mutex_lock(&log_lock);
		n->down_lines += down;
		n->up_lines += up;
		pthread_cond_broadcast(&log_cond);
		pthread_mutex_unlock(&log_lock);
	}
	if (verbose || level <= WSA_LOG_WARNING || down || up)
		fprintf(stderr, "node %d: %s\n", n->no, msg);
}

static int lines(const int *v)
{
	int n;

	pthread_mutex_lock(&log_lock);
	n = *v;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static bool wait_lines(const int *v, int n)
{
	return wait_count(&log_lock, &log_cond, v, n, T);
}

/* Wait until the nodes have said they are connected to every shard: a
 * case about something else does not race their start. */
static bool connected(const struct node *a, const struct node *b, int shards)
{
	bool ok = wait_lines(&a->up_lines, shards) &&
		  wait_lines(&b->up_lines, shards);

	CHECK(ok);
	return ok;
}

/* Presence by uid, as the nodes report it. */
struct event {
	const struct node *node;
	bool joined;
	char topic[32], uid[32], conn[32]; /* conn "" for NULL */
};

#define MAX_EVENTS 64
static struct event events[MAX_EVENTS];
static int nevents;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;

static void on_presence(wsa_server *srv, const char *topic, const char *uid,
			bool joined, const char *conn_id, void *ud)
{
	struct node *n = ud;

	CHECK(srv == n->srv);
	pthread_mutex_lock(&ev_lock);
	if (nevents < MAX_EVENTS) {
		struct event *e = &events[nevents];

		e->node = n;
		e->joined = joined;
		snprintf(e->topic, sizeof(e->topic), "%s", topic);
		snprintf(e->uid, sizeof(e->uid), "%s", uid);
		snprintf(e->conn, sizeof(e->conn), "%s",
			 conn_id ? conn_id : "");
	}
	nevents++;
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static int events_now(void)
{
	int n;

	pthread_mutex_lock(&ev_lock);
	n = nevents;
	pthread_mutex_unlock(&ev_lock);
	return n;
}

/* Event i once there are i + 1 (a copy), or a zeroed one after T. */
static struct event event_at(int i)
{
	struct event e = {0};

	if (wait_count(&ev_lock, &ev_cond, &nevents, i + 1, T) &&
	    i < MAX_EVENTS) {
		pthread_mutex_lock(&ev_lock);
		e = events[i];
		pthread_mutex_unlock(&ev_lock);
	}
	return e;
}

/* The events of uid's joins (or leaves) from index from on. */
static int count_events(int from, const char *uid, bool joined)
{
	int n = 0;

	pthread_mutex_lock(&ev_lock);
	for (int i = from; i < nevents && i < MAX_EVENTS; i++)
		n += events[i].joined == joined && !strcmp(events[i].uid, uid);
	pthread_mutex_unlock(&ev_lock);
	return n;
}

/* The first event of uid's join (or leave) from index from on, once it
 * has come (a copy); a zeroed one after T. */
static struct event find_event(int from, const char *uid, bool joined)
{
	struct event e = {0};
	int i;

	for (i = from; i < MAX_EVENTS; i++) {
		e = event_at(i);
		if (!e.node || (e.joined == joined && !strcmp(e.uid, uid)))
			return e;
	}
	return (struct event){0};
}

static void expect_event(int i, const struct node *n, const char *uid,
			 bool joined, const char *conn)
{
	struct event e = event_at(i);

	CHECK(e.node == n);
	CHECK_STR(e.uid, uid);
	CHECK_STR(e.topic, "room");
	CHECK_INT(e.joined, joined);
	CHECK_STR(e.conn, conn);
}

/* Every event so far, for a case that failed. */
static void dump_events(const struct node *const *nodes, size_t n)
{
	pthread_mutex_lock(&ev_lock);
	for (int i = 0; i < nevents && i < MAX_EVENTS; i++) {
		const struct event *e = &events[i];
		int no = 0;

		for (size_t k = 0; k < n; k++)
			no = e->node == nodes[k] ? nodes[k]->no : no;
		fprintf(stderr, "event %d: node %d %s %s %s conn %s\n", i, no,
			e->topic, e->uid, e->joined ? "joined" : "left",
			e->conn[0] ? e->conn : "NULL");
	}
	pthread_mutex_unlock(&ev_lock);
}

static void on_joined(wsa_conn *c, const char *topic, json_t *users, void *ud)
{
	(void)ud;
	wsa_conn_send_new(c, json_pack("{s:s,s:s,s:O?}", "type", "joined",
				       "topic", topic, "users", users));
}

static void on_join(wsa_conn *c, json_t *msg, void *ud)
{
	const char *topic = json_string_value(json_object_get(msg, "topic"));

	(void)ud;
	if (!topic || wsa_conn_join_async(c, topic, on_joined, NULL))
		wsa_conn_send_error(c, "join failed");
}

static void on_leave(wsa_conn *c, json_t *msg, void *ud)
{
	const char *topic = json_string_value(json_object_get(msg, "topic"));

	(void)ud;
	CHECK_INT(wsa_conn_leave(c, topic), WSA_OK);
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "left"));
}

static void on_whoami(wsa_conn *c, json_t *msg, void *ud)
{
	(void)msg, (void)ud;
	wsa_conn_send_new(c, json_pack("{s:s,s:s}", "type", "whoami", "conn",
				       wsa_conn_id(c)));
}

static bool add_route(wsa_server *srv, const char *path)
{
	wsa_route *r;

	return !wsa_route_add(srv, path, NULL, NULL, NULL, &r) &&
	       !wsa_route_handle(r, "join", on_join, NULL) &&
	       !wsa_route_handle(r, "leave", on_leave, NULL) &&
	       !wsa_route_handle(r, "whoami", on_whoami, NULL);
}

/* Start node no (its own port) on threads service threads, with the
 * Redis instances at ports (shards, in this order) and prefix. */
static bool node_start(struct node *n, int no, unsigned threads,
		       const char *prefix, const int *ports, size_t nports)
{
	char url[4][64];
	const char *urls[4];
	wsa_config cfg;
	size_t i;
	bool ok;
	int rc;

	memset(n, 0, sizeof(*n));
	n->no = no;
	for (i = 0; i < nports; i++) {
		snprintf(url[i], sizeof(url[i]), "redis://127.0.0.1:%d",
			 ports[i]);
		urls[i] = url[i];
	}
	wsa_config_init(&cfg);
	cfg.log = node_log;
	cfg.log_userdata = n;
	cfg.log_level = WSA_LOG_DEBUG;
	cfg.threads = threads;
	/* Clients that do not answer the stop's close hold a free no
	 * longer than this. */
	cfg.drain_timeout_ms = 1000;
	CHECK_INT(wsa_server_new(&n->srv, &cfg), WSA_OK);
	if (!n->srv)
		return false;
	n->port = wsa_server_port(n->srv);
	CHECK_INT(wsa_set_verifier(n->srv, wsa_jwt_verifier, jwt), WSA_OK);
	CHECK(add_route(n->srv, CHAT) && add_route(n->srv, OTHER));
	CHECK_INT(wsa_server_on_presence_uid(n->srv, on_presence, n), WSA_OK);
	rc = wsa_server_use_redis(n->srv, urls, nports, prefix);
	CHECK_INT(rc, WSA_OK);
	ok = !rc && !wsa_server_start(n->srv);
	CHECK(ok);
	return ok;
}

static void node_free(struct node *n)
{
	wsa_server_free(n->srv);
	n->srv = NULL;
}

/* A gauge or counter of the node's metrics; -1 when absent. */
static long long metric(const struct node *n, const char *name)
{
	json_t *snap = wsa_server_metrics(n->srv);
	json_t *v = json_object_get(snap, name);
	long long x = json_is_number(v) ? (long long)json_number_value(v) : -1;

	json_decref(snap);
	return x;
}

/* ----------------------------------------------------------- clients */

static bool is(const json_t *m, const char *type)
{
	const char *t = json_string_value(json_object_get(m, "type"));

	return t && !strcmp(t, type);
}

/* The next message but probes (see probe()); NULL after T. */
static json_t *next(wsc *c)
{
	json_t *m;

	while ((m = wsc_recv_json(c, T)) && is(m, "probe"))
		json_decref(m);
	return m;
}

/* The next message but probes is of type; what came instead is told. */
static bool expect(wsc *c, const char *type)
{
	json_t *m = next(c);
	char *text = m ? json_dumps(m, 0) : NULL;
	bool ok = m && is(m, type);

	if (!ok)
		fprintf(stderr, "expected \"%s\", got %s\n", type,
			text ? text : "nothing");
	CHECK(ok);
	free(text);
	json_decref(m);
	return ok;
}

static void send_str(wsc *c, const char *s)
{
	CHECK_INT(wsc_send_text(c, s, strlen(s)), 0);
}

/* A token for uid with extra claims (JSON members, or ""). */
static char *token(const char *uid, const char *extra)
{
	char payload[512];

	snprintf(payload, sizeof(payload), "{\"uid\":\"%s\",\"exp\":%ld%s%s}",
		 uid, (long)time(NULL) + 600, *extra ? "," : "", extra);
	return tok_hs256(SECRET, payload);
}

/* Open a WebSocket on the node's route and send a login for uid. */
static wsc *open_login(const struct node *n, const char *path, const char *uid,
		       const char *extra)
{
	wsc *c = wsc_connect("127.0.0.1", n->port, path, NULL, T, NULL);
	char msg[1024], *tok = token(uid, extra);

	CHECK(c != NULL);
	snprintf(msg, sizeof(msg), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	free(tok);
	if (c)
		send_str(c, msg);
	return c;
}

/* A login the node refuses: an error, then close 1008. */
static void login_refused(const struct node *n, const char *path,
			  const char *uid, const char *extra)
{
	wsc *c = open_login(n, path, uid, extra);

	if (c) {
		expect(c, "error");
		CHECK_INT(wsc_wait_close(c, T), 1008);
		wsc_close(c);
	}
}

static wsc *login(const struct node *n, const char *path, const char *uid,
		  const char *extra)
{
	wsc *c = open_login(n, path, uid, extra);

	if (c && !expect(c, "auth")) {
		wsc_close(c);
		c = NULL;
	}
	return c;
}

/* The connection's id, asked of its server. */
static void whoami(wsc *c, char *id, size_t size)
{
	json_t *m;

	send_str(c, "{\"type\":\"whoami\"}");
	m = next(c);
	CHECK(m && is(m, "whoami"));
	snprintf(id, size, "%s",
		 m ? json_string_value(json_object_get(m, "conn")) : "");
	json_decref(m);
}

/* Join topic through the route's handler (wsa_conn_join_async) and wait
 * for its callback's "joined": the users it was given, a new reference
 * (NULL when none came). */
static json_t *join(wsc *c, const char *topic)
{
	char msg[256];
	json_t *m, *users = NULL;

	snprintf(msg, sizeof(msg), "{\"type\":\"join\",\"topic\":\"%s\"}",
		 topic);
	send_str(c, msg);
	m = next(c);
	CHECK(m && is(m, "joined"));
	if (m && is(m, "joined")) {
		CHECK_STR(json_string_value(json_object_get(m, "topic")),
			  topic);
		users = json_incref(json_object_get(m, "users"));
	}
	json_decref(m);
	return users;
}

/* users (taken) are exactly the comma-separated uids of want, each
 * once, in any order. */
static bool users_are(json_t *users, const char *want)
{
	char buf[128], *uid, *save = NULL;
	size_t n = 0, i, seen;
	bool ok = json_is_array(users);

	snprintf(buf, sizeof(buf), "%s", want);
	for (uid = strtok_r(buf, ",", &save); ok && uid;
	     uid = strtok_r(NULL, ",", &save), n++) {
		for (seen = 0, i = 0; i < json_array_size(users); i++)
			seen += !strcmp(
			    json_string_value(json_array_get(users, i)), uid);
		ok = seen == 1;
	}
	ok = ok && json_array_size(users) == n;
	if (!ok) {
		char *text = users ? json_dumps(users, 0) : NULL;

		fprintf(stderr, "users %s, expected %s\n",
			text ? text : "(none)", want);
		free(text);
	}
	json_decref(users);
	return ok;
}

static void leave(wsc *c, const char *topic)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "{\"type\":\"leave\",\"topic\":\"%s\"}",
		 topic);
	send_str(c, msg);
	expect(c, "left");
}

/* The connection still answers a ping. */
static void expect_alive(wsc *c)
{
	send_str(c, "{\"type\":\"ping\"}");
	expect(c, "pong");
}

/* The server closes c with code and reason (after any messages); c is
 * closed here. */
static void expect_close(wsc *c, int code, const char *reason)
{
	long long end = now_ms() + T;
	wsc_frame f;
	int rc;

	while ((rc = wsc_recv(c, &f, (int)(end - now_ms()))) == 1 &&
	       f.opcode != WSC_CLOSE)
		wsc_frame_free(&f);
	CHECK_INT(rc, 1);
	if (rc == 1) {
		CHECK_INT(wsc_close_code(&f), code);
		CHECK_STR(f.len > 2 ? (const char *)f.data + 2 : "", reason);
		wsc_frame_free(&f);
	}
	wsc_close(c);
}

/* n messages of type numbered 0 .. n - 1, in order. */
static void expect_numbered(wsc *c, const char *type, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *m = next(c);

		CHECK(m && is(m, type));
		if (!m || json_integer_value(json_object_get(m, "n")) != i) {
			CHECK_INT(json_integer_value(json_object_get(m, "n")),
				  i);
			json_decref(m);
			return;
		}
		json_decref(m);
	}
}

enum probe_kind { TO_TOPIC, TO_UID, TO_ROUTE };

/* Whether m is probe number p; any other message is a failure. */
static bool probe_is(const json_t *m, int p)
{
	char *text;

	if (is(m, "probe"))
		return json_integer_value(json_object_get(m, "p")) == p;
	text = json_dumps(m, 0);
	fprintf(stderr, "probe: unexpected %s\n", text);
	free(text);
	CHECK(!"a message but a probe while probing");
	return false;
}

/* Send {"type":"probe","p":P} (P new for each call) through srv to a
 * topic, a uid or a route until c gets one, each awaited up to 100 ms,
 * REDIS_MS in all: a subscription made in the background (a uid's, or
 * any after Redis comes back) is known to be active only when something
 * has come through it. The probes still on their way are skipped by
 * next(). */
static bool probe(wsa_server *srv, enum probe_kind kind, const char *name,
		  wsc *c)
{
	static int probes;
	json_t *m = json_pack("{s:s,s:i}", "type", "probe", "p", ++probes);
	long long end = now_ms() + REDIS_MS, wait;
	json_t *got;
	bool ok = false;

	while (!ok && now_ms() < end && !wsc_eof(c)) {
		if (kind == TO_TOPIC)
			CHECK_INT(wsa_server_publish(srv, name, m, NULL),
				  WSA_OK);
		else if (kind == TO_UID)
			CHECK_INT(wsa_server_send_uid(srv, name, m), WSA_OK);
		else
			CHECK_INT(wsa_server_broadcast(srv, name, m), WSA_OK);
		wait = now_ms() + 100;
		while (!ok &&
		       (got = wsc_recv_json(
			    c, (int)(wait > now_ms() ? wait - now_ms() : 0)))) {
			ok = probe_is(got, probes);
			json_decref(got);
		}
	}
	json_decref(m);
	if (!ok)
		fprintf(stderr, "probe of %s never came\n", name);
	return ok;
}

/* ------------------------------------------------------------- cases */

struct pub {
	wsa_server *srv;
	int from, count;
};

static void *publisher(void *arg)
{
	struct pub *p = arg;

	for (int i = 0; i < p->count; i++) {
		json_t *m = json_pack("{s:s,s:i,s:i}", "type", "p", "from",
				      p->from, "n", i);

		CHECK_INT(wsa_server_publish(p->srv, "T", m, NULL), WSA_OK);
		json_decref(m);
	}
	return NULL;
}

#define PER_NODE 500

struct reader {
	wsc *c;
	int next[3]; /* by publishing node */
	int fins;    /* bit 1 << node */
};

/* Read r's messages until it has PER_NODE from each node and the fins
 * of the mask; every node's in order, none twice. */
static bool read_until(struct reader *r, int fins)
{
	while (r->next[1] < PER_NODE || r->next[2] < PER_NODE ||
	       (r->fins & fins) != fins) {
		json_t *m = wsc_recv_json(r->c, T);
		int from = (int)json_integer_value(json_object_get(m, "from"));
		int n = (int)json_integer_value(json_object_get(m, "n"));

		if (!m || from < 1 || from > 2) {
			CHECK(!"a message from node 1 or 2");
			json_decref(m);
			return false;
		}
		if (is(m, "fin"))
			r->fins |= 1 << from;
		else if (n != r->next[from])
			CHECK_INT(n, r->next[from]); /* a gap, or twice */
		if (is(m, "p") && n >= r->next[from])
			r->next[from] = n + 1;
		json_decref(m);
	}
	return true;
}

/* 1. A topic across nodes of two loops each: what a host thread of each
 * node publishes reaches the members on both, in its order, each once
 * (a node does not take its own messages back from Redis). */
static void test_topic_order(void)
{
	struct node n1 = {0}, n2 = {0};
	struct reader r[8] = {0};
	struct pub pubs[2];
	pthread_t th[2];
	char uid[16];
	int i;

	if (!node_start(&n1, 1, 2, "c1", &redis[0].port, 1) ||
	    !node_start(&n2, 2, 2, "c1", &redis[0].port, 1) ||
	    !connected(&n1, &n2, 1))
		goto out;
	for (i = 0; i < 8; i++) {
		snprintf(uid, sizeof(uid), "m%d", i);
		r[i].c = login(i < 4 ? &n1 : &n2, CHAT, uid, "");
		if (!r[i].c)
			goto out;
		json_decref(join(r[i].c, "T"));
	}
	for (i = 0; i < 2; i++) {
		pubs[i] = (struct pub){i ? n2.srv : n1.srv, i + 1, PER_NODE};
		pthread_create(&th[i], NULL, publisher, &pubs[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 8; i++)
		CHECK(read_until(&r[i], 0));
	/* Each node has all of the other's now, so Redis has passed on all
	 * of them: a fin published now follows any copy a node would get
	 * back of its own. */
	for (i = 1; i <= 2; i++) {
		json_t *m = json_pack("{s:s,s:i}", "type", "fin", "from", i);

		CHECK_INT(
		    wsa_server_publish(i == 1 ? n1.srv : n2.srv, "T", m, NULL),
		    WSA_OK);
		json_decref(m);
	}
	for (i = 0; i < 8; i++) {
		CHECK(read_until(&r[i], 1 << 1 | 1 << 2));
		CHECK_INT(r[i].next[1], PER_NODE);
		CHECK_INT(r[i].next[2], PER_NODE);
	}
	CHECK_INT(metric(&n1, "wsa_redis_up"), 1);
	CHECK(metric(&n1, "wsa_redis_published_total") >= PER_NODE + 1);
	CHECK(metric(&n2, "wsa_redis_received_total") >= PER_NODE + 1);
	CHECK_INT(metric(&n2, "wsa_redis_dropped_total"), 0);
out:
	for (i = 0; i < 8; i++)
		wsc_close(r[i].c);
	node_free(&n1);
	node_free(&n2);
}

/* Close no-iat connections by revoking tokens before times 1, 2, ...
 * (each later than the last, so each is sent) through srv until c is
 * closed; its close code, 0 after REDIS_MS. */
static int probe_revoke(wsa_server *srv, wsc *c)
{
	long long end = now_ms() + REDIS_MS, at = 1;
	int code = 0;

	while (!code && now_ms() < end) {
		CHECK_INT(
		    wsa_server_revoke_before(srv, at++, 4001, "Token revoked"),
		    WSA_OK);
		code = wsc_wait_close(c, 100);
	}
	return code;
}

/* 2. Sends and closes by uid, route broadcasts and revocations made on
 * one node reach the connections on the other. */
static void test_uid_route_revoke(void)
{
	long now = (long)time(NULL);
	char old_iat[32], new_iat[32];
	struct node a = {0}, b = {0}, c = {0};
	wsc *u1 = NULL, *u2 = NULL, *u3 = NULL, *victor = NULL, *walt = NULL;
	wsc *olga = NULL, *nina = NULL, *otto = NULL, *later;
	wsc **chat[] = {&u1, &u2, &u3, &victor, &walt, &olga, &nina};
	json_t *m;
	size_t i;

	snprintf(old_iat, sizeof(old_iat), "\"iat\":%ld", now - 100);
	snprintf(new_iat, sizeof(new_iat), "\"iat\":%ld", now);
	if (!node_start(&a, 1, 2, "c2", &redis[0].port, 1) ||
	    !node_start(&b, 2, 2, "c2", &redis[0].port, 1) ||
	    !connected(&a, &b, 1))
		goto out;
	u1 = login(&a, CHAT, "ursula", new_iat);
	walt = login(&a, CHAT, "walt", new_iat);
	u2 = login(&b, CHAT, "ursula", new_iat);
	u3 = login(&b, CHAT, "ursula", new_iat);
	victor = login(&b, CHAT, "victor", new_iat);
	olga = login(&b, CHAT, "olga", old_iat);
	nina = login(&b, CHAT, "nina", "");
	otto = login(&b, OTHER, "otto", new_iat);
	if (!u1 || !walt || !u2 || !u3 || !victor || !olga || !nina || !otto)
		goto out;

	/* To a uid from node 1: its connections on both, in order. */
	CHECK(probe(a.srv, TO_UID, "ursula", u2));
	for (i = 0; i < 100; i++) {
		m = json_pack("{s:s,s:i}", "type", "to-user", "n", (int)i);
		CHECK_INT(wsa_server_send_uid(a.srv, "ursula", m), WSA_OK);
		json_decref(m);
	}
	expect_numbered(u1, "to-user", 100);
	expect_numbered(u2, "to-user", 100);
	expect_numbered(u3, "to-user", 100);

	/* To a route from node 1: its connections on both, not another
	 * route's. */
	CHECK(probe(a.srv, TO_ROUTE, CHAT, victor));
	m = json_pack("{s:s}", "type", "to-route");
	CHECK_INT(wsa_server_broadcast(a.srv, CHAT, m), WSA_OK);
	json_object_set_new(m, "type", json_string("to-other"));
	CHECK_INT(wsa_server_broadcast(a.srv, OTHER, m), WSA_OK);
	json_decref(m);
	for (i = 0; i < sizeof(chat) / sizeof(chat[0]); i++)
		expect(*chat[i], "to-route");
	expect(otto, "to-other");

	/* Revocations from node 1 close node 2's connections: one without
	 * "iat" at the first that arrives, then one issued before. */
	CHECK_INT(probe_revoke(a.srv, nina), 4001);
	wsc_close(nina);
	nina = NULL;
	CHECK_INT(
	    wsa_server_revoke_before(a.srv, now - 10, 4001, "Token revoked"),
	    WSA_OK);
	expect_close(olga, 4001, "Token revoked");
	olga = NULL;
	expect_alive(victor);
	expect_alive(u2);
	/* Such a token no longer logs in on node 1. */
	login_refused(&a, CHAT, "olga", old_iat);
	/* Nor on node 2, which heard of the revocation. */
	login_refused(&b, CHAT, "olga", old_iat);
	/* Nor on a node that starts afterwards: Redis keeps the latest
	 * revocation, and a node reads it before it counts as connected. */
	if (node_start(&c, 3, 1, "c2", &redis[0].port, 1) &&
	    connected(&c, &c, 1)) {
		login_refused(&c, CHAT, "olga", old_iat);
		later = login(&c, CHAT, "olga", new_iat);
		if (later) {
			expect_alive(later);
			wsc_close(later);
		}
	}
	node_free(&c);

	/* Closed by uid from node 2: its connections on both, with the
	 * code and reason; the others stay. */
	CHECK(probe(b.srv, TO_UID, "ursula", u1));
	CHECK_INT(wsa_server_close_uid(b.srv, "ursula", 4002, "Logged out"),
		  WSA_OK);
	expect_close(u1, 4002, "Logged out");
	expect_close(u2, 4002, "Logged out");
	expect_close(u3, 4002, "Logged out");
	u1 = u2 = u3 = NULL;
	expect_alive(walt);
	expect_alive(victor);
	expect_alive(otto);
out:
	for (i = 0; i < sizeof(chat) / sizeof(chat[0]); i++)
		wsc_close(*chat[i]);
	wsc_close(otto);
	node_free(&a);
	node_free(&b);
}

/* 3. Presence by uid, decided once for the cluster: a user's first
 * connection in a topic anywhere is its join, its last one its leave;
 * joins list the users of every node; a node that stops takes its users
 * out. */
static void test_presence(void)
{
	struct node p1 = {0}, p2 = {0};
	wsc *a = NULL, *b = NULL, *v = NULL, *w = NULL, *x = NULL;
	char id_a[32] = "", id_b[32] = "", id_v[32] = "", id_w[32] = "";
	char id_x[32] = "";
	struct event e;
	int base;

	const struct node *nodes[] = {&p1, &p2};
	int failures = check_failures_;

	pthread_mutex_lock(&ev_lock);
	nevents = 0;
	pthread_mutex_unlock(&ev_lock);
	if (!node_start(&p1, 1, 2, "c3", &redis[0].port, 1) ||
	    !node_start(&p2, 2, 1, "c3", &redis[0].port, 1) ||
	    !connected(&p1, &p2, 1))
		goto out;
	a = login(&p1, CHAT, "uma", "");
	b = login(&p2, CHAT, "uma", "");
	v = login(&p2, CHAT, "vera", "");
	w = login(&p1, CHAT, "walt", "");
	x = login(&p1, CHAT, "xena", "");
	if (!a || !b || !v || !w || !x)
		goto out;
	whoami(a, id_a, sizeof(id_a));
	whoami(b, id_b, sizeof(id_b));
	whoami(v, id_v, sizeof(id_v));
	whoami(w, id_w, sizeof(id_w));
	whoami(x, id_x, sizeof(id_x));

	CHECK(users_are(join(a, "room"), "uma"));
	expect_event(0, &p1, "uma", true, id_a);
	/* uma's second connection, on the other node: no event. */
	CHECK(users_are(join(b, "room"), "uma"));
	CHECK(users_are(join(v, "room"), "uma,vera"));
	expect_event(1, &p2, "vera", true, id_v);
	CHECK(users_are(join(w, "room"), "uma,vera,walt"));
	expect_event(2, &p1, "walt", true, id_w);
	CHECK_INT(events_now(), 3);

	/* uma leaves node 1 but is still on node 2: no event. */
	leave(a, "room");
	leave(w, "room");
	expect_event(3, &p1, "walt", false, id_w);
	CHECK_INT(events_now(), 4);
	/* Her last connection closes: she leaves, once. */
	wsc_send_close(b, 1000, "");
	CHECK_INT(wsc_wait_close(b, T), 1000);
	expect_event(4, &p2, "uma", false, id_b);
	leave(v, "room");
	expect_event(5, &p2, "vera", false, id_v);
	CHECK_INT(events_now(), 6);

	/* Node 1 stops with xena in the room: her leave comes once, from
	 * node 1 as it closes her connection or from node 2 (no
	 * connection) that finds node 1 gone. */
	CHECK(users_are(join(x, "room"), "xena"));
	expect_event(6, &p1, "xena", true, id_x);
	base = events_now();
	node_free(&p1);
	e = find_event(base, "xena", false);
	CHECK_STR(e.uid, "xena");
	CHECK((e.node == &p1 && !strcmp(e.conn, id_x)) ||
	      (e.node == &p2 && !e.conn[0]));
	/* Nobody is left in the room; vera's join comes after that. */
	CHECK(users_are(join(v, "room"), "vera"));
	e = find_event(base, "vera", true);
	CHECK(e.node == &p2 && !strcmp(e.conn, id_v));
	CHECK_INT(count_events(base, "xena", false), 1);
	CHECK_INT(events_now(), base + 2);
out:
	if (check_failures_ > failures) {
		fprintf(stderr, "uma %s %s, vera %s, walt %s, xena %s\n", id_a,
			id_b, id_v, id_w, id_x);
		dump_events(nodes, 2);
	}
	wsc_close(a);
	wsc_close(b);
	wsc_close(v);
	wsc_close(w);
	wsc_close(x);
	node_free(&p1);
	node_free(&p2);
}

#define TOPICS 32

/* Read 4 messages per topic (2 from each node), each node's in order
 * per topic. */
static void read_topics(wsc *c)
{
	int want[3][TOPICS] = {{0}};

	for (int i = 0; i < 4 * TOPICS; i++) {
		json_t *m = next(c);
		int from = (int)json_integer_value(json_object_get(m, "from"));
		int t = (int)json_integer_value(json_object_get(m, "t"));

		CHECK(m && is(m, "p") && from >= 1 && from <= 2 && t >= 0 &&
		      t < TOPICS);
		if (!m || from < 1 || from > 2 || t < 0 || t >= TOPICS) {
			json_decref(m);
			return;
		}
		CHECK_INT(json_integer_value(json_object_get(m, "n")),
			  want[from][t]);
		want[from][t]++;
		json_decref(m);
	}
}

/* Channels on each shard: the arrays of redis_channels(), each name
 * starting with the prefix. */
static void channels(json_t *ch[2], const int *ports)
{
	for (int i = 0; i < 2; i++) {
		ch[i] = redis_channels(ports[i]);
		CHECK(ch[i] != NULL);
		for (size_t k = 0; k < json_array_size(ch[i]); k++)
			CHECK(!strncmp(
			    json_string_value(json_array_get(ch[i], k)), "c4",
			    2));
	}
}

/* 4. Two shards: 32 topics spread over two Redis instances, every
 * topic's messages crossing both ways; a node subscribes to a topic's
 * channel only while it has a member. */
static void test_shards(void)
{
	int ports[2] = {redis[0].port, 0};
	struct node s1 = {0}, s2 = {0};
	wsc *c1 = NULL, *c2 = NULL;
	json_t *ch[2] = {NULL, NULL}, *left[2] = {NULL, NULL};
	char topic[32];
	long long end;
	int t, k;

	CHECK(redis_start(&redis[1], 0));
	ports[1] = redis[1].port;
	if (!redis[1].pid || !node_start(&s1, 1, 1, "c4", ports, 2) ||
	    !node_start(&s2, 2, 2, "c4", ports, 2) || !connected(&s1, &s2, 2))
		goto out;
	c1 = login(&s1, CHAT, "sam", "");
	c2 = login(&s2, CHAT, "sue", "");
	if (!c1 || !c2)
		goto out;
	for (t = 0; t < TOPICS; t++) {
		snprintf(topic, sizeof(topic), "c4-topic-%d", t);
		json_decref(join(c1, topic));
		json_decref(join(c2, topic));
	}
	CHECK_INT(metric(&s1, "wsa_redis_up"), 2);
	CHECK_INT(metric(&s2, "wsa_redis_up"), 2);
	/* Both instances carry channels of the nodes. */
	channels(ch, ports);
	CHECK(json_array_size(ch[0]) > 0);
	CHECK(json_array_size(ch[1]) > 0);
	for (k = 0; k < 2; k++)
		for (t = 0; t < TOPICS; t++) {
			json_t *m = json_pack("{s:s,s:i,s:i,s:i}", "type", "p",
					      "t", t, "n", k, "from", 1);

			snprintf(topic, sizeof(topic), "c4-topic-%d", t);
			CHECK_INT(wsa_server_publish(s1.srv, topic, m, NULL),
				  WSA_OK);
			json_object_set_new(m, "from", json_integer(2));
			CHECK_INT(wsa_server_publish(s2.srv, topic, m, NULL),
				  WSA_OK);
			json_decref(m);
		}
	read_topics(c1);
	read_topics(c2);
	/* Route broadcasts (on shard 0) cross too. */
	CHECK(probe(s2.srv, TO_ROUTE, CHAT, c1));
	/* Everyone gone: each instance loses the topics' channels. Redis
	 * tells no one when a subscription ends: it is asked again. */
	wsc_close(c1);
	wsc_close(c2);
	c1 = c2 = NULL;
	end = now_ms() + T;
	do {
		json_decref(left[0]);
		json_decref(left[1]);
		channels(left, ports);
	} while ((json_array_size(left[0]) >= json_array_size(ch[0]) ||
		  json_array_size(left[1]) >= json_array_size(ch[1])) &&
		 now_ms() < end && !poll(NULL, 0, 20));
	CHECK(json_array_size(left[0]) < json_array_size(ch[0]));
	CHECK(json_array_size(left[1]) < json_array_size(ch[1]));
	if (verbose)
		for (k = 0; k < 2; k++) {
			char *a = json_dumps(ch[k], 0),
			     *b = json_dumps(left[k], 0);

			fprintf(stderr, "shard %d: %s, then %s\n", k, a, b);
			free(a);
			free(b);
		}
out:
	json_decref(ch[0]);
	json_decref(ch[1]);
	json_decref(left[0]);
	json_decref(left[1]);
	wsc_close(c1);
	wsc_close(c2);
	node_free(&s1);
	node_free(&s2);
	redis_stop(&redis[1]);
}

/* The next two messages (probes aside) are of type, one published by
 * each node. */
static void expect_both(wsc *c, const char *type)
{
	int from = 0;

	for (int i = 0; i < 2; i++) {
		json_t *m = next(c);
		char *text = m ? json_dumps(m, 0) : NULL;

		if (!m || !is(m, type))
			fprintf(stderr, "expected \"%s\", got %s\n", type,
				text ? text : "nothing");
		CHECK(m && is(m, type));
		from |= 1 << json_integer_value(json_object_get(m, "from"));
		free(text);
		json_decref(m);
	}
	CHECK_INT(from, 1 << 1 | 1 << 2);
}

static void publish_from(const struct node *n, const char *topic,
			 const char *type)
{
	json_t *m = json_pack("{s:s,s:i}", "type", type, "from", n->no);

	CHECK_INT(wsa_server_publish(n->srv, topic, m, NULL), WSA_OK);
	json_decref(m);
}

/* 5. Redis unreachable at the start: each node serves its own
 * connections (joins answered with its users, its members get its
 * messages), says so once; when Redis comes, delivery across nodes
 * begins, and what was published before is not replayed. */
static void test_late_redis(void)
{
	struct redis *r = &redis[2];
	int port = free_port();
	struct node a = {0}, b = {0};
	wsc *a1 = NULL, *a2 = NULL, *b1 = NULL;

	if (!node_start(&a, 1, 2, "c5", &port, 1) ||
	    !node_start(&b, 2, 1, "c5", &port, 1))
		goto out;
	CHECK(wait_lines(&a.down_lines, 1));
	CHECK(wait_lines(&b.down_lines, 1));
	a1 = login(&a, CHAT, "al", "");
	a2 = login(&a, CHAT, "ann", "");
	b1 = login(&b, CHAT, "bo", "");
	if (!a1 || !a2 || !b1)
		goto out;
	CHECK(users_are(join(a1, "T5"), "al"));
	CHECK(users_are(join(a2, "T5"), "al,ann"));
	CHECK(users_are(join(b1, "T5"), "bo"));
	publish_from(&a, "T5", "alone");
	expect(a1, "alone");
	expect(a2, "alone");
	publish_from(&b, "T5", "alone");
	expect(b1, "alone");
	CHECK_INT(metric(&a, "wsa_redis_up"), 0);

	/* Redis comes, on the port they were given. */
	if (!redis_start(r, port))
		goto out;
	CHECK(probe(a.srv, TO_TOPIC, "T5", b1));
	CHECK(probe(b.srv, TO_TOPIC, "T5", a1));
	publish_from(&a, "T5", "together");
	publish_from(&b, "T5", "together");
	/* b1 gets node 1's, and none of those sent while alone. */
	expect_both(a1, "together");
	expect_both(a2, "together");
	expect_both(b1, "together");
	CHECK_INT(lines(&a.down_lines), 1);
	CHECK_INT(lines(&b.down_lines), 1);
	CHECK(wait_lines(&a.up_lines, 1));
	CHECK(wait_lines(&b.up_lines, 1));
	CHECK_INT(lines(&a.up_lines), 1);
	CHECK_INT(lines(&b.up_lines), 1);
	CHECK_INT(metric(&a, "wsa_redis_up"), 1);
	CHECK_INT(metric(&b, "wsa_redis_up"), 1);
	/* Its Redis client has taken every publish before the probe that
	 * came through: those made alone were not sent. */
	CHECK(metric(&a, "wsa_redis_dropped_total") >= 1);
out:
	wsc_close(a1);
	wsc_close(a2);
	wsc_close(b1);
	node_free(&a);
	node_free(&b);
	redis_stop(r);
}

/* Publish, send to a uid and broadcast count times from n. */
static void burst(const struct node *n, const char *topic, int count)
{
	for (int i = 0; i < count; i++) {
		json_t *m = json_pack("{s:s,s:i,s:i}", "type", "burst", "from",
				      n->no, "n", i);

		CHECK_INT(wsa_server_publish(n->srv, topic, m, NULL), WSA_OK);
		CHECK_INT(wsa_server_send_uid(n->srv, "y1", m), WSA_OK);
		CHECK_INT(wsa_server_broadcast(n->srv, CHAT, m), WSA_OK);
		json_decref(m);
	}
}

/* Nodes freed with their Redis stopped (SIGSTOP: connected, silent) in
 * the middle of a burst, with a join waiting for its answer. */
static void free_in_flight(struct redis *r)
{
	struct node c = {0}, d = {0};
	wsc *c1 = NULL, *d1 = NULL;
	long long t0;

	if (!redis_start(r, 0) || !node_start(&c, 1, 2, "c6b", &r->port, 1) ||
	    !node_start(&d, 2, 1, "c6b", &r->port, 1))
		goto out;
	c1 = login(&c, CHAT, "x1", "");
	d1 = login(&d, CHAT, "y1", "");
	if (!c1 || !d1)
		goto out;
	json_decref(join(c1, "T7"));
	json_decref(join(d1, "T7"));
	burst(&c, "T7", 1000);
	burst(&d, "T7", 1000);
	send_str(d1, "{\"type\":\"join\",\"topic\":\"T8\"}");
	kill(r->pid, SIGSTOP);
	burst(&c, "T7", 100);
	t0 = now_ms();
	node_free(&d);
	node_free(&c);
	fprintf(stderr, "freed with Redis stopped in %lld ms\n", now_ms() - t0);
out:
	wsc_close(c1);
	wsc_close(d1);
	node_free(&c);
	node_free(&d);
	redis_stop(r);
}

/* 6. Redis goes mid-run: each node serves alone and says so once, and
 * when it is back on the same port resubscribes and delivers across
 * again; nodes freed while it is away, or with messages in flight, leak
 * nothing. */
static void test_outage_and_free(void)
{
	struct redis *r = &redis[2];
	struct node a = {0}, b = {0};
	wsc *a1 = NULL, *b1 = NULL;
	int up_a, up_b;

	if (!redis_start(r, 0) || !node_start(&a, 1, 2, "c6", &r->port, 1) ||
	    !node_start(&b, 2, 1, "c6", &r->port, 1))
		goto out;
	/* Joined as the nodes start, Redis listening: the join's answer
	 * means that the node gets the topic's messages, as ever. */
	a1 = login(&a, CHAT, "x1", "");
	b1 = login(&b, CHAT, "y1", "");
	if (!a1 || !b1)
		goto out;
	json_decref(join(a1, "T6"));
	json_decref(join(b1, "T6"));
	publish_from(&a, "T6", "before");
	publish_from(&b, "T6", "before");
	expect_both(a1, "before");
	expect_both(b1, "before");
	up_a = lines(&a.up_lines);
	up_b = lines(&b.up_lines);

	redis_stop(r);
	CHECK(wait_lines(&a.down_lines, 1));
	CHECK(wait_lines(&b.down_lines, 1));
	publish_from(&a, "T6", "alone");
	expect(a1, "alone");
	CHECK(redis_start(r, r->port));
	CHECK(probe(a.srv, TO_TOPIC, "T6", b1));
	CHECK(probe(b.srv, TO_TOPIC, "T6", a1));
	publish_from(&a, "T6", "again");
	publish_from(&b, "T6", "again");
	expect_both(a1, "again");
	expect_both(b1, "again");
	CHECK_INT(lines(&a.down_lines), 1);
	CHECK_INT(lines(&b.down_lines), 1);
	CHECK_INT(lines(&a.up_lines), up_a + 1);
	CHECK_INT(lines(&b.up_lines), up_b + 1);
	CHECK(metric(&a, "wsa_redis_reconnects_total") >= 1);
	CHECK(metric(&b, "wsa_redis_reconnects_total") >= 1);

	/* Gone again; freed while it is away, after a burst. */
	redis_stop(r);
	burst(&a, "T6", 500);
	burst(&b, "T6", 500);
	send_str(b1, "{\"type\":\"join\",\"topic\":\"T8\"}");
	CHECK(wait_lines(&a.down_lines, 2));
	CHECK(wait_lines(&b.down_lines, 2));
out:
	wsc_close(a1);
	wsc_close(b1);
	node_free(&a);
	node_free(&b);
	free_in_flight(r);
}

int main(int argc, char **argv)
{
	redis_path = argc > 1 ? argv[1] : getenv("WSA_REDIS_SERVER");
	if (!redis_path) {
		fprintf(stderr, "usage: test_redis REDIS-SERVER\n");
		return 77;
	}
	verbose = getenv("WSA_TEST_VERBOSE") != NULL;
	atexit(redis_stop_all);
	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", SECRET, strlen(SECRET)),
		  WSA_OK);
	CHECK(redis_start(&redis[0], 0));
	if (redis[0].pid) {
		test_topic_order();
		test_uid_route_revoke();
		test_presence();
		test_shards();
	}
	test_late_redis();
	test_outage_and_free();
	redis_stop_all();
	wsa_jwt_free(jwt);
	return check_status("test_redis");
}
