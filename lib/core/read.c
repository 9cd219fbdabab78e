/* Reading established plain connections ourselves. See read.h.
 *
 * Why: libwebsockets 4.1.6 reads a connection no more than the buffer it
 * holds for it from the upgrade on (rx_buffer_size): at 1024 a 4 KiB
 * message costs five reads and a reassembly, and that buffer is most of
 * an idle connection's memory. Read here, one read takes what is waiting
 * (up to the loop's 64 KiB buffer), a message that arrived whole is
 * delivered where it lies, and lws' buffer can shrink to WSA_LWS_RX_MIN.
 *
 * The switch (wsa__read_take): lws reads the upgrade request, and may
 * have read more with it: frames a client sent before the 101 (which
 * RFC 6455 4.1 forbids). lws keeps those in the connection's buffer list
 * and parses them only later, in a round of its own (its libev idle
 * watcher, or when the connection is next served), never in the round
 * that raised ESTABLISHED. So at the end of that round, before anything
 * serves the connection again (the round's writes come after), lws'
 * parser has seen nothing of the WebSocket stream. lws says whether it
 * holds unread input of any connection it would serve (its own test
 * before it waits, lws_service_adjust_timeout; a connection paused with
 * lws_rx_flow_control is not counted). Nothing held: lws stops reading
 * the fresh connections and our watchers start. Something held: the
 * fresh connections are paused in lws and the question asked again,
 * then once for each with only that one let go, which finds the ones
 * that sent frames early: they are closed with 1002 "Protocol error"
 * (lws 4.1.6 also misparses such input when it is longer than its
 * buffer). If the input is another connection's (one left with lws),
 * none of this round's can be told apart: they stay with lws for their
 * life, read as before, WSA_LWS_RX_MIN bytes at a time. No byte is
 * parsed twice or by the wrong reader.
 *
 * Memory: bytes read and not consumed are held per connection in a block
 * of exactly their size, freed when consumed: a header or a control frame
 * cut by the end of a read (at most 14 + 125 bytes), or what follows the
 * message that paused the connection (its login with the verifier, its
 * rate). Held bytes are parsed where they lie when it resumes (a flood
 * refused a message at a time is not copied again at each resume); the
 * block is freed once all of it is consumed. A connection not yet
 * logged in, or once paused for its rate, is read rx_buffer_size at a
 * time (what lws' buffer held before), one read a wake-up; so a paused
 * connection holds at most one read: 64 KiB once (the read in which it
 * first went over its rate), rx_buffer_size after.
 *
 * Closing is ours too: a valid close from the peer is echoed by
 * a raw write and the connection ended (lws_set_timeout with
 * LWS_TO_KILL_SYNC, from outside lws' callbacks; lws writes what it
 * still holds first); the end of the stream or a reset ends it (1006). */
#include "core/read.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codec/frame.h"
#include "codec/proto.h"
#include "core/conn.h"
#include "core/server.h"
#include "core/service.h"

/* Reads of one connection per wake-up, so one busy peer yields. */
#define READS_PER_WAKE 4

bool wsa__read_possible(const struct wsa_service *svc)
{
	const struct wsa_server *srv = svc->srv;

	return svc->own_loop && !srv->tls_cert && !srv->cfg.permessage_deflate;
}

bool wsa__read_init(struct wsa_service *svc)
{
	svc->rd_buf = malloc(WSA_READ_BUF);
	return svc->rd_buf != NULL;
}

void wsa__read_free(struct wsa_service *svc)
{
	free(svc->rd_buf);
	svc->rd_buf = NULL;
	free(svc->fresh);
	svc->fresh = NULL;
}

void wsa__read_fresh(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;

	if (!svc->rd_buf || c->deflate)
		return;
	if (svc->nfresh == svc->fresh_cap) {
		size_t cap = svc->fresh_cap ? svc->fresh_cap * 2 : 16;
		struct wsa_conn **p = realloc(svc->fresh, cap * sizeof(*p));

		if (!p)
			return; /* lws reads it */
		svc->fresh = p;
		svc->fresh_cap = cap;
	}
	c->rd.fresh = true;
	c->refs++; /* until the round ends */
	svc->fresh[svc->nfresh++] = c;
}

static void readable(struct ev_loop *loop, ev_io *w, int revents);

/* Our watcher reads it (lws reads it no more). */
static void watch(struct wsa_conn *c)
{
	ev_io_init(&c->rd.io, readable, lws_get_socket_fd(c->wsi), EV_READ);
	c->rd.io.data = c;
	c->rd.own = true;
	ev_io_start(c->svc->loop, &c->rd.io);
}

/* Whether lws holds no unread input of a connection it would serve: its
 * own test before it waits (a paused connection's input is not
 * counted). */
static bool lws_quiet(struct wsa_service *svc)
{
	return lws_service_adjust_timeout(svc->ctx, 1, 0) != 0;
}

/* Whether the fresh c is the one whose input lws holds, all the others
 * paused (lws_quiet then): let lws count c alone. */
static bool holds_early_input(struct wsa_conn *c)
{
	bool held;

	lws_rx_flow_control(c->wsi, 1);
	held = !lws_quiet(c->svc);
	lws_rx_flow_control(c->wsi, 0);
	return held;
}

/* Frames came with the upgrade request, before its answer (RFC 6455 4.1
 * forbids it): lws has them, unparsed, and never will parse them. The
 * connection is closed, 1002; nothing more is parsed. */
static void refuse_early(struct wsa_conn *c)
{
	watch(c);
	c->rd.failed = true;
	wsa__conn_close(c, WSA_CLOSE_PROTOCOL, "Protocol error");
}

/* Whether c can be taken over: established in this round, lws delivered
 * nothing of it (it cannot have, before its own round after this one),
 * not paused. */
static bool candidate(const struct wsa_conn *c)
{
	return c->wsi && !c->rd.lws_fed && !c->rx_paused;
}

/* lws holds input of some connection: pause the fresh ones in lws and
 * ask again; if it was theirs, find whose, one by one. If it is another
 * connection's, no fresh one can be told apart: they stay with lws. */
static void take_sorting(struct wsa_service *svc)
{
	bool theirs;
	size_t i;

	for (i = 0; i < svc->nfresh; i++)
		if (candidate(svc->fresh[i]))
			lws_rx_flow_control(svc->fresh[i]->wsi, 0);
	theirs = lws_quiet(svc);
	for (i = 0; i < svc->nfresh; i++) {
		struct wsa_conn *c = svc->fresh[i];

		if (!candidate(c))
			continue;
		if (!theirs)
			lws_rx_flow_control(c->wsi, 1);
		else if (holds_early_input(c))
			refuse_early(c);
		else
			watch(c);
	}
}

void wsa__read_take(struct wsa_service *svc)
{
	size_t i;

	if (!svc->nfresh)
		return;
	if (!lws_quiet(svc)) {
		take_sorting(svc);
	} else {
		for (i = 0; i < svc->nfresh; i++) {
			struct wsa_conn *c = svc->fresh[i];

			if (!candidate(c))
				continue;
			if (!lws_rx_flow_control(c->wsi, 0))
				watch(c);
			else /* lws could not stop reading it: it reads on */
				lws_rx_flow_control(c->wsi, 1);
		}
	}
	for (i = 0; i < svc->nfresh; i++) {
		svc->fresh[i]->rd.fresh = false;
		wsa__conn_unref(svc->fresh[i]);
	}
	svc->nfresh = 0;
}

/* Held bytes go back to the heap. */
static void drop_held(struct wsa_conn *c)
{
	free(c->rd.held);
	c->rd.held = NULL;
	c->rd.nheld = c->rd.hoff = 0;
}

void wsa__read_watch(struct wsa_conn *c, bool on)
{
	struct wsa_service *svc = c->svc;

	if (!c->rd.own || c->rd.ended)
		return;
	if (!on) {
		ev_io_stop(svc->loop, &c->rd.io);
		return;
	}
	ev_io_start(svc->loop, &c->rd.io);
	if (c->rd.nheld) {
		/* Its held bytes first, in this round or the next (which then
		 * does not wait: wsa__service_run). */
		ev_feed_event(svc->loop, &c->rd.io, EV_READ);
		svc->rd_fed = true;
	}
}

void wsa__read_forget(struct wsa_conn *c)
{
	if (c->rd.own)
		ev_io_stop(c->svc->loop, &c->rd.io);
	c->rd.ended = true;
	drop_held(c);
}

bool wsa__read_inside_frame(const struct wsa_conn *c)
{
	return c->rd.left || c->rd.failed || c->rd.nheld;
}

/* The connection ends now: lws writes what it still holds, then closes;
 * the close handler runs (1006 unless a close was exchanged). */
void wsa__read_end(struct wsa_conn *c)
{
	ev_io_stop(c->svc->loop, &c->rd.io);
	c->rd.ended = true;
	drop_held(c);
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK,
				LWS_TO_KILL_SYNC);
}

/* The stream broke RFC 6455: close 1002, and nothing more is parsed (it
 * cannot be); what comes is dropped until the peer ends the stream or the
 * close deadline does. */
static void fail(struct wsa_conn *c)
{
	c->rd.failed = true;
	wsa__conn_close(c, WSA_CLOSE_PROTOCOL, "Protocol error");
}

/* Echo the peer's valid close (its code and reason, as received). */
static void echo_close(struct wsa_conn *c, const unsigned char *p, size_t n)
{
	unsigned char buf[LWS_PRE + 2 + 125];

	buf[LWS_PRE] = 0x88;
	buf[LWS_PRE + 1] = (unsigned char)n;
	memcpy(buf + LWS_PRE + 2, p, n);
	lws_write(c->wsi, buf + LWS_PRE, 2 + n, LWS_WRITE_RAW);
}

/* A whole control frame, unmasked. */
static void control(struct wsa_conn *c, unsigned op, const unsigned char *p,
		    size_t n)
{
	unsigned char pong[2 + 125];

	switch (op) {
	case 0x9: /* ping: a pong of ours, behind whole queued frames */
		if (!wsa__conn_live(c))
			return;
		pong[0] = 0x8a;
		pong[1] = (unsigned char)n;
		memcpy(pong + 2, p, n);
		wsa__conn_owed(c, wsa__conn_queue_framed(c, pong, 2 + n));
		return;
	case 0xa: /* pong */
		wsa__conn_seen(c, lws_now_usecs());
		return;
	default: /* close */
		if (!wsa__conn_peer_close(c, p, n))
			echo_close(c, p, n);
		wsa__read_end(c);
	}
}

/* A data frame's header was read: check it against the message it
 * belongs to and the limits. */
static void begin(struct wsa_conn *c, const struct wsa_frame_in *f)
{
	struct wsa_reader *rd = &c->rd;

	/* A continuation continues a message; anything else starts one. */
	if (!f->op != rd->in_msg) {
		fail(c);
		return;
	}
	if (f->op)
		rd->op = f->op;
	rd->in_msg = !f->fin;
	rd->fin = f->fin;
	rd->left = f->len;
	rd->pos = 0;
	memcpy(rd->key, f->key, 4);
	if (!wsa__conn_live(c))
		return;
	if (rd->op != 0x1) {
		wsa__conn_close(c, WSA_CLOSE_UNSUPPORTED,
				"Binary not accepted");
		return;
	}
	/* Refused on what the header announces: not a byte of it is read
	 * into memory (it is dropped as it comes). */
	if (f->len > wsa__conn_limit(c) - wsa__chunk_len(c->rx))
		wsa__conn_close(c, WSA_CLOSE_TOO_BIG, "Message too big");
}

/* Up to n bytes at p of the current data frame's payload: unmasked in
 * place and handed on (dropped when closing). Returns the bytes used. */
static size_t payload(struct wsa_conn *c, unsigned char *p, size_t n)
{
	struct wsa_reader *rd = &c->rd;
	size_t k = rd->left < n ? (size_t)rd->left : n;

	rd->left -= k;
	if (wsa__conn_live(c))
		wsa__frame_unmask(p, k, rd->key, rd->pos);
	rd->pos = (unsigned char)(rd->pos + k); /* the key repeats every 4 */
	wsa__conn_piece(c, p, k, (size_t)rd->left, rd->fin && !rd->left);
	return k;
}

/* Whether frames are still to be parsed from this connection now. */
static bool parsing(const struct wsa_conn *c)
{
	return c->wsi && !c->rd.ended && !c->rx_paused;
}

/* Parse and act on the n bytes at p (our buffer): data frames' payloads
 * as they come, control frames only whole. Returns the bytes used; it
 * stops early inside a header or a control frame, or when the connection
 * is paused (a login with the verifier, its rate) or ends. */
static size_t consume(struct wsa_conn *c, unsigned char *p, size_t n)
{
	struct wsa_frame_in f;
	size_t off = 0;
	bool data = false;
	int h;

	while (off < n && parsing(c)) {
		if (c->rd.failed) {
			wsa__conn_piece(c, p + off, n - off, 0, false);
			off = n;
			break;
		}
		if (c->rd.left) {
			off += payload(c, p + off, n - off);
			data = true;
			continue;
		}
		h = wsa__frame_parse(p + off, n - off, &f);
		if (!h)
			break;
		if (h < 0) {
			fail(c);
			continue;
		}
		if (f.op & 0x8) {
			if (f.len > n - off - (size_t)h)
				break; /* whole control frames only */
			off += (size_t)h;
			wsa__frame_unmask(p + off, (size_t)f.len, f.key, 0);
			off += (size_t)f.len;
			control(c, f.op, p + off - f.len, (size_t)f.len);
			continue;
		}
		off += (size_t)h;
		data = true;
		begin(c, &f);
		if (!c->rd.left && !c->rd.failed) /* an empty frame */
			wsa__conn_piece(c, p + off, 0, 0, c->rd.fin);
	}
	if (data && c->wsi)
		wsa__conn_active(c);
	return off;
}

/* Keep the n bytes at p for the next read (exactly their size). */
static void hold(struct wsa_conn *c, const unsigned char *p, size_t n)
{
	c->rd.held = malloc(n);
	if (!c->rd.held) {
		c->rd.failed = true;
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	memcpy(c->rd.held, p, n);
	c->rd.nheld = (uint32_t)n;
	c->rd.hoff = 0;
}

/* Parse what was held, where it lies: a paused connection resumed many
 * times (a flood refused a message at a time) costs no copy of it each
 * time. Returns the bytes of a header or control frame cut by its end,
 * moved to the front of buf to meet the rest; -1 when the connection
 * reads no more now (paused again, or ending). */
static long held_first(struct wsa_conn *c, unsigned char *buf)
{
	unsigned char *p = c->rd.held + c->rd.hoff;
	size_t n = c->rd.nheld, used = consume(c, p, n);

	if (!c->wsi || c->rd.ended)
		return -1;
	if (used < n && !parsing(c)) { /* paused again */
		if (!wsa__conn_live(c)) {
			drop_held(c); /* closing and not reading: dropped */
			return -1;
		}
		c->rd.hoff += (uint32_t)used;
		c->rd.nheld -= (uint32_t)used;
		return -1;
	}
	/* All of it, or up to a cut header or control frame (139 bytes at
	 * most). */
	memcpy(buf, p + used, n - used);
	drop_held(c);
	return (long)(n - used);
}

/* How much one read may take: see the top of this file. */
static size_t read_size(const struct wsa_conn *c)
{
	if (c->rd.small || !c->authenticated)
		return c->svc->srv->cfg.rx_buffer_size;
	return WSA_READ_BUF;
}

/* One read after what was held, parsed. True when the read took all it
 * could (more may wait) and the connection reads on. */
static bool read_once(struct wsa_conn *c)
{
	unsigned char *buf = c->svc->rd_buf;
	size_t have = 0, want = read_size(c), got, used;
	ssize_t n;

	if (c->rd.nheld) {
		long cut = held_first(c, buf);

		if (cut < 0)
			return false;
		have = (size_t)cut;
	}
	if (want > WSA_READ_BUF - have)
		want = WSA_READ_BUF - have;
	/* Nothing asked when what was held fills the buffer. */
	n = want ? recv(c->rd.io.fd, buf + have, want, 0) : -1;
	if (n < 0 && want && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR)
		n = 0; /* a reset: ends as the end of the stream does */
	got = n < 0 ? 0 : (size_t)n;
	used = consume(c, buf, have + got);
	if (!n) {
		wsa__read_end(c);
		return false;
	}
	if (!c->wsi || c->rd.ended)
		return false;
	/* Closing and not reading: what is left is dropped (the close
	 * deadline hangs up). */
	if (used < have + got && (wsa__conn_live(c) || !c->rx_paused))
		hold(c, buf + used, have + got - used);
	return got == want && parsing(c);
}

static void readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct wsa_conn *c = w->data;
	int reads = c->rd.small || !c->authenticated ? 1 : READS_PER_WAKE;

	(void)loop;
	(void)revents;
	c->refs++;
	while (reads-- && read_once(c))
		;
	wsa__conn_unref(c);
}
