/* uv-chat: echo-chat served by a libuv loop the program runs itself, on
 * one thread and no other: the loop also runs the program's own timer
 * (a line "tick N" on stdout every --tick-ms, 1000 by default) and its
 * signal watchers. SIGINT or SIGTERM stops the server; once its
 * connections have drained the loop is stopped, the server freed, and
 * the loop run until its last handle has closed. Options: echo-chat's
 * (--threads must stay 1), and --tick-ms. */
#include <signal.h>

#include <uv.h>

#include "echo.h"
#include "example.h"
#include "tick.h"

static void on_tick(uv_timer_t *t)
{
	(void)t;
	tick_print();
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	wsa_server_stop(s->data);
}

static void on_stopped(wsa_server *srv, void *loop)
{
	(void)srv;
	uv_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct example ex = {"uv-chat", echo_setup, NULL, NULL,
					  false};
	unsigned tick_ms = tick_ms_option(&argc, argv);
	uv_loop_t loop;
	uv_timer_t timer;
	uv_signal_t sigint, sigterm;
	wsa_server *srv;
	int rc;

	if (!tick_ms) {
		fprintf(stderr, "uv-chat: bad --tick-ms\n");
		return 2;
	}
	uv_loop_init(&loop);
	rc = example_open(argc, argv, &ex, WSA_LOOP_LIBUV, &loop, &srv);
	if (rc) {
		uv_loop_close(&loop);
		return rc;
	}
	uv_timer_init(&loop, &timer);
	uv_timer_start(&timer, on_tick, tick_ms, tick_ms);
	uv_signal_init(&loop, &sigint);
	uv_signal_init(&loop, &sigterm);
	sigint.data = sigterm.data = srv;
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	if ((rc = wsa_server_on_stopped(srv, on_stopped, &loop)) ||
	    (rc = wsa_server_start(srv))) {
		fprintf(stderr, "uv-chat: %s\n", wsa_strerror(rc));
		wsa_server_stop(srv); /* ends at once: not started */
	} else {
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	/* The loop stays usable: the server's handles close as it runs on,
	 * and the program's own with them. */
	example_close(srv);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop)) {
		fprintf(stderr, "uv-chat: a handle was left open\n");
		return 1;
	}
	return rc ? 1 : 0;
}
