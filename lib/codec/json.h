/* Compact JSON serialisation, without allocating beyond the buffer. */
#ifndef WSA_LIB_JSON_H
#define WSA_LIB_JSON_H

#include <locale.h>

#include <jansson.h>

#include "util/buf.h"

/* Append the compact JSON text of v to b, as json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) would write it. False (b unchanged) when memory is
 * short or v nests deeper than 512 levels (or contains itself). Strings
 * are written as they are: jansson keeps them valid UTF-8. */
bool wsa__json_dump(const json_t *v, struct wsa_buf *b);

/* The "C" locale, made once: numbers are read and written under it, so
 * that a host's LC_NUMERIC (a decimal comma) never reaches the wire.
 * (locale_t)0 when it could not be made. Any thread. */
locale_t wsa__c_locale(void);

#endif
