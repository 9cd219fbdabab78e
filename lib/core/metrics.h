/* What a server counts, and its Prometheus text.
 *
 * Each loop counts in its own struct wsa_metrics, written by that loop's
 * thread alone: a counter is a relaxed atomic load, add and store (plain
 * moves on x86; no lock, no shared cache line), so another thread may read
 * it at any time without a data race. A read merges every loop's
 * counters. Gauges are counters that also go down (their sum is the
 * value). Messages by type are counted per route, in slots fixed at the
 * start: one per registered type, then "ping", then "other". */
#ifndef WSA_LIB_METRICS_H
#define WSA_LIB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/clock.h"

struct wsa_server;
struct wsa_service;

typedef _Atomic uint64_t wsa_counter;

/* Why a login ended as it did (wsa_logins_total's result). */
enum wsa_login_result {
	WSA_LOGIN_ACCEPTED,
	WSA_LOGIN_EXPIRED,
	WSA_LOGIN_BAD_SIGNATURE,
	WSA_LOGIN_MALFORMED,
	WSA_LOGIN_UNKNOWN_KEY,
	WSA_LOGIN_CLAIMS,
	WSA_LOGIN_REVOKED,
	WSA_LOGIN_THROTTLED,
	WSA_LOGIN_TIMEOUT,
	WSA_LOGIN_REJECTED,
	WSA_LOGIN_LIMIT,
	WSA_LOGIN_RESULTS
};

/* Upgrades answered with an HTTP status instead of a WebSocket. */
enum wsa_refusal {
	WSA_REFUSED_400,
	WSA_REFUSED_401,
	WSA_REFUSED_403,
	WSA_REFUSED_404,
	WSA_REFUSED_431,
	WSA_REFUSED_503,
	WSA_REFUSALS
};

/* Bucket bounds of the histograms: 1, 2.5, 5 from 1 us to 10 s. */
#define WSA_BUCKETS 22

struct wsa_histogram {
	wsa_counter bucket[WSA_BUCKETS + 1]; /* the last: over every bound */
	wsa_counter sum_ns;
};

/* Close codes counted one by one: 1000 to 4999. */
#define WSA_CLOSE_CODES 4000

struct wsa_metrics {
	bool on; /* cfg.metrics_off: nothing is counted */
	/* Per route (index), and per route and type slot (route_slot). */
	wsa_counter *conns, *conns_auth; /* gauges */
	wsa_counter *received;
	wsa_counter logins[WSA_LOGIN_RESULTS];
	wsa_counter refused[WSA_REFUSALS];
	wsa_counter refreshes, expiries;
	wsa_counter sent, sent_bytes, queued_bytes; /* the last a gauge */
	wsa_counter errors[9]; /* by text; the last "other" */
	wsa_counter rate_limited, slow_consumers;
	wsa_counter publishes, deliveries;
	wsa_counter closes[WSA_CLOSE_CODES + 1]; /* the last: any other */
	struct wsa_histogram handler, verify, publish;
};

/* Add n to a counter of the calling loop (its thread alone writes it). */
static inline void wsa__count(wsa_counter *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Count n in field of svc's metrics, when counting is on. */
#define WSA_COUNT(svc, field, n)                                               \
	do {                                                                   \
		if ((svc)->metrics.on)                                         \
			wsa__count(&(svc)->metrics.field, (uint64_t)(n));      \
	} while (0)

/* Record a duration in h. */
void wsa__observe(struct wsa_metrics *m, struct wsa_histogram *h, uint64_t ns);

/* Size every loop's per-route counters to the routes and types now
 * (fixed from the start on), all or nothing: false when memory is short,
 * the old ones kept. The owning thread, before the start. */
bool wsa__metrics_resize(struct wsa_server *srv);
void wsa__metrics_free(struct wsa_metrics *m);

/* A refusal of an upgrade with this HTTP status. */
void wsa__count_refusal(struct wsa_service *svc, unsigned status);

/* A login's end; code: the WSA_ETOKEN_ code of the built-in verifier's
 * refusal (0 for another verifier's). */
enum wsa_login_result wsa__login_result_of(int code);

/* An error message queued, by its text. */
void wsa__count_error(struct wsa_service *svc, const char *text);

/* A connection's close, by its code. */
void wsa__count_close(struct wsa_service *svc, int code);

/* The server's metrics now: the Prometheus text exposition (format
 * 0.0.4) appended to out; false when memory is short. Any thread. */
bool wsa__metrics_text(struct wsa_server *srv, struct wsa_buf *out);

#endif
