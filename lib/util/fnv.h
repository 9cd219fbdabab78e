/* FNV-1a, 64 bits: an unkeyed hash that is the same in every process (the
 * maps' SipHash is keyed per process), for what nodes must agree on or a
 * value must stand for. Never for keys a client chooses in a map. */
#ifndef WSA_LIB_FNV_H
#define WSA_LIB_FNV_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t wsa__fnv1a64(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 14695981039346656037ULL;

	while (n--) {
		h ^= *s++;
		h *= 1099511628211ULL;
	}
	return h;
}

#endif
