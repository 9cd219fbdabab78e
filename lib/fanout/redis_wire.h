/* What the nodes of a cluster say to each other through Redis, and where:
 * the format of a fan-out message between nodes, the instance a topic or
 * uid lives on, and the URLs of the instances. No I/O and no state, so
 * each piece is tested alone (tests/test_redis_wire.c). */
#ifndef WSA_LIB_FANOUT_REDIS_WIRE_H
#define WSA_LIB_FANOUT_REDIS_WIRE_H

#include <stdbool.h>
#include <stddef.h>

struct wsa_fan;

/* A node's id: 32 hex digits. */
#define WSA_NODE_ID_LEN 32

/* The instance, of n, that name lives on: a jump consistent hash of the
 * FNV-1a of the name, the same on every node; adding an instance moves
 * only about 1/(n+1) of the names, all to the new one. */
unsigned wsa__redis_shard(const char *name, size_t len, unsigned n);

/* The bytes m takes on the wire. */
size_t wsa__redis_wire_len(const struct wsa_fan *m);

/* Write m, sent by node, into out (wsa__redis_wire_len(m) bytes). */
void wsa__redis_wire_encode(const struct wsa_fan *m,
			    const char node[WSA_NODE_ID_LEN], char *out);

/* The message in p[0 .. len), framed once, with one reference; NULL when
 * node sent it (a node does not deliver its own twice), it is not
 * well formed (lengths, NULs, UTF-8, kind, close code), or memory is
 * short. */
struct wsa_fan *wsa__redis_wire_decode(const char *p, size_t len,
				       const char node[WSA_NODE_ID_LEN]);

/* One instance: redis://[[user]:password@]host[:port][/db]. */
struct wsa_redis_url {
	char *host, *user, *password; /* user, password: NULL for none */
	int port, db;
};

/* Parse url into u (its strings allocated; free them with
 * wsa__redis_url_free), or only check it when u is NULL. False for a
 * malformed URL or, with u, when memory is short. */
bool wsa__redis_url_parse(const char *url, struct wsa_redis_url *u);

void wsa__redis_url_free(struct wsa_redis_url *u);

#endif
