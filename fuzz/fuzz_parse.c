/* libFuzzer harness: wsa__json_parse against jansson's json_loadb.
 *
 * parse.h promises the same verdict as json_loadb(JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL) and an equal tree (same types,
 * integers, bit-identical reals, the same string bytes, keys in the same
 * order); json.h promises that wsa__json_dump writes what json_dumps
 * (JSON_COMPACT | JSON_ENCODE_ANY) writes. Every input is held to both, and
 * the dump must parse back to the same tree. Any difference aborts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/codec/json.h"
#include "lib/codec/parse.h"
#include "lib/util/buf.h"
#include "tests/json_same.h"

#define LOAD_FLAGS     (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define DUMP_FLAGS     (JSON_COMPACT | JSON_ENCODE_ANY)
#define DUMP_MAX_DEPTH 512 /* json.c refuses values nested deeper */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_parse: %s\n", what);
	abort();
}

/* Levels below v: 0 for a scalar or an empty container. */
static size_t depth(const json_t *v)
{
	size_t d = 0, i;
	const char *key;
	json_t *item;

	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
		{
			size_t c = depth(item) + 1;
			d = c > d ? c : d;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item)
		{
			size_t c = depth(item) + 1;
			d = c > d ? c : d;
		}
	}
	return d;
}

/* Our dump must be jansson's text, and must parse back to the same tree;
 * it may refuse only a value nested deeper than json.c allows. */
static void check_dump(const json_t *v)
{
	struct wsa_buf b = {0};
	bool oom = false;
	json_t *back;
	char *theirs;

	if (!wsa__json_dump(v, &b)) {
		if (depth(v) <= DUMP_MAX_DEPTH)
			fail("wsa__json_dump refused a value within its depth");
		return;
	}
	theirs = json_dumps(v, DUMP_FLAGS);
	if (!theirs)
		fail("json_dumps failed on a value wsa__json_dump wrote");
	if (strlen(theirs) != b.len || memcmp(theirs, b.p, b.len))
		fail("wsa__json_dump and json_dumps wrote different text");
	free(theirs);
	back = wsa__json_parse(b.p, b.len, &oom);
	if (!back)
		fail("wsa__json_parse refused wsa__json_dump's text");
	if (!same(v, back))
		fail("the dumped text parses to another tree");
	json_decref(back);
	wsa__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	bool oom = true;
	json_t *ours = wsa__json_parse(text, size, &oom);
	json_t *theirs = json_loadb(text, size, LOAD_FLAGS, NULL);

	if (!ours && oom)
		fail("wsa__json_parse reports out of memory");
	if (!ours != !theirs)
		fail(ours ? "wsa__json_parse accepted what json_loadb refuses"
			  : "wsa__json_parse refused what json_loadb accepts");
	if (ours) {
		if (!json_equal(ours, theirs))
			fail("the trees differ (json_equal)");
		if (!same(ours, theirs))
			fail("the trees differ (types, real bits, key order)");
		check_dump(ours);
	}
	json_decref(ours);
	json_decref(theirs);
	return 0;
}
