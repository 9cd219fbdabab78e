/* One process's event loop and its connections.
 *
 * conn.c speaks the protocol on one connection (connect, upgrade, login,
 * frames, pings, close); engine.c drives the modes (set-up, warm-up, the
 * measured window, closing) and is told by conn.c when a connection is
 * ready, has a message, or has ended.  conn.c never opens connections
 * itself: the engine does that between two epoll_wait calls, so a slot is
 * never reused while events for its old socket are still being handled. */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include <stdint.h>

#include "lg.h"
#include "payload.h"
#include "ws.h"

enum conn_state {
	CS_FREE,
	CS_CONNECTING,
	CS_HANDSHAKE,
	CS_LOGIN,
	CS_OPEN,
	CS_CLOSING
};

struct conn {
	int fd;
	uint32_t gen; /* bumped when the socket closes: stale events */
	uint32_t idx; /* global index: uid and source address */
	uint32_t attempts;
	uint8_t state;
	uint8_t frag_op; /* opcode of the message being reassembled */
	uint8_t want_out;
	uint8_t peer_closed; /* the server's close frame came */
	uint8_t queued;	     /* flood: waiting in the feed queue */
	uint8_t pace;	     /* paced echo: PACE_* bits */
	uint64_t t_start;    /* when connect() was called */
	uint8_t *rbuf;	     /* unparsed bytes (a partial frame or head) */
	uint32_t rlen, rcap;
	uint8_t *mbuf; /* a fragmented message being reassembled */
	uint32_t mlen, mcap;
	uint8_t *wbuf; /* bytes not yet sent */
	uint32_t woff, wlen, wcap;
	uint32_t sent, rcvd; /* echo messages sent and answered */
	char accept[WS_ACCEPT_LEN + 1];
};

/* Paced echo: a message leaves once the last reply is in and its time
 * has come. */
enum { PACE_REPLIED = 1, PACE_DUE = 2 };

/* Connection slots waiting for a time, earliest first (a binary heap); a
 * slot is queued at most once, so one as long as the connections holds
 * them. */
struct dueq {
	uint32_t *slot;
	uint64_t *t;
	uint32_t len, cap;
};

/* What phase the engine is in. */
enum eng_phase { EP_SETUP, EP_WAIT_GO, EP_RUN, EP_CLOSING, EP_DONE };

struct engine {
	const struct lg_opts *o;
	struct lg_share sh;
	int ep;	 /* epoll */
	int ctl; /* control socket to the parent, or -1 */
	int sig; /* signalfd for SIGINT and SIGTERM */
	int in;	 /* stdin when watched for EOF (idle, alone), or -1 */
	struct conn *c;
	uint32_t n;
	char **tok;
	struct lg_rng rng;
	uint8_t *scratch; /* every read lands here first */
	size_t scratch_cap;
	uint64_t now;
	struct lg_payload pl;
	uint64_t *ts; /* echo send times: n rings of --inflight */
	enum eng_phase phase;
	int stop; /* a signal, STOP, or stdin EOF */
	uint32_t started, pending, open, closing;
	uint64_t t0, setup_end, warm_end, meas_end, close_end, hard_end;
	uint64_t next_scan;
	uint32_t *freel; /* connect, unauth, flood: slots to open */
	uint32_t nfree;
	struct dueq retry; /* unauth, flood: failed slots, reopened later */
	struct dueq feed;  /* flood: connections the socket took all from */
	struct dueq paced; /* echo --rate: when each connection sends next */
	uint64_t period;   /* echo --rate: 1 s / rate */
	uint64_t *due;	   /* echo --rate: each connection's next send */
	uint32_t batch;	   /* flood: messages per write */
	int measuring;
	double cpu0;
	unsigned printed; /* failure reasons printed so far */
	struct lg_result r;
};

/* conn.c */
void conn_init(struct conn *c, uint32_t idx);
void conn_open(struct engine *e, struct conn *c);
void conn_event(struct engine *e, struct conn *c, uint32_t events);
uint8_t *conn_frame_begin(struct conn *c, unsigned fin_op, size_t len,
			  struct lg_rng *rng);
void conn_frame_end(uint8_t *payload, size_t len);
void conn_flush(struct engine *e, struct conn *c);
void conn_close(struct engine *e, struct conn *c);
void conn_fail(struct engine *e, struct conn *c, enum lg_fail why,
	       const char *detail);
void conn_release(struct engine *e, struct conn *c, int reset);
/* Frees the buffers of a connection that has nothing queued or kept. */
void conn_trim(struct conn *c);
void conn_free(struct conn *c);

/* engine.c: what conn.c reports. */
void eng_ready(struct engine *e, struct conn *c);
void eng_message(struct engine *e, struct conn *c, const uint8_t *p, size_t n);
/* Flood: everything queued on c went to the socket. */
void eng_drained(struct engine *e, struct conn *c);
/* The connection is gone (its socket is closed).  was: its state before;
 * why: LG_F_COUNT when it ended as asked (a close we started). */
void eng_ended(struct engine *e, struct conn *c, enum conn_state was,
	       enum lg_fail why, const char *detail);

int engine_run(const struct lg_opts *o, const struct lg_share *sh, int ctl,
	       struct lg_result *r);

#endif
