/* What the two baseline echo servers share: the command line, the lws
 * context and service loop, and per-connection reassembly and queueing.
 * Each server supplies only what is being compared: its protocol's buffer
 * sizes and the way it writes the queue out in a writeable callback. */
#ifndef ECHO_COMMON_H
#define ECHO_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

/* Largest message echoed, counted over all its fragments. */
#define ECHO_MAX_MESSAGE (1024 * 1024)

/* One message: reassembled in place, then queued as the reply as it is,
 * so the payload is never copied between receive and lws_write. */
struct echo_msg {
	struct echo_msg *next;
	size_t len; /* payload bytes */
	size_t cap; /* payload room after the LWS_PRE headroom */
	bool binary;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

/* Per-connection state; lws allocates it zeroed. */
struct echo_conn {
	struct echo_msg *rx;   /* the message being reassembled, if any */
	struct echo_msg *head; /* replies not yet written, oldest first */
	struct echo_msg *tail;
};

/* Writes some of c's queue; called from LWS_CALLBACK_SERVER_WRITEABLE.
 * Returns 0, or -1 to close the connection. */
typedef int echo_writeable_fn(struct lws *wsi, struct echo_conn *c);

struct echo_server_def {
	const char *name; /* program name, for messages */
	echo_writeable_fn *writeable;
	size_t rx_buffer_size; /* lws_protocols fields; 0 = lws default */
	size_t tx_packet_size;
};

static inline unsigned char *echo_payload(struct echo_msg *m)
{
	return m->buf + LWS_PRE;
}

/* Drops the oldest queued reply. */
void echo_dequeue(struct echo_conn *c);

/* Parses the command line, serves until SIGINT or SIGTERM; returns the exit
 * status. */
int echo_main(int argc, char **argv, const struct echo_server_def *def);

#endif
