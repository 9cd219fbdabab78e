/* Development tokens: HMAC (HS256, HS384, HS512), minted with libjwt. */
#ifndef WSA_EXAMPLE_MINT_H
#define WSA_EXAMPLE_MINT_H

/* Whether alg ("HS256", "HS384", "HS512") is one example_mint signs. */
int example_mint_alg_ok(const char *alg);

/* A token for uid (and email, when not NULL) valid for ttl seconds from
 * now, with the members of the JSON object text extra as further claims
 * (or none: NULL), signed with secret by alg (NULL: HS256); malloc'd, or
 * NULL when libjwt fails or alg is not an HMAC. */
char *example_mint(const char *alg, const char *secret, const char *uid,
		   const char *email, long ttl, const char *extra);

#endif
