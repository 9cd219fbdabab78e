/* Compact JSON serialisation, without allocating beyond the buffer. */
#ifndef WSA_LIB_JSON_H
#define WSA_LIB_JSON_H

#include <jansson.h>

#include "buf.h"

/* Append the compact JSON text of v to b, as json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) would write it. False (b unchanged) when memory is
 * short or v nests deeper than 512 levels (or contains itself). Strings
 * are written as they are: jansson keeps them valid UTF-8. */
bool wsa__json_dump(const json_t *v, struct wsa_buf *b);

#endif
