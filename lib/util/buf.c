/* A growable byte buffer, doubling its storage as it grows. */
#include "util/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool wsa__buf_reserve(struct wsa_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (n <= b->cap - b->len)
		return true;
	if (n > SIZE_MAX / 2 - b->len)
		return false;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

bool wsa__buf_append(struct wsa_buf *b, const void *p, size_t n)
{
	if (!n) /* b->p may still be NULL */
		return true;
	if (!wsa__buf_reserve(b, n))
		return false;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return true;
}

void wsa__buf_free(struct wsa_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
