/* Topic history with real sockets, in one process: the setter's checks,
 * kept publications from a host thread numbered in order, a join from a
 * position (everything after it; recovered only when nothing is missing),
 * the sender's copy of wsa_conn_publish with its id and position, and a
 * history forgotten after its time to live (a new epoch, which a member
 * that stayed gets from offset 1). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsa.h>

#include "check.h"
#include "serve.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000 /* ms: bound on every wait */
#define PATH   "/ws/h"

/* {"type":"joined","topic":T,"recovered":B,"offset":N,"epoch":E}, with
 * "offset" and "epoch" only for a topic with history. */
static void joined(wsa_conn *c, const char *topic, json_t *users,
		   const wsa_position *now, bool recovered, void *ud)
{
	json_t *m = json_pack("{s:s,s:s,s:b,s:O}", "type", "joined", "topic",
			      topic, "recovered", recovered, "users", users);

	(void)ud;
	if (now) {
		json_object_set_new(m, "offset",
				    json_integer((json_int_t)now->offset));
		json_object_set_new(m, "epoch", json_string(now->epoch));
	}
	wsa_conn_send_new(c, m);
}

/* {"type":"join","topic":T[,"offset":N,"epoch":E]} */
static void on_join(wsa_conn *c, json_t *msg, void *ud)
{
	const char *epoch = json_string_value(json_object_get(msg, "epoch"));
	wsa_position since = {0};

	(void)ud;
	if (epoch) {
		since.offset = (unsigned long long)json_integer_value(
		    json_object_get(msg, "offset"));
		snprintf(since.epoch, sizeof(since.epoch), "%s", epoch);
	}
	CHECK_INT(wsa_conn_join_since(
		      c, json_string_value(json_object_get(msg, "topic")),
		      epoch ? &since : NULL, joined, NULL),
		  WSA_OK);
}

/* {"type":"say","topic":T,"n":N[,"offset":X]}: wsa_conn_publish of
 * {"type":"said","n":N[,"offset":X]}; an error answers with its code. */
static void on_say(wsa_conn *c, json_t *msg, void *ud)
{
	json_t *out = json_pack("{s:s,s:O}", "type", "said", "n",
				json_object_get(msg, "n"));
	int rc;

	(void)ud;
	if (json_object_get(msg, "offset"))
		json_object_set(out, "offset", json_object_get(msg, "offset"));
	rc = wsa_conn_publish(
	    c, json_string_value(json_object_get(msg, "topic")), out);
	json_decref(out);
	if (rc)
		wsa_conn_send_new(
		    c, json_pack("{s:s,s:i}", "type", "refused", "rc", rc));
}

static bool start(struct server *s, unsigned size, unsigned ttl_ms)
{
	wsa_config cfg;
	wsa_route *r;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	if (wsa_server_new(&s->srv, &cfg) || wsa_jwt_new(&s->jwt) ||
	    wsa_jwt_add_key(s->jwt, NULL, "HS256", SECRET, strlen(SECRET)) ||
	    wsa_set_verifier(s->srv, wsa_jwt_verifier, s->jwt) ||
	    wsa_route_add(s->srv, PATH, NULL, NULL, NULL, &r) ||
	    wsa_route_handle(r, "join", on_join, NULL) ||
	    wsa_route_handle(r, "say", on_say, NULL) ||
	    wsa_server_topic_history(s->srv, "kept/", size, ttl_ms))
		return false;
	s->port = wsa_server_port(s->srv);
	return pthread_create(&s->thread, NULL, serve_run, s) == 0;
}

/* A logged-in connection, or NULL. */
static wsc *client(const struct server *s, const char *uid)
{
	json_t *m;
	wsc *c = wsc_connect("127.0.0.1", s->port, PATH, NULL, T, NULL);

	if (!c)
		return NULL;
	serve_login(c, SECRET, uid);
	m = wsc_recv_json(c, T);
	CHECK_STR(json_string_value(json_object_get(m, "type")), "auth");
	json_decref(m);
	return c;
}

static void send_json(wsc *c, json_t *m)
{
	char *text = json_dumps(m, JSON_COMPACT);

	wsc_send_text(c, text, strlen(text));
	free(text);
	json_decref(m);
}

/* Join topic (from offset in epoch when epoch is not NULL): the chats
 * that come first are checked to be n = first, first + 1, ... (each at
 * its offset n, in epoch), then the answer, returned. */
static json_t *join_from(wsc *c, const char *topic, long long offset,
			 const char *epoch, int first, int count)
{
	json_t *m = json_pack("{s:s,s:s}", "type", "join", "topic", topic);
	int i;

	if (epoch) {
		json_object_set_new(m, "offset", json_integer(offset));
		json_object_set_new(m, "epoch", json_string(epoch));
	}
	send_json(c, m);
	for (i = 0; i < count; i++) {
		m = wsc_recv_json(c, T);
		CHECK_INT(json_integer_value(json_object_get(m, "n")),
			  first + i);
		CHECK_INT(json_integer_value(json_object_get(m, "offset")),
			  first + i);
		json_decref(m);
	}
	m = wsc_recv_json(c, T);
	CHECK_STR(json_string_value(json_object_get(m, "type")), "joined");
	return m;
}

static void test_setter(void)
{
	json_t *obj = json_object();
	wsa_server *srv;
	wsa_config cfg;
	char prefix[8];
	int i;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	CHECK_INT(wsa_server_topic_history(NULL, "", 1, 1), WSA_EINVAL);
	CHECK_INT(wsa_server_topic_history(srv, NULL, 1, 1), WSA_EINVAL);
	CHECK_INT(wsa_server_topic_history(srv, "", 0, 1), WSA_EINVAL);
	CHECK_INT(wsa_server_topic_history(srv, "", WSA_HISTORY_MAX + 1, 1),
		  WSA_EINVAL);
	CHECK_INT(wsa_server_topic_history(srv, "", 1, 0), WSA_EINVAL);
	for (i = 0; i < 16; i++) {
		snprintf(prefix, sizeof(prefix), "p%d/", i);
		CHECK_INT(wsa_server_topic_history(srv, prefix, 10, 1000),
			  WSA_OK);
	}
	CHECK_INT(wsa_server_topic_history(srv, "p3/", 10, 1000), WSA_EINVAL);
	CHECK_INT(wsa_server_topic_history(srv, "more/", 10, 1000), WSA_ELIMIT);
	CHECK_INT(wsa_server_publish_kept(srv, "", obj, NULL), WSA_EINVAL);
	json_decref(obj);
	wsa_server_free(srv);
}

struct feed {
	wsa_server *srv;
	int from, count;
};

/* Kept publications from a thread that is not a loop's. */
static void *feed(void *arg)
{
	struct feed *f = arg;

	for (int i = f->from; i < f->from + f->count; i++) {
		json_t *m = json_pack("{s:s,s:i}", "type", "news", "n", i);

		CHECK_INT(wsa_server_publish_kept(f->srv, "kept/a", m, NULL),
			  WSA_OK);
		json_decref(m);
	}
	return NULL;
}

/* 30 kept from a host thread: a member gets 1..30 in order; joins from
 * 10 and from 0 with a history of 20. */
static void test_join_from_position(void)
{
	struct server s;
	struct feed f;
	pthread_t th;
	json_t *j, *m;
	char epoch[WSA_EPOCH_MAX + 1];
	wsc *a, *b;
	int i;

	CHECK(start(&s, 20, 600000));
	a = client(&s, "alice");
	b = client(&s, "bob");
	if (!a || !b)
		return;
	j = join_from(a, "kept/a", 0, NULL, 1, 0);
	CHECK_INT(json_integer_value(json_object_get(j, "offset")), 0);
	CHECK(json_object_get(j, "recovered") == json_false());
	snprintf(epoch, sizeof(epoch), "%s",
		 json_string_value(json_object_get(j, "epoch")));
	CHECK_INT((int)strlen(epoch), WSA_EPOCH_MAX);
	CHECK_INT((int)strspn(epoch, "0123456789abcdefghijklmnopqrstuvwxyz"),
		  WSA_EPOCH_MAX);
	json_decref(j);
	f = (struct feed){s.srv, 1, 30};
	pthread_create(&th, NULL, feed, &f);
	pthread_join(th, NULL);
	for (i = 1; i <= 30; i++) {
		m = wsc_recv_json(a, T);
		CHECK_INT(json_integer_value(json_object_get(m, "n")), i);
		CHECK_INT(json_integer_value(json_object_get(m, "offset")), i);
		CHECK_STR(json_string_value(json_object_get(m, "epoch")),
			  epoch);
		json_decref(m);
	}
	/* From 10: 11..30 are all kept (the last 20). */
	j = join_from(b, "kept/a", 10, epoch, 11, 20);
	CHECK(json_object_get(j, "recovered") == json_true());
	CHECK_INT(json_integer_value(json_object_get(j, "offset")), 30);
	json_decref(j);
	wsc_close(b);
	/* From 0: 1..10 are gone; what is kept comes, not recovered. */
	b = client(&s, "bob");
	j = join_from(b, "kept/a", 0, epoch, 11, 20);
	CHECK(json_object_get(j, "recovered") == json_false());
	json_decref(j);
	wsc_close(b);
	/* Another epoch: nothing, not recovered, the position now. */
	b = client(&s, "bob");
	j = join_from(b, "kept/a", 25, "zzzzzzzzzzzzzzzz", 0, 0);
	CHECK(json_object_get(j, "recovered") == json_false());
	CHECK_INT(json_integer_value(json_object_get(j, "offset")), 30);
	json_decref(j);
	wsc_close(b);
	wsc_close(a);
	serve_finish(&s);
}

/* wsa_conn_publish: the sender's copy carries its id and the position,
 * the other member's the position only; "offset" of its own is refused
 * in a kept topic, taken in another. */
static void test_conn_publish(void)
{
	struct server s;
	json_t *m;
	wsc *a, *b;

	CHECK(start(&s, 10, 600000));
	a = client(&s, "alice");
	b = client(&s, "bob");
	if (!a || !b)
		return;
	json_decref(join_from(a, "kept/b", 0, NULL, 0, 0));
	json_decref(join_from(b, "kept/b", 0, NULL, 0, 0));
	send_json(a, json_pack("{s:s,s:s,s:i,s:s}", "type", "say", "topic",
			       "kept/b", "n", 1, "id", "x1"));
	m = wsc_recv_json(a, T);
	CHECK_STR(json_string_value(json_object_get(m, "id")), "x1");
	CHECK_INT(json_integer_value(json_object_get(m, "offset")), 1);
	json_decref(m);
	m = wsc_recv_json(b, T);
	CHECK(json_object_get(m, "id") == NULL);
	CHECK_INT(json_integer_value(json_object_get(m, "offset")), 1);
	json_decref(m);
	send_json(a, json_pack("{s:s,s:s,s:i,s:i}", "type", "say", "topic",
			       "kept/b", "n", 2, "offset", 7));
	m = wsc_recv_json(a, T);
	CHECK_STR(json_string_value(json_object_get(m, "type")), "refused");
	CHECK_INT(json_integer_value(json_object_get(m, "rc")), WSA_EINVAL);
	json_decref(m);
	/* Not kept: the copies carry no position, "offset" is the host's. */
	json_decref(join_from(a, "plain", 0, NULL, 0, 0));
	send_json(a, json_pack("{s:s,s:s,s:i,s:i,s:i}", "type", "say", "topic",
			       "plain", "n", 3, "offset", 7, "id", 5));
	m = wsc_recv_json(a, T);
	CHECK_INT(json_integer_value(json_object_get(m, "offset")), 7);
	CHECK_INT(json_integer_value(json_object_get(m, "id")), 5);
	CHECK(json_object_get(m, "epoch") == NULL);
	json_decref(m);
	wsc_close(a);
	wsc_close(b);
	serve_finish(&s);
}

/* A history with nothing kept for its time to live is forgotten: the
 * next publication starts a new epoch, and a join from the old one is
 * not recovered. Polled within a bound, not slept on. */
static void test_time_to_live(void)
{
	struct timespec t0, now;
	struct server s;
	struct feed f = {0};
	char epoch[WSA_EPOCH_MAX + 1];
	const char *e;
	json_t *j;
	bool changed = false;
	wsc *a, *member;

	CHECK(start(&s, 10, 100));
	member = client(&s, "bob");
	if (!member)
		return;
	j = join_from(member, "kept/a", 0, NULL, 0, 0);
	snprintf(epoch, sizeof(epoch), "%s",
		 json_string_value(json_object_get(j, "epoch")));
	json_decref(j);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	f = (struct feed){s.srv, 1, 1};
	feed(&f);
	j = wsc_recv_json(member, T);
	CHECK_INT(json_integer_value(json_object_get(j, "offset")), 1);
	json_decref(j);
	do {
		a = client(&s, "alice");
		if (!a)
			break;
		j = join_from(a, "kept/a", 1, epoch, 0, 0);
		e = json_string_value(json_object_get(j, "epoch"));
		changed = e && strcmp(e, epoch);
		if (changed) {
			CHECK(json_object_get(j, "recovered") == json_false());
			CHECK_INT(
			    json_integer_value(json_object_get(j, "offset")),
			    0);
			snprintf(epoch, sizeof(epoch), "%s", e);
		}
		json_decref(j);
		wsc_close(a);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!changed && now.tv_sec - t0.tv_sec < 10);
	CHECK(changed);
	/* A member that stayed gets the new epoch's first, offset 1 again. */
	f = (struct feed){s.srv, 2, 1};
	feed(&f);
	j = wsc_recv_json(member, T);
	CHECK_INT(json_integer_value(json_object_get(j, "n")), 2);
	CHECK_INT(json_integer_value(json_object_get(j, "offset")), 1);
	CHECK_STR(json_string_value(json_object_get(j, "epoch")), epoch);
	json_decref(j);
	wsc_close(member);
	serve_finish(&s);
}

int main(void)
{
	test_setter();
	test_join_from_position();
	test_conn_publish();
	test_time_to_live();
	return check_status("test_history");
}
