/* Development tokens: HS256, minted with libjwt. */
#ifndef WSA_EXAMPLE_MINT_H
#define WSA_EXAMPLE_MINT_H

/* A token for uid (and email, when not NULL) valid for ttl seconds from
 * now, with the members of the JSON object text extra as further claims
 * (or none: NULL), signed with secret; malloc'd, or NULL when libjwt
 * fails. */
char *example_mint(const char *secret, const char *uid, const char *email,
		   long ttl, const char *extra);

#endif
