/* Token minting for tests; see tokens.h. Deliberately independent of the
 * library: its own base64url (OpenSSL's base64, then the URL alphabet).
 * It includes libjwt's <jwt.h>, which a file compiled with lib/ on its
 * include path could not reach: lib/jwt.h would shadow it. */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

char *tok_b64url(const void *p, size_t n)
{
	char *out = malloc(4 * (n / 3 + 1) + 1);
	int len;

	if (!out)
		return NULL;
	len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *c = out; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return out;
}

/* The digest of an algorithm name such as "RS384". */
static const EVP_MD *alg_md(const char *alg)
{
	if (strlen(alg) != 5)
		return NULL;
	if (strcmp(alg + 2, "256") == 0)
		return EVP_sha256();
	if (strcmp(alg + 2, "384") == 0)
		return EVP_sha384();
	if (strcmp(alg + 2, "512") == 0)
		return EVP_sha512();
	return NULL;
}

/* Rewrite a DER ECDSA signature in place as R||S, each half as long as
 * the curve's order. */
static bool der_to_raw(EVP_PKEY *priv, unsigned char *sig, size_t *siglen)
{
	const unsigned char *p = sig;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)*siglen);
	int half = (EVP_PKEY_get_bits(priv) + 7) / 8;
	bool ok;

	if (!s)
		return false;
	ok = 2 * half <= (int)*siglen + 8 &&
	     BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, half) == half &&
	     BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + half, half) == half;
	ECDSA_SIG_free(s);
	*siglen = 2 * (size_t)half;
	return ok;
}

/* Sign with a private key; the buffer has room for a raw ES signature. */
static unsigned char *pkey_sign(const EVP_MD *md, EVP_PKEY *priv,
				const void *data, size_t n, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;

	if (ctx && EVP_DigestSignInit(ctx, NULL, md, NULL, priv) == 1 &&
	    EVP_DigestSign(ctx, NULL, siglen, data, n) == 1)
		sig = malloc(*siglen + 16);
	if (sig && EVP_DigestSign(ctx, sig, siglen, data, n) != 1) {
		free(sig);
		sig = NULL;
	}
	EVP_MD_CTX_free(ctx);
	return sig;
}

unsigned char *tok_sign(const char *alg, const void *data, size_t n,
			const void *key, size_t keylen, EVP_PKEY *priv,
			bool der, size_t *siglen)
{
	const EVP_MD *md = alg_md(alg);
	unsigned char *sig;
	unsigned len = 0;

	*siglen = 0;
	if (strcmp(alg, "none") == 0)
		return calloc(1, 1);
	if (!md)
		return NULL;
	if (alg[0] != 'H') {
		sig = pkey_sign(md, priv, data, n, siglen);
		if (sig && alg[0] == 'E' && !der &&
		    !der_to_raw(priv, sig, siglen)) {
			free(sig);
			return NULL;
		}
		return sig;
	}
	sig = malloc(EVP_MAX_MD_SIZE);
	if (sig && !HMAC(md, key, (int)keylen, data, n, sig, &len)) {
		free(sig);
		return NULL;
	}
	*siglen = len;
	return sig;
}

/* a "." b, consuming neither. */
static char *join2(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *out = malloc(n);

	if (out)
		snprintf(out, n, "%s.%s", a, b);
	return out;
}

/* base64url(header) "." base64url(payload), what the signature covers. */
static char *signing_input(const char *header_json, const char *payload_json)
{
	char *h = tok_b64url(header_json, strlen(header_json));
	char *p = tok_b64url(payload_json, strlen(payload_json));
	char *out = h && p ? join2(h, p) : NULL;

	free(h);
	free(p);
	return out;
}

/* input "." base64url(sig); frees input. */
static char *append_sig(char *input, const void *sig, size_t siglen)
{
	char *s = input ? tok_b64url(sig, siglen) : NULL;
	char *out = s ? join2(input, s) : NULL;

	free(s);
	free(input);
	return out;
}

char *tok_join(const char *header_json, const char *payload_json,
	       const void *sig, size_t siglen)
{
	return append_sig(signing_input(header_json, payload_json), sig,
			  siglen);
}

char *tok_make(const char *header_json, const char *payload_json,
	       const char *alg, const void *key, size_t keylen, EVP_PKEY *priv)
{
	char header[128], *input, *out;
	unsigned char *sig = NULL;
	size_t siglen = 0;

	if (!header_json) {
		snprintf(header, sizeof header,
			 "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
		header_json = header;
	}
	input = signing_input(header_json, payload_json);
	if (input)
		sig = tok_sign(alg, input, strlen(input), key, keylen, priv,
			       false, &siglen);
	if (!sig) {
		free(input);
		return NULL;
	}
	out = append_sig(input, sig, siglen);
	free(sig);
	return out;
}

char *tok_hs256(const char *secret, const char *payload_json)
{
	return tok_make(NULL, payload_json, "HS256", secret, strlen(secret),
			NULL);
}

char *tok_libjwt(const char *alg, const void *key, size_t keylen,
		 const char *sub, long long exp)
{
	jwt_t *j = NULL;
	char *tok = NULL;

	if (jwt_new(&j))
		return NULL;
	if (!jwt_set_alg(j, jwt_str_alg(alg), key, (int)keylen) &&
	    !jwt_add_grant(j, "sub", sub) &&
	    (!exp || !jwt_add_grant_int(j, "exp", (long)exp)))
		tok = jwt_encode_str(j);
	jwt_free(j);
	return tok;
}

EVP_PKEY *tok_gen_rsa(int bits)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *tok_gen_ec(const char *curve)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* The contents of a memory BIO as a string; frees the BIO. */
static char *bio_string(BIO *bio, int ok)
{
	char *data = NULL, *out = NULL;
	long n = ok ? BIO_get_mem_data(bio, &data) : 0;

	if (n > 0 && (out = malloc((size_t)n + 1))) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	return out;
}

char *tok_pubkey_pem(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());

	return bio ? bio_string(bio, PEM_write_bio_PUBKEY(bio, pkey)) : NULL;
}

char *tok_privkey_pem(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());

	return bio ? bio_string(bio, PEM_write_bio_PrivateKey(
					 bio, pkey, NULL, NULL, 0, NULL, NULL))
		   : NULL;
}
