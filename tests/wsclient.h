/* A small blocking WebSocket client (RFC 6455) for the integration tests.
 *
 * It is written on plain POSIX sockets so that the tests do not exercise
 * the server through the same library they are testing.  Every operation
 * is bounded by a deadline: nothing here can hang a test run.  Timeouts
 * are in milliseconds; a negative timeout counts as 0 (poll once).
 *
 * Return conventions: senders return 0 on success and -1 on error or
 * timeout; receivers return 1 on success, 0 on timeout and -1 on EOF or
 * error (wsc_error() then says why).  A timeout never loses data: a
 * partly received frame or message is kept for the next call. */
#ifndef WSA_TESTS_WSCLIENT_H
#define WSA_TESTS_WSCLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Larger messages from the server fail the connection (close 1009), so a
 * broken server cannot make a test exhaust memory. */
#define WSC_MAX_MESSAGE (16u * 1024u * 1024u)

enum {
	WSC_CONT = 0x0,
	WSC_TEXT = 0x1,
	WSC_BINARY = 0x2,
	WSC_CLOSE = 0x8,
	WSC_PING = 0x9,
	WSC_PONG = 0xA,
};

typedef struct wsc wsc;

/* One received message; data is malloc'd and NUL-terminated (the NUL is
 * not counted in len).  Release with wsc_frame_free(). */
typedef struct wsc_frame {
	int opcode;
	bool fin;
	unsigned char *data;
	size_t len;
} wsc_frame;

/* Opens TCP to host:port and performs the upgrade for path (NULL: "/").
 * extra_headers are complete header lines ("Origin: http://x\r\n"), or
 * NULL.  Returns NULL on failure; *http_status (may be NULL) gets the
 * response's status code: 101 on success, 404/403/... when refused, 0 if
 * there was no response.  A 101 with a wrong Sec-WebSocket-Accept also
 * returns NULL (the reason goes to stderr). */
wsc *wsc_connect(const char *host, int port, const char *path,
		 const char *extra_headers, int timeout_ms, int *http_status);

/* Bind later connections to this IPv4 source address (a 127.0.0.x), or
 * NULL for the kernel's choice. Process-wide; not thread-safe. */
void wsc_set_source(const char *addr);

/* Opens TCP to host:port and nothing more: bytes go with wsc_send_raw.
 * NULL on failure. */
wsc *wsc_connect_raw(const char *host, int port, int timeout_ms);

/* Sends request bytes as they are and returns the status code of the
 * response, 0 on timeout or if none came.  For refused-upgrade tests. */
int wsc_http_status(const char *host, int port, const char *request,
		    int timeout_ms);

/* As wsc_http_status, and the whole response read until the server
 * closes (ask with "Connection: close"), NUL-terminated, in *response
 * (malloc'd; NULL when none). */
int wsc_http_fetch(const char *host, int port, const char *request,
		   int timeout_ms, char **response);

/* Wraps a connected stream socket without a handshake (it takes over the
 * fd), so the frame code can be tested over a socketpair. */
wsc *wsc_adopt_fd(int fd);

/* Deadline for each send call; 5000 ms unless set. */
void wsc_set_send_timeout(wsc *c, int timeout_ms);

/* One masked FIN text frame. */
int wsc_send_text(wsc *c, const char *s, size_t len);
/* Any frame, masked with a fresh mask: fragments, continuations, binary,
 * ping, close.  Only the low 4 bits of opcode are used. */
int wsc_send_frame(wsc *c, int opcode, bool fin, const void *data, size_t len);
/* A close frame; code 0 sends an empty payload (no code). */
int wsc_send_close(wsc *c, int code, const char *reason);
/* Bytes as they are, for hostile-input tests. */
int wsc_send_raw(wsc *c, const void *bytes, size_t len);

/* Reads one complete message, reassembling fragments.  Pings are answered
 * with pongs and not returned (see wsc_pings_received); pongs are returned
 * as WSC_PONG; a close is returned as WSC_CLOSE and answered with a close
 * echoing its code unless we sent one already.  After a close, -1. */
int wsc_recv(wsc *c, wsc_frame *out, int timeout_ms);
/* The next message parsed with json_loadb; NULL on timeout, error, a
 * non-text message or bad JSON. */
json_t *wsc_recv_json(wsc *c, int timeout_ms);
/* Code of a received close frame; 1005 if it carried none. */
int wsc_close_code(const wsc_frame *f);

/* Waits for the server's close, skipping messages before it.  Returns its
 * code (1005 if none), -1 if the connection ended without a valid close,
 * or 0 on timeout.  The close is answered by wsc_recv. */
int wsc_wait_close(wsc *c, int timeout_ms);
/* Waits for the server to end the TCP stream, discarding any data.
 * Returns 1 at EOF (or reset), 0 on timeout, -1 on another error. */
int wsc_wait_eof(wsc *c, int timeout_ms);
/* True once the TCP stream has hit EOF. */
bool wsc_eof(const wsc *c);

/* Number of pings received (and answered) so far. */
unsigned wsc_pings_received(const wsc *c);
/* Copies the value of the first response header called name into buf
 * (truncated to fit).  Returns 1 if present, 0 if not. */
int wsc_header(const wsc *c, const char *name, char *buf, size_t size);
/* Why the last operation failed ("" if nothing failed). */
const char *wsc_error(const wsc *c);

void wsc_frame_free(wsc_frame *f);
/* Closes the socket (without a close frame) and frees; NULL is fine. */
void wsc_close(wsc *c);
int wsc_fd(const wsc *c);

#endif
