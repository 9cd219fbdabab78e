/* Small helpers shared by the parts of wsa-loadgen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/rand.h>

#include "lg.h"

void lg_rng_seed(struct lg_rng *r)
{
	r->s = 0;
	if (RAND_bytes((unsigned char *)&r->s, sizeof(r->s)) != 1)
		r->s = lg_now_ns();
	r->s |= 1; /* xorshift must not start at 0 */
}

void *lg_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("wsa-loadgen: out of memory\n", stderr);
		exit(2);
	}
	return p;
}

void *lg_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fputs("wsa-loadgen: out of memory\n", stderr);
		exit(2);
	}
	return p;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double lg_cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

uint64_t lg_failed(const struct lg_result *r)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < LG_F_COUNT; i++)
		n += r->fail[i];
	return n;
}

uint64_t lg_errors(const struct lg_result *r)
{
	return lg_failed(r) + r->dropped + r->mismatches;
}

void lg_codes_add(struct lg_codes *t, uint32_t code, uint64_t n)
{
	int i;

	for (i = 0; i < LG_CODES; i++) {
		if (t->code[i] == code || !t->code[i]) {
			t->code[i] = code;
			t->n[i] += n;
			return;
		}
	}
	t->other += n;
}

uint64_t lg_codes_total(const struct lg_codes *t)
{
	uint64_t n = t->other;
	int i;

	for (i = 0; i < LG_CODES; i++)
		n += t->n[i];
	return n;
}

static void codes_merge(struct lg_codes *dst, const struct lg_codes *src)
{
	int i;

	for (i = 0; i < LG_CODES && src->code[i]; i++)
		lg_codes_add(dst, src->code[i], src->n[i]);
	dst->other += src->other;
}

void lg_result_add(struct lg_result *dst, const struct lg_result *src)
{
	int i;

	dst->ok += src->ok;
	for (i = 0; i < LG_F_COUNT; i++)
		dst->fail[i] += src->fail[i];
	dst->dropped += src->dropped;
	dst->messages += src->messages;
	dst->mismatches += src->mismatches;
	dst->pings += src->pings;
	dst->upgrades += src->upgrades;
	dst->reconnects += src->reconnects;
	dst->sent += src->sent;
	dst->replies += src->replies;
	dst->rate_limited += src->rate_limited;
	codes_merge(&dst->refused, &src->refused);
	codes_merge(&dst->closes, &src->closes);
	/* Workers measure windows of the same length from the same GO. */
	if (src->window_s > dst->window_s)
		dst->window_s = src->window_s;
	if (src->setup_s > dst->setup_s)
		dst->setup_s = src->setup_s;
	dst->cpu_s += src->cpu_s;
	dst->interrupted |= src->interrupted;
	dst->processes += src->processes;
	hist_merge(&dst->lat, &src->lat);
}

/* The line that says set-up is over (and READY for the modes that hold
 * their connections). */
void lg_announce(const struct lg_opts *o, const struct lg_result *r)
{
	if (o->mode == LG_CONNECT)
		return;
	fprintf(stderr,
		"wsa-loadgen: %llu connections ready, %llu failed, "
		"in %.2f s\n",
		(unsigned long long)r->ok, (unsigned long long)lg_failed(r),
		r->setup_s);
	if (lg_held(o->mode)) {
		printf("READY %llu %llu\n", (unsigned long long)r->ok,
		       (unsigned long long)lg_failed(r));
		fflush(stdout);
	}
}
