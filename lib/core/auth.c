/* The auth gate. A login is handed to the verifier within its address's
 * verification budget; its answer may come at once (on the loop's
 * thread, inside the call) or later from any thread, through the loop's
 * work queue. While a login is unanswered the connection's input is
 * paused, so messages sent behind it wait in order in the socket and
 * libwebsockets' buffer. The gate decides; conn.c applies. */
#include "core/auth.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/jwt.h"
#include "codec/proto.h"
#include "core/conn.h"
#include "core/server.h"
#include "core/service.h"
#include "policy/guard.h"
#include "util/log.h"

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

/* Under svc->auth_lock. */
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
static bool revoked(struct wsa_server *srv, const json_t *claims)
{
	long long before = atomic_load(&srv->revoked_before);

	return before && wsa__json_claims_iat(claims) < before;
}

/* The client address of a live connection, for the limits; NULL once
 * it closes. */
static const char *peer_key(const struct wsa_conn *c)
{
	return c->peer ? c->peer->key : NULL;
}

/* Decide on an answered login and have the connection apply it; the
 * loop's thread. Frees a. */
/* A login refused for result. */
static void count_login(struct wsa_service *svc, enum wsa_login_result result)
{
	WSA_COUNT(svc, logins[result], 1);
}

/* The verifier's time, when it was timed. */
static void count_verify(struct wsa_auth *a)
{
	if (a->t0)
		wsa__observe(&a->svc->metrics, &a->svc->metrics.verify,
			     wsa__now_ns() - a->t0);
}

static void login_finish(struct wsa_auth *a)
{
	struct wsa_conn *c = a->conn;

	count_verify(a);
	/* No connection: a token at the upgrade answered too late. */
	if (!c || !wsa__conn_live(c))
		;
	else if (!a->claims) {
		count_login(a->svc, wsa__login_result_of(a->code));
		wsa__conn_login_refused(
		    c, a->id, a->reason ? a->reason : "no reason given");
	} else if (a->refresh && strcmp(claims_uid(a->claims), c->ident)) {
		count_login(a->svc, WSA_LOGIN_CLAIMS);
		wsa__conn_login_refused(c, a->id, "refresh names another user");
	} else if (revoked(c->svc->srv, a->claims)) {
		count_login(a->svc, WSA_LOGIN_REVOKED);
		wsa__conn_login_refused(c, a->id, "token revoked");
	} else {
		wsa__throttle_refund(&c->svc->srv->guard, peer_key(c));
		wsa__conn_authenticated(c, a->claims, claims_uid(a->claims),
					a->leeway, a->id);
	}
	auth_free(a);
}

/* An answer that came from another thread, on the loop. */
static void answered_run(struct wsa_work *w, void *svc)
{
	(void)svc;
	login_finish((struct wsa_auth *)(void *)w);
}

static void answered_drop(struct wsa_work *w)
{
	auth_free((struct wsa_auth *)(void *)w);
}

/* A login for the verifier on svc, holding a copy of the token; NULL
 * when memory is short. */
static struct wsa_auth *auth_new(struct wsa_service *svc, const char *token,
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
	a->srv = svc->srv;
	a->svc = svc;
	a->work.run = answered_run;
	a->work.drop = answered_drop;
	memcpy(a->conn_id, conn_id, sizeof(a->conn_id));
	return a;
}

/* Call the verifier; whether it answered during the call. Otherwise the
 * answer comes from another thread, and from here on only fields this
 * thread owns may be read. */
static bool verify(struct wsa_auth *a)
{
	struct wsa_service *svc = a->svc;
	struct wsa_server *srv = a->srv;

	pthread_mutex_lock(&svc->auth_lock);
	a->next = svc->auth_pending;
	if (a->next)
		a->next->pprev = &a->next;
	a->pprev = &svc->auth_pending;
	svc->auth_pending = a;
	pthread_mutex_unlock(&svc->auth_lock);

	a->in_call = true;
	if (svc->metrics.on)
		a->t0 = wsa__now_ns();
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

/* ------------------------------------------- the verification budget */

/* The logins of one address waiting on one loop for the address's
 * budget, oldest first, with a timer for the first one's turn. */
struct wsa_waitlist {
	struct wsa_map_entry entry; /* in svc->waits */
	struct wsa_service *svc;
	struct wsa_auth *head, *tail;
	struct wsa_alarm alarm;
	bool firing; /* freed by its timer, not by a cancel meanwhile */
	char key[WSA_PEER_KEY_LEN];
};

static void waitlist_free(struct wsa_waitlist *l)
{
	wsa__alarm_stop(&l->alarm);
	wsa__map_del(&l->svc->waits, l->key);
	free(l);
}

/* A waiting login whose time ran out: never verified, so not a failure
 * of its token. Frees a. */
static void wait_timed_out(struct wsa_auth *a)
{
	struct wsa_conn *c = a->conn;

	wsa__throttle_refund(&a->srv->guard, peer_key(c));
	count_login(a->svc, WSA_LOGIN_TIMEOUT);
	WSA_LOG_PEER(a->srv, WSA_LOG_NOTICE, WSA_PL_LOGIN_BUDGET, c,
		     "login not verified in time: its address's verification "
		     "budget is spent");
	wsa__conn_fail(c, WSA_MSG_AUTH_TIMEOUT, a->id, WSA_CLOSE_POLICY);
	auth_free(a);
}

/* Let the logins whose turn came go, in order, a few per firing, and
 * close those that waited the auth timeout in vain. */
static void waitlist_fire(struct wsa_alarm *t)
{
	struct wsa_waitlist *l =
	    lws_container_of(t, struct wsa_waitlist, alarm);
	struct wsa_service *svc = l->svc;
	lws_usec_t timeout = (lws_usec_t)svc->srv->cfg.auth_timeout_ms * 1000;
	lws_usec_t next = 0, now = lws_now_usecs();
	int n = 0;

	l->firing = true;
	while (l->head && n++ < 8) {
		struct wsa_auth *a = l->head;
		bool late = now - a->since >= timeout;

		if (!late &&
		    (next = wsa__verify_take(&svc->srv->guard, l->key)))
			break;
		l->head = a->wait_next;
		if (!l->head)
			l->tail = NULL;
		a->waiting = NULL;
		a->conn->auth_wait = NULL;
		if (late)
			wait_timed_out(a);
		else
			verify_now(a->conn, a);
	}
	l->firing = false;
	if (!l->head) {
		waitlist_free(l);
	} else {
		lws_usec_t end = l->head->since + timeout;

		if (!next || end < next)
			next = end;
		wsa__alarm_at(t, next);
	}
	/* A login answered here resumes reading its connection: lws applies
	 * that after an I/O event. */
	lws_cancel_service(svc->ctx);
}

/* Queue a behind the address's other waiting logins on this loop, to go
 * at time turn (or earlier, if the budget allows). False when memory is
 * short. */
static bool wait_turn(struct wsa_conn *c, struct wsa_auth *a, lws_usec_t turn)
{
	struct wsa_service *svc = c->svc;
	struct wsa_waitlist *l = wsa__map_get(&svc->waits, c->peer->key);
	lws_usec_t now = lws_now_usecs();

	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return false;
		l->svc = svc;
		snprintf(l->key, sizeof(l->key), "%s", c->peer->key);
		wsa__map_entry_set(&l->entry, l->key, strlen(l->key), l);
		if (!wsa__map_put(&svc->waits, &l->entry)) {
			free(l);
			return false;
		}
		wsa__alarm_init(&l->alarm, &svc->clock, waitlist_fire);
		wsa__alarm_at(&l->alarm, turn);
	}
	a->since = now;
	a->waiting = l;
	a->wait_next = NULL;
	if (l->tail)
		l->tail->wait_next = a;
	else
		l->head = a;
	l->tail = a;
	c->auth_wait = a;
	return true;
}

void wsa__auth_cancel_wait(struct wsa_conn *c)
{
	struct wsa_auth *a = c->auth_wait, **p;
	struct wsa_waitlist *l;

	if (!a)
		return;
	c->auth_wait = NULL;
	l = a->waiting;
	for (p = &l->head; *p != a; p = &(*p)->wait_next)
		;
	*p = a->wait_next;
	if (l->tail == a) {
		struct wsa_auth *t = l->head;

		while (t && t->wait_next)
			t = t->wait_next;
		l->tail = t;
	}
	if (!l->head && !l->firing)
		waitlist_free(l);
	auth_free(a);
}

/* Hand a login to the verifier, or queue it behind its address's
 * earlier logins while the address's verification budget is spent.
 * token must be a non-empty string. */
static void login_start(struct wsa_conn *c, const json_t *token,
			const json_t *id, bool refresh)
{
	struct wsa_server *srv = c->svc->srv;
	struct wsa_auth *a;
	lws_usec_t turn = 0;

	if (!wsa__throttle_begin(&srv->guard, peer_key(c))) {
		count_login(c->svc, WSA_LOGIN_THROTTLED);
		wsa__conn_login_refused(
		    c, id, "too many failed logins from the address");
		return;
	}
	a = auth_new(c->svc, json_string_value(token),
		     json_string_length(token), c->id);
	if (!a) {
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	a->conn = c;
	c->refs++;
	a->id = json_incref((json_t *)id);
	a->refresh = refresh;
	c->state = WSA_CONN_VERIFYING;
	/* Behind the address's earlier logins on this loop, or when its
	 * budget is spent, it waits its turn. */
	if (c->peer && (wsa__map_get(&c->svc->waits, c->peer->key) ||
			(turn = wsa__verify_take(&srv->guard, c->peer->key)))) {
		if (!wait_turn(c, a, turn)) {
			auth_free(a);
			wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
			return;
		}
		wsa__conn_pause_rx(c, WSA_PAUSE_AUTH, true);
		return;
	}
	verify_now(c, a);
}

/* ------------------------------------------------------------ entries */

int wsa__auth_upgrade(struct wsa_service *svc, const char *token, size_t len,
		      const char *conn_id, const char *peer_key,
		      json_t **claims, double *leeway)
{
	struct wsa_server *srv = svc->srv;
	struct wsa_auth *a;
	int rc = WSA_ETOKEN_SIGNATURE;

	*claims = NULL;
	if (!wsa__throttle_begin(&srv->guard, peer_key)) {
		count_login(svc, WSA_LOGIN_THROTTLED);
		WSA_LOG_PEER(
		    srv, WSA_LOG_NOTICE, WSA_PL_UPGRADE_FAILED_LOGINS, NULL,
		    "upgrade %s: token refused: too many failed logins "
		    "from %s",
		    conn_id, peer_key);
		return WSA_ETOKEN_SIGNATURE;
	}
	a = auth_new(svc, token, len, conn_id);
	if (!a)
		return WSA_ENOMEM;
	/* An upgrade cannot wait for its turn: verified now, and charged. */
	wsa__verify_charge(&srv->guard, peer_key);
	if (!verify(a)) {
		/* Nor for the answer: when it comes it finds no connection,
		 * and is dropped. */
		WSA_LOG_PEER(
		    srv, WSA_LOG_WARNING, WSA_PL_UPGRADE_UNDECIDED, NULL,
		    "upgrade %s: the verifier did not decide during its "
		    "call; a token at the upgrade needs that",
		    conn_id);
		return WSA_ESTATE;
	}
	count_verify(a);
	if (a->claims && revoked(srv, a->claims)) {
		count_login(svc, WSA_LOGIN_REVOKED);
		WSA_LOG_PEER(srv, WSA_LOG_NOTICE, WSA_PL_UPGRADE_REVOKED, NULL,
			     "upgrade %s: token revoked", conn_id);
	} else if (a->claims) {
		wsa__throttle_refund(&srv->guard, peer_key);
		if (wsa__user_full(&srv->guard, claims_uid(a->claims))) {
			count_login(svc, WSA_LOGIN_LIMIT);
			WSA_LOG_PEER(srv, WSA_LOG_NOTICE,
				     WSA_PL_UPGRADE_USER_LIMIT, NULL,
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
		count_login(svc, wsa__login_result_of(a->code));
		WSA_LOG_PEER(srv, WSA_LOG_NOTICE, WSA_PL_UPGRADE_REJECTED, NULL,
			     "upgrade %s: token rejected: %s", conn_id,
			     a->reason ? a->reason : "no reason given");
	}
	auth_free(a);
	return rc;
}

void wsa__auth_upgraded(struct wsa_conn *c, const json_t *claims, double leeway)
{
	wsa__conn_authenticated(c, claims, claims_uid(claims), leeway, NULL);
}

void wsa__auth_first(struct wsa_conn *c, const json_t *msg,
		     const struct wsa_json_head *head, bool oom)
{
	const json_t *id = head->id;
	const json_t *token = json_object_get(msg, "token");
	const json_t *type = head->type;

	if (!msg && oom) {
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (!json_is_string(type) || json_string_length(type) != 5 ||
	    memcmp(json_string_value(type), "login", 5) ||
	    !json_is_string(token) || !json_string_length(token)) {
		WSA_LOG_PEER(c->svc->srv, WSA_LOG_INFO, WSA_PL_FIRST_NOT_LOGIN,
			     c, "first message is no login");
		wsa__conn_fail(c, WSA_MSG_FIRST_LOGIN, id, WSA_CLOSE_POLICY);
	} else {
		login_start(c, token, id, false);
	}
}

void wsa__auth_refresh(struct wsa_conn *c, json_t *msg)
{
	const json_t *token = json_object_get(msg, "token");

	if (!json_is_string(token) || !json_string_length(token)) {
		WSA_LOG_PEER(c->svc->srv, WSA_LOG_NOTICE,
			     WSA_PL_REFRESH_NO_TOKEN, c,
			     "refresh without a token");
		wsa__conn_fail(c, WSA_MSG_AUTH_FAILED, wsa__conn_reply_id(c),
			       WSA_CLOSE_POLICY);
		return;
	}
	login_start(c, token, wsa__conn_reply_id(c), true);
}

void wsa__auth_timeout(struct wsa_conn *c)
{
	count_login(c->svc, WSA_LOGIN_TIMEOUT);
	WSA_LOG_PEER(c->svc->srv, WSA_LOG_INFO, WSA_PL_LOGIN_TIMEOUT, c,
		     "no login in time");
	wsa__conn_fail(c, WSA_MSG_AUTH_TIMEOUT, NULL, WSA_CLOSE_POLICY);
}

/* Record an answer. Inside the verifier's call on the loop's thread it
 * is acted on when the call returns; otherwise it goes to the loop as
 * work. (in_call is the loop's: read only on it.) */
static void answer(struct wsa_auth *a)
{
	struct wsa_service *svc = a->svc;
	bool now;

	pthread_mutex_lock(&svc->auth_lock);
	pending_unlink(a);
	now = wsa__on_loop(svc) && a->in_call;
	if (now)
		a->answered = true;
	pthread_mutex_unlock(&svc->auth_lock);
	if (!now)
		wsa__workq_push(&svc->workq, &a->work);
}

void wsa__auth_free_pending(struct wsa_service *svc)
{
	struct wsa_auth *a;

	while ((a = svc->auth_pending)) {
		pending_unlink(a);
		auth_free(a);
	}
}

/* The built-in verifier's glue: verify now, and have the connection
 * expire at exp + leeway, as verification counts it, not at exp. */
void wsa_jwt_verifier(wsa_auth *auth, const char *token, size_t len, void *jwt)
{
	json_t *claims = NULL;
	int rc = wsa_jwt_verify(jwt, token, len, &claims);

	if (rc) {
		auth->code = rc;
		wsa_auth_reject(auth, wsa_strerror(rc));
		return;
	}
	auth->leeway = wsa__jwt_leeway(jwt);
	wsa_auth_accept(auth, claims);
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
