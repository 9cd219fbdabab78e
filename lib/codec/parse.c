/* A JSON parser that builds the tree jansson's json_loadb builds, faster.
 *
 * jansson's lexer pulls each byte through a callback, copies every token
 * into a growing buffer and then converts the copy; at about 8 ns a byte it
 * was the most expensive step of a message. This parser reads the text in
 * place: plain ASCII is skipped sixteen bytes at a time (SSE2; eight
 * elsewhere), a string without
 * escapes goes to json_stringn_nocheck straight from the input, and only
 * escaped strings and the few numbers that need strtod are copied, into a
 * scratch buffer.
 *
 * It accepts exactly what json_loadb(JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL) accepts in jansson 2.14, quirks
 * included (skip_lost_nul), and builds an equal tree; tests/test_parse.c
 * holds the two against each other.
 *
 * Nesting lives on an explicit stack, not the C stack, so a message nested
 * 2048 deep needs no deep recursion on a service thread. A container is
 * linked into its parent as soon as it opens: the stack then holds borrowed
 * pointers, a key never outlives its member, and one json_decref of the root
 * frees everything when the parse fails. */
#include "codec/parse.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "codec/json.h"
#include "codec/scan.h"

_Static_assert(sizeof(json_int_t) == sizeof(long long),
	       "jansson's integers are long long, as strtoll reads them");

/* Room inside struct parser, so that a usual message allocates nothing but
 * its tree. */
#define STACK_ROOM   32
#define SCRATCH_ROOM 256

struct parser {
	const unsigned char *p, *end;
	bool oom;    /* the failure was memory, not syntax */
	bool no_nul; /* \u0000 refused, as without JSON_ALLOW_NUL */
	struct wsa_json_head *head; /* the root's members to note, or NULL */
	json_t **stack; /* open containers (borrowed), innermost last */
	size_t depth, cap;
	const char *key; /* the pending object key, unless key_in_scratch */
	size_t klen;
	bool key_in_scratch; /* the pending key is scratch[0, klen) */
	char *scratch;	     /* unescaped strings and number text */
	size_t scap;
	json_t *stack_room[STACK_ROOM];
	char scratch_room[SCRATCH_ROOM];
};

/* The parser's own buffers go through jansson's allocator too, so that
 * json_set_alloc_funcs governs every allocation of a parse. */
static void *mem_alloc(size_t n)
{
	json_malloc_t alloc_fn;
	json_free_t free_fn;

	json_get_alloc_funcs(&alloc_fn, &free_fn);
	return alloc_fn(n);
}

static void mem_free(void *p)
{
	json_malloc_t alloc_fn;
	json_free_t free_fn;

	json_get_alloc_funcs(&alloc_fn, &free_fn);
	free_fn(p);
}

static bool nomem(struct parser *ps)
{
	ps->oom = true;
	return false;
}

/* Make scratch hold need bytes, keeping its first used bytes. */
static bool scratch_reserve(struct parser *ps, size_t used, size_t need)
{
	size_t cap = ps->scap * 2;
	char *p;

	if (need <= ps->scap)
		return true;
	if (cap < need)
		cap = need;
	p = mem_alloc(cap);
	if (!p)
		return nomem(ps);
	memcpy(p, ps->scratch, used);
	if (ps->scratch != ps->scratch_room)
		mem_free(ps->scratch);
	ps->scratch = p;
	ps->scap = cap;
	return true;
}

/* Write n bytes at scratch offset *w and move *w past them. */
static bool scratch_put(struct parser *ps, size_t *w, const void *s, size_t n)
{
	if (!scratch_reserve(ps, *w, *w + n))
		return false;
	memcpy(ps->scratch + *w, s, n);
	*w += n;
	return true;
}

/* Where a string or number may be copied in scratch: above the pending key
 * when that key is held there. */
static size_t scratch_base(const struct parser *ps)
{
	return ps->key_in_scratch ? ps->klen : 0;
}

/* Push an open container; the stack doubles (onto the heap) when full. */
static bool push(struct parser *ps, json_t *c)
{
	if (ps->depth == ps->cap) {
		size_t cap = ps->cap * 2;
		json_t **s = mem_alloc(cap * sizeof(*s));

		if (!s)
			return nomem(ps);
		memcpy(s, ps->stack, ps->depth * sizeof(*s));
		if (ps->stack != ps->stack_room)
			mem_free(ps->stack);
		ps->stack = s;
		ps->cap = cap;
	}
	ps->stack[ps->depth++] = c;
	return true;
}

/* JSON's whitespace, and jansson's: space, tab, newline, carriage return. */
static void skip_ws(struct parser *ps)
{
	const unsigned char *p = ps->p;

	while (p < ps->end &&
	       (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	ps->p = p;
}

/* Byte c, eight times over. */
#define BYTES(c) (0x0101010101010101ull * (c))

/* Non-zero when some byte of w is below c (c at most 0x80): the classic
 * borrow trick. It is exact about whether, not about which byte. */
static uint64_t any_below(uint64_t w, unsigned c)
{
	return (w - BYTES(c)) & ~w & BYTES(0x80);
}

/* The first byte at or after p that a string does not hold as it is: '"',
 * '\\', a control character or a non-ASCII byte (whose UTF-8 the caller
 * checks); end if none. Sixteen bytes are tested at once while they can
 * be (SSE2; a round of four while none stops it), then eight; the byte loop
 * then finds which of at most eight stopped the word loop. */
#if WSA_SCAN_SSE2
/* The bytes of the sixteen at p that skip_plain stops at, as 0xFF. */
static inline __m128i not_plain(const unsigned char *p)
{
	__m128i v = wsa__load16(p);

	/* Signed, a byte of 0x80 or more is below ' ' too. */
	return _mm_or_si128(
	    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			 _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
	    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
}

/* Whether skip_plain passes all of the 64 bytes at p. Each test becomes
 * "a byte is zero", so that minimums answer for the four vectors at
 * once: with the top bit flipped, the bytes it passes (0x20 to 0x7F) are
 * 0xA0 and up, and the least minus 0x9F, saturated, is zero when any is
 * not; v ^ '"' is zero for a quote, v ^ '\\' for a backslash. */
static inline bool plain64(const unsigned char *p)
{
	__m128i a = wsa__load16(p), b = wsa__load16(p + 16);
	__m128i c = wsa__load16(p + 32), d = wsa__load16(p + 48);
	__m128i range = _mm_subs_epu8(wsa__min_xor4(a, b, c, d, -0x80),
				      _mm_set1_epi8(-0x61)); /* 0x9F */
	__m128i quote = wsa__min_xor4(a, b, c, d, '"');
	__m128i bslash = wsa__min_xor4(a, b, c, d, '\\');

	return !_mm_movemask_epi8(
	    _mm_cmpeq_epi8(_mm_min_epu8(range, _mm_min_epu8(quote, bslash)),
			   _mm_setzero_si128()));
}
#endif

static const unsigned char *skip_plain(const unsigned char *p,
				       const unsigned char *end)
{
#if WSA_SCAN_SSE2
	/* 64 bytes a round while none stops the scan (one test for four
	 * vectors), then 16 to find which does. */
	/* Sixteen first: in text where stops come close together (UTF-8
	 * outside ASCII, say), a round of 64 would mostly fail. */
	while (end - p >= 16) {
		unsigned m = (unsigned)_mm_movemask_epi8(not_plain(p));

		if (m)
			return p + __builtin_ctz(m);
		p += 16;
		while (end - p >= 64 && plain64(p))
			p += 64;
	}
#endif
	while (end - p >= 8) {
		uint64_t w;

		memcpy(&w, p, sizeof(w));
		if (any_below(w ^ BYTES('"'), 1) |
		    any_below(w ^ BYTES('\\'), 1) | any_below(w, 0x20) |
		    (w & BYTES(0x80)))
			break;
		p += 8;
	}
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* How many of the avail bytes at p (a non-ASCII lead byte first) agree
 * with a well-formed UTF-8 sequence, which is *need bytes long (2 to 4;
 * 1 for a byte that leads none): the sequence is whole and well-formed
 * when that is *need, its well-formed start cut at p + avail when that is
 * avail < *need, and broken otherwise. Well-formed is Unicode's table 3-7:
 * no overlong form, no surrogate, nothing above U+10FFFF; jansson's
 * utf8_check_first and utf8_check_full draw the same line. */
static size_t utf8_good(const unsigned char *p, size_t avail, size_t *need)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n, i;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else {
		*need = 1;
		return 0;
	}
	if (c == 0xE0)
		lo = 0xA0; /* below that, an overlong form */
	else if (c == 0xED)
		hi = 0x9F; /* above that, a surrogate */
	else if (c == 0xF0)
		lo = 0x90; /* overlong */
	else if (c == 0xF4)
		hi = 0x8F; /* beyond U+10FFFF */
	*need = n;
	if (avail > n)
		avail = n;
	if (avail < 2)
		return avail;
	if (p[1] < lo || p[1] > hi)
		return 1;
	for (i = 2; i < avail; i++)
		if ((p[i] & 0xC0) != 0x80)
			return i;
	return avail;
}

/* The length of the well-formed UTF-8 sequence of two to four bytes at p,
 * or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t need, n = utf8_good(p, (size_t)(end - p), &need);

	return n == need ? n : 0;
}

/* The value of the four hex digits (either case) at p, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		unsigned c = p[i], lower = c | 0x20;

		if (c >= '0' && c <= '9')
			v = v << 4 | (long)(c - '0');
		else if (lower >= 'a' && lower <= 'f')
			v = v << 4 | (long)(lower - 'a' + 10);
		else
			return -1;
	}
	return v;
}

/* Encode code point cp (at most U+10FFFF, no surrogate) as UTF-8 into u;
 * returns the length. */
static size_t utf8_put(unsigned char *u, unsigned long cp)
{
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (unsigned char)(0xF0 | cp >> 18);
	u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	u[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decode the \uXXXX escape whose 'u' ps->p points at (a surrogate pair
 * takes two escapes) into scratch at *w, as UTF-8, and move ps->p past it.
 * A lone or reversed surrogate is refused, as jansson refuses it ("invalid
 * Unicode"); \u0000 is kept, as JSON_ALLOW_NUL keeps it, unless no_nul. */
static bool unescape_u(struct parser *ps, size_t *w)
{
	const unsigned char *p = ps->p + 1;
	long cp = hex4(p, ps->end), lo;
	unsigned char u[4];

	if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF) || (!cp && ps->no_nul))
		return false;
	p += 4;
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		if (ps->end - p < 2 || p[0] != '\\' || p[1] != 'u')
			return false;
		lo = hex4(p + 2, ps->end);
		if (lo < 0xDC00 || lo > 0xDFFF)
			return false;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		p += 6;
	}
	ps->p = p;
	return scratch_put(ps, w, u, utf8_put(u, (unsigned long)cp));
}

/* Decode the escape just past the backslash at ps->p into scratch at *w,
 * and move ps->p past it. */
static bool unescape(struct parser *ps, size_t *w)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *hit;

	if (ps->p == ps->end)
		return false;
	if (*ps->p == 'u')
		return unescape_u(ps, w);
	hit = memchr(from, *ps->p, sizeof(from) - 1);
	if (!hit)
		return false;
	ps->p++;
	return scratch_put(ps, w, &to[hit - from], 1);
}

/* A string's bytes, where scan_string left them. */
struct span {
	const char *s;
	size_t n;
	bool copied; /* s is in scratch: the text had escapes */
};

/* Scan the string whose body starts at ps->p (past the opening quote) and
 * move ps->p past the closing quote. Without escapes the bytes are left in
 * the input; with escapes they are decoded into scratch from offset base on,
 * keeping what lies below base. False on a control character, a bad escape,
 * invalid UTF-8 or a missing quote, or when memory is short (ps->oom). */
static bool scan_string(struct parser *ps, size_t base, struct span *out)
{
	const unsigned char *start = ps->p, *p = start, *run = start;
	size_t w = base, n;
	bool copied = false;

	for (;;) {
		p = skip_plain(p, ps->end);
		if (p == ps->end)
			return false;
		if (*p == '"')
			break;
		if (*p >= 0x80) { /* characters, as long as they come */
			do {
				n = utf8_seq(p, ps->end);
				if (!n)
					return false;
				p += n;
			} while (p < ps->end && *p >= 0x80);
			continue;
		}
		if (*p != '\\' || !scratch_put(ps, &w, run, (size_t)(p - run)))
			return false;
		ps->p = p + 1;
		if (!unescape(ps, &w))
			return false;
		p = run = ps->p;
		copied = true;
	}
	if (copied && !scratch_put(ps, &w, run, (size_t)(p - run)))
		return false;
	out->s = copied ? ps->scratch + base : (const char *)start;
	out->n = copied ? w - base : (size_t)(p - start);
	out->copied = copied;
	ps->p = p + 1;
	return true;
}

static const unsigned char *skip_digits(const unsigned char *p,
					const unsigned char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* The end of the number at p by jansson's grammar,
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, or NULL when there is
 * none; *real tells whether it has a fraction or an exponent. */
static const unsigned char *number_end(const unsigned char *p,
				       const unsigned char *end, bool *real)
{
	const unsigned char *q;

	*real = false;
	if (p < end && *p == '-')
		p++;
	if (p == end || *p < '0' || *p > '9')
		return NULL;
	q = skip_digits(p, end);
	if (*p == '0' && q != p + 1)
		return NULL; /* a leading zero */
	if (q < end && *q == '.') {
		p = q + 1;
		q = skip_digits(p, end);
		if (q == p)
			return NULL;
		*real = true;
	}
	if (q < end && (*q == 'e' || *q == 'E')) {
		p = q + 1;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		q = skip_digits(p, end);
		if (q == p)
			return NULL;
		*real = true;
	}
	return q;
}

/* Convert the integer text [p, end), its grammar checked, as strtoll does;
 * false when it is out of range, which jansson refuses ("too big
 * integer"). */
static bool to_integer(const unsigned char *p, const unsigned char *end,
		       json_int_t *out)
{
	bool neg = *p == '-';
	unsigned long long v = 0, limit = (unsigned long long)LLONG_MAX + neg;

	for (p += neg; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	/* -(v - 1) - 1 reaches LLONG_MIN without overflow. */
	*out = neg && v ? -(json_int_t)(v - 1) - 1 : (json_int_t)v;
	return true;
}

#if FLT_EVAL_METHOD == 0
/* Clinger's fast path. A decimal m × 10^e with m <= 2^53 and |e| <= 22 is a
 * product or quotient of two exact doubles, which IEEE arithmetic rounds
 * once, correctly: bit for bit what a correctly rounded strtod (glibc's)
 * returns, in any rounding mode since the sign goes in before rounding.
 * True when it applies to the real text [p, end), grammar checked. */
static bool fast_real(const unsigned char *p, const unsigned char *end,
		      double *out)
{
	static const double tens[] = {1e0,  1e1,  1e2,	1e3,  1e4,  1e5,
				      1e6,  1e7,  1e8,	1e9,  1e10, 1e11,
				      1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
				      1e18, 1e19, 1e20, 1e21, 1e22};
	bool neg = *p == '-', frac = false, eneg;
	unsigned long long m = 0;
	long e = 0, x = 0;
	int digits = 0;
	double d;

	for (p += neg; p < end && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.') {
			frac = true;
			continue;
		}
		if ((m || *p != '0') && ++digits > 16)
			return false; /* past 2^53 anyway; m must not wrap */
		m = m * 10 + (unsigned)(*p - '0');
		e -= frac;
	}
	if (p < end) { /* the exponent */
		eneg = *++p == '-';
		for (p += *p == '+' || *p == '-'; p < end; p++)
			if ((x = x * 10 + (*p - '0')) > 9999)
				return false;
		e += eneg ? -x : x;
	}
	if (!m) { /* strtod's zero, whatever the exponent */
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	if (m > 1ull << 53 || e < -22 || e > 22)
		return false;
	d = neg ? -(double)m : (double)m;
	*out = e < 0 ? d / tens[-e] : d * tens[e];
	return true;
}
#else
/* Where arithmetic is not done in double (x87), rounding twice could miss
 * strtod's result: always take the slow path. */
static bool fast_real(const unsigned char *p, const unsigned char *end,
		      double *out)
{
	(void)p, (void)end, (void)out;
	return false;
}
#endif

/* Convert the real text [p, end), grammar checked, to a double as jansson
 * does (strtod), refusing an overflow to ±HUGE_VAL and keeping an
 * underflow. strtod runs in the "C" locale whatever the host's is (jansson
 * swaps '.' for the locale's decimal point instead, which fails where that
 * point is more than one byte). The text is copied to scratch at base to
 * end it with a NUL. */
static bool to_real(struct parser *ps, const unsigned char *p,
		    const unsigned char *end, double *out)
{
	size_t n = (size_t)(end - p), base = scratch_base(ps);
	locale_t c = wsa__c_locale(), old;
	char *s;

	if (fast_real(p, end, out))
		return true;
	if (!c || !scratch_reserve(ps, base, base + n + 1))
		return false;
	s = ps->scratch + base;
	memcpy(s, p, n);
	s[n] = '\0';
	old = uselocale(c);
	errno = 0;
	*out = strtod(s, NULL);
	uselocale(old);
	return !((*out == HUGE_VAL || *out == -HUGE_VAL) && errno == ERANGE);
}

/* jansson 2.14 puts back the byte that ends a number or a literal into its
 * look-ahead buffer, which is NUL-terminated: a NUL byte put back there
 * reads as "buffer empty" and is lost. So json_loadb skips one NUL right
 * after a number, true, false or null (it accepts "[1\0]" as [1]); this
 * parser does the same, to stay equivalent. */
static void skip_lost_nul(struct parser *ps)
{
	if (ps->p < ps->end && *ps->p == '\0')
		ps->p++;
}

/* Scan the number at ps->p into *v, a new reference. */
static bool scan_number(struct parser *ps, json_t **v)
{
	const unsigned char *start = ps->p, *end;
	bool real;
	json_int_t i;
	double d;

	end = number_end(start, ps->end, &real);
	if (!end)
		return false;
	if (!real && !to_integer(start, end, &i))
		return false;
	if (real && !to_real(ps, start, end, &d))
		return false;
	ps->p = end;
	skip_lost_nul(ps);
	*v = real ? json_real(d) : json_integer(i);
	return *v || nomem(ps);
}

/* Whether the text at ps->p starts with the n bytes of w; if so, skip
 * them. */
static bool take(struct parser *ps, const char *w, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n))
		return false;
	ps->p += n;
	return true;
}

/* Scan the literal true, false or null at ps->p into *v. jansson's are
 * static singletons, never short of memory. Any letter after one makes the
 * text invalid, as jansson's whole-identifier token does: no value may
 * follow a value without a ',' between. */
static bool scan_literal(struct parser *ps, json_t **v)
{
	if (take(ps, "true", 4))
		*v = json_true();
	else if (take(ps, "false", 5))
		*v = json_false();
	else if (take(ps, "null", 4))
		*v = json_null();
	else
		return false;
	skip_lost_nul(ps);
	return true;
}

/* Scan the string value at ps->p (its opening quote) into *v. */
static bool scan_string_value(struct parser *ps, json_t **v)
{
	struct span s;

	ps->p++;
	if (!scan_string(ps, scratch_base(ps), &s))
		return false;
	*v = json_stringn_nocheck(s.s, s.n);
	return *v || nomem(ps);
}

/* A member of the root object: is it one the head notes? (A key comes
 * once: duplicates are refused.) */
static void note_head(struct wsa_json_head *h, const char *key, size_t n,
		      const json_t *v)
{
	if (n == 4 && !memcmp(key, "type", 4))
		h->type = v;
	else if (n == 2 && !memcmp(key, "id", 2) &&
		 (json_is_string(v) || json_is_number(v)))
		h->id = v;
}

/* Link v, a new reference taken even on failure, into the innermost open
 * container under the pending key, or make it the root. False when memory
 * is short, or when the key repeats one of the object's
 * (JSON_REJECT_DUPLICATES). */
static bool link_value(struct parser *ps, json_t **root, json_t *v)
{
	json_t *top;
	const char *key;
	size_t size;

	if (!ps->depth) {
		*root = v;
		return true;
	}
	top = ps->stack[ps->depth - 1];
	if (json_is_array(top))
		return !json_array_append_new(top, v) || nomem(ps);
	size = json_object_size(top);
	key = ps->key_in_scratch ? ps->scratch : ps->key;
	if (json_object_setn_new_nocheck(top, key, ps->klen, v))
		return nomem(ps);
	if (ps->head && ps->depth == 1)
		note_head(ps->head, key, ps->klen, v);
	ps->key_in_scratch = false;
	/* A key already there has its value replaced and the size stays: one
	 * hash lookup instead of a json_object_getn before the set. The
	 * replaced value is freed, the new one with the root. */
	return json_object_size(top) > size;
}

/* Read an object member's key, and the ':' after it, as the pending key.
 * jansson refuses a key holding a NUL byte (from \u0000) even under
 * JSON_ALLOW_NUL, which allows it in string values only. */
static bool read_key(struct parser *ps)
{
	struct span s;

	skip_ws(ps);
	if (ps->p == ps->end || *ps->p != '"')
		return false;
	ps->p++;
	if (!scan_string(ps, 0, &s) || (s.copied && memchr(s.s, '\0', s.n)))
		return false;
	ps->key = s.s;
	ps->klen = s.n;
	ps->key_in_scratch = s.copied;
	skip_ws(ps);
	if (ps->p == ps->end || *ps->p != ':')
		return false;
	ps->p++;
	return true;
}

/* Open the object or array at ps->p: create it and link it in; unless it is
 * empty, push it and (in an object) read its first key: *more then says its
 * first member's value is due. */
static bool open_container(struct parser *ps, json_t **root, bool *more)
{
	bool obj = *ps->p == '{';
	json_t *c = obj ? json_object() : json_array();

	if (!c)
		return nomem(ps);
	if (!link_value(ps, root, c))
		return false;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
		ps->p++;
		return true;
	}
	if (!push(ps, c))
		return false;
	*more = true;
	return !obj || read_key(ps);
}

/* Parse the value at ps->p (after whitespace) and link it in; a container
 * with members is opened, and *more set (see open_container). jansson counts
 * depth by values, the top one at 1, and refuses a value deeper than
 * JSON_PARSER_MAX_DEPTH: an empty container may sit one level deeper than a
 * scalar. */
static bool parse_value(struct parser *ps, json_t **root, bool *more)
{
	json_t *v;
	unsigned char c;
	bool ok;

	skip_ws(ps);
	*more = false;
	if (ps->p == ps->end || ps->depth >= JSON_PARSER_MAX_DEPTH)
		return false;
	c = *ps->p;
	if (c == '{' || c == '[')
		return open_container(ps, root, more);
	if (c == '"')
		ok = scan_string_value(ps, &v);
	else if (c == '-' || (c >= '0' && c <= '9'))
		ok = scan_number(ps, &v);
	else
		ok = scan_literal(ps, &v);
	return ok && link_value(ps, root, v);
}

/* After a member of the innermost container, read a ',' (and in an object
 * the next key), so that *more says a value is due, or the closing bracket,
 * which closes the container. */
static bool next_member(struct parser *ps, bool *more)
{
	bool obj = json_is_object(ps->stack[ps->depth - 1]);
	unsigned char c;

	skip_ws(ps);
	if (ps->p == ps->end)
		return false;
	c = *ps->p++;
	if (c == ',') {
		*more = true;
		return !obj || read_key(ps);
	}
	*more = false;
	ps->depth--;
	return c == (obj ? '}' : ']');
}

/* Parse the whole text into *root; on failure *root, if set, holds what was
 * built, for the caller to free. */
static bool parse_text(struct parser *ps, json_t **root)
{
	bool more = true;

	while (more || ps->depth)
		if (!(more ? parse_value(ps, root, &more)
			   : next_member(ps, &more)))
			return false;
	skip_ws(ps);
	return ps->p == ps->end;
}

static json_t *parse(const char *text, size_t len, bool no_nul, bool *oom,
		     struct wsa_json_head *head)
{
	struct parser ps;
	json_t *root = NULL;
	bool ok;

	ps.p = (const unsigned char *)text;
	ps.end = text ? ps.p + len : ps.p;
	ps.oom = false;
	ps.no_nul = no_nul;
	ps.head = head;
	if (head)
		head->type = head->id = NULL;
	ps.stack = ps.stack_room;
	ps.depth = 0;
	ps.cap = STACK_ROOM;
	ps.key_in_scratch = false;
	ps.scratch = ps.scratch_room;
	ps.scap = SCRATCH_ROOM;
	ok = parse_text(&ps, &root);
	if (ps.stack != ps.stack_room)
		mem_free(ps.stack);
	if (ps.scratch != ps.scratch_room)
		mem_free(ps.scratch);
	if (oom)
		*oom = !ok && ps.oom;
	if (ok)
		return root;
	json_decref(root);
	if (head)
		head->type = head->id = NULL;
	return NULL;
}

json_t *wsa__json_parse(const char *text, size_t len, bool *oom)
{
	return parse(text, len, false, oom, NULL);
}

json_t *wsa__json_parse_head(const char *text, size_t len, bool *oom,
			     struct wsa_json_head *head)
{
	return parse(text, len, false, oom, head);
}

json_t *wsa__json_parse_no_nul(const char *text, size_t len, bool *oom)
{
	return parse(text, len, true, oom, NULL);
}

/* ------------------------------------------------------------- UTF-8 */

/* The first non-ASCII byte at or after p, or end; sixteen at a time
 * (SSE2; a round of four while all are ASCII), then eight. */
static const unsigned char *skip_ascii(const unsigned char *p,
				       const unsigned char *end)
{
	uint64_t w;

#if WSA_SCAN_SSE2
	while (end - p >= 16) { /* sixteen first, as in skip_plain */
		unsigned m = (unsigned)_mm_movemask_epi8(wsa__load16(p));

		if (m)
			return p + __builtin_ctz(m);
		p += 16;
		while (end - p >= 64 &&
		       !_mm_movemask_epi8(_mm_or_si128(
			   _mm_or_si128(wsa__load16(p), wsa__load16(p + 16)),
			   _mm_or_si128(wsa__load16(p + 32),
					wsa__load16(p + 48)))))
			p += 64;
	}
#endif
	while (end - p >= 8) {
		memcpy(&w, p, sizeof(w));
		if (w & BYTES(0x80))
			break;
		p += 8;
	}
	while (p < end && *p < 0x80)
		p++;
	return p;
}

/* Complete the sequence u holds with the first bytes at p; returns how
 * many it took, or SIZE_MAX when they break it. */
static size_t utf8_complete(struct wsa_utf8 *u, const unsigned char *p,
			    size_t len)
{
	size_t need, take, n;

	utf8_good(u->held, u->n, &need);
	take = need - u->n < len ? need - u->n : len;
	memcpy(u->held + u->n, p, take);
	n = utf8_good(u->held, u->n + take, &need);
	if (n < u->n + take)
		return SIZE_MAX;
	u->n = n == need ? 0 : (unsigned char)n;
	return take;
}

bool wsa__utf8_feed(struct wsa_utf8 *u, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;
	size_t need, n;

	if (u->n && len) {
		n = utf8_complete(u, p, len);
		if (n == SIZE_MAX)
			return false;
		p += n;
	}
	while ((p = skip_ascii(p, end)) < end) {
		n = utf8_good(p, (size_t)(end - p), &need);
		if (n == need) {
			p += n;
			continue;
		}
		if (n < (size_t)(end - p))
			return false;
		memcpy(u->held, p, n); /* cut by the end of this piece */
		u->n = (unsigned char)n;
		break;
	}
	return true;
}

bool wsa__utf8_valid(const void *data, size_t len)
{
	struct wsa_utf8 u = {{0}, 0};

	return wsa__utf8_feed(&u, data, len) && !u.n;
}
