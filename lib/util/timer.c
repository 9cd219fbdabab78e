/* Deadlines: a min-heap, and lists in order of time. See timer.h. */
#include "util/timer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Deadlines that have passed are acted on a few per firing, and when more
 * are due the next firing comes PACE_US later. Each one may close a
 * connection, which costs libwebsockets time in proportion to the
 * connections open (its debug build scans its descriptor table), and a
 * crowd that never logs in reconnects as soon as it is closed: 10,000
 * login deadlines at once, acted on 64 or even 8 per loop iteration, made
 * iterations of milliseconds for everyone (bench/run.py --only attack).
 * Paced, the crowd's churn is too. */
#define PACE_US ((lws_usec_t)250)

/* ------------------------------------------------------------ alarm */

static void alarm_due(lws_sorted_usec_list_t *sul)
{
	struct wsa_alarm *a = lws_container_of(sul, struct wsa_alarm, u.sul);

	a->fire(a);
}

static void alarm_ev(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct wsa_alarm *a = w->data;

	(void)loop, (void)revents;
	a->fire(a);
}

void wsa__alarm_init(struct wsa_alarm *a, const struct wsa_clock *clock,
		     void (*fire)(struct wsa_alarm *))
{
	memset(a, 0, sizeof(*a));
	a->ctx = clock->ctx;
	a->loop = clock->loop;
	a->fire = fire;
	if (a->loop) {
		ev_init(&a->u.ev, alarm_ev);
		a->u.ev.data = a;
	}
}

void wsa__alarm_at(struct wsa_alarm *a, lws_usec_t at)
{
	lws_usec_t now = lws_now_usecs(), in = at > now ? at - now : 0;

	if (!a->loop) {
		lws_sul_schedule(a->ctx, 0, &a->u.sul, alarm_due, in);
		return;
	}
	ev_timer_stop(a->loop, &a->u.ev);
	ev_timer_set(&a->u.ev, (double)in / 1e6, 0.);
	ev_timer_start(a->loop, &a->u.ev);
}

void wsa__alarm_stop(struct wsa_alarm *a)
{
	if (a->loop)
		ev_timer_stop(a->loop, &a->u.ev);
	else
		lws_sul_cancel(&a->u.sul);
}

/* ------------------------------------------------------------- heap */

static void place(struct wsa_heap *h, size_t i, struct wsa_deadline *d)
{
	h->v[i] = d;
	d->idx = i;
}

static void sift_up(struct wsa_heap *h, size_t i)
{
	struct wsa_deadline *d = h->v[i];

	while (i && h->v[(i - 1) / 2]->at > d->at) {
		place(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(h, i, d);
}

static void sift_down(struct wsa_heap *h, size_t i)
{
	struct wsa_deadline *d = h->v[i];

	for (;;) {
		size_t k = 2 * i + 1;

		if (k >= h->n)
			break;
		if (k + 1 < h->n && h->v[k + 1]->at < h->v[k]->at)
			k++;
		if (h->v[k]->at >= d->at)
			break;
		place(h, i, h->v[k]);
		i = k;
	}
	place(h, i, d);
}

static void heap_remove(struct wsa_heap *h, struct wsa_deadline *d)
{
	size_t i = d->idx;
	struct wsa_deadline *last = h->v[--h->n];

	d->idx = WSA_NOT_TIMED;
	if (last == d)
		return;
	place(h, i, last);
	sift_up(h, i);
	sift_down(h, last->idx);
}

/* Arm the timer for the first deadline, or disarm it. */
static void heap_arm(struct wsa_heap *h)
{
	if (!h->n)
		wsa__alarm_stop(&h->alarm);
	else
		wsa__alarm_at(&h->alarm, h->v[0]->at);
}

/* Act on the first deadline if it has passed, and come back for the
 * next. */
static void heap_fire(struct wsa_alarm *a)
{
	struct wsa_heap *h = lws_container_of(a, struct wsa_heap, alarm);
	lws_usec_t now = lws_now_usecs();

	if (h->n && h->v[0]->at <= now) {
		struct wsa_deadline *d = h->v[0];

		heap_remove(h, d);
		h->fire(d, h->arg);
	}
	if (h->n && h->v[0]->at <= now)
		wsa__alarm_at(&h->alarm, now + PACE_US);
	else
		heap_arm(h);
}

void wsa__heap_init(struct wsa_heap *h, const struct wsa_clock *clock,
		    void (*fire)(struct wsa_deadline *, void *), void *arg)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->fire = fire;
	h->arg = arg;
	wsa__alarm_init(&h->alarm, clock, heap_fire);
}

bool wsa__heap_set(struct wsa_heap *h, struct wsa_deadline *d, lws_usec_t at)
{
	struct wsa_deadline *first = h->n ? h->v[0] : NULL;

	if (d->idx == WSA_NOT_TIMED) {
		if (h->n == h->cap) {
			size_t cap = h->cap ? 2 * h->cap : 64;
			struct wsa_deadline **v =
			    realloc(h->v, cap * sizeof(*v));

			if (!v)
				return false;
			h->v = v;
			h->cap = cap;
		}
		d->at = at;
		place(h, h->n++, d);
		sift_up(h, d->idx);
	} else {
		d->at = at;
		sift_up(h, d->idx);
		sift_down(h, d->idx);
	}
	if (h->v[0] != first || first == d)
		heap_arm(h);
	return true;
}

void wsa__heap_clear(struct wsa_heap *h, struct wsa_deadline *d)
{
	bool was_first;

	if (d->idx == WSA_NOT_TIMED)
		return;
	was_first = h->v[0] == d;
	heap_remove(h, d);
	if (was_first)
		heap_arm(h);
}

void wsa__heap_stop(struct wsa_heap *h)
{
	wsa__alarm_stop(&h->alarm);
}

void wsa__heap_free(struct wsa_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

/* ------------------------------------------- list in order of time */

static void unlink_node(struct wsa_timeline *l, struct wsa_timed *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static void line_arm(struct wsa_timeline *l)
{
	if (!l->head)
		wsa__alarm_stop(&l->alarm);
	else
		wsa__alarm_at(&l->alarm, l->head->at + l->after);
}

static void line_fire(struct wsa_alarm *a)
{
	struct wsa_timeline *l =
	    lws_container_of(a, struct wsa_timeline, alarm);
	lws_usec_t now = lws_now_usecs();
	unsigned k;

	for (k = 0; k < l->batch && l->head && l->head->at + l->after <= now;
	     k++) {
		struct wsa_timed *n = l->head;

		unlink_node(l, n);
		l->fire(n, l->arg);
	}
	if (l->head && l->head->at + l->after <= now)
		wsa__alarm_at(&l->alarm, now + PACE_US);
	else
		line_arm(l);
}

void wsa__timeline_init(struct wsa_timeline *l, const struct wsa_clock *clock,
			lws_usec_t after, unsigned batch,
			void (*fire)(struct wsa_timed *, void *), void *arg)
{
	l->head = l->tail = NULL;
	l->after = after;
	l->batch = batch;
	l->fire = fire;
	l->arg = arg;
	wsa__alarm_init(&l->alarm, clock, line_fire);
}

/* The alarm is left where it is: set for the head that was, it can only
 * be early for the one that follows (nodes are in time order), and an
 * early firing sets it again (line_fire). Setting it at every removal of
 * a head cost a clock read and two timer operations a message, since a
 * busy connection is touched, and its node moved, at each one. */
void wsa__timeline_remove(struct wsa_timeline *l, struct wsa_timed *n)
{
	if (wsa__timeline_has(l, n))
		unlink_node(l, n);
}

void wsa__timeline_touch(struct wsa_timeline *l, struct wsa_timed *n,
			 lws_usec_t now)
{
	bool was_empty;

	n->at = now;
	if (l->tail == n)
		return;
	wsa__timeline_remove(l, n);
	was_empty = !l->head;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
	if (was_empty)
		line_arm(l);
}

void wsa__timeline_stop(struct wsa_timeline *l)
{
	wsa__alarm_stop(&l->alarm);
}
