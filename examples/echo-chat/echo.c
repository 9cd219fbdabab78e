/* The echo-chat protocol, shared by echo-chat and the examples on a host's
 * event loop: a client logs in with a JWT, then "chat" messages are
 * echoed back, "typing" is logged and "ping" answered by the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wsa.h>

#include "echo.h"
#include "example.h"
#include "web_assets.h"

/* "Echo: " + the message; the message may hold NUL characters. A short
 * one is put together on the stack (jansson copies it anyway). */
static json_t *echo_text(const json_t *message)
{
	size_t n = json_string_length(message);
	char small[256], *buf = n + 6 <= sizeof(small) ? small : malloc(n + 6);
	json_t *s;

	if (!buf)
		return NULL;
	memcpy(buf, "Echo: ", 6);
	memcpy(buf + 6, json_string_value(message), n);
	/* Valid UTF-8 after valid UTF-8: no need to check it again. */
	s = json_stringn_nocheck(buf, n + 6);
	if (buf != small)
		free(buf);
	return s;
}

/* Set key to v (a new reference, taken even on failure); false when v is
 * NULL or memory is short. */
static bool put(json_t *obj, const char *key, json_t *v)
{
	return v && !json_object_set_new_nocheck(obj, key, v);
}

/* The reply, member by member: json_pack would read its format string
 * again for every message, which cost a quarter of a small echo. */
static json_t *chat_reply(const json_t *message)
{
	json_t *r = json_object();

	if (r && put(r, "type", json_string_nocheck("chat")) &&
	    put(r, "message", echo_text(message)) &&
	    put(r, "from", json_string_nocheck("server")) &&
	    put(r, "timestamp", json_integer((json_int_t)example_now_ms())))
		return r;
	json_decref(r);
	return NULL;
}

static void on_chat(wsa_conn *conn, json_t *msg, void *userdata)
{
	const json_t *message = json_object_get(msg, "message");

	(void)userdata;
	if (!json_is_string(message)) {
		wsa_conn_send_error(conn, "Invalid message format");
		return;
	}
	wsa_conn_send_new(conn, chat_reply(message));
}

static void on_typing(wsa_conn *conn, json_t *msg, void *userdata)
{
	(void)userdata;
	fprintf(stderr, "echo-chat: [%s] %s is %styping\n", wsa_conn_id(conn),
		wsa_conn_uid(conn),
		json_is_true(json_object_get(msg, "isTyping")) ? "" : "not ");
}

/* The page's policy as an HTTP header, where a browser also honours
 * frame-ancestors (a <meta> policy cannot carry it): the policy of
 * index.html's <meta http-equiv="Content-Security-Policy">, so the two
 * never differ, and "frame-ancestors 'none'". NULL when the page has no
 * such <meta> (or memory ran out). malloc'd. */
static char *page_policy(const struct web_asset *a)
{
	static const char meta[] =
	    "<meta http-equiv=\"Content-Security-Policy\" content=\"";
	static const char frames[] = "; frame-ancestors 'none'";
	const char *page = (const char *)a->data, *p, *end;
	char *policy;

	/* The asset ends in a NUL of embed.py's. */
	p = strstr(page, meta);
	if (!p)
		return NULL;
	p += sizeof(meta) - 1;
	end = strchr(p, '"');
	if (!end)
		return NULL;
	while (end > p && (end[-1] == ';' || end[-1] == ' '))
		end--;
	policy = malloc((size_t)(end - p) + sizeof(frames));
	if (!policy)
		return NULL;
	memcpy(policy, p, (size_t)(end - p));
	memcpy(policy + (end - p), frames, sizeof(frames));
	return policy;
}

/* index.html at path, with its policy as a header. */
static int serve_index(wsa_server *srv, const char *path,
		       const struct web_asset *a)
{
	char *policy = page_policy(a);
	int rc = policy ? wsa_server_http_file(srv, path, a->content_type,
					       a->data, a->len)
			: WSA_EINVAL;

	if (!rc)
		rc = wsa_server_http_header(srv, path,
					    "Content-Security-Policy", policy);
	free(policy);
	return rc;
}

/* The chat page and its client module (examples/web/), on the same
 * port; index.html at "/" too. */
static int serve_page(wsa_server *srv)
{
	size_t i;
	int rc = WSA_OK;

	for (i = 0; i < web_nassets && !rc; i++) {
		const struct web_asset *a = &web_assets[i];

		if (strcmp(a->path, "/index.html")) {
			rc = wsa_server_http_file(srv, a->path, a->content_type,
						  a->data, a->len);
			continue;
		}
		rc = serve_index(srv, a->path, a);
		if (!rc)
			rc = serve_index(srv, "/", a);
	}
	return rc;
}

int echo_setup(wsa_server *srv, wsa_route *route)
{
	int rc;

	if ((rc = wsa_route_handle(route, "chat", on_chat, NULL)) ||
	    (rc = wsa_route_handle(route, "typing", on_typing, NULL)))
		return rc;
	return serve_page(srv);
}
