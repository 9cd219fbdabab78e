/* Plain HTTP on the WebSockets' port: fixed bodies and GET handlers. */
#ifndef WSA_LIB_HTTP_H
#define WSA_LIB_HTTP_H

#include <libwebsockets.h>

#include "wsa.h"

struct wsa_server;

struct wsa_http_entry {
	struct wsa_http_entry *next;
	char *path;
	char *content_type; /* fixed bodies */
	void *body;
	size_t len;
	wsa_http_fn fn; /* or a handler */
	void *userdata;
	bool metrics; /* or the metrics, after check */
	wsa_metrics_check_fn check;
};

/* Answer a plain HTTP request (LWS_CALLBACK_HTTP); the callback's return
 * value. */
int wsa__http_request(struct wsa_server *srv, struct lws *wsi);

/* Whether a request may go on as far as its Origin header says: none
 * (not a browser), or one exactly on the server's allow-list; a
 * repeated, unreadable or unlisted one, or any without a list, may not. */
bool wsa__origin_allowed(const struct wsa_server *srv, struct lws *wsi);

/* Free the served paths at server free. */
void wsa__http_free(struct wsa_server *srv);

#endif
