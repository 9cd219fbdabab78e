/* What wsa-loadgen prints at the end: human-readable lines on stderr and
 * one JSON line on stdout. */
#include <stdio.h>

#include "lg.h"

static const char *const mode_name[] = {"echo", "connect", "idle"};
static const char *const proto_name[] = {"wsa", "raw"};

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static double rate(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

static void human(const struct lg_opts *o, const struct lg_result *r,
		  uint64_t errors)
{
	const struct hist *h = &r->lat;
	const char *what = o->mode == LG_ECHO	? "round trip"
			   : o->proto == LG_WSA ? "time to authenticated"
						: "time to upgraded";

	if (o->mode == LG_ECHO)
		fprintf(stderr,
			"wsa-loadgen: %llu replies in %.2f s: %.0f "
			"msgs/s\n",
			(unsigned long long)r->messages, r->window_s,
			rate(r->messages, r->window_s));
	else if (o->mode == LG_CONNECT)
		fprintf(stderr, "wsa-loadgen: %llu %s in %.2f s: %.0f/s\n",
			(unsigned long long)r->ok,
			o->proto == LG_WSA ? "logins" : "upgrades", r->window_s,
			rate(r->ok, r->window_s));
	fprintf(stderr,
		"wsa-loadgen: %s p50 %.0f us, p99 %.0f us, p99.9 "
		"%.0f us, max %.0f us\n",
		what, us(hist_pct(h, 0.5)), us(hist_pct(h, 0.99)),
		us(hist_pct(h, 0.999)), us(h->max));
	fprintf(stderr,
		"wsa-loadgen: errors %llu (connect %llu, handshake "
		"%llu, auth %llu, protocol %llu, timeout %llu, lost "
		"%llu, wrong replies %llu)\n",
		(unsigned long long)errors,
		(unsigned long long)r->fail[LG_F_CONNECT],
		(unsigned long long)r->fail[LG_F_HANDSHAKE],
		(unsigned long long)r->fail[LG_F_AUTH],
		(unsigned long long)r->fail[LG_F_PROTOCOL],
		(unsigned long long)r->fail[LG_F_TIMEOUT],
		(unsigned long long)r->dropped,
		(unsigned long long)r->mismatches);
}

static void json_latency(const struct hist *h)
{
	printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
	       "\"max_us\":%.1f,\"mean_us\":%.1f",
	       us(hist_pct(h, 0.5)), us(hist_pct(h, 0.99)),
	       us(hist_pct(h, 0.999)), us(h->max),
	       h->count ? h->sum / (double)h->count / 1e3 : 0.0);
}

static void json_mode(const struct lg_opts *o, const struct lg_result *r)
{
	if (o->mode == LG_ECHO)
		printf(",\"conns\":%u,\"inflight\":%u,\"size\":%zu,"
		       "\"duration_s\":%.3f,\"warmup_s\":%.3f,"
		       "\"conns_ok\":%llu,\"messages\":%llu,"
		       "\"msgs_per_s\":%.1f",
		       o->conns, o->inflight, o->size, r->window_s, o->warmup,
		       (unsigned long long)r->ok,
		       (unsigned long long)r->messages,
		       rate(r->messages, r->window_s));
	else if (o->mode == LG_CONNECT)
		printf(",\"concurrency\":%u,\"duration_s\":%.3f,"
		       "\"warmup_s\":%.3f,\"completed\":%llu,\"per_s\":%.1f",
		       o->concurrency, r->window_s, o->warmup,
		       (unsigned long long)r->ok, rate(r->ok, r->window_s));
	else
		printf(",\"conns\":%u,\"ok\":%llu,\"failed\":%llu,"
		       "\"setup_s\":%.3f",
		       o->conns, (unsigned long long)r->ok,
		       (unsigned long long)lg_failed(r), r->setup_s);
}

void lg_report(const struct lg_opts *o, const struct lg_result *r,
	       double cpu_total, double wall_total, unsigned workers)
{
	uint64_t errors = lg_errors(r);
	/* The window's CPU shows whether the generator had capacity to
	 * spare; idle mode has no window, so it reports the whole run. */
	double cpu = o->mode == LG_IDLE ? cpu_total : r->cpu_s;
	double wall = o->mode == LG_IDLE ? wall_total : r->window_s;

	human(o, r, errors);
	fprintf(stderr,
		"wsa-loadgen: client CPU %.2f s in %.2f s (%.0f %% "
		"of one core), %u process%s\n",
		cpu, wall, wall > 0 ? 100 * cpu / wall : 0.0, r->processes,
		r->processes == 1 ? "" : "es");
	printf("{\"mode\":\"%s\",\"proto\":\"%s\",\"workers\":%u",
	       mode_name[o->mode], proto_name[o->proto], workers);
	json_mode(o, r);
	json_latency(&r->lat);
	printf(",\"errors\":%llu,\"fail_connect\":%llu,\"fail_handshake\":%llu,"
	       "\"fail_auth\":%llu,\"fail_protocol\":%llu,"
	       "\"fail_timeout\":%llu,\"dropped\":%llu,\"mismatches\":%llu,"
	       "\"pings\":%llu,\"interrupted\":%s",
	       (unsigned long long)errors,
	       (unsigned long long)r->fail[LG_F_CONNECT],
	       (unsigned long long)r->fail[LG_F_HANDSHAKE],
	       (unsigned long long)r->fail[LG_F_AUTH],
	       (unsigned long long)r->fail[LG_F_PROTOCOL],
	       (unsigned long long)r->fail[LG_F_TIMEOUT],
	       (unsigned long long)r->dropped,
	       (unsigned long long)r->mismatches, (unsigned long long)r->pings,
	       r->interrupted ? "true" : "false");
	printf(
	    ",\"client_cpu_s\":%.3f,\"wall_s\":%.3f,\"client_cpu_util\":%.3f,"
	    "\"client_cpu_total_s\":%.3f,\"wall_total_s\":%.3f}\n",
	    cpu, wall, wall > 0 ? cpu / wall : 0.0, cpu_total, wall_total);
	fflush(stdout);
}
