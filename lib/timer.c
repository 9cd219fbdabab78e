/* Connection deadlines: a min-heap for login deadlines and token expiry,
 * a list in order of activity for the idle timeout. See timer.h. */
#include "timer.h"

#include <stdint.h>
#include <stdlib.h>

#include "auth.h"
#include "conn.h"
#include "server.h"

#define NOT_IN_HEAP SIZE_MAX

static void heap_place(struct wsa_timers *t, size_t i, struct wsa_conn *c)
{
	t->heap[i] = c;
	c->heap_idx = i;
}

static void sift_up(struct wsa_timers *t, size_t i)
{
	struct wsa_conn *c = t->heap[i];

	while (i && t->heap[(i - 1) / 2]->deadline > c->deadline) {
		heap_place(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(t, i, c);
}

static void sift_down(struct wsa_timers *t, size_t i)
{
	struct wsa_conn *c = t->heap[i];

	for (;;) {
		size_t k = 2 * i + 1;

		if (k >= t->n)
			break;
		if (k + 1 < t->n &&
		    t->heap[k + 1]->deadline < t->heap[k]->deadline)
			k++;
		if (t->heap[k]->deadline >= c->deadline)
			break;
		heap_place(t, i, t->heap[k]);
		i = k;
	}
	heap_place(t, i, c);
}

static void heap_remove(struct wsa_timers *t, struct wsa_conn *c)
{
	size_t i = c->heap_idx;
	struct wsa_conn *last = t->heap[--t->n];

	c->heap_idx = NOT_IN_HEAP;
	if (last == c)
		return;
	heap_place(t, i, last);
	sift_up(t, i);
	sift_down(t, last->heap_idx);
}

/* Deadlines that have passed are acted on one per firing, and when more
 * are due the next firing comes PACE_US later (at most 4,000 a second).
 * Each one closes a connection, which costs libwebsockets time in
 * proportion to the connections open (its debug build scans its
 * descriptor table), and a crowd that never logs in reconnects as soon
 * as it is closed: 10,000 login deadlines at once, acted on 64 or even 8
 * per loop iteration, made iterations of milliseconds for everyone
 * (bench/run.py --only attack). Paced, the crowd's churn is too. */
#define PACE_US ((lws_usec_t)250)

/* (Re)arm timer w for time at (lws_now_usecs() based) on the loop. */
static void arm(struct wsa_server *srv, ev_timer *w,
		void (*cb)(struct ev_loop *, ev_timer *, int), lws_usec_t at)
{
	lws_usec_t now = lws_now_usecs();

	if (!srv->loop) /* the server is being freed */
		return;
	ev_timer_stop(srv->loop, w);
	ev_init(w, cb);
	w->data = srv;
	ev_timer_set(w, at > now ? (double)(at - now) / 1e6 : 0., 0.);
	ev_timer_start(srv->loop, w);
}

static void deadline_fire(struct ev_loop *loop, ev_timer *w, int revents);

/* Arm the timer for the earliest deadline, or disarm it. */
static void deadline_arm(struct wsa_server *srv)
{
	struct wsa_timers *t = &srv->timers;

	if (!t->n) {
		if (srv->loop)
			ev_timer_stop(srv->loop, &t->deadline_timer);
		return;
	}
	arm(srv, &t->deadline_timer, deadline_fire, t->heap[0]->deadline);
}

/* Act on the earliest deadline if it has passed (a login deadline before
 * authentication, the token's expiry after it, a close that took too
 * long), and come back for the next (PACE_US). */
static void deadline_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct wsa_server *srv = w->data;
	struct wsa_timers *t = &srv->timers;
	lws_usec_t now = lws_now_usecs();

	(void)loop, (void)revents;
	if (t->n && t->heap[0]->deadline <= now) {
		struct wsa_conn *c = t->heap[0];

		heap_remove(t, c);
		if (!wsa__conn_live(c)) /* closing, and out of time: hang up */
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK,
					LWS_TO_KILL_SYNC);
		else if (c->authenticated)
			wsa__conn_expired(c);
		else
			wsa__auth_timeout(c);
	}
	if (t->n && t->heap[0]->deadline <= now)
		arm(srv, &t->deadline_timer, deadline_fire, now + PACE_US);
	else
		deadline_arm(srv);
}

bool wsa__timer_set(struct wsa_server *srv, struct wsa_conn *c, lws_usec_t at)
{
	struct wsa_timers *t = &srv->timers;
	struct wsa_conn *first = t->n ? t->heap[0] : NULL;

	if (c->heap_idx == NOT_IN_HEAP) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? 2 * t->cap : 64;
			struct wsa_conn **h =
			    realloc(t->heap, cap * sizeof(*h));

			if (!h)
				return false;
			t->heap = h;
			t->cap = cap;
		}
		c->deadline = at;
		heap_place(t, t->n++, c);
		sift_up(t, c->heap_idx);
	} else {
		c->deadline = at;
		sift_up(t, c->heap_idx);
		sift_down(t, c->heap_idx);
	}
	if (t->heap[0] != first || first == c)
		deadline_arm(srv);
	return true;
}

void wsa__timer_clear(struct wsa_server *srv, struct wsa_conn *c)
{
	struct wsa_timers *t = &srv->timers;
	bool was_first;

	if (c->heap_idx == NOT_IN_HEAP)
		return;
	was_first = t->heap[0] == c;
	heap_remove(t, c);
	if (was_first)
		deadline_arm(srv);
}

static void lru_unlink(struct wsa_timers *t, struct wsa_conn *c)
{
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else if (t->lru_head == c)
		t->lru_head = c->lru_next;
	else
		return; /* not linked */
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		t->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void idle_fire(struct ev_loop *loop, ev_timer *w, int revents);

static void idle_arm(struct wsa_server *srv)
{
	struct wsa_timers *t = &srv->timers;
	lws_usec_t idle = (lws_usec_t)srv->cfg.idle_timeout_ms * 1000;

	if (!t->lru_head) {
		if (srv->loop)
			ev_timer_stop(srv->loop, &t->idle_timer);
		return;
	}
	arm(srv, &t->idle_timer, idle_fire, t->lru_head->last_rx + idle);
}

/* Close, with 1001, the connection silent longest if it has been silent
 * for the idle timeout, and come back for the next (PACE_US). */
static void idle_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct wsa_server *srv = w->data;
	struct wsa_timers *t = &srv->timers;
	lws_usec_t idle = (lws_usec_t)srv->cfg.idle_timeout_ms * 1000;
	lws_usec_t now = lws_now_usecs();

	(void)loop, (void)revents;
	if (t->lru_head && now - t->lru_head->last_rx >= idle) {
		struct wsa_conn *c = t->lru_head;

		lru_unlink(t, c);
		wsa__conn_close(c, WSA_CLOSE_GOING_AWAY, "Idle timeout");
	}
	if (t->lru_head && now - t->lru_head->last_rx >= idle)
		arm(srv, &t->idle_timer, idle_fire, now + PACE_US);
	else
		idle_arm(srv);
}

void wsa__timer_touch(struct wsa_server *srv, struct wsa_conn *c)
{
	struct wsa_timers *t = &srv->timers;
	bool was_alone = !t->lru_head;

	c->last_rx = lws_now_usecs();
	if (t->lru_tail == c)
		return;
	lru_unlink(t, c);
	c->lru_prev = t->lru_tail;
	if (t->lru_tail)
		t->lru_tail->lru_next = c;
	else
		t->lru_head = c;
	t->lru_tail = c;
	if (was_alone)
		idle_arm(srv);
}

void wsa__timer_forget(struct wsa_server *srv, struct wsa_conn *c)
{
	struct wsa_timers *t = &srv->timers;
	bool was_head = t->lru_head == c;

	wsa__timer_clear(srv, c);
	lru_unlink(t, c);
	if (was_head)
		idle_arm(srv);
}

void wsa__timers_stop(struct wsa_server *srv)
{
	if (!srv->loop)
		return;
	ev_timer_stop(srv->loop, &srv->timers.deadline_timer);
	ev_timer_stop(srv->loop, &srv->timers.idle_timer);
}

void wsa__timers_free(struct wsa_timers *t)
{
	free(t->heap);
	t->heap = NULL;
	t->n = t->cap = 0;
}
