/* RFC 6455 framing and the opening handshake. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ws.h"

/* Longer response heads are refused: a server that sends one is broken,
 * and the bound keeps a broken server from growing our buffers. */
#define WS_MAX_HEAD 8192

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int ws_opcode_ok(unsigned op)
{
	return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

int ws_parse(const uint8_t *p, size_t n, struct ws_frame *f)
{
	size_t need = 2, i;
	uint64_t len;

	if (n < 2)
		return 0;
	f->fin = p[0] >> 7;
	f->opcode = p[0] & 0x0f;
	f->masked = p[1] >> 7;
	len = p[1] & 0x7f;
	if ((p[0] & 0x70) || !ws_opcode_ok(f->opcode))
		return -1;
	if (f->opcode >= WS_OP_CLOSE && (!f->fin || len > 125))
		return -1;
	need += (len == 126 ? 2 : len == 127 ? 8 : 0) + (f->masked ? 4 : 0);
	if (n < need)
		return 0;
	if (len >= 126) {
		size_t bytes = len == 126 ? 2 : 8;

		for (len = 0, i = 0; i < bytes; i++)
			len = len << 8 | p[2 + i];
		if (len >> 63)
			return -1;
	}
	if (f->masked)
		memcpy(f->mask, p + need - 4, 4);
	f->len = len;
	f->hdr = (uint8_t)need;
	return 1;
}

size_t ws_header(uint8_t *out, unsigned fin_op, uint64_t len,
		 const uint8_t *mask)
{
	uint8_t m = mask ? 0x80 : 0;
	size_t n = 2;
	int i;

	out[0] = (uint8_t)fin_op;
	if (len < 126) {
		out[1] = m | (uint8_t)len;
	} else if (len <= 0xffff) {
		out[1] = m | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = m | 127;
		for (i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t phase)
{
	uint8_t m[8];
	uint64_t m64, v;
	size_t i = 0;

	for (i = 0; i < 8; i++)
		m[i] = mask[(phase + i) & 3];
	memcpy(&m64, m, 8);
	/* Eight bytes at a time; the compiler turns this into vector XORs. */
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&v, p + i, 8);
		v ^= m64;
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] ^= m[i & 3];
}

void ws_make_key(char *out, uint64_t r0, uint64_t r1)
{
	unsigned char raw[16];

	memcpy(raw, &r0, 8);
	memcpy(raw + 8, &r1, 8);
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
}

void ws_accept(const char *key, size_t key_len, char *out)
{
	unsigned char buf[128], md[SHA_DIGEST_LENGTH];
	size_t glen = sizeof(ws_guid) - 1;

	if (key_len > sizeof(buf) - glen)
		key_len = sizeof(buf) - glen;
	memcpy(buf, key, key_len);
	memcpy(buf + key_len, ws_guid, glen);
	SHA1(buf, key_len + glen, md);
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}

size_t ws_request(char *out, size_t cap, const char *path, const char *host,
		  const char *key, const char *origin, const char *bearer)
{
	int n = snprintf(out, cap,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "%s%s%s%s%s%s\r\n",
			 path, host, key, origin ? "Origin: " : "",
			 origin ? origin : "", origin ? "\r\n" : "",
			 bearer ? "Authorization: Bearer " : "",
			 bearer ? bearer : "", bearer ? "\r\n" : "");

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* One header line of a head: name and value, blanks trimmed. */
struct ws_hline {
	const char *name, *val;
	size_t nlen, vlen;
};

/* Splits the line at *cur (lines end in CRLF; end is the head's final
 * CRLF CRLF + 2).  Returns 1 with the line in *h, 0 at the end, -1 for a
 * line without a colon. */
static int ws_next_line(const char **cur, const char *end, struct ws_hline *h)
{
	const char *line = *cur, *eol, *colon;

	if (line >= end)
		return 0;
	eol = memchr(line, '\r', (size_t)(end - line));
	if (!eol)
		return 0;
	*cur = eol + 2;
	colon = memchr(line, ':', (size_t)(eol - line));
	if (!colon)
		return -1;
	h->name = line;
	h->nlen = (size_t)(colon - line);
	h->val = colon + 1;
	while (h->val < eol && (*h->val == ' ' || *h->val == '\t'))
		h->val++;
	h->vlen = (size_t)(eol - h->val);
	while (h->vlen &&
	       (h->val[h->vlen - 1] == ' ' || h->val[h->vlen - 1] == '\t'))
		h->vlen--;
	return 1;
}

static int ws_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && !strncasecmp(s, lit, n);
}

/* Whether a comma-separated list holds the token (letter case ignored). */
static int ws_has_token(const char *s, size_t n, const char *tok)
{
	const char *end = s + n, *comma;
	size_t len;

	while (s < end) {
		while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
			s++;
		comma = memchr(s, ',', (size_t)(end - s));
		len = (size_t)((comma ? comma : end) - s);
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (ws_is(s, len, tok))
			return 1;
		s = comma ? comma + 1 : end;
	}
	return 0;
}

/* Checks one response header; returns a bit for each required header
 * that is right, or -1 (with *why) for one that is wrong. */
static int ws_check_header(const struct ws_hline *h, const char *accept,
			   const char **why)
{
	if (ws_is(h->name, h->nlen, "upgrade"))
		return ws_is(h->val, h->vlen, "websocket") ? 1 : 0;
	if (ws_is(h->name, h->nlen, "connection"))
		return ws_has_token(h->val, h->vlen, "upgrade") ? 2 : 0;
	if (ws_is(h->name, h->nlen, "sec-websocket-accept")) {
		if (h->vlen == WS_ACCEPT_LEN &&
		    !memcmp(h->val, accept, WS_ACCEPT_LEN))
			return 4;
		*why = "wrong Sec-WebSocket-Accept";
		return -1;
	}
	/* We offered neither; RFC 6455 4.1 says fail when one comes back. */
	if (ws_is(h->name, h->nlen, "sec-websocket-extensions") ||
	    ws_is(h->name, h->nlen, "sec-websocket-protocol")) {
		*why = "extension or subprotocol we did not ask for";
		return -1;
	}
	return 0;
}

/* Finds the end of a head (CRLF CRLF); 0 when incomplete, -1 too long. */
static long ws_head_end(const char *p, size_t n)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);

	if (end)
		return end - p + 4;
	return n > WS_MAX_HEAD ? -1 : 0;
}

long ws_check_response(const char *p, size_t n, const char *accept,
		       const char **why)
{
	long len = ws_head_end(p, n);
	const char *cur, *end = p + len;
	struct ws_hline h;
	int seen = 0, r;

	*why = "response head too long";
	if (len <= 0)
		return len;
	*why = "status is not 101";
	if (len < 14 || memcmp(p, "HTTP/1.1 101", 12) ||
	    (p[12] != ' ' && p[12] != '\r'))
		return -1;
	cur = (const char *)memchr(p, '\n', (size_t)len) + 1;
	while ((r = ws_next_line(&cur, end - 2, &h)) > 0) {
		int bit = ws_check_header(&h, accept, why);

		if (bit < 0)
			return -1;
		seen |= bit;
	}
	*why = r < 0 ? "malformed header line"
		     : "missing Upgrade, Connection or Sec-WebSocket-Accept";
	return r < 0 || seen != 7 ? -1 : len;
}

long ws_parse_request(const char *p, size_t n, const char **key,
		      size_t *key_len)
{
	long len = ws_head_end(p, n);
	const char *cur, *end = p + len;
	struct ws_hline h;
	int r;

	if (len <= 0)
		return len;
	if (len < 16 || memcmp(p, "GET ", 4))
		return -1;
	*key = NULL;
	cur = (const char *)memchr(p, '\n', (size_t)len) + 1;
	while ((r = ws_next_line(&cur, end - 2, &h)) > 0) {
		if (ws_is(h.name, h.nlen, "sec-websocket-key")) {
			*key = h.val;
			*key_len = h.vlen;
		}
	}
	return r < 0 || !*key ? -1 : len;
}

void ws_reserve(uint8_t **buf, uint32_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;
	uint8_t *p;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p) {
		fputs("out of memory\n", stderr);
		exit(2);
	}
	*buf = p;
	*cap = (uint32_t)n;
}

void ws_keep(uint8_t **buf, uint32_t *cap, uint32_t *len, const uint8_t *p,
	     size_t n, size_t used, size_t room)
{
	size_t left = n - used;

	if (p == *buf) {
		if (left && used)
			memmove(*buf, *buf + used, left);
	} else if (left) {
		ws_reserve(buf, cap, left + room);
		memcpy(*buf, p + used, left);
	}
	*len = (uint32_t)left;
}
