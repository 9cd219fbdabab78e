/* The dispatcher: one whole text message of an authenticated connection
 * to the handler for its "type". */
#ifndef WSA_LIB_DISPATCH_H
#define WSA_LIB_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "codec/parse.h"

struct wsa_conn;

/* Route one message, msg (borrowed; NULL when the text was not JSON, or
 * when memory ran out parsing it: oom), whose "type" and "id" are in
 * head. */
void wsa__dispatch(struct wsa_conn *conn, json_t *msg,
		   const struct wsa_json_head *head, bool oom);

#endif
