/* Limits against hostile clients. See guard.h. */
#include "guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "dispatch.h"
#include "log.h"
#include "server.h"

#define MINUTE_US ((lws_usec_t)60 * 1000000)
#define SECOND_US ((lws_usec_t)1000000)

/* Connections resumed (or logins let go) per firing of a timer. Each may
 * read a whole buffer of messages at once: a few per loop iteration keep
 * the iterations, and everyone's wait for their end, short (measured by
 * bench/run.py --only attack). */
#define RESUME_BATCH 8

/* The key of a socket address (see wsa__peer_key). */
static bool addr_key(const struct sockaddr_storage *ss,
		     char key[WSA_PEER_KEY_LEN])
{
	const unsigned char *a;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		return inet_ntop(AF_INET, &in->sin_addr, key,
				 WSA_PEER_KEY_LEN) != NULL;
	}
	if (ss->ss_family != AF_INET6)
		return false;
	a = ((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)a))
		return inet_ntop(AF_INET, a + 12, key, WSA_PEER_KEY_LEN) !=
		       NULL;
	/* One IPv6 client commonly holds a whole /64. */
	snprintf(key, WSA_PEER_KEY_LEN, "%x:%x:%x:%x::/64", a[0] << 8 | a[1],
		 a[2] << 8 | a[3], a[4] << 8 | a[5], a[6] << 8 | a[7]);
	return true;
}

bool wsa__peer_key(struct lws *wsi, char key[WSA_PEER_KEY_LEN])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = (int)lws_get_socket_fd(wsi);

	return fd >= 0 && !getpeername(fd, (struct sockaddr *)&ss, &len) &&
	       addr_key(&ss, key);
}

static bool limited(unsigned limit)
{
	return limit != WSA_UNLIMITED;
}

bool wsa__peer_admit(struct wsa_server *srv, const char *key)
{
	const struct wsa_peer *p;

	if (limited(srv->cfg.max_connections) &&
	    srv->nopen >= srv->cfg.max_connections)
		return false;
	if (!limited(srv->cfg.max_connections_per_address))
		return true;
	p = wsa__map_get(&srv->peers, key);
	return !p || p->conns < srv->cfg.max_connections_per_address;
}

static void idle_unlink(struct wsa_server *srv, struct wsa_peer *p)
{
	if (p->idle_prev)
		p->idle_prev->idle_next = p->idle_next;
	else if (srv->idle_peers == p)
		srv->idle_peers = p->idle_next;
	if (p->idle_next)
		p->idle_next->idle_prev = p->idle_prev;
	p->idle_prev = p->idle_next = NULL;
}

static void peer_free(struct wsa_server *srv, struct wsa_peer *p)
{
	if (srv->loop)
		ev_timer_stop(srv->loop, &p->wait_timer);
	idle_unlink(srv, p);
	wsa__map_del(&srv->peers, p->key);
	free(p);
}

/* Whether an address without connections has nothing left to remember:
 * failed logins forgiven, no abuse of the rate lately, its verification
 * budget whole. */
static bool peer_forgotten(const struct wsa_peer *p, lws_usec_t now)
{
	/* Its verification budget full again too: reconnecting must not
	 * refill it. */
	return p->fail_tat <= now && p->abuse_until <= now &&
	       p->verify_tat <= now;
}

/* Forget idle addresses with nothing left to remember; runs while any
 * idle address is left. */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct wsa_server *srv =
	    (struct wsa_server *)(void *)((char *)sul -
					  offsetof(struct wsa_server,
						   peer_sul));
	lws_usec_t now = lws_now_usecs();
	struct wsa_peer *p = srv->idle_peers, *next;

	for (; p; p = next) {
		next = p->idle_next;
		if (peer_forgotten(p, now))
			peer_free(srv, p);
	}
	if (srv->idle_peers)
		lws_sul_schedule(srv->ctx, 0, &srv->peer_sul, sweep,
				 MINUTE_US / 4);
}

static void wait_fire(struct ev_loop *loop, ev_timer *t, int revents);

/* The entry of key, made when missing; NULL when memory is short. */
static struct wsa_peer *peer_get(struct wsa_server *srv, const char *key)
{
	struct wsa_peer *p = wsa__map_get(&srv->peers, key);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->key, sizeof(p->key), "%s", key);
	p->srv = srv;
	ev_init(&p->wait_timer, wait_fire);
	p->wait_timer.data = p;
	wsa__map_entry_set(&p->entry, p->key, strlen(p->key), p);
	if (!wsa__map_put(&srv->peers, &p->entry)) {
		free(p);
		return NULL;
	}
	return p;
}

/* An address without connections: forgotten now, or once there is
 * nothing left to remember of it. */
static void peer_release(struct wsa_server *srv, struct wsa_peer *p)
{
	if (p->conns || p->sockets || p->idle_prev || srv->idle_peers == p)
		return;
	if (peer_forgotten(p, lws_now_usecs())) {
		peer_free(srv, p);
		return;
	}
	p->idle_next = srv->idle_peers;
	if (p->idle_next)
		p->idle_next->idle_prev = p;
	srv->idle_peers = p;
	if (srv->freeing || !lws_dll2_is_detached(&srv->peer_sul.list))
		return;
	lws_sul_schedule(srv->ctx, 0, &srv->peer_sul, sweep, MINUTE_US / 4);
}

struct wsa_peer *wsa__peer_attach(struct wsa_server *srv, const char *key)
{
	struct wsa_peer *p = peer_get(srv, key);

	if (!p)
		return NULL;
	idle_unlink(srv, p);
	p->conns++;
	return p;
}

void wsa__peer_detach(struct wsa_server *srv, struct wsa_peer *p)
{
	if (!p || !p->conns)
		return;
	if (!--p->conns)
		peer_release(srv, p);
}

/* Sockets not yet WebSockets may be as many again as the WebSockets
 * allowed: room for upgrades to be answered 503 rather than dropped, and
 * a bound on sockets held open without a word (until the handshake
 * timeout). */
static bool sockets_full(unsigned limit, size_t n)
{
	return limited(limit) && n >= 2 * (size_t)limit;
}

bool wsa__peer_accept(struct wsa_server *srv,
		      const struct sockaddr_storage *addr)
{
	char key[WSA_PEER_KEY_LEN];
	const struct wsa_peer *p;

	if (sockets_full(srv->cfg.max_connections, srv->nsockets))
		return false;
	if (!addr_key(addr, key))
		return true; /* counted by nothing: not an IP peer */
	p = wsa__map_get(&srv->peers, key);
	return !p ||
	       !sockets_full(srv->cfg.max_connections_per_address, p->sockets);
}

void wsa__peer_socket_open(struct wsa_server *srv, struct lws *wsi)
{
	char key[WSA_PEER_KEY_LEN];
	struct wsa_peer *p;

	/* The opaque data marks the wsi as counted: its address, or the
	 * counter itself when it has none (lws destroys wsis of its own
	 * too, uncounted). */
	srv->nsockets++;
	lws_set_opaque_user_data(wsi, &srv->nsockets);
	if (!wsa__peer_key(wsi, key) || !(p = peer_get(srv, key)))
		return;
	idle_unlink(srv, p);
	p->sockets++;
	lws_set_opaque_user_data(wsi, p);
}

void wsa__peer_socket_closed(struct wsa_server *srv, struct lws *wsi)
{
	void *mark = lws_get_opaque_user_data(wsi);
	struct wsa_peer *p = mark;

	if (!mark)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	srv->nsockets--;
	if (mark != (void *)&srv->nsockets && !--p->sockets)
		peer_release(srv, p);
}

/* A minute divided among the failures it forgives. */
static lws_usec_t fail_cost(const struct wsa_server *srv)
{
	return MINUTE_US / srv->cfg.max_failed_logins;
}

bool wsa__throttle_begin(struct wsa_server *srv, const char *key)
{
	struct wsa_peer *p;
	lws_usec_t now = lws_now_usecs(), cost;

	if (!limited(srv->cfg.max_failed_logins) || !key)
		return true;
	p = peer_get(srv, key);
	if (!p) /* memory is short: the login goes uncounted */
		return true;
	cost = fail_cost(srv);
	/* Refused once max_failed_logins are owed; a refusal is not counted
	 * (it cost nothing), so the address is let in again a minute after
	 * its last counted failure at the latest. */
	if (p->fail_tat - now > MINUTE_US - cost) {
		peer_release(srv, p);
		return false;
	}
	p->fail_tat = (p->fail_tat > now ? p->fail_tat : now) + cost;
	return true;
}

void wsa__throttle_refund(struct wsa_server *srv, const char *key)
{
	struct wsa_peer *p;

	if (!limited(srv->cfg.max_failed_logins) || !key)
		return;
	p = wsa__map_get(&srv->peers, key);
	if (p)
		p->fail_tat -= fail_cost(srv);
}

/* ---------------------------------------------- verification budget */

/* What one verification costs of an address's budget. */
static lws_usec_t verify_cost(const wsa_config *cfg)
{
	lws_usec_t cost = SECOND_US / cfg->verify_rate;

	return cost ? cost : 1;
}

/* Charge one verification if it fits the budget now. */
static bool verify_take(const wsa_config *cfg, struct wsa_peer *p,
			lws_usec_t now)
{
	lws_usec_t cost = verify_cost(cfg);
	lws_usec_t tat = (p->verify_tat > now ? p->verify_tat : now) + cost;

	if (tat - now > cost * (lws_usec_t)cfg->verify_burst)
		return false;
	p->verify_tat = tat;
	return true;
}

static void wait_unlink(struct wsa_waiter *w)
{
	struct wsa_peer *p = w->peer;

	if (w->prev)
		w->prev->next = w->next;
	else
		p->wait_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		p->wait_tail = w->prev;
	w->prev = w->next = NULL;
	w->peer = NULL;
}

/* Arm the address's timer for its first waiter: its turn, or the end of
 * its time, whichever comes first. */
static void wait_arm(struct wsa_server *srv, struct wsa_peer *p, lws_usec_t now)
{
	const wsa_config *cfg = &srv->cfg;
	lws_usec_t cost = verify_cost(cfg), turn, end;

	ev_timer_stop(srv->loop, &p->wait_timer);
	if (!p->wait_head)
		return;
	turn = p->verify_tat + cost - cost * (lws_usec_t)cfg->verify_burst;
	end = p->wait_head->since + (lws_usec_t)cfg->auth_timeout_ms * 1000;
	if (end < turn)
		turn = end;
	ev_timer_set(&p->wait_timer,
		     turn > now ? (double)(turn - now) / 1e6 : 0., 0.);
	ev_timer_start(srv->loop, &p->wait_timer);
}

/* Let the waiters whose turn came go, in order, and tell those out of
 * time. A waiter's go may close its connection, but its socket, which
 * keeps the entry alive, is only destroyed later by lws. */
static void wait_fire(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct wsa_peer *p = t->data;
	struct wsa_server *srv = p->srv;
	lws_usec_t now = lws_now_usecs();
	lws_usec_t timeout = (lws_usec_t)srv->cfg.auth_timeout_ms * 1000;
	int n = 0;

	(void)loop, (void)revents;
	while (p->wait_head && n++ < RESUME_BATCH) {
		struct wsa_waiter *w = p->wait_head;
		bool in_time = now - w->since < timeout;

		if (in_time && !verify_take(&srv->cfg, p, now))
			break;
		wait_unlink(w);
		w->go(w, in_time);
	}
	wait_arm(srv, p, now);
	/* A login answered here resumes reading its connection: lws applies
	 * that after an I/O event. */
	if (n)
		lws_cancel_service(srv->ctx);
}

bool wsa__verify_admit(struct wsa_server *srv, struct wsa_peer *p,
		       struct wsa_waiter *w)
{
	lws_usec_t now;

	if (!limited(srv->cfg.verify_rate) || !p)
		return true;
	now = lws_now_usecs();
	if (!p->wait_head && verify_take(&srv->cfg, p, now))
		return true;
	w->since = now;
	w->peer = p;
	w->next = NULL;
	w->prev = p->wait_tail;
	if (p->wait_tail)
		p->wait_tail->next = w;
	else
		p->wait_head = w;
	p->wait_tail = w;
	if (!ev_is_active(&p->wait_timer))
		wait_arm(srv, p, now);
	return false;
}

void wsa__verify_charge(struct wsa_server *srv, const char *key)
{
	struct wsa_peer *p;
	lws_usec_t now, cost;

	if (!limited(srv->cfg.verify_rate) || !key ||
	    !(p = wsa__map_get(&srv->peers, key)))
		return;
	now = lws_now_usecs();
	cost = verify_cost(&srv->cfg);
	p->verify_tat = (p->verify_tat > now ? p->verify_tat : now) + cost;
}

void wsa__verify_cancel(struct wsa_waiter *w)
{
	struct wsa_peer *p = w->peer;

	if (!p)
		return;
	wait_unlink(w);
	if (!p->wait_head && p->srv->loop)
		ev_timer_stop(p->srv->loop, &p->wait_timer);
}

void wsa__peers_free(struct wsa_server *srv)
{
	while (srv->idle_peers)
		peer_free(srv, srv->idle_peers);
	/* Addresses with connections are freed as those close; what is
	 * left here has none. */
	wsa__map_free(&srv->peers);
}

/* What one message costs of a connection's rate, in microseconds. */
static lws_usec_t msg_cost(const wsa_config *cfg)
{
	lws_usec_t cost = SECOND_US / cfg->rate_limit;

	return cost ? cost : 1;
}

/* (Re)arm the paused list's timer for its first connection. */
static void arm_paused(struct wsa_server *srv, lws_usec_t now)
{
	struct wsa_pause_list *l = &srv->rate_paused;

	ev_timer_stop(srv->loop, &l->timer);
	if (!l->head)
		return;
	ev_timer_set(&l->timer,
		     l->head->resume_at > now
			 ? (double)(l->head->resume_at - now) / 1e6
			 : 0.,
		     0);
	ev_timer_start(srv->loop, &l->timer);
}

/* Resume the paused connections whose time has come, a few at a time:
 * what a resumed connection sent is read in the next loop iteration, and
 * a thousand read in one would keep everyone else waiting. The list is in
 * order of resume_at (all pauses last alike). */
static void resume_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct wsa_server *srv = w->data;
	struct wsa_pause_list *l = &srv->rate_paused;
	lws_usec_t now = lws_now_usecs();
	int n = 0;

	(void)loop, (void)revents;
	while (l->head && l->head->resume_at <= now && n < RESUME_BATCH) {
		struct wsa_conn *c = l->head;

		wsa__rate_unpause(c);
		wsa__conn_pause_rx(c, WSA_PAUSE_RATE, false);
		n++;
	}
	arm_paused(srv, now);
	/* lws applies a flow change, and reads what it already holds, after
	 * an I/O event: make one. */
	if (n)
		lws_cancel_service(srv->ctx);
}

void wsa__rate_init(struct wsa_server *srv)
{
	ev_init(&srv->rate_paused.timer, resume_due);
	srv->rate_paused.timer.data = srv;
}

void wsa__rate_pause(struct wsa_conn *c)
{
	struct wsa_server *srv = c->srv;
	struct wsa_pause_list *l = &srv->rate_paused;
	const wsa_config *cfg = &srv->cfg;

	if (c->rate_paused)
		return;
	/* Readable again once one more message fits the burst. */
	c->resume_at =
	    c->rate_tat - msg_cost(cfg) * (lws_usec_t)(cfg->rate_burst - 1);
	c->pause_next = NULL;
	c->pause_prev = l->tail;
	if (l->tail)
		l->tail->pause_next = c;
	else
		l->head = c;
	l->tail = c;
	c->rate_paused = true;
	wsa__conn_pause_rx(c, WSA_PAUSE_RATE, true);
	if (!ev_is_active(&l->timer))
		arm_paused(srv, lws_now_usecs());
}

void wsa__rate_unpause(struct wsa_conn *c)
{
	struct wsa_pause_list *l = &c->srv->rate_paused;

	if (!c->rate_paused)
		return;
	if (c->pause_prev)
		c->pause_prev->pause_next = c->pause_next;
	else
		l->head = c->pause_next;
	if (c->pause_next)
		c->pause_next->pause_prev = c->pause_prev;
	else
		l->tail = c->pause_prev;
	c->pause_prev = c->pause_next = NULL;
	c->rate_paused = false;
}

void wsa__rate_stop(struct wsa_server *srv)
{
	if (srv->loop)
		ev_timer_stop(srv->loop, &srv->rate_paused.timer);
}

void wsa__rate_start(struct wsa_conn *c)
{
	const wsa_config *cfg = &c->srv->cfg;
	lws_usec_t now = lws_now_usecs();

	/* One message may go at once, then one per cost. */
	if (limited(cfg->rate_limit) && c->peer && c->peer->abuse_until > now)
		c->rate_tat =
		    now + msg_cost(cfg) * (lws_usec_t)(cfg->rate_burst - 1);
}

void wsa__rate_close(struct wsa_conn *c, const json_t *id)
{
	WSA_LOG(c->srv, WSA_LOG_NOTICE, c, "closed: rate limit abused");
	if (c->peer) /* the close detaches it */
		c->peer->abuse_until = lws_now_usecs() + MINUTE_US;
	wsa__conn_fail(c, WSA_MSG_RATE_LIMIT, id, WSA_CLOSE_POLICY);
	/* The flood is not read through for the peer's close (which
	 * wsa__conn_close would do): what it has in flight stays in its
	 * socket until the close deadline hangs up; reading it cost more
	 * than the flood's share. */
	wsa__conn_pause_rx(c, WSA_PAUSE_RATE, true);
}

enum wsa_rate wsa__rate_take(struct wsa_conn *c)
{
	const wsa_config *cfg = &c->srv->cfg;
	lws_usec_t now, cost, tat;

	if (!limited(cfg->rate_limit))
		return WSA_RATE_OK;
	now = lws_now_usecs();
	cost = msg_cost(cfg);
	/* GCRA: rate_burst messages at once, then one per cost. */
	tat = (c->rate_tat > now ? c->rate_tat : now) + cost;
	if (tat - now <= cost * (lws_usec_t)cfg->rate_burst) {
		c->rate_tat = tat;
		return WSA_RATE_OK;
	}
	/* Refusals in a row: each within a second of the time the previous
	 * one let the connection send again (a paused connection is read
	 * again after one message's cost). */
	if (now - c->last_refusal > SECOND_US + cost)
		c->rate_strikes = 0;
	c->last_refusal = now;
	return ++c->rate_strikes > cfg->rate_burst ? WSA_RATE_ABUSE
						   : WSA_RATE_REFUSE;
}
