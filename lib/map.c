/* A chained hash map from strings to pointers, doubling as it fills. */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: keys here are connection ids (random) and names the host
 * chooses, so a simple hash spreads them well enough. */
static uint64_t hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
	return h;
}

static struct wsa_map_entry **slot(const struct wsa_map *m, const char *key)
{
	struct wsa_map_entry **e = &m->buckets[hash(key) & (m->nbuckets - 1)];

	while (*e && strcmp((*e)->key, key))
		e = &(*e)->next;
	return e;
}

void *wsa__map_get(const struct wsa_map *m, const char *key)
{
	struct wsa_map_entry *e;

	if (!m->n)
		return NULL;
	e = *slot(m, key);
	return e ? e->value : NULL;
}

/* Double the buckets (or make the first 64); false when memory is short,
 * and the map is then as it was. */
static bool grow(struct wsa_map *m)
{
	size_t nb = m->nbuckets ? 2 * m->nbuckets : 64, i;
	struct wsa_map_entry **b = calloc(nb, sizeof(*b));

	if (!b)
		return false;
	for (i = 0; i < m->nbuckets; i++) {
		struct wsa_map_entry *e = m->buckets[i];

		while (e) {
			struct wsa_map_entry *next = e->next;
			struct wsa_map_entry **to = &b[hash(e->key) & (nb - 1)];

			e->next = *to;
			*to = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return true;
}

bool wsa__map_put(struct wsa_map *m, struct wsa_map_entry *e)
{
	if (m->n >= m->nbuckets && !grow(m))
		return false;
	e->next = NULL;
	*slot(m, e->key) = e;
	m->n++;
	return true;
}

struct wsa_map_entry *wsa__map_del(struct wsa_map *m, const char *key)
{
	struct wsa_map_entry **s, *e;

	if (!m->n)
		return NULL;
	s = slot(m, key);
	e = *s;
	if (e) {
		*s = e->next;
		e->next = NULL;
		m->n--;
	}
	return e;
}

void wsa__map_free(struct wsa_map *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->n = 0;
}
