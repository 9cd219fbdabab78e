/* Presence as one process counts it: for each topic, the uids in it and
 * how many of this process's connections each has there. No lock: each
 * broker holds its own around these calls. */
#ifndef WSA_LIB_FANOUT_PRESENCE_H
#define WSA_LIB_FANOUT_PRESENCE_H

#include <jansson.h>
#include <pthread.h>

#include "util/map.h"

struct wsa_presence {
	struct wsa_map topics; /* name -> uid -> count */
	/* Moves on with every first and last: the version of them all. */
	unsigned long long version;
};

/* Count one more connection of uid in topic: 1 when it is the uid's
 * first (the version moves on), 0 when not, WSA_ENOMEM. */
int wsa__presence_add(struct wsa_presence *p, const char *topic,
		      const char *uid);

/* Count one less: 1 when it was the uid's last (the version moves on),
 * else 0. */
int wsa__presence_remove(struct wsa_presence *p, const char *topic,
			 const char *uid);

/* A new JSON array of the uids in topic and the version it was read at
 * (may be NULL), under lock; NULL without memory. */
json_t *wsa__presence_users(const struct wsa_presence *p, pthread_mutex_t *lock,
			    const char *topic, unsigned long long *version);

/* Call fn for every (topic, uid) present. */
void wsa__presence_each(const struct wsa_presence *p,
			void (*fn)(const char *topic, const char *uid,
				   void *arg),
			void *arg);

void wsa__presence_free(struct wsa_presence *p);

#endif
