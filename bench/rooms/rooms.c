/* wsa-rooms-bench: chat-room's rooms under load, on one node or across
 * several nodes that share a Redis.
 *
 * The clients are plain-socket RFC 6455 clients on epoll (the framing of
 * wsa-loadgen, bench/loadgen/ws.c), speaking chat-room's protocol
 * (PROTOCOL.md section 6): login, join a room, chat. Three modes:
 *
 *   deliver: R rooms, each with one sender on --send-url and K receivers
 *     on --recv-url (the same URL for one node). Every chat message
 *     carries its sequence number in the room and the CLOCK_MONOTONIC
 *     instant just before its send(); a receiver's latency is the instant
 *     it read the message less that. The senders either keep a rate
 *     (--rate M messages a second each, on a fixed schedule: the latency
 *     of a late reply does not delay the next message) or keep W messages
 *     in flight (--window W: a message is done when every receiver of its
 *     room has it). One process; the senders' own copies (the server's
 *     reply to the sender, from its own node) are timed too.
 *     Each receiver checks the order: a message earlier than one it had
 *     counts as reordered, a gap as lost (as does whatever had not come
 *     by the end of the drain).
 *
 *   fanout: N subscribers, spread evenly over the --sub-url nodes and
 *     over child processes of at most --per-proc connections each, all
 *     in one room; one publisher on --pub-url. Each round the publisher
 *     sends one chat message; the time to last is from just before its
 *     send() until the last subscriber has it (per node too). The
 *     subscribers share one uid ("sub"): chat-room tells a room's members
 *     when a uid's first connection joins, so N distinct uids would make
 *     N * (N - 1) / 2 presence deliveries while the room fills (50
 *     million for 10,000), which is not what is measured here.
 *
 *   recover: a reconnect storm (PROTOCOL.md section 6.1): N clients in R
 *     rooms join on --join-url nodes, are all cut, miss M chats a room,
 *     then all connect again at once to --back-url nodes and join from
 *     their position; the time until the last has recovered exactly its
 *     M, in order, and Redis' commands over the storm (--redis). See the
 *     recover section below.
 *
 * Connections are bound to source addresses 127.0.0.(A + i % N) (--src-first
 * A, --src-addrs N), so that a server's per-address limits (256
 * connections, a burst of 256 token verifications) hold.
 *
 * --watch NAME:PID (repeatable): the CPU seconds each of those processes
 * used over the measured window (deliver) or the rounds (fanout), and the
 * machine's busy and stolen CPU, are in the result.
 *
 * One JSON line on stdout; progress and failures on stderr. Exit status
 * 0, 1 on bad options or any failure. Every wait is bounded. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "fullio.h"
#include "hist.h"
#include "hs256.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_NODES  8
#define MAX_WATCH  8
#define MAX_KIDS   16
#define MAX_ROUNDS 45		    /* under chat-room's default burst of 50 */
#define INFLIGHT   256		    /* set-ups under way per process */
#define MAX_MSG	   (1 << 20)	    /* a server message larger: a failure */
#define SETUP_S	   60.0		    /* all connections set up within */
#define WAIT_S	   30.0		    /* any other wait */
#define TAP_ID	   (UINT32_MAX - 1) /* epoll data of the Redis tap */

/* ------------------------------------------------------------- options */

struct url {
	struct sockaddr_in addr;
	char host[64]; /* Host header */
	char path[256];
};

static struct {
	enum { M_DELIVER, M_FANOUT, M_RECOVER } mode;
	const char *secret;
	struct url send, recv, pub;
	struct url sub[MAX_NODES], join[MAX_NODES], back[MAX_NODES];
	int nsub, njoin, nback;
	int clients, missed, pub_burst; /* recover */
	double pub_rate;
	struct sockaddr_in redis; /* recover: --redis HOST:PORT, for INFO */
	int rooms, receivers, window, size, subs, per_proc, rounds;
	double rate, duration, warmup, settle, drain;
	unsigned src_first, src_addrs;
	int distinct_uids;	/* deliver: a uid a receiver */
	struct sockaddr_in tap; /* --tap HOST:PORT */
	const char *tap_pattern;
	struct {
		char name[32];
		int pid;
	} watch[MAX_WATCH];
	int nwatch;
} opt = {
    .rooms = 20,
    .receivers = 10,
    .size = 64,
    .subs = 10000,
    .per_proc = 5000,
    .rounds = 20,
    .duration = 10,
    .warmup = 1,
    .settle = 0.5,
    .drain = 5,
    .src_first = 2,
    .src_addrs = 64,
    .clients = 1000,
    .missed = 100,
    .pub_burst = 40,
    .pub_rate = 15,
};

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wsa-rooms-bench[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int parse_url(const char *s, struct url *u)
{
	char host[64];
	const char *p, *slash, *colon;
	long port;

	if (strncmp(s, "ws://", 5))
		return -1;
	p = s + 5;
	slash = strchr(p, '/');
	colon = strchr(p, ':');
	if (!slash || !colon || colon > slash ||
	    colon - p >= (long)sizeof(host))
		return -1;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = 0;
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	memset(u, 0, sizeof(*u));
	u->addr.sin_family = AF_INET;
	u->addr.sin_port = htons((uint16_t)port);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &u->addr.sin_addr) != 1)
		return -1;
	snprintf(u->host, sizeof(u->host), "%s:%ld", host, port);
	snprintf(u->path, sizeof(u->path), "%s", slash);
	return 0;
}

/* HOST:PORT (an IPv4 address) into a; 0 or -1. */
static int parse_hostport(const char *v, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(v, ':');

	if (!colon || colon - v >= (long)sizeof(host))
		return -1;
	memcpy(host, v, (size_t)(colon - v));
	host[colon - v] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* ---------------------------------------------------------------- time */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ns(double s)
{
	return (uint64_t)(s * 1e9);
}

/* User + system CPU seconds of a process, from /proc; -1 when gone. */
static double proc_cpu(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* After the name: state, then fields 4..13; utime and stime are 14
	 * and 15. */
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The machine's busy, stolen and softirq CPU seconds so far (/proc/stat);
 * busy includes softirq (the loopback's packets are mostly handled
 * there, charged to no process). */
static void machine_cpu(double *busy, double *steal, double *softirq)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	double tick = (double)sysconf(_SC_CLK_TCK);

	*busy = *steal = *softirq = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
		*steal = (double)v[7] / tick;
		*softirq = (double)v[6] / tick;
	}
	fclose(f);
}

/* Resident memory of a process in KiB, from /proc; -1 when gone. */
static long proc_rss(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

struct cpu_snap {
	double proc[MAX_WATCH], self, busy, steal, softirq;
	long rss[MAX_WATCH];
	uint64_t t;
};

static double self_cpu(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec +
			b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec +
			b.ru_utime.tv_usec + b.ru_stime.tv_usec) /
		   1e6;
}

static void snap(struct cpu_snap *s)
{
	int i;

	for (i = 0; i < opt.nwatch; i++) {
		s->proc[i] = proc_cpu(opt.watch[i].pid);
		s->rss[i] = proc_rss(opt.watch[i].pid);
	}
	s->self = self_cpu();
	machine_cpu(&s->busy, &s->steal, &s->softirq);
	s->t = now_ns();
}

/* ,"cpu_s":{...},"machine_busy_s":..,"steal_s":..,"cpu_wall_s":..,
 * "rss_kib":{...} (at the start: every connection set up) */
static void print_cpu(const struct cpu_snap *a, const struct cpu_snap *b,
		      double client_extra)
{
	int i;

	printf(",\"cpu_s\":{");
	for (i = 0; i < opt.nwatch; i++)
		printf("%s\"%s\":%.3f", i ? "," : "", opt.watch[i].name,
		       b->proc[i] - a->proc[i]);
	printf("},\"client_cpu_s\":%.3f,\"machine_busy_s\":%.3f,"
	       "\"steal_s\":%.3f,\"softirq_s\":%.3f,\"cpu_wall_s\":%.3f",
	       b->self - a->self + client_extra, b->busy - a->busy,
	       b->steal - a->steal, b->softirq - a->softirq,
	       (double)(b->t - a->t) / 1e9);
	printf(",\"rss_kib\":{");
	for (i = 0; i < opt.nwatch; i++)
		printf("%s\"%s\":%ld", i ? "," : "", opt.watch[i].name,
		       a->rss[i]);
	printf("}");
}

/* --------------------------------------------------------- connections */

enum cstate { C_IDLE, C_CONNECTING, C_UPGRADING, C_JOINING, C_READY };
enum role { R_SENDER, R_RECEIVER, R_PUB, R_SUB };

struct conn {
	int fd;
	enum cstate st;
	enum role role;
	int room;
	const struct url *url;
	const char *token;
	uint32_t src; /* 127.0.0.src */
	char accept[WS_ACCEPT_LEN + 1];
	uint8_t *in, *out;
	uint32_t in_len, in_cap, out_len, out_cap;
	uint64_t next;	/* receiver: the sequence number expected next;
			   sender: the next to send; sub: rounds seen */
	uint64_t due;	/* sender, paced: when the next one is due */
	int last_round; /* sub: the last round it had */
	/* recover: the room's position at the first join, the chats had
	 * since it in order, the instants of the reconnect and of its end */
	uint64_t pos, got, start_ns, up_ns, chat_ns, done_ns;
	int joins, leaves; /* presence events after the reconnect */
	int known_again;   /* joins of a user it already knew was in */
	int early_listed;  /* users of its joined announced before it */
	uint8_t *known;	   /* the users it knows in its room, by g */
	char epoch[24];
	int bad; /* a chat out of order, twice, unknown, or not recovered */
};

struct engine {
	int ep;
	struct conn *c;
	int n, started, inflight, ready;
	uint64_t rng;
	uint8_t rbuf[65536];
	void (*on_text)(struct engine *e, struct conn *c, char *msg, size_t len,
			uint64_t t);
	void (*on_ready)(struct engine *e, struct conn *c);
	void (*on_tap)(struct engine *e);
	/* Optional: every server text message before the connection is
	 * ready (returns 1 when it is), and the join to send after the
	 * login. */
	int (*on_setup)(struct engine *e, struct conn *c, char *msg,
			uint64_t t);
	void (*put_join)(struct engine *e, struct conn *c);
	int max_inflight; /* set-ups under way at once; INFLIGHT when 0 */
	char room_fmt[64];
};

static uint64_t rng_next(struct engine *e)
{
	uint64_t x = e->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	e->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr,
		"wsa-rooms-bench[%d]: %s connection to %s: ", (int)getpid(),
		c->role == R_SENDER	? "sender"
		: c->role == R_RECEIVER ? "receiver"
		: c->role == R_PUB	? "publisher"
					: "subscriber",
		c->url->host);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void want_out(struct engine *e, struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
				 .data.u32 = (uint32_t)(c - e->c)};

	if (epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev))
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

static void flush(struct engine *e, struct conn *c)
{
	uint32_t off = 0;

	while (off < c->out_len) {
		ssize_t w =
		    send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			conn_fail(c, "send: %s", strerror(errno));
		off += (uint32_t)w;
	}
	if (off == c->out_len) {
		if (c->out_len && off)
			want_out(e, c, 0);
		c->out_len = 0;
		return;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	want_out(e, c, 1);
}

/* Append a masked text (or other) frame to c's output; flush() sends. */
static void put_frame(struct engine *e, struct conn *c, unsigned op,
		      const void *p, size_t n)
{
	uint64_t r = rng_next(e);
	uint8_t mask[4];
	size_t h;

	memcpy(mask, &r, 4);
	ws_reserve(&c->out, &c->out_cap, c->out_len + WS_MAX_HEADER + n);
	h = ws_header(c->out + c->out_len, WS_FIN | op, n, mask);
	memcpy(c->out + c->out_len + h, p, n);
	ws_mask(c->out + c->out_len + h, n, mask, 0);
	c->out_len += (uint32_t)(h + n);
}

static void put_text(struct engine *e, struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		conn_fail(c, "message too long");
	put_frame(e, c, WS_OP_TEXT, buf, (size_t)n);
}

static void start_one(struct engine *e, struct conn *c)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLOUT,
				 .data.u32 = (uint32_t)(c - e->c)};
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		conn_fail(c, "socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		   sizeof(one));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000000u | c->src);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)))
		conn_fail(c, "bind to 127.0.0.%u: %s", c->src, strerror(errno));
	if (connect(c->fd, (const struct sockaddr *)&c->url->addr,
		    sizeof(c->url->addr)) &&
	    errno != EINPROGRESS)
		conn_fail(c, "connect: %s", strerror(errno));
	c->st = C_CONNECTING;
	c->start_ns = now_ns();
	e->inflight++;
	if (epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ev))
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

static void start_more(struct engine *e)
{
	int most = e->max_inflight ? e->max_inflight : INFLIGHT;

	while (e->started < e->n && e->inflight < most)
		start_one(e, &e->c[e->started++]);
}

static void room_name(struct engine *e, struct conn *c, char *out, size_t n)
{
	snprintf(out, n, e->room_fmt, c->room);
}

/* The connection is upgraded: log in and join its room at once (the
 * server holds messages behind a login until it is accepted). */
static void on_upgraded(struct engine *e, struct conn *c)
{
	char room[64];

	c->up_ns = now_ns();
	room_name(e, c, room, sizeof(room));
	put_text(e, c, "{\"type\":\"login\",\"token\":\"%s\"}", c->token);
	if (e->put_join)
		e->put_join(e, c);
	else
		put_text(e, c, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	c->st = C_JOINING;
	flush(e, c);
}

/* A server text message during set-up: auth, presence, joined. */
static void setup_text(struct engine *e, struct conn *c, char *msg, uint64_t t)
{
	if (e->on_setup ? e->on_setup(e, c, msg, t)
			: strstr(msg, "\"type\":\"joined\"") != NULL) {
		c->st = C_READY;
		e->inflight--;
		e->ready++;
		if (e->on_ready)
			e->on_ready(e, c);
		start_more(e);
		return;
	}
	if (strstr(msg, "\"type\":\"error\""))
		conn_fail(c, "refused: %.200s", msg);
	/* auth, presence of others: nothing to do */
}

/* Parse whole frames from p[0..n); returns the bytes used. */
static size_t frames(struct engine *e, struct conn *c, uint8_t *p, size_t n,
		     uint64_t t)
{
	size_t used = 0;

	for (;;) {
		struct ws_frame f;
		int r = ws_parse(p + used, n - used, &f);
		uint8_t *pl;

		if (r < 0)
			conn_fail(c, "bad frame from the server");
		if (r == 0 || f.hdr + f.len > n - used)
			break;
		if (f.masked)
			conn_fail(c, "masked frame from the server");
		if (!f.fin || f.opcode == WS_OP_CONT)
			conn_fail(c, "fragmented message (unsupported)");
		if (f.len > MAX_MSG)
			conn_fail(c, "message of %llu bytes",
				  (unsigned long long)f.len);
		pl = p + used + f.hdr;
		if (f.opcode == WS_OP_TEXT) {
			/* The byte after the payload is saved and restored
			 * around a NUL; the buffer always has one more. */
			uint8_t save = pl[f.len];

			pl[f.len] = 0;
			if (c->st == C_READY)
				e->on_text(e, c, (char *)pl, f.len, t);
			else
				setup_text(e, c, (char *)pl, t);
			pl[f.len] = save;
		} else if (f.opcode == WS_OP_PING) {
			put_frame(e, c, WS_OP_PONG, pl, f.len);
			flush(e, c);
		} else if (f.opcode == WS_OP_CLOSE) {
			conn_fail(c, "closed by the server (%d) %.*s",
				  f.len >= 2 ? pl[0] << 8 | pl[1] : 0,
				  f.len > 2 ? (int)f.len - 2 : 0, pl + 2);
		}
		used += f.hdr + f.len;
	}
	return used;
}

static void on_readable(struct engine *e, struct conn *c)
{
	for (;;) {
		uint8_t *buf;
		size_t n, used;
		ssize_t r;
		uint64_t t;

		/* Read after the kept tail, or into the scratch buffer. */
		if (c->in_len) {
			ws_reserve(&c->in, &c->in_cap,
				   c->in_len + sizeof(e->rbuf) + 1);
			buf = c->in;
			r = recv(c->fd, c->in + c->in_len,
				 c->in_cap - c->in_len - 1, 0);
		} else {
			buf = e->rbuf;
			r = recv(c->fd, e->rbuf, sizeof(e->rbuf) - 1, 0);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			conn_fail(c, "%s",
				  r ? strerror(errno) : "closed by the server");
		t = now_ns();
		n = (buf == c->in ? c->in_len : 0) + (size_t)r;
		used = 0;
		if (c->st == C_UPGRADING) {
			const char *why = "";
			long h = ws_check_response((const char *)buf, n,
						   c->accept, &why);

			if (h < 0)
				conn_fail(c, "upgrade refused: %s: %.80s", why,
					  (const char *)buf);
			if (h > 0) {
				used = (size_t)h;
				on_upgraded(e, c);
			}
		}
		if (c->st >= C_JOINING)
			used += frames(e, c, buf + used, n - used, t);
		ws_keep(&c->in, &c->in_cap, &c->in_len, buf, n, used,
			sizeof(e->rbuf) + 1);
		if ((size_t)r < (buf == e->rbuf ? sizeof(e->rbuf) - 1 : 1))
			return; /* drained */
	}
}

static void on_event(struct engine *e, struct conn *c, uint32_t ev)
{
	if (c->st == C_CONNECTING) {
		char key[WS_KEY_LEN + 1], req[512];
		int err = 0;
		socklen_t el = sizeof(err);
		size_t n;

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
			conn_fail(c, "connect: %s", strerror(err));
		ws_make_key(key, rng_next(e), rng_next(e));
		ws_accept(key, WS_KEY_LEN, c->accept);
		n = ws_request(req, sizeof(req), c->url->path, c->url->host,
			       key, NULL, NULL);
		ws_reserve(&c->out, &c->out_cap, n);
		memcpy(c->out, req, n);
		c->out_len = (uint32_t)n;
		c->st = C_UPGRADING;
		want_out(e, c, 0);
		flush(e, c);
		return;
	}
	if (ev & EPOLLOUT && c->out_len)
		flush(e, c);
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(e, c);
}

/* One round of events, waiting at most timeout_ms; extra_fd (if >= 0) is
 * in the set with data.u32 UINT32_MAX, and its readiness is returned. */
static int poll_once(struct engine *e, int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(e->ep, evs, 256, timeout_ms), i, extra = 0;

	if (n < 0 && errno != EINTR)
		die("epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		if (evs[i].data.u32 == UINT32_MAX)
			extra = 1;
		else if (evs[i].data.u32 == TAP_ID)
			e->on_tap(e);
		else
			on_event(e, &e->c[evs[i].data.u32], evs[i].events);
	}
	return extra;
}

static void engine_init(struct engine *e, int n)
{
	memset(e, 0, sizeof(*e));
	e->n = n;
	e->c = calloc((size_t)n, sizeof(*e->c));
	e->ep = epoll_create1(0);
	if (!e->c || e->ep < 0)
		die("out of memory or descriptors");
	e->rng = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
}

/* Set every connection up (all joined), within SETUP_S. */
static void setup_all(struct engine *e)
{
	uint64_t end = now_ns() + ns(SETUP_S);

	start_more(e);
	while (e->ready < e->n) {
		if (now_ns() > end)
			die("%d of %d connections set up in %.0f s", e->ready,
			    e->n, SETUP_S);
		poll_once(e, 100);
	}
}

/* Serve events for s seconds. */
static void serve_for(struct engine *e, double s)
{
	uint64_t end = now_ns() + ns(s);

	for (uint64_t t; (t = now_ns()) < end;)
		poll_once(e, (int)((end - t) / 1000000) + 1);
}

/* RST at the end: no TIME_WAIT left behind from many runs. */
static void close_all(struct engine *e)
{
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	int i;

	for (i = 0; i < e->started; i++) {
		setsockopt(e->c[i].fd, SOL_SOCKET, SO_LINGER, &lin,
			   sizeof(lin));
		close(e->c[i].fd);
	}
}

/* The value of "message" (a string) in msg, or NULL. */
static char *message_of(char *msg)
{
	char *p = strstr(msg, "\"message\":\"");

	return p ? p + 11 : NULL;
}

static int is_chat(const char *msg)
{
	return strstr(msg, "\"type\":\"chat\"") != NULL;
}

/* ------------------------------------------------------------- deliver */

struct deliver {
	int R, K;
	struct conn **sender; /* by room */
	uint64_t *done;	      /* by room: the least any receiver has */
	uint64_t w0, w1;      /* the measured window */
	int sending;
	struct hist lat, reply, tap;
	int tap_fd;
	uint8_t *tap_buf;
	uint32_t tap_len, tap_cap;
	uint64_t sent_in_window, delivered_in_window, sent_total;
	uint64_t lost, reordered, late, rate_limited, errors;
	char pad[4096];
} D;

/* Sequence and send time from a message "S.T.padding" (hex). */
static int parse_stamp(const char *m, uint64_t *seq, uint64_t *t)
{
	char *end;

	*seq = strtoull(m, &end, 16);
	if (*end != '.')
		return -1;
	*t = strtoull(end + 1, &end, 16);
	return *end == '.' ? 0 : -1;
}

static void deliver_text(struct engine *e, struct conn *c, char *msg,
			 size_t len, uint64_t t)
{
	uint64_t seq, sent;
	char *m;
	int k;

	(void)e;
	(void)len;
	if (!is_chat(msg)) {
		if (strstr(msg, "\"type\":\"error\"")) {
			if (strstr(msg, "Rate limit exceeded"))
				D.rate_limited++;
			else
				D.errors++;
			if (D.rate_limited + D.errors <= 5)
				fprintf(stderr,
					"wsa-rooms-bench: error: %.200s\n",
					msg);
		}
		return; /* presence */
	}
	m = message_of(msg);
	if (!m || parse_stamp(m, &seq, &sent))
		conn_fail(c, "chat without a stamp: %.200s", msg);
	if (c->role == R_SENDER) {
		if (sent >= D.w0 && sent < D.w1)
			hist_add(&D.reply, t - sent);
		return;
	}
	if (seq < c->next) {
		D.reordered++;
		return;
	}
	D.lost += seq - c->next;
	c->next = seq + 1;
	if (sent >= D.w0 && sent < D.w1)
		hist_add(&D.lat, t - sent);
	if (t >= D.w0 && t < D.w1)
		D.delivered_in_window++;
	/* The room's least: only this receiver moved. */
	if (seq + 1 > D.done[c->room]) {
		uint64_t least = UINT64_MAX;
		struct conn *r = &e->c[c->room * D.K];

		for (k = 0; k < D.K; k++)
			if (r[k].next < least)
				least = r[k].next;
		D.done[c->room] = least;
	}
}

static void send_chat(struct engine *e, struct conn *s, uint64_t t)
{
	char room[64];

	room_name(e, s, room, sizeof(room));
	put_text(e, s,
		 "{\"type\":\"chat\",\"room\":\"%s\",\"message\":"
		 "\"%llx.%llx.%s\"}",
		 room, (unsigned long long)s->next, (unsigned long long)t,
		 D.pad);
	s->next++;
	D.sent_total++;
	if (t >= D.w0 && t < D.w1)
		D.sent_in_window++;
}

/* Send what is due; returns the ms until the next is due (paced), or
 * -1. */
static int deliver_send(struct engine *e)
{
	uint64_t t = now_ns(), next = UINT64_MAX;
	int i;

	if (!D.sending)
		return -1;
	for (i = 0; i < D.R; i++) {
		struct conn *s = D.sender[i];

		if (opt.rate > 0) {
			if (s->due > t) {
				if (s->due < next)
					next = s->due;
				continue;
			}
			send_chat(e, s, t);
			s->due += (uint64_t)(1e9 / opt.rate);
			if (s->due <= t) { /* behind: skip, do not burst */
				D.late++;
				s->due = t + (uint64_t)(1e9 / opt.rate);
			}
			if (s->due < next)
				next = s->due;
		} else {
			while (s->next - D.done[i] < (uint64_t)opt.window)
				send_chat(e, s, t);
		}
		if (s->out_len)
			flush(e, s);
	}
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - t + 999999) / 1000000);
}

/* The tap: a Redis subscriber of the rooms' channels (PSUBSCRIBE
 * --tap-pattern), the clock read as each message reaches it. Node 1's
 * publishes carry the chat message's JSON as it is, so its stamp is read
 * out of the payload; the latency to the tap is from the sender through
 * node 1 to Redis' fan-out, the rest of a delivery's is from there
 * through node 2 to the receiver. */

/* One RESP element at p[0..n): its length, 0 when incomplete, -1 when
 * it is none this reader knows. A bulk string's start and length go to
 * *s and *len (the last one wins for an array). */
static long resp_one(const char *p, size_t n, const char **s, size_t *len)
{
	const char *nl = memchr(p, '\n', n);
	long v, used, k, i;

	if (!nl)
		return 0;
	used = nl + 1 - p;
	v = strtol(p + 1, NULL, 10);
	switch (p[0]) {
	case '+':
	case '-':
	case ':':
		return used;
	case '$':
		if (v < 0)
			return used;
		if ((size_t)(used + v + 2) > n)
			return 0;
		*s = p + used;
		*len = (size_t)v;
		return used + v + 2;
	case '*':
		for (i = 0; i < v; i++) {
			k = resp_one(p + used, n - (size_t)used, s, len);
			if (k <= 0)
				return k;
			used += k;
		}
		return used;
	default:
		return -1;
	}
}

static void tap_read(struct engine *e)
{
	for (;;) {
		ssize_t r;
		uint64_t t;
		long used = 0, k;

		ws_reserve(&D.tap_buf, &D.tap_cap, D.tap_len + 65536);
		r = recv(D.tap_fd, D.tap_buf + D.tap_len,
			 D.tap_cap - D.tap_len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			die("tap: Redis closed the connection");
		t = now_ns();
		D.tap_len += (uint32_t)r;
		for (;;) {
			const char *s = NULL, *m;
			size_t len = 0;
			uint64_t seq, sent;

			k = resp_one((char *)D.tap_buf + used,
				     D.tap_len - (size_t)used, &s, &len);
			if (k < 0)
				die("tap: a reply this reader does not know");
			if (!k)
				break;
			used += k;
			if (!s || len < 40)
				continue;
			/* The payload: find the stamp in its JSON. */
			m = memmem(s, len, "\"message\":\"", 11);
			if (m && !parse_stamp(m + 11, &seq, &sent) &&
			    sent >= D.w0 && sent < D.w1)
				hist_add(&D.tap, t - sent);
		}
		memmove(D.tap_buf, D.tap_buf + used, D.tap_len - (size_t)used);
		D.tap_len -= (uint32_t)used;
	}
	(void)e;
}

static void tap_open(struct engine *e)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAP_ID};
	char cmd[512];
	int n, one = 1;
	uint64_t end = now_ns() + ns(WAIT_S);
	char reply[256];
	size_t got = 0;

	D.tap_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (D.tap_fd < 0 ||
	    connect(D.tap_fd, (struct sockaddr *)&opt.tap, sizeof(opt.tap)))
		die("tap: connect to Redis: %s", strerror(errno));
	setsockopt(D.tap_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n = snprintf(cmd, sizeof(cmd),
		     "*2\r\n$10\r\nPSUBSCRIBE\r\n$%zu\r\n%s\r\n",
		     strlen(opt.tap_pattern), opt.tap_pattern);
	if (bench_write_full(D.tap_fd, cmd, (size_t)n))
		die("tap: write: %s", strerror(errno));
	/* The confirmation: an array of 3 ending in ":1". */
	while (!memmem(reply, got, ":1\r\n", 4)) {
		struct pollfd pfd = {.fd = D.tap_fd, .events = POLLIN};
		ssize_t r;

		if (now_ns() > end || got == sizeof(reply))
			die("tap: no PSUBSCRIBE confirmation");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = read(D.tap_fd, reply + got, sizeof(reply) - got);
		if (r <= 0)
			die("tap: read: %s", r ? strerror(errno) : "closed");
		got += (size_t)r;
	}
	/* Whatever came behind the confirmation is the stream's next. */
	{
		char *end = (char *)memmem(reply, got, ":1\r\n", 4) + 4;
		size_t rest = got - (size_t)(end - reply);

		ws_reserve(&D.tap_buf, &D.tap_cap, rest + 1);
		memcpy(D.tap_buf, end, rest);
		D.tap_len = (uint32_t)rest;
	}
	fcntl(D.tap_fd, F_SETFL, fcntl(D.tap_fd, F_GETFL) | O_NONBLOCK);
	e->on_tap = tap_read;
	if (epoll_ctl(e->ep, EPOLL_CTL_ADD, D.tap_fd, &ev))
		die("epoll_ctl: %s", strerror(errno));
}

static int run_deliver(void)
{
	struct engine e;
	struct cpu_snap a, b;
	int R = opt.rooms, K = opt.receivers, i, k, n = R * (K + 1);
	char *tok_recv, *tok_send;
	uint64_t t, end;
	double secs;
	size_t plen;

	if (opt.size < 40 || opt.size > 4000)
		die("--size from 40 to 4000");
	engine_init(&e, n);
	e.on_text = deliver_text;
	snprintf(e.room_fmt, sizeof(e.room_fmt), "bench-room-%%d");
	D.R = R;
	D.K = K;
	D.sender = calloc((size_t)R, sizeof(*D.sender));
	D.done = calloc((size_t)R, sizeof(*D.done));
	tok_recv = malloc(512);
	tok_send = malloc(512);
	if (!D.sender || !D.done || !tok_recv || !tok_send)
		die("out of memory");
	/* Two uids: each room's K receivers are one user, its sender
	 * another, so that a join tells the room of at most one new user;
	 * deliveries are per connection all the same. --distinct-uids 1:
	 * a uid for each receiver ("rROOM-K"), as users would have. */
	bench_hs256_token(tok_recv, 512, opt.secret, "receiver");
	bench_hs256_token(tok_send, 512, opt.secret, "sender");
	/* The message: "SEQ.T." (up to 34 bytes) then letters up to the
	 * size. */
	plen = (size_t)opt.size - 34;
	memset(D.pad, 'x', plen);
	D.pad[plen] = 0;
	hist_init(&D.lat);
	hist_init(&D.reply);
	hist_init(&D.tap);
	if (opt.tap_pattern)
		tap_open(&e);
	D.w0 = D.w1 = UINT64_MAX;
	/* Receivers first (room by room), then the senders. */
	for (i = 0; i < R; i++) {
		for (k = 0; k < K; k++) {
			struct conn *c = &e.c[i * K + k];

			c->role = R_RECEIVER;
			c->room = i;
			c->url = &opt.recv;
			c->token = tok_recv;
			if (opt.distinct_uids) {
				char uid[32], *tok = malloc(512);

				if (!tok)
					die("out of memory");
				snprintf(uid, sizeof(uid), "r%d-%d", i, k);
				bench_hs256_token(tok, 512, opt.secret, uid);
				c->token = tok;
			}
		}
	}
	for (i = 0; i < R; i++) {
		struct conn *c = &e.c[R * K + i];

		c->role = R_SENDER;
		c->room = i;
		c->url = &opt.send;
		c->token = tok_send;
		D.sender[i] = c;
	}
	for (i = 0; i < n; i++)
		e.c[i].src = opt.src_first + (uint32_t)i % opt.src_addrs;
	t = now_ns();
	setup_all(&e);
	/* Which sockets are whose, for a trace of the system calls. */
	fprintf(stderr,
		"wsa-rooms-bench: sockets: receivers fd %d to %d, "
		"senders fd %d to %d\n",
		e.c[0].fd, e.c[R * K - 1].fd, e.c[R * K].fd, e.c[n - 1].fd);
	fprintf(stderr,
		"wsa-rooms-bench: %d connections in %d rooms set up "
		"in %.2f s\n",
		n, R, (double)(now_ns() - t) / 1e9);
	/* Let the joins' presence traffic pass. */
	serve_for(&e, opt.settle);
	t = now_ns();
	D.w0 = t + ns(opt.warmup);
	D.w1 = D.w0 + ns(opt.duration);
	for (i = 0; i < R; i++) /* first messages spread over a period */
		D.sender[i]->due =
		    t + (opt.rate > 0 ? (uint64_t)(1e9 / opt.rate * i / R) : 0);
	D.sending = 1;
	for (int in_window = 0;;) {
		int wait = deliver_send(&e);

		t = now_ns();
		if (!in_window && t >= D.w0) {
			snap(&a);
			in_window = 1;
		}
		if (t >= D.w1) {
			snap(&b);
			break;
		}
		if (wait < 0 || (uint64_t)wait * 1000000 > D.w1 - t)
			wait = (int)((D.w1 - t) / 1000000) + 1;
		if (!in_window && (uint64_t)wait * 1000000 > D.w0 - t)
			wait = (int)((D.w0 - t) / 1000000) + 1;
		poll_once(&e, wait);
	}
	D.sending = 0;
	/* Drain: every receiver gets what its sender sent, or the time is
	 * up. */
	end = now_ns() + ns(opt.drain);
	for (;;) {
		int behind = 0;

		for (i = 0; i < R; i++)
			behind |= D.done[i] < D.sender[i]->next;
		if (!behind || now_ns() > end)
			break;
		poll_once(&e, 10);
	}
	for (i = 0; i < R * K; i++)
		D.lost += D.sender[e.c[i].room]->next - e.c[i].next;
	close_all(&e);
	secs = (double)(D.w1 - D.w0) / 1e9;
	printf("{\"mode\":\"deliver\",\"rooms\":%d,\"receivers\":%d,"
	       "\"rate\":%.1f,\"window\":%d,\"size\":%d,\"duration_s\":%.3f,"
	       "\"sent\":%llu,\"published_per_s\":%.1f,"
	       "\"deliveries_per_s\":%.1f,\"msgs_per_s\":%.1f,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
	       "\"max_us\":%.1f,\"mean_us\":%.1f,\"samples\":%llu,"
	       "\"reply_p50_us\":%.1f,\"reply_p99_us\":%.1f,"
	       "\"reply_p999_us\":%.1f,\"tap_p50_us\":%.1f,"
	       "\"tap_p99_us\":%.1f,\"tap_p999_us\":%.1f,\"tap_samples\":%llu,"
	       "\"lost\":%llu,\"reordered\":%llu,\"late\":%llu,"
	       "\"rate_limited\":%llu,\"errors\":%llu",
	       R, K, opt.rate, opt.window, opt.size, secs,
	       (unsigned long long)D.sent_in_window,
	       (double)D.sent_in_window / secs,
	       (double)D.delivered_in_window / secs,
	       (double)D.delivered_in_window / secs / K,
	       (double)hist_pct(&D.lat, 0.5) / 1e3,
	       (double)hist_pct(&D.lat, 0.99) / 1e3,
	       (double)hist_pct(&D.lat, 0.999) / 1e3, (double)D.lat.max / 1e3,
	       D.lat.count ? D.lat.sum / (double)D.lat.count / 1e3 : 0.0,
	       (unsigned long long)D.lat.count,
	       (double)hist_pct(&D.reply, 0.5) / 1e3,
	       (double)hist_pct(&D.reply, 0.99) / 1e3,
	       (double)hist_pct(&D.reply, 0.999) / 1e3,
	       (double)hist_pct(&D.tap, 0.5) / 1e3,
	       (double)hist_pct(&D.tap, 0.99) / 1e3,
	       (double)hist_pct(&D.tap, 0.999) / 1e3,
	       (unsigned long long)D.tap.count, (unsigned long long)D.lost,
	       (unsigned long long)D.reordered, (unsigned long long)D.late,
	       (unsigned long long)D.rate_limited,
	       (unsigned long long)D.errors);
	print_cpu(&a, &b, 0);
	printf("}\n");
	fprintf(stderr,
		"wsa-rooms-bench: deliver: %.0f messages/s published, %.0f "
		"deliveries/s, p50 %.0f us, p99 %.0f us, p99.9 %.0f us; "
		"lost %llu, reordered %llu\n",
		(double)D.sent_in_window / secs,
		(double)D.delivered_in_window / secs,
		(double)hist_pct(&D.lat, 0.5) / 1e3,
		(double)hist_pct(&D.lat, 0.99) / 1e3,
		(double)hist_pct(&D.lat, 0.999) / 1e3,
		(unsigned long long)D.lost, (unsigned long long)D.reordered);
	return D.lost || D.reordered || D.errors ? 1 : 0;
}

/* -------------------------------------------------------------- fanout */

/* Child to parent: fixed-size records, written atomically (< PIPE_BUF). */
enum { REC_READY = 1, REC_ROUND, REC_ERROR, REC_CUT, REC_DONE };

struct rec {
	int32_t kind;
	int32_t round;
	uint64_t first_ns, last_ns;
	double cpu_s;
};

struct kid {
	pid_t pid;
	int rep, ctl; /* parent's ends */
	int node, share, first;
};

static struct {
	int rep; /* child: report pipe */
	int round, got;
	uint64_t first, last;
} KS;

static void kid_report(int kind, int round)
{
	struct rec r = {.kind = kind,
			.round = round,
			.first_ns = KS.first,
			.last_ns = KS.last,
			.cpu_s = self_cpu()};

	if (bench_write_full(KS.rep, &r, sizeof(r)))
		exit(1);
}

static void sub_text(struct engine *e, struct conn *c, char *msg, size_t len,
		     uint64_t t)
{
	char *m;
	int r;

	(void)len;
	if (!is_chat(msg))
		return; /* presence */
	m = message_of(msg);
	if (!m || m[0] != 'r')
		conn_fail(c, "unexpected chat: %.200s", msg);
	r = atoi(m + 1);
	if (r != KS.round)
		conn_fail(c, "round %d while awaiting %d", r, KS.round);
	if (c->last_round == r)
		conn_fail(c, "round %d delivered twice", r);
	c->last_round = r;
	if (!KS.got++)
		KS.first = t;
	KS.last = t;
	if (KS.got == e->n) {
		kid_report(REC_ROUND, r);
		KS.got = 0;
		KS.round++;
	}
}

static void kid_main(struct kid *kd, int rep, int ctl, const char *token);
static void recover_kid(struct kid *kd, int rep, int ctl, const char *token);

static void kid_main(struct kid *kd, int rep, int ctl, const char *token)
{
	struct engine e;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	int i;

	KS.rep = rep;
	engine_init(&e, kd->share);
	e.on_text = sub_text;
	snprintf(e.room_fmt, sizeof(e.room_fmt), "bench-fan");
	for (i = 0; i < kd->share; i++) {
		struct conn *c = &e.c[i];
		int g = kd->first + i;

		c->role = R_SUB;
		c->url = &opt.sub[kd->node];
		c->token = token;
		c->last_round = -1;
		/* Per node, connections take the addresses in turn. */
		c->src = opt.src_first + (uint32_t)g % opt.src_addrs;
	}
	if (epoll_ctl(e.ep, EPOLL_CTL_ADD, ctl, &ev))
		die("epoll_ctl: %s", strerror(errno));
	setup_all(&e);
	kid_report(REC_READY, 0);
	for (;;) {
		if (poll_once(&e, 1000)) {
			char x;

			if (read(ctl, &x, 1) <= 0) { /* parent done */
				close_all(&e);
				exit(0);
			}
		}
	}
}

static struct kid kids[MAX_KIDS];
static int nkids;

/* Fork kids[0 .. nkids), each running body with its ends of two pipes
 * (reports to us, control from us) and token; the parent keeps the
 * other ends in kids[i].rep and kids[i].ctl. */
static void spawn_kids(void (*body)(struct kid *, int, int, const char *),
		       const char *token)
{
	int i, j;

	for (i = 0; i < nkids; i++) {
		int rp[2], cp[2];

		if (pipe(rp) || pipe(cp))
			die("pipe: %s", strerror(errno));
		kids[i].pid = fork();
		if (kids[i].pid < 0)
			die("fork: %s", strerror(errno));
		if (kids[i].pid == 0) {
			for (j = 0; j < i; j++) {
				close(kids[j].rep);
				close(kids[j].ctl);
			}
			close(rp[0]);
			close(cp[1]);
			body(&kids[i], rp[1], cp[0], token);
			exit(1);
		}
		close(rp[1]);
		close(cp[0]);
		kids[i].rep = rp[0];
		kids[i].ctl = cp[1];
	}
}

static void kill_kids(void)
{
	int i;

	for (i = 0; i < nkids; i++)
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
			kids[i].pid = 0;
		}
}

static void kid_rec(int i, struct rec *r, uint64_t deadline)
{
	if (bench_read_full(kids[i].rep, r, sizeof(*r), deadline)) {
		int e = errno;

		kill_kids();
		die("subscriber process %d: %s", i,
		    e == ETIMEDOUT ? "timed out"
		    : e		   ? strerror(e)
				   : "exited");
	}
	if (r->kind == REC_ERROR) {
		kill_kids();
		die("subscriber process %d failed", i);
	}
}

/* The publisher's own events (its copy of each message, pings), served
 * while waiting on the children. */
static void pub_text(struct engine *e, struct conn *c, char *msg, size_t len,
		     uint64_t t)
{
	(void)e;
	(void)len;
	(void)t;
	if (strstr(msg, "\"type\":\"error\""))
		conn_fail(c, "error: %.200s", msg);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double pct(uint64_t *v, int n, int p)
{
	int k = (p * n + 99) / 100;

	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return (double)v[k > 0 ? k - 1 : 0] / 1e3;
}

static int run_fanout(void)
{
	struct engine pub;
	struct cpu_snap a, b;
	char token[512], ptoken[512];
	int N = opt.subs, nodes = opt.nsub, i, j, r, R = opt.rounds;
	uint64_t t0, setup0, *last, *node_last, *node_first;
	double setup_s, kids_cpu0 = 0, kids_cpu1 = 0;
	struct rec rc;

	if (R < 1 || R + 1 > MAX_ROUNDS)
		die("--rounds from 1 to %d", MAX_ROUNDS - 1);
	bench_hs256_token(token, sizeof(token), opt.secret, "sub");
	bench_hs256_token(ptoken, sizeof(ptoken), opt.secret, "pub");
	/* Node n has subscribers [N*n/nodes, N*(n+1)/nodes), in processes of
	 * at most per_proc each. */
	for (j = 0; j < nodes; j++) {
		int lo = (int)((long)N * j / nodes);
		int hi = (int)((long)N * (j + 1) / nodes);
		int procs = (hi - lo + opt.per_proc - 1) / opt.per_proc;

		for (i = 0; i < procs; i++) {
			struct kid *kd = &kids[nkids];

			if (nkids == MAX_KIDS)
				die("more than %d subscriber processes",
				    MAX_KIDS);
			kd->node = j;
			kd->first = lo + (hi - lo) * i / procs;
			kd->share =
			    lo + (hi - lo) * (i + 1) / procs - kd->first;
			nkids++;
		}
	}
	fflush(stdout);
	fflush(stderr);
	setup0 = now_ns();
	spawn_kids(kid_main, token);
	for (i = 0; i < nkids; i++) {
		kid_rec(i, &rc, now_ns() + ns(SETUP_S));
		if (rc.kind != REC_READY) {
			kill_kids();
			die("subscriber process %d: record %d", i, rc.kind);
		}
		kids_cpu0 += rc.cpu_s;
	}
	setup_s = (double)(now_ns() - setup0) / 1e9;
	fprintf(stderr,
		"wsa-rooms-bench: %d subscribers on %d node(s), %d "
		"processes, set up in %.2f s\n",
		N, nodes, nkids, setup_s);
	/* The publisher, from 127.0.0.1 (the subscribers start at
	 * --src-first). */
	engine_init(&pub, 1);
	pub.on_text = pub_text;
	snprintf(pub.room_fmt, sizeof(pub.room_fmt), "bench-fan");
	pub.c[0].role = R_PUB;
	pub.c[0].url = &opt.pub;
	pub.c[0].token = ptoken;
	pub.c[0].src = 1;
	setup_all(&pub);
	serve_for(&pub, opt.settle);
	last =
	    calloc((size_t)(R + 1) * (1 + 2 * (size_t)nodes), sizeof(uint64_t));
	if (!last)
		die("out of memory");
	node_last = last + R + 1;
	node_first = node_last + (size_t)(R + 1) * nodes;
	snap(&a);
	/* Round 0 is a warm-up. */
	for (r = 0; r <= R; r++) {
		uint64_t worst = 0;

		t0 = now_ns();
		put_text(&pub, &pub.c[0],
			 "{\"type\":\"chat\",\"room\":\"bench-fan\","
			 "\"message\":\"r%d\"}",
			 r);
		flush(&pub, &pub.c[0]);
		for (i = 0; i < nkids; i++) {
			uint64_t deadline = now_ns() + ns(WAIT_S);

			/* Serve the publisher's socket meanwhile. */
			for (;;) {
				struct pollfd pfd = {.fd = kids[i].rep,
						     .events = POLLIN};

				if (poll(&pfd, 1, 0) > 0)
					break;
				if (now_ns() > deadline) {
					kill_kids();
					die("round %d: subscriber process %d "
					    "timed out",
					    r, i);
				}
				poll_once(&pub, 1);
			}
			kid_rec(i, &rc, deadline);
			if (rc.kind != REC_ROUND || rc.round != r) {
				kill_kids();
				die("subscriber process %d: record %d/%d, "
				    "expected round %d",
				    i, rc.kind, rc.round, r);
			}
			j = kids[i].node;
			if (rc.last_ns - t0 > node_last[r * nodes + j])
				node_last[r * nodes + j] = rc.last_ns - t0;
			if (!node_first[r * nodes + j] ||
			    rc.first_ns - t0 < node_first[r * nodes + j])
				node_first[r * nodes + j] = rc.first_ns - t0;
			if (rc.last_ns - t0 > worst)
				worst = rc.last_ns - t0;
			if (r == R)
				kids_cpu1 += rc.cpu_s;
		}
		last[r] = worst;
		serve_for(&pub, 0.02); /* the nodes' queues settle */
	}
	snap(&b);
	for (i = 0; i < nkids; i++)
		close(kids[i].ctl);
	for (i = 0; i < nkids; i++) {
		int st;

		if (waitpid(kids[i].pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st)) {
			kids[i].pid = 0;
			kill_kids();
			die("subscriber process %d exited badly", i);
		}
		kids[i].pid = 0;
	}
	close_all(&pub);
	{
		double med = pct(last + 1, R, 50), p90 = pct(last + 1, R, 90);
		double lo = (double)last[1] / 1e3, hi = (double)last[R] / 1e3;

		printf("{\"mode\":\"fanout\",\"subs\":%d,\"nodes\":%d,"
		       "\"processes\":%d,\"rounds\":%d,\"setup_s\":%.2f,"
		       "\"median_last_us\":%.1f,\"p90_last_us\":%.1f,"
		       "\"min_last_us\":%.1f,\"max_last_us\":%.1f,"
		       "\"deliveries_per_s\":%.0f,\"per_node\":[",
		       N, nodes, nkids, R, setup_s, med, p90, lo, hi,
		       med > 0 ? N / (med / 1e6) : 0.0);
		for (j = 0; j < nodes; j++) {
			uint64_t *l = calloc((size_t)R, sizeof(uint64_t));
			uint64_t *f = calloc((size_t)R, sizeof(uint64_t));

			if (!l || !f)
				die("out of memory");
			for (r = 1; r <= R; r++) {
				l[r - 1] = node_last[r * nodes + j];
				f[r - 1] = node_first[r * nodes + j];
			}
			printf("%s{\"node\":%d,\"median_first_us\":%.1f,"
			       "\"median_last_us\":%.1f}",
			       j ? "," : "", j + 1, pct(f, R, 50),
			       pct(l, R, 50));
			free(l);
			free(f);
		}
		printf("]");
		print_cpu(&a, &b, kids_cpu1 - kids_cpu0);
		printf("}\n");
		fprintf(stderr,
			"wsa-rooms-bench: fanout to %d on %d node(s): last "
			"median %.0f us, p90 %.0f us\n",
			N, nodes, med, p90);
	}
	return 0;
}

/* ------------------------------------------------------------- recover */

/* recover: --clients N in --rooms R (client g in room g % R, a user of its
 * own, "u<g>"), spread over child processes of at most --per-proc each,
 * join on the --join-url nodes in turn and note the room's position (its
 * offset and epoch, from "joined"). Then every socket is cut (a reset: no
 * close handshake, no leave), and R publishers on --pub-url, one a room,
 * publish --missed M chats each ("m<k>." and padding to --size bytes),
 * paced under chat-room's default rate of 20 a second (--pub-burst at
 * once, then --pub-rate a second); each waits for its own copy of all M.
 * Then all N connect again at once, to the --back-url nodes in turn (with
 * two nodes given in the other order, each client comes back on the other
 * node), log in and join from their position. A client has recovered
 * when it has had the M chats, in order, each once (offsets pos+1 to
 * pos+M, in the same epoch, messages m1 to mM), then "joined" with
 * recovered true at offset pos+M. The storm's time is from the first
 * reconnect (its connect()) until the last client has recovered; a
 * client's, from that same instant and from its own connect(). Whatever
 * comes for half a second after the last one (--settle) is checked too: a
 * chat then is one sent twice.
 *
 * --redis HOST:PORT: Redis' INFO before and after the storm (commands by
 * name, bytes in and out); --watch for its CPU and the nodes'.
 *
 * Presence events are counted, not checked: those after the reconnect,
 * a join of a user the client already knew was in (from its joined or an
 * earlier event), and the users of its joined it had been told of before
 * that joined (the same is said on stderr for the first joins). */

struct rslot {
	uint64_t start_ns, up_ns, chat_ns, done_ns;
	int32_t got, bad, joins, leaves, known_again, early_listed;
};

static int pos_of(const char *msg, uint64_t *off, char *epoch, size_t n)
{
	const char *o = strstr(msg, "\"offset\":");
	const char *e = strstr(msg, "\"epoch\":\""), *q;

	if (!o || !e)
		return -1;
	*off = strtoull(o + 9, NULL, 10);
	e += 9;
	q = strchr(e, '"');
	if (!q || (size_t)(q - e) >= n)
		return -1;
	memcpy(epoch, e, (size_t)(q - e));
	epoch[q - e] = 0;
	return 0;
}

/* A client's first failure is told, five a process at most. */
static void bad_one(struct conn *c, const char *why, const char *msg)
{
	static int told;

	if (!c->bad++ && told++ < 5)
		fprintf(stderr,
			"wsa-rooms-bench[%d]: client to %s: %s: %.200s\n",
			(int)getpid(), c->url->host, why, msg);
}

/* Client u<g>: mark g known; 1 when it already was. */
static int know(struct conn *c, const char *uid)
{
	char *end;
	unsigned long g;
	int was;

	if (uid[0] != 'u')
		return 0;
	g = strtoul(uid + 1, &end, 10);
	if (*end != '"' || g >= (unsigned long)opt.clients)
		return 0;
	was = c->known[g / 8] >> (g % 8) & 1;
	c->known[g / 8] |= (uint8_t)(1u << (g % 8));
	return was;
}

/* A presence event after the reconnect; a join of a user already in the
 * users of its joined (or announced before) is counted apart. */
static void count_presence(struct conn *c, const char *msg)
{
	const char *u = strstr(msg, "\"uid\":\"");

	if (strstr(msg, "\"event\":\"leave\"")) {
		c->leaves++;
		return;
	}
	c->joins++;
	if (u && know(c, u + 7))
		c->known_again++;
}

/* The users of a joined: every one known; those announced before it
 * counted. */
static void know_users(struct conn *c, const char *msg)
{
	const char *p = strstr(msg, "\"users\":[");

	if (!p)
		return;
	p += 9;
	while (*p == '"') {
		c->early_listed += know(c, p + 1);
		p = strchr(p + 1, '"'); /* its closing quote */
		if (!p || p[1] != ',')
			break;
		p += 2;
	}
}

/* The first join (and the publishers'): the room's position. */
static int first_setup(struct engine *e, struct conn *c, char *msg, uint64_t t)
{
	(void)e;
	(void)t;
	if (c->known && strstr(msg, "\"type\":\"presence\""))
		count_presence(c, msg);
	if (!strstr(msg, "\"type\":\"joined\""))
		return 0; /* auth, presence; an error fails in setup_text */
	if (c->known)
		know_users(c, msg);
	if (pos_of(msg, &c->pos, c->epoch, sizeof(c->epoch)))
		conn_fail(c,
			  "joined without a position (is --history on?): "
			  "%.200s",
			  msg);
	return 1;
}

/* One recovered chat: the next offset of the same epoch, the next
 * message. */
static void check_chat(struct conn *c, char *msg)
{
	uint64_t off;
	char ep[24], *m = message_of(msg), *end = NULL;
	unsigned long k = m && m[0] == 'm' ? strtoul(m + 1, &end, 10) : 0;

	if (pos_of(msg, &off, ep, sizeof(ep)) || strcmp(ep, c->epoch))
		bad_one(c, "a chat without the room's epoch", msg);
	else if (off != c->pos + (uint64_t)c->got + 1)
		bad_one(c, "a chat out of order or twice", msg);
	else if (k != c->got + 1 || !end || *end != '.')
		bad_one(c, "a chat with another message than its offset's",
			msg);
	c->got++;
}

/* The join from the position: the missed chats, then joined. */
static int back_setup(struct engine *e, struct conn *c, char *msg, uint64_t t)
{
	uint64_t off;
	char ep[24];

	(void)e;
	if (is_chat(msg)) {
		if (!c->got)
			c->chat_ns = t;
		check_chat(c, msg);
		return 0;
	}
	if (strstr(msg, "\"type\":\"presence\"")) {
		count_presence(c, msg);
		return 0;
	}
	if (!strstr(msg, "\"type\":\"joined\""))
		return 0;
	know_users(c, msg);
	if (!strstr(msg, "\"recovered\":true"))
		bad_one(c, "not recovered", msg);
	else if (pos_of(msg, &off, ep, sizeof(ep)) ||
		 off != c->pos + (uint64_t)opt.missed || strcmp(ep, c->epoch))
		bad_one(c, "joined at another position", msg);
	else if (c->got != (uint64_t)opt.missed)
		bad_one(c, "joined after another number of chats", msg);
	c->done_ns = t;
	return 1;
}

/* After joined: a chat is one sent twice (none is published then). */
static void after_text(struct engine *e, struct conn *c, char *msg, size_t len,
		       uint64_t t)
{
	(void)e;
	(void)len;
	(void)t;
	if (is_chat(msg))
		bad_one(c, "a chat after joined", msg);
	else if (strstr(msg, "\"type\":\"presence\""))
		count_presence(c, msg);
	else if (strstr(msg, "\"type\":\"error\""))
		bad_one(c, "an error", msg);
}

static void back_join(struct engine *e, struct conn *c)
{
	char room[64];

	room_name(e, c, room, sizeof(room));
	put_text(e, c,
		 "{\"type\":\"join\",\"room\":\"%s\",\"since\":{\"offset\":"
		 "%llu,\"epoch\":\"%s\"}}",
		 room, (unsigned long long)c->pos, c->epoch);
}

/* Serve events until the parent writes a byte: it, or 0 at the end of the
 * pipe. */
static char kid_wait(struct engine *e, int ctl)
{
	char x;

	for (;;)
		if (poll_once(e, 1000))
			return read(ctl, &x, 1) == 1 ? x : 0;
}

/* Every socket reset at once; the connections set up afresh later. */
static void cut_all(struct engine *e)
{
	long joins = 0, again = 0, early = 0;
	int i;

	for (i = 0; i < e->n; i++) {
		joins += e->c[i].joins;
		again += e->c[i].known_again;
		early += e->c[i].early_listed;
	}
	fprintf(stderr,
		"wsa-rooms-bench[%d]: before the cut: %ld presence joins, "
		"%ld of users already known; %ld users of joined announced "
		"before it\n",
		(int)getpid(), joins, again, early);
	close_all(e);
	for (i = 0; i < e->n; i++) {
		struct conn *c = &e->c[i];

		c->fd = -1;
		c->st = C_IDLE;
		c->in_len = c->out_len = 0;
		c->got = 0;
		c->joins = c->leaves = c->known_again = c->early_listed = 0;
		memset(c->known, 0, (size_t)opt.clients / 8 + 1);
	}
	e->started = e->inflight = e->ready = 0;
}

static void recover_kid(struct kid *kd, int rep, int ctl, const char *token)
{
	struct engine e;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	struct rslot *sl;
	uint64_t end;
	int i;

	(void)token; /* each client mints its own */
	KS.rep = rep;
	engine_init(&e, kd->share);
	e.on_text = after_text;
	e.on_setup = first_setup;
	snprintf(e.room_fmt, sizeof(e.room_fmt), "storm-%%d");
	for (i = 0; i < kd->share; i++) {
		struct conn *c = &e.c[i];
		int g = kd->first + i;
		char uid[32], *tok = malloc(512);

		if (!tok)
			die("out of memory");
		snprintf(uid, sizeof(uid), "u%d", g);
		bench_hs256_token(tok, 512, opt.secret, uid);
		c->token = tok;
		c->known = calloc((size_t)opt.clients / 8 + 1, 1);
		if (!c->known)
			die("out of memory");
		c->role = R_RECEIVER;
		c->room = g % opt.rooms;
		c->url = &opt.join[g % opt.njoin];
		c->src = opt.src_first + (uint32_t)g % opt.src_addrs;
	}
	if (epoll_ctl(e.ep, EPOLL_CTL_ADD, ctl, &ev))
		die("epoll_ctl: %s", strerror(errno));
	setup_all(&e);
	kid_report(REC_READY, 0);
	if (kid_wait(&e, ctl) != 'c')
		exit(0);
	cut_all(&e);
	kid_report(REC_CUT, 0);
	if (kid_wait(&e, ctl) != 'g')
		exit(0);
	/* All at once, to the other node. */
	e.on_setup = back_setup;
	e.put_join = back_join;
	e.max_inflight = e.n;
	for (i = 0; i < kd->share; i++)
		e.c[i].url = &opt.back[(kd->first + i) % opt.nback];
	start_more(&e);
	end = now_ns() + ns(SETUP_S);
	while (e.ready < e.n && now_ns() < end)
		poll_once(&e, 100);
	KS.first = UINT64_MAX;
	KS.last = 0;
	for (i = 0; i < e.n; i++) {
		if (e.c[i].start_ns < KS.first)
			KS.first = e.c[i].start_ns;
		if (e.c[i].done_ns > KS.last)
			KS.last = e.c[i].done_ns;
	}
	kid_report(REC_DONE, e.ready);
	/* Until the parent has them all and a moment more: late chats. */
	kid_wait(&e, ctl);
	sl = calloc((size_t)e.n, sizeof(*sl));
	if (!sl)
		die("out of memory");
	for (i = 0; i < e.n; i++) {
		struct conn *c = &e.c[i];

		sl[i].start_ns = c->start_ns;
		sl[i].done_ns = c->st == C_READY ? c->done_ns : 0;
		sl[i].got = (int32_t)c->got;
		sl[i].bad = c->bad;
		sl[i].up_ns = c->up_ns;
		sl[i].chat_ns = c->chat_ns;
		sl[i].joins = c->joins;
		sl[i].leaves = c->leaves;
		sl[i].known_again = c->known_again;
		sl[i].early_listed = c->early_listed;
	}
	if (bench_write_full(rep, sl, (size_t)e.n * sizeof(*sl)))
		exit(1);
	close_all(&e);
	exit(0);
}

/* The publishers' own copies: in order, one more each. */
static void pub_copy(struct engine *e, struct conn *c, char *msg, size_t len,
		     uint64_t t)
{
	(void)e;
	(void)len;
	(void)t;
	if (strstr(msg, "\"type\":\"error\""))
		conn_fail(c, "error: %.200s", msg);
	if (!is_chat(msg))
		return;
	check_chat(c, msg);
	if (c->bad)
		conn_fail(c, "its own copies out of order");
}

/* R publishers, one a room, M chats each; until each has its M copies. */
static void publish_missed(void)
{
	struct engine pub;
	int R = opt.rooms, i, M = opt.missed, left;
	uint64_t t0, gap = (uint64_t)(1e9 / opt.pub_rate), end;
	char pad[4096];
	size_t plen = (size_t)opt.size > 12 ? (size_t)opt.size - 12 : 1;

	memset(pad, 'x', plen);
	pad[plen] = 0;
	engine_init(&pub, R);
	pub.on_text = pub_copy;
	pub.on_setup = first_setup;
	snprintf(pub.room_fmt, sizeof(pub.room_fmt), "storm-%%d");
	for (i = 0; i < R; i++) {
		char uid[32], *tok = malloc(512);

		if (!tok)
			die("out of memory");
		snprintf(uid, sizeof(uid), "p%d", i);
		bench_hs256_token(tok, 512, opt.secret, uid);
		pub.c[i].token = tok;
		pub.c[i].role = R_PUB;
		pub.c[i].room = i;
		pub.c[i].url = &opt.pub;
		pub.c[i].src = 1;
	}
	setup_all(&pub);
	t0 = now_ns();
	end = t0 + ns(WAIT_S + M / opt.pub_rate);
	do {
		uint64_t t = now_ns();

		if (t > end)
			die("publishers: their copies not back in time");
		left = 0;
		for (i = 0; i < R; i++) {
			struct conn *p = &pub.c[i];
			char room[64];

			room_name(&pub, p, room, sizeof(room));
			while (
			    p->next < (uint64_t)M &&
			    (p->next < (uint64_t)opt.pub_burst ||
			     t >= t0 + (p->next + 1 - (uint64_t)opt.pub_burst) *
					   gap)) {
				p->next++;
				put_text(&pub, p,
					 "{\"type\":\"chat\",\"room\":\"%s\","
					 "\"message\":\"m%llu.%s\"}",
					 room, (unsigned long long)p->next,
					 pad);
			}
			if (p->out_len)
				flush(&pub, p);
			left += M - (int)p->got;
		}
		if (left)
			poll_once(&pub, 5);
	} while (left);
	fprintf(stderr,
		"wsa-rooms-bench: %d chats in each of %d rooms published in "
		"%.2f s\n",
		M, R, (double)(now_ns() - t0) / 1e9);
	close_all(&pub);
	close(pub.ep);
	for (i = 0; i < R; i++) {
		free(pub.c[i].in);
		free(pub.c[i].out);
		free((char *)pub.c[i].token);
	}
	free(pub.c);
}

/* Redis' INFO: commands by name, bytes in and out. */
#define MAX_CMDS 64
struct rinfo {
	char name[MAX_CMDS][32];
	long long calls[MAX_CMDS], usec[MAX_CMDS];
	int n;
	long long total, net_in, net_out;
};

static void redis_info(struct rinfo *ri)
{
	static char buf[1 << 17];
	const char req[] = "*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n";
	uint64_t end = now_ns() + ns(WAIT_S);
	size_t got = 0;
	long len = -1;
	char *p, *line;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(ri, 0, sizeof(*ri));
	if (fd < 0 ||
	    connect(fd, (struct sockaddr *)&opt.redis, sizeof(opt.redis)) ||
	    bench_write_full(fd, req, sizeof(req) - 1))
		die("redis: %s", strerror(errno));
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (len < 0 && (p = memchr(buf, '\n', got)))
			len = strtol(buf + 1, NULL, 10) + (p + 1 - buf) + 2;
		if (len > 0 && got >= (size_t)len)
			break;
		if (now_ns() > end || got == sizeof(buf) - 1)
			die("redis: no whole INFO reply");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			die("redis: read: %s", r ? strerror(errno) : "closed");
		got += (size_t)r;
	}
	close(fd);
	buf[got] = 0;
	for (line = strtok(buf, "\r\n"); line; line = strtok(NULL, "\r\n")) {
		long long a, b;
		char name[32];

		if (sscanf(line, "cmdstat_%31[^:]:calls=%lld,usec=%lld", name,
			   &a, &b) == 3 &&
		    ri->n < MAX_CMDS) {
			strcpy(ri->name[ri->n], name);
			ri->calls[ri->n] = a;
			ri->usec[ri->n++] = b;
		}
		sscanf(line, "total_commands_processed:%lld", &ri->total);
		sscanf(line, "total_net_input_bytes:%lld", &ri->net_in);
		sscanf(line, "total_net_output_bytes:%lld", &ri->net_out);
	}
}

/* ,"redis":{...}: what changed from a to b, but the INFO of a itself. */
static void print_redis(const struct rinfo *a, const struct rinfo *b)
{
	int i, j, k = 0;

	printf(",\"redis\":{\"commands\":%lld,\"net_in_bytes\":%lld,"
	       "\"net_out_bytes\":%lld,\"by_command\":{",
	       b->total - a->total - 1, b->net_in - a->net_in,
	       b->net_out - a->net_out);
	for (i = 0; i < b->n; i++) {
		long long c0 = 0, u0 = 0;

		if (!strcmp(b->name[i], "info"))
			continue;
		for (j = 0; j < a->n; j++)
			if (!strcmp(a->name[j], b->name[i])) {
				c0 = a->calls[j];
				u0 = a->usec[j];
			}
		if (b->calls[i] == c0)
			continue;
		printf("%s\"%s\":{\"calls\":%lld,\"usec\":%lld}",
		       k++ ? "," : "", b->name[i], b->calls[i] - c0,
		       b->usec[i] - u0);
	}
	printf("}}");
}

/* ,"NAME_ms":{min, p50, p99, max} of v (ns; sorted in place). */
static void print_spread(const char *name, uint64_t *v, int n)
{
	printf(",\"%s_ms\":{\"min\":%.2f,\"p50\":%.2f,\"p99\":%.2f,"
	       "\"max\":%.2f}",
	       name, pct(v, n, 0) / 1e3, pct(v, n, 50) / 1e3,
	       pct(v, n, 99) / 1e3, pct(v, n, 100) / 1e3);
}

static void to_kids(char x)
{
	int i;

	for (i = 0; i < nkids; i++)
		if (bench_write_full(kids[i].ctl, &x, 1)) {
			kill_kids();
			die("subscriber process %d: gone", i);
		}
}

static void kids_rec(int kind, double *cpu, uint64_t *first, uint64_t *last)
{
	struct rec rc;
	int i;

	for (i = 0; i < nkids; i++) {
		kid_rec(i, &rc, now_ns() + ns(SETUP_S));
		if (rc.kind != kind) {
			kill_kids();
			die("client process %d: record %d, not %d", i, rc.kind,
			    kind);
		}
		if (cpu)
			*cpu += rc.cpu_s;
		if (first && rc.first_ns < *first)
			*first = rc.first_ns;
		if (last && rc.last_ns > *last)
			*last = rc.last_ns;
	}
}

static int run_recover(void)
{
	int N = opt.clients, i, procs;
	struct cpu_snap a, b;
	struct rinfo ra, rb;
	struct rslot *sl;
	uint64_t first = UINT64_MAX, last = 0, last_start = 0, *v, t;
	double cpu0 = 0, cpu1 = 0, setup_s;
	long exact = 0, bad = 0, unfinished = 0, joins = 0, leaves = 0,
	     again = 0, early = 0;

	procs = (N + opt.per_proc - 1) / opt.per_proc;
	if (procs > MAX_KIDS)
		die("more than %d client processes", MAX_KIDS);
	for (i = 0; i < procs; i++) {
		kids[i].first = (int)((long)N * i / procs);
		kids[i].share =
		    (int)((long)N * (i + 1) / procs) - kids[i].first;
	}
	nkids = procs;
	fflush(stdout);
	fflush(stderr);
	t = now_ns();
	spawn_kids(recover_kid, NULL);
	kids_rec(REC_READY, NULL, NULL, NULL);
	setup_s = (double)(now_ns() - t) / 1e9;
	fprintf(stderr,
		"wsa-rooms-bench: %d clients in %d rooms joined (%d "
		"processes) in %.2f s\n",
		N, opt.rooms, nkids, setup_s);
	to_kids('c');
	kids_rec(REC_CUT, &cpu0, NULL, NULL);
	publish_missed();
	if (opt.redis.sin_port)
		redis_info(&ra);
	snap(&a);
	to_kids('g');
	kids_rec(REC_DONE, &cpu1, &first, &last);
	snap(&b);
	if (opt.redis.sin_port)
		redis_info(&rb);
	poll(NULL, 0, (int)(opt.settle * 1000));
	to_kids('q');
	sl = calloc((size_t)N, sizeof(*sl));
	v = calloc((size_t)N, sizeof(uint64_t));
	if (!sl || !v)
		die("out of memory");
	for (i = 0; i < nkids; i++) {
		int st;

		if (bench_read_full(kids[i].rep, sl + kids[i].first,
				    (size_t)kids[i].share * sizeof(*sl),
				    (int64_t)(now_ns() + ns(WAIT_S)))) {
			kill_kids();
			die("client process %d: no results", i);
		}
		if (waitpid(kids[i].pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st)) {
			kids[i].pid = 0;
			kill_kids();
			die("client process %d exited badly", i);
		}
		kids[i].pid = 0;
	}
	for (i = 0; i < N; i++) {
		if (!sl[i].done_ns) {
			unfinished++;
			continue;
		}
		if (sl[i].start_ns > last_start)
			last_start = sl[i].start_ns;
		bad += sl[i].bad > 0;
		exact += !sl[i].bad && sl[i].got == opt.missed;
		joins += sl[i].joins;
		leaves += sl[i].leaves;
		again += sl[i].known_again;
		early += sl[i].early_listed;
	}
	printf("{\"mode\":\"recover\",\"clients\":%d,\"rooms\":%d,"
	       "\"missed\":%d,\"size\":%d,\"processes\":%d,"
	       "\"join_nodes\":%d,\"back_nodes\":%d,\"src_addrs\":%u,"
	       "\"setup_s\":%.3f,\"storm_s\":%.4f,\"connects_spread_ms\":%.2f,"
	       "\"recovered_exactly\":%ld,\"bad\":%ld,\"unfinished\":%ld,"
	       "\"chats_recovered\":%lld,\"presence_joins\":%ld,"
	       "\"presence_leaves\":%ld,\"presence_joins_known\":%ld,"
	       "\"presence_before_joined_listed\":%ld",
	       N, opt.rooms, opt.missed, opt.size, nkids, opt.njoin, opt.nback,
	       opt.src_addrs, setup_s,
	       last > first ? (double)(last - first) / 1e9 : -1.0,
	       (double)(last_start - first) / 1e6, exact, bad, unfinished,
	       (long long)exact * opt.missed, joins, leaves, again, early);
	/* Each client's instants from the first reconnect: upgraded, first
	 * recovered chat, recovered; and recovered from its own connect(). */
	for (i = 0; i < N; i++)
		v[i] = sl[i].up_ns ? sl[i].up_ns - first : UINT64_MAX;
	print_spread("upgraded", v, N);
	for (i = 0; i < N; i++)
		v[i] = sl[i].chat_ns ? sl[i].chat_ns - first : UINT64_MAX;
	print_spread("first_chat", v, N);
	for (i = 0; i < N; i++)
		v[i] =
		    sl[i].done_ns ? sl[i].done_ns - sl[i].start_ns : UINT64_MAX;
	print_spread("own", v, N);
	for (i = 0; i < N; i++)
		v[i] = sl[i].done_ns ? sl[i].done_ns - first : UINT64_MAX;
	print_spread("recovered", v, N);
	print_cpu(&a, &b, cpu1 - cpu0);
	if (opt.redis.sin_port)
		print_redis(&ra, &rb);
	printf("}\n");
	fprintf(stderr,
		"wsa-rooms-bench: recover: %d clients, %d missed each: all "
		"recovered in %.3f s (p50 %.1f ms, p99 %.1f ms); exactly %ld, "
		"bad %ld, unfinished %ld\n",
		N, opt.missed, (double)(last - first) / 1e9,
		pct(v, N, 50) / 1e3, pct(v, N, 99) / 1e3, exact, bad,
		unfinished);
	free(sl);
	free(v);
	return exact == N ? 0 : 1;
}

/* ---------------------------------------------------------------- main */

static int usage(void)
{
	fprintf(stderr,
		"usage: wsa-rooms-bench --secret S [--watch NAME:PID]...\n"
		"         --mode deliver --send-url URL --recv-url URL "
		"[--rooms R] [--receivers K]\n"
		"           (--rate M | --window W) [--size B] [--duration S] "
		"[--warmup S] [--drain S]\n"
		"           [--tap REDIS_HOST:PORT --tap-pattern PATTERN] "
		"[--distinct-uids 0|1]\n"
		"       | --mode fanout --pub-url URL --sub-url URL... "
		"[--subs N] [--per-proc P] [--rounds R]\n"
		"       | --mode recover --pub-url URL --join-url URL... "
		"--back-url URL... [--clients N]\n"
		"         [--rooms R] [--missed M] [--pub-rate M] "
		"[--pub-burst B] [--size B] [--per-proc P]\n"
		"         [--redis HOST:PORT]\n"
		"         [--src-first A] [--src-addrs N] [--settle S]\n");
	return 1;
}

int main(int argc, char **argv)
{
	int i, have_send = 0, have_recv = 0, have_pub = 0, have_rooms = 0;
	struct rlimit rl;

	opt.secret = getenv("WSA_JWT_SECRET");
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--mode")) {
			if (!strcmp(v, "deliver"))
				opt.mode = M_DELIVER;
			else if (!strcmp(v, "fanout"))
				opt.mode = M_FANOUT;
			else if (!strcmp(v, "recover"))
				opt.mode = M_RECOVER;
			else
				return usage();
		} else if (!strcmp(a, "--secret")) {
			opt.secret = v;
		} else if (!strcmp(a, "--send-url")) {
			if (parse_url(v, &opt.send))
				return usage();
			have_send = 1;
		} else if (!strcmp(a, "--recv-url")) {
			if (parse_url(v, &opt.recv))
				return usage();
			have_recv = 1;
		} else if (!strcmp(a, "--pub-url")) {
			if (parse_url(v, &opt.pub))
				return usage();
			have_pub = 1;
		} else if (!strcmp(a, "--sub-url")) {
			if (opt.nsub == MAX_NODES ||
			    parse_url(v, &opt.sub[opt.nsub++]))
				return usage();
		} else if (!strcmp(a, "--rooms")) {
			opt.rooms = atoi(v);
			have_rooms = 1;
		} else if (!strcmp(a, "--receivers")) {
			opt.receivers = atoi(v);
		} else if (!strcmp(a, "--rate")) {
			opt.rate = atof(v);
		} else if (!strcmp(a, "--window")) {
			opt.window = atoi(v);
		} else if (!strcmp(a, "--size")) {
			opt.size = atoi(v);
		} else if (!strcmp(a, "--duration")) {
			opt.duration = atof(v);
		} else if (!strcmp(a, "--warmup")) {
			opt.warmup = atof(v);
		} else if (!strcmp(a, "--drain")) {
			opt.drain = atof(v);
		} else if (!strcmp(a, "--settle")) {
			opt.settle = atof(v);
		} else if (!strcmp(a, "--subs")) {
			opt.subs = atoi(v);
		} else if (!strcmp(a, "--per-proc")) {
			opt.per_proc = atoi(v);
		} else if (!strcmp(a, "--rounds")) {
			opt.rounds = atoi(v);
		} else if (!strcmp(a, "--src-first")) {
			opt.src_first = (unsigned)atoi(v);
		} else if (!strcmp(a, "--src-addrs")) {
			opt.src_addrs = (unsigned)atoi(v);
		} else if (!strcmp(a, "--tap")) {
			if (parse_hostport(v, &opt.tap))
				return usage();
		} else if (!strcmp(a, "--redis")) {
			if (parse_hostport(v, &opt.redis))
				return usage();
		} else if (!strcmp(a, "--join-url")) {
			if (opt.njoin == MAX_NODES ||
			    parse_url(v, &opt.join[opt.njoin++]))
				return usage();
		} else if (!strcmp(a, "--back-url")) {
			if (opt.nback == MAX_NODES ||
			    parse_url(v, &opt.back[opt.nback++]))
				return usage();
		} else if (!strcmp(a, "--clients")) {
			opt.clients = atoi(v);
		} else if (!strcmp(a, "--missed")) {
			opt.missed = atoi(v);
		} else if (!strcmp(a, "--pub-rate")) {
			opt.pub_rate = atof(v);
		} else if (!strcmp(a, "--pub-burst")) {
			opt.pub_burst = atoi(v);
		} else if (!strcmp(a, "--distinct-uids")) {
			opt.distinct_uids = atoi(v);
		} else if (!strcmp(a, "--tap-pattern")) {
			opt.tap_pattern = v;
		} else if (!strcmp(a, "--watch")) {
			const char *colon = strchr(v, ':');

			if (!colon || opt.nwatch == MAX_WATCH ||
			    colon - v >= 32)
				return usage();
			memcpy(opt.watch[opt.nwatch].name, v,
			       (size_t)(colon - v));
			opt.watch[opt.nwatch].pid = atoi(colon + 1);
			opt.nwatch++;
		} else {
			return usage();
		}
	}
	if (!opt.secret || opt.src_addrs < 1 || opt.src_first < 2 ||
	    opt.src_first + opt.src_addrs > 255 || opt.duration <= 0 ||
	    opt.warmup < 0)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!opt.tap_pattern != !opt.tap.sin_port)
		return usage();
	if (opt.mode == M_DELIVER) {
		if (!have_send || !have_recv || opt.rooms < 1 ||
		    opt.receivers < 1 || (opt.rate > 0) == (opt.window > 0))
			return usage();
		if ((rlim_t)(opt.rooms * (opt.receivers + 1) + 50) >
		    rl.rlim_cur)
			die("%d connections need more than %lu descriptors",
			    opt.rooms * (opt.receivers + 1),
			    (unsigned long)rl.rlim_cur);
		return run_deliver();
	}
	if (opt.mode == M_RECOVER) {
		if (!have_rooms)
			opt.rooms = 10; /* of 100 each, by default */
		if (!have_pub || !opt.njoin || !opt.nback || opt.clients < 1 ||
		    opt.rooms < 1 || opt.missed < 1 || opt.pub_rate <= 0 ||
		    opt.pub_burst < 0 || opt.size < 16 || opt.size > 4000 ||
		    opt.per_proc < 1 || (rlim_t)opt.per_proc + 50 > rl.rlim_cur)
			return usage();
		return run_recover();
	}
	if (!have_pub || !opt.nsub || opt.subs < 1 || opt.per_proc < 1 ||
	    (rlim_t)opt.per_proc + 50 > rl.rlim_cur)
		return usage();
	return run_fanout();
}
