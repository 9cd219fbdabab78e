/* A log-linear latency histogram in the manner of HdrHistogram: values
 * below 2^HIST_SUB_BITS are counted exactly; above, every power of two is
 * split into 2^HIST_SUB_BITS buckets, so any value is known to better than
 * 1 % (more than the two significant digits reported).  Adding a value is
 * a count-leading-zeros, two shifts and an increment. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
/* Values (ns) up to 2^41 - 1, about 36 minutes; larger ones are clamped. */
#define HIST_MAX_BIT 40
#define HIST_BUCKETS ((HIST_MAX_BIT - HIST_SUB_BITS + 2) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_merge(struct hist *dst, const struct hist *src);
/* The value below which a fraction p (0..1) of the values lie; 0 when
 * empty. */
uint64_t hist_pct(const struct hist *h, double p);

static inline unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	if (v >> (HIST_MAX_BIT + 1))
		v = (UINT64_C(1) << (HIST_MAX_BIT + 1)) - 1;
	e = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	return e * HIST_SUB + (unsigned)(v >> e);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

#endif
