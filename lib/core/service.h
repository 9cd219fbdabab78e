/* A service: one event loop of a server, on one thread, with its own
 * libwebsockets context listening on the server's port (SO_REUSEPORT
 * spreads connections over the services). The loop is ours (libev, on a
 * thread of the server's) or the host's (libev, libuv or GLib, through
 * lws' event library glue); either way everything here is driven through
 * lws: its timers, its wakeup, its watch on the listening socket. It has its
 * connections, their deadlines, the fan-out indexes of its connections, its
 * queue of work from other threads, and its buffers. Nothing here is touched by
 * any thread but the service's own, except the work queue and the list of
 * logins a verifier has not answered (their own locks). */
#ifndef WSA_LIB_SERVICE_H
#define WSA_LIB_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>

#include <ev.h>
#include <libwebsockets.h>

#include "core/metrics.h"
#include "policy/guard.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/timer.h"
#include "util/workq.h"

struct wsa_presence_change;
struct wsa_auth;
struct wsa_conn;
struct wsa_server;

/* Spare output buffers a loop keeps: how many, and at most how large in
 * all (a larger one goes back to the heap). */
#define WSA_OUT_POOL	   16
#define WSA_OUT_POOL_BYTES (1024 * 1024)

struct wsa_service {
	struct wsa_server *srv;
	unsigned index; /* in srv->services; the first letter of its ids */
	struct ev_loop *loop;	 /* a libev loop: ours, or the host's */
	bool own_loop;		 /* loop is ours: we run and destroy it */
	struct lws_context *ctx; /* NULL once lws has destroyed it */
	struct wsa_clock clock;	 /* where its alarms run (timer.h) */
	struct lws_vhost *vhost;
	struct lws_protocols protocols[2];
	pthread_t thread;    /* valid once running is true */
	atomic_bool running; /* its loop runs on thread */
	bool stopping;	     /* connections are being drained */
	bool done;	     /* drained: the loop should return */

	/* The connection whose message is being handled, and that
	 * message's "id": one message at a time on a loop, so every
	 * connection need not hold a place for it (dispatch.c). */
	const struct wsa_conn *replying;
	const json_t *reply_id;

	/* Every connection of this loop that lws has not closed, by id
	 * (linked through conn->id_link). */
	struct wsa_imap conns_by_id;
	size_t nconns;

	/* Fan-out's indexes of this loop's connections (fanout.c). */
	struct wsa_map topics;	/* name -> struct wsa_topic */
	struct wsa_map members; /* {conn, topic} -> struct wsa_member */
	struct wsa_imap users;	/* uid -> its first wsa_conn (user_link) */
	/* The presence change whose handlers run now (fanout.c). */
	const struct wsa_presence_change *announcing;

	/* Deadlines (conn.c says what they mean): login, token expiry and
	 * close deadlines in a heap; idle connections; liveness. */
	struct wsa_heap deadlines;
	struct wsa_timeline idle, seen, pinged;
	/* Connections over their rate, not read for a while. */
	struct wsa_timeline paused;
	/* Logins waiting for their address's verification budget, by
	 * address (guard.c). */
	struct wsa_map waits;

	/* The identity a token at the upgrade established, from
	 * HTTP_CONFIRM_UPGRADE to the ESTABLISHED of the same wsi (lws
	 * raises both within one call); upgrade_wsi NULL: none. */
	struct lws *upgrade_wsi;
	/* Its place in the limits, taken at the upgrade: another loop may
	 * admit one more meanwhile, and the limits must still hold. */
	struct wsa_peer *upgrade_peer;
	/* The address key of the socket being adopted (adopt()), NULL when
	 * lws accepted it itself. */
	const char *adopt_key;
	json_t *upgrade_claims;
	double upgrade_leeway;
	char upgrade_id[23]; /* the connection id it will have */

	/* Logins the verifier has not answered, under auth_lock. */
	pthread_mutex_t auth_lock;
	struct wsa_auth *auth_pending;

	/* Work from other threads, in order (workq.h). */
	struct wsa_workq workq;

	/* Its own listening socket on the server's port (SO_REUSEPORT when
	 * the server has several loops); accepted sockets are handed to
	 * lws. */
	int listen_fd;		       /* until lws watches it as listen_wsi */
	struct lws *listen_wsi;	       /* lws closes the socket with it */
	struct wsa_alarm accept_retry; /* out of descriptors: again later */

	struct wsa_alarm drain;
	lws_sorted_usec_list_t tick; /* keeps lws' libev timer near */
	struct wsa_alarm sweep;	     /* the shared limits' idle addresses */
	struct wsa_alarm log_flush;  /* counts of log lines held back */

	struct wsa_metrics metrics; /* this loop's counters (metrics.h) */

	/* Reused on this loop, so serialising and framing replies allocate
	 * nothing in the steady state. */
	struct wsa_buf scratch; /* serialising replies */
	size_t reply_hint;	/* the last reply's length: room for the next */
	/* Connections with output queued in this round of the loop, written
	 * before it waits again (conn.c wsa__conn_flush); only on a loop of
	 * our own, where we know when that is. Each holds a reference. */
	struct wsa_conn **flush;
	size_t nflush, flush_cap;
	struct wsa_buf frame; /* a fan-out frame, built once */
	/* Connections' output buffers, emptied and kept for the next
	 * connection that queues output (conn.c out_free): a busy loop then
	 * neither allocates one per reply nor grows it by copying, and the
	 * kernel does not fault in fresh pages for each. Bounded by
	 * WSA_OUT_POOL buffers and WSA_OUT_POOL_BYTES; idle connections
	 * hold none. */
	struct wsa_chunk *out_pool[WSA_OUT_POOL];
	size_t nout_pool, out_pool_bytes;
	/* Plain connections read by libwsa (read.c): the loop's one read
	 * buffer (WSA_READ_BUF; NULL when this loop reads none), the
	 * connections established in this round of the loop, each holding a
	 * reference until it ends, and whether a watcher was fed held bytes
	 * (the loop must not wait before serving it). */
	unsigned char *rd_buf;
	struct wsa_conn **fresh;
	size_t nfresh, fresh_cap;
	bool rd_fed;
	/* Random bytes for connection ids, used once each. */
	unsigned char rand_pool[4096];
	size_t rand_pos; /* sizeof(rand_pool): empty */
};

/* TLS 1.2 suites by default: Mozilla's "intermediate" profile without
 * its DHE suites, ECDHE with AEAD ciphers only (no CBC: LUCKY13 and its
 * kin). */
#define WSA_TLS12_CIPHERS                                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Bytes of frames written with one send. */
#define WSA_TX_BATCH (64 * 1024)

/* Make service index of srv, listening on port (0: a free one, then read
 * back into srv->port). WSA_OK, WSA_ELWS, WSA_ELISTEN, WSA_ENOMEM. */
int wsa__service_new(struct wsa_server *srv, unsigned index, int port,
		     struct wsa_service **out);

/* Begin serving on the calling thread, which runs (or is) the loop:
 * accept, timers, work queued before. */
void wsa__service_start(struct wsa_service *svc);

/* Start, then run our own loop on the calling thread until the server
 * stops and this loop's connections are drained. */
void wsa__service_run(struct wsa_service *svc);

/* Drained after a stop: our loop returns; on the host's loop the server
 * is told (wsa__server_drained). */
void wsa__service_done(struct wsa_service *svc);

/* Wake the loop (any thread): it looks at the stop flag and its work. */
void wsa__service_wake(struct wsa_service *svc);

/* Close what is left and free; the owning thread, not running. False
 * when lws finishes closing on the host's loop (libuv): call
 * wsa__service_free_again later, from outside lws' callbacks, until it
 * returns true. */
bool wsa__service_free(struct wsa_service *svc);
bool wsa__service_free_again(struct wsa_service *svc);

/* Whether the calling thread runs svc's loop. */
bool wsa__on_loop(const struct wsa_service *svc);

#endif
