/* What a server counts: per-loop counters, merged on read into a JSON
 * snapshot, and the Prometheus text made from it. See metrics.h. */
#include "core/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proto.h"
#include "core/route.h"
#include "core/server.h"
#include "core/service.h"
#include "fanout/broker.h"
#include "wsa.h"

/* Upper bounds of the buckets, in nanoseconds. */
static const uint64_t bounds_ns[WSA_BUCKETS] = {
    1000,	 2500,	      5000,	   10000,	25000,	   50000,
    100000,	 250000,      500000,	   1000000,	2500000,   5000000,
    10000000,	 25000000,    50000000,	   100000000,	250000000, 500000000,
    1000000000u, 2500000000u, 5000000000u, 10000000000u};
static const char *const bounds_text[WSA_BUCKETS] = {
    "1e-06",  "2.5e-06", "5e-06",  "1e-05", "2.5e-05", "5e-05",
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025",  "0.005",
    "0.01",   "0.025",	 "0.05",   "0.1",   "0.25",    "0.5",
    "1",      "2.5",	 "5",	   "10"};

static const char *const login_results[WSA_LOGIN_RESULTS] = {
    "accepted",	   "expired",  "bad_signature", "malformed",
    "unknown_key", "claims",   "revoked",	"throttled",
    "timeout",	   "rejected", "limit"};

static const unsigned refusal_status[WSA_REFUSALS] = {400, 401, 403,
						      404, 431, 503};

/* The library's error texts (PROTOCOL.md), in errors[] order; any other
 * text (the host's) is counted as "other". */
static const char *const error_texts[] = {
    WSA_MSG_FIRST_LOGIN,   WSA_MSG_AUTH_FAILED,	 WSA_MSG_AUTH_TIMEOUT,
    WSA_MSG_TOKEN_EXPIRED, WSA_MSG_UNKNOWN_TYPE, WSA_MSG_INVALID,
    WSA_MSG_RATE_LIMIT,	   WSA_MSG_FORBIDDEN};
#define NERRORS (sizeof(error_texts) / sizeof(error_texts[0]))

void wsa__observe(struct wsa_metrics *m, struct wsa_histogram *h, uint64_t ns)
{
	size_t i = 0;

	if (!m->on)
		return;
	while (i < WSA_BUCKETS && ns > bounds_ns[i])
		i++;
	wsa__count(&h->bucket[i], 1);
	wsa__count(&h->sum_ns, ns);
}

/* Slots of messages by type over the routes, and each route's first. */
static void route_slots(struct wsa_server *srv)
{
	struct wsa_route *r;
	size_t n = 0;
	unsigned index = 0;

	for (r = srv->routes; r; r = r->next) {
		r->index = index++;
		r->slot = n;
		n += r->nhandlers + 2; /* the types, "ping", "other" */
	}
}

bool wsa__metrics_resize(struct wsa_server *srv)
{
	struct wsa_route *r;
	size_t nroutes = 0, nslots = 0, i, k;
	wsa_counter *fresh[WSA_THREADS_MAX][3];

	for (r = srv->routes; r; r = r->next) {
		nroutes++;
		nslots += r->nhandlers + 2;
	}
	for (i = 0; i < srv->nservices; i++) {
		fresh[i][0] = calloc(nroutes + 1, sizeof(wsa_counter));
		fresh[i][1] = calloc(nroutes + 1, sizeof(wsa_counter));
		fresh[i][2] = calloc(nslots + 1, sizeof(wsa_counter));
		if (!fresh[i][0] || !fresh[i][1] || !fresh[i][2]) {
			for (k = 0; k <= i; k++) {
				free(fresh[k][0]);
				free(fresh[k][1]);
				free(fresh[k][2]);
			}
			return false;
		}
	}
	route_slots(srv);
	for (i = 0; i < srv->nservices; i++) {
		struct wsa_metrics *m = &srv->services[i]->metrics;

		wsa__metrics_free(m);
		m->conns = fresh[i][0];
		m->conns_auth = fresh[i][1];
		m->received = fresh[i][2];
	}
	return true;
}

void wsa__metrics_free(struct wsa_metrics *m)
{
	free(m->conns);
	free(m->conns_auth);
	free(m->received);
}

void wsa__count_refusal(struct wsa_service *svc, unsigned status)
{
	size_t i;

	for (i = 0; i < WSA_REFUSALS; i++)
		if (refusal_status[i] == status)
			WSA_COUNT(svc, refused[i], 1);
}

enum wsa_login_result wsa__login_result_of(int code)
{
	switch (code) {
	case WSA_ETOKEN_EXPIRED:
		return WSA_LOGIN_EXPIRED;
	case WSA_ETOKEN_SIGNATURE:
		return WSA_LOGIN_BAD_SIGNATURE;
	case WSA_ETOKEN_FORMAT:
	case WSA_ETOKEN_SIZE:
	case WSA_ETOKEN_HEADER:
	case WSA_ETOKEN_ALG:
		return WSA_LOGIN_MALFORMED;
	case WSA_ETOKEN_KID:
		return WSA_LOGIN_UNKNOWN_KEY;
	case WSA_ETOKEN_NOT_YET_VALID:
	case WSA_ETOKEN_ISSUER:
	case WSA_ETOKEN_AUDIENCE:
	case WSA_ETOKEN_CLAIMS:
	case WSA_ETOKEN_IDENTITY:
		return WSA_LOGIN_CLAIMS;
	default:
		return WSA_LOGIN_REJECTED;
	}
}

void wsa__count_error(struct wsa_service *svc, const char *text)
{
	size_t i;

	if (!svc->metrics.on)
		return;
	for (i = 0; i < NERRORS && strcmp(text, error_texts[i]); i++)
		;
	wsa__count(&svc->metrics.errors[i], 1);
}

void wsa__count_close(struct wsa_service *svc, int code)
{
	WSA_COUNT(svc,
		  closes[code >= 1000 && code < 1000 + WSA_CLOSE_CODES
			     ? code - 1000
			     : WSA_CLOSE_CODES],
		  1);
}

/* ---------------------------------------------------------- reading */

static uint64_t get(const wsa_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* The sum over the loops of the counter at offset off of struct
 * wsa_metrics. */
static uint64_t sum(struct wsa_server *srv, size_t off)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < srv->nservices; i++)
		n += get((const wsa_counter *)(const void *)((const char *)&srv
								 ->services[i]
								 ->metrics +
							     off));
	return n;
}

#define SUM(srv, field) sum(srv, offsetof(struct wsa_metrics, field))

/* The sum over the loops of entry i of a per-route array (field). */
static uint64_t sum_at(struct wsa_server *srv, size_t field, size_t i)
{
	uint64_t n = 0;
	unsigned k;

	for (k = 0; k < srv->nservices; k++) {
		wsa_counter *const *arr =
		    (wsa_counter *const *)(const void *)((const char *)&srv
							     ->services[k]
							     ->metrics +
							 field);
		n += get(&(*arr)[i]);
	}
	return n;
}

#define SUM_AT(srv, field, i)                                                  \
	sum_at(srv, offsetof(struct wsa_metrics, field), i)

static bool set_u(json_t *o, const char *key, uint64_t n)
{
	return !json_object_set_new(o, key, json_integer((json_int_t)n));
}

/* A gauge's value: the sum of increments and decrements, as signed. */
static json_t *gauge(uint64_t n)
{
	return json_integer((json_int_t)(int64_t)n);
}

static json_t *histogram(struct wsa_server *srv, size_t off)
{
	json_t *h = json_object(), *b = json_object();
	uint64_t cum = 0;
	size_t i;

	if (!h || !b || json_object_set_new(h, "buckets", b)) {
		json_decref(h);
		return NULL;
	}
	for (i = 0; i <= WSA_BUCKETS; i++) {
		cum += sum(srv, off + offsetof(struct wsa_histogram, bucket) +
				    i * sizeof(wsa_counter));
		if (!set_u(b, i < WSA_BUCKETS ? bounds_text[i] : "+Inf", cum))
			break;
	}
	json_object_set_new(h, "count", json_integer((json_int_t)cum));
	json_object_set_new(
	    h, "sum",
	    json_real(
		(double)sum(srv, off + offsetof(struct wsa_histogram, sum_ns)) /
		1e9));
	return h;
}

#define HISTOGRAM(srv, field)                                                  \
	histogram(srv, offsetof(struct wsa_metrics, field))

static json_t *by_route(struct wsa_server *srv, size_t field, bool ready)
{
	json_t *o = json_object();
	struct wsa_route *r;

	/* Routes are the owner's to change until the start. */
	for (r = ready ? srv->routes : NULL; o && r; r = r->next)
		json_object_set_new(o, r->path,
				    gauge(sum_at(srv, field, r->index)));
	return o;
}

static json_t *received(struct wsa_server *srv, bool ready)
{
	json_t *o = json_object(), *t;
	struct wsa_route *r;
	size_t i;

	for (r = ready ? srv->routes : NULL; o && r; r = r->next) {
		t = json_object();
		for (i = 0; t && i < r->nhandlers + 2; i++)
			set_u(t,
			      i < r->nhandlers	  ? r->handlers[i].type
			      : i == r->nhandlers ? "ping"
						  : "other",
			      SUM_AT(srv, received, r->slot + i));
		json_object_set_new(o, r->path, t);
	}
	return o;
}

json_t *wsa_server_metrics(wsa_server *srv)
{
	json_t *o, *x;
	bool ready;
	size_t i;
	char key[16];

	if (!srv)
		return NULL;
	/* The per-route counters exist from the start on. */
	ready = atomic_load_explicit(&srv->metrics_ready, memory_order_acquire);
	o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(
	    o, "wsa_connections",
	    by_route(srv, offsetof(struct wsa_metrics, conns), ready));
	json_object_set_new(
	    o, "wsa_connections_authenticated",
	    by_route(srv, offsetof(struct wsa_metrics, conns_auth), ready));
	x = json_object();
	for (i = 0; x && i < WSA_REFUSALS; i++) {
		snprintf(key, sizeof(key), "%u", refusal_status[i]);
		set_u(x, key, SUM(srv, refused[i]));
	}
	json_object_set_new(o, "wsa_upgrades_refused_total", x);
	x = json_object();
	for (i = 0; x && i < WSA_LOGIN_RESULTS; i++)
		set_u(x, login_results[i], SUM(srv, logins[i]));
	json_object_set_new(o, "wsa_logins_total", x);
	set_u(o, "wsa_token_refreshes_total", SUM(srv, refreshes));
	set_u(o, "wsa_token_expiries_total", SUM(srv, expiries));
	json_object_set_new(o, "wsa_messages_received_total",
			    received(srv, ready));
	set_u(o, "wsa_messages_sent_total", SUM(srv, sent));
	set_u(o, "wsa_sent_bytes_total", SUM(srv, sent_bytes));
	json_object_set_new(o, "wsa_queued_bytes",
			    gauge(SUM(srv, queued_bytes)));
	x = json_object();
	for (i = 0; x && i <= NERRORS; i++)
		set_u(x, i < NERRORS ? error_texts[i] : "other",
		      SUM(srv, errors[i]));
	json_object_set_new(o, "wsa_errors_sent_total", x);
	set_u(o, "wsa_rate_limited_total", SUM(srv, rate_limited));
	x = json_object();
	for (i = 0; x && i <= WSA_CLOSE_CODES; i++) {
		uint64_t n = SUM(srv, closes[i]);

		if (!n)
			continue;
		if (i < WSA_CLOSE_CODES)
			snprintf(key, sizeof(key), "%zu", i + 1000);
		else
			snprintf(key, sizeof(key), "other");
		set_u(x, key, n);
	}
	json_object_set_new(o, "wsa_closes_total", x);
	set_u(o, "wsa_slow_consumer_closes_total", SUM(srv, slow_consumers));
	set_u(o, "wsa_publishes_total",
	      SUM(srv, publishes) + atomic_load(&srv->publishes_off_loop));
	set_u(o, "wsa_deliveries_total", SUM(srv, deliveries));
	json_object_set_new(o, "wsa_handler_duration_seconds",
			    HISTOGRAM(srv, handler));
	json_object_set_new(o, "wsa_verify_duration_seconds",
			    HISTOGRAM(srv, verify));
	json_object_set_new(o, "wsa_publish_duration_seconds",
			    HISTOGRAM(srv, publish));
	srv->broker->ops->metrics(srv->broker, o);
	return o;
}

/* ------------------------------------------------- Prometheus' text */

struct desc {
	const char *name, *type, *label, *help;
};

/* In the snapshot's order; label: the name of its one label, "route,type"
 * for the two of messages by type, NULL for none. */
static const struct desc descs[] = {
    {"wsa_connections", "gauge", "route",
     "WebSocket connections open, logged in or not."},
    {"wsa_connections_authenticated", "gauge", "route",
     "WebSocket connections with an accepted login."},
    {"wsa_upgrades_refused_total", "counter", "status",
     "Upgrades answered with an HTTP status instead of a WebSocket."},
    {"wsa_logins_total", "counter", "result",
     "Logins (first message or token at the upgrade) by how they ended."},
    {"wsa_token_refreshes_total", "counter", NULL,
     "Accepted logins on a connection already logged in."},
    {"wsa_token_expiries_total", "counter", NULL,
     "Connections closed because their token expired."},
    {"wsa_messages_received_total", "counter", "route,type",
     "Messages after the login, by route and type (other: unregistered "
     "or none)."},
    {"wsa_messages_sent_total", "counter", NULL, "Messages queued to send."},
    {"wsa_sent_bytes_total", "counter", NULL,
     "Bytes of WebSocket frames queued to send."},
    {"wsa_queued_bytes", "gauge", NULL, "Bytes queued and not yet written."},
    {"wsa_errors_sent_total", "counter", "message",
     "Error messages sent, by text (other: the host's own)."},
    {"wsa_rate_limited_total", "counter", NULL,
     "Messages refused over the rate limit."},
    {"wsa_closes_total", "counter", "code",
     "Connections closed, by close code (1006: no close frame)."},
    {"wsa_slow_consumer_closes_total", "counter", NULL,
     "Connections closed because too much was queued for them."},
    {"wsa_publishes_total", "counter", NULL,
     "Publishes, broadcasts and sends to a user."},
    {"wsa_deliveries_total", "counter", NULL,
     "Messages of publishes queued to a connection."},
    {"wsa_handler_duration_seconds", "histogram", NULL,
     "Time in the host's message handlers."},
    {"wsa_verify_duration_seconds", "histogram", NULL,
     "Time from handing a token to the verifier to its answer."},
    {"wsa_publish_duration_seconds", "histogram", NULL,
     "Time from a publish to its message queued for a loop's last "
     "subscriber."},
    /* With Redis only. */
    {"wsa_redis_up", "gauge", NULL, "Redis instances connected."},
    {"wsa_redis_published_total", "counter", NULL,
     "Messages published to Redis for the other nodes."},
    {"wsa_redis_received_total", "counter", NULL,
     "Messages from other nodes delivered here."},
    {"wsa_redis_dropped_total", "counter", NULL,
     "Messages not sent to the other nodes: their Redis instance was "
     "unreachable."},
    {"wsa_redis_reconnects_total", "counter", NULL,
     "Connections to a Redis instance made again after a loss."},
};

/* Append a label value, escaped as the text format wants. */
static bool put_label(struct wsa_buf *out, const char *v)
{
	for (; *v; v++) {
		const char *e = *v == '\\'   ? "\\\\"
				: *v == '"'  ? "\\\""
				: *v == '\n' ? "\\n"
					     : NULL;

		if (e ? !wsa__buf_append(out, e, 2)
		      : !wsa__buf_append(out, v, 1))
			return false;
	}
	return true;
}

static bool putf(struct wsa_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool putf(struct wsa_buf *out, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(line) &&
	       wsa__buf_append(out, line, (size_t)n);
}

static bool put_value(struct wsa_buf *out, const json_t *v)
{
	if (json_is_integer(v))
		return putf(out, " %" JSON_INTEGER_FORMAT "\n",
			    json_integer_value(v));
	return putf(out, " %.9g\n", json_number_value(v));
}

/* name{label="value"} value, for each entry of o. */
static bool put_labelled(struct wsa_buf *out, const char *name,
			 const char *label, const json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
	{
		if (!putf(out, "%s{%s=\"", name, label) || !put_label(out, k) ||
		    !wsa__buf_append(out, "\"}", 2) || !put_value(out, v))
			return false;
	}
	return true;
}

static bool put_received(struct wsa_buf *out, const char *name, const json_t *o)
{
	const char *route, *type;
	json_t *t, *v;

	json_object_foreach((json_t *)o, route, t)
	{
		json_object_foreach(t, type, v)
		{
			if (!putf(out, "%s{route=\"", name) ||
			    !put_label(out, route) ||
			    !wsa__buf_append(out, "\",type=\"", 8) ||
			    !put_label(out, type) ||
			    !wsa__buf_append(out, "\"}", 2) ||
			    !put_value(out, v))
				return false;
		}
	}
	return true;
}

static bool put_histogram(struct wsa_buf *out, const char *name,
			  const json_t *h)
{
	const json_t *b = json_object_get(h, "buckets");
	size_t i;

	for (i = 0; i <= WSA_BUCKETS; i++) {
		const char *le = i < WSA_BUCKETS ? bounds_text[i] : "+Inf";

		if (!putf(out, "%s_bucket{le=\"%s\"}", name, le) ||
		    !put_value(out, json_object_get(b, le)))
			return false;
	}
	return putf(out, "%s_sum", name) &&
	       put_value(out, json_object_get(h, "sum")) &&
	       putf(out, "%s_count", name) &&
	       put_value(out, json_object_get(h, "count"));
}

bool wsa__metrics_text(struct wsa_server *srv, struct wsa_buf *out)
{
	json_t *snap = wsa_server_metrics(srv);
	bool ok = snap != NULL;
	size_t i;

	for (i = 0; ok && i < sizeof(descs) / sizeof(descs[0]); i++) {
		const struct desc *d = &descs[i];
		const json_t *v = json_object_get(snap, d->name);
		const char *base = d->name;

		if (!v && !strncmp(base, "wsa_redis_", 10))
			continue;
		ok = putf(out, "# HELP %s %s\n# TYPE %s %s\n", base, d->help,
			  base, d->type);
		if (!ok || !v)
			continue;
		if (!strcmp(d->type, "histogram"))
			ok = put_histogram(out, base, v);
		else if (!d->label)
			ok = putf(out, "%s", base) && put_value(out, v);
		else if (strchr(d->label, ','))
			ok = put_received(out, base, v);
		else
			ok = put_labelled(out, base, d->label, v);
	}
	json_decref(snap);
	return ok;
}

char *wsa_server_metrics_text(wsa_server *srv, size_t *len)
{
	struct wsa_buf b = {0};

	if (!srv || !wsa__metrics_text(srv, &b) ||
	    !wsa__buf_append(&b, "", 1)) {
		wsa__buf_free(&b);
		return NULL;
	}
	if (len)
		*len = b.len - 1;
	return b.p;
}
