/* A small blocking WebSocket client for the tests; see wsclient.h.
 *
 * The socket is non-blocking and every wait goes through poll() with the
 * time left until a deadline, so no call can block past its timeout. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID	      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HEAD      16384 /* response head limit */
#define MAX_FRAME_HDR 14
#define READ_CHUNK    65536
/* While a send waits for room we keep reading, so a server that answers
 * while still receiving cannot deadlock us; this bounds that buffering. */
#define MAX_BUFFERED (WSC_MAX_MESSAGE + MAX_FRAME_HDR + READ_CHUNK)

struct wsc {
	int fd;
	bool eof;
	bool failed;
	bool close_sent;
	bool close_received;
	int close_code;
	int send_timeout;
	unsigned pings;
	/* Received bytes not yet parsed are buf[rpos, wpos). */
	unsigned char *buf;
	size_t cap, rpos, wpos;
	/* The message being reassembled from fragments. */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	int msg_opcode; /* 0: no message in progress */
	char *head;	/* the handshake response head, for wsc_header */
	char err[160];
};

struct frame_hdr {
	int opcode;
	bool fin;
	size_t hlen; /* header bytes */
	size_t len;  /* payload bytes */
};

/* ---- time and waiting ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_in(int timeout_ms)
{
	return now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* poll() until one of events, the deadline, or an error; returns revents
 * (>0), 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			return p.revents;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* ---- errors ---- */

static void set_err(wsc *c, const char *what, int errnum)
{
	if (errnum)
		snprintf(c->err, sizeof c->err, "%s: %s", what,
			 strerror(errnum));
	else
		snprintf(c->err, sizeof c->err, "%s", what);
}

static void write_close_frame(unsigned char *f, int code)
{
	unsigned char mask[4];

	RAND_bytes(mask, 4);
	f[0] = 0x80 | WSC_CLOSE;
	f[1] = 0x80 | 2;
	memcpy(f + 2, mask, 4);
	f[6] = (unsigned char)((code >> 8) ^ mask[0]);
	f[7] = (unsigned char)((code & 0xff) ^ mask[1]);
}

/* Fails the connection as RFC 6455 7.1.7 asks: a best-effort close with
 * the reason code, without waiting, and no further traffic. */
static int fail(wsc *c, int code, const char *why)
{
	if (!c->failed)
		set_err(c, why, 0);
	if (!c->failed && !c->close_sent && !c->eof) {
		unsigned char f[8];

		write_close_frame(f, code);
		c->close_sent = true;
		(void)send(c->fd, f, sizeof f, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	c->failed = true;
	return -1;
}

/* ---- the read buffer ---- */

/* Makes room for need unparsed bytes, moving them to the front. */
static int reserve(wsc *c, size_t need)
{
	size_t avail = c->wpos - c->rpos;

	if (c->rpos > 0) {
		memmove(c->buf, c->buf + c->rpos, avail);
		c->rpos = 0;
		c->wpos = avail;
	}
	if (need <= c->cap)
		return 0;
	size_t cap = c->cap * 2 > need ? c->cap * 2 : need;
	unsigned char *b = realloc(c->buf, cap);
	if (!b)
		return -1;
	c->buf = b;
	c->cap = cap;
	return 0;
}

/* One recv() into the free space: 1 if bytes came, 0 if none were ready,
 * -1 at EOF or on error. */
static int read_some(wsc *c)
{
	ssize_t n = recv(c->fd, c->buf + c->wpos, c->cap - c->wpos, 0);

	if (n > 0) {
		c->wpos += (size_t)n;
		return 1;
	}
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n == 0 || errno == ECONNRESET) {
		set_err(c,
			n == 0 ? "connection closed by peer"
			       : "connection reset by peer",
			0);
		c->eof = true;
		return -1;
	}
	set_err(c, "recv", errno);
	c->failed = true;
	return -1;
}

/* Reads at least one more byte, with room for need unparsed bytes. */
static int fill(wsc *c, size_t need, int64_t deadline)
{
	if (c->eof || c->failed)
		return -1;
	if (reserve(c, need) < 0)
		return fail(c, 1009, "out of memory");
	for (;;) {
		int ev = wait_fd(c->fd, POLLIN, deadline);

		if (ev == 0)
			return 0;
		if (ev < 0) {
			set_err(c, "poll", errno);
			return -1;
		}
		int r = read_some(c);
		if (r != 0)
			return r;
	}
}

/* ---- sending ---- */

/* Whether a blocked send should also read (see MAX_BUFFERED). */
static bool can_buffer(wsc *c)
{
	size_t avail = c->wpos - c->rpos;

	if (c->eof || c->failed || avail + READ_CHUNK > MAX_BUFFERED)
		return false;
	return reserve(c, avail + READ_CHUNK) == 0;
}

/* Waits until the socket takes more bytes, reading meanwhile.  Returns 1
 * when writable, 0 on timeout, -1 on error. */
static int wait_writable(wsc *c, int64_t deadline)
{
	for (;;) {
		bool rd = can_buffer(c);
		int ev = wait_fd(c->fd, POLLOUT | (rd ? POLLIN : 0), deadline);

		if (ev <= 0)
			return ev;
		if (ev & (POLLOUT | POLLERR | POLLHUP))
			return 1;
		if (ev & POLLIN)
			(void)read_some(c); /* EOF shows up in send */
	}
}

static int send_all(wsc *c, const unsigned char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err(c, "send", errno);
			return -1;
		}
		int r = wait_writable(c, deadline);
		if (r <= 0) {
			set_err(c, r == 0 ? "send timed out" : "poll",
				r == 0 ? 0 : errno);
			return -1;
		}
	}
	return 0;
}

/* Writes the frame header for a masked client frame; returns its size. */
static size_t put_header(unsigned char *h, int opcode, bool fin, size_t len,
			 const unsigned char mask[4])
{
	size_t n = 2;

	h[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		n = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] =
			    (unsigned char)((uint64_t)len >> (56 - 8 * i));
		n = 10;
	}
	memcpy(h + n, mask, 4);
	return n + 4;
}

int wsc_send_frame(wsc *c, int opcode, bool fin, const void *data, size_t len)
{
	unsigned char mask[4];

	if (c->failed || len > SIZE_MAX - MAX_FRAME_HDR)
		return -1;
	unsigned char *f = malloc(len + MAX_FRAME_HDR);
	if (!f)
		return -1;
	/* A fresh unpredictable mask per frame, as RFC 6455 5.3 requires. */
	if (RAND_bytes(mask, 4) != 1) {
		free(f);
		return -1;
	}
	size_t h = put_header(f, opcode, fin, len, mask);
	const unsigned char *d = data;
	for (size_t i = 0; i < len; i++)
		f[h + i] = d[i] ^ mask[i & 3];
	if ((opcode & 0x0f) == WSC_CLOSE)
		c->close_sent = true;
	int r = send_all(c, f, h + len, deadline_in(c->send_timeout));
	free(f);
	return r;
}

int wsc_send_text(wsc *c, const char *s, size_t len)
{
	return wsc_send_frame(c, WSC_TEXT, true, s, len);
}

int wsc_send_close(wsc *c, int code, const char *reason)
{
	unsigned char p[125];
	size_t n = 0;

	if (code) {
		size_t rl = reason ? strlen(reason) : 0;

		if (rl > sizeof p - 2)
			rl = sizeof p - 2;
		p[0] = (unsigned char)(code >> 8);
		p[1] = (unsigned char)code;
		if (rl)
			memcpy(p + 2, reason, rl);
		n = 2 + rl;
	}
	return wsc_send_frame(c, WSC_CLOSE, true, p, n);
}

int wsc_send_raw(wsc *c, const void *bytes, size_t len)
{
	return send_all(c, bytes, len, deadline_in(c->send_timeout));
}

/* ---- receiving ---- */

/* Strict UTF-8: no overlong forms, surrogates or code points past
 * U+10FFFF (RFC 3629), which RFC 6455 8.1 requires for text. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char b = s[i];
		size_t k;
		uint32_t cp;

		if (b < 0x80) {
			i++;
			continue;
		} else if (b >= 0xc2 && b <= 0xdf) {
			k = 1, cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			k = 2, cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			k = 3, cp = b & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += k + 1;
	}
	return true;
}

static bool known_opcode(int op)
{
	return op <= WSC_BINARY || (op >= WSC_CLOSE && op <= WSC_PONG);
}

static const char too_big[] = "frame larger than WSC_MAX_MESSAGE";

/* Reads the extended payload length.  Returns 0 or a reason to fail. */
static const char *ext_length(const unsigned char *p, struct frame_hdr *h)
{
	uint64_t len = 0;
	int n = h->hlen == 4 ? 2 : 8;

	for (int i = 0; i < n; i++)
		len = len << 8 | p[2 + i];
	/* Both the top bit rule and minimal encoding are RFC 6455 5.2. */
	if (n == 8 && (len >> 63))
		return "64-bit length with the top bit set";
	if (len < (n == 2 ? 126u : 0x10000u))
		return "length not minimally encoded";
	if (len > WSC_MAX_MESSAGE)
		return too_big;
	h->len = (size_t)len;
	return NULL;
}

/* Parses a server frame header from n bytes.  Returns 1 when *h is
 * complete, 0 if more bytes are needed, -1 with *why if it is invalid. */
static int parse_header(const unsigned char *p, size_t n, struct frame_hdr *h,
			const char **why)
{
	if (n < 2)
		return 0;
	h->fin = p[0] & 0x80;
	h->opcode = p[0] & 0x0f;
	h->len = p[1] & 0x7f;
	h->hlen = h->len == 126 ? 4 : h->len == 127 ? 10 : 2;
	if (p[0] & 0x70)
		*why = "RSV bits set without an extension";
	else if (!known_opcode(h->opcode))
		*why = "unknown opcode";
	else if (p[1] & 0x80)
		*why = "masked frame from the server";
	else if ((h->opcode & 8) && (!h->fin || h->len > 125))
		*why = "fragmented or oversized control frame";
	else if (n < h->hlen)
		return 0;
	else if (h->hlen > 2)
		*why = ext_length(p, h);
	else
		*why = NULL;
	return *why ? -1 : 1;
}

/* Waits until a whole frame is buffered at c->buf + c->rpos. */
static int next_frame(wsc *c, struct frame_hdr *h, int64_t deadline)
{
	for (;;) {
		size_t avail = c->wpos - c->rpos;
		const char *why = NULL;
		int r = parse_header(c->buf + c->rpos, avail, h, &why);

		if (r < 0)
			return fail(c, why == too_big ? 1009 : 1002, why);
		if (r > 0 && avail >= h->hlen + h->len)
			return 1;
		r = fill(c, r > 0 ? h->hlen + h->len : MAX_FRAME_HDR, deadline);
		if (r <= 0)
			return r;
	}
}

static int deliver(wsc_frame *out, int opcode, const unsigned char *p,
		   size_t len)
{
	out->data = malloc(len + 1);
	if (!out->data)
		return -1;
	if (len)
		memcpy(out->data, p, len);
	out->data[len] = 0;
	out->len = len;
	out->opcode = opcode;
	out->fin = true;
	return 1;
}

static int append_msg(wsc *c, const unsigned char *p, size_t len)
{
	if (len > WSC_MAX_MESSAGE - c->msg_len)
		return fail(c, 1009, "message larger than WSC_MAX_MESSAGE");
	if (c->msg_len + len + 1 > c->msg_cap) {
		size_t cap = (c->msg_len + len + 1) * 2;
		unsigned char *m = realloc(c->msg, cap);

		if (!m)
			return fail(c, 1009, "out of memory");
		c->msg = m;
		c->msg_cap = cap;
	}
	if (len)
		memcpy(c->msg + c->msg_len, p, len);
	c->msg_len += len;
	return 0;
}

/* A data frame: starts, continues or completes the current message. */
static int on_data(wsc *c, const struct frame_hdr *h, const unsigned char *p,
		   wsc_frame *out)
{
	if (h->opcode == WSC_CONT && !c->msg_opcode)
		return fail(c, 1002, "continuation without a message");
	if (h->opcode != WSC_CONT && c->msg_opcode)
		return fail(c, 1002, "new message inside a fragmented one");
	if (h->opcode != WSC_CONT)
		c->msg_opcode = h->opcode;
	if (append_msg(c, p, h->len) < 0)
		return -1;
	if (!h->fin)
		return 0;
	if (c->msg_opcode == WSC_TEXT && !valid_utf8(c->msg, c->msg_len))
		return fail(c, 1007, "text message is not valid UTF-8");
	c->msg[c->msg_len] = 0;
	out->opcode = c->msg_opcode;
	out->fin = true;
	out->data = c->msg;
	out->len = c->msg_len;
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	c->msg_opcode = 0;
	return 1;
}

/* Codes an endpoint may put on the wire (RFC 6455 7.4 and the IANA
 * registry); 1005, 1006 and 1015 are for reporting only. */
static bool valid_close_code(int code)
{
	return (code >= 1000 && code <= 1003) ||
	       (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

static int on_close(wsc *c, const unsigned char *p, size_t len, wsc_frame *out)
{
	int code = len >= 2 ? p[0] << 8 | p[1] : 1005;

	if (len == 1 || (len >= 2 && !valid_close_code(code)))
		return fail(c, 1002, "invalid close frame");
	if (len > 2 && !valid_utf8(p + 2, len - 2))
		return fail(c, 1007, "close reason is not valid UTF-8");
	if (deliver(out, WSC_CLOSE, p, len) < 0)
		return fail(c, 1011, "out of memory");
	c->close_received = true;
	c->close_code = code;
	/* Answer as RFC 6455 5.5.1 asks, echoing the code. */
	if (!c->close_sent)
		(void)wsc_send_close(c, code == 1005 ? 0 : code, NULL);
	return 1;
}

/* Handles one complete frame: 1 if it finished a message for *out, 0 if
 * not yet, -1 on error.  p points into the read buffer, which a send may
 * move, so it is copied before anything is sent. */
static int on_frame(wsc *c, const struct frame_hdr *h, const unsigned char *p,
		    wsc_frame *out)
{
	unsigned char copy[125];

	switch (h->opcode) {
	case WSC_PING:
		memcpy(copy, p, h->len);
		c->pings++;
		(void)wsc_send_frame(c, WSC_PONG, true, copy, h->len);
		return 0;
	case WSC_PONG:
		return deliver(out, WSC_PONG, p, h->len) < 0
			   ? fail(c, 1011, "out of memory")
			   : 1;
	case WSC_CLOSE:
		memcpy(copy, p, h->len);
		return on_close(c, copy, h->len, out);
	default:
		return on_data(c, h, p, out);
	}
}

int wsc_recv(wsc *c, wsc_frame *out, int timeout_ms)
{
	int64_t deadline = deadline_in(timeout_ms);

	memset(out, 0, sizeof *out);
	if (c->failed)
		return -1;
	if (c->close_received) {
		set_err(c, "close already received", 0);
		return -1;
	}
	for (;;) {
		struct frame_hdr h;
		int r = next_frame(c, &h, deadline);

		if (r <= 0)
			return r;
		const unsigned char *p = c->buf + c->rpos + h.hlen;
		c->rpos += h.hlen + h.len;
		r = on_frame(c, &h, p, out);
		if (r != 0)
			return r;
	}
}

json_t *wsc_recv_json(wsc *c, int timeout_ms)
{
	wsc_frame f;
	json_t *j = NULL;

	if (wsc_recv(c, &f, timeout_ms) != 1)
		return NULL;
	if (f.opcode == WSC_TEXT)
		j = json_loadb((const char *)f.data, f.len, 0, NULL);
	wsc_frame_free(&f);
	return j;
}

int wsc_close_code(const wsc_frame *f)
{
	if (f->opcode != WSC_CLOSE || f->len < 2)
		return 1005;
	return f->data[0] << 8 | f->data[1];
}

int wsc_wait_close(wsc *c, int timeout_ms)
{
	int64_t deadline = deadline_in(timeout_ms);

	if (c->close_received)
		return c->close_code;
	for (;;) {
		wsc_frame f;
		int64_t left = deadline - now_ms();
		int r = wsc_recv(c, &f, left > 0 ? (int)left : 0);

		if (r <= 0)
			return r;
		wsc_frame_free(&f);
		if (c->close_received)
			return c->close_code;
	}
}

int wsc_wait_eof(wsc *c, int timeout_ms)
{
	int64_t deadline = deadline_in(timeout_ms);

	/* Not through fill(): this must work after a protocol failure too. */
	while (!c->eof) {
		/* The data is not wanted: drop it to keep reading. */
		c->rpos = c->wpos = 0;
		int ev = wait_fd(c->fd, POLLIN, deadline);
		if (ev == 0)
			return 0;
		if (ev < 0 || (read_some(c) < 0 && !c->eof))
			return -1;
	}
	return 1;
}

bool wsc_eof(const wsc *c)
{
	return c->eof;
}

/* ---- handshake ---- */

/* Finds the nth header line called name in a "Name: value\r\n" block and
 * copies its value, trimmed, into buf.  Returns 1 if found. */
static int find_header(const char *text, const char *name, int nth, char *buf,
		       size_t size)
{
	size_t nl = strlen(name);

	for (const char *l = text; l && *l;) {
		const char *end = strstr(l, "\r\n");
		size_t ll = end ? (size_t)(end - l) : strlen(l);

		if (ll > nl && l[nl] == ':' && !strncasecmp(l, name, nl) &&
		    nth-- == 0) {
			const char *v = l + nl + 1, *e = l + ll;

			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			size_t n =
			    (size_t)(e - v) < size ? (size_t)(e - v) : size - 1;
			memcpy(buf, v, n);
			buf[n] = 0;
			return 1;
		}
		l = end ? end + 2 : NULL;
	}
	return 0;
}

int wsc_header(const wsc *c, const char *name, char *buf, size_t size)
{
	if (!c->head || size == 0)
		return 0;
	return find_header(c->head, name, 0, buf, size);
}

/* Whether the comma-separated list has token, ignoring case. */
static bool has_token(const char *list, const char *token)
{
	size_t tl = strlen(token);

	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		size_t t = n;
		while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
			t--;
		if (t == tl && !strncasecmp(p, token, tl))
			return true;
		p += n;
	}
	return false;
}

static bool any_header_has_token(const char *text, const char *name,
				 const char *token)
{
	char v[512];

	for (int i = 0; find_header(text, name, i, v, sizeof v); i++)
		if (has_token(v, token))
			return true;
	return false;
}

/* The status code of "HTTP/1.x NNN ...", 0 if p does not start so. */
static int parse_status(const unsigned char *p, size_t n)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) || p[7] < '0' || p[7] > '9' ||
	    p[8] != ' ')
		return 0;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	if (n > 12 && p[12] != ' ' && p[12] != '\r')
		return 0;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* Reads until the end of the response head, which may come in pieces.
 * Returns its length including the blank line, 0 on timeout, -1 on EOF
 * or error.  Bytes after it stay in the buffer. */
static long read_head(wsc *c, int64_t deadline)
{
	for (;;) {
		size_t avail = c->wpos - c->rpos;
		const unsigned char *p = c->buf + c->rpos;

		for (size_t i = 3; i < avail; i++)
			if (!memcmp(p + i - 3, "\r\n\r\n", 4))
				return (long)i + 1;
		if (avail >= MAX_HEAD) {
			set_err(c, "response head too long", 0);
			return -1;
		}
		int r = fill(c, avail + 4096, deadline);
		if (r <= 0)
			return r;
	}
}

static char source_addr[64]; /* "" : let the kernel choose */

void wsc_set_source(const char *addr)
{
	snprintf(source_addr, sizeof(source_addr), "%s", addr ? addr : "");
}

/* Bind fd to the source address set, if any (IPv4 only). */
static int bind_source(int fd, int family)
{
	struct sockaddr_in src = {.sin_family = AF_INET};

	if (!source_addr[0] || family != AF_INET)
		return 0;
	if (inet_pton(AF_INET, source_addr, &src.sin_addr) != 1)
		return -1;
	return bind(fd, (struct sockaddr *)&src, sizeof(src));
}

static int tcp_connect(const char *host, int port, int64_t deadline)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char ps[16];
	int fd = -1;

	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0) {
		fprintf(stderr, "wsclient: cannot resolve %s\n", host);
		return -1;
	}
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		int err = 0;
		socklen_t el = sizeof err;
		if (bind_source(fd, a->ai_family) < 0)
			err = errno;
		else if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			err = errno;
			if (err == EINPROGRESS &&
			    wait_fd(fd, POLLOUT, deadline) > 0)
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			else if (err == EINPROGRESS)
				err = ETIMEDOUT;
		}
		if (err) {
			fprintf(stderr, "wsclient: connect %s:%d: %s\n", host,
				port, strerror(err));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

wsc *wsc_adopt_fd(int fd)
{
	wsc *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->cap = READ_CHUNK;
	c->buf = malloc(c->cap);
	if (!c->buf) {
		free(c);
		return NULL;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	c->send_timeout = 5000;
	return c;
}

/* 16 random bytes in base64 (RFC 6455 4.1). */
static int make_key(char key[25])
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
	return 0;
}

/* base64(SHA-1(key + GUID)), the value the server must answer with. */
static int expected_accept(const char *key, char out[29])
{
	char in[64];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;

	snprintf(in, sizeof in, "%s%s", key, WS_GUID);
	if (!EVP_Digest(in, strlen(in), md, &ml, EVP_sha1(), NULL) || ml != 20)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

static int send_request(wsc *c, const char *host, int port, const char *path,
			const char *extra, const char *key, int64_t deadline)
{
	/* An IPv6 literal needs brackets in Host (RFC 7230 5.4). */
	bool v6 = strchr(host, ':') != NULL;
	const char *fmt = "GET %s HTTP/1.1\r\n"
			  "Host: %s%s%s:%d\r\n"
			  "Upgrade: websocket\r\n"
			  "Connection: Upgrade\r\n"
			  "Sec-WebSocket-Key: %s\r\n"
			  "Sec-WebSocket-Version: 13\r\n"
			  "%s\r\n";
	int n = snprintf(NULL, 0, fmt, path, v6 ? "[" : "", host, v6 ? "]" : "",
			 port, key, extra);
	char *req = n > 0 ? malloc((size_t)n + 1) : NULL;

	if (!req)
		return -1;
	snprintf(req, (size_t)n + 1, fmt, path, v6 ? "[" : "", host,
		 v6 ? "]" : "", port, key, extra);
	int r = send_all(c, (unsigned char *)req, (size_t)n, deadline);
	free(req);
	return r;
}

/* Whether the server chose only what we offered in extra (RFC 6455 4.1,
 * client requirements 5 and 6). */
static const char *check_offers(const char *head, const char *extra)
{
	char v[512], offered[512];

	if (find_header(head, "Sec-WebSocket-Extensions", 0, v, sizeof v) &&
	    !find_header(extra, "Sec-WebSocket-Extensions", 0, offered,
			 sizeof offered))
		return "server chose an extension we did not offer";
	if (!find_header(head, "Sec-WebSocket-Protocol", 0, v, sizeof v))
		return NULL;
	for (int i = 0; find_header(extra, "Sec-WebSocket-Protocol", i, offered,
				    sizeof offered);
	     i++)
		if (has_token(offered, v))
			return NULL;
	return "server chose a subprotocol we did not offer";
}

/* Validates a 101 response head (RFC 6455 4.1, client requirements). */
static const char *check_101(const char *head, const char *key,
			     const char *extra)
{
	char v[512], want[29];

	if (!find_header(head, "Upgrade", 0, v, sizeof v) ||
	    strcasecmp(v, "websocket"))
		return "101 without Upgrade: websocket";
	if (!any_header_has_token(head, "Connection", "upgrade"))
		return "101 without Connection: upgrade";
	if (expected_accept(key, want) < 0)
		return "SHA-1 failed";
	if (!find_header(head, "Sec-WebSocket-Accept", 0, v, sizeof v) ||
	    strcmp(v, want))
		return "wrong or missing Sec-WebSocket-Accept";
	return check_offers(head, extra);
}

/* Reads the response and keeps its head; returns the status or -1. */
static int read_response(wsc *c, int64_t deadline)
{
	long hl = read_head(c, deadline);

	if (hl <= 0) {
		if (hl == 0)
			set_err(c, "no response before the deadline", 0);
		return -1;
	}
	c->head = malloc((size_t)hl + 1);
	if (!c->head)
		return -1;
	memcpy(c->head, c->buf + c->rpos, (size_t)hl);
	c->head[hl] = 0;
	/* Frame bytes may have come with the head; they stay buffered. */
	c->rpos += (size_t)hl;
	return parse_status((unsigned char *)c->head, (size_t)hl);
}

static int handshake(wsc *c, const char *host, int port, const char *path,
		     const char *extra, int64_t deadline, int *status)
{
	char key[25];

	if (make_key(key) < 0 ||
	    send_request(c, host, port, path, extra, key, deadline) < 0)
		return -1;
	*status = read_response(c, deadline);
	if (*status < 0)
		*status = 0;
	if (*status != 101) {
		if (*status == 0)
			fprintf(stderr, "wsclient: %s\n",
				c->err[0] ? c->err : "malformed response");
		return -1;
	}
	const char *why = check_101(c->head, key, extra);
	if (why) {
		fprintf(stderr, "wsclient: %s\n", why);
		return -1;
	}
	return 0;
}

wsc *wsc_connect(const char *host, int port, const char *path,
		 const char *extra_headers, int timeout_ms, int *http_status)
{
	int64_t deadline = deadline_in(timeout_ms);
	int status = 0;
	int fd = tcp_connect(host, port, deadline);
	wsc *c = fd >= 0 ? wsc_adopt_fd(fd) : NULL;

	if (!c && fd >= 0)
		close(fd);
	if (c && handshake(c, host, port, path ? path : "/",
			   extra_headers ? extra_headers : "", deadline,
			   &status) < 0) {
		wsc_close(c);
		c = NULL;
	}
	if (http_status)
		*http_status = status;
	return c;
}

wsc *wsc_connect_raw(const char *host, int port, int timeout_ms)
{
	int fd = tcp_connect(host, port, deadline_in(timeout_ms));
	wsc *c = fd >= 0 ? wsc_adopt_fd(fd) : NULL;

	if (!c && fd >= 0)
		close(fd);
	return c;
}

/* Connect and send request; NULL when either fails. */
static wsc *http_send(const char *host, int port, const char *request,
		      int64_t deadline)
{
	int fd = tcp_connect(host, port, deadline);
	wsc *c = fd >= 0 ? wsc_adopt_fd(fd) : NULL;

	if (!c && fd >= 0)
		close(fd);
	if (c && send_all(c, (const unsigned char *)request, strlen(request),
			  deadline)) {
		wsc_close(c);
		c = NULL;
	}
	return c;
}

int wsc_http_status(const char *host, int port, const char *request,
		    int timeout_ms)
{
	int64_t deadline = deadline_in(timeout_ms);
	wsc *c = http_send(host, port, request, deadline);
	int status;

	if (!c)
		return 0;
	/* A status line without the rest of the head still counts, e.g.
	 * when the server closes right after it. */
	(void)read_head(c, deadline);
	status = parse_status(c->buf + c->rpos, c->wpos - c->rpos);
	wsc_close(c);
	return status;
}

int wsc_http_fetch(const char *host, int port, const char *request,
		   int timeout_ms, char **response)
{
	int64_t deadline = deadline_in(timeout_ms);
	wsc *c = http_send(host, port, request, deadline);
	size_t n;
	int status;

	*response = NULL;
	if (!c)
		return 0;
	/* Everything up to EOF (or the deadline). */
	while (fill(c, c->wpos - c->rpos + 4096, deadline) > 0)
		;
	n = c->wpos - c->rpos;
	status = parse_status(c->buf + c->rpos, n);
	*response = malloc(n + 1);
	if (*response) {
		memcpy(*response, c->buf + c->rpos, n);
		(*response)[n] = '\0';
	}
	wsc_close(c);
	return status;
}

/* ---- small accessors ---- */

void wsc_set_send_timeout(wsc *c, int timeout_ms)
{
	c->send_timeout = timeout_ms;
}

unsigned wsc_pings_received(const wsc *c)
{
	return c->pings;
}

const char *wsc_error(const wsc *c)
{
	return c->err;
}

int wsc_fd(const wsc *c)
{
	return c->fd;
}

void wsc_frame_free(wsc_frame *f)
{
	free(f->data);
	f->data = NULL;
	f->len = 0;
}

void wsc_close(wsc *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->msg);
	free(c->head);
	free(c);
}
