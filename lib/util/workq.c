/* Work for a loop from any thread. See workq.h. */
#include "util/workq.h"

#include <stddef.h>

void wsa__workq_init(struct wsa_workq *q, void (*wake)(void *), void *arg)
{
	pthread_mutex_init(&q->lock, NULL);
	q->head = q->tail = NULL;
	q->wake = wake;
	q->wake_arg = arg;
}

void wsa__workq_push(struct wsa_workq *q, struct wsa_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	pthread_mutex_unlock(&q->lock);
	q->wake(q->wake_arg);
}

/* Take the whole queue, oldest first. */
static struct wsa_work *take(struct wsa_workq *q)
{
	struct wsa_work *list;

	pthread_mutex_lock(&q->lock);
	list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return list;
}

void wsa__workq_drain(struct wsa_workq *q, void *ctx)
{
	struct wsa_work *list;

	while ((list = take(q)))
		while (list) {
			struct wsa_work *next = list->next;

			list->run(list, ctx);
			list = next;
		}
}

void wsa__workq_free(struct wsa_workq *q)
{
	struct wsa_work *list = take(q);

	while (list) {
		struct wsa_work *next = list->next;

		list->drop(list);
		list = next;
	}
	pthread_mutex_destroy(&q->lock);
}
