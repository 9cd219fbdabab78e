/* Limits against hostile clients: connections per server and per client
 * address, failed logins per address, messages per connection. */
#ifndef WSA_LIB_GUARD_H
#define WSA_LIB_GUARD_H

#include <stdbool.h>
#include <sys/socket.h>

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "map.h"

struct wsa_conn;
struct wsa_server;

/* Connections over their rate, not read until their resume_at, oldest
 * first, with one libev timer for the first. */
struct wsa_pause_list {
	struct wsa_conn *head, *tail;
	ev_timer timer;
};

/* "255.255.255.255", or an IPv6 /64 as "ffff:ffff:ffff:ffff::/64". */
#define WSA_PEER_KEY_LEN 48

/* Something waiting for its address's verification budget (a login):
 * go(w, true) when its turn comes, go(w, false) when it waited the auth
 * timeout in vain. Either way it has left the queue. */
struct wsa_waiter {
	struct wsa_waiter *prev, *next;
	lws_usec_t since;
	void (*go)(struct wsa_waiter *w, bool in_time);
	struct wsa_peer *peer; /* while queued */
};

/* What the server knows of one client address. It lives while the
 * address has connections, or failed logins not yet forgiven. */
struct wsa_peer {
	struct wsa_map_entry entry;		/* in srv->peers */
	struct wsa_peer *idle_prev, *idle_next; /* while conns is 0 */
	unsigned conns;				/* WebSockets open */
	unsigned sockets; /* TCP connections open, WebSockets or not */
	/* Failed logins as a GCRA (only with max_failed_logins set): the
	 * time at which the address owes nothing again; each login adds a
	 * minute / max_failed_logins as it starts, a success gives it back. */
	lws_usec_t fail_tat;
	/* Its verification budget as a GCRA, and the logins waiting for it,
	 * oldest first, with a timer for the first one's turn. */
	lws_usec_t verify_tat;
	struct wsa_waiter *wait_head, *wait_tail;
	ev_timer wait_timer;
	struct wsa_server *srv;
	/* Until then its new connections get no burst: one of its
	 * connections was closed for abusing the message rate. */
	lws_usec_t abuse_until;
	char key[WSA_PEER_KEY_LEN];
};

/* The address key of a connection's peer (IPv4 mapped addresses as IPv4,
 * IPv6 by its /64); false when the socket has no peer address. */
bool wsa__peer_key(struct lws *wsi, char key[WSA_PEER_KEY_LEN]);

/* Whether a TCP connection just accepted from addr may stay: sockets
 * that are not WebSockets yet are bounded too (guard.c). */
bool wsa__peer_accept(struct wsa_server *srv,
		      const struct sockaddr_storage *addr);

/* Count an accepted socket (its wsi's opaque user data points to its
 * address from now on), and uncount it when lws destroys the wsi. */
void wsa__peer_socket_open(struct wsa_server *srv, struct lws *wsi);
void wsa__peer_socket_closed(struct wsa_server *srv, struct lws *wsi);

/* Whether one more WebSocket from this address is within the limits. */
bool wsa__peer_admit(struct wsa_server *srv, const char *key);

/* Count a WebSocket of this address; NULL when memory is short. */
struct wsa_peer *wsa__peer_attach(struct wsa_server *srv, const char *key);

/* A WebSocket of this address closed. */
void wsa__peer_detach(struct wsa_server *srv, struct wsa_peer *peer);

/* The opt-in throttle of failed logins (max_failed_logins): false when
 * the address owes too many already, and the login is refused unverified;
 * otherwise the login is counted as a failure from now on, until
 * wsa__throttle_refund() says it succeeded. Always true when off. A login
 * counts when it starts, so answers that come later from another thread
 * cannot let more through. */
bool wsa__throttle_begin(struct wsa_server *srv, const char *key);

/* A login counted by wsa__throttle_begin() succeeded. */
void wsa__throttle_refund(struct wsa_server *srv, const char *key);

/* Whether a login of this address may be verified now (its budget is
 * charged), or must wait: then w is queued, in order of arrival, and
 * w->go is called later. Addresses without an entry (memory was short)
 * go at once. */
bool wsa__verify_admit(struct wsa_server *srv, struct wsa_peer *peer,
		       struct wsa_waiter *w);

/* Charge the address for a verification that cannot wait (a token at
 * the upgrade). */
void wsa__verify_charge(struct wsa_server *srv, const char *key);

/* Take a waiter out of its queue (its connection closes); go is not
 * called. */
void wsa__verify_cancel(struct wsa_waiter *w);

/* Free every entry at server free. */
void wsa__peers_free(struct wsa_server *srv);

enum wsa_rate {
	WSA_RATE_OK,	 /* take the message */
	WSA_RATE_REFUSE, /* answer "Rate limit exceeded", drop it */
	WSA_RATE_ABUSE,	 /* refused once too often: close */
};

/* A connection just authenticated: its message rate starts with the
 * burst, or without it when its address abused the rate lately. */
void wsa__rate_start(struct wsa_conn *conn);

/* Close a connection for abusing the rate (the error, with id, then
 * 1008), and read nothing more from it; for a minute its address's new
 * connections get no burst (reconnecting must not refill it). */
void wsa__rate_close(struct wsa_conn *conn, const json_t *id);

/* Account one message of an authenticated connection. */
enum wsa_rate wsa__rate_take(struct wsa_conn *conn);

/* Stop reading a connection over its rate until it may send again, so a
 * flood costs reads no more often than the rate allows. */
void wsa__rate_pause(struct wsa_conn *conn);

/* Set up the paused list's timer, once the server's loop exists. */
void wsa__rate_init(struct wsa_server *srv);

/* Take the connection off the paused list (it closes). */
void wsa__rate_unpause(struct wsa_conn *conn);

/* Stop the timer of the paused list, at server stop. */
void wsa__rate_stop(struct wsa_server *srv);

#endif
