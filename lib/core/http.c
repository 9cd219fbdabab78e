/* Plain HTTP: fixed bodies and GET handlers, answered whole from the
 * HTTP callback, to RFC 9110 for what is served: HEAD as GET without the
 * body, 405 for other methods on a served path. See http.h. */
#include "core/http.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---------------------------------------------------- answer headers */

/* What every answer carries unless the host changed it for its path
 * (wsa_server_http_header): no sniffing of types, no caching, no
 * Referer to other sites, and never inside another site's frame. */
static const struct {
	const char *name, *value;
} defaults[] = {
    {"x-content-type-options", "nosniff"},
    {"cache-control", "no-cache"},
    {"referrer-policy", "no-referrer"},
    {"content-security-policy", "frame-ancestors 'none'"},
};

/* Headers the library writes itself, from what it answers. */
static bool reserved(const char *name)
{
	static const char *const own[] = {
	    "content-length",
	    "content-type",
	    "transfer-encoding",
	    "connection",
	    "keep-alive",
	    "upgrade",
	    "allow",
	    "strict-transport-security",
	};
	size_t i;

	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (!strcasecmp(name, own[i]))
			return true;
	return false;
}

/* A field name: an RFC 9110 token, and not too long. */
static bool name_ok(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				"!#$%&'*+-.^_`|~");

	return n && n <= 64 && !name[n];
}

/* A field value: visible characters, spaces and tabs, nothing that could
 * end the line. */
static bool value_ok(const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return p - (const unsigned char *)value <= 4096;
}

int wsa_server_http_header(wsa_server *srv, const char *path, const char *name,
			   const char *value)
{
	struct wsa_http_entry *e;
	struct wsa_http_header *h, **at;
	char *p;

	if (!srv || !path || !name || !name_ok(name) || reserved(name) ||
	    (value && !value_ok(value)))
		return WSA_EINVAL;
	if (srv->started)
		return WSA_ESTATE;
	e = find(srv, path, strlen(path));
	if (!e)
		return WSA_EINVAL;
	for (at = &e->headers; *at; at = &(*at)->next)
		if (!strcasecmp((*at)->name, name))
			break;
	h = *at;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h || !(h->name = strdup(name))) {
			free(h);
			return WSA_ENOMEM;
		}
		/* Written in lws' case, with the others. */
		for (p = h->name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		*at = h;
	}
	free(h->value);
	h->value = NULL;
	if (value && !(h->value = strdup(value)))
		return WSA_ENOMEM; /* h stays, dropping the header */
	return WSA_OK;
}

static const struct wsa_http_header *header_of(const struct wsa_http_entry *e,
					       const char *name)
{
	const struct wsa_http_header *h;

	for (h = e ? e->headers : NULL; h; h = h->next)
		if (!strcasecmp(h->name, name))
			return h;
	return NULL;
}

static int add_header(struct lws *wsi, const char *name, const char *value,
		      unsigned char **p, unsigned char *end)
{
	char n[72];

	snprintf(n, sizeof(n), "%s:", name);
	return lws_add_http_header_by_name(wsi, (const unsigned char *)n,
					   (const unsigned char *)value,
					   (int)strlen(value), p, end);
}

/* The defaults as e changed them, then e's own; nonzero when they do not
 * fit. */
static int add_headers(struct lws *wsi, const struct wsa_http_entry *e,
		       unsigned char **p, unsigned char *end)
{
	/* Over TLS: HTTPS only from now on, for two years (Mozilla's
	 * recommendation); the host decides about its subdomains. */
	static const char hsts[] = "max-age=63072000";
	const struct wsa_http_header *h;
	size_t i;

	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		h = header_of(e, defaults[i].name);
		if (h ? h->value && add_header(wsi, h->name, h->value, p, end)
		      : add_header(wsi, defaults[i].name, defaults[i].value, p,
				   end))
			return 1;
	}
	for (h = e ? e->headers : NULL; h; h = h->next) {
		for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			if (!strcasecmp(h->name, defaults[i].name))
				break;
		if (i == sizeof(defaults) / sizeof(defaults[0]) && h->value &&
		    add_header(wsi, h->name, h->value, p, end))
			return 1;
	}
	return lws_is_ssl(wsi) &&
	       add_header(wsi, "strict-transport-security", hsts, p, end);
}

/* The room e's headers need beyond the library's. */
static size_t headers_size(const struct wsa_http_entry *e)
{
	const struct wsa_http_header *h;
	size_t n = 0;

	for (h = e ? e->headers : NULL; h; h = h->next)
		n += strlen(h->name) + (h->value ? strlen(h->value) : 0) + 4;
	return n;
}

/* ---------------------------------------------------------- answer */

/* One answer: its status, what it is, the path's entry (for its
 * headers; NULL for none) and whether only the headers go (HEAD). */
struct answer {
	unsigned status;
	const char *type;
	const void *body;
	size_t len;
	const struct wsa_http_entry *entry;
	bool head;
	const char *allow; /* for 405 */
};

/* Headers and body in one go; lws keeps what the socket does not take
 * yet. Returns the callback's value. */
static int answer(struct lws *wsi, const struct answer *a)
{
	size_t size = LWS_PRE + 1024 + headers_size(a->entry);
	unsigned char *hdr = malloc(size), *start, *p, *end, *out;
	int rc = -1;

	if (!hdr)
		return -1;
	start = p = hdr + LWS_PRE;
	end = hdr + size - 1;
	if (lws_add_http_common_headers(wsi, a->status, a->type, a->len, &p,
					end) ||
	    (a->allow && add_header(wsi, "allow", a->allow, &p, end)) ||
	    add_headers(wsi, a->entry, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		goto done;
	if (a->len && !a->head) {
		out = malloc(LWS_PRE + a->len);
		if (!out)
			goto done;
		memcpy(out + LWS_PRE, a->body, a->len);
		rc =
		    lws_write(wsi, out + LWS_PRE, a->len, LWS_WRITE_HTTP_FINAL);
		free(out);
		if (rc < 0)
			goto done;
	}
	rc = lws_http_transaction_completed(wsi) ? -1 : 0;
done:
	free(hdr);
	return rc;
}

static int answer_text(struct lws *wsi, unsigned status, const char *text,
		       const struct wsa_http_entry *e, bool head)
{
	struct answer a = {.status = status,
			   .type = "text/plain",
			   .body = text,
			   .len = strlen(text),
			   .entry = e,
			   .head = head};

	return answer(wsi, &a);
}

/* ------------------------------------------------- request headers */

/* What a wsa_http_fn's reply stands for: its request, and the header
 * values copied for the handler, freed when it returns. */
struct wsa_http_call {
	wsa_http_reply reply; /* first: the handler's handle */
	struct lws *wsi;
	struct wsa_http_copy *copies;
};

struct wsa_http_copy {
	struct wsa_http_copy *next;
	char value[];
};

/* The call whose handler runs on this thread, if any: the one reply
 * wsa_http_request_header() takes, so a reply kept past its handler, or
 * handed to another thread, reads nothing. (Per thread, not per
 * server: a thread runs one handler at a time, whatever its server.) */
static _Thread_local struct wsa_http_call *current_call;

/* The lws token of a header name lws knows, or -1. */
static int token_of(const char *name)
{
	size_t len = strlen(name);
	const char *s;
	int t;

	for (t = 0; t < WSI_TOKEN_COUNT; t++) {
		s = (const char *)lws_token_to_string(
		    (enum lws_token_indexes)t);
		if (s && !strncasecmp(s, name, len) && s[len] == ':' &&
		    !s[len + 1])
			return t;
	}
	return -1;
}

/* A copy of the value of name, held by call; NULL when absent. */
static const char *copy_header(struct wsa_http_call *call, const char *name)
{
	char lower[72];
	struct wsa_http_copy *c;
	int t = token_of(name), n;
	size_t i;

	if (t >= 0) {
		n = lws_hdr_total_length(call->wsi, (enum lws_token_indexes)t);
	} else {
		/* lws keeps the names it does not know in lower case, with
		 * their colon. */
		for (i = 0; name[i]; i++)
			lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z'
					      ? name[i] - 'A' + 'a'
					      : name[i]);
		lower[i++] = ':';
		lower[i] = '\0';
		n = lws_hdr_custom_length(call->wsi, lower, (int)i);
	}
	/* lws tells an empty known header from a missing one in no
	 * public call: both are none. */
	if (n <= 0)
		return NULL;
	c = malloc(sizeof(*c) + (size_t)n + 1);
	if (!c)
		return NULL;
	if ((t >= 0 ? lws_hdr_copy(call->wsi, c->value, n + 1,
				   (enum lws_token_indexes)t)
		    : lws_hdr_custom_copy(call->wsi, c->value, n + 1, lower,
					  (int)strlen(lower))) != n) {
		free(c);
		return NULL;
	}
	c->next = call->copies;
	call->copies = c;
	return c->value;
}

const char *wsa_http_request_header(const wsa_http_reply *reply,
				    const char *name)
{
	struct wsa_http_call *call = current_call;

	if (!call || reply != &call->reply || !name || !name_ok(name))
		return NULL;
	return copy_header(call, name);
}

/* ------------------------------------------------------------ serve */

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

size_t wsa__header_bytes(struct lws *wsi)
{
	size_t n = 0;
	int t, len;

	for (t = 0; t < WSI_TOKEN_COUNT; t++) {
		len = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
		if (len > 0)
			n += (size_t)len;
	}
	return n;
}

static int serve_metrics(struct wsa_server *srv, struct lws *wsi,
			 const struct wsa_http_entry *e, bool head)
{
	static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
	char peer[64] = "", auth[1024];
	const char *authorization = NULL;
	struct wsa_buf b = {0};
	struct answer a = {
	    .status = HTTP_STATUS_OK, .type = type, .entry = e, .head = head};
	int n, status = 0, rc;

	/* A page of another site must not read the metrics. */
	if (!wsa__origin_allowed(srv, wsi))
		return answer_text(wsi, HTTP_STATUS_FORBIDDEN, "Forbidden\n", e,
				   head);
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
		return answer_text(wsi, (unsigned)status, "Refused\n", e, head);
	if (!wsa__metrics_text(srv, &b)) {
		wsa__buf_free(&b);
		return answer_text(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR,
				   "Out of memory\n", e, head);
	}
	a.body = b.p;
	a.len = b.len;
	rc = answer(wsi, &a);
	wsa__buf_free(&b);
	return rc;
}

/* A handler's answer; HEAD gets the same headers (the handler runs). */
static int serve_fn(struct lws *wsi, const struct wsa_http_entry *e, bool head)
{
	char query[2048];
	const char *args[WSA_HTTP_MAX_ARGS + 1];
	struct wsa_http_call call = {.reply = {.size = sizeof(call.reply)},
				     .wsi = wsi};
	wsa_http_reply *r = &call.reply;
	struct answer a = {.entry = e, .head = head};
	struct wsa_http_copy *c;
	int rc;

	if (!query_args(wsi, query, sizeof(query), args, WSA_HTTP_MAX_ARGS))
		return answer_text(wsi, HTTP_STATUS_REQ_URI_TOO_LONG,
				   "URI Too Long\n", e, head);
	current_call = &call;
	e->fn(args, r, e->userdata);
	current_call = NULL;
	while ((c = call.copies)) {
		call.copies = c->next;
		free(c);
	}
	if (r->status < 100 || r->status > 599)
		r->status = r->status ? HTTP_STATUS_INTERNAL_SERVER_ERROR
				      : HTTP_STATUS_OK;
	a.status = (unsigned)r->status;
	a.type = r->content_type ? r->content_type : "application/json";
	a.body = r->body;
	a.len = r->body ? r->len : 0;
	rc = answer(wsi, &a);
	free(r->body);
	return rc;
}

/* The request's method, as far as it matters here. */
enum method { M_GET, M_HEAD, M_OTHER };

static enum method method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		return M_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0)
		return M_HEAD;
	return M_OTHER;
}

int wsa__http_request(struct wsa_server *srv, struct lws *wsi, const char *uri,
		      size_t len)
{
	enum method m = method_of(wsi);
	bool head = m == M_HEAD;
	const struct wsa_http_entry *e = uri ? find(srv, uri, len) : NULL;
	struct answer a = {.status = HTTP_STATUS_OK, .entry = e, .head = head};

	/* Headers past the server's limit, which lws' larger buffer still
	 * held: say so, rather than the drop lws would make. */
	if (wsa__header_bytes(wsi) > WSA_HEADER_LIMIT)
		return answer_text(
		    wsi, 431, "Request Header Fields Too Large\n", NULL, head);
	if (!e)
		return answer_text(wsi, HTTP_STATUS_NOT_FOUND, "Not Found\n",
				   NULL, head);
	if (m == M_OTHER) {
		a.status = HTTP_STATUS_METHOD_NOT_ALLOWED;
		a.type = "text/plain";
		a.body = "Method Not Allowed\n";
		a.len = strlen(a.body);
		a.allow = "GET, HEAD";
		return answer(wsi, &a);
	}
	if (e->metrics)
		return serve_metrics(srv, wsi, e, head);
	if (e->fn)
		return serve_fn(wsi, e, head);
	a.type = e->content_type;
	a.body = e->body;
	a.len = e->len;
	return answer(wsi, &a);
}

void wsa__http_free(struct wsa_server *srv)
{
	while (srv->http) {
		struct wsa_http_entry *e = srv->http;

		srv->http = e->next;
		while (e->headers) {
			struct wsa_http_header *h = e->headers;

			e->headers = h->next;
			free(h->name);
			free(h->value);
			free(h);
		}
		free(e->path);
		free(e->content_type);
		free(e->body);
		free(e);
	}
}
