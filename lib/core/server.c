/* The server: what its loops share. Configuration, the loops' making,
 * running and stopping; the rest of a loop is service.c's. */
#include "core/server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/http.h"
#include "core/route.h"
#include "core/service.h"
#include "fanout/broker.h"
#include "fanout/fanout.h"
#include "fanout/redis_wire.h"
#include "util/log.h"
#include "util/map.h"

/* The end of the first sized layout (0.2.0): a smaller cfg->size comes
 * from no wsa_config_init() at all. */
#define WSA_CONFIG_SIZE_MIN                                                    \
	(offsetof(wsa_config, permessage_deflate) +                            \
	 sizeof(((wsa_config *)0)->permessage_deflate))

static void config_defaults(wsa_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
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
	cfg->threads = 1;
	cfg->log_level = WSA_LOG_NOTICE;
	cfg->log = wsa__log_stderr;
}

/* Only size bytes are the caller's: a program built against an older
 * header has a shorter wsa_config, one built against a newer a longer,
 * whose fields this library does not know are left zero. */
void wsa_config_init_size(wsa_config *cfg, size_t size)
{
	wsa_config def;

	if (!cfg || size < sizeof(cfg->size))
		return;
	config_defaults(&def);
	memcpy(cfg, &def, size < sizeof(def) ? size : sizeof(def));
	if (size > sizeof(def))
		memset((char *)cfg + sizeof(def), 0, size - sizeof(def));
	cfg->size = size;
}

static void process_setup(void)
{
	/* libwebsockets logs process-wide; its notices are not the host's
	 * business. Errors still reach stderr, unstamped (lws stamps with
	 * localtime(), which is not for several service threads at once),
	 * and at most one a second of a kind: a peer can cause some of them
	 * at will (headers past lws' buffer). */
	lws_set_log_level(LLL_ERR, wsa__lws_log);
	/* jansson seeds its hashing on first use: here, before any service
	 * thread can be first. (OpenSSL 3 sets itself up once, safely.) */
	json_object_seed(0);
}

static int validate_config(const wsa_config *cfg)
{
	if (cfg->port < 0 || cfg->port > 65535 || !cfg->host || !*cfg->host)
		return WSA_EINVAL;
	if (cfg->log_level < WSA_LOG_ERR || cfg->log_level > WSA_LOG_DEBUG)
		return WSA_EINVAL;
	/* Control frames (up to 125 bytes) must fit lws' per-connection
	 * buffer, and its permessage-deflate refuses less than 128. */
	if (cfg->rx_buffer_size > 1u << 20 ||
	    (cfg->rx_buffer_size && cfg->rx_buffer_size < 128))
		return WSA_EINVAL;
	if (cfg->threads > WSA_THREADS_MAX)
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
	if (!ok) {
		WSA_LOG(srv, WSA_LOG_ERR, NULL,
			"TLS: cannot use certificate %s with key %s",
			srv->cfg.tls_cert_file, srv->cfg.tls_key_file);
		return WSA_ETLS;
	}
	/* lws would only log a list OpenSSL takes nothing from. */
	if (srv->tls_ciphers) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

		ok = ctx && SSL_CTX_set_cipher_list(ctx, srv->tls_ciphers) == 1;
		SSL_CTX_free(ctx);
		ERR_clear_error();
		if (!ok) {
			WSA_LOG(srv, WSA_LOG_ERR, NULL,
				"TLS: no usable cipher in \"%.200s\"",
				srv->tls_ciphers);
			return WSA_ETLS;
		}
	}
	return WSA_OK;
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

/* Whether the bytes of a newer header's wsa_config beyond ours are all
 * zero, so that ignoring its fields we do not know changes nothing. */
static bool tail_zero(const wsa_config *cfg)
{
	const unsigned char *p = (const unsigned char *)cfg;
	size_t i;

	for (i = sizeof(*cfg); i < cfg->size; i++)
		if (p[i])
			return false;
	return true;
}

/* Take the caller's cfg->size bytes of a configuration into srv->cfg,
 * the fields beyond them at their defaults. */
static int config_take(struct wsa_server *srv, const wsa_config *cfg,
		       const wsa_config *def)
{
	srv->cfg = *def;
	if (!cfg)
		return WSA_OK;
	if (cfg->size < WSA_CONFIG_SIZE_MIN || !tail_zero(cfg))
		return WSA_EINVAL;
	memcpy(&srv->cfg, cfg,
	       cfg->size < sizeof(*cfg) ? cfg->size : sizeof(*cfg));
	srv->cfg.size = sizeof(srv->cfg);
	return WSA_OK;
}

/* Copy the host's configuration, filling zeros with defaults. */
static int config_copy(struct wsa_server *srv, const wsa_config *cfg)
{
	wsa_config def;

	config_defaults(&def);
	if (config_take(srv, cfg, &def) || validate_config(&srv->cfg))
		return WSA_EINVAL;
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
	DEFAULT_IF_ZERO(threads)
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
	    !copy_str(&srv->tls_key, &srv->cfg.tls_key_file) ||
	    !copy_str(&srv->tls_ciphers, &srv->cfg.tls_ciphers))
		return WSA_ENOMEM;
	return origins_copy(srv, srv->cfg.allowed_origins);
}

/* Make the loops: the first on the configured port (0: a free one),
 * the others on the port it got. */
static int make_services(struct wsa_server *srv)
{
	unsigned i;
	int rc;

	srv->nservices = srv->cfg.threads;
	srv->services = calloc(srv->nservices, sizeof(*srv->services));
	srv->threads = calloc(srv->nservices, sizeof(*srv->threads));
	if (!srv->services || !srv->threads)
		return WSA_ENOMEM;
	srv->port = srv->cfg.port;
	for (i = 0; i < srv->nservices; i++) {
		rc = wsa__service_new(srv, i, srv->port, &srv->services[i]);
		if (rc)
			return rc;
	}
	return WSA_OK;
}

/* The Redis broker's lines go to the server's log. */
static void redis_log(void *arg, int level, const char *text)
{
	struct wsa_server *srv = arg;

	WSA_LOG(srv, (wsa_log_level)level, NULL, "%s", text);
}

/* The broker over the loops' work queues: in-process, or through Redis
 * when wsa_server_use_redis() asked for it (made at the start, when
 * everything it needs is set). */
static int make_broker(struct wsa_server *srv, bool redis)
{
	struct wsa_workq **queues = calloc(srv->nservices, sizeof(*queues));
	struct wsa_redis_setup setup = {
	    .urls = srv->redis_urls,
	    .nurls = srv->nredis,
	    .prefix = srv->redis_prefix,
	    .fan_seq = &srv->fan_seq,
	    .revoked_before = &srv->revoked_before,
	    .stopping = &srv->stop_requested,
	    .log = redis_log,
	    .log_arg = srv,
	};
	struct wsa_broker *b;
	unsigned i;

	if (!queues)
		return WSA_ENOMEM;
	for (i = 0; i < srv->nservices; i++)
		queues[i] = &srv->services[i]->workq;
	b = redis ? wsa__broker_redis_new(queues, srv->nservices,
					  &wsa__fan_hooks, &setup)
		  : wsa__broker_local_new(queues, srv->nservices,
					  &wsa__fan_hooks);
	free(queues);
	if (!b)
		return WSA_ENOMEM;
	if (srv->broker)
		srv->broker->ops->destroy(srv->broker);
	for (unsigned k = 0; k < srv->nredis; k++)
		free(srv->redis_urls[k]);
	free(srv->redis_urls);
	free(srv->redis_prefix);
	srv->broker = b;
	return WSA_OK;
}

int wsa_server_topic_history(wsa_server *srv, const char *prefix, unsigned size,
			     unsigned ttl_ms)
{
	if (!srv || !prefix || strlen(prefix) > 1024)
		return WSA_EINVAL;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	return wsa__history_rule_add(&srv->history_rules, prefix, size, ttl_ms);
}

int wsa_server_use_redis(wsa_server *srv, const char *const *urls, size_t n,
			 const char *prefix)
{
	size_t i;

	if (!srv || !urls || !n || n > 64 ||
	    (prefix && (!*prefix || strlen(prefix) > 64)))
		return WSA_EINVAL;
	for (i = 0; i < n; i++)
		if (!wsa__redis_url_parse(urls[i], NULL))
			return WSA_EINVAL;
	if (atomic_load(&srv->started) || srv->nredis)
		return WSA_ESTATE;
	srv->redis_urls = calloc(n, sizeof(*srv->redis_urls));
	srv->redis_prefix = prefix ? strdup(prefix) : NULL;
	if (!srv->redis_urls || (prefix && !srv->redis_prefix))
		goto fail;
	for (i = 0; i < n; i++)
		if (!(srv->redis_urls[i] = strdup(urls[i])))
			goto fail;
	srv->nredis = (unsigned)n;
	return WSA_OK;
fail:
	for (i = 0; srv->redis_urls && i < n; i++)
		free(srv->redis_urls[i]);
	free(srv->redis_urls);
	free(srv->redis_prefix);
	srv->redis_urls = NULL;
	srv->redis_prefix = NULL;
	return WSA_ENOMEM;
}

static int server_new(wsa_server **out, const wsa_config *cfg,
		      wsa_loop_kind kind, void *loop)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct wsa_server *srv;
	int rc;

	if (!out)
		return WSA_EINVAL;
	*out = NULL;
	/* Process-wide set-up, once whatever the number of servers. */
	pthread_once(&once, process_setup);
	if (!wsa__map_init())
		return WSA_ENOMEM;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return WSA_ENOMEM;
	atomic_init(&srv->started, false);
	atomic_init(&srv->stop_requested, false);
	atomic_init(&srv->revoked_before, 0);
	atomic_init(&srv->fan_seq, 0);
	atomic_init(&srv->metrics_ready, false);
	atomic_init(&srv->publishes_off_loop, 0);
	srv->host_loop_kind = kind;
	srv->host_loop = loop;
	rc = config_copy(srv, cfg);
	/* One loop: the host's. */
	if (!rc && loop && srv->cfg.threads != 1)
		rc = WSA_EINVAL;
	wsa__guard_init(&srv->guard, &srv->cfg);
	wsa__log_limits_init(&srv->log_limits);
	if (!rc && srv->tls_cert)
		rc = tls_check(srv);
	if (!rc)
		rc = make_services(srv);
	if (!rc)
		rc = make_broker(srv, false);
	if (rc) {
		wsa_server_free(srv);
		return rc;
	}
	WSA_LOG(srv, WSA_LOG_INFO, NULL, "listening on %s:%d, %u thread%s",
		srv->host, srv->port, srv->nservices,
		srv->nservices > 1 ? "s" : "");
	*out = srv;
	return WSA_OK;
}

int wsa_server_new(wsa_server **out, const wsa_config *cfg)
{
	return server_new(out, cfg, WSA_LOOP_LIBEV, NULL);
}

int wsa_server_new_on_loop(wsa_server **out, const wsa_config *cfg,
			   wsa_loop_kind kind, void *loop)
{
	if (out)
		*out = NULL;
	if (!loop || (kind != WSA_LOOP_LIBEV && kind != WSA_LOOP_LIBUV &&
		      kind != WSA_LOOP_GLIB))
		return WSA_EINVAL;
	return server_new(out, cfg, kind, loop);
}

int wsa_server_port(const wsa_server *srv)
{
	return srv ? srv->port : -1;
}

int wsa_set_verifier(wsa_server *srv, wsa_verify_fn fn, void *userdata)
{
	if (!srv || !fn)
		return WSA_EINVAL;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	srv->verify = fn;
	srv->verify_userdata = userdata;
	return WSA_OK;
}

static void *service_thread(void *svc)
{
	wsa__service_run(svc);
	return NULL;
}

void wsa__server_drained(struct wsa_server *srv)
{
	if (atomic_fetch_add(&srv->drained, 1) + 1 != srv->nservices)
		return;
	if (srv->on_stopped)
		srv->on_stopped(srv, srv->on_stopped_userdata);
}

/* Start a thread for each loop from first on; WSA_OK, or WSA_ENOMEM
 * after stopping those that started (a server runs whole). */
static int start_threads(struct wsa_server *srv, unsigned first)
{
	unsigned i;

	for (i = first; i < srv->nservices; i++) {
		if (pthread_create(&srv->threads[i], NULL, service_thread,
				   srv->services[i]))
			break;
		srv->nthreads = i + 1;
	}
	if (i == srv->nservices)
		return WSA_OK;
	WSA_LOG(srv, WSA_LOG_ERR, NULL, "cannot start a thread");
	wsa_server_stop(srv);
	return WSA_ENOMEM;
}

/* Checks shared by run and start: WSA_OK after marking it started. */
static int may_start(struct wsa_server *srv)
{
	if (!srv)
		return WSA_EINVAL;
	if (!srv->verify)
		return WSA_ENOVERIFIER;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	if (srv->nredis && make_broker(srv, true))
		return WSA_ENOMEM;
	if (atomic_exchange(&srv->started, true))
		return WSA_ESTATE;
	atomic_store_explicit(&srv->metrics_ready, true, memory_order_release);
	return WSA_OK;
}

int wsa_server_run(wsa_server *srv)
{
	int rc;

	if (srv && srv->host_loop)
		return WSA_ESTATE; /* the host runs its loop */
	if ((rc = may_start(srv)))
		return rc;
	srv->nthreads = 1; /* the calling thread runs the first loop */
	rc = start_threads(srv, 1);
	wsa__service_run(srv->services[0]);
	wsa_server_wait(srv);
	return rc;
}

int wsa_server_start(wsa_server *srv)
{
	int rc = may_start(srv);

	if (rc)
		return rc;
	if (srv->host_loop) {
		wsa__service_start(srv->services[0]);
		return WSA_OK;
	}
	srv->background = true;
	rc = start_threads(srv, 0);
	if (rc)
		wsa_server_wait(srv);
	return rc;
}

int wsa_server_wait(wsa_server *srv)
{
	unsigned i;

	if (!srv)
		return WSA_EINVAL;
	if (srv->host_loop || !atomic_load(&srv->started))
		return WSA_ESTATE;
	for (i = srv->background ? 0 : 1; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	srv->nthreads = 0;
	return WSA_OK;
}

int wsa_server_on_stopped(wsa_server *srv, wsa_stopped_fn fn, void *userdata)
{
	if (!srv)
		return WSA_EINVAL;
	if (atomic_load(&srv->started))
		return WSA_ESTATE;
	srv->on_stopped = fn;
	srv->on_stopped_userdata = userdata;
	return WSA_OK;
}

void wsa_server_stop(wsa_server *srv)
{
	unsigned i;

	if (!srv)
		return;
	atomic_store(&srv->stop_requested, true);
	for (i = 0; i < srv->nservices; i++)
		if (srv->services[i])
			wsa__service_wake(srv->services[i]);
}

/* What is left once every loop has let go. */
static void server_release(struct wsa_server *srv)
{
	free(srv->services);
	free(srv->threads);
	if (srv->broker)
		srv->broker->ops->destroy(srv->broker);
	wsa__guard_free(&srv->guard);
	wsa__history_rules_free(&srv->history_rules);
	/* Nothing held back goes unsaid. */
	wsa__log_flush(&srv->cfg, &srv->log_limits, true);
	wsa__lws_log_flush(true);
	wsa__log_limits_free(&srv->log_limits);
	wsa__routes_free(srv->routes);
	wsa__http_free(srv);
	for (size_t k = 0; srv->origins && srv->origins[k]; k++)
		free(srv->origins[k]);
	free(srv->origins);
	free(srv->host);
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv->tls_ciphers);
	free(srv);
}

/* Free each loop not yet freed with fn; true when none is left. */
static bool free_services(struct wsa_server *srv,
			  bool (*fn)(struct wsa_service *))
{
	unsigned i;
	bool all = true;

	for (i = 0; srv->services && i < srv->nservices; i++) {
		if (!srv->services[i] || fn(srv->services[i]))
			srv->services[i] = NULL;
		else
			all = false;
	}
	return all;
}

bool wsa__server_free_again(struct wsa_server *srv)
{
	if (!free_services(srv, wsa__service_free_again))
		return false;
	server_release(srv);
	return true;
}

void wsa_server_free(wsa_server *srv)
{
	if (!srv)
		return;
	if (srv->nthreads) {
		/* Running on threads of its own: stopped and waited for. */
		wsa_server_stop(srv);
		wsa_server_wait(srv);
	}
	/* Nothing comes from other nodes to loops about to go. */
	if (srv->broker)
		srv->broker->ops->quiesce(srv->broker);
	if (free_services(srv, wsa__service_free))
		server_release(srv);
	else
		wsa__host_loop_finish(srv); /* lws ends on the host's loop */
}
