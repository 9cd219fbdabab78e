/* Compact JSON serialisation, without allocating beyond the buffer. */
#ifndef WSA_LIB_JSON_H
#define WSA_LIB_JSON_H

#include <limits.h>
#include <locale.h>

#include <jansson.h>

#include "util/buf.h"

/* Append the compact JSON text of v to b, as json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) would write it. False (b unchanged) when memory is
 * short or v nests deeper than 512 levels (or contains itself). Strings
 * are written as they are: jansson keeps them valid UTF-8. */
bool wsa__json_dump(const json_t *v, struct wsa_buf *b);

/* As wsa__json_dump, appending to the chunk *c (which may be NULL, or
 * move as it grows). */
bool wsa__json_dump_chunk(const json_t *v, struct wsa_chunk **c);

/* A claim set's "iat" in whole seconds; LLONG_MIN when there is none
 * (a token that does not say when it was issued counts as issued before
 * any revocation time). */
static inline long long wsa__json_claims_iat(const json_t *claims)
{
	const json_t *iat = json_object_get(claims, "iat");
	double v = json_number_value(iat);

	if (!json_is_number(iat) || !(v > -9e18 && v < 9e18))
		return LLONG_MIN;
	return (long long)v;
}

/* The "C" locale, made once: numbers are read and written under it, so
 * that a host's LC_NUMERIC (a decimal comma) never reaches the wire.
 * (locale_t)0 when it could not be made. Any thread. */
locale_t wsa__c_locale(void);

#endif
