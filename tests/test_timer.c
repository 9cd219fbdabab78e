/* The deadline heap and the activity list of lib/timer.c, driven with
 * random operations on a real (not running) server; deadlines lie far in
 * the future, so nothing fires. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/conn.h"
#include "lib/server.h"
#include "lib/timer.h"

#define N 500

static bool heap_ok(const struct wsa_timers *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->heap[i]->heap_idx != i)
			return false;
		if (i && t->heap[(i - 1) / 2]->deadline > t->heap[i]->deadline)
			return false;
	}
	return true;
}

static size_t lru_len(const struct wsa_timers *t)
{
	size_t n = 0;

	for (const struct wsa_conn *c = t->lru_head; c; c = c->lru_next)
		n++;
	return n;
}

int main(void)
{
	static struct wsa_conn conns[N];
	wsa_server *srv;
	wsa_config cfg;
	size_t in_heap = 0, i, step;
	lws_usec_t far = lws_now_usecs() + 3600 * 1000000ll;

	wsa_config_init(&cfg);
	cfg.idle_timeout_ms = 3600 * 1000;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	for (i = 0; i < N; i++)
		conns[i].heap_idx = SIZE_MAX;
	srand(7);
	for (step = 0; step < 20000; step++) {
		struct wsa_conn *c = &conns[rand() % N];
		int op = rand() % 4;

		if (op < 2) {
			in_heap += c->heap_idx == SIZE_MAX;
			CHECK(wsa__timer_set(srv, c, far + rand() % 1000000));
		} else if (op == 2) {
			in_heap -= c->heap_idx != SIZE_MAX;
			wsa__timer_clear(srv, c);
		} else {
			wsa__timer_touch(srv, c);
		}
		if (!heap_ok(&srv->timers) || srv->timers.n != in_heap) {
			CHECK(!"heap broken");
			break;
		}
	}
	/* Every connection touched at least once is listed once. */
	CHECK(lru_len(&srv->timers) <= N);
	for (i = 0; i < N; i++)
		wsa__timer_forget(srv, &conns[i]);
	CHECK_INT(srv->timers.n, 0);
	CHECK(srv->timers.lru_head == NULL && srv->timers.lru_tail == NULL);
	wsa_server_free(srv);
	return check_status("test_timer");
}
