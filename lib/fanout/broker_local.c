/* The in-process broker: fan-out messages reach the other loops of the
 * server through their work queues, in the order each thread published;
 * presence is a table under one lock. See broker.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/broker.h"
#include "fanout/message.h"
#include "util/map.h"
#include "util/workq.h"
#include "wsa.h"

/* The users present in one topic: uid -> connections, server-wide. */
struct present_topic {
	struct wsa_map_entry entry;
	struct wsa_map uids;
	char name[];
};

struct present_uid {
	struct wsa_map_entry entry;
	unsigned n;
	char uid[];
};

struct local_broker {
	struct wsa_broker base;
	wsa_deliver_fn deliver;
	unsigned n;
	struct wsa_workq **queues; /* one per loop */
	pthread_mutex_t lock;	   /* presence */
	struct wsa_map topics;
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

	d->lb->deliver(ctx, d->m);
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
	wsa__fan_unref(m);
}

/* The entry of name in map (under the lock), made when make is true;
 * NULL when it is not there, or memory is short. */
static void *entry_get(struct wsa_map *map, const char *name, size_t head,
		       bool make)
{
	struct wsa_map_entry *e = wsa__map_get(map, name);
	size_t n = strlen(name);

	if (e || !make)
		return e;
	e = calloc(1, head + n + 1);
	if (!e)
		return NULL;
	memcpy((char *)e + head, name, n + 1);
	wsa__map_entry_set(e, (char *)e + head, n, e);
	if (!wsa__map_put(map, e)) {
		free(e);
		return NULL;
	}
	return e;
}

static int presence_add(struct wsa_broker *b, const char *topic,
			const char *uid)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	struct present_topic *t;
	struct present_uid *u = NULL;
	int rc = WSA_ENOMEM;

	pthread_mutex_lock(&lb->lock);
	t = entry_get(&lb->topics, topic, offsetof(struct present_topic, name),
		      true);
	if (t)
		u = entry_get(&t->uids, uid, offsetof(struct present_uid, uid),
			      true);
	if (u)
		rc = u->n++ == 0;
	else if (t && !t->uids.n) {
		wsa__map_del(&lb->topics, t->name);
		wsa__map_free(&t->uids);
		free(t);
	}
	pthread_mutex_unlock(&lb->lock);
	return rc;
}

static int presence_remove(struct wsa_broker *b, const char *topic,
			   const char *uid)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	struct present_topic *t;
	struct present_uid *u = NULL;
	int last = 0;

	pthread_mutex_lock(&lb->lock);
	t = entry_get(&lb->topics, topic, 0, false);
	if (t)
		u = entry_get(&t->uids, uid, 0, false);
	if (u && !--u->n) {
		last = 1;
		wsa__map_del(&t->uids, u->uid);
		free(u);
		if (!t->uids.n) {
			wsa__map_del(&lb->topics, t->name);
			wsa__map_free(&t->uids);
			free(t);
		}
	}
	pthread_mutex_unlock(&lb->lock);
	return last;
}

static json_t *presence_users(struct wsa_broker *b, const char *topic)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;
	json_t *list = json_array();
	const struct present_topic *t;
	const struct wsa_map_entry *e;
	size_t i;

	if (!list)
		return NULL;
	pthread_mutex_lock(&lb->lock);
	t = entry_get(&lb->topics, topic, 0, false);
	for (i = 0; t && i < t->uids.nbuckets; i++)
		for (e = t->uids.buckets[i]; e; e = e->next)
			if (json_array_append_new(
				list, json_string(
					  ((const struct present_uid *)e->value)
					      ->uid))) {
				json_decref(list);
				list = NULL;
				goto out;
			}
out:
	pthread_mutex_unlock(&lb->lock);
	return list;
}

/* Free every entry of map with free(value), then map. */
static void map_clear(struct wsa_map *map, void (*each)(void *))
{
	struct wsa_map_entry *e;
	size_t i;

	for (i = 0; i < map->nbuckets; i++)
		while ((e = map->buckets[i])) {
			map->buckets[i] = e->next;
			each(e->value);
		}
	wsa__map_free(map);
}

static void topic_free(void *v)
{
	struct present_topic *t = v;

	map_clear(&t->uids, free);
	free(t);
}

static void destroy(struct wsa_broker *b)
{
	struct local_broker *lb = (struct local_broker *)(void *)b;

	map_clear(&lb->topics, topic_free);
	pthread_mutex_destroy(&lb->lock);
	free(lb->queues);
	free(lb);
}

static const struct wsa_broker_ops local_ops = {
    .publish = publish,
    .presence_add = presence_add,
    .presence_remove = presence_remove,
    .presence_users = presence_users,
    .destroy = destroy,
};

struct wsa_broker *wsa__broker_local_new(struct wsa_workq *const *queues,
					 unsigned n, wsa_deliver_fn deliver)
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
	lb->deliver = deliver;
	pthread_mutex_init(&lb->lock, NULL);
	return &lb->base;
}
