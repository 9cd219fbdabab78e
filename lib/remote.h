/* Calls from any thread: sends and closes addressed by connection id,
 * queued under a lock and carried out on the service thread, in the order
 * they were made, after lws_cancel_service() wakes it. */
#ifndef WSA_LIB_REMOTE_H
#define WSA_LIB_REMOTE_H

#include <stddef.h>

#include "conn.h"

enum wsa_cmd_kind { WSA_CMD_SEND, WSA_CMD_CLOSE };

struct wsa_cmd {
	struct wsa_cmd *next;
	enum wsa_cmd_kind kind;
	char conn_id[WSA_CONN_ID_LEN + 1];
	int code;
	size_t len;  /* of text */
	char text[]; /* the JSON object, or the close reason */
};

struct wsa_server;

/* Carry out the queued calls; service thread. */
void wsa__remote_drain(struct wsa_server *srv);

/* Drop the calls still queued, at server free. */
void wsa__remote_free(struct wsa_server *srv);

#endif
