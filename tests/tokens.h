/*
 * Minting JSON Web Tokens for tests, with OpenSSL alone: nothing here uses
 * the library under test. Every returned pointer is malloc'd (free() it),
 * keys excepted (EVP_PKEY_free()); NULL means a failure.
 */
#ifndef WSA_TESTS_TOKENS_H
#define WSA_TESTS_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

/* n bytes as unpadded base64url. */
char *tok_b64url(const void *p, size_t n);

/*
 * Sign n bytes with alg: HS256/384/512 with the secret key, keylen;
 * RS256/384/512 and ES256/384/512 with the private key priv. ES*
 * signatures are raw R||S, as JWS has them, or DER when der is true.
 * "none" gives an empty signature. *siglen receives the length.
 */
unsigned char *tok_sign(const char *alg, const void *data, size_t n,
			const void *key, size_t keylen, EVP_PKEY *priv,
			bool der, size_t *siglen);

/* base64url(header_json) "." base64url(payload_json) "." base64url(sig):
 * the JSON texts are used byte for byte. */
char *tok_join(const char *header_json, const char *payload_json,
	       const void *sig, size_t siglen);

/*
 * A compact JWS signed with alg (see tok_sign), whatever the header says.
 * header_json: used byte for byte; NULL for {"alg":"<alg>","typ":"JWT"}.
 */
char *tok_make(const char *header_json, const char *payload_json,
	       const char *alg, const void *key, size_t keylen, EVP_PKEY *priv);

/* tok_make() with the default header, HS256 and a NUL-terminated secret. */
char *tok_hs256(const char *secret, const char *payload_json);

/*
 * A token minted by libjwt (an implementation independent of ours) with
 * the grants "sub" and, when exp is not 0, "exp". alg: "HS256" ... "ES512";
 * key, keylen: the secret, or the PEM private key for RS* and ES*.
 */
char *tok_libjwt(const char *alg, const void *key, size_t keylen,
		 const char *sub, long long exp);

/* A new RSA key of bits bits, or EC key on curve ("P-256", "P-384",
 * "P-521"). */
EVP_PKEY *tok_gen_rsa(int bits);
EVP_PKEY *tok_gen_ec(const char *curve);

/* The public key as a "PUBLIC KEY" PEM, the private key as PKCS#8 PEM. */
char *tok_pubkey_pem(EVP_PKEY *pkey);
char *tok_privkey_pem(EVP_PKEY *pkey);

#endif /* WSA_TESTS_TOKENS_H */
