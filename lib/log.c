/* Logging to the host's sink. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

#include "conn.h"
#include "route.h"
#include "server.h"

static const char *level_name(wsa_log_level level)
{
	switch (level) {
	case WSA_LOG_ERR:
		return "error";
	case WSA_LOG_WARNING:
		return "warning";
	case WSA_LOG_NOTICE:
		return "notice";
	case WSA_LOG_INFO:
		return "info";
	case WSA_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

void wsa__log_stderr(wsa_log_level level, const char *conn_id,
		     const char *route, const char *msg, void *userdata)
{
	(void)userdata;
	if (conn_id)
		fprintf(stderr, "wsa: %s [%s %s] %s\n", level_name(level),
			conn_id, route ? route : "-", msg);
	else
		fprintf(stderr, "wsa: %s %s\n", level_name(level), msg);
}

void wsa__log(const struct wsa_server *srv, wsa_log_level level,
	      const struct wsa_conn *conn, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	srv->cfg.log(level, conn ? conn->id : NULL,
		     conn && conn->route ? conn->route->path : NULL, line,
		     srv->cfg.log_userdata);
}
