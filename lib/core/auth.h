/* The auth gate: it decides on logins (first message, refresh, token at
 * the upgrade) and the connection module applies the decision. A login
 * waits its turn for its address's verification budget, goes to the
 * verifier, and the answer comes at once (inside the call) or later from
 * any thread, through the connection's loop's work queue. */
#ifndef WSA_LIB_AUTH_H
#define WSA_LIB_AUTH_H

#include <ev.h>
#include <libwebsockets.h>

#include "codec/parse.h"
#include "util/map.h"
#include "util/workq.h"
#include "wsa.h"

struct wsa_conn;
struct wsa_server;
struct wsa_service;
struct wsa_waitlist;

struct wsa_auth {
	struct wsa_work work; /* an answer from another thread */
	struct wsa_auth *next;
	struct wsa_auth **pprev; /* in svc->auth_pending while unanswered */
	struct wsa_server *srv;
	struct wsa_service *svc;
	struct wsa_conn *conn; /* holds a reference */
	char conn_id[23];
	json_t *id; /* the login's "id", replayed on the answer */
	bool refresh;
	bool in_call; /* the verifier is running on the loop's thread */
	bool answered;
	json_t *claims; /* accepted: the claims; rejected: NULL */
	char *reason;
	double leeway; /* seconds added to "exp" for the expiry timer */
	int code;      /* the built-in verifier's refusal, or 0 */
	uint64_t t0;   /* when the verifier was called (metrics) */
	char *token;
	size_t token_len;
	/* Waiting for its address's verification budget. */
	struct wsa_waitlist *waiting;
	struct wsa_auth *wait_next;
	lws_usec_t since;
};

/* Verify a token given at the upgrade on svc, before any connection
 * exists: WSA_OK with *claims (the caller's) and *leeway, WSA_ESTATE when
 * the verifier did not decide during its call, WSA_ENOMEM, WSA_ELIMIT
 * (its user has max_connections_per_user), or another error when the
 * token is refused. conn_id: the id the connection will get. */
int wsa__auth_upgrade(struct wsa_service *svc, const char *token, size_t len,
		      const char *conn_id, const char *peer_key,
		      json_t **claims, double *leeway);

/* A connection opened with a token accepted at its upgrade. */
void wsa__auth_upgraded(struct wsa_conn *conn, const json_t *claims,
			double leeway);

/* Handle the first message of a connection, msg (borrowed; NULL when the
 * text was not JSON, or when memory ran out parsing it: oom), whose
 * "type" and "id" are in head. */
void wsa__auth_first(struct wsa_conn *conn, const json_t *msg,
		     const struct wsa_json_head *head, bool oom);

/* Handle a login on an authenticated connection (a refresh). */
void wsa__auth_refresh(struct wsa_conn *conn, json_t *msg);

/* The login deadline passed. */
void wsa__auth_timeout(struct wsa_conn *conn);

/* The connection closes: drop a login of it still waiting for its
 * address's verification budget. */
void wsa__auth_cancel_wait(struct wsa_conn *conn);

/* Free svc's unanswered logins and waiting lists, at server free. */
void wsa__auth_free_pending(struct wsa_service *svc);

#endif
