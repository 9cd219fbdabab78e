/* wsa__json_parse held against jansson's json_loadb: for every input both
 * refuse it, or both accept it and build the same tree; and so for
 * wsa__json_parse_no_nul against json_loadb without JSON_ALLOW_NUL. The inputs
 * are a table of edge cases, every byte, every short sequence of an alphabet of
 * UTF-8 boundary bytes, the depth limit, and random documents with their
 * mutations; then each allocation fails in turn, and the two are timed. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "json_same.h"
#include "lib/codec/parse.h"

#define FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

static long comparisons;
static int shown;

/* Print text, bytes outside printable ASCII as \xNN. */
static void show(const char *what, const char *text, size_t len)
{
	size_t i;

	fprintf(stderr, "%s (%zu bytes): ", what, len);
	for (i = 0; i < len && i < 300; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputs(i < len ? "...\n" : "\n", stderr);
}

/* Parse text with both parsers: both refuse it (and ours does not blame
 * memory), or both accept it and build the same tree. Returns whether
 * jansson accepted it. */
static bool compare_one(const char *text, size_t len, bool nul)
{
	bool oom = true;
	struct wsa_json_head head = {(void *)1, (void *)1};
	json_t *a = nul ? wsa__json_parse_head(text, len, &oom, &head)
			: wsa__json_parse_no_nul(text, len, &oom);
	json_t *b =
	    json_loadb(text, len, nul ? FLAGS : FLAGS & ~JSON_ALLOW_NUL, NULL);
	/* A text the parser accepts is well-formed UTF-8 (core/conn.c relies
	 * on it: it checks only texts the parser refuses). */
	bool ok = a ? b && same(a, b) && json_equal(a, b) &&
			  wsa__utf8_valid(text, len)
		    : !b && !oom;

	comparisons++;
	if (!ok && shown++ < 20)
		show(!a	  ? "we refuse, jansson accepts"
		     : !b ? "we accept, jansson refuses"
			  : "the trees differ",
		     text, len);
	CHECK(ok);
	if (nul) { /* the head notes the root's "type" and a usable "id" */
		const json_t *id = json_object_get(a, "id");

		CHECK(head.type == json_object_get(a, "type"));
		CHECK(head.id ==
		      (json_is_string(id) || json_is_number(id) ? id : NULL));
	}
	json_decref(a);
	json_decref(b);
	return b != NULL;
}

/* Whether text holds the escape \u0000. */
static bool has_nul_escape(const char *text, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++)
		if (!memcmp(text + i, "\\u0000", 6))
			return true;
	return false;
}

/* The two parsers differ only on \u0000: the one without NULs is held
 * to jansson's on the texts that have one. */
static bool compare(const char *text, size_t len)
{
	if (has_nul_escape(text, len))
		compare_one(text, len, false);
	return compare_one(text, len, true);
}

struct edge {
	const char *text;
	size_t len;
	bool valid;
};

#define GOOD(s)                                                                \
	{                                                                      \
		s, sizeof(s) - 1, true                                         \
	}
#define BAD(s)                                                                 \
	{                                                                      \
		s, sizeof(s) - 1, false                                        \
	}

/* Whitespace, literals, jansson's lost NUL, numbers. */
static const struct edge edges_scalar[] = {
    GOOD("0"),
    GOOD(" 0 "),
    GOOD("\t\n\r 1\r\n\t"),
    BAD(""),
    BAD(" "),
    BAD("\f1"),
    BAD("\v1"),
    BAD("1 2"),
    BAD("\xef\xbb\xbf{}"),
    BAD("\xc2\xa0"
	"1"),
    BAD("1\xc2\xa0"),
    GOOD("true"),
    GOOD("false"),
    GOOD("null"),
    BAD("True"),
    BAD("NULL"),
    BAD("nul"),
    BAD("nulll"),
    BAD("truex"),
    BAD("true1"),
    BAD("tru"),
    BAD("[true false]"),
    GOOD("[true,false,null]"),
    BAD("truefalse"),
    BAD("undefined"),
    /* jansson 2.14 loses a NUL put back after a number or literal */
    GOOD("1\0"),
    GOOD("[1\0]"),
    GOOD("true\0"),
    GOOD("[null\0,false\0]"),
    GOOD("{\"a\":1.5\0}"),
    GOOD("-0\0 "),
    GOOD("1e5\0"),
    BAD("1\0\0"),
    BAD("\"a\"\0"),
    BAD("\0"),
    BAD("[\0 1]"),
    BAD("[1,\0 2]"),
    BAD("{\"a\"\0:1}"),
    BAD("[]\0"),
    BAD("1\0"
	"2"),
    BAD("1.\0"),
    BAD("-\0"
	"1"),
    BAD("nu\0ll"),
    /* numbers */
    GOOD("-0"),
    GOOD("-0.0"),
    GOOD("0.0"),
    GOOD("0e0"),
    GOOD("0E+0"),
    GOOD("0e-0"),
    BAD("01"),
    BAD("-01"),
    BAD("00"),
    BAD("1."),
    BAD(".5"),
    BAD("+1"),
    BAD("-"),
    BAD("--1"),
    BAD("1e"),
    BAD("1e+"),
    BAD("1E-"),
    GOOD("1E+2"),
    GOOD("1e-2"),
    BAD("1.e2"),
    BAD("1.5."),
    BAD("0x10"),
    BAD("1_000"),
    GOOD("9223372036854775807"),
    BAD("9223372036854775808"),
    GOOD("-9223372036854775808"),
    BAD("-9223372036854775809"),
    BAD("18446744073709551616"),
    BAD("99999999999999999999999"),
    GOOD("1.5"),
    GOOD("0.1"),
    GOOD("1e308"),
    GOOD("1.7976931348623157e308"),
    BAD("1.7976931348623159e308"),
    BAD("1e309"),
    BAD("-1e309"),
    GOOD("1e-400"),
    GOOD("-1e-400"),
    GOOD("4.9e-324"),
    GOOD("2.4e-324"),
    GOOD("2.5e-324"),
    GOOD("123456789012345678901234567890.5"),
    GOOD("9007199254740993.0"),
    GOOD("9007199254740993e0"),
    GOOD("0.30000000000000004"),
    GOOD("1e22"),
    GOOD("1e23"),
    GOOD("123e-22"),
    GOOD("123e-23"),
    GOOD("1.00000000000000000000000001"),
    GOOD("0e99999999999999999999"),
    GOOD("1e-99999999999999999999"),
    BAD("1e99999999999999999999"),
    GOOD("2.2250738585072011e-308"),
    GOOD("1.5e+300"),
    GOOD("0.000000000000000000000000000001"),
    GOOD("-1234567890123456.5e-3"),
    BAD("NaN"),
    BAD("Infinity"),
    BAD("-Infinity"),
    BAD("- 1"),
    BAD("1 .5"),
    BAD("1e 5"),
    GOOD("[-1]"),
    BAD("[1-2]"),
    BAD("1e5e5"),
    BAD("\xef\xbc\x91"),
};

/* Strings: escapes, surrogates, control bytes, UTF-8. */
static const struct edge edges_string[] = {
    GOOD("\"\""),
    BAD("\""),
    BAD("\"abc"),
    BAD("\"\\\""),
    GOOD("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    BAD("\"\\a\""),
    BAD("\"\\x41\""),
    BAD("\"\\'\""),
    BAD("\"\\U0041\""),
    BAD("\"\\0\""),
    GOOD("\"\\u0041\\u00e9\\u00E9\""),
    BAD("\"\\u00g1\""),
    BAD("\"\\u004\""),
    BAD("\"\\u\""),
    BAD("\"\\u004"),
    GOOD("\"\\u0000\""),
    GOOD("\"a\\u0000b\""),
    BAD("\"\\uD800\""),
    BAD("\"\\uDBFF\""),
    BAD("\"\\uDC00\""),
    BAD("\"\\uDFFF\""),
    GOOD("\"\\uD83D\\uDE00\""),
    GOOD("\"\\ud83d\\ude00\""),
    GOOD("\"\\uDBFF\\uDFFF\""),
    GOOD("\"\\uD800\\uDC00\""),
    BAD("\"\\uD800\\uD800\""),
    BAD("\"\\uDC00\\uD800\""),
    BAD("\"\\uD800\\u0041\""),
    BAD("\"\\uD800x\""),
    BAD("\"\\uD800\\n\""),
    BAD("\"\\uD800\\u\""),
    BAD("\"\\uD800\\uDC0\""),
    BAD("\"\\uD800\\uE000\""),
    BAD("\"\\uDBFF\\uD7FF\""),
    BAD("\"\\uD800\\uDBFF\""),
    GOOD("\"\\uFFFF\""),
    GOOD("\"\\uFEFF\""),
    GOOD("\"\\u007f\\u0080\\u07ff\\u0800\""),
    BAD("\"\x01\""),
    BAD("\"\x1f\""),
    BAD("\"\n\""),
    BAD("\"\t\""),
    BAD("\"a\0b\""),
    GOOD("\"\x7f\""),
    GOOD("\"\xc3\xa9\""),
    GOOD("\"\xe2\x82\xac\""),
    GOOD("\"\xf0\x9f\x98\x80\""),
    GOOD("\"\xf4\x8f\xbf\xbf\""),
    BAD("\"\xf4\x90\x80\x80\""),
    BAD("\"\xc0\xaf\""),
    BAD("\"\xc1\xbf\""),
    BAD("\"\xe0\x80\xaf\""),
    BAD("\"\xe0\x9f\xbf\""),
    GOOD("\"\xe0\xa0\x80\""),
    BAD("\"\xed\xa0\x80\""),
    BAD("\"\xed\xbf\xbf\""),
    GOOD("\"\xed\x9f\xbf\""),
    BAD("\"\xf0\x80\x80\x80\""),
    BAD("\"\xf0\x8f\xbf\xbf\""),
    GOOD("\"\xf0\x90\x80\x80\""),
    BAD("\"\xf5\x80\x80\x80\""),
    BAD("\"\xff\""),
    BAD("\"\xfe\""),
    BAD("\"\x80\""),
    BAD("\"\xbf\""),
    BAD("\"\xc3\""),
    BAD("\"\xe2\x82\""),
    BAD("\"\xf0\x9f\x98\""),
    BAD("\"\xc3\x28\""),
    BAD("\"\xe2\x28\xa1\""),
    GOOD("\"\xef\xbf\xbf\""),
    GOOD("\"\xef\xbb\xbf\""),
    BAD("'a'"),
    BAD("\"a\"\"b\""),
    GOOD("\"0123456789abcdef0123456789\\n0123456789abcdef\""),
    GOOD("\"0123456\xc3\xa9"
	 "0123456789abcdef\""),
    BAD("\"0123456789abcdef\x01"
	"0123456789\""),
};

/* Objects and arrays. */
static const struct edge edges_container[] = {
    /* The head: the root's "type" and a string or number "id" only. */
    GOOD("{\"type\":\"a\",\"id\":1}"),
    GOOD("{\"id\":\"x\",\"type\":[]}"),
    GOOD("{\"a\":{\"type\":\"x\",\"id\":2}}"),
    GOOD("{\"id\":true,\"type\":null}"),
    GOOD("{\"id\":null}"),
    GOOD("{\"id\":1.5,\"ty\":1,\"typ\":2,\"types\":3,\"i\":4}"),
    GOOD("[{\"type\":\"x\",\"id\":3}]"),
    GOOD("{\"t\\u0079pe\":\"escaped\",\"\\u0069d\":\"e\"}"),
    BAD("{\"type\":\"x\",\"type\":\"y\"}"),
    BAD("{\"id\":1,\"type\":\"x\",\"id\":2}"),
    GOOD("{}"),
    GOOD("{ }"),
    GOOD("{\"a\":1}"),
    GOOD("{\"a\":1,\"b\":2}"),
    BAD("{\"a\":1,\"a\":2}"),
    BAD("{\"a\":1,\"b\":2,\"a\":3}"),
    GOOD("{\"a\":{\"a\":1}}"),
    BAD("{\"a\":{},\"a\":[]}"),
    BAD("{\"a\":1 , \"\\u0061\":2}"),
    GOOD("{\"a\":1,\"A\":2}"),
    GOOD("{\"\":1}"),
    BAD("{\"\":1,\"\":2}"),
    BAD("{\"a\\u0000\":1}"),
    BAD("{\"\\u0000\":1}"),
    GOOD("{\"a\":\"\\u0000\"}"),
    BAD("{\"a\" 1}"),
    BAD("{\"a\":}"),
    BAD("{\"a\"}"),
    BAD("{1:1}"),
    BAD("{a:1}"),
    BAD("{'a':1}"),
    BAD("{\"a\":1,}"),
    BAD("{,}"),
    BAD("{\"a\":1"),
    BAD("{"),
    BAD("}"),
    BAD("{\"a\":1}}"),
    BAD("{\"a\"::1}"),
    BAD("{\"a\":1;\"b\":2}"),
    GOOD(" {\n\"a\" :\t1 ,\r\"b\": [ ] } "),
    GOOD("{\"\\ud83d\\ude00\":\"\\ud83d\\ude00\"}"),
    BAD("{\"a\":1]"),
    BAD("[1}"),
    GOOD("{\"\xc3\xa9\":1,\"e\\u0301\":2}"),
    BAD("{\"\xc3\xa9\":1,\"\\u00e9\":2}"),
    GOOD("{\"a\\nb\":\"c\\td\"}"),
    BAD("{\"a\\nb\":1,\"a\\u000ab\":2}"),
    GOOD("[]"),
    GOOD("[ ]"),
    GOOD("[[]]"),
    BAD("["),
    BAD("]"),
    BAD("[]]"),
    BAD("[[]"),
    GOOD("[1,[2,[3]]]"),
    BAD("[1,,2]"),
    BAD("[1,]"),
    BAD("[,1]"),
    BAD("[1 2]"),
    GOOD("[1,2]"),
    GOOD("[\"a\",{\"b\":[null]}]"),
    GOOD("[{},{},{\"a\":[{}]}]"),
    BAD("[{]"),
    BAD("{[]}"),
    GOOD("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}"),
};

static void check_edges(const struct edge *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (compare(e[i].text, e[i].len) != e[i].valid) {
			show("jansson disagrees with the table", e[i].text,
			     e[i].len);
			CHECK(!"table entry");
		}
}

/* Compare a copy of text in a heap block of its own size, so that a read
 * past its end is caught under ASan. */
static void compare_heap(const char *text, size_t len)
{
	char *copy = malloc(len);

	CHECK(copy != NULL);
	if (!copy)
		return;
	memcpy(copy, text, len);
	compare(copy, len);
	free(copy);
}

/* A string with its escape or odd byte at every offset of bodies of each
 * length scan_len_next gives, whole and cut short after it, so that each lands
 * in every lane of the sixteen- and eight-byte scans and in every length of
 * their tails. */
static void check_offsets(void)
{
	static const char *const odd[] = {
	    "\\n",  "\\u00e9", "\xc3\xa9", "\x01",	   "\xc3",
	    "\\",   "\"",      "\\uD800",  "\x1f",	   " ",
	    "\x7f", "\x80",    "\xff",	   "\xe2\x82\xac", "\xf0\x9d\x84\x9e"};
	char text[160];
	size_t i, k, n, len;

	for (k = 0; k < sizeof(odd) / sizeof(*odd); k++)
		for (len = 0; len != SCAN_LEN_END; len = scan_len_next(len))
			for (i = 1; i <= len + 1; i++) {
				n = strlen(odd[k]);
				memset(text, 'x', sizeof(text));
				text[0] = '"';
				memcpy(text + i, odd[k], n);
				text[len + n + 1] = '"';
				compare_heap(text, len + n + 2);
				compare_heap(text, i + n); /* cut after it */
			}
}

/* Every byte alone, in a string, escaped, after a number, in an array. */
static void check_bytes(void)
{
	int c;

	for (c = 0; c < 256; c++) {
		char alone[1] = {(char)c};
		char quoted[3] = {'"', (char)c, '"'};
		char escaped[4] = {'"', '\\', (char)c, '"'};
		char after[2] = {'1', (char)c};
		char listed[3] = {'[', (char)c, ']'};

		compare(alone, 1);
		compare(quoted, 3);
		compare(escaped, 4);
		compare(after, 2);
		compare(listed, 3);
	}
}

/* Every sequence of one to four bytes of an alphabet of UTF-8 boundaries
 * (lead bytes, the continuation limits of E0, ED, F0 and F4, ASCII, '"',
 * '\\', NUL), inside a string. */
static void check_utf8(void)
{
	static const unsigned char abc[] = {
	    0x00, 0x22, 0x41, 0x5c, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
	    0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
	const size_t k = sizeof(abc);
	size_t len, i, j, total;
	char text[6];

	for (len = 1; len <= 4; len++) {
		for (total = 1, i = 0; i < len; i++)
			total *= k;
		for (i = 0; i < total; i++) {
			size_t v = i;

			text[0] = '"';
			for (j = 0; j < len; j++, v /= k)
				text[1 + j] = (char)abc[v % k];
			text[1 + len] = '"';
			compare(text, len + 2);
		}
	}
}

/* The reference for wsa__utf8_feed, from code point arithmetic rather
 * than byte ranges: 0 when no bytes could follow b[0..len) to make
 * well-formed UTF-8, 1 when some could (it ends inside a character), 2
 * when it is well-formed as it is. A cut sequence stands for the code
 * points its completions span, which must reach past the overlong ones,
 * stay at most U+10FFFF and not lie wholly among the surrogates. */
static int ref_utf8(const unsigned char *b, size_t len)
{
	size_t i = 0, n, k;

	while (i < len) {
		unsigned long lo, hi, min;
		unsigned c = b[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC0 && c < 0xE0)
			n = 2, min = 0x80;
		else if (c >= 0xE0 && c < 0xF0)
			n = 3, min = 0x800;
		else if (c >= 0xF0 && c < 0xF8)
			n = 4, min = 0x10000;
		else
			return 0;
		lo = c & (0x7Fu >> n);
		for (k = 1; k < n && i + k < len; k++) {
			if ((b[i + k] & 0xC0) != 0x80)
				return 0;
			lo = lo << 6 | (b[i + k] & 0x3Fu);
		}
		for (hi = lo; k < n; k++)
			lo <<= 6, hi = hi << 6 | 0x3F;
		lo = lo < min ? min : lo;
		hi = hi > 0x10FFFF ? 0x10FFFF : hi;
		if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF))
			return 0;
		if (i + n > len)
			return 1;
		i += n;
	}
	return 2;
}

/* One input to the incremental check: whole, a byte at a time (it must
 * fail at the first byte no continuation could save, not later), and in
 * two pieces at every cut. Returns the number of disagreements. */
static int utf8_stream_one(const unsigned char *b, size_t len)
{
	int ref = ref_utf8(b, len), bad = 0;
	struct wsa_utf8 u = {{0}, 0};
	bool ok = true;
	size_t k;

	bad += wsa__utf8_valid(b, len) != (ref == 2);
	for (k = 0; k < len && ok; k++) {
		ok = wsa__utf8_feed(&u, b + k, 1);
		bad += ok != (ref_utf8(b, k + 1) > 0);
	}
	bad += ok && (u.n == 0) != (ref == 2);
	for (k = 1; k < len; k++) {
		memset(&u, 0, sizeof(u));
		ok = wsa__utf8_feed(&u, b, k) &&
		     wsa__utf8_feed(&u, b + k, len - k);
		bad += ok != (ref > 0) || (ok && (u.n == 0) != (ref == 2));
	}
	return bad;
}

/* Every sequence of up to four bytes of an alphabet of boundary bytes,
 * then characters at every offset of ASCII runs (the word-at-a-time
 * path), against the reference. */
static void check_utf8_stream(void)
{
	static const unsigned char abc[] = {
	    0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
	    0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0,
	    0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff};
	static const char *const chars[] = {
	    "\xc3\xa9",	    "\xe2\x82\xac", "\xf0\x9d\x84\x9e",
	    "\xed\xa0\x80", "\xc0\xaf",	    "\xf4\x90\x80\x80"};
	const size_t k = sizeof(abc);
	unsigned char b[32];
	size_t len, i, j, total;
	int bad = 0;

	for (len = 1; len <= 4; len++) {
		for (total = 1, i = 0; i < len; i++)
			total *= k;
		for (i = 0; i < total; i++) {
			size_t v = i;

			for (j = 0; j < len; j++, v /= k)
				b[j] = abc[v % k];
			bad += utf8_stream_one(b, len);
		}
	}
	for (i = 0; i < sizeof(chars) / sizeof(*chars); i++)
		for (j = 0; j < 17; j++) {
			size_t n = strlen(chars[i]);

			memset(b, 'a', sizeof(b));
			memcpy(b + j, chars[i], n);
			bad += utf8_stream_one(b, sizeof(b));
		}
	/* Each at every offset of texts of each length scan_len_next gives,
	 * each text in a
	 * heap block of its own size (reads past it caught under ASan): the
	 * sixteen- and eight-byte ASCII scans and their tails. */
	for (i = 0; i < sizeof(chars) / sizeof(*chars); i++)
		for (len = 0; len != SCAN_LEN_END; len = scan_len_next(len))
			for (j = 0; j <= len; j++) {
				size_t n = strlen(chars[i]);
				unsigned char *h = malloc(len + n);

				CHECK(h != NULL);
				if (!h)
					continue;
				memset(h, 'a', len + n);
				memcpy(h + j, chars[i], n);
				bad += wsa__utf8_valid(h, len + n) !=
				       (ref_utf8(h, len + n) == 2);
				bad += wsa__utf8_valid(h, j + n - 1) !=
				       (ref_utf8(h, j + n - 1) == 2);
				free(h);
			}
	CHECK_INT(bad, 0);
	CHECK(wsa__utf8_valid("", 0));
}

/* Nest d levels of open (each a container holding the next), put core in
 * the middle, and close them. */
static bool nested(size_t d, const char *open, const char *core,
		   const char *close)
{
	size_t no = strlen(open), nc = strlen(core), ncl = strlen(close), i;
	char *text = malloc(d * (no + ncl) + nc), *p = text;
	bool accepted;

	if (!text)
		return false;
	for (i = 0; i < d; i++, p += no)
		memcpy(p, open, no);
	memcpy(p, core, nc);
	for (p += nc, i = 0; i < d; i++, p += ncl)
		memcpy(p, close, ncl);
	accepted = compare(text, (size_t)(p - text));
	free(text);
	return accepted;
}

/* jansson counts a value's depth from 1 at the top and refuses one deeper
 * than JSON_PARSER_MAX_DEPTH: 2048 nested empty arrays pass, 2048 arrays
 * around a scalar do not. */
static void check_depth(void)
{
	size_t d;

	for (d = JSON_PARSER_MAX_DEPTH - 2; d <= JSON_PARSER_MAX_DEPTH + 2;
	     d++) {
		CHECK(nested(d, "[", "", "]") == (d <= JSON_PARSER_MAX_DEPTH));
		CHECK(nested(d, "[", "1", "]") == (d < JSON_PARSER_MAX_DEPTH));
		CHECK(nested(d, "[", "[]", "]") == (d < JSON_PARSER_MAX_DEPTH));
		CHECK(nested(d, "{\"a\":", "{}", "}") ==
		      (d < JSON_PARSER_MAX_DEPTH));
		CHECK(nested(d, "{\"a\":", "\"s\"", "}") ==
		      (d < JSON_PARSER_MAX_DEPTH));
		nested(d, "[{\"k\":", "null", "}]");
		nested(d, "[", "[", "]");
	}
}

/* xorshift64: the random documents are the same on every run. */
struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

static unsigned below(struct rng *r, unsigned n)
{
	return (unsigned)(rnd(r) % n);
}

#define GEN_CAP	   16384
#define GEN_BUDGET 1500

struct gen {
	struct rng *r;
	size_t len;
	char buf[GEN_CAP];
};

static void put(struct gen *g, const char *s, size_t n)
{
	if (n <= GEN_CAP - g->len) {
		memcpy(g->buf + g->len, s, n);
		g->len += n;
	}
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void putc_(struct gen *g, int c)
{
	char ch = (char)c;

	put(g, &ch, 1);
}

/* Sometimes a little whitespace, of every kind JSON allows. */
static void gen_ws(struct gen *g)
{
	while (!below(g->r, 4))
		putc_(g, " \t\n\r"[below(g->r, 4)]);
}

/* A code point of n UTF-8 bytes (2 to 4), never a surrogate. */
static unsigned long gen_cp(struct gen *g, int n)
{
	unsigned long cp;

	if (n == 2)
		return 0x80 + below(g->r, 0x800 - 0x80);
	if (n == 4)
		return 0x10000 + below(g->r, 0x110000 - 0x10000);
	do
		cp = 0x800 + below(g->r, 0x10000 - 0x800);
	while (cp >= 0xD800 && cp <= 0xDFFF);
	return cp;
}

static void put_utf8(struct gen *g, unsigned long cp)
{
	if (cp < 0x800) {
		putc_(g, (int)(0xC0 | cp >> 6));
	} else if (cp < 0x10000) {
		putc_(g, (int)(0xE0 | cp >> 12));
		putc_(g, (int)(0x80 | (cp >> 6 & 0x3F)));
	} else {
		putc_(g, (int)(0xF0 | cp >> 18));
		putc_(g, (int)(0x80 | (cp >> 12 & 0x3F)));
		putc_(g, (int)(0x80 | (cp >> 6 & 0x3F)));
	}
	putc_(g, (int)(0x80 | (cp & 0x3F)));
}

/* \uXXXX, each hex digit in either case. */
static void put_u(struct gen *g, unsigned long v)
{
	char esc[7];
	int i;

	esc[0] = '\\';
	esc[1] = 'u';
	for (i = 0; i < 4; i++) {
		unsigned d = (unsigned)(v >> (12 - 4 * i)) & 15;

		esc[2 + i] = (char)(d < 10	     ? '0' + d
				    : below(g->r, 2) ? 'a' + d - 10
						     : 'A' + d - 10);
	}
	put(g, esc, 6);
}

/* \u escapes on a boundary. */
static const unsigned long special[] = {0x0000, 0x001f, 0x0020, 0x0022, 0x005c,
					0x007f, 0x0080, 0x07ff, 0x0800, 0xd7ff,
					0xe000, 0xfeff, 0xfffd, 0xffff};
static const unsigned long near_surrogates[] = {0xd7ff, 0xd800, 0xdbff,
						0xdc00, 0xdfff, 0xe000};

/* One piece of a string: plain ASCII (a long run now and then, for the
 * word-at-a-time scan), an escape, a \u escape or pair, raw UTF-8. */
static void gen_piece(struct gen *g)
{
	unsigned long v;
	int c, i;

	switch (below(g->r, 9)) {
	case 0:
		do
			c = 0x20 + (int)below(g->r, 0x60);
		while (c == '"' || c == '\\');
		putc_(g, c);
		break;
	case 1:
		for (i = (int)below(g->r, 40); i > 0; i--)
			putc_(g, 'a' + (int)below(g->r, 26));
		break;
	case 2:
		putc_(g, '\\');
		putc_(g, "\"\\/bfnrt"[below(g->r, 8)]);
		break;
	case 3:
		put_u(g, gen_cp(g, 2 + (int)below(g->r, 2)) & 0xFFFF);
		break;
	case 4:
		put_u(g,
		      special[below(g->r, sizeof(special) / sizeof(*special))]);
		break;
	case 5:
		v = gen_cp(g, 4) - 0x10000;
		put_u(g, 0xD800 + (v >> 10));
		put_u(g, 0xDC00 + (v & 0x3FF));
		break;
	case 6: /* two escapes around the surrogates' bounds, paired or not */
		put_u(g, near_surrogates[below(g->r, 6)]);
		put_u(g, near_surrogates[below(g->r, 6)]);
		break;
	default:
		put_utf8(g, gen_cp(g, 2 + (int)below(g->r, 3)));
	}
}

static void gen_string(struct gen *g)
{
	unsigned n = below(g->r, 8);

	putc_(g, '"');
	while (n--)
		gen_piece(g);
	putc_(g, '"');
}

/* Digits, the first not a zero. */
static void put_digits(struct gen *g, unsigned n)
{
	putc_(g, '1' + (int)below(g->r, 9));
	while (--n)
		putc_(g, '0' + (int)below(g->r, 10));
}

/* Numbers that sit on a limit: json_int_t's, double's, the fast path's. */
static const char *const known_numbers[] = {
    "0",
    "-0",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "1.7976931348623157e308",
    "1.8e308",
    "4.9e-324",
    "2.4e-324",
    "2.5e-324",
    "1e-400",
    "2.2250738585072011e-308",
    "9007199254740993.0",
    "9007199254740992e-22",
    "0.1",
    "1e22",
    "1e23",
    "8.98846567431158e307",
    "0.0",
    "-0.0e5",
};

/* A number of every form: integers of every length (past json_int_t's
 * range too), fractions, exponents near double's limits and the fast path's
 * bounds, and known hard cases. */
static void gen_number(struct gen *g)
{
	unsigned kind = below(g->r, 6);

	if (kind == 0) {
		puts_(g,
		      known_numbers[below(g->r, sizeof(known_numbers) /
						    sizeof(*known_numbers))]);
		return;
	}
	if (below(g->r, 2))
		putc_(g, '-');
	if (below(g->r, 4))
		put_digits(g, 1 + below(g->r, kind == 1 ? 20 : 17));
	else
		putc_(g, '0');
	if (kind >= 2 && below(g->r, 2)) {
		putc_(g, '.');
		while (below(g->r, 4))
			putc_(g, '0');
		put_digits(g, 1 + below(g->r, 17));
	}
	if (kind >= 3) {
		putc_(g, "eE"[below(g->r, 2)]);
		if (below(g->r, 2))
			putc_(g, "+-"[below(g->r, 2)]);
		put_digits(g, 1 + below(g->r, kind == 5 ? 3 : 2));
	}
}

/* A key: often one of a few, so that duplicates happen, some written with
 * an escape (\u0061 is "a"), and \u0000 now and then. */
static void gen_key(struct gen *g)
{
	static const char *const few[] = {
	    "\"a\"", "\"b\"", "\"c\"", "\"\\u0061\"", "\"\"", "\"\\u0000\""};

	if (below(g->r, 3))
		gen_string(g);
	else
		puts_(g, few[below(g->r, sizeof(few) / sizeof(*few))]);
}

static void gen_value(struct gen *g, int depth);

/* An object or array of up to five members, none past the budget. */
static void gen_container(struct gen *g, int depth, bool obj)
{
	unsigned i, n = g->len < GEN_BUDGET ? below(g->r, 6) : 0;

	putc_(g, obj ? '{' : '[');
	gen_ws(g);
	for (i = 0; i < n; i++) {
		if (i) {
			putc_(g, ',');
			gen_ws(g);
		}
		if (obj) {
			gen_key(g);
			gen_ws(g);
			putc_(g, ':');
			gen_ws(g);
		}
		gen_value(g, depth - 1);
		gen_ws(g);
	}
	putc_(g, obj ? '}' : ']');
}

/* A value, nesting at most depth more levels. */
static void gen_value(struct gen *g, int depth)
{
	static const char *const literals[] = {"true", "false", "null"};

	switch (below(g->r, depth > 0 ? 10 : 5)) {
	case 0:
	case 1:
		gen_string(g);
		break;
	case 2:
	case 3:
		gen_number(g);
		break;
	case 4:
		puts_(g, literals[below(g->r, 3)]);
		break;
	case 5:
	case 6:
	case 7:
		gen_container(g, depth, true);
		break;
	default:
		gen_container(g, depth, false);
	}
}

/* A document gen_value built, and its mutations: cut at every offset (short
 * documents) or at some, bytes replaced, inserted, deleted. */
static void mutate(struct rng *r, const char *doc, size_t n)
{
	static const char spice[] = "\0\"\\{}[],: 01-.eun\x80\xbf\xc0\xc3"
				    "\xed\xf0\xf4\xff\x1f\x7f\t";
	char m[GEN_CAP + 1];
	size_t i, at;
	int k;

	for (i = 0; i < n; i += n <= 64 ? 1 : 1 + below(r, (unsigned)n / 8))
		compare(doc, i);
	for (k = 0; k < 24 && n; k++) {
		char c = below(r, 2) ? (char)rnd(r)
				     : spice[below(r, sizeof(spice) - 1)];

		at = below(r, (unsigned)n);
		memcpy(m, doc, n);
		if (k % 3 == 0) {
			m[at] = c;
			compare(m, n);
		} else if (k % 3 == 1) {
			memmove(m + at + 1, m + at, n - at);
			m[at] = c;
			compare(m, n + 1);
		} else {
			memmove(m + at, m + at + 1, n - at - 1);
			compare(m, n - 1);
		}
	}
}

static void check_random(int docs)
{
	static struct gen g;
	struct rng r = {0x9E3779B97F4A7C15ull};
	int i, valid = 0;

	g.r = &r;
	for (i = 0; i < docs; i++) {
		g.len = 0;
		gen_ws(&g);
		gen_value(&g, i % 2 ? 1 : 5); /* half of them small */
		gen_ws(&g);
		valid += compare(g.buf, g.len);
		mutate(&r, g.buf, g.len);
	}
	fprintf(stderr, "random: %d documents, %d of them valid\n", docs,
		valid);
}

/* jansson reads reals in the current locale, its '.' swapped for the
 * locale's decimal point; so must we. Run where a locale with a decimal
 * comma is installed. */
static void check_locale(void)
{
	static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8",
					    "fr_FR.UTF-8", "fr_FR.utf8"};
	static const struct edge reals[] = {GOOD("1.5"),
					    GOOD("-0.25e3"),
					    GOOD("[3.14159,2.5e-300]"),
					    GOOD("123456789012345678901234.5"),
					    BAD("1,5"),
					    GOOD("[1,5]")};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (setlocale(LC_NUMERIC, names[i]))
			break;
	if (i == sizeof(names) / sizeof(*names)) {
		fprintf(stderr, "locale: no decimal-comma locale, skipped\n");
		return;
	}
	check_edges(reals, sizeof(reals) / sizeof(*reals));
	setlocale(LC_NUMERIC, "C");
}

static unsigned long alloc_calls, alloc_fail_at;

/* malloc, but the alloc_fail_at-th call of a run fails. */
static void *failing_malloc(size_t n)
{
	return ++alloc_calls == alloc_fail_at ? NULL : malloc(n);
}

/* A document that makes the parser grow its stack (deeper than the room it
 * starts with) and its scratch (a long escaped key and value, a long real
 * for strtod), and jansson grow an object and an array. */
static size_t oom_document(char *text, size_t cap)
{
	size_t n = 0;
	int i;

	for (i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, cap - n, "[{\"k%d\":", i);
	n += (size_t)snprintf(text + n, cap - n, "{\"a\\n");
	for (i = 0; i < 300; i++)
		text[n++] = 'k';
	n += (size_t)snprintf(text + n, cap - n, "\":\"\\u00e9");
	for (i = 0; i < 600; i++)
		text[n++] = 'v';
	n += (size_t)snprintf(text + n, cap - n,
			      "\",\"r\":1.2345678901234567890123e-7");
	for (i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, cap - n, ",\"m%d\":[%d,2.5]", i,
				      i);
	text[n++] = '}';
	for (i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, cap - n, "}]");
	return n;
}

/* Each allocation of a parse fails in turn: the parse returns NULL and
 * blames memory, until no allocation fails and it returns the tree. ASan's
 * leak check finds anything a failure left behind. */
static void check_oom(void)
{
	static char text[8192];
	size_t n = oom_document(text, sizeof(text));
	json_t *want = json_loadb(text, n, FLAGS, NULL), *got = NULL;
	bool oom = false;

	CHECK(want != NULL);
	for (alloc_fail_at = 1; !got && alloc_fail_at < 100000;
	     alloc_fail_at++) {
		alloc_calls = 0;
		json_set_alloc_funcs(failing_malloc, free);
		got = wsa__json_parse(text, n, &oom);
		json_set_alloc_funcs(malloc, free);
		CHECK(got ? alloc_calls < alloc_fail_at : oom);
	}
	CHECK(got && want && same(got, want));
	fprintf(stderr, "oom: a parse of %zu bytes makes %lu allocations\n", n,
		alloc_calls);
	json_decref(got);
	json_decref(want);
}

static json_t *jansson_parse(const char *text, size_t len, bool *oom)
{
	*oom = false;
	return json_loadb(text, len, FLAGS, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Microseconds per parse of text, over about a tenth of a second. */
static double usec_per(json_t *(*parse)(const char *, size_t, bool *),
		       const char *text, size_t len)
{
	double start = now(), t;
	long n = 0;
	bool oom;

	do {
		for (int i = 0; i < 64; i++, n++)
			json_decref(parse(text, len, &oom));
		t = now() - start;
	} while (t < 0.1);
	return t * 1e6 / (double)n;
}

static void time_one(const char *what, const char *text, size_t len)
{
	double ours = usec_per(wsa__json_parse, text, len);
	double theirs = usec_per(jansson_parse, text, len);

	fprintf(stderr, "speed: %-34s %8.3f us, jansson %8.3f us (x%.1f)\n",
		what, ours, theirs, theirs / ours);
}

/* Not a test: how the two compare on a chat message, small and 4 KiB. */
static void time_both(void)
{
	static const char small[] = "{\"type\":\"chat\",\"message\":"
				    "\"0123456789abcdef\"}";
	static char big[4200], mixed[4200], cyrillic[4200];
	size_t i, n, k;

	n = (size_t)snprintf(big, sizeof(big),
			     "{\"type\":\"chat\",\"message\":\"");
	for (i = 0; i < 4096; i++)
		big[n++] = (char)('a' + i % 26);
	memcpy(big + n, "\"}", 2);
	time_one("small chat message", small, sizeof(small) - 1);
	time_one("4 KiB ASCII chat message", big, n + 2);
	memcpy(mixed, big, n + 2);
	for (i = 40; i + 8 < n; i += 64)
		memcpy(mixed + i,
		       i % 128 == 40 ? "\\n\\u00e9" : "\xc3\xa9\xe2\x82\xac   ",
		       8);
	time_one("4 KiB with escapes and UTF-8", mixed, n + 2);
	/* Text where a scan stops every other byte. */
	k = (size_t)snprintf(cyrillic, sizeof(cyrillic),
			     "{\"type\":\"chat\",\"message\":\"");
	for (i = 0; i < 4096 / 13; i++, k += 13)
		memcpy(cyrillic + k,
		       "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ", 13);
	memcpy(cyrillic + k, "\"}", 2);
	time_one("4 KiB of Cyrillic", cyrillic, k + 2);
}

int main(void)
{
	check_edges(edges_scalar, sizeof(edges_scalar) / sizeof(*edges_scalar));
	check_edges(edges_string, sizeof(edges_string) / sizeof(*edges_string));
	check_edges(edges_container,
		    sizeof(edges_container) / sizeof(*edges_container));
	check_offsets();
	check_bytes();
	check_utf8();
	check_utf8_stream();
	check_depth();
	check_random(20000);
	check_locale();
	check_oom();
	{
		bool oom = true;

		CHECK(wsa__json_parse(NULL, 0, &oom) == NULL && !oom);
		CHECK(wsa__json_parse("", 0, NULL) == NULL);
	}
	fprintf(stderr, "%ld comparisons with jansson %s\n", comparisons,
		JANSSON_VERSION);
	time_both();
	return check_status("parse");
}
