/* The wire does not depend on the host's locale: a host that set a
 * comma-decimal locale (LC_NUMERIC de_DE, "1,5") still reads and writes
 * JSON numbers with a '.', replies carry real ids intact, and claims with
 * real numbers survive the round trip behind wsa_route_require().
 *
 * The locale is compiled into a scratch directory with localedef (from
 * Debian's locales package), so the test needs no locale installed. */
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wsa.h>

#include "check.h"
#include "tokens.h"
#include "wsclient.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define T      5000

static void on_echo(wsa_conn *c, json_t *msg, void *ud)
{
	(void)ud;
	CHECK_INT(wsa_conn_send(c, msg), WSA_OK);
}

static void on_claims(wsa_conn *c, json_t *msg, void *ud)
{
	(void)msg, (void)ud;
	wsa_conn_send_new(c, json_pack("{s:s,s:O}", "type", "claims", "claims",
				       wsa_conn_claims(c)));
}

static void quiet(wsa_log_level l, const char *id, const char *route,
		  const char *msg, void *ud)
{
	(void)l, (void)id, (void)route, (void)msg, (void)ud;
}

static void *run(void *srv)
{
	CHECK_INT(wsa_server_run(srv), WSA_OK);
	return NULL;
}

/* Compile de_DE.UTF-8 into a scratch directory and switch the whole
 * process to it, as a host calling setlocale(LC_ALL, "") there would. */
static bool comma_locale(char *dir)
{
	char cmd[512], probe[16];

	if (!mkdtemp(dir))
		return false;
	snprintf(cmd, sizeof(cmd),
		 "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1",
		 dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "localedef failed (Debian's locales package "
				"has its sources)\n");
		return false;
	}
	setenv("LOCPATH", dir, 1);
	if (!setlocale(LC_ALL, "de_DE.UTF-8"))
		return false;
	snprintf(probe, sizeof(probe), "%.1f", 1.5);
	return !strcmp(probe, "1,5");
}

/* Parse text strictly, in the "C" locale whatever the process's is. */
static json_t *parse_c(const char *text, size_t len)
{
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	locale_t old = uselocale(c);
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);

	uselocale(old);
	freelocale(c);
	return v;
}

/* The next text message, parsed strictly; its raw text in *raw. */
static json_t *next(wsc *c, char **raw)
{
	wsc_frame f;
	json_t *v = NULL;

	*raw = NULL;
	if (wsc_recv(c, &f, T) != 1)
		return NULL;
	if (f.opcode == WSC_TEXT) {
		v = parse_c((const char *)f.data, f.len);
		*raw = strdup((const char *)f.data);
	}
	wsc_frame_free(&f);
	return v;
}

static void send_text(wsc *c, const char *s)
{
	CHECK_INT(wsc_send_text(c, s, strlen(s)), 0);
}

int main(void)
{
	char dir[] = "/tmp/wsa-locale-XXXXXX", payload[256], login[1024], *raw;
	wsa_server *srv = NULL;
	wsa_jwt *jwt = NULL;
	wsa_route *r = NULL;
	wsa_config cfg;
	pthread_t th;
	json_t *m, *x;
	char *tok;
	wsc *c;
	int status = 0;

	CHECK(comma_locale(dir));
	wsa_config_init(&cfg);
	cfg.log = quiet;
	CHECK_INT(wsa_server_new(&srv, &cfg), WSA_OK);
	CHECK_INT(wsa_jwt_new(&jwt), WSA_OK);
	CHECK_INT(wsa_jwt_add_key(jwt, NULL, "HS256", SECRET, strlen(SECRET)),
		  WSA_OK);
	CHECK_INT(wsa_set_verifier(srv, wsa_jwt_verifier, jwt), WSA_OK);
	CHECK_INT(wsa_route_add(srv, "/ws", NULL, NULL, NULL, &r), WSA_OK);
	CHECK_INT(wsa_route_handle(r, "echo", on_echo, NULL), WSA_OK);
	CHECK_INT(wsa_route_handle(r, "claims", on_claims, NULL), WSA_OK);
	CHECK_INT(wsa_route_require(r, "claims", "role", "admin"), WSA_OK);
	pthread_create(&th, NULL, run, srv);

	c = wsc_connect("127.0.0.1", wsa_server_port(srv), "/ws", NULL, T,
			&status);
	CHECK_INT(status, 101);
	snprintf(payload, sizeof(payload),
		 "{\"uid\":\"u\",\"role\":\"admin\",\"lvl\":2.5,\"exp\":%ld}",
		 (long)time(NULL) + 600);
	tok = tok_hs256(SECRET, payload);
	snprintf(login, sizeof(login),
		 "{\"type\":\"login\",\"token\":\"%s\",\"id\":0.5}", tok);
	free(tok);
	send_text(c, login);
	m = next(c, &raw);
	CHECK_STR(json_string_value(json_object_get(m, "type")), "auth");
	CHECK(json_real_value(json_object_get(m, "id")) == 0.5);
	json_decref(m);
	free(raw);

	/* A message echoed whole: every real back as it came. */
	send_text(c, "{\"type\":\"echo\",\"id\":1.5,\"x\":[0.25,3e300]}");
	m = next(c, &raw);
	CHECK(m != NULL);
	x = json_object_get(m, "x");
	CHECK(json_real_value(json_object_get(m, "id")) == 1.5);
	CHECK(json_array_size(x) == 2);
	CHECK(json_real_value(json_array_get(x, 0)) == 0.25);
	CHECK(json_real_value(json_array_get(x, 1)) == 3e300);
	CHECK(raw && !strstr(raw, "1,5") && !strstr(raw, "0,25"));
	json_decref(m);
	free(raw);

	/* The library's own answer with a real id. */
	send_text(c, "{\"type\":\"nope\",\"id\":2.25}");
	m = next(c, &raw);
	CHECK_STR(json_string_value(json_object_get(m, "message")),
		  "Unknown message type");
	CHECK(json_real_value(json_object_get(m, "id")) == 2.25);
	json_decref(m);
	free(raw);

	/* Claims with a real survive: not Forbidden, and lvl intact. */
	send_text(c, "{\"type\":\"claims\"}");
	m = next(c, &raw);
	CHECK_STR(json_string_value(json_object_get(m, "type")), "claims");
	CHECK(json_real_value(
		  json_object_get(json_object_get(m, "claims"), "lvl")) == 2.5);
	json_decref(m);
	free(raw);

	wsc_close(c);
	wsa_server_stop(srv);
	pthread_join(th, NULL);
	wsa_server_free(srv);
	wsa_jwt_free(jwt);
	snprintf(login, sizeof(login), "rm -rf %s", dir);
	CHECK_INT(system(login), 0);
	return check_status("test_locale");
}
