/* Sends and closes by connection id, from any thread. See remote.h. */
#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "route.h"
#include "server.h"
#include "topic.h"

/* The connection with this id, if it is open and authenticated: nothing
 * but the gate's answers reaches a client before its login is accepted. */
static struct wsa_conn *target(struct wsa_server *srv, const char *conn_id)
{
	struct wsa_conn *c = wsa__map_get(&srv->conns_by_id, conn_id);

	if (!c || !wsa__conn_live(c) || !c->authenticated)
		return NULL;
	return c;
}

/* Calls that address one connection. */
static void run_conn_cmd(struct wsa_server *srv, struct wsa_cmd *cmd)
{
	struct wsa_conn *c = target(srv, cmd->conn_id);
	int rc;

	if (!c)
		return;
	switch (cmd->kind) {
	case WSA_CMD_CLOSE:
		wsa__conn_close(c, cmd->code, cmd->len ? cmd->text : NULL);
		break;
	case WSA_CMD_JOIN:
		rc = wsa__topic_join(c, cmd->name);
		if (rc == WSA_ELIMIT)
			WSA_LOG(srv, WSA_LOG_NOTICE, c,
				"join refused: in max_topics_per_connection "
				"topics already");
		wsa__conn_owed(c, rc);
		break;
	case WSA_CMD_LEAVE:
		wsa__topic_leave(c, cmd->name);
		break;
	default:
		wsa__conn_owed(
		    c, wsa__conn_queue_text(c, cmd->text, cmd->len, NULL));
	}
}

/* Close every authenticated connection whose token was issued before
 * the time (or does not say when). */
static void revoke_before(struct wsa_server *srv, const struct wsa_cmd *cmd)
{
	struct wsa_conn *c;

	for (c = srv->conns; c; c = c->next)
		if (c->authenticated && wsa__conn_live(c) &&
		    c->iat < cmd->before)
			wsa__conn_close(c, cmd->code,
					cmd->len ? cmd->text : NULL);
}

static void run_cmd(struct wsa_server *srv, struct wsa_cmd *cmd)
{
	struct wsa_route *route;

	switch (cmd->kind) {
	case WSA_CMD_PUBLISH:
		wsa__topic_publish(srv, cmd->name, cmd->text, cmd->len,
				   cmd->conn_id[0] ? target(srv, cmd->conn_id)
						   : NULL);
		break;
	case WSA_CMD_BROADCAST:
		route = wsa__route_find(srv, cmd->name, strlen(cmd->name));
		if (route)
			wsa__route_broadcast(srv, route, cmd->text, cmd->len);
		break;
	case WSA_CMD_SEND_UID:
		wsa__user_send(srv, cmd->name, cmd->text, cmd->len);
		break;
	case WSA_CMD_CLOSE_UID:
		wsa__user_close(srv, cmd->name, cmd->code,
				cmd->len ? cmd->text : NULL);
		break;
	case WSA_CMD_REVOKE:
		revoke_before(srv, cmd);
		break;
	default:
		run_conn_cmd(srv, cmd);
	}
}

void wsa__remote_drain(struct wsa_server *srv)
{
	struct wsa_cmd *list;

	pthread_mutex_lock(&srv->cmd_lock);
	list = srv->cmd_head;
	srv->cmd_head = srv->cmd_tail = NULL;
	pthread_mutex_unlock(&srv->cmd_lock);
	while (list) {
		struct wsa_cmd *next = list->next;

		run_cmd(srv, list);
		free(list);
		list = next;
	}
}

void wsa__remote_free(struct wsa_server *srv)
{
	struct wsa_cmd *list = srv->cmd_head;

	while (list) {
		struct wsa_cmd *next = list->next;

		free(list);
		list = next;
	}
	srv->cmd_head = srv->cmd_tail = NULL;
}

/* Queue cmd for the service thread, or carry it out now when called on
 * it; takes cmd. */
static int submit(struct wsa_server *srv, struct wsa_cmd *cmd)
{
	if (atomic_load(&srv->stop_requested)) {
		free(cmd);
		return WSA_ESTATE;
	}
	if (wsa__on_service_thread(srv)) {
		wsa__remote_drain(srv); /* what other threads queued first */
		run_cmd(srv, cmd);
		free(cmd);
		return WSA_OK;
	}
	cmd->next = NULL;
	pthread_mutex_lock(&srv->cmd_lock);
	if (srv->cmd_tail)
		srv->cmd_tail->next = cmd;
	else
		srv->cmd_head = cmd;
	srv->cmd_tail = cmd;
	pthread_mutex_unlock(&srv->cmd_lock);
	lws_cancel_service(srv->ctx);
	return WSA_OK;
}

/* A call: the JSON text (or reason) of len bytes, then name, copied. */
static struct wsa_cmd *cmd_new(enum wsa_cmd_kind kind, const char *conn_id,
			       const char *text, size_t len, const char *name)
{
	size_t nlen = name ? strlen(name) : 0;
	struct wsa_cmd *cmd = malloc(sizeof(*cmd) + len + nlen + 2);

	if (!cmd)
		return NULL;
	cmd->kind = kind;
	snprintf(cmd->conn_id, sizeof(cmd->conn_id), "%s",
		 conn_id ? conn_id : "");
	cmd->code = 0;
	cmd->len = len;
	memcpy(cmd->text, text, len);
	cmd->text[len] = '\0';
	cmd->name = cmd->text + len + 1;
	memcpy(cmd->text + len + 1, name ? name : "", nlen + 1);
	return cmd;
}

static bool id_ok(const char *conn_id)
{
	return conn_id && strlen(conn_id) == WSA_CONN_ID_LEN;
}

/* Topic names, uids and paths: non-empty, and not without bound. */
static bool name_ok(const char *name)
{
	return name && *name && strlen(name) <= 1024;
}

/* Serialise msg and queue a call carrying it. */
static int submit_json(struct wsa_server *srv, enum wsa_cmd_kind kind,
		       const char *conn_id, const json_t *msg, const char *name)
{
	struct wsa_buf b = {0};
	struct wsa_cmd *cmd;

	if (!wsa__json_dump(msg, &b))
		return WSA_ENOMEM;
	cmd = cmd_new(kind, conn_id, b.p, b.len, name);
	wsa__buf_free(&b);
	return cmd ? submit(srv, cmd) : WSA_ENOMEM;
}

int wsa_server_send(wsa_server *srv, const char *conn_id, const json_t *msg)
{
	if (!srv || !id_ok(conn_id) || !json_is_object(msg))
		return WSA_EINVAL;
	return submit_json(srv, WSA_CMD_SEND, conn_id, msg, NULL);
}

int wsa_server_send_new(wsa_server *srv, const char *conn_id, json_t *msg)
{
	int rc = wsa_server_send(srv, conn_id, msg);

	json_decref(msg);
	return rc;
}

/* A close of one or many connections; NULL for a bad code or reason, or
 * when memory is short (*rc says which). */
static struct wsa_cmd *close_cmd(enum wsa_cmd_kind kind, const char *conn_id,
				 const char *name, int code, const char *reason,
				 int *rc)
{
	struct wsa_cmd *cmd;

	*rc = WSA_EINVAL;
	if (!wsa__close_code_ok(code) || (reason && strlen(reason) > 123))
		return NULL;
	*rc = WSA_ENOMEM;
	cmd = cmd_new(kind, conn_id, reason ? reason : "",
		      reason ? strlen(reason) : 0, name);
	if (cmd)
		cmd->code = code;
	return cmd;
}

int wsa_server_close(wsa_server *srv, const char *conn_id, int code,
		     const char *reason)
{
	struct wsa_cmd *cmd;
	int rc;

	if (!srv || !id_ok(conn_id))
		return WSA_EINVAL;
	cmd = close_cmd(WSA_CMD_CLOSE, conn_id, NULL, code, reason, &rc);
	return cmd ? submit(srv, cmd) : rc;
}

int wsa_server_close_uid(wsa_server *srv, const char *uid, int code,
			 const char *reason)
{
	struct wsa_cmd *cmd;
	int rc;

	if (!srv || !name_ok(uid))
		return WSA_EINVAL;
	cmd = close_cmd(WSA_CMD_CLOSE_UID, NULL, uid, code, reason, &rc);
	return cmd ? submit(srv, cmd) : rc;
}

int wsa_server_revoke_before(wsa_server *srv, long long before, int code,
			     const char *reason)
{
	struct wsa_cmd *cmd;
	long long old;
	int rc;

	if (!srv || before <= 0)
		return WSA_EINVAL;
	cmd = close_cmd(WSA_CMD_REVOKE, NULL, NULL, code, reason, &rc);
	if (!cmd)
		return rc;
	cmd->before = before;
	/* Logins see the new time at once, from here on. */
	old = atomic_load(&srv->revoked_before);
	while (old < before && !atomic_compare_exchange_weak(
				   &srv->revoked_before, &old, before))
		;
	return submit(srv, cmd);
}

int wsa_server_publish(wsa_server *srv, const char *topic, const json_t *msg,
		       const char *except_conn_id)
{
	if (!srv || !name_ok(topic) || !json_is_object(msg) ||
	    (except_conn_id && !id_ok(except_conn_id)))
		return WSA_EINVAL;
	return submit_json(srv, WSA_CMD_PUBLISH, except_conn_id, msg, topic);
}

int wsa_server_broadcast(wsa_server *srv, const char *path, const json_t *msg)
{
	if (!srv || !name_ok(path) || !json_is_object(msg))
		return WSA_EINVAL;
	return submit_json(srv, WSA_CMD_BROADCAST, NULL, msg, path);
}

int wsa_server_send_uid(wsa_server *srv, const char *uid, const json_t *msg)
{
	if (!srv || !name_ok(uid) || !json_is_object(msg))
		return WSA_EINVAL;
	return submit_json(srv, WSA_CMD_SEND_UID, NULL, msg, uid);
}

static int membership_call(wsa_server *srv, enum wsa_cmd_kind kind,
			   const char *conn_id, const char *topic)
{
	struct wsa_cmd *cmd;

	if (!srv || !id_ok(conn_id) || !name_ok(topic))
		return WSA_EINVAL;
	cmd = cmd_new(kind, conn_id, "", 0, topic);
	return cmd ? submit(srv, cmd) : WSA_ENOMEM;
}

int wsa_server_join(wsa_server *srv, const char *conn_id, const char *topic)
{
	return membership_call(srv, WSA_CMD_JOIN, conn_id, topic);
}

int wsa_server_leave(wsa_server *srv, const char *conn_id, const char *topic)
{
	return membership_call(srv, WSA_CMD_LEAVE, conn_id, topic);
}

/* ------------------------------------------- on the service thread */

int wsa_conn_join(wsa_conn *c, const char *topic)
{
	if (!c || !name_ok(topic))
		return WSA_EINVAL;
	if (!wsa__on_service_thread(c->srv))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	return wsa__topic_join(c, topic);
}

int wsa_conn_leave(wsa_conn *c, const char *topic)
{
	if (!c || !name_ok(topic))
		return WSA_EINVAL;
	if (!wsa__on_service_thread(c->srv))
		return WSA_ENOTHREAD;
	wsa__topic_leave(c, topic);
	return WSA_OK;
}

bool wsa_conn_in_topic(const wsa_conn *c, const char *topic)
{
	return c && topic && wsa__topic_membership(c, topic);
}

size_t wsa_conn_topics(const wsa_conn *c, const char **out, size_t max)
{
	const struct wsa_member *m;
	size_t n = 0;

	for (m = c ? c->topics : NULL; m; m = m->conn_next, n++)
		if (n < max && out)
			out[n] = m->topic->name;
	return n;
}

size_t wsa_server_topic_conns(wsa_server *srv, const char *topic,
			      wsa_conn **out, size_t max)
{
	struct wsa_topic *t;
	struct wsa_member *m;
	size_t n = 0;

	if (!srv || !topic || !wsa__on_service_thread(srv))
		return 0;
	t = wsa__map_get(&srv->topics, topic);
	for (m = t ? t->members : NULL; m; m = m->next, n++)
		if (n < max && out)
			out[n] = m->conn;
	return n;
}
