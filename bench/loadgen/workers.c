/* Forked workers: each runs an engine over its share of the connections
 * and talks to the parent through a socketpair (see ctl.h).  The parent
 * starts them together (GO once all are READY), relays a stop, and adds
 * their results up. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "engine.h"

#define SLOT_SIG 0xfffffff1u
#define SLOT_IN	 0xfffffff2u

enum { W_STARTED, W_READY, W_DONE };

struct worker {
	pid_t pid;
	int fd;
	int state;
	struct lg_result r; /* READY's, then RESULT's */
};

struct parent {
	const struct lg_opts *o;
	unsigned w;
	struct worker *wk;
	int ep, sig, in;
	unsigned ready, done;
	int went, stopping, failed;
	uint64_t deadline;
};

void lg_share_of(const struct lg_opts *o, unsigned w, unsigned i,
		 struct lg_share *sh)
{
	unsigned total = o->mode == LG_CONNECT ? o->concurrency : o->conns;
	unsigned parts = w ? w : 1, base = total / parts, extra = total % parts;

	sh->id = w ? i + 1 : 0;
	sh->conns = base + (i < extra);
	sh->first = i * base + (i < extra ? i : extra);
	sh->concurrency = o->concurrency / parts ? o->concurrency / parts : 1;
}

static void worker_main(const struct lg_opts *o, unsigned w, unsigned i, int fd)
{
	struct lg_share sh;
	static struct lg_result r;

	/* SIGTERM is blocked and read through the engine's signalfd: a
	 * parent that dies makes the worker close its connections. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	lg_share_of(o, w, i, &sh);
	exit(engine_run(o, &sh, fd, &r));
}

static int spawn(struct parent *p)
{
	int sv[2];
	unsigned i, j;
	pid_t pid;

	for (i = 0; i < p->w; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
			perror("wsa-loadgen: socketpair");
			return -1;
		}
		fflush(NULL); /* nothing buffered may be printed twice */
		pid = fork();
		if (pid < 0) {
			perror("wsa-loadgen: fork");
			return -1;
		}
		if (pid == 0) {
			for (j = 0; j < i; j++)
				close(p->wk[j].fd);
			close(sv[0]);
			worker_main(p->o, p->w, i, sv[1]);
		}
		close(sv[1]);
		p->wk[i].pid = pid;
		p->wk[i].fd = sv[0];
	}
	return 0;
}

static int watch(int ep, int fd, uint32_t slot)
{
	struct epoll_event ev;

	ev.events = EPOLLIN;
	ev.data.u64 = slot;
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int parent_fds(struct parent *p)
{
	sigset_t set;
	unsigned i;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	p->sig = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (p->ep < 0 || p->sig < 0 || watch(p->ep, p->sig, SLOT_SIG))
		return -1;
	for (i = 0; i < p->w; i++)
		if (watch(p->ep, p->wk[i].fd, i))
			return -1;
	if (lg_held(p->o->mode) && !watch(p->ep, 0, SLOT_IN))
		p->in = 0;
	return 0;
}

static void tell_all(struct parent *p, uint32_t type)
{
	unsigned i;

	for (i = 0; i < p->w; i++)
		if (p->wk[i].state != W_DONE)
			ctl_send(p->wk[i].fd, type, NULL, 0);
}

static void stop_all(struct parent *p)
{
	if (p->stopping)
		return;
	p->stopping = 1;
	p->deadline = lg_now_ns() + lg_ns(p->o->close_timeout + 30);
	tell_all(p, CTL_STOP);
}

/* Every worker is READY: announce, then GO (or, idle, hold). */
static void parent_go(struct parent *p)
{
	struct lg_result sum;
	unsigned i;

	memset(&sum, 0, sizeof(sum));
	hist_init(&sum.lat);
	for (i = 0; i < p->w; i++)
		lg_result_add(&sum, &p->wk[i].r);
	p->went = 1;
	if (p->stopping)
		return;
	lg_announce(p->o, &sum);
	if (!sum.ok && p->o->mode != LG_CONNECT) {
		stop_all(p);
	} else if (p->o->mode == LG_IDLE) {
		p->deadline = UINT64_MAX;
	} else {
		p->deadline =
		    lg_now_ns() +
		    lg_ns(p->o->warmup + p->o->duration + p->o->close_timeout +
			  p->o->connect_timeout + 30);
		tell_all(p, CTL_GO);
	}
}

static void worker_gone(struct parent *p, struct worker *wk, int failed)
{
	epoll_ctl(p->ep, EPOLL_CTL_DEL, wk->fd, NULL);
	if (wk->state == W_STARTED)
		p->ready++; /* so that the others are not kept waiting */
	wk->state = W_DONE;
	p->done++;
	if (failed) {
		fprintf(stderr,
			"wsa-loadgen: worker %d ended without a "
			"result\n",
			(int)(wk - p->wk) + 1);
		p->failed = 1;
		stop_all(p);
	}
}

static void parent_ctl(struct parent *p, struct worker *wk)
{
	uint32_t type = 0;
	int r = ctl_recv(wk->fd, &type, &wk->r, sizeof(wk->r));

	if (r <= 0)
		worker_gone(p, wk, 1);
	else if (type == CTL_RESULT)
		worker_gone(p, wk, 0);
	else if (type == CTL_READY && wk->state == W_STARTED) {
		wk->state = W_READY;
		p->ready++;
	}
}

static void parent_event(struct parent *p, uint32_t slot)
{
	struct signalfd_siginfo si;
	char buf[4096];
	ssize_t n;

	if (slot == SLOT_SIG) {
		while (read(p->sig, &si, sizeof(si)) == sizeof(si))
			stop_all(p);
	} else if (slot == SLOT_IN) {
		n = read(0, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			epoll_ctl(p->ep, EPOLL_CTL_DEL, 0, NULL);
			stop_all(p);
		}
	} else if (slot < p->w && p->wk[slot].state != W_DONE) {
		parent_ctl(p, &p->wk[slot]);
	}
}

static int parent_timeout(const struct parent *p)
{
	uint64_t now = lg_now_ns(), ms;

	if (p->deadline == UINT64_MAX)
		return -1;
	if (p->deadline <= now)
		return 0;
	ms = (p->deadline - now + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

static int parent_loop(struct parent *p)
{
	struct epoll_event ev[64];
	int n, i;

	while (p->done < p->w) {
		n = epoll_wait(p->ep, ev, 64, parent_timeout(p));
		if (n < 0 && errno != EINTR)
			return -1;
		for (i = 0; i < n; i++)
			parent_event(p, (uint32_t)ev[i].data.u64);
		if (!p->went && p->ready == p->w)
			parent_go(p);
		if (p->done < p->w && lg_now_ns() >= p->deadline) {
			fprintf(stderr, "wsa-loadgen: workers did not report "
					"in time; giving up\n");
			return -1;
		}
	}
	return p->failed ? -1 : 0;
}

/* Waits for every worker; kills those still running if the run failed. */
static int reap(struct parent *p, int kill_them)
{
	int status, bad = 0;
	unsigned i;

	for (i = 0; i < p->w; i++) {
		if (p->wk[i].pid <= 0)
			continue;
		if (kill_them)
			kill(p->wk[i].pid, SIGKILL);
		if (waitpid(p->wk[i].pid, &status, 0) < 0 ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			bad = 1;
		close(p->wk[i].fd);
	}
	return bad;
}

int lg_workers_run(const struct lg_opts *o, unsigned w, struct lg_result *r)
{
	struct parent p;
	unsigned i;
	int rc;

	memset(&p, 0, sizeof(p));
	p.o = o;
	p.w = w;
	p.ep = p.sig = p.in = -1;
	p.wk = lg_xcalloc(w, sizeof(*p.wk));
	p.deadline = lg_now_ns() + lg_ns(2 * o->connect_timeout + 60);
	rc = spawn(&p) || parent_fds(&p) ? -1 : parent_loop(&p);
	rc = reap(&p, rc != 0) || rc ? 2 : 0;
	memset(r, 0, sizeof(*r));
	hist_init(&r->lat);
	for (i = 0; i < w; i++)
		lg_result_add(r, &p.wk[i].r);
	if (p.ep >= 0)
		close(p.ep);
	if (p.sig >= 0)
		close(p.sig);
	free(p.wk);
	return rc;
}
