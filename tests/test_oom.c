/* Out of memory: every allocation the library makes (its own, and
 * jansson's on its behalf) fails in turn, and each time the library
 * answers with an error code or a documented close, leaks nothing, and
 * goes on serving (the message path, and topic history's). The library's calls
 * to malloc, calloc, realloc and strdup are redirected here at link time
 * (-Wl,--wrap); jansson's through json_set_alloc_funcs. Only the chosen
 * thread's allocations fail. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsa.h>

#include "check.h"
#include "serve.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

static atomic_bool failing;
static atomic_long allocs, fail_at;
static pthread_t fail_thread;

static bool should_fail(void)
{
	if (!atomic_load(&failing) ||
	    !pthread_equal(pthread_self(), fail_thread))
		return false;
	return atomic_fetch_add(&allocs, 1) + 1 == atomic_load(&fail_at);
}

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return should_fail() ? NULL : __real_strdup(s);
}

/* Fail the k-th allocation of thread t from now on. */
static void fail_from(pthread_t t, long k)
{
	fail_thread = t;
	atomic_store(&allocs, 0);
	atomic_store(&fail_at, k);
	atomic_store(&failing, true);
}

/* Stop failing; true when the k-th allocation was never reached, i.e.
 * the run made fewer than k allocations and none failed. */
static bool fail_stop(void)
{
	atomic_store(&failing, false);
	return atomic_load(&allocs) < atomic_load(&fail_at);
}

/* ------------------------------------------------ configuration paths */

static char *round_token; /* minted before any allocation fails */

static void jwt_round(bool *complete)
{
	const char *tok = round_token;
	json_t *claims = NULL;
	wsa_jwt *jwt = NULL;
	int rc;

	rc = wsa_jwt_new(&jwt);
	if (!rc)
		rc =
		    wsa_jwt_add_key(jwt, NULL, "HS256", SECRET, strlen(SECRET));
	if (!rc)
		rc = wsa_jwt_set_issuer(jwt, "me");
	if (!rc)
		rc = wsa_jwt_verify(jwt, tok, strlen(tok), &claims);
	*complete = fail_stop();
	CHECK(rc == WSA_OK || !*complete);
	CHECK(rc != WSA_OK || json_is_object(claims));
	json_decref(claims);
	wsa_jwt_free(jwt);
}

static void on_chat(wsa_conn *c, json_t *msg, void *ud);

static void server_round(bool *complete)
{
	wsa_server *srv = NULL;
	wsa_route *r = NULL;
	wsa_config cfg;
	int rc;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	rc = wsa_server_new(&srv, &cfg);
	if (!rc)
		rc = wsa_route_add(srv, "/a", NULL, NULL, NULL, &r);
	if (!rc)
		rc = wsa_route_handle(r, "chat", on_chat, NULL);
	if (!rc)
		rc = wsa_route_handle(r, "more", on_chat, NULL);
	*complete = fail_stop();
	CHECK(rc == WSA_OK || rc == WSA_ENOMEM || rc == WSA_ELWS);
	CHECK(rc == WSA_OK || !*complete);
	wsa_server_free(srv);
}

static void each_allocation(void (*round)(bool *), const char *name)
{
	bool complete = false;
	long k;

	for (k = 1; !complete && k < 10000; k++) {
		fail_from(pthread_self(), k);
		round(&complete);
	}
	fprintf(stderr, "%s: %ld allocations, each failed in turn\n", name,
		k - 2);
}

/* ------------------------------------------------------ message path */

/* Echo the message; a reply that cannot be queued closes with 1011. */
static void on_chat(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	if (wsa_conn_send(c, msg) == WSA_ENOMEM)
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
}

static char *login_text(const char *uid)
{
	char payload[128], *tok, *text;

	snprintf(payload, sizeof(payload), "{\"uid\":\"%s\",\"exp\":%ld}", uid,
		 (long)time(NULL) + 600);
	tok = tok_hs256(SECRET, payload);
	text = malloc(strlen(tok) + 64);
	sprintf(text, "{\"type\":\"login\",\"token\":\"%s\"}", tok);
	free(tok);
	return text;
}

/* What the client sends, and the "type" (and "message") of each answer. */
static const char *const sent[] = {
    NULL, /* the login */
    "{\"type\":\"chat\",\"message\":\"hi\"}",
    "{\"type\":\"ping\",\"id\":1}",
    "not json",
    "{\"type\":\"nope\"}",
    NULL, /* a refresh */
};
static const char *const answer[] = {
    "auth", "chat", "pong", "error", "error", "auth",
};

/* Whether j is an acceptable i-th answer. jansson cannot always tell a
 * parse that ran out of memory from bad JSON, so under failing
 * allocations a message may be answered as invalid; a login whose check
 * ran out of memory is refused (and closed with 1008). */
static bool expected(const json_t *j, int i)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *msg = json_string_value(json_object_get(j, "message"));

	if (type && !strcmp(type, answer[i]))
		return true;
	if (type && !strcmp(type, "error") && msg &&
	    !strcmp(msg, "Invalid message format"))
		return true;
	CHECK(msg && (!strcmp(msg, "Authentication failed") ||
		      !strcmp(msg, "First message must be login with token")));
	return false;
}

/* The next message on c, parsed (a JSON null for text that is not
 * JSON); NULL at its close (*code: its code) or when nothing comes. */
static json_t *next_json(wsc *c, int *code)
{
	wsc_frame f;
	json_t *j;

	if (wsc_recv(c, &f, T) != 1)
		return NULL;
	if (f.opcode == WSC_CLOSE) {
		*code = wsc_close_code(&f);
		wsc_frame_free(&f);
		return NULL;
	}
	j = json_loadb((char *)f.data, f.len, 0, NULL);
	wsc_frame_free(&f);
	return j ? j : json_null();
}

/* One round: connect, log in and send everything while the service
 * thread's allocations fail at the k-th. The answers must come in order;
 * when they stop short, the connection must end with 1011 (or, where a
 * login was refused because verifying ran out of memory, 1008). */
static void message_round(struct server *s, long k, bool *complete)
{
	char *login = login_text("oom");
	int status = 0, got = 0, code = 0;
	size_t i, n = sizeof(sent) / sizeof(sent[0]);
	wsc *c;

	fail_from(s->thread, k);
	c = wsc_connect("127.0.0.1", s->port, "/ws", NULL, T, &status);
	for (i = 0; c && i < n; i++) {
		const char *m = sent[i] ? sent[i] : login;

		wsc_send_text(c, m, strlen(m));
	}
	while (c && got < (int)n) {
		json_t *j = next_json(c, &code);

		if (!j)
			break;
		if (!expected(j, got)) {
			json_decref(j);
			code = wsc_wait_close(c, T);
			CHECK_INT(code, 1008);
			break;
		}
		got++;
		json_decref(j);
	}
	*complete = fail_stop();
	CHECK(got == (int)n || !*complete);
	if (c && got < (int)n && code != 1008)
		CHECK(code == 1011 || wsc_eof(c) || status != 101);
	wsc_close(c);
	free(login);
}

/* A token at the upgrade while allocations fail at the k-th: refused
 * (401, 503, no answer) or accepted; once accepted, the answers come, or
 * the connection ends with 1011. */
static void upgrade_round(struct server *s, long k, bool *complete)
{
	char hdr[1024];
	int status = 0;
	wsc *c;
	json_t *j;

	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", round_token);
	fail_from(s->thread, k);
	c = wsc_connect("127.0.0.1", s->port, "/ws", hdr, T, &status);
	if (c && status == 101) {
		j = wsc_recv_json(c, T);
		if (j && !strcmp(json_string_value(json_object_get(j, "type")),
				 "auth")) {
			json_decref(j);
			wsc_send_text(c, sent[1], strlen(sent[1]));
			j = wsc_recv_json(c, T);
		}
		if (!j)
			CHECK(wsc_wait_close(c, T) == 1011 || wsc_eof(c));
		json_decref(j);
	} else {
		CHECK(status == 401 || status == 503 || status == 0);
	}
	*complete = fail_stop();
	wsc_close(c);
}

/* After a round the server still serves a client in full. */
static void still_serves(struct server *s)
{
	char *login = login_text("after");
	wsc *c = wsc_connect("127.0.0.1", s->port, "/ws", NULL, T, NULL);
	json_t *j;

	CHECK(c != NULL);
	if (!c)
		return;
	wsc_send_text(c, login, strlen(login));
	wsc_send_text(c, "{\"type\":\"ping\"}", 15);
	j = wsc_recv_json(c, T);
	CHECK_STR(json_string_value(json_object_get(j, "type")), "auth");
	json_decref(j);
	j = wsc_recv_json(c, T);
	CHECK_STR(json_string_value(json_object_get(j, "type")), "pong");
	json_decref(j);
	wsc_close(c);
	free(login);
}

static void message_path(void)
{
	struct server s;
	wsa_config cfg;
	wsa_route *r;
	bool complete = false;
	long k;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	/* Logins that fail for want of memory count as failed. */
	cfg.max_failed_logins = WSA_UNLIMITED;
	r = serve_new(&s, &cfg, SECRET);
	wsa_route_handle(r, "chat", on_chat, NULL);
	wsa_route_upgrade_token(r, true);
	s.port = wsa_server_port(s.srv);
	pthread_create(&s.thread, NULL, serve_run, &s);
	for (k = 1; !complete && k < 10000; k++) {
		message_round(&s, k, &complete);
		still_serves(&s);
	}
	fprintf(stderr, "message path: %ld allocations, each failed in turn\n",
		k - 2);
	for (complete = false, k = 1; !complete && k < 10000; k++) {
		upgrade_round(&s, k, &complete);
		still_serves(&s);
	}
	fprintf(stderr,
		"token at the upgrade: %ld allocations, each failed in turn\n",
		k - 2);
	serve_finish(&s);
}

/* ------------------------------------------------------ history path */

static char hist_epoch[WSA_EPOCH_MAX + 1]; /* of topic "k/r" */

static void hist_joined(wsa_conn *c, const char *topic, json_t *users,
			const wsa_position *now, bool recovered, void *ud)
{
	(void)topic, (void)recovered, (void)ud;
	if (!users || !now) {
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
		return;
	}
	if (!hist_epoch[0])
		memcpy(hist_epoch, now->epoch, sizeof(hist_epoch));
	if (wsa_conn_send_new(c, json_pack("{s:s}", "type", "joined")) ==
	    WSA_ENOMEM)
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
}

/* {"type":"join"[,"epoch":E]}: k/r from offset 0 of E. */
static void on_hjoin(wsa_conn *c, json_t *msg, void *ud)
{
	const char *e = json_string_value(json_object_get(msg, "epoch"));
	wsa_position since = {0};

	(void)ud;
	if (e)
		snprintf(since.epoch, sizeof(since.epoch), "%s", e);
	if (wsa_conn_join_since(c, "k/r", e ? &since : NULL, hist_joined,
				NULL) != WSA_OK)
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
}

/* {"type":"say"}: kept in k/r, the sender's copy its reply. */
static void on_say(wsa_conn *c, json_t *msg, void *ud)
{
	json_t *out = json_pack("{s:s}", "type", "said");

	(void)msg, (void)ud;
	if (!out || wsa_conn_publish(c, "k/r", out) != WSA_OK)
		wsa_conn_close(c, WSA_CLOSE_INTERNAL, "Out of memory");
	json_decref(out);
}

/* A round of the history path: log in, join k/r from a position, say
 * something, ping. What comes is what was kept (offsets rising), the
 * answer, the sender's copy, the pong; or it stops with 1011 (1008 where
 * the login ran out of memory). */
static void history_round(struct server *s, long k, bool *complete)
{
	char *login = login_text("oom"), join[128];
	long long last = -1;
	int status = 0, code = 0;
	bool joined = false, ponged = false;
	wsc *c;

	snprintf(join, sizeof(join), "{\"type\":\"join\",\"epoch\":\"%s\"}",
		 hist_epoch);
	fail_from(s->thread, k);
	c = wsc_connect("127.0.0.1", s->port, "/ws", NULL, T, &status);
	if (c) {
		wsc_send_text(c, login, strlen(login));
		wsc_send_text(c, join, strlen(join));
		wsc_send_text(c, "{\"type\":\"say\"}", 14);
		wsc_send_text(c, "{\"type\":\"ping\"}", 15);
	}
	while (c && !ponged) {
		json_t *j = next_json(c, &code);
		const char *type;

		if (!j)
			break;
		type = json_string_value(json_object_get(j, "type"));
		if (type && !strcmp(type, "said")) {
			long long off =
			    json_integer_value(json_object_get(j, "offset"));

			CHECK(off > last);
			last = off;
		} else if (type && !strcmp(type, "joined")) {
			joined = true;
		} else if (type && !strcmp(type, "pong")) {
			ponged = true;
		} else {
			CHECK(type && (!strcmp(type, "auth") ||
				       !strcmp(type, "error")));
		}
		json_decref(j);
	}
	*complete = fail_stop();
	CHECK((joined && ponged) || !*complete);
	if (c && !ponged)
		CHECK(code == 1011 || code == 1008 || wsc_eof(c) ||
		      status != 101);
	wsc_close(c);
	free(login);
}

static void history_path(void)
{
	struct server s;
	wsa_config cfg;
	wsa_route *r;
	bool complete = false;
	long k;

	wsa_config_init(&cfg);
	cfg.log = serve_quiet;
	cfg.max_failed_logins = WSA_UNLIMITED;
	/* Every round logs in and says something: not about the limits. */
	cfg.rate_limit = WSA_UNLIMITED;
	cfg.verify_rate = WSA_UNLIMITED;
	r = serve_new(&s, &cfg, SECRET);
	wsa_route_handle(r, "join", on_hjoin, NULL);
	wsa_route_handle(r, "say", on_say, NULL);
	CHECK_INT(wsa_server_topic_history(s.srv, "k/", 5, 600000), WSA_OK);
	s.port = wsa_server_port(s.srv);
	pthread_create(&s.thread, NULL, serve_run, &s);
	/* The epoch, and something kept, before anything fails. */
	history_round(&s, 0, &complete);
	CHECK(hist_epoch[0] != '\0');
	for (complete = false, k = 1; !complete && k < 10000; k++) {
		history_round(&s, k, &complete);
		still_serves(&s);
	}
	fprintf(stderr, "history path: %ld allocations, each failed in turn\n",
		k - 2);
	serve_finish(&s);
}

static void *json_malloc(size_t n)
{
	return __wrap_malloc(n);
}

int main(void)
{
	json_set_alloc_funcs(json_malloc, free);
	round_token = tok_hs256(SECRET, "{\"uid\":\"u\",\"iss\":\"me\","
					"\"exp\":9999999999}");
	each_allocation(jwt_round, "jwt");
	each_allocation(server_round, "server setup");
	message_path();
	history_path();
	free(round_token);
	return check_status("test_oom");
}
