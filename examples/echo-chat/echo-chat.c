/* echo-chat: the bundled example of libwsa.
 *
 * Serves /ws/chat: a client logs in with a JWT, then "chat" messages are
 * echoed back, "typing" is logged and "ping" answered by the library. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsa.h>

struct options {
	const char *host;
	int port;
	const char *secret;
	const char *pubkey_file;
	const char *alg;
	unsigned auth_timeout_ms;
	size_t max_message_size;
};

static wsa_server *running; /* for the signal handler */

static void on_signal(int sig)
{
	(void)sig;
	wsa_server_stop(running);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "Echo: " + the message; the message may hold NUL characters. */
static json_t *echo_text(const json_t *message)
{
	size_t n = json_string_length(message);
	char *buf = malloc(n + 6);
	json_t *s;

	if (!buf)
		return NULL;
	memcpy(buf, "Echo: ", 6);
	memcpy(buf + 6, json_string_value(message), n);
	/* Valid UTF-8 after valid UTF-8: no need to check it again. */
	s = json_stringn_nocheck(buf, n + 6);
	free(buf);
	return s;
}

static void on_chat(wsa_conn *conn, json_t *msg, void *userdata)
{
	const json_t *message = json_object_get(msg, "message");

	(void)userdata;
	if (!json_is_string(message)) {
		wsa_conn_send_error(conn, "Invalid message format");
		return;
	}
	wsa_conn_send_new(conn, json_pack("{s:s,s:o,s:s,s:I}", "type", "chat",
					  "message", echo_text(message), "from",
					  "server", "timestamp",
					  (json_int_t)now_ms()));
}

static void on_typing(wsa_conn *conn, json_t *msg, void *userdata)
{
	(void)userdata;
	fprintf(stderr, "echo-chat: [%s] %s is %styping\n", wsa_conn_id(conn),
		wsa_conn_uid(conn),
		json_is_true(json_object_get(msg, "isTyping")) ? "" : "not ");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: echo-chat [--host H] [--port P] [--jwt-secret S | "
		   "--jwt-public-key PEMFILE]\n"
		   "                 [--jwt-alg ALG] [--auth-timeout-ms N] "
		   "[--max-message-size BYTES]\n"
		   "  the secret may also be given in WSA_JWT_SECRET\n");
}

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && *s && !*end && *s != '-' && *out <= max;
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
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc)
		return 0;
bad:
	fprintf(stderr, "echo-chat: bad argument\n");
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
	const char *secret = o->secret ? o->secret : getenv("WSA_JWT_SECRET");
	wsa_jwt *jwt = NULL;
	char *pem = NULL;
	size_t len = 0;
	int rc;

	if (o->pubkey_file && o->secret) {
		fprintf(stderr, "echo-chat: give a secret or a public key\n");
		return NULL;
	}
	if (o->pubkey_file) {
		pem = read_file(o->pubkey_file, &len);
		if (!pem) {
			fprintf(stderr, "echo-chat: cannot read %s: %s\n",
				o->pubkey_file, strerror(errno));
			return NULL;
		}
	} else if (!secret || !*secret) {
		fprintf(stderr, "echo-chat: no JWT secret: use --jwt-secret, "
				"WSA_JWT_SECRET or --jwt-public-key\n");
		return NULL;
	}
	rc = wsa_jwt_new(&jwt);
	if (!rc)
		rc = wsa_jwt_add_key(
		    jwt, NULL, o->alg ? o->alg : (pem ? "RS256" : "HS256"),
		    pem ? pem : secret, pem ? len : strlen(secret));
	free(pem);
	if (rc) {
		fprintf(stderr, "echo-chat: JWT key: %s\n", wsa_strerror(rc));
		wsa_jwt_free(jwt);
		return NULL;
	}
	return jwt;
}

static int serve(const struct options *o, wsa_jwt *jwt)
{
	wsa_config cfg;
	wsa_server *srv;
	wsa_route *route;
	struct sigaction sa;
	int rc;

	wsa_config_init(&cfg);
	cfg.host = o->host;
	cfg.port = o->port;
	if (o->auth_timeout_ms)
		cfg.auth_timeout_ms = o->auth_timeout_ms;
	if (o->max_message_size)
		cfg.max_message_size = o->max_message_size;
	rc = wsa_server_new(&srv, &cfg);
	if (rc) {
		fprintf(stderr, "echo-chat: %s:%d: %s\n", o->host, o->port,
			wsa_strerror(rc));
		return 1;
	}
	if ((rc = wsa_set_verifier(srv, wsa_jwt_verifier, jwt)) ||
	    (rc = wsa_route_add(srv, "/ws/chat", NULL, NULL, NULL, &route)) ||
	    (rc = wsa_route_handle(route, "chat", on_chat, NULL)) ||
	    (rc = wsa_route_handle(route, "typing", on_typing, NULL)))
		goto out;
	running = srv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("ws://%s:%d/ws/chat\n", o->host, wsa_server_port(srv));
	fflush(stdout);
	rc = wsa_server_run(srv);
out:
	if (rc)
		fprintf(stderr, "echo-chat: %s\n", wsa_strerror(rc));
	wsa_server_free(srv);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct options o = {.host = "127.0.0.1", .port = 8080};
	wsa_jwt *jwt;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	jwt = make_verifier(&o);
	if (!jwt)
		return 1;
	rc = serve(&o, jwt);
	wsa_jwt_free(jwt);
	return rc;
}
