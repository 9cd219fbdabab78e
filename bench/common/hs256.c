/* HS256 minting for the benchmarks. See hs256.h. */
#include "hs256.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Unpadded base64url of n bytes at src into dst (4 * ceil(n / 3) + 1). */
static void b64url(char *dst, const void *src, size_t n)
{
	int len = EVP_EncodeBlock((unsigned char *)dst, src, (int)n), i;

	while (len > 0 && dst[len - 1] == '=')
		len--;
	dst[len] = 0;
	for (i = 0; i < len; i++)
		dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
}

void bench_hs256_token(char *out, size_t size, const char *secret,
		       const char *uid)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char pl[160], h64[64], p64[224], s64[64];
	unsigned char mac[32];
	unsigned maclen = sizeof(mac);
	int n = snprintf(pl, sizeof(pl), "{\"uid\":\"%.64s\",\"exp\":%ld}",
			 uid ? uid : "bench", (long)time(NULL) + 3600);

	b64url(h64, hdr, sizeof(hdr) - 1);
	b64url(p64, pl, (size_t)n);
	n = snprintf(out, size, "%s.%s", h64, p64);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out,
	     (size_t)n, mac, &maclen);
	b64url(s64, mac, maclen);
	snprintf(out + n, size - (size_t)n, ".%s", s64);
}
