/* Presence counted in one process. See presence.h. */
#include "fanout/presence.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "wsa.h"

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

/* The entry of name in map, made when make is true; NULL when it is not
 * there, or memory is short. */
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

static void topic_drop(struct wsa_presence *p, struct present_topic *t)
{
	wsa__map_del(&p->topics, t->name);
	wsa__map_free(&t->uids);
	free(t);
}

int wsa__presence_add(struct wsa_presence *p, const char *topic,
		      const char *uid)
{
	struct present_topic *t;
	struct present_uid *u = NULL;

	t = entry_get(&p->topics, topic, offsetof(struct present_topic, name),
		      true);
	if (t)
		u = entry_get(&t->uids, uid, offsetof(struct present_uid, uid),
			      true);
	if (u && u->n++ == 0) {
		p->version++;
		return 1;
	}
	if (u)
		return 0;
	if (t && !t->uids.n)
		topic_drop(p, t);
	return WSA_ENOMEM;
}

int wsa__presence_remove(struct wsa_presence *p, const char *topic,
			 const char *uid)
{
	struct present_topic *t = entry_get(&p->topics, topic, 0, false);
	struct present_uid *u = t ? entry_get(&t->uids, uid, 0, false) : NULL;

	if (!u || --u->n)
		return 0;
	p->version++;
	wsa__map_del(&t->uids, u->uid);
	free(u);
	if (!t->uids.n)
		topic_drop(p, t);
	return 1;
}

/* Append the uids in topic to list; false without memory. */
static bool users_into(const struct wsa_presence *p, const char *topic,
		       json_t *list)
{
	const struct present_topic *t = wsa__map_get(&p->topics, topic);
	const struct wsa_map_entry *e;
	size_t i;

	for (i = 0; t && i < t->uids.nbuckets; i++)
		for (e = t->uids.buckets[i]; e; e = e->next)
			if (json_array_append_new(
				list, json_string(
					  ((const struct present_uid *)e->value)
					      ->uid)))
				return false;
	return true;
}

json_t *wsa__presence_users(const struct wsa_presence *p, pthread_mutex_t *lock,
			    const char *topic, unsigned long long *version)
{
	json_t *list = json_array();

	if (!list)
		return NULL;
	pthread_mutex_lock(lock);
	if (version)
		*version = p->version;
	if (!users_into(p, topic, list)) {
		json_decref(list);
		list = NULL;
	}
	pthread_mutex_unlock(lock);
	return list;
}

void wsa__presence_each(const struct wsa_presence *p,
			void (*fn)(const char *topic, const char *uid,
				   void *arg),
			void *arg)
{
	const struct wsa_map_entry *te, *ue;
	size_t i, j;

	for (i = 0; i < p->topics.nbuckets; i++)
		for (te = p->topics.buckets[i]; te; te = te->next) {
			const struct present_topic *t = te->value;

			for (j = 0; j < t->uids.nbuckets; j++)
				for (ue = t->uids.buckets[j]; ue; ue = ue->next)
					fn(t->name,
					   ((const struct present_uid *)
						ue->value)
					       ->uid,
					   arg);
		}
}

/* Free every entry of map with each(value), then map. */
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

void wsa__presence_free(struct wsa_presence *p)
{
	map_clear(&p->topics, topic_free);
}
