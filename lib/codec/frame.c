/* Server frames. See frame.h. */
#include "codec/frame.h"

#include <stdint.h>
#include <string.h>

const unsigned char wsa__frame_ping[5] = {0x89, 0x03, 'w', 's', 'a'};

size_t wsa__frame_header(unsigned char *p, int opcode, size_t len)
{
	int i;

	p[0] = (unsigned char)(0x80 | (opcode & 0x0f));
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

size_t wsa__frame_size(const unsigned char *p)
{
	size_t len = p[1] & 0x7f;
	int i;

	if (len == 126)
		return 4 + ((size_t)p[2] << 8 | p[3]);
	if (len < 126)
		return 2 + len;
	for (len = 0, i = 0; i < 8; i++)
		len = len << 8 | p[2 + i];
	return 10 + len;
}

size_t wsa__frame_header_size(const unsigned char *p)
{
	size_t len = p[1] & 0x7f;

	return len < 126 ? 2 : len == 126 ? 4 : 10;
}

bool wsa__frame_text(struct wsa_buf *out, const char *text, size_t len)
{
	unsigned char hdr[WSA_FRAME_HEADER_MAX];
	size_t was = out->len;

	if (wsa__buf_append(out, hdr, wsa__frame_header(hdr, 0x1, len)) &&
	    wsa__buf_append(out, text, len))
		return true;
	out->len = was;
	return false;
}

size_t wsa__frame_close(unsigned char *p, int code, const char *reason)
{
	size_t rlen = reason ? strlen(reason) : 0;

	rlen = rlen > 123 ? 123 : rlen; /* a control frame holds 125 bytes */
	p[0] = 0x88;
	p[1] = (unsigned char)(2 + rlen);
	p[2] = (unsigned char)(code >> 8);
	p[3] = (unsigned char)code;
	if (rlen)
		memcpy(p + 4, reason, rlen);
	return 4 + rlen;
}

int wsa__frame_parse(const unsigned char *p, size_t n, struct wsa_frame_in *f)
{
	size_t len, need;
	int i;

	if (n < 2)
		return 0;
	f->fin = p[0] & 0x80;
	f->op = p[0] & 0x0f;
	len = p[1] & 0x7f;
	if ((p[0] & 0x70) || !(p[1] & 0x80) || (f->op > 2 && f->op < 8) ||
	    f->op > 10)
		return -1;
	if (f->op & 8 && (!f->fin || len > 125))
		return -1;
	need = len < 126 ? 6 : len == 126 ? 8 : 14;
	if (n < need)
		return 0;
	if (len == 126) {
		f->len = (uint64_t)p[2] << 8 | p[3];
	} else if (len == 127) {
		if (p[2] & 0x80)
			return -1;
		for (f->len = 0, i = 0; i < 8; i++)
			f->len = f->len << 8 | p[2 + i];
	} else {
		f->len = len;
	}
	memcpy(f->key, p + need - 4, 4);
	return (int)need;
}

void wsa__frame_unmask(unsigned char *p, size_t n, const unsigned char key[4],
		       size_t pos)
{
	unsigned char k[8];
	uint64_t m, w;
	size_t i;

	for (i = 0; i < 8; i++)
		k[i] = key[(pos + i) & 3];
	memcpy(&m, k, 8);
	/* Eight bytes at a time: the key, turned to start at pos, repeats
	 * every 4 bytes, so every 8 too. */
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= m;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= k[i & 7];
}
