/* The in-process broker: fan-out messages reach the other loops of the
 * server through their work queues, in the order each thread published;
 * presence is a table under one lock, and its answers come inside the
 * join or leave. See broker.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/broker.h"
#include "fanout/history.h"
#include "fanout/message.h"
#include "fanout/presence.h"
#include "util/clock.h"
#include "util/workq.h"
#include "wsa.h"

struct local_broker {
	struct wsa_broker base;
	struct wsa_broker_hooks hooks;
	unsigned n;
	struct wsa_workq **queues; /* one per loop */
	pthread_mutex_t lock;	   /* presence */
	struct wsa_presence presence;
	struct wsa_history history; /* its own lock */
};

/* One loop's delivery of a message. */
struct delivery {
	struct wsa_work work;
	struct local_broker *lb;
	struct wsa_fan *m;
};

static void delivery_run(struct wsa_work *w, void *ctx)
{
	struct delivery *d = (struct delivery *)(void *)w;

	d->lb->hooks.deliver(ctx, d->m);
	wsa__fan_unref(d->m);
	free(d);
}

static void delivery_drop(struct wsa_work *w)
{
	struct delivery *d = (struct delivery *)(void *)w;

	wsa__fan_unref(d->m);
	free(d);
}

/* A reference of m on the work queue of every loop but origin. */
static void push_all(struct local_broker *lb, struct wsa_fan *m, int origin)
{
	unsigned i;

	for (i = 0; i < lb->n; i++) {
		struct delivery *d;

		if ((int)i == origin)
			continue;
		/* Without memory this loop misses the message, as a loop of
		 * one would drop it. */
		d = malloc(sizeof(*d));
		if (!d)
			continue;
		d->work.run = delivery_run;
		d->work.drop = delivery_drop;
		d->lb = lb;
		d->m = m;
		wsa__fan_ref(m);
		wsa__workq_push(lb->queues[i], &d->work);
	}
}

static void publish(struct wsa_broker *b, struct wsa_fan *m, int origin)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;

	/* For the other nodes only: there are none. */
	if (!m->remote_only)
		push_all(lb, m, origin);
	wsa__fan_unref(m);
}

/* The stamped message of k at the topic's next offset, framed (the
 * reply's copy too); NULL without memory. */
static struct wsa_fan *kept_fan(const struct wsa_kept_pub *k,
				const struct wsa_history_topic *t)
{
	struct wsa_buf text = {0}, reply = {0};
	struct wsa_fan *m = NULL;

	if (wsa__history_stamp(&text, k->text, k->len, t->offset + 1, t->epoch,
			       NULL) &&
	    (!k->reply ||
	     wsa__history_stamp(&reply, k->text, k->len, t->offset + 1,
				t->epoch, k->id_text)))
		m = wsa__fan_new_reply(text.p, text.len,
				       k->reply ? reply.p : NULL, reply.len,
				       k->topic);
	wsa__buf_free(&text);
	wsa__buf_free(&reply);
	if (!m)
		return NULL;
	m->seq = k->seq;
	m->t0 = k->t0;
	m->offset = t->offset + 1;
	m->epoch_id = wsa__history_epoch_id(t->epoch);
	if (k->except)
		memcpy(m->except, k->except, sizeof(m->except));
	if (k->reply)
		memcpy(m->reply, k->reply, sizeof(m->reply));
	return m;
}

int wsa__broker_local_publish_kept(struct wsa_broker *b,
				   const struct wsa_kept_pub *k)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	unsigned long long now;
	struct wsa_history_topic *t;
	struct wsa_fan *m = NULL;
	int rc = WSA_ENOMEM;

	/* Numbered, kept and pushed under one lock: every loop's queue gets
	 * a topic's publications in the order of their offsets. The time is
	 * read under it too, so it never goes back from one to the next. */
	pthread_mutex_lock(&lb->history.lock);
	now = wsa__now_ms();
	t = wsa__history_topic(&lb->history, k->rule, k->topic, now);
	if (t && (m = kept_fan(k, t)) &&
	    wsa__history_keep(&lb->history, t, m, now)) {
		push_all(lb, m, -1);
		rc = WSA_OK;
	}
	pthread_mutex_unlock(&lb->history.lock);
	if (m)
		wsa__fan_unref(m);
	return rc;
}

int wsa__broker_local_recover(struct wsa_broker *b,
			      const struct wsa_recover_op *op)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	unsigned long long now_ms;
	struct wsa_history_topic *t;
	struct wsa_fan **missed;
	wsa_position now;
	bool recovered = false;
	size_t n = 0;

	pthread_mutex_lock(&lb->history.lock);
	now_ms = wsa__now_ms();
	t = wsa__history_topic(&lb->history, op->rule, op->topic, now_ms);
	missed = t ? malloc((t->n ? t->n : 1) * sizeof(*missed)) : NULL;
	if (missed) {
		n = wsa__history_since(t, op->since, now_ms, missed,
				       &recovered);
		now.offset = t->offset;
		memcpy(now.epoch, t->epoch, sizeof(now.epoch));
	}
	pthread_mutex_unlock(&lb->history.lock);
	if (!missed)
		return WSA_ENOMEM;
	lb->hooks.recovered(op->loop_ctx, op->conn, op->conn_id, op->topic,
			    missed, n, &now, recovered);
	free(missed);
	return WSA_OK;
}

static void want(struct wsa_broker *b, enum wsa_chan_kind kind,
		 const char *name, bool on)
{
	/* Every loop of this process gets every message already. */
	(void)b;
	(void)kind;
	(void)name;
	(void)on;
}

static json_t *users(struct wsa_broker *b, const char *topic)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;

	return wsa__presence_users(&lb->presence, &lb->lock, topic, NULL);
}

static int join(struct wsa_broker *b, const struct wsa_presence_op *op)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	struct wsa_presence_change ch = {
	    .topic = op->topic,
	    .uid = op->uid,
	    .conn_id = op->conn_id,
	    .joined = true,
	};
	unsigned long long version;
	json_t *list;
	int first = 0;

	if (!op->again) {
		pthread_mutex_lock(&lb->lock);
		first = wsa__presence_add(&lb->presence, op->topic, op->uid);
		ch.version = lb->presence.version;
		pthread_mutex_unlock(&lb->lock);
	}
	if (first < 0)
		return first;
	if (first)
		lb->hooks.presence(op->loop_ctx, op->conn, &ch);
	if (op->answer) {
		list = wsa__presence_users(&lb->presence, &lb->lock, op->topic,
					   &version);
		lb->hooks.joined(op->loop_ctx, op->conn, op->conn_id, op->topic,
				 list, version);
		json_decref(list);
	}
	return WSA_OK;
}

static void leave(struct wsa_broker *b, const struct wsa_presence_op *op)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	struct wsa_presence_change ch = {
	    .topic = op->topic,
	    .uid = op->uid,
	    .conn_id = op->conn_id,
	};
	int last;

	pthread_mutex_lock(&lb->lock);
	last = wsa__presence_remove(&lb->presence, op->topic, op->uid);
	ch.version = lb->presence.version;
	pthread_mutex_unlock(&lb->lock);
	if (last)
		lb->hooks.presence(op->loop_ctx, op->conn, &ch);
}

static void quiesce(struct wsa_broker *b)
{
	(void)b;
}

static void metrics(struct wsa_broker *b, json_t *o)
{
	(void)b;
	(void)o;
}

static void destroy(struct wsa_broker *b)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;

	wsa__presence_free(&lb->presence);
	wsa__history_free(&lb->history);
	pthread_mutex_destroy(&lb->lock);
	free(lb->queues);
	free(lb);
}

static const struct wsa_broker_ops local_ops = {
    .publish = publish,
    .publish_kept = wsa__broker_local_publish_kept,
    .recover = wsa__broker_local_recover,
    .want = want,
    .join = join,
    .leave = leave,
    .users = users,
    .quiesce = quiesce,
    .metrics = metrics,
    .destroy = destroy,
};

struct wsa_broker *wsa__broker_local_new(struct wsa_workq *const *queues,
					 unsigned n,
					 const struct wsa_broker_hooks *hooks)
{
	struct local_broker *lb = calloc(1, sizeof(*lb));

	if (lb)
		lb->queues = calloc(n, sizeof(*lb->queues));
	if (!lb || !lb->queues) {
		free(lb);
		return NULL;
	}
	memcpy(lb->queues, queues, n * sizeof(*queues));
	lb->n = n;
	lb->base.ops = &local_ops;
	lb->hooks = *hooks;
	pthread_mutex_init(&lb->lock, NULL);
	wsa__history_init(&lb->history);
	return &lb->base;
}
