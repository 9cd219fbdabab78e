/* Fan-out beyond one loop: the seam between the fan-out module and what
 * carries its messages to the other loops of the server (and, with a
 * broker that reaches other processes, to other nodes). A broker is an
 * ops table; the fan-out module calls it, and it hands what arrives to the
 * deliver callback it was made with, on the loop that must deliver it. It
 * never calls upward by name. The in-process broker is the default. */
#ifndef WSA_LIB_BROKER_H
#define WSA_LIB_BROKER_H

#include <jansson.h>

struct wsa_fan;
struct wsa_workq;

struct wsa_broker;

struct wsa_broker_ops {
	/* Carry m to every loop but the one numbered origin (-1: to all),
	 * in the order of the calls of each thread; takes a reference to m.
	 * Any thread. */
	void (*publish)(struct wsa_broker *b, struct wsa_fan *m, int origin);
	/* Presence, server-wide: count uid in topic; 1 when it was absent
	 * (its first connection), 0 when present already, WSA_ENOMEM. */
	int (*presence_add)(struct wsa_broker *b, const char *topic,
			    const char *uid);
	/* Uncount one connection of uid in topic; 1 when it was the last. */
	int (*presence_remove)(struct wsa_broker *b, const char *topic,
			       const char *uid);
	/* A new JSON array of the uids present in topic; NULL without
	 * memory. */
	json_t *(*presence_users)(struct wsa_broker *b, const char *topic);
	void (*destroy)(struct wsa_broker *b);
};

struct wsa_broker {
	const struct wsa_broker_ops *ops;
};

/* What a broker calls to deliver m on a loop (on that loop); loop is the
 * context its work queue hands to work. */
typedef void (*wsa_deliver_fn)(void *loop, struct wsa_fan *m);

/* The in-process broker: the n loops of this server, through their work
 * queues (queues[i] hands work the context of loop i). NULL when memory
 * is short. */
struct wsa_broker *wsa__broker_local_new(struct wsa_workq *const *queues,
					 unsigned n, wsa_deliver_fn deliver);

#endif
