/* The reply serialiser writes what jansson's compact dump writes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/codec/json.h"

/* v is written as want, into a chunk too: from none, and after skip
 * bytes already held. */
static void same_chunk(const json_t *v, const char *want, size_t skip)
{
	struct wsa_chunk *c = NULL;
	size_t i;

	for (i = 0; i < skip; i++)
		CHECK(wsa__chunk_append(&c, "-", 1));
	CHECK(wsa__json_dump_chunk(v, &c));
	CHECK(wsa__chunk_append(&c, "", 1));
	if (c && want)
		CHECK_STR(c->p + skip, want);
	wsa__chunk_free(&c);
}

static void same(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	struct wsa_buf b = {0};

	CHECK(v != NULL);
	CHECK(wsa__json_dump(v, &b));
	CHECK(wsa__buf_append(&b, "", 1));
	CHECK_STR(b.p, want);
	same_chunk(v, want, 0);
	same_chunk(v, want, 250);
	free(want);
	wsa__buf_free(&b);
	json_decref(v);
}

/* A string of len bytes at text (valid UTF-8) is written as jansson
 * writes it, after skip bytes already in the buffer. */
static void same_string_after(const char *text, size_t len, size_t skip)
{
	json_t *v = json_stringn(text, len);
	char *want = json_dumps(v, JSON_ENCODE_ANY);
	struct wsa_buf got = {0};
	size_t i;

	for (i = 0; i < skip; i++)
		CHECK(wsa__buf_append(&got, "-", 1));
	CHECK(v && want);
	CHECK(wsa__json_dump(v, &got));
	CHECK(wsa__buf_append(&got, "", 1));
	if (want)
		CHECK_STR(got.p + skip, want);
	same_chunk(v, want, skip);
	free(want);
	wsa__buf_free(&got);
	json_decref(v);
}

static void same_string(const char *text, size_t len)
{
	same_string_after(text, len, 0);
}

int main(void)
{
	static const char *const cases[] = {
	    "{}",
	    "[]",
	    "\"\"",
	    "0",
	    "-1",
	    "9223372036854775807",
	    "-9223372036854775808",
	    "1.5",
	    "1e300",
	    "1.5e-300",
	    "123456789012345678e5",
	    "0.1",
	    "1e22",
	    "-2.5e-5",
	    "-0.0",
	    "2.0",
	    "1e-7",
	    "true",
	    "false",
	    "null",
	    "{\"type\":\"chat\",\"message\":\"Echo: hi\",\"n\":[1,2,{}]}",
	    "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r\"",
	    "\"bs \\b ff \\f ctl \\u0001 \\u001f del \\u007f nul \\u0000x\"",
	    "\"utf-8: \\u00e9 \\u20ac \\ud83d\\ude00\"",
	    "{\"b\":1,\"a\":2,\"c\":{\"z\":[[[[]]]],\"y\":null}}",
	    "[\"\\u2028\",\"\\ufeff\"]",
	};
	json_t *deep = json_array(), *cur = deep, *self = json_array();
	struct wsa_buf b = {0};
	size_t i;
	int d;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		same(cases[i]);
	/* Each byte that needs an escape (and its neighbours that do not),
	 * at every offset of strings of each length scan_len_next gives, alone
	 * and with a second one after it: every lane of the sixteen- and
	 * eight-byte scans and every length of their tails. */
	{
		static const char *const special[] = {
		    "\"", "\\", "\n", "\x01", "\x1f",	  "\x20",	 "\x7f",
		    "!",  "#",	"[",  "]",    "\xc3\xa9", "\xe2\x82\xac"};
		char text[160];
		size_t len, pos, k, n;

		for (len = 0; len != SCAN_LEN_END; len = scan_len_next(len))
			for (pos = 0; pos <= len; pos++)
				for (k = 0;
				     k < sizeof(special) / sizeof(*special);
				     k++) {
					n = strlen(special[k]);
					memset(text, 'a', len + n);
					memcpy(text + pos, special[k], n);
					same_string(text, len + n);
					if (pos + 2 * n <= len + n) {
						memcpy(text + len, special[k],
						       n);
						same_string(text, len + n);
					}
				}
		same_string("", 0);
	}
	/* Strings of escapes only, which grow the reply sixfold: the room
	 * made for an escape, from an empty buffer and a partly full one. */
	{
		char text[300];
		size_t len;

		memset(text, 0x01, sizeof(text));
		for (len = 0; len < sizeof(text); len += 7) {
			same_string(text, len);
			same_string_after(text, len, 250);
		}
	}
	/* Nesting is bounded; the buffer is left as it was. */
	for (d = 0; d < 600; d++) {
		json_t *next = json_array();

		json_array_append_new(cur, next);
		cur = next;
	}
	CHECK(wsa__buf_append(&b, "x", 1));
	CHECK(!wsa__json_dump(deep, &b));
	CHECK_INT(b.len, 1);
	{
		struct wsa_chunk *c = NULL;

		CHECK(wsa__chunk_append(&c, "x", 1));
		CHECK(!wsa__json_dump_chunk(deep, &c));
		CHECK_INT(wsa__chunk_len(c), 1);
		wsa__chunk_free(&c);
	}
	/* A value that contains itself, through another. */
	{
		json_t *inner = json_array();

		json_array_append(inner, self);
		json_array_append_new(self, inner);
		CHECK(!wsa__json_dump(self, &b));
		json_array_clear(inner); /* break the cycle to free it */
		json_decref(self);
	}
	json_decref(deep);
	wsa__buf_free(&b);
	return check_status("test_json");
}
