/* Limits against hostile clients, as verdicts: connections per server, per
 * client address and per user, failed logins and token verifications per
 * address, messages per connection. The tables are the server's, shared
 * by its loops under one lock (taken per connection and per login, never
 * per message); the callers act on the answers. */
#ifndef WSA_LIB_GUARD_H
#define WSA_LIB_GUARD_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "util/map.h"
#include "wsa.h"

/* "255.255.255.255", or an IPv6 /64 as "ffff:ffff:ffff:ffff::/64". */
#define WSA_PEER_KEY_LEN 48

/* What the server knows of one client address. It lives while the
 * address has sockets, or something not yet forgotten. Its key never
 * changes; the rest is under the guard's lock. */
struct wsa_peer {
	struct wsa_map_entry entry;		/* in guard->peers */
	struct wsa_peer *idle_prev, *idle_next; /* while it has no sockets */
	unsigned conns;				/* WebSockets open */
	unsigned sockets; /* TCP connections open, WebSockets or not */
	/* Failed logins as a GCRA (with max_failed_logins set): the time at
	 * which the address owes nothing again. */
	lws_usec_t fail_tat;
	/* Its verification budget as a GCRA. */
	lws_usec_t verify_tat;
	/* Until then its new connections get no burst: one of its
	 * connections was closed for abusing the message rate. */
	lws_usec_t abuse_until;
	char key[WSA_PEER_KEY_LEN];
};

struct wsa_guard {
	pthread_mutex_t lock;
	const wsa_config *cfg;
	struct wsa_map peers;
	struct wsa_peer *idle; /* addresses without sockets */
	size_t nopen;	       /* WebSockets open, not closing */
	size_t nsockets;       /* accepted TCP connections still open */
	struct wsa_map users;  /* uid -> count, with a per-user limit */
};

void wsa__guard_init(struct wsa_guard *g, const wsa_config *cfg);
void wsa__guard_free(struct wsa_guard *g);

/* Forget addresses without sockets that have nothing left to
 * remember; now and then, from one loop. */
void wsa__guard_sweep(struct wsa_guard *g);

/* The address key of a connection's peer (IPv4 mapped addresses as IPv4,
 * IPv6 by its /64); false when the socket has no peer address. */
bool wsa__peer_key(struct lws *wsi, char key[WSA_PEER_KEY_LEN]);

/* The same key of a socket address; false when it is not an IP one. */
bool wsa__addr_key(const struct sockaddr_storage *ss,
		   char key[WSA_PEER_KEY_LEN]);

/* Whether a TCP connection just accepted from the address at key ("" for
 * one that is not an IP address) may stay: sockets that are not
 * WebSockets yet are bounded too. */
bool wsa__guard_accept(struct wsa_guard *g, const char *key);

/* Count an accepted socket if it is still within the limits (its wsi's
 * opaque user data then points to its address); false: refuse it. known
 * is its address key when the caller has it ("" for none), NULL to ask
 * the socket. And uncount it when lws destroys the wsi. */
bool wsa__guard_socket_open(struct wsa_guard *g, struct lws *wsi,
			    const char *known);
void wsa__guard_socket_closed(struct wsa_guard *g, struct lws *wsi);

/* The address key of a counted socket, NULL when it has none. */
const char *wsa__guard_socket_key(const struct wsa_guard *g, struct lws *wsi);

/* Whether one more WebSocket from this address is within the limits; if
 * not, *why names the limit. */
bool wsa__guard_admit(struct wsa_guard *g, const char *key, const char **why);

/* Count a WebSocket of this address if it is still within the limits;
 * NULL when it is not, or memory is short. */
struct wsa_peer *wsa__guard_attach(struct wsa_guard *g, const char *key);

/* A WebSocket of this address begins to close. */
void wsa__guard_detach(struct wsa_guard *g, struct wsa_peer *peer);

/* The opt-in throttle of failed logins (max_failed_logins): false when
 * the address owes too many already (refuse the login unverified);
 * otherwise the login counts as a failure from now on, until
 * wsa__throttle_refund() says it succeeded. Always true when off. A login
 * counts as it starts, so answers that come later from another thread
 * cannot let more through. */
bool wsa__throttle_begin(struct wsa_guard *g, const char *key);
void wsa__throttle_refund(struct wsa_guard *g, const char *key);

/* The verification budget of an address: 0 when one more verification
 * fits now (it is charged), else the time (lws_now_usecs() based) at
 * which the next one will fit. Off, or no such address: 0. */
lws_usec_t wsa__verify_take(struct wsa_guard *g, const char *key);

/* Charge a verification that cannot wait (a token at the upgrade). */
void wsa__verify_charge(struct wsa_guard *g, const char *key);

/* Per user (max_connections_per_user): count a login of uid if it is
 * within the limit (always, when off); release it as it closes; whether
 * uid is at the limit. */
bool wsa__user_admit(struct wsa_guard *g, const char *uid);
void wsa__user_release(struct wsa_guard *g, const char *uid);
bool wsa__user_full(struct wsa_guard *g, const char *uid);

/* ------------------------------------------- messages per connection */

struct wsa_rate {
	lws_usec_t tat;		 /* when the connection owes nothing */
	lws_usec_t last_refusal; /* refusals in a row: */
	unsigned strikes;	 /* each within a second of the last */
};

enum wsa_rate_verdict {
	WSA_RATE_OK,	 /* take the message */
	WSA_RATE_REFUSE, /* answer "Rate limit exceeded", drop it */
	WSA_RATE_ABUSE,	 /* refused once too often: close */
};

/* A connection just authenticated: its rate starts with the burst, or
 * without it when its address abused the rate lately. */
void wsa__rate_start(struct wsa_guard *g, struct wsa_rate *r,
		     const struct wsa_peer *peer);

/* Account one message. */
enum wsa_rate_verdict wsa__rate_take(const wsa_config *cfg, struct wsa_rate *r);

/* When a refused connection may send one more message: until then it is
 * not read, so a flood costs reads no more often than the rate allows. */
lws_usec_t wsa__rate_resume_at(const wsa_config *cfg, const struct wsa_rate *r);

/* A connection of this address was closed for abusing the rate: for a
 * minute its new connections start without the burst (reconnecting must
 * not refill it). */
void wsa__rate_abused(struct wsa_guard *g, struct wsa_peer *peer);

#endif
