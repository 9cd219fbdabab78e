/* Routes and their handler tables. Both are fixed before the server runs,
 * so lookups need no locking. */
#include "route.h"

#include <stdlib.h>
#include <string.h>

#include "server.h"

int wsa_route_add(wsa_server *srv, const char *path, wsa_open_fn on_open,
		  wsa_close_fn on_close, void *userdata, wsa_route **out)
{
	struct wsa_route *r;

	if (out)
		*out = NULL;
	if (!srv || !path || path[0] != '/')
		return WSA_EINVAL;
	if (srv->started)
		return WSA_ESTATE;
	if (wsa__route_find(srv, path, strlen(path)))
		return WSA_EEXIST;
	r = calloc(1, sizeof(*r));
	if (!r)
		return WSA_ENOMEM;
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return WSA_ENOMEM;
	}
	r->srv = srv;
	r->on_open = on_open;
	r->on_close = on_close;
	r->userdata = userdata;
	r->next = srv->routes;
	srv->routes = r;
	if (out)
		*out = r;
	return WSA_OK;
}

int wsa_route_handle(wsa_route *route, const char *type, wsa_message_fn fn,
		     void *userdata)
{
	struct wsa_handler *h;

	if (!route || !type || !*type || !fn || !strcmp(type, "login"))
		return WSA_EINVAL;
	if (route->srv->started)
		return WSA_ESTATE;
	if (wsa__route_handler(route, type))
		return WSA_EEXIST;
	h = realloc(route->handlers, (route->nhandlers + 1) * sizeof(*h));
	if (!h)
		return WSA_ENOMEM;
	route->handlers = h;
	h = &route->handlers[route->nhandlers];
	h->type = strdup(type);
	if (!h->type)
		return WSA_ENOMEM;
	h->fn = fn;
	h->userdata = userdata;
	route->nhandlers++;
	return WSA_OK;
}

const char *wsa_route_path(const wsa_route *route)
{
	return route ? route->path : NULL;
}

struct wsa_route *wsa__route_find(struct wsa_server *srv, const char *path,
				  size_t len)
{
	struct wsa_route *r;

	for (r = srv->routes; r; r = r->next)
		if (strlen(r->path) == len && !memcmp(r->path, path, len))
			return r;
	return NULL;
}

const struct wsa_handler *wsa__route_handler(const struct wsa_route *route,
					     const char *type)
{
	size_t i;

	for (i = 0; i < route->nhandlers; i++)
		if (!strcmp(route->handlers[i].type, type))
			return &route->handlers[i];
	return NULL;
}

void wsa__routes_free(struct wsa_route *head)
{
	while (head) {
		struct wsa_route *next = head->next;
		size_t i;

		for (i = 0; i < head->nhandlers; i++)
			free(head->handlers[i].type);
		free(head->handlers);
		free(head->path);
		free(head);
		head = next;
	}
}
