/* Logging: a host sink with levels; lines are formatted only when the
 * level is enabled, so a quiet server does no logging work. */
#ifndef WSA_LIB_LOG_H
#define WSA_LIB_LOG_H

#include <pthread.h>

#include "wsa.h"

struct wsa_conn;

/* Lines a remote peer can cause as often as it likes, one kind each:
 * each kind reaches the sink at most once a second, and how many were
 * held back is said by the next line of the kind, or by
 * wsa__log_flush() once the second is over. */
enum wsa_peer_line {
	WSA_PL_UPGRADE_TOKEN_UNREADABLE,
	WSA_PL_UPGRADE_LIMIT,
	WSA_PL_UPGRADE_FAILED_LOGINS,
	WSA_PL_UPGRADE_UNDECIDED,
	WSA_PL_UPGRADE_REVOKED,
	WSA_PL_UPGRADE_USER_LIMIT,
	WSA_PL_UPGRADE_REJECTED,
	WSA_PL_LOGIN_BUDGET,
	WSA_PL_LOGIN_USER_LIMIT,
	WSA_PL_LOGIN_REJECTED,
	WSA_PL_FIRST_NOT_LOGIN,
	WSA_PL_LOGIN_TIMEOUT,
	WSA_PL_REFRESH_NO_TOKEN,
	WSA_PL_NO_PONG,
	WSA_PL_QUEUE_FULL,
	WSA_PL_RATE_ABUSED,
	WSA_PL_COUNT
};

/* A server's account of those lines; its loops share it. */
struct wsa_log_limits {
	pthread_mutex_t lock;
	struct {
		long long since_ms; /* the last line of the kind shown */
		unsigned held;	    /* lines held back since */
		wsa_log_level level;
	} kind[WSA_PL_COUNT];
};

void wsa__log_limits_init(struct wsa_log_limits *l);
void wsa__log_limits_free(struct wsa_log_limits *l);

/* Whether a line of kind may be emitted now; when not, it is counted.
 * One that may, after held-back ones, is preceded by their count. Use
 * WSA_LOG_PEER instead. */
bool wsa__log_take(const wsa_config *cfg, struct wsa_log_limits *l,
		   enum wsa_peer_line kind, wsa_log_level level);

/* Say how many lines of each kind were held back, for the kinds whose
 * second is over (all of them when final): at most a line a kind. */
void wsa__log_flush(const wsa_config *cfg, struct wsa_log_limits *l,
		    bool final);

/* libwebsockets' own lines (it logs process-wide, on stderr), held back
 * alike: at most one a second of a kind (lines alike but for their
 * numbers), the count of the others said after. For
 * lws_set_log_level(). */
void wsa__lws_log(int level, const char *line);

/* Say how many of libwebsockets' lines were held back, as
 * wsa__log_flush() does. */
void wsa__lws_log_flush(bool final);

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

/* WSA_LOG for a line a remote peer can cause: rate-limited by kind. */
#define WSA_LOG_PEER(srv, level, kind, conn, ...)                              \
	do {                                                                   \
		if (WSA_LOG_ON(srv, level) &&                                  \
		    wsa__log_take(&(srv)->cfg, &(srv)->log_limits, kind,       \
				  level))                                      \
			wsa__log(&(srv)->cfg, level, wsa__conn_log_id(conn),   \
				 wsa__conn_log_route(conn), __VA_ARGS__);      \
	} while (0)

#endif
