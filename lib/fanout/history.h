/* Topic history: which topics keep their kept publications (rules set
 * before the server runs), and a process's store of them, bounded in
 * count and age. Each kept publication has a position in its topic: an
 * offset that grows by one, within an epoch that changes whenever the
 * topic's history was lost (a new process, an expired history). The
 * store is shared by the loops, under its own lock; it never calls out. */
#ifndef WSA_LIB_FANOUT_HISTORY_H
#define WSA_LIB_FANOUT_HISTORY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"
#include "util/fnv.h"
#include "util/map.h"
#include "wsa.h"

struct wsa_fan;

#define WSA_HISTORY_RULES 16

/* Topics whose names start with prefix keep their last size kept
 * publications, each for ttl_ms after it was made. */
struct wsa_history_rule {
	char *prefix;
	size_t plen;
	unsigned size, ttl_ms;
};

struct wsa_history_rules {
	struct wsa_history_rule r[WSA_HISTORY_RULES];
	unsigned n;
};

/* Add a rule (the prefix is copied); WSA_OK, WSA_EINVAL (size 0 or over
 * WSA_HISTORY_MAX, ttl_ms 0, a prefix already given), WSA_ELIMIT (16
 * rules), WSA_ENOMEM. */
int wsa__history_rule_add(struct wsa_history_rules *rs, const char *prefix,
			  unsigned size, unsigned ttl_ms);

/* The rule for topic: its longest matching prefix; NULL: none. */
const struct wsa_history_rule *
wsa__history_rule(const struct wsa_history_rules *rs, const char *topic);

void wsa__history_rules_free(struct wsa_history_rules *rs);

/* An epoch's id: a 64-bit FNV-1a of its text (never 0), which a member
 * keeps instead of the text. */
static inline unsigned long long wsa__history_epoch_id(const char *epoch)
{
	uint64_t h = wsa__fnv1a64(epoch, strlen(epoch));

	return h ? h : 1;
}

/* A new epoch: 16 random characters of [0-9a-z]. */
void wsa__history_epoch_new(char epoch[WSA_EPOCH_MAX + 1]);

/* Write the JSON object text (len bytes, '{' ... '}') to out with
 * "offset":offset,"epoch":epoch (none when epoch is NULL) and, when
 * id_text is not NULL, "id":id_text (JSON text) before its closing
 * brace; false without memory. */
bool wsa__history_stamp(struct wsa_buf *out, const char *text, size_t len,
			unsigned long long offset, const char *epoch,
			const char *id_text);

/* One topic's kept publications, oldest first, in a ring. */
struct wsa_history_entry {
	unsigned long long offset;
	unsigned long long at_ms; /* when it was kept (CLOCK_MONOTONIC) */
	struct wsa_fan *m;	  /* a reference */
};

struct wsa_history_topic {
	struct wsa_map_entry entry; /* in the store's map, key = name */
	struct wsa_history_topic *older, *newer; /* by last publication */
	const struct wsa_history_rule *rule;
	unsigned long long offset; /* the last one given; 0: none yet */
	unsigned long long last_ms;
	struct wsa_history_entry *ring;
	unsigned cap, head, n;
	char epoch[WSA_EPOCH_MAX + 1];
	char name[];
};

/* A process's kept publications: every topic with a rule that was
 * published to or joined with a position within its rule's time to
 * live. */
struct wsa_history {
	pthread_mutex_t lock;
	struct wsa_map topics;
	struct wsa_history_topic *oldest, *newest;
};

void wsa__history_init(struct wsa_history *h);
void wsa__history_free(struct wsa_history *h);

/* The topic's history, made (with a new epoch, offset 0) if need be;
 * histories idle past their time to live are forgotten first. NULL
 * without memory. Under h->lock, with now_ms read under it. */
struct wsa_history_topic *wsa__history_topic(struct wsa_history *h,
					     const struct wsa_history_rule *r,
					     const char *name,
					     unsigned long long now_ms);

/* Keep m (a reference is taken) as the topic's publication at offset
 * t->offset + 1, which it becomes; the oldest goes past the rule's
 * size. false without memory (nothing changed). Under h->lock. */
bool wsa__history_keep(struct wsa_history *h, struct wsa_history_topic *t,
		       struct wsa_fan *m, unsigned long long now_ms);

/* The kept publications after offset since, in order, into out (up to
 * t->n, references taken); *recovered: whether they are all that came
 * after it (since is in the kept window and in this epoch). Returns how
 * many. Under h->lock. */
size_t wsa__history_since(struct wsa_history_topic *t,
			  const wsa_position *since, unsigned long long now_ms,
			  struct wsa_fan **out, bool *recovered);

#endif
