/* Shared parts of the baseline echo servers (see echo-common.h). */
#include "echo-common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
	const char *host;
	int port;
};

/* The signal handler can reach the context only through globals. */
static struct lws_context *volatile running;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	if (running)
		lws_cancel_service(running); /* wakes lws_service() */
}

static void append_reply(struct lws *wsi, struct echo_conn *c,
			 struct echo_msg *m)
{
	m->next = NULL;
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	lws_callback_on_writable(wsi);
}

void echo_dequeue(struct echo_conn *c)
{
	struct echo_msg *m = c->head;

	c->head = m->next;
	if (!c->head)
		c->tail = NULL;
	free(m);
}

static void conn_free(struct echo_conn *c)
{
	while (c->head)
		echo_dequeue(c);
	free(c->rx);
	c->rx = NULL;
}

/* Makes room for need payload bytes in c->rx, starting a message when none
 * is in progress. The first piece announces its frame's length, so a
 * one-frame message is allocated once; fragmented ones grow by doubling. */
static int rx_reserve(struct lws *wsi, struct echo_conn *c, size_t need)
{
	struct echo_msg *m = c->rx;
	size_t cap;

	if (m && need <= m->cap)
		return 0;
	cap = m ? 2 * m->cap : need;
	if (cap < need)
		cap = need;
	if (cap > ECHO_MAX_MESSAGE)
		cap = ECHO_MAX_MESSAGE;
	m = realloc(m, sizeof(*m) + LWS_PRE + cap);
	if (!m)
		return -1;
	if (!c->rx) {
		m->len = 0;
		m->binary = lws_frame_is_binary(wsi);
	}
	m->cap = cap;
	c->rx = m;
	return 0;
}

/* Adds one piece of a message; a complete message becomes the reply. lws
 * enforces no size limit, so the frame's announced remainder is counted
 * before anything is allocated for it. */
static int on_receive(struct lws *wsi, struct echo_conn *c, const void *in,
		      size_t len)
{
	size_t have = c->rx ? c->rx->len : 0;
	size_t rest = lws_remaining_packet_payload(wsi);

	if (rest > ECHO_MAX_MESSAGE || len + rest > ECHO_MAX_MESSAGE - have) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL,
				 0);
		return -1;
	}
	if (rx_reserve(wsi, c, have + len + rest))
		return -1;
	if (len)
		memcpy(echo_payload(c->rx) + have, in, len);
	c->rx->len += len;
	if (lws_is_final_fragment(wsi)) {
		append_reply(wsi, c, c->rx);
		c->rx = NULL;
	}
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct echo_conn *c = user;
	const struct echo_server_def *def;

	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		return on_receive(wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		def = lws_get_protocol(wsi)->user;
		return c->head ? def->writeable(wsi, c) : 0;
	case LWS_CALLBACK_CLOSED:
		conn_free(c);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static void usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: %s [--host H] [--port P]\n"
		"  --port 0 picks a free port; the first line printed is "
		"the URL\n",
		name);
}

/* Fills o from the command line; returns 0, or the exit status. */
static int parse_args(int argc, char **argv, const char *name,
		      struct options *o)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long n;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o->host = optarg;
			break;
		case 'p':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || !*optarg || *end || *optarg == '-' ||
			    n > 65535) {
				usage(stderr, name);
				return 2;
			}
			o->port = (int)n;
			break;
		case 'h':
			usage(stdout, name);
			exit(0);
		default:
			usage(stderr, name);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr, name);
		return 2;
	}
	return 0;
}

static struct lws_vhost *create_vhost(struct lws_context *ctx,
				      const struct options *o,
				      const struct lws_protocols *protocols)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "echo";
	info.port = o->port;
	info.iface = o->host;
	info.protocols = protocols;
	if (!strchr(o->host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	return lws_create_vhost(ctx, &info);
}

static void print_url(const char *host, int port)
{
	if (strchr(host, ':'))
		printf("ws://[%s]:%d/\n", host, port);
	else
		printf("ws://%s:%d/\n", host, port);
	fflush(stdout);
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int echo_main(int argc, char **argv, const struct echo_server_def *def)
{
	/* protocols[0]: an upgrade naming no subprotocol binds to it. */
	struct lws_protocols protocols[] = {
	    {.name = "echo",
	     .callback = callback,
	     .per_session_data_size = sizeof(struct echo_conn),
	     .rx_buffer_size = def->rx_buffer_size,
	     .user = (void *)def,
	     .tx_packet_size = def->tx_packet_size},
	    {0},
	};
	struct options o = {.host = "127.0.0.1", .port = 0};
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	int rc = parse_args(argc, argv, def->name, &o);

	if (rc)
		return rc;
	lws_set_log_level(LLL_ERR, NULL); /* no start-up notices on stderr */
	catch_signals();
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "%s: cannot create lws context\n", def->name);
		return 1;
	}
	vh = create_vhost(ctx, &o, protocols);
	if (!vh) {
		fprintf(stderr, "%s: cannot listen on %s:%d\n", def->name,
			o.host, o.port);
		lws_context_destroy(ctx);
		return 1;
	}
	running = ctx;
	print_url(o.host, lws_get_vhost_listen_port(vh));
	while (!stop_requested)
		if (lws_service(ctx, 0) < 0)
			break;
	running = NULL;
	lws_context_destroy(ctx);
	return 0;
}
