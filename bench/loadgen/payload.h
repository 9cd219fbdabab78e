/* The echo messages: what is sent and what a reply must look like.
 *
 * The payload is --size bytes of letters whose first (up to) 8 bytes are the
 * message's sequence number on its connection, in hex.  Replies come back in
 * order on a connection, so the reply to message k must carry k: a lost,
 * repeated or reordered reply is caught, not just a malformed one. */
#ifndef LG_PAYLOAD_H
#define LG_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "lg.h"

struct lg_payload {
	uint8_t *msg;	  /* the message as sent, sequence digits left blank */
	size_t len;	  /* its length */
	size_t body;	  /* offset of the payload in msg */
	size_t size;	  /* --size */
	size_t digits;	  /* sequence digits at the payload's start */
	size_t min_reply; /* wsa: bounds on a reply's length */
	size_t max_reply;
	int wsa;
};

void lg_payload_init(struct lg_payload *pl, enum lg_proto proto, size_t size);
void lg_payload_free(struct lg_payload *pl);

/* Writes message number seq into out (pl->len bytes). */
void lg_payload_fill(const struct lg_payload *pl, uint8_t *out, uint32_t seq);

/* Whether p[0..n) is the reply to message number seq: for raw, the same
 * bytes; for wsa, an object that starts with {"type":"chat", has a
 * plausible length and carries "Echo: <payload>". */
int lg_payload_check(const struct lg_payload *pl, const uint8_t *p, size_t n,
		     uint32_t seq);

#endif
