/* Finishing a free on the host's loop. lws 4.1.6 on a foreign libuv loop
 * closes its handles asynchronously, and completes the destruction of a
 * context only when asked again after they have closed; until then its
 * callbacks still reach the server. An idle handle of ours asks once no
 * handle of the loop is closing, then frees the rest. */
#include "core/server.h"

#ifdef WSA_HAVE_LIBUV
#include <stdlib.h>

#include <uv.h>

#include "util/log.h"

struct finisher {
	uv_idle_t idle;
	struct wsa_server *srv;
};

static void note_closing(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h))
		*(bool *)arg = true;
}

static void finisher_closed(uv_handle_t *h)
{
	free(h->data);
}

static void finisher_idle(uv_idle_t *idle)
{
	struct finisher *f = idle->data;
	bool closing = false;

	uv_walk(idle->loop, note_closing, &closing);
	if (closing || !wsa__server_free_again(f->srv))
		return;
	uv_idle_stop(idle);
	uv_close((uv_handle_t *)idle, finisher_closed);
}

void wsa__host_loop_finish(struct wsa_server *srv)
{
	struct finisher *f;

	if (srv->host_loop_kind == WSA_LOOP_LIBUV &&
	    (f = calloc(1, sizeof(*f)))) {
		f->srv = srv;
		uv_idle_init(srv->host_loop, &f->idle);
		f->idle.data = f;
		uv_idle_start(&f->idle, finisher_idle);
		return;
	}
	/* No other loop leaves lws half done; if one did, the server stays
	 * allocated rather than freed under lws' feet. */
	WSA_LOG(srv, WSA_LOG_ERR, NULL, "cannot finish freeing the server");
}
#else
#include "util/log.h"

void wsa__host_loop_finish(struct wsa_server *srv)
{
	WSA_LOG(srv, WSA_LOG_ERR, NULL, "cannot finish freeing the server");
}
#endif
