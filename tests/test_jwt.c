/*
 * Unit tests of the built-in JWT verifier and of strict base64url: every
 * algorithm, every claim rule, every key rule, and the tokens that libjwt
 * 1.10.2 alone would accept but we must refuse. No sockets.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "check.h"
#include "lib/codec/b64url.h"
#include "lib/codec/jwt.h"
#include "tokens.h"
#include "wsa.h"

/* A code no verification returns: the token could not even be minted. */
#define MINT_FAILED 12345

static const char S32[] = "0123456789abcdef0123456789abcdef";
static const char S48[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
static const char S64[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* Keys shared by the tests, made once: generating RSA keys is slow. */
static EVP_PKEY *rsa2048, *rsa1024, *ec256, *ec256b, *ec384, *ec521;
static char *rsa_pem, *rsa1024_pem, *ec256_pem, *ec384_pem, *ec521_pem;

static time_t now;

/* ------------------------------------------------------------ helpers */

/* Verify tok at the real time and free it; the OpenSSL error queue must be
 * empty afterwards, whatever the outcome. */
static int verify_claims(const wsa_jwt *jwt, char *tok, json_t **claims)
{
	int rc;

	if (!tok)
		return MINT_FAILED;
	rc = wsa_jwt_verify(jwt, tok, strlen(tok), claims);
	free(tok);
	CHECK(ERR_peek_error() == 0);
	return rc;
}

static int verify(const wsa_jwt *jwt, char *tok)
{
	return verify_claims(jwt, tok, NULL);
}

/* Verify tok as if the clock read t, and free it. */
static int verify_at(const wsa_jwt *jwt, char *tok, time_t t)
{
	int rc;

	if (!tok)
		return MINT_FAILED;
	rc = wsa__jwt_verify_at(jwt, tok, strlen(tok), t, NULL);
	free(tok);
	CHECK(ERR_peek_error() == 0);
	return rc;
}

/* Add a key given as a C string; the error queue must stay empty. */
static int add(wsa_jwt *jwt, const char *kid, const char *alg, const char *key)
{
	int rc = wsa_jwt_add_key(jwt, kid, alg, key, key ? strlen(key) : 0);

	CHECK(ERR_peek_error() == 0);
	return rc;
}

/* A verifier with one kid-less key. */
static wsa_jwt *verifier(const char *alg, const char *key)
{
	wsa_jwt *jwt = NULL;

	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(add(jwt, NULL, alg, key), WSA_OK);
	return jwt;
}

/* A payload naming alice that expires in ten minutes (static buffer). */
static const char *good(void)
{
	static char buf[128];

	snprintf(buf, sizeof buf, "{\"sub\":\"alice\",\"exp\":%lld}",
		 (long long)now + 600);
	return buf;
}

/* payload text with %lld replaced by now + delta (static buffer). */
static const char *at(const char *fmt, long long delta)
{
	static char buf[256];

	snprintf(buf, sizeof buf, fmt, (long long)now + delta);
	return buf;
}

static char *hs(const char *header, const char *payload)
{
	return tok_make(header, payload, "HS256", S32, 32, NULL);
}

/* Replace the character at index i of a token (which it owns). */
static char *poke(char *tok, size_t i, char c)
{
	if (tok && i < strlen(tok))
		tok[i] = c;
	return tok;
}

/* A new token: tok with s inserted at index i; frees tok. */
static char *insert(char *tok, size_t i, const char *s)
{
	char *out;

	if (!tok)
		return NULL;
	out = malloc(strlen(tok) + strlen(s) + 1);
	if (out)
		sprintf(out, "%.*s%s%s", (int)i, tok, s, tok + i);
	free(tok);
	return out;
}

/* The index of the n-th '.' of tok (n from 0). */
static size_t dot(const char *tok, int n)
{
	const char *p = tok;

	for (int i = 0; i <= n; i++)
		p = strchr(p, '.') + (i < n);
	return (size_t)(p - tok);
}

/* ------------------------------------------------------------ b64url */

static int b64_decode(const char *s, unsigned char *out, size_t *n)
{
	return wsa__b64url_decode(s, strlen(s), out, n);
}

static void test_b64url_roundtrip(void)
{
	unsigned char in[64], out[64];
	char enc[128];

	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof in; len++) {
		char *ref = tok_b64url(in, len);
		size_t n = 0, m = wsa__b64url_encode(in, len, enc);

		CHECK_INT(m, wsa__b64url_encoded_len(len));
		CHECK_STR(enc, ref);
		CHECK_INT(wsa__b64url_decode(enc, m, out, &n), 0);
		CHECK_INT(n, len);
		CHECK_INT(wsa__b64url_decoded_len(m), len);
		CHECK(memcmp(in, out, len) == 0);
		free(ref);
	}
}

static void test_b64url_strict(void)
{
	static const char *const bad[] = {
	    "A",    "AAAAA",  "AA=",	 "AA==",  "AAA=", "A+AA",
	    "A/AA", "AA A",   "AA.A",	 "AA\nA", "AA!A", "AB",
	    "AAB",  "AAAAAB", "AAAAAAB", "Zg=",	  "Zh",
	};
	unsigned char out[16];
	size_t n = 0;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = b64_decode(bad[i], out, &n);

		CHECK_INT(rc, -1);
		if (rc != -1)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
	}
	/* An embedded NUL is outside the alphabet too. */
	CHECK_INT(wsa__b64url_decode("AA\0A", 4, out, &n), -1);
	CHECK_INT(b64_decode("", out, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(b64_decode("Zg", out, &n), 0);
	CHECK(n == 1 && out[0] == 'f');
	CHECK_INT(b64_decode("AAE", out, &n), 0);
	CHECK(n == 2 && out[0] == 0 && out[1] == 1);
	CHECK_INT(b64_decode("-_-_", out, &n), 0);
	CHECK(n == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
	/* Every byte, in each place of a whole group and of a tail: only
	 * the alphabet's decode. */
	for (int b = 0; b < 256; b++) {
		bool in = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
			  (b >= '0' && b <= '9') || b == '-' || b == '_';

		for (size_t at = 0; at < 7; at++) {
			char s[7] = {'A', 'A', 'A', 'A', 'A', 'A', 'A'};

			s[at] = (char)b;
			/* The tail's last character must leave zero bits:
			 * 'A' there, the byte elsewhere. */
			if (at == 6)
				continue;
			CHECK_INT(wsa__b64url_decode(s, 7, out, &n),
				  in ? 0 : -1);
		}
	}
}

/* ---------------------------------------------------------- algorithms */

/* One algorithm end to end: a kid-less key, a good token, its claims. */
static void check_alg(const char *alg, const char *key, EVP_PKEY *priv)
{
	wsa_jwt *jwt = verifier(alg, key);
	json_t *claims = NULL;
	char *tok = tok_make(NULL, good(), alg, key, strlen(key), priv);
	int rc = verify_claims(jwt, tok, &claims);

	CHECK_INT(rc, WSA_OK);
	if (rc)
		fprintf(stderr, "  alg %s: %s\n", alg, wsa_strerror(rc));
	CHECK_STR(json_string_value(json_object_get(claims, "sub")), "alice");
	json_decref(claims);
	/* A changed payload byte breaks the signature. */
	tok = tok_make(NULL, good(), alg, key, strlen(key), priv);
	CHECK_INT(verify(jwt, poke(tok, dot(tok, 0) + 3, 'Q')),
		  WSA_ETOKEN_SIGNATURE);
	wsa_jwt_free(jwt);
}

static void test_algorithms(void)
{
	check_alg("HS256", S32, NULL);
	check_alg("HS384", S48, NULL);
	check_alg("HS512", S64, NULL);
	check_alg("RS256", rsa_pem, rsa2048);
	check_alg("RS384", rsa_pem, rsa2048);
	check_alg("RS512", rsa_pem, rsa2048);
	check_alg("ES256", ec256_pem, ec256);
	check_alg("ES384", ec384_pem, ec384);
	check_alg("ES512", ec521_pem, ec521);
}

/* A signature byte changed, for each family. */
static void test_bad_signatures(void)
{
	struct {
		const char *alg, *key;
		EVP_PKEY *priv;
	} c[] = {{"HS256", S32, NULL},
		 {"RS256", rsa_pem, rsa2048},
		 {"ES256", ec256_pem, ec256}};

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		wsa_jwt *jwt = verifier(c[i].alg, c[i].key);
		char *tok = tok_make(NULL, good(), c[i].alg, c[i].key,
				     strlen(c[i].key), c[i].priv);
		size_t s = dot(tok, 1) + 2;

		CHECK_INT(verify(jwt, poke(tok, s, tok[s] == 'A' ? 'B' : 'A')),
			  WSA_ETOKEN_SIGNATURE);
		wsa_jwt_free(jwt);
	}
}

/* The signature with alg of header h and the good() payload; the ES
 * form is DER when der is true. */
static unsigned char *sign_good(const char *alg, const char *h, const void *key,
				size_t keylen, EVP_PKEY *priv, bool der,
				size_t *n)
{
	char *tok = tok_join(h, good(), "", 0);
	unsigned char *sig = NULL;

	/* tok_join left "h.p." : sign what comes before the last dot. */
	if (tok)
		sig = tok_sign(alg, tok, strlen(tok) - 1, key, keylen, priv,
			       der, n);
	free(tok);
	return sig;
}

/* Verify header h, the good() payload and the siglen bytes of sig cut
 * or padded with zeros to n bytes: the length must be exact, neither a
 * prefix nor an extension. */
static int verify_sig(const wsa_jwt *jwt, const char *h,
		      const unsigned char *sig, size_t siglen, size_t n)
{
	unsigned char buf[600] = {0};

	if (!sig || n > sizeof buf)
		return MINT_FAILED;
	memcpy(buf, sig, siglen < n ? siglen : n);
	return verify(jwt, tok_join(h, good(), buf, n));
}

static void test_hs_length(void)
{
	const char *h = "{\"alg\":\"HS256\"}";
	wsa_jwt *jwt = verifier("HS256", S32);
	size_t n = 0;
	unsigned char *sig = sign_good("HS256", h, S32, 32, NULL, false, &n);

	CHECK_INT(n, 32);
	CHECK_INT(verify_sig(jwt, h, sig, n, 32), WSA_OK);
	CHECK_INT(verify_sig(jwt, h, sig, n, 31), WSA_ETOKEN_SIGNATURE);
	CHECK_INT(verify_sig(jwt, h, sig, n, 33), WSA_ETOKEN_SIGNATURE);
	free(sig);
	wsa_jwt_free(jwt);
}

static void test_rs_length(void)
{
	const char *h = "{\"alg\":\"RS256\"}";
	wsa_jwt *jwt = verifier("RS256", rsa_pem);
	size_t n = 0;
	unsigned char *sig = sign_good("RS256", h, NULL, 0, rsa2048, false, &n);

	CHECK_INT(n, 256);
	CHECK_INT(verify_sig(jwt, h, sig, n, 256), WSA_OK);
	CHECK_INT(verify_sig(jwt, h, sig, n, 255), WSA_ETOKEN_SIGNATURE);
	CHECK_INT(verify_sig(jwt, h, sig, n, 257), WSA_ETOKEN_SIGNATURE);
	CHECK_INT(verify_sig(jwt, h, sig, n, 64), WSA_ETOKEN_SIGNATURE);
	free(sig);
	wsa_jwt_free(jwt);
}

/* ES signatures: raw R||S of exactly 64 bytes for ES256; the DER form
 * OpenSSL produces is refused. */
static void test_es_length(void)
{
	const char *h = "{\"alg\":\"ES256\"}";
	wsa_jwt *jwt = verifier("ES256", ec256_pem);
	size_t n = 0, dn = 0;
	unsigned char *sig = sign_good("ES256", h, NULL, 0, ec256, false, &n);
	unsigned char *der = sign_good("ES256", h, NULL, 0, ec256, true, &dn);

	CHECK_INT(n, 64);
	CHECK_INT(verify_sig(jwt, h, sig, n, 64), WSA_OK);
	CHECK_INT(verify_sig(jwt, h, sig, n, 63), WSA_ETOKEN_SIGNATURE);
	CHECK_INT(verify_sig(jwt, h, sig, n, 65), WSA_ETOKEN_SIGNATURE);
	CHECK(dn > 64);
	CHECK_INT(verify_sig(jwt, h, der, dn, dn), WSA_ETOKEN_SIGNATURE);
	free(sig);
	free(der);
	wsa_jwt_free(jwt);
}

/* -------------------------------------------------------------- claims */

static void test_exp(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	const char *e = "{\"sub\":\"a\",\"exp\":%lld}";

	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\"}")), WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(jwt, hs(NULL, at(e, -1))), WSA_ETOKEN_EXPIRED);
	CHECK_INT(verify(jwt, hs(NULL, at(e, 60))), WSA_OK);
	/* RFC 7519: valid while now < exp; at exp itself it has expired. */
	CHECK_INT(verify_at(jwt, hs(NULL, at(e, 0)), now), WSA_ETOKEN_EXPIRED);
	CHECK_INT(verify_at(jwt, hs(NULL, at(e, 0)), now - 1), WSA_OK);
	CHECK_INT(
	    verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":\"%lld\"}", 60))),
	    WSA_ETOKEN_CLAIMS);
	CHECK_INT(
	    verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld.5}", 60))),
	    WSA_OK);
	CHECK_INT(verify_at(jwt,
			    hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld.5}", 0)),
			    now + 1),
		  WSA_ETOKEN_EXPIRED);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":null}")),
		  WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":true}")),
		  WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":[1]}")),
		  WSA_ETOKEN_CLAIMS);
	/* The leeway widens the window by exactly its length. */
	wsa_jwt_set_leeway(jwt, 10);
	CHECK_INT(verify_at(jwt, hs(NULL, at(e, -9)), now), WSA_OK);
	CHECK_INT(verify_at(jwt, hs(NULL, at(e, -10)), now),
		  WSA_ETOKEN_EXPIRED);
	wsa_jwt_set_leeway(jwt, 0);
	wsa_jwt_set_require_exp(jwt, false);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\"}")), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at(e, -1))), WSA_ETOKEN_EXPIRED);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":\"x\"}")),
		  WSA_ETOKEN_CLAIMS);
	wsa_jwt_free(jwt);
}

static void test_nbf_iat(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	const char *n = "{\"sub\":\"a\",\"exp\":9999999999,\"nbf\":%lld}";
	const char *i = "{\"sub\":\"a\",\"exp\":9999999999,\"iat\":%lld}";

	CHECK_INT(verify_at(jwt, hs(NULL, at(n, 1)), now),
		  WSA_ETOKEN_NOT_YET_VALID);
	CHECK_INT(verify_at(jwt, hs(NULL, at(n, 0)), now), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at(n, 3600))), WSA_ETOKEN_NOT_YET_VALID);
	CHECK_INT(verify(jwt, hs(NULL, at(n, -5))), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":9999999999,"
				       "\"nbf\":\"0\"}")),
		  WSA_ETOKEN_CLAIMS);
	wsa_jwt_set_leeway(jwt, 10);
	CHECK_INT(verify_at(jwt, hs(NULL, at(n, 10)), now), WSA_OK);
	CHECK_INT(verify_at(jwt, hs(NULL, at(n, 11)), now),
		  WSA_ETOKEN_NOT_YET_VALID);
	CHECK_INT(verify(jwt, hs(NULL, at(i, 0))), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at(i, 0.5))), WSA_OK);
	/* Issued in the future beyond the leeway: not yet valid (revocation
	 * by iat could never reach it). */
	CHECK_INT(verify_at(jwt, hs(NULL, at(i, 10)), now), WSA_OK);
	CHECK_INT(verify_at(jwt, hs(NULL, at(i, 11)), now),
		  WSA_ETOKEN_NOT_YET_VALID);
	CHECK_INT(verify(jwt, hs(NULL, at(i, 3600))), WSA_ETOKEN_NOT_YET_VALID);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":9999999999,"
				       "\"iat\":\"now\"}")),
		  WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(jwt, hs(NULL, "{\"sub\":\"a\",\"exp\":9999999999,"
				       "\"iat\":{}}")),
		  WSA_ETOKEN_CLAIMS);
	wsa_jwt_free(jwt);
}

static void test_iss_aud(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	const char *p = "{\"sub\":\"a\",\"exp\":%lld,"
			"\"iss\":\"https://id.example\",\"aud\":\"api\"}";

	CHECK_INT(verify(jwt, hs(NULL, at(p, 60))), WSA_OK);
	CHECK_INT(wsa_jwt_set_issuer(jwt, "https://id.example"), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at(p, 60))), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_ETOKEN_ISSUER);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"iss\":\"https://id.example/\"}",
					  60))),
		  WSA_ETOKEN_ISSUER);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"iss\":[\"https://id.example\"]}",
					  60))),
		  WSA_ETOKEN_ISSUER);
	CHECK_INT(wsa_jwt_set_issuer(jwt, NULL), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);

	CHECK_INT(wsa_jwt_set_audience(jwt, "api"), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at(p, 60))), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_ETOKEN_AUDIENCE);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"aud\":[\"web\",\"api\"]}",
					  60))),
		  WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"aud\":[\"web\",\"apis\",1]}",
					  60))),
		  WSA_ETOKEN_AUDIENCE);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"aud\":\"API\"}",
					  60))),
		  WSA_ETOKEN_AUDIENCE);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"aud\":[]}",
					  60))),
		  WSA_ETOKEN_AUDIENCE);
	wsa_jwt_free(jwt);
}

static void test_identity(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	json_t *claims = NULL;

	CHECK_INT(verify_claims(jwt,
				hs(NULL, at("{\"uid\":\"u1\",\"sub\":\"\","
					    "\"email\":\"u1@example.org\","
					    "\"exp\":%lld}",
					    60)),
				&claims),
		  WSA_OK);
	CHECK_STR(json_string_value(json_object_get(claims, "uid")), "u1");
	json_decref(claims);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"uid\":\"\",\"sub\":\"alice\","
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"uid\":7,\"sub\":\"alice\","
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"uid\":null,\"exp\":%lld}", 60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"\",\"exp\":%lld}", 60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":42,\"exp\":%lld}", 60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"exp\":%lld}", 60))),
		  WSA_ETOKEN_IDENTITY);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"email\":5,"
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"email\":null,"
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_CLAIMS);
	wsa_jwt_free(jwt);
}

/* ----------------------------------------- what libjwt alone accepts */

static void test_alg_none(void)
{
	static const char *const names[] = {"none", "None", "NONE", "nOnE"};
	wsa_jwt *jwt = verifier("HS256", S32);
	char h[64];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(h, sizeof h, "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
			 names[i]);
		/* "h.p." has an empty segment; with any signature at all, the
		 * algorithm is what refuses it. */
		CHECK_INT(
		    verify(jwt, tok_make(h, good(), "none", NULL, 0, NULL)),
		    WSA_ETOKEN_FORMAT);
		CHECK_INT(verify(jwt, hs(h, good())), WSA_ETOKEN_ALG);
	}
	wsa_jwt_free(jwt);
}

static void test_alg_confusion(void)
{
	wsa_jwt *jwt = verifier("HS256", S64);
	wsa_jwt *rs = verifier("RS256", rsa_pem);
	wsa_jwt *es = verifier("ES256", ec256_pem);

	/* HS512 with the secret pinned to HS256. */
	CHECK_INT(verify(jwt, tok_make(NULL, good(), "HS512", S64, 64, NULL)),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"hs256\"}", good())),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"HS256 \"}", good())),
		  WSA_ETOKEN_ALG);
	/* An HMAC keyed with the bytes of the public key PEM. */
	CHECK_INT(verify(rs, tok_make(NULL, good(), "HS256", rsa_pem,
				      strlen(rsa_pem), NULL)),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(es, tok_make(NULL, good(), "HS256", ec256_pem,
				      strlen(ec256_pem), NULL)),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(rs, tok_make(NULL, good(), "RS384", NULL, 0, rsa2048)),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(es, tok_make(NULL, good(), "ES384", NULL, 0, ec384)),
		  WSA_ETOKEN_ALG);
	/* ES256 in the header, signed by a P-384 key: the tie between curve
	 * and algorithm holds at verification too. */
	CHECK_INT(verify(es, tok_make("{\"alg\":\"ES256\"}", good(), "ES256",
				      NULL, 0, ec384)),
		  WSA_ETOKEN_SIGNATURE);
	wsa_jwt_free(jwt);
	wsa_jwt_free(rs);
	wsa_jwt_free(es);
}

/* Junk inserted into each segment of a good token. */
static void test_junk(void)
{
	static const char *const junk[] = {"!", " ", "\n", "+", "/",
					   "=", "%", "\t", "~", "\x80"};
	wsa_jwt *jwt = verifier("HS256", S32);
	char *tok = hs(NULL, good());
	size_t at3[3];

	at3[0] = 5;
	at3[1] = dot(tok, 0) + 5;
	at3[2] = dot(tok, 1) + 5;
	free(tok);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);
	for (size_t s = 0; s < 3; s++)
		for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++)
			CHECK_INT(verify(jwt, insert(hs(NULL, good()), at3[s],
						     junk[j])),
				  WSA_ETOKEN_FORMAT);
	wsa_jwt_free(jwt);
}

/* '=' padding, and a last character with unused bits set. */
static void test_canonical(void)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *h = "{\"alg\":\"HS256\",\"x\":12}";
	wsa_jwt *jwt = verifier("HS256", S32);
	char *tok = hs(h, good());
	size_t end = strlen(tok), h_end = dot(tok, 0);
	size_t vs = (size_t)(strchr(a, tok[end - 1]) - a);
	size_t vh = (size_t)(strchr(a, tok[h_end - 1]) - a);

	/* The 22-byte header is 30 characters, its last one with 4 unused
	 * bits; the 32-byte HMAC is 43, its last one with 2. */
	CHECK_INT(h_end % 4, 2);
	CHECK_INT((end - dot(tok, 1) - 1) % 4, 3);
	CHECK_INT(verify(jwt, hs(h, good())), WSA_OK);
	CHECK_INT(verify(jwt, insert(hs(h, good()), end, "=")),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, insert(hs(h, good()), h_end, "==")),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, poke(hs(h, good()), end - 1, a[vs ^ 1])),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, poke(hs(h, good()), end - 1, a[vs ^ 2])),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, poke(hs(h, good()), h_end - 1, a[vh ^ 1])),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, poke(hs(h, good()), h_end - 1, a[vh ^ 8])),
		  WSA_ETOKEN_FORMAT);
	free(tok);
	wsa_jwt_free(jwt);
}

/* A malloc'd printf. */
__attribute__((format(printf, 1, 2), nonnull(1))) static char *
fmt(const char *f, ...)
{
	va_list ap;
	char *out, probe[1];
	int n;

	va_start(ap, f);
	n = vsnprintf(probe, sizeof probe, f, ap);
	va_end(ap);
	out = malloc((size_t)n + 1);
	va_start(ap, f);
	if (out)
		vsnprintf(out, (size_t)n + 1, f, ap);
	va_end(ap);
	return out;
}

static void test_segments(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	char *tok = hs(NULL, good());
	size_t d0 = dot(tok, 0), d1 = dot(tok, 1);
	char *h = fmt("%.*s", (int)d0, tok);
	char *p = fmt("%.*s", (int)(d1 - d0 - 1), tok + d0 + 1);
	char *s = fmt("%s", tok + d1 + 1);

	CHECK_INT(verify(jwt, fmt("%s.%s.%s", h, p, s)), WSA_OK);
	CHECK_INT(verify(jwt, fmt(".%s.%s", p, s)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s..%s", h, s)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s.%s.", h, p)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s.%s", h, p)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s.%s", p, s)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s.%s.%s.%s", h, p, s, s)),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s.%s.%s.", h, p, s)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s%s%s", h, p, s)), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("%s", "")), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("..")), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, fmt("...")), WSA_ETOKEN_FORMAT);
	free(h);
	free(p);
	free(s);
	free(tok);
	wsa_jwt_free(jwt);
}

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A token of n bytes: three segments of 'A's (FORMAT once decoded). */
static char *huge(size_t n)
{
	char *t = malloc(n + 1);

	if (!t)
		return NULL;
	memset(t, 'A', n);
	t[100] = t[200] = '.';
	t[n] = '\0';
	return t;
}

static void test_size(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	char *tok = hs(NULL, good()), *big = huge(10 << 20), *sig;
	size_t n = strlen(tok);
	double t0;

	wsa_jwt_set_max_size(jwt, n);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);
	wsa_jwt_set_max_size(jwt, n - 1);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_ETOKEN_SIZE);
	wsa_jwt_set_max_size(jwt, 0);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);
	/* Ten megabytes: refused before a single byte is looked at. */
	t0 = seconds();
	CHECK_INT(wsa_jwt_verify(jwt, big, 10 << 20, NULL), WSA_ETOKEN_SIZE);
	CHECK(seconds() - t0 < 0.01);
	/* Let it in: decoded on the heap, refused, nothing overflows. */
	wsa_jwt_set_max_size(jwt, 16 << 20);
	CHECK_INT(wsa_jwt_verify(jwt, big, 10 << 20, NULL), WSA_ETOKEN_FORMAT);
	sig = fmt("%s%s", tok, big + 201);
	CHECK_INT(verify(jwt, sig), WSA_ETOKEN_SIGNATURE);
	/* A good token too large for the stack buffer. */
	memset(big, 'x', 4000);
	big[4000] = '\0';
	sig = fmt("{\"sub\":\"a\",\"exp\":%lld,\"pad\":\"%s\"}",
		  (long long)now + 60, big);
	CHECK_INT(verify(jwt, hs(NULL, sig)), WSA_OK);
	free(sig);
	free(big);
	free(tok);
	wsa_jwt_free(jwt);
}

/* A token whose payload is n bytes at pay, raw, NULs included. */
static char *raw_payload_token(const char *pay, size_t n)
{
	char h[64], *p = malloc(wsa__b64url_encoded_len(n) + 1), *in, *tok;
	unsigned char *sig;
	size_t siglen = 0;

	if (!p)
		return NULL;
	wsa__b64url_encode("{\"alg\":\"HS256\"}", 15, h);
	wsa__b64url_encode(pay, n, p);
	in = fmt("%s.%s", h, p);
	sig = tok_sign("HS256", in, strlen(in), S32, 32, NULL, false, &siglen);
	free(p);
	p = tok_b64url(sig, siglen);
	tok = fmt("%s.%s", in, p);
	free(in);
	free(sig);
	free(p);
	return tok;
}

/* Duplicate member names, and header or payload that are no object. */
static void test_json(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);

	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);
	CHECK_INT(
	    verify(jwt, hs("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", good())),
	    WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"sub\":\"b\","
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"o\":{\"k\":1,\"k\":2}}",
					  60))),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, "[\"sub\",\"alice\"]")),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, "\"alice\"")), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, "null")), WSA_ETOKEN_FORMAT);
	CHECK_INT(
	    verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld} x", 60))),
	    WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs("[\"HS256\"]", good())), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs("\"HS256\"", good())), WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs("alg=HS256", good())), WSA_ETOKEN_FORMAT);
	wsa_jwt_free(jwt);
}

/* NUL characters and bytes that are not UTF-8, in any string. */
static void test_json_nul(void)
{
	wsa_jwt *jwt = verifier("HS256", S32);
	static const char nul[] = "{\"sub\":\"a\0\",\"exp\":9999999999}";
	static const char ok[] = "{\"sub\":\"a\",\"exp\":9999999999}";

	/* NUL characters in strings, escaped, anywhere. */
	CHECK_INT(
	    verify(jwt, hs("{\"alg\":\"HS256\",\"x\":\"a\\u0000b\"}", good())),
	    WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"al\\u0000ice\","
					  "\"exp\":%lld}",
					  60))),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"s\\u0000\":1}",
					  60))),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"a\",\"exp\":%lld,"
					  "\"l\":[{\"x\":[\"\\u0000\"]}]}",
					  60))),
		  WSA_ETOKEN_FORMAT);
	/* A raw NUL byte, and bytes that are not UTF-8. */
	CHECK_INT(verify(jwt, raw_payload_token(nul, sizeof nul - 1)),
		  WSA_ETOKEN_FORMAT);
	CHECK_INT(
	    verify(jwt, hs(NULL, at("{\"sub\":\"\xff\",\"exp\":%lld}", 60))),
	    WSA_ETOKEN_FORMAT);
	/* The same shapes without the fault pass. */
	CHECK_INT(verify(jwt, raw_payload_token(ok, sizeof ok - 1)), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, at("{\"sub\":\"al\\u0001ice\","
					  "\"exp\":%lld,\"o\":{\"k\":1}}",
					  60))),
		  WSA_OK);
	wsa_jwt_free(jwt);
}

static void test_header(void)
{
	static const char *const refused[] = {
	    "\"crit\":[\"exp\"]",
	    "\"crit\":[]",
	    "\"jku\":\"https://evil.example/keys\"",
	    "\"jwk\":{}",
	    "\"x5u\":\"https://evil.example/cert\"",
	    "\"x5c\":[\"AAAA\"]",
	};
	wsa_jwt *jwt = verifier("HS256", S32);
	char h[128];

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		snprintf(h, sizeof h, "{\"alg\":\"HS256\",%s}", refused[i]);
		CHECK_INT(verify(jwt, hs(h, good())), WSA_ETOKEN_HEADER);
	}
	CHECK_INT(verify(jwt, hs("{\"typ\":\"JWT\"}", good())),
		  WSA_ETOKEN_HEADER);
	CHECK_INT(verify(jwt, hs("{\"alg\":256}", good())), WSA_ETOKEN_HEADER);
	CHECK_INT(verify(jwt, hs("{\"alg\":null}", good())), WSA_ETOKEN_HEADER);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"HS256\"}", good())), WSA_OK);
	CHECK_INT(
	    verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", good())),
	    WSA_ETOKEN_HEADER);
	CHECK_INT(
	    verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", good())),
	    WSA_ETOKEN_HEADER);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":1}", good())),
		  WSA_ETOKEN_HEADER);
	CHECK_INT(wsa_jwt_set_typ(jwt, "at+jwt"), WSA_OK);
	CHECK_INT(
	    verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", good())),
	    WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_ETOKEN_HEADER);
	CHECK_INT(wsa_jwt_set_typ(jwt, NULL), WSA_OK);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":\"x\"}", good())),
		  WSA_OK);
	CHECK_INT(verify(jwt, hs("{\"alg\":\"HS256\",\"typ\":7}", good())),
		  WSA_OK);
	wsa_jwt_free(jwt);
}

/* A token with header {"alg":alg,"kid":kid}. */
static char *with_kid(const char *kid, const char *alg, const void *key,
		      size_t keylen, EVP_PKEY *priv)
{
	char h[128];

	snprintf(h, sizeof h, "{\"alg\":\"%s\",\"kid\":%s}", alg, kid);
	return tok_make(h, good(), alg, key, keylen, priv);
}

static void test_kid(void)
{
	wsa_jwt *jwt = NULL, *one = verifier("HS256", S32);

	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(add(jwt, "a", "HS256", S32), WSA_OK);
	CHECK_INT(add(jwt, "b", "RS256", rsa_pem), WSA_OK);
	CHECK_INT(add(jwt, "c", "ES256", ec256_pem), WSA_OK);
	CHECK_INT(verify(jwt, with_kid("\"a\"", "HS256", S32, 32, NULL)),
		  WSA_OK);
	CHECK_INT(verify(jwt, with_kid("\"b\"", "RS256", NULL, 0, rsa2048)),
		  WSA_OK);
	CHECK_INT(verify(jwt, with_kid("\"c\"", "ES256", NULL, 0, ec256)),
		  WSA_OK);
	CHECK_INT(verify(jwt, with_kid("\"d\"", "HS256", S32, 32, NULL)),
		  WSA_ETOKEN_KID);
	CHECK_INT(verify(jwt, with_kid("\"A\"", "HS256", S32, 32, NULL)),
		  WSA_ETOKEN_KID);
	CHECK_INT(verify(jwt, with_kid("\"\"", "HS256", S32, 32, NULL)),
		  WSA_ETOKEN_KID);
	CHECK_INT(verify(jwt, with_kid("7", "HS256", S32, 32, NULL)),
		  WSA_ETOKEN_KID);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_ETOKEN_KID);
	/* The kid picks the key, and the key's algorithm is the only one. */
	CHECK_INT(verify(jwt, with_kid("\"b\"", "HS256", S32, 32, NULL)),
		  WSA_ETOKEN_ALG);
	CHECK_INT(verify(jwt, with_kid("\"a\"", "HS256", S48, 48, NULL)),
		  WSA_ETOKEN_SIGNATURE);
	CHECK_INT(verify(jwt, with_kid("\"c\"", "ES256", NULL, 0, ec256b)),
		  WSA_ETOKEN_SIGNATURE);
	/* One kid-less key: the token's kid, whatever it is, is ignored. */
	CHECK_INT(verify(one, with_kid("\"zzz\"", "HS256", S32, 32, NULL)),
		  WSA_OK);
	CHECK_INT(verify(one, with_kid("[1]", "HS256", S32, 32, NULL)), WSA_OK);
	wsa_jwt_free(jwt);
	wsa_jwt_free(one);
}

/* A 2048-bit RSA key restricted to PSS, which RS* (PKCS#1 v1.5) must not
 * take. */
static EVP_PKEY *gen_rsa_pss(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
	EVP_PKEY *pkey = NULL;

	if (ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1)
		EVP_PKEY_generate(ctx, &pkey);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* Arguments, algorithms and secrets the verifier must refuse; each leaves
 * it without keys. */
static void test_key_args(void)
{
	static const char *const algs[] = {"none",  "hs256", "HS256 ",
					   "PS256", "",	     "HS1024",
					   "EdDSA", "ES256K"};
	wsa_jwt *jwt = NULL;

	CHECK_INT(wsa_jwt_new(NULL), WSA_EINVAL);
	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(add(NULL, NULL, "HS256", S32), WSA_EINVAL);
	CHECK_INT(add(jwt, NULL, NULL, S32), WSA_EINVAL);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", NULL, 32), WSA_EINVAL);
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		CHECK_INT(add(jwt, NULL, algs[i], S64), WSA_EALG);
	CHECK_INT(add(jwt, NULL, "HS256", ""), WSA_EKEY);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", NULL, 0), WSA_EKEY);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", S32, 31), WSA_EKEY);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS384", S48, 47), WSA_EKEY);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS512", S64, 63), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "HS256", rsa_pem), WSA_EKEY);
	/* Nothing was added: a verifier without keys verifies nothing. */
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_EINVAL);
	CHECK_INT(add(jwt, NULL, "HS256", S32), WSA_OK);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_OK);
	wsa_jwt_free(jwt);
}

/* Public keys the verifier must refuse: unreadable, too weak, of the
 * wrong type or curve, or private. */
static void test_key_pems(void)
{
	wsa_jwt *jwt = NULL;
	char *priv = tok_privkey_pem(ec256), *rpriv = tok_privkey_pem(rsa2048);
	char *both = fmt("%s%s", priv, ec256_pem);
	EVP_PKEY *pss = gen_rsa_pss();
	char *pss_pem = tok_pubkey_pem(pss);

	CHECK(pss_pem != NULL);
	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(add(jwt, NULL, "RS256", ""), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", "not a key at all"), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", S64), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256",
		      "-----BEGIN PUBLIC KEY-----\nAAAA\n"
		      "-----END PUBLIC KEY-----\n"),
		  WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", rsa1024_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", pss_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", ec256_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES256", rsa_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES256", ec384_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES384", ec256_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES384", ec521_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES512", ec384_pem), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES256", priv), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "ES256", both), WSA_EKEY);
	CHECK_INT(add(jwt, NULL, "RS256", rpriv), WSA_EKEY);
	CHECK_INT(verify(jwt, hs(NULL, good())), WSA_EINVAL);
	free(priv);
	free(rpriv);
	free(both);
	free(pss_pem);
	EVP_PKEY_free(pss);
	wsa_jwt_free(jwt);
}

/* The smallest secrets and keys that are allowed. */
static void test_key_limits(void)
{
	static const char *const a[] = {"HS256", "HS384", "HS512", "HS256"};
	static const char *const k[] = {S32, S48, S64, S64};

	for (size_t i = 0; i < 4; i++) {
		wsa_jwt *jwt = verifier(a[i], k[i]);

		CHECK_INT(verify(jwt, tok_make(NULL, good(), a[i], k[i],
					       strlen(k[i]), NULL)),
			  WSA_OK);
		wsa_jwt_free(jwt);
	}
}

static void test_kid_rules(void)
{
	wsa_jwt *one = verifier("HS256", S32), *many = NULL;

	CHECK_INT(add(one, NULL, "HS384", S48), WSA_EKID);
	CHECK_INT(add(one, "a", "HS256", S32), WSA_EKID);
	CHECK_INT(wsa_jwt_new(&many), WSA_OK);
	CHECK_INT(add(many, "", "HS256", S32), WSA_EKID);
	CHECK_INT(add(many, "a", "HS256", S32), WSA_OK);
	CHECK_INT(add(many, NULL, "HS256", S32), WSA_EKID);
	CHECK_INT(add(many, "a", "ES256", ec256_pem), WSA_EKID);
	CHECK_INT(add(many, "b", "ES256", ec256_pem), WSA_OK);
	CHECK_INT(add(many, "", "HS256", S32), WSA_EKID);
	/* The failures changed nothing. */
	CHECK_INT(verify(one, hs(NULL, good())), WSA_OK);
	CHECK_INT(verify(many, with_kid("\"a\"", "HS256", S32, 32, NULL)),
		  WSA_OK);
	CHECK_INT(verify(many, with_kid("\"b\"", "ES256", NULL, 0, ec256)),
		  WSA_OK);
	wsa_jwt_free(one);
	wsa_jwt_free(many);
}

static void test_setters(void)
{
	json_t *claims = (json_t *)&claims;
	wsa_jwt *jwt = verifier("HS256", S32);
	char *tok = hs(NULL, good()), *copy = fmt("%s.trailing", tok);

	CHECK_INT(wsa_jwt_set_issuer(NULL, "x"), WSA_EINVAL);
	CHECK_INT(wsa_jwt_set_audience(NULL, "x"), WSA_EINVAL);
	CHECK_INT(wsa_jwt_set_typ(NULL, "x"), WSA_EINVAL);
	wsa_jwt_set_leeway(NULL, 1);
	wsa_jwt_set_require_exp(NULL, false);
	wsa_jwt_set_max_size(NULL, 1);
	wsa_jwt_free(NULL);
	CHECK_INT(wsa_jwt_verify(NULL, tok, strlen(tok), NULL), WSA_EINVAL);
	CHECK_INT(wsa_jwt_verify(jwt, NULL, 0, &claims), WSA_EINVAL);
	CHECK(claims == NULL);
	/* len bounds the token: what follows is not read. */
	CHECK_INT(wsa_jwt_verify(jwt, copy, strlen(tok), &claims), WSA_OK);
	CHECK(json_is_object(claims));
	json_decref(claims);
	CHECK_INT(wsa_jwt_verify(jwt, copy, strlen(copy), &claims),
		  WSA_ETOKEN_FORMAT);
	CHECK(claims == NULL);
	free(tok);
	free(copy);
	wsa_jwt_free(jwt);
}

/* --------------------------------------------------- libjwt interop */

/* A token minted by libjwt for alice, expiring in ten minutes if exp. */
static char *libjwt_mint(const char *alg, const char *key, bool exp)
{
	return tok_libjwt(alg, key, strlen(key), "alice", exp ? now + 600 : 0);
}

static void test_libjwt_interop(void)
{
	char *rpriv = tok_privkey_pem(rsa2048), *epriv = tok_privkey_pem(ec256);
	char *e5priv = tok_privkey_pem(ec521);
	wsa_jwt *h = verifier("HS256", S32), *r = verifier("RS256", rsa_pem);
	wsa_jwt *e = verifier("ES256", ec256_pem),
		*e5 = verifier("ES512", ec521_pem);

	CHECK_INT(verify(h, libjwt_mint("HS256", S32, true)), WSA_OK);
	CHECK_INT(verify(r, libjwt_mint("RS256", rpriv, true)), WSA_OK);
	CHECK_INT(verify(e, libjwt_mint("ES256", epriv, true)), WSA_OK);
	CHECK_INT(verify(e5, libjwt_mint("ES512", e5priv, true)), WSA_OK);
	/* Its tokens get our rules too. */
	CHECK_INT(verify(h, libjwt_mint("HS256", S32, false)),
		  WSA_ETOKEN_CLAIMS);
	CHECK_INT(verify(h, libjwt_mint("HS512", S64, true)), WSA_ETOKEN_ALG);
	wsa_jwt_free(h);
	wsa_jwt_free(r);
	wsa_jwt_free(e);
	wsa_jwt_free(e5);
	free(rpriv);
	free(epriv);
	free(e5priv);
}

/* ----------------------------------------------------------- threads */

#define THREADS	   4
#define ROUNDS	   50
#define THREAD_TOK 6

struct work {
	const wsa_jwt *jwt;
	char *const *tok;
	const int *expect;
	int wrong;
};

/* Verify every token ROUNDS times, counting unexpected answers. */
static void *worker(void *arg)
{
	struct work *w = arg;

	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < THREAD_TOK; i++) {
			json_t *claims = NULL;
			int rc = wsa_jwt_verify(w->jwt, w->tok[i],
						strlen(w->tok[i]), &claims);

			if (rc != w->expect[i] ||
			    (rc == 0) != (claims != NULL) ||
			    ERR_peek_error() != 0)
				w->wrong++;
			json_decref(claims);
		}
	return NULL;
}

static void test_threads(void)
{
	static const int expect[THREAD_TOK] = {
	    WSA_OK,	    WSA_OK,
	    WSA_OK,	    WSA_ETOKEN_SIGNATURE,
	    WSA_ETOKEN_KID, WSA_ETOKEN_EXPIRED};
	struct work w[THREADS];
	pthread_t t[THREADS];
	wsa_jwt *jwt = NULL;
	char *tok[THREAD_TOK];

	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(add(jwt, "a", "HS256", S32), WSA_OK);
	CHECK_INT(add(jwt, "b", "RS256", rsa_pem), WSA_OK);
	CHECK_INT(add(jwt, "c", "ES256", ec256_pem), WSA_OK);
	tok[0] = with_kid("\"a\"", "HS256", S32, 32, NULL);
	tok[1] = with_kid("\"b\"", "RS256", NULL, 0, rsa2048);
	tok[2] = with_kid("\"c\"", "ES256", NULL, 0, ec256);
	tok[3] = with_kid("\"c\"", "ES256", NULL, 0, ec256b);
	tok[4] = with_kid("\"x\"", "HS256", S32, 32, NULL);
	tok[5] = tok_make("{\"alg\":\"HS256\",\"kid\":\"a\"}",
			  at("{\"sub\":\"a\",\"exp\":%lld}", -1), "HS256", S32,
			  32, NULL);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct work){jwt, tok, expect, 0};
		CHECK_INT(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(w[i].wrong, 0);
	}
	for (int i = 0; i < THREAD_TOK; i++)
		free(tok[i]);
	wsa_jwt_free(jwt);
}

/* -------------------------------------------------------------- main */

static void make_keys(void)
{
	rsa2048 = tok_gen_rsa(2048);
	rsa1024 = tok_gen_rsa(1024);
	ec256 = tok_gen_ec("P-256");
	ec256b = tok_gen_ec("P-256");
	ec384 = tok_gen_ec("P-384");
	ec521 = tok_gen_ec("P-521");
	rsa_pem = tok_pubkey_pem(rsa2048);
	rsa1024_pem = tok_pubkey_pem(rsa1024);
	ec256_pem = tok_pubkey_pem(ec256);
	ec384_pem = tok_pubkey_pem(ec384);
	ec521_pem = tok_pubkey_pem(ec521);
}

static void free_keys(void)
{
	EVP_PKEY *k[] = {rsa2048, rsa1024, ec256, ec256b, ec384, ec521};
	char *p[] = {rsa_pem, rsa1024_pem, ec256_pem, ec384_pem, ec521_pem};

	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
		EVP_PKEY_free(k[i]);
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		free(p[i]);
}

int main(void)
{
	now = time(NULL);
	make_keys();
	if (!rsa_pem || !rsa1024_pem || !ec256_pem || !ec384_pem ||
	    !ec521_pem || !ec256b) {
		fprintf(stderr, "jwt: cannot make test keys\n");
		return 1;
	}
	test_b64url_roundtrip();
	test_b64url_strict();
	test_algorithms();
	test_bad_signatures();
	test_hs_length();
	test_rs_length();
	test_es_length();
	test_exp();
	test_nbf_iat();
	test_iss_aud();
	test_identity();
	test_alg_none();
	test_alg_confusion();
	test_junk();
	test_canonical();
	test_segments();
	test_size();
	test_json();
	test_json_nul();
	test_header();
	test_kid();
	test_key_args();
	test_key_pems();
	test_key_limits();
	test_kid_rules();
	test_setters();
	test_libjwt_interop();
	test_threads();
	free_keys();
	return check_status("jwt");
}
