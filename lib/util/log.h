/* Logging: a host sink with levels; lines are formatted only when the
 * level is enabled, so a quiet server does no logging work. */
#ifndef WSA_LIB_LOG_H
#define WSA_LIB_LOG_H

#include "wsa.h"

struct wsa_conn;

/* Format and emit one line to cfg's sink; conn_id and route may be NULL.
 * Use WSA_LOG instead. */
void wsa__log(const wsa_config *cfg, wsa_log_level level, const char *conn_id,
	      const char *route, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* What a line about a connection names (conn.c): its id and its route's
 * path; NULL for NULL. */
const char *wsa__conn_log_id(const struct wsa_conn *conn);
const char *wsa__conn_log_route(const struct wsa_conn *conn);

/* The default sink: "wsa: LEVEL [conn route] message" on stderr. */
void wsa__log_stderr(wsa_log_level level, const char *conn_id,
		     const char *route, const char *msg, void *userdata);

/* Whether a line at level would be emitted. */
#define WSA_LOG_ON(srv, level) ((int)(level) <= (int)(srv)->cfg.log_level)

#define WSA_LOG(srv, level, conn, ...)                                         \
	do {                                                                   \
		if (WSA_LOG_ON(srv, level))                                    \
			wsa__log(&(srv)->cfg, level, wsa__conn_log_id(conn),   \
				 wsa__conn_log_route(conn), __VA_ARGS__);      \
	} while (0)

#endif
