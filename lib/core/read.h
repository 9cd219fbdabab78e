/* Reading established connections ourselves: plain WebSockets (no TLS,
 * no permessage-deflate) on a loop of our own are read by a libev watcher
 * of ours into one buffer per loop, and their frames parsed where they
 * lie, instead of through libwebsockets, which reads a connection no more
 * than its own per-connection buffer at once. Writes still go through
 * libwebsockets. */
#ifndef WSA_LIB_READ_H
#define WSA_LIB_READ_H

#include <stdbool.h>

struct wsa_conn;
struct wsa_service;

/* Bytes read at once, into the loop's buffer. */
#define WSA_READ_BUF (64 * 1024)

/* What libwebsockets allocates per connection on a server whose
 * connections libwsa may read: enough for the upgrade's rounds and for a
 * connection left to lws (a control frame of 125 bytes must fit). */
#define WSA_LWS_RX_MIN 128

/* Whether svc's plain connections can be read by libwsa: a loop of our
 * own, no TLS, no permessage-deflate. */
bool wsa__read_possible(const struct wsa_service *svc);

/* Make the loop's read buffer; false when memory is short. */
bool wsa__read_init(struct wsa_service *svc);

/* Free it and the list of fresh connections. */
void wsa__read_free(struct wsa_service *svc);

/* conn was just established (LWS_CALLBACK_ESTABLISHED): read it ourselves
 * from the end of this round of the loop, if it is safe then
 * (wsa__read_take). A connection that cannot be listed stays with lws. */
void wsa__read_fresh(struct wsa_conn *conn);

/* The end of a round of the loop, before anything is written: take over
 * the connections established in it, or leave them with lws for good. */
void wsa__read_take(struct wsa_service *svc);

/* Start or stop reading a connection we read (its pauses); bytes held
 * from before are processed first. */
void wsa__read_watch(struct wsa_conn *conn, bool on);

/* End the connection now, from outside lws' callbacks (its socket
 * broke): lws writes what it still holds and closes it; the close
 * handler runs (1006 unless a close was exchanged). */
void wsa__read_end(struct wsa_conn *conn);

/* The connection is closed: stop its watcher, free what it held. */
void wsa__read_forget(struct wsa_conn *conn);

/* Whether the peer is inside a frame (or the stream is broken): a close
 * of its own could not be read as one now. */
bool wsa__read_inside_frame(const struct wsa_conn *conn);

#endif
