/* What the examples share: the command line, the token verifier it
 * describes, signals, and serving one route until stopped. */
#include "example.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mint.h"

struct options {
	const char *host;
	int port;
	const char *secret;
	const char *pubkey_file;
	const char *alg;
	unsigned auth_timeout_ms;
	size_t max_message_size;
	const char *origins[17]; /* --allow-origin, NULL-terminated */
	int norigins;
	const char *tls_cert, *tls_key;
	/* Limits: 0 leaves the library's default. */
	unsigned max_connections, max_per_address, rate_limit, rate_burst;
	unsigned max_failed_logins, handshake_timeout_ms;
	unsigned verify_rate, verify_burst, max_per_user, max_topics;
	unsigned ping_interval_ms, pong_timeout_ms, idle_timeout_ms;
	unsigned threads;
	bool permessage_deflate;
	const char *metrics; /* --metrics PATH: Prometheus text there */
	bool no_metrics;
	size_t max_login_size;
	size_t rx_buffer_size;
	const char *requires[17]; /* --require TYPE:CLAIM=VALUE */
	int nrequires;
	bool dev_tokens; /* GET /dev/token?uid=U mints a token: never on
			    by default */
	const char *dev_hosts[17]; /* --dev-tokens-host: Host names it also
				      answers, besides loopback ones */
	int ndev_hosts;
	const char *redis[17]; /* --redis URL: the instances, in order */
	int nredis;
	const char *redis_prefix;
	unsigned history;	 /* --history N: messages kept per room */
	unsigned history_ttl_ms; /* --history-ttl-ms N */
};

static wsa_server *running; /* for the signal handler */
static const char *program; /* for messages */

static void on_signal(int sig)
{
	(void)sig;
	wsa_server_stop(running);
}

long long example_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
	wsa_config def;

	wsa_config_init(&def);
	fprintf(
	    f,
	    "usage: %s [--host H] [--port P] [--jwt-secret S | "
	    "--jwt-public-key PEMFILE]\n"
	    "       [--jwt-alg ALG] [--auth-timeout-ms N] "
	    "[--max-message-size BYTES]\n"
	    "       [--allow-origin ORIGIN]... [--tls-cert FILE --tls-key "
	    "FILE]\n"
	    "       [--max-connections N] [--max-connections-per-address "
	    "N]\n"
	    "       [--rate-limit N] [--rate-burst N] [--max-failed-logins "
	    "N]\n"
	    "       [--handshake-timeout-ms N] [--max-login-size BYTES]\n"
	    "       [--rx-buffer-size BYTES]\n"
	    "       [--verify-rate N] [--verify-burst N]\n"
	    "       [--max-connections-per-user N] "
	    "[--max-topics-per-connection N]\n"
	    "       [--ping-interval-ms N] [--pong-timeout-ms N] "
	    "[--idle-timeout-ms N]\n"
	    "       [--threads N] [--permessage-deflate]\n"
	    "       [--metrics PATH] [--no-metrics]\n"
	    "       [--redis redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]]... "
	    "[--redis-prefix P]\n"
	    "       [--require TYPE:CLAIM=VALUE]... [--dev-tokens]\n"
	    "       [--dev-tokens-host HOST]...\n"
	    "       [--history N] [--history-ttl-ms N] (chat-room: messages "
	    "kept per room)\n"
	    "  a count limit may be 'unlimited'; --ping-interval-ms and\n"
	    "  --idle-timeout-ms may be 'off'\n"
	    "  the secret may also be given in WSA_JWT_SECRET\n"
	    "liveness: a WebSocket ping to a connection silent for %u ms,\n"
	    "  hung up when nothing comes back within %u ms of it; idle\n"
	    "  timeout (close 1001 after that long without a message): "
	    "off\n",
	    program, def.ping_interval_ms, def.pong_timeout_ms);
}

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && *s && !*end && *s != '-' && *out <= max;
}

/* A count limit: a positive number, or "unlimited". */
static bool parse_limit(const char *s, unsigned *out)
{
	unsigned long n;

	if (!strcmp(s, "unlimited")) {
		*out = WSA_UNLIMITED;
		return true;
	}
	if (!parse_num(s, WSA_UNLIMITED - 1, &n) || !n)
		return false;
	*out = (unsigned)n;
	return true;
}

/* A time in milliseconds, or "off" (WSA_UNLIMITED). */
static bool parse_ms_or_off(const char *s, unsigned *out)
{
	unsigned long n;

	if (!strcmp(s, "off")) {
		*out = WSA_UNLIMITED;
		return true;
	}
	if (!parse_num(s, 86400000, &n) || !n)
		return false;
	*out = (unsigned)n;
	return true;
}

/* Fill o from the command line; returns 0, or the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"jwt-secret", required_argument, NULL, 's'},
	    {"jwt-public-key", required_argument, NULL, 'k'},
	    {"jwt-alg", required_argument, NULL, 'a'},
	    {"auth-timeout-ms", required_argument, NULL, 't'},
	    {"max-message-size", required_argument, NULL, 'm'},
	    {"allow-origin", required_argument, NULL, 'o'},
	    {"tls-cert", required_argument, NULL, 'C'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"max-connections", required_argument, NULL, 'c'},
	    {"max-connections-per-address", required_argument, NULL, 'A'},
	    {"rate-limit", required_argument, NULL, 'r'},
	    {"rate-burst", required_argument, NULL, 'b'},
	    {"max-failed-logins", required_argument, NULL, 'f'},
	    {"handshake-timeout-ms", required_argument, NULL, 'T'},
	    {"max-login-size", required_argument, NULL, 'L'},
	    {"rx-buffer-size", required_argument, NULL, 'B'},
	    {"verify-rate", required_argument, NULL, 'v'},
	    {"verify-burst", required_argument, NULL, 'V'},
	    {"max-connections-per-user", required_argument, NULL, 'u'},
	    {"max-topics-per-connection", required_argument, NULL, 'j'},
	    {"ping-interval-ms", required_argument, NULL, 'P'},
	    {"pong-timeout-ms", required_argument, NULL, 'g'},
	    {"idle-timeout-ms", required_argument, NULL, 'I'},
	    {"threads", required_argument, NULL, 'n'},
	    {"permessage-deflate", no_argument, NULL, 'Z'},
	    {"metrics", required_argument, NULL, 'M'},
	    {"no-metrics", no_argument, NULL, 'N'},
	    {"require", required_argument, NULL, 'R'},
	    {"dev-tokens", no_argument, NULL, 'D'},
	    {"dev-tokens-host", required_argument, NULL, 'O'},
	    {"redis", required_argument, NULL, 'S'},
	    {"redis-prefix", required_argument, NULL, 'X'},
	    {"history", required_argument, NULL, 'y'},
	    {"history-ttl-ms", required_argument, NULL, 'Y'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long n;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o->host = optarg;
			break;
		case 's':
			o->secret = optarg;
			break;
		case 'k':
			o->pubkey_file = optarg;
			break;
		case 'a':
			o->alg = optarg;
			break;
		case 'p':
			if (!parse_num(optarg, 65535, &n))
				goto bad;
			o->port = (int)n;
			break;
		case 't':
			if (!parse_num(optarg, 86400000, &n) || !n)
				goto bad;
			o->auth_timeout_ms = (unsigned)n;
			break;
		case 'm':
			if (!parse_num(optarg, 1ul << 30, &n) || !n)
				goto bad;
			o->max_message_size = n;
			break;
		case 'o':
			if (o->norigins == 16)
				goto bad;
			o->origins[o->norigins++] = optarg;
			break;
		case 'C':
			o->tls_cert = optarg;
			break;
		case 'S':
			if (o->nredis == 16)
				goto bad;
			o->redis[o->nredis++] = optarg;
			break;
		case 'X':
			o->redis_prefix = optarg;
			break;
		case 'y':
			if (!parse_num(optarg, WSA_HISTORY_MAX, &n) || !n)
				goto bad;
			o->history = (unsigned)n;
			break;
		case 'Y':
			if (!parse_num(optarg, 86400000, &n) || !n)
				goto bad;
			o->history_ttl_ms = (unsigned)n;
			break;
		case 'K':
			o->tls_key = optarg;
			break;
		case 'c':
			if (!parse_limit(optarg, &o->max_connections))
				goto bad;
			break;
		case 'A':
			if (!parse_limit(optarg, &o->max_per_address))
				goto bad;
			break;
		case 'r':
			if (!parse_limit(optarg, &o->rate_limit))
				goto bad;
			break;
		case 'b':
			if (!parse_num(optarg, 1000000, &n) || !n)
				goto bad;
			o->rate_burst = (unsigned)n;
			break;
		case 'f':
			if (!parse_limit(optarg, &o->max_failed_logins))
				goto bad;
			break;
		case 'T':
			if (!parse_num(optarg, 86400000, &n) || !n)
				goto bad;
			o->handshake_timeout_ms = (unsigned)n;
			break;
		case 'L':
			if (!parse_num(optarg, 1ul << 30, &n) || !n)
				goto bad;
			o->max_login_size = n;
			break;
		case 'B':
			if (!parse_num(optarg, 1ul << 20, &n) || n < 128)
				goto bad;
			o->rx_buffer_size = n;
			break;
		case 'v':
			if (!parse_limit(optarg, &o->verify_rate))
				goto bad;
			break;
		case 'V':
			if (!parse_num(optarg, 1000000, &n) || !n)
				goto bad;
			o->verify_burst = (unsigned)n;
			break;
		case 'u':
			if (!parse_limit(optarg, &o->max_per_user))
				goto bad;
			break;
		case 'j':
			if (!parse_limit(optarg, &o->max_topics))
				goto bad;
			break;
		case 'P':
			if (!parse_ms_or_off(optarg, &o->ping_interval_ms))
				goto bad;
			break;
		case 'g':
			if (!parse_num(optarg, 86400000, &n) || !n)
				goto bad;
			o->pong_timeout_ms = (unsigned)n;
			break;
		case 'I':
			if (!parse_ms_or_off(optarg, &o->idle_timeout_ms))
				goto bad;
			break;
		case 'n':
			if (!parse_num(optarg, 32, &n) || !n)
				goto bad;
			o->threads = (unsigned)n;
			break;
		case 'Z':
			o->permessage_deflate = true;
			break;
		case 'M':
			if (optarg[0] != '/')
				goto bad;
			o->metrics = optarg;
			break;
		case 'N':
			o->no_metrics = true;
			break;
		case 'R':
			if (o->nrequires == 16 || !strchr(optarg, ':') ||
			    !strchr(strchr(optarg, ':'), '='))
				goto bad;
			o->requires[o->nrequires++] = optarg;
			break;
		case 'D':
			o->dev_tokens = true;
			break;
		case 'O':
			if (o->ndev_hosts == 16 || !*optarg)
				goto bad;
			o->dev_hosts[o->ndev_hosts++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o->tls_cert != !o->tls_key) {
		fprintf(stderr, "%s: --tls-cert and --tls-key go together\n",
			program);
		return 2;
	}
	if (optind == argc)
		return 0;
bad:
	fprintf(stderr, "%s: bad argument\n", program);
	usage(stderr);
	return 2;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (size = ftell(f)) >= 0 &&
	    size < (1 << 20) && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc((size_t)size + 1))) {
		*len = fread(buf, 1, (size_t)size, f);
		buf[*len] = '\0';
	}
	fclose(f);
	return buf;
}

/* Build the token verifier the options ask for; NULL after a message. */
static wsa_jwt *make_verifier(const struct options *o)
{
	const char *secret = o->secret;
	wsa_jwt *jwt = NULL;
	char *pem = NULL;
	size_t len = 0;
	int rc;

	if (o->pubkey_file && o->secret) {
		fprintf(stderr, "%s: give a secret or a public key\n", program);
		return NULL;
	}
	if (o->pubkey_file) {
		pem = read_file(o->pubkey_file, &len);
		if (!pem) {
			fprintf(stderr, "%s: cannot read %s: %s\n", program,
				o->pubkey_file, strerror(errno));
			return NULL;
		}
	} else if (!secret || !*secret) {
		fprintf(stderr,
			"%s: no JWT secret: use --jwt-secret, "
			"WSA_JWT_SECRET or --jwt-public-key\n",
			program);
		return NULL;
	}
	rc = wsa_jwt_new(&jwt);
	if (!rc)
		rc = wsa_jwt_add_key(
		    jwt, NULL, o->alg ? o->alg : (pem ? "RS256" : "HS256"),
		    pem ? pem : secret, pem ? len : strlen(secret));
	free(pem);
	if (rc) {
		fprintf(stderr, "%s: JWT key: %s\n", program, wsa_strerror(rc));
		wsa_jwt_free(jwt);
		return NULL;
	}
	return jwt;
}

/* --require TYPE:CLAIM=VALUE: the claim a message type needs. */
static int add_requirements(const struct options *o, wsa_route *route)
{
	int i, rc = WSA_OK;

	for (i = 0; i < o->nrequires && !rc; i++) {
		char *spec = strdup(o->requires[i]), *claim, *value;

		if (!spec)
			return WSA_ENOMEM;
		claim = strchr(spec, ':');
		*claim++ = '\0';
		value = strchr(claim, '=');
		*value++ = '\0';
		rc = wsa_route_require(route, spec, claim, value);
		free(spec);
	}
	return rc;
}

/* A uid the dev endpoint mints for: 1 to 64 letters, digits, '.', '_',
 * '-'. */
static bool uid_ok(const char *uid, size_t len)
{
	size_t i;

	if (!len || len > 64)
		return false;
	for (i = 0; i < len; i++)
		if (!strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789._-",
			uid[i]) ||
		    !uid[i])
			return false;
	return true;
}

/* The name or address of a Host header, without its port, into buf;
 * false when it is not of that form. IPv6 addresses come in brackets,
 * which are kept. */
static bool host_name(const char *host, char *buf, size_t size)
{
	const char *end = host + strlen(host), *colon;
	size_t n;

	if (host[0] == '[') {
		colon = strchr(host, ']');
		if (!colon)
			return false;
		colon++;
	} else {
		colon = strchr(host, ':');
		if (!colon)
			colon = end;
	}
	if (*colon && (colon[0] != ':' || !colon[1] ||
		       strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
		       strlen(colon + 1) > 5))
		return false;
	n = (size_t)(colon - host);
	if (!n || n >= size)
		return false;
	memcpy(buf, host, n);
	buf[n] = '\0';
	return true;
}

/* Whether a Host header names this machine's loopback (localhost,
 * 127.0.0.0/8, [::1]) or a name the options gave: what a page from
 * another site, by a DNS name it points here (DNS rebinding), cannot
 * send. */
static bool dev_host_ok(const struct options *o, const char *host)
{
	char name[256], addr6[64];
	unsigned char a[16];
	int i;

	if (!host || !host_name(host, name, sizeof(name)))
		return false;
	if (!strcasecmp(name, "localhost"))
		return true;
	if (inet_pton(AF_INET, name, a) == 1)
		return a[0] == 127;
	if (name[0] == '[' && strlen(name) - 2 < sizeof(addr6)) {
		memcpy(addr6, name + 1, strlen(name) - 2);
		addr6[strlen(name) - 2] = '\0';
		if (inet_pton(AF_INET6, addr6, a) == 1 &&
		    !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16))
			return true;
	}
	for (i = 0; i < o->ndev_hosts; i++)
		if (!strcasecmp(name, o->dev_hosts[i]))
			return true;
	/* The address it listens on, when one: an address, unlike a
	 * name, cannot be pointed elsewhere. Not a wildcard, which a
	 * page may reach this machine by ("0.0.0.0"). */
	if (strcmp(o->host, "0.0.0.0") && strcmp(o->host, "::")) {
		if (!strcmp(name, o->host))
			return true;
		if (name[0] == '[' &&
		    !strncmp(name + 1, o->host, strlen(o->host)) &&
		    !strcmp(name + 1 + strlen(o->host), "]"))
			return true;
	}
	return false;
}

/* Whether an Origin header is none (not a browser: curl) or the page's
 * own origin on this server: its scheme, and the Host asked for. */
static bool dev_origin_ok(const struct options *o, const char *origin,
			  const char *host)
{
	const char *scheme = o->tls_cert ? "https://" : "http://";
	size_t n = strlen(scheme);

	return !origin ||
	       (!strncmp(origin, scheme, n) && !strcasecmp(origin + n, host));
}

/* A refusal of /dev/token: 403 with why. */
static void dev_refuse(wsa_http_reply *reply, const char *why)
{
	json_t *j = json_pack("{s:s}", "error", why);

	reply->status = 403;
	reply->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	reply->len = reply->body ? strlen(reply->body) : 0;
	json_decref(j);
}

/* GET /dev/token?uid=U: {"token":T,"uid":U}, T valid for an hour. For
 * trying the examples from a browser only: anyone who reaches the port
 * can log in as anyone. Only for a Host that is this machine (or one
 * the options named) and from no page but the server's own. */
static void dev_token(const char *const *args, wsa_http_reply *reply, void *ud)
{
	const struct options *o = ud;
	const char *host = wsa_http_request_header(reply, "Host");
	const char *uid = NULL;
	char *tok;
	size_t i;

	if (!dev_host_ok(o, host)) {
		dev_refuse(reply, "Host not allowed");
		return;
	}
	if (!dev_origin_ok(o, wsa_http_request_header(reply, "Origin"), host)) {
		dev_refuse(reply, "Origin not allowed");
		return;
	}
	for (i = 0; args[i]; i++)
		if (!strncmp(args[i], "uid=", 4) &&
		    uid_ok(args[i] + 4, strlen(args[i] + 4)))
			uid = args[i] + 4;
	json_t *j = NULL;

	if (!uid) {
		reply->status = 400;
		j = json_pack("{s:s}", "error",
			      "uid: 1 to 64 letters, digits, '.', '_', '-'");
	} else if ((tok = example_mint(o->alg, o->secret, uid, NULL, 3600,
				       NULL))) {
		j = json_pack("{s:s,s:s}", "token", tok, "uid", uid);
		free(tok);
	} else {
		reply->status = 500;
	}
	reply->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	reply->len = reply->body ? strlen(reply->body) : 0;
}

/* The server the options describe, on the host's loop when loop is not
 * NULL, with the example's route; the URL printed. A wsa_ error code. */
static int make_server(const struct options *o, wsa_jwt *jwt,
		       const struct example *ex, wsa_loop_kind kind, void *loop,
		       wsa_server **out)
{
	wsa_config cfg;
	wsa_server *srv;
	wsa_route *route;
	int rc;

	wsa_config_init(&cfg);
	cfg.host = o->host;
	cfg.port = o->port;
	if (o->auth_timeout_ms)
		cfg.auth_timeout_ms = o->auth_timeout_ms;
	if (o->max_message_size)
		cfg.max_message_size = o->max_message_size;
	if (o->norigins)
		cfg.allowed_origins = o->origins;
	cfg.tls_cert_file = o->tls_cert;
	cfg.tls_key_file = o->tls_key;
	cfg.max_connections = o->max_connections;
	cfg.max_connections_per_address = o->max_per_address;
	cfg.rate_limit = o->rate_limit;
	cfg.rate_burst = o->rate_burst;
	cfg.max_failed_logins = o->max_failed_logins;
	cfg.handshake_timeout_ms = o->handshake_timeout_ms;
	cfg.max_login_size = o->max_login_size;
	cfg.rx_buffer_size = o->rx_buffer_size;
	cfg.verify_rate = o->verify_rate;
	cfg.verify_burst = o->verify_burst;
	cfg.max_connections_per_user = o->max_per_user;
	cfg.max_topics_per_connection = o->max_topics;
	cfg.ping_interval_ms = o->ping_interval_ms;
	cfg.pong_timeout_ms = o->pong_timeout_ms;
	/* "off" is the library's 0 here. */
	cfg.idle_timeout_ms =
	    o->idle_timeout_ms == WSA_UNLIMITED ? 0 : o->idle_timeout_ms;
	cfg.threads = o->threads;
	cfg.permessage_deflate = o->permessage_deflate;
	cfg.metrics_off = o->no_metrics;
	rc = loop ? wsa_server_new_on_loop(&srv, &cfg, kind, loop)
		  : wsa_server_new(&srv, &cfg);
	if (rc) {
		fprintf(stderr, "%s: %s:%d: %s\n", program, o->host, o->port,
			wsa_strerror(rc));
		return rc;
	}
	if ((rc = wsa_set_verifier(srv, wsa_jwt_verifier, jwt)) ||
	    (rc = wsa_route_add(srv, "/ws/chat", ex->on_open, ex->on_close, srv,
				&route)) ||
	    (rc = wsa_route_upgrade_token(route, true)) ||
	    (rc = add_requirements(o, route)) || (rc = ex->setup(srv, route)) ||
	    (o->nredis &&
	     (rc = wsa_server_use_redis(srv, o->redis, (size_t)o->nredis,
					o->redis_prefix))) ||
	    (o->history && (rc = wsa_server_topic_history(
				srv, "", o->history, o->history_ttl_ms))) ||
	    (o->metrics &&
	     (rc = wsa_server_metrics_path(srv, o->metrics, NULL, NULL))) ||
	    (o->dev_tokens && (rc = wsa_server_http_get(
				   srv, "/dev/token", dev_token, (void *)o)))) {
		fprintf(stderr, "%s: %s\n", program, wsa_strerror(rc));
		wsa_server_free(srv);
		return rc;
	}
	printf("%s://%s:%d/ws/chat\n", o->tls_cert ? "wss" : "ws", o->host,
	       wsa_server_port(srv));
	if (o->dev_tokens)
		fprintf(stderr,
			"%s: --dev-tokens: GET /dev/token?uid=U gives anyone "
			"who reaches this port by a loopback name a token for "
			"any user\n",
			program);
	fflush(stdout);
	*out = srv;
	return WSA_OK;
}

static int serve(const struct options *o, wsa_jwt *jwt,
		 const struct example *ex)
{
	wsa_server *srv;
	struct sigaction sa;
	int rc;

	if (make_server(o, jwt, ex, WSA_LOOP_LIBEV, NULL, &srv))
		return 1;
	running = srv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = wsa_server_run(srv);
	if (rc)
		fprintf(stderr, "%s: %s\n", program, wsa_strerror(rc));
	wsa_server_free(srv);
	return rc ? 1 : 0;
}

/* The options and the verifier; 0, or the exit status. */
static int prepare(int argc, char **argv, const struct example *ex,
		   struct options *o, wsa_jwt **jwt)
{
	int rc;

	program = ex->name;
	signal(SIGPIPE, SIG_IGN);
	rc = parse_args(argc, argv, o);
	if (rc)
		return rc;
	if ((o->history || o->history_ttl_ms) && !ex->history) {
		fprintf(stderr, "%s: --history: this example keeps no rooms\n",
			program);
		return 2;
	}
	if (!o->history_ttl_ms)
		o->history_ttl_ms = 300000;
	if (!o->secret && !o->pubkey_file)
		o->secret = getenv("WSA_JWT_SECRET");
	/* Minted with what the verifier checks, or refused. */
	if (o->dev_tokens &&
	    (o->pubkey_file || !o->secret || !example_mint_alg_ok(o->alg))) {
		fprintf(stderr,
			"%s: --dev-tokens needs an HMAC secret (HS256, HS384 "
			"or HS512)\n",
			program);
		return 2;
	}
	*jwt = make_verifier(o);
	return *jwt ? 0 : 1;
}

int example_main(int argc, char **argv, const struct example *ex)
{
	struct options o = {.host = "127.0.0.1", .port = 8080};
	wsa_jwt *jwt;
	int rc = prepare(argc, argv, ex, &o, &jwt);

	if (rc)
		return rc;
	rc = serve(&o, jwt, ex);
	wsa_jwt_free(jwt);
	return rc;
}

/* The verifier of the server example_open made. */
static wsa_jwt *host_jwt;

int example_open(int argc, char **argv, const struct example *ex,
		 wsa_loop_kind kind, void *loop, wsa_server **srv)
{
	static struct options o = {.host = "127.0.0.1", .port = 8080};
	int rc = prepare(argc, argv, ex, &o, &host_jwt);

	if (rc)
		return rc;
	if (make_server(&o, host_jwt, ex, kind, loop, srv)) {
		wsa_jwt_free(host_jwt);
		return 1;
	}
	return 0;
}

void example_close(wsa_server *srv)
{
	wsa_server_free(srv);
	wsa_jwt_free(host_jwt);
}
