/* Fan-out beyond one loop: the seam between the fan-out module and what
 * carries its messages and presence to the other loops of the server and,
 * with a broker that reaches other processes, to other nodes. A broker is
 * an ops table; the fan-out module calls it, and it answers through the
 * hooks it was made with, on the loop that must act. It never calls
 * upward by name. The in-process broker is the default; the Redis broker
 * wraps one and adds the nodes. */
#ifndef WSA_LIB_BROKER_H
#define WSA_LIB_BROKER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

struct wsa_fan;
struct wsa_history_rule;
struct wsa_history_rules;
struct wsa_position;
struct wsa_workq;

struct wsa_broker;

/* A user came into a topic or went, wherever the broker reaches. */
struct wsa_presence_change {
	const char *topic, *uid;
	const char *conn_id; /* whose join or leave; NULL: a node gone, or
				registering its users again */
	bool joined;
	/* A node registering its users again after it lost Redis: news to
	 * the other nodes only. */
	bool remote_only;
	/* The topic's presence version after the change (0: none): a member
	 * whose list of users was read at this version or later has it. */
	unsigned long long version;
};

/* What a broker calls on a loop. loop is the context the loop's work
 * queue hands to work. conn is the connection of a join or leave when the
 * broker answers inside that call (in-process), else NULL: conn_id then
 * names it, and it may be gone. */
struct wsa_broker_hooks {
	/* Deliver m to the loop's connections. */
	void (*deliver)(void *loop, struct wsa_fan *m);
	void (*presence)(void *loop, void *conn,
			 const struct wsa_presence_change *ch);
	/* The join of conn_id to topic has reached every node; users: the
	 * topic's uids then (borrowed), NULL without memory, read at the
	 * topic's presence version (0: none). */
	void (*joined)(void *loop, void *conn, const char *conn_id,
		       const char *topic, json_t *users,
		       unsigned long long version);
	/* The answer to ops->recover: the kept publications of topic after
	 * the position asked from (missed[0 .. n), references the hook
	 * takes; in order), the topic's position now (NULL: the history
	 * could not be read) and whether missed is all that came after it. */
	void (*recovered)(void *loop, void *conn, const char *conn_id,
			  const char *topic, struct wsa_fan **missed, size_t n,
			  const struct wsa_position *now, bool recovered);
};

/* What a loop says of a channel it wants or no longer wants. */
enum wsa_chan_kind {
	WSA_CHAN_TOPIC, /* the messages of a topic */
	WSA_CHAN_USER,	/* the messages for a uid */
};

/* One join or leave of a connection to a topic. */
struct wsa_presence_op {
	unsigned loop;	   /* the loop's index */
	void *loop_ctx;	   /* its context, for answers inside the call */
	void *conn;	   /* the connection, for those answers */
	const char *topic; /* as long as the call */
	const char *uid;
	const char *conn_id;
	bool answer; /* call hooks.joined */
	bool again;  /* a member joining again: answer only */
};

/* A publication kept in a topic's history. */
struct wsa_kept_pub {
	const struct wsa_history_rule *rule; /* the topic's */
	const char *topic;
	const char *text; /* the object's JSON text, without its position */
	size_t len;
	const char *id_text; /* the reply's "id" as JSON text, or NULL */
	const char *except;  /* a connection id, or NULL */
	const char *reply;   /* the member whose copy is its reply, or NULL */
	unsigned long long seq, t0; /* as struct wsa_fan's */
};

/* A member asks what it missed in a topic since a position. */
struct wsa_recover_op {
	unsigned loop;
	void *loop_ctx;
	void *conn; /* for an answer inside the call */
	const char *conn_id;
	const char *topic;
	const struct wsa_history_rule *rule;
	const struct wsa_position *since; /* NULL: nothing missed */
};

struct wsa_broker_ops {
	/* Carry m to every loop but the one numbered origin (-1: to all),
	 * and to the other nodes, in the order of the calls of each thread;
	 * takes a reference to m. Any thread. */
	void (*publish)(struct wsa_broker *b, struct wsa_fan *m, int origin);
	/* A loop's first member of a topic came (on) or its last went, or
	 * its first connection of a uid (its last): messages for it must
	 * reach this node while any loop wants them. Loop thread. */
	void (*want)(struct wsa_broker *b, enum wsa_chan_kind kind,
		     const char *name, bool on);
	/* A connection joined a topic: hooks.presence when its user is new
	 * there, hooks.joined when op->answer; WSA_OK or WSA_ENOMEM (then
	 * nothing is recorded). Loop thread. */
	int (*join)(struct wsa_broker *b, const struct wsa_presence_op *op);
	/* A connection left a topic (or closed): hooks.presence when it was
	 * its user's last there. Loop thread. */
	void (*leave)(struct wsa_broker *b, const struct wsa_presence_op *op);
	/* Number k's text in its topic's history, stamp it with its position
	 * (and the reply's copy with its id), keep it, and carry it to every
	 * loop, the caller's too, in the order of the numbers; WSA_OK or
	 * WSA_ENOMEM. Any thread. */
	int (*publish_kept)(struct wsa_broker *b, const struct wsa_kept_pub *k);
	/* The kept publications of op->topic after op->since, through
	 * hooks.recovered on the member's loop, once the member (linked
	 * before) gets every later one; WSA_OK or WSA_ENOMEM (no answer
	 * comes). Loop thread. */
	int (*recover)(struct wsa_broker *b, const struct wsa_recover_op *op);
	/* A new JSON array of the uids this node knows in topic; NULL
	 * without memory. Any thread. */
	json_t *(*users)(struct wsa_broker *b, const char *topic);
	/* The server stops: no hooks are called after this returns, and
	 * the nodes hear this one leave. Before the loops are freed. */
	void (*quiesce)(struct wsa_broker *b);
	/* The broker's metrics into o (nothing for the in-process one). */
	void (*metrics)(struct wsa_broker *b, json_t *o);
	void (*destroy)(struct wsa_broker *b);
};

struct wsa_broker {
	const struct wsa_broker_ops *ops;
};

/* The in-process broker: the n loops of this server, through their work
 * queues (queues[i] hands work the context of loop i). NULL when memory
 * is short. */
struct wsa_broker *wsa__broker_local_new(struct wsa_workq *const *queues,
					 unsigned n,
					 const struct wsa_broker_hooks *hooks);

/* The in-process broker's kept publications and recoveries, for a
 * broker that wraps it. */
int wsa__broker_local_publish_kept(struct wsa_broker *b,
				   const struct wsa_kept_pub *k);
int wsa__broker_local_recover(struct wsa_broker *b,
			      const struct wsa_recover_op *op);

/* What the Redis broker needs of the server. */
struct wsa_redis_setup {
	char **urls; /* checked by wsa__redis_url_parse() */
	unsigned nurls;
	const char *prefix;
	atomic_ullong *fan_seq;	      /* numbers arriving messages */
	atomic_llong *revoked_before; /* moved on by a stored revocation */
	const atomic_bool *stopping;  /* the server is stopping */
	void (*log)(void *arg, int level, const char *text);
	void *log_arg;
};

/* A broker over the in-process one that reaches other nodes through
 * Redis; its thread starts here. NULL when memory is short or a thread
 * cannot start. */
struct wsa_broker *wsa__broker_redis_new(struct wsa_workq *const *queues,
					 unsigned n,
					 const struct wsa_broker_hooks *hooks,
					 const struct wsa_redis_setup *setup);

#endif
