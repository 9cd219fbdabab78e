/* wsa-loadgen: what the parts of the load generator share.
 *
 * One process (or each forked worker) runs one engine: a single-threaded
 * epoll loop over its share of the connections.  The parent of workers only
 * relays control messages and adds their results up. */
#ifndef LG_H
#define LG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hist.h"

enum lg_mode { LG_ECHO, LG_CONNECT, LG_IDLE, LG_UNAUTH, LG_FLOOD };
enum lg_proto { LG_WSA, LG_RAW };

/* Why a connection (or a connect-mode attempt) failed. */
enum lg_fail {
	LG_F_CONNECT,	/* TCP connect refused, reset or not possible */
	LG_F_HANDSHAKE, /* no 101, or a wrong Sec-WebSocket-Accept */
	LG_F_AUTH,	/* login answered with anything but "auth" */
	LG_F_PROTOCOL,	/* bad frame, early close or EOF during set-up */
	LG_F_TIMEOUT,	/* not ready within --connect-timeout */
	LG_F_COUNT
};

struct lg_opts {
	enum lg_mode mode;
	enum lg_proto proto;
	struct sockaddr_in dst;
	char host_hdr[64]; /* the Host header: "127.0.0.1:8080" */
	char path[512];
	const char *origin;
	bool at_upgrade; /* wsa: the token in the upgrade, no login message */
	unsigned conns;
	unsigned inflight;
	unsigned concurrency; /* set-ups in flight, or connect attempts */
	unsigned workers;     /* 0: only as many as descriptors require */
	unsigned src_addrs;   /* bind to N addresses from src_first; 0: none */
	unsigned src_first;   /* the first: 127.0.0.src_first */
	size_t size;
	double duration;
	double warmup;
	double connect_timeout;
	double close_timeout;
	double rate; /* echo: messages a second per connection; 0: unpaced */
	const char *secret;
	const char *es256_key;
	const char *token;
	int verbose;
};

/* unauth and flood hold their connections (reopening those the server
 * closes) until the end, like idle until told to stop. */
static inline int lg_attack(enum lg_mode m)
{
	return m == LG_UNAUTH || m == LG_FLOOD;
}

/* The modes that a signal, STOP or EOF on stdin ends as asked. */
static inline int lg_held(enum lg_mode m)
{
	return m == LG_IDLE || lg_attack(m);
}

/* Counts by code (an HTTP status, a close code): the first LG_CODES
 * distinct codes seen, then the rest together. */
#define LG_CODES 8
struct lg_codes {
	uint32_t code[LG_CODES]; /* 0: a free entry */
	uint64_t n[LG_CODES];
	uint64_t other;
};

/* The part of the work one process does. */
struct lg_share {
	unsigned id;	      /* worker number, 0 when alone */
	uint32_t first;	      /* global index of its first connection */
	unsigned conns;	      /* connections (echo, idle) or slots (connect) */
	unsigned concurrency; /* set-ups in flight (echo, idle) */
};

/* What one process measured; workers send it to the parent as it is. */
struct lg_result {
	uint64_t ok; /* connections ready, or attempts completed */
	uint64_t fail[LG_F_COUNT]; /* set-up or attempt failures by kind */
	uint64_t dropped;	   /* ready connections lost before the end */
	uint64_t messages;	   /* echo replies counted in the window */
	uint64_t mismatches;	   /* replies that were not the expected echo */
	uint64_t pings;		   /* server pings answered */
	uint64_t upgrades;	   /* 101 answers to our upgrades */
	uint64_t reconnects;	   /* unauth, flood: set up again in the run */
	uint64_t sent;		   /* flood: messages queued */
	uint64_t replies;	   /* unauth, flood: messages received */
	uint64_t rate_limited;	   /* "Rate limit exceeded" errors among them */
	struct lg_codes refused;   /* upgrades answered with another status */
	struct lg_codes closes;	   /* closes by the server, by code; 1006: the
				      connection ended without a close frame */
	double window_s;	   /* length of the measured window */
	double cpu_s;		   /* CPU this process used in the window */
	double setup_s;		   /* time to set all connections up */
	uint32_t interrupted;	   /* stopped early by a signal */
	uint32_t processes;	   /* how many results were added up */
	struct hist lat;	   /* round trips, or time to ready */
};

static inline uint64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t lg_ns(double secs)
{
	return (uint64_t)(secs * 1e9);
}

/* xorshift64*: masks and handshake keys need to be unpredictable to
 * intermediaries, not secret, so a fast generator seeded once from
 * RAND_bytes is enough. */
struct lg_rng {
	uint64_t s;
};

void lg_rng_seed(struct lg_rng *r);

static inline uint64_t lg_rng_next(struct lg_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Allocation failures end the program: a load generator that cannot
 * allocate has nothing useful left to measure. */
void *lg_xrealloc(void *p, size_t n);
void *lg_xcalloc(size_t n, size_t size);

uint64_t lg_failed(const struct lg_result *r);
uint64_t lg_errors(const struct lg_result *r);
void lg_announce(const struct lg_opts *o, const struct lg_result *r);
void lg_result_add(struct lg_result *dst, const struct lg_result *src);
void lg_codes_add(struct lg_codes *t, uint32_t code, uint64_t n);
uint64_t lg_codes_total(const struct lg_codes *t);
double lg_cpu_self(void);

/* opts.c */
int lg_parse_opts(struct lg_opts *o, int argc, char **argv);

/* report.c */
void lg_report(const struct lg_opts *o, const struct lg_result *r,
	       double cpu_total, double wall_total, unsigned workers);

/* workers.c: runs the work in w forked workers and adds their results
 * up into *r.  Returns 0, or non-zero when a worker failed or a deadline
 * passed. */
int lg_workers_run(const struct lg_opts *o, unsigned w, struct lg_result *r);
void lg_share_of(const struct lg_opts *o, unsigned w, unsigned i,
		 struct lg_share *sh);

#endif
