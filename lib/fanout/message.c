/* Fan-out messages. See message.h. */
#include "fanout/message.h"

#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"

/* Frame len bytes of text at p, room for which the caller made. */
static size_t frame_at(unsigned char *p, const char *text, size_t len)
{
	struct wsa_buf b = {
	    .p = (char *)p, .len = 0, .cap = WSA_FRAME_HEADER_MAX + len};

	wsa__frame_text(&b, text, len);
	return b.len;
}

static struct wsa_fan *fan_alloc(enum wsa_fan_kind kind, const char *text,
				 size_t len, const char *rtext, size_t rlen,
				 const char *name, const char *reason)
{
	size_t nlen = name ? strlen(name) : 0;
	size_t slen = reason ? strlen(reason) : 0;
	size_t flen = text ? WSA_FRAME_HEADER_MAX + len : 0;
	size_t rflen = rtext ? WSA_FRAME_HEADER_MAX + rlen : 0;
	struct wsa_fan *m = malloc(sizeof(*m) + flen + rflen + nlen + slen + 2);
	char *p;

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->kind = kind;
	m->except[0] = '\0';
	m->reply[0] = '\0';
	m->code = 0;
	m->before = 0;
	m->t0 = 0;
	m->pv = 0;
	m->offset = 0;
	m->epoch_id = 0;
	m->remote_only = false;
	/* Framed once, for every loop and every member. */
	m->flen = text ? frame_at(m->data, text, len) : 0;
	m->rframe = m->data + m->flen;
	m->rflen = rtext ? frame_at(m->data + m->flen, rtext, rlen) : 0;
	p = (char *)m->data + m->flen + m->rflen;
	memcpy(p, name ? name : "", nlen + 1);
	m->name = p;
	p += nlen + 1;
	memcpy(p, reason ? reason : "", slen + 1);
	m->reason = reason ? p : NULL;
	return m;
}

struct wsa_fan *wsa__fan_new(enum wsa_fan_kind kind, const char *text,
			     size_t len, const char *name, const char *reason)
{
	return fan_alloc(kind, text, len, NULL, 0, name, reason);
}

struct wsa_fan *wsa__fan_new_reply(const char *text, size_t len,
				   const char *rtext, size_t rlen,
				   const char *topic)
{
	return fan_alloc(WSA_FAN_TOPIC, text, len, rtext, rlen, topic, NULL);
}

void wsa__fan_ref(struct wsa_fan *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void wsa__fan_unref(struct wsa_fan *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}
