/* The server: what every loop of it shares. Configuration, routes, plain
 * HTTP paths, the verifier and the presence handler are written before
 * wsa_server_run() and only read after; the limits (guard.c) are shared
 * under their own lock; revocation and stop are atomics; fan-out beyond
 * one loop goes through the broker. Everything that belongs to one loop
 * is its service's (service.h). */
#ifndef WSA_LIB_SERVER_H
#define WSA_LIB_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "fanout/history.h"
#include "policy/guard.h"
#include "util/log.h"
#include "wsa.h"

/* The most service threads: each one's index is the first letter of its
 * connections' ids, from a 57-letter alphabet. */
#define WSA_THREADS_MAX 32

struct wsa_broker;
struct wsa_service;

struct wsa_server {
	wsa_config cfg;
	char *host;
	char *tls_cert, *tls_key; /* copies, or NULL: no TLS */
	char *tls_ciphers;	  /* a copy, or NULL: WSA_TLS12_CIPHERS */
	char **origins;		  /* NULL-terminated allow-list, or NULL: any */
	int port;

	struct wsa_route *routes;
	struct wsa_http_entry *http; /* paths served over plain HTTP */
	wsa_verify_fn verify;
	void *verify_userdata;
	wsa_presence_fn presence;
	void *presence_userdata;
	wsa_presence_uid_fn presence_uid;
	void *presence_uid_userdata;
	/* wsa_server_use_redis(): the instances and the prefix, or none. */
	char **redis_urls;
	unsigned nredis;
	char *redis_prefix;
	/* wsa_server_topic_history(): which topics keep a history. */
	struct wsa_history_rules history_rules;

	/* One per thread (cfg.threads); fixed from wsa_server_new on. */
	unsigned nservices;
	struct wsa_service **services;
	pthread_t *threads; /* of the loops, while they run */
	unsigned nthreads;  /* threads[..nthreads) to join (run: from 1) */
	bool background;    /* wsa_server_start: every loop on a thread */
	/* The host's loop (wsa_server_new_on_loop), or NULL: our own. */
	wsa_loop_kind host_loop_kind;
	void *host_loop;
	atomic_uint drained; /* loops drained after a stop */
	wsa_stopped_fn on_stopped;
	void *on_stopped_userdata;

	atomic_bool started; /* run or start was called: tables frozen */
	/* The loops' per-route counters exist (metrics.c). */
	atomic_bool metrics_ready;
	/* Publishes made off the loops (host threads): not per message. */
	atomic_ullong publishes_off_loop;
	atomic_bool stop_requested;
	/* Tokens issued before this (seconds since the epoch) are
	 * revoked; any thread writes it, only forward. */
	atomic_llong revoked_before;

	/* Fan-out messages are numbered as they are sent: a member (or a
	 * login) gets only those sent after it joined (or logged in), on
	 * whatever loop they arrive later. */
	atomic_ullong fan_seq;

	struct wsa_guard guard; /* the limits all loops share */
	/* Lines peers can cause, held to one a second a kind (log.h). */
	struct wsa_log_limits log_limits;
	struct wsa_broker *broker; /* fan-out beyond one loop */
};

/* Whether a string can be a connection id of this library. */
static inline bool wsa__id_ok(const char *conn_id)
{
	return conn_id && strlen(conn_id) == 22;
}

/* Topic names, uids and paths given to any-thread calls: non-empty, and
 * not without bound. */
static inline bool wsa__name_ok(const char *name)
{
	return name && *name && strlen(name) <= 1024;
}

/* A loop has drained after a stop; the last one calls on_stopped. */
void wsa__server_drained(struct wsa_server *srv);

/* Finish freeing srv, whose loops lws still closes on the host's loop:
 * true once done (srv is gone). From outside lws' callbacks. */
bool wsa__server_free_again(struct wsa_server *srv);

/* Have the host's loop finish freeing srv as it runs on (libuv). */
void wsa__host_loop_finish(struct wsa_server *srv);

/* The service whose loop runs on the calling thread, or NULL. */
struct wsa_service *wsa__service_current(const struct wsa_server *srv);

/* The service a connection id belongs to (its first letter says), or
 * NULL when no service of this server would have made it. */
struct wsa_service *wsa__service_of_id(const struct wsa_server *srv,
				       const char *conn_id);

#endif
