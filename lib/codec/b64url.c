/* Strict base64url: a token has exactly one spelling, so nothing in it can
 * be changed without changing the bytes the signature covers. */
#include "codec/b64url.h"

#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of one base64url character, or -1 for any other byte. */
static int sextet(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Read up to four characters into a 24-bit group, first one in the high
 * bits; returns -1 when one of them is outside the alphabet. */
static int32_t group(const char *in, size_t n)
{
	int32_t v = 0;

	for (size_t i = 0; i < 4; i++) {
		int s = i < n ? sextet((unsigned char)in[i]) : 0;

		if (s < 0)
			return -1;
		v = v << 6 | s;
	}
	return v;
}

int wsa__b64url_decode(const char *in, size_t len, unsigned char *out,
		       size_t *outlen)
{
	size_t tail = len % 4, o = 0;

	if (tail == 1)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		size_t n = len - i < 4 ? len - i : 4;
		int32_t v = group(in + i, n);

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
