/* libFuzzer harness: wsa__redis_wire_decode, what a node makes of the
 * bytes it reads from a Redis channel (anyone who can publish there
 * chooses them). Whatever it accepts must encode again to a message it
 * decodes to the same fields; nothing it reads may go out of bounds. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsa_fan *m, *again;
	size_t len;
	char *p;

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
