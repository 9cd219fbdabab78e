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

/* The bytewise least of a ^ k, b ^ k, c ^ k and d ^ k: a lane is zero
 * when one of the four vectors holds byte k there (the 64-byte rounds
 * test "is any byte k" for four vectors at once). */
static inline __m128i wsa__min_xor4(__m128i a, __m128i b, __m128i c, __m128i d,
				    char k)
{
	const __m128i kk = _mm_set1_epi8(k);

	return _mm_min_epu8(
	    _mm_min_epu8(_mm_xor_si128(a, kk), _mm_xor_si128(b, kk)),
	    _mm_min_epu8(_mm_xor_si128(c, kk), _mm_xor_si128(d, kk)));
}
#else
#define WSA_SCAN_SSE2 0
#endif

#endif
