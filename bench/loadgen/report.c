/* What wsa-loadgen prints at the end: human-readable lines on stderr and
 * one JSON line on stdout. */
#include <stdio.h>

#include "lg.h"

static const char *const mode_name[] = {"echo", "connect", "idle", "unauth",
					"flood"};
static const char *const proto_name[] = {"wsa", "raw"};

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static double rate(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

/* "503: 12, 403: 1" (or "none") into buf. */
static const char *codes_text(char *buf, size_t cap, const struct lg_codes *t)
{
	size_t len = 0;
	int i;

	snprintf(buf, cap, "none");
	for (i = 0; i < LG_CODES && t->code[i] && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%u: %llu",
					i ? ", " : "", t->code[i],
					(unsigned long long)t->n[i]);
	if (t->other && len < cap)
		snprintf(buf + len, cap - len, ", other: %llu",
			 (unsigned long long)t->other);
	return buf;
}

/* unauth, flood: what the attack did and what the server did to it. */
static void human_attack(const struct lg_opts *o, const struct lg_result *r)
{
	char refused[160], closes[160];

	if (o->mode == LG_FLOOD)
		fprintf(stderr,
			"wsa-loadgen: %llu messages sent in %.2f s (%.0f/s), "
			"%llu replies, %llu \"Rate limit exceeded\"\n",
			(unsigned long long)r->sent, r->window_s,
			rate(r->sent, r->window_s),
			(unsigned long long)r->replies,
			(unsigned long long)r->rate_limited);
	fprintf(stderr,
		"wsa-loadgen: %llu upgrades, %llu refused (%s); %llu closed by "
		"the server (%s); %llu set up again\n",
		(unsigned long long)r->upgrades,
		(unsigned long long)lg_codes_total(&r->refused),
		codes_text(refused, sizeof(refused), &r->refused),
		(unsigned long long)lg_codes_total(&r->closes),
		codes_text(closes, sizeof(closes), &r->closes),
		(unsigned long long)r->reconnects);
}

static void human(const struct lg_opts *o, const struct lg_result *r,
		  uint64_t errors)
{
	const struct hist *h = &r->lat;
	const char *what = o->mode == LG_ECHO ? "round trip"
			   : o->proto == LG_WSA && o->mode != LG_UNAUTH
			       ? "time to authenticated"
			       : "time to upgraded";

	if (lg_attack(o->mode))
		human_attack(o, r);
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

/* {"503":12,"403":1}, with "other" when codes did not fit. */
static void json_codes(const char *name, const struct lg_codes *t)
{
	int i;

	printf(",\"%s\":{", name);
	for (i = 0; i < LG_CODES && t->code[i]; i++)
		printf("%s\"%u\":%llu", i ? "," : "", t->code[i],
		       (unsigned long long)t->n[i]);
	if (t->other)
		printf("%s\"other\":%llu", i ? "," : "",
		       (unsigned long long)t->other);
	putchar('}');
}

static void json_attack(const struct lg_opts *o, const struct lg_result *r)
{
	printf(",\"conns\":%u,\"size\":%zu,\"duration_s\":%.3f,"
	       "\"conns_ok\":%llu,\"upgrades\":%llu,\"refused\":%llu",
	       o->conns, o->size, r->window_s, (unsigned long long)r->ok,
	       (unsigned long long)r->upgrades,
	       (unsigned long long)lg_codes_total(&r->refused));
	json_codes("refused_by_status", &r->refused);
	printf(",\"closed\":%llu",
	       (unsigned long long)lg_codes_total(&r->closes));
	json_codes("closed_by_code", &r->closes);
	printf(",\"reconnects\":%llu,\"sent\":%llu,\"sent_per_s\":%.1f,"
	       "\"replies\":%llu,\"rate_limited\":%llu",
	       (unsigned long long)r->reconnects, (unsigned long long)r->sent,
	       rate(r->sent, r->window_s), (unsigned long long)r->replies,
	       (unsigned long long)r->rate_limited);
}

static void json_mode(const struct lg_opts *o, const struct lg_result *r)
{
	if (lg_attack(o->mode))
		json_attack(o, r);
	else if (o->mode == LG_ECHO)
		printf(",\"conns\":%u,\"inflight\":%u,\"rate\":%.1f,"
		       "\"size\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
		       "\"conns_ok\":%llu,\"messages\":%llu,"
		       "\"msgs_per_s\":%.1f",
		       o->conns, o->inflight, o->rate, o->size, r->window_s,
		       o->warmup, (unsigned long long)r->ok,
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
	/* The attack modes expect the server to close their connections
	 * (they open them again): "dropped" is no error there. */
	uint64_t errors =
	    lg_attack(o->mode) ? lg_failed(r) + r->mismatches : lg_errors(r);
	/* The window's CPU shows whether the generator had capacity to
	 * spare; idle mode has no window, so it reports the whole run (the
	 * attack modes' window is their whole hold). */
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
