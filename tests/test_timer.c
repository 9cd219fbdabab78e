/* lib/timer.c alone, on a libev loop of its own: the heap kept whole
 * under random operations, deadlines fired in time order and only once
 * past, and lists in order of time firing their nodes after their wait,
 * moving between lists, and never firing a removed node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/util/timer.h"

#define N 500

static bool heap_ok(const struct wsa_heap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		if (h->v[i]->idx != i)
			return false;
		if (i && h->v[(i - 1) / 2]->at > h->v[i]->at)
			return false;
	}
	return true;
}

static struct wsa_deadline dls[N];
static int fired[N], nfired;
static lws_usec_t last_at;
static bool in_order = true;

static void on_deadline(struct wsa_deadline *d, void *arg)
{
	(void)arg;
	CHECK(d->idx == WSA_NOT_TIMED);
	CHECK(d->at <= lws_now_usecs());
	if (d->at < last_at)
		in_order = false;
	last_at = d->at;
	fired[d - dls]++;
	nfired++;
}

/* Random sets and clears keep the heap whole; deadlines far away. */
static void test_heap_random(struct ev_loop *loop)
{
	struct wsa_heap h;
	lws_usec_t far = lws_now_usecs() + 3600 * 1000000ll;
	size_t in = 0, step;

	wsa__heap_init(&h, &(struct wsa_clock){NULL, loop}, on_deadline, NULL);
	for (size_t i = 0; i < N; i++)
		wsa__deadline_init(&dls[i]);
	srand(7);
	for (step = 0; step < 20000; step++) {
		struct wsa_deadline *d = &dls[rand() % N];

		if (rand() % 3) {
			in += d->idx == WSA_NOT_TIMED;
			CHECK(wsa__heap_set(&h, d, far + rand() % 1000000));
		} else {
			in -= d->idx != WSA_NOT_TIMED;
			wsa__heap_clear(&h, d);
		}
		if (!heap_ok(&h) || h.n != in) {
			CHECK(!"heap broken");
			break;
		}
	}
	for (size_t i = 0; i < N; i++)
		wsa__heap_clear(&h, &dls[i]);
	CHECK_INT(h.n, 0);
	wsa__heap_stop(&h);
	wsa__heap_free(&h);
}

/* Deadlines a few milliseconds away fire in time order, each once, and
 * a cleared one never. */
static void test_heap_fires(struct ev_loop *loop)
{
	struct wsa_heap h;
	lws_usec_t now = lws_now_usecs();
	int i, n = 50;

	wsa__heap_init(&h, &(struct wsa_clock){NULL, loop}, on_deadline, NULL);
	memset(fired, 0, sizeof(fired));
	nfired = 0;
	last_at = 0;
	for (i = 0; i < n; i++) {
		wsa__deadline_init(&dls[i]);
		CHECK(wsa__heap_set(&h, &dls[i],
				    now + 1000 + (i * 37 % n) * 100));
	}
	wsa__heap_clear(&h, &dls[7]);
	/* Bounded: the last deadline is 6 ms away; a firing a few per
	 * loop iteration. */
	for (i = 0; i < 10000 && nfired < n - 1; i++)
		ev_run(loop, EVRUN_ONCE);
	CHECK_INT(nfired, n - 1);
	CHECK(in_order);
	CHECK_INT(fired[7], 0);
	for (i = 0; i < n; i++)
		if (i != 7)
			CHECK_INT(fired[i], 1);
	wsa__heap_stop(&h);
	wsa__heap_free(&h);
}

static struct wsa_timed nodes[4];
static int line_fired[4];
static struct wsa_timeline *second;

static void on_first(struct wsa_timed *n, void *arg)
{
	(void)arg;
	CHECK(!n->prev && !n->next);
	line_fired[n - nodes]++;
	/* Moved on, as a ping moves a connection to the pinged list. */
	wsa__timeline_touch(second, n, lws_now_usecs());
}

static void on_second(struct wsa_timed *n, void *arg)
{
	(void)arg;
	line_fired[n - nodes] += 10;
}

static void test_timeline(struct ev_loop *loop)
{
	struct wsa_timeline a, b;
	lws_usec_t now = lws_now_usecs();
	int i;

	wsa__timeline_init(&a, &(struct wsa_clock){NULL, loop}, 2000, 1,
			   on_first, NULL);
	wsa__timeline_init(&b, &(struct wsa_clock){NULL, loop}, 2000, 8,
			   on_second, NULL);
	second = &b;
	memset(nodes, 0, sizeof(nodes));
	for (i = 0; i < 4; i++)
		wsa__timeline_touch(&a, &nodes[i], now);
	/* Touched again: to the end, and its wait starts over. */
	wsa__timeline_touch(&a, &nodes[0], now + 500);
	CHECK(a.tail == &nodes[0] && a.head == &nodes[1]);
	CHECK(wsa__timeline_has(&a, &nodes[3]) &&
	      wsa__timeline_has(&a, &nodes[1]));
	wsa__timeline_remove(&a, &nodes[3]);
	CHECK(!wsa__timeline_has(&a, &nodes[3]));
	wsa__timeline_remove(&a, &nodes[3]); /* off it already: nothing */
	for (i = 0; i < 10000 && !(line_fired[0] == 11 && line_fired[1] == 11 &&
				   line_fired[2] == 11);
	     i++)
		ev_run(loop, EVRUN_ONCE);
	CHECK_INT(line_fired[0], 11);
	CHECK_INT(line_fired[1], 11);
	CHECK_INT(line_fired[2], 11);
	CHECK_INT(line_fired[3], 0);
	CHECK(!a.head && !b.head && !a.tail && !b.tail);
	wsa__timeline_stop(&a);
	wsa__timeline_stop(&b);
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

	test_heap_random(loop);
	test_heap_fires(loop);
	test_timeline(loop);
	ev_loop_destroy(loop);
	return check_status("test_timer");
}
