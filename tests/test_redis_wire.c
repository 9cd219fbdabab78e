/* lib/fanout/redis_wire.c alone: messages between nodes survive the
 * trip whole and every malformed or truncated one is refused; a node
 * drops its own; the shard of a name is stable and moves only to a new
 * instance when one is added; Redis URLs are read or refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/fanout/message.h"
#include "lib/fanout/redis_wire.h"

static const char node_a[] = "0123456789abcdef0123456789abcdef";
static const char node_b[] = "fedcba9876543210fedcba9876543210";

/* m encoded by node_a into a new buffer of *len bytes. */
static char *encode(const struct wsa_fan *m, size_t *len)
{
	char *p;

	*len = wsa__redis_wire_len(m);
	p = malloc(*len);
	wsa__redis_wire_encode(m, node_a, p);
	return p;
}

/* m and what node_b decodes of it are the same message. */
static void round_trip(struct wsa_fan *m)
{
	size_t len;
	char *p = encode(m, &len);
	struct wsa_fan *d = wsa__redis_wire_decode(p, len, node_b);

	CHECK(d != NULL);
	if (d) {
		CHECK_INT(d->kind, m->kind);
		CHECK_STR(d->name, m->name);
		CHECK_INT(d->code, m->code);
		CHECK_INT(d->before, m->before);
		CHECK_INT(d->pv, m->pv);
		CHECK(!d->reason == !m->reason);
		if (d->reason && m->reason)
			CHECK_STR(d->reason, m->reason);
		CHECK_INT(d->flen, m->flen);
		CHECK(!memcmp(d->data, m->data, m->flen));
		wsa__fan_unref(d);
	}
	/* Its sender drops it; every shorter prefix is refused. */
	CHECK(wsa__redis_wire_decode(p, len, node_a) == NULL);
	for (size_t n = 0; n < len; n++)
		CHECK(wsa__redis_wire_decode(p, n, node_b) == NULL);
	free(p);
	wsa__fan_unref(m);
}

static void messages(void)
{
	static char big[70000];
	struct wsa_fan *m;

	round_trip(wsa__fan_new(WSA_FAN_TOPIC, "{\"type\":\"chat\"}", 15,
				"room 1", NULL));
	m = wsa__fan_new(WSA_FAN_TOPIC, "{}", 2, "room 2", NULL);
	m->pv = 1796600000123456ULL;
	round_trip(m);
	round_trip(wsa__fan_new(WSA_FAN_UID, "{}", 2, "alice", NULL));
	round_trip(wsa__fan_new(WSA_FAN_ROUTE, "{\"a\":\"\xc3\xa9\"}", 10,
				"/ws/chat", NULL));
	/* Frames with 16- and 64-bit lengths. */
	memset(big, 'x', sizeof(big));
	big[0] = '"';
	big[300] = '"';
	round_trip(wsa__fan_new(WSA_FAN_TOPIC, big, 301, "r", NULL));
	big[sizeof(big) - 1] = '"';
	round_trip(wsa__fan_new(WSA_FAN_TOPIC, big, sizeof(big), "r", NULL));
	m = wsa__fan_new(WSA_FAN_CLOSE_UID, NULL, 0, "bob", "Logged out");
	m->code = 4001;
	round_trip(m);
	m = wsa__fan_new(WSA_FAN_REVOKE, NULL, 0, NULL, NULL);
	m->code = 1008;
	m->before = 1796600000;
	round_trip(m);
	m = wsa__fan_new(WSA_FAN_CLOSE_UID, NULL, 0, "bob", "");
	m->code = 1000;
	round_trip(m);
}

/* A valid message changed at one place is refused. */
static void refused(void)
{
	struct wsa_fan *m =
	    wsa__fan_new(WSA_FAN_TOPIC, "{\"m\":\"hi\"}", 10, "room", NULL);
	struct wsa_fan *c = wsa__fan_new(WSA_FAN_CLOSE_UID, NULL, 0, "u", NULL);
	size_t len, clen;
	char *p = encode(m, &len), *q = malloc(len + 1);
	char *cp;
	/* Offsets: the magic, the kind, the name's first byte, the text's
	 * first byte, and the length of the name. */
	const size_t head = 4 + 32 + 1 + 2 + 8 + 8 + 22;

	memcpy(q, p, len);
	q[0] = 'x';
	CHECK(wsa__redis_wire_decode(q, len, node_b) == NULL);
	memcpy(q, p, len);
	q[36] = 9; /* no such kind */
	CHECK(wsa__redis_wire_decode(q, len, node_b) == NULL);
	memcpy(q, p, len);
	q[head + 4] = '\0'; /* a NUL in the name */
	CHECK(wsa__redis_wire_decode(q, len, node_b) == NULL);
	memcpy(q, p, len);
	q[len - 3] = (char)0xff; /* the text is not UTF-8 */
	CHECK(wsa__redis_wire_decode(q, len, node_b) == NULL);
	memcpy(q, p, len);
	q[head + 3] = 100; /* the name runs past the end */
	CHECK(wsa__redis_wire_decode(q, len, node_b) == NULL);
	memcpy(q, p, len);
	q[len] = 'x'; /* a byte too many */
	CHECK(wsa__redis_wire_decode(q, len + 1, node_b) == NULL);
	/* A close whose code no close frame may carry. */
	c->code = 1000;
	cp = encode(c, &clen);
	cp[37] = 0;
	cp[38] = 1;
	CHECK(wsa__redis_wire_decode(cp, clen, node_b) == NULL);
	free(cp);
	free(p);
	free(q);
	wsa__fan_unref(m);
	wsa__fan_unref(c);
}

#define NAMES 20000

static void shards(void)
{
	static unsigned at[9][NAMES];
	unsigned counts[8] = {0};
	char name[32];
	bool stable = true, moves_only_to_new = true;

	for (unsigned i = 0; i < NAMES; i++) {
		size_t len = (size_t)snprintf(name, sizeof(name), "room-%u", i);

		for (unsigned n = 1; n <= 8; n++) {
			at[n][i] = wsa__redis_shard(name, len, n);
			if (at[n][i] >= n ||
			    at[n][i] != wsa__redis_shard(name, len, n))
				stable = false;
			if (n > 1 && at[n][i] != at[n - 1][i] &&
			    at[n][i] != n - 1)
				moves_only_to_new = false;
		}
		counts[at[8][i]]++;
	}
	CHECK(stable);
	CHECK(moves_only_to_new);
	/* Spread evenly: each of 8 within a tenth of its share. */
	for (unsigned k = 0; k < 8; k++)
		CHECK(counts[k] > NAMES / 8 * 9 / 10 &&
		      counts[k] < NAMES / 8 * 11 / 10);
	/* The same on every node: a value fixed by the algorithm. */
	CHECK_INT(wsa__redis_shard("lobby", 5, 1), 0);
	CHECK_INT(wsa__redis_shard("lobby", 5, 2),
		  wsa__redis_shard("lobby", 5, 2));
}

static void url(const char *text, const char *host, int port, int db,
		const char *user, const char *password)
{
	struct wsa_redis_url u;

	CHECK(wsa__redis_url_parse(text, NULL));
	CHECK(wsa__redis_url_parse(text, &u));
	CHECK_STR(u.host, host);
	CHECK_INT(u.port, port);
	CHECK_INT(u.db, db);
	CHECK(!user == !u.user);
	if (user && u.user)
		CHECK_STR(u.user, user);
	CHECK(!password == !u.password);
	if (password && u.password)
		CHECK_STR(u.password, password);
	wsa__redis_url_free(&u);
}

static void urls(void)
{
	static const char *const bad[] = {
	    "",
	    "redis://",
	    "http://127.0.0.1:6379",
	    "redis://:6379",
	    "redis://h:0",
	    "redis://h:65536",
	    "redis://h:12x",
	    "redis://h:",
	    "redis://h/db",
	    "redis://h/-1",
	    "redis://user@h",
	    "redis://[::1",
	    "redis://h:6379?x",
	    "redis://a@b@c",
	};

	url("redis://127.0.0.1", "127.0.0.1", 6379, 0, NULL, NULL);
	url("redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, NULL, NULL);
	url("redis://localhost:6380/3", "localhost", 6380, 3, NULL, NULL);
	url("redis://localhost/", "localhost", 6379, 0, NULL, NULL);
	url("redis://:s3cret@10.0.0.1:7000/1", "10.0.0.1", 7000, 1, NULL,
	    "s3cret");
	url("redis://app:s3:cret@h", "h", 6379, 0, "app", "s3:cret");
	url("redis://[::1]:6390", "::1", 6390, 0, NULL, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!wsa__redis_url_parse(bad[i], NULL));
		if (wsa__redis_url_parse(bad[i], NULL))
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	CHECK(!wsa__redis_url_parse(NULL, NULL));
}

/* The text of m's frame (a small frame: a 2-byte header). */
static const char *frame_text(const unsigned char *f, size_t flen, char *out)
{
	memcpy(out, f + 2, flen - 2);
	out[flen - 2] = '\0';
	return out;
}

/* A kept publication: stamped with its position on every node; the copy
 * of the member it replies to (with its id) only on the sending node;
 * every truncation and a broken text refused; "OFFSET:EPOCH:" split. */
static void kept(void)
{
	static const char node[] = "0123456789abcdef0123456789abcdef";
	static const char other[] = "fedcba9876543210fedcba9876543210";
	const struct wsa_kept_wire k = {
	    .reply = "AAAAAAAAAAAAAAAAAAAAAA",
	    .except = "BBBBBBBBBBBBBBBBBBBBBB",
	    .topic = "room",
	    .id_text = "\"q1\"",
	    .text = "{\"type\":\"chat\"}",
	    .len = 15,
	};
	size_t len = wsa__redis_kept_len(&k), rest_len, n;
	char *p = malloc(len), text[128], epoch[17];
	unsigned long long off;
	const char *rest;
	struct wsa_fan *m;

	wsa__redis_kept_encode(&k, node, p);
	m = wsa__redis_kept_decode(p, len, 7, "e0", node);
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(frame_text(m->data, m->flen, text),
			  "{\"type\":\"chat\",\"offset\":7,\"epoch\":\"e0\"}");
		CHECK_STR(frame_text(m->rframe, m->rflen, text),
			  "{\"type\":\"chat\",\"offset\":7,\"epoch\":\"e0\","
			  "\"id\":\"q1\"}");
		CHECK_STR(m->reply, k.reply);
		CHECK_STR(m->except, k.except);
		CHECK_STR(m->name, "room");
		CHECK_INT((int)m->offset, 7);
		wsa__fan_unref(m);
	}
	/* Another node has no member to reply to. */
	m = wsa__redis_kept_decode(p, len, 7, "e0", other);
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(m->reply, "");
		CHECK_INT((int)m->rflen, 0);
		wsa__fan_unref(m);
	}
	/* Offset 0: not numbered, no position. */
	m = wsa__redis_kept_decode(p, len, 0, NULL, node);
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(frame_text(m->data, m->flen, text),
			  "{\"type\":\"chat\"}");
		wsa__fan_unref(m);
	}
	for (n = 0; n < len; n++)
		CHECK(wsa__redis_kept_decode(p, n, 1, "e", node) == NULL);
	p[len - 1] = 'x'; /* the text no longer ends its object */
	CHECK(wsa__redis_kept_decode(p, len, 1, "e", node) == NULL);
	free(p);

	CHECK(wsa__redis_kept_split("12:abc:xyz", 10, &off, epoch, &rest,
				    &rest_len));
	CHECK_INT((int)off, 12);
	CHECK_STR(epoch, "abc");
	CHECK_INT((int)rest_len, 3);
	CHECK(!wsa__redis_kept_split("wsa1...", 7, &off, epoch, &rest,
				     &rest_len));
	CHECK(!wsa__redis_kept_split("1:ABC:x", 7, &off, epoch, &rest,
				     &rest_len));
	CHECK(!wsa__redis_kept_split("1::x", 4, &off, epoch, &rest, &rest_len));
	CHECK(!wsa__redis_kept_split("1:abcdefghijklmnopq:x", 21, &off, epoch,
				     &rest, &rest_len));
	CHECK(
	    !wsa__redis_kept_split("1:abc", 5, &off, epoch, &rest, &rest_len));
}

int main(void)
{
	messages();
	kept();
	refused();
	shards();
	urls();
	return check_status("redis-wire");
}
