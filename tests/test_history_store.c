/* The history store alone (lib/fanout/history.c), with times given by the
 * test: rules by longest prefix, a ring that grows to its size and then
 * drops the oldest, recovery from a position (all kept, some gone, another
 * epoch, ahead of the last), entries and idle histories past their time to
 * live, and a time read before another thread's (earlier than the last
 * publication) that must forget nothing. */
#include <string.h>

#include "check.h"
#include "fanout/history.h"
#include "fanout/message.h"

static struct wsa_fan *fan(void)
{
	return wsa__fan_new(WSA_FAN_TOPIC, "{}", 2, "t", NULL);
}

/* Keep n publications in t at time at. */
static void keep(struct wsa_history *h, struct wsa_history_topic *t, int n,
		 unsigned long long at)
{
	for (int i = 0; i < n; i++) {
		struct wsa_fan *m = fan();

		CHECK(wsa__history_keep(h, t, m, at));
		wsa__fan_unref(m);
	}
}

/* How many come after since's offset in t's epoch, and recovered. */
static size_t since(struct wsa_history_topic *t, unsigned long long offset,
		    const char *epoch, unsigned long long now, bool *recovered)
{
	struct wsa_fan *out[64];
	wsa_position pos = {.offset = offset};
	size_t n, i;

	strcpy(pos.epoch, epoch);
	n = wsa__history_since(t, &pos, now, out, recovered);
	for (i = 0; i < n; i++)
		wsa__fan_unref(out[i]);
	return n;
}

static void rules(void)
{
	struct wsa_history_rules rs = {0};

	CHECK_INT(wsa__history_rule_add(&rs, "", 1, 1), WSA_OK);
	CHECK_INT(wsa__history_rule_add(&rs, "room/", 5, 1), WSA_OK);
	CHECK_INT(wsa__history_rule_add(&rs, "room/big/", 50, 1), WSA_OK);
	CHECK_INT(wsa__history_rule(&rs, "room/big/x")->size, 50);
	CHECK_INT(wsa__history_rule(&rs, "room/x")->size, 5);
	CHECK_INT(wsa__history_rule(&rs, "other")->size, 1);
	wsa__history_rules_free(&rs);
	CHECK(wsa__history_rule(&rs, "other") == NULL);
}

static void ring_and_since(void)
{
	struct wsa_history_rule r = {.prefix = "", .size = 20, .ttl_ms = 1000};
	struct wsa_history h;
	struct wsa_history_topic *t;
	bool rec;

	wsa__history_init(&h);
	wsa__map_init();
	t = wsa__history_topic(&h, &r, "t", 100);
	CHECK(t != NULL);
	if (!t)
		return;
	CHECK_INT((int)strlen(t->epoch), WSA_EPOCH_MAX);
	keep(&h, t, 30, 100); /* 1..30; 11..30 kept */
	CHECK_INT(t->n, 20);
	CHECK_INT(since(t, 10, t->epoch, 100, &rec), 20);
	CHECK(rec);
	CHECK_INT(since(t, 25, t->epoch, 100, &rec), 5);
	CHECK(rec);
	CHECK_INT(since(t, 30, t->epoch, 100, &rec), 0);
	CHECK(rec);
	CHECK_INT(since(t, 9, t->epoch, 100, &rec), 20); /* 10 is gone */
	CHECK(!rec);
	CHECK_INT(since(t, 31, t->epoch, 100, &rec), 0); /* ahead */
	CHECK(!rec);
	CHECK_INT(since(t, 10, "another", 100, &rec), 0);
	CHECK(!rec);
	/* Past their time to live the entries go; the position stays. */
	CHECK_INT(since(t, 10, t->epoch, 1100, &rec), 0);
	CHECK(!rec);
	CHECK_INT(since(t, 30, t->epoch, 1100, &rec), 0);
	CHECK(rec);
	wsa__history_free(&h);
}

static void forgetting(void)
{
	struct wsa_history_rule r = {.prefix = "", .size = 5, .ttl_ms = 1000};
	struct wsa_history h;
	struct wsa_history_topic *t;
	char epoch[WSA_EPOCH_MAX + 1];

	wsa__history_init(&h);
	t = wsa__history_topic(&h, &r, "t", 5000);
	keep(&h, t, 3, 5000);
	memcpy(epoch, t->epoch, sizeof(epoch));
	/* A time read before the last publication's: nothing is forgotten
	 * (it forgot the whole history, and its epoch, before). */
	t = wsa__history_topic(&h, &r, "t", 4999);
	CHECK_STR(t->epoch, epoch);
	CHECK_INT((int)t->offset, 3);
	keep(&h, t, 1, 4999);
	CHECK_INT((int)t->offset, 4);
	CHECK_INT(t->n, 4);
	/* Idle for its time to live: forgotten, a new epoch from 0. */
	t = wsa__history_topic(&h, &r, "t", 6000);
	CHECK(strcmp(t->epoch, epoch) != 0);
	CHECK_INT((int)t->offset, 0);
	CHECK_INT(t->n, 0);
	wsa__history_free(&h);
}

int main(void)
{
	rules();
	ring_and_since();
	forgetting();
	return check_status("history-store");
}
