/* What the examples share: their command line and serving loop.
 *
 *   NAME [--host H] [--port P] [--jwt-secret S | --jwt-public-key PEMFILE]
 *        [--jwt-alg ALG] [--auth-timeout-ms N] [--max-message-size BYTES]
 *        [--allow-origin ORIGIN]... [--tls-cert FILE --tls-key FILE]
 *        [limits: --max-connections, --max-connections-per-address,
 *         --rate-limit, --rate-burst, --max-failed-logins,
 *         --handshake-timeout-ms, --max-login-size, --rx-buffer-size,
 *         --verify-rate,
 *         --verify-burst, --max-connections-per-user,
 *         --max-topics-per-connection]
 *        [liveness: --ping-interval-ms, --pong-timeout-ms,
 *         --idle-timeout-ms]
 *        [--threads N] [--permessage-deflate]
 *        [--metrics PATH] [--no-metrics]
 *        [--redis URL]... [--redis-prefix P]
 *        [--history N] [--history-ttl-ms N] (examples with rooms)
 *        [--require TYPE:CLAIM=VALUE]...
 *
 * The secret may also come from WSA_JWT_SECRET. The route is /ws/chat and
 * takes a token at the upgrade too; the URL goes to stdout as the first
 * line; SIGINT and SIGTERM stop. */
#ifndef WSA_EXAMPLE_H
#define WSA_EXAMPLE_H

#include <wsa.h>

struct example {
	const char *name;
	/* Register the route's handlers; a wsa_ error code. */
	int (*setup)(wsa_server *srv, wsa_route *route);
	/* The route's handlers, given the server as userdata. */
	wsa_open_fn on_open;
	wsa_close_fn on_close;
	/* Takes --history N and --history-ttl-ms: its rooms keep history. */
	bool history;
};

/* Run the example; returns the process's exit status. */
int example_main(int argc, char **argv, const struct example *ex);

/* The example's server on the host's loop (not started), from the same
 * command line; the URL goes to stdout. 0, or the exit status. */
int example_open(int argc, char **argv, const struct example *ex,
		 wsa_loop_kind kind, void *loop, wsa_server **srv);

/* Free the server of example_open and its verifier. */
void example_close(wsa_server *srv);

/* Milliseconds since the Unix epoch, for "timestamp". */
long long example_now_ms(void);

#endif
