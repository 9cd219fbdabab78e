/* An HS256 token for the in-process benchmarks' clients, minted with
 * OpenSSL before anything is timed. */
#ifndef WSA_BENCH_HS256_H
#define WSA_BENCH_HS256_H

#include <stddef.h>

/* Write into out (size bytes; 512 is plenty) a token for uid ("bench"
 * when NULL) signed with secret, valid for an hour. */
void bench_hs256_token(char *out, size_t size, const char *secret,
		       const char *uid);

#endif
