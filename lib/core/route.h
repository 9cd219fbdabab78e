/* Routes: the path table, and per route the message-type handlers. */
#ifndef WSA_LIB_ROUTE_H
#define WSA_LIB_ROUTE_H

#include "wsa.h"

struct wsa_handler {
	char *type;
	wsa_message_fn fn;
	void *userdata;
};

/* A claim a message type needs (wsa_route_require). */
struct wsa_requirement {
	struct wsa_requirement *next;
	const char *type, *claim, *value; /* in text */
	char text[];
};

struct wsa_route {
	struct wsa_route *next;
	struct wsa_server *srv;
	char *path;
	wsa_open_fn on_open;
	wsa_close_fn on_close;
	void *userdata;
	struct wsa_handler *handlers;
	size_t nhandlers;
	struct wsa_requirement *requirements;
	bool upgrade_token; /* a token is taken at the upgrade too */
	/* Its place in the loops' counters, set at the start (metrics.c):
	 * its index, and the first of its slots of messages by type. */
	unsigned index;
	size_t slot;
};

/* The route serving exactly path (len bytes), or NULL. */
struct wsa_route *wsa__route_find(struct wsa_server *srv, const char *path,
				  size_t len);

/* The handler for a message type, or NULL. */
const struct wsa_handler *wsa__route_handler(const struct wsa_route *route,
					     const char *type);

/* Whether the message type has requirements on the route. */
bool wsa__route_requires(const struct wsa_route *route, const char *type);

/* Whether claims (NULL: none) meet every requirement of the message type
 * on the route. */
bool wsa__route_allowed(const struct wsa_route *route, const char *type,
			const json_t *claims);

/* Free every route of a server. */
void wsa__routes_free(struct wsa_route *head);

#endif
