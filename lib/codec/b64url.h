/* Strict base64url (RFC 4648 section 5) without padding, as JWS uses it. */
#ifndef WSA_LIB_B64URL_H
#define WSA_LIB_B64URL_H

#include <stddef.h>

/* The exact number of bytes that n canonical characters decode to (n % 4
 * must not be 1). */
static inline size_t wsa__b64url_decoded_len(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/* The number of characters that n bytes encode to, without the '\0'. */
static inline size_t wsa__b64url_encoded_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/*
 * Decode len characters of unpadded base64url into out, which must hold
 * wsa__b64url_decoded_len(len) bytes; *outlen receives that count.
 * Only the canonical form is accepted: no '=', no character outside
 * A-Z a-z 0-9 - _, no length with len % 4 == 1, no set bit in the unused
 * low bits of the last character. Returns 0, or -1 (out is then undefined).
 */
int wsa__b64url_decode(const char *in, size_t len, unsigned char *out,
		       size_t *outlen);

/*
 * Encode len bytes as unpadded base64url into out, which must hold
 * wsa__b64url_encoded_len(len) + 1 characters; out is NUL-terminated.
 * Returns the number of characters written, the '\0' not counted.
 */
size_t wsa__b64url_encode(const void *in, size_t len, char *out);

#endif /* WSA_LIB_B64URL_H */
