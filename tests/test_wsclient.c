/* Self-test of the test WebSocket client.  The frame code runs over a
 * socketpair whose other end plays a server writing hand-made frames; the
 * handshake runs against a fake HTTP server on 127.0.0.1. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "check.h"
#include "wsclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the fake server's side of a socketpair ---- */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Writes all of p; MSG_NOSIGNAL because the fake server may write to a
 * client that already gave up, and a SIGPIPE must not end the test. */
static int put(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Encodes an unmasked server frame; out needs len + 10 bytes. */
static size_t frame(unsigned char *out, int b0, const void *data, size_t len)
{
	size_t h = 2;

	out[0] = (unsigned char)b0;
	if (len < 126) {
		out[1] = (unsigned char)len;
	} else if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		h = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] =
			    (unsigned char)((uint64_t)len >> (56 - 8 * i));
		h = 10;
	}
	if (len)
		memcpy(out + h, data, len);
	return h + len;
}

static void put_frame(int fd, int b0, const void *data, size_t len)
{
	unsigned char *f = malloc(len + 10);

	put(fd, f, frame(f, b0, data, len));
	free(f);
}

/* Reads exactly n bytes within 5 s, optionally in small slow pieces. */
static int get(int fd, void *p, size_t n, bool slow)
{
	unsigned char *b = p;

	while (n > 0) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};

		if (poll(&pf, 1, 5000) <= 0)
			return -1;
		ssize_t k = read(fd, b, slow && n > 4096 ? 4096 : n);
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
		if (slow)
			sleep_ms(1);
	}
	return 0;
}

/* A client frame as the server sees it. */
struct cframe {
	int opcode;
	bool fin, masked;
	int lenbits; /* 7, 16 or 64 */
	unsigned char *data;
	size_t len;
};

static int get_cframe(int fd, struct cframe *f, bool slow)
{
	unsigned char h[8], mask[4];

	memset(f, 0, sizeof *f);
	if (get(fd, h, 2, slow) < 0)
		return -1;
	f->fin = h[0] & 0x80;
	f->opcode = h[0] & 0x0f;
	f->masked = h[1] & 0x80;
	f->len = h[1] & 0x7f;
	f->lenbits = f->len == 126 ? 16 : f->len == 127 ? 64 : 7;
	if (f->lenbits > 7) {
		int n = f->lenbits / 8;
		if (get(fd, h, (size_t)n, slow) < 0)
			return -1;
		f->len = 0;
		for (int i = 0; i < n; i++)
			f->len = f->len << 8 | h[i];
	}
	if (f->masked && get(fd, mask, 4, slow) < 0)
		return -1;
	f->data = malloc(f->len + 1);
	if (get(fd, f->data, f->len, slow) < 0)
		return -1;
	for (size_t i = 0; f->masked && i < f->len; i++)
		f->data[i] ^= mask[i & 3];
	f->data[f->len] = 0;
	return 0;
}

static wsc *pair(int *srv)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(2);
	}
	*srv = sv[1];
	return wsc_adopt_fd(sv[0]);
}

/* ---- frame tests ---- */

static void test_batched_small_frames(void)
{
	int s;
	wsc *c = pair(&s);
	unsigned char buf[64];
	size_t n = 0;
	wsc_frame f;

	n += frame(buf + n, 0x81, "one", 3);
	n += frame(buf + n, 0x81, "two", 3);
	n += frame(buf + n, 0x82, "", 0);
	put(s, buf, n); /* all in one read */
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_STR((char *)f.data, "one");
	wsc_frame_free(&f);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_STR((char *)f.data, "two");
	wsc_frame_free(&f);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_INT(f.opcode, WSC_BINARY);
	CHECK_INT(f.len, 0);
	wsc_frame_free(&f);
	wsc_close(c);
	close(s);
}

static void test_fragments_and_ping(void)
{
	int s;
	wsc *c = pair(&s);
	wsc_frame f;
	struct cframe pong;

	put_frame(s, 0x01, "Hel", 3);
	put_frame(s, 0x89, "p1", 2);
	put_frame(s, 0x00, "lo ", 3);
	put_frame(s, 0x80, "w\xc3\xb6rld", 6);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_INT(f.opcode, WSC_TEXT);
	CHECK(f.fin);
	CHECK_STR((char *)f.data, "Hello w\xc3\xb6rld");
	wsc_frame_free(&f);
	CHECK_INT(wsc_pings_received(c), 1);
	CHECK_INT(get_cframe(s, &pong, false), 0);
	CHECK_INT(pong.opcode, WSC_PONG);
	CHECK(pong.masked && pong.fin);
	CHECK_STR((char *)pong.data, "p1");
	free(pong.data);

	/* A character split over two fragments. */
	put_frame(s, 0x01, "\xe2", 1);
	put_frame(s, 0x80, "\x82\xac", 2);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_STR((char *)f.data, "\xe2\x82\xac");
	wsc_frame_free(&f);

	/* A pong is handed to the caller. */
	put_frame(s, 0x8a, "x", 1);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_INT(f.opcode, WSC_PONG);
	wsc_frame_free(&f);
	wsc_close(c);
	close(s);
}

struct writer {
	int fd;
	unsigned char *bytes;
	size_t len, chunk;
};

/* Writes in chunks with pauses, so the client sees many partial reads. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (size_t o = 0; o < w->len; o += w->chunk) {
		size_t n = w->len - o < w->chunk ? w->len - o : w->chunk;

		if (put(w->fd, w->bytes + o, n) < 0)
			break;
		sleep_ms(1);
	}
	return NULL;
}

static void test_length_forms(void)
{
	static const size_t sizes[] = {125, 126, 300, 65535, 65536, 70000};
	int s;
	wsc *c = pair(&s);

	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		size_t n = sizes[i];
		unsigned char *d = malloc(n), *fr = malloc(n + 10);
		struct writer w = {s, fr, 0, 7000};
		pthread_t t;
		wsc_frame f;

		for (size_t j = 0; j < n; j++)
			d[j] = (unsigned char)(j * 7);
		w.len = frame(fr, 0x82, d, n);
		pthread_create(&t, NULL, writer_main, &w);
		CHECK_INT(wsc_recv(c, &f, 5000), 1);
		pthread_join(t, NULL);
		CHECK_INT(f.len, n);
		CHECK(f.data && !memcmp(f.data, d, n));
		wsc_frame_free(&f);
		free(d);
		free(fr);
	}
	wsc_close(c);
	close(s);
}

/* A timeout in the middle of a frame keeps what has arrived. */
static void test_partial_and_timeout(void)
{
	int s;
	wsc *c = pair(&s);
	unsigned char fr[300];
	char d[200];
	wsc_frame f;
	struct timespec t0;

	memset(d, 'a', sizeof d);
	size_t n = frame(fr, 0x81, d, sizeof d);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(wsc_recv(c, &f, 100), 0);
	long ms = elapsed_ms(&t0);
	CHECK(ms >= 90 && ms < 1000);
	put(s, fr, 1);
	CHECK_INT(wsc_recv(c, &f, 20), 0);
	put(s, fr + 1, 2);
	CHECK_INT(wsc_recv(c, &f, 20), 0);
	put(s, fr + 3, 100);
	CHECK_INT(wsc_recv(c, &f, 20), 0);
	put(s, fr + 103, n - 103);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_INT(f.len, sizeof d);
	wsc_frame_free(&f);
	wsc_close(c);
	close(s);
}

struct reader {
	int fd;
	int count;
	struct cframe f[4];
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	for (int i = 0; i < r->count; i++)
		if (get_cframe(r->fd, &r->f[i], true) < 0)
			break;
	return NULL;
}

/* Client frames are masked, use the minimal length form, and a large one
 * goes through although the server reads slowly. */
static void test_send_lengths(void)
{
	static const size_t sizes[] = {10, 200, 70000, 3 << 20};
	static const int bits[] = {7, 16, 64, 64};
	int s;
	wsc *c = pair(&s);
	struct reader r = {.fd = s, .count = 4};
	pthread_t t;
	char *d = malloc(3 << 20);

	for (size_t i = 0; i < (size_t)3 << 20; i++)
		d[i] = (char)('a' + i % 26);
	pthread_create(&t, NULL, reader_main, &r);
	wsc_set_send_timeout(c, 20000);
	for (int i = 0; i < 4; i++)
		CHECK_INT(wsc_send_text(c, d, sizes[i]), 0);
	pthread_join(t, NULL);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(r.f[i].opcode, WSC_TEXT);
		CHECK(r.f[i].fin && r.f[i].masked);
		CHECK_INT(r.f[i].lenbits, bits[i]);
		CHECK_INT(r.f[i].len, sizes[i]);
		CHECK(r.f[i].data && !memcmp(r.f[i].data, d, sizes[i]));
		free(r.f[i].data);
	}
	free(d);
	wsc_close(c);
	close(s);
}

static void test_send_frame_kinds(void)
{
	int s;
	wsc *c = pair(&s);
	struct cframe f;

	CHECK_INT(wsc_send_frame(c, WSC_BINARY, false, "ab", 2), 0);
	CHECK_INT(get_cframe(s, &f, false), 0);
	CHECK(!f.fin && f.opcode == WSC_BINARY && f.len == 2);
	free(f.data);
	CHECK_INT(wsc_send_frame(c, WSC_CONT, true, "c", 1), 0);
	CHECK_INT(get_cframe(s, &f, false), 0);
	CHECK(f.fin && f.opcode == WSC_CONT && f.len == 1);
	free(f.data);
	CHECK_INT(wsc_send_raw(c, "\x81\x01x", 3), 0);
	CHECK_INT(get_cframe(s, &f, false), 0);
	CHECK(!f.masked && f.len == 1);
	free(f.data);
	CHECK_INT(wsc_send_close(c, 4000, "done"), 0);
	CHECK_INT(get_cframe(s, &f, false), 0);
	CHECK(f.opcode == WSC_CLOSE && f.len == 6 &&
	      !memcmp(f.data,
		      "\x0f\xa0"
		      "done",
		      6));
	free(f.data);
	/* Having sent a close, the client does not answer the server's. */
	put_frame(s, 0x88, "\x0f\xa0", 2);
	CHECK_INT(wsc_wait_close(c, 1000), 4000);
	close(s);
	/* Sending to a closed peer fails instead of raising SIGPIPE. */
	CHECK_INT(wsc_send_text(c, "late", 4), -1);
	wsc_close(c);
}

static void test_close_with_code(void)
{
	int s;
	wsc *c = pair(&s);
	wsc_frame f;
	struct cframe echo;

	put_frame(s, 0x88,
		  "\x03\xe9"
		  "bye",
		  5);
	CHECK_INT(wsc_recv(c, &f, 1000), 1);
	CHECK_INT(f.opcode, WSC_CLOSE);
	CHECK_INT(wsc_close_code(&f), 1001);
	CHECK_STR((char *)f.data + 2, "bye");
	wsc_frame_free(&f);
	CHECK_INT(get_cframe(s, &echo, false), 0);
	CHECK_INT(echo.opcode, WSC_CLOSE);
	CHECK(echo.len == 2 && !memcmp(echo.data, "\x03\xe9", 2));
	free(echo.data);
	CHECK_INT(wsc_recv(c, &f, 100), -1);
	CHECK_INT(wsc_wait_close(c, 100), 1001);
	close(s);
	CHECK_INT(wsc_wait_eof(c, 1000), 1);
	CHECK(wsc_eof(c));
	wsc_close(c);
}

static void test_wait_close(void)
{
	int s;
	wsc *c = pair(&s);
	struct cframe echo;

	put_frame(s, 0x81, "skipped", 7);
	put_frame(s, 0x88, "", 0);
	CHECK_INT(wsc_wait_close(c, 1000), 1005);
	CHECK_INT(get_cframe(s, &echo, false), 0);
	CHECK(echo.opcode == WSC_CLOSE && echo.len == 0);
	free(echo.data);
	wsc_close(c);
	close(s);

	/* EOF without a close frame. */
	c = pair(&s);
	put_frame(s, 0x81, "x", 1);
	close(s);
	CHECK_INT(wsc_wait_close(c, 1000), -1);
	CHECK(wsc_eof(c));
	wsc_close(c);

	/* Nothing at all: a timeout. */
	c = pair(&s);
	CHECK_INT(wsc_wait_close(c, 50), 0);
	CHECK_INT(wsc_wait_eof(c, 50), 0);
	wsc_close(c);
	close(s);
}

static void test_recv_json(void)
{
	int s;
	wsc *c = pair(&s);

	put_frame(s, 0x81, "{\"a\":1}", 7);
	put_frame(s, 0x82, "{}", 2);
	json_t *j = wsc_recv_json(c, 1000);
	CHECK(j && json_integer_value(json_object_get(j, "a")) == 1);
	json_decref(j);
	CHECK(wsc_recv_json(c, 1000) == NULL); /* binary */
	CHECK(wsc_recv_json(c, 50) == NULL);   /* timeout */
	wsc_close(c);
	close(s);
}

/* Bad server input fails the connection with the right close code. */
static void expect_failure(const void *bytes, size_t n, int code,
			   const char *what)
{
	int s;
	wsc *c = pair(&s);
	wsc_frame f;
	struct cframe cl;

	put(s, bytes, n);
	CHECK_INT(wsc_recv(c, &f, 1000), -1);
	CHECK(strstr(wsc_error(c), what) != NULL);
	CHECK_INT(get_cframe(s, &cl, false), 0);
	CHECK_INT(cl.opcode, WSC_CLOSE);
	CHECK_INT(cl.len >= 2 ? cl.data[0] << 8 | cl.data[1] : 0, code);
	free(cl.data);
	CHECK_INT(wsc_recv(c, &f, 10), -1);
	wsc_close(c);
	close(s);
}

static void test_bad_frames(void)
{
	expect_failure("\x81\x81\0\0\0\0x", 7, 1002, "masked");
	expect_failure("\xc1\x01x", 3, 1002, "RSV");
	expect_failure("\x83\x00", 2, 1002, "opcode");
	expect_failure("\x09\x00", 2, 1002, "control");
	expect_failure("\x89\x7e\x00\x80", 4, 1002, "control");
	expect_failure("\x80\x01x", 3, 1002, "continuation");
	expect_failure("\x01\x01x\x81\x01y", 6, 1002, "inside");
	expect_failure("\x81\x7e\x00\x05hello", 9, 1002, "minimal");
	expect_failure("\x82\x7f\x80\0\0\0\0\0\0\x01", 10, 1002, "top bit");
	expect_failure("\x82\x7f\0\0\0\0\x01\x10\0\0", 10, 1009, "larger");
	expect_failure("\x81\x02\xc0\xaf", 4, 1007, "UTF-8");
	expect_failure("\x81\x03\xed\xa0\x80", 5, 1007, "UTF-8");
	expect_failure("\x01\x01\xe2\x80\x02\x28\xa1", 7, 1007, "UTF-8");
	expect_failure("\x88\x01\x03", 3, 1002, "close");
	expect_failure("\x88\x02\x03\xed", 4, 1002, "close");
	expect_failure("\x88\x03\x03\xe8\xff", 5, 1007, "UTF-8");
}

/* A message over the cap is refused, though each fragment is under it. */
static void test_message_cap(void)
{
	int s;
	wsc *c = pair(&s);
	size_t half = WSC_MAX_MESSAGE / 2 + 1;
	unsigned char *zeros = calloc(1, half);
	unsigned char *both = malloc(2 * (half + 10));
	size_t n = frame(both, 0x02, zeros, half);
	n += frame(both + n, 0x80, zeros, half);
	struct writer w = {s, both, n, 1 << 20};
	pthread_t t;
	wsc_frame f;

	pthread_create(&t, NULL, writer_main, &w);
	CHECK_INT(wsc_recv(c, &f, 10000), -1);
	CHECK(strstr(wsc_error(c), "message larger") != NULL);
	pthread_join(t, NULL);
	free(zeros);
	free(both);
	wsc_close(c);
	close(s);
}

/* ---- handshake tests against a fake HTTP server ---- */

enum scenario { GOOD, BAD_ACCEPT, NOT_FOUND, SILENT, RAW_403, PROTOCOL };

struct fake {
	int lfd, port;
	enum scenario sc;
	char req[4096];
};

static void accept_for(const char *key, char out[29])
{
	char in[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml;

	snprintf(in, sizeof in, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
	EVP_Digest(in, strlen(in), md, &ml, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, 20);
}

static void read_request(int fd, char *req, size_t size)
{
	size_t n = 0;

	while (n + 1 < size && !strstr(req, "\r\n\r\n")) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 5000) <= 0)
			break;
		ssize_t k = read(fd, req + n, size - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		req[n] = 0;
	}
}

static void reply(struct fake *fk, int fd)
{
	char key[64] = "", acc[29], resp[512];
	const char *k = strstr(fk->req, "Sec-WebSocket-Key: ");

	if (k)
		sscanf(k + 19, "%63[^\r]", key);
	accept_for(key, acc);
	if (fk->sc == BAD_ACCEPT)
		acc[3] ^= 1;
	int n = snprintf(
	    resp, sizeof resp,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
	    "\r\nSec-WebSocket-Accept: %s\r\nX-Test:  yes \r\n%s"
	    "\r\n\x81\x05hello\x81",
	    acc, fk->sc == PROTOCOL ? "Sec-WebSocket-Protocol: z\r\n" : "");
	/* In pieces, the last one holding the start of two frames. */
	for (int i = 0; i < n; i += 7) {
		if (put(fd, resp + i, (size_t)(n - i < 7 ? n - i : 7)) < 0)
			return;
		sleep_ms(1);
	}
	put(fd, "\x02hi", 3);
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	int fd = accept(fk->lfd, NULL, NULL);
	char junk[256];

	if (fd < 0)
		return NULL;
	read_request(fd, fk->req, sizeof fk->req);
	if (fk->sc == GOOD || fk->sc == BAD_ACCEPT || fk->sc == PROTOCOL)
		reply(fk, fd);
	else if (fk->sc == NOT_FOUND)
		put(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		    45);
	else if (fk->sc == RAW_403)
		put(fd, "HTTP/1.0 403 Forbidden\r\n", 24);
	if (fk->sc == RAW_403) { /* a status line, then EOF */
		close(fd);
		return NULL;
	}
	/* Hold the connection until the client is done. */
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	while (poll(&pf, 1, 3000) > 0 && read(fd, junk, sizeof junk) > 0)
		;
	close(fd);
	return NULL;
}

static void fake_start(struct fake *fk, enum scenario sc, pthread_t *t)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof a;

	memset(fk, 0, sizeof *fk);
	fk->sc = sc;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (fk->lfd < 0 || bind(fk->lfd, (struct sockaddr *)&a, al) < 0 ||
	    listen(fk->lfd, 4) < 0 ||
	    getsockname(fk->lfd, (struct sockaddr *)&a, &al) < 0) {
		perror("fake server");
		exit(2);
	}
	fk->port = ntohs(a.sin_port);
	pthread_create(t, NULL, fake_main, fk);
}

static void fake_stop(struct fake *fk, pthread_t t)
{
	pthread_join(t, NULL);
	close(fk->lfd);
}

static void test_accept_vector(void)
{
	char acc[29];

	/* The example of RFC 6455 1.3. */
	accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc);
	CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_handshake_good(void)
{
	struct fake fk;
	pthread_t t;
	int st = -1;
	wsc_frame f;
	char v[32], key[64] = "";
	unsigned char raw[64];

	fake_start(&fk, GOOD, &t);
	wsc *c = wsc_connect("127.0.0.1", fk.port, "/ws?x=1",
			     "Origin: http://x\r\n", 3000, &st);
	CHECK(c != NULL);
	CHECK_INT(st, 101);
	if (c) {
		CHECK_INT(wsc_header(c, "x-test", v, sizeof v), 1);
		CHECK_STR(v, "yes");
		CHECK_INT(wsc_header(c, "X-Missing", v, sizeof v), 0);
		CHECK_INT(wsc_recv(c, &f, 1000), 1);
		CHECK_STR((char *)f.data, "hello");
		wsc_frame_free(&f);
		CHECK_INT(wsc_recv(c, &f, 1000), 1);
		CHECK_STR((char *)f.data, "hi");
		wsc_frame_free(&f);
		wsc_close(c);
	}
	fake_stop(&fk, t);
	CHECK(!strncmp(fk.req, "GET /ws?x=1 HTTP/1.1\r\n", 22));
	CHECK(strstr(fk.req, "\r\nOrigin: http://x\r\n\r\n") != NULL);
	CHECK(strstr(fk.req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
	CHECK(strstr(fk.req, "\r\nHost: 127.0.0.1:") != NULL);
	const char *k = strstr(fk.req, "Sec-WebSocket-Key: ");
	if (k)
		sscanf(k + 19, "%63[^\r]", key);
	CHECK_INT(strlen(key), 24);
	CHECK_INT(EVP_DecodeBlock(raw, (unsigned char *)key, 24), 18);
	CHECK(!strcmp(key + 22, "==")); /* so 16 bytes */
}

static void test_handshake_refused(void)
{
	static const enum scenario scs[] = {BAD_ACCEPT, NOT_FOUND, PROTOCOL};
	static const int want[] = {101, 404, 101};

	for (int i = 0; i < 3; i++) {
		struct fake fk;
		pthread_t t;
		int st = -1;

		fake_start(&fk, scs[i], &t);
		wsc *c =
		    wsc_connect("127.0.0.1", fk.port, "/", NULL, 3000, &st);
		CHECK(c == NULL);
		CHECK_INT(st, want[i]);
		wsc_close(c);
		fake_stop(&fk, t);
	}
}

static void test_handshake_timeout(void)
{
	struct fake fk;
	pthread_t t;
	int st = -1;
	struct timespec t0;

	fake_start(&fk, SILENT, &t);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wsc *c = wsc_connect("127.0.0.1", fk.port, "/", NULL, 200, &st);
	long ms = elapsed_ms(&t0);
	CHECK(c == NULL);
	CHECK_INT(st, 0);
	CHECK(ms >= 190 && ms < 2000);
	fake_stop(&fk, t);
}

static void test_http_status(void)
{
	struct fake fk;
	pthread_t t;

	fake_start(&fk, RAW_403, &t);
	CHECK_INT(wsc_http_status("127.0.0.1", fk.port,
				  "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3000),
		  403);
	fake_stop(&fk, t);
	CHECK(!strncmp(fk.req, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27));
}

int main(void)
{
	test_batched_small_frames();
	test_fragments_and_ping();
	test_length_forms();
	test_partial_and_timeout();
	test_send_lengths();
	test_send_frame_kinds();
	test_close_with_code();
	test_wait_close();
	test_recv_json();
	test_bad_frames();
	test_message_cap();
	test_accept_vector();
	test_handshake_good();
	test_handshake_refused();
	test_handshake_timeout();
	test_http_status();
	return check_status("test_wsclient");
}
