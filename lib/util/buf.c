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

/* The block, header included, is 256 bytes at first and doubles, as a
 * wsa_buf's storage does: blocks of the sizes freed and allocated around
 * them (a connection's output comes and goes) fit each other's places. */
bool wsa__chunk_reserve(struct wsa_chunk **bp, size_t n)
{
	struct wsa_chunk *b = *bp;
	size_t len = b ? b->len : 0, have = b ? b->cap : 0;
	size_t size = b ? sizeof(*b) + have : 256;

	if (b && n <= have - len)
		return true;
	if (n > SIZE_MAX / 2 - sizeof(*b) - len)
		return false;
	while (size - sizeof(*b) - len < n)
		size *= 2;
	b = realloc(b, size);
	if (!b)
		return false;
	if (!*bp)
		b->len = b->off = 0;
	b->cap = size - sizeof(*b);
	*bp = b;
	return true;
}

bool wsa__chunk_append(struct wsa_chunk **bp, const void *p, size_t n)
{
	if (!n)
		return true;
	if (!wsa__chunk_reserve(bp, n))
		return false;
	memcpy((*bp)->p + (*bp)->len, p, n);
	(*bp)->len += n;
	return true;
}

void wsa__chunk_free(struct wsa_chunk **b)
{
	free(*b);
	*b = NULL;
}
