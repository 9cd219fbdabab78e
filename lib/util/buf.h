/* A growable byte buffer. */
#ifndef WSA_LIB_BUF_H
#define WSA_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct wsa_buf {
	char *p;
	size_t len, cap;
};

/* Make room for n more bytes after len; false when memory is short (the
 * buffer is then unchanged). */
bool wsa__buf_reserve(struct wsa_buf *b, size_t n);

/* Append n bytes; false when memory is short. */
bool wsa__buf_append(struct wsa_buf *b, const void *p, size_t n);

/* Free the storage and empty the buffer. */
void wsa__buf_free(struct wsa_buf *b);

#endif
