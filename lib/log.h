/* Logging: a host sink with levels; lines are formatted only when the
 * level is enabled, so a quiet server does no logging work. */
#ifndef WSA_LIB_LOG_H
#define WSA_LIB_LOG_H

#include "wsa.h"

struct wsa_server;
struct wsa_conn;

/* Format and emit one line. conn may be NULL. Use WSA_LOG instead. */
void wsa__log(const struct wsa_server *srv, wsa_log_level level,
	      const struct wsa_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The default sink: "wsa: LEVEL [conn route] message" on stderr. */
void wsa__log_stderr(wsa_log_level level, const char *conn_id,
		     const char *route, const char *msg, void *userdata);

/* Whether a line at level would be emitted. */
#define WSA_LOG_ON(srv, level) ((int)(level) <= (int)(srv)->cfg.log_level)

#define WSA_LOG(srv, level, conn, ...)                                         \
	do {                                                                   \
		if (WSA_LOG_ON(srv, level))                                    \
			wsa__log(srv, level, conn, __VA_ARGS__);               \
	} while (0)

#endif
