/* The dispatcher: parse one message, find the handler for its "type". */
#include "core/dispatch.h"

#include <string.h>

#include "codec/json.h"
#include "codec/proto.h"
#include "core/auth.h"
#include "core/conn.h"
#include "core/route.h"
#include "core/server.h"
#include "core/service.h"
#include "policy/guard.h"
#include "util/log.h"

/* A message over the rate limit: refused with its id; closed when the
 * connection keeps on. */
static void refuse(struct wsa_conn *c, const json_t *id, bool close)
{
	if (close) {
		wsa__conn_rate_close(c, id);
	} else {
		wsa__conn_owed(
		    c, wsa__conn_queue_error(c, WSA_MSG_RATE_LIMIT, id));
		wsa__conn_rate_pause(c);
	}
}

/* A message of the type in slot i of its route (metrics.h). */
static void count_type(struct wsa_conn *c, size_t i)
{
	WSA_COUNT(c->svc, received[c->route->slot + i], 1);
}

/* The host's handler, timed when counting. */
static void run_handler(struct wsa_conn *c, const struct wsa_handler *h,
			json_t *msg)
{
	struct wsa_service *svc = c->svc;
	uint64_t t0;

	if (!svc->metrics.on) {
		h->fn(c, msg, h->userdata);
		return;
	}
	t0 = wsa__now_ns();
	h->fn(c, msg, h->userdata);
	/* c may be closed by now, never freed: svc stays. */
	wsa__observe(&svc->metrics, &svc->metrics.handler, wsa__now_ns() - t0);
}

void wsa__dispatch(struct wsa_conn *c, json_t *msg,
		   const struct wsa_json_head *head, bool oom)
{
	static const char pong[] = WSA_MSG_PONG;
	enum wsa_rate_verdict rate =
	    wsa__rate_take(&c->svc->srv->cfg, &c->rate);
	const json_t *id, *tv;
	const char *type;
	struct wsa_service *svc = c->svc;
	const struct wsa_conn *was = svc->replying;
	const json_t *was_id = svc->reply_id;

	if (rate != WSA_RATE_OK) {
		WSA_COUNT(c->svc, rate_limited, 1);
		refuse(c, head->id, rate == WSA_RATE_ABUSE);
		return;
	}
	id = head->id;
	tv = head->type;
	type = json_string_value(tv);
	if (!msg && oom) {
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (!type) {
		count_type(c, c->route->nhandlers + 1); /* other */
		wsa__conn_owed(c,
			       wsa__conn_queue_error(c, WSA_MSG_INVALID, id));
		return;
	}
	svc->replying = c;
	svc->reply_id = id;
	if (strlen(type) != json_string_length(tv)) {	/* a NUL inside */
		count_type(c, c->route->nhandlers + 1); /* other */
		wsa__conn_owed(
		    c, wsa__conn_queue_error(c, WSA_MSG_UNKNOWN_TYPE, id));
	} else if (!strcmp(type, "login")) {
		wsa__auth_refresh(c, msg);
	} else {
		const struct wsa_handler *h =
		    wsa__route_handler(c->route, type);
		bool ping = !h && !strcmp(type, "ping");

		/* Slots: the route's types, then "ping", then "other". */
		count_type(c, h ? (size_t)(h - c->route->handlers)
				: c->route->nhandlers + !ping);
		if (wsa__route_requires(c->route, type) &&
		    !wsa__route_allowed(c->route, type, wsa_conn_claims(c)))
			wsa__conn_owed(
			    c, wsa__conn_queue_error(c, WSA_MSG_FORBIDDEN, id));
		else if (h)
			run_handler(c, h, msg);
		else if (ping)
			wsa__conn_owed(c, wsa__conn_queue_text(
					      c, pong, sizeof(pong) - 1, id));
		else
			wsa__conn_owed(c, wsa__conn_queue_error(
					      c, WSA_MSG_UNKNOWN_TYPE, id));
	}
	/* As it was: a handler's call may have handled another's. */
	svc->replying = was;
	svc->reply_id = was_id;
}
