/* Connection deadlines: a min-heap for login deadlines and token expiry,
 * a list in order of activity for the idle timeout. See timer.h. */
#include "timer.h"

#include <stdint.h>
#include <stdlib.h>

#include "auth.h"
#include "conn.h"
#include "log.h"
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

/* ------------------------------------------------------- liveness */

/* A connection silent for the ping interval is sent a WebSocket ping and
 * moves to the pinged list; any frame from it (the pong, a message) puts
 * it back at the end of the seen list; one still pinged after the pong
 * timeout is taken for vanished and hung up. Both lists are in time
 * order, so only their heads are ever due. */

/* A WebSocket ping, unmasked (server to client). It carries a payload:
 * libwebsockets 4.1.6 raises no callback for an empty pong. */
static const unsigned char ping_frame[5] = {0x89, 0x03, 'w', 's', 'a'};

static void seen_unlink(struct wsa_timers *t, struct wsa_conn *c)
{
	struct wsa_conn **head = c->pinged ? &t->pinged_head : &t->seen_head;
	struct wsa_conn **tail = c->pinged ? &t->pinged_tail : &t->seen_tail;

	if (!c->seen_linked)
		return;
	if (c->seen_prev)
		c->seen_prev->seen_next = c->seen_next;
	else
		*head = c->seen_next;
	if (c->seen_next)
		c->seen_next->seen_prev = c->seen_prev;
	else
		*tail = c->seen_prev;
	c->seen_prev = c->seen_next = NULL;
	c->seen_linked = false;
}

/* Append c to the seen list (pinged false) or the pinged list. */
static void seen_append(struct wsa_timers *t, struct wsa_conn *c, bool pinged)
{
	struct wsa_conn **head = pinged ? &t->pinged_head : &t->seen_head;
	struct wsa_conn **tail = pinged ? &t->pinged_tail : &t->seen_tail;

	c->pinged = pinged;
	c->seen_linked = true;
	c->seen_next = NULL;
	c->seen_prev = *tail;
	if (*tail)
		(*tail)->seen_next = c;
	else
		*head = c;
	*tail = c;
}

static bool pings_on(const struct wsa_server *srv)
{
	return srv->cfg.ping_interval_ms != 0xffffffffu;
}

static lws_usec_t ping_interval(const struct wsa_server *srv)
{
	return (lws_usec_t)srv->cfg.ping_interval_ms * 1000;
}

static lws_usec_t pong_timeout(const struct wsa_server *srv)
{
	return (lws_usec_t)srv->cfg.pong_timeout_ms * 1000;
}

/* When the first of either list is due. */
static lws_usec_t live_next(const struct wsa_server *srv)
{
	const struct wsa_timers *t = &srv->timers;
	lws_usec_t at = INT64_MAX;

	if (t->seen_head)
		at = t->seen_head->seen_at + ping_interval(srv);
	if (t->pinged_head && t->pinged_head->seen_at + pong_timeout(srv) < at)
		at = t->pinged_head->seen_at + pong_timeout(srv);
	return at;
}

static void live_fire(struct ev_loop *loop, ev_timer *w, int revents);

static void live_arm(struct wsa_server *srv)
{
	struct wsa_timers *t = &srv->timers;

	if (!t->seen_head && !t->pinged_head) {
		if (srv->loop)
			ev_timer_stop(srv->loop, &t->live_timer);
		return;
	}
	arm(srv, &t->live_timer, live_fire, live_next(srv));
}

/* Hang up on a connection whose ping went unanswered. Its close handler
 * sees 1006: the peer is taken for gone, and no close frame is sent to a
 * peer that does not read. */
static void live_dead(struct wsa_server *srv, struct wsa_conn *c)
{
	WSA_LOG(srv, WSA_LOG_INFO, c, "no pong in time: hung up");
	seen_unlink(&srv->timers, c);
	c->close_code = 1006;
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_SYNC);
}

/* Ping the connection silent longest, or hang up the one pinged longest
 * ago, a few per firing (PACE_US apart when more are due). */
static void live_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct wsa_server *srv = w->data;
	struct wsa_timers *t = &srv->timers;
	lws_usec_t now = lws_now_usecs();
	int n;

	(void)loop, (void)revents;
	for (n = 0; n < 8 && live_next(srv) <= now; n++) {
		struct wsa_conn *c = t->pinged_head;

		if (c && c->seen_at + pong_timeout(srv) <= now) {
			live_dead(srv, c);
			continue;
		}
		c = t->seen_head;
		seen_unlink(t, c);
		c->seen_at = now;
		seen_append(t, c, true);
		/* Queued behind what the peer has yet to read: a peer that
		 * does not read cannot answer either. */
		wsa__conn_queue_framed(c, ping_frame, sizeof(ping_frame));
	}
	if (live_next(srv) <= now)
		arm(srv, &t->live_timer, live_fire, now + PACE_US);
	else
		live_arm(srv);
}

void wsa__timer_seen(struct wsa_server *srv, struct wsa_conn *c)
{
	struct wsa_timers *t = &srv->timers;
	bool was_idle = !t->seen_head && !t->pinged_head;

	if (!pings_on(srv) || !c->wsi || !wsa__conn_live(c))
		return;
	c->seen_at = lws_now_usecs();
	if (c->seen_linked && !c->pinged && t->seen_tail == c)
		return;
	seen_unlink(t, c);
	seen_append(t, c, false);
	if (was_idle)
		live_arm(srv);
}

void wsa__timer_unseen(struct wsa_server *srv, struct wsa_conn *c)
{
	seen_unlink(&srv->timers, c);
	/* The timer is armed for a head that may be gone: it finds nothing
	 * due and re-arms. */
}

void wsa__timer_forget(struct wsa_server *srv, struct wsa_conn *c)
{
	struct wsa_timers *t = &srv->timers;
	bool was_head = t->lru_head == c;

	wsa__timer_clear(srv, c);
	lru_unlink(t, c);
	wsa__timer_unseen(srv, c);
	if (was_head)
		idle_arm(srv);
}

void wsa__timers_stop(struct wsa_server *srv)
{
	if (!srv->loop)
		return;
	ev_timer_stop(srv->loop, &srv->timers.deadline_timer);
	ev_timer_stop(srv->loop, &srv->timers.idle_timer);
	ev_timer_stop(srv->loop, &srv->timers.live_timer);
}

void wsa__timers_free(struct wsa_timers *t)
{
	free(t->heap);
	t->heap = NULL;
	t->n = t->cap = 0;
}
