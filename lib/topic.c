/* Topics, users and broadcast. See topic.h. */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "route.h"
#include "server.h"

struct wsa_member *wsa__topic_membership(const struct wsa_conn *c,
					 const char *name)
{
	const struct wsa_topic *t = wsa__map_get(&c->srv->topics, name);
	const void *key[2] = {c, t};

	return t ? wsa__map_getn(&c->srv->members, key, sizeof(key)) : NULL;
}

/* The topic called name, made if need be; NULL when memory is short. */
static struct wsa_topic *topic_get(struct wsa_server *srv, const char *name)
{
	struct wsa_topic *t = wsa__map_get(&srv->topics, name);
	size_t n = strlen(name);

	if (t)
		return t;
	t = calloc(1, sizeof(*t) + n + 1);
	if (!t)
		return NULL;
	memcpy(t->name, name, n + 1);
	wsa__map_entry_set(&t->entry, t->name, n, t);
	if (!wsa__map_put(&srv->topics, &t->entry)) {
		free(t);
		return NULL;
	}
	return t;
}

/* Free a topic left without members. */
static void topic_drop_empty(struct wsa_server *srv, struct wsa_topic *t)
{
	if (t->n)
		return;
	wsa__map_del(&srv->topics, t->name);
	free(t);
}

int wsa__topic_join(struct wsa_conn *c, const char *name)
{
	struct wsa_server *srv = c->srv;
	unsigned cap = srv->cfg.max_topics_per_connection;
	struct wsa_topic *t;
	struct wsa_member *m;

	if (wsa__topic_membership(c, name))
		return WSA_OK;
	if (cap != WSA_UNLIMITED && c->ntopics >= cap)
		return WSA_ELIMIT;
	t = topic_get(srv, name);
	m = t ? calloc(1, sizeof(*m)) : NULL;
	if (!m) {
		if (t)
			topic_drop_empty(srv, t);
		return WSA_ENOMEM;
	}
	m->conn = c;
	m->topic = t;
	m->key[0] = c;
	m->key[1] = t;
	wsa__map_entry_set(&m->entry, m->key, sizeof(m->key), m);
	if (!wsa__map_put(&srv->members, &m->entry)) {
		free(m);
		topic_drop_empty(srv, t);
		return WSA_ENOMEM;
	}
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
	return WSA_OK;
}

/* Unlink m from its topic (freeing an emptied topic), from its
 * connection and from the map, and free it. */
static void member_drop(struct wsa_server *srv, struct wsa_member *m)
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
	wsa__map_deln(&srv->members, m->key, sizeof(m->key));
	free(m);
	t->n--;
	topic_drop_empty(srv, t);
}

void wsa__topic_leave(struct wsa_conn *c, const char *name)
{
	struct wsa_member *m = wsa__topic_membership(c, name);

	if (m)
		member_drop(c->srv, m);
}

/* Take c out of the index of its uid. */
static void user_remove(struct wsa_conn *c)
{
	struct wsa_user *u = c->user;

	if (!u)
		return;
	if (c->user_prev)
		c->user_prev->user_next = c->user_next;
	else
		u->conns = c->user_next;
	if (c->user_next)
		c->user_next->user_prev = c->user_prev;
	c->user = NULL;
	c->user_next = c->user_prev = NULL;
	if (u->conns)
		return;
	wsa__map_del(&c->srv->users, u->uid);
	free(u);
}

void wsa__topic_forget(struct wsa_conn *c)
{
	while (c->topics)
		member_drop(c->srv, c->topics);
	user_remove(c);
}

bool wsa__user_full(struct wsa_server *srv, const char *uid)
{
	unsigned cap = srv->cfg.max_connections_per_user;
	const struct wsa_user *u;

	if (cap == WSA_UNLIMITED)
		return false;
	u = wsa__map_get(&srv->users, uid);
	return u && u->n >= cap;
}

void wsa__user_closing(struct wsa_conn *c)
{
	if (c->user)
		c->user->n--;
}

int wsa__user_add(struct wsa_conn *c)
{
	struct wsa_server *srv = c->srv;
	const char *uid = wsa_conn_uid(c);
	struct wsa_user *u = wsa__map_get(&srv->users, uid);

	if (c->user)
		return WSA_OK;
	if (wsa__user_full(srv, uid))
		return WSA_ELIMIT;
	if (!u) {
		size_t n = strlen(uid);

		u = calloc(1, sizeof(*u) + n + 1);
		if (!u)
			return WSA_ENOMEM;
		memcpy(u->uid, uid, n + 1);
		wsa__map_entry_set(&u->entry, u->uid, n, u);
		if (!wsa__map_put(&srv->users, &u->entry)) {
			free(u);
			return WSA_ENOMEM;
		}
	}
	c->user = u;
	c->user_prev = NULL;
	c->user_next = u->conns;
	if (u->conns)
		u->conns->user_prev = c;
	u->conns = c;
	u->n++;
	return WSA_OK;
}

/* Frame text once into the server's frame buffer; false without memory. */
static bool frame_once(struct wsa_server *srv, const char *text, size_t len)
{
	srv->frame.len = 0;
	return wsa__frame_text(&srv->frame, text, len);
}

static void deliver(struct wsa_conn *c, struct wsa_server *srv)
{
	if (c->authenticated && wsa__conn_live(c))
		wsa__conn_queue_framed(c, srv->frame.p, srv->frame.len);
}

void wsa__topic_publish(struct wsa_server *srv, const char *name,
			const char *text, size_t len,
			const struct wsa_conn *except)
{
	struct wsa_topic *t = wsa__map_get(&srv->topics, name);
	struct wsa_member *m;

	if (!t || !frame_once(srv, text, len))
		return;
	for (m = t->members; m; m = m->next)
		if (m->conn != except)
			deliver(m->conn, srv);
}

void wsa__user_send(struct wsa_server *srv, const char *uid, const char *text,
		    size_t len)
{
	struct wsa_user *u = wsa__map_get(&srv->users, uid);
	struct wsa_conn *c;

	if (!u || !frame_once(srv, text, len))
		return;
	for (c = u->conns; c; c = c->user_next)
		deliver(c, srv);
}

void wsa__user_close(struct wsa_server *srv, const char *uid, int code,
		     const char *reason)
{
	struct wsa_user *u = wsa__map_get(&srv->users, uid);
	struct wsa_conn *c;

	/* Closing leaves the connections in the index until they are
	 * closed, so the walk is safe. */
	for (c = u ? u->conns : NULL; c; c = c->user_next)
		wsa__conn_close(c, code, reason);
}

void wsa__route_broadcast(struct wsa_server *srv, struct wsa_route *route,
			  const char *text, size_t len)
{
	struct wsa_conn *c;

	if (!frame_once(srv, text, len))
		return;
	for (c = srv->conns; c; c = c->next)
		if (c->route == route)
			deliver(c, srv);
}

void wsa__topics_free(struct wsa_server *srv)
{
	wsa__map_free(&srv->topics);
	wsa__map_free(&srv->members);
	wsa__map_free(&srv->users);
}
