/* The frame codec alone: client frame headers as RFC 6455 5.2 and 5.5
 * read them (every rule that closes with 1002, the three length forms,
 * a header cut at every byte), and unmasking from any offset against
 * the byte-at-a-time definition. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/codec/frame.h"

/* A masked client frame header announcing len bytes into p (key
 * 1,2,3,4); returns its length. */
static size_t head(unsigned char *p, unsigned b0, uint64_t len)
{
	size_t n = 2;
	int i;

	p[0] = (unsigned char)b0;
	if (len < 126) {
		p[1] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		p[1] = 0x80 | 126;
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
		n = 4;
	} else {
		p[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			p[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		n = 10;
	}
	for (i = 0; i < 4; i++)
		p[n + i] = (unsigned char)(i + 1);
	return n + 4;
}

/* The three length forms, each header cut at every byte first. */
static void check_lengths(void)
{
	static const uint64_t lens[] = {0,     125,   126,
					65535, 65536, (1ull << 63) - 1};
	unsigned char p[16];
	struct wsa_frame_in f;
	size_t i, n, cut;

	for (i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
		n = head(p, 0x81, lens[i]);
		for (cut = 0; cut < n; cut++)
			CHECK_INT(wsa__frame_parse(p, cut, &f), 0);
		CHECK_INT(wsa__frame_parse(p, n, &f), (int)n);
		CHECK(f.len == lens[i] && f.op == 1 && f.fin);
		CHECK(f.key[0] == 1 && f.key[3] == 4);
	}
	n = head(p, 0x00, 7); /* a continuation, not final */
	CHECK_INT(wsa__frame_parse(p, n, &f), (int)n);
	CHECK(f.op == 0 && !f.fin && f.len == 7);
}

/* What closes with 1002, found on the first two bytes where it can be. */
static void check_refused(void)
{
	unsigned char p[16];
	struct wsa_frame_in f;
	unsigned op;
	int rsv;

	for (rsv = 1; rsv < 8; rsv++) {
		head(p, 0x81 | (unsigned)rsv << 4, 5);
		CHECK_INT(wsa__frame_parse(p, 2, &f), -1);
	}
	for (op = 0; op < 16; op++) {
		bool reserved = (op > 2 && op < 8) || op > 10;

		head(p, 0x80 | op, 5);
		CHECK_INT(wsa__frame_parse(p, 6, &f), reserved ? -1 : 6);
	}
	head(p, 0x81, 5);
	p[1] &= 0x7f; /* unmasked */
	CHECK_INT(wsa__frame_parse(p, 2, &f), -1);
	head(p, 0x09, 5); /* a ping, not final */
	CHECK_INT(wsa__frame_parse(p, 2, &f), -1);
	head(p, 0x89, 125);
	CHECK_INT(wsa__frame_parse(p, 6, &f), 6);
	head(p, 0x8a, 126); /* a pong over 125 bytes */
	CHECK_INT(wsa__frame_parse(p, 2, &f), -1);
	head(p, 0x88, 65536);
	CHECK_INT(wsa__frame_parse(p, 2, &f), -1);
	head(p, 0x81, 65536);
	p[2] = 0x80; /* the 64-bit length's top bit */
	CHECK_INT(wsa__frame_parse(p, 14, &f), -1);
}

/* Unmasking from every offset, every length up to 40, in place. */
static void check_unmask(void)
{
	static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
	unsigned char buf[48], want[48];
	size_t pos, n, i;

	for (pos = 0; pos < 9; pos++)
		for (n = 0; n <= 40; n++) {
			for (i = 0; i < n; i++)
				buf[i] = want[i] = (unsigned char)(i * 7 + pos);
			for (i = 0; i < n; i++)
				want[i] ^= key[(pos + i) & 3];
			wsa__frame_unmask(buf, n, key, pos);
			CHECK(!memcmp(buf, want, n));
		}
}

int main(void)
{
	check_lengths();
	check_refused();
	check_unmask();
	return check_status("frame");
}
