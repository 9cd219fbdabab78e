/* libFuzzer harness: the built-in JWT verifier on arbitrary tokens.
 *
 * Three verifiers are configured once, on the first input:
 *   keyed: keys with ids "hs" (HS256), "hs512" (HS512), "rs" (RS256) and
 *          "es" (ES256), the RSA and EC pairs generated at start;
 *   single: one HS256 key without an id, issuer "fuzz-iss", audience
 *          "fuzz-aud";
 *   loose: one HS512 key without an id, "exp" not required, any "typ",
 *          a minute of leeway, tokens of at most 512 bytes.
 * Every input goes to each of them. Nothing may crash or leak, and an
 * accepted token must meet what the verifier promises (a user named, not
 * expired, issuer and audience as configured); a rejection must say why
 * with a WSA_ETOKEN_ code and leave claims NULL. Anything else aborts.
 *
 * The HS secrets are fixed bytes so that fuzz/make-seeds can mint valid
 * seed tokens (fuzz/corpus/jwt/) for them. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "wsa.h"

/* Keep in step with fuzz/make-seeds. */
static const char hs256_secret[] = "libwsa-fuzz-hs256-secret-32bytes";
static const char hs512_secret[] =
    "libwsa-fuzz-hs512-secret-64-bytes-for-the-kid-hs512-and-more!!!!";
_Static_assert(sizeof(hs256_secret) - 1 == 32, "HS256 wants 32 bytes");
_Static_assert(sizeof(hs512_secret) - 1 == 64, "HS512 wants 64 bytes");

#define ISSUER	       "fuzz-iss"
#define AUDIENCE       "fuzz-aud"
#define LOOSE_MAX_SIZE 512
#define LOOSE_LEEWAY   60

static wsa_jwt *keyed, *single, *loose;

static void fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz_jwt: %s (%d: %s)\n", what, rc, wsa_strerror(rc));
	abort();
}

/* The PEM "PUBLIC KEY" of a generated pair, NUL-terminated; *len gets
 * its length. */
static char *public_pem(EVP_PKEY *pkey, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long n;

	if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0 &&
	    (pem = malloc((size_t)n + 1))) {
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(bio);
	return pem;
}

/* Add a public key of a freshly generated pair. */
static void add_generated(wsa_jwt *jwt, const char *kid, const char *alg,
			  EVP_PKEY *pkey)
{
	size_t len = 0;
	char *pem = pkey ? public_pem(pkey, &len) : NULL;
	int rc;

	if (!pem)
		fail("cannot generate or export a key pair", 0);
	rc = wsa_jwt_add_key(jwt, kid, alg, pem, len);
	if (rc)
		fail("wsa_jwt_add_key refused a generated public key", rc);
	free(pem);
	EVP_PKEY_free(pkey);
}

static void check(int rc, const char *what)
{
	if (rc)
		fail(what, rc);
}

static void setup(void)
{
	check(wsa_jwt_new(&keyed), "wsa_jwt_new");
	check(wsa_jwt_add_key(keyed, "hs", "HS256", hs256_secret,
			      sizeof(hs256_secret) - 1),
	      "HS256 key");
	check(wsa_jwt_add_key(keyed, "hs512", "HS512", hs512_secret,
			      sizeof(hs512_secret) - 1),
	      "HS512 key");
	add_generated(keyed, "rs", "RS256", EVP_RSA_gen(2048));
	add_generated(keyed, "es", "ES256", EVP_EC_gen("P-256"));

	check(wsa_jwt_new(&single), "wsa_jwt_new");
	check(wsa_jwt_add_key(single, NULL, "HS256", hs256_secret,
			      sizeof(hs256_secret) - 1),
	      "kid-less HS256 key");
	check(wsa_jwt_set_issuer(single, ISSUER), "issuer");
	check(wsa_jwt_set_audience(single, AUDIENCE), "audience");

	check(wsa_jwt_new(&loose), "wsa_jwt_new");
	check(wsa_jwt_add_key(loose, NULL, "HS512", hs512_secret,
			      sizeof(hs512_secret) - 1),
	      "kid-less HS512 key");
	wsa_jwt_set_require_exp(loose, false);
	check(wsa_jwt_set_typ(loose, NULL), "typ");
	wsa_jwt_set_leeway(loose, LOOSE_LEEWAY);
	wsa_jwt_set_max_size(loose, LOOSE_MAX_SIZE);
}

static void teardown(void)
{
	wsa_jwt_free(keyed);
	wsa_jwt_free(single);
	wsa_jwt_free(loose);
}

/* Whether v is a string equal to s. */
static bool string_is(const json_t *v, const char *s)
{
	return json_is_string(v) && !strcmp(json_string_value(v), s);
}

static bool audience_has(const json_t *aud, const char *want)
{
	size_t i;
	json_t *v;

	if (string_is(aud, want))
		return true;
	json_array_foreach(aud, i, v)
	{
		if (string_is(v, want))
			return true;
	}
	return false;
}

/* What every accepted claim set must hold: an object naming a user (uid,
 * or sub without uid, a non-empty string), and valid at then, with
 * leeway, when it has exp or nbf. */
static void check_claims(const json_t *c, time_t then, unsigned leeway,
			 bool need_exp)
{
	const json_t *id = json_object_get(c, "uid");
	const json_t *exp = json_object_get(c, "exp");
	const json_t *nbf = json_object_get(c, "nbf");

	if (!id)
		id = json_object_get(c, "sub");
	if (!json_is_object(c))
		fail("accepted claims are not an object", 0);
	if (!json_is_string(id) || !json_string_length(id))
		fail("accepted claims name no user", 0);
	if (need_exp && !exp)
		fail("accepted claims lack exp", 0);
	if (exp && !json_is_number(exp))
		fail("accepted exp is not a number", 0);
	/* exp was checked at some moment after then: now < exp + leeway. */
	if (exp && (double)then >= json_number_value(exp) + leeway)
		fail("accepted an expired token", 0);
	if (nbf && !json_is_number(nbf))
		fail("accepted nbf is not a number", 0);
}

/* Verify with one verifier; returns the claims (a new reference) or
 * NULL, checking the shape of a rejection. */
static json_t *verify(const wsa_jwt *jwt, const uint8_t *data, size_t size)
{
	json_t *claims = json_null(); /* must be overwritten */
	int rc = wsa_jwt_verify(jwt, (const char *)data, size, &claims);

	if (rc == WSA_OK) {
		if (!claims)
			fail("WSA_OK without claims", rc);
		return claims;
	}
	if (claims)
		fail("a rejection did not set claims to NULL", rc);
	if (rc < WSA_ETOKEN_IDENTITY || rc > WSA_ETOKEN_FORMAT)
		fail("a rejection without a WSA_ETOKEN_ code", rc);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	time_t then = time(NULL);
	json_t *c;

	if (!ready) {
		setup();
		atexit(teardown);
		ready = true;
	}
	if ((c = verify(keyed, data, size))) {
		check_claims(c, then, 0, true);
		json_decref(c);
	}
	/* Without a place for the claims: nothing may leak. */
	wsa_jwt_verify(keyed, (const char *)data, size, NULL);

	if ((c = verify(single, data, size))) {
		check_claims(c, then, 0, true);
		if (!string_is(json_object_get(c, "iss"), ISSUER))
			fail("accepted a token of another issuer", 0);
		if (!audience_has(json_object_get(c, "aud"), AUDIENCE))
			fail("accepted a token for another audience", 0);
		json_decref(c);
	}

	if ((c = verify(loose, data, size))) {
		check_claims(c, then, LOOSE_LEEWAY, false);
		if (size > LOOSE_MAX_SIZE)
			fail("accepted a token over the size limit", 0);
		json_decref(c);
	}
	return 0;
}
