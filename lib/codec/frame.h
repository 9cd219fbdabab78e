/* RFC 6455 frames as the server writes them, and the headers of the
 * frames a client sends: bytes in, bytes out, no I/O. Server frames are
 * never masked; client frames always are. */
#ifndef WSA_LIB_FRAME_H
#define WSA_LIB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The longest frame header: FIN/opcode, length 127 and 8 bytes. */
#define WSA_FRAME_HEADER_MAX 10
/* The longest close frame: header, code, a reason of 123 bytes. */
#define WSA_FRAME_CLOSE_MAX (2 + 2 + 123)

/* Write the header of a final frame of opcode carrying len bytes into p;
 * returns its length. */
size_t wsa__frame_header(unsigned char *p, int opcode, size_t len);

/* The whole length (header included) of the frame written at p. */
size_t wsa__frame_size(const unsigned char *p);

/* The length of the header of the frame written at p. */
size_t wsa__frame_header_size(const unsigned char *p);

/* Append a text frame holding len bytes of text to out; false when
 * memory is short (out then unchanged in length). */
bool wsa__frame_text(struct wsa_buf *out, const char *text, size_t len);

/* Write a close frame with code and reason (may be NULL; cut to 123
 * bytes) into p (WSA_FRAME_CLOSE_MAX bytes); returns its length. */
size_t wsa__frame_close(unsigned char *p, int code, const char *reason);

/* A ping with a three-byte payload (libwebsockets 4.1.6 raises no
 * callback for an empty pong), and its length. */
extern const unsigned char wsa__frame_ping[5];

/* The header of a frame from a client. */
struct wsa_frame_in {
	uint64_t len;	      /* payload bytes */
	unsigned char key[4]; /* masking key */
	unsigned char op;     /* opcode */
	bool fin;	      /* the final fragment of its message */
};

/* The longest client frame header: a 64-bit length and the key. */
#define WSA_FRAME_IN_HEADER_MAX 14

/* Read the header of a client frame from the n bytes at p into f.
 * Returns its length (2 to 14), 0 when the n bytes end inside it, or -1
 * when it breaks RFC 6455 (5.2, 5.5): a reserved bit set (no extension
 * is negotiated where this is used), a reserved opcode, no mask, a
 * 64-bit length with its top bit set, a control frame that is not final
 * or carries more than 125 bytes. */
int wsa__frame_parse(const unsigned char *p, size_t n, struct wsa_frame_in *f);

/* Unmask n payload bytes at p in place, the first of them at offset pos
 * of the payload (the key repeats every 4 bytes). */
void wsa__frame_unmask(unsigned char *p, size_t n, const unsigned char key[4],
		       size_t pos);

#endif
