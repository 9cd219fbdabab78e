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

/* A publication kept in a topic's history, as one node hands it to the
 * script that numbers it: what the node knows before its position. */
struct wsa_kept_wire {
	const char *reply;  /* the member whose copy is its reply, or NULL */
	const char *except; /* a connection id, or NULL */
	const char *topic;
	const char *id_text; /* the reply's "id" as JSON text, or NULL */
	const char *text;    /* the object's JSON text */
	size_t len;
};

/* The bytes k takes on the wire. */
size_t wsa__redis_kept_len(const struct wsa_kept_wire *k);

/* Write k, sent by node, into out (wsa__redis_kept_len(k) bytes). */
void wsa__redis_kept_encode(const struct wsa_kept_wire *k,
			    const char node[WSA_NODE_ID_LEN], char *out);

/* The kept publication in p[0 .. len) at offset in epoch, stamped with
 * them (offset 0: not numbered, no position) and framed, with one reference;
 * its copy for the member it replies to is framed only when node sent it (that
 * member is one of node's connections). NULL when it is not well formed or
 * memory is short. */
struct wsa_fan *wsa__redis_kept_decode(const char *p, size_t len,
				       unsigned long long offset,
				       const char *epoch,
				       const char node[WSA_NODE_ID_LEN]);

/* A kept publication as the script publishes it: "OFFSET:EPOCH:" and
 * its wire form. Splits p[0 .. len) into those (*rest, *rest_len); false
 * when it is not that shape (an epoch of 1 to 16 of [0-9a-z]). */
bool wsa__redis_kept_split(const char *p, size_t len,
			   unsigned long long *offset, char epoch[17],
			   const char **rest, size_t *rest_len);

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
