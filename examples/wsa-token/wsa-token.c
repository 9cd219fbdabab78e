/* wsa-token: mint an HS256 development token for echo-chat.
 *
 *   wsa-token --secret S --uid U [--email E] [--ttl SECONDS]
 *
 * The secret may also come from WSA_JWT_SECRET. The token goes to stdout
 * on one line. Minted with libjwt. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mint.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: wsa-token --secret S --uid U [--email E] "
		   "[--ttl SECONDS]\n"
		   "  the secret may also be given in WSA_JWT_SECRET\n");
}

static int mint(const char *secret, const char *uid, const char *email,
		long ttl)
{
	char *out = example_mint(secret, uid, email, ttl);
	int rc = 1;

	if (out) {
		printf("%s\n", out);
		rc = fflush(stdout) ? 1 : 0;
	}
	if (rc)
		fprintf(stderr, "wsa-token: cannot mint the token\n");
	free(out);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"secret", required_argument, NULL, 's'},
	    {"uid", required_argument, NULL, 'u'},
	    {"email", required_argument, NULL, 'e'},
	    {"ttl", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *secret = getenv("WSA_JWT_SECRET"), *uid = NULL;
	const char *email = NULL;
	long ttl = 3600;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			secret = optarg;
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
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !secret || !*secret || !uid || !*uid) {
		usage(stderr);
		return 2;
	}
	return mint(secret, uid, email, ttl);
}
