/* The Redis broker: the in-process broker for this node's loops, and
 * Redis (pub/sub, and a few keys for presence) for the other nodes.
 *
 * One thread of its own runs a libev loop with hiredis' async client, two
 * connections per instance (commands, and subscriptions): the service
 * loops never wait on Redis. They hand it operations through one queue
 * (publishes, the channels they want, joins and leaves), in the order
 * they happen; what it gets back reaches the loops through the broker
 * hooks, on their work queues.
 *
 * Channels: PREFIX:t:TOPIC, PREFIX:u:UID, and PREFIX:all (route broadcasts
 * and revocations, on the first instance). A topic or uid lives on the
 * instance its name maps to by a jump consistent hash. A node subscribes
 * to a channel only while one of its loops wants it.
 *
 * Presence: PREFIX:pn:TOPIC (hash "SESSION\x1fUID" -> 1: this session of
 * a node has the uid in the topic), PREFIX:pu:TOPIC (hash UID -> number
 * of sessions that have it), PREFIX:nt:SESSION (hash TOPIC -> fields of
 * the session there) and PREFIX:nodes (sorted set SESSION -> when it
 * expires, in Redis' own clock). A session is one connection of this node
 * to one instance: a node that reconnects takes a new one and registers
 * its users again, and the old one is reaped. Every node heartbeats and
 * reaps expired sessions once a second; the uids a reap takes out of a
 * topic altogether are announced as leaves by the node that reaped. */
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/parse.h"
#include "fanout/broker.h"
#include "fanout/history.h"
#include "fanout/message.h"
#include "fanout/presence.h"
#include "fanout/redis_wire.h"
#include "util/map.h"
#include "util/workq.h"
#include "wsa.h"

#define PREFIX_MAX     64
#define BEAT_S	       1.0  /* heartbeat and reap */
#define NODE_TTL_MS    5000 /* a session not heard of for this long is dead */
#define BACKOFF_MIN_S  0.1  /* reconnect: first wait, doubled up to max */
#define BACKOFF_MAX_S  3.0
#define QUIT_WAIT_S    1.0 /* at the end, for what is still being written */
#define CONNECT_WAIT_S 5.0 /* for a connection to answer, before a retry */
/* Bytes written to an instance and not yet taken by it beyond which a
 * publish is dropped (counted), so a slow Redis cannot grow this
 * process without bound. */
#define BACKLOG_MAX (64u << 20)

/* ------------------------------------------------------------ scripts */

/* The presence version of a topic moves on with every first and last:
 * past the last one, and never behind Redis' clock in microseconds, so
 * it keeps growing even if Redis loses the key, or lets it expire: a
 * room left empty gives it a minute (SET takes the expiry away), so
 * names clients made up do not stay in Redis. */
#define BUMP_LUA                                                               \
	"local function bump(pv)\n"                                            \
	"  local t = redis.call('TIME')\n"                                     \
	"  local v = math.max((tonumber(redis.call('GET', pv)) or 0) + 1,\n"   \
	"    tonumber(t[1]) * 1000000 + tonumber(t[2]))\n"                     \
	"  redis.call('SET', pv, string.format('%.0f', v))\n"                  \
	"  return v\n"                                                         \
	"end\n"

/* ARGV: prefix, topic, session, uid, record ("1": this session gets the
 * uid). Returns {first (the uid is new in the topic), its uids, the
 * version they were read at}. */
static const char join_lua[] = BUMP_LUA
    "local pn = ARGV[1] .. 'pn:' .. ARGV[2]\n"
    "local pu = ARGV[1] .. 'pu:' .. ARGV[2]\n"
    "local pv = ARGV[1] .. 'pv:' .. ARGV[2]\n"
    "local first = 0\n"
    "if ARGV[5] == '1' and redis.call('HSETNX', pn, ARGV[3] .. '\\31' .. "
    "ARGV[4], '1') == 1 then\n"
    "  redis.call('HINCRBY', ARGV[1] .. 'nt:' .. ARGV[3], ARGV[2], 1)\n"
    "  if redis.call('HINCRBY', pu, ARGV[4], 1) == 1 then\n"
    "    first = 1\n"
    "    bump(pv)\n"
    "  end\n"
    "end\n"
    "return {first, redis.call('HKEYS', pu), "
    "tonumber(redis.call('GET', pv)) or 0}\n";

/* ARGV: prefix, topic, session, uid. Returns {1 when it was the uid's
 * last session in the topic, the version after it}. */
static const char leave_lua[] = BUMP_LUA
    "local pn = ARGV[1] .. 'pn:' .. ARGV[2]\n"
    "local pu = ARGV[1] .. 'pu:' .. ARGV[2]\n"
    "if redis.call('HDEL', pn, ARGV[3] .. '\\31' .. ARGV[4]) == 0 then "
    "return {0, 0} end\n"
    "local nt = ARGV[1] .. 'nt:' .. ARGV[3]\n"
    "if redis.call('HINCRBY', nt, ARGV[2], -1) <= 0 then "
    "redis.call('HDEL', nt, ARGV[2]) end\n"
    "if redis.call('HINCRBY', pu, ARGV[4], -1) > 0 then return {0, 0} "
    "end\n"
    "redis.call('HDEL', pu, ARGV[4])\n"
    "local pv = ARGV[1] .. 'pv:' .. ARGV[2]\n"
    "local v = bump(pv)\n"
    "if redis.call('EXISTS', pu) == 0 then redis.call('PEXPIRE', pv, "
    "60000) end\n"
    "return {1, v}\n";

/* ARGV: prefix, the revocation's time, the message. Keeps the message of
 * the latest revocation (PREFIX:revoked), which a node reads when it
 * connects. */
static const char revoke_lua[] =
    "local at = ARGV[1] .. 'revoked'\n"
    "local cur = tonumber(redis.call('HGET', at, 'before')) or 0\n"
    "if tonumber(ARGV[2]) > cur then\n"
    "  redis.call('HSET', at, 'before', ARGV[2], 'message', ARGV[3])\n"
    "end\n"
    "return 0\n";

/* ARGV: prefix, session, its time to live in ms ("0": dead now, for the
 * others to reap), reap ("1"). Beats for the session, then reaps up to 8
 * expired ones. Returns {topic, uid, version, ...}: the uids that left a
 * topic with them. */
static const char beat_lua[] = BUMP_LUA
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / "
    "1000)\n"
    "local nodes = ARGV[1] .. 'nodes'\n"
    "redis.call('ZADD', nodes, now + tonumber(ARGV[3]), ARGV[2])\n"
    "local gone = {}\n"
    "if ARGV[4] ~= '1' then return gone end\n"
    "for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now, "
    "'LIMIT', 0, 8)) do\n"
    "  local nt = ARGV[1] .. 'nt:' .. node\n"
    "  local p = node .. '\\31'\n"
    "  for _, topic in ipairs(redis.call('HKEYS', nt)) do\n"
    "    local pn = ARGV[1] .. 'pn:' .. topic\n"
    "    local pu = ARGV[1] .. 'pu:' .. topic\n"
    "    for _, f in ipairs(redis.call('HKEYS', pn)) do\n"
    "      if string.sub(f, 1, #p) == p then\n"
    "        redis.call('HDEL', pn, f)\n"
    "        local uid = string.sub(f, #p + 1)\n"
    "        if redis.call('HINCRBY', pu, uid, -1) <= 0 then\n"
    "          redis.call('HDEL', pu, uid)\n"
    "          gone[#gone + 1] = topic\n"
    "          gone[#gone + 1] = uid\n"
    "          local pv = ARGV[1] .. 'pv:' .. topic\n"
    "          gone[#gone + 1] = bump(pv)\n"
    "          if redis.call('EXISTS', pu) == 0 then\n"
    "            redis.call('PEXPIRE', pv, 60000)\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', nt)\n"
    "  redis.call('ZREM', nodes, node)\n"
    "end\n"
    "return gone\n";

/* A topic's history: PREFIX h:TOPIC:s, a stream of its kept
 * publications (id OFFSET-1, fields t: Redis' clock in ms, p: the
 * publication's wire form), :o its last offset, :e its epoch; all three
 * expire together, a time to live after the last publication. A missing
 * epoch or offset is a lost history: a new epoch, from offset 0. */
#define HISTORY_LUA                                                            \
	"local b = ARGV[1] .. 'h:' .. ARGV[2]\n"                               \
	"local s, o, e = b .. ':s', b .. ':o', b .. ':e'\n"                    \
	"local function history(epoch, ttl)\n"                                 \
	"  local ep = redis.call('GET', e)\n"                                  \
	"  if not ep or redis.call('EXISTS', o) == 0 then\n"                   \
	"    ep = epoch\n"                                                     \
	"    redis.call('SET', e, ep, 'PX', ttl)\n"                            \
	"    redis.call('SET', o, 0, 'PX', ttl)\n"                             \
	"    redis.call('DEL', s)\n"                                           \
	"  end\n"                                                              \
	"  return ep\n"                                                        \
	"end\n"                                                                \
	"local function now_ms()\n"                                            \
	"  local t = redis.call('TIME')\n"                                     \
	"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
	"end\n"

/* ARGV: prefix, topic, size, ttl_ms, a new epoch, the topic's channel,
 * the publication. Numbers it, keeps it and publishes
 * "OFFSET:EPOCH:" and it, in one step: every node gets a topic's kept
 * publications in the order of their offsets. Returns the offset. */
static const char keep_lua[] = HISTORY_LUA
    "local ep = history(ARGV[5], ARGV[4])\n"
    "local off = redis.call('INCR', o)\n"
    "redis.call('XADD', s, 'MAXLEN', '~', ARGV[3], off .. '-1', 't', "
    "now_ms(), 'p', ARGV[7])\n"
    "redis.call('PEXPIRE', s, ARGV[4])\n"
    "redis.call('PEXPIRE', o, ARGV[4])\n"
    "redis.call('PEXPIRE', e, ARGV[4])\n"
    "redis.call('PUBLISH', ARGV[6], off .. ':' .. ep .. ':' .. ARGV[7])\n"
    "return off\n";

/* ARGV: prefix, topic, since's offset, since's epoch ("" for none),
 * ttl_ms, a new epoch, size. Returns {epoch, last offset, recovered (1:
 * every publication after since is kept), then offset, publication, ...
 * for those kept after since}. MAXLEN ~ trims whole stream nodes, so the
 * stream may hold more than size: the newest size count as kept. */
static const char recover_lua[] = HISTORY_LUA
    "local ep = history(ARGV[6], ARGV[5])\n"
    "local last = tonumber(redis.call('GET', o))\n"
    "local since = tonumber(ARGV[3])\n"
    "local out = {ep, last, 0}\n"
    "if ARGV[4] ~= ep or since > last then return out end\n"
    "if since == last then out[3] = 1 end\n"
    "local min = now_ms() - tonumber(ARGV[5])\n"
    "local first = true\n"
    "local list = redis.call('XREVRANGE', s, '+', (since + 1) .. '-0', "
    "'COUNT', ARGV[7])\n"
    "for i = #list, 1, -1 do\n"
    "  local en = list[i]\n"
    "  local off = tonumber(string.match(en[1], '^(%d+)'))\n"
    "  if tonumber(en[2][2]) >= min then\n"
    "    if first and off == since + 1 then out[3] = 1 end\n"
    "    first = false\n"
    "    out[#out + 1] = off\n"
    "    out[#out + 1] = en[2][4]\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ---------------------------------------------------------- the state */

enum op_kind { OP_PUBLISH, OP_WANT, OP_JOIN, OP_LEAVE, OP_KEEP, OP_RECOVER };

/* One operation from a loop (any thread) for the Redis thread. */
struct op {
	struct op *next;
	enum op_kind kind;
	unsigned shard;
	unsigned loop;
	bool on;     /* WANT: wanted; JOIN: node's first (record); LEAVE:
		      * node's last */
	bool answer; /* JOIN: call hooks.joined */
	bool again;
	char *chan; /* PUBLISH, WANT */
	size_t chan_len;
	char *topic, *uid, *conn_id; /* JOIN, LEAVE */
	char *payload;		     /* PUBLISH, KEEP */
	size_t payload_len;
	long long revoke_before; /* PUBLISH of a revocation, or 0 */
	unsigned size, ttl_ms;	 /* KEEP, RECOVER: the topic's rule */
	wsa_position since;	 /* RECOVER: epoch "" for none */
};

enum chan_state { CHAN_OFF, CHAN_SUBSCRIBING, CHAN_ON, CHAN_UNSUBSCRIBING };

/* A channel of one instance as this node uses it. */
struct chan {
	struct wsa_map_entry entry; /* in shard->chans, key = name */
	unsigned want;		    /* loops that want it */
	enum chan_state state;
	struct op *waiting, **waiting_tail; /* joins until it is on */
	size_t len;
	char name[];
};

struct redis_broker;

struct shard {
	struct redis_broker *rb;
	unsigned index;
	struct wsa_redis_url url;
	char label[300]; /* host:port, for the log */
	redisAsyncContext *cmd, *sub;
	bool cmd_ready, sub_ready;
	bool up;	    /* both ready since the last loss */
	bool ever_up;	    /* for counting reconnections */
	bool outage_logged; /* once per outage */
	bool marked_dead;   /* the session is dead for the others */
	/* Ops answered alone or lost with a connection: the uids this node
	 * counts are registered again on the next one. */
	bool need_register;
	/* Ops that came before the first connection was made or failed:
	 * not an outage yet, so they wait for it. */
	struct op *pending, **pending_tail;
	char session[33]; /* of the current connection */
	ev_timer retry, connect_wait;
	double backoff;
	struct wsa_map chans;
};

struct redis_broker {
	struct wsa_broker base;
	struct wsa_broker *local; /* this node's loops */
	struct wsa_broker_hooks hooks;
	unsigned nloops;
	struct wsa_workq **queues;
	char node[33]; /* this node: its own messages come back */
	char *prefix;  /* with its ':' */
	size_t prefix_len;
	atomic_ullong *fan_seq;
	atomic_llong *revoked_before;
	const atomic_bool *stopping;
	void (*log)(void *arg, int level, const char *text);
	void *log_arg;

	pthread_mutex_t lock; /* presence, ops, quiesced */
	struct wsa_presence presence;
	struct op *ops, **ops_tail;
	bool quiesced;

	/* The Redis thread's. */
	pthread_t thread;
	struct ev_loop *loop;
	ev_async wake;
	ev_timer beat, quit_timer;
	bool quitting;
	unsigned nshards;
	struct shard *shards;

	atomic_ullong published, received, dropped, reconnects;
	atomic_uint shards_up;
};

/* --------------------------------------------------------------- small */

static void logf_(struct redis_broker *rb, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_(struct redis_broker *rb, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rb->log(rb->log_arg, level, line);
}

static unsigned shard_of(const struct redis_broker *rb, const char *name)
{
	return wsa__redis_shard(name, strlen(name), rb->nshards);
}

/* 16 random bytes as hex. */
static void random_id(char out[33])
{
	unsigned char r[16];
	size_t i;

	randombytes_buf(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* A copy of n bytes and a NUL at p, which moves past them. */
static char *put(char **p, const char *s, size_t n)
{
	char *at = *p;

	memcpy(at, s, n);
	at[n] = '\0';
	*p += n + 1;
	return at;
}

/* The channel of kind for name: PREFIX t:|u: name. */
static size_t chan_name(const struct redis_broker *rb, char *out,
			enum wsa_chan_kind kind, const char *name, size_t n)
{
	memcpy(out, rb->prefix, rb->prefix_len);
	memcpy(out + rb->prefix_len, kind == WSA_CHAN_TOPIC ? "t:" : "u:", 2);
	memcpy(out + rb->prefix_len + 2, name, n);
	out[rb->prefix_len + 2 + n] = '\0';
	return rb->prefix_len + 2 + n;
}

/* ------------------------------------------------------- the op queue */

/* Queue op for the Redis thread (rb->lock held). */
static void op_push(struct redis_broker *rb, struct op *op)
{
	op->next = NULL;
	*rb->ops_tail = op;
	rb->ops_tail = &op->next;
}

/* Hand op to the Redis thread and wake it; once the server is stopping
 * (quiesced) it is dropped. Any thread. */
static void op_hand(struct redis_broker *rb, struct op *op)
{
	pthread_mutex_lock(&rb->lock);
	if (!rb->quiesced) {
		op_push(rb, op);
		op = NULL;
	}
	pthread_mutex_unlock(&rb->lock);
	if (op)
		free(op);
	else
		ev_async_send(rb->loop, &rb->wake);
}

/* A new op with room for the strings (each copied, NUL-terminated). */
static struct op *op_new(enum op_kind kind, const char *topic, const char *uid,
			 const char *conn_id, size_t chan_len,
			 size_t payload_len)
{
	size_t tl = topic ? strlen(topic) : 0, ul = uid ? strlen(uid) : 0;
	size_t cl = conn_id ? strlen(conn_id) : 0;
	struct op *op =
	    malloc(sizeof(*op) + tl + ul + cl + chan_len + payload_len + 5);
	char *p;

	if (!op)
		return NULL;
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	p = (char *)(op + 1);
	op->topic = topic ? put(&p, topic, tl) : NULL;
	op->uid = uid ? put(&p, uid, ul) : NULL;
	op->conn_id = conn_id ? put(&p, conn_id, cl) : NULL;
	op->chan = p;
	op->chan_len = chan_len;
	p += chan_len + 1;
	op->payload = p;
	op->payload_len = payload_len;
	return op;
}

/* --------------------------------------------------- hooks on the loops */

/* A presence change or a join's answer for a loop. */
struct hook_work {
	struct wsa_work work;
	struct redis_broker *rb;
	bool is_joined;
	struct wsa_presence_change ch; /* its strings are the work's */
	json_t *users;
};

static void hook_run(struct wsa_work *w, void *ctx)
{
	struct hook_work *h = (struct hook_work *)(void *)w;

	if (h->is_joined)
		h->rb->hooks.joined(ctx, NULL, h->ch.conn_id, h->ch.topic,
				    h->users, h->ch.version);
	else
		h->rb->hooks.presence(ctx, NULL, &h->ch);
	json_decref(h->users);
	free(h);
}

static void hook_drop(struct wsa_work *w)
{
	struct hook_work *h = (struct hook_work *)(void *)w;

	json_decref(h->users);
	free(h);
}

/* Have loop call a hook: a presence change (is_joined false) or a join's
 * answer (takes users). Dropped without memory, as a loop of one would
 * drop it. */
static void hook_post(struct redis_broker *rb, unsigned loop, bool is_joined,
		      const struct wsa_presence_change *ch, json_t *users)
{
	size_t tl = strlen(ch->topic), ul = ch->uid ? strlen(ch->uid) : 0;
	size_t cl = ch->conn_id ? strlen(ch->conn_id) : 0;
	struct hook_work *h = malloc(sizeof(*h) + tl + ul + cl + 3);
	char *p;

	if (!h) {
		json_decref(users);
		return;
	}
	h->work.run = hook_run;
	h->work.drop = hook_drop;
	h->rb = rb;
	h->is_joined = is_joined;
	h->ch = *ch;
	h->users = users;
	p = (char *)(h + 1);
	h->ch.topic = put(&p, ch->topic, tl);
	h->ch.uid = ch->uid ? put(&p, ch->uid, ul) : NULL;
	h->ch.conn_id = ch->conn_id ? put(&p, ch->conn_id, cl) : NULL;
	wsa__workq_push(rb->queues[loop < rb->nloops ? loop : 0], &h->work);
}

/* Tell op's loop that its uid came (joined) or went, at version. */
static void post_change(struct redis_broker *rb, const struct op *op,
			bool joined, unsigned long long version)
{
	struct wsa_presence_change ch = {
	    .topic = op->topic,
	    .uid = op->uid,
	    .conn_id = op->conn_id,
	    .joined = joined,
	    /* A registration after a loss: this node's members knew. */
	    .remote_only = !op->conn_id,
	    .version = version,
	};

	hook_post(rb, op->loop, false, &ch, NULL);
}

/* Answer op's join on its loop with users, read at version. */
static void post_joined(struct redis_broker *rb, const struct op *op,
			json_t *users, unsigned long long version)
{
	struct wsa_presence_change ch = {
	    .topic = op->topic,
	    .conn_id = op->conn_id,
	    .version = version,
	};

	hook_post(rb, op->loop, true, &ch, users);
}

/* This node's users of topic, as a new array; NULL without memory. */
static json_t *node_users(struct redis_broker *rb, const char *topic)
{
	return wsa__presence_users(&rb->presence, &rb->lock, topic, NULL);
}

/* Answer a join or leave as a lone node would: Redis is away. Versions
 * are the cluster's, so none is given: nothing is held back. */
static void recover_alone(struct redis_broker *rb, const struct op *op);
static void keep_alone(struct redis_broker *rb, const struct op *op);

static void answer_alone(struct redis_broker *rb, const struct op *op)
{
	if (op->kind == OP_RECOVER) {
		recover_alone(rb, op);
		return;
	}
	if (op->kind == OP_KEEP) {
		keep_alone(rb, op);
		return;
	}
	if (op->kind == OP_LEAVE) {
		if (op->on && !atomic_load(rb->stopping))
			post_change(rb, op, false, 0);
		return;
	}
	if (op->on && op->conn_id)
		post_change(rb, op, true, 0);
	if (op->answer)
		post_joined(rb, op, node_users(rb, op->topic), 0);
}

/* A recovery's answer for a loop: what the member missed, the topic's
 * position, and whether nothing was lost. */
struct recover_work {
	struct wsa_work work;
	struct redis_broker *rb;
	char *topic, *conn_id;
	struct wsa_fan **missed;
	size_t n;
	bool has_now, recovered;
	wsa_position now;
};

static void recover_free(struct recover_work *w)
{
	while (w->n)
		wsa__fan_unref(w->missed[--w->n]);
	free(w->missed);
	free(w);
}

static void recover_run(struct wsa_work *work, void *ctx)
{
	struct recover_work *w = (struct recover_work *)(void *)work;

	/* The hook takes the references. */
	w->rb->hooks.recovered(ctx, NULL, w->conn_id, w->topic, w->missed, w->n,
			       w->has_now ? &w->now : NULL, w->recovered);
	w->n = 0;
	recover_free(w);
}

static void recover_drop(struct wsa_work *work)
{
	recover_free((struct recover_work *)(void *)work);
}

/* A recovery's answer, empty, for op's loop; its missed ones go in by
 * recover_add. NULL without memory. */
static struct recover_work *recover_work_new(struct redis_broker *rb,
					     const struct op *op, size_t cap)
{
	size_t tl = strlen(op->topic), cl = strlen(op->conn_id);
	struct recover_work *w = calloc(1, sizeof(*w) + tl + cl + 2);
	char *p;

	if (!w)
		return NULL;
	w->missed = cap ? calloc(cap, sizeof(*w->missed)) : NULL;
	if (cap && !w->missed) {
		free(w);
		return NULL;
	}
	w->work.run = recover_run;
	w->work.drop = recover_drop;
	w->rb = rb;
	p = (char *)(w + 1);
	w->topic = put(&p, op->topic, tl);
	w->conn_id = put(&p, op->conn_id, cl);
	return w;
}

static void recover_post(struct redis_broker *rb, const struct op *op,
			 struct recover_work *w)
{
	wsa__workq_push(rb->queues[op->loop < rb->nloops ? op->loop : 0],
			&w->work);
}

/* A recovery answered without Redis: nothing missed can be found, and
 * the position is unknown. Without memory the member gets no answer and
 * its join none either (as a lost message would do). */
static void recover_alone(struct redis_broker *rb, const struct op *op)
{
	struct recover_work *w = recover_work_new(rb, op, 0);

	if (w)
		recover_post(rb, op, w);
}

/* A kept publication its instance did not take: delivered on this node
 * without a position (the guarantee is "at most once" while Redis is
 * away). */
static void keep_alone(struct redis_broker *rb, const struct op *op)
{
	struct wsa_fan *m = wsa__redis_kept_decode(op->payload, op->payload_len,
						   0, NULL, rb->node);

	atomic_fetch_add_explicit(&rb->dropped, 1, memory_order_relaxed);
	if (!m)
		return;
	m->seq = atomic_fetch_add(rb->fan_seq, 1) + 1;
	rb->local->ops->publish(rb->local, m, -1);
}

/* ------------------------------------------------- messages to nodes */

/* The channel and instance m goes to. */
static size_t fan_chan(const struct redis_broker *rb, const struct wsa_fan *m,
		       char *out, unsigned *shard)
{
	switch (m->kind) {
	case WSA_FAN_TOPIC:
		*shard = shard_of(rb, m->name);
		return chan_name(rb, out, WSA_CHAN_TOPIC, m->name,
				 strlen(m->name));
	case WSA_FAN_UID:
	case WSA_FAN_CLOSE_UID:
		*shard = shard_of(rb, m->name);
		return chan_name(rb, out, WSA_CHAN_USER, m->name,
				 strlen(m->name));
	default:
		*shard = 0;
		memcpy(out, rb->prefix, rb->prefix_len);
		memcpy(out + rb->prefix_len, "all", 4);
		return rb->prefix_len + 3;
	}
}

/* The op that publishes m to the other nodes; NULL without memory. */
static struct op *fan_encode(const struct redis_broker *rb,
			     const struct wsa_fan *m)
{
	struct op *op = op_new(OP_PUBLISH, NULL, NULL, NULL,
			       rb->prefix_len + 2 + strlen(m->name) + 4,
			       wsa__redis_wire_len(m));

	if (!op)
		return NULL;
	op->chan_len = fan_chan(rb, m, op->chan, &op->shard);
	wsa__redis_wire_encode(m, rb->node, op->payload);
	if (m->kind == WSA_FAN_REVOKE)
		op->revoke_before = m->before;
	return op;
}

/* -------------------------------------------------- the Redis thread */

static void shard_connect(struct shard *s);
static void chan_subscribe(struct shard *s, struct chan *c);

static struct chan *chan_get(struct shard *s, const char *name, size_t len,
			     bool make)
{
	struct chan *c = wsa__map_getn(&s->chans, name, len);

	if (c || !make)
		return c;
	c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		return NULL;
	memcpy(c->name, name, len);
	c->len = len;
	c->waiting_tail = &c->waiting;
	wsa__map_entry_set(&c->entry, c->name, len, c);
	if (!wsa__map_put(&s->chans, &c->entry)) {
		free(c);
		return NULL;
	}
	return c;
}

/* Forget a channel nobody wants that is off. */
static void chan_tidy(struct shard *s, struct chan *c)
{
	if (c->want || c->state != CHAN_OFF || c->waiting)
		return;
	wsa__map_deln(&s->chans, c->name, c->len);
	free(c);
}

static void run_presence(struct shard *s, struct op *op);

/* The joins (and leaves behind them) waiting for c: run now (it is on),
 * or answered alone. */
static void chan_release(struct shard *s, struct chan *c)
{
	struct op *op = c->waiting, *next;

	c->waiting = NULL;
	c->waiting_tail = &c->waiting;
	for (; op; op = next) {
		next = op->next;
		if (c->state == CHAN_ON && s->cmd_ready) {
			run_presence(s, op);
		} else {
			answer_alone(s->rb, op);
			free(op);
		}
	}
}

static void deliver_message(struct shard *s, const redisReply *r)
{
	struct redis_broker *rb = s->rb;
	struct wsa_fan *m;

	const char *rest;
	unsigned long long offset;
	char epoch[WSA_EPOCH_MAX + 1];
	size_t rest_len;

	if (r->element[2]->type != REDIS_REPLY_STRING)
		return;
	/* A kept publication comes back to its own node too: every node
	 * delivers a topic's in the order Redis numbered them. */
	if (wsa__redis_kept_split(r->element[2]->str, r->element[2]->len,
				  &offset, epoch, &rest, &rest_len))
		m = offset ? wsa__redis_kept_decode(rest, rest_len, offset,
						    epoch, rb->node)
			   : NULL;
	else
		m = wsa__redis_wire_decode(r->element[2]->str,
					   r->element[2]->len, rb->node);
	if (!m)
		return;
	m->seq = atomic_fetch_add(rb->fan_seq, 1) + 1;
	atomic_fetch_add_explicit(&rb->received, 1, memory_order_relaxed);
	rb->local->ops->publish(rb->local, m, -1);
}

/* Everything the subscription connection receives. */
static void on_sub(redisAsyncContext *ac, void *reply, void *arg)
{
	struct shard *s = arg;
	const redisReply *r = reply;
	const char *what;
	struct chan *c;

	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)
		return;
	what = r->element[0]->str;
	if (!strcmp(what, "message")) {
		deliver_message(s, r);
		return;
	}
	c = chan_get(s, r->element[1]->str, r->element[1]->len, false);
	if (!c)
		return;
	if (!strcmp(what, "subscribe")) {
		c->state = CHAN_ON;
		chan_release(s, c);
		if (!c->want) {
			redisAsyncCommand(s->sub, on_sub, s, "UNSUBSCRIBE %b",
					  c->name, c->len);
			c->state = CHAN_UNSUBSCRIBING;
		}
	} else if (!strcmp(what, "unsubscribe")) {
		c->state = CHAN_OFF;
		if (c->want)
			chan_subscribe(s, c);
		else
			chan_tidy(s, c);
	}
}

static void chan_subscribe(struct shard *s, struct chan *c)
{
	if (!s->sub_ready || c->state != CHAN_OFF)
		return;
	if (redisAsyncCommand(s->sub, on_sub, s, "SUBSCRIBE %b", c->name,
			      c->len) == REDIS_OK)
		c->state = CHAN_SUBSCRIBING;
}

/* A join's reply: {first, uids, version}. */
static void on_join(redisAsyncContext *ac, void *reply, void *arg)
{
	struct op *op = arg;
	struct shard *s = ac->data;
	const redisReply *r = reply;
	unsigned long long version;
	json_t *users;
	size_t i;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[2]->type != REDIS_REPLY_INTEGER) {
		answer_alone(s->rb, op);
		free(op);
		return;
	}
	version = (unsigned long long)r->element[2]->integer;
	if (r->element[0]->integer)
		post_change(s->rb, op, true, version);
	if (op->answer) {
		users = json_array();
		for (i = 0; users && i < r->element[1]->elements; i++) {
			const redisReply *u = r->element[1]->element[i];

			if (u->type == REDIS_REPLY_STRING &&
			    wsa__utf8_valid(u->str, u->len) &&
			    json_array_append_new(
				users, json_stringn(u->str, u->len))) {
				json_decref(users);
				users = NULL;
			}
		}
		post_joined(s->rb, op, users, version);
	}
	free(op);
}

static void run_join(struct shard *s, struct op *op)
{
	struct redis_broker *rb = s->rb;

	if (redisAsyncCommand(s->cmd, on_join, op, "EVAL %s 0 %b %s %s %s %s",
			      join_lua, rb->prefix, rb->prefix_len, op->topic,
			      s->session, op->uid,
			      op->on && !op->again ? "1" : "0") != REDIS_OK) {
		answer_alone(rb, op);
		free(op);
	}
}

static void on_leave(redisAsyncContext *ac, void *reply, void *arg);
static void run_recover(struct shard *s, struct op *op);

/* Run a join, a recovery or a leave now: its shard's commands connection
 * is up. */
static void run_presence(struct shard *s, struct op *op)
{
	struct redis_broker *rb = s->rb;

	if (op->kind == OP_JOIN) {
		run_join(s, op);
		return;
	}
	if (op->kind == OP_RECOVER) {
		run_recover(s, op);
		return;
	}
	/* Redis hears only of this node's last connection of the uid in the
	 * topic; during a stop, the others hear it from the reap. */
	if (!op->on || atomic_load(rb->stopping)) {
		free(op);
		return;
	}
	if (redisAsyncCommand(s->cmd, on_leave, op, "EVAL %s 0 %b %s %s %s",
			      leave_lua, rb->prefix, rb->prefix_len, op->topic,
			      s->session, op->uid) != REDIS_OK) {
		answer_alone(rb, op);
		free(op);
	}
}

static void on_leave(redisAsyncContext *ac, void *reply, void *arg)
{
	struct op *op = arg;
	struct shard *s = ac->data;
	const redisReply *r = reply;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER)
		answer_alone(s->rb, op);
	else if (r->element[0]->integer == 1 && !atomic_load(s->rb->stopping))
		post_change(s->rb, op, false,
			    (unsigned long long)r->element[1]->integer);
	free(op);
}

/* A kept publication's reply: its offset, or an error (then it was not
 * numbered, and only this node delivers it). Lost with the connection,
 * it may have been published: it is not delivered again. */
static void on_keep(redisAsyncContext *ac, void *reply, void *arg)
{
	struct op *op = arg;
	struct shard *s = ac->data;
	const redisReply *r = reply;

	if (!r) /* lost with its connection: it may have been published */
		atomic_fetch_add_explicit(&s->rb->dropped, 1,
					  memory_order_relaxed);
	else if (r->type != REDIS_REPLY_INTEGER)
		keep_alone(s->rb, op);
	else
		atomic_fetch_add_explicit(&s->rb->published, 1,
					  memory_order_relaxed);
	free(op);
}

static void run_keep(struct shard *s, struct op *op)
{
	struct redis_broker *rb = s->rb;
	char epoch[WSA_EPOCH_MAX + 1];

	wsa__history_epoch_new(epoch);
	if (redisAsyncCommand(s->cmd, on_keep, op,
			      "EVAL %s 0 %b %s %u %u %s %b %b", keep_lua,
			      rb->prefix, rb->prefix_len, op->topic, op->size,
			      op->ttl_ms, epoch, op->chan, op->chan_len,
			      op->payload, op->payload_len) != REDIS_OK) {
		answer_alone(rb, op);
		free(op);
	}
}

/* Whether e is {offset, publication}'s pair at index i of r. */
static bool recover_pair(const redisReply *r, size_t i)
{
	return r->element[i]->type == REDIS_REPLY_INTEGER &&
	       r->element[i]->integer > 0 &&
	       r->element[i + 1]->type == REDIS_REPLY_STRING;
}

/* A recovery's reply: {epoch, last offset, recovered, offset,
 * publication, ...}. */
static void on_recover(redisAsyncContext *ac, void *reply, void *arg)
{
	struct op *op = arg;
	struct shard *s = ac->data;
	struct redis_broker *rb = s->rb;
	const redisReply *r = reply;
	struct recover_work *w;
	size_t i;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->elements % 2 == 0 || r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[0]->len > WSA_EPOCH_MAX ||
	    r->element[1]->type != REDIS_REPLY_INTEGER ||
	    r->element[2]->type != REDIS_REPLY_INTEGER) {
		recover_alone(rb, op);
		free(op);
		return;
	}
	w = recover_work_new(rb, op, (r->elements - 3) / 2);
	if (!w) {
		free(op);
		return;
	}
	w->has_now = true;
	w->now.offset = (unsigned long long)r->element[1]->integer;
	memcpy(w->now.epoch, r->element[0]->str, r->element[0]->len);
	w->now.epoch[r->element[0]->len] = '\0';
	w->recovered = r->element[2]->integer == 1;
	for (i = 3; i + 1 < r->elements; i += 2) {
		struct wsa_fan *m =
		    recover_pair(r, i)
			? wsa__redis_kept_decode(
			      r->element[i + 1]->str, r->element[i + 1]->len,
			      (unsigned long long)r->element[i]->integer,
			      w->now.epoch, rb->node)
			: NULL;

		if (!m) { /* one that cannot be given: not all of them */
			w->recovered = false;
			continue;
		}
		m->seq = atomic_fetch_add(rb->fan_seq, 1) + 1;
		m->reply[0] = '\0'; /* no reply to anyone now */
		w->missed[w->n++] = m;
	}
	recover_post(rb, op, w);
	free(op);
}

static void run_recover(struct shard *s, struct op *op)
{
	struct redis_broker *rb = s->rb;
	char epoch[WSA_EPOCH_MAX + 1];

	wsa__history_epoch_new(epoch);
	if (redisAsyncCommand(s->cmd, on_recover, op,
			      "EVAL %s 0 %b %s %llu %s %u %s %u", recover_lua,
			      rb->prefix, rb->prefix_len, op->topic,
			      op->since.offset, op->since.epoch, op->ttl_ms,
			      epoch, op->size) != REDIS_OK) {
		answer_alone(rb, op);
		free(op);
	}
}

static void run_op(struct redis_broker *rb, struct op *op)
{
	struct shard *s = &rb->shards[op->shard];
	struct chan *c;

	if (!s->cmd_ready && !s->outage_logged && op->kind != OP_WANT &&
	    !rb->quitting) {
		*s->pending_tail = op;
		s->pending_tail = &op->next;
		op->next = NULL;
		return;
	}
	switch (op->kind) {
	case OP_PUBLISH:
		/* The latest revocation stays, for nodes that come later. */
		if (op->revoke_before && s->cmd_ready)
			redisAsyncCommand(
			    s->cmd, NULL, NULL, "EVAL %s 0 %b %lld %b",
			    revoke_lua, rb->prefix, rb->prefix_len,
			    op->revoke_before, op->payload, op->payload_len);
		if (s->cmd_ready && sdslen(s->cmd->c.obuf) < BACKLOG_MAX &&
		    redisAsyncCommand(s->cmd, NULL, NULL, "PUBLISH %b %b",
				      op->chan, op->chan_len, op->payload,
				      op->payload_len) == REDIS_OK)
			atomic_fetch_add_explicit(&rb->published, 1,
						  memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&rb->dropped, 1,
						  memory_order_relaxed);
		break;
	case OP_WANT:
		c = chan_get(s, op->chan, op->chan_len, op->on);
		if (!c)
			break; /* without memory: the node misses it */
		if (op->on) {
			c->want++;
			chan_subscribe(s, c);
		} else if (c->want && !--c->want && c->state == CHAN_ON) {
			redisAsyncCommand(s->sub, on_sub, s, "UNSUBSCRIBE %b",
					  c->name, c->len);
			c->state = CHAN_UNSUBSCRIBING;
		} else {
			chan_tidy(s, c);
		}
		break;
	case OP_KEEP:
		if (!s->cmd_ready || sdslen(s->cmd->c.obuf) >= BACKLOG_MAX)
			break;
		run_keep(s, op);
		return;
	case OP_JOIN:
	case OP_RECOVER:
	case OP_LEAVE: {
		char name[PREFIX_MAX + 2 + 1026];
		size_t n;

		if (!s->cmd_ready)
			break;
		/* A join or recovery waits for its channel, so that its
		 * answer means the node gets the topic's messages; a leave
		 * waits behind the joins it follows. */
		n = chan_name(rb, name, WSA_CHAN_TOPIC, op->topic,
			      strlen(op->topic));
		c = chan_get(s, name, n, false);
		if (c && (op->kind != OP_LEAVE ? c->state != CHAN_ON
					       : c->waiting != NULL)) {
			*c->waiting_tail = op;
			c->waiting_tail = &op->next;
			op->next = NULL;
		} else {
			run_presence(s, op);
		}
		return;
	}
	}
	if (op->kind != OP_PUBLISH && op->kind != OP_WANT)
		answer_alone(rb, op);
	free(op);
}

/* Take the queued ops, oldest first. */
static void run_ops(struct redis_broker *rb)
{
	struct op *op, *next;

	pthread_mutex_lock(&rb->lock);
	op = rb->ops;
	rb->ops = NULL;
	rb->ops_tail = &rb->ops;
	pthread_mutex_unlock(&rb->lock);
	for (; op; op = next) {
		next = op->next;
		run_op(rb, op);
	}
}

/* ---------------------------------------------- connections and losses */

/* Run the ops that waited for the shard's first connection, in order:
 * now that it is made, or failed (then as during an outage). */
static void run_pending(struct shard *s)
{
	struct op *op = s->pending, *next;

	s->pending = NULL;
	s->pending_tail = &s->pending;
	for (; op; op = next) {
		next = op->next;
		run_op(s->rb, op);
	}
}

static void shard_check_up(struct shard *s)
{
	struct redis_broker *rb = s->rb;

	if (s->up || !s->cmd_ready || !s->sub_ready)
		return;
	ev_timer_stop(rb->loop, &s->connect_wait);
	s->up = true;
	s->outage_logged = false;
	s->backoff = BACKOFF_MIN_S;
	atomic_fetch_add(&rb->shards_up, 1);
	if (s->ever_up)
		atomic_fetch_add_explicit(&rb->reconnects, 1,
					  memory_order_relaxed);
	s->ever_up = true;
	logf_(rb, WSA_LOG_NOTICE, "redis %s: connected", s->label);
}

/* The shard lost a connection (or never got it): tell once, drop the
 * other, and when both are gone try again later. */
static void shard_lost(struct shard *s, const char *why)
{
	struct redis_broker *rb = s->rb;
	struct wsa_map_entry *e;
	size_t i;

	if (s->up) {
		s->up = false;
		atomic_fetch_sub(&rb->shards_up, 1);
	}
	if (!s->outage_logged && !rb->quitting) {
		s->outage_logged = true;
		logf_(rb, WSA_LOG_WARNING,
		      "redis %s: unreachable (%s); serving this node's "
		      "connections alone",
		      s->label, why ? why : "connection lost");
	}
	s->cmd_ready = s->sub_ready = false;
	s->need_register = true;
	ev_timer_stop(rb->loop, &s->connect_wait);
	/* What waited for a first connection is answered alone now. */
	run_pending(s);
	/* Its subscriptions are gone with it. */
	for (i = 0; i < s->chans.nbuckets; i++)
		for (e = s->chans.buckets[i]; e; e = e->next) {
			struct chan *c = e->value;

			c->state = CHAN_OFF;
			chan_release(s, c);
		}
	if (s->cmd)
		redisAsyncDisconnect(s->cmd);
	if (s->sub)
		redisAsyncDisconnect(s->sub);
	if (!s->cmd && !s->sub && !rb->quitting && !ev_is_active(&s->retry)) {
		double jitter = 0.5 + (double)randombytes_uniform(1000) / 2000;

		ev_timer_set(&s->retry, s->backoff * jitter, 0);
		ev_timer_start(rb->loop, &s->retry);
		s->backoff *= 2;
		if (s->backoff > BACKOFF_MAX_S)
			s->backoff = BACKOFF_MAX_S;
	}
	if (rb->quitting && !s->cmd && !s->sub) {
		unsigned k;

		for (k = 0; k < rb->nshards; k++)
			if (rb->shards[k].cmd || rb->shards[k].sub)
				return;
		ev_break(rb->loop, EVBREAK_ALL);
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct shard *s = ac->data;

	(void)status;
	/* hiredis frees the context once this returns. */
	if (ac == s->cmd)
		s->cmd = NULL;
	else if (ac == s->sub)
		s->sub = NULL;
	else
		return;
	shard_lost(s, ac->errstr[0] ? ac->errstr : NULL);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		on_disconnect(ac, status);
}

/* Re-register one of this node's users with the new session. */
struct register_arg {
	struct shard *s;
	struct op *list;
};

static void register_one(const char *topic, const char *uid, void *arg)
{
	struct register_arg *ra = arg;
	struct op *op;

	if (shard_of(ra->s->rb, topic) != ra->s->index)
		return;
	op = op_new(OP_JOIN, topic, uid, NULL, 0, 0);
	if (!op)
		return;
	op->on = true;
	op->next = ra->list;
	ra->list = op;
}

static void beat(struct shard *s);

/* The commands connection is ready: a new session, this node's users,
 * what waited. */
static void cmd_ready(struct shard *s)
{
	struct register_arg ra = {s, NULL};
	struct op *op, *next;

	s->cmd_ready = true;
	random_id(s->session);
	s->marked_dead = false;
	/* The session exists before any of its fields. */
	beat(s);
	/* After a loss, every uid this node counts; the first time, the
	 * joins and leaves that waited say it all, in order. */
	if (s->need_register) {
		s->need_register = false;
		pthread_mutex_lock(&s->rb->lock);
		wsa__presence_each(&s->rb->presence, register_one, &ra);
		pthread_mutex_unlock(&s->rb->lock);
	}
	for (op = ra.list; op; op = next) {
		next = op->next;
		op->loop = 0;
		run_join(s, op);
	}
	run_pending(s);
	shard_check_up(s);
}

/* The commands connection answered AUTH and SELECT; the first instance
 * has the latest revocation to read first. */
static void on_selected(redisAsyncContext *ac, void *reply, void *arg)
{
	struct shard *s = arg;
	const redisReply *r = reply;

	(void)ac;
	if (!r)
		return; /* lost: on_disconnect says so */
	if (r->type == REDIS_REPLY_ERROR)
		shard_lost(s, r->str);
	else if (s->index != 0)
		cmd_ready(s);
}

/* The latest revocation any node made: logins here refuse its tokens
 * from now on, before the node counts as connected, and connections
 * that logged in with them are closed (a node that started after it, or
 * was cut off when it was sent). */
static void on_revoked(redisAsyncContext *ac, void *reply, void *arg)
{
	struct shard *s = arg;
	struct redis_broker *rb = s->rb;
	const redisReply *r = reply;
	struct wsa_fan *m;
	long long old;

	(void)ac;
	if (!r || s->cmd_ready)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		shard_lost(s, r->str);
		return;
	}
	m = r->type == REDIS_REPLY_STRING
		? wsa__redis_wire_decode(r->str, r->len, rb->node)
		: NULL;
	if (m && m->kind == WSA_FAN_REVOKE) {
		old = atomic_load(rb->revoked_before);
		while (old < m->before &&
		       !atomic_compare_exchange_weak(rb->revoked_before, &old,
						     m->before))
			;
		m->seq = atomic_fetch_add(rb->fan_seq, 1) + 1;
		rb->local->ops->publish(rb->local, m, -1);
	} else if (m) {
		wsa__fan_unref(m);
	}
	cmd_ready(s);
}

static void on_sub_ready(redisAsyncContext *ac, void *reply, void *arg)
{
	struct shard *s = arg;
	const redisReply *r = reply;
	struct wsa_map_entry *e;
	size_t i;

	(void)ac;
	if (!r)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		shard_lost(s, r->str);
		return;
	}
	s->sub_ready = true;
	for (i = 0; i < s->chans.nbuckets; i++)
		for (e = s->chans.buckets[i]; e; e = e->next)
			if (((struct chan *)e->value)->want)
				chan_subscribe(s, e->value);
	shard_check_up(s);
}

/* Open one connection: AUTH when there is a password, then ready's
 * callback (on PING, or SELECT for commands). */
static redisAsyncContext *open_one(struct shard *s, bool cmd)
{
	redisAsyncContext *ac = redisAsyncConnect(s->url.host, s->url.port);

	if (!ac)
		return NULL;
	if (ac->err) {
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = s;
	redisLibevAttach(s->rb->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (s->url.password && s->url.user)
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", s->url.user,
				  s->url.password);
	else if (s->url.password)
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s", s->url.password);
	if (cmd && s->index == 0) {
		redisAsyncCommand(ac, on_selected, s, "SELECT %d", s->url.db);
		redisAsyncCommand(ac, on_revoked, s, "HGET %brevoked message",
				  s->rb->prefix, s->rb->prefix_len);
	} else if (cmd) {
		redisAsyncCommand(ac, on_selected, s, "SELECT %d", s->url.db);
	} else
		redisAsyncCommand(ac, on_sub_ready, s, "PING");
	return ac;
}

/* A connection that neither answers nor fails (a host that drops
 * packets, a stopped Redis) is given up after a while. */
static void on_connect_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct shard *s = w->data;
	redisAsyncContext *ac;

	(void)loop;
	(void)revents;
	if (s->cmd && !s->cmd_ready) {
		ac = s->cmd;
		s->cmd = NULL;
		redisAsyncFree(ac);
	}
	if (s->sub && !s->sub_ready) {
		ac = s->sub;
		s->sub = NULL;
		redisAsyncFree(ac);
	}
	shard_lost(s, "no answer");
}

static void shard_connect(struct shard *s)
{
	ev_timer_set(&s->connect_wait, CONNECT_WAIT_S, 0);
	ev_timer_start(s->rb->loop, &s->connect_wait);
	s->cmd = open_one(s, true);
	s->sub = s->cmd ? open_one(s, false) : NULL;
	if (!s->cmd || !s->sub)
		shard_lost(s, "cannot connect");
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct shard *s = w->data;

	(void)loop;
	(void)revents;
	if (!s->rb->quitting)
		shard_connect(s);
}

/* The reaped: {topic, uid, version, ...}, each a leave the reaper
 * announces to everyone. */
static void on_beat(redisAsyncContext *ac, void *reply, void *arg)
{
	struct shard *s = arg;
	const redisReply *r = reply;
	size_t i;

	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || atomic_load(s->rb->stopping))
		return;
	for (i = 0; i + 2 < r->elements; i += 3) {
		const redisReply *t = r->element[i], *u = r->element[i + 1];
		const redisReply *v = r->element[i + 2];
		struct wsa_presence_change ch = {.topic = t->str,
						 .uid = u->str};

		if (t->type != REDIS_REPLY_STRING ||
		    u->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_INTEGER ||
		    strlen(t->str) != t->len || strlen(u->str) != u->len)
			continue;
		ch.version = (unsigned long long)v->integer;
		hook_post(s->rb, 0, false, &ch, NULL);
	}
}

/* Heartbeat the session and reap; once the server stops, the session
 * is marked dead instead, so the others announce its users' leaves. */
static void beat(struct shard *s)
{
	struct redis_broker *rb = s->rb;
	bool stopping = atomic_load(rb->stopping);

	if (!s->cmd_ready || s->marked_dead)
		return;
	if (stopping)
		s->marked_dead = true;
	redisAsyncCommand(s->cmd, on_beat, s, "EVAL %s 0 %b %s %d %s", beat_lua,
			  rb->prefix, rb->prefix_len, s->session,
			  stopping ? 0 : NODE_TTL_MS, stopping ? "0" : "1");
}

static void on_beat_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_broker *rb = w->data;
	unsigned i;

	(void)loop;
	(void)revents;
	for (i = 0; i < rb->nshards; i++)
		beat(&rb->shards[i]);
}

static void on_quit_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	struct redis_broker *rb = w->data;
	unsigned i;
	bool quit;

	(void)loop;
	(void)revents;
	run_ops(rb);
	pthread_mutex_lock(&rb->lock);
	quit = rb->quiesced;
	pthread_mutex_unlock(&rb->lock);
	if (!quit || rb->quitting)
		return;
	/* The end: the others hear this node leave; what is written goes
	 * out, within a bound. */
	rb->quitting = true;
	ev_timer_stop(rb->loop, &rb->beat);
	for (i = 0; i < rb->nshards; i++) {
		struct shard *s = &rb->shards[i];

		ev_timer_stop(rb->loop, &s->retry);
		ev_timer_stop(rb->loop, &s->connect_wait);
		if (s->cmd_ready && !s->marked_dead) {
			s->marked_dead = true;
			redisAsyncCommand(
			    s->cmd, NULL, NULL, "EVAL %s 0 %b %s 0 0", beat_lua,
			    rb->prefix, rb->prefix_len, s->session);
		}
		if (s->cmd)
			redisAsyncDisconnect(s->cmd);
		if (s->sub)
			redisAsyncDisconnect(s->sub);
	}
	ev_timer_start(rb->loop, &rb->quit_timer);
	for (i = 0; i < rb->nshards; i++)
		if (rb->shards[i].cmd || rb->shards[i].sub)
			return;
	ev_break(rb->loop, EVBREAK_ALL);
}

static void *redis_thread(void *arg)
{
	struct redis_broker *rb = arg;
	unsigned i;

	for (i = 0; i < rb->nshards; i++)
		shard_connect(&rb->shards[i]);
	ev_run(rb->loop, 0);
	/* Past the bound: what is left is dropped. */
	for (i = 0; i < rb->nshards; i++) {
		struct shard *s = &rb->shards[i];

		if (s->cmd)
			redisAsyncFree(s->cmd);
		if (s->sub)
			redisAsyncFree(s->sub);
	}
	return NULL;
}

/* ------------------------------------------------------ the broker ops */

static int publish_kept(struct wsa_broker *b, const struct wsa_kept_pub *k)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct wsa_kept_wire kw = {
	    .reply = k->reply,
	    .except = k->except,
	    .topic = k->topic,
	    .id_text = k->id_text,
	    .text = k->text,
	    .len = k->len,
	};
	size_t n = strlen(k->topic);
	struct op *op =
	    op_new(OP_KEEP, k->topic, NULL, NULL, rb->prefix_len + 2 + n,
		   wsa__redis_kept_len(&kw));

	if (!op)
		return WSA_ENOMEM;
	op->shard = shard_of(rb, k->topic);
	op->size = k->rule->size;
	op->ttl_ms = k->rule->ttl_ms;
	op->chan_len = chan_name(rb, op->chan, WSA_CHAN_TOPIC, k->topic, n);
	wsa__redis_kept_encode(&kw, rb->node, op->payload);
	op_hand(rb, op);
	return WSA_OK;
}

static int recover(struct wsa_broker *b, const struct wsa_recover_op *rop)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct op *op =
	    op_new(OP_RECOVER, rop->topic, NULL, rop->conn_id, 0, 0);

	if (!op)
		return WSA_ENOMEM;
	op->shard = shard_of(rb, rop->topic);
	op->loop = rop->loop;
	op->size = rop->rule->size;
	op->ttl_ms = rop->rule->ttl_ms;
	if (rop->since)
		op->since = *rop->since;
	op_hand(rb, op); /* stopping: no answer comes */
	return WSA_OK;
}

static void publish(struct wsa_broker *b, struct wsa_fan *m, int origin)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct op *op = fan_encode(rb, m);

	rb->local->ops->publish(rb->local, m, origin);
	pthread_mutex_lock(&rb->lock);
	if (op && !rb->quiesced) {
		op_push(rb, op);
		op = NULL;
	}
	pthread_mutex_unlock(&rb->lock);
	if (op)
		atomic_fetch_add_explicit(&rb->dropped, 1,
					  memory_order_relaxed);
	free(op);
	ev_async_send(rb->loop, &rb->wake);
}

static void want(struct wsa_broker *b, enum wsa_chan_kind kind,
		 const char *name, bool on)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	size_t n = strlen(name);
	struct op *op =
	    op_new(OP_WANT, NULL, NULL, NULL, rb->prefix_len + 2 + n, 0);

	/* Without memory the node misses the channel's messages. */
	if (!op)
		return;
	op->chan_len = chan_name(rb, op->chan, kind, name, n);
	op->shard = shard_of(rb, name);
	op->on = on;
	pthread_mutex_lock(&rb->lock);
	if (!rb->quiesced) {
		op_push(rb, op);
		op = NULL;
	}
	pthread_mutex_unlock(&rb->lock);
	free(op);
	ev_async_send(rb->loop, &rb->wake);
}

static json_t *users(struct wsa_broker *b, const char *topic)
{
	return node_users((struct redis_broker *)(void *)b, topic);
}

/* A join or leave once the Redis thread is gone: as the in-process
 * broker answers, inside the call. */
static void answer_inline(struct redis_broker *rb,
			  const struct wsa_presence_op *op, bool changed,
			  bool joined)
{
	struct wsa_presence_change ch = {
	    .topic = op->topic,
	    .uid = op->uid,
	    .conn_id = op->conn_id,
	    .joined = joined,
	};
	json_t *list;

	if (changed)
		rb->hooks.presence(op->loop_ctx, op->conn, &ch);
	if (joined && op->answer) {
		list = node_users(rb, op->topic);
		rb->hooks.joined(op->loop_ctx, op->conn, op->conn_id, op->topic,
				 list, 0);
		json_decref(list);
	}
}

static int join(struct wsa_broker *b, const struct wsa_presence_op *p)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct op *op = op_new(OP_JOIN, p->topic, p->uid, p->conn_id, 0, 0);
	int first = 0;

	if (!op)
		return WSA_ENOMEM;
	op->shard = shard_of(rb, p->topic);
	op->loop = p->loop;
	op->answer = p->answer;
	op->again = p->again;
	pthread_mutex_lock(&rb->lock);
	/* Counted and queued under one lock: Redis hears of this node's
	 * joins and leaves in the order they were counted. */
	if (!p->again)
		first = wsa__presence_add(&rb->presence, p->topic, p->uid);
	op->on = first == 1;
	if (first >= 0 && !rb->quiesced) {
		op_push(rb, op);
		op = NULL;
	}
	pthread_mutex_unlock(&rb->lock);
	if (first < 0) {
		free(op);
		return first;
	}
	if (op) {
		free(op);
		answer_inline(rb, p, first == 1, true);
		return WSA_OK;
	}
	ev_async_send(rb->loop, &rb->wake);
	return WSA_OK;
}

static void leave(struct wsa_broker *b, const struct wsa_presence_op *p)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct op *op = op_new(OP_LEAVE, p->topic, p->uid, p->conn_id, 0, 0);
	bool queued = false, quiesced;
	int last;

	pthread_mutex_lock(&rb->lock);
	last = wsa__presence_remove(&rb->presence, p->topic, p->uid);
	quiesced = rb->quiesced;
	if (op && !quiesced) {
		op->shard = shard_of(rb, p->topic);
		op->loop = p->loop;
		op->on = last == 1;
		op_push(rb, op);
		queued = true;
	}
	pthread_mutex_unlock(&rb->lock);
	if (queued) {
		ev_async_send(rb->loop, &rb->wake);
		return;
	}
	/* Without memory, as a lone node would (Redis keeps the uid until
	 * this session ends). After the end, the other nodes announce this
	 * node's users gone: the handler is not called here too. */
	free(op);
	if (last == 1 && !quiesced)
		answer_inline(rb, p, true, false);
}

static void quiesce(struct wsa_broker *b)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;

	pthread_mutex_lock(&rb->lock);
	if (rb->quiesced) {
		pthread_mutex_unlock(&rb->lock);
		return;
	}
	rb->quiesced = true;
	pthread_mutex_unlock(&rb->lock);
	ev_async_send(rb->loop, &rb->wake);
	pthread_join(rb->thread, NULL);
}

static void metrics(struct wsa_broker *b, json_t *o)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;

	json_object_set_new(o, "wsa_redis_up",
			    json_integer(atomic_load(&rb->shards_up)));
	json_object_set_new(
	    o, "wsa_redis_published_total",
	    json_integer((json_int_t)atomic_load(&rb->published)));
	json_object_set_new(
	    o, "wsa_redis_received_total",
	    json_integer((json_int_t)atomic_load(&rb->received)));
	json_object_set_new(
	    o, "wsa_redis_dropped_total",
	    json_integer((json_int_t)atomic_load(&rb->dropped)));
	json_object_set_new(
	    o, "wsa_redis_reconnects_total",
	    json_integer((json_int_t)atomic_load(&rb->reconnects)));
}

/* Free a shard's channels and the ops that still wait: on a channel, or
 * for a first connection the end came before. */
static void chans_free(struct shard *s)
{
	struct wsa_map_entry *e;
	struct op *op, *next;
	size_t i;

	for (op = s->pending; op; op = next) {
		next = op->next;
		free(op);
	}
	s->pending = NULL;
	s->pending_tail = &s->pending;

	for (i = 0; i < s->chans.nbuckets; i++)
		while ((e = s->chans.buckets[i])) {
			struct chan *c = e->value;

			s->chans.buckets[i] = e->next;
			for (op = c->waiting; op; op = next) {
				next = op->next;
				free(op);
			}
			free(c);
		}
	wsa__map_free(&s->chans);
}

static void destroy(struct wsa_broker *b)
{
	struct redis_broker *rb = (struct redis_broker *)(void *)b;
	struct op *op, *next;
	unsigned i;

	quiesce(b);
	for (op = rb->ops; op; op = next) {
		next = op->next;
		free(op);
	}
	for (i = 0; i < rb->nshards; i++) {
		struct shard *s = &rb->shards[i];

		chans_free(s);
		wsa__redis_url_free(&s->url);
	}
	free(rb->shards);
	ev_loop_destroy(rb->loop);
	wsa__presence_free(&rb->presence);
	pthread_mutex_destroy(&rb->lock);
	rb->local->ops->destroy(rb->local);
	free(rb->queues);
	free(rb->prefix);
	free(rb);
}

static const struct wsa_broker_ops redis_ops = {
    .publish = publish,
    .publish_kept = publish_kept,
    .recover = recover,
    .want = want,
    .join = join,
    .leave = leave,
    .users = users,
    .quiesce = quiesce,
    .metrics = metrics,
    .destroy = destroy,
};

/* --------------------------------------------------------------- new */

struct wsa_broker *wsa__broker_redis_new(struct wsa_workq *const *queues,
					 unsigned n,
					 const struct wsa_broker_hooks *hooks,
					 const struct wsa_redis_setup *setup)
{
	struct redis_broker *rb = calloc(1, sizeof(*rb));
	const char *prefix = setup->prefix ? setup->prefix : "wsa";
	unsigned i;

	if (!rb)
		return NULL;
	rb->base.ops = &redis_ops;
	rb->hooks = *hooks;
	rb->nloops = n;
	rb->fan_seq = setup->fan_seq;
	rb->revoked_before = setup->revoked_before;
	rb->stopping = setup->stopping;
	rb->log = setup->log;
	rb->log_arg = setup->log_arg;
	rb->ops_tail = &rb->ops;
	rb->prefix_len = strlen(prefix) + 1;
	rb->prefix = malloc(rb->prefix_len + 1);
	rb->queues = calloc(n, sizeof(*rb->queues));
	rb->shards = calloc(setup->nurls, sizeof(*rb->shards));
	rb->local = wsa__broker_local_new(queues, n, hooks);
	rb->loop = ev_loop_new(EVFLAG_AUTO);
	if (!rb->prefix || !rb->queues || !rb->shards || !rb->local ||
	    !rb->loop)
		goto fail;
	memcpy(rb->prefix, prefix, rb->prefix_len - 1);
	memcpy(rb->prefix + rb->prefix_len - 1, ":", 2);
	memcpy(rb->queues, queues, n * sizeof(*queues));
	random_id(rb->node);
	rb->nshards = setup->nurls;
	for (i = 0; i < rb->nshards; i++) {
		struct shard *s = &rb->shards[i];

		s->rb = rb;
		s->index = i;
		s->backoff = BACKOFF_MIN_S;
		ev_timer_init(&s->retry, on_retry, 0, 0);
		s->retry.data = s;
		ev_timer_init(&s->connect_wait, on_connect_wait, 0, 0);
		s->connect_wait.data = s;
		s->pending_tail = &s->pending;
		if (!wsa__redis_url_parse(setup->urls[i], &s->url))
			goto fail;
		snprintf(s->label, sizeof(s->label), "%s:%d", s->url.host,
			 s->url.port);
	}
	/* The channel of route broadcasts and revocations, always. */
	{
		char all[PREFIX_MAX + 8];
		struct chan *c;

		snprintf(all, sizeof(all), "%sall", rb->prefix);
		c = chan_get(&rb->shards[0], all, strlen(all), true);
		if (!c)
			goto fail;
		c->want = 1;
	}
	pthread_mutex_init(&rb->lock, NULL);
	ev_async_init(&rb->wake, on_wake);
	rb->wake.data = rb;
	ev_async_start(rb->loop, &rb->wake);
	ev_timer_init(&rb->beat, on_beat_timer, BEAT_S, BEAT_S);
	rb->beat.data = rb;
	ev_timer_start(rb->loop, &rb->beat);
	ev_timer_init(&rb->quit_timer, on_quit_timer, QUIT_WAIT_S, 0);
	rb->quit_timer.data = rb;
	atomic_init(&rb->published, 0);
	atomic_init(&rb->received, 0);
	atomic_init(&rb->dropped, 0);
	atomic_init(&rb->reconnects, 0);
	atomic_init(&rb->shards_up, 0);
	if (pthread_create(&rb->thread, NULL, redis_thread, rb)) {
		pthread_mutex_destroy(&rb->lock);
		goto fail;
	}
	return &rb->base;
fail:
	for (i = 0; rb->shards && i < rb->nshards; i++) {
		chans_free(&rb->shards[i]);
		wsa__redis_url_free(&rb->shards[i].url);
	}
	if (rb->loop)
		ev_loop_destroy(rb->loop);
	if (rb->local)
		rb->local->ops->destroy(rb->local);
	free(rb->shards);
	free(rb->queues);
	free(rb->prefix);
	free(rb);
	return NULL;
}
