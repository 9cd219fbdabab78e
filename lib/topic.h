/* Fan-out: topics (named groups of connections), users (the connections
 * of one uid) and route broadcast. Service thread only; other threads
 * reach these through remote.c. A message is serialised and framed once,
 * then its frame is copied into each recipient's queue. */
#ifndef WSA_LIB_TOPIC_H
#define WSA_LIB_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "map.h"

struct wsa_conn;
struct wsa_route;
struct wsa_server;

/* A connection's place in a topic: in the topic's list, in the
 * connection's list of topics, and in the server's map of memberships
 * (so whether a connection is in a topic is one lookup, not a walk). */
struct wsa_member {
	struct wsa_map_entry entry;	/* in srv->members, key = key */
	const void *key[2];		/* the connection, the topic */
	struct wsa_member *prev, *next; /* in topic->members */
	struct wsa_member *conn_prev, *conn_next; /* in conn->topics */
	struct wsa_conn *conn;
	struct wsa_topic *topic;
};

struct wsa_topic {
	struct wsa_map_entry entry; /* in srv->topics, key = name */
	struct wsa_member *members;
	size_t n;
	char name[];
};

/* The connections of one uid. */
struct wsa_user {
	struct wsa_map_entry entry; /* in srv->users, key = uid */
	struct wsa_conn *conns;	    /* linked through conn->user_next */
	unsigned n;		    /* of them not closing: what its limit
				       counts */
	char uid[];
};

/* Join or leave; WSA_OK, WSA_ELIMIT (in max_topics_per_connection
 * topics already), WSA_ENOMEM. Joining twice is one membership. */
int wsa__topic_join(struct wsa_conn *c, const char *name);
void wsa__topic_leave(struct wsa_conn *c, const char *name);

/* The connection's membership of the topic called name, or NULL. */
struct wsa_member *wsa__topic_membership(const struct wsa_conn *c,
					 const char *name);

/* Leave every topic and the user index: the connection is closing. */
void wsa__topic_forget(struct wsa_conn *c);

/* Index an authenticated connection under its uid; WSA_OK, WSA_ELIMIT
 * (the uid has max_connections_per_user already), WSA_ENOMEM. */
int wsa__user_add(struct wsa_conn *c);

/* One of the uid's connections begins to close: it leaves the count of
 * max_connections_per_user at once, as it leaves the other limits. */
void wsa__user_closing(struct wsa_conn *c);

/* Whether uid has max_connections_per_user connections already. */
bool wsa__user_full(struct wsa_server *srv, const char *uid);

/* Queue the JSON object text to every authenticated member of a topic
 * (but except, when not NULL), to every connection of a uid, or to every
 * authenticated connection of a route. */
void wsa__topic_publish(struct wsa_server *srv, const char *name,
			const char *text, size_t len,
			const struct wsa_conn *except);
void wsa__user_send(struct wsa_server *srv, const char *uid, const char *text,
		    size_t len);
void wsa__route_broadcast(struct wsa_server *srv, struct wsa_route *route,
			  const char *text, size_t len);

/* Close every connection of uid with code and reason (may be NULL). */
void wsa__user_close(struct wsa_server *srv, const char *uid, int code,
		     const char *reason);

/* Free the indexes at server free (every connection is gone by then). */
void wsa__topics_free(struct wsa_server *srv);

#endif
