/* chat-room: rooms on libwsa's topics.
 *
 * Serves /ws/chat. After login a connection joins and leaves rooms, chats
 * to everyone in a room and tells the others it is typing; the members of
 * a room hear when a user comes (its first connection joins) and goes (its
 * last one leaves or closes). Rooms are the library's topics: this file
 * keeps no bookkeeping of its own. With --redis, several chat-room
 * processes share their rooms: the library carries the messages and
 * decides presence across them. Its chat page (examples/web/room.html) is
 * served at "/" on the same port. */
#include <stdlib.h>
#include <string.h>

#include <wsa.h>

#include "example.h"
#include "web_assets.h"

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

/* Tell the room's other members that a user came or went: the server
 * says when, once for the user however its connections are spread over
 * service threads and nodes. conn_id: the connection that joined or left,
 * which hears nothing of it; NULL for a node that died. */
static void presence(wsa_server *srv, const char *room, const char *uid,
		     bool joined, const char *conn_id, void *userdata)
{
	json_t *msg =
	    json_pack("{s:s,s:s,s:s,s:s}", "type", "presence", "room", room,
		      "uid", uid, "event", joined ? "join" : "leave");

	(void)userdata;
	wsa_server_publish(srv, room, msg, conn_id);
	json_decref(msg);
}

/* The join has reached every node, after what the connection missed
 * (when it asked from a position): the answer lists the room's users and,
 * with history on, the room's position and whether nothing was lost. */
static void joined(wsa_conn *c, const char *room, json_t *users,
		   const wsa_position *now, bool recovered, void *since)
{
	json_t *msg;

	if (!users) {
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	msg = json_pack("{s:s,s:s,s:O}", "type", "joined", "room", room,
			"users", users);
	if (msg && now &&
	    (json_object_set_new(msg, "offset",
				 json_integer((json_int_t)now->offset)) ||
	     json_object_set_new(msg, "epoch", json_string(now->epoch)) ||
	     (since && json_object_set_new(msg, "recovered",
					   json_boolean(recovered))))) {
		json_decref(msg);
		msg = NULL;
	}
	if (!msg) {
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	wsa_conn_send_new(c, msg);
}

/* "since": {"offset": N, "epoch": "E"} into pos; false when it is not
 * that shape (an offset that is a non-negative integer, an epoch of at
 * most WSA_EPOCH_MAX characters). */
static bool since_of(const json_t *since, wsa_position *pos)
{
	const json_t *off = json_object_get(since, "offset");
	const json_t *ep = json_object_get(since, "epoch");

	if (!json_is_object(since) || !json_is_integer(off) ||
	    json_integer_value(off) < 0 || !json_is_string(ep) ||
	    json_string_length(ep) > WSA_EPOCH_MAX)
		return false;
	pos->offset = (unsigned long long)json_integer_value(off);
	memcpy(pos->epoch, json_string_value(ep), json_string_length(ep) + 1);
	return true;
}

/* A join's userdata when it came with "since". */
static char with_since;

static void on_join(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);
	const json_t *since = json_object_get(msg, "since");
	wsa_position pos;

	(void)srv;
	if (!room || (since && !since_of(since, &pos))) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	/* The userdata says whether the join came with a position. */
	switch (wsa_conn_join_since(c, room, since ? &pos : NULL, joined,
				    since ? &with_since : NULL)) {
	case WSA_OK: /* in it already, too */
		break;
	case WSA_ELIMIT: /* in max_topics_per_connection rooms */
		wsa_conn_send_error(c, "Too many rooms");
		return;
	case WSA_ESTATE: /* its join under way: that one answers */
		return;
	default:
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
}

static void on_leave(wsa_conn *c, json_t *msg, void *srv)
{
	const char *room = room_of(msg);

	(void)srv;
	if (!room) {
		wsa_conn_send_error(c, "Invalid message format");
		return;
	}
	if (!wsa_conn_in_topic(c, room)) {
		wsa_conn_send_error(c, "Not in room");
		return;
	}
	/* The answer goes first; the others hear of it as the leave
	 * happens. */
	wsa_conn_send_new(c,
			  json_pack("{s:s,s:s}", "type", "left", "room", room));
	wsa_conn_leave(c, room);
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
	/* Everyone in the room gets it, the sender too, whose copy is its
	 * reply (it carries the message's "id"); with history on, each copy
	 * carries the room's position. */
	(void)srv;
	wsa_conn_publish(c, room, out);
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

/* The chat page and its files (examples/web/, room_assets.c), on the
 * same port; room.html at "/" too. */
static int serve_page(wsa_server *srv)
{
	size_t i;
	int rc = WSA_OK;

	for (i = 0; i < web_nassets && !rc; i++) {
		const struct web_asset *a = &web_assets[i];

		rc = wsa_server_http_file(srv, a->path, a->content_type,
					  a->data, a->len);
		if (!rc && !strcmp(a->path, "/room.html"))
			rc = wsa_server_http_file(srv, "/", a->content_type,
						  a->data, a->len);
	}
	return rc;
}

static int setup(wsa_server *srv, wsa_route *route)
{
	int rc;

	if ((rc = serve_page(srv)) ||
	    (rc = wsa_server_on_presence_uid(srv, presence, NULL)) ||
	    (rc = wsa_route_handle(route, "join", on_join, srv)) ||
	    (rc = wsa_route_handle(route, "leave", on_leave, srv)) ||
	    (rc = wsa_route_handle(route, "chat", on_chat, srv)))
		return rc;
	return wsa_route_handle(route, "typing", on_typing, srv);
}

int main(int argc, char **argv)
{
	static const struct example ex = {"chat-room", setup, NULL, NULL, true};

	return example_main(argc, argv, &ex);
}
