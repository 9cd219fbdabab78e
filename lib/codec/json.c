/* Compact JSON serialisation of jansson values into a wsa_buf or a
 * wsa_chunk.
 *
 * jansson's own dump allocates on every call (a set for loop detection)
 * and formats integers through printf; on the reply path that was a
 * quarter of the server's time. This writes the same compact text
 * (insertion order, "," and ":" without spaces, UTF-8 as it is, control
 * characters, '"' and '\\' escaped) straight into the caller's buffer. */
#include "codec/json.h"
#include "codec/scan.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Deeper than any reply; bounds the recursion on a value that contains
 * itself, which jansson does not forbid. */
#define JSON_MAX_DEPTH 512

/* Where the text goes: a wsa_buf, or a wsa_chunk through its pointer.
 * Its storage is mirrored here (p, len, cap) while writing, so that the
 * inline paths need not know which; growing goes to the owner (which may
 * move the storage) and back. */
struct sink {
	char *p;
	size_t len, cap;
	struct wsa_buf *buf; /* the owner: buf, or else chunk */
	struct wsa_chunk **chunk;
};

/* Make the owner hold n more bytes after len, and mirror it again. */
static bool grow(struct sink *b, size_t n)
{
	if (b->buf) {
		b->buf->len = b->len;
		if (!wsa__buf_reserve(b->buf, n))
			return false;
		b->p = b->buf->p;
		b->cap = b->buf->cap;
		return true;
	}
	if (*b->chunk)
		(*b->chunk)->len = b->len;
	if (!wsa__chunk_reserve(b->chunk, n))
		return false;
	b->p = (*b->chunk)->p;
	b->cap = (*b->chunk)->cap;
	return true;
}

/* Make room for n more bytes: inline while there is room, which after a
 * string's one reservation is nearly always. */
static inline bool room(struct sink *b, size_t n)
{
	return n <= b->cap - b->len || grow(b, n);
}

static inline bool put(struct sink *b, const char *s, size_t n)
{
	if (!room(b, n))
		return false;
	if (n) /* b->p may still be NULL */
		memcpy(b->p + b->len, s, n);
	b->len += n;
	return true;
}

static inline bool put_char(struct sink *b, char ch)
{
	if (!room(b, 1))
		return false;
	b->p[b->len++] = ch;
	return true;
}

/* Whether a JSON string must escape byte ch: control characters, '"'
 * and '\\'. */
static inline bool needs_escape(unsigned char ch)
{
	return ch < 0x20 || ch == '"' || ch == '\\';
}

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether any byte of w is zero (the classic word-at-a-time test). */
static inline uint64_t has_zero(uint64_t w)
{
	return (w - ONES) & ~w & HIGHS;
}

#if WSA_SCAN_SSE2
/* The bytes of the sixteen at s that need an escape, as 0xFF. */
static inline __m128i to_escape(const char *s)
{
	__m128i v = wsa__load16(s);

	/* min(v, 0x1f) == v: v is at most 0x1f, unsigned */
	return _mm_or_si128(
	    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			 _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
	    _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v));
}

/* Whether none of the 64 bytes at s needs an escape. Each test becomes
 * "a byte is zero" (v - 0x1f, saturated, is zero for a control
 * character; v ^ '"' for a quote; v ^ '\\' for a backslash), so that
 * minimums answer for the four vectors at once. */
static inline bool plain64(const char *s)
{
	__m128i a = wsa__load16(s), b = wsa__load16(s + 16);
	__m128i c = wsa__load16(s + 32), d = wsa__load16(s + 48);
	__m128i ctl =
	    _mm_subs_epu8(_mm_min_epu8(_mm_min_epu8(a, b), _mm_min_epu8(c, d)),
			  _mm_set1_epi8(0x1f));
	__m128i quote = wsa__min_xor4(a, b, c, d, '"');
	__m128i bslash = wsa__min_xor4(a, b, c, d, '\\');

	return !_mm_movemask_epi8(
	    _mm_cmpeq_epi8(_mm_min_epu8(ctl, _mm_min_epu8(quote, bslash)),
			   _mm_setzero_si128()));
}
#endif

/* How many bytes from s on need no escape: bytes below 0x20, '"' and
 * '\\' do (bytes of 0x80 and up pass as they are). Sixteen at a time while
 * it can (SSE2; a round of four while none needs one), then eight, then
 * one. */
static size_t plain_run(const char *s, size_t n)
{
	size_t i = 0;

#if WSA_SCAN_SSE2
	/* Sixteen first: where escapes come close together, a round of 64
	 * would mostly fail. */
	while (n - i >= 16) {
		unsigned m = (unsigned)_mm_movemask_epi8(to_escape(s + i));

		if (m)
			return i + (size_t)__builtin_ctz(m);
		i += 16;
		while (n - i >= 64 && plain64(s + i))
			i += 64;
	}
#endif
	while (n - i >= 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		if (((w - 0x20 * ONES) & ~w & HIGHS) |
		    has_zero(w ^ ('"' * ONES)) | has_zero(w ^ ('\\' * ONES)))
			break;
		i += 8;
	}
	while (i < n && !needs_escape((unsigned char)s[i]))
		i++;
	return i;
}

/* Write the escape of byte ch, which needs_escape, at out; returns its
 * length (2 or 6). */
static size_t escape(char *out, unsigned char ch)
{
	static const char hex[] = "0123456789ABCDEF";

	out[0] = '\\';
	switch (ch) {
	case '"':
	case '\\':
		out[1] = (char)ch;
		return 2;
	case '\b':
		out[1] = 'b';
		return 2;
	case '\f':
		out[1] = 'f';
		return 2;
	case '\n':
		out[1] = 'n';
		return 2;
	case '\r':
		out[1] = 'r';
		return 2;
	case '\t':
		out[1] = 't';
		return 2;
	}
	memcpy(out + 1, "u00", 3);
	out[4] = hex[ch >> 4];
	out[5] = hex[ch & 15];
	return 6;
}

/* Append a JSON string literal. Room for the string as it is and its
 * quotes is made once; runs that need no escape are copied into it, and
 * only an escape (up to six bytes for one) makes more. Between steps there
 * is room for the rest of s and the closing quote. */
static bool put_string(struct sink *b, const char *s, size_t n)
{
	size_t i = 0, run;

	if (!room(b, n + 2))
		return false;
	b->p[b->len++] = '"';
	if (n < 16) { /* a key, say: checked and copied in one pass */
		char *d = b->p + b->len;

		while (i < n && !needs_escape((unsigned char)s[i])) {
			d[i] = s[i];
			i++;
		}
		b->len += i;
		if (i == n)
			goto done;
	}
	for (;;) {
		run = plain_run(s + i, n - i);
		memcpy(b->p + b->len, s + i, run);
		b->len += run;
		i += run;
		if (i == n)
			break;
		if (!room(b, n - i + 6))
			return false;
		b->len += escape(b->p + b->len, (unsigned char)s[i++]);
	}
done:
	b->p[b->len++] = '"';
	return true;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_make(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

locale_t wsa__c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_make);
	return c_locale;
}

static bool put_integer(struct sink *b, json_int_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u =
	    v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* As jansson writes reals: 17 significant digits, a ".0" where the text
 * would otherwise read as an integer, no '+' or leading zeros in the
 * exponent. Formatted in the "C" locale, whatever the host's is (its
 * decimal comma would make "1,5"); uselocale() changes this thread's
 * locale only, and only for the call. */
static bool put_real(struct sink *b, double v)
{
	char tmp[40], *e;
	locale_t c = wsa__c_locale(), old;
	int n;

	if (!c)
		return false;
	old = uselocale(c);
	n = snprintf(tmp, sizeof(tmp) - 2, "%.17g", v);
	uselocale(old);
	if (n < 0)
		return false;
	e = strchr(tmp, 'e');
	if (!e && !strchr(tmp, '.')) {
		memcpy(tmp + n, ".0", 2);
		n += 2;
	} else if (e) {
		char *sign = e + 1;
		char *src = *sign == '-' || *sign == '+' ? sign + 1 : sign;
		char *dst = *sign == '-' ? sign + 1 : sign; /* drop a '+' */

		while (*src == '0' && src[1])
			src++;
		memmove(dst, src, strlen(src) + 1);
		n = (int)strlen(tmp);
	}
	return put(b, tmp, (size_t)n);
}

static bool put_value(struct sink *b, const json_t *v, int depth);

static bool put_object(struct sink *b, const json_t *v, int depth)
{
	const char *key;
	size_t klen;
	json_t *item;
	bool first = true;

	if (!put_char(b, '{'))
		return false;
	json_object_keylen_foreach((json_t *)v, key, klen, item)
	{
		if ((!first && !put_char(b, ',')) ||
		    !put_string(b, key, klen) || !put_char(b, ':') ||
		    !put_value(b, item, depth + 1))
			return false;
		first = false;
	}
	return put_char(b, '}');
}

static bool put_array(struct sink *b, const json_t *v, int depth)
{
	size_t i, n = json_array_size(v);

	if (!put_char(b, '['))
		return false;
	for (i = 0; i < n; i++)
		if ((i && !put_char(b, ',')) ||
		    !put_value(b, json_array_get(v, i), depth + 1))
			return false;
	return put_char(b, ']');
}

static bool put_value(struct sink *b, const json_t *v, int depth)
{
	if (!v || depth > JSON_MAX_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return put_object(b, v, depth);
	case JSON_ARRAY:
		return put_array(b, v, depth);
	case JSON_STRING:
		return put_string(b, json_string_value(v),
				  json_string_length(v));
	case JSON_INTEGER:
		return put_integer(b, json_integer_value(v));
	case JSON_REAL:
		return put_real(b, json_real_value(v));
	case JSON_TRUE:
		return put(b, "true", 4);
	case JSON_FALSE:
		return put(b, "false", 5);
	case JSON_NULL:
		return put(b, "null", 4);
	}
	return false;
}

bool wsa__json_dump(const json_t *v, struct wsa_buf *b)
{
	size_t len = b->len;
	struct sink s = {b->p, len, b->cap, b, NULL};
	bool ok = put_value(&s, v, 0);

	b->len = ok ? s.len : len; /* growing may have set it */
	return ok;
}

bool wsa__json_dump_chunk(const json_t *v, struct wsa_chunk **c)
{
	size_t len = wsa__chunk_len(*c);
	struct sink s = {*c ? (*c)->p : NULL, len, *c ? (*c)->cap : 0, NULL, c};
	bool ok = put_value(&s, v, 0);

	if (*c)
		(*c)->len = ok ? s.len : len;
	return ok;
}
