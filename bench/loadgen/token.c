/* JWT minting with OpenSSL: HS256 (HMAC) and ES256 (ECDSA P-256, the
 * signature converted from DER to the raw R||S that JWS requires). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "token.h"

struct lg_minter {
	const char *fixed;  /* --token */
	const char *secret; /* HS256 */
	EVP_PKEY *pkey;	    /* ES256 */
	long exp;
	char header[64]; /* base64url of the header */
};

/* Unpadded base64url of src into dst (4 * ceil(n / 3) + 1 bytes). */
static void b64url(char *dst, const void *src, size_t n)
{
	int len = EVP_EncodeBlock((unsigned char *)dst, src, (int)n), i;

	while (len > 0 && dst[len - 1] == '=')
		len--;
	dst[len] = 0;
	for (i = 0; i < len; i++) {
		if (dst[i] == '+')
			dst[i] = '-';
		else if (dst[i] == '/')
			dst[i] = '_';
	}
}

static EVP_PKEY *load_p256(const char *file)
{
	FILE *f = fopen(file, "r");
	EVP_PKEY *pk;

	if (!f) {
		perror(file);
		return NULL;
	}
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pk && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256)
		return pk;
	fprintf(stderr, "wsa-loadgen: %s: not a P-256 private key in PEM\n",
		file);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return NULL;
}

struct lg_minter *lg_minter_new(const struct lg_opts *o)
{
	struct lg_minter *m = lg_xcalloc(1, sizeof(*m));
	const char *hdr = o->es256_key ? "{\"alg\":\"ES256\",\"typ\":\"JWT\"}"
				       : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

	m->fixed = o->token;
	m->secret = o->secret ? o->secret : getenv("WSA_JWT_SECRET");
	m->exp = (long)time(NULL) + 3600;
	b64url(m->header, hdr, strlen(hdr));
	if (m->fixed)
		return m;
	if (o->es256_key && !(m->pkey = load_p256(o->es256_key)))
		goto fail;
	if (!m->pkey && (!m->secret || !*m->secret)) {
		fprintf(stderr, "wsa-loadgen: --proto wsa needs --secret, "
				"WSA_JWT_SECRET, --es256-key or --token\n");
		goto fail;
	}
	return m;
fail:
	free(m);
	return NULL;
}

/* ES256 signature of in[0..n) as raw R||S (64 bytes) in out. */
static int sign_es256(EVP_PKEY *pk, const char *in, size_t n,
		      unsigned char *out)
{
	unsigned char der[80];
	const unsigned char *q = der;
	size_t dlen = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	int ok;

	ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) &&
	     EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)in, n) &&
	     (sig = d2i_ECDSA_SIG(NULL, &q, (long)dlen));
	if (ok) {
		ECDSA_SIG_get0(sig, &r, &s);
		ok = BN_bn2binpad(r, out, 32) == 32 &&
		     BN_bn2binpad(s, out + 32, 32) == 32;
	}
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Signs in[0..n) and returns the signature's length in out (64 max). */
static int sign(struct lg_minter *m, const char *in, size_t n,
		unsigned char *out)
{
	unsigned int len = 0;

	if (m->pkey)
		return sign_es256(m->pkey, in, n, out) ? -1 : 64;
	if (!HMAC(EVP_sha256(), m->secret, (int)strlen(m->secret),
		  (const unsigned char *)in, n, out, &len))
		return -1;
	return (int)len;
}

char *lg_mint(struct lg_minter *m, uint32_t index)
{
	char claims[96], body[160], *tok;
	unsigned char sig[64];
	size_t n;
	int slen;

	if (m->fixed)
		return strdup(m->fixed);
	snprintf(claims, sizeof(claims), "{\"uid\":\"bench%u\",\"exp\":%ld}",
		 index, m->exp);
	b64url(body, claims, strlen(claims));
	tok = lg_xrealloc(NULL, strlen(m->header) + strlen(body) + 92);
	n = (size_t)sprintf(tok, "%s.%s", m->header, body);
	slen = sign(m, tok, n, sig);
	if (slen < 0) {
		fprintf(stderr, "wsa-loadgen: signing failed\n");
		exit(1);
	}
	tok[n++] = '.';
	b64url(tok + n, sig, (size_t)slen);
	return tok;
}

void lg_minter_free(struct lg_minter *m)
{
	if (!m)
		return;
	EVP_PKEY_free(m->pkey);
	free(m);
}
