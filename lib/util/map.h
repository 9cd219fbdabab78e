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

#endif
