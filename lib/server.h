/* The server: libwebsockets context and vhost, the service loop, stop. */
#ifndef WSA_LIB_SERVER_H
#define WSA_LIB_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include <ev.h>
#include <libwebsockets.h>

#include "buf.h"
#include "guard.h"
#include "map.h"
#include "timer.h"
#include "wsa.h"

struct wsa_conn;
struct wsa_auth;

struct wsa_server {
	wsa_config cfg;
	char *host;
	char *tls_cert, *tls_key; /* copies, or NULL: no TLS */
	char **origins;		  /* NULL-terminated allow-list, or NULL: any */
	struct lws_context *ctx;
	struct ev_loop *loop; /* libev (epoll), lws' foreign loop */
	/* Connections over their rate, not read for a while (guard.c). */
	struct wsa_pause_list rate_paused;
	struct lws_vhost *vhost;
	struct lws_protocols protocols[2];
	int port;

	struct wsa_route *routes;
	struct wsa_http_entry *http; /* paths served over plain HTTP */
	wsa_verify_fn verify;
	void *verify_userdata;

	atomic_bool started; /* wsa_server_run was called: tables frozen */
	bool stopping;	     /* connections are being drained */
	bool done;	     /* the service loop should return */
	atomic_bool stop_requested;
	pthread_t service_thread;

	struct wsa_conn *conns; /* every live connection */
	struct wsa_map conns_by_id;
	struct wsa_map topics;	/* name -> struct wsa_topic */
	struct wsa_map members; /* {conn, topic} -> struct wsa_member */
	struct wsa_map users;	/* uid -> struct wsa_user */
	size_t nconns;
	size_t nopen; /* of them not closing: what the limits count */

	/* Client addresses (guard.c), and those without connections that
	 * still owe failed logins, swept by peer_sul. */
	struct wsa_map peers;
	size_t nsockets; /* accepted TCP connections still open */
	struct wsa_peer *idle_peers;
	lws_sorted_usec_list_t peer_sul;
	bool freeing; /* in wsa_server_free: schedule nothing */

	/* Tokens issued before this (seconds since the epoch) are
	 * revoked; any thread writes it, only forward. */
	atomic_llong revoked_before;

	/* The identity a token at the upgrade established, from
	 * HTTP_CONFIRM_UPGRADE to the ESTABLISHED of the same wsi (lws
	 * raises both within one call); upgrade_wsi NULL: none. */
	struct lws *upgrade_wsi;
	json_t *upgrade_claims;
	double upgrade_leeway;
	char upgrade_id[23]; /* the connection id it will have */
	lws_sorted_usec_list_t drain_sul;
	/* lws' libev glue arms its timer only when none is armed: a timeout
	 * set earlier than the one armed would wait for it. A tick keeps the
	 * armed one near (see server.c). */
	lws_sorted_usec_list_t tick_sul;

	/* Logins a verifier answered from another thread, and every login
	 * not yet answered; both under auth_lock. */
	pthread_mutex_t auth_lock;
	struct wsa_auth *auth_done;
	struct wsa_auth *auth_pending;

	/* Sends and closes from other threads, in order (remote.c). */
	pthread_mutex_t cmd_lock;
	struct wsa_cmd *cmd_head, *cmd_tail;

	/* Reused on the service thread, so serialising and framing replies
	 * allocate nothing in the steady state. */
	struct wsa_timers timers;
	struct wsa_buf scratch; /* serialising replies */
	struct wsa_buf frame;	/* a fan-out frame, built once */
	/* Random bytes for connection ids, used once each. */
	unsigned char rand_pool[4096];
	size_t rand_pos; /* sizeof(rand_pool): empty */
};

/* Bytes of frames written with one send. */
#define WSA_TX_BATCH (64 * 1024)

/* Whether the caller is on the service thread of a running server. */
bool wsa__on_service_thread(const struct wsa_server *srv);

#endif
