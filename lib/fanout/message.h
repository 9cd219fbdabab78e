/* A fan-out message: what to deliver (a frame built once, or a close)
 * and to whom, shared by the loops that deliver it and counted. A leaf:
 * the fan-out module makes and delivers them, brokers carry them. */
#ifndef WSA_LIB_FANOUT_MESSAGE_H
#define WSA_LIB_FANOUT_MESSAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum wsa_fan_kind {
	WSA_FAN_TOPIC,	   /* frame to the members of name (but except) */
	WSA_FAN_ROUTE,	   /* frame to the connections of the route name */
	WSA_FAN_UID,	   /* frame to the connections of uid name */
	WSA_FAN_CLOSE_UID, /* close the connections of uid name */
	WSA_FAN_REVOKE,	   /* close connections whose iat < before */
};

/* One fan-out message, shared (counted) by the loops that deliver it. */
struct wsa_fan {
	atomic_uint refs;
	unsigned long long seq; /* in the order sent, server-wide */
	unsigned long long t0;	/* when it was sent, for metrics; or 0 */
	/* An announcement of the topic's presence at this version (0: not
	 * one): members whose list of users is as new skip it. */
	unsigned long long pv;
	bool remote_only; /* for the other nodes only */
	/* Kept in its topic's history at this offset (0: not kept), in the
	 * epoch of this id (wsa__history_epoch_id). */
	unsigned long long offset, epoch_id;
	enum wsa_fan_kind kind;
	char except[23]; /* a connection id, or "" */
	int code;	 /* closes */
	long long before;
	const char *name;   /* in data: topic, path or uid */
	const char *reason; /* in data, or NULL */
	size_t flen;	    /* the frame: data[0 .. flen) */
	/* The member whose copy is its reply (a connection id, or ""), and
	 * that copy's frame: rframe[0 .. rflen). */
	char reply[23];
	size_t rflen;
	const unsigned char *rframe;
	unsigned char data[];
};

/* A new message of kind with a text frame of the JSON text (len bytes;
 * none for closes), the name and the reason (may be NULL); one
 * reference. NULL when memory is short. */
struct wsa_fan *wsa__fan_new(enum wsa_fan_kind kind, const char *text,
			     size_t len, const char *name, const char *reason);

/* As wsa__fan_new() for a topic, with a second frame of rtext (rlen
 * bytes) for one member, whose reply it is (m->reply, set by the
 * caller). */
struct wsa_fan *wsa__fan_new_reply(const char *text, size_t len,
				   const char *rtext, size_t rlen,
				   const char *topic);

void wsa__fan_ref(struct wsa_fan *m);
void wsa__fan_unref(struct wsa_fan *m);

#endif
