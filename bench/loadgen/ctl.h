/* The control channel between the parent and a worker: a socketpair
 * carrying small typed messages.  Workers send READY (after set-up) and
 * RESULT (at the end), each with their struct lg_result; the parent sends
 * GO (start the timed part) and STOP (close everything and report). */
#ifndef LG_CTL_H
#define LG_CTL_H

#include <stdint.h>

enum { CTL_READY = 1, CTL_RESULT, CTL_GO, CTL_STOP };

/* Both block until the whole message is through; the messages are small
 * and the peer is always reading, so that takes microseconds.  Return 0,
 * or -1 on error (ctl_recv: 1 for a message, 0 at EOF, -1 on error or a
 * message that does not fit). */
int ctl_send(int fd, uint32_t type, const void *body, uint32_t len);
int ctl_recv(int fd, uint32_t *type, void *body, uint32_t cap);

#endif
