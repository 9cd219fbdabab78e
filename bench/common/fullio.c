/* See fullio.h. */
#include "fullio.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	char *p = buf;

	while (n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = (deadline - monotonic_ns()) / 1000000;
		ssize_t r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r ? errno : ETIMEDOUT;
			return -1;
		}
		r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r ? errno : 0;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int bench_write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
