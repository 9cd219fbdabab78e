/* The auth gate. A login is handed to the verifier; its answer may come
 * at once (on the service thread, inside the call) or later from any
 * thread, through srv->auth_done and lws_cancel_service(). While a login
 * is unanswered the connection's input is paused, so messages sent behind
 * it wait in order in the socket and libwebsockets' buffer. */
#include "auth.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dispatch.h"
#include "guard.h"
#include "log.h"
#include "parse.h"
#include "route.h"
#include "server.h"
#include "topic.h"

/* The identity a claim set names: "uid", or "sub" when there is no
 * "uid"; NULL when that is not a non-empty string. */
static const char *claims_uid(const json_t *claims)
{
	const json_t *v = json_object_get(claims, "uid");

	if (!v)
		v = json_object_get(claims, "sub");
	if (!json_is_string(v) || !json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static void auth_free(struct wsa_auth *a)
{
	if (a->conn)
		wsa__conn_unref(a->conn);
	json_decref(a->id);
	json_decref(a->claims);
	free(a->reason);
	free(a->token);
	free(a);
}

static void pending_unlink(struct wsa_auth *a)
{
	if (!a->pprev)
		return;
	*a->pprev = a->next;
	if (a->next)
		a->next->pprev = a->pprev;
	a->pprev = NULL;
	a->next = NULL;
}

/* Whether claims name a token revoked by wsa_server_revoke_before(): one
 * issued before the time, or with no "iat" to tell. */
static long long claims_iat(const json_t *claims);

static bool revoked(struct wsa_server *srv, const json_t *claims)
{
	long long before = atomic_load(&srv->revoked_before);

	return before && claims_iat(claims) < before;
}

/* The claims' "iat" in whole seconds; LLONG_MIN when there is none (a
 * token that does not say when it was issued counts as issued before any
 * revocation time). */
static long long claims_iat(const json_t *claims)
{
	const json_t *iat = json_object_get(claims, "iat");
	double v = json_number_value(iat);

	if (!json_is_number(iat) || !(v > -9e18 && v < 9e18))
		return LLONG_MIN;
	return (long long)v;
}

/* Make claims the connection's identity and tell the client; id is the
 * login's "id" or NULL. */
static void identity_accepted(struct wsa_conn *c, const json_t *claims,
			      double leeway, const json_t *id)
{
	const char *uid = claims_uid(claims);
	const json_t *exp = json_object_get(claims, "exp");
	bool first = !c->authenticated;
	static const char reply[] = "{\"type\":\"auth\",\"message\":"
				    "\"Authenticated\"}";

	if (wsa__conn_set_identity(c, claims, uid)) {
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	switch (wsa__user_add(c)) {
	case WSA_OK:
		break;
	case WSA_ELIMIT:
		WSA_LOG(c->srv, WSA_LOG_NOTICE, c,
			"login refused: max_connections_per_user reached");
		wsa__conn_close(c, WSA_CLOSE_TRY_AGAIN_LATER,
				"Too many connections");
		return;
	default:
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (first)
		wsa__rate_start(c);
	c->authenticated = true;
	c->state = WSA_CONN_OPEN;
	c->iat = claims_iat(claims);
	wsa__conn_set_expiry(
	    c, json_is_number(exp) ? json_number_value(exp) + leeway : 0);
	wsa__conn_owed(c,
		       wsa__conn_queue_text(c, reply, sizeof(reply) - 1, id));
	WSA_LOG(c->srv, WSA_LOG_INFO, c, "%s as %.128s",
		first ? "authenticated" : "refreshed", c->ident);
	if (first && c->route->on_open)
		c->route->on_open(c, c->route->userdata);
	wsa__conn_pause_rx(c, WSA_PAUSE_AUTH, false);
}

/* The client address of a live connection, for the limits; NULL once
 * it closes. */
static const char *peer_key(const struct wsa_conn *c)
{
	return c->peer ? c->peer->key : NULL;
}

/* A login failed: the client is told. (The opt-in throttle counted it as
 * a failure when it started.) */
static void login_failed(struct wsa_conn *c, const json_t *id, const char *why)
{
	WSA_LOG(c->srv, WSA_LOG_NOTICE, c, "login rejected: %s", why);
	wsa__conn_fail(c, WSA_MSG_AUTH_FAILED, id, WSA_CLOSE_POLICY);
}

/* The verifier accepted: install the identity and answer the client. */
static void login_accepted(struct wsa_conn *c, struct wsa_auth *a)
{
	if (a->refresh && strcmp(claims_uid(a->claims), c->ident)) {
		login_failed(c, a->id, "refresh names another user");
		return;
	}
	if (revoked(c->srv, a->claims)) {
		login_failed(c, a->id, "token revoked");
		return;
	}
	wsa__throttle_refund(c->srv, peer_key(c));
	identity_accepted(c, a->claims, a->leeway, a->id);
}

/* Act on an answered login; service thread. Frees a. */
static void login_finish(struct wsa_auth *a)
{
	struct wsa_conn *c = a->conn;

	/* No connection: a token at the upgrade answered too late. */
	if (c && wsa__conn_live(c)) {
		if (a->claims)
			login_accepted(c, a);
		else
			login_failed(c, a->id,
				     a->reason ? a->reason : "no reason given");
	}
	auth_free(a);
}

/* A login for the verifier, holding a copy of the token; NULL when
 * memory is short. */
static struct wsa_auth *auth_new(struct wsa_server *srv, const char *token,
				 size_t len, const char *conn_id)
{
	struct wsa_auth *a = calloc(1, sizeof(*a));

	if (a)
		a->token = malloc(len + 1);
	if (!a || !a->token) {
		free(a);
		return NULL;
	}
	memcpy(a->token, token, len);
	a->token[len] = '\0';
	a->token_len = len;
	a->srv = srv;
	memcpy(a->conn_id, conn_id, sizeof(a->conn_id));
	return a;
}

/* Call the verifier; whether it answered during the call. Otherwise the
 * answer comes from another thread, and from here on only fields this
 * thread owns may be read. */
static bool verify(struct wsa_auth *a)
{
	struct wsa_server *srv = a->srv;

	pthread_mutex_lock(&srv->auth_lock);
	a->next = srv->auth_pending;
	if (a->next)
		a->next->pprev = &a->next;
	a->pprev = &srv->auth_pending;
	srv->auth_pending = a;
	pthread_mutex_unlock(&srv->auth_lock);

	a->in_call = true;
	srv->verify(a, a->token, a->token_len, srv->verify_userdata);
	a->in_call = false;
	return a->answered;
}

/* Hand a login to the verifier now. */
static void verify_now(struct wsa_conn *c, struct wsa_auth *a)
{
	if (verify(a))
		login_finish(a);
	else /* a is the answering thread's now */
		wsa__conn_pause_rx(c, WSA_PAUSE_AUTH, true);
}

/* The address's verification budget let a waiting login go, or its time
 * ran out while it waited. */
static void waited(struct wsa_waiter *w, bool in_time)
{
	struct wsa_auth *a =
	    (struct wsa_auth *)(void *)((char *)w -
					offsetof(struct wsa_auth, wait));
	struct wsa_conn *c = a->conn;

	c->auth_wait = NULL;
	if (in_time) {
		verify_now(c, a);
		return;
	}
	/* Never verified: not a failure of the token. */
	wsa__throttle_refund(c->srv, peer_key(c));
	WSA_LOG(c->srv, WSA_LOG_NOTICE, c,
		"login not verified in time: its address's verification "
		"budget is spent");
	wsa__conn_fail(c, WSA_MSG_AUTH_TIMEOUT, a->id, WSA_CLOSE_POLICY);
	auth_free(a);
}

void wsa__auth_cancel_wait(struct wsa_conn *c)
{
	struct wsa_auth *a = c->auth_wait;

	if (!a)
		return;
	c->auth_wait = NULL;
	wsa__verify_cancel(&a->wait);
	auth_free(a);
}

/* Hand a login to the verifier, or queue it behind its address's
 * earlier logins while the address's verification budget is spent.
 * token must be a non-empty string. */
static void login_start(struct wsa_conn *c, const json_t *token,
			const json_t *id, bool refresh)
{
	struct wsa_server *srv = c->srv;
	struct wsa_auth *a;

	if (!wsa__throttle_begin(srv, peer_key(c))) {
		login_failed(c, id, "too many failed logins from the address");
		return;
	}
	a = auth_new(srv, json_string_value(token), json_string_length(token),
		     c->id);
	if (!a) {
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	a->conn = c;
	c->refs++;
	a->id = json_incref((json_t *)id);
	a->refresh = refresh;
	c->state = WSA_CONN_VERIFYING;
	a->wait.go = waited;
	if (wsa__verify_admit(srv, c->peer, &a->wait)) {
		verify_now(c, a);
		return;
	}
	c->auth_wait = a;
	wsa__conn_pause_rx(c, WSA_PAUSE_AUTH, true);
}

int wsa__auth_upgrade(struct wsa_server *srv, const char *token, size_t len,
		      const char *conn_id, const char *peer_key,
		      json_t **claims, double *leeway)
{
	struct wsa_auth *a;
	int rc = WSA_ETOKEN_SIGNATURE;

	*claims = NULL;
	if (!wsa__throttle_begin(srv, peer_key)) {
		WSA_LOG(srv, WSA_LOG_NOTICE, NULL,
			"upgrade %s: token refused: too many failed logins "
			"from %s",
			conn_id, peer_key);
		return WSA_ETOKEN_SIGNATURE;
	}
	a = auth_new(srv, token, len, conn_id);
	if (!a)
		return WSA_ENOMEM;
	/* An upgrade cannot wait for its turn: verified now, and charged. */
	wsa__verify_charge(srv, peer_key);
	if (!verify(a)) {
		/* An upgrade cannot wait: the answer, when it comes, finds no
		 * connection and is dropped. */
		WSA_LOG(srv, WSA_LOG_WARNING, NULL,
			"upgrade %s: the verifier did not decide during its "
			"call; a token at the upgrade needs that",
			conn_id);
		return WSA_ESTATE;
	}
	if (a->claims && revoked(srv, a->claims)) {
		WSA_LOG(srv, WSA_LOG_NOTICE, NULL, "upgrade %s: token revoked",
			conn_id);
	} else if (a->claims) {
		wsa__throttle_refund(srv, peer_key);
		if (wsa__user_full(srv, claims_uid(a->claims))) {
			WSA_LOG(srv, WSA_LOG_NOTICE, NULL,
				"upgrade %s refused: "
				"max_connections_per_user reached",
				conn_id);
			rc = WSA_ELIMIT;
		} else {
			*claims = a->claims;
			*leeway = a->leeway;
			a->claims = NULL;
			rc = WSA_OK;
		}
	} else {
		WSA_LOG(srv, WSA_LOG_NOTICE, NULL,
			"upgrade %s: token rejected: %s", conn_id,
			a->reason ? a->reason : "no reason given");
	}
	auth_free(a);
	return rc;
}

void wsa__auth_upgraded(struct wsa_conn *c, const json_t *claims, double leeway)
{
	identity_accepted(c, claims, leeway, NULL);
}

void wsa__auth_first(struct wsa_conn *c, const char *text, size_t len)
{
	bool oom = false;
	json_t *msg = wsa__json_parse(text, len, &oom);
	const json_t *id = wsa__message_id(msg);
	const json_t *token = json_object_get(msg, "token");
	const json_t *type = json_object_get(msg, "type");

	if (!msg && oom) {
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (!json_is_string(type) || json_string_length(type) != 5 ||
	    memcmp(json_string_value(type), "login", 5) ||
	    !json_is_string(token) || !json_string_length(token)) {
		WSA_LOG(c->srv, WSA_LOG_INFO, c, "first message is no login");
		wsa__conn_fail(c, WSA_MSG_FIRST_LOGIN, id, WSA_CLOSE_POLICY);
	} else {
		login_start(c, token, id, false);
	}
	json_decref(msg);
}

void wsa__auth_refresh(struct wsa_conn *c, json_t *msg)
{
	const json_t *token = json_object_get(msg, "token");

	if (!json_is_string(token) || !json_string_length(token)) {
		WSA_LOG(c->srv, WSA_LOG_NOTICE, c, "refresh without a token");
		wsa__conn_fail(c, WSA_MSG_AUTH_FAILED, c->reply_id,
			       WSA_CLOSE_POLICY);
		return;
	}
	login_start(c, token, c->reply_id, true);
}

void wsa__auth_timeout(struct wsa_conn *c)
{
	WSA_LOG(c->srv, WSA_LOG_INFO, c, "no login in time");
	wsa__conn_fail(c, WSA_MSG_AUTH_TIMEOUT, NULL, WSA_CLOSE_POLICY);
}

/* Record an answer. Inside the verifier's call on the service thread it
 * is acted on when the call returns; otherwise it is queued and the
 * service loop woken. */
static void answer(struct wsa_auth *a)
{
	struct wsa_server *srv = a->srv;

	pthread_mutex_lock(&srv->auth_lock);
	pending_unlink(a);
	if (wsa__on_service_thread(srv) && a->in_call) {
		a->answered = true;
		pthread_mutex_unlock(&srv->auth_lock);
		return;
	}
	a->next = srv->auth_done;
	srv->auth_done = a;
	pthread_mutex_unlock(&srv->auth_lock);
	lws_cancel_service(srv->ctx);
}

void wsa__auth_drain(struct wsa_server *srv)
{
	struct wsa_auth *list, *rev = NULL;

	pthread_mutex_lock(&srv->auth_lock);
	list = srv->auth_done;
	srv->auth_done = NULL;
	pthread_mutex_unlock(&srv->auth_lock);
	while (list) { /* answers were pushed on the front: oldest first */
		struct wsa_auth *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct wsa_auth *next = rev->next;

		login_finish(rev);
		rev = next;
	}
}

void wsa__auth_free_pending(struct wsa_server *srv)
{
	struct wsa_auth *a;

	wsa__auth_drain(srv);
	while ((a = srv->auth_pending)) {
		pending_unlink(a);
		auth_free(a);
	}
}

void wsa__auth_set_leeway(wsa_auth *a, unsigned seconds)
{
	a->leeway = seconds;
}

int wsa_auth_accept(wsa_auth *a, json_t *claims)
{
	if (!json_is_object(claims) || !claims_uid(claims)) {
		json_decref(claims);
		a->reason = strdup("verifier accepted a token naming no user");
		answer(a);
		return WSA_ETOKEN_IDENTITY;
	}
	a->claims = claims;
	answer(a);
	return WSA_OK;
}

void wsa_auth_reject(wsa_auth *a, const char *reason)
{
	a->reason = reason ? strdup(reason) : NULL;
	answer(a);
}

const char *wsa_auth_conn_id(const wsa_auth *a)
{
	return a->conn_id;
}
