/* Plain HTTP on the WebSockets' port: fixed bodies and GET handlers. */
#ifndef WSA_LIB_HTTP_H
#define WSA_LIB_HTTP_H

#include <libwebsockets.h>

#include "wsa.h"

struct wsa_server;

/* The server's limit on a request's headers: the request target and the
 * values of the header fields lws knows, in bytes (lws' names for them;
 * it keeps no count of the others). Beyond it: 431. */
#define WSA_HEADER_LIMIT 4096
/* lws' buffer for a request's headers, larger than the limit so that
 * the server can judge most oversized requests itself; a request that
 * fills it is dropped by lws unanswered (lws' default is 4096). */
#define WSA_HEADER_BUFFER 8192

/* A header the host set for a path's answers (wsa_server_http_header);
 * value NULL: a default of the library's dropped. */
struct wsa_http_header {
	struct wsa_http_header *next;
	char *name, *value;
};

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
	struct wsa_http_header *headers;
};

/* Answer a plain HTTP request for uri (len bytes; LWS_CALLBACK_HTTP's
 * in and len); the callback's return value. */
int wsa__http_request(struct wsa_server *srv, struct lws *wsi, const char *uri,
		      size_t len);

/* The bytes of a request's headers that WSA_HEADER_LIMIT counts. */
size_t wsa__header_bytes(struct lws *wsi);

/* Whether a request may go on as far as its Origin header says: none
 * (not a browser), or one exactly on the server's allow-list; a
 * repeated, unreadable or unlisted one, or any without a list, may not. */
bool wsa__origin_allowed(const struct wsa_server *srv, struct lws *wsi);

/* Free the served paths at server free. */
void wsa__http_free(struct wsa_server *srv);

#endif
