/* wsa-loadgen: a WebSocket load generator for libwsa's benchmarks.
 *
 * RFC 6455 client on plain sockets and epoll: one single-threaded event
 * loop per process, and as many forked workers as the descriptor limit
 * requires (or --workers asks for).  See README.md beside this file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "engine.h"

/* The hard limit is what we may have; take all of it. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		perror("wsa-loadgen: setrlimit");
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

/* Workers needed: a process keeps 100 descriptors in reserve. */
static int decide_workers(const struct lg_opts *o, rlim_t nofile, unsigned *w)
{
	unsigned long need = o->mode == LG_CONNECT ? o->concurrency : o->conns;
	unsigned long per = nofile > 200 ? (unsigned long)nofile - 100 : 100;

	*w = o->workers;
	if (!*w && need > per)
		*w = (unsigned)((need + per - 1) / per);
	if (*w && (need + *w - 1) / *w > per) {
		fprintf(stderr,
			"wsa-loadgen: %lu connections need at least "
			"%lu workers under a limit of %lu descriptors\n",
			need, (need + per - 1) / per, (unsigned long)nofile);
		return -1;
	}
	return 0;
}

/* SIGINT and SIGTERM are read through a signalfd in the event loop;
 * SIGPIPE would kill us on a write to a connection the server reset. */
static void setup_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static double cpu_children(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	static struct lg_opts o;
	static struct lg_result r;
	struct lg_share sh;
	uint64_t t0 = lg_now_ns();
	unsigned w;
	int rc;

	if (lg_parse_opts(&o, argc, argv) ||
	    decide_workers(&o, raise_nofile(), &w))
		return 1;
	setup_signals();
	if (w) {
		rc = lg_workers_run(&o, w, &r);
	} else {
		lg_share_of(&o, 0, 0, &sh);
		rc = engine_run(&o, &sh, -1, &r);
	}
	if (rc)
		return rc;
	lg_report(&o, &r, lg_cpu_self() + cpu_children(),
		  (double)(lg_now_ns() - t0) / 1e9, w);
	if (!r.ok) {
		fputs("wsa-loadgen: every connection failed\n", stderr);
		return 1;
	}
	if (o.mode == LG_ECHO && !r.messages && !r.interrupted) {
		fputs("wsa-loadgen: no reply in the window\n", stderr);
		return 1;
	}
	/* A window cut short by a signal is not the measurement asked for. */
	return r.interrupted && !lg_held(o.mode) ? 3 : 0;
}
