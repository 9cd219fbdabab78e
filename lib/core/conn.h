/* Connections: per-connection state, inbound reassembly, the outbound
 * queue (written only from the writeable callback), what its deadlines
 * mean, applying the auth gate's decisions, close. A connection belongs
 * to one service (loop) for its life. */
#ifndef WSA_LIB_CONN_H
#define WSA_LIB_CONN_H

#include <ev.h>
#include <libwebsockets.h>

#include "codec/parse.h"
#include "core/service.h"
#include "policy/guard.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/timer.h"
#include "wsa.h"

#define WSA_CONN_ID_LEN 22

enum wsa_conn_state {
	WSA_CONN_AWAIT_LOGIN, /* nothing but a login is accepted */
	WSA_CONN_VERIFYING,   /* a login is with the verifier; rx paused */
	WSA_CONN_OPEN,	      /* authenticated */
	WSA_CONN_CLOSING,     /* close queued; input ignored */
};

/* A connection that libwsa reads itself (core/read.c): its watcher on the
 * socket, the frame it is inside, and what was read but not consumed. */
struct wsa_reader {
	ev_io io;	     /* on the socket, beside libwebsockets' own */
	unsigned char *held; /* read, not consumed: nheld bytes from hoff */
	uint64_t left;	     /* the current data frame's payload to come */
	uint32_t nheld, hoff;
	unsigned char key[4]; /* the current data frame's mask */
	unsigned char pos;    /* its payload bytes come so far, mod 256 */
	unsigned char op;     /* the message it is part of: 1 text, 2 binary */
	bool fin : 1;	      /* it ends its message */
	bool in_msg : 1;      /* a fragmented message has begun */
	bool own : 1;	      /* libwsa reads the connection */
	bool fresh : 1;	  /* in svc->fresh: taken over at the round's end? */
	bool lws_fed : 1; /* libwebsockets delivered something of it */
	bool small : 1;	  /* read rx_buffer_size at a time (read.c) */
	bool failed : 1;  /* the stream broke RFC 6455: nothing parsed */
	bool ended : 1;	  /* read no more: the connection is ending */
};

struct wsa_conn {
	/* Ordered so that it packs: an idle connection is mostly this,
	 * libwebsockets' own state and the identity. */
	/* Its loop (and svc->srv its server). The loop finds its
	 * connections through its index by id (wsa__conn_each): no list. */
	struct wsa_service *svc;
	struct wsa_route *route;
	struct lws *wsi; /* NULL once libwebsockets closed it */
	char id[WSA_CONN_ID_LEN + 1];
	unsigned char rx_paused;    /* WSA_PAUSE_* bits: not read while set */
	struct wsa_link id_link;    /* in svc->conns_by_id, its key id */
	struct wsa_auth *auth_wait; /* a login waiting for the budget */

	/* The identity, kept small for idle connections: one allocation
	 * holds uid, email and the claim set as compact JSON text, which is
	 * parsed only when a handler asks for the claims. */
	char *ident;	/* uid '\0' email '\0' claims '\0' */
	json_t *claims; /* parsed on demand */
	void *userdata;

	/* Never needed at once, so one place holds either: */
	union {
		/* while it is live, a message arriving in pieces, being
		 * reassembled; NULL between messages (and for one that
		 * came whole); */
		struct wsa_chunk *rx;
		/* once closing, the reason of our close (may be NULL). */
		char *close_reason;
	};

	/* Outbound frames, ready to write, from out->p + out->off to
	 * out->p + out->len; written only from the writeable callback.
	 * NULL when nothing is queued: an idle connection holds no block. */
	struct wsa_chunk *out;

	/* The small fields together, flags as bits: an idle connection's
	 * size is counted in malloc's 16-byte steps. */
	unsigned refs;	      /* the connection itself, pending logins */
	unsigned discarded;   /* bytes dropped since it began closing (at most
				 WSA_DISCARD_MAX counted) */
	int close_code;	      /* sent, or received from the peer */
	struct wsa_utf8 utf8; /* the text message arriving, checked so far */
	unsigned char state;  /* enum wsa_conn_state */
	bool authenticated : 1;
	bool has_email : 1;    /* ident holds one (it may be empty) */
	bool user_counted : 1; /* in max_connections_per_user */
	bool close_sent : 1;   /* our close frame is out; awaiting the peer's */
	bool deflate : 1;      /* permessage-deflate negotiated: lws frames */
	bool in_flush : 1;     /* in svc->flush */
	bool in_users : 1;     /* in svc->users (fanout.c) */
	bool pinged : 1;       /* live is on svc->pinged, not svc->seen */

	unsigned ntopics;	      /* of them */
	struct wsa_member *topics;    /* the topics it is in */
	unsigned long long fan_since; /* the last fan-out before its login */
	/* The index of uids (svc->users) holds the first connection of
	 * each; the others of the same uid on the loop follow it through
	 * user_next. No allocation a user: most have one connection. */
	struct wsa_link user_link;
	struct wsa_conn *user_prev, *user_next;

	/* The login deadline, then the token's expiry, or the deadline of
	 * its close (svc->deadlines). */
	struct wsa_deadline deadline;
	/* Its client address, for the limits (guard.c). */
	struct wsa_peer *peer;
	/* Message rate (guard.c); over it, not read until its time comes
	 * (svc->paused). */
	struct wsa_rate rate;
	struct wsa_timed paused;
	long long iat; /* the token's "iat", LLONG_MIN when it has none */
	/* The last message, for the idle timeout (svc->idle). */
	struct wsa_timed idle;
	/* Liveness: the last frame from the peer (svc->seen), or the ping
	 * that awaits an answer (svc->pinged). */
	struct wsa_timed live;
	struct wsa_reader rd; /* plain connections on a loop of ours */
};

/* Whether the connection still takes output and input: not closing nor
 * closed (a closed connection, wsi NULL, is in the closing state too). */
static inline bool wsa__conn_live(const struct wsa_conn *c)
{
	return c->state != WSA_CONN_CLOSING;
}

/* The "id" of the message of c being handled (replies carry it), or
 * NULL. */
static inline const json_t *wsa__conn_reply_id(const struct wsa_conn *c)
{
	return c->svc->replying == c ? c->svc->reply_id : NULL;
}

/* Draw a connection id for a connection of svc (WSA_CONN_ID_LEN letters
 * and a NUL; the first says which loop); false when the random generator
 * fails. */
bool wsa__conn_make_id(struct wsa_service *svc, char *id);

/* Create the state of a connection that reached route, with id (drawn
 * when NULL); NULL when memory is short. It is linked into its service
 * and holds one reference. */
struct wsa_conn *wsa__conn_new(struct wsa_service *svc, struct wsa_route *route,
			       struct lws *wsi, const char *id);

/* Set up svc's index of its connections by id. */
void wsa__conn_index_init(struct wsa_service *svc);

/* The connection of svc with the NUL-terminated id, or NULL. */
struct wsa_conn *wsa__conn_by_id(const struct wsa_service *svc, const char *id);

/* Call fn(c, arg) for each connection of svc that libwebsockets has not
 * closed yet, in no order. fn may close c (wsa__conn_close), not free
 * it. */
void wsa__conn_each(struct wsa_service *svc,
		    void (*fn)(struct wsa_conn *c, void *arg), void *arg);

/* Set up the deadlines of svc's loop, which say what they mean here. */
void wsa__conn_timers_init(struct wsa_service *svc);

/* Stop them (the loop stops). */
void wsa__conn_timers_stop(struct wsa_service *svc);

/* libwebsockets closed the connection: run the close handler once and
 * drop the connection's own reference. */
void wsa__conn_closed(struct wsa_conn *conn);

/* Drop a reference; the last one frees. */
void wsa__conn_unref(struct wsa_conn *conn);

/* Feed one piece of a received frame; reassembles and dispatches whole
 * messages. Returns -1 when libwebsockets should drop the connection. */
int wsa__conn_receive(struct wsa_conn *conn, const void *in, size_t len);

/* One piece of a text message's payload, len bytes at in, read by
 * libwsa (core/read.c): remaining bytes of its frame are still to come,
 * and final says that the message ends with this piece. Limits, UTF-8,
 * reassembly and delivery as for wsa__conn_receive. */
void wsa__conn_piece(struct wsa_conn *conn, const void *in, size_t len,
		     size_t remaining, bool final);

/* The largest message the connection may send now (the login's limit
 * before its login). */
size_t wsa__conn_limit(const struct wsa_conn *conn);

/* Data came from the peer: it is alive, and not idle. */
void wsa__conn_active(struct wsa_conn *conn);

/* Write what is queued; returns -1 to make libwebsockets close. */
int wsa__conn_writeable(struct wsa_conn *conn);

/* Write what this round of the loop queued, before the loop waits again
 * (a loop of our own only). */
void wsa__conn_flush(struct wsa_service *svc);

/* Queue the text of a JSON object as one frame, with "id": id spliced in
 * before its final '}' when id is not NULL (the caller makes sure the
 * object has no "id" of its own). Returns WSA_OK, WSA_EINVAL (not an
 * object's text), WSA_ECLOSED, WSA_ENOMEM. */
int wsa__conn_queue_text(struct wsa_conn *conn, const char *text, size_t len,
			 const json_t *id);

/* Serialise an object and queue it, with id unless msg has its own. */
int wsa__conn_queue_json(struct wsa_conn *conn, const json_t *msg,
			 const json_t *id);

/* Queue a frame built already (fan-out frames once for everyone); bound
 * by max_queued_bytes like every queued frame. */
int wsa__conn_queue_framed(struct wsa_conn *conn, const void *frame, size_t n);

/* Queue {"type":"error","message":text}, with id when not NULL. */
int wsa__conn_queue_error(struct wsa_conn *conn, const char *text,
			  const json_t *id);

/* Queue a close after everything already queued; input is ignored from
 * now on. Idempotent: the first code wins. */
void wsa__conn_close(struct wsa_conn *conn, int code, const char *reason);

/* Whether an endpoint may send close code code (RFC 6455 7.4). */
bool wsa__close_code_ok(int code);

/* The peer sent a close frame, whose payload (len bytes at in) lws has
 * not answered yet. A valid one keeps its code for the close handler
 * (unless ours came first) and returns 0: lws echoes it. An invalid one
 * (RFC 6455 5.5.1, 7.4) is answered with our close, 1002 or 1007, which
 * the close handler then sees; the answer to our own close ends the
 * connection too. Nonzero: hang up, without lws' echo. */
int wsa__conn_peer_close(struct wsa_conn *conn, const unsigned char *in,
			 size_t len);

/* Check the result of queueing a reply the library owes the peer: when
 * memory ran out the connection is closed with 1011, so the peer is not
 * left waiting for an answer that will never come. */
void wsa__conn_owed(struct wsa_conn *conn, int rc);

/* Queue an error and then a close. */
void wsa__conn_fail(struct wsa_conn *conn, const char *error, const json_t *id,
		    int code);

/* Why a connection is not read: a login with the verifier, or its
 * message rate. */
#define WSA_PAUSE_AUTH 1u
#define WSA_PAUSE_RATE 2u

/* Stop or resume reading from the peer for one reason; it is read again
 * once no reason is left. */
void wsa__conn_pause_rx(struct wsa_conn *conn, unsigned reason, bool pause);

/* The auth gate accepted claims naming uid (a first login or a
 * refresh): install the identity, count the user, start the rate and the
 * expiry timer, answer with id, run the open handler the first time, and
 * read on. */
void wsa__conn_authenticated(struct wsa_conn *conn, const json_t *claims,
			     const char *uid, double leeway, const json_t *id);

/* The auth gate refused a login (why: for the log): "Authentication
 * failed" with id, then a close, 1008. */
void wsa__conn_login_refused(struct wsa_conn *conn, const json_t *id,
			     const char *why);

/* A frame of any kind (a pong too) came from the peer at now: it is
 * alive. */
void wsa__conn_seen(struct wsa_conn *conn, lws_usec_t now);

/* Over its rate: not read until it may send again. */
void wsa__conn_rate_pause(struct wsa_conn *conn);

/* Closed for abusing its rate: the error with id, then 1008, and nothing
 * more read from it. */
void wsa__conn_rate_close(struct wsa_conn *conn, const json_t *id);

#endif
