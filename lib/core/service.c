/* A service: one loop of the server. Its libwebsockets context and vhost,
 * the checks made at the upgrade, the lws callback through which every
 * event of its connections enters, its run and its stop. */
/* accept4 */
#define _GNU_SOURCE
#include "core/service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "core/auth.h"
#include "core/conn.h"
#include "core/http.h"
#include "core/read.h"
#include "core/route.h"
#include "core/server.h"
#include "fanout/fanout.h"
#include "policy/guard.h"
#include "util/log.h"

bool wsa__on_loop(const struct wsa_service *svc)
{
	return atomic_load_explicit(&svc->running, memory_order_acquire) &&
	       pthread_equal(pthread_self(), svc->thread);
}

struct wsa_service *wsa__service_current(const struct wsa_server *srv)
{
	unsigned i;

	for (i = 0; i < srv->nservices; i++)
		if (wsa__on_loop(srv->services[i]))
			return srv->services[i];
	return NULL;
}

void wsa__service_wake(struct wsa_service *svc)
{
	if (svc->ctx)
		lws_cancel_service(svc->ctx);
}

static void wake(void *svc)
{
	wsa__service_wake(svc);
}

/* ---------------------------------------------------------- upgrade */

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
	wsa__count_refusal(lws_context_user(lws_get_context(wsi)), status);
	return -1;
}

/* Whether the upgrade's Origin may go on (CSWSH). Without an allow-list,
 * or without an Origin header (not a browser), the auth gate decides. */
static bool origin_ok(const struct wsa_server *srv, struct lws *wsi)
{
	return !srv->origins || wsa__origin_allowed(srv, wsi);
}

/* Drop what the upgrade of upgrade_wsi left for its ESTABLISHED: its
 * place in the limits and a token's identity, when no connection took
 * them (the upgrade failed after the checks). */
static void upgrade_forget(struct wsa_service *svc)
{
	wsa__guard_detach(&svc->srv->guard, svc->upgrade_peer);
	svc->upgrade_peer = NULL;
	json_decref(svc->upgrade_claims);
	svc->upgrade_claims = NULL;
	svc->upgrade_wsi = NULL;
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
static int upgrade_token(struct wsa_service *svc, struct lws *wsi,
			 const char *peer)
{
	static const char challenge[] = "WWW-Authenticate: Bearer\r\n";
	struct wsa_server *srv = svc->srv;
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
		WSA_LOG_PEER(srv, WSA_LOG_NOTICE,
			     WSA_PL_UPGRADE_TOKEN_UNREADABLE, NULL,
			     "upgrade refused: unreadable or repeated token");
		/* Counted as a failure. */
		wsa__throttle_begin(&srv->guard, peer);
		upgrade_forget(svc);
		return refuse(wsi, 401, "Unauthorized", challenge);
	}
	tok = h ? htok : ptok;
	if (!wsa__conn_make_id(svc, svc->upgrade_id)) {
		upgrade_forget(svc);
		return refuse(wsi, 503, "Service Unavailable", "");
	}
	rc = wsa__auth_upgrade(svc, tok, strlen(tok), svc->upgrade_id, peer,
			       &claims, &leeway);
	if (rc) {
		upgrade_forget(svc);
		if (rc == WSA_ENOMEM || rc == WSA_ELIMIT)
			return refuse(wsi, 503, "Service Unavailable", "");
		return refuse(wsi, 401, "Unauthorized", challenge);
	}
	svc->upgrade_claims = claims;
	svc->upgrade_leeway = leeway;
	return 0;
}

/* Only a WebSocket upgrade to a served path goes on. Anything else (an
 * h2c upgrade included, which would skip these checks) is refused here. */
static int confirm_upgrade(struct wsa_service *svc, struct lws *wsi,
			   const char *up)
{
	struct wsa_server *srv = svc->srv;
	char path[1024], own[WSA_PEER_KEY_LEN] = "";
	struct wsa_route *route;
	const char *why = "no peer address", *peer;
	int n;

	upgrade_forget(svc);
	/* lws' buffer is larger than the limit, so this is judged here,
	 * with an answer, for all but the largest. */
	if (wsa__header_bytes(wsi) > WSA_HEADER_LIMIT)
		return refuse(wsi, 431, "Request Header Fields Too Large", "");
	if (lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE) <= 0 || !up ||
	    strcasecmp(up, "websocket"))
		return refuse(wsi, 400, "Bad Request", "");
	n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	route = n > 0 ? wsa__route_find(srv, path, (size_t)n) : NULL;
	if (!route)
		return refuse(wsi, 404, "Not Found", "");
	if (!origin_ok(srv, wsi))
		return refuse(wsi, 403, "Forbidden", "");
	if (svc->stopping)
		return refuse(wsi, 503, "Service Unavailable", "");
	/* libwebsockets 4.1.6 drops, without an answer, an upgrade whose
	 * Sec-WebSocket-Protocol exceeds 127 bytes: say why instead. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 127)
		return refuse(wsi, 431, "Request Header Fields Too Large", "");
	/* The key the socket was counted under, not asked of the socket
	 * and formatted again. */
	peer = wsa__guard_socket_key(&srv->guard, wsi);
	if (!peer)
		peer = wsa__peer_key(wsi, own) ? own : NULL;
	if (!peer || !wsa__guard_admit(&srv->guard, peer, &why) ||
	    !(svc->upgrade_peer = wsa__guard_attach(&srv->guard, peer))) {
		WSA_LOG_PEER(srv, WSA_LOG_NOTICE, WSA_PL_UPGRADE_LIMIT, NULL,
			     "upgrade from %s refused: %s", peer ? peer : "",
			     why);
		return refuse(wsi, 503, "Service Unavailable", "");
	}
	/* Counted from here: lws raises ESTABLISHED for this wsi within
	 * this same call, or destroys it. */
	svc->upgrade_wsi = wsi;
	return route->upgrade_token ? upgrade_token(svc, wsi, peer) : 0;
}

/* ------------------------------------------------- permessage-deflate */

#define PMD "permessage-deflate"

/* lws' permessage-deflate (RFC 7692), on the vhost when the server asks
 * for it. The offer string is for lws clients; a server answers what
 * the client offers. */
static const struct lws_extension deflate_ext[] = {
    {PMD, lws_extension_callback_pm_deflate, PMD},
    {NULL, NULL, NULL},
};

/* Whether the first permessage-deflate offer of the upgrade (the one lws
 * 4.1.6 answers) carries option. */
static bool offered(struct lws *wsi, const char *option)
{
	char buf[512], *p, *end;
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS);

	if (n <= 0 || n >= (int)sizeof(buf) ||
	    lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_EXTENSIONS) != n)
		return false;
	p = strstr(buf, PMD);
	if (!p)
		return false;
	end = strchr(p, ',');
	if (end)
		*end = '\0';
	return strstr(p, option) != NULL;
}

/* Our side of permessage-deflate on a connection that negotiated it;
 * false when it did not. lws 4.1.6 names its settings as a client would
 * (extension-permessage-deflate.c): in a server, "client_no_context_
 * takeover" resets our compressor after each message, "client_max_
 * window_bits" and "mem_level" size it (our vhost has no listen port of
 * its own), and "server_no_context_takeover" resets the decompressor
 * after each message. Ours is reset after each message: no client needs
 * to be asked, and an idle connection then holds no compressor (with a
 * 4 KiB window and memLevel 5 it is 32 KiB while a message is written,
 * against 256 KiB kept for zlib's defaults). The decompressor is reset
 * only when the client said it resets its compressor: lws, which sets it
 * when the client offers server_no_context_takeover instead, would then
 * fail on the client's second message. */
static bool deflate_setup(struct lws *wsi)
{
	if (lws_set_extension_option(wsi, PMD, "client_no_context_takeover",
				     "1"))
		return false; /* not negotiated */
	lws_set_extension_option(wsi, PMD, "client_max_window_bits", "12");
	lws_set_extension_option(wsi, PMD, "mem_level", "5");
	lws_set_extension_option(
	    wsi, PMD, "server_no_context_takeover",
	    offered(wsi, "client_no_context_takeover") ? "1" : "0");
	return true;
}

/* The time a new connection has to log in: the auth timeout, and up to
 * an eighth more, drawn from its (random) id. Connections opened together
 * by a crowd that never logs in then time out spread over a while, not
 * in one burst of closes and reconnects that would stall everyone. */
static lws_usec_t login_deadline(const struct wsa_server *srv,
				 const struct wsa_conn *c)
{
	lws_usec_t t = (lws_usec_t)srv->cfg.auth_timeout_ms * 1000;
	unsigned r = (unsigned char)c->id[1] * 256u + (unsigned char)c->id[2];

	return t + t / 8 * (r % 1024) / 1024;
}

static int established(struct wsa_service *svc, struct lws *wsi)
{
	struct wsa_server *srv = svc->srv;
	struct wsa_route *route;
	char path[1024];
	bool upgraded = svc->upgrade_wsi == wsi && svc->upgrade_claims;
	struct wsa_conn *c;
	int n;

	if (svc->upgrade_wsi != wsi || !svc->upgrade_peer) {
		upgrade_forget(svc);
		return -1; /* no upgrade of ours led here */
	}
	/* The path was checked at the upgrade; find it again here so no
	 * other way into a WebSocket can skip the route table. */
	n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	route = n > 0 ? wsa__route_find(srv, path, (size_t)n) : NULL;
	if (!route || svc->stopping || !origin_ok(srv, wsi)) {
		upgrade_forget(svc);
		return -1;
	}
	c = wsa__conn_new(svc, route, wsi, upgraded ? svc->upgrade_id : NULL);
	if (!c) {
		upgrade_forget(svc);
		return -1;
	}
	/* The connection is the wsi's user data: lws allocates none. */
	lws_set_wsi_user(wsi, c);
	c->deflate = srv->cfg.permessage_deflate && deflate_setup(wsi);
	WSA_LOG(srv, WSA_LOG_INFO, c, "open%s",
		c->deflate ? " (permessage-deflate)" : "");
	c->peer = svc->upgrade_peer; /* the place taken at the upgrade */
	svc->upgrade_peer = NULL;
	/* Read by libwsa from the end of this round, if it can be. */
	wsa__read_fresh(c);
	if (upgraded) {
		wsa__auth_upgraded(c, svc->upgrade_claims, svc->upgrade_leeway);
		upgrade_forget(svc);
		return 0;
	}
	if (!wsa__heap_set(&svc->deadlines, &c->deadline,
			   lws_now_usecs() + login_deadline(srv, c)))
		return -1; /* closed: the close handler runs */
	return 0;
}

/* The peer sent a close frame: conn.c decides whether lws echoes it. */
static int peer_close(struct wsa_conn *c, const unsigned char *in, size_t len)
{
	return c ? wsa__conn_peer_close(c, in, len) : 0;
}

static void stop_begin(struct wsa_service *svc);

/* Work from other threads, and the stop, after lws_cancel_service(). */
static void woken(struct wsa_service *svc)
{
	if (atomic_load(&svc->srv->stop_requested) && !svc->stopping)
		stop_begin(svc);
	wsa__workq_drain(&svc->workq, svc);
}

static void accept_ready(struct wsa_service *svc);

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct wsa_service *svc = lws_context_user(lws_get_context(wsi));
	struct wsa_guard *guard = &svc->srv->guard;
	struct wsa_conn *conn = user; /* but for the network filter */

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
		const struct lws_filter_network_conn_args *a = user;

		/* Nonzero: lws hangs up at once. */
		char key[WSA_PEER_KEY_LEN];

		if (!wsa__addr_key(&a->cli_addr, key))
			key[0] = '\0'; /* counted by nothing: not an IP peer */
		/* Nonzero: lws hangs up at once. */
		return !wsa__guard_accept(guard, key);
	}
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		/* Nonzero: lws closes it at once. A socket of ours comes with
		 * its address's key. */
		return wsa__guard_socket_open(guard, wsi, svc->adopt_key) ? 0
									  : -1;
	case LWS_CALLBACK_WSI_DESTROY:
		/* Whatever became of its upgrade, a token's identity checked
		 * there must not outlive it (and meet a later wsi at the same
		 * address). */
		if (svc->upgrade_wsi == wsi)
			upgrade_forget(svc);
		wsa__guard_socket_closed(guard, wsi);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(svc, wsi, in);
	case LWS_CALLBACK_HTTP:
		/* Plain HTTP: what the host serves, else 404. */
		return wsa__http_request(svc->srv, wsi, in, len);
	case LWS_CALLBACK_ESTABLISHED:
		return established(svc, wsi);
	case LWS_CALLBACK_RECEIVE:
		return conn ? wsa__conn_receive(conn, in, len) : -1;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return conn ? wsa__conn_writeable(conn) : -1;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (conn) {
			conn->rd.lws_fed = true;
			wsa__conn_seen(conn, lws_now_usecs());
		}
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (conn)
			conn->rd.lws_fed = true;
		return peer_close(conn, in, len);
	case LWS_CALLBACK_CLOSED:
		/* Also raised, without user data, for a connection refused
		 * before it was established. */
		if (conn) {
			lws_set_wsi_user(wsi, NULL);
			wsa__conn_closed(conn);
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		woken(svc);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:
		/* Only the listening socket is a raw file here. */
		if (wsi == svc->listen_wsi)
			accept_ready(svc);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (wsi == svc->listen_wsi)
			svc->listen_wsi = NULL;
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* ------------------------------------------------------------ set up */

/* No lws ping or hang-up timer per connection: lws keeps its timers in a
 * list sorted by walking it, so one per connection makes accepting N
 * connections cost O(N^2) (57% of the server's time at 19,000). Liveness
 * is ours (conn.c), and answering the peer's pings. */
static const lws_retry_bo_t no_lws_liveness_timers = {0};

/* The shared limits forget idle addresses now and then; the first loop
 * does it for all. */
#define SWEEP_US ((lws_usec_t)15 * 1000 * 1000)

static void sweep(struct wsa_alarm *a)
{
	struct wsa_service *svc =
	    lws_container_of(a, struct wsa_service, sweep);

	wsa__guard_sweep(&svc->srv->guard);
	wsa__alarm_at(a, lws_now_usecs() + SWEEP_US);
}

/* Lines held back (log.h) are counted in a line once their second is
 * over; the first loop does it for the server, and for lws' lines. */
#define LOG_FLUSH_US ((lws_usec_t)1000 * 1000)

static void log_flush(struct wsa_alarm *a)
{
	struct wsa_service *svc =
	    lws_container_of(a, struct wsa_service, log_flush);

	wsa__log_flush(&svc->srv->cfg, &svc->srv->log_limits, false);
	wsa__lws_log_flush(false);
	wsa__alarm_at(a, lws_now_usecs() + LOG_FLUSH_US);
}

/* ------------------------------------------------------------ accept */

/* Accepted sockets taken per wakeup, so a connection storm on one loop
 * does not keep its connections waiting. */
#define ACCEPT_BATCH 64

/* Hand an accepted socket to lws, as its own listener would: within the
 * limits on sockets, with Nagle off. */
static void adopt(struct wsa_service *svc, int fd,
		  const struct sockaddr_storage *addr)
{
	char key[WSA_PEER_KEY_LEN];
	int one = 1;

	if (!wsa__addr_key(addr, key))
		key[0] = '\0'; /* counted by nothing: not an IP peer */
	if (!wsa__guard_accept(&svc->srv->guard, key)) {
		close(fd); /* hung up at once, as lws would */
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* On failure lws closes the socket. lws instantiates it within the
	 * call, which counts it under this key. */
	svc->adopt_key = key;
	lws_adopt_socket_vhost(svc->vhost, fd);
	svc->adopt_key = NULL;
}

/* The listening socket is readable (lws watches it as a raw file). */
static void accept_ready(struct wsa_service *svc)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int fd, n;

	for (n = 0; n < ACCEPT_BATCH; n++) {
		len = sizeof(addr);
		fd = accept4(lws_get_socket_fd(svc->listen_wsi),
			     (struct sockaddr *)&addr, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			adopt(svc, fd, &addr);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of descriptors: the queue waits in the kernel
			 * rather than the loop spinning on it. */
			lws_rx_flow_control(svc->listen_wsi, 0);
			wsa__alarm_at(&svc->accept_retry,
				      lws_now_usecs() + 100 * 1000);
		}
		break; /* EAGAIN, or an error of that one connection */
	}
}

static void accept_again(struct wsa_alarm *a)
{
	struct wsa_service *svc =
	    lws_container_of(a, struct wsa_service, accept_retry);

	if (svc->listen_wsi)
		lws_rx_flow_control(svc->listen_wsi, 1);
}

/* This loop's listening socket on host:port (port 0: a free one, then
 * the server's port); SO_REUSEPORT when the server has several loops,
 * so the kernel spreads connections among them. With one loop the port
 * is not shared: no other process of the user could join it. Accepting
 * begins at the start (wsa__service_start); until then the kernel queues
 * connections. */
static int listen_on(struct wsa_service *svc, int port)
{
	struct wsa_server *srv = svc->srv;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1, fd;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, srv->host,
		      &((struct sockaddr_in *)(void *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)(void *)&ss)->sin_port =
		    htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(
		       AF_INET6, srv->host,
		       &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)(void *)&ss)->sin6_port =
		    htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		return WSA_ELISTEN;
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return WSA_ELISTEN;
	svc->listen_fd = fd;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (srv->nservices > 1 &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, SOMAXCONN))
		return WSA_ELISTEN;
	len = sizeof(ss);
	if (!port && !getsockname(fd, (struct sockaddr *)&ss, &len))
		srv->port = ntohs(
		    ss.ss_family == AF_INET
			? ((struct sockaddr_in *)(void *)&ss)->sin_port
			: ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
	return WSA_OK;
}

static void drain_deadline(struct wsa_alarm *a);
static void tick(lws_sorted_usec_list_t *sul);

static int create_vhost(struct wsa_service *svc)
{
	struct wsa_server *srv = svc->srv;
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "wsa";
	/* The listening socket is ours (listen_on): lws 4.1.6 as Debian
	 * builds it (one service thread a context) never sets SO_REUSEPORT
	 * on its own, so several loops could not share a port. */
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = svc->protocols;
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
		info.ssl_cipher_list =
		    srv->tls_ciphers ? srv->tls_ciphers : WSA_TLS12_CIPHERS;
		/* Never h2: WebSockets over HTTP/2 skip the upgrade checks. */
		info.alpn = "http/1.1";
	}
	if (srv->cfg.permessage_deflate)
		info.extensions = deflate_ext;
	svc->vhost = lws_create_vhost(svc->ctx, &info);
	return svc->vhost ? WSA_OK : WSA_ELWS;
}

static int create_lws(struct wsa_service *svc, int port)
{
	struct wsa_server *srv = svc->srv;
	struct lws_context_creation_info info;
	void *loop;
	int rc;

	svc->protocols[0].name = "wsa";
	svc->protocols[0].callback = callback;
	/* No per-session data: the connection is set as the wsi's user
	 * data when it is established (one allocation less each). */
	svc->protocols[0].per_session_data_size = 0;
	svc->protocols[0].tx_packet_size = WSA_TX_BATCH;
	svc->protocols[0].user = svc;

	memset(&info, 0, sizeof(info));
	/* No LWS_SERVER_OPTION_VALIDATE_UTF8: with it lws hangs up without a
	 * close frame on a close reason that is not UTF-8, before asking
	 * us. conn.c checks text and close reasons instead (1007). */
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	switch (srv->host_loop_kind) {
	case WSA_LOOP_LIBUV:
		info.options |= LWS_SERVER_OPTION_LIBUV;
		break;
	case WSA_LOOP_GLIB:
		info.options |= LWS_SERVER_OPTION_GLIB;
		break;
	default:
		info.options |= LWS_SERVER_OPTION_LIBEV;
		break;
	}
	if (srv->host_loop) {
		loop = srv->host_loop;
		if (srv->host_loop_kind == WSA_LOOP_LIBEV)
			svc->loop = loop;
	} else {
		/* lws' own loop polls every descriptor for every event:
		 * with 10,000 connections one wakeup costs milliseconds.
		 * libev waits with epoll. */
		svc->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		if (!svc->loop)
			return WSA_ELWS;
		svc->own_loop = true;
		loop = svc->loop;
	}
	/* Each connection holds an rx buffer from its upgrade on, and lws
	 * reads no more than it at once; sends are not capped by it. Where
	 * libwsa reads plain connections itself (read.c) lws' buffer is
	 * WSA_LWS_RX_MIN: lws reads only the upgrade's rounds and the rare
	 * connection left to it. Its one value serves the whole vhost (lws
	 * checks its buffer against it as it parses), so a server with TLS
	 * or permessage-deflate keeps rx_buffer_size. */
	svc->protocols[0].rx_buffer_size =
	    wsa__read_possible(svc) ? WSA_LWS_RX_MIN : srv->cfg.rx_buffer_size;
	if (wsa__read_possible(svc) && !wsa__read_init(svc))
		return WSA_ENOMEM;
	info.foreign_loops = &loop;
	/* Set to NULL by lws when it has destroyed the context, which on a
	 * libuv loop ends after the loop has run on (wsa__service_free). */
	info.pcontext = &svc->ctx;
	/* OpenSSL's set-up by the first context only: with it asked of
	 * every context, one context's SSL_CTX was never freed (valgrind,
	 * lws 4.1.6 with TLS on two loops). Each vhost still asks for its
	 * own TLS (create_vhost). */
	if (srv->tls_cert && !svc->index)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	/* lws reads a connection into the loop's buffer, no more than the
	 * connection's own (rx_buffer_size) at once: the loop's must not be
	 * the smaller (lws' default is 4096). */
	if (srv->cfg.rx_buffer_size + LWS_PRE > 4096)
		info.pt_serv_buf_size =
		    (unsigned)(srv->cfg.rx_buffer_size + LWS_PRE);
	/* A request's headers are held in this much while it is read
	 * (http.h): more than the server's limit, so that it can answer
	 * 431 where lws would drop the connection. */
	info.max_http_header_data = WSA_HEADER_BUFFER;
	info.user = svc;
	svc->ctx = lws_create_context(&info);
	if (!svc->ctx)
		return WSA_ELWS;
	svc->clock.ctx = svc->ctx;
	svc->clock.loop = svc->loop;
	wsa__conn_timers_init(svc);
	wsa__alarm_init(&svc->sweep, &svc->clock, sweep);
	wsa__alarm_init(&svc->log_flush, &svc->clock, log_flush);
	wsa__alarm_init(&svc->accept_retry, &svc->clock, accept_again);
	wsa__alarm_init(&svc->drain, &svc->clock, drain_deadline);
	rc = create_vhost(svc);
	return rc ? rc : listen_on(svc, port);
}

int wsa__service_new(struct wsa_server *srv, unsigned index, int port,
		     struct wsa_service **out)
{
	struct wsa_service *svc = calloc(1, sizeof(*svc));
	int rc;

	*out = svc;
	if (!svc)
		return WSA_ENOMEM;
	svc->srv = srv;
	svc->index = index;
	wsa__conn_index_init(svc);
	wsa__fanout_init(svc);
	atomic_init(&svc->running, false);
	pthread_mutex_init(&svc->auth_lock, NULL);
	wsa__workq_init(&svc->workq, wake, svc);
	svc->rand_pos = sizeof(svc->rand_pool);
	svc->listen_fd = -1;
	svc->metrics.on = !srv->cfg.metrics_off;
	rc = create_lws(svc, port);
	if (rc && svc->ctx)
		WSA_LOG(srv, WSA_LOG_ERR, NULL, "cannot listen on %s:%d",
			srv->host, port);
	return rc;
}

/* --------------------------------------------------------------- run */

static void drain_deadline(struct wsa_alarm *a)
{
	struct wsa_service *svc =
	    lws_container_of(a, struct wsa_service, drain);

	WSA_LOG(svc->srv, WSA_LOG_WARNING, NULL,
		"stop: %zu connections still draining", svc->nconns);
	wsa__service_done(svc);
}

/* libwebsockets 4.1.6's libev glue re-arms its one timer only after it
 * fires, or when it is not running: a timeout of lws' set earlier than
 * the one armed (a handshake timeout) would wait for that one. Ticking every
 * TICK_US bounds that lateness; the cost is ten empty wakeups a second. */
#define TICK_US ((lws_usec_t)100 * 1000)

static void tick(lws_sorted_usec_list_t *sul)
{
	struct wsa_service *svc =
	    lws_container_of(sul, struct wsa_service, tick);

	lws_sul_schedule(svc->ctx, 0, &svc->tick, tick, TICK_US);
}

static void stop_close(struct wsa_conn *c, void *arg)
{
	(void)arg;
	wsa__conn_close(c, WSA_CLOSE_GOING_AWAY, "Server stopping");
}

/* Close every connection with 1001 once its queue is written. */
static void stop_begin(struct wsa_service *svc)
{
	/* Calls made before the stop are carried out first: what they
	 * queue is written before the close. Later ones are refused. */
	wsa__workq_drain(&svc->workq, svc);
	svc->stopping = true;
	WSA_LOG(svc->srv, WSA_LOG_INFO, NULL, "stopping; %zu connections",
		svc->nconns);
	wsa__conn_each(svc, stop_close, NULL);
	if (!svc->nconns) {
		wsa__service_done(svc);
		return;
	}
	/* lws' own timeout on closing connections ends them first; this is
	 * the backstop. */
	wsa__alarm_at(&svc->drain,
		      lws_now_usecs() +
			  ((lws_usec_t)svc->srv->cfg.drain_timeout_ms + 2000) *
			      1000);
}

void wsa__service_start(struct wsa_service *svc)
{
	lws_sock_file_fd_type fd;

	svc->thread = pthread_self();
	atomic_store_explicit(&svc->running, true, memory_order_release);
	/* lws watches the listening socket on whatever loop it runs on,
	 * and closes it with the context. */
	fd.filefd = svc->listen_fd;
	svc->listen_fd = -1;
	svc->listen_wsi = lws_adopt_descriptor_vhost(
	    svc->vhost, LWS_ADOPT_RAW_FILE_DESC, fd, NULL, NULL);
	if (!svc->listen_wsi)
		WSA_LOG(svc->srv, WSA_LOG_ERR, NULL,
			"cannot watch the listening socket");
	/* lws' own timers, for its glue of libev (above). */
	if (svc->loop)
		tick(&svc->tick);
	if (!svc->index) {
		wsa__alarm_at(&svc->sweep, lws_now_usecs() + SWEEP_US);
		wsa__alarm_at(&svc->log_flush, lws_now_usecs() + LOG_FLUSH_US);
	}
	/* Work queued before the start. */
	wsa__workq_drain(&svc->workq, svc);
	if (atomic_load(&svc->srv->stop_requested) && !svc->stopping)
		stop_begin(svc);
	/* An event, so lws arms its timer for the alarms set here. */
	lws_cancel_service(svc->ctx);
}

/* No timer of this loop fires again. */
static void service_quiet(struct wsa_service *svc)
{
	wsa__alarm_stop(&svc->drain);
	lws_sul_cancel(&svc->tick);
	wsa__alarm_stop(&svc->sweep);
	wsa__alarm_stop(&svc->log_flush);
	wsa__alarm_stop(&svc->accept_retry);
	wsa__conn_timers_stop(svc);
}

void wsa__service_done(struct wsa_service *svc)
{
	if (svc->done)
		return;
	svc->done = true;
	if (svc->own_loop)
		return; /* wsa__service_run returns */
	service_quiet(svc);
	atomic_store_explicit(&svc->running, false, memory_order_release);
	wsa__server_drained(svc->srv);
}

void wsa__service_run(struct wsa_service *svc)
{
	struct wsa_server *srv = svc->srv;
	int flags;

	wsa__service_start(svc);
	while (!svc->done) {
		if (atomic_load(&srv->stop_requested) && !svc->stopping)
			stop_begin(svc);
		if (svc->done)
			break;
		/* Before anything serves the connections established in this
		 * round (read.c), then the round's writes. */
		wsa__read_take(svc);
		wsa__conn_flush(svc);
		flags = svc->rd_fed ? EVRUN_NOWAIT : EVRUN_ONCE;
		svc->rd_fed = false;
		ev_run(svc->loop, flags);
	}
	wsa__read_take(svc);
	wsa__conn_flush(svc);
	service_quiet(svc);
	atomic_store_explicit(&svc->running, false, memory_order_release);
	wsa__server_drained(srv);
}

/* The rest, once lws has let go of svc. */
static void service_release(struct wsa_service *svc)
{
	/* Waiting lists went with their connections. */
	wsa__map_free(&svc->waits);
	if (svc->own_loop)
		ev_loop_destroy(svc->loop);
	upgrade_forget(svc);
	wsa__auth_free_pending(svc);
	wsa__workq_free(&svc->workq);
	pthread_mutex_destroy(&svc->auth_lock);
	wsa__heap_free(&svc->deadlines);
	wsa__imap_free(&svc->conns_by_id);
	wsa__fanout_free(svc);
	wsa__buf_free(&svc->frame);
	free(svc->flush);
	while (svc->nout_pool)
		free(svc->out_pool[--svc->nout_pool]);
	wsa__read_free(svc);
	OPENSSL_cleanse(svc->rand_pool, sizeof(svc->rand_pool));
	wsa__buf_free(&svc->scratch);
	wsa__metrics_free(&svc->metrics);
	free(svc);
}

bool wsa__service_free(struct wsa_service *svc)
{
	if (!svc)
		return true;
	if (svc->listen_fd >= 0)
		close(svc->listen_fd); /* never watched by lws */
	if (svc->ctx) {
		service_quiet(svc);
		/* Closes what is left; on a libuv loop the closing ends
		 * as that loop runs on. */
		lws_context_destroy(svc->ctx);
		/* Closing connections may have set deadlines again. */
		service_quiet(svc);
	}
	if (svc->ctx)
		return false;
	service_release(svc);
	return true;
}

bool wsa__service_free_again(struct wsa_service *svc)
{
	/* lws finishes with a second call once its handles are closed. */
	if (svc->ctx)
		lws_context_destroy(svc->ctx);
	if (svc->ctx)
		return false;
	service_release(svc);
	return true;
}
