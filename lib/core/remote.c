/* Calls by connection id from any thread: a send, a close, a join or a
 * leave is a work item for the loop that owns the connection (its id
 * says which), carried out there in the order the calls were made. */
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "core/conn.h"
#include "core/server.h"
#include "core/service.h"
#include "fanout/fanout.h"
#include "util/log.h"

/* One call: what to do to which connection. text holds the JSON text of
 * a send, the reason of a close, or the topic of a join or leave. */
struct call {
	struct wsa_work work;
	char conn_id[WSA_CONN_ID_LEN + 1];
	int code;
	unsigned long long since; /* a join: fan-out sent before the call */
	size_t len;
	char text[];
};

/* The connection with this id on svc, if it is open and authenticated:
 * nothing but the gate's answers reaches a client before its login is
 * accepted. */
static struct wsa_conn *target(struct wsa_service *svc, const char *conn_id)
{
	struct wsa_conn *c = wsa__conn_by_id(svc, conn_id);

	if (!c || !wsa__conn_live(c) || !c->authenticated)
		return NULL;
	return c;
}

static void call_drop(struct wsa_work *w)
{
	free(w);
}

static void run_send(struct wsa_work *w, void *svc)
{
	struct call *k = (struct call *)(void *)w;
	struct wsa_conn *c = target(svc, k->conn_id);

	if (c)
		wsa__conn_owed(c,
			       wsa__conn_queue_text(c, k->text, k->len, NULL));
	free(k);
}

static void run_close(struct wsa_work *w, void *svc)
{
	struct call *k = (struct call *)(void *)w;
	struct wsa_conn *c = target(svc, k->conn_id);

	if (c)
		wsa__conn_close(c, k->code, k->len ? k->text : NULL);
	free(k);
}

static void run_join(struct wsa_work *w, void *svc)
{
	struct call *k = (struct call *)(void *)w;
	struct wsa_conn *c = target(svc, k->conn_id);
	int rc;

	if (c) {
		rc = wsa__topic_join(c, k->text, k->since);
		if (rc == WSA_ELIMIT)
			WSA_LOG(c->svc->srv, WSA_LOG_NOTICE, c,
				"join refused: in max_topics_per_connection "
				"topics already");
		wsa__conn_owed(c, rc);
	}
	free(k);
}

static void run_leave(struct wsa_work *w, void *svc)
{
	struct call *k = (struct call *)(void *)w;
	struct wsa_conn *c = target(svc, k->conn_id);

	if (c)
		wsa__topic_leave(c, k->text);
	free(k);
}

/* Hand k to the loop of its connection: carried out now when the caller
 * runs that loop (after what other threads queued before), else queued.
 * Takes k. */
static int submit(struct wsa_server *srv, struct call *k)
{
	struct wsa_service *svc = wsa__service_of_id(srv, k->conn_id);

	if (atomic_load(&srv->stop_requested)) {
		free(k);
		return WSA_ESTATE;
	}
	if (!svc) { /* no loop of this server made that id */
		free(k);
		return WSA_OK;
	}
	if (wsa__on_loop(svc)) {
		wsa__workq_drain(&svc->workq, svc);
		k->work.run(&k->work, svc);
		return WSA_OK;
	}
	wsa__workq_push(&svc->workq, &k->work);
	return WSA_OK;
}

/* A call carrying len bytes of text, copied; NULL without memory. */
static struct call *call_new(void (*run)(struct wsa_work *, void *),
			     const char *conn_id, const char *text, size_t len)
{
	struct call *k = malloc(sizeof(*k) + len + 1);

	if (!k)
		return NULL;
	k->work.run = run;
	k->work.drop = call_drop;
	memcpy(k->conn_id, conn_id, sizeof(k->conn_id));
	k->code = 0;
	k->len = len;
	memcpy(k->text, text, len);
	k->text[len] = '\0';
	return k;
}

int wsa_server_send(wsa_server *srv, const char *conn_id, const json_t *msg)
{
	struct wsa_buf b = {0};
	struct call *k;

	if (!srv || !wsa__id_ok(conn_id) || !json_is_object(msg))
		return WSA_EINVAL;
	if (!wsa__json_dump(msg, &b))
		return WSA_ENOMEM;
	k = call_new(run_send, conn_id, b.p, b.len);
	wsa__buf_free(&b);
	return k ? submit(srv, k) : WSA_ENOMEM;
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
	struct call *k;

	if (!srv || !wsa__id_ok(conn_id) || !wsa__close_code_ok(code) ||
	    (reason && strlen(reason) > 123))
		return WSA_EINVAL;
	k = call_new(run_close, conn_id, reason ? reason : "",
		     reason ? strlen(reason) : 0);
	if (!k)
		return WSA_ENOMEM;
	k->code = code;
	return submit(srv, k);
}

static int membership_call(wsa_server *srv,
			   void (*run)(struct wsa_work *, void *),
			   const char *conn_id, const char *topic)
{
	struct call *k;

	if (!srv || !wsa__id_ok(conn_id) || !wsa__name_ok(topic))
		return WSA_EINVAL;
	k = call_new(run, conn_id, topic, strlen(topic));
	if (!k)
		return WSA_ENOMEM;
	k->since = atomic_load(&srv->fan_seq);
	return submit(srv, k);
}

int wsa_server_join(wsa_server *srv, const char *conn_id, const char *topic)
{
	return membership_call(srv, run_join, conn_id, topic);
}

int wsa_server_leave(wsa_server *srv, const char *conn_id, const char *topic)
{
	return membership_call(srv, run_leave, conn_id, topic);
}
