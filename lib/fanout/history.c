/* Topic history. See history.h. */
#include "fanout/history.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/message.h"

/* ------------------------------------------------------------- rules */

int wsa__history_rule_add(struct wsa_history_rules *rs, const char *prefix,
			  unsigned size, unsigned ttl_ms)
{
	struct wsa_history_rule *r;
	unsigned i;

	if (!prefix || !size || size > WSA_HISTORY_MAX || !ttl_ms)
		return WSA_EINVAL;
	for (i = 0; i < rs->n; i++)
		if (!strcmp(rs->r[i].prefix, prefix))
			return WSA_EINVAL;
	if (rs->n == WSA_HISTORY_RULES)
		return WSA_ELIMIT;
	r = &rs->r[rs->n];
	if (!(r->prefix = strdup(prefix)))
		return WSA_ENOMEM;
	r->plen = strlen(prefix);
	r->size = size;
	r->ttl_ms = ttl_ms;
	rs->n++;
	return WSA_OK;
}

const struct wsa_history_rule *
wsa__history_rule(const struct wsa_history_rules *rs, const char *topic)
{
	const struct wsa_history_rule *best = NULL;
	unsigned i;

	for (i = 0; i < rs->n; i++)
		if (!strncmp(topic, rs->r[i].prefix, rs->r[i].plen) &&
		    (!best || rs->r[i].plen > best->plen))
			best = &rs->r[i];
	return best;
}

void wsa__history_rules_free(struct wsa_history_rules *rs)
{
	unsigned i;

	for (i = 0; i < rs->n; i++)
		free(rs->r[i].prefix);
	rs->n = 0;
}

void wsa__history_epoch_new(char epoch[WSA_EPOCH_MAX + 1])
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned char r[WSA_EPOCH_MAX];
	size_t i;

	randombytes_buf(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		epoch[i] = alphabet[r[i] % 36];
	epoch[WSA_EPOCH_MAX] = '\0';
}

bool wsa__history_stamp(struct wsa_buf *out, const char *text, size_t len,
			unsigned long long offset, const char *epoch,
			const char *id_text)
{
	char pos[64 + WSA_EPOCH_MAX];
	int n = epoch ? snprintf(pos, sizeof(pos),
				 "%s\"offset\":%llu,\"epoch\":\"%s\"",
				 len > 2 ? "," : "", offset, epoch)
		      : 0;
	bool more = len > 2 || n > 0;

	out->len = 0;
	if (n < 0 || (size_t)n >= sizeof(pos) ||
	    !wsa__buf_append(out, text, len - 1) ||
	    !wsa__buf_append(out, pos, (size_t)n))
		return false;
	if (id_text && (!wsa__buf_append(
			    out, more ? ",\"id\":" : "\"id\":", more ? 6 : 5) ||
			!wsa__buf_append(out, id_text, strlen(id_text))))
		return false;
	return wsa__buf_append(out, "}", 1);
}

/* ------------------------------------------------------------- store */

void wsa__history_init(struct wsa_history *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
}

/* The oldest kept publication goes. */
static void ring_pop(struct wsa_history_topic *t)
{
	wsa__fan_unref(t->ring[t->head].m);
	t->head = (t->head + 1) % t->cap;
	t->n--;
}

static void lru_unlink(struct wsa_history *h, struct wsa_history_topic *t)
{
	if (t->older)
		t->older->newer = t->newer;
	else
		h->oldest = t->newer;
	if (t->newer)
		t->newer->older = t->older;
	else
		h->newest = t->older;
	t->older = t->newer = NULL;
}

static void lru_newest(struct wsa_history *h, struct wsa_history_topic *t)
{
	if (h->newest == t)
		return;
	if (t->older || t->newer || h->oldest == t)
		lru_unlink(h, t);
	t->older = h->newest;
	if (h->newest)
		h->newest->newer = t;
	else
		h->oldest = t;
	h->newest = t;
}

static void topic_free(struct wsa_history *h, struct wsa_history_topic *t)
{
	while (t->n)
		ring_pop(t);
	lru_unlink(h, t);
	wsa__map_del(&h->topics, t->name);
	free(t->ring);
	free(t);
}

/* Whether at is ttl_ms or more before now (never when at is later: a
 * time read before another thread's, which went first). */
static bool aged(unsigned long long at, unsigned long long now_ms,
		 unsigned ttl_ms)
{
	return now_ms > at && now_ms - at >= ttl_ms;
}

/* Forget histories idle past their time to live: their epoch ends. */
static void forget_idle(struct wsa_history *h, unsigned long long now_ms)
{
	while (h->oldest &&
	       aged(h->oldest->last_ms, now_ms, h->oldest->rule->ttl_ms))
		topic_free(h, h->oldest);
}

struct wsa_history_topic *wsa__history_topic(struct wsa_history *h,
					     const struct wsa_history_rule *r,
					     const char *name,
					     unsigned long long now_ms)
{
	struct wsa_history_topic *t;
	size_t n;

	forget_idle(h, now_ms);
	t = wsa__map_get(&h->topics, name);
	if (t)
		return t;
	n = strlen(name);
	t = calloc(1, sizeof(*t) + n + 1);
	if (!t)
		return NULL;
	memcpy(t->name, name, n + 1);
	t->rule = r;
	t->last_ms = now_ms;
	wsa__history_epoch_new(t->epoch);
	wsa__map_entry_set(&t->entry, t->name, n, t);
	if (!wsa__map_put(&h->topics, &t->entry)) {
		free(t);
		return NULL;
	}
	lru_newest(h, t);
	return t;
}

/* Drop what is past its time to live. */
static void expire(struct wsa_history_topic *t, unsigned long long now_ms)
{
	while (t->n && aged(t->ring[t->head].at_ms, now_ms, t->rule->ttl_ms))
		ring_pop(t);
}

/* Room for one more: the ring grows by doubling up to the rule's size
 * (a topic that keeps little costs little), then the oldest goes. */
static bool ring_room(struct wsa_history_topic *t)
{
	struct wsa_history_entry *ring;
	unsigned cap, i;

	if (t->n < t->cap)
		return true;
	if (t->cap == t->rule->size) {
		ring_pop(t);
		return true;
	}
	cap = t->cap ? t->cap * 2 : 8;
	if (cap > t->rule->size)
		cap = t->rule->size;
	ring = malloc(cap * sizeof(*ring));
	if (!ring)
		return false;
	for (i = 0; i < t->n; i++)
		ring[i] = t->ring[(t->head + i) % t->cap];
	free(t->ring);
	t->ring = ring;
	t->cap = cap;
	t->head = 0;
	return true;
}

bool wsa__history_keep(struct wsa_history *h, struct wsa_history_topic *t,
		       struct wsa_fan *m, unsigned long long now_ms)
{
	struct wsa_history_entry *e;

	expire(t, now_ms);
	if (!ring_room(t))
		return false;
	e = &t->ring[(t->head + t->n) % t->cap];
	e->offset = ++t->offset;
	e->at_ms = now_ms;
	e->m = m;
	wsa__fan_ref(m);
	t->n++;
	t->last_ms = now_ms;
	lru_newest(h, t);
	return true;
}

size_t wsa__history_since(struct wsa_history_topic *t,
			  const wsa_position *since, unsigned long long now_ms,
			  struct wsa_fan **out, bool *recovered)
{
	unsigned long long first;
	size_t k = 0;
	unsigned i;

	expire(t, now_ms);
	*recovered = false;
	if (!since || strcmp(since->epoch, t->epoch) ||
	    since->offset > t->offset)
		return 0;
	/* The first publication still kept; all of them when none is. What
	 * is kept after since is given even when not all of it is. */
	first = t->n ? t->ring[t->head].offset : t->offset + 1;
	*recovered = since->offset + 1 >= first;
	for (i = 0; i < t->n; i++) {
		struct wsa_history_entry *e = &t->ring[(t->head + i) % t->cap];

		if (e->offset > since->offset) {
			wsa__fan_ref(e->m);
			out[k++] = e->m;
		}
	}
	return k;
}

void wsa__history_free(struct wsa_history *h)
{
	while (h->oldest)
		topic_free(h, h->oldest);
	wsa__map_free(&h->topics);
	pthread_mutex_destroy(&h->lock);
}
