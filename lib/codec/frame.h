/* RFC 6455 frames as the server writes them: bytes in, bytes out, no I/O.
 * Server frames are never masked. */
#ifndef WSA_LIB_FRAME_H
#define WSA_LIB_FRAME_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
