/* A hash map from strings to pointers, for the service thread. Entries
 * are the caller's (embedded in what they index), so putting allocates
 * nothing but, now and then, a larger bucket array. */
#ifndef WSA_LIB_MAP_H
#define WSA_LIB_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct wsa_map_entry {
	struct wsa_map_entry *next;
	const char *key; /* owned by the value: the map does not copy it */
	void *value;
};

struct wsa_map {
	struct wsa_map_entry **buckets;
	size_t nbuckets, n;
};

/* The value stored under key, or NULL. */
void *wsa__map_get(const struct wsa_map *m, const char *key);

/* Link entry e (e->key and e->value set; the key not in the map yet, and
 * valid while e is linked); false when memory is short. */
bool wsa__map_put(struct wsa_map *m, struct wsa_map_entry *e);

/* Unlink the entry of key; returns it, or NULL when key is not there. */
struct wsa_map_entry *wsa__map_del(struct wsa_map *m, const char *key);

/* Free the bucket array (entries are the caller's). */
void wsa__map_free(struct wsa_map *m);

#endif
