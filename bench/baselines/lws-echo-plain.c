/* lws-echo-plain: a WebSocket echo server written the way most
 * libwebsockets servers are: one lws_write per writeable callback.
 *
 * Every message (up to 1 MiB, reassembled over fragments) is queued and
 * echoed with the opcode it came with. No JSON, no auth, any path, default
 * lws buffer sizes, no extensions. A benchmark baseline. */
#include "echo-common.h"

/* One message per callback, then ask for the next callback: lws makes one
 * send() per lws_write, which is what bounds this server. */
static int write_one(struct lws *wsi, struct echo_conn *c)
{
	struct echo_msg *m = c->head;
	enum lws_write_protocol wp =
	    m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;

	/* A short send is not an error: lws keeps the unsent rest and
	 * flushes it before our next writeable callback. */
	if (lws_write(wsi, echo_payload(m), m->len, wp) < 0)
		return -1;
	echo_dequeue(c);
	if (c->head)
		lws_callback_on_writable(wsi);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct echo_server_def def = {
	    .name = "lws-echo-plain",
	    .writeable = write_one,
	};

	return echo_main(argc, argv, &def);
}
