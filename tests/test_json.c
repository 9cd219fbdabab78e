/* The reply serialiser writes what jansson's compact dump writes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/codec/json.h"

static void same(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	struct wsa_buf b = {0};

	CHECK(v != NULL);
	CHECK(wsa__json_dump(v, &b));
	CHECK(wsa__buf_append(&b, "", 1));
	CHECK_STR(b.p, want);
	free(want);
	wsa__buf_free(&b);
	json_decref(v);
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
	/* Each byte that needs an escape, at every offset of strings as long
	 * as a few words: the word-at-a-time scan and its tail. */
	{
		static const char special[] = {'"',  '\\', '\n', 0x01, 0x1f,
					       0x20, 0x7f, '!',	 '#',  '['};
		char text[64];
		size_t len, pos, k;

		for (len = 1; len < 40; len++)
			for (pos = 0; pos < len; pos++)
				for (k = 0; k < sizeof(special); k++) {
					json_t *v;
					struct wsa_buf got = {0};
					char *want;

					memset(text, 'a', len);
					text[pos] = special[k];
					v = json_stringn(text, len);
					want = json_dumps(v, JSON_ENCODE_ANY);
					CHECK(wsa__json_dump(v, &got));
					CHECK(wsa__buf_append(&got, "", 1));
					CHECK_STR(got.p, want);
					free(want);
					wsa__buf_free(&got);
					json_decref(v);
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
