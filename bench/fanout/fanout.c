/* wsa-fanout-bench: one message to N subscribers, by one
 * wsa_server_publish() to a topic and by a loop of wsa_server_send(), in
 * the same run.
 *
 * The server runs in this process, on its own thread. The subscribers are
 * raw-socket RFC 6455 clients in forked children (at most CHILD_MAX
 * connections each), which tell the parent over a pipe when their last
 * connection got each round's message. A round's time to last is the
 * latest of those CLOCK_MONOTONIC instants minus the instant before the
 * publish (or the first send).
 *
 * Usage: wsa-fanout-bench [--sizes 1,100,1000,10000] [--rounds R]
 *                         [--threads T]
 * T: the server's service threads (cfg.threads; default 1), over which
 * the kernel spreads the subscribers' connections.
 * One JSON line per (mode, n) on stdout; progress on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <wsa.h>

#include "field.h"
#include "fullio.h"
#include "hs256.h"

#define SECRET	     "fanout-bench-secret-fanout-bench-secret-0123"
#define PATH	     "/ws/fan"
#define TOPIC	     "fan"
#define CHILD_MAX    5000  /* connections per child */
#define INFLIGHT     128   /* handshakes under way per child */
#define TIMEOUT_MS   30000 /* any one wait */
#define MAX_SIZES    16
#define MAX_CHILDREN 8
#define RBUF	     1024 /* per-connection read buffer */
#define ID_LEN	     22

/* -------------------------------------------------------------- common */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Child to parent: fixed-size records, written atomically (< PIPE_BUF). */
enum { REC_READY = 1, REC_ROUND, REC_ERROR };

struct rec {
	int32_t kind;
	int32_t round;
	int64_t t_ns;
	char text[112];
};
/* --------------------------------------------------------------- child */

enum cstate { C_CONNECTING, C_UPGRADING, C_SUBSCRIBING, C_OPEN };

struct cconn {
	int fd;
	enum cstate st;
	int last_round;
	size_t len;
	uint8_t buf[RBUF];
};

struct child {
	int rep; /* report pipe, write end */
	int ctl; /* control pipe, read end */
	int ep;
	int port;
	const char *token;
	int share;
	struct cconn *c;
	int started, ready, inflight;
	int expect, got; /* the round awaited, and how many have it */
	int64_t t_last;
	uint32_t rng;
};

static void report(struct child *ch, int kind, int round, int64_t t,
		   const char *text)
{
	struct rec r = {.kind = kind, .round = round, .t_ns = t};

	if (text)
		snprintf(r.text, sizeof(r.text), "%s", text);
	if (bench_write_full(ch->rep, &r, sizeof(r)))
		_exit(1);
}

static void child_fail(struct child *ch, const char *fmt, ...)
{
	char text[112];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	report(ch, REC_ERROR, 0, 0, text);
	_exit(1);
}

/* A masked client frame (text, pong) of n bytes at most 65535 into out;
 * returns its length. */
static size_t frame(struct child *ch, uint8_t *out, int opcode,
		    const char *payload, size_t n)
{
	size_t h = 2, i;
	uint8_t *mask;

	out[0] = (uint8_t)(0x80 | opcode);
	if (n < 126) {
		out[1] = (uint8_t)(0x80 | n);
	} else {
		out[1] = 0x80 | 126;
		out[2] = (uint8_t)(n >> 8);
		out[3] = (uint8_t)n;
		h = 4;
	}
	mask = out + h;
	ch->rng = ch->rng * 1103515245u + 12345u;
	memcpy(mask, &ch->rng, 4);
	for (i = 0; i < n; i++)
		out[h + 4 + i] = (uint8_t)payload[i] ^ mask[i & 3];
	return h + 4 + n;
}

static void csend(struct child *ch, struct cconn *c, const void *p, size_t n)
{
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

	/* Small writes to a fresh socket: all or nothing. */
	if (w != (ssize_t)n)
		child_fail(ch, "send of %zu bytes: %zd (%s)", n, w,
			   w < 0 ? strerror(errno) : "short");
}

static void start_next(struct child *ch);

static void on_text(struct child *ch, struct cconn *c, char *msg)
{
	char type[16], rs[16];

	if (bench_field(msg, "type", type, sizeof(type)))
		child_fail(ch, "message without type: %.80s", msg);
	if (!strcmp(type, "auth"))
		return;
	if (c->st == C_SUBSCRIBING && !strcmp(type, "subbed")) {
		c->st = C_OPEN;
		ch->inflight--;
		ch->ready++;
		if (ch->ready == ch->share)
			report(ch, REC_READY, 0, 0, NULL);
		start_next(ch);
		return;
	}
	if (c->st == C_OPEN && !strcmp(type, "m") &&
	    !bench_field(msg, "r", rs, sizeof(rs))) {
		int r = atoi(rs);

		if (r != ch->expect)
			child_fail(ch, "round %d while awaiting %d", r,
				   ch->expect);
		if (c->last_round == r)
			child_fail(ch, "round %d delivered twice", r);
		c->last_round = r;
		ch->t_last = now_ns();
		if (++ch->got == ch->share) {
			report(ch, REC_ROUND, r, ch->t_last, NULL);
			ch->got = 0;
			ch->expect++;
		}
		return;
	}
	child_fail(ch, "unexpected message: %.80s", msg);
}

/* Parse the whole server frames in c->buf; keep a partial one. */
static void parse_frames(struct child *ch, struct cconn *c)
{
	size_t off = 0;

	for (;;) {
		uint8_t *p = c->buf + off;
		size_t avail = c->len - off, h = 2, n;
		int op;

		if (avail < 2)
			break;
		op = p[0] & 0x0f;
		if (!(p[0] & 0x80) || op == 0)
			child_fail(ch, "fragmented frame (unsupported)");
		if (p[1] & 0x80)
			child_fail(ch, "masked frame from the server");
		n = p[1] & 0x7f;
		if (n == 127)
			child_fail(ch, "64-bit frame length (unsupported)");
		if (n == 126) {
			if (avail < 4)
				break;
			n = (size_t)p[2] << 8 | p[3];
			h = 4;
		}
		if (h + n > RBUF - 1)
			child_fail(ch, "frame of %zu bytes too large", n);
		if (avail < h + n)
			break;
		if (op == 1) {
			char save = (char)p[h + n];

			p[h + n] = 0; /* restored below */
			on_text(ch, c, (char *)p + h);
			p[h + n] = (uint8_t)save;
		} else if (op == 8) {
			child_fail(ch, "server closed (%d) %.*s",
				   n >= 2 ? p[h] << 8 | p[h + 1] : 0,
				   n > 2 ? (int)(n - 2) : 0, p + h + 2);
		} else if (op == 9) {
			uint8_t out[140];

			if (n > 125)
				child_fail(ch, "ping too large");
			csend(ch, c, out,
			      frame(ch, out, 10, (const char *)p + h, n));
		}
		off += h + n;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void on_upgrade(struct child *ch, struct cconn *c)
{
	/* The accept value for the fixed key "dGhlIHNhbXBsZSBub25jZQ==",
	 * RFC 6455 section 1.3. */
	static const char acc[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
	char *end, login[512];
	uint8_t out[1024];
	size_t head, o;
	int n;

	c->buf[c->len] = 0;
	end = strstr((char *)c->buf, "\r\n\r\n");
	if (!end) {
		if (c->len >= RBUF - 1)
			child_fail(ch, "upgrade response too large");
		return;
	}
	if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) ||
	    !strstr((char *)c->buf, acc))
		child_fail(ch, "upgrade refused: %.60s", (char *)c->buf);
	head = (size_t)(end + 4 - (char *)c->buf);
	memmove(c->buf, c->buf + head, c->len - head);
	c->len -= head;
	c->st = C_SUBSCRIBING;
	n = snprintf(login, sizeof(login),
		     "{\"type\":\"login\",\"token\":\"%s\"}", ch->token);
	o = frame(ch, out, 1, login, (size_t)n);
	o += frame(ch, out + o, 1, "{\"type\":\"sub\"}", 14);
	csend(ch, c, out, o);
	parse_frames(ch, c);
}

static void start_next(struct child *ch)
{
	while (ch->started < ch->share && ch->inflight < INFLIGHT) {
		int i = ch->started++;
		struct cconn *c = &ch->c[i];
		struct sockaddr_in src = {.sin_family = AF_INET};
		struct sockaddr_in dst = {.sin_family = AF_INET};
		struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
		int one = 1;

		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (c->fd < 0)
			child_fail(ch, "socket: %s", strerror(errno));
		c->last_round = -1;
		/* Spread sources over 127.0.0.1..16 against port exhaustion;
		 * the port is chosen at connect(). */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
			   sizeof(one));
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % 16));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)))
			child_fail(ch, "bind: %s", strerror(errno));
		dst.sin_addr.s_addr = htonl(0x7f000001u);
		dst.sin_port = htons((uint16_t)ch->port);
		if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) &&
		    errno != EINPROGRESS)
			child_fail(ch, "connect: %s", strerror(errno));
		c->st = C_CONNECTING;
		ch->inflight++;
		if (epoll_ctl(ch->ep, EPOLL_CTL_ADD, c->fd, &ev))
			child_fail(ch, "epoll_ctl: %s", strerror(errno));
	}
}

static void on_event(struct child *ch, struct cconn *c, uint32_t events)
{
	static const char req[] =
	    "GET " PATH " HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n";
	ssize_t r;

	if (c->st == C_CONNECTING) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u32 = (uint32_t)(c - ch->c)};
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
			child_fail(ch, "connect: %s", strerror(err));
		csend(ch, c, req, sizeof(req) - 1);
		c->st = C_UPGRADING;
		if (epoll_ctl(ch->ep, EPOLL_CTL_MOD, c->fd, &ev))
			child_fail(ch, "epoll_ctl: %s", strerror(errno));
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	r = read(c->fd, c->buf + c->len, RBUF - 1 - c->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0)
		child_fail(ch, "connection %d: %s", (int)(c - ch->c),
			   r ? strerror(errno) : "closed by the server");
	c->len += (size_t)r;
	if (c->st == C_UPGRADING)
		on_upgrade(ch, c);
	else
		parse_frames(ch, c);
}

static void child_main(int rep, int ctl, int share, const char *token)
{
	struct child ch = {.rep = rep, .ctl = ctl, .share = share};
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	struct epoll_event evs[256];
	int32_t port;

	ch.token = token;
	ch.rng = (uint32_t)getpid();
	if (bench_read_full(ctl, &port, sizeof(port), now_ns() + 60000000000LL))
		_exit(1); /* the parent gave up */
	ch.port = port;
	ch.c = calloc((size_t)share, sizeof(*ch.c));
	ch.ep = epoll_create1(0);
	if (!ch.c || ch.ep < 0)
		child_fail(&ch, "out of memory or descriptors");
	if (epoll_ctl(ch.ep, EPOLL_CTL_ADD, ctl, &ev))
		child_fail(&ch, "epoll_ctl: %s", strerror(errno));
	start_next(&ch);
	for (;;) {
		int n = epoll_wait(ch.ep, evs, 256, TIMEOUT_MS * 4), i;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			child_fail(&ch, "nothing happened for %d s",
				   TIMEOUT_MS / 250);
		for (i = 0; i < n; i++) {
			if (evs[i].data.u32 == UINT32_MAX)
				_exit(0); /* control pipe closed: done */
			on_event(&ch, &ch.c[evs[i].data.u32], evs[i].events);
		}
	}
}

/* -------------------------------------------------------------- server */

struct subs {
	pthread_mutex_t mu;
	char (*ids)[ID_LEN + 1];
	int n, cap;
	int overflow;
};

static void on_sub(wsa_conn *c, json_t *msg, void *ud)
{
	struct subs *s = ud;
	const char *id = wsa_conn_id(c);

	(void)msg;
	if (wsa_conn_join(c, TOPIC)) {
		wsa_conn_send_error(c, "join failed");
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->n < s->cap && strlen(id) == ID_LEN)
		memcpy(s->ids[s->n++], id, ID_LEN + 1);
	else
		s->overflow = 1;
	pthread_mutex_unlock(&s->mu);
	wsa_conn_send_new(c, json_pack("{s:s}", "type", "subbed"));
}

static void quiet_log(wsa_log_level level, const char *conn_id,
		      const char *route, const char *msg, void *ud)
{
	(void)conn_id;
	(void)route;
	(void)ud;
	if (level <= WSA_LOG_ERR)
		fprintf(stderr, "wsa-fanout-bench: server: %s\n", msg);
}

static int run_rc;
static unsigned threads = 1; /* --threads */

static void *run_thread(void *srv)
{
	run_rc = wsa_server_run(srv);
	return NULL;
}

/* -------------------------------------------------------------- parent */

struct kid {
	pid_t pid;
	int rep, ctl; /* parent's ends */
	int share;
};

struct run {
	int n, nkids;
	struct kid kids[MAX_CHILDREN];
	wsa_server *srv;
	wsa_jwt *jwt;
	pthread_t th;
	int th_started;
	struct subs subs;
};

static void kill_kids(struct run *r)
{
	int i;

	for (i = 0; i < r->nkids; i++) {
		if (r->kids[i].pid > 0) {
			kill(r->kids[i].pid, SIGKILL);
			waitpid(r->kids[i].pid, NULL, 0);
			r->kids[i].pid = 0;
		}
	}
}

static void teardown(struct run *r)
{
	int i;

	kill_kids(r);
	for (i = 0; i < r->nkids; i++) {
		close(r->kids[i].rep);
		close(r->kids[i].ctl);
	}
	r->nkids = 0;
	if (r->th_started) {
		wsa_server_stop(r->srv);
		pthread_join(r->th, NULL);
		r->th_started = 0;
	}
	wsa_server_free(r->srv);
	r->srv = NULL;
	wsa_jwt_free(r->jwt);
	r->jwt = NULL;
	free(r->subs.ids);
	r->subs.ids = NULL;
	pthread_mutex_destroy(&r->subs.mu);
}

static int fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wsa-fanout-bench: n=%d: ", r->n);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	teardown(r);
	return -1;
}

/* Fork the children before any thread exists in this process. */
static int spawn(struct run *r, const char *token)
{
	int i, j, k = (r->n + CHILD_MAX - 1) / CHILD_MAX;

	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < k; i++) {
		struct kid *kd = &r->kids[i];
		int rp[2], cp[2];

		kd->share = r->n / k + (i < r->n % k);
		if (pipe(rp))
			return fail(r, "pipe: %s", strerror(errno));
		if (pipe(cp)) {
			close(rp[0]);
			close(rp[1]);
			return fail(r, "pipe: %s", strerror(errno));
		}
		kd->rep = rp[0];
		kd->ctl = cp[1];
		r->nkids = i + 1;
		kd->pid = fork();
		if (kd->pid < 0) {
			close(rp[1]);
			close(cp[0]);
			return fail(r, "fork: %s", strerror(errno));
		}
		if (kd->pid == 0) {
			/* Only this child's ends stay open, so that each
			 * sees end of file when the parent closes its own. */
			for (j = 0; j <= i; j++) {
				close(r->kids[j].rep);
				close(r->kids[j].ctl);
			}
			child_main(rp[1], cp[0], kd->share, token);
			_exit(1);
		}
		close(rp[1]);
		close(cp[0]);
	}
	return 0;
}

/* One record from child i by the deadline; fails on an error record. */
static int expect_rec(struct run *r, int i, int kind, int round, int64_t *t)
{
	struct rec rc;

	if (bench_read_full(r->kids[i].rep, &rc, sizeof(rc),
			    now_ns() + (int64_t)TIMEOUT_MS * 1000000))
		return fail(r, "child %d: %s", i,
			    errno == ETIMEDOUT ? "timed out"
			    : errno	       ? strerror(errno)
					       : "exited");
	if (rc.kind == REC_ERROR)
		return fail(r, "child %d: %.*s", i, (int)sizeof(rc.text),
			    rc.text);
	if (rc.kind != kind || rc.round != round)
		return fail(r, "child %d: record %d/%d, expected %d/%d", i,
			    rc.kind, rc.round, kind, round);
	if (t && rc.t_ns > *t)
		*t = rc.t_ns;
	return 0;
}

static int start(struct run *r, const char *token)
{
	wsa_config cfg;
	wsa_route *route;
	int i, rc;
	int32_t port;

	int n = r->n;

	memset(r, 0, sizeof(*r));
	r->n = n;
	pthread_mutex_init(&r->subs.mu, NULL);
	r->subs.cap = n;
	r->subs.ids = calloc((size_t)r->n, sizeof(*r->subs.ids));
	if (!r->subs.ids)
		return fail(r, "out of memory");
	if (spawn(r, token))
		return -1;
	wsa_config_init(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = 0;
	cfg.log = quiet_log;
	cfg.log_level = WSA_LOG_ERR;
	cfg.drain_timeout_ms = 1000;
	/* Up to 10,000 subscribers from one address logging in at once,
	 * publishing as fast as it can. */
	cfg.max_connections = WSA_UNLIMITED;
	cfg.max_connections_per_address = WSA_UNLIMITED;
	cfg.rate_limit = WSA_UNLIMITED;
	cfg.verify_rate = WSA_UNLIMITED;
	cfg.threads = threads;
	if ((rc = wsa_jwt_new(&r->jwt)) ||
	    (rc = wsa_jwt_add_key(r->jwt, NULL, "HS256", SECRET,
				  sizeof(SECRET) - 1)) ||
	    (rc = wsa_server_new(&r->srv, &cfg)) ||
	    (rc = wsa_set_verifier(r->srv, wsa_jwt_verifier, r->jwt)) ||
	    (rc = wsa_route_add(r->srv, PATH, NULL, NULL, NULL, &route)) ||
	    (rc = wsa_route_handle(route, "sub", on_sub, &r->subs)))
		return fail(r, "server setup: %s", wsa_strerror(rc));
	if (pthread_create(&r->th, NULL, run_thread, r->srv))
		return fail(r, "pthread_create failed");
	r->th_started = 1;
	port = wsa_server_port(r->srv);
	for (i = 0; i < r->nkids; i++)
		if (bench_write_full(r->kids[i].ctl, &port, sizeof(port)))
			return fail(r, "child %d: control pipe: %s", i,
				    strerror(errno));
	for (i = 0; i < r->nkids; i++)
		if (expect_rec(r, i, REC_READY, 0, NULL))
			return -1;
	pthread_mutex_lock(&r->subs.mu);
	rc = r->subs.n != r->n || r->subs.overflow;
	pthread_mutex_unlock(&r->subs.mu);
	if (rc)
		return fail(r, "%d subscriptions recorded", r->subs.n);
	return 0;
}

/* Children leave first (their sockets close), then the server stops. */
static int finish(struct run *r)
{
	int i, st;

	for (i = 0; i < r->nkids; i++) {
		close(r->kids[i].ctl);
		r->kids[i].ctl = -1;
	}
	for (i = 0; i < r->nkids; i++) {
		struct rec rc;

		if (!bench_read_full(r->kids[i].rep, &rc, sizeof(rc),
				     now_ns() +
					 (int64_t)TIMEOUT_MS * 1000000) ||
		    errno)
			return fail(r, "child %d did not exit", i);
		if (waitpid(r->kids[i].pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			return fail(r, "child %d exited badly", i);
		r->kids[i].pid = 0;
	}
	teardown(r);
	if (run_rc) {
		fprintf(stderr, "wsa-fanout-bench: n=%d: wsa_server_run: %s\n",
			r->n, wsa_strerror(run_rc));
		return -1;
	}
	return 0;
}

enum { M_PUBLISH, M_LOOP };
static const char *const mode_name[] = {"publish", "loop"};

/* One round: the message to all n, then the latest arrival (ns), and
 * how long the calls took the calling thread (ns). */
static int round_once(struct run *r, int mode, int round, int64_t *dt,
		      int64_t *call)
{
	json_t *msg = json_pack("{s:s,s:i}", "type", "m", "r", round);
	int64_t t0, last = 0;
	int i, rc = 0;

	if (!msg)
		return fail(r, "out of memory");
	t0 = now_ns();
	if (mode == M_PUBLISH)
		rc = wsa_server_publish(r->srv, TOPIC, msg, NULL);
	else
		for (i = 0; i < r->n && !rc; i++)
			rc = wsa_server_send(r->srv, r->subs.ids[i], msg);
	*call = now_ns() - t0;
	json_decref(msg);
	if (rc)
		return fail(r, "%s: %s", mode_name[mode], wsa_strerror(rc));
	for (i = 0; i < r->nkids; i++)
		if (expect_rec(r, i, REC_ROUND, round, &last))
			return -1;
	*dt = last - t0;
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static int64_t pct(const int64_t *v, int n, int p)
{
	int k = (p * n + 99) / 100;

	return v[k > 0 ? k - 1 : 0];
}

static int bench_n(int n, int rounds, const char *token)
{
	static struct run r;
	int64_t *t[2], *call[2], med[2], p90[2], cmed[2];
	int m, k, round = 0;

	r.n = n;
	if (start(&r, token))
		return -1;
	t[0] = calloc((size_t)rounds * 4, sizeof(int64_t));
	if (!t[0])
		return fail(&r, "out of memory");
	t[1] = t[0] + rounds;
	call[0] = t[1] + rounds;
	call[1] = call[0] + rounds;
	/* One warm-up round of each mode, then the modes alternate. */
	for (k = -1; k < rounds; k++) {
		for (m = 0; m < 2; m++) {
			int64_t dt = 0, ct = 0;

			if (round_once(&r, m, round++, &dt, &ct)) {
				free(t[0]);
				return -1;
			}
			if (k >= 0) {
				t[m][k] = dt;
				call[m][k] = ct;
			}
		}
	}
	if (finish(&r)) {
		free(t[0]);
		return -1;
	}
	for (m = 0; m < 2; m++) {
		qsort(t[m], (size_t)rounds, sizeof(int64_t), cmp_i64);
		qsort(call[m], (size_t)rounds, sizeof(int64_t), cmp_i64);
		med[m] = pct(t[m], rounds, 50);
		p90[m] = pct(t[m], rounds, 90);
		cmed[m] = pct(call[m], rounds, 50);
	}
	for (m = 0; m < 2; m++) {
		double us = (double)med[m] / 1e3;
		double dps = med[m] > 0 ? n / ((double)med[m] / 1e9) : 0;

		fprintf(stderr,
			"fanout n=%-5d %-7s  last: median %10.1f us  p90 "
			"%10.1f us  %12.0f deliveries/s\n",
			n, mode_name[m], us, (double)p90[m] / 1e3, dps);
		printf("{\"mode\":\"%s\",\"n\":%d,\"rounds\":%d,"
		       "\"threads\":%u,"
		       "\"median_last_us\":%.1f,\"p90_last_us\":%.1f,"
		       "\"deliveries_per_s\":%.0f,\"median_call_us\":%.2f",
		       mode_name[m], n, rounds, threads, us,
		       (double)p90[m] / 1e3, dps, (double)cmed[m] / 1e3);
		if (m == M_PUBLISH)
			printf(",\"speedup_vs_loop\":%.2f",
			       (double)med[M_LOOP] / (double)med[M_PUBLISH]);
		printf("}\n");
	}
	fprintf(stderr, "fanout n=%-5d publish/loop deliveries/s: %.2fx\n", n,
		(double)med[M_LOOP] / (double)med[M_PUBLISH]);
	fflush(stdout);
	free(t[0]);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: wsa-fanout-bench [--sizes 1,100,1000,10000] "
			"[--rounds R] [--threads T]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int sizes[MAX_SIZES] = {1, 100, 1000, 10000}, nsizes = 4, rounds = 0;
	char token[400];
	struct rlimit rl;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			char *s = argv[++i], *end;

			for (nsizes = 0; *s; s = end + (*end == ',')) {
				long v = strtol(s, &end, 10);

				if (end == s || v < 1 ||
				    v > (long)CHILD_MAX * MAX_CHILDREN ||
				    nsizes == MAX_SIZES ||
				    (*end && *end != ','))
					return usage();
				sizes[nsizes++] = (int)v;
			}
			if (!nsizes)
				return usage();
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			rounds = atoi(argv[++i]);
			if (rounds < 1)
				return usage();
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			int t = atoi(argv[++i]);

			if (t < 1 || t > 32)
				return usage();
			threads = (unsigned)t;
		} else {
			return usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	for (i = 0; i < nsizes; i++) {
		if ((rlim_t)sizes[i] + 200 > rl.rlim_cur) {
			fprintf(stderr,
				"wsa-fanout-bench: %d connections need more "
				"than the %lu descriptors allowed\n",
				sizes[i], (unsigned long)rl.rlim_cur);
			return 1;
		}
	}
	bench_hs256_token(token, sizeof(token), SECRET, NULL);
	for (i = 0; i < nsizes; i++) {
		int r = rounds ? rounds : sizes[i] <= 1000 ? 20 : 5;

		if (bench_n(sizes[i], r, token))
			return 1;
	}
	return 0;
}
