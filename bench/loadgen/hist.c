/* Latency histogram: merging and percentiles. */
#include <string.h>

#include "hist.h"

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

/* The middle of the values bucket i stands for. */
static uint64_t hist_value(unsigned i)
{
	unsigned e;
	uint64_t lo;

	if (i < 2 * HIST_SUB)
		return i;
	e = i / HIST_SUB - 1;
	lo = (uint64_t)(i - e * HIST_SUB) << e;
	return lo + ((UINT64_C(1) << e) >> 1);
}

uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->count)
		return 0;
	want = (uint64_t)(p * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			break;
	}
	if (i == HIST_BUCKETS || hist_value(i) > h->max)
		return h->max;
	return hist_value(i) < h->min ? h->min : hist_value(i);
}
