/* Fan-out messages. See message.h. */
#include "fanout/message.h"

#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"

struct wsa_fan *wsa__fan_new(enum wsa_fan_kind kind, const char *text,
			     size_t len, const char *name, const char *reason)
{
	size_t nlen = name ? strlen(name) : 0;
	size_t rlen = reason ? strlen(reason) : 0;
	size_t flen = text ? WSA_FRAME_HEADER_MAX + len : 0;
	struct wsa_fan *m = malloc(sizeof(*m) + flen + nlen + rlen + 2);
	struct wsa_buf b;
	char *p;

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->kind = kind;
	m->except[0] = '\0';
	m->code = 0;
	m->before = 0;
	m->t0 = 0;
	m->pv = 0;
	m->remote_only = false;
	m->flen = 0;
	if (text) {
		/* Framed once, for every loop and every member. */
		b.p = (char *)m->data;
		b.len = 0;
		b.cap = flen;
		wsa__frame_text(&b, text, len);
		m->flen = b.len;
	}
	p = (char *)m->data + m->flen;
	memcpy(p, name ? name : "", nlen + 1);
	m->name = p;
	p += nlen + 1;
	memcpy(p, reason ? reason : "", rlen + 1);
	m->reason = reason ? p : NULL;
	return m;
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
