/* The server: libwebsockets context and vhost, upgrade checks, the
 * service loop and stop. Every libwebsockets callback enters here. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth.h"
#include "conn.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "remote.h"
#include "route.h"
#include "timer.h"
#include "topic.h"

struct pss {
	struct wsa_conn *conn;
};

void wsa_config_init(wsa_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->host = "127.0.0.1";
	cfg->port = 0;
	cfg->max_message_size = 65536;
	cfg->auth_timeout_ms = 10000;
	cfg->idle_timeout_ms = 0;
	cfg->drain_timeout_ms = 5000;
	cfg->rx_buffer_size = 1024;
	cfg->max_queued_bytes = 1 << 20;
	cfg->max_connections = 10000;
	cfg->max_connections_per_address = 256;
	cfg->rate_limit = 20;
	cfg->rate_burst = 50;
	cfg->handshake_timeout_ms = 5000;
	cfg->max_login_size = 16384;
	cfg->verify_rate = 200;
	cfg->verify_burst = 256;
	cfg->max_failed_logins = WSA_UNLIMITED;
	cfg->max_connections_per_user = WSA_UNLIMITED;
	cfg->max_topics_per_connection = 128;
	cfg->ping_interval_ms = 25000;
	cfg->pong_timeout_ms = 10000;
	cfg->log_level = WSA_LOG_NOTICE;
	cfg->log = wsa__log_stderr;
}

bool wsa__on_service_thread(const struct wsa_server *srv)
{
	return srv->started &&
	       pthread_equal(pthread_self(), srv->service_thread);
}

/* Answer an upgrade with an HTTP status instead of a WebSocket, and hang
 * up. Written by hand: at this point lws would answer "HTTP/1.0", which
 * some clients refuse to read. extra: header lines, or "". */
static int refuse(struct lws *wsi, unsigned status, const char *text,
		  const char *extra)
{
	unsigned char buf[LWS_PRE + 192];
	char *p = (char *)buf + LWS_PRE;
	int n = snprintf(p, 192,
			 "HTTP/1.1 %u %s\r\n%sContent-Length: 0\r\n"
			 "Connection: close\r\n\r\n",
			 status, text, extra);

	lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP_HEADERS);
	return -1;
}

/* Only a WebSocket upgrade to a served path goes on. Anything else (an
 * h2c upgrade included, which would skip these checks) is refused here. */
/* Whether the upgrade's Origin may go on (CSWSH). Without an allow-list,
 * or without an Origin header (not a browser), the auth gate decides; a
 * repeated header (lws joins them with ","), one too long to read, or one
 * not on the list is refused. */
static bool origin_ok(const struct wsa_server *srv, struct lws *wsi)
{
	char origin[512];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
	size_t i;

	if (!srv->origins || n <= 0)
		return true;
	if (n >= (int)sizeof(origin) ||
	    lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) != n ||
	    strchr(origin, ','))
		return false;
	for (i = 0; srv->origins[i]; i++)
		if (!strcmp(srv->origins[i], origin))
			return true;
	return false;
}

/* Drop the identity of a token at the upgrade not taken by a connection
 * (its upgrade failed after the check). */
static void upgrade_forget(struct wsa_server *srv)
{
	json_decref(srv->upgrade_claims);
	srv->upgrade_claims = NULL;
	srv->upgrade_wsi = NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The token in "Authorization: Bearer TOKEN", copied into buf: 1 found,
 * 0 none (no header, or another scheme), -1 unreadable. */
static int header_token(struct lws *wsi, char *buf, size_t size,
			const char **tok)
{
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char *p, *end;

	if (n <= 0)
		return 0;
	if ((size_t)n >= size ||
	    lws_hdr_copy(wsi, buf, (int)size, WSI_TOKEN_HTTP_AUTHORIZATION) !=
		n)
		return -1;
	if (n < 7 || strncasecmp(buf, "bearer", 6) || !is_space(buf[6]))
		return 0;
	for (p = buf + 7; is_space(*p); p++)
		;
	for (end = buf + n; end > p && is_space(end[-1]); end--)
		;
	*end = '\0';
	*tok = p;
	return *p ? 1 : -1;
}

/* The token in a Sec-WebSocket-Protocol entry "wsa.bearer.TOKEN", copied
 * into buf: 1 found, 0 none, -1 unreadable or offered twice. */
static int protocol_token(struct lws *wsi, char *buf, size_t size,
			  const char **tok)
{
	static const char prefix[] = "wsa.bearer.";
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
	char *p, *save = NULL;
	int found = 0;

	if (n <= 0)
		return 0;
	if ((size_t)n >= size ||
	    lws_hdr_copy(wsi, buf, (int)size, WSI_TOKEN_PROTOCOL) != n)
		return -1;
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *end = p + strlen(p);

		while (is_space(*p))
			p++;
		while (end > p && is_space(end[-1]))
			*--end = '\0';
		if (strncmp(p, prefix, sizeof(prefix) - 1))
			continue;
		if (found++ || !p[sizeof(prefix) - 1])
			return -1;
		*tok = p + sizeof(prefix) - 1;
	}
	return found;
}

/* A route that takes a token at the upgrade: verify one if given. Returns
 * 0 to go on (the identity, if any, kept for the ESTABLISHED of this
 * wsi), or -1 after refusing. */
static int upgrade_token(struct wsa_server *srv, struct lws *wsi,
			 const char *peer)
{
	static const char challenge[] = "WWW-Authenticate: Bearer\r\n";
	char hbuf[4096], pbuf[4096];
	const char *htok = NULL, *ptok = NULL, *tok;
	int h = header_token(wsi, hbuf, sizeof(hbuf), &htok);
	int p = protocol_token(wsi, pbuf, sizeof(pbuf), &ptok);
	json_t *claims;
	double leeway = 0;
	int rc;

	if (!h && !p)
		return 0;
	if (h < 0 || p < 0 || (h && p)) {
		WSA_LOG(srv, WSA_LOG_NOTICE, NULL,
			"upgrade refused: unreadable or repeated token");
		wsa__throttle_begin(srv, peer); /* counted as a failure */
		return refuse(wsi, 401, "Unauthorized", challenge);
	}
	tok = h ? htok : ptok;
	if (!wsa__conn_make_id(srv, srv->upgrade_id))
		return refuse(wsi, 503, "Service Unavailable", "");
	rc = wsa__auth_upgrade(srv, tok, strlen(tok), srv->upgrade_id, peer,
			       &claims, &leeway);
	if (rc == WSA_ENOMEM || rc == WSA_ELIMIT)
		return refuse(wsi, 503, "Service Unavailable", "");
	if (rc)
		return refuse(wsi, 401, "Unauthorized", challenge);
	srv->upgrade_wsi = wsi;
	srv->upgrade_claims = claims;
	srv->upgrade_leeway = leeway;
	return 0;
}

static int confirm_upgrade(struct wsa_server *srv, struct lws *wsi,
			   const char *up)
{
	char path[1024], peer[WSA_PEER_KEY_LEN] = "";
	struct wsa_route *route;
	int n;

	upgrade_forget(srv);
	if (lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE) <= 0 || !up ||
	    strcasecmp(up, "websocket"))
		return refuse(wsi, 400, "Bad Request", "");
	n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	route = n > 0 ? wsa__route_find(srv, path, (size_t)n) : NULL;
	if (!route)
		return refuse(wsi, 404, "Not Found", "");
	if (!origin_ok(srv, wsi))
		return refuse(wsi, 403, "Forbidden", "");
	if (srv->stopping)
		return refuse(wsi, 503, "Service Unavailable", "");
	/* libwebsockets 4.1.6 drops, without an answer, an upgrade whose
	 * Sec-WebSocket-Protocol exceeds 127 bytes: say why instead. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 127)
		return refuse(wsi, 431, "Request Header Fields Too Large", "");
	if (!wsa__peer_key(wsi, peer) || !wsa__peer_admit(srv, peer)) {
		WSA_LOG(srv, WSA_LOG_NOTICE, NULL,
			"upgrade from %s refused: %s", peer,
			srv->nopen >= srv->cfg.max_connections
			    ? "max_connections reached"
			    : "max_connections_per_address reached");
		return refuse(wsi, 503, "Service Unavailable", "");
	}
	return route->upgrade_token ? upgrade_token(srv, wsi, peer) : 0;
}

/* The time a new connection has to log in: the auth timeout, and up to
 * an eighth more, drawn from its (random) id. Connections opened together
 * by a crowd that never logs in then time out spread over a while, not
 * in one burst of closes and reconnects that would stall everyone. */
static lws_usec_t login_deadline(const struct wsa_server *srv,
				 const struct wsa_conn *c)
{
	lws_usec_t t = (lws_usec_t)srv->cfg.auth_timeout_ms * 1000;
	unsigned r = (unsigned char)c->id[0] * 256u + (unsigned char)c->id[1];

	return t + t / 8 * (r % 1024) / 1024;
}

static int established(struct wsa_server *srv, struct lws *wsi, struct pss *pss)
{
	struct wsa_route *route;
	char path[1024], peer[WSA_PEER_KEY_LEN] = "";
	bool upgraded = srv->upgrade_wsi == wsi && srv->upgrade_claims;
	struct wsa_conn *c;
	int n;

	if (srv->upgrade_wsi != wsi)
		upgrade_forget(srv);
	/* The path was checked at the upgrade; find it again here so no
	 * other way into a WebSocket can skip the route table. */
	n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	route = n > 0 ? wsa__route_find(srv, path, (size_t)n) : NULL;
	if (!route || srv->stopping || !origin_ok(srv, wsi) ||
	    !wsa__peer_key(wsi, peer) || !wsa__peer_admit(srv, peer)) {
		upgrade_forget(srv);
		return -1;
	}
	c = pss->conn =
	    wsa__conn_new(srv, route, wsi, upgraded ? srv->upgrade_id : NULL);
	if (!c) {
		upgrade_forget(srv);
		return -1;
	}
	WSA_LOG(srv, WSA_LOG_INFO, c, "open");
	c->peer = wsa__peer_attach(srv, peer);
	if (!c->peer) {
		upgrade_forget(srv);
		return -1; /* closed: the close handler runs */
	}
	if (upgraded) {
		wsa__auth_upgraded(c, srv->upgrade_claims, srv->upgrade_leeway);
		upgrade_forget(srv);
		return 0;
	}
	if (!wsa__timer_set(srv, c, lws_now_usecs() + login_deadline(srv, c)))
		return -1; /* closed: the close handler runs */
	return 0;
}

/* The peer sent a close frame: conn.c decides whether lws echoes it. */
static int peer_close(struct pss *pss, const unsigned char *in, size_t len)
{
	return pss->conn ? wsa__conn_peer_close(pss->conn, in, len) : 0;
}

static void stop_begin(struct wsa_server *srv);

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct wsa_server *srv = lws_context_user(lws_get_context(wsi));
	struct pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
		const struct lws_filter_network_conn_args *a = user;

		/* Nonzero: lws hangs up at once. */
		return !wsa__peer_accept(srv, &a->cli_addr);
	}
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		wsa__peer_socket_open(srv, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* Whatever became of its upgrade, a token's identity checked
		 * there must not outlive it (and meet a later wsi at the same
		 * address). */
		if (srv->upgrade_wsi == wsi)
			upgrade_forget(srv);
		wsa__peer_socket_closed(srv, wsi);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(srv, wsi, in);
	case LWS_CALLBACK_HTTP:
		/* Plain HTTP: what the host serves, else 404. */
		return wsa__http_request(srv, wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return established(srv, wsi, pss);
	case LWS_CALLBACK_RECEIVE:
		return pss->conn ? wsa__conn_receive(pss->conn, in, len) : -1;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->conn ? wsa__conn_writeable(pss->conn) : -1;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (pss->conn)
			wsa__timer_seen(srv, pss->conn);
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return peer_close(pss, in, len);
	case LWS_CALLBACK_CLOSED:
		/* Also raised, with empty session data, for a connection
		 * refused before it was established. */
		if (pss && pss->conn) {
			struct wsa_conn *c = pss->conn;

			pss->conn = NULL;
			wsa__conn_closed(c);
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (atomic_load(&srv->stop_requested) && !srv->stopping)
			stop_begin(srv);
		wsa__auth_drain(srv);
		wsa__remote_drain(srv);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static void quiet_lws(void)
{
	/* libwebsockets logs process-wide; its notices are not the host's
	 * business. Errors still reach stderr. */
	lws_set_log_level(LLL_ERR, NULL);
}

static int validate_config(const wsa_config *cfg)
{
	if (cfg->port < 0 || cfg->port > 65535 || !cfg->host || !*cfg->host)
		return WSA_EINVAL;
	if (cfg->log_level < WSA_LOG_ERR || cfg->log_level > WSA_LOG_DEBUG)
		return WSA_EINVAL;
	if (cfg->rx_buffer_size > 1u << 20)
		return WSA_EINVAL;
	if (!cfg->tls_cert_file != !cfg->tls_key_file ||
	    (cfg->tls_cert_file &&
	     (!*cfg->tls_cert_file || !*cfg->tls_key_file)))
		return WSA_EINVAL;
	return WSA_OK;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Read the certificate and key now, so a bad file fails wsa_server_new
 * with WSA_ETLS (lws would only log it): both PEM, the key unencrypted
 * and matching the certificate. */
static int tls_check(struct wsa_server *srv)
{
	FILE *f = fopen(srv->cfg.tls_cert_file, "r");
	X509 *cert = f ? PEM_read_X509(f, NULL, no_passphrase, NULL) : NULL;
	EVP_PKEY *key = NULL;
	bool ok;

	if (f)
		fclose(f);
	f = fopen(srv->cfg.tls_key_file, "r");
	if (f) {
		key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
		fclose(f);
	}
	ok = cert && key && X509_check_private_key(cert, key) == 1;
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	if (!ok)
		WSA_LOG(srv, WSA_LOG_ERR, NULL,
			"TLS: cannot use certificate %s with key %s",
			srv->cfg.tls_cert_file, srv->cfg.tls_key_file);
	return ok ? WSA_OK : WSA_ETLS;
}

/* A string of the configuration, copied; false when memory is short. */
static bool copy_str(char **own, const char **field)
{
	if (!*field)
		return true;
	*own = strdup(*field);
	*field = *own;
	return *own != NULL;
}

/* Copy the allow-list of origins (NULL-terminated). */
static int origins_copy(struct wsa_server *srv, const char *const *list)
{
	size_t n = 0, i;

	srv->cfg.allowed_origins = NULL;
	if (!list)
		return WSA_OK;
	while (list[n])
		n++;
	srv->origins = calloc(n + 1, sizeof(*srv->origins));
	if (!srv->origins)
		return WSA_ENOMEM;
	for (i = 0; i < n; i++)
		if (!(srv->origins[i] = strdup(list[i])))
			return WSA_ENOMEM;
	srv->cfg.allowed_origins = (const char *const *)srv->origins;
	return WSA_OK;
}

/* Copy the host's configuration, filling zeros with defaults. */
static int config_copy(struct wsa_server *srv, const wsa_config *cfg)
{
	wsa_config def;

	wsa_config_init(&def);
	if (!cfg)
		cfg = &def;
	if (validate_config(cfg))
		return WSA_EINVAL;
	srv->cfg = *cfg;
	if (!srv->cfg.max_message_size)
		srv->cfg.max_message_size = def.max_message_size;
	if (!srv->cfg.auth_timeout_ms)
		srv->cfg.auth_timeout_ms = def.auth_timeout_ms;
	if (!srv->cfg.drain_timeout_ms)
		srv->cfg.drain_timeout_ms = def.drain_timeout_ms;
	if (!srv->cfg.rx_buffer_size)
		srv->cfg.rx_buffer_size = def.rx_buffer_size;
	if (!srv->cfg.max_queued_bytes)
		srv->cfg.max_queued_bytes = def.max_queued_bytes;
#define DEFAULT_IF_ZERO(field)                                                 \
	if (!srv->cfg.field)                                                   \
		srv->cfg.field = def.field;
	DEFAULT_IF_ZERO(max_connections)
	DEFAULT_IF_ZERO(max_connections_per_address)
	DEFAULT_IF_ZERO(rate_limit)
	DEFAULT_IF_ZERO(rate_burst)
	DEFAULT_IF_ZERO(handshake_timeout_ms)
	DEFAULT_IF_ZERO(max_login_size)
	DEFAULT_IF_ZERO(max_failed_logins)
	DEFAULT_IF_ZERO(verify_rate)
	DEFAULT_IF_ZERO(verify_burst)
	DEFAULT_IF_ZERO(max_connections_per_user)
	DEFAULT_IF_ZERO(max_topics_per_connection)
	DEFAULT_IF_ZERO(ping_interval_ms)
	DEFAULT_IF_ZERO(pong_timeout_ms)
#undef DEFAULT_IF_ZERO
	/* A burst of "unlimited" would wrap the rate arithmetic. */
	if (srv->cfg.rate_burst > 1000000)
		srv->cfg.rate_burst = 1000000;
	if (srv->cfg.verify_burst > 1000000)
		srv->cfg.verify_burst = 1000000;
	if (!srv->cfg.log)
		srv->cfg.log = wsa__log_stderr;
	if (!copy_str(&srv->host, &srv->cfg.host) ||
	    !copy_str(&srv->tls_cert, &srv->cfg.tls_cert_file) ||
	    !copy_str(&srv->tls_key, &srv->cfg.tls_key_file))
		return WSA_ENOMEM;
	return origins_copy(srv, cfg->allowed_origins);
}

/* No lws ping or hang-up timer per connection: lws keeps its timers in a
 * list sorted by walking it, so one per connection makes accepting N
 * connections cost O(N^2) (57% of the server's time at 19,000). Liveness
 * is ours: the idle timeout (timer.c), and answering the peer's pings. */
static const lws_retry_bo_t no_lws_liveness_timers = {0};

static int create_lws(struct wsa_server *srv)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct lws_context_creation_info info;

	pthread_once(&once, quiet_lws);
	srv->protocols[0].name = "wsa";
	srv->protocols[0].callback = callback;
	srv->protocols[0].per_session_data_size = sizeof(struct pss);
	/* Each connection holds an rx buffer from its upgrade on: small, for
	 * memory; sends are not capped by it. */
	srv->protocols[0].rx_buffer_size = srv->cfg.rx_buffer_size;
	srv->protocols[0].tx_packet_size = WSA_TX_BATCH;
	srv->protocols[0].user = srv;

	/* lws' own loop polls every descriptor for every event: with
	 * 10,000 connections one wakeup costs milliseconds. libev waits with
	 * epoll; the loop is ours, so the service loop stays ours too. */
	srv->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!srv->loop)
		return WSA_ELWS;
	wsa__rate_init(srv);
	memset(&info, 0, sizeof(info));
	/* No LWS_SERVER_OPTION_VALIDATE_UTF8: with it lws hangs up without a
	 * close frame on a close reason that is not UTF-8, before asking
	 * us. conn.c checks text and close reasons instead (1007). */
	info.options =
	    LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = (void **)&srv->loop;
	if (srv->tls_cert)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = srv;
	srv->ctx = lws_create_context(&info);
	if (!srv->ctx)
		return WSA_ELWS;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "wsa";
	info.port = srv->cfg.port;
	info.iface = srv->host;
	info.protocols = srv->protocols;
	info.retry_and_idle_policy = &no_lws_liveness_timers;
	/* TCP accept to WebSocket, TLS handshake included: a client that
	 * dribbles its upgrade is cut off. */
	info.timeout_secs = (srv->cfg.handshake_timeout_ms + 999) / 1000;
	/* How long a socket may hold its header buffer unupgraded: from
	 * accept, not reset by a byte that trickles in. */
	info.timeout_secs_ah_idle = info.timeout_secs;
	if (srv->tls_cert) {
		/* lws reads this from the vhost's options too. */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = srv->tls_cert;
		info.ssl_private_key_filepath = srv->tls_key;
		info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
				       SSL_OP_NO_TLSv1_1 |
				       SSL_OP_NO_RENEGOTIATION;
		/* Never h2: WebSockets over HTTP/2 skip the upgrade checks. */
		info.alpn = "http/1.1";
	}
	if (!strchr(srv->host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	srv->vhost = lws_create_vhost(srv->ctx, &info);
	if (!srv->vhost)
		return WSA_ELISTEN;
	srv->port = lws_get_vhost_listen_port(srv->vhost);
	return WSA_OK;
}

int wsa_server_new(wsa_server **out, const wsa_config *cfg)
{
	struct wsa_server *srv;
	int rc;

	if (!out)
		return WSA_EINVAL;
	*out = NULL;
	if (!wsa__map_init())
		return WSA_ENOMEM;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return WSA_ENOMEM;
	pthread_mutex_init(&srv->auth_lock, NULL);
	pthread_mutex_init(&srv->cmd_lock, NULL);
	atomic_init(&srv->stop_requested, false);
	srv->rand_pos = sizeof(srv->rand_pool);
	rc = config_copy(srv, cfg);
	if (!rc && srv->tls_cert)
		rc = tls_check(srv);
	if (!rc)
		rc = create_lws(srv);
	if (rc) {
		if (srv->ctx)
			WSA_LOG(srv, WSA_LOG_ERR, NULL,
				"cannot listen on %s:%d", srv->host,
				srv->cfg.port);
		wsa_server_free(srv);
		return rc;
	}
	WSA_LOG(srv, WSA_LOG_INFO, NULL, "listening on %s:%d", srv->host,
		srv->port);
	*out = srv;
	return WSA_OK;
}

int wsa_server_port(const wsa_server *srv)
{
	return srv ? srv->port : -1;
}

int wsa_set_verifier(wsa_server *srv, wsa_verify_fn fn, void *userdata)
{
	if (!srv || !fn)
		return WSA_EINVAL;
	if (srv->started)
		return WSA_ESTATE;
	srv->verify = fn;
	srv->verify_userdata = userdata;
	return WSA_OK;
}

static void drain_deadline(lws_sorted_usec_list_t *sul)
{
	struct wsa_server *srv =
	    (struct wsa_server *)(void *)((char *)sul -
					  offsetof(struct wsa_server,
						   drain_sul));

	WSA_LOG(srv, WSA_LOG_WARNING, NULL,
		"stop: %zu connections still draining", srv->nconns);
	srv->done = true;
}

/* libwebsockets 4.1.6's libev glue re-arms its one timer only after it
 * fires, or when it is not running: a timeout set earlier than the one
 * armed (a login deadline before a far token expiry, a handshake timeout)
 * would wait for that one. Ticking every TICK_US bounds that lateness;
 * the cost is ten empty wakeups a second. */
#define TICK_US ((lws_usec_t)100 * 1000)

static void tick(lws_sorted_usec_list_t *sul)
{
	struct wsa_server *srv =
	    (struct wsa_server *)(void *)((char *)sul -
					  offsetof(struct wsa_server,
						   tick_sul));

	lws_sul_schedule(srv->ctx, 0, &srv->tick_sul, tick, TICK_US);
}

/* Close every connection with 1001 once its queue is written. */
static void stop_begin(struct wsa_server *srv)
{
	struct wsa_conn *c;

	/* Calls made before the stop are carried out first: what they
	 * queue is written before the close. Later ones are refused. */
	wsa__auth_drain(srv);
	wsa__remote_drain(srv);
	srv->stopping = true;
	WSA_LOG(srv, WSA_LOG_INFO, NULL, "stopping; %zu connections",
		srv->nconns);
	for (c = srv->conns; c; c = c->next)
		wsa__conn_close(c, WSA_CLOSE_GOING_AWAY, "Server stopping");
	if (!srv->nconns) {
		srv->done = true;
		return;
	}
	/* lws' own timeout on closing connections ends them first; this is
	 * the backstop. */
	lws_sul_schedule(srv->ctx, 0, &srv->drain_sul, drain_deadline,
			 ((lws_usec_t)srv->cfg.drain_timeout_ms + 2000) * 1000);
}

int wsa_server_run(wsa_server *srv)
{
	if (!srv)
		return WSA_EINVAL;
	if (srv->started)
		return WSA_ESTATE;
	if (!srv->verify)
		return WSA_ENOVERIFIER;
	srv->service_thread = pthread_self();
	atomic_store_explicit(&srv->started, true, memory_order_release);
	tick(&srv->tick_sul);
	while (!srv->done) {
		if (atomic_load(&srv->stop_requested) && !srv->stopping)
			stop_begin(srv);
		if (srv->done)
			break;
		ev_run(srv->loop, EVRUN_ONCE);
	}
	lws_sul_cancel(&srv->drain_sul);
	lws_sul_cancel(&srv->tick_sul);
	wsa__rate_stop(srv);
	wsa__timers_stop(srv);
	return WSA_OK;
}

void wsa_server_stop(wsa_server *srv)
{
	if (!srv)
		return;
	atomic_store(&srv->stop_requested, true);
	if (srv->ctx)
		lws_cancel_service(srv->ctx);
}

void wsa_server_free(wsa_server *srv)
{
	if (!srv)
		return;
	srv->freeing = true;
	if (srv->ctx)
		lws_context_destroy(srv->ctx); /* closes what is left */
	if (srv->loop)
		ev_loop_destroy(srv->loop);
	srv->loop = NULL;
	upgrade_forget(srv);
	wsa__peers_free(srv);
	wsa__auth_free_pending(srv);
	wsa__timers_free(&srv->timers);
	wsa__routes_free(srv->routes);
	wsa__http_free(srv);
	pthread_mutex_destroy(&srv->auth_lock);
	wsa__remote_free(srv);
	pthread_mutex_destroy(&srv->cmd_lock);
	wsa__map_free(&srv->conns_by_id);
	wsa__topics_free(srv);
	wsa__buf_free(&srv->frame);
	OPENSSL_cleanse(srv->rand_pool, sizeof(srv->rand_pool));
	wsa__buf_free(&srv->scratch);
	for (size_t i = 0; srv->origins && srv->origins[i]; i++)
		free(srv->origins[i]);
	free(srv->origins);
	free(srv->host);
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv);
}
