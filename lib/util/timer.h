/* Deadlines without a libwebsockets timer each.
 *
 * lws keeps its timers in one sorted list and walks it from the head on
 * every insert, so a timer per connection makes setting up N connections
 * cost O(N^2). Here a deadline is a node embedded in what it times, kept
 * in a binary min-heap (any deadlines) or in a list in time order (nodes
 * that all wait the same while: idle, ping, pong); each structure arms one
 * alarm for its first node. When a node is due it is taken out and
 * the owner's callback is called: the timer knows nothing of what a
 * deadline means. A few are acted on per firing and the next firing comes
 * PACE_US later, so ten thousand deadlines at once do not stall the loop. */
#ifndef WSA_LIB_TIMER_H
#define WSA_LIB_TIMER_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <libwebsockets.h>

/* ------------------------------------------------------------ alarm */

/* One timer, on whatever event loop the lws context runs on (ours, or
 * the host's). On a libev loop a libev timer: lws 4.1.6's libev glue
 * never moves its armed timer earlier except from its own firing, so
 * one of lws' timers set from an I/O event could wait for a later one.
 * On other loops (libuv, GLib), whose glue re-arms, lws' own sorted
 * timers, which are few here. */
struct wsa_alarm {
	union {
		lws_sorted_usec_list_t sul;
		ev_timer ev;
	} u;
	struct lws_context *ctx;
	struct ev_loop *loop; /* NULL: an lws timer */
	void (*fire)(struct wsa_alarm *a);
};

/* Where alarms run: a libev loop, or else the lws context's loop. */
struct wsa_clock {
	struct lws_context *ctx;
	struct ev_loop *loop;
};

/* A stopped alarm calling fire(a) when due. */
void wsa__alarm_init(struct wsa_alarm *a, const struct wsa_clock *clock,
		     void (*fire)(struct wsa_alarm *));

/* (Re)arm a for time at (lws_now_usecs() based; past: at once). */
void wsa__alarm_at(struct wsa_alarm *a, lws_usec_t at);

/* Disarm a, if armed. */
void wsa__alarm_stop(struct wsa_alarm *a);

/* ------------------------------------------------------------- heap */

struct wsa_deadline {
	lws_usec_t at; /* lws_now_usecs() based */
	size_t idx;    /* in the heap; WSA_NOT_TIMED when not */
};

#define WSA_NOT_TIMED ((size_t)-1)

struct wsa_heap {
	struct wsa_deadline **v;
	size_t n, cap;
	struct wsa_alarm alarm;
	/* d is due, and out of the heap already. */
	void (*fire)(struct wsa_deadline *d, void *arg);
	void *arg;
};

/* An empty heap on clock; fire(d, arg) for each deadline that passes. */
void wsa__heap_init(struct wsa_heap *h, const struct wsa_clock *clock,
		    void (*fire)(struct wsa_deadline *, void *), void *arg);

/* A deadline that is in no heap yet. */
static inline void wsa__deadline_init(struct wsa_deadline *d)
{
	d->idx = WSA_NOT_TIMED;
}

/* Set (or move) d to at; false when memory is short (d then keeps its
 * old place, or none). */
bool wsa__heap_set(struct wsa_heap *h, struct wsa_deadline *d, lws_usec_t at);

/* Take d out, if it is in. */
void wsa__heap_clear(struct wsa_heap *h, struct wsa_deadline *d);

/* Stop the timer (the loop stops); wsa__heap_free frees the array. */
void wsa__heap_stop(struct wsa_heap *h);
void wsa__heap_free(struct wsa_heap *h);

/* ------------------------------------------- list in order of time */

/* A node does not say which list it is on: its owner knows (a
 * connection holds three, each with lists of its own), and an idle
 * connection is smaller without it. Off any list, prev and next are
 * NULL. */
struct wsa_timed {
	lws_usec_t at; /* when it was last touched */
	struct wsa_timed *prev, *next;
};

struct wsa_timeline {
	struct wsa_timed *head, *tail; /* oldest first */
	lws_usec_t after;	       /* a node is due this long after at */
	unsigned batch;		       /* nodes acted on per firing */
	struct wsa_alarm alarm;
	/* n is due, and off the list already. */
	void (*fire)(struct wsa_timed *n, void *arg);
	void *arg;
};

/* An empty list on clock whose nodes are due after (microseconds) past
 * their time; fire(n, arg) for each, batch of them per firing. */
void wsa__timeline_init(struct wsa_timeline *l, const struct wsa_clock *clock,
			lws_usec_t after, unsigned batch,
			void (*fire)(struct wsa_timed *, void *), void *arg);

/* Whether n, which is on l or on no list, is on l. */
static inline bool wsa__timeline_has(const struct wsa_timeline *l,
				     const struct wsa_timed *n)
{
	return n->prev || l->head == n;
}

/* (Re)link n, which is on l or on no list, at the end with time now. */
void wsa__timeline_touch(struct wsa_timeline *l, struct wsa_timed *n,
			 lws_usec_t now);

/* Take n, which is on l or on no list, off l. The timer may then fire
 * early, with nothing due: it is set again for the new head. */
void wsa__timeline_remove(struct wsa_timeline *l, struct wsa_timed *n);

/* Stop the timer. */
void wsa__timeline_stop(struct wsa_timeline *l);

#endif
