/* A hash map from byte strings to pointers, for one service thread.
 * Entries are the caller's (embedded in what they index), so putting
 * allocates nothing but, now and then, a larger bucket array. Keys are
 * hashed with SipHash under a key drawn once per process: many keys come
 * from clients (topic names), and an unkeyed hash lets them choose keys
 * that share one bucket. */
#ifndef WSA_LIB_MAP_H
#define WSA_LIB_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct wsa_map_entry {
	struct wsa_map_entry *next;
	const void *key; /* owned by the value: the map does not copy it */
	size_t klen;
	void *value;
};

struct wsa_map {
	struct wsa_map_entry **buckets;
	size_t nbuckets, n;
};

/* Draw the process's hash key, once, thread-safely; false when no random
 * generator could be set up (no map may be used then). */
bool wsa__map_init(void);

/* Set an entry's key (klen bytes, valid while the entry is linked) and
 * value before wsa__map_put. */
static inline void wsa__map_entry_set(struct wsa_map_entry *e, const void *key,
				      size_t klen, void *value)
{
	e->key = key;
	e->klen = klen;
	e->value = value;
}

/* The value stored under the klen bytes at key, or NULL. */
void *wsa__map_getn(const struct wsa_map *m, const void *key, size_t klen);

/* The value stored under a NUL-terminated key, or NULL. */
void *wsa__map_get(const struct wsa_map *m, const char *key);

/* Link entry e (its key not in the map yet); false when memory is
 * short. */
bool wsa__map_put(struct wsa_map *m, struct wsa_map_entry *e);

/* Unlink the entry of a key; returns it, or NULL when it is not there. */
struct wsa_map_entry *wsa__map_deln(struct wsa_map *m, const void *key,
				    size_t klen);
struct wsa_map_entry *wsa__map_del(struct wsa_map *m, const char *key);

/* Free the bucket array (entries are the caller's). */
void wsa__map_free(struct wsa_map *m);

/* ------------------------------------------------- intrusive maps */

/* A map whose entry is one link inside what it indexes; the map reads
 * an entry's key through key(). For the indexes every idle connection
 * is in (its id, its uid): a wsa_map_entry's key, length and value are
 * 24 bytes a connection need not hold, as its key is in it already. */
struct wsa_link {
	struct wsa_link *next;
};

struct wsa_imap {
	struct wsa_link **buckets;
	size_t nbuckets, n;
	/* The key of the entry linked by l, its length in *klen; the same
	 * while l is in the map. */
	const void *(*key)(const struct wsa_link *l, size_t *klen);
};

/* An empty map whose entries' keys key() reads. */
void wsa__imap_init(struct wsa_imap *m,
		    const void *(*key)(const struct wsa_link *, size_t *));

/* The entry with the klen bytes at key as its key, or NULL. */
struct wsa_link *wsa__imap_get(const struct wsa_imap *m, const void *key,
			       size_t klen);

/* Link l, whose key is not in the map yet; false when memory is short. */
bool wsa__imap_put(struct wsa_imap *m, struct wsa_link *l);

/* Unlink l, which is in the map. */
void wsa__imap_del(struct wsa_imap *m, struct wsa_link *l);

/* Put l in the place of old, which is in the map and has the same key:
 * never allocates. */
void wsa__imap_replace(struct wsa_imap *m, struct wsa_link *old,
		       struct wsa_link *l);

/* Call fn(l, arg) for each entry l of m, in no order; fn may unlink l
 * (not another). */
void wsa__imap_each(const struct wsa_imap *m,
		    void (*fn)(struct wsa_link *l, void *arg), void *arg);

/* Free the bucket array (entries are the caller's). */
void wsa__imap_free(struct wsa_imap *m);

#endif
