/* Connections: state, inbound reassembly, the outbound queue, timers. */
#include "core/conn.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/rand.h>

#include "codec/frame.h"
#include "codec/json.h"
#include "codec/parse.h"
#include "codec/proto.h"
#include "core/auth.h"
#include "core/dispatch.h"
#include "core/read.h"
#include "core/route.h"
#include "core/server.h"
#include "core/service.h"
#include "fanout/fanout.h"
#include "policy/guard.h"
#include "util/log.h"

/* short-uuid's alphabet: no 0, 1, I, O, l. An id is the letter of its
 * loop and 21 letters drawn uniformly: more than 122 random bits. */
static const char id_alphabet[] =
    "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* The next random byte of the service's pool, refilled from OpenSSL's
 * generator a few KiB at a time (each call costs a getpid() for fork
 * detection, which one per connection would show); -1 when it fails. */
static int random_byte(struct wsa_service *svc)
{
	if (svc->rand_pos == sizeof(svc->rand_pool)) {
		if (RAND_bytes(svc->rand_pool, sizeof(svc->rand_pool)) != 1)
			return -1;
		svc->rand_pos = 0;
	}
	return svc->rand_pool[svc->rand_pos++];
}

/* Fill id with the letter of svc's index, then 21 letters drawn
 * uniformly from the alphabet, by rejection (bytes of 228 and up,
 * 4 * 57, are dropped); false when the random generator fails. The first
 * letter tells calls from other threads which loop owns the connection. */
bool wsa__conn_make_id(struct wsa_service *svc, char *id)
{
	size_t n = 1;

	id[0] = id_alphabet[svc->index];
	while (n < WSA_CONN_ID_LEN) {
		int r = random_byte(svc);

		if (r < 0)
			return false;
		if (r < 228)
			id[n++] = id_alphabet[r % 57];
	}
	id[WSA_CONN_ID_LEN] = '\0';
	return true;
}

struct wsa_service *wsa__service_of_id(const struct wsa_server *srv,
				       const char *conn_id)
{
	const char *p = strchr(id_alphabet, conn_id[0]);
	size_t i = p && conn_id[0] ? (size_t)(p - id_alphabet) : SIZE_MAX;

	return i < srv->nservices ? srv->services[i] : NULL;
}

/* ------------------------------------------------------- deadlines */

/* The connection a timer node is embedded in. */
#define CONN_OF(node, member)                                                  \
	((struct wsa_conn *)(void *)((char *)(node)-offsetof(struct wsa_conn,  \
							     member)))

/* Not read again until its close deadline hangs up. */
#define WSA_CLOSE_ACK_US ((lws_usec_t)3000000)

/* Take the liveness node off whichever list it is on. */
static void live_remove(struct wsa_conn *c)
{
	wsa__timeline_remove(c->pinged ? &c->svc->pinged : &c->svc->seen,
			     &c->live);
	c->pinged = false;
}

void wsa__conn_seen(struct wsa_conn *c, lws_usec_t now)
{
	if (c->svc->srv->cfg.ping_interval_ms == WSA_UNLIMITED || !c->wsi ||
	    !wsa__conn_live(c))
		return;
	if (c->pinged)
		live_remove(c);
	wsa__timeline_touch(&c->svc->seen, &c->live, now);
}

/* Data came from the peer: it is alive, and not idle. */
void wsa__conn_active(struct wsa_conn *c)
{
	lws_usec_t now = lws_now_usecs();

	if (c->svc->srv->cfg.idle_timeout_ms)
		wsa__timeline_touch(&c->svc->idle, &c->idle, now);
	wsa__conn_seen(c, now);
}

/* The login deadline before authentication, the token's expiry after
 * it, or the end of a close that took too long. */
static void deadline_fire(struct wsa_deadline *d, void *arg)
{
	struct wsa_conn *c = CONN_OF(d, deadline);

	(void)arg;
	if (!wsa__conn_live(c)) /* closing, and out of time: hang up */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK,
				LWS_TO_KILL_SYNC);
	else if (c->authenticated) {
		WSA_COUNT(c->svc, expiries, 1);
		wsa__conn_fail(c, WSA_MSG_TOKEN_EXPIRED, NULL,
			       WSA_CLOSE_POLICY);
	} else
		wsa__auth_timeout(c);
}

/* Silent for the idle timeout: 1001. */
static void idle_fire(struct wsa_timed *n, void *arg)
{
	(void)arg;
	wsa__conn_close(CONN_OF(n, idle), WSA_CLOSE_GOING_AWAY, "Idle timeout");
}

/* Silent for the ping interval: a ping, queued behind what the peer has
 * yet to read (a peer that does not read cannot answer either), and the
 * pong timeout starts. */
static void seen_fire(struct wsa_timed *n, void *arg)
{
	struct wsa_conn *c = CONN_OF(n, live);

	(void)arg;
	c->pinged = true;
	wsa__timeline_touch(&c->svc->pinged, &c->live, lws_now_usecs());
	wsa__conn_queue_framed(c, wsa__frame_ping, sizeof(wsa__frame_ping));
}

/* Nothing came back within the pong timeout: the peer is taken for gone
 * and hung up on, without a close frame it would not read; its close
 * handler sees 1006. */
static void pinged_fire(struct wsa_timed *n, void *arg)
{
	struct wsa_conn *c = CONN_OF(n, live);

	(void)arg;
	c->pinged = false;
	WSA_LOG_PEER(c->svc->srv, WSA_LOG_INFO, WSA_PL_NO_PONG, c,
		     "no pong in time: hung up");
	c->close_code = WSA_CLOSE_ABNORMAL;
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_SYNC);
}

/* A connection paused for its rate may send again: read it. lws applies
 * a flow change, and reads what it already holds, after an I/O event:
 * the loop is woken for one. */
static void paused_fire(struct wsa_timed *n, void *arg)
{
	struct wsa_conn *c = CONN_OF(n, paused);

	(void)arg;
	wsa__conn_pause_rx(c, WSA_PAUSE_RATE, false);
	lws_cancel_service(c->svc->ctx);
}

/* What a message costs of a connection's rate: a paused connection may
 * send again at most that long after its refusal. */
static lws_usec_t rate_cost(const wsa_config *cfg)
{
	lws_usec_t cost = cfg->rate_limit == WSA_UNLIMITED
			      ? 0
			      : (lws_usec_t)1000000 / cfg->rate_limit;

	return cost ? cost : 1;
}

/* A connection's key in svc->conns_by_id: its id. */
static const void *id_key(const struct wsa_link *l, size_t *klen)
{
	*klen = WSA_CONN_ID_LEN;
	return CONN_OF(l, id_link)->id;
}

void wsa__conn_index_init(struct wsa_service *svc)
{
	wsa__imap_init(&svc->conns_by_id, id_key);
}

struct wsa_conn *wsa__conn_by_id(const struct wsa_service *svc, const char *id)
{
	struct wsa_link *l = wsa__imap_get(&svc->conns_by_id, id, strlen(id));

	return l ? CONN_OF(l, id_link) : NULL;
}

struct each {
	void (*fn)(struct wsa_conn *c, void *arg);
	void *arg;
};

static void each_link(struct wsa_link *l, void *arg)
{
	struct each *e = arg;

	e->fn(CONN_OF(l, id_link), e->arg);
}

void wsa__conn_each(struct wsa_service *svc,
		    void (*fn)(struct wsa_conn *c, void *arg), void *arg)
{
	struct each e = {fn, arg};

	wsa__imap_each(&svc->conns_by_id, each_link, &e);
}

void wsa__conn_timers_init(struct wsa_service *svc)
{
	const wsa_config *cfg = &svc->srv->cfg;

	wsa__heap_init(&svc->deadlines, &svc->clock, deadline_fire, svc);
	wsa__timeline_init(&svc->idle, &svc->clock,
			   (lws_usec_t)cfg->idle_timeout_ms * 1000, 1,
			   idle_fire, svc);
	wsa__timeline_init(&svc->seen, &svc->clock,
			   (lws_usec_t)cfg->ping_interval_ms * 1000, 8,
			   seen_fire, svc);
	wsa__timeline_init(&svc->pinged, &svc->clock,
			   (lws_usec_t)cfg->pong_timeout_ms * 1000, 8,
			   pinged_fire, svc);
	/* Resumed a few at a time: each may read a whole buffer of
	 * messages at once (bench/run.py --only attack). */
	wsa__timeline_init(&svc->paused, &svc->clock, rate_cost(cfg), 8,
			   paused_fire, svc);
}

void wsa__conn_timers_stop(struct wsa_service *svc)
{
	wsa__heap_stop(&svc->deadlines);
	wsa__timeline_stop(&svc->idle);
	wsa__timeline_stop(&svc->seen);
	wsa__timeline_stop(&svc->pinged);
	wsa__timeline_stop(&svc->paused);
}

struct wsa_conn *wsa__conn_new(struct wsa_service *svc, struct wsa_route *route,
			       struct lws *wsi, const char *id)
{
	struct wsa_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (id)
		memcpy(c->id, id, sizeof(c->id));
	else if (!wsa__conn_make_id(svc, c->id)) {
		free(c);
		return NULL;
	}
	c->svc = svc;
	c->route = route;
	c->wsi = wsi;
	c->refs = 1;
	if (!wsa__imap_put(&svc->conns_by_id, &c->id_link)) {
		free(c);
		return NULL;
	}
	svc->nconns++;
	wsa__deadline_init(&c->deadline);
	c->iat = LLONG_MIN;
	wsa__conn_active(c);
	WSA_COUNT(svc, conns[route->index], 1);
	return c;
}

/* A connection that begins to close no longer counts against the
 * connection limits (its socket still does, as one not upgraded, until
 * it is gone): closing ones waiting for their peer must not keep others
 * out. Nor is it pinged, nor waits for a verification. */
static void leave_limits(struct wsa_conn *c)
{
	wsa__auth_cancel_wait(c);
	if (c->user_counted)
		wsa__user_release(&c->svc->srv->guard, c->ident);
	c->user_counted = false;
	wsa__guard_detach(&c->svc->srv->guard, c->peer);
	c->peer = NULL;
	live_remove(c);
}

/* c begins to close: what it was receiving is dropped (its place holds
 * the close's reason from now on). */
static void to_closing(struct wsa_conn *c)
{
	wsa__chunk_free(&c->rx);
	c->state = WSA_CONN_CLOSING;
}

/* c's output is all written or dropped: its buffer goes to the loop's
 * spares (service.h), or back to the heap when they are full. */
static void out_free(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;
	struct wsa_chunk *o = c->out;

	if (o && svc->nout_pool < WSA_OUT_POOL &&
	    o->cap <= WSA_OUT_POOL_BYTES - svc->out_pool_bytes) {
		svc->out_pool[svc->nout_pool++] = o;
		svc->out_pool_bytes += o->cap;
		c->out = NULL;
	}
	wsa__chunk_free(&c->out);
}

/* c has no output buffer: take the spare released last (its memory is
 * the likeliest to be in cache). */
static void out_reuse(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;
	struct wsa_chunk *o;

	if (!svc->nout_pool)
		return;
	o = svc->out_pool[--svc->nout_pool];
	svc->out_pool_bytes -= o->cap;
	o->len = o->off = 0;
	c->out = o;
}

/* Drop what is queued for c (whole frames), from the gauge too. */
static void out_drop(struct wsa_conn *c)
{
	if (c->out)
		WSA_COUNT(c->svc, queued_bytes, -(c->out->len - c->out->off));
	out_free(c);
}

void wsa__conn_closed(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;

	wsa__heap_clear(&svc->deadlines, &c->deadline);
	wsa__timeline_remove(&svc->idle, &c->idle);
	live_remove(c);
	wsa__timeline_remove(&svc->paused, &c->paused);
	wsa__read_forget(c);
	wsa__imap_del(&svc->conns_by_id, &c->id_link);
	if (wsa__conn_live(c)) {
		leave_limits(c);
		to_closing(c);
	}
	c->wsi = NULL;
	if (!c->close_code)
		c->close_code = WSA_CLOSE_ABNORMAL;
	WSA_LOG(c->svc->srv, WSA_LOG_INFO, c, "closed (%d)", c->close_code);
	/* Counted before the host hears of it. */
	wsa__count_close(svc, c->close_code);
	WSA_COUNT(svc, conns[c->route->index], -1);
	if (c->authenticated)
		WSA_COUNT(svc, conns_auth[c->route->index], -1);
	/* Still in its topics: the handler can tell their other members. */
	if (c->route->on_close)
		c->route->on_close(c, c->close_code, c->route->userdata);
	wsa__topic_forget(c);
	out_drop(c);
	svc->nconns--;
	if (svc->stopping && !svc->nconns)
		wsa__service_done(svc);
	wsa__conn_unref(c);
}

void wsa__conn_unref(struct wsa_conn *c)
{
	if (--c->refs)
		return;
	json_decref(c->claims);
	free(c->ident);
	free(c->close_reason);
	free(c);
}

/* Bytes read and dropped after our close frame before reading stops. */
#define WSA_DISCARD_MAX (16 * 1024)
/* How long the peer's close may take after ours. */
#define WSA_CLOSE_ACK_US ((lws_usec_t)3000000)

/* Whether a message's UTF-8 holds to its end: the bytes before its last
 * piece were checked as they came (c->utf8), the last piece, n bytes at
 * in, is checked now. */
static bool utf8_ends_well(struct wsa_conn *c, const void *in, size_t n)
{
	return wsa__utf8_feed(&c->utf8, in, n) && !c->utf8.n;
}

/* One whole message arrived, len bytes at text, whose last piece (n bytes
 * at in) has not been checked as UTF-8: parsed, and to the gate or the
 * dispatcher. The parser checks that piece: a text it accepts is
 * well-formed UTF-8 (every byte outside its strings is ASCII, and it
 * checks the strings'). Only a text it refuses is checked apart, since
 * invalid UTF-8 closes the connection (1007) whatever else is wrong. */
static void deliver(struct wsa_conn *c, const char *text, size_t len,
		    const void *in, size_t n)
{
	bool take =
	    c->state == WSA_CONN_AWAIT_LOGIN || c->state == WSA_CONN_OPEN;
	bool oom = false;
	struct wsa_json_head head = {NULL, NULL};
	json_t *msg =
	    take ? wsa__json_parse_head(text, len, &oom, &head) : NULL;

	if (!msg && !utf8_ends_well(c, in, n)) {
		wsa__conn_close(c, WSA_CLOSE_INVALID_PAYLOAD, "Invalid UTF-8");
		return;
	}
	c->utf8.n = 0; /* the next message starts afresh */
	if (c->state == WSA_CONN_AWAIT_LOGIN)
		wsa__auth_first(c, msg, &head, oom);
	else if (c->state == WSA_CONN_OPEN)
		wsa__dispatch(c, msg, &head, oom);
	/* VERIFYING receives nothing: input is paused, and the rest of a
	 * read already made is kept (by libwebsockets, or read.c where we
	 * read) for when it resumes (tests/test_server.c,
	 * test_async_one_write). */
	json_decref(msg);
}

size_t wsa__conn_limit(const struct wsa_conn *c)
{
	const wsa_config *cfg = &c->svc->srv->cfg;

	return c->state == WSA_CONN_AWAIT_LOGIN &&
		       cfg->max_login_size < cfg->max_message_size
		   ? cfg->max_login_size
		   : cfg->max_message_size;
}

void wsa__conn_piece(struct wsa_conn *c, const void *in, size_t len,
		     size_t remaining, bool final)
{
	size_t limit = wsa__conn_limit(c);

	if (!wsa__conn_live(c)) {
		/* Closing: what comes is dropped while we wait for the peer's
		 * close. A peer that keeps sending instead (a flood) is not
		 * read any more: its data waits in its own socket until the
		 * close deadline hangs up. (Hanging up at once would reset
		 * the connection, and a peer that merely had much in flight
		 * would lose our close frame.) */
		if (c->discarded <= WSA_DISCARD_MAX)
			c->discarded += (unsigned)len;
		if (c->close_sent && c->discarded > WSA_DISCARD_MAX)
			wsa__conn_pause_rx(c, WSA_PAUSE_RATE, true);
		return;
	}
	/* Count what we hold, this piece and what the frame header still
	 * announces. */
	if (len > limit || remaining > limit - len ||
	    wsa__chunk_len(c->rx) > limit - len - remaining) {
		wsa__conn_close(c, WSA_CLOSE_TOO_BIG, "Message too big");
		return;
	}
	if (!final) {
		/* UTF-8 is checked here, not by lws (which hangs up without a
		 * close frame on a close reason that is not UTF-8), a piece
		 * at a time: a bad byte closes at once, whatever was to
		 * follow. The last piece is left to the parser (deliver). */
		if (!wsa__utf8_feed(&c->utf8, in, len))
			wsa__conn_close(c, WSA_CLOSE_INVALID_PAYLOAD,
					"Invalid UTF-8");
		/* Room for the rest of this frame at once, not by doubling. */
		else if (!wsa__chunk_reserve(&c->rx, len + remaining) ||
			 !wsa__chunk_append(&c->rx, in, len))
			wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	if (!c->rx) { /* whole message in one piece: no copy */
		deliver(c, in, len, in, len);
		return;
	}
	if (!wsa__chunk_append(&c->rx, in, len)) {
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	{
		/* Fragmented messages are rare: hold no buffer between them. */
		struct wsa_chunk *msg = c->rx;

		c->rx = NULL;
		deliver(c, msg->p, msg->len, in, len);
		free(msg);
	}
}

int wsa__conn_receive(struct wsa_conn *c, const void *in, size_t len)
{
	struct lws *wsi = c->wsi;
	size_t remaining = lws_remaining_packet_payload(wsi);

	c->rd.lws_fed = true;
	wsa__conn_active(c);
	if (wsa__conn_live(c) && lws_frame_is_binary(wsi)) {
		wsa__conn_close(c, WSA_CLOSE_UNSUPPORTED,
				"Binary not accepted");
		return 0;
	}
	/* lws enforces no limit. Compressed, what the header announces says
	 * nothing of the size: lws inflates a piece at a time (as much as
	 * its inflate buffer, rx_buffer_size at most, holds) and each piece
	 * is counted as it comes, so a bomb is refused within one buffer of
	 * the limit, never held whole. */
	if (c->deflate)
		remaining = 0;
	wsa__conn_piece(c, in, len, remaining, lws_is_final_fragment(wsi));
	return 0;
}

/* Send our close frame ourselves and keep reading, discarding, until the
 * peer's close comes back (or a short timeout): a peer still sending
 * when we hang up would get a reset and lose the close frame with its
 * code, and lws_close_reason() with a -1 return hangs up at once. The
 * frame is built here (FIN|close, unmasked, 7-bit length) and written
 * raw, which lws sends as it is; nothing of ours is in flight. */
static int send_close(struct wsa_conn *c)
{
	unsigned char buf[LWS_PRE + WSA_FRAME_CLOSE_MAX];
	unsigned char *p = buf + LWS_PRE;
	size_t n = wsa__frame_close(p, c->close_code, c->close_reason);

	if (lws_write(c->wsi, p, n, LWS_WRITE_RAW) < 0)
		return -1;
	c->close_sent = true;
	/* A peer inside a frame (one refused for its announced size, say)
	 * cannot close before that frame ends: its close would be read as
	 * payload. Our side of the stream ends after our frame instead, so
	 * it sees the end at once, and we read on until its own end. (Not
	 * under TLS: no close_notify could follow.) */
	if ((c->rd.own ? wsa__read_inside_frame(c)
		       : lws_remaining_packet_payload(c->wsi) != 0) &&
	    !lws_is_ssl(c->wsi) && !lws_partial_buffered(c->wsi))
		shutdown(lws_get_socket_fd(c->wsi), SHUT_WR);
	if (!wsa__heap_set(&c->svc->deadlines, &c->deadline,
			   lws_now_usecs() + WSA_CLOSE_ACK_US))
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
	return 0;
}

/* What is wrong with the peer's close payload (RFC 6455 5.5.1, 7.4): one
 * byte, or a code a close frame may not carry (1002); a reason that is
 * not UTF-8 (1007); 0 when nothing is. */
static int close_frame_error(const unsigned char *in, size_t len)
{
	if (len == 1 || (len >= 2 && !wsa__close_code_ok(in[0] << 8 | in[1])))
		return WSA_CLOSE_PROTOCOL;
	if (len > 2 && !wsa__utf8_valid(in + 2, len - 2))
		return WSA_CLOSE_INVALID_PAYLOAD;
	return 0;
}

int wsa__conn_peer_close(struct wsa_conn *c, const unsigned char *in,
			 size_t len)
{
	int err;

	if (c->close_sent)
		return 1; /* the answer to ours: done */
	err = close_frame_error(in, len);
	if (!err) {
		if (!c->close_code)
			c->close_code = len >= 2 ? in[0] << 8 | in[1] : 1005;
		/* lws echoes it, which is our close: the connection leaves
		 * the limits now, not when lws gets round to destroying it (a
		 * client that reconnects at once could land on another loop
		 * first). */
		if (wsa__conn_live(c)) {
			leave_limits(c);
			to_closing(c);
			c->close_sent = true;
			/* Nothing may follow the echo; what is queued is
			 * whole frames (lws asks only then). */
			out_drop(c);
		}
		return 0;
	}
	/* Answered with our close, not echoed, and at once: the peer has
	 * closed, so what is still queued for it is dropped. (lws asks only
	 * when nothing of ours is partly written.) */
	wsa__conn_close(c, err,
			err == WSA_CLOSE_PROTOCOL ? "Invalid close frame"
						  : "Invalid UTF-8");
	out_drop(c);
	send_close(c);
	return 1;
}

/* lws' output chunk for a compressed message (its pmd tx_buf_size, 1024
 * in lws 4.1.6). A message whose deflated form fills it is sent by lws in
 * fragments over later writeable events, without calling us. */
#define WSA_DEFLATE_CHUNK 1024
/* What deflate may add to a message that does not compress: stored block
 * headers and the flush, with room to spare. */
#define WSA_DEFLATE_SLACK 64

/* Write the queued frames of a connection that negotiated
 * permessage-deflate: lws must frame each message (it compresses, sets
 * RSV1, may fragment), so each text frame is one lws_write of its
 * payload; control frames, never compressed, go raw as queued. Stops when
 * lws holds a partial send, or after a message lws may still be sending
 * in fragments (nothing of ours may start inside it). The queue's dead
 * bytes before each payload are the LWS_PRE lws_write wants. */
static int write_messages(struct wsa_conn *c)
{
	struct wsa_chunk *o = c->out;
	int budget = 16; /* messages per callback, so one busy peer yields */

	while (o->off < o->len && budget--) {
		unsigned char *p = (unsigned char *)o->p + o->off;
		size_t n = wsa__frame_size(p);
		size_t hlen = wsa__frame_header_size(p), plen = n - hlen;
		bool text = (p[0] & 0x0f) == 0x1;

		if (text ? lws_write(c->wsi, p + hlen, plen, LWS_WRITE_TEXT) < 0
			 : lws_write(c->wsi, p, n, LWS_WRITE_RAW) < 0)
			return -1;
		o->off += n;
		WSA_COUNT(c->svc, queued_bytes, -n);
		if (lws_partial_buffered(c->wsi) ||
		    (text && plen + WSA_DEFLATE_SLACK >= WSA_DEFLATE_CHUNK))
			break;
	}
	if (o->off == o->len)
		out_free(c);
	return 0;
}

static bool flush_grow(struct wsa_service *svc)
{
	size_t cap = svc->flush_cap ? svc->flush_cap * 2 : 64;
	struct wsa_conn **p = realloc(svc->flush, cap * sizeof(*p));

	if (!p)
		return false;
	svc->flush = p;
	svc->flush_cap = cap;
	return true;
}

/* Write whole queued frames, up to WSA_TX_BATCH bytes (or one larger
 * frame), with one raw write: lws makes one send() per lws_write, and
 * that, not framing, is what bounds a server. Whole frames only, so a
 * control frame lws sends later never lands inside one; lws keeps the
 * unsent tail of a short send and flushes it first. */
static int write_frames(struct wsa_conn *c)
{
	struct wsa_chunk *o = c->out;
	unsigned char *p = (unsigned char *)o->p + o->off;
	size_t avail = o->len - o->off, n = wsa__frame_size(p), next;

	while (n < avail && n + (next = wsa__frame_size(p + n)) <= WSA_TX_BATCH)
		n += next;
	if (lws_write(c->wsi, p, n, LWS_WRITE_RAW) < 0)
		return -1;
	o->off += n;
	WSA_COUNT(c->svc, queued_bytes, -n);
	if (o->off == o->len) /* idle connections hold nothing */
		out_free(c);
	return 0;
}

/* Output is queued: on a loop of our own, written when this round of
 * the loop ends (wsa__conn_flush), with whatever else the round queues
 * for the connection. Asking lws for POLLOUT instead costs a round of the
 * loop and two epoll_ctl calls a reply. */
static void want_write(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;

	if (c->in_flush)
		return;
	if (!svc->own_loop ||
	    (svc->nflush == svc->flush_cap && !flush_grow(svc))) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	c->in_flush = true;
	c->refs++; /* until it is flushed */
	svc->flush[svc->nflush++] = c;
}

/* Write the queued frames of a connection libwsa reads (plain, on a loop
 * of ours) with one send() of our own, without lws' writeable round: lws
 * owes such a connection nothing of its own (its pongs and close echoes
 * are queued here), so only the tail of an earlier short send (lws'
 * partial buffer) must go first; the caller checks for it. If the socket
 * takes part of a frame, the rest of that frame is handed to lws, which
 * keeps it and sends it before anything else: what stays queued here is
 * still whole frames, as everywhere else (a close or a dropped queue
 * never cuts one). -1: the connection is broken. */
static int write_raw(struct wsa_conn *c)
{
	struct wsa_chunk *o = c->out;
	unsigned char *p = (unsigned char *)o->p + o->off;
	size_t avail = o->len - o->off, done = 0, f = 0, sent;
	ssize_t m;

	do
		m = send(lws_get_socket_fd(c->wsi), p, avail, MSG_NOSIGNAL);
	while (m < 0 && errno == EINTR);
	if (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return -1;
	sent = m < 0 ? 0 : (size_t)m;
	while (done < sent && done + (f = wsa__frame_size(p + done)) <= sent)
		done += f;
	if (done < sent) {
		if (lws_write(c->wsi, p + sent, done + f - sent,
			      LWS_WRITE_RAW) < 0)
			return -1;
		done += f;
	}
	o->off += done;
	WSA_COUNT(c->svc, queued_bytes, -done);
	if (o->off == o->len) /* idle connections hold nothing */
		out_free(c);
	return 0;
}

/* Whether c's frames may go by write_raw now. */
static bool raw_ready(const struct wsa_conn *c)
{
	return c->rd.own && !c->deflate && wsa__conn_live(c) &&
	       !lws_partial_buffered(c->wsi);
}

/* A connection libwsa reads is written at once (write_raw). Any other is
 * served as lws serves a writeable socket (what the libev glue does on
 * POLLOUT), so lws' order holds: a pong it owes, or the tail of a short
 * send, goes before our frames; then our writeable callback writes them,
 * or the close. The socket may be full: what is left waits for POLLOUT
 * (lws keeps the tail of a short send and asks for it itself). */
void wsa__conn_flush(struct wsa_service *svc)
{
	size_t i;

	for (i = 0; i < svc->nflush; i++) {
		struct wsa_conn *c = svc->flush[i];

		c->in_flush = false;
		if (c->wsi && c->out && raw_ready(c)) {
			if (write_raw(c))
				wsa__read_end(c);
		} else if (c->wsi && c->out) {
			struct lws_pollfd pfd = {
			    .fd = lws_get_socket_fd(c->wsi),
			    .events = LWS_POLLOUT,
			    .revents = LWS_POLLOUT,
			};

			lws_service_fd(svc->ctx, &pfd);
		}
		/* What is left goes at POLLOUT. */
		if (c->wsi && c->out)
			lws_callback_on_writable(c->wsi);
		wsa__conn_unref(c);
	}
	svc->nflush = 0;
}

int wsa__conn_writeable(struct wsa_conn *c)
{
	struct lws *wsi = c->wsi;
	int budget = 4; /* writes per callback, so one busy peer yields */

	if (c->deflate && c->out && !lws_partial_buffered(wsi) &&
	    write_messages(c))
		return -1;
	if (c->out && raw_ready(c)) {
		if (write_raw(c))
			return -1;
	} else {
		while (!c->deflate && c->out && budget-- &&
		       !lws_partial_buffered(wsi))
			if (write_frames(c))
				return -1;
	}
	if (c->out || (c->close_code && lws_partial_buffered(wsi))) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (c->state == WSA_CONN_CLOSING && c->close_code && !c->close_sent)
		return send_close(c);
	return 0;
}

/* Append a frame (head, then body) to the outbound buffer, within the
 * connection's limit on queued bytes: a peer that does not read what it
 * is sent is cut off (1008) rather than hold the server's memory. The
 * buffer starts with LWS_PRE bytes of headroom, as lws_write wants. */
/* Whether n more bytes stay within the connection's limit on queued
 * bytes; if not, the queue is dropped and the connection closed. */
static bool queue_fits(struct wsa_conn *c, size_t n)
{
	struct wsa_chunk *o = c->out;
	size_t queued = o ? o->len - o->off : 0;

	if (n <= c->svc->srv->cfg.max_queued_bytes - queued)
		return true;
	WSA_LOG_PEER(c->svc->srv, WSA_LOG_NOTICE, WSA_PL_QUEUE_FULL, c,
		     "send queue full (%zu bytes queued): closing", queued);
	out_drop(c); /* whole frames only: safe to drop */
	WSA_COUNT(c->svc, slow_consumers, 1);
	wsa__conn_close(c, WSA_CLOSE_POLICY, "Send queue full");
	return false;
}

/* A frame of n bytes was put at the end of the output buffer. */
static void queued(struct wsa_conn *c, size_t n)
{
	c->out->len += n;
	WSA_COUNT(c->svc, sent, 1);
	WSA_COUNT(c->svc, sent_bytes, n);
	WSA_COUNT(c->svc, queued_bytes, n);
	want_write(c);
}

static int append_frame(struct wsa_conn *c, const void *head, size_t hlen,
			const void *body, size_t blen)
{
	struct wsa_chunk *o = c->out;
	size_t n = hlen + blen;

	if (!queue_fits(c, n))
		return WSA_ECLOSED;
	if (!o) {
		out_reuse(c);
		if (!wsa__chunk_reserve(&c->out, LWS_PRE + n)) {
			out_free(c); /* a spare too small: nothing queued */
			return WSA_ENOMEM;
		}
		o = c->out;
		o->len = o->off = LWS_PRE;
	} else if (!wsa__chunk_reserve(&c->out, n))
		return WSA_ENOMEM;
	o = c->out;
	memcpy(o->p + o->len, head, hlen);
	if (blen)
		memcpy(o->p + o->len + hlen, body, blen);
	queued(c, n);
	return WSA_OK;
}

/* Queue the JSON text in b as one text frame. */
static int queue_frame(struct wsa_conn *c, const char *text, size_t len)
{
	unsigned char hdr[WSA_FRAME_HEADER_MAX];

	return append_frame(c, hdr, wsa__frame_header(hdr, 0x1, len), text,
			    len);
}

int wsa__conn_queue_framed(struct wsa_conn *c, const void *frame, size_t n)
{
	return append_frame(c, frame, n, NULL, 0);
}

/* Put "id" into the object text in b, before its closing brace. */
static bool splice_id(struct wsa_buf *b, const json_t *id)
{
	size_t len = b->len;
	bool empty = len == 2;

	b->len--; /* the '}' */
	if (wsa__buf_append(b, empty ? "\"id\":" : ",\"id\":", 6 - empty) &&
	    wsa__json_dump(id, b) && wsa__buf_append(b, "}", 1))
		return true;
	b->len = len;
	return false;
}

/* Queue the object text in b (the server's scratch), with id. */
static int queue_object(struct wsa_conn *c, struct wsa_buf *b, const json_t *id)
{
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	if (id && !splice_id(b, id))
		return WSA_ENOMEM;
	return queue_frame(c, b->p, b->len);
}

int wsa__conn_queue_text(struct wsa_conn *c, const char *text, size_t len,
			 const json_t *id)
{
	struct wsa_buf *b = &c->svc->scratch;

	if (len < 2 || text[0] != '{' || text[len - 1] != '}')
		return WSA_EINVAL;
	if (!id) { /* framed straight from text: no copy to splice into */
		if (!wsa__conn_live(c))
			return WSA_ECLOSED;
		return queue_frame(c, text, len);
	}
	b->len = 0;
	if (!wsa__buf_append(b, text, len))
		return WSA_ENOMEM;
	return queue_object(c, b, id);
}

int wsa__conn_queue_error(struct wsa_conn *c, const char *text,
			  const json_t *id)
{
	json_t *msg = json_pack("{s:s,s:s}", "type", "error", "message", text);
	int rc;

	wsa__count_error(c->svc, text);
	if (!msg)
		return WSA_ENOMEM;
	rc = wsa__conn_queue_json(c, msg, id);
	json_decref(msg);
	return rc;
}

void wsa__conn_close(struct wsa_conn *c, int code, const char *reason)
{
	if (!wsa__conn_live(c))
		return;
	WSA_LOG(c->svc->srv, WSA_LOG_INFO, c, "closing (%d %s)", code,
		reason ? reason : "");
	leave_limits(c);
	to_closing(c);
	c->close_code = code;
	/* Without memory the close goes out without its reason. */
	c->close_reason = reason ? strdup(reason) : NULL;
	/* So the peer's close is read. */
	wsa__timeline_remove(&c->svc->paused, &c->paused);
	wsa__conn_pause_rx(c, WSA_PAUSE_AUTH | WSA_PAUSE_RATE, false);
	/* A peer that never reads must not hold the connection forever. The
	 * deadline is ours (timer.c): lws' timeouts are a list sorted by
	 * walking it, too slow for a flood of closes. */
	if (!wsa__heap_set(&c->svc->deadlines, &c->deadline,
			   lws_now_usecs() +
			       (lws_usec_t)c->svc->srv->cfg.drain_timeout_ms *
				   1000))
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
				(int)(c->svc->srv->cfg.drain_timeout_ms + 999) /
				    1000);
	lws_callback_on_writable(c->wsi);
}

void wsa__conn_owed(struct wsa_conn *c, int rc)
{
	if (rc == WSA_ENOMEM)
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
}

void wsa__conn_fail(struct wsa_conn *c, const char *error, const json_t *id,
		    int code)
{
	wsa__conn_queue_error(c, error, id);
	wsa__conn_close(c, code, error);
}

void wsa__conn_pause_rx(struct wsa_conn *c, unsigned reason, bool pause)
{
	unsigned char was = c->rx_paused;

	c->rx_paused = (unsigned char)(pause ? was | reason : was & ~reason);
	if (!c->wsi || !was == !c->rx_paused)
		return;
	if (c->rd.own)
		wsa__read_watch(c, !c->rx_paused);
	else
		lws_rx_flow_control(c->wsi, c->rx_paused ? 0 : 1);
}

/* Arm the expiry timer for a token expiring at exp (seconds since the
 * epoch); exp <= 0 disarms it. */
static void set_expiry(struct wsa_conn *c, double exp)
{
	struct timespec ts;
	double in;

	wsa__heap_clear(&c->svc->deadlines, &c->deadline);
	if (exp <= 0)
		return;
	/* exp is wall-clock time; lws timers count on their own clock. */
	clock_gettime(CLOCK_REALTIME, &ts);
	in = exp - ((double)ts.tv_sec + ts.tv_nsec / 1e9);
	if (in > 1e9) /* beyond any run of the process */
		return;
	if (!wsa__heap_set(&c->svc->deadlines, &c->deadline,
			   lws_now_usecs() +
			       (in > 0 ? (lws_usec_t)(in * 1e6) : 0)))
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
}

/* Install the identity of accepted claims naming uid; WSA_ENOMEM leaves
 * the connection as it was. */
static int set_identity(struct wsa_conn *c, const json_t *claims,
			const char *uid)
{
	const char *email = json_string_value(json_object_get(claims, "email"));
	size_t ulen = strlen(uid), elen = email ? strlen(email) : 0;
	struct wsa_buf *text = &c->svc->scratch;
	char *ident;

	text->len = 0;
	if (!wsa__json_dump(claims, text))
		return WSA_ENOMEM;
	ident = malloc(ulen + elen + text->len + 3);
	if (!ident)
		return WSA_ENOMEM;
	memcpy(ident, uid, ulen + 1);
	memcpy(ident + ulen + 1, email ? email : "", elen + 1);
	memcpy(ident + ulen + elen + 2, text->p, text->len);
	ident[ulen + elen + 2 + text->len] = '\0';
	free(c->ident);
	json_decref(c->claims);
	c->claims = NULL;
	c->ident = ident;
	c->has_email = email != NULL;
	return WSA_OK;
}

void wsa__conn_authenticated(struct wsa_conn *c, const json_t *claims,
			     const char *uid, double leeway, const json_t *id)
{
	const json_t *exp = json_object_get(claims, "exp");
	bool first = !c->authenticated;
	static const char reply[] = WSA_MSG_AUTH_OK;

	if (first && !wsa__user_admit(&c->svc->srv->guard, uid)) {
		WSA_LOG_PEER(c->svc->srv, WSA_LOG_NOTICE,
			     WSA_PL_LOGIN_USER_LIMIT, c,
			     "login refused: max_connections_per_user reached");
		WSA_COUNT(c->svc, logins[WSA_LOGIN_LIMIT], 1);
		wsa__conn_close(c, WSA_CLOSE_TRY_AGAIN_LATER,
				"Too many connections");
		return;
	}
	if (set_identity(c, claims, uid) || wsa__user_add(c)) {
		if (first)
			wsa__user_release(&c->svc->srv->guard, uid);
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (first) {
		WSA_COUNT(c->svc, logins[WSA_LOGIN_ACCEPTED], 1);
		WSA_COUNT(c->svc, conns_auth[c->route->index], 1);
		c->user_counted = true;
		c->fan_since = atomic_load(&c->svc->srv->fan_seq);
		wsa__rate_start(&c->svc->srv->guard, &c->rate, c->peer);
	} else {
		WSA_COUNT(c->svc, refreshes, 1);
	}
	c->authenticated = true;
	c->state = WSA_CONN_OPEN;
	c->iat = wsa__json_claims_iat(claims);
	set_expiry(c,
		   json_is_number(exp) ? json_number_value(exp) + leeway : 0);
	wsa__conn_owed(c,
		       wsa__conn_queue_text(c, reply, sizeof(reply) - 1, id));
	WSA_LOG(c->svc->srv, WSA_LOG_INFO, c, "%s as %.128s",
		first ? "authenticated" : "refreshed", c->ident);
	if (first && c->route->on_open)
		c->route->on_open(c, c->route->userdata);
	wsa__conn_pause_rx(c, WSA_PAUSE_AUTH, false);
}

void wsa__conn_login_refused(struct wsa_conn *c, const json_t *id,
			     const char *why)
{
	WSA_LOG_PEER(c->svc->srv, WSA_LOG_NOTICE, WSA_PL_LOGIN_REJECTED, c,
		     "login rejected: %s", why);
	wsa__conn_fail(c, WSA_MSG_AUTH_FAILED, id, WSA_CLOSE_POLICY);
}

void wsa__conn_rate_pause(struct wsa_conn *c)
{
	if (wsa__timeline_has(&c->svc->paused, &c->paused))
		return;
	/* Readable again once one more message fits the burst: at most one
	 * message's cost from now (the timeline's wait). */
	wsa__timeline_touch(&c->svc->paused, &c->paused, lws_now_usecs());
	wsa__conn_pause_rx(c, WSA_PAUSE_RATE, true);
	/* What it reads from now on is bounded as lws' buffer bounded it
	 * (read.c): a flood must not be held a whole loop buffer at a
	 * time. */
	c->rd.small = true;
}

void wsa__conn_rate_close(struct wsa_conn *c, const json_t *id)
{
	WSA_LOG_PEER(c->svc->srv, WSA_LOG_NOTICE, WSA_PL_RATE_ABUSED, c,
		     "closed: rate limit abused");
	wsa__rate_abused(&c->svc->srv->guard, c->peer);
	wsa__conn_fail(c, WSA_MSG_RATE_LIMIT, id, WSA_CLOSE_POLICY);
	/* The flood is not read through for the peer's close (which
	 * wsa__conn_close would do): what it has in flight stays in its
	 * socket until the close deadline hangs up; reading it cost more
	 * than the flood's share. */
	wsa__conn_pause_rx(c, WSA_PAUSE_RATE, true);
}

const char *wsa__conn_log_id(const struct wsa_conn *c)
{
	return c ? c->id : NULL;
}

const char *wsa__conn_log_route(const struct wsa_conn *c)
{
	return c && c->route ? c->route->path : NULL;
}

/* ------------------------------------------------------------ public */

const char *wsa_conn_id(const wsa_conn *c)
{
	return c->id;
}

wsa_route *wsa_conn_route(const wsa_conn *c)
{
	return c->route;
}

bool wsa_conn_is_authenticated(const wsa_conn *c)
{
	return c->authenticated;
}

const char *wsa_conn_uid(const wsa_conn *c)
{
	return c->ident;
}

/* The email and the claims' text follow the uid in ident. */
static const char *ident_email(const struct wsa_conn *c)
{
	return c->ident ? c->ident + strlen(c->ident) + 1 : NULL;
}

const char *wsa_conn_email(const wsa_conn *c)
{
	return c->has_email ? ident_email(c) : NULL;
}

json_t *wsa_conn_claims(const wsa_conn *c)
{
	struct wsa_conn *w = (struct wsa_conn *)c; /* a cache, not a change */

	const char *email = ident_email(c);

	if (!w->claims && email) {
		const char *text = email + strlen(email) + 1;

		w->claims = wsa__json_parse(text, strlen(text), NULL);
	}
	return w->claims;
}

void *wsa_conn_userdata(const wsa_conn *c)
{
	return c->userdata;
}

void wsa_conn_set_userdata(wsa_conn *c, void *userdata)
{
	c->userdata = userdata;
}

size_t wsa_conn_queued_bytes(const wsa_conn *c)
{
	return c->out ? c->out->len - c->out->off : 0;
}

/* The most room made for a reply at once, whatever the last one was:
 * more grows as it is written. */
#define WSA_REPLY_HINT_MAX 65536

/* Put "id" into the object text in the output buffer from offset text
 * on, before its closing brace. */
static bool splice_out_id(struct wsa_conn *c, size_t text, const json_t *id)
{
	size_t len = c->out->len;
	bool empty = len - text == 2;

	c->out->len--; /* the '}' */
	if (wsa__chunk_append(&c->out,
			      empty ? "\"id\":" : ",\"id\":", 6 - empty) &&
	    wsa__json_dump_chunk(id, &c->out) &&
	    wsa__chunk_append(&c->out, "}", 1))
		return true;
	c->out->len = len;
	return false;
}

/* Make room at the end of the output buffer for n bytes; an empty one
 * takes a spare (out_reuse) and starts with LWS_PRE bytes of headroom, as
 * lws_write wants. */
static bool out_room(struct wsa_conn *c, size_t n)
{
	if (c->out)
		return wsa__chunk_reserve(&c->out, n);
	out_reuse(c);
	if (!wsa__chunk_reserve(&c->out, LWS_PRE + n)) {
		out_free(c); /* a spare too small: nothing queued */
		return false;
	}
	c->out->len = c->out->off = LWS_PRE;
	return true;
}

/* Serialise msg, with id spliced in, straight into the output buffer as a
 * text frame: the reply is not copied from a scratch buffer. The text
 * goes behind room for the header that a reply as long as the last one on
 * this loop needs; one of another length class (under 126 bytes, under
 * 64 KiB, more) moves to fit its header. An empty buffer gets room for
 * such a reply too, so that writing seldom grows it. On failure the
 * buffer is as it was. */
static int queue_json_frame(struct wsa_conn *c, const json_t *msg,
			    const json_t *id)
{
	bool was_empty = !c->out;
	size_t hint = c->svc->reply_hint, start, text, len, h, guess;
	unsigned char hdr[WSA_FRAME_HEADER_MAX];
	int rc = WSA_ENOMEM;

	if (!wsa__conn_live(c)) /* before any serialising */
		return WSA_ECLOSED;
	guess = wsa__frame_header(hdr, 0x1, hint);
	if (!out_room(c, guess + hint))
		return WSA_ENOMEM;
	start = c->out->len;
	text = c->out->len += guess;
	if (!wsa__json_dump_chunk(msg, &c->out))
		goto undo;
	if (id && !splice_out_id(c, text, id))
		goto undo;
	len = c->out->len - text;
	c->svc->reply_hint =
	    len < WSA_REPLY_HINT_MAX ? len : WSA_REPLY_HINT_MAX;
	h = wsa__frame_header(hdr, 0x1, len);
	c->out->len = start;
	if (!queue_fits(c, h + len))
		return WSA_ECLOSED; /* the buffer is dropped */
	if (!wsa__chunk_reserve(&c->out, h + len))
		goto undo;
	if (h != guess)
		memmove(c->out->p + start + h, c->out->p + text, len);
	memcpy(c->out->p + start, hdr, h);
	queued(c, h + len);
	return WSA_OK;
undo:
	c->out->len = start;
	if (was_empty)
		out_free(c);
	return rc;
}

int wsa__conn_queue_json(struct wsa_conn *c, const json_t *msg,
			 const json_t *id)
{
	if (!json_is_object(msg))
		return WSA_EINVAL;
	if (id && json_object_get(msg, "id"))
		id = NULL;
	return queue_json_frame(c, msg, id);
}

int wsa_conn_send(wsa_conn *c, const json_t *msg)
{
	if (!c || !msg)
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	return wsa__conn_queue_json(c, msg, wsa__conn_reply_id(c));
}

int wsa_conn_send_new(wsa_conn *c, json_t *msg)
{
	int rc = wsa_conn_send(c, msg);

	json_decref(msg);
	return rc;
}

int wsa_conn_send_error(wsa_conn *c, const char *message)
{
	if (!c || !message)
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	return wsa__conn_queue_error(c, message, wsa__conn_reply_id(c));
}

bool wsa__close_code_ok(int code)
{
	if (code == 1000 || (code >= 3000 && code <= 4999))
		return true;
	return code >= 1001 && code <= 1014 && code != 1004 && code != 1005 &&
	       code != 1006;
}

int wsa_conn_close(wsa_conn *c, int code, const char *reason)
{
	if (!c || !wsa__close_code_ok(code) || (reason && strlen(reason) > 123))
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	wsa__conn_close(c, code, reason);
	return WSA_OK;
}
