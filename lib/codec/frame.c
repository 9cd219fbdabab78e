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
