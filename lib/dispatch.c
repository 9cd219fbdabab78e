/* The dispatcher: parse one message, find the handler for its "type". */
#include "dispatch.h"

#include <string.h>

#include "auth.h"
#include "conn.h"
#include "parse.h"
#include "route.h"

const json_t *wsa__message_id(const json_t *msg)
{
	const json_t *id = json_object_get(msg, "id");

	return json_is_string(id) || json_is_number(id) ? id : NULL;
}

void wsa__dispatch(struct wsa_conn *c, const char *text, size_t len)
{
	static const char pong[] = "{\"type\":\"pong\"}";
	bool oom = false;
	json_t *msg = wsa__json_parse(text, len, &oom);
	const json_t *id = wsa__message_id(msg);
	const json_t *tv = json_object_get(msg, "type");
	const char *type = json_string_value(tv);
	const struct wsa_handler *h;

	if (!msg && oom) {
		wsa__conn_owed(c, WSA_ENOMEM);
		return;
	}
	if (!type) {
		wsa__conn_owed(c,
			       wsa__conn_queue_error(c, WSA_MSG_INVALID, id));
		json_decref(msg);
		return;
	}
	c->reply_id = id;
	if (strlen(type) != json_string_length(tv)) /* a NUL inside */
		wsa__conn_owed(
		    c, wsa__conn_queue_error(c, WSA_MSG_UNKNOWN_TYPE, id));
	else if (!strcmp(type, "login"))
		wsa__auth_refresh(c, msg);
	else if ((h = wsa__route_handler(c->route, type)))
		h->fn(c, msg, h->userdata);
	else if (!strcmp(type, "ping"))
		wsa__conn_owed(
		    c, wsa__conn_queue_text(c, pong, sizeof(pong) - 1, id));
	else
		wsa__conn_owed(
		    c, wsa__conn_queue_error(c, WSA_MSG_UNKNOWN_TYPE, id));
	c->reply_id = NULL;
	json_decref(msg);
}
