/* The dispatcher: one whole text message of an authenticated connection
 * to the handler for its "type". */
#ifndef WSA_LIB_DISPATCH_H
#define WSA_LIB_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct wsa_conn;

/* Parse and route one message (len bytes, not NUL-terminated). */
void wsa__dispatch(struct wsa_conn *conn, const char *text, size_t len);

#endif
