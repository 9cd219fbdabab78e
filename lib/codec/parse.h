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
 * those rules (false). A text it accepts is well-formed UTF-8, all of it
 * (every byte outside its strings is ASCII), so the caller need not check
 * it again (core/conn.c does not). Safe to call from any thread. */
json_t *wsa__json_parse(const char *text, size_t len, bool *oom);

/* A message's members the library reads first, found while it is parsed
 * (a lookup each saved): "type", and "id" when it is a string or a
 * number (what replies carry), borrowed from the message; NULL when
 * absent or when the text is not an object. */
struct wsa_json_head {
	const json_t *type, *id;
};

/* As wsa__json_parse, filling *head. */
json_t *wsa__json_parse_head(const char *text, size_t len, bool *oom,
			     struct wsa_json_head *head);

/* The same, as json_loadb would without JSON_ALLOW_NUL: a string or key
 * holding U+0000 is refused. */
json_t *wsa__json_parse_no_nul(const char *text, size_t len, bool *oom);

/* UTF-8 checked as it arrives, in pieces that may cut a character: the
 * start of a cut one is held for the next piece. All zero to begin. */
struct wsa_utf8 {
	unsigned char held[4];
	unsigned char n; /* bytes held */
};

/* Check len more bytes at data against well-formed UTF-8 (no overlong
 * form, no surrogate, nothing above U+10FFFF). False as soon as a byte
 * breaks it, whatever might follow; true otherwise, with u->n nonzero
 * when the bytes end inside a character (an error only if the text ends
 * there). Safe from any thread on a u of its own. */
bool wsa__utf8_feed(struct wsa_utf8 *u, const void *data, size_t len);

/* Whether len bytes at data are well-formed UTF-8, whole. */
bool wsa__utf8_valid(const void *data, size_t len);

#endif
