/* Plain HTTP: fixed bodies and GET handlers, answered whole from the
 * HTTP callback. See http.h. */
#include "core/http.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/route.h"
#include "core/server.h"
#include "util/log.h"

#define WSA_HTTP_MAX_ARGS 32

static struct wsa_http_entry *find(const struct wsa_server *srv,
				   const char *path, size_t len)
{
	struct wsa_http_entry *e;

	for (e = srv->http; e; e = e->next)
		if (strlen(e->path) == len && !memcmp(e->path, path, len))
			return e;
	return NULL;
}

/* Link a new entry for path; NULL with *rc set when it cannot be. */
static struct wsa_http_entry *add(wsa_server *srv, const char *path, int *rc)
{
	struct wsa_http_entry *e;

	*rc = WSA_EINVAL;
	if (!srv || !path || path[0] != '/')
		return NULL;
	*rc = WSA_ESTATE;
	if (srv->started)
		return NULL;
	*rc = WSA_EEXIST;
	if (find(srv, path, strlen(path)))
		return NULL;
	*rc = WSA_ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(path))) {
		free(e);
		return NULL;
	}
	e->next = srv->http;
	srv->http = e;
	*rc = WSA_OK;
	return e;
}

int wsa_server_http_file(wsa_server *srv, const char *path,
			 const char *content_type, const void *body, size_t len)
{
	struct wsa_http_entry *e;
	int rc;

	if (!content_type || !*content_type || (!body && len))
		return WSA_EINVAL;
	e = add(srv, path, &rc);
	if (!e)
		return rc;
	e->content_type = strdup(content_type);
	e->body = malloc(len ? len : 1);
	if (!e->content_type || !e->body)
		return WSA_ENOMEM; /* e stays, empty; freed with the server */
	if (len)
		memcpy(e->body, body, len);
	e->len = len;
	return WSA_OK;
}

int wsa_server_http_get(wsa_server *srv, const char *path, wsa_http_fn fn,
			void *userdata)
{
	struct wsa_http_entry *e;
	int rc;

	if (!fn)
		return WSA_EINVAL;
	e = add(srv, path, &rc);
	if (!e)
		return rc;
	e->fn = fn;
	e->userdata = userdata;
	return WSA_OK;
}

int wsa_server_metrics_path(wsa_server *srv, const char *path,
			    wsa_metrics_check_fn check, void *userdata)
{
	struct wsa_http_entry *e;
	int rc;

	e = add(srv, path, &rc);
	if (!e)
		return rc;
	e->metrics = true;
	e->check = check;
	e->userdata = userdata;
	return WSA_OK;
}

/* Headers and body in one go; lws keeps what the socket does not take
 * yet. Returns the callback's value. */
static int answer(struct lws *wsi, unsigned status, const char *type,
		  const void *body, size_t len)
{
	static const char nosniff[] = "nosniff", no_cache[] = "no-cache";
	/* Over TLS: HTTPS only from now on, for two years (Mozilla's
	 * recommendation); the host decides about its subdomains. */
	static const char hsts[] = "max-age=63072000";
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start;
	unsigned char *end = hdr + sizeof(hdr) - 1, *out;
	int rc;

	if (lws_add_http_common_headers(wsi, status, type, len, &p, end) ||
	    lws_add_http_header_by_name(
		wsi, (const unsigned char *)"x-content-type-options:",
		(const unsigned char *)nosniff, sizeof(nosniff) - 1, &p, end) ||
	    lws_add_http_header_by_name(wsi,
					(const unsigned char *)"cache-control:",
					(const unsigned char *)no_cache,
					sizeof(no_cache) - 1, &p, end) ||
	    (lws_is_ssl(wsi) &&
	     lws_add_http_header_by_name(
		 wsi, (const unsigned char *)"strict-transport-security:",
		 (const unsigned char *)hsts, sizeof(hsts) - 1, &p, end)) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (len) {
		out = malloc(LWS_PRE + len);
		if (!out)
			return -1;
		memcpy(out + LWS_PRE, body, len);
		rc = lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
		free(out);
		if (rc < 0)
			return -1;
	}
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The query's arguments, copied one after the other into buf; false
 * when they do not fit. */
static bool query_args(struct lws *wsi, char *buf, size_t size,
		       const char **args, size_t max)
{
	size_t at = 0, n = 0;
	int len;

	while (n < max && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS,
						  (int)n) > 0) {
		len = lws_hdr_copy_fragment(wsi, buf + at, (int)(size - at),
					    WSI_TOKEN_HTTP_URI_ARGS, (int)n);
		if (len < 0)
			return false;
		args[n++] = buf + at;
		at += (size_t)len + 1;
	}
	args[n] = NULL;
	return true;
}

bool wsa__origin_allowed(const struct wsa_server *srv, struct lws *wsi)
{
	char origin[512];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
	size_t i;

	if (n <= 0)
		return true; /* not a browser */
	/* A repeated header (lws joins them with ","), or one too long to
	 * read, is refused. */
	if (!srv->origins || n >= (int)sizeof(origin) ||
	    lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) != n ||
	    strchr(origin, ','))
		return false;
	for (i = 0; srv->origins[i]; i++)
		if (!strcmp(srv->origins[i], origin))
			return true;
	return false;
}

static int serve_metrics(struct wsa_server *srv, struct lws *wsi,
			 const struct wsa_http_entry *e)
{
	static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
	char peer[64] = "", auth[1024];
	const char *authorization = NULL;
	struct wsa_buf b = {0};
	int n, status = 0, rc;

	/* A page of another site must not read the metrics. */
	if (!wsa__origin_allowed(srv, wsi))
		return answer(wsi, HTTP_STATUS_FORBIDDEN, "text/plain",
			      "Forbidden\n", 10);
	if (e->check) {
		lws_get_peer_simple(wsi, peer, sizeof(peer));
		n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
		if (n > 0 && n < (int)sizeof(auth) &&
		    lws_hdr_copy(wsi, auth, sizeof(auth),
				 WSI_TOKEN_HTTP_AUTHORIZATION) == n)
			authorization = auth;
		status = e->check(peer, authorization, e->userdata);
		if (status < 400 || status > 599)
			status = status ? HTTP_STATUS_FORBIDDEN : 0;
	}
	if (status)
		return answer(wsi, (unsigned)status, "text/plain", "Refused\n",
			      8);
	if (!wsa__metrics_text(srv, &b)) {
		wsa__buf_free(&b);
		return answer(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR,
			      "text/plain", "Out of memory\n", 14);
	}
	rc = answer(wsi, HTTP_STATUS_OK, type, b.p, b.len);
	wsa__buf_free(&b);
	return rc;
}

int wsa__http_request(struct wsa_server *srv, struct lws *wsi)
{
	char path[1024], query[2048];
	const char *args[WSA_HTTP_MAX_ARGS + 1];
	const struct wsa_http_entry *e = NULL;
	int n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	wsa_http_reply r = {.size = sizeof(r)};
	int rc;

	/* Only GET (WSI_TOKEN_GET_URI is set for GET alone). */
	if (n > 0)
		e = find(srv, path, (size_t)n);
	if (!e)
		return answer(wsi, HTTP_STATUS_NOT_FOUND, "text/plain",
			      "Not Found\n", 10);
	if (e->metrics)
		return serve_metrics(srv, wsi, e);
	if (!e->fn)
		return answer(wsi, HTTP_STATUS_OK, e->content_type, e->body,
			      e->len);
	if (!query_args(wsi, query, sizeof(query), args, WSA_HTTP_MAX_ARGS))
		return answer(wsi, HTTP_STATUS_REQ_URI_TOO_LONG, "text/plain",
			      "URI Too Long\n", 13);
	e->fn(args, &r, e->userdata);
	if (r.status < 100 || r.status > 599)
		r.status = r.status ? HTTP_STATUS_INTERNAL_SERVER_ERROR
				    : HTTP_STATUS_OK;
	rc = answer(wsi, (unsigned)r.status,
		    r.content_type ? r.content_type : "application/json",
		    r.body, r.body ? r.len : 0);
	free(r.body);
	return rc;
}

void wsa__http_free(struct wsa_server *srv)
{
	while (srv->http) {
		struct wsa_http_entry *e = srv->http;

		srv->http = e->next;
		free(e->path);
		free(e->content_type);
		free(e->body);
		free(e);
	}
}
