/* wsa-token: mint an HMAC development token for echo-chat.
 *
 *   wsa-token (--secret S | --secret-file FILE) --uid U [--alg ALG]
 *             [--email E] [--ttl SECONDS] [--claim NAME=VALUE]...
 *
 * The secret may also come from WSA_JWT_SECRET. It must pass libwsa's own
 * verifier (wsa_jwt_add_key), so no token is minted that would never log
 * in. The token goes to stdout on one line. Minted with libjwt. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <wsa.h>

#include "mint.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wsa-token (--secret S | --secret-file FILE) --uid U "
		"[--alg HS256|HS384|HS512]\n"
		"       [--email E] [--ttl SECONDS] [--claim NAME=VALUE]...\n"
		"  the secret may also be given in WSA_JWT_SECRET; on the "
		"command line\n"
		"  other users of the machine can read it (ps)\n");
}

/* --claim NAME=VALUE into claims: VALUE as JSON when it parses as JSON
 * (a number, true, an array...), else as a string. The claims the other
 * options make are theirs alone. */
static bool add_claim(json_t *claims, const char *arg)
{
	static const char *const own[] = {"uid", "email", "iat", "exp"};
	const char *eq = strchr(arg, '=');
	char name[256];
	json_t *v;
	size_t i, n = eq ? (size_t)(eq - arg) : 0;

	if (!n || n >= sizeof(name))
		return false;
	memcpy(name, arg, n);
	name[n] = '\0';
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (!strcmp(name, own[i]))
			return false;
	v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	if (!v)
		v = json_string(eq + 1);
	return v && !json_object_set_new(claims, name, v);
}

/* The first line of path, without its line end; malloc'd, or NULL. */
static char *read_secret(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = f ? getline(&line, &cap, f) : -1;

	if (f)
		fclose(f);
	if (n < 0) {
		free(line);
		fprintf(stderr, "wsa-token: cannot read a secret from %s\n",
			path);
		return NULL;
	}
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* Whether libwsa's verifier takes secret for alg: the one rule, not a
 * copy of it. */
static bool secret_ok(const char *alg, const char *secret)
{
	wsa_jwt *v;
	int rc = wsa_jwt_new(&v);

	if (!rc) {
		rc = wsa_jwt_add_key(v, NULL, alg, secret, strlen(secret));
		wsa_jwt_free(v);
	}
	if (rc)
		fprintf(stderr,
			"wsa-token: libwsa's verifier refuses this %s "
			"secret: %s\n",
			alg, wsa_strerror(rc));
	return !rc;
}

static int mint(const char *alg, const char *secret, const char *uid,
		const char *email, long ttl, const json_t *claims)
{
	char *extra =
	    json_object_size(claims) ? json_dumps(claims, JSON_COMPACT) : NULL;
	char *out = example_mint(alg, secret, uid, email, ttl, extra);
	int rc = 1;

	if (out) {
		printf("%s\n", out);
		rc = fflush(stdout) ? 1 : 0;
	}
	if (rc)
		fprintf(stderr, "wsa-token: cannot mint the token\n");
	free(out);
	free(extra);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"secret", required_argument, NULL, 's'},
	    {"secret-file", required_argument, NULL, 'f'},
	    {"alg", required_argument, NULL, 'a'},
	    {"uid", required_argument, NULL, 'u'},
	    {"email", required_argument, NULL, 'e'},
	    {"ttl", required_argument, NULL, 't'},
	    {"claim", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *secret = getenv("WSA_JWT_SECRET"), *uid = NULL;
	const char *email = NULL, *alg = "HS256";
	char *from_file = NULL;
	json_t *claims = json_object();
	long ttl = 3600;
	char *end;
	int c, rc = 2;

	if (!claims)
		return 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			secret = optarg;
			break;
		case 'f':
			free(from_file);
			from_file = read_secret(optarg);
			if (!from_file)
				goto out;
			secret = from_file;
			break;
		case 'a':
			if (!example_mint_alg_ok(optarg)) {
				fprintf(stderr,
					"wsa-token: --alg: HS256, HS384 "
					"or HS512\n");
				goto out;
			}
			alg = optarg;
			break;
		case 'u':
			uid = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 't':
			errno = 0;
			ttl = strtol(optarg, &end, 10);
			if (errno || *end || ttl <= 0 ||
			    ttl > 10L * 365 * 86400) {
				fprintf(stderr, "wsa-token: bad --ttl\n");
				goto out;
			}
			break;
		case 'c':
			if (!add_claim(claims, optarg)) {
				fprintf(stderr, "wsa-token: bad --claim %s\n",
					optarg);
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind != argc || !secret || !*secret || !uid || !*uid)
		usage(stderr);
	else if (secret_ok(alg, secret))
		rc = mint(alg, secret, uid, email, ttl, claims);
out:
	if (from_file) {
		memset(from_file, 0, strlen(from_file));
		free(from_file);
	}
	json_decref(claims);
	return rc;
}
