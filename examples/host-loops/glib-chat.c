/* glib-chat: echo-chat served by a GLib main loop the program runs
 * itself, on one thread of its own (GLib may start helper threads of
 * its own): the loop also runs the program's own timer (a line "tick N"
 * on stdout every --tick-ms, 1000 by default) and its signal sources.
 * SIGINT or SIGTERM stops the server; once its connections have drained
 * the loop quits and the server is freed. Options: echo-chat's
 * (--threads must stay 1), and --tick-ms. */
#include <signal.h>

#include <glib-unix.h>
#include <glib.h>

#include "echo.h"
#include "example.h"
#include "tick.h"

static gboolean on_tick(gpointer unused)
{
	(void)unused;
	tick_print();
	return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer srv)
{
	wsa_server_stop(srv);
	return G_SOURCE_CONTINUE;
}

static void on_stopped(wsa_server *srv, void *loop)
{
	(void)srv;
	g_main_loop_quit(loop);
}

int main(int argc, char **argv)
{
	static const struct example ex = {"glib-chat", echo_setup, NULL, NULL,
					  false};
	unsigned tick_ms = tick_ms_option(&argc, argv);
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	guint timer, sigint, sigterm;
	wsa_server *srv;
	int rc;

	if (!tick_ms) {
		fprintf(stderr, "glib-chat: bad --tick-ms\n");
		return 2;
	}
	rc = example_open(argc, argv, &ex, WSA_LOOP_GLIB, loop, &srv);
	if (rc) {
		g_main_loop_unref(loop);
		return rc;
	}
	timer = g_timeout_add(tick_ms, on_tick, NULL);
	sigint = g_unix_signal_add(SIGINT, on_signal, srv);
	sigterm = g_unix_signal_add(SIGTERM, on_signal, srv);
	if ((rc = wsa_server_on_stopped(srv, on_stopped, loop)) ||
	    (rc = wsa_server_start(srv)))
		fprintf(stderr, "glib-chat: %s\n", wsa_strerror(rc));
	else
		g_main_loop_run(loop);
	example_close(srv);
	g_source_remove(timer);
	g_source_remove(sigint);
	g_source_remove(sigterm);
	g_main_loop_unref(loop);
	return rc ? 1 : 0;
}
