/* Parsing JSON text into jansson values, as json_loadb does but faster. */
#ifndef WSA_LIB_PARSE_H
#define WSA_LIB_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Parse len bytes of JSON text (not NUL-terminated) into a new jansson
 * value, as json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
 * JSON_ALLOW_NUL, NULL) would: it accepts the same texts and builds an
 * equal tree (same types, integers, bit-identical reals, strings and keys in
 * the same order). Every allocation goes through jansson's allocator
 * (json_set_alloc_funcs).
 *
 * Returns the value, a new reference, or NULL. On NULL, *oom (oom may be
 * NULL) tells whether memory ran out (true) or the text is not valid JSON by
 * those rules (false). Safe to call from any thread. */
json_t *wsa__json_parse(const char *text, size_t len, bool *oom);

#endif
