/* Work for one loop from any thread, carried out on the loop in the order
 * it was queued. A work item is the caller's struct with a wsa_work in it
 * (its run and drop say what it is); the queue knows nothing else of it.
 * This is the whole any-thread path: sends and closes by id, joins,
 * fan-out deliveries, a verifier's answers. */
#ifndef WSA_LIB_WORKQ_H
#define WSA_LIB_WORKQ_H

#include <pthread.h>
#include <stdbool.h>

struct wsa_work {
	struct wsa_work *next;
	/* Carry the work out on the loop, and free it. */
	void (*run)(struct wsa_work *w, void *loop_ctx);
	/* Free it without carrying it out (the loop is gone). */
	void (*drop)(struct wsa_work *w);
};

struct wsa_workq {
	pthread_mutex_t lock;
	struct wsa_work *head, *tail;
	/* Wake the loop (lws_cancel_service); any thread. */
	void (*wake)(void *arg);
	void *wake_arg;
};

/* Set up an empty queue whose loop is woken with wake(wake_arg). */
void wsa__workq_init(struct wsa_workq *q, void (*wake)(void *), void *arg);

/* Queue w and wake the loop; any thread. */
void wsa__workq_push(struct wsa_workq *q, struct wsa_work *w);

/* Carry out what is queued, oldest first, including what is queued
 * meanwhile; the loop's thread. ctx is given to each run. */
void wsa__workq_drain(struct wsa_workq *q, void *ctx);

/* Drop what is still queued and destroy the queue. */
void wsa__workq_free(struct wsa_workq *q);

#endif
