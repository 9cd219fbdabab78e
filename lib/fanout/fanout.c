/* Fan-out: topics, users, broadcast, close by uid, revocation. See
 * fanout.h. */
#include "fanout/fanout.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "codec/json.h"
#include "core/conn.h"
#include "core/route.h"
#include "core/server.h"
#include "core/service.h"
#include "fanout/broker.h"
#include "fanout/history.h"
#include "util/log.h"

/* A join from a position (wsa_conn_join_since), from the member's link
 * until its answer. */
struct wsa_recovery {
	wsa_recovered_fn fn;
	void *ud;
	/* Until the broker's recover answer: kept publications delivered
	 * meanwhile wait here, in the order they came (a new member's). */
	bool pending, hold;
	bool recovered;
	bool has_now;
	wsa_position now;
	struct wsa_held held;
};

static int topic_join(struct wsa_conn *c, const char *name,
		      unsigned long long since, wsa_joined_fn fn, void *ud);

/* Let go of what h holds. */
static void held_clear(struct wsa_held *h)
{
	while (h->n)
		wsa__fan_unref(h->m[--h->n]);
	free(h->m);
	h->m = NULL;
	h->cap = 0;
}

static void recovery_free(struct wsa_recovery *r)
{
	held_clear(&r->held);
	free(r);
}

/* ---------------------------------------------------------- messages */

/* Whether c was logged in when m was sent: a message still on its way
 * to this loop when c logged in is not c's. */
static bool before(const struct wsa_conn *c, const struct wsa_fan *m)
{
	return c->authenticated && c->fan_since < m->seq;
}

static void deliver_to(struct wsa_conn *c, const struct wsa_fan *m,
		       const struct wsa_conn *reply)
{
	if (wsa__conn_live(c) && before(c, m)) {
		WSA_COUNT(c->svc, deliveries, 1);
		if (c == reply && m->rflen)
			wsa__conn_queue_framed(c, m->rframe, m->rflen);
		else
			wsa__conn_queue_framed(c, m->data, m->flen);
	}
}

/* Keep a reference of m at the end of h; false without memory. */
static bool held_push(struct wsa_held *h, struct wsa_fan *m)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		struct wsa_fan **list = realloc(h->m, cap * sizeof(*list));

		if (!list)
			return false;
		h->m = list;
		h->cap = cap;
	}
	wsa__fan_ref(m);
	h->m[h->n++] = m;
	return true;
}

/* Hold m for a member whose recovery is under way; without memory the
 * member is closed: it would miss m. */
static void hold(struct wsa_member *mb, struct wsa_fan *m)
{
	if (!held_push(&mb->rec->held, m))
		wsa__conn_close(mb->conn, WSA_CLOSE_INTERNAL, "Out of memory");
}

/* An announcement of presence for a member whose join is not answered
 * yet: it waits for the answer, which says at which version its users
 * were read (those as old are in them). Without memory the member is
 * closed: it would miss a change. */
static void hold_announcement(struct wsa_member *mb, struct wsa_fan *m)
{
	if (!mb->pv_held)
		mb->pv_held = calloc(1, sizeof(*mb->pv_held));
	if (!mb->pv_held || !held_push(mb->pv_held, m))
		wsa__conn_close(mb->conn, WSA_CLOSE_INTERNAL, "Out of memory");
}

static void held_free(struct wsa_held *h)
{
	if (!h)
		return;
	held_clear(h);
	free(h);
}

/* A kept publication to a member: in the order of offsets, each once
 * (by offset for a member that joined from a position, which may have
 * logged in or joined after the message was numbered). */
static void deliver_kept(struct wsa_member *mb, struct wsa_fan *m,
			 const struct wsa_conn *reply)
{
	struct wsa_conn *c = mb->conn;

	if (mb->rec && mb->rec->hold) {
		hold(mb, m);
		return;
	}
	if (mb->hist_next) {
		/* A new epoch (the history was lost) counts from 1 again. */
		if (m->epoch_id == mb->hist_epoch && m->offset < mb->hist_next)
			return;
		mb->hist_epoch = m->epoch_id;
		mb->hist_next = m->offset + 1;
	} else if (mb->since >= m->seq || !before(c, m)) {
		return;
	}
	if (!wsa__conn_live(c))
		return;
	WSA_COUNT(c->svc, deliveries, 1);
	if (c == reply && m->rflen)
		wsa__conn_queue_framed(c, m->rframe, m->rflen);
	else
		wsa__conn_queue_framed(c, m->data, m->flen);
}

static void deliver_topic(struct wsa_service *svc, struct wsa_fan *m)
{
	struct wsa_topic *t = wsa__map_get(&svc->topics, m->name);
	const struct wsa_conn *except =
	    m->except[0] ? wsa__conn_by_id(svc, m->except) : NULL;
	const struct wsa_conn *reply =
	    m->reply[0] ? wsa__conn_by_id(svc, m->reply) : NULL;
	struct wsa_member *mb, *next;

	for (mb = t ? t->members : NULL; mb; mb = next) {
		next = mb->next; /* a member closed for memory stays linked */
		if (mb->conn == except)
			continue;
		if (m->offset)
			deliver_kept(mb, m, reply);
		else if (mb->since >= m->seq)
			continue;
		else if (m->pv && (mb->joined_fn || mb->rec))
			hold_announcement(mb, m);
		else if (!m->pv || mb->pv_since < m->pv)
			deliver_to(mb->conn, m, reply);
	}
}

static void revoke_one(struct wsa_conn *c, void *arg)
{
	const struct wsa_fan *m = arg;

	if (c->authenticated && wsa__conn_live(c) && c->iat < m->before)
		wsa__conn_close(c, m->code, m->reason);
}

/* A route broadcast and its route. */
struct route_fan {
	const struct wsa_route *route;
	const struct wsa_fan *m;
};

static void deliver_route(struct wsa_conn *c, void *arg)
{
	const struct route_fan *rf = arg;

	if (c->route == rf->route)
		deliver_to(c, rf->m, NULL);
}

/* Close every authenticated connection whose token was issued before
 * the time (or does not say when). */
static void revoke_issued_before(struct wsa_service *svc,
				 const struct wsa_fan *m)
{
	atomic_llong *at = &svc->srv->revoked_before;
	long long old = atomic_load(at);

	/* From another node: logins here see the time from now on too. */
	while (old < m->before &&
	       !atomic_compare_exchange_weak(at, &old, m->before))
		;
	wsa__conn_each(svc, revoke_one, (void *)m);
}

static void fan_deliver(void *loop, struct wsa_fan *m)
{
	struct wsa_service *svc = loop;
	struct route_fan rf;
	struct wsa_conn *c;

	switch (m->kind) {
	case WSA_FAN_TOPIC:
		deliver_topic(svc, m);
		break;
	case WSA_FAN_ROUTE:
		rf.route = wsa__route_find(svc->srv, m->name, strlen(m->name));
		rf.m = m;
		if (rf.route)
			wsa__conn_each(svc, deliver_route, &rf);
		break;
	case WSA_FAN_UID:
		for (c = wsa__user_conns(svc, m->name); c; c = c->user_next)
			deliver_to(c, m, NULL);
		break;
	case WSA_FAN_CLOSE_UID:
		/* Closing leaves the connections in the index until they are
		 * closed, so the walk is safe. */
		for (c = wsa__user_conns(svc, m->name); c; c = c->user_next)
			if (before(c, m))
				wsa__conn_close(c, m->code, m->reason);
		break;
	case WSA_FAN_REVOKE:
		revoke_issued_before(svc, m);
		break;
	}
	/* This loop's members have it queued. */
	if (m->t0)
		wsa__observe(&svc->metrics, &svc->metrics.publish,
			     wsa__now_ns() - m->t0);
}

/* A user came into a topic or went: tell the host's handlers. What
 * they publish to the topic meanwhile is the announcement of this change
 * (wsa__fan_send tags it): a member whose list of users already has it
 * is not told again. */
static void fan_presence(void *loop, void *conn,
			 const struct wsa_presence_change *ch)
{
	struct wsa_service *svc = loop;
	struct wsa_server *srv = svc->srv;
	struct wsa_conn *c = conn;

	if (!c && ch->conn_id)
		c = wsa__conn_by_id(svc, ch->conn_id);
	svc->announcing = ch;
	if (srv->presence && c && !ch->remote_only)
		srv->presence(c, ch->topic, ch->joined, srv->presence_userdata);
	if (srv->presence_uid)
		srv->presence_uid(srv, ch->topic, ch->uid, ch->joined,
				  ch->conn_id, srv->presence_uid_userdata);
	svc->announcing = NULL;
}

/* A join reached every node: its callback, if the member still waits. */
static void fan_joined(void *loop, void *conn, const char *conn_id,
		       const char *topic, json_t *users,
		       unsigned long long version)
{
	struct wsa_service *svc = loop;
	struct wsa_conn *c = conn;
	struct wsa_member *m;
	struct wsa_held *held;
	wsa_joined_fn fn;
	size_t i;

	if (!c)
		c = wsa__conn_by_id(svc, conn_id);
	m = c && wsa__conn_live(c) ? wsa__topic_membership(c, topic) : NULL;
	if (!m || !m->joined_fn)
		return;
	fn = m->joined_fn;
	m->joined_fn = NULL;
	m->pv_since = version;
	held = m->pv_held;
	m->pv_held = NULL;
	fn(c, topic, users, m->joined_ud);
	/* The announcements that came meanwhile, but those its users had. */
	m = held && wsa__conn_live(c) ? wsa__topic_membership(c, topic) : NULL;
	for (i = 0; held && i < held->n; i++)
		if (m && held->m[i]->pv > version)
			deliver_to(c, held->m[i], NULL);
	held_free(held);
}

/* The join from a position has reached every node: the host's answer. */
static void recovery_answer(wsa_conn *c, const char *topic, json_t *users,
			    void *ud)
{
	struct wsa_member *m = wsa__topic_membership(c, topic);
	struct wsa_recovery *r = ud;

	if (m && m->rec == r)
		m->rec = NULL;
	r->fn(c, topic, users, r->has_now ? &r->now : NULL, r->recovered,
	      r->ud);
	recovery_free(r);
}

/* What the member missed, then what came meanwhile, then (once the join
 * has reached every node) the answer. */
static void fan_recovered(void *loop, void *conn, const char *conn_id,
			  const char *topic, struct wsa_fan **missed, size_t n,
			  const wsa_position *now, bool recovered)
{
	struct wsa_service *svc = loop;
	struct wsa_conn *c = conn;
	struct wsa_member *m;
	struct wsa_recovery *r;
	unsigned long long next;
	size_t i;

	if (!c)
		c = wsa__conn_by_id(svc, conn_id);
	m = c && wsa__conn_live(c) ? wsa__topic_membership(c, topic) : NULL;
	r = m ? m->rec : NULL;
	if (!r || !r->pending) {
		for (i = 0; i < n; i++)
			wsa__fan_unref(missed[i]);
		return;
	}
	r->pending = false;
	r->recovered = recovered;
	r->has_now = now != NULL;
	if (now)
		r->now = *now;
	if (r->hold) {
		/* From the position on: what was missed, then what came
		 * meanwhile after it (without a position, only that). */
		r->hold = false;
		next = now ? now->offset + 1 : 1;
		m->hist_next = 1;
		m->hist_epoch = now ? wsa__history_epoch_id(now->epoch) : 0;
		for (i = 0; i < n; i++)
			deliver_kept(m, missed[i], NULL);
		if (m->hist_next < next)
			m->hist_next = next;
		for (i = 0; i < r->held.n; i++)
			deliver_kept(m, r->held.m[i], NULL);
	}
	for (i = 0; i < n; i++)
		wsa__fan_unref(missed[i]);
	held_clear(&r->held);
	/* The join's answer, from every node, after all that. */
	m->rec = r;
	if (topic_join(c, topic, 0, recovery_answer, r) != WSA_OK) {
		m->rec = NULL;
		m->joined_fn = NULL;
		recovery_free(r);
		wsa__conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
	}
}

const struct wsa_broker_hooks wsa__fan_hooks = {
    .deliver = fan_deliver,
    .presence = fan_presence,
    .joined = fan_joined,
    .recovered = fan_recovered,
};

void wsa__fan_send(struct wsa_server *srv, struct wsa_fan *m)
{
	struct wsa_service *svc = wsa__service_current(srv);

	m->seq = atomic_fetch_add(&srv->fan_seq, 1) + 1;
	if (svc && svc->announcing && m->kind == WSA_FAN_TOPIC &&
	    !strcmp(m->name, svc->announcing->topic)) {
		m->pv = svc->announcing->version;
		m->remote_only = svc->announcing->remote_only;
	}
	if (m->flen && !srv->cfg.metrics_off) {
		m->t0 = wsa__now_ns();
		if (svc)
			WSA_COUNT(svc, publishes, 1);
		else
			atomic_fetch_add_explicit(&srv->publishes_off_loop, 1,
						  memory_order_relaxed);
	}
	if (svc && !m->remote_only) {
		/* Calls other threads made before reach this loop first. */
		wsa__workq_drain(&svc->workq, svc);
		fan_deliver(svc, m);
	}
	srv->broker->ops->publish(srv->broker, m, svc ? (int)svc->index : -1);
}

/* ------------------------------------------------------------ topics */

struct wsa_member *wsa__topic_membership(const struct wsa_conn *c,
					 const char *name)
{
	const struct wsa_topic *t = wsa__map_get(&c->svc->topics, name);
	const void *key[2] = {c, t};

	return t ? wsa__map_getn(&c->svc->members, key, sizeof(key)) : NULL;
}

/* The topic called name, made if need be; NULL when memory is short. */
static struct wsa_topic *topic_get(struct wsa_service *svc, const char *name)
{
	struct wsa_topic *t = wsa__map_get(&svc->topics, name);
	size_t n = strlen(name);

	if (t)
		return t;
	t = calloc(1, sizeof(*t) + n + 1);
	if (!t)
		return NULL;
	memcpy(t->name, name, n + 1);
	wsa__map_entry_set(&t->entry, t->name, n, t);
	if (!wsa__map_put(&svc->topics, &t->entry)) {
		free(t);
		return NULL;
	}
	/* This loop's first member: the node wants the topic's messages. */
	svc->srv->broker->ops->want(svc->srv->broker, WSA_CHAN_TOPIC, t->name,
				    true);
	return t;
}

/* Free a topic left without members. */
static void topic_drop_empty(struct wsa_service *svc, struct wsa_topic *t)
{
	if (t->n)
		return;
	svc->srv->broker->ops->want(svc->srv->broker, WSA_CHAN_TOPIC, t->name,
				    false);
	wsa__map_del(&svc->topics, t->name);
	free(t);
}

/* The broker's word on a join or leave of c. */
static struct wsa_presence_op presence_op(struct wsa_conn *c, const char *topic)
{
	struct wsa_presence_op op = {
	    .loop = c->svc->index,
	    .loop_ctx = c->svc,
	    .conn = c,
	    .topic = topic,
	    .uid = c->ident,
	    .conn_id = c->id,
	};

	return op;
}

static void member_link(struct wsa_conn *c, struct wsa_topic *t,
			struct wsa_member *m)
{
	m->next = t->members;
	if (t->members)
		t->members->prev = m;
	t->members = m;
	t->n++;
	m->conn_next = c->topics;
	if (c->topics)
		c->topics->conn_prev = m;
	c->topics = m;
	c->ntopics++;
}

/* Unlink m from its topic, its connection and the map, and free it. */
static void member_unlink(struct wsa_service *svc, struct wsa_member *m)
{
	struct wsa_topic *t = m->topic;
	struct wsa_conn *c = m->conn;

	if (m->prev)
		m->prev->next = m->next;
	else
		t->members = m->next;
	if (m->next)
		m->next->prev = m->prev;
	if (m->conn_prev)
		m->conn_prev->conn_next = m->conn_next;
	else
		c->topics = m->conn_next;
	if (m->conn_next)
		m->conn_next->conn_prev = m->conn_prev;
	c->ntopics--;
	wsa__map_deln(&svc->members, m->key, sizeof(m->key));
	if (m->rec)
		recovery_free(m->rec);
	held_free(m->pv_held);
	free(m);
	t->n--;
}

static int topic_join(struct wsa_conn *c, const char *name,
		      unsigned long long since, wsa_joined_fn fn, void *ud)
{
	struct wsa_service *svc = c->svc;
	struct wsa_broker *b = c->svc->srv->broker;
	unsigned cap = c->svc->srv->cfg.max_topics_per_connection;
	struct wsa_presence_op op = presence_op(c, name);
	struct wsa_member *m = wsa__topic_membership(c, name);
	struct wsa_topic *t;
	int rc;

	op.answer = fn != NULL;
	if (m) {
		if (!fn)
			return WSA_OK;
		m->joined_fn = fn;
		m->joined_ud = ud;
		op.topic = m->topic->name;
		op.again = true;
		return b->ops->join(b, &op);
	}
	if (cap != WSA_UNLIMITED && c->ntopics >= cap)
		return WSA_ELIMIT;
	t = topic_get(svc, name);
	m = t ? calloc(1, sizeof(*m)) : NULL;
	if (!m)
		goto fail;
	m->conn = c;
	m->topic = t;
	m->since = since;
	m->joined_fn = fn;
	m->joined_ud = ud;
	m->key[0] = c;
	m->key[1] = t;
	wsa__map_entry_set(&m->entry, m->key, sizeof(m->key), m);
	if (!wsa__map_put(&svc->members, &m->entry))
		goto fail;
	member_link(c, t, m);
	op.topic = t->name;
	rc = b->ops->join(b, &op);
	if (rc) {
		member_unlink(svc, m);
		topic_drop_empty(svc, t);
		return rc;
	}
	return WSA_OK;
fail:
	free(m);
	if (t)
		topic_drop_empty(svc, t);
	return WSA_ENOMEM;
}

int wsa__topic_join(struct wsa_conn *c, const char *name,
		    unsigned long long since)
{
	return topic_join(c, name, since, NULL, NULL);
}

/* Take m out, tell the broker, and free an emptied topic. */
static void member_drop(struct wsa_service *svc, struct wsa_member *m)
{
	struct wsa_broker *b = svc->srv->broker;
	struct wsa_topic *t = m->topic;
	struct wsa_presence_op op = presence_op(m->conn, t->name);

	member_unlink(svc, m);
	b->ops->leave(b, &op);
	topic_drop_empty(svc, t);
}

void wsa__topic_leave(struct wsa_conn *c, const char *name)
{
	struct wsa_member *m = wsa__topic_membership(c, name);

	if (m)
		member_drop(c->svc, m);
}

/* The connection whose user_link l is. */
static struct wsa_conn *user_conn(const struct wsa_link *l)
{
	return (struct wsa_conn *)(void *)((char *)l - offsetof(struct wsa_conn,
								user_link));
}

/* A connection's key in svc->users: its uid. */
static const void *user_key(const struct wsa_link *l, size_t *klen)
{
	const char *uid = user_conn(l)->ident;

	*klen = strlen(uid);
	return uid;
}

struct wsa_conn *wsa__user_conns(const struct wsa_service *svc, const char *uid)
{
	struct wsa_link *l = wsa__imap_get(&svc->users, uid, strlen(uid));

	return l ? user_conn(l) : NULL;
}

/* Take c out of the index of its uid. The first connection of a uid is
 * the index's entry: the next one takes its place there, or the uid
 * leaves the index with it. */
static void user_remove(struct wsa_conn *c)
{
	struct wsa_broker *b = c->svc->srv->broker;

	if (!c->in_users)
		return;
	if (c->user_prev)
		c->user_prev->user_next = c->user_next;
	else if (c->user_next)
		wsa__imap_replace(&c->svc->users, &c->user_link,
				  &c->user_next->user_link);
	else {
		wsa__imap_del(&c->svc->users, &c->user_link);
		b->ops->want(b, WSA_CHAN_USER, c->ident, false);
	}
	if (c->user_next)
		c->user_next->user_prev = c->user_prev;
	c->in_users = false;
	c->user_next = c->user_prev = NULL;
}

void wsa__topic_forget(struct wsa_conn *c)
{
	while (c->topics)
		member_drop(c->svc, c->topics);
	user_remove(c);
}

int wsa__user_add(struct wsa_conn *c)
{
	struct wsa_service *svc = c->svc;
	struct wsa_conn *first;

	if (c->in_users)
		return WSA_OK;
	first = wsa__user_conns(svc, c->ident);
	/* The newest first, in the index's place (which cannot fail). */
	if (first)
		wsa__imap_replace(&svc->users, &first->user_link,
				  &c->user_link);
	else if (!wsa__imap_put(&svc->users, &c->user_link))
		return WSA_ENOMEM;
	else
		svc->srv->broker->ops->want(svc->srv->broker, WSA_CHAN_USER,
					    c->ident, true);
	c->in_users = true;
	c->user_prev = NULL;
	c->user_next = first;
	if (first)
		first->user_prev = c;
	return WSA_OK;
}

void wsa__fanout_init(struct wsa_service *svc)
{
	wsa__imap_init(&svc->users, user_key);
}

void wsa__fanout_free(struct wsa_service *svc)
{
	wsa__map_free(&svc->topics);
	wsa__map_free(&svc->members);
	wsa__imap_free(&svc->users);
}

/* ------------------------------------------------------------ public */

/* Serialise msg and send a message of kind to name. */
static int fan_json(wsa_server *srv, enum wsa_fan_kind kind, const json_t *msg,
		    const char *name, const char *except)
{
	struct wsa_buf b = {0};
	struct wsa_fan *m;

	if (atomic_load(&srv->stop_requested))
		return WSA_ESTATE;
	if (!wsa__json_dump(msg, &b))
		return WSA_ENOMEM;
	m = wsa__fan_new(kind, b.p, b.len, name, NULL);
	wsa__buf_free(&b);
	if (!m)
		return WSA_ENOMEM;
	if (except)
		memcpy(m->except, except, sizeof(m->except));
	wsa__fan_send(srv, m);
	return WSA_OK;
}

int wsa_server_publish(wsa_server *srv, const char *topic, const json_t *msg,
		       const char *except_conn_id)
{
	if (!srv || !wsa__name_ok(topic) || !json_is_object(msg) ||
	    (except_conn_id && !wsa__id_ok(except_conn_id)))
		return WSA_EINVAL;
	return fan_json(srv, WSA_FAN_TOPIC, msg, topic, except_conn_id);
}

int wsa_server_broadcast(wsa_server *srv, const char *path, const json_t *msg)
{
	if (!srv || !wsa__name_ok(path) || !json_is_object(msg))
		return WSA_EINVAL;
	return fan_json(srv, WSA_FAN_ROUTE, msg, path, NULL);
}

int wsa_server_send_uid(wsa_server *srv, const char *uid, const json_t *msg)
{
	if (!srv || !wsa__name_ok(uid) || !json_is_object(msg))
		return WSA_EINVAL;
	return fan_json(srv, WSA_FAN_UID, msg, uid, NULL);
}

/* A close of many connections, to every loop. */
static int fan_close(wsa_server *srv, enum wsa_fan_kind kind, const char *uid,
		     int code, const char *reason, long long before)
{
	struct wsa_fan *m;

	if (!wsa__close_code_ok(code) || (reason && strlen(reason) > 123))
		return WSA_EINVAL;
	if (atomic_load(&srv->stop_requested))
		return WSA_ESTATE;
	m = wsa__fan_new(kind, NULL, 0, uid, reason);
	if (!m)
		return WSA_ENOMEM;
	m->code = code;
	m->before = before;
	wsa__fan_send(srv, m);
	return WSA_OK;
}

int wsa_server_close_uid(wsa_server *srv, const char *uid, int code,
			 const char *reason)
{
	if (!srv || !wsa__name_ok(uid))
		return WSA_EINVAL;
	return fan_close(srv, WSA_FAN_CLOSE_UID, uid, code, reason, 0);
}

int wsa_server_revoke_before(wsa_server *srv, long long before, int code,
			     const char *reason)
{
	long long old;

	if (!srv || before <= 0 || !wsa__close_code_ok(code) ||
	    (reason && strlen(reason) > 123))
		return WSA_EINVAL;
	/* Logins see the new time at once, from here on. */
	old = atomic_load(&srv->revoked_before);
	while (old < before && !atomic_compare_exchange_weak(
				   &srv->revoked_before, &old, before))
		;
	return fan_close(srv, WSA_FAN_REVOKE, NULL, code, reason, before);
}

int wsa_conn_join(wsa_conn *c, const char *topic)
{
	if (!c || !wsa__name_ok(topic))
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	return wsa__topic_join(c, topic, atomic_load(&c->svc->srv->fan_seq));
}

int wsa_conn_join_async(wsa_conn *c, const char *topic, wsa_joined_fn fn,
			void *userdata)
{
	if (!c || !wsa__name_ok(topic) || !fn)
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	return topic_join(c, topic, atomic_load(&c->svc->srv->fan_seq), fn,
			  userdata);
}

/* Ask the broker what the member m missed since a position, or (since
 * NULL) the topic's position; the answer comes to fan_recovered. */
static int recover(struct wsa_conn *c, struct wsa_member *m,
		   const struct wsa_history_rule *rule,
		   const wsa_position *since)
{
	struct wsa_broker *b = c->svc->srv->broker;
	struct wsa_recover_op op = {
	    .loop = c->svc->index,
	    .loop_ctx = c->svc,
	    .conn = c,
	    .conn_id = c->id,
	    .topic = m->topic->name,
	    .rule = rule,
	    .since = since,
	};

	if (!rule) { /* no history: the answer at once, without position */
		fan_recovered(c->svc, c, c->id, m->topic->name, NULL, 0, NULL,
			      false);
		return WSA_OK;
	}
	return b->ops->recover(b, &op);
}

int wsa_conn_join_since(wsa_conn *c, const char *topic,
			const wsa_position *since, wsa_recovered_fn fn,
			void *userdata)
{
	const struct wsa_history_rule *rule;
	struct wsa_recovery *r;
	struct wsa_member *m;
	bool again;
	int rc;

	if (!c || !wsa__name_ok(topic) || !fn ||
	    (since && strnlen(since->epoch, sizeof(since->epoch)) ==
			  sizeof(since->epoch)))
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	m = wsa__topic_membership(c, topic);
	if (m && m->rec)
		return WSA_ESTATE; /* a join of it under way */
	again = m != NULL;
	if (!again) {
		rc = topic_join(c, topic, atomic_load(&c->svc->srv->fan_seq),
				NULL, NULL);
		if (rc)
			return rc;
		m = wsa__topic_membership(c, topic);
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		if (!again)
			member_drop(c->svc, m);
		return WSA_ENOMEM;
	}
	r->fn = fn;
	r->ud = userdata;
	r->pending = true;
	/* A member already gets everything: only the position is asked. */
	r->hold = !again;
	m->rec = r;
	rule = wsa__history_rule(&c->svc->srv->history_rules, topic);
	rc = recover(c, m, rule, again ? NULL : since);
	if (rc) {
		m->rec = NULL;
		recovery_free(r);
		if (!again)
			member_drop(c->svc, m);
	}
	return rc;
}

/* A kept publication of msg to topic under rule: numbered here, stamped,
 * kept and carried by the broker. */
static int publish_kept(wsa_server *srv, const struct wsa_history_rule *rule,
			const char *topic, const json_t *msg,
			const char *except, const struct wsa_conn *reply)
{
	struct wsa_service *svc = wsa__service_current(srv);
	struct wsa_buf text = {0}, id = {0};
	struct wsa_kept_pub k = {
	    .rule = rule,
	    .topic = topic,
	    .except = except,
	    .reply = reply ? reply->id : NULL,
	};
	int rc = WSA_ENOMEM;

	if (json_object_get(msg, "offset") || json_object_get(msg, "epoch"))
		return WSA_EINVAL;
	if (!wsa__json_dump(msg, &text) ||
	    (reply && wsa__conn_reply_id(reply) &&
	     !json_object_get(msg, "id") &&
	     (!wsa__json_dump(wsa__conn_reply_id(reply), &id) ||
	      !wsa__buf_append(&id, "", 1))))
		goto out;
	k.text = text.p;
	k.len = text.len;
	k.id_text = id.len ? id.p : NULL;
	k.seq = atomic_fetch_add(&srv->fan_seq, 1) + 1;
	if (!srv->cfg.metrics_off) {
		k.t0 = wsa__now_ns();
		if (svc)
			WSA_COUNT(svc, publishes, 1);
		else
			atomic_fetch_add_explicit(&srv->publishes_off_loop, 1,
						  memory_order_relaxed);
	}
	/* Calls other threads made before reach this loop first. */
	if (svc)
		wsa__workq_drain(&svc->workq, svc);
	rc = srv->broker->ops->publish_kept(srv->broker, &k);
out:
	wsa__buf_free(&text);
	wsa__buf_free(&id);
	return rc;
}

/* msg to topic with a second frame for reply, its reply (with the "id" of
 * the message being handled), as wsa_server_publish() otherwise. */
static int publish_reply(wsa_server *srv, const char *topic, const json_t *msg,
			 struct wsa_conn *reply)
{
	struct wsa_buf text = {0}, rtext = {0}, id = {0};
	struct wsa_fan *m = NULL;
	bool with_id = wsa__conn_reply_id(reply) && !json_object_get(msg, "id");

	if (wsa__json_dump(msg, &text) &&
	    (!with_id || (wsa__json_dump(wsa__conn_reply_id(reply), &id) &&
			  wsa__buf_append(&id, "", 1))) &&
	    wsa__history_stamp(&rtext, text.p, text.len, 0, NULL,
			       with_id ? id.p : NULL))
		m = wsa__fan_new_reply(text.p, text.len, rtext.p, rtext.len,
				       topic);
	wsa__buf_free(&text);
	wsa__buf_free(&rtext);
	wsa__buf_free(&id);
	if (!m)
		return WSA_ENOMEM;
	memcpy(m->reply, reply->id, sizeof(m->reply));
	wsa__fan_send(srv, m);
	return WSA_OK;
}

int wsa_conn_publish(wsa_conn *c, const char *topic, const json_t *msg)
{
	const struct wsa_history_rule *rule;

	if (!c || !wsa__name_ok(topic) || !json_is_object(msg))
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	if (!wsa__conn_live(c))
		return WSA_ECLOSED;
	if (atomic_load(&c->svc->srv->stop_requested))
		return WSA_ESTATE;
	rule = wsa__history_rule(&c->svc->srv->history_rules, topic);
	if (rule)
		return publish_kept(c->svc->srv, rule, topic, msg, NULL, c);
	return publish_reply(c->svc->srv, topic, msg, c);
}

int wsa_server_publish_kept(wsa_server *srv, const char *topic,
			    const json_t *msg, const char *except_conn_id)
{
	const struct wsa_history_rule *rule;

	if (!srv || !wsa__name_ok(topic) || !json_is_object(msg) ||
	    (except_conn_id && !wsa__id_ok(except_conn_id)))
		return WSA_EINVAL;
	if (atomic_load(&srv->stop_requested))
		return WSA_ESTATE;
	rule = wsa__history_rule(&srv->history_rules, topic);
	if (!rule)
		return fan_json(srv, WSA_FAN_TOPIC, msg, topic, except_conn_id);
	return publish_kept(srv, rule, topic, msg, except_conn_id, NULL);
}

int wsa_conn_leave(wsa_conn *c, const char *topic)
{
	if (!c || !wsa__name_ok(topic))
		return WSA_EINVAL;
	if (!wsa__on_loop(c->svc))
		return WSA_ENOTHREAD;
	wsa__topic_leave(c, topic);
	return WSA_OK;
}

bool wsa_conn_in_topic(const wsa_conn *c, const char *topic)
{
	return c && topic && wsa__topic_membership(c, topic);
}

size_t wsa_conn_topics(const wsa_conn *c, const char **out, size_t max)
{
	const struct wsa_member *m;
	size_t n = 0;

	for (m = c ? c->topics : NULL; m; m = m->conn_next, n++)
		if (n < max && out)
			out[n] = m->topic->name;
	return n;
}

size_t wsa_server_topic_conns(wsa_server *srv, const char *topic,
			      wsa_conn **out, size_t max)
{
	struct wsa_service *svc = srv ? wsa__service_current(srv) : NULL;
	struct wsa_topic *t;
	struct wsa_member *m;
	size_t n = 0;

	if (!svc || !topic)
		return 0;
	t = wsa__map_get(&svc->topics, topic);
	for (m = t ? t->members : NULL; m; m = m->next, n++)
		if (n < max && out)
			out[n] = m->conn;
	return n;
}

json_t *wsa_server_topic_users(wsa_server *srv, const char *topic)
{
	if (!srv || !wsa__name_ok(topic))
		return NULL;
	return srv->broker->ops->users(srv->broker, topic);
}

int wsa_server_on_presence(wsa_server *srv, wsa_presence_fn fn, void *userdata)
{
	if (!srv)
		return WSA_EINVAL;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	srv->presence = fn;
	srv->presence_userdata = userdata;
	return WSA_OK;
}

int wsa_server_on_presence_uid(wsa_server *srv, wsa_presence_uid_fn fn,
			       void *userdata)
{
	if (!srv)
		return WSA_EINVAL;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	srv->presence_uid = fn;
	srv->presence_uid_userdata = userdata;
	return WSA_OK;
}
