/* wsa-fastecho: the fastest WebSocket echo peer we could write, to show
 * that wsa-loadgen outruns any real server it is pointed at.
 *
 * One thread, epoll (edge-triggered), no JSON, no auth: it answers the
 * upgrade, unmasks each client frame and echoes it as a server frame; all
 * replies to what one read brought are batched into one send().  Pings are
 * answered, a close is echoed and the connection closed.
 *
 * Two options make it a harsher peer, to test a client's framing:
 * --fragment N splits each echo into N-byte fragments with a ping between
 * every two of them (the pongs are checked), and --chunk N writes at most
 * N bytes per send() and per loop turn, so frames reach the client cut
 * into pieces.  It prints its URL on stdout, then serves until SIGTERM or
 * SIGINT, and prints what it saw on stderr; it exits 1 if a client broke
 * the protocol. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws.h"

#define MAX_EVENTS   512
#define SCRATCH_SIZE (256u << 10)
#define READ_ROOM    16384
#define MAX_FRAME    (64u << 20)
#define SLOT_LISTEN  (-1)
#define SLOT_SIG     (-2)

struct fe_conn {
	int fd;
	uint8_t open;	 /* upgraded */
	uint8_t closing; /* close the socket once the output is out */
	uint8_t dribbling;
	uint8_t *rbuf;
	uint32_t rlen, rcap;
	uint8_t *wbuf;
	uint32_t woff, wlen, wcap;
	uint32_t pings, pongs; /* sent, and answered correctly */
};

struct fe {
	int ep, lfd, sig;
	size_t fragment, chunk;
	struct fe_conn **conns; /* by descriptor */
	size_t nconns;
	int listen_off; /* out of descriptors: not accepting for now */
	int *dribble;	/* --chunk: descriptors with output left */
	size_t ndribble;
	uint8_t *scratch;
	unsigned long long accepted, messages, pings, pongs, errors;
};

/* Appends a server frame (unmasked) to the connection's output. */
static void put_frame(struct fe_conn *c, unsigned fin_op, const uint8_t *p,
		      size_t n)
{
	ws_reserve(&c->wbuf, &c->wcap, c->wlen + WS_MAX_HEADER + n);
	c->wlen += (uint32_t)ws_header(c->wbuf + c->wlen, fin_op, n, NULL);
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += (uint32_t)n;
}

static void fe_listen_on(struct fe *fe, int on)
{
	struct epoll_event ev;

	ev.events = EPOLLIN;
	ev.data.fd = SLOT_LISTEN;
	epoll_ctl(fe->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fe->lfd, &ev);
	fe->listen_off = !on;
}

static void fe_close(struct fe *fe, struct fe_conn *c)
{
	if (fe->listen_off)
		fe_listen_on(fe, 1);
	fe->conns[c->fd] = NULL;
	close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

/* Sends what is queued: everything, or one chunk with --chunk (the rest
 * goes on later loop turns).  Returns -1 when the connection is gone. */
static int fe_flush(struct fe *fe, struct fe_conn *c)
{
	size_t n;
	ssize_t w;

	while (c->woff < c->wlen) {
		n = c->wlen - c->woff;
		if (fe->chunk && n > fe->chunk)
			n = fe->chunk;
		w = send(c->fd, c->wbuf + c->woff, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			break;
		c->woff += (uint32_t)w;
		if (fe->chunk && c->woff < c->wlen) {
			if (!c->dribbling)
				fe->dribble[fe->ndribble++] = c->fd;
			c->dribbling = 1;
			return 0;
		}
	}
	if (c->woff < c->wlen || c->closing) {
		fe_close(fe, c);
		return -1;
	}
	c->woff = c->wlen = 0;
	return 0;
}

/* Echoes one data frame, cut into --fragment pieces with pings between. */
static void fe_echo(struct fe *fe, struct fe_conn *c, const struct ws_frame *f,
		    const uint8_t *p)
{
	size_t off = 0, n = f->len, piece;
	unsigned op = f->opcode;
	uint32_t id;

	fe->messages += f->fin;
	if (!fe->fragment || f->opcode == WS_OP_CONT || !f->fin ||
	    n <= fe->fragment) {
		put_frame(c, (f->fin ? WS_FIN : 0) | op, p, n);
		return;
	}
	for (; off < n; off += piece, op = WS_OP_CONT) {
		piece = n - off < fe->fragment ? n - off : fe->fragment;
		if (off) {
			id = c->pings++;
			put_frame(c, WS_FIN | WS_OP_PING, (uint8_t *)&id, 4);
			fe->pings++;
		}
		put_frame(c, (off + piece == n ? WS_FIN : 0) | op, p + off,
			  piece);
	}
}

/* A pong must answer our pings in order, with the same payload. */
static void fe_pong(struct fe *fe, struct fe_conn *c, const uint8_t *p,
		    size_t n)
{
	uint32_t id;

	if (n == 4 && (memcpy(&id, p, 4), id == c->pongs)) {
		c->pongs++;
		fe->pongs++;
		return;
	}
	fe->errors++;
	fputs("wsa-fastecho: a pong that answers no ping\n", stderr);
}

static void fe_frame(struct fe *fe, struct fe_conn *c, const struct ws_frame *f,
		     uint8_t *p)
{
	ws_mask(p, f->len, f->mask, 0);
	switch (f->opcode) {
	case WS_OP_PING:
		put_frame(c, WS_FIN | WS_OP_PONG, p, f->len);
		break;
	case WS_OP_PONG:
		fe_pong(fe, c, p, f->len);
		break;
	case WS_OP_CLOSE:
		put_frame(c, WS_FIN | WS_OP_CLOSE, p, f->len >= 2 ? 2 : 0);
		c->closing = 1;
		break;
	default:
		fe_echo(fe, c, f, p);
	}
}

static long fe_upgrade(struct fe_conn *c, const uint8_t *p, size_t n)
{
	const char *key;
	size_t key_len;
	char accept[WS_ACCEPT_LEN + 1], head[160];
	long h = ws_parse_request((const char *)p, n, &key, &key_len);
	int len;

	if (h <= 0)
		return h;
	ws_accept(key, key_len, accept);
	len = snprintf(head, sizeof(head),
		       "HTTP/1.1 101 Switching Protocols\r\n"
		       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Accept: %s\r\n\r\n",
		       accept);
	ws_reserve(&c->wbuf, &c->wcap, c->wlen + (size_t)len);
	memcpy(c->wbuf + c->wlen, head, (size_t)len);
	c->wlen += (uint32_t)len;
	c->open = 1;
	return h;
}

/* Handles p[0..n); returns the bytes used, or -1 on a protocol error. */
static long fe_input(struct fe *fe, struct fe_conn *c, uint8_t *p, size_t n)
{
	struct ws_frame f;
	size_t off = 0;
	long h;
	int r;

	if (!c->open) {
		h = fe_upgrade(c, p, n);
		if (h <= 0)
			return h;
		off = (size_t)h;
	}
	while (off < n && !c->closing) {
		r = ws_parse(p + off, n - off, &f);
		if (r == 0 || (r > 0 && f.masked && f.len <= MAX_FRAME &&
			       f.hdr + f.len > n - off))
			break;
		if (r < 0 || !f.masked || f.len > MAX_FRAME)
			return -1;
		fe_frame(fe, c, &f, p + off + f.hdr);
		off += f.hdr + f.len;
	}
	return (long)off;
}

/* Reads until drained (a short read, unless the peer hung up), then
 * sends all the replies at once. */
static void fe_read(struct fe *fe, struct fe_conn *c, uint32_t events)
{
	uint8_t *buf;
	size_t cap, have;
	ssize_t n;
	long used;

	for (;;) {
		if (c->rlen)
			ws_reserve(&c->rbuf, &c->rcap, c->rlen + READ_ROOM);
		buf = c->rlen ? c->rbuf + c->rlen : fe->scratch;
		cap = c->rlen ? c->rcap - c->rlen : SCRATCH_SIZE;
		n = recv(c->fd, buf, cap, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->closing = 1;
			break;
		}
		have = (size_t)n + c->rlen;
		buf = c->rlen ? c->rbuf : buf;
		used = fe_input(fe, c, buf, have);
		if (used < 0) {
			fe->errors++;
			fputs("wsa-fastecho: bad frame from a client\n",
			      stderr);
			c->closing = 1;
			c->wlen = c->woff = 0;
			break;
		}
		ws_keep(&c->rbuf, &c->rcap, &c->rlen, buf, have, (size_t)used,
			READ_ROOM);
		if (c->closing ||
		    ((size_t)n < cap && !(events & (EPOLLRDHUP | EPOLLHUP))))
			break;
	}
	if (!c->dribbling)
		fe_flush(fe, c);
}

static void fe_accept(struct fe *fe)
{
	struct epoll_event ev;
	struct fe_conn *c;
	int fd, one = 1;

	while ((fd = accept4(fe->lfd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if ((size_t)fd >= fe->nconns) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		fe->conns[fd] = c;
		fe->accepted++;
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.fd = fd;
		epoll_ctl(fe->ep, EPOLL_CTL_ADD, fd, &ev);
	}
	/* Out of descriptors, the listening socket stays readable: stop
	 * watching it until a connection closes, or we would spin. */
	if (errno == EMFILE || errno == ENFILE)
		fe_listen_on(fe, 0);
}

/* --chunk: one more piece for each connection that has output left. */
static void fe_dribble(struct fe *fe)
{
	size_t i, n = fe->ndribble;
	struct fe_conn *c;

	fe->ndribble = 0;
	for (i = 0; i < n; i++) {
		c = fe->conns[fe->dribble[i]];
		if (!c || !c->dribbling)
			continue;
		c->dribbling = 0;
		fe_flush(fe, c);
	}
}

static int fe_listen(struct fe *fe, const char *host, int port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	fe->lfd =
	    socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fe->lfd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	setsockopt(fe->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fe->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fe->lfd, 4096) ||
	    getsockname(fe->lfd, (struct sockaddr *)&a, &len))
		return -1;
	printf("ws://%s:%d/\n", host, ntohs(a.sin_port));
	fflush(stdout);
	return 0;
}

static int fe_setup(struct fe *fe)
{
	struct epoll_event ev;
	struct rlimit rl;
	sigset_t set;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	fe->nconns = (size_t)rl.rlim_cur;
	fe->conns = calloc(fe->nconns, sizeof(*fe->conns));
	fe->dribble = calloc(fe->nconns, sizeof(*fe->dribble));
	fe->scratch = malloc(SCRATCH_SIZE);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	fe->ep = epoll_create1(EPOLL_CLOEXEC);
	fe->sig = signalfd(-1, &set, SFD_CLOEXEC);
	if (!fe->conns || !fe->dribble || !fe->scratch || fe->ep < 0 ||
	    fe->sig < 0)
		return -1;
	fe_listen_on(fe, 1);
	ev.events = EPOLLIN;
	ev.data.fd = SLOT_SIG;
	return epoll_ctl(fe->ep, EPOLL_CTL_ADD, fe->sig, &ev);
}

static void fe_event(struct fe *fe, const struct epoll_event *ev)
{
	struct fe_conn *c;

	if (ev->data.fd == SLOT_LISTEN) {
		fe_accept(fe);
		return;
	}
	c = fe->conns[ev->data.fd];
	if (!c)
		return;
	if ((ev->events & EPOLLOUT) && c->woff < c->wlen && !c->dribbling &&
	    fe_flush(fe, c))
		return;
	if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		fe_read(fe, c, ev->events);
}

static void fe_run(struct fe *fe)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i;

	for (;;) {
		n = epoll_wait(fe->ep, ev, MAX_EVENTS, fe->ndribble ? 0 : -1);
		for (i = 0; i < n; i++) {
			if (ev[i].data.fd == SLOT_SIG)
				return;
			fe_event(fe, &ev[i]);
		}
		if (fe->ndribble)
			fe_dribble(fe);
	}
}

static void fe_report(struct fe *fe)
{
	struct rusage ru;
	size_t i;

	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr,
		"wsa-fastecho: %llu connections, %llu messages echoed, %llu "
		"pings, %llu pongs, %llu errors, CPU %.2f s\n",
		fe->accepted, fe->messages, fe->pings, fe->pongs, fe->errors,
		(double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	for (i = 0; i < fe->nconns; i++)
		if (fe->conns[i])
			fe_close(fe, fe->conns[i]);
	free(fe->conns);
	free(fe->dribble);
	free(fe->scratch);
}

static const struct option longopts[] = {
    {"host", 1, NULL, 'h'},  {"port", 1, NULL, 'p'}, {"fragment", 1, NULL, 'f'},
    {"chunk", 1, NULL, 'c'}, {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	static struct fe fe;
	const char *host = "127.0.0.1";
	int port = 0, opt;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'h')
			host = optarg;
		else if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'f')
			fe.fragment = (size_t)atol(optarg);
		else if (opt == 'c')
			fe.chunk = (size_t)atol(optarg);
		else {
			fputs("usage: wsa-fastecho [--host A] [--port P] "
			      "[--fragment N] [--chunk N]\n",
			      stderr);
			return 2;
		}
	}
	if (fe_listen(&fe, host, port) || fe_setup(&fe)) {
		perror("wsa-fastecho");
		return 2;
	}
	fe_run(&fe);
	fe_report(&fe);
	return fe.errors ? 1 : 0;
}
