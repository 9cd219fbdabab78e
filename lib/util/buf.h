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

/* A growable byte buffer held through one pointer (NULL: empty, no
 * storage), its lengths in its own block: for what a connection holds
 * only now and then (a fragmented message, output not yet written), so
 * that an idle one keeps a pointer rather than three words. */
struct wsa_chunk {
	size_t len, cap; /* bytes in p, and room for */
	size_t off;	 /* the owner's: where its unconsumed bytes start */
	char p[];
};

/* Make room for n more bytes after the length, allocating the block if
 * there is none (len and off 0); false when memory is short (the buffer
 * is then unchanged). */
bool wsa__chunk_reserve(struct wsa_chunk **b, size_t n);

/* Append n bytes; false when memory is short. */
bool wsa__chunk_append(struct wsa_chunk **b, const void *p, size_t n);

/* Free the block: the buffer is empty. */
void wsa__chunk_free(struct wsa_chunk **b);

/* The bytes held, 0 without a block. */
static inline size_t wsa__chunk_len(const struct wsa_chunk *b)
{
	return b ? b->len : 0;
}

#endif
