/* The in-process broker: fan-out messages reach the other loops of the
 * server through their work queues, in the order each thread published;
 * presence is a table under one lock, and its answers come inside the
 * join or leave. See broker.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/broker.h"
#include "fanout/message.h"
#include "fanout/presence.h"
#include "util/workq.h"
#include "wsa.h"

struct local_broker {
	struct wsa_broker base;
	struct wsa_broker_hooks hooks;
	unsigned n;
	struct wsa_workq **queues; /* one per loop */
	pthread_mutex_t lock;	   /* presence */
	struct wsa_presence presence;
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

static void publish(struct wsa_broker *b, struct wsa_fan *m, int origin)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	unsigned i;

	/* For the other nodes only: there are none. */
	for (i = 0; i < lb->n && !m->remote_only; i++) {
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
	wsa__fan_unref(m);
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
	pthread_mutex_destroy(&lb->lock);
	free(lb->queues);
	free(lb);
}

static const struct wsa_broker_ops local_ops = {
    .publish = publish,
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
	return &lb->base;
}
