/* The control channel between the parent and its workers. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"

struct ctl_hdr {
	uint32_t type;
	uint32_t len;
};

static int write_all(int fd, const void *p, size_t n)
{
	const char *q = p;
	ssize_t w;

	while (n) {
		w = send(fd, q, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 1 when all n bytes came, 0 at EOF before the first byte, -1 else. */
static int read_all(int fd, void *p, size_t n)
{
	char *q = p;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, q + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 && got == 0 ? 0 : -1;
		got += (size_t)r;
	}
	return 1;
}

int ctl_send(int fd, uint32_t type, const void *body, uint32_t len)
{
	struct ctl_hdr h = {type, len};

	if (write_all(fd, &h, sizeof(h)))
		return -1;
	return len ? write_all(fd, body, len) : 0;
}

int ctl_recv(int fd, uint32_t *type, void *body, uint32_t cap)
{
	struct ctl_hdr h;
	int r = read_all(fd, &h, sizeof(h));

	if (r <= 0)
		return r;
	if (h.len > cap)
		return -1;
	*type = h.type;
	if (h.len && read_all(fd, body, h.len) != 1)
		return -1;
	return 1;
}
