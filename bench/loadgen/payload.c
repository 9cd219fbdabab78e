/* Echo messages and the check of their replies. */
#include <stdlib.h>
#include <string.h>

#include "payload.h"

#define WSA_HEAD   "{\"type\":\"chat\",\"message\":\""
#define WSA_TAIL   "\"}"
#define REPLY_TYPE "{\"type\":\"chat\""
#define REPLY_HEAD "{\"type\":\"chat\",\"message\":\"Echo: "
#define ECHO_MARK  "\"Echo: "
#define LIT_LEN(s) (sizeof(s) - 1)

void lg_payload_init(struct lg_payload *pl, enum lg_proto proto, size_t size)
{
	size_t i;

	memset(pl, 0, sizeof(*pl));
	pl->wsa = proto == LG_WSA;
	pl->size = size;
	pl->digits = size < 8 ? size : 8;
	pl->body = pl->wsa ? LIT_LEN(WSA_HEAD) : 0;
	pl->len = size + (pl->wsa ? LIT_LEN(WSA_HEAD) + LIT_LEN(WSA_TAIL) : 0);
	pl->msg = lg_xrealloc(NULL, pl->len + 1);
	if (pl->wsa)
		memcpy(pl->msg, WSA_HEAD, LIT_LEN(WSA_HEAD));
	/* Letters only: nothing that JSON would escape. */
	for (i = 0; i < size; i++)
		pl->msg[pl->body + i] = (uint8_t)('a' + i % 26);
	if (pl->wsa)
		memcpy(pl->msg + pl->body + size, WSA_TAIL, LIT_LEN(WSA_TAIL));
	/* The echo-chat reply adds "Echo: ", "from" and a timestamp; allow
	 * for an "id" and other small members a peer may add. */
	pl->min_reply = LIT_LEN(REPLY_HEAD) + size + 2;
	pl->max_reply = pl->min_reply + 256;
}

void lg_payload_free(struct lg_payload *pl)
{
	free(pl->msg);
	pl->msg = NULL;
}

static void put_digits(uint8_t *out, size_t digits, uint32_t seq)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = digits; i-- > 0; seq >>= 4)
		out[i] = (uint8_t)hex[seq & 15];
}

void lg_payload_fill(const struct lg_payload *pl, uint8_t *out, uint32_t seq)
{
	memcpy(out, pl->msg, pl->len);
	put_digits(out + pl->body, pl->digits, seq);
}

/* Whether p (at least pl->size bytes) is the payload of message seq. */
static int same_payload(const struct lg_payload *pl, const uint8_t *p,
			uint32_t seq)
{
	uint8_t d[8];

	put_digits(d, pl->digits, seq);
	return !memcmp(p, d, pl->digits) &&
	       !memcmp(p + pl->digits, pl->msg + pl->body + pl->digits,
		       pl->size - pl->digits);
}

static int wsa_reply_ok(const struct lg_payload *pl, const uint8_t *p, size_t n,
			uint32_t seq)
{
	const uint8_t *echo;

	if (n < pl->min_reply || n > pl->max_reply ||
	    memcmp(p, REPLY_TYPE, LIT_LEN(REPLY_TYPE)))
		return 0;
	/* echo-chat's member order first; any order after that. */
	if (!memcmp(p, REPLY_HEAD, LIT_LEN(REPLY_HEAD)))
		echo = p + LIT_LEN(REPLY_HEAD);
	else if ((echo = memmem(p, n, ECHO_MARK, LIT_LEN(ECHO_MARK))))
		echo += LIT_LEN(ECHO_MARK);
	else
		return 0;
	if ((size_t)(p + n - echo) < pl->size + 1)
		return 0;
	return same_payload(pl, echo, seq) && echo[pl->size] == '"';
}

int lg_payload_check(const struct lg_payload *pl, const uint8_t *p, size_t n,
		     uint32_t seq)
{
	if (pl->wsa)
		return wsa_reply_ok(pl, p, n, seq);
	return n == pl->size && same_payload(pl, p, seq);
}
