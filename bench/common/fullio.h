/* Whole records over a pipe or socket between a benchmark's processes:
 * written in full, read in full with a deadline. */
#ifndef WSA_BENCH_FULLIO_H
#define WSA_BENCH_FULLIO_H

#include <stddef.h>
#include <stdint.h>

/* Read exactly n bytes from fd, waiting at most until deadline (ns of
 * CLOCK_MONOTONIC). 0, or -1 on timeout (errno ETIMEDOUT), error, or end
 * of file (errno 0). */
int bench_read_full(int fd, void *buf, size_t n, int64_t deadline);

/* Write all n bytes of buf to fd; 0, or -1 on error. */
int bench_write_full(int fd, const void *buf, size_t n);

#endif
