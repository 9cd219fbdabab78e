/* RFC 6455 framing and the opening handshake, without any I/O: the load
 * generator (a client) and fastecho (a server) both use it. */
#ifndef LG_WS_H
#define LG_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

#define WS_FIN	      0x80
#define WS_MAX_HEADER 14
#define WS_KEY_LEN    24 /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

struct ws_frame {
	uint64_t len; /* payload length */
	uint8_t hdr;  /* header length, mask key included */
	uint8_t fin;
	uint8_t opcode;
	uint8_t masked;
	uint8_t mask[4];
};

/* Reads one frame header from p[0..n).  Returns 1 when the header is
 * complete (f filled; the payload may still be incomplete: compare
 * f->hdr + f->len with n), 0 when more bytes are needed, -1 when the frame
 * breaks the RFC (reserved bits, unknown opcode, a control frame that is
 * fragmented or longer than 125 bytes, a 64-bit length with its top bit
 * set). */
int ws_parse(const uint8_t *p, size_t n, struct ws_frame *f);

/* Writes a frame header (at most WS_MAX_HEADER bytes) for a payload of len
 * bytes; fin_op is WS_FIN | opcode, or the opcode alone for a fragment.
 * With mask non-NULL the frame is masked with those 4 bytes (the caller
 * masks the payload).  Returns the header length. */
size_t ws_header(uint8_t *out, unsigned fin_op, uint64_t len,
		 const uint8_t *mask);

/* XORs p[0..n) with mask, the mask's byte `phase` first (phase is the
 * payload offset of p, modulo 4). */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t phase);

/* Base64 of 16 random bytes, NUL-terminated (out holds WS_KEY_LEN + 1). */
void ws_make_key(char *out, uint64_t r0, uint64_t r1);

/* The Sec-WebSocket-Accept for a key, NUL-terminated (out holds
 * WS_ACCEPT_LEN + 1). */
void ws_accept(const char *key, size_t key_len, char *out);

/* Writes the upgrade request into out; returns its length, or 0 if it
 * does not fit.  origin and bearer (a token sent as "Authorization:
 * Bearer") may be NULL. */
size_t ws_request(char *out, size_t cap, const char *path, const char *host,
		  const char *key, const char *origin, const char *bearer);

/* Checks the server's answer to the upgrade in p[0..n): status 101,
 * "Upgrade: websocket", "Connection" naming "upgrade", and the expected
 * Sec-WebSocket-Accept.  Returns the length of the response head (frames
 * may follow it in p), 0 when it is incomplete, -1 when it is wrong (*why
 * says how). */
long ws_check_response(const char *p, size_t n, const char *accept,
		       const char **why);

/* Server side: finds the Sec-WebSocket-Key of a request head in p[0..n).
 * Returns the head's length, 0 when incomplete, -1 when it is no valid
 * upgrade; *key and *key_len point into p. */
long ws_parse_request(const char *p, size_t n, const char **key,
		      size_t *key_len);

/* Grow *buf (capacity *cap) to hold need bytes, doubling; exits with
 * status 2 when memory runs out (both programs are benchmarks). */
void ws_reserve(uint8_t **buf, uint32_t *cap, size_t need);

/* Keep the unparsed bytes p[used..n) at the start of *buf (length *len)
 * for the next read, with room more bytes free; p may be *buf itself. */
void ws_keep(uint8_t **buf, uint32_t *cap, uint32_t *len, const uint8_t *p,
	     size_t n, size_t used, size_t room);

#endif
