/*
 * The built-in JWT verifier (RFC 7515 compact JWS, RFC 7519 claims, with
 * the rules of RFC 8725). Keys are parsed once, when added, and each is
 * pinned to one algorithm; a token is checked for shape, header, key,
 * signature and claims, in that order, with OpenSSL doing the cryptography.
 * A verifier is read-only once configured, so any number of threads may
 * verify with it at once.
 */
#include "codec/jwt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "codec/b64url.h"
#include "codec/json.h"
#include "codec/parse.h"

#define JWT_DEFAULT_MAX_SIZE 8192
#define JWT_MIN_RSA_BITS     2048

enum jwt_family { JWT_HS, JWT_RS, JWT_ES };

/* One algorithm a key can be pinned to. */
struct jwt_alg {
	const char *name;
	enum jwt_family family;
	const EVP_MD *(*md)(void);
	size_t hash_len;   /* HS*: the shortest secret allowed */
	const char *group; /* ES*: the curve, as OpenSSL names it */
	size_t coord_len;  /* ES*: bytes in each of R and S */
};

static const struct jwt_alg jwt_algs[] = {
    {"HS256", JWT_HS, EVP_sha256, 32, NULL, 0},
    {"HS384", JWT_HS, EVP_sha384, 48, NULL, 0},
    {"HS512", JWT_HS, EVP_sha512, 64, NULL, 0},
    {"RS256", JWT_RS, EVP_sha256, 32, NULL, 0},
    {"RS384", JWT_RS, EVP_sha384, 48, NULL, 0},
    {"RS512", JWT_RS, EVP_sha512, 64, NULL, 0},
    {"ES256", JWT_ES, EVP_sha256, 32, "prime256v1", 32},
    {"ES384", JWT_ES, EVP_sha384, 48, "secp384r1", 48},
    {"ES512", JWT_ES, EVP_sha512, 64, "secp521r1", 66},
};

struct jwt_key {
	char *kid; /* NULL for the only key */
	const struct jwt_alg *alg;
	EVP_MAC_CTX *hmac; /* HS*: keyed once; each verify works on a copy */
	EVP_PKEY *pkey;	   /* RS*, ES* */
};

struct wsa_jwt {
	struct jwt_key *keys;
	size_t nkeys;
	char *iss; /* NULL: not checked */
	char *aud; /* NULL: not checked */
	char *typ; /* NULL: any typ */
	unsigned leeway;
	bool require_exp;
	size_t max_size;
};

/* A token cut at its dots, and its segments once decoded. */
struct jws {
	const char *seg[3];
	size_t seg_len[3];
	const unsigned char *raw[3];
	size_t raw_len[3];
};

/* The algorithm named exactly name, or NULL. */
static const struct jwt_alg *alg_find(const char *name)
{
	for (size_t i = 0; i < sizeof jwt_algs / sizeof jwt_algs[0]; i++)
		if (strcmp(jwt_algs[i].name, name) == 0)
			return &jwt_algs[i];
	return NULL;
}

/* Whether the n bytes at p contain the string s. */
static bool contains(const void *p, size_t n, const char *s)
{
	size_t m = strlen(s);

	for (size_t i = 0; m <= n && i <= n - m; i++)
		if (memcmp((const char *)p + i, s, m) == 0)
			return true;
	return false;
}

int wsa_jwt_new(wsa_jwt **out)
{
	wsa_jwt *jwt;

	if (!out)
		return WSA_EINVAL;
	*out = NULL;
	jwt = calloc(1, sizeof *jwt);
	if (!jwt)
		return WSA_ENOMEM;
	jwt->typ = strdup("JWT");
	if (!jwt->typ) {
		free(jwt);
		return WSA_ENOMEM;
	}
	jwt->require_exp = true;
	jwt->max_size = JWT_DEFAULT_MAX_SIZE;
	/* jansson seeds its hash function on first use; doing it here, before
	 * any verifying thread starts, keeps that first use out of a race. */
	json_object_seed(0);
	*out = jwt;
	return WSA_OK;
}

static void key_clear(struct jwt_key *k)
{
	free(k->kid);
	EVP_MAC_CTX_free(k->hmac); /* cleanses the key */
	EVP_PKEY_free(k->pkey);
}

void wsa_jwt_free(wsa_jwt *jwt)
{
	if (!jwt)
		return;
	for (size_t i = 0; i < jwt->nkeys; i++)
		key_clear(&jwt->keys[i]);
	free(jwt->keys);
	free(jwt->iss);
	free(jwt->aud);
	free(jwt->typ);
	free(jwt);
}

/* The configured key whose kid is the n bytes at kid, or NULL. */
static const struct jwt_key *key_by_kid(const wsa_jwt *jwt, const char *kid,
					size_t n)
{
	for (size_t i = 0; i < jwt->nkeys; i++) {
		const char *k = jwt->keys[i].kid;

		if (k && strlen(k) == n && memcmp(k, kid, n) == 0)
			return &jwt->keys[i];
	}
	return NULL;
}

/* Whether a key with this kid may join the verifier: either one key
 * without an id, or keys with distinct, non-empty ids. */
static int kid_check(const wsa_jwt *jwt, const char *kid)
{
	if (kid && !*kid)
		return WSA_EKID;
	if (jwt->nkeys == 0)
		return WSA_OK;
	if (!kid || !jwt->keys[0].kid)
		return WSA_EKID;
	if (key_by_kid(jwt, kid, strlen(kid)))
		return WSA_EKID;
	return WSA_OK;
}

/* Key an HMAC context with the secret, refusing one too short for the
 * hash (RFC 7518 3.2) and a PEM text, which would mean the host has
 * confused an asymmetric key with a shared secret. The context is made
 * once: fetching HMAC on every verify costs more than the MAC itself. */
static int secret_load(struct jwt_key *k, const void *key, size_t len)
{
	OSSL_PARAM params[2];
	EVP_MAC *mac;
	int ok;

	if (len < k->alg->hash_len || len > INT_MAX)
		return WSA_EKEY;
	if (contains(key, len, "-----BEGIN"))
		return WSA_EKEY;
	ERR_set_mark();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	k->hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(k->alg->md()), 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = k->hmac && EVP_MAC_init(k->hmac, key, len, params) == 1;
	ERR_pop_to_mark();
	return ok ? WSA_OK : WSA_ENOMEM;
}

/* Whether a parsed public key suits the algorithm: RSA of at least 2048
 * bits for RS*, EC on exactly the algorithm's curve for ES*. */
static bool pubkey_suits(const struct jwt_alg *alg, EVP_PKEY *pkey)
{
	char group[32];
	size_t n = 0;

	if (alg->family == JWT_RS)
		return EVP_PKEY_is_a(pkey, "RSA") &&
		       EVP_PKEY_get_bits(pkey) >= JWT_MIN_RSA_BITS;
	if (!EVP_PKEY_is_a(pkey, "EC"))
		return false;
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof group, &n))
		return false;
	return strcmp(group, alg->group) == 0;
}

/* Parse a PEM public key once, for every later verification. Private key
 * material is refused even next to a public key: a verifier needs only the
 * public half, and a private key here is a key file handed over by
 * mistake. */
static int pubkey_load(struct jwt_key *k, const void *key, size_t len)
{
	BIO *bio;
	int rc = WSA_OK;

	if (len == 0 || len > INT_MAX || contains(key, len, "PRIVATE KEY"))
		return WSA_EKEY;
	ERR_set_mark();
	bio = BIO_new_mem_buf(key, (int)len);
	if (!bio) {
		rc = WSA_ENOMEM;
		goto done;
	}
	k->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!k->pkey || !pubkey_suits(k->alg, k->pkey))
		rc = WSA_EKEY;
done:
	/* OpenSSL queues errors while it tries formats; none are ours to
	 * leave in the caller's thread. */
	ERR_pop_to_mark();
	return rc;
}

/* Append a loaded key under a copy of kid; on failure k is left to the
 * caller. */
static int key_append(wsa_jwt *jwt, struct jwt_key *k, const char *kid)
{
	struct jwt_key *keys;

	if (kid) {
		k->kid = strdup(kid);
		if (!k->kid)
			return WSA_ENOMEM;
	}
	keys = realloc(jwt->keys, (jwt->nkeys + 1) * sizeof *keys);
	if (!keys)
		return WSA_ENOMEM;
	jwt->keys = keys;
	jwt->keys[jwt->nkeys++] = *k;
	return WSA_OK;
}

int wsa_jwt_add_key(wsa_jwt *jwt, const char *kid, const char *alg,
		    const void *key, size_t len)
{
	struct jwt_key k = {0};
	int rc;

	if (!jwt || !alg || (!key && len))
		return WSA_EINVAL;
	k.alg = alg_find(alg);
	if (!k.alg)
		return WSA_EALG;
	rc = kid_check(jwt, kid);
	if (rc)
		return rc;
	if (k.alg->family == JWT_HS)
		rc = secret_load(&k, key, len);
	else
		rc = pubkey_load(&k, key, len);
	if (!rc)
		rc = key_append(jwt, &k, kid);
	if (rc)
		key_clear(&k);
	return rc;
}

/* Replace a configured string with a copy of value (NULL clears it). */
static int replace_string(char **slot, const char *value)
{
	char *copy = NULL;

	if (value) {
		copy = strdup(value);
		if (!copy)
			return WSA_ENOMEM;
	}
	free(*slot);
	*slot = copy;
	return WSA_OK;
}

int wsa_jwt_set_issuer(wsa_jwt *jwt, const char *iss)
{
	return jwt ? replace_string(&jwt->iss, iss) : WSA_EINVAL;
}

int wsa_jwt_set_audience(wsa_jwt *jwt, const char *aud)
{
	return jwt ? replace_string(&jwt->aud, aud) : WSA_EINVAL;
}

int wsa_jwt_set_typ(wsa_jwt *jwt, const char *typ)
{
	return jwt ? replace_string(&jwt->typ, typ) : WSA_EINVAL;
}

void wsa_jwt_set_leeway(wsa_jwt *jwt, unsigned seconds)
{
	if (jwt)
		jwt->leeway = seconds;
}

void wsa_jwt_set_require_exp(wsa_jwt *jwt, bool required)
{
	if (jwt)
		jwt->require_exp = required;
}

void wsa_jwt_set_max_size(wsa_jwt *jwt, size_t bytes)
{
	if (jwt)
		jwt->max_size = bytes ? bytes : JWT_DEFAULT_MAX_SIZE;
}

/* ------------------------------------------------------------- shape */

/* Cut a token into exactly three non-empty segments. */
static int jws_split(const char *token, size_t len, struct jws *t)
{
	const char *p = token, *end = token + len;

	for (int i = 0; i < 3; i++) {
		const char *dot = memchr(p, '.', (size_t)(end - p));

		if ((i < 2) != (dot != NULL))
			return WSA_ETOKEN_FORMAT;
		t->seg[i] = p;
		t->seg_len[i] = (size_t)((dot ? dot : end) - p);
		if (t->seg_len[i] == 0)
			return WSA_ETOKEN_FORMAT;
		if (dot)
			p = dot + 1;
	}
	return WSA_OK;
}

/* Decode the three segments one after the other into buf, which holds at
 * least as many bytes as the token (base64url only ever shrinks). */
static int jws_decode(struct jws *t, unsigned char *buf)
{
	for (int i = 0; i < 3; i++) {
		if (wsa__b64url_decode(t->seg[i], t->seg_len[i], buf,
				       &t->raw_len[i]))
			return WSA_ETOKEN_FORMAT;
		t->raw[i] = buf;
		buf += t->raw_len[i];
	}
	return WSA_OK;
}

/* Parse a segment as a JSON object, as jansson's json_loadb would with
 * JSON_REJECT_DUPLICATES (wsa__json_parse_no_nul; several times faster,
 * which counts in a login): duplicate member names are refused (parsers
 * disagree on which one wins), and so are NUL characters in strings. */
static json_t *parse_object(const unsigned char *p, size_t n)
{
	json_t *v = wsa__json_parse_no_nul((const char *)p, n, NULL);

	if (v && !json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* ------------------------------------------------------------ header */

/* Check the header members that do not depend on the key: alg is a
 * string, nothing asks us to fetch keys or honour extensions (RFC 8725
 * 3.10, RFC 7515 4.1.11), typ is the one configured. */
static int header_fields(const wsa_jwt *jwt, json_t *h)
{
	static const char *const refused[] = {"crit", "jku", "jwk", "x5u",
					      "x5c"};
	json_t *typ = json_object_get(h, "typ");

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (json_object_get(h, refused[i]))
			return WSA_ETOKEN_HEADER;
	if (!json_is_string(json_object_get(h, "alg")))
		return WSA_ETOKEN_HEADER;
	if (typ && jwt->typ &&
	    (!json_is_string(typ) || strcmp(json_string_value(typ), jwt->typ)))
		return WSA_ETOKEN_HEADER;
	return WSA_OK;
}

/* Choose the key: the only kid-less key whatever the token says, else the
 * key the token's kid names. */
static int key_select(const wsa_jwt *jwt, json_t *h, const struct jwt_key **key)
{
	json_t *kid;

	if (jwt->nkeys == 1 && !jwt->keys[0].kid) {
		*key = &jwt->keys[0];
		return WSA_OK;
	}
	kid = json_object_get(h, "kid");
	if (!json_is_string(kid))
		return WSA_ETOKEN_KID;
	*key = key_by_kid(jwt, json_string_value(kid), json_string_length(kid));
	return *key ? WSA_OK : WSA_ETOKEN_KID;
}

/* Parse and check the header, and pick the key it must be signed with:
 * the token's alg must be the key's, letter for letter (RFC 8725 3.1). */
static int header_check(const wsa_jwt *jwt, const struct jws *t,
			const struct jwt_key **key)
{
	json_t *h = parse_object(t->raw[0], t->raw_len[0]);
	int rc;

	if (!h)
		return WSA_ETOKEN_FORMAT;
	rc = header_fields(jwt, h);
	if (!rc)
		rc = key_select(jwt, h, key);
	if (!rc && strcmp(json_string_value(json_object_get(h, "alg")),
			  (*key)->alg->name))
		rc = WSA_ETOKEN_ALG;
	json_decref(h);
	return rc;
}

/* --------------------------------------------------------- signature */

/* HMAC over the signing input, compared in constant time with a signature
 * that must be exactly one hash long. */
static int hs_verify(const struct jwt_key *k, const void *data, size_t n,
		     const unsigned char *sig, size_t siglen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	EVP_MAC_CTX *ctx;
	int rc = WSA_OK;

	if (siglen != k->alg->hash_len)
		return WSA_ETOKEN_SIGNATURE;
	ctx = EVP_MAC_CTX_dup(k->hmac);
	if (!ctx || EVP_MAC_update(ctx, data, n) != 1 ||
	    EVP_MAC_final(ctx, mac, &maclen, sizeof mac) != 1) {
		EVP_MAC_CTX_free(ctx);
		return WSA_ENOMEM;
	}
	EVP_MAC_CTX_free(ctx);
	if (maclen != siglen || CRYPTO_memcmp(mac, sig, siglen) != 0)
		rc = WSA_ETOKEN_SIGNATURE;
	/* The right MAC for an attacker's input is a forgery: wipe it. */
	OPENSSL_cleanse(mac, sizeof mac);
	return rc;
}

/* Verify a signature in OpenSSL's form (PKCS#1 v1.5 for RSA, DER for
 * ECDSA) with the key's parsed public key. */
static int pkey_verify(const struct jwt_key *k, const void *data, size_t n,
		       const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return WSA_ENOMEM;
	ok =
	    EVP_DigestVerifyInit(ctx, NULL, k->alg->md(), NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, data, n) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? WSA_OK : WSA_ETOKEN_SIGNATURE;
}

/* Turn a JWS ECDSA signature, R and S as fixed-size big-endian halves
 * (RFC 7518 3.4), into the DER form OpenSSL verifies; *derlen receives its
 * length, at most cap. */
static int es_to_der(const unsigned char *sig, size_t half, unsigned char *der,
		     size_t cap, size_t *derlen)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
	BIGNUM *ss = BN_bin2bn(sig + half, (int)half, NULL);
	unsigned char *p = der;
	int n, rc = WSA_ENOMEM;

	if (!s || !r || !ss || !ECDSA_SIG_set0(s, r, ss)) {
		BN_free(r);
		BN_free(ss);
		goto done;
	}
	n = i2d_ECDSA_SIG(s, NULL);
	if (n > 0 && (size_t)n <= cap && i2d_ECDSA_SIG(s, &p) == n) {
		*derlen = (size_t)n;
		rc = WSA_OK;
	}
done:
	ECDSA_SIG_free(s);
	return rc;
}

/* Check an ES* signature: exactly two curve-sized halves, nothing else
 * (a DER signature is refused, as JWS requires). */
static int es_verify(const struct jwt_key *k, const void *data, size_t n,
		     const unsigned char *sig, size_t siglen)
{
	unsigned char der[160]; /* DER of two 66-byte integers: 141 at most */
	size_t derlen = 0;
	int rc;

	if (siglen != 2 * k->alg->coord_len)
		return WSA_ETOKEN_SIGNATURE;
	rc = es_to_der(sig, k->alg->coord_len, der, sizeof der, &derlen);
	if (rc)
		return rc;
	return pkey_verify(k, data, n, der, derlen);
}

/* Check the signature over the ASCII bytes "header.payload" with the key,
 * leaving the thread's OpenSSL error queue as it found it. */
static int signature_check(const struct jwt_key *k, const struct jws *t)
{
	const char *data = t->seg[0];
	size_t n = t->seg_len[0] + 1 + t->seg_len[1];
	int rc;

	ERR_set_mark();
	if (k->alg->family == JWT_HS)
		rc = hs_verify(k, data, n, t->raw[2], t->raw_len[2]);
	else if (k->alg->family == JWT_ES)
		rc = es_verify(k, data, n, t->raw[2], t->raw_len[2]);
	else
		rc = pkey_verify(k, data, n, t->raw[2], t->raw_len[2]);
	ERR_pop_to_mark();
	return rc;
}

/* ------------------------------------------------------------ claims */

/* Whether a claim is absent or a JSON number (integer or real). */
static bool number_or_absent(json_t *c, const char *name)
{
	json_t *v = json_object_get(c, name);

	return !v || json_is_number(v);
}

/* Check the types of the registered claims we read. */
static int claim_types(const wsa_jwt *jwt, json_t *c)
{
	json_t *email = json_object_get(c, "email");

	if (!number_or_absent(c, "exp") || !number_or_absent(c, "nbf") ||
	    !number_or_absent(c, "iat"))
		return WSA_ETOKEN_CLAIMS;
	if (jwt->require_exp && !json_object_get(c, "exp"))
		return WSA_ETOKEN_CLAIMS;
	if (email && !json_is_string(email))
		return WSA_ETOKEN_CLAIMS;
	return WSA_OK;
}

/*
 * Check exp, nbf and iat against now, each widened by the leeway. RFC
 * 7519 4.1.4: the token is valid only while now is before exp, so it has
 * expired once now >= exp + leeway (at exp itself, with no leeway, it is
 * refused). RFC 7519 4.1.5: it is valid from nbf on, so it is not yet
 * valid while now + leeway < nbf (at nbf itself it is accepted). A token
 * issued in the future (iat > now + leeway) is not yet valid either:
 * wsa_server_revoke_before() revokes by iat, and could never reach it.
 */
static int claim_times(const wsa_jwt *jwt, json_t *c, time_t now)
{
	json_t *exp = json_object_get(c, "exp");
	json_t *nbf = json_object_get(c, "nbf");
	json_t *iat = json_object_get(c, "iat");
	double t = (double)now, leeway = jwt->leeway;

	if (exp && t >= json_number_value(exp) + leeway)
		return WSA_ETOKEN_EXPIRED;
	if (nbf && t + leeway < json_number_value(nbf))
		return WSA_ETOKEN_NOT_YET_VALID;
	if (iat && t + leeway < json_number_value(iat))
		return WSA_ETOKEN_NOT_YET_VALID;
	return WSA_OK;
}

/* Whether v is a string equal to s. */
static bool string_is(json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* Check aud: the configured audience is the string, or one of the array's
 * strings (RFC 7519 4.1.3). */
static bool audience_ok(const wsa_jwt *jwt, json_t *aud)
{
	size_t i;
	json_t *v;

	if (string_is(aud, jwt->aud))
		return true;
	json_array_foreach(aud, i, v)
	{
		if (string_is(v, jwt->aud))
			return true;
	}
	return false;
}

/* Whether the claims name a user: uid when present, else sub, as a
 * non-empty string. */
static bool identity_ok(json_t *c)
{
	json_t *id = json_object_get(c, "uid");

	if (!id)
		id = json_object_get(c, "sub");
	return json_is_string(id) && json_string_length(id) > 0;
}

/* Check the claims of a token whose signature is good. */
static int claims_check(const wsa_jwt *jwt, json_t *c, time_t now)
{
	int rc = claim_types(jwt, c);

	if (!rc)
		rc = claim_times(jwt, c, now);
	if (rc)
		return rc;
	if (jwt->iss && !string_is(json_object_get(c, "iss"), jwt->iss))
		return WSA_ETOKEN_ISSUER;
	if (jwt->aud && !audience_ok(jwt, json_object_get(c, "aud")))
		return WSA_ETOKEN_AUDIENCE;
	if (!identity_ok(c))
		return WSA_ETOKEN_IDENTITY;
	return WSA_OK;
}

/* ------------------------------------------------------------ verify */

/* Check a cut token whose segments are decoded: header and key, then the
 * signature, and only then the payload, so that unsigned bytes reach no
 * parser but the header's. On success *claims receives the payload. */
static int jws_check(const wsa_jwt *jwt, const struct jws *t, time_t now,
		     json_t **claims)
{
	const struct jwt_key *key = NULL;
	json_t *payload;
	int rc = header_check(jwt, t, &key);

	if (!rc)
		rc = signature_check(key, t);
	if (rc)
		return rc;
	payload = parse_object(t->raw[1], t->raw_len[1]);
	if (!payload)
		return WSA_ETOKEN_FORMAT;
	rc = claims_check(jwt, payload, now);
	if (rc)
		json_decref(payload);
	else
		*claims = payload;
	return rc;
}

int wsa__jwt_verify_at(const wsa_jwt *jwt, const char *token, size_t len,
		       time_t now, json_t **claims)
{
	unsigned char small[2048], *buf = small;
	json_t *payload = NULL;
	struct jws t;
	int rc;

	if (claims)
		*claims = NULL;
	if (!jwt || !token)
		return WSA_EINVAL;
	/* The size first: nothing of an oversized token is even looked at. */
	if (len > jwt->max_size)
		return WSA_ETOKEN_SIZE;
	if (jwt->nkeys == 0)
		return WSA_EINVAL;
	rc = jws_split(token, len, &t);
	if (rc)
		return rc;
	if (len > sizeof small && !(buf = malloc(len)))
		return WSA_ENOMEM;
	rc = jws_decode(&t, buf);
	if (!rc)
		rc = jws_check(jwt, &t, now, &payload);
	if (buf != small)
		free(buf);
	if (claims)
		*claims = payload;
	else
		json_decref(payload);
	return rc;
}

int wsa_jwt_verify(const wsa_jwt *jwt, const char *token, size_t len,
		   json_t **claims)
{
	struct timespec ts;

	/* Not time(): glibc serves it from a coarse clock that can still
	 * show the last second a few milliseconds into the next, when the
	 * issuer, reading a fine one, stamped iat with the new second. */
	clock_gettime(CLOCK_REALTIME, &ts);
	return wsa__jwt_verify_at(jwt, token, len, ts.tv_sec, claims);
}

unsigned wsa__jwt_leeway(const wsa_jwt *jwt)
{
	return jwt->leeway;
}
