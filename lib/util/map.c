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

/* ------------------------------------------------- intrusive maps */

void wsa__imap_init(struct wsa_imap *m,
		    const void *(*key)(const struct wsa_link *, size_t *))
{
	m->buckets = NULL;
	m->nbuckets = m->n = 0;
	m->key = key;
}

/* The bucket of a key. */
static struct wsa_link **ibucket(const struct wsa_imap *m, const void *key,
				 size_t klen)
{
	return &m->buckets[hash(key, klen) & (m->nbuckets - 1)];
}

/* Where the entry with key is linked from, or the NULL ending its
 * bucket's chain. */
static struct wsa_link **islot(const struct wsa_imap *m, const void *key,
			       size_t klen)
{
	struct wsa_link **l = ibucket(m, key, klen);

	for (; *l; l = &(*l)->next) {
		size_t n;
		const void *k = m->key(*l, &n);

		if (n == klen && !memcmp(k, key, klen))
			break;
	}
	return l;
}

struct wsa_link *wsa__imap_get(const struct wsa_imap *m, const void *key,
			       size_t klen)
{
	return m->n ? *islot(m, key, klen) : NULL;
}

/* Double the buckets (or make the first 64); false when memory is short,
 * and the map is then as it was. */
static bool igrow(struct wsa_imap *m)
{
	struct wsa_imap to = *m;
	size_t i;

	to.nbuckets = m->nbuckets ? 2 * m->nbuckets : 64;
	to.buckets = calloc(to.nbuckets, sizeof(*to.buckets));
	if (!to.buckets)
		return false;
	for (i = 0; i < m->nbuckets; i++) {
		struct wsa_link *l = m->buckets[i];

		while (l) {
			struct wsa_link *next = l->next, **b;
			size_t klen;
			const void *key = m->key(l, &klen);

			b = ibucket(&to, key, klen);
			l->next = *b;
			*b = l;
			l = next;
		}
	}
	free(m->buckets);
	*m = to;
	return true;
}

bool wsa__imap_put(struct wsa_imap *m, struct wsa_link *l)
{
	size_t klen;
	const void *key;

	if (m->n >= m->nbuckets && !igrow(m))
		return false;
	key = m->key(l, &klen);
	l->next = NULL;
	*islot(m, key, klen) = l;
	m->n++;
	return true;
}

/* Where l is linked from (it is in the map). */
static struct wsa_link **ifind(const struct wsa_imap *m, struct wsa_link *l)
{
	size_t klen;
	const void *key = m->key(l, &klen);
	struct wsa_link **at = ibucket(m, key, klen);

	while (*at != l)
		at = &(*at)->next;
	return at;
}

void wsa__imap_del(struct wsa_imap *m, struct wsa_link *l)
{
	*ifind(m, l) = l->next;
	l->next = NULL;
	m->n--;
}

void wsa__imap_replace(struct wsa_imap *m, struct wsa_link *old,
		       struct wsa_link *l)
{
	*ifind(m, old) = l;
	l->next = old->next;
	old->next = NULL;
}

void wsa__imap_each(const struct wsa_imap *m,
		    void (*fn)(struct wsa_link *l, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < m->nbuckets; i++) {
		struct wsa_link *l = m->buckets[i], *next;

		for (; l; l = next) {
			next = l->next;
			fn(l, arg);
		}
	}
}

void wsa__imap_free(struct wsa_imap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->n = 0;
}
