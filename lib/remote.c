/* Sends and closes by connection id, from any thread. See remote.h. */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "server.h"

/* The connection with this id, if it is open and authenticated: nothing
 * but the gate's answers reaches a client before its login is accepted. */
static struct wsa_conn *target(struct wsa_server *srv, const char *conn_id)
{
	struct wsa_conn *c = wsa__map_get(&srv->conns_by_id, conn_id);

	if (!c || !c->wsi || c->state == WSA_CONN_CLOSING || !c->authenticated)
		return NULL;
	return c;
}

static void run_cmd(struct wsa_server *srv, struct wsa_cmd *cmd)
{
	struct wsa_conn *c = target(srv, cmd->conn_id);

	if (!c)
		return;
	if (cmd->kind == WSA_CMD_CLOSE) {
		wsa__conn_close(c, cmd->code, cmd->len ? cmd->text : NULL);
		return;
	}
	if (wsa__conn_queue_text(c, cmd->text, cmd->len, NULL) == WSA_ENOMEM)
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
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

static struct wsa_cmd *cmd_new(enum wsa_cmd_kind kind, const char *conn_id,
			       const char *text, size_t len)
{
	struct wsa_cmd *cmd = malloc(sizeof(*cmd) + len + 1);

	if (!cmd)
		return NULL;
	cmd->kind = kind;
	memcpy(cmd->conn_id, conn_id, sizeof(cmd->conn_id));
	cmd->code = 0;
	cmd->len = len;
	memcpy(cmd->text, text, len);
	cmd->text[len] = '\0';
	return cmd;
}

static bool id_ok(const char *conn_id)
{
	return conn_id && strlen(conn_id) == WSA_CONN_ID_LEN;
}

int wsa_server_send(wsa_server *srv, const char *conn_id, const json_t *msg)
{
	struct wsa_buf b = {0};
	struct wsa_cmd *cmd;

	if (!srv || !id_ok(conn_id) || !json_is_object(msg))
		return WSA_EINVAL;
	if (!wsa__json_dump(msg, &b))
		return WSA_ENOMEM;
	cmd = cmd_new(WSA_CMD_SEND, conn_id, b.p, b.len);
	wsa__buf_free(&b);
	return cmd ? submit(srv, cmd) : WSA_ENOMEM;
}

int wsa_server_send_new(wsa_server *srv, const char *conn_id, json_t *msg)
{
	int rc = wsa_server_send(srv, conn_id, msg);

	json_decref(msg);
	return rc;
}

int wsa_server_close(wsa_server *srv, const char *conn_id, int code,
		     const char *reason)
{
	struct wsa_cmd *cmd;

	if (!srv || !id_ok(conn_id) || !wsa__close_code_ok(code) ||
	    (reason && strlen(reason) > 123))
		return WSA_EINVAL;
	cmd = cmd_new(WSA_CMD_CLOSE, conn_id, reason ? reason : "",
		      reason ? strlen(reason) : 0);
	if (!cmd)
		return WSA_ENOMEM;
	cmd->code = code;
	return submit(srv, cmd);
}
