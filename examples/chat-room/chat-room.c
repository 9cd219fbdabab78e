/* chat-room: rooms on libwsa's topics.
 *
 * Serves /ws/chat. After login a connection joins and leaves rooms, chats
 * to everyone in a room and tells the others it is typing; the members of
 * a room hear when a user comes (its first connection joins) and goes (its
 * last one leaves or closes). Rooms are the library's topics: this file
 * keeps no bookkeeping of its own. */
#include <stdlib.h>
#include <string.h>

#include <wsa.h>

#include "example.h"

/* Longest room name, in bytes (PROTOCOL.md section 6). */
#define ROOM_MAX 255

/* The message's room: a string usable as a topic name (non-empty, at
 * most ROOM_MAX bytes, no NUL), else NULL. */
static const char *room_of(json_t *msg)
{
	const json_t *room = json_object_get(msg, "room");
	const char *name = json_string_value(room);

	if (!name || !*name || json_string_length(room) > ROOM_MAX ||
	    strlen(name) != json_string_length(room))
		return NULL;
	return name;
}

/* The connections in a room, malloc'd (NULL when none or no memory). */
static wsa_conn **members(wsa_server *srv, const char *room, size_t *n)
{
	wsa_conn **m;

	*n = wsa_server_topic_conns(srv, room, NULL, 0);
	m = *n ? malloc(*n * sizeof(*m)) : NULL;
	if (!m)
		*n = 0;
	else
		wsa_server_topic_conns(srv, room, m, *n);
	return m;
}

/* Whether a connection other than c, of c's user, is in the room. */
static bool user_elsewhere_in(wsa_server *srv, wsa_conn *c, const char *room)
{
	size_t n, i;
	wsa_conn **m = members(srv, room, &n);
	bool found = false;

	for (i = 0; i < n && !found; i++)
		found =
		    m[i] != c && !strcmp(wsa_conn_uid(m[i]), wsa_conn_uid(c));
	free(m);
	return found;
}

/* The uids in a room, each once. */
static json_t *users(wsa_server *srv, const char *room)
{
	size_t n, i, j;
	wsa_conn **m = members(srv, room, &n);
	json_t *list = json_array();

	for (i = 0; i < n; i++) {
		const char *uid = wsa_conn_uid(m[i]);

		for (j = 0; j < i && strcmp(wsa_conn_uid(m[j]), uid); j++)
			;
		if (j == i)
			json_array_append_new(list, json_string(uid));
	}
	free(m);
	return list;
}

/* Tell the room's other members that c's user came or went. */
static void presence(wsa_server *srv, wsa_conn *c, const char *room,
		     const char *event)
{
	json_t *msg = json_pack("{s:s,s:s,s:s,s:s}", "type", "presence", "room",
				room, "uid", wsa_conn_uid(c), "event", event);

	wsa_server_publish(srv, room, msg, wsa_conn_id(c));
	json_decref(msg);
}

static void on_join(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);
	bool first;

	if (!room) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	if (!wsa_conn_in_topic(c, room)) {
		first = !user_elsewhere_in(srv, c, room);
		switch (wsa_conn_join(c, room)) {
		case WSA_OK:
			break;
		case WSA_ELIMIT: /* in max_topics_per_connection rooms */
			wsa_conn_send_error(c, "Too many rooms");
			return;
		default:
			wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
			return;
		}
		if (first)
			presence(srv, c, room, "join");
	}
	wsa_conn_send_new(c,
			  json_pack("{s:s,s:s,s:o}", "type", "joined", "room",
				    room, "users", users(srv, room)));
}

static void on_leave(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);

	if (!room) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	if (!wsa_conn_in_topic(c, room)) {
		wsa_conn_send_error(c, "Not in room");
		return;
	}
	wsa_conn_leave(c, room);
	wsa_conn_send_new(c,
			  json_pack("{s:s,s:s}", "type", "left", "room", room));
	if (!user_elsewhere_in(srv, c, room))
		presence(srv, c, room, "leave");
}

static void on_chat(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);
	json_t *text = json_object_get(msg, "message"), *out;

	if (!room || !json_is_string(text)) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	if (!wsa_conn_in_topic(c, room)) {
		wsa_conn_send_error(c, "Not in room");
		return;
	}
	out = json_pack("{s:s,s:s,s:s,s:O,s:I}", "type", "chat", "room", room,
			"from", wsa_conn_uid(c), "message", text, "timestamp",
			(json_int_t)example_now_ms());
	/* The sender's copy is a reply (it carries the message's "id"); the
	 * others' is a fan-out (it does not). */
	wsa_conn_send(c, out);
	wsa_server_publish(srv, room, out, wsa_conn_id(c));
	json_decref(out);
}

static void on_typing(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);
	json_t *typing = json_object_get(msg, "isTyping"), *out;

	if (!room || !json_is_boolean(typing)) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	if (!wsa_conn_in_topic(c, room)) {
		wsa_conn_send_error(c, "Not in room");
		return;
	}
	out = json_pack("{s:s,s:s,s:s,s:O}", "type", "typing", "room", room,
			"userId", wsa_conn_uid(c), "isTyping", typing);
	wsa_server_publish(srv, room, out, wsa_conn_id(c));
	json_decref(out);
}

/* A closing connection is still in its rooms: tell them it went. */
static void on_close(wsa_conn *c, int code, void *srv)
{
	size_t n = wsa_conn_topics(c, NULL, 0), i;
	const char **rooms;

	(void)code;
	if (!n || !wsa_conn_is_authenticated(c))
		return;
	rooms = malloc(n * sizeof(*rooms));
	if (!rooms)
		return;
	wsa_conn_topics(c, rooms, n);
	for (i = 0; i < n; i++)
		if (!user_elsewhere_in(srv, c, rooms[i]))
			presence(srv, c, rooms[i], "leave");
	free(rooms);
}

static int setup(wsa_server *srv, wsa_route *route)
{
	int rc;

	if ((rc = wsa_route_handle(route, "join", on_join, srv)) ||
	    (rc = wsa_route_handle(route, "leave", on_leave, srv)) ||
	    (rc = wsa_route_handle(route, "chat", on_chat, srv)))
		return rc;
	return wsa_route_handle(route, "typing", on_typing, srv);
}

int main(int argc, char **argv)
{
	static const struct example ex = {"chat-room", setup, NULL, on_close};

	return example_main(argc, argv, &ex);
}
