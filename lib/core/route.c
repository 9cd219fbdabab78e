/* Routes and their handler tables. Both are fixed before the server runs,
 * so lookups need no locking. */
#include "core/route.h"

#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/server.h"

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
	if (!wsa__metrics_resize(srv)) {
		srv->routes = r->next;
		free(r->path);
		free(r);
		return WSA_ENOMEM;
	}
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
	if (!wsa__metrics_resize(route->srv)) {
		route->nhandlers--;
		free(h->type);
		return WSA_ENOMEM;
	}
	return WSA_OK;
}

int wsa_route_require(wsa_route *route, const char *type, const char *claim,
		      const char *value)
{
	size_t tl, cl, vl;
	struct wsa_requirement *r, **tail;

	if (!route || !type || !*type || !claim || !*claim || !value || !*value)
		return WSA_EINVAL;
	if (route->srv->started)
		return WSA_ESTATE;
	tl = strlen(type) + 1;
	cl = strlen(claim) + 1;
	vl = strlen(value) + 1;
	r = malloc(sizeof(*r) + tl + cl + vl);
	if (!r)
		return WSA_ENOMEM;
	r->next = NULL;
	r->type = memcpy(r->text, type, tl);
	r->claim = memcpy(r->text + tl, claim, cl);
	r->value = memcpy(r->text + tl + cl, value, vl);
	for (tail = &route->requirements; *tail; tail = &(*tail)->next)
		;
	*tail = r;
	return WSA_OK;
}

int wsa_route_upgrade_token(wsa_route *route, bool allow)
{
	if (!route)
		return WSA_EINVAL;
	if (route->srv->started)
		return WSA_ESTATE;
	route->upgrade_token = allow;
	return WSA_OK;
}

/* Whether a string of space-separated words (an OAuth scope; one word is
 * a plain string) has value among them. */
static bool has_word(const char *s, size_t len, const char *value)
{
	size_t vl = strlen(value), i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && s[j] != ' ')
			j++;
		if (j - i == vl && !memcmp(s + i, value, vl))
			return true;
		i = j + 1;
	}
	return false;
}

static bool claim_holds(const json_t *claim, const char *value)
{
	size_t i;
	const json_t *v;

	if (json_is_string(claim))
		return has_word(json_string_value(claim),
				json_string_length(claim), value);
	json_array_foreach(claim, i, v)
	{
		if (json_is_string(v) && !strcmp(json_string_value(v), value) &&
		    json_string_length(v) == strlen(value))
			return true;
	}
	return false;
}

bool wsa__route_requires(const struct wsa_route *route, const char *type)
{
	const struct wsa_requirement *r;

	for (r = route->requirements; r; r = r->next)
		if (!strcmp(r->type, type))
			return true;
	return false;
}

bool wsa__route_allowed(const struct wsa_route *route, const char *type,
			const json_t *claims)
{
	const struct wsa_requirement *r;

	for (r = route->requirements; r; r = r->next) {
		if (strcmp(r->type, type))
			continue;
		if (!claims ||
		    !claim_holds(json_object_get(claims, r->claim), r->value))
			return false;
	}
	return true;
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
		while (head->requirements) {
			struct wsa_requirement *r = head->requirements;

			head->requirements = r->next;
			free(r);
		}
		free(head->path);
		free(head);
		head = next;
	}
}
