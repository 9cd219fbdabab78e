/* A chained hash map, doubling as it fills. See map.h. */
#include "util/map.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static bool hash_ready;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_setup(void)
{
	/* sodium_init is itself idempotent and thread-safe; it must come
	 * before randombytes_buf, which then cannot fail. */
	if (sodium_init() < 0)
		return;
	randombytes_buf(hash_key, sizeof(hash_key));
	hash_ready = true;
}

bool wsa__map_init(void)
{
	pthread_once(&hash_once, hash_setup);
	return hash_ready;
}

/* SipHash-2-4 (libsodium's crypto_shorthash): without the key, which
 * never leaves the process, colliding keys cannot be computed. */
static uint64_t hash(const void *key, size_t klen)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, key, klen, hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct wsa_map_entry **slot(const struct wsa_map *m, const void *key,
				   size_t klen)
{
	struct wsa_map_entry **e =
	    &m->buckets[hash(key, klen) & (m->nbuckets - 1)];

	while (*e && ((*e)->klen != klen || memcmp((*e)->key, key, klen)))
		e = &(*e)->next;
	return e;
}

void *wsa__map_getn(const struct wsa_map *m, const void *key, size_t klen)
{
	struct wsa_map_entry *e;

	if (!m->n)
		return NULL;
	e = *slot(m, key, klen);
	return e ? e->value : NULL;
}

void *wsa__map_get(const struct wsa_map *m, const char *key)
{
	return wsa__map_getn(m, key, strlen(key));
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
			struct wsa_map_entry **to =
			    &b[hash(e->key, e->klen) & (nb - 1)];

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
	*slot(m, e->key, e->klen) = e;
	m->n++;
	return true;
}

struct wsa_map_entry *wsa__map_deln(struct wsa_map *m, const void *key,
				    size_t klen)
{
	struct wsa_map_entry **s, *e;

	if (!m->n)
		return NULL;
	s = slot(m, key, klen);
	e = *s;
	if (e) {
		*s = e->next;
		e->next = NULL;
		m->n--;
	}
	return e;
}

struct wsa_map_entry *wsa__map_del(struct wsa_map *m, const char *key)
{
	return wsa__map_deln(m, key, strlen(key));
}

void wsa__map_free(struct wsa_map *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->n = 0;
}
