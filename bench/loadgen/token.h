/* Minting the JWTs the connections log in with: HS256 with a shared
 * secret, or ES256 with a P-256 private key.  Minting happens before the
 * timed part; its speed is not what the benchmarks measure. */
#ifndef LG_TOKEN_H
#define LG_TOKEN_H

#include <stdint.h>

#include "lg.h"

struct lg_minter;

/* Reads the key (--es256-key) or takes the secret (--secret, else
 * WSA_JWT_SECRET); with --token every "minted" token is that one.  Returns
 * NULL, with the reason on stderr, when there is nothing to sign with. */
struct lg_minter *lg_minter_new(const struct lg_opts *o);

/* A new malloc'd token with claims {"uid":"bench<index>","exp":now+3600}. */
char *lg_mint(struct lg_minter *m, uint32_t index);

void lg_minter_free(struct lg_minter *m);

#endif
