/* Development tokens. See mint.h. */
#include "mint.h"

#include <string.h>
#include <time.h>

#include <jwt.h>

static jwt_alg_t hmac(const char *alg)
{
	if (!alg || !strcmp(alg, "HS256"))
		return JWT_ALG_HS256;
	if (!strcmp(alg, "HS384"))
		return JWT_ALG_HS384;
	if (!strcmp(alg, "HS512"))
		return JWT_ALG_HS512;
	return JWT_ALG_INVAL;
}

int example_mint_alg_ok(const char *alg)
{
	return hmac(alg) != JWT_ALG_INVAL;
}

char *example_mint(const char *alg, const char *secret, const char *uid,
		   const char *email, long ttl, const char *extra)
{
	jwt_t *jwt = NULL;
	time_t now = time(NULL);
	char *out = NULL;

	if (hmac(alg) == JWT_ALG_INVAL)
		return NULL;
	/* libjwt 1.10 allocates the string with malloc. */
	if (!jwt_new(&jwt) &&
	    !jwt_set_alg(jwt, hmac(alg), (const unsigned char *)secret,
			 (int)strlen(secret)) &&
	    !jwt_add_grant(jwt, "uid", uid) &&
	    !(email && jwt_add_grant(jwt, "email", email)) &&
	    !jwt_add_grant_int(jwt, "iat", (long)now) &&
	    !jwt_add_grant_int(jwt, "exp", (long)now + ttl) &&
	    !(extra && jwt_add_grants_json(jwt, extra)))
		out = jwt_encode_str(jwt);
	jwt_free(jwt);
	return out;
}
