/* Whether the codecs scan text sixteen bytes at a time with SSE2. */
#ifndef WSA_LIB_SCAN_H
#define WSA_LIB_SCAN_H

/* SSE2 is part of x86-64, so the vector path is the usual one there; the
 * word-at-a-time path serves everywhere else, and where WSA_SCAN_PORTABLE
 * is defined (tests build the codecs so as well, to run that path). */
#if defined(__SSE2__) && !defined(WSA_SCAN_PORTABLE)
#include <emmintrin.h>
#define WSA_SCAN_SSE2 1

/* The sixteen bytes at p, which need no alignment. */
static inline __m128i wsa__load16(const void *p)
{
	return _mm_loadu_si128((const __m128i *)p);
}
#else
#define WSA_SCAN_SSE2 0
#endif

#endif
