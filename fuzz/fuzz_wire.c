/* libFuzzer harness: wsa__redis_wire_decode, what a node makes of the
 * bytes it reads from a Redis channel (anyone who can publish there
 * chooses them). Whatever it accepts must encode again to a message it
 * decodes to the same fields; nothing it reads may go out of bounds. The
 * same bytes go through what a kept publication takes: the split of
 * "OFFSET:EPOCH:" and wsa__redis_kept_decode, whose texts must be
 * objects stamped with the position. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fanout/message.h"
#include "lib/fanout/redis_wire.h"

static const char self[] = "ffffffffffffffffffffffffffffffff";

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire: %s\n", what);
	abort();
}

static int same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* A kept publication's bytes: if read, its text is an object that ends
 * with its position (and the reply's copy, its id). */
static void kept(const char *p, size_t size)
{
	unsigned long long offset;
	const char *rest;
	size_t rest_len;
	char epoch[17];
	struct wsa_fan *m;

	if (!wsa__redis_kept_split(p, size, &offset, epoch, &rest, &rest_len))
		rest = p, rest_len = size, offset = 1, strcpy(epoch, "e");
	m = wsa__redis_kept_decode(rest, rest_len, offset, epoch, self);
	if (!m)
		return;
	if (m->flen < 3 || m->data[m->flen - 1] != '}' ||
	    (m->rflen && m->rframe[m->rflen - 1] != '}'))
		fail("a kept publication is not an object");
	if (offset && m->offset != offset)
		fail("a kept publication lost its offset");
	wsa__fan_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsa_fan *m, *again;
	size_t len;
	char *p;

	kept((const char *)data, size);
	m = wsa__redis_wire_decode((const char *)data, size, self);
	if (!m)
		return 0;
	len = wsa__redis_wire_len(m);
	p = malloc(len);
	if (!p)
		fail("out of memory");
	wsa__redis_wire_encode(m, self, p);
	if (wsa__redis_wire_decode(p, len, self))
		fail("its own message was not dropped");
	p[4] = 'a'; /* another node */
	again = wsa__redis_wire_decode(p, len, self);
	if (!again)
		fail("a message it read does not read again");
	if (again->kind != m->kind || again->code != m->code ||
	    again->before != m->before || again->pv != m->pv ||
	    strcmp(again->name, m->name) ||
	    !same_text(again->reason, m->reason) || again->flen != m->flen ||
	    memcmp(again->data, m->data, m->flen))
		fail("a message read again is not the same");
	wsa__fan_unref(again);
	wsa__fan_unref(m);
	free(p);
	return 0;
}
