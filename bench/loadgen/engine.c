/* One process's event loop: set-up, the timed part of each mode, and
 * closing, over its share of the connections. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ctl.h"
#include "engine.h"
#include "token.h"

/* epoll data of the descriptors that are not connections. */
#define SLOT_CTL       0xfffffff0u
#define SLOT_SIG       0xfffffff1u
#define SLOT_IN	       0xfffffff2u
#define MAX_EVENTS     512
#define SCRATCH_SIZE   (256u << 10)
#define SHOWN_FAILURES 5
/* Connect mode looks for attempts past their deadline this often. */
#define SCAN_NS 100000000u
/* unauth, flood: a failed set-up is tried again this much later, so that
 * a server refusing every upgrade does not make a busy loop of us. */
#define RETRY_NS 100000000u
/* flood: bytes of messages queued at a time on a connection. */
#define FLOOD_BYTES  16384
#define RATE_LIMITED "Rate limit exceeded"

static const char *const fail_name[LG_F_COUNT] = {
    "connect", "handshake", "auth", "protocol", "timeout"};

static void show(struct engine *e, const struct conn *c, const char *what,
		 const char *detail)
{
	if (e->printed++ >= SHOWN_FAILURES && !e->o->verbose)
		return;
	fprintf(stderr, "wsa-loadgen: connection %u: %s: %s\n", c->idx, what,
		detail ? detail : "");
}

static void dueq_init(struct dueq *q, uint32_t cap)
{
	q->slot = lg_xcalloc(cap, sizeof(*q->slot));
	q->t = lg_xcalloc(cap, sizeof(*q->t));
	q->cap = cap;
}

static void dueq_free(struct dueq *q)
{
	free(q->slot);
	free(q->t);
}

static void dueq_push(struct dueq *q, uint32_t slot, uint64_t t)
{
	uint32_t i = q->len++, up;

	for (; i && q->t[up = (i - 1) / 2] > t; i = up) {
		q->t[i] = q->t[up];
		q->slot[i] = q->slot[up];
	}
	q->t[i] = t;
	q->slot[i] = slot;
}

/* Takes the earliest slot when its time is not after now. */
static int dueq_pop(struct dueq *q, uint64_t now, uint32_t *slot)
{
	uint32_t i = 0, kid, last;
	uint64_t t;

	if (!q->len || q->t[0] > now)
		return 0;
	*slot = q->slot[0];
	last = --q->len;
	t = q->t[last];
	for (; (kid = 2 * i + 1) < last; i = kid) {
		if (kid + 1 < last && q->t[kid + 1] < q->t[kid])
			kid++;
		if (q->t[kid] >= t)
			break;
		q->t[i] = q->t[kid];
		q->slot[i] = q->slot[kid];
	}
	q->t[i] = t;
	q->slot[i] = q->slot[last];
	return 1;
}

static int in_window(const struct engine *e)
{
	return e->phase == EP_RUN && e->now >= e->warm_end &&
	       e->now < e->meas_end;
}

/* Queues message number c->sent and remembers when it left. */
static void echo_send(struct engine *e, struct conn *c)
{
	size_t slot = (size_t)(c - e->c), k = e->o->inflight;
	uint8_t *p =
	    conn_frame_begin(c, WS_FIN | WS_OP_TEXT, e->pl.len, &e->rng);

	lg_payload_fill(&e->pl, p, c->sent);
	conn_frame_end(p, e->pl.len);
	e->ts[slot * k + c->sent % k] = e->now;
	c->sent++;
}

/* Paced echo: the next message leaves once the reply to the last one is
 * in and its time has come: a period after the last one's time, or (when
 * the reply came later than that) a period after the last one left, so
 * that a slow reply does not make a burst of the messages after it. */
static void pace_try(struct engine *e, struct conn *c)
{
	size_t slot = (size_t)(c - e->c);
	uint64_t next = e->due[slot] + e->period;

	if (c->pace != (PACE_REPLIED | PACE_DUE) || e->now >= e->meas_end)
		return;
	c->pace = 0;
	echo_send(e, c);
	if (next < e->now)
		next = e->now + e->period;
	e->due[slot] = next;
	dueq_push(&e->paced, (uint32_t)slot, next);
}

/* unauth, flood: whatever comes is counted and dropped. */
static void attack_message(struct engine *e, const uint8_t *p, size_t n)
{
	e->r.replies++;
	if (memmem(p, n, RATE_LIMITED, sizeof(RATE_LIMITED) - 1))
		e->r.rate_limited++;
}

void eng_message(struct engine *e, struct conn *c, const uint8_t *p, size_t n)
{
	size_t slot = (size_t)(c - e->c), k = e->o->inflight;
	uint64_t t;
	int ok;

	if (lg_attack(e->o->mode)) {
		attack_message(e, p, n);
		return;
	}
	if (e->o->mode != LG_ECHO || e->phase != EP_RUN)
		return; /* idle: nothing is expected, nothing is checked */
	if (c->rcvd == c->sent) {
		e->r.mismatches++;
		show(e, c, "unexpected message", NULL);
		return;
	}
	ok = lg_payload_check(&e->pl, p, n, c->rcvd);
	t = e->ts[slot * k + c->rcvd % k];
	c->rcvd++;
	if (!ok) {
		e->r.mismatches++;
		show(e, c, "wrong reply", NULL);
	} else if (in_window(e)) {
		e->r.messages++;
		hist_add(&e->r.lat, e->now - t);
	}
	if (e->period) {
		c->pace |= PACE_REPLIED;
		pace_try(e, c);
	} else if (e->now < e->meas_end) {
		echo_send(e, c);
	}
}

void eng_drained(struct engine *e, struct conn *c)
{
	if (e->phase != EP_RUN || c->queued)
		return;
	c->queued = 1;
	dueq_push(&e->feed, (uint32_t)(c - e->c), e->now);
}

void eng_ready(struct engine *e, struct conn *c)
{
	uint64_t dt = e->now - c->t_start;

	if (e->o->mode == LG_CONNECT) {
		if (in_window(e))
			hist_add(&e->r.lat, dt);
		conn_close(e, c);
		return;
	}
	e->pending--;
	if (e->phase == EP_SETUP)
		e->r.ok++;
	else
		e->r.reconnects++; /* unauth, flood */
	if (e->o->mode != LG_ECHO)
		hist_add(&e->r.lat, dt);
	/* Tens of thousands of them may be held. */
	if (e->o->mode == LG_IDLE || e->o->mode == LG_UNAUTH)
		conn_trim(c);
	if (e->o->mode == LG_FLOOD)
		eng_drained(e, c);
}

static void connect_ended(struct engine *e, struct conn *c, enum lg_fail why,
			  const char *detail)
{
	if (why == LG_F_COUNT) {
		if (in_window(e))
			e->r.ok++;
	} else {
		e->r.fail[why]++;
		show(e, c, fail_name[why], detail);
	}
	e->freel[e->nfree++] = (uint32_t)(c - e->c);
}

/* unauth, flood: a connection the server closed is opened again at once,
 * one that failed to set up after RETRY_NS. */
static void attack_ended(struct engine *e, struct conn *c, enum conn_state was,
			 enum lg_fail why, const char *detail)
{
	uint32_t slot = (uint32_t)(c - e->c);

	if (was == CS_CLOSING) {
		e->closing--;
	} else if (was == CS_OPEN) {
		e->r.dropped++;
		e->freel[e->nfree++] = slot;
	} else {
		e->pending--;
		e->r.fail[why]++;
		show(e, c, fail_name[why], detail);
		dueq_push(&e->retry, slot, e->now + RETRY_NS);
	}
}

void eng_ended(struct engine *e, struct conn *c, enum conn_state was,
	       enum lg_fail why, const char *detail)
{
	if (e->o->mode == LG_CONNECT) {
		connect_ended(e, c, why, detail);
	} else if (lg_attack(e->o->mode)) {
		attack_ended(e, c, was, why, detail);
	} else if (was == CS_CLOSING) {
		e->closing--;
	} else if (was == CS_OPEN) {
		e->r.dropped++;
		show(e, c, "lost", detail);
	} else {
		e->pending--;
		e->r.fail[why]++;
		show(e, c, fail_name[why], detail);
	}
}

/* Closes every socket still open, without a close handshake. */
static void abort_all(struct engine *e)
{
	uint32_t i;

	for (i = 0; i < e->n; i++)
		if (e->c[i].fd >= 0)
			conn_release(e, &e->c[i], 1);
}

static void begin_closing(struct engine *e)
{
	uint32_t i;

	e->phase = EP_CLOSING;
	e->close_end = e->now + lg_ns(e->o->close_timeout);
	e->hard_end = e->close_end + lg_ns(10);
	for (i = 0; i < e->n; i++) {
		struct conn *c = &e->c[i];

		if (c->state == CS_OPEN) {
			e->closing++;
			conn_close(e, c);
		} else if (c->fd >= 0 && c->state != CS_CLOSING) {
			conn_release(e, c, 1);
		}
	}
}

static void start_window(struct engine *e)
{
	e->measuring = 1;
	e->cpu0 = lg_cpu_self();
}

static void end_window(struct engine *e)
{
	uint64_t end = e->now < e->meas_end ? e->now : e->meas_end;

	e->r.interrupted = e->stop != 0;
	if (!e->measuring)
		return;
	e->r.window_s = (double)(end - e->warm_end) / 1e9;
	e->r.cpu_s = lg_cpu_self() - e->cpu0;
	e->measuring = 0;
}

static void eng_go(struct engine *e)
{
	uint32_t i, k;

	e->warm_end = e->now + lg_ns(e->o->warmup);
	e->meas_end = e->warm_end + lg_ns(e->o->duration);
	e->next_scan = e->now + SCAN_NS;
	e->phase = EP_RUN;
	e->hard_end = e->o->mode == LG_IDLE
			  ? UINT64_MAX
			  : e->meas_end + lg_ns(e->o->connect_timeout + 10);
	if (e->o->mode != LG_ECHO && e->o->mode != LG_FLOOD)
		return;
	for (i = 0; i < e->n; i++) {
		struct conn *c = &e->c[i];

		if (c->state != CS_OPEN)
			continue;
		if (e->o->mode == LG_FLOOD) {
			eng_drained(e, c);
			continue;
		}
		if (e->period) { /* first sends spread over a period */
			c->pace = PACE_REPLIED;
			e->due[i] = e->now + e->period * i / e->n;
			dueq_push(&e->paced, i, e->due[i]);
			continue;
		}
		for (k = 0; k < e->o->inflight; k++)
			echo_send(e, c);
		conn_flush(e, c);
	}
}

/* Set-up is over: tell the parent, or go on alone. */
static void setup_done(struct engine *e)
{
	e->r.setup_s = (double)(e->now - e->t0) / 1e9;
	e->phase = EP_WAIT_GO;
	if (e->o->mode == LG_IDLE)
		e->hard_end = UINT64_MAX; /* held until told to stop */
	if (e->ctl >= 0) {
		ctl_send(e->ctl, CTL_READY, &e->r, sizeof(e->r));
		return;
	}
	if (e->stop)
		return;
	lg_announce(e->o, &e->r);
	if (!e->r.ok && e->o->mode != LG_CONNECT)
		e->stop = 1; /* nothing to measure */
	else
		eng_go(e);
}

/* Set-up ran out of time: what is not ready has failed. */
static void setup_timeout(struct engine *e)
{
	uint32_t i;

	for (i = 0; i < e->started; i++) {
		struct conn *c = &e->c[i];

		if (c->fd >= 0 && c->state != CS_OPEN)
			conn_fail(e, c, LG_F_TIMEOUT, "not ready in time");
	}
	e->r.fail[LG_F_TIMEOUT] += e->n - e->started;
	if (lg_attack(e->o->mode)) /* the run will try them */
		for (i = e->started; i < e->n; i++)
			e->freel[e->nfree++] = i;
	e->started = e->n;
}

static void tick_setup(struct engine *e)
{
	if (e->o->mode == LG_CONNECT) {
		setup_done(e);
		return;
	}
	if (e->stop) { /* interrupted: drop what is not ready */
		abort_all(e);
		e->pending = 0;
		e->started = e->n;
	}
	while (e->started < e->n && e->pending < e->sh.concurrency) {
		e->pending++;
		conn_open(e, &e->c[e->started++]);
	}
	if (e->now >= e->setup_end && e->started + e->pending > 0)
		setup_timeout(e);
	if (e->started == e->n && !e->pending)
		setup_done(e);
}

/* Connect mode: a new attempt in every free slot.  A slot whose attempt
 * failed at once is tried again on the next tick, not in this loop. */
static void refill(struct engine *e)
{
	uint32_t k = e->nfree;

	while (k-- && e->nfree)
		conn_open(e, &e->c[e->freel[--e->nfree]]);
}

/* unauth, flood: opens again what the server closed and, once RETRY_NS
 * has passed, what failed, with at most --concurrency set-ups in flight. */
static void reopen(struct engine *e)
{
	uint32_t slot;

	while (dueq_pop(&e->retry, e->now, &slot))
		e->freel[e->nfree++] = slot;
	while (e->nfree && e->pending < e->sh.concurrency) {
		e->pending++;
		conn_open(e, &e->c[e->freel[--e->nfree]]);
	}
}

/* flood: another batch on every connection whose socket took the last
 * one whole; those it takes whole again wait for the next tick, so that
 * one fast connection cannot hold the loop. */
static void feed(struct engine *e)
{
	uint32_t k = e->feed.len, slot, i;
	struct conn *c;
	uint8_t *p;

	while (k-- && dueq_pop(&e->feed, e->now, &slot)) {
		c = &e->c[slot];
		c->queued = 0;
		if (c->state != CS_OPEN)
			continue;
		for (i = 0; i < e->batch; i++) {
			p = conn_frame_begin(c, WS_FIN | WS_OP_TEXT, e->pl.len,
					     &e->rng);
			lg_payload_fill(&e->pl, p, c->sent++);
			conn_frame_end(p, e->pl.len);
		}
		e->r.sent += e->batch;
		conn_flush(e, c);
	}
}

/* Paced echo: the connections whose time has come. */
static void pace(struct engine *e)
{
	uint32_t slot;
	struct conn *c;

	while (dueq_pop(&e->paced, e->now, &slot)) {
		c = &e->c[slot];
		if (c->state != CS_OPEN)
			continue;
		c->pace |= PACE_DUE;
		pace_try(e, c);
		conn_flush(e, c);
	}
}

static void scan_attempts(struct engine *e)
{
	uint64_t limit = lg_ns(e->o->connect_timeout);
	uint32_t i;

	e->next_scan = e->now + SCAN_NS;
	for (i = 0; i < e->n; i++) {
		struct conn *c = &e->c[i];

		if (c->fd >= 0 && e->now - c->t_start > limit)
			conn_fail(e, c, LG_F_TIMEOUT, "attempt took too long");
	}
}

static void tick_run(struct engine *e)
{
	if (e->o->mode == LG_IDLE) {
		if (e->stop)
			begin_closing(e);
		return;
	}
	if (!e->measuring && e->now >= e->warm_end)
		start_window(e);
	if (e->stop || e->now >= e->meas_end) {
		end_window(e);
		if (e->o->mode == LG_CONNECT) {
			abort_all(e); /* unfinished attempts are not counted */
			e->phase = EP_DONE;
		} else {
			begin_closing(e);
		}
		return;
	}
	if (e->o->mode == LG_CONNECT) {
		if (e->now >= e->next_scan)
			scan_attempts(e);
		refill(e);
	} else if (lg_attack(e->o->mode)) {
		reopen(e);
		if (e->o->mode == LG_FLOOD)
			feed(e);
	} else if (e->period) {
		pace(e);
	}
}

static void eng_tick_once(struct engine *e)
{
	switch (e->phase) {
	case EP_SETUP:
		tick_setup(e);
		break;
	case EP_WAIT_GO:
		if (e->stop)
			begin_closing(e);
		break;
	case EP_RUN:
		tick_run(e);
		break;
	case EP_CLOSING:
		if (!e->closing || e->now >= e->close_end) {
			abort_all(e);
			e->phase = EP_DONE;
		}
		break;
	case EP_DONE:
		break;
	}
}

/* Ticks until the phase holds still: a phase entered in this tick (say,
 * closing right after an interrupted set-up) may have work to do at once,
 * and the next tick may be an epoll_wait without timeout away. */
static void eng_tick(struct engine *e)
{
	enum eng_phase was;

	do {
		was = e->phase;
		eng_tick_once(e);
	} while (e->phase != was);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int eng_timeout(const struct engine *e)
{
	uint64_t t = e->hard_end, ms;

	if (e->phase == EP_SETUP)
		t = earliest(t, e->setup_end);
	if (e->phase == EP_RUN && e->o->mode != LG_IDLE) {
		t = earliest(t, e->measuring ? e->meas_end : e->warm_end);
		if (e->o->mode == LG_CONNECT)
			t = earliest(t, e->next_scan);
		if (e->retry.len)
			t = earliest(t, e->retry.t[0]);
		if (e->paced.len)
			t = earliest(t, e->paced.t[0]);
		if (e->feed.len || (lg_attack(e->o->mode) && e->nfree &&
				    e->pending < e->sh.concurrency))
			t = e->now;
	}
	if (e->phase == EP_CLOSING)
		t = earliest(t, e->close_end);
	if (t == UINT64_MAX)
		return -1;
	if (t <= e->now)
		return 0;
	ms = (t - e->now + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

static void eng_signal(struct engine *e)
{
	struct signalfd_siginfo si;

	while (read(e->sig, &si, sizeof(si)) == sizeof(si))
		e->stop = 1;
}

static void eng_ctl(struct engine *e)
{
	uint32_t type = 0;
	int r = ctl_recv(e->ctl, &type, NULL, 0);

	if (r <= 0) { /* the parent is gone: nobody wants our result */
		epoll_ctl(e->ep, EPOLL_CTL_DEL, e->ctl, NULL);
		close(e->ctl);
		e->ctl = -1;
		e->stop = 1;
	} else if (type == CTL_GO && e->phase == EP_WAIT_GO) {
		eng_go(e);
	} else if (type == CTL_STOP) {
		e->stop = 1;
	}
}

static void eng_stdin(struct engine *e)
{
	char buf[4096];
	ssize_t n = read(e->in, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		epoll_ctl(e->ep, EPOLL_CTL_DEL, e->in, NULL);
		e->in = -1;
		e->stop = 1;
	}
}

static void eng_dispatch(struct engine *e, const struct epoll_event *ev)
{
	uint32_t slot = (uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);

	if (slot == SLOT_SIG)
		eng_signal(e);
	else if (slot == SLOT_CTL && e->ctl >= 0)
		eng_ctl(e);
	else if (slot == SLOT_IN && e->in >= 0)
		eng_stdin(e);
	else if (slot < e->n && e->c[slot].gen == gen && e->c[slot].fd >= 0)
		conn_event(e, &e->c[slot], ev->events);
}

static int watch(struct engine *e, int fd, uint32_t slot)
{
	struct epoll_event ev;

	ev.events = EPOLLIN;
	ev.data.u64 = slot;
	return epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* epoll, signals, the parent, and stdin (idle, unauth, flood, when
 * alone: its EOF ends the hold; a stdin that cannot be polled, such as
 * /dev/null, is not watched). */
static int eng_fds(struct engine *e)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	e->sig = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (e->ep < 0 || e->sig < 0 || watch(e, e->sig, SLOT_SIG) ||
	    (e->ctl >= 0 && watch(e, e->ctl, SLOT_CTL))) {
		perror("wsa-loadgen: epoll");
		return -1;
	}
	if (lg_held(e->o->mode) && e->ctl < 0 && !watch(e, 0, SLOT_IN))
		e->in = 0;
	return 0;
}

static int eng_mint(struct engine *e)
{
	struct lg_minter *m = lg_minter_new(e->o);
	uint32_t i;

	if (!m)
		return -1;
	e->tok = lg_xcalloc(e->n, sizeof(*e->tok));
	for (i = 0; i < e->n; i++)
		e->tok[i] = lg_mint(m, e->sh.first + i);
	lg_minter_free(m);
	return 0;
}

static int eng_init(struct engine *e, const struct lg_opts *o,
		    const struct lg_share *sh, int ctl)
{
	uint32_t i;

	memset(e, 0, sizeof(*e));
	e->o = o;
	e->sh = *sh;
	e->n = sh->conns;
	e->ctl = ctl;
	e->ep = e->sig = e->in = -1;
	e->r.processes = 1;
	hist_init(&e->r.lat);
	lg_rng_seed(&e->rng);
	e->scratch_cap = SCRATCH_SIZE;
	e->scratch = lg_xrealloc(NULL, SCRATCH_SIZE);
	e->c = lg_xcalloc(e->n, sizeof(*e->c));
	e->freel = lg_xcalloc(e->n, sizeof(*e->freel));
	for (i = 0; i < e->n; i++) {
		conn_init(&e->c[i], sh->first + i);
		if (o->mode == LG_CONNECT) /* the others start them in order */
			e->freel[e->nfree++] = e->n - 1 - i;
	}
	if (o->mode == LG_ECHO || o->mode == LG_FLOOD) {
		lg_payload_init(&e->pl, o->proto, o->size);
		e->batch =
		    (uint32_t)(FLOOD_BYTES / (e->pl.len + WS_MAX_HEADER));
		e->batch = e->batch ? e->batch : 1;
	}
	if (o->mode == LG_ECHO)
		e->ts = lg_xcalloc((size_t)e->n * o->inflight, sizeof(*e->ts));
	if (lg_attack(o->mode))
		dueq_init(&e->retry, e->n);
	if (o->mode == LG_FLOOD)
		dueq_init(&e->feed, e->n);
	if (o->rate > 0) {
		dueq_init(&e->paced, e->n);
		e->due = lg_xcalloc(e->n, sizeof(*e->due));
		e->period = (uint64_t)(1e9 / o->rate);
		e->period = e->period ? e->period : 1;
	}
	if (o->proto == LG_WSA && o->mode != LG_UNAUTH && eng_mint(e))
		return -1;
	return eng_fds(e);
}

static void eng_free(struct engine *e)
{
	uint32_t i;

	for (i = 0; i < e->n; i++) {
		if (e->c[i].fd >= 0)
			conn_release(e, &e->c[i], 1);
		conn_free(&e->c[i]);
		if (e->tok)
			free(e->tok[i]);
	}
	free(e->tok);
	free(e->c);
	free(e->freel);
	free(e->ts);
	dueq_free(&e->retry);
	dueq_free(&e->feed);
	dueq_free(&e->paced);
	free(e->due);
	free(e->scratch);
	lg_payload_free(&e->pl);
	if (e->ep >= 0)
		close(e->ep);
	if (e->sig >= 0)
		close(e->sig);
}

static const char *const phase_name[] = {"set-up", "waiting to start", "run",
					 "closing", "done"};

static int eng_loop(struct engine *e)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i;

	for (;;) {
		eng_tick(e);
		if (e->phase == EP_DONE)
			return 0;
		n = epoll_wait(e->ep, ev, MAX_EVENTS, eng_timeout(e));
		if (n < 0 && errno != EINTR) {
			perror("wsa-loadgen: epoll_wait");
			return 2;
		}
		e->now = lg_now_ns();
		for (i = 0; i < n; i++)
			eng_dispatch(e, &ev[i]);
		if (e->now >= e->hard_end) {
			fprintf(stderr,
				"wsa-loadgen: deadline passed during "
				"%s; giving up\n",
				phase_name[e->phase]);
			return 2;
		}
	}
}

int engine_run(const struct lg_opts *o, const struct lg_share *sh, int ctl,
	       struct lg_result *r)
{
	struct engine e;
	int rc = 1;

	if (!eng_init(&e, o, sh, ctl)) {
		/* Minting is done: the set-up deadline starts now. */
		e.t0 = e.now = lg_now_ns();
		e.setup_end = e.t0 + lg_ns(o->connect_timeout);
		e.hard_end = e.t0 + lg_ns(2 * o->connect_timeout + o->warmup +
					  o->duration + o->close_timeout + 10);
		rc = eng_loop(&e);
	}
	if (!rc && e.ctl >= 0)
		ctl_send(e.ctl, CTL_RESULT, &e.r, sizeof(e.r));
	*r = e.r;
	eng_free(&e);
	return rc;
}
