/* A strict comparison of two jansson values, for the parser's
 * differential tests (tests/test_parse.c, fuzz/fuzz_parse.c). */
#ifndef WSA_TESTS_JSON_SAME_H
#define WSA_TESTS_JSON_SAME_H

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

static bool same(const json_t *a, const json_t *b);

/* Same members with the same keys (bytes and length) in the same order. */
static bool same_object(const json_t *a, const json_t *b)
{
	void *i = json_object_iter((json_t *)a);
	void *j = json_object_iter((json_t *)b);

	if (json_object_size(a) != json_object_size(b))
		return false;
	for (; i && j; i = json_object_iter_next((json_t *)a, i),
		       j = json_object_iter_next((json_t *)b, j)) {
		size_t n = json_object_iter_key_len(i);

		if (n != json_object_iter_key_len(j) ||
		    memcmp(json_object_iter_key(i), json_object_iter_key(j),
			   n) ||
		    !same(json_object_iter_value(i), json_object_iter_value(j)))
			return false;
	}
	return !i && !j;
}

static bool same_array(const json_t *a, const json_t *b)
{
	size_t i, n = json_array_size(a);

	if (n != json_array_size(b))
		return false;
	for (i = 0; i < n; i++)
		if (!same(json_array_get(a, i), json_array_get(b, i)))
			return false;
	return true;
}

/* Stricter than json_equal: an integer is not a real, reals have the same
 * bits (so -0.0 is not 0.0), strings have the same length and bytes
 * (NULs included), and object keys come in the same order. */
static bool same(const json_t *a, const json_t *b)
{
	double x, y;

	if (!a || !b || json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		return same_object(a, b);
	case JSON_ARRAY:
		return same_array(a, b);
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       !memcmp(json_string_value(a), json_string_value(b),
			       json_string_length(a));
	case JSON_INTEGER:
		return json_integer_value(a) == json_integer_value(b);
	case JSON_REAL:
		x = json_real_value(a);
		y = json_real_value(b);
		return !memcmp(&x, &y, sizeof(x));
	default:
		return true;
	}
}

#endif
