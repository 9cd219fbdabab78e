/* The command line of wsa-loadgen. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

static void usage(FILE *f)
{
	fputs(
	    "usage: wsa-loadgen --url ws://127.0.0.1:PORT/PATH [options]\n"
	    "  --mode echo|connect|idle|unauth|flood\n"
	    "                             what to measure or do (echo)\n"
	    "  --proto wsa|raw            wsa: JWT login + JSON chat echo; "
	    "raw: plain echo (wsa)\n"
	    "  --conns C                  connections (all but connect) (16)\n"
	    "  --inflight K               echo messages in flight per "
	    "connection (1)\n"
	    "  --rate R                   echo: R messages/s per connection, "
	    "1 in flight\n"
	    "                             (0: unpaced)\n"
	    "  --size BYTES               echo, flood payload bytes (16)\n"
	    "  --duration SECS            measured window (5)\n"
	    "  --warmup SECS              before the window (1)\n"
	    "  --concurrency P            connect: attempts in flight (16);\n"
	    "                             others: set-ups in flight (256)\n"
	    "  --workers W                forked workers (0: only if "
	    "descriptors require)\n"
	    "  --src-addrs N              source addresses 127.0.0.1..N "
	    "(16; 0: no bind)\n"
	    "  --src-first A              start them at 127.0.0.A (1)\n"
	    "  --connect-timeout SECS     set-up deadline (10)\n"
	    "  --close-timeout SECS       wait for close handshakes (2)\n"
	    "  --secret S                 HS256 secret (or WSA_JWT_SECRET)\n"
	    "  --es256-key FILE           ES256 private key (PEM, P-256)\n"
	    "  --token T                  the same token for every "
	    "connection\n"
	    "  --origin O                 send an Origin header\n"
	    "  --token-at-upgrade         wsa: send the token as "
	    "\"Authorization:\n"
	    "                             Bearer\" in the upgrade, no login "
	    "message\n"
	    "  --verbose                  print every failure\n"
	    "Prints progress on stderr and one JSON line on stdout; idle, "
	    "unauth and flood\nprint \"READY <ok> <failed>\" after set-up; "
	    "idle holds the connections until\nSIGTERM, SIGINT or EOF on "
	    "stdin, unauth and flood until then or --duration.\n",
	    f);
}

/* ws://HOST[:PORT][/PATH], HOST an IPv4 address or localhost. */
static int parse_url(struct lg_opts *o, const char *url)
{
	const char *h = url + 5, *end, *colon;
	char host[64];
	long port = 80;

	if (strncmp(url, "ws://", 5)) {
		fprintf(stderr, "wsa-loadgen: %s: only ws:// URLs\n", url);
		return -1;
	}
	end = h + strcspn(h, "/");
	colon = memchr(h, ':', (size_t)(end - h));
	if (colon)
		port = strtol(colon + 1, NULL, 10);
	snprintf(host, sizeof(host), "%.*s", (int)((colon ? colon : end) - h),
		 h);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	o->dst.sin_family = AF_INET;
	o->dst.sin_port = htons((uint16_t)port);
	if (port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &o->dst.sin_addr) != 1) {
		fprintf(stderr, "wsa-loadgen: %s: bad host or port\n", url);
		return -1;
	}
	snprintf(o->host_hdr, sizeof(o->host_hdr), "%.*s", (int)(end - h), h);
	snprintf(o->path, sizeof(o->path), "%s", *end ? end : "/");
	return 0;
}

/* The index of arg in the NULL-terminated names, or -1. */
static int parse_enum(const char *arg, const char *const *names, int *out)
{
	int i;

	for (i = 0; names[i]; i++) {
		if (!strcmp(arg, names[i])) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

enum {
	O_URL = 256,
	O_MODE,
	O_PROTO,
	O_CONNS,
	O_INFLIGHT,
	O_RATE,
	O_SIZE,
	O_DURATION,
	O_WARMUP,
	O_CONC,
	O_WORKERS,
	O_SRC,
	O_SRC_FIRST,
	O_CTIMEOUT,
	O_CLTIMEOUT,
	O_SECRET,
	O_ES256,
	O_TOKEN,
	O_ORIGIN,
	O_AT_UPGRADE,
	O_VERBOSE,
	O_HELP
};

static const struct option longopts[] = {
    {"url", 1, NULL, O_URL},
    {"mode", 1, NULL, O_MODE},
    {"proto", 1, NULL, O_PROTO},
    {"conns", 1, NULL, O_CONNS},
    {"inflight", 1, NULL, O_INFLIGHT},
    {"rate", 1, NULL, O_RATE},
    {"size", 1, NULL, O_SIZE},
    {"duration", 1, NULL, O_DURATION},
    {"warmup", 1, NULL, O_WARMUP},
    {"concurrency", 1, NULL, O_CONC},
    {"workers", 1, NULL, O_WORKERS},
    {"src-addrs", 1, NULL, O_SRC},
    {"src-first", 1, NULL, O_SRC_FIRST},
    {"connect-timeout", 1, NULL, O_CTIMEOUT},
    {"close-timeout", 1, NULL, O_CLTIMEOUT},
    {"secret", 1, NULL, O_SECRET},
    {"es256-key", 1, NULL, O_ES256},
    {"token", 1, NULL, O_TOKEN},
    {"origin", 1, NULL, O_ORIGIN},
    {"token-at-upgrade", 0, NULL, O_AT_UPGRADE},
    {"verbose", 0, NULL, O_VERBOSE},
    {"help", 0, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* A whole non-negative number no larger than max, or -1. */
static long long num(const char *s, long long max)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	return *s && !*end && v >= 0 && v <= max ? v : -1;
}

static double secs(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	return *s && !*end && v >= 0 && v < 1e6 ? v : -1;
}

static int set_number(struct lg_opts *o, int opt, const char *arg)
{
	long long v = num(arg, 1 << 24);

	switch (opt) {
	case O_CONNS:
		o->conns = (unsigned)v;
		return v > 0 ? 0 : -1;
	case O_INFLIGHT:
		o->inflight = (unsigned)v;
		return v > 0 ? 0 : -1;
	case O_SIZE:
		o->size = (size_t)v;
		return v >= 0 ? 0 : -1;
	case O_CONC:
		o->concurrency = (unsigned)v;
		return v > 0 ? 0 : -1;
	case O_WORKERS:
		o->workers = (unsigned)v;
		return v >= 0 && v <= 256 ? 0 : -1;
	case O_SRC:
		o->src_addrs = (unsigned)v;
		return v >= 0 && v <= 254 ? 0 : -1;
	case O_SRC_FIRST:
		o->src_first = (unsigned)v;
		return v >= 1 && v <= 254 ? 0 : -1;
	}
	return -1;
}

static int set_secs(struct lg_opts *o, int opt, const char *arg)
{
	double v = secs(arg);

	if (opt == O_DURATION)
		o->duration = v;
	else if (opt == O_WARMUP)
		o->warmup = v;
	else if (opt == O_CTIMEOUT)
		o->connect_timeout = v;
	else if (opt == O_RATE)
		o->rate = v;
	else
		o->close_timeout = v;
	return v >= 0 ? 0 : -1;
}

static int set_opt(struct lg_opts *o, int opt, const char *arg)
{
	static const char *const modes[] = {"echo",   "connect", "idle",
					    "unauth", "flood",	 NULL};
	static const char *const protos[] = {"wsa", "raw", NULL};
	int v;

	switch (opt) {
	case O_URL:
		return parse_url(o, arg);
	case O_MODE:
		if (parse_enum(arg, modes, &v))
			return -1;
		o->mode = (enum lg_mode)v;
		return 0;
	case O_PROTO:
		if (parse_enum(arg, protos, &v))
			return -1;
		o->proto = (enum lg_proto)v;
		return 0;
	case O_RATE:
	case O_DURATION:
	case O_WARMUP:
	case O_CTIMEOUT:
	case O_CLTIMEOUT:
		return set_secs(o, opt, arg);
	case O_SECRET:
		o->secret = arg;
		return 0;
	case O_ES256:
		o->es256_key = arg;
		return 0;
	case O_TOKEN:
		o->token = arg;
		return 0;
	case O_ORIGIN:
		o->origin = arg;
		return 0;
	case O_AT_UPGRADE:
		o->at_upgrade = true;
		return 0;
	}
	return set_number(o, opt, arg);
}

static void defaults(struct lg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = LG_ECHO;
	o->proto = LG_WSA;
	o->conns = 16;
	o->inflight = 1;
	o->size = 16;
	o->duration = 5;
	o->warmup = 1;
	o->src_addrs = 16;
	o->src_first = 1;
	o->connect_timeout = 10;
	o->close_timeout = 2;
}

/* Checks what the options say together. */
static int finish(struct lg_opts *o)
{
	if (!o->host_hdr[0]) {
		fputs("wsa-loadgen: --url is required\n", stderr);
		return -1;
	}
	if (!o->concurrency)
		o->concurrency = o->mode == LG_CONNECT ? 16 : 256;
	if (o->mode != LG_IDLE && o->duration <= 0) {
		fputs("wsa-loadgen: --duration must be above 0\n", stderr);
		return -1;
	}
	if (o->connect_timeout <= 0) {
		fputs("wsa-loadgen: --connect-timeout must be above 0\n",
		      stderr);
		return -1;
	}
	if (o->src_first + o->src_addrs > 255) {
		fputs("wsa-loadgen: --src-first + --src-addrs goes past "
		      "127.0.0.254\n",
		      stderr);
		return -1;
	}
	if (o->rate > 0 && (o->mode != LG_ECHO || o->inflight != 1)) {
		fputs("wsa-loadgen: --rate is for echo with --inflight 1\n",
		      stderr);
		return -1;
	}
	/* The attack modes count over the whole run: no warm-up. */
	if (lg_attack(o->mode))
		o->warmup = 0;
	/* Only loopback can be reached from 127.0.0.x sources. */
	if ((ntohl(o->dst.sin_addr.s_addr) >> 24) != 127)
		o->src_addrs = 0;
	return 0;
}

int lg_parse_opts(struct lg_opts *o, int argc, char **argv)
{
	int opt;

	defaults(o);
	while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		if (opt == O_HELP) {
			usage(stdout);
			exit(0);
		}
		if (opt == 'v' || opt == O_VERBOSE) {
			o->verbose = 1;
			continue;
		}
		if (opt == '?' || set_opt(o, opt, optarg)) {
			if (opt != '?')
				fprintf(stderr,
					"wsa-loadgen: bad value "
					"for --%s: %s\n",
					longopts[opt - O_URL].name, optarg);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	return finish(o);
}
