/* Per-connection deadlines and liveness without a libwebsockets timer
 * each.
 *
 * lws keeps its timers in one sorted list and walks it from the head on
 * every insert, so a timer per connection makes setting up N connections
 * cost O(N^2). Here each connection has at most one deadline (the login
 * deadline, then the token's expiry) in a binary min-heap, and idle
 * connections are found through a list in order of last activity; each
 * structure arms one libev timer (on the server's loop) for its earliest
 * entry. At most TIMER_BATCH entries are acted on per firing, so ten
 * thousand logins timing out at once do not stall everyone else. */
#ifndef WSA_LIB_TIMER_H
#define WSA_LIB_TIMER_H

#include <stdbool.h>

#include <ev.h>
#include <libwebsockets.h>

struct wsa_conn;
struct wsa_server;

struct wsa_timers {
	struct wsa_conn **heap; /* by conn->deadline */
	size_t n, cap;
	ev_timer deadline_timer;
	struct wsa_conn *lru_head, *lru_tail; /* oldest activity first */
	ev_timer idle_timer;
	/* Liveness: connections by the last frame of any kind from the
	 * peer, oldest first; those pinged, awaiting any frame, in order of
	 * their ping; one timer for both. */
	struct wsa_conn *seen_head, *seen_tail;
	struct wsa_conn *pinged_head, *pinged_tail;
	ev_timer live_timer;
};

/* Set the connection's deadline, lws_now_usecs() based; false when memory
 * is short (the old deadline then stands). */
bool wsa__timer_set(struct wsa_server *srv, struct wsa_conn *conn,
		    lws_usec_t at);

/* Remove the connection's deadline, if it has one. */
void wsa__timer_clear(struct wsa_server *srv, struct wsa_conn *conn);

/* Activity on a connection: it becomes the most recently active. */
void wsa__timer_touch(struct wsa_server *srv, struct wsa_conn *conn);

/* A frame of any kind (a pong too) came from the peer: it is alive. */
void wsa__timer_seen(struct wsa_server *srv, struct wsa_conn *conn);

/* Stop pinging a connection (it closes). */
void wsa__timer_unseen(struct wsa_server *srv, struct wsa_conn *conn);

/* Forget a closing connection: its deadline and its place by activity. */
void wsa__timer_forget(struct wsa_server *srv, struct wsa_conn *conn);

/* Stop both timers, at the end of wsa_server_run. */
void wsa__timers_stop(struct wsa_server *srv);

/* Free the heap at server free. */
void wsa__timers_free(struct wsa_timers *t);

#endif
