/* The nodes' wire format, shard hash and URLs. See redis_wire.h. */
#include "fanout/redis_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/parse.h"
#include "fanout/history.h"
#include "fanout/message.h"
#include "util/fnv.h"

/* ------------------------------------------------------------- shards */

/* Lamping and Veach's jump consistent hash: the bucket of key among n. */
static unsigned jump_hash(uint64_t key, unsigned n)
{
	int64_t b = -1, j = 0;

	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) /
						 (double)((key >> 33) + 1)));
	}
	return (unsigned)b;
}

unsigned wsa__redis_shard(const char *name, size_t len, unsigned n)
{
	return n > 1 ? jump_hash(wsa__fnv1a64(name, len), n) : 0;
}

/* ------------------------------------------------------------ messages */

/* A fan-out message between nodes: "wsa1", the sending node (32 hex),
 * the kind, the close code, the revocation time, the presence version it
 * announces, the connection left out, then the name, the reason (or none)
 * and the JSON text, each with its length. Numbers are big-endian. */
#define WIRE_HEAD (4 + WSA_NODE_ID_LEN + 1 + 2 + 8 + 8 + 22)
#define NO_REASON 0xffffffffu

static void put_be(char *p, uint64_t v, int n)
{
	while (n--) {
		p[n] = (char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t get_be(const char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* The JSON text of m's frame (server frames are unmasked). */
static const char *fan_text(const struct wsa_fan *m, size_t *len)
{
	size_t h = 2, n = m->data[1] & 0x7f;

	if (!m->flen) {
		*len = 0;
		return "";
	}
	if (n == 126)
		h = 4;
	else if (n == 127)
		h = 10;
	*len = m->flen - h;
	return (const char *)m->data + h;
}

size_t wsa__redis_wire_len(const struct wsa_fan *m)
{
	size_t tlen;

	fan_text(m, &tlen);
	return WIRE_HEAD + 4 + strlen(m->name) + 4 +
	       (m->reason ? strlen(m->reason) : 0) + 4 + tlen;
}

/* Write a field's length and bytes at *p, which moves past them. */
static void put_field(char **p, const char *s, size_t n, uint32_t len)
{
	put_be(*p, len, 4);
	memcpy(*p + 4, s, n);
	*p += 4 + n;
}

void wsa__redis_wire_encode(const struct wsa_fan *m,
			    const char node[WSA_NODE_ID_LEN], char *p)
{
	size_t tlen, rlen = m->reason ? strlen(m->reason) : 0;
	const char *text = fan_text(m, &tlen);

	memcpy(p, "wsa1", 4);
	memcpy(p + 4, node, WSA_NODE_ID_LEN);
	p += 4 + WSA_NODE_ID_LEN;
	p[0] = (char)m->kind;
	put_be(p + 1, (uint16_t)m->code, 2);
	put_be(p + 3, (uint64_t)m->before, 8);
	put_be(p + 11, m->pv, 8);
	memset(p + 19, 0, 22);
	memcpy(p + 19, m->except, strnlen(m->except, 22));
	p += 41;
	put_field(&p, m->name, strlen(m->name), (uint32_t)strlen(m->name));
	put_field(&p, m->reason ? m->reason : "", rlen,
		  m->reason ? (uint32_t)rlen : NO_REASON);
	put_field(&p, text, tlen, (uint32_t)tlen);
}

/* ------------------------------------------------------- kept ones */

/* A kept publication between nodes: "wsk1", the sending node (32 hex),
 * the member whose copy is its reply and the connection left out (22
 * each, NUL-padded), then the topic, the reply's "id" (or none) and the
 * JSON text, each with its length. */
#define KEPT_HEAD (4 + WSA_NODE_ID_LEN + 22 + 22)

size_t wsa__redis_kept_len(const struct wsa_kept_wire *k)
{
	return KEPT_HEAD + 4 + strlen(k->topic) + 4 +
	       (k->id_text ? strlen(k->id_text) : 0) + 4 + k->len;
}

void wsa__redis_kept_encode(const struct wsa_kept_wire *k,
			    const char node[WSA_NODE_ID_LEN], char *p)
{
	size_t ilen = k->id_text ? strlen(k->id_text) : 0;

	memcpy(p, "wsk1", 4);
	memcpy(p + 4, node, WSA_NODE_ID_LEN);
	p += 4 + WSA_NODE_ID_LEN;
	memset(p, 0, 44);
	if (k->reply)
		memcpy(p, k->reply, strnlen(k->reply, 22));
	if (k->except)
		memcpy(p + 22, k->except, strnlen(k->except, 22));
	p += 44;
	put_field(&p, k->topic, strlen(k->topic), (uint32_t)strlen(k->topic));
	put_field(&p, k->id_text ? k->id_text : "", ilen,
		  k->id_text ? (uint32_t)ilen : NO_REASON);
	put_field(&p, k->text, k->len, (uint32_t)k->len);
}

bool wsa__redis_kept_split(const char *p, size_t len,
			   unsigned long long *offset, char epoch[17],
			   const char **rest, size_t *rest_len)
{
	size_t i = 0, e;

	*offset = 0;
	for (; i < len && i < 20 && p[i] >= '0' && p[i] <= '9'; i++)
		*offset = *offset * 10 + (unsigned)(p[i] - '0');
	if (!i || i >= len || p[i] != ':')
		return false;
	for (e = ++i;
	     i < len && i - e < 16 &&
	     ((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z'));
	     i++)
		;
	if (i == e || i >= len || p[i] != ':')
		return false;
	memcpy(epoch, p + e, i - e);
	epoch[i - e] = '\0';
	*rest = p + i + 1;
	*rest_len = len - i - 1;
	return true;
}

/* One field at *p of what is left (*left); false when it does not fit or
 * holds a NUL. none: whether NO_REASON may stand for it (*s NULL). */
static bool take(const char **p, size_t *left, const char **s, size_t *n,
		 bool none)
{
	uint64_t len;

	if (*left < 4)
		return false;
	len = get_be(*p, 4);
	*p += 4;
	*left -= 4;
	*s = NULL;
	*n = 0;
	if (none && len == NO_REASON)
		return true;
	if (len > *left || memchr(*p, '\0', len))
		return false;
	*s = *p;
	*n = len;
	*p += len;
	*left -= len;
	return true;
}

struct wsa_fan *wsa__redis_wire_decode(const char *p, size_t len,
				       const char node[WSA_NODE_ID_LEN])
{
	const char *name, *reason, *text;
	size_t nlen, rlen, tlen, left;
	char nbuf[1025], rbuf[124];
	struct wsa_fan *m;
	unsigned long long pv;
	long long before;
	int kind, code;

	if (len < WIRE_HEAD || memcmp(p, "wsa1", 4) ||
	    !memcmp(p + 4, node, WSA_NODE_ID_LEN))
		return NULL;
	p += 4 + WSA_NODE_ID_LEN;
	kind = (unsigned char)p[0];
	code = (int)get_be(p + 1, 2);
	before = (long long)get_be(p + 3, 8);
	pv = get_be(p + 11, 8);
	if (kind > WSA_FAN_REVOKE ||
	    (kind >= WSA_FAN_CLOSE_UID && (code < 1000 || code > 4999)))
		return NULL;
	p += 41;
	left = len - WIRE_HEAD;
	if (!take(&p, &left, &name, &nlen, false) ||
	    !take(&p, &left, &reason, &rlen, true) ||
	    !take(&p, &left, &text, &tlen, false) || left ||
	    nlen >= sizeof(nbuf) || rlen >= sizeof(rbuf) ||
	    !wsa__utf8_valid(text, tlen) ||
	    (reason && !wsa__utf8_valid(reason, rlen)))
		return NULL;
	memcpy(nbuf, name, nlen);
	nbuf[nlen] = '\0';
	if (reason) {
		memcpy(rbuf, reason, rlen);
		rbuf[rlen] = '\0';
	}
	/* Closes carry no text; everything else does. */
	m = wsa__fan_new((enum wsa_fan_kind)kind,
			 kind >= WSA_FAN_CLOSE_UID ? NULL : text, tlen, nbuf,
			 reason ? rbuf : NULL);
	if (!m)
		return NULL;
	m->code = code;
	m->before = before;
	m->pv = pv;
	return m;
}

/* ---------------------------------------------------------------- URLs */

/* A decimal in [lo, hi] spelling all of s[0..n). */
static bool parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
	long v = 0;
	size_t i;

	if (!n || n > 9)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

bool wsa__redis_url_parse(const char *url, struct wsa_redis_url *u)
{
	const char *p, *at, *colon, *host, *host_end, *end;
	int port = 6379, db = 0;
	size_t hn;

	if (!url || strlen(url) >= 1024 || strncmp(url, "redis://", 8))
		return false;
	p = url + 8;
	end = p + strlen(p);
	at = memchr(p, '@', (size_t)(end - p));
	host = at ? at + 1 : p;
	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(end - host));
		if (!host_end)
			return false;
		host++;
		hn = (size_t)(host_end - host);
		host_end++;
	} else {
		host_end = host + strcspn(host, ":/");
		hn = (size_t)(host_end - host);
	}
	if (!hn || memchr(host, '@', hn))
		return false;
	p = host_end;
	if (*p == ':') {
		size_t n = strcspn(p + 1, "/");

		if (!parse_int(p + 1, n, 1, 65535, &port))
			return false;
		p += 1 + n;
	}
	if (*p == '/') {
		if (p[1] && !parse_int(p + 1, strlen(p + 1), 0, 100000, &db))
			return false;
	} else if (*p) {
		return false;
	}
	/* Before the '@': ":password" or "user:password". */
	colon = at ? memchr(url + 8, ':', (size_t)(at - url - 8)) : NULL;
	if (at && !colon)
		return false;
	if (!u)
		return true;
	memset(u, 0, sizeof(*u));
	u->port = port;
	u->db = db;
	u->host = dupn(host, hn);
	if (colon && colon > url + 8)
		u->user = dupn(url + 8, (size_t)(colon - url - 8));
	if (colon)
		u->password = dupn(colon + 1, (size_t)(at - colon - 1));
	if (u->host && (!colon || u->password) &&
	    (!colon || colon == url + 8 || u->user))
		return true;
	wsa__redis_url_free(u);
	return false;
}

void wsa__redis_url_free(struct wsa_redis_url *u)
{
	free(u->host);
	free(u->user);
	free(u->password);
	u->host = u->user = u->password = NULL;
}

/* A connection id of up to 22 bytes (NUL-padded) into out[23]. */
static void copy_id(char out[23], const char *p)
{
	size_t n = strnlen(p, 22);

	memcpy(out, p, n);
	out[n] = '\0';
}

/* The text with its position (and, for a reply, its id) spliced in,
 * framed in two copies into one message. */
static struct wsa_fan *kept_fan(const char *text, size_t tlen, const char *id,
				size_t ilen, unsigned long long offset,
				const char *epoch, const char *topic)
{
	struct wsa_buf a = {0}, b = {0};
	struct wsa_fan *m = NULL;
	char idbuf[1025];

	if (id && ilen < sizeof(idbuf)) {
		memcpy(idbuf, id, ilen);
		idbuf[ilen] = '\0';
	} else {
		id = NULL;
	}
	/* Offset 0: not numbered (its instance is away), no position. */
	if (!offset)
		epoch = NULL;
	if (wsa__history_stamp(&a, text, tlen, offset, epoch, NULL) &&
	    (!id || wsa__history_stamp(&b, text, tlen, offset, epoch, idbuf)))
		m = wsa__fan_new_reply(a.p, a.len, id ? b.p : NULL, b.len,
				       topic);
	wsa__buf_free(&a);
	wsa__buf_free(&b);
	return m;
}

struct wsa_fan *wsa__redis_kept_decode(const char *p, size_t len,
				       unsigned long long offset,
				       const char *epoch,
				       const char node[WSA_NODE_ID_LEN])
{
	const char *topic, *id, *text, *head = p;
	size_t tnlen, ilen, tlen, left;
	char tbuf[1025];
	struct wsa_fan *m;
	bool mine;

	if (len < KEPT_HEAD || memcmp(p, "wsk1", 4))
		return NULL;
	mine = !memcmp(p + 4, node, WSA_NODE_ID_LEN);
	p += KEPT_HEAD;
	left = len - KEPT_HEAD;
	if (!take(&p, &left, &topic, &tnlen, false) ||
	    !take(&p, &left, &id, &ilen, true) ||
	    !take(&p, &left, &text, &tlen, false) || left || !tnlen ||
	    tnlen >= sizeof(tbuf) || tlen < 2 || text[0] != '{' ||
	    text[tlen - 1] != '}' || !wsa__utf8_valid(text, tlen))
		return NULL;
	memcpy(tbuf, topic, tnlen);
	tbuf[tnlen] = '\0';
	/* Only the sending node has the member it replies to. */
	m = kept_fan(text, tlen, mine && head[4 + WSA_NODE_ID_LEN] ? id : NULL,
		     ilen, offset, epoch, tbuf);
	if (!m)
		return NULL;
	m->offset = offset;
	m->epoch_id = epoch ? wsa__history_epoch_id(epoch) : 0;
	if (mine)
		copy_id(m->reply, head + 4 + WSA_NODE_ID_LEN);
	copy_id(m->except, head + 4 + WSA_NODE_ID_LEN + 22);
	return m;
}
