/* Limits against hostile clients. See guard.h. */
#include "policy/guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MINUTE_US ((lws_usec_t)60 * 1000000)
#define SECOND_US ((lws_usec_t)1000000)

static bool limited(unsigned limit)
{
	return limit != WSA_UNLIMITED;
}

/* One more of cost on a GCRA whose theoretical arrival time is tat: the
 * new tat (what is owed never starts before now). */
static lws_usec_t gcra_add(lws_usec_t tat, lws_usec_t now, lws_usec_t cost)
{
	return (tat > now ? tat : now) + cost;
}

void wsa__guard_init(struct wsa_guard *g, const wsa_config *cfg)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	g->cfg = cfg;
}

/* ------------------------------------------------------- addresses */

/* An IPv4 address in dotted decimal, as inet_ntop writes it, without its
 * cost (a third of a login's own work went to formatting addresses). */
static void ipv4_text(const unsigned char a[4], char key[WSA_PEER_KEY_LEN])
{
	char *p = key;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
}

bool wsa__addr_key(const struct sockaddr_storage *ss,
		   char key[WSA_PEER_KEY_LEN])
{
	const unsigned char *a;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		ipv4_text((const unsigned char *)&in->sin_addr.s_addr, key);
		return true;
	}
	if (ss->ss_family != AF_INET6)
		return false;
	a = ((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)a)) {
		ipv4_text(a + 12, key);
		return true;
	}
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
	       wsa__addr_key(&ss, key);
}

static void idle_unlink(struct wsa_guard *g, struct wsa_peer *p)
{
	if (p->idle_prev)
		p->idle_prev->idle_next = p->idle_next;
	else if (g->idle == p)
		g->idle = p->idle_next;
	if (p->idle_next)
		p->idle_next->idle_prev = p->idle_prev;
	p->idle_prev = p->idle_next = NULL;
}

static void peer_free(struct wsa_guard *g, struct wsa_peer *p)
{
	idle_unlink(g, p);
	wsa__map_del(&g->peers, p->key);
	free(p);
}

/* Whether an address without sockets has nothing left to remember:
 * failed logins forgiven, no abuse of the rate lately, its verification
 * budget whole (reconnecting must not refill it). */
static bool peer_forgotten(const struct wsa_peer *p, lws_usec_t now)
{
	return p->fail_tat <= now && p->abuse_until <= now &&
	       p->verify_tat <= now;
}

/* The entry of key, made when missing; NULL when memory is short. Under
 * the lock. */
static struct wsa_peer *peer_get(struct wsa_guard *g, const char *key)
{
	struct wsa_peer *p = wsa__map_get(&g->peers, key);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->key, sizeof(p->key), "%s", key);
	wsa__map_entry_set(&p->entry, p->key, strlen(p->key), p);
	if (!wsa__map_put(&g->peers, &p->entry)) {
		free(p);
		return NULL;
	}
	return p;
}

/* An address may have lost its last socket: forgotten now, or kept on
 * the idle list until it has nothing left to remember. Under the lock. */
static void peer_release(struct wsa_guard *g, struct wsa_peer *p)
{
	if (p->conns || p->sockets || p->idle_prev || g->idle == p)
		return;
	if (peer_forgotten(p, lws_now_usecs())) {
		peer_free(g, p);
		return;
	}
	p->idle_next = g->idle;
	if (p->idle_next)
		p->idle_next->idle_prev = p;
	g->idle = p;
}

void wsa__guard_sweep(struct wsa_guard *g)
{
	lws_usec_t now = lws_now_usecs();
	struct wsa_peer *p, *next;

	pthread_mutex_lock(&g->lock);
	for (p = g->idle; p; p = next) {
		next = p->idle_next;
		if (peer_forgotten(p, now))
			peer_free(g, p);
	}
	pthread_mutex_unlock(&g->lock);
}

/* Sockets not yet WebSockets may be as many again as the WebSockets
 * allowed: room for upgrades to be answered 503 rather than dropped, and
 * a bound on sockets held open without a word (until the handshake
 * timeout). */
static bool sockets_full(unsigned limit, size_t n)
{
	return limited(limit) && n >= 2 * (size_t)limit;
}

bool wsa__guard_accept(struct wsa_guard *g, const char *key)
{
	const struct wsa_peer *p;
	bool ok;

	pthread_mutex_lock(&g->lock);
	ok = !sockets_full(g->cfg->max_connections, g->nsockets);
	if (ok && key[0]) {
		p = wsa__map_get(&g->peers, key);
		ok = !p || !sockets_full(g->cfg->max_connections_per_address,
					 p->sockets);
	}
	pthread_mutex_unlock(&g->lock);
	return ok;
}

bool wsa__guard_socket_open(struct wsa_guard *g, struct lws *wsi,
			    const char *known)
{
	char own[WSA_PEER_KEY_LEN];
	const char *key = known ? known : own;
	struct wsa_peer *p = NULL;
	bool keyed = known ? known[0] != '\0' : wsa__peer_key(wsi, own), ok;

	/* Checked again and counted in one step: several loops accept at
	 * once, and a check made before (wsa__guard_accept) may be stale. */
	pthread_mutex_lock(&g->lock);
	ok = !sockets_full(g->cfg->max_connections, g->nsockets);
	if (ok && keyed && (p = peer_get(g, key))) {
		ok = !sockets_full(g->cfg->max_connections_per_address,
				   p->sockets);
		if (ok) {
			idle_unlink(g, p);
			p->sockets++;
		} else {
			peer_release(g, p);
		}
	}
	if (ok)
		g->nsockets++;
	pthread_mutex_unlock(&g->lock);
	/* The opaque data marks the wsi as counted: its address, or the
	 * counter itself when it has none (lws destroys wsis of its own
	 * too, uncounted). */
	if (ok)
		lws_set_opaque_user_data(wsi,
					 p ? (void *)p : (void *)&g->nsockets);
	return ok;
}

const char *wsa__guard_socket_key(const struct wsa_guard *g, struct lws *wsi)
{
	const void *mark = lws_get_opaque_user_data(wsi);

	/* The address outlives its counted sockets, and its key never
	 * changes: no lock needed to read it. */
	if (!mark || mark == (const void *)&g->nsockets)
		return NULL;
	return ((const struct wsa_peer *)mark)->key;
}

void wsa__guard_socket_closed(struct wsa_guard *g, struct lws *wsi)
{
	void *mark = lws_get_opaque_user_data(wsi);
	struct wsa_peer *p = mark;

	if (!mark)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	pthread_mutex_lock(&g->lock);
	g->nsockets--;
	if (mark != (void *)&g->nsockets && !--p->sockets)
		peer_release(g, p);
	pthread_mutex_unlock(&g->lock);
}

/* Whether one more WebSocket of the address at key fits; under the
 * lock. */
static bool fits(struct wsa_guard *g, const char *key, const char **why)
{
	const struct wsa_peer *p;

	if (limited(g->cfg->max_connections) &&
	    g->nopen >= g->cfg->max_connections) {
		*why = "max_connections reached";
		return false;
	}
	if (!limited(g->cfg->max_connections_per_address))
		return true;
	p = wsa__map_get(&g->peers, key);
	*why = "max_connections_per_address reached";
	return !p || p->conns < g->cfg->max_connections_per_address;
}

bool wsa__guard_admit(struct wsa_guard *g, const char *key, const char **why)
{
	bool ok;

	pthread_mutex_lock(&g->lock);
	ok = fits(g, key, why);
	pthread_mutex_unlock(&g->lock);
	return ok;
}

struct wsa_peer *wsa__guard_attach(struct wsa_guard *g, const char *key)
{
	struct wsa_peer *p = NULL;
	const char *why;

	/* Checked again: another loop may have taken the last place since
	 * the upgrade was admitted. */
	pthread_mutex_lock(&g->lock);
	if (fits(g, key, &why) && (p = peer_get(g, key))) {
		idle_unlink(g, p);
		p->conns++;
		g->nopen++;
	}
	pthread_mutex_unlock(&g->lock);
	return p;
}

void wsa__guard_detach(struct wsa_guard *g, struct wsa_peer *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&g->lock);
	g->nopen--;
	if (!--p->conns)
		peer_release(g, p);
	pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------ failed logins */

/* A minute divided among the failures it forgives. */
static lws_usec_t fail_cost(const wsa_config *cfg)
{
	return MINUTE_US / cfg->max_failed_logins;
}

bool wsa__throttle_begin(struct wsa_guard *g, const char *key)
{
	struct wsa_peer *p;
	lws_usec_t now = lws_now_usecs(), cost;
	bool ok = true;

	if (!limited(g->cfg->max_failed_logins) || !key)
		return true;
	cost = fail_cost(g->cfg);
	pthread_mutex_lock(&g->lock);
	p = peer_get(g, key);
	/* Refused once max_failed_logins are owed; a refusal is not counted
	 * (it cost nothing), so the address is let in again a minute after
	 * its last counted failure at the latest. Memory short: the login
	 * goes uncounted. */
	if (p && p->fail_tat - now > MINUTE_US - cost)
		ok = false;
	else if (p)
		p->fail_tat = gcra_add(p->fail_tat, now, cost);
	if (p)
		peer_release(g, p);
	pthread_mutex_unlock(&g->lock);
	return ok;
}

void wsa__throttle_refund(struct wsa_guard *g, const char *key)
{
	struct wsa_peer *p;

	if (!limited(g->cfg->max_failed_logins) || !key)
		return;
	pthread_mutex_lock(&g->lock);
	p = wsa__map_get(&g->peers, key);
	if (p)
		p->fail_tat -= fail_cost(g->cfg);
	pthread_mutex_unlock(&g->lock);
}

/* ---------------------------------------------- verification budget */

/* What one verification costs of an address's budget. */
static lws_usec_t verify_cost(const wsa_config *cfg)
{
	lws_usec_t cost = SECOND_US / cfg->verify_rate;

	return cost ? cost : 1;
}

lws_usec_t wsa__verify_take(struct wsa_guard *g, const char *key)
{
	const wsa_config *cfg = g->cfg;
	lws_usec_t cost, now, tat, next = 0;
	struct wsa_peer *p;

	if (!limited(cfg->verify_rate) || !key)
		return 0;
	cost = verify_cost(cfg);
	now = lws_now_usecs();
	pthread_mutex_lock(&g->lock);
	p = wsa__map_get(&g->peers, key);
	if (p) {
		tat = gcra_add(p->verify_tat, now, cost);
		if (tat - now <= cost * (lws_usec_t)cfg->verify_burst)
			p->verify_tat = tat;
		else /* when one more cost fits the burst */
			next = p->verify_tat + cost -
			       cost * (lws_usec_t)cfg->verify_burst;
	}
	pthread_mutex_unlock(&g->lock);
	return next > now ? next : 0;
}

void wsa__verify_charge(struct wsa_guard *g, const char *key)
{
	struct wsa_peer *p;
	lws_usec_t now;

	if (!limited(g->cfg->verify_rate) || !key)
		return;
	now = lws_now_usecs();
	pthread_mutex_lock(&g->lock);
	p = wsa__map_get(&g->peers, key);
	if (p)
		p->verify_tat =
		    gcra_add(p->verify_tat, now, verify_cost(g->cfg));
	pthread_mutex_unlock(&g->lock);
}

/* --------------------------------------------------------- users */

struct user_count {
	struct wsa_map_entry entry;
	unsigned n;
	char uid[];
};

bool wsa__user_admit(struct wsa_guard *g, const char *uid)
{
	struct user_count *u;
	bool ok = true;
	size_t len;

	if (!limited(g->cfg->max_connections_per_user))
		return true;
	pthread_mutex_lock(&g->lock);
	u = wsa__map_get(&g->users, uid);
	if (!u) {
		len = strlen(uid);
		u = calloc(1, sizeof(*u) + len + 1);
		if (u) {
			memcpy(u->uid, uid, len + 1);
			wsa__map_entry_set(&u->entry, u->uid, len, u);
			if (!wsa__map_put(&g->users, &u->entry)) {
				free(u);
				u = NULL;
			}
		}
	}
	if (!u) /* memory is short: uncounted, as the limits do */
		ok = true;
	else if (u->n >= g->cfg->max_connections_per_user)
		ok = false;
	else
		u->n++;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

void wsa__user_release(struct wsa_guard *g, const char *uid)
{
	struct user_count *u;

	if (!limited(g->cfg->max_connections_per_user))
		return;
	pthread_mutex_lock(&g->lock);
	u = wsa__map_get(&g->users, uid);
	if (u && !--u->n) {
		wsa__map_del(&g->users, u->uid);
		free(u);
	}
	pthread_mutex_unlock(&g->lock);
}

bool wsa__user_full(struct wsa_guard *g, const char *uid)
{
	const struct user_count *u;
	bool full;

	if (!limited(g->cfg->max_connections_per_user))
		return false;
	pthread_mutex_lock(&g->lock);
	u = wsa__map_get(&g->users, uid);
	full = u && u->n >= g->cfg->max_connections_per_user;
	pthread_mutex_unlock(&g->lock);
	return full;
}

void wsa__guard_free(struct wsa_guard *g)
{
	struct wsa_map_entry *e;
	size_t i;

	while (g->idle)
		peer_free(g, g->idle);
	/* Addresses with sockets are freed as those close; what is left
	 * here has none. Counts of users likewise. */
	for (i = 0; i < g->users.nbuckets; i++)
		while ((e = g->users.buckets[i])) {
			g->users.buckets[i] = e->next;
			free(e->value);
		}
	wsa__map_free(&g->users);
	wsa__map_free(&g->peers);
	pthread_mutex_destroy(&g->lock);
}

/* ---------------------------------------------------- message rate */

/* What one message costs of a connection's rate, in microseconds. */
static lws_usec_t msg_cost(const wsa_config *cfg)
{
	lws_usec_t cost = SECOND_US / cfg->rate_limit;

	return cost ? cost : 1;
}

void wsa__rate_start(struct wsa_guard *g, struct wsa_rate *r,
		     const struct wsa_peer *peer)
{
	const wsa_config *cfg = g->cfg;
	lws_usec_t now = lws_now_usecs();
	bool abused;

	if (!limited(cfg->rate_limit) || !peer)
		return;
	pthread_mutex_lock(&g->lock);
	abused = peer->abuse_until > now;
	pthread_mutex_unlock(&g->lock);
	/* One message may go at once, then one per cost. */
	if (abused)
		r->tat =
		    now + msg_cost(cfg) * (lws_usec_t)(cfg->rate_burst - 1);
}

void wsa__rate_abused(struct wsa_guard *g, struct wsa_peer *peer)
{
	if (!peer)
		return;
	pthread_mutex_lock(&g->lock);
	peer->abuse_until = lws_now_usecs() + MINUTE_US;
	pthread_mutex_unlock(&g->lock);
}

lws_usec_t wsa__rate_resume_at(const wsa_config *cfg, const struct wsa_rate *r)
{
	/* Readable again once one more message fits the burst. */
	return r->tat - msg_cost(cfg) * (lws_usec_t)(cfg->rate_burst - 1);
}

enum wsa_rate_verdict wsa__rate_take(const wsa_config *cfg, struct wsa_rate *r)
{
	lws_usec_t now, cost, tat;

	if (!limited(cfg->rate_limit))
		return WSA_RATE_OK;
	now = lws_now_usecs();
	cost = msg_cost(cfg);
	/* GCRA: rate_burst messages at once, then one per cost. */
	tat = gcra_add(r->tat, now, cost);
	if (tat - now <= cost * (lws_usec_t)cfg->rate_burst) {
		r->tat = tat;
		return WSA_RATE_OK;
	}
	/* Refusals in a row: each within a second of the time the previous
	 * one let the connection send again (a paused connection is read
	 * again after one message's cost). */
	if (now - r->last_refusal > SECOND_US + cost)
		r->strikes = 0;
	r->last_refusal = now;
	return ++r->strikes > cfg->rate_burst ? WSA_RATE_ABUSE
					      : WSA_RATE_REFUSE;
}
