/* Topics, users and broadcast. See topic.h. */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "route.h"
#include "server.h"

static struct wsa_member *membership(const struct wsa_conn *c, const char *name)
{
	struct wsa_member *m;

	for (m = c->topics; m; m = m->conn_next)
		if (!strcmp(m->topic->name, name))
			return m;
	return NULL;
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
	t->entry.key = t->name;
	t->entry.value = t;
	if (!wsa__map_put(&srv->topics, &t->entry)) {
		free(t);
		return NULL;
	}
	return t;
}

int wsa__topic_join(struct wsa_conn *c, const char *name)
{
	struct wsa_topic *t;
	struct wsa_member *m;

	if (membership(c, name))
		return WSA_OK;
	t = topic_get(c->srv, name);
	m = t ? calloc(1, sizeof(*m)) : NULL;
	if (!m) {
		if (t && !t->n)
			free(wsa__map_del(&c->srv->topics, name)->value);
		return WSA_ENOMEM;
	}
	m->conn = c;
	m->topic = t;
	m->next = t->members;
	if (t->members)
		t->members->prev = m;
	t->members = m;
	t->n++;
	m->conn_next = c->topics;
	c->topics = m;
	return WSA_OK;
}

/* Unlink m from its topic (freeing an emptied topic) and free it; the
 * caller has unlinked it from the connection's list. */
static void member_drop(struct wsa_server *srv, struct wsa_member *m)
{
	struct wsa_topic *t = m->topic;

	if (m->prev)
		m->prev->next = m->next;
	else
		t->members = m->next;
	if (m->next)
		m->next->prev = m->prev;
	free(m);
	if (--t->n)
		return;
	wsa__map_del(&srv->topics, t->name);
	free(t);
}

void wsa__topic_leave(struct wsa_conn *c, const char *name)
{
	struct wsa_member **p = &c->topics;

	while (*p && strcmp((*p)->topic->name, name))
		p = &(*p)->conn_next;
	if (*p) {
		struct wsa_member *m = *p;

		*p = m->conn_next;
		member_drop(c->srv, m);
	}
}

/* Take c out of the index of its uid. */
static void user_remove(struct wsa_conn *c)
{
	struct wsa_user *u = c->user;
	struct wsa_conn **p;

	if (!u)
		return;
	for (p = &u->conns; *p && *p != c; p = &(*p)->user_next)
		;
	if (*p)
		*p = c->user_next;
	c->user = NULL;
	c->user_next = NULL;
	if (u->conns)
		return;
	wsa__map_del(&c->srv->users, u->uid);
	free(u);
}

void wsa__topic_forget(struct wsa_conn *c)
{
	while (c->topics) {
		struct wsa_member *m = c->topics;

		c->topics = m->conn_next;
		member_drop(c->srv, m);
	}
	user_remove(c);
}

int wsa__user_add(struct wsa_conn *c)
{
	struct wsa_server *srv = c->srv;
	const char *uid = wsa_conn_uid(c);
	struct wsa_user *u = wsa__map_get(&srv->users, uid);

	if (c->user)
		return WSA_OK;
	if (!u) {
		size_t n = strlen(uid);

		u = calloc(1, sizeof(*u) + n + 1);
		if (!u)
			return WSA_ENOMEM;
		memcpy(u->uid, uid, n + 1);
		u->entry.key = u->uid;
		u->entry.value = u;
		if (!wsa__map_put(&srv->users, &u->entry)) {
			free(u);
			return WSA_ENOMEM;
		}
	}
	c->user = u;
	c->user_next = u->conns;
	u->conns = c;
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
	wsa__map_free(&srv->users);
}
