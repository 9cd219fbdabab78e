/* ev-chat: echo-chat served by a libev loop the program runs itself, on
 * one thread and no other: the loop also runs the program's own timer
 * (a line "tick N" on stdout every --tick-ms, 1000 by default) and its
 * signal watchers. SIGINT or SIGTERM stops the server; once its
 * connections have drained the loop is broken out of and the server
 * freed. Options: echo-chat's (--threads must stay 1), and --tick-ms. */
#include <signal.h>

#include <ev.h>

#include "echo.h"
#include "example.h"
#include "tick.h"

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop, (void)t, (void)revents;
	tick_print();
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop, (void)revents;
	wsa_server_stop(s->data);
}

static void on_stopped(wsa_server *srv, void *loop)
{
	(void)srv;
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct example ex = {"ev-chat", echo_setup, NULL, NULL,
					  false};
	unsigned tick_ms = tick_ms_option(&argc, argv);
	struct ev_loop *loop = ev_default_loop(0);
	ev_timer timer;
	ev_signal sigint, sigterm;
	wsa_server *srv;
	int rc;

	if (!tick_ms) {
		fprintf(stderr, "ev-chat: bad --tick-ms\n");
		return 2;
	}
	rc = example_open(argc, argv, &ex, WSA_LOOP_LIBEV, loop, &srv);
	if (rc)
		return rc;
	ev_timer_init(&timer, on_tick, tick_ms / 1000., tick_ms / 1000.);
	ev_timer_start(loop, &timer);
	ev_signal_init(&sigint, on_signal, SIGINT);
	ev_signal_init(&sigterm, on_signal, SIGTERM);
	sigint.data = sigterm.data = srv;
	ev_signal_start(loop, &sigint);
	ev_signal_start(loop, &sigterm);
	if ((rc = wsa_server_on_stopped(srv, on_stopped, loop)) ||
	    (rc = wsa_server_start(srv)))
		fprintf(stderr, "ev-chat: %s\n", wsa_strerror(rc));
	else
		ev_run(loop, 0);
	example_close(srv);
	ev_timer_stop(loop, &timer);
	ev_signal_stop(loop, &sigint);
	ev_signal_stop(loop, &sigterm);
	ev_loop_destroy(loop);
	return rc ? 1 : 0;
}
