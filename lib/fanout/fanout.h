/* Fan-out: topics (named groups of connections), users (the connections
 * of one uid), route broadcast, close by uid and revocation, on every loop
 * of the server. A message is serialised and framed once (a wsa_fan),
 * delivered at once to the members on the calling loop, and handed to the
 * broker for the others; each loop keeps the indexes of its own
 * connections. Presence (which users are in a topic, server-wide) is the
 * broker's. */
#ifndef WSA_LIB_FANOUT_H
#define WSA_LIB_FANOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "fanout/message.h"
#include "util/map.h"
#include "wsa.h"

struct wsa_broker_hooks;
struct wsa_conn;
struct wsa_recovery;
struct wsa_server;
struct wsa_service;

/* A connection's place in a topic: in the topic's list, in the
 * connection's list of topics, and in its loop's map of memberships
 * (so whether a connection is in a topic is one lookup, not a walk). */
struct wsa_member {
	struct wsa_map_entry entry;	/* in svc->members, key = key */
	const void *key[2];		/* the connection, the topic */
	struct wsa_member *prev, *next; /* in topic->members */
	struct wsa_member *conn_prev, *conn_next; /* in conn->topics */
	struct wsa_conn *conn;
	struct wsa_topic *topic;
	unsigned long long since; /* the last message sent before the join */
	/* The topic's presence version of the users the member was given
	 * (wsa_conn_join_async): announcements as old are not for it. */
	unsigned long long pv_since;
	/* wsa_conn_join_async()'s callback, until the broker answers. */
	wsa_joined_fn joined_fn;
	void *joined_ud;
	/* Joined from a position (wsa_conn_join_since): the next kept
	 * publication it is owed (0: kept ones are filtered by since, as
	 * any) in the epoch of that id, and until its answer, the join under
	 * way. */
	unsigned long long hist_next, hist_epoch;
	struct wsa_recovery *rec;
	/* Presence announcements that came before its join was answered. */
	struct wsa_held *pv_held;
};

/* Fan-out messages a member holds until its join is answered. */
struct wsa_held {
	struct wsa_fan **m;
	size_t n, cap;
};

/* A topic as one loop knows it: its members there. */
struct wsa_topic {
	struct wsa_map_entry entry; /* in svc->topics, key = name */
	struct wsa_member *members;
	size_t n;
	char name[];
};

/* Deliver m on every loop of srv: at once on the calling loop (if the
 * caller runs one), through the broker on the others. Takes m. */
void wsa__fan_send(struct wsa_server *srv, struct wsa_fan *m);

/* What brokers call on a loop (a wsa_service): deliveries, presence
 * and the answers to joins. */
extern const struct wsa_broker_hooks wsa__fan_hooks;

/* Join or leave; WSA_OK, WSA_ELIMIT (in max_topics_per_connection topics
 * already), WSA_ENOMEM. Joining twice is one membership. since: the last
 * fan-out message sent before the join was asked for (a join asked for
 * by another thread is carried out later): the member gets those after
 * it, and only those. */
int wsa__topic_join(struct wsa_conn *c, const char *name,
		    unsigned long long since);
void wsa__topic_leave(struct wsa_conn *c, const char *name);

/* The connection's membership of the topic called name, or NULL. */
struct wsa_member *wsa__topic_membership(const struct wsa_conn *c,
					 const char *name);

/* Leave every topic and the user index: the connection is closed. */
void wsa__topic_forget(struct wsa_conn *c);

/* Index an authenticated connection under its uid; WSA_OK, WSA_ENOMEM. */
int wsa__user_add(struct wsa_conn *c);

/* The first connection of uid on svc's loop (the others follow it
 * through user_next), or NULL. */
struct wsa_conn *wsa__user_conns(const struct wsa_service *svc,
				 const char *uid);

/* Set up a loop's indexes. */
void wsa__fanout_init(struct wsa_service *svc);

/* Free a loop's indexes (its connections are gone). */
void wsa__fanout_free(struct wsa_service *svc);

#endif
