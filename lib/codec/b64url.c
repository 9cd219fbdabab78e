/* Strict base64url: a token has exactly one spelling, so nothing in it can
 * be changed without changing the bytes the signature covers. */
#include "codec/b64url.h"

#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of each byte, or -1 outside the alphabet: one load a
 * character (a login decodes three segments). */
#define R(c, v) [(unsigned char)(c)] = (v) + 1
static const signed char sextets[256] = {
    R('A', 0),	R('B', 1),  R('C', 2),	R('D', 3),  R('E', 4),	R('F', 5),
    R('G', 6),	R('H', 7),  R('I', 8),	R('J', 9),  R('K', 10), R('L', 11),
    R('M', 12), R('N', 13), R('O', 14), R('P', 15), R('Q', 16), R('R', 17),
    R('S', 18), R('T', 19), R('U', 20), R('V', 21), R('W', 22), R('X', 23),
    R('Y', 24), R('Z', 25), R('a', 26), R('b', 27), R('c', 28), R('d', 29),
    R('e', 30), R('f', 31), R('g', 32), R('h', 33), R('i', 34), R('j', 35),
    R('k', 36), R('l', 37), R('m', 38), R('n', 39), R('o', 40), R('p', 41),
    R('q', 42), R('r', 43), R('s', 44), R('t', 45), R('u', 46), R('v', 47),
    R('w', 48), R('x', 49), R('y', 50), R('z', 51), R('0', 52), R('1', 53),
    R('2', 54), R('3', 55), R('4', 56), R('5', 57), R('6', 58), R('7', 59),
    R('8', 60), R('9', 61), R('-', 62), R('_', 63),
};
#undef R

/* Stored plus one, so that the table's zeros mean "not in it". */
static inline int sextet(unsigned char c)
{
	return sextets[c] - 1;
}

/* Read up to four characters into a 24-bit group, first one in the high
 * bits; returns -1 when one of them is outside the alphabet. */
static int32_t group(const unsigned char *in, size_t n)
{
	int32_t v = 0;
	int bad = 0;

	for (size_t i = 0; i < 4; i++) {
		int s = i < n ? sextet(in[i]) : 0;

		bad |= s;
		v = v << 6 | (s & 63);
	}
	return bad < 0 ? -1 : v;
}

int wsa__b64url_decode(const char *in, size_t len, unsigned char *out,
		       size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t tail = len % 4, o = 0, i = 0;

	if (tail == 1)
		return -1;
	/* Whole groups: four loads, one test. */
	for (; len - i >= 4; i += 4) {
		int a = sextet(p[i]), b = sextet(p[i + 1]),
		    c = sextet(p[i + 2]), d = sextet(p[i + 3]);

		if ((a | b | c | d) < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)(b << 4 | c >> 2);
		out[o++] = (unsigned char)(c << 6 | d);
	}
	for (; i < len; i += 4) {
		size_t n = len - i < 4 ? len - i : 4;
		int32_t v = group(p + i, n);

		if (v < 0)
			return -1;
		out[o++] = (unsigned char)(v >> 16);
		if (n > 2)
			out[o++] = (unsigned char)(v >> 8);
		if (n > 3)
			out[o++] = (unsigned char)v;
		/* The bits after the last whole byte must be zero, or several
		 * spellings would decode to the same bytes. */
		if ((n == 2 && (v & 0xffff)) || (n == 3 && (v & 0xff)))
			return -1;
	}
	*outlen = o;
	return 0;
}

size_t wsa__b64url_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		size_t n = len - i < 3 ? len - i : 3;
		uint32_t v = (uint32_t)p[i] << 16;

		if (n > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		for (size_t k = 0; k <= n; k++)
			out[o++] = alphabet[v >> (18 - 6 * k) & 63];
	}
	out[o] = '\0';
	return o;
}
