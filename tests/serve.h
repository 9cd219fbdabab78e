/* What the C tests that run a server on a thread of its own share: the
 * server and its verifier, the thread's body, a log that says nothing,
 * and the stop. */
#ifndef WSA_TESTS_SERVE_H
#define WSA_TESTS_SERVE_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsa.h>

#include "check.h"
#include "tokens.h"
#include "wsclient.h"

struct server {
	wsa_server *srv;
	wsa_jwt *jwt;
	pthread_t thread;
	int port;
};

/* The server thread: runs s until it stops. */
static inline void *serve_run(void *arg)
{
	struct server *s = arg;

	CHECK_INT(wsa_server_run(s->srv), WSA_OK);
	return NULL;
}

/* A log sink for tests whose servers are meant to see bad things. */
static inline void serve_quiet(wsa_log_level l, const char *id, const char *r,
			       const char *m, void *ud)
{
	(void)l, (void)id, (void)r, (void)m, (void)ud;
}

/* A server of cfg with an HS256 verifier of secret and the route /ws,
 * returned; its handlers and its thread are the caller's to add and
 * start. */
static inline wsa_route *serve_new(struct server *s, const wsa_config *cfg,
				   const char *secret)
{
	wsa_route *r = NULL;

	CHECK_INT(wsa_server_new(&s->srv, cfg), WSA_OK);
	CHECK_INT(wsa_jwt_new(&s->jwt), WSA_OK);
	CHECK_INT(
	    wsa_jwt_add_key(s->jwt, NULL, "HS256", secret, strlen(secret)),
	    WSA_OK);
	wsa_set_verifier(s->srv, wsa_jwt_verifier, s->jwt);
	wsa_route_add(s->srv, "/ws", NULL, NULL, NULL, &r);
	return r;
}

/* Stop s, wait for its thread, free it and its verifier. */
static inline void serve_finish(struct server *s)
{
	wsa_server_stop(s->srv);
	pthread_join(s->thread, NULL);
	wsa_server_free(s->srv);
	wsa_jwt_free(s->jwt);
}

/* Send c a login as uid, with an HS256 token of secret valid for ten
 * minutes. */
static inline void serve_login(wsc *c, const char *secret, const char *uid)
{
	char payload[256], text[1024], *tok;

	snprintf(payload, sizeof(payload), "{\"uid\":\"%s\",\"exp\":%ld}", uid,
		 (long)time(NULL) + 600);
	tok = tok_hs256(secret, payload);
	snprintf(text, sizeof(text), "{\"type\":\"login\",\"token\":\"%s\"}",
		 tok);
	free(tok);
	wsc_send_text(c, text, strlen(text));
}

#endif
