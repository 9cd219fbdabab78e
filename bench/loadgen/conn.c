/* One client connection: non-blocking connect, the upgrade, the login, and
 * the frames after it (server frames parsed incrementally, fragmented
 * messages reassembled, pings answered, close answered). */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* A server message longer than this fails the connection, so a broken
 * server cannot make the generator exhaust memory. */
#define MAX_MESSAGE (64u << 20)
/* Room kept free in a connection's read buffer for one recv(). */
#define READ_ROOM 16384
/* A flood connection's send buffer (the kernel doubles it). */
#define FLOOD_SNDBUF (32 << 10)
#define LOGIN_HEAD   "{\"type\":\"login\",\"token\":\""
#define AUTH_HEAD    "{\"type\":\"auth\""

void conn_init(struct conn *c, uint32_t idx)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->idx = idx;
}

void conn_trim(struct conn *c)
{
	if (c->wlen == 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		c->wcap = 0;
	}
	if (c->rlen == 0) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

void conn_free(struct conn *c)
{
	free(c->rbuf);
	free(c->mbuf);
	free(c->wbuf);
}

/* Every socket is closed with SO_LINGER 0 (an RST instead of a FIN): a
 * connect-mode run opens thousands of connections a second, and each
 * normal close would leave a TIME_WAIT entry holding a source port for a
 * minute.  The RST is sent only after the close handshake (or after a
 * failure), so the server has already seen the WebSocket close. */
void conn_release(struct engine *e, struct conn *c, int reset)
{
	struct linger lin = {1, 0};

	(void)e;
	if (c->fd >= 0) {
		if (reset)
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin,
				   sizeof(lin));
		close(c->fd); /* also leaves the epoll set */
	}
	c->fd = -1;
	c->gen++;
	c->state = CS_FREE;
	c->rlen = c->mlen = c->woff = c->wlen = 0;
	c->frag_op = c->want_out = c->peer_closed = 0;
}

void conn_fail(struct engine *e, struct conn *c, enum lg_fail why,
	       const char *detail)
{
	enum conn_state was = (enum conn_state)c->state;

	conn_release(e, c, 1);
	eng_ended(e, c, was, why, detail);
}

/* The close handshake we started is over (close frame or EOF back). */
static void conn_done(struct engine *e, struct conn *c)
{
	conn_release(e, c, 1);
	eng_ended(e, c, CS_CLOSING, LG_F_COUNT, NULL);
}

uint8_t *conn_frame_begin(struct conn *c, unsigned fin_op, size_t len,
			  struct lg_rng *rng)
{
	uint32_t m = (uint32_t)lg_rng_next(rng);
	uint8_t *p;
	size_t h;

	ws_reserve(&c->wbuf, &c->wcap, (size_t)c->wlen + WS_MAX_HEADER + len);
	p = c->wbuf + c->wlen;
	h = ws_header(p, fin_op, len, (const uint8_t *)&m);
	c->wlen += (uint32_t)(h + len);
	return p + h;
}

/* The 4 bytes before a client frame's payload are its mask. */
void conn_frame_end(uint8_t *payload, size_t len)
{
	ws_mask(payload, len, payload - 4, 0);
}

static void conn_control(struct engine *e, struct conn *c, unsigned op,
			 const uint8_t *data, size_t len)
{
	uint8_t *p = conn_frame_begin(c, WS_FIN | op, len, &e->rng);

	memcpy(p, data, len);
	conn_frame_end(p, len);
}

/* The server ended the connection (EOF, reset) without a close frame:
 * counted as close code 1006 once the upgrade was through. */
static void conn_lost(struct engine *e, struct conn *c, const char *why)
{
	if ((c->state == CS_OPEN || c->state == CS_LOGIN) && !c->peer_closed)
		lg_codes_add(&e->r.closes, 1006, 1);
	conn_fail(e, c, LG_F_PROTOCOL, why);
}

void conn_flush(struct engine *e, struct conn *c)
{
	char why[96];
	ssize_t n;

	while (c->woff < c->wlen) {
		n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
			 MSG_NOSIGNAL);
		if (n > 0) {
			c->woff += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->want_out = 1; /* edge-triggered EPOLLOUT resumes */
			return;
		}
		snprintf(why, sizeof(why), "send: %s", strerror(errno));
		if (c->state == CS_CLOSING)
			conn_done(e, c);
		else
			conn_lost(e, c, why);
		return;
	}
	c->woff = c->wlen = 0;
	if (e->o->mode == LG_FLOOD && c->state == CS_OPEN)
		eng_drained(e, c);
}

/* Starts our side of the close handshake (code 1000). */
void conn_close(struct engine *e, struct conn *c)
{
	static const uint8_t normal[2] = {0x03, 0xe8};

	if (c->state != CS_OPEN)
		return;
	conn_control(e, c, WS_OP_CLOSE, normal, sizeof(normal));
	c->state = CS_CLOSING;
	conn_flush(e, c);
}

static void conn_send_request(struct engine *e, struct conn *c)
{
	char key[WS_KEY_LEN + 1];
	const char *bearer =
	    e->o->at_upgrade && e->o->proto == LG_WSA ? e->tok[c - e->c] : NULL;
	size_t n;

	ws_make_key(key, lg_rng_next(&e->rng), lg_rng_next(&e->rng));
	ws_accept(key, WS_KEY_LEN, c->accept);
	/* Sized to the request, so that idle connections stay small. */
	ws_reserve(&c->wbuf, &c->wcap,
		   240 + strlen(e->o->path) + strlen(e->o->host_hdr) +
		       (e->o->origin ? strlen(e->o->origin) : 0) +
		       (bearer ? strlen(bearer) : 0));
	n = ws_request((char *)c->wbuf, c->wcap, e->o->path, e->o->host_hdr,
		       key, e->o->origin, bearer);
	c->woff = 0;
	c->wlen = (uint32_t)n;
	c->state = CS_HANDSHAKE;
	conn_flush(e, c);
}

/* Binds the source address 127.0.0.(A + i % N) before connecting:
 * ephemeral ports are counted per source address, so N addresses give N
 * times the connections.  IP_BIND_ADDRESS_NO_PORT leaves the choice of
 * port to connect(), which may then reuse a port towards another server. */
static int conn_bind(struct engine *e, struct conn *c)
{
	struct sockaddr_in a;
	int one = 1;

	if (!e->o->src_addrs)
		return 0;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000000u + e->o->src_first +
				  (c->idx + c->attempts) % e->o->src_addrs);
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		   sizeof(one));
	return bind(c->fd, (struct sockaddr *)&a, sizeof(a));
}

static int conn_register(struct engine *e, struct conn *c)
{
	struct epoll_event ev;

	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.u64 = (uint64_t)c->gen << 32 | (uint64_t)(c - e->c);
	return epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_fail_errno(struct engine *e, struct conn *c, const char *what,
			    int err)
{
	char why[96];

	if (what)
		snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
	else
		snprintf(why, sizeof(why), "%s", strerror(err));
	conn_fail(e, c, LG_F_CONNECT, why);
}

void conn_open(struct engine *e, struct conn *c)
{
	static const int flood_sndbuf = FLOOD_SNDBUF;
	int one = 1;

	c->attempts++;
	c->t_start = e->now = lg_now_ns();
	c->sent = c->rcvd = 0;
	c->state = CS_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail_errno(e, c, "socket", errno);
		return;
	}
	/* Small messages must leave at once: Nagle would add latency. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A flood keeps the server's receive buffer full whatever ours
	 * holds; ours would only take the TCP memory the whole machine,
	 * server included, shares (an attacker's is on another host). */
	if (e->o->mode == LG_FLOOD)
		setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &flood_sndbuf,
			   sizeof(flood_sndbuf));
	if (conn_bind(e, c) < 0)
		conn_fail_errno(e, c, "bind", errno);
	else if (conn_register(e, c) < 0)
		conn_fail_errno(e, c, "epoll_ctl", errno);
	else if (!connect(c->fd, (struct sockaddr *)&e->o->dst,
			  sizeof(e->o->dst)))
		conn_send_request(e, c);
	else if (errno != EINPROGRESS)
		conn_fail_errno(e, c, NULL, errno);
}

static void conn_send_login(struct engine *e, struct conn *c)
{
	const char *tok = e->tok[c - e->c];
	size_t hl = sizeof(LOGIN_HEAD) - 1, tl = strlen(tok);
	uint8_t *p =
	    conn_frame_begin(c, WS_FIN | WS_OP_TEXT, hl + tl + 2, &e->rng);

	memcpy(p, LOGIN_HEAD, hl);
	memcpy(p + hl, tok, tl);
	memcpy(p + hl + tl, "\"}", 2);
	conn_frame_end(p, hl + tl + 2);
	c->state = CS_LOGIN;
}

/* An answer to the upgrade with another status than 101 ("HTTP/1.1 503
 * Service Unavailable") is a refusal, counted by status. */
static void conn_count_refusal(struct engine *e, const uint8_t *p, size_t n)
{
	uint32_t status = 0;
	size_t i;

	if (n < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
		return;
	for (i = 9; i < 12 && p[i] >= '0' && p[i] <= '9'; i++)
		status = status * 10 + (uint32_t)(p[i] - '0');
	if (i == 12 && status != 101)
		lg_codes_add(&e->r.refused, status, 1);
}

/* Checks the upgrade response at p; returns the length of its head, 0
 * when it is incomplete, -1 when the connection failed. */
static long conn_handshake(struct engine *e, struct conn *c, const uint8_t *p,
			   size_t n)
{
	const char *why, *eol;
	char detail[160];
	long h = ws_check_response((const char *)p, n, c->accept, &why);

	if (h > 0) {
		e->r.upgrades++;
		if (e->o->proto == LG_RAW || e->o->mode == LG_UNAUTH) {
			c->state = CS_OPEN;
			eng_ready(e, c);
		} else if (e->o->at_upgrade) {
			c->state = CS_LOGIN; /* the auth answer comes unasked */
		} else {
			conn_send_login(e, c);
		}
		return h;
	}
	if (h == 0)
		return 0;
	conn_count_refusal(e, p, n);
	eol = memchr(p, '\r', n);
	n = eol ? (size_t)(eol - (const char *)p) : n;
	snprintf(detail, sizeof(detail), "%s (%.*s)", why,
		 (int)(n > 64 ? 64 : n), (const char *)p);
	conn_fail(e, c, LG_F_HANDSHAKE, detail);
	return -1;
}

/* A whole message from the server. */
static void conn_deliver(struct engine *e, struct conn *c, const uint8_t *p,
			 size_t n)
{
	char detail[160];

	if (c->state == CS_OPEN) {
		eng_message(e, c, p, n);
	} else if (c->state == CS_LOGIN) {
		if (n >= sizeof(AUTH_HEAD) - 1 &&
		    !memcmp(p, AUTH_HEAD, sizeof(AUTH_HEAD) - 1)) {
			c->state = CS_OPEN;
			eng_ready(e, c);
			return;
		}
		snprintf(detail, sizeof(detail), "login answered with %.*s",
			 (int)(n > 120 ? 120 : n), (const char *)p);
		conn_fail(e, c, LG_F_AUTH, detail);
	}
	/* CS_CLOSING: late echoes are of no interest. */
}

static int conn_append(struct conn *c, const uint8_t *p, size_t n)
{
	if ((size_t)c->mlen + n > MAX_MESSAGE)
		return -1;
	ws_reserve(&c->mbuf, &c->mcap, (size_t)c->mlen + n);
	memcpy(c->mbuf + c->mlen, p, n);
	c->mlen += (uint32_t)n;
	return 0;
}

/* A text, binary or continuation frame: reassembles fragments. */
static void conn_data(struct engine *e, struct conn *c,
		      const struct ws_frame *f, const uint8_t *p)
{
	const char *bad = NULL;

	if (f->opcode == WS_OP_CONT && !c->frag_op)
		bad = "continuation without a message";
	else if (f->opcode != WS_OP_CONT && c->frag_op)
		bad = "new message inside a fragmented one";
	else if (f->opcode != WS_OP_CONT && f->fin)
		conn_deliver(e, c, p, f->len); /* the usual case: no copy */
	else if (conn_append(c, p, f->len))
		bad = "message too big";
	else if (f->opcode != WS_OP_CONT)
		c->frag_op = f->opcode;
	else if (f->fin) {
		c->frag_op = 0;
		conn_deliver(e, c, c->mbuf, c->mlen);
		c->mlen = 0;
	}
	if (bad)
		conn_fail(e, c, LG_F_PROTOCOL, bad);
}

/* A close frame: the end of our close handshake, or the server closing. */
static void conn_on_close(struct engine *e, struct conn *c, const uint8_t *p,
			  size_t n)
{
	unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
	uint32_t gen = c->gen;
	char detail[160];

	if (c->state == CS_CLOSING) {
		conn_done(e, c);
		return;
	}
	lg_codes_add(&e->r.closes, code, 1);
	c->peer_closed = 1; /* a failing answer is no second close */
	conn_control(e, c, WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
	conn_flush(e, c);
	if (c->gen != gen)
		return;
	snprintf(detail, sizeof(detail), "closed by the server, code %u %.*s",
		 code, (int)(n > 2 ? (n - 2) & 0x7f : 0), (const char *)p + 2);
	conn_fail(e, c, c->state == CS_LOGIN ? LG_F_AUTH : LG_F_PROTOCOL,
		  detail);
}

static void conn_frame(struct engine *e, struct conn *c,
		       const struct ws_frame *f, const uint8_t *p)
{
	switch (f->opcode) {
	case WS_OP_PING:
		e->r.pings++;
		conn_control(e, c, WS_OP_PONG, p, f->len);
		break;
	case WS_OP_PONG:
		break;
	case WS_OP_CLOSE:
		conn_on_close(e, c, p, f->len);
		break;
	default:
		conn_data(e, c, f, p);
	}
}

/* Handles p[0..n): the upgrade response, then whole frames.  Returns how
 * many bytes were used (the rest is a partial frame), or -1 when the
 * connection ended. */
static long conn_input(struct engine *e, struct conn *c, uint8_t *p, size_t n)
{
	uint32_t gen = c->gen;
	struct ws_frame f;
	size_t off = 0;
	long h;
	int r;

	if (c->state == CS_HANDSHAKE) {
		h = conn_handshake(e, c, p, n);
		if (h < 0 || c->gen != gen)
			return -1;
		if (h == 0)
			return 0;
		off = (size_t)h;
	}
	while (off < n) {
		r = ws_parse(p + off, n - off, &f);
		if (r == 0 || (r > 0 && !f.masked && f.len <= MAX_MESSAGE &&
			       f.hdr + f.len > n - off))
			break;
		if (r < 0 || f.masked || f.len > MAX_MESSAGE) {
			conn_fail(e, c, LG_F_PROTOCOL, "bad frame from server");
			return -1;
		}
		conn_frame(e, c, &f, p + off + f.hdr);
		if (c->gen != gen)
			return -1;
		off += f.hdr + f.len;
	}
	return (long)off;
}

/* recv() returned n <= 0. */
static void conn_eof(struct engine *e, struct conn *c, ssize_t n)
{
	char why[96];

	if (c->state == CS_CLOSING) {
		conn_done(e, c);
		return;
	}
	snprintf(why, sizeof(why), "%s",
		 n ? strerror(errno) : "connection closed by the server");
	conn_lost(e, c, why);
}

/* Reads until the socket is drained.  Data lands in the engine's scratch
 * buffer unless part of a frame is already kept; only what is left of a
 * partial frame is copied into the connection.  A short read means the
 * socket is empty (more data will raise a new edge), unless the peer also
 * hung up, in which case we read on to see the EOF. */
static void conn_read(struct engine *e, struct conn *c, uint32_t events)
{
	uint32_t gen = c->gen;
	uint8_t *buf;
	size_t cap, have;
	ssize_t n;
	long used;

	for (;;) {
		if (c->rlen) {
			ws_reserve(&c->rbuf, &c->rcap, c->rlen + READ_ROOM);
			buf = c->rbuf + c->rlen;
			cap = c->rcap - c->rlen;
		} else {
			buf = e->scratch;
			cap = e->scratch_cap;
		}
		n = recv(c->fd, buf, cap, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_eof(e, c, n);
			return;
		}
		e->now = lg_now_ns();
		have = (size_t)n;
		if (c->rlen) {
			have += c->rlen;
			buf = c->rbuf;
		}
		used = conn_input(e, c, buf, have);
		if (used < 0 || c->gen != gen)
			return;
		ws_keep(&c->rbuf, &c->rcap, &c->rlen, buf, have, (size_t)used,
			READ_ROOM);
		if ((size_t)n < cap && !(events & (EPOLLRDHUP | EPOLLHUP)))
			return;
	}
}

/* A non-blocking connect finished (EPOLLOUT) or failed. */
static void conn_connected(struct engine *e, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		conn_fail_errno(e, c, NULL, err);
	else
		conn_send_request(e, c);
}

void conn_event(struct engine *e, struct conn *c, uint32_t events)
{
	uint32_t gen = c->gen;

	if (c->state == CS_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		conn_connected(e, c);
		if (c->gen != gen)
			return;
	} else if ((events & EPOLLOUT) && c->want_out) {
		c->want_out = 0; /* the flush below resumes */
	}
	/* Reads first: a server's close frame is seen before a write to
	 * the connection it closed fails. */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn_read(e, c, events);
	if (c->gen == gen && c->wlen > c->woff && !c->want_out)
		conn_flush(e, c);
}
