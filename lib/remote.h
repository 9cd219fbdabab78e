/* Calls from any thread: sends and closes addressed by connection id,
 * queued under a lock and carried out on the service thread, in the order
 * they were made, after lws_cancel_service() wakes it. */
#ifndef WSA_LIB_REMOTE_H
#define WSA_LIB_REMOTE_H

#include <stddef.h>

#include "conn.h"

enum wsa_cmd_kind {
	WSA_CMD_SEND,	   /* text to conn_id */
	WSA_CMD_CLOSE,	   /* conn_id, with code and the reason in text */
	WSA_CMD_PUBLISH,   /* text to topic name, except conn_id if set */
	WSA_CMD_BROADCAST, /* text to the route whose path is name */
	WSA_CMD_SEND_UID,  /* text to the connections of uid name */
	WSA_CMD_JOIN,	   /* conn_id joins topic name */
	WSA_CMD_LEAVE,	   /* conn_id leaves topic name */
	WSA_CMD_CLOSE_UID, /* the connections of uid name; code, reason */
	WSA_CMD_REVOKE,	   /* connections with "iat" before code2; code,
			      reason */
};

struct wsa_cmd {
	struct wsa_cmd *next;
	enum wsa_cmd_kind kind;
	char conn_id[WSA_CONN_ID_LEN + 1]; /* "" when none */
	int code;
	long long before; /* WSA_CMD_REVOKE */
	const char *name; /* in text, after the JSON */
	size_t len;	  /* of the JSON text (or reason) */
	char text[];	  /* JSON text '\0' name '\0' */
};

struct wsa_server;

/* Carry out the queued calls; service thread. */
void wsa__remote_drain(struct wsa_server *srv);

/* Drop the calls still queued, at server free. */
void wsa__remote_free(struct wsa_server *srv);

#endif
