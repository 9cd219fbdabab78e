/* lws-echo-coalesced: the fastest echo libwebsockets 4.1.6 allows.
 *
 * Same behaviour as lws-echo-plain, but the replies queued on a connection
 * are framed here and written together with LWS_WRITE_RAW: lws makes one
 * send() per lws_write, so many small replies per write is what pays. A
 * benchmark baseline. */
#include <stdint.h>
#include <string.h>

#include "echo-common.h"

/* One raw write holds at most this many bytes of whole frames; it equals
 * tx_packet_size, so a batch the socket accepts goes out in one send(). */
#define BATCH (64 * 1024)

/* Bytes written per callback, so one busy connection cannot starve the
 * others: the event loop gets a turn between budgets. */
#define BUDGET (256 * 1024)

#define MAX_HEADER 10 /* unmasked server frame: 2 + 8-byte length */

/* write_alone() puts the header in the headroom lws_write needs anyway. */
_Static_assert(LWS_PRE >= MAX_HEADER, "LWS_PRE too small for a header");

/* Batches are framed here; one service thread, and lws copies whatever it
 * cannot send at once, so the buffer is free again after each write. */
static unsigned char batch[LWS_PRE + BATCH];

/* Writes a server frame header (FIN, opcode, no mask) for len payload bytes;
 * returns its size. */
static size_t frame_header(unsigned char *p, size_t len, bool binary)
{
	int i;

	p[0] = 0x80 | (binary ? 0x2 : 0x1);
	if (len < 126) {
		p[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		p[1] = 126;
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
		return 4;
	}
	p[1] = 127;
	for (i = 0; i < 8; i++)
		p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

/* Writes the oldest reply alone, its header put in the message's own
 * headroom: a reply too big to share a batch is never copied here. */
static int write_alone(struct lws *wsi, struct echo_conn *c)
{
	struct echo_msg *m = c->head;
	unsigned char hdr[MAX_HEADER];
	size_t h = frame_header(hdr, m->len, m->binary);
	unsigned char *p = echo_payload(m) - h;
	size_t n = h + m->len;

	memcpy(p, hdr, h);
	if (lws_write(wsi, p, n, LWS_WRITE_RAW) < 0)
		return -1;
	echo_dequeue(c);
	return (int)n;
}

/* Frames as many queued replies as fit in one batch and writes them with
 * one raw write. Whole frames only: lws sends its own control frames
 * (pong, close) between writes, never inside one. */
static int write_batch(struct lws *wsi, struct echo_conn *c)
{
	unsigned char *p = batch + LWS_PRE;
	size_t n = 0;

	while (c->head && n + MAX_HEADER + c->head->len <= BATCH) {
		struct echo_msg *m = c->head;

		n += frame_header(p + n, m->len, m->binary);
		memcpy(p + n, echo_payload(m), m->len);
		n += m->len;
		echo_dequeue(c);
	}
	if (lws_write(wsi, p, n, LWS_WRITE_RAW) < 0)
		return -1;
	return (int)n;
}

/* Writes batches until the queue is empty, the budget is spent or the
 * socket stops taking data: once lws holds an unsent tail, anything more
 * would only be copied behind it, so wait for the next callback. */
static int write_coalesced(struct lws *wsi, struct echo_conn *c)
{
	size_t sent = 0;
	int n;

	while (c->head && sent < BUDGET && !lws_partial_buffered(wsi)) {
		struct echo_msg *m = c->head;

		/* Alone, or too big to share a batch with another reply. */
		if (!m->next || MAX_HEADER + m->len + MAX_HEADER > BATCH)
			n = write_alone(wsi, c);
		else
			n = write_batch(wsi, c);
		if (n < 0)
			return -1;
		sent += (size_t)n;
	}
	if (c->head)
		lws_callback_on_writable(wsi);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct echo_server_def def = {
	    .name = "lws-echo-coalesced",
	    .writeable = write_coalesced,
	    /* rx_buffer_size stays at lws's default (4 KiB per recv()): a
	     * larger one measured no faster here, and it is allocated for
	     * every connection, idle or not. */
	    /* One send() carries at most tx_packet_size (else 4 KiB +
	     * LWS_PRE + 4): 64 KiB doubles large-message throughput. */
	    .tx_packet_size = BATCH,
	};

	return echo_main(argc, argv, &def);
}
