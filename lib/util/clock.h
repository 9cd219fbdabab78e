/* The monotonic clock the library measures durations and times to live
 * with (CLOCK_MONOTONIC): never set back, shared by every thread. */
#ifndef WSA_LIB_CLOCK_H
#define WSA_LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Now, in nanoseconds. */
static inline uint64_t wsa__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Now, in milliseconds. */
static inline uint64_t wsa__now_ms(void)
{
	return wsa__now_ns() / 1000000u;
}

#endif
