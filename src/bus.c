/* SPDX-License-Identifier: ISC */
/* racerd: the store's one owner (prefix bus_). */
/*
 * Every key name, script and reply shape of the store belongs here; other
 * modules call typed functions (bus_publish, bus_claim, bus_history ...)
 * and get decoded results through typed callbacks, never a redisReply.
 * The scripts are src/lua/NAME.lua, turned into C at build time (bus_lua.h).
 *
 * Each worker keeps two asynchronous hiredis connections on its libevent
 * loop: "cmd" for commands and scripts, "sub" for pub/sub.  Both are named
 * (CLIENT SETNAME racerd:INSTANCE:wN:cmd|sub) so that operators see who is
 * who, and both are retried with exponential back-off and jitter.
 *
 * Every message goes through one server-side script (publish.lua): dedup
 * by (user, id), epoch created if missing, INCR seq, XADD to the chat's
 * stream with the seq as entry id (trimmed to history-size), PUBLISH of
 * "EPOCH SEQ ENVELOPE" on the chat's channel.  The store is the single
 * sequencer; every worker, the sender's included, delivers from its
 * subscription, so every member everywhere sees one order.  What a worker
 * is given to publish in one loop turn goes to each shard as one call of
 * the script, whatever chats it is for.
 *
 * Liveness: the cmd link is probed with PING; the sub link with a probe
 * message published (through cmd) on this worker's own probe channel,
 * which must come back within BUS_DEADLINE_MS.  A subscription can look
 * connected and be dead; then it is dropped and rebuilt, and room.c fills
 * what was missed from history.
 *
 * Keys of a chat share the hash tag {chat:ID}: racerd:{chat:ID}:seq,
 * :epoch, :log (stream), :id:LEN:USER:ID (dedup; LEN is the user's
 * length), :sess:TOKEN, :who, :pos:USER; channel racerd:{chat:ID}.
 * racerd:due schedules sessions.
 *
 * Shards: the redis option may name several stores.  Every key and the
 * channel of a chat live on the one shard bus_shard_hash picks for its
 * id; each shard has its own pair of links, probe, script cache and
 * racerd:due.  A shard that is down makes only its chats unavailable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <nettle/sha1.h>
#include <sodium.h>

#include "racerd.h"
#include "registry.h"

#define BUS_PROBE_MS		1000
#define BUS_DEADLINE_MS		3000
#define BUS_BACKOFF_MIN_MS	100
#define BUS_BACKOFF_MAX_MS	5000
#define BUS_BACKOFF_SENTINEL_MS	1000	/* the most, following a sentinel */
#define BUS_WATCH_RETRY_MS	1000	/* a lost +switch-master watch */
#define BUS_RANGE_COUNT		1000	/* entries per history read */
#define BUS_SLACK_MS		300000	/* records outlive deadlines by */
#define BUS_EMPTY_TTL_MS	86400000	/* a chat never written to */
#define BUS_EXPIRE_BATCH	1000	/* sessions one sweep looks at */
#define BUS_WAIT_MS		1000	/* store-sync-replicas: WAIT timeout */
#define BUS_BATCH_MAX		256	/* messages in one publish call */

#define BUS_PREFIX		"racerd:{chat:"
#define BUS_DUE			"racerd:due"

#include "bus_lua.h"

struct bus_shard;

struct bus_link {
	struct bus_shard	*shard;
	int			 asked;		/* sentinels asked this round */
	const char		*what;		/* "cmd" or "sub" */
	redisAsyncContext	*ac;
	int			 up;		/* answered since connecting */
	unsigned		 backoff;	/* ms */
	struct event		*retry;
	uint64_t		 probe_sent;	/* 0: none outstanding */
	uint64_t		 heard;		/* last reply or message */
	char			 why[128];	/* why it is down */
	int			 denied;	/* the store refused AUTH */
};

/* The scripts, src/lua/NAME.lua. */
enum bus_script_id {
	BUS_PUBLISH,
	BUS_INFO,
	BUS_HISTORY,
	BUS_ATTACH,
	BUS_CLAIM,
	BUS_DETACH,
	BUS_END,
	BUS_EXPIRE,
	BUS_RENEW,
	BUS_NSCRIPTS
};
static const struct {
	const char	*name;
	const char	*body;
} bus_lua[BUS_NSCRIPTS] = {
	[BUS_PUBLISH] =	{ "publish.lua", bus_lua_publish },
	[BUS_INFO] =	{ "info.lua", bus_lua_info },
	[BUS_HISTORY] =	{ "history.lua", bus_lua_history },
	[BUS_ATTACH] =	{ "attach.lua", bus_lua_attach },
	[BUS_CLAIM] =	{ "claim.lua", bus_lua_claim },
	[BUS_DETACH] =	{ "detach.lua", bus_lua_detach },
	[BUS_END] =	{ "end.lua", bus_lua_end },
	[BUS_EXPIRE] =	{ "expire.lua", bus_lua_expire },
	[BUS_RENEW] =	{ "renew.lua", bus_lua_renew },
};

/* A message waiting in a batch, and a batch (see bus_publish). */
struct bus_pub {
	bus_sent_cb	*cb;
	void		*arg;
	char		*chat;
};

struct bus_batch {
	struct bus_batch *next;		/* full ones wait in order */
	struct bus_call	*keys;		/* KEYS, in message order */
	struct bus_call	*args;		/* five ARGV per message */
	struct bus_pub	*pubs;
	u_int		 n;
	u_int		 size;
};

/*
 * One store of the shards the redis option names.  A chat lives on the
 * shard that bus_shard_hash picks for its id; each shard has its own
 * links, probe, script cache and due-set.
 */
struct bus_shard {
	u_int			 idx;
	char			 label[300];	/* "" or "shard N (ADDRESS) " */
	char			 host[256];
	char			 path[256];
	int			 port;
	int			 db;
	char			 user[256];	/* AUTH; never logged */
	char			 password[256];	/* "": no AUTH */
	char			 probe_ch[160];
	int			 nsentinels;	/* 0: a fixed address */
	char			 sentinel_host[CONFIG_SENTINELS_MAX][256];
	int			 sentinel_port[CONFIG_SENTINELS_MAX];
	char			 master[128];
	int			 sentinel_next;	/* the one to ask first */
	struct bus_link		 cmd;
	struct bus_link		 sub;
	uint64_t		 sub_seen;	/* last message on sub */
	int			 probe_queued;	/* its PUBLISH not run yet */
	char			 why[512];	/* bus_is_up's answer */
	struct bus_batch	*batch;		/* publishes of this loop turn */
	struct bus_batch	*full;		/* full batches, oldest first */
	struct bus_batch	**full_tail;
	struct event		*flush;		/* sends the batches */
	redisAsyncContext	*watch;		/* +switch-master of a sentinel */
	struct event		*watch_retry;
	int			 watch_next;	/* the sentinel to watch next */
};

static struct {
	struct event_base	*base;
	char			 name[64];	/* racerd:INSTANCE:wN */
	struct bus_shard	*shards;
	u_int			 nshards;
	struct event		*probe;
	char			 sha[BUS_NSCRIPTS][41];	/* EVALSHA names */
	int			 closing;
	u_int			 pending;	/* calls awaiting a reply */
	uint64_t		 expire_window;	/* of the last sweep */
	int			 expire_pos_ttl;
	uint8_t			 epoch_key[crypto_shorthash_KEYBYTES];
	uint64_t		 epochs;	/* made with it */
} bus;

static void	bus_connect(struct bus_link *);
static void	bus_on_sub(redisAsyncContext *, void *, void *);
static void	bus_on_flush(evutil_socket_t, short, void *);
static void	bus_batch_fail(struct bus_batch *);
static struct bus_batch *bus_batch_take(struct bus_shard *);
static char	*bus_open(const char *, size_t, const char **, size_t *);

/*
 * hiredis's own libevent adapter arms a one-shot event for every read and
 * every write: two epoll_ctl calls per reply read and two per command
 * written, and a loop turn between queuing a command and writing it.  This
 * one keeps the read event armed for good, and writes what the loop turn
 * queued at its end, as conn.c does for clients; only a socket that does
 * not take it all (or one still connecting) waits for a write event.
 */
struct bus_ev {
	redisAsyncContext	*ac;
	struct event		*rev;		/* persistent */
	struct event		*wev;		/* the socket is writable */
	struct event		*flush;		/* write at the end of the turn */
	int			 writing;	/* in redisAsyncHandleWrite */
	int			 dead;		/* cleaned up while writing */
};

static void
bus_ev_free(struct bus_ev *e)
{
	event_free(e->rev);
	event_free(e->wev);
	event_free(e->flush);
	free(e);
}

static void
bus_ev_read(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct bus_ev	*e = arg;

	redisAsyncHandleRead(e->ac);
}

/* Write now; the context may go away inside (then cleanup only marks). */
static void
bus_ev_write(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct bus_ev	*e = arg;

	e->writing = 1;
	redisAsyncHandleWrite(e->ac);
	e->writing = 0;
	if (e->dead)
		bus_ev_free(e);
}

static void
bus_ev_add_read(void *arg)
{
	struct bus_ev	*e = arg;

	if (!event_pending(e->rev, EV_READ, NULL))
		event_add(e->rev, NULL);
}

static void
bus_ev_del_read(void *arg)
{
	struct bus_ev	*e = arg;

	event_del(e->rev);
}

static void
bus_ev_add_write(void *arg)
{
	struct bus_ev	*e = arg;

	/* Connecting (hiredis checks a connect on writability), or full. */
	if (e->writing || !(e->ac->c.flags & REDIS_CONNECTED))
		event_add(e->wev, NULL);
	else if (!event_pending(e->flush, EV_TIMEOUT, NULL))
		event_active(e->flush, EV_TIMEOUT, 0);
}

static void
bus_ev_del_write(void *arg)
{
	struct bus_ev	*e = arg;

	event_del(e->wev);
	if (!e->writing)
		event_del(e->flush);
}

static void
bus_ev_cleanup(void *arg)
{
	struct bus_ev	*e = arg;

	e->ac->ev.data = NULL;
	if (e->writing) {
		event_del(e->rev);
		event_del(e->wev);
		e->dead = 1;
		return;
	}
	bus_ev_free(e);
}

static int
bus_ev_attach(redisAsyncContext *ac)
{
	struct bus_ev	*e;
	int		 fd = ac->c.fd;

	if (ac->ev.data != NULL)
		return (REDIS_ERR);
	e = xcalloc(1, sizeof *e);
	e->ac = ac;
	e->rev = event_new(bus.base, fd, EV_READ|EV_PERSIST, bus_ev_read, e);
	e->wev = event_new(bus.base, fd, EV_WRITE, bus_ev_write, e);
	e->flush = event_new(bus.base, -1, 0, bus_ev_write, e);
	if (e->rev == NULL || e->wev == NULL || e->flush == NULL)
		fatalx("event_new");
	ac->ev.addRead = bus_ev_add_read;
	ac->ev.delRead = bus_ev_del_read;
	ac->ev.addWrite = bus_ev_add_write;
	ac->ev.delWrite = bus_ev_del_write;
	ac->ev.cleanup = bus_ev_cleanup;
	ac->ev.data = e;
	event_add(e->rev, NULL);
	event_add(e->wev, NULL);	/* the connect completes */
	return (REDIS_OK);
}

static void
bus_sha1(const char *script, char out[41])
{
	struct sha1_ctx	 ctx;
	uint8_t		 digest[SHA1_DIGEST_SIZE];

	sha1_init(&ctx);
	sha1_update(&ctx, strlen(script), (const uint8_t *)script);
	sha1_digest(&ctx, sizeof digest, digest);
	sodium_bin2hex(out, 41, digest, sizeof digest);
}

/*
 * Which of n shards holds a chat: jump consistent hash (Lamping and
 * Veach, 2014) of the FNV-1a 64-bit hash of its id, as Centrifugo's Redis
 * engine spreads channels.  Going from n to n + 1 shards moves 1/(n + 1)
 * of the chats, all to the new shard.
 */
u_int
bus_shard_hash(const char *chat, size_t len, u_int n)
{
	uint64_t	 key = 14695981039346656037ULL;
	int64_t		 b = -1, j = 0;
	size_t		 i;

	for (i = 0; i < len; i++) {
		key ^= (u_char)chat[i];
		key *= 1099511628211ULL;
	}
	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((b + 1) * ((double)(1LL << 31) /
		    (double)((key >> 33) + 1)));
	}
	return (b < 0 ? 0 : (u_int)b);
}

/* The shard of a chat in this worker's list. */
u_int
bus_shard_index(const char *chat, size_t len)
{
	return (bus.nshards <= 1 ? 0 : bus_shard_hash(chat, len, bus.nshards));
}

static struct bus_shard *
bus_shard_of(const char *chat, size_t len)
{
	return (&bus.shards[bus_shard_index(chat, len)]);
}

/* Take a shard's address apart (config.c validated it). */
static int
bus_parse(struct bus_shard *sh, const char *addr)
{
	struct config_store	 st;
	char			*shown;

	if (config_store_parse(addr, &st) != 0)
		return (-1);
	snprintf(sh->host, sizeof sh->host, "%s", st.host);
	snprintf(sh->path, sizeof sh->path, "%s", st.path);
	sh->port = st.port;
	sh->db = st.db;
	sh->nsentinels = st.nsentinels;
	memcpy(sh->sentinel_host, st.sentinel_host, sizeof sh->sentinel_host);
	memcpy(sh->sentinel_port, st.sentinel_port, sizeof sh->sentinel_port);
	memcpy(sh->master, st.master, sizeof sh->master);
	memcpy(sh->user, st.user, sizeof sh->user);
	memcpy(sh->password, st.password, sizeof sh->password);
	sodium_memzero(&st, sizeof st);
	if (bus.nshards > 1) {
		shown = config_store_redact(addr);
		snprintf(sh->label, sizeof sh->label, "shard %u (%s) ",
		    sh->idx, shown);
		free(shown);
	}
	return (0);
}

static struct bus_link *
bus_link_of(const redisAsyncContext *ac)
{
	return (ac->data);
}

static void
bus_down(struct bus_link *l, const char *why)
{
	if (l->up)
		log_warnx("store %s%s connection lost: %s", l->shard->label,
		    l->what, why);
	l->up = 0;
	snprintf(l->why, sizeof l->why, "%s: %s", l->what, why);
}

static void
bus_schedule_retry(struct bus_link *l)
{
	struct timeval	 tv;
	unsigned	 delay, most;

	if (bus.closing)
		return;
	/*
	 * A failover takes seconds and asking a sentinel is cheap: keep
	 * asking often, or a link waits out a long backoff after the new
	 * primary is already known.
	 */
	most = l->shard->nsentinels > 0 ? BUS_BACKOFF_SENTINEL_MS :
	    BUS_BACKOFF_MAX_MS;
	if (l->backoff == 0)
		l->backoff = BUS_BACKOFF_MIN_MS;
	else if ((l->backoff *= 2) > most)
		l->backoff = most;
	/* Jitter keeps workers and hosts from reconnecting in step. */
	delay = l->backoff / 2 + randombytes_uniform(l->backoff / 2 + 1);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	util_timer_add(l->retry, &tv);
}

static void
bus_on_connect(const redisAsyncContext *ac, int status)
{
	struct bus_link	*l = bus_link_of(ac);

	if (status != REDIS_OK) {
		bus_down(l, ac->errstr);
		l->ac = NULL;		/* hiredis frees it */
		bus_schedule_retry(l);
	}
}

static void
bus_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct bus_link	*l = bus_link_of(ac);

	if (bus.closing)
		return;
	if (!l->denied)		/* keep saying why */
		bus_down(l, status == REDIS_OK ? "closed" : ac->errstr);
	l->ac = NULL;
	l->probe_sent = 0;
	if (l == &l->shard->sub)
		room_sub_lost(l->shard->idx);
	bus_schedule_retry(l);
}

/* The answer to AUTH: a refusal is logged once and retried later. */
static void
bus_on_auth(redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply	*reply = r;
	struct bus_link	*l = bus_link_of(ac);
	char		 why[sizeof l->why - 8];

	if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
		l->denied = 0;
		return;
	}
	snprintf(why, sizeof why, "authentication refused: %s", reply->str);
	if (!l->denied)
		log_warnx("store %s%s connection: %s", l->shard->label,
		    l->what, why);
	bus_down(l, why);
	l->denied = 1;
	redisAsyncFree(ac);	/* after this callback; then a retry */
}

/* The first answer on a fresh link: it is up. */
static void
bus_link_answered(struct bus_link *l)
{
	if (!l->up)
		log_info("store %s%s connection is up", l->shard->label,
		    l->what);
	l->up = 1;
	l->backoff = 0;
	l->probe_sent = 0;
}

static void
bus_on_pong(redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply	*reply = r;
	struct bus_link	*l = bus_link_of(ac);

	if (reply == NULL)
		return;
	l->heard = util_mono_ms();
	if (reply->type == REDIS_REPLY_ERROR) {
		/* LOADING after a restart, say: ask again at the next probe. */
		bus_down(l, reply->str);
		l->probe_sent = 0;
		return;
	}
	bus_link_answered(l);
}

/* Extract the chat id from "racerd:{chat:ID}". Returns 0 or -1. */
static int
bus_chat_of(const char *ch, size_t len, const char **chat, size_t *chat_len)
{
	size_t	 plen = sizeof BUS_PREFIX - 1;

	if (len <= plen + 1 || memcmp(ch, BUS_PREFIX, plen) != 0 ||
	    ch[len - 1] != '}')
		return (-1);
	*chat = ch + plen;
	*chat_len = len - plen - 1;
	return (0);
}

/* Everything that arrives on the subscription link. */
static void
bus_on_sub(redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply	*reply = r, *type, *ch, *msg;
	struct bus_shard *sh;
	struct bus_event ev;
	const char	*chat;
	char		*opened;
	size_t		 chat_len;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 3)
		return;
	type = reply->element[0];
	ch = reply->element[1];
	msg = reply->element[2];
	if (type->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
		return;
	sh = bus_link_of(ac)->shard;
	sh->sub_seen = util_mono_ms();
	if (strcmp(ch->str, sh->probe_ch) == 0) {
		bus_link_answered(bus_link_of(ac));
		return;
	}
	if (bus_chat_of(ch->str, ch->len, &chat, &chat_len) != 0)
		return;
	if (strcmp(type->str, "message") == 0 &&
	    msg->type == REDIS_REPLY_STRING) {
		if (bus_decode_event(msg->str, msg->len, &ev) == 0) {
			opened = ev.type != BUS_EVENT_MESSAGE ? NULL :
			    bus_open(chat, chat_len, &ev.json, &ev.jlen);
			room_on_event(chat, chat_len, &ev);
			free(opened);
		} else
			log_warnx("chat %.*s: malformed message on the "
			    "channel", (int)chat_len, chat);
	} else if (strcmp(type->str, "subscribe") == 0)
		room_on_subscribed(chat, chat_len);
	else if (strcmp(type->str, "unsubscribe") == 0)
		room_on_unsubscribed(chat, chat_len);
}

/*
 * The sub probe's PUBLISH has run: the subscription must deliver it
 * within BUS_DEADLINE_MS from now.  Counting from when it was queued
 * would blame the sub link for the cmd link's queue (a store busy with
 * thousands of joins answers in order).
 */
static void
bus_on_probe_published(__unused redisAsyncContext *ac, void *r, void *arg)
{
	struct bus_shard	*sh = arg;

	sh->probe_queued = 0;
	if (r == NULL) {
		sh->sub.probe_sent = 0;		/* cmd went down: ask again */
		return;
	}
	if (sh->sub.probe_sent != 0)		/* not delivered yet */
		sh->sub.probe_sent = util_mono_ms();
}

static void
bus_probe_shard(struct bus_shard *sh)
{
	uint64_t	 now = util_mono_ms();
	struct bus_link	*l;

	l = &sh->cmd;
	if (l->ac != NULL) {
		/* Busy is not dead: only silence since the probe is. */
		if (l->probe_sent != 0 && now - l->probe_sent >
		    BUS_DEADLINE_MS && l->heard < l->probe_sent) {
			log_warnx("store %scmd connection did not answer "
			    "within %d ms; reconnecting", sh->label,
			    BUS_DEADLINE_MS);
			bus_down(l, "probe timed out");
			redisAsyncFree(l->ac);	/* runs bus_on_disconnect */
		} else if (l->probe_sent == 0) {
			/* Unqueued (out of memory): the next tick tries. */
			l->probe_sent = now;
			if (redisAsyncCommand(l->ac, bus_on_pong, NULL,
			    "PING") != REDIS_OK) {
				l->probe_sent = 0;
				log_debug("store %scmd probe not queued",
				    sh->label);
			}
		}
	}

	/* The subscription: a probe through the store must come back. */
	l = &sh->sub;
	if (l->ac == NULL)
		return;
	if (l->probe_sent != 0 && !sh->probe_queued &&
	    now - l->probe_sent > BUS_DEADLINE_MS &&
	    sh->sub_seen < l->probe_sent) {
		log_warnx("store %ssub connection did not deliver a probe "
		    "within %d ms; reconnecting", sh->label, BUS_DEADLINE_MS);
		bus_down(l, "probe timed out");
		redisAsyncFree(l->ac);
		return;
	}
	if (l->probe_sent == 0 && sh->cmd.up &&
	    (now - sh->sub_seen > BUS_PROBE_MS || !l->up)) {
		l->probe_sent = now;
		if (redisAsyncCommand(sh->cmd.ac, bus_on_probe_published, sh,
		    "PUBLISH %s %s", sh->probe_ch, "probe") != REDIS_OK) {
			l->probe_sent = 0;
			log_debug("store %ssub probe not queued", sh->label);
		} else
			sh->probe_queued = 1;
	}
}

static void
bus_probe(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	u_int	 i;

	for (i = 0; i < bus.nshards; i++)
		bus_probe_shard(&bus.shards[i]);
}

static void
bus_retry(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	bus_connect(arg);
}

/* The answer to ROLE: a link to a replica is dropped and tried again. */
static void
bus_on_role(redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply	*reply = r;
	struct bus_link	*l = bus_link_of(ac);

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements == 0 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "master") == 0)
		return;
	log_warnx("store %s%s connection: the server is a %s, not a primary; "
	    "it is not written to", l->shard->label, l->what,
	    reply->element[0]->str);
	bus_down(l, "the server is a replica");
	redisAsyncFree(ac);	/* after this callback; then a retry */
}

static void	bus_connect_to(struct bus_link *);
static void	bus_ask_sentinel(struct bus_link *);

/* A link waiting out its backoff tries again now: the primary moved. */
static void
bus_retry_now(struct bus_link *l)
{
	struct timeval	 now = { 0, 0 };

	if (l->ac != NULL || !evtimer_pending(l->retry, NULL))
		return;
	l->backoff = 0;
	util_timer_add(l->retry, &now);
}

/* A sentinel's answer: the primary's address, or ask the next one. */
static void
bus_on_sentinel(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply		*reply = r;
	struct bus_link		*l = arg;
	struct bus_shard	*sh = l->shard;
	const char		*host = sh->sentinel_host[sh->sentinel_next];
	char			 why[sizeof l->why - 8];

	if (reply != NULL)
		redisAsyncDisconnect(ac);
	if (bus.closing)
		return;
	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    reply->element[1]->type == REDIS_REPLY_STRING &&
	    atoi(reply->element[1]->str) > 0) {
		if (strcmp(sh->host, reply->element[0]->str) != 0 ||
		    sh->port != atoi(reply->element[1]->str)) {
			log_info("store %s%s: the primary of %s is %s:%s "
			    "(sentinel %s:%d)", sh->label, l->what, sh->master,
			    reply->element[0]->str, reply->element[1]->str,
			    host, sh->sentinel_port[sh->sentinel_next]);
			bus_retry_now(l == &sh->cmd ? &sh->sub : &sh->cmd);
		}
		snprintf(sh->host, sizeof sh->host, "%s",
		    reply->element[0]->str);
		sh->port = atoi(reply->element[1]->str);
		l->asked = 0;
		bus_connect_to(l);
		return;
	}
	snprintf(why, sizeof why, "sentinel %s:%d: %s", host,
	    sh->sentinel_port[sh->sentinel_next], reply == NULL ?
	    (ac->errstr[0] != '\0' ? ac->errstr : "no answer") :
	    reply->type == REDIS_REPLY_ERROR ? reply->str :
	    "does not know the primary");
	bus_down(l, why);
	sh->sentinel_next = (sh->sentinel_next + 1) % sh->nsentinels;
	if (++l->asked < sh->nsentinels) {
		bus_ask_sentinel(l);
		return;
	}
	l->asked = 0;
	bus_schedule_retry(l);
}

/* Ask a shard's sentinels where its primary is, then connect there. */
static void
bus_ask_sentinel(struct bus_link *l)
{
	struct bus_shard	*sh = l->shard;
	redisAsyncContext	*ac;

	ac = redisAsyncConnect(sh->sentinel_host[sh->sentinel_next],
	    sh->sentinel_port[sh->sentinel_next]);
	if (ac == NULL || ac->err ||
	    bus_ev_attach(ac) != REDIS_OK) {
		if (ac != NULL)
			redisAsyncFree(ac);
		bus_down(l, "cannot reach a sentinel");
		bus_schedule_retry(l);
		return;
	}
	if (redisAsyncCommand(ac, bus_on_sentinel, l,
	    "SENTINEL get-master-addr-by-name %s", sh->master) != REDIS_OK) {
		redisAsyncFree(ac);
		bus_down(l, "cannot ask a sentinel");
		bus_schedule_retry(l);
	}
}

/*
 * The +switch-master watch: one connection per shard to one of its
 * sentinels, subscribed to +switch-master.  When the sentinels announce a
 * new primary for our master, both links are made again at once (they ask
 * the sentinels where to go); without the watch a failover is still
 * followed, but only when a link breaks or a write is refused.
 */
static void	bus_watch(struct bus_shard *);

static void
bus_watch_later(struct bus_shard *sh)
{
	struct timeval	 tv = { BUS_WATCH_RETRY_MS / 1000,
	    (BUS_WATCH_RETRY_MS % 1000) * 1000 };

	sh->watch = NULL;
	if (bus.closing || sh->watch_retry == NULL)
		return;
	sh->watch_next = (sh->watch_next + 1) % sh->nsentinels;
	util_timer_add(sh->watch_retry, &tv);
}

static void
bus_on_watch_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		bus_watch_later(ac->data);	/* hiredis frees ac */
}

static void
bus_on_watch_disconnect(const redisAsyncContext *ac, __unused int status)
{
	if (!bus.closing)
		bus_watch_later(ac->data);
}

/* Drop a link so that it asks the sentinels again now. */
static void
bus_relink(struct bus_link *l)
{
	if (l->ac != NULL) {
		bus_down(l, "the sentinels named a new primary");
		redisAsyncFree(l->ac);	/* runs bus_on_disconnect */
	} else
		bus_retry_now(l);
	l->backoff = 0;
}

/* "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" */
static void
bus_on_switch(redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply		*reply = r;
	struct bus_shard	*sh = ac->data;
	char			 name[128], oldh[256], newh[256];
	int			 oldp, newp;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "message") != 0 ||
	    reply->element[2]->type != REDIS_REPLY_STRING)
		return;
	if (sscanf(reply->element[2]->str, "%127s %255s %d %255s %d", name,
	    oldh, &oldp, newh, &newp) != 5 || strcmp(name, sh->master) != 0 ||
	    newp <= 0 || newp > 65535)
		return;
	if (strcmp(newh, sh->host) == 0 && newp == sh->port)
		return;
	log_warnx("store %sthe sentinels switched %s from %s:%d to %s:%d; "
	    "reconnecting", sh->label, name, oldh, oldp, newh, newp);
	snprintf(sh->host, sizeof sh->host, "%s", newh);
	sh->port = newp;
	bus_relink(&sh->cmd);
	bus_relink(&sh->sub);
}

static void
bus_watch(struct bus_shard *sh)
{
	redisAsyncContext	*ac;

	ac = redisAsyncConnect(sh->sentinel_host[sh->watch_next],
	    sh->sentinel_port[sh->watch_next]);
	if (ac == NULL || ac->err ||
	    bus_ev_attach(ac) != REDIS_OK) {
		if (ac != NULL)
			redisAsyncFree(ac);
		bus_watch_later(sh);
		return;
	}
	ac->data = sh;
	redisAsyncSetConnectCallback(ac, bus_on_watch_connect);
	redisAsyncSetDisconnectCallback(ac, bus_on_watch_disconnect);
	sh->watch = ac;
	if (redisAsyncCommand(ac, bus_on_switch, NULL,
	    "SUBSCRIBE +switch-master") != REDIS_OK) {
		redisAsyncFree(ac);	/* not connected: no callback */
		bus_watch_later(sh);
	}
}

static void
bus_on_watch_retry(__unused evutil_socket_t fd, __unused short events,
    void *arg)
{
	bus_watch(arg);
}

static void
bus_connect(struct bus_link *l)
{
	if (l->shard->nsentinels > 0)
		bus_ask_sentinel(l);
	else
		bus_connect_to(l);
}

static void
bus_connect_to(struct bus_link *l)
{
	struct bus_shard	*sh = l->shard;
	redisAsyncContext	*ac;
	int			 i, rc;

	if (sh->path[0] != '\0')
		ac = redisAsyncConnectUnix(sh->path);
	else
		ac = redisAsyncConnect(sh->host, sh->port);
	if (ac == NULL || ac->err) {
		bus_down(l, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		bus_schedule_retry(l);
		return;
	}
	ac->data = l;
	if (bus_ev_attach(ac) != REDIS_OK) {
		redisAsyncFree(ac);
		bus_down(l, "cannot attach to the event loop");
		bus_schedule_retry(l);
		return;
	}
	redisAsyncSetConnectCallback(ac, bus_on_connect);
	redisAsyncSetDisconnectCallback(ac, bus_on_disconnect);
	l->ac = ac;
	/*
	 * hiredis refuses to queue only on a context going down or out of
	 * memory (REDIS_ERR, -1, so rc collects any): the link's probe
	 * then times out and makes it again.
	 */
	rc = REDIS_OK;
	if (sh->password[0] != '\0' && sh->user[0] != '\0')
		rc |= redisAsyncCommand(ac, bus_on_auth, NULL, "AUTH %s %s",
		    sh->user, sh->password);
	else if (sh->password[0] != '\0')
		rc |= redisAsyncCommand(ac, bus_on_auth, NULL, "AUTH %s",
		    sh->password);
	rc |= redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s:%s",
	    bus.name, l->what);
	if (sh->db != 0)
		rc |= redisAsyncCommand(ac, NULL, NULL, "SELECT %d", sh->db);
	/* Never write to a replica: it would refuse, or lose it. */
	rc |= redisAsyncCommand(ac, bus_on_role, NULL, "ROLE");
	l->probe_sent = util_mono_ms();
	if (l == &sh->cmd) {
		for (i = 0; i < BUS_NSCRIPTS; i++)
			rc |= redisAsyncCommand(ac, NULL, NULL,
			    "SCRIPT LOAD %s", bus_lua[i].body);
		rc |= redisAsyncCommand(ac, bus_on_pong, NULL, "PING");
	} else {
		/* sub: the probe channel first (it answers), then rooms. */
		rc |= redisAsyncCommand(ac, bus_on_sub, NULL, "SUBSCRIBE %s",
		    sh->probe_ch);
		room_resubscribe_all(sh->idx);
	}
	if (rc != REDIS_OK)
		log_warnx("store %s%s connection: cannot queue its set-up; "
		    "it is made again when its first probe times out",
		    sh->label, l->what);
}

/* Set up a shard's links; they connect from the loop. */
static int
bus_shard_init(struct bus_shard *sh, const char *host)
{
	struct timeval	 now = { 0, 0 };

	snprintf(sh->probe_ch, sizeof sh->probe_ch, "racerd:probe:%s:%ld:%u",
	    host, (long)getpid(), sh->idx);
	sh->cmd.shard = sh->sub.shard = sh;
	sh->full_tail = &sh->full;
	sh->cmd.what = "cmd";
	sh->sub.what = "sub";
	snprintf(sh->cmd.why, sizeof sh->cmd.why, "connecting");
	snprintf(sh->sub.why, sizeof sh->sub.why, "connecting");
	sh->cmd.retry = evtimer_new(bus.base, bus_retry, &sh->cmd);
	sh->sub.retry = evtimer_new(bus.base, bus_retry, &sh->sub);
	sh->flush = event_new(bus.base, -1, 0, bus_on_flush, sh);
	if (sh->cmd.retry == NULL || sh->sub.retry == NULL ||
	    sh->flush == NULL)
		return (-1);
	/* Connect from the loop, once every module is set up. */
	if (evtimer_add(sh->cmd.retry, &now) != 0 ||
	    evtimer_add(sh->sub.retry, &now) != 0)
		return (-1);
	if (sh->nsentinels > 0) {
		sh->watch_retry = evtimer_new(bus.base, bus_on_watch_retry, sh);
		if (sh->watch_retry == NULL ||
		    evtimer_add(sh->watch_retry, &now) != 0)
			return (-1);
	}
	return (0);
}

/*
 * Start the store links of worker idx of instance to every shard that
 * addrs (the redis option's list) names.  Returns 0, or -1 if an address
 * cannot be used.
 */
int
bus_init(struct event_base *base, const char *addrs, const char *instance,
    int idx)
{
	struct timeval	 tv = { BUS_PROBE_MS / 1000,
	    (BUS_PROBE_MS % 1000) * 1000 };
	char		**list;
	u_int		 i, n;
	int		 rc = 0;

	memset(&bus, 0, sizeof bus);
	bus.base = base;
	randombytes_buf(bus.epoch_key, sizeof bus.epoch_key);
	for (i = 0; i < BUS_NSCRIPTS; i++)
		bus_sha1(bus_lua[i].body, bus.sha[i]);
	snprintf(bus.name, sizeof bus.name, "racerd:%s:w%d", instance, idx);

	list = config_store_list(addrs, &n);
	bus.shards = xcalloc(n, sizeof *bus.shards);
	bus.nshards = n;
	for (i = 0; i < n && rc == 0; i++) {
		bus.shards[i].idx = i;
		if (bus_parse(&bus.shards[i], list[i]) != 0 ||
		    bus_shard_init(&bus.shards[i], util_hostname()) != 0)
			rc = -1;
	}
	config_store_list_free(list);
	if (rc != 0)
		return (-1);
	bus.probe = event_new(base, -1, EV_PERSIST, bus_probe, NULL);
	if (bus.probe == NULL || evtimer_add(bus.probe, &tv) != 0)
		return (-1);
	return (0);
}

/* Close the store links at worker exit. */
void
bus_shutdown(void)
{
	struct bus_shard	*sh;
	struct bus_batch	*b, *next;
	u_int			 i;

	bus.closing = 1;
	if (bus.probe != NULL)
		event_free(bus.probe);
	bus.probe = NULL;
	for (i = 0; i < bus.nshards; i++) {
		sh = &bus.shards[i];
		for (b = bus_batch_take(sh); b != NULL; b = next) {
			next = b->next;
			bus_batch_fail(b);
		}
		if (sh->watch != NULL)
			redisAsyncFree(sh->watch);
		sh->watch = NULL;
		if (sh->watch_retry != NULL)
			event_free(sh->watch_retry);
		sh->watch_retry = NULL;
		if (sh->flush != NULL)
			event_free(sh->flush);
		sh->flush = NULL;
		if (sh->cmd.ac != NULL)
			redisAsyncFree(sh->cmd.ac);
		if (sh->sub.ac != NULL)
			redisAsyncFree(sh->sub.ac);
		sh->cmd.ac = sh->sub.ac = NULL;
		if (sh->cmd.retry != NULL)
			event_free(sh->cmd.retry);
		if (sh->sub.retry != NULL)
			event_free(sh->sub.retry);
		sh->cmd.retry = sh->sub.retry = NULL;
		sodium_memzero(sh->password, sizeof sh->password);
	}
}

/* Returns 1 if both links of sh answer, else 0 with the reason in *why. */
static int
bus_shard_up(struct bus_shard *sh, const char **why)
{
	if (sh->cmd.up && sh->sub.up)
		return (1);
	if (why != NULL) {
		snprintf(sh->why, sizeof sh->why, "%s%s", sh->label,
		    !sh->cmd.up ? sh->cmd.why : sh->sub.why);
		*why = sh->why;
	}
	return (0);
}

/*
 * Returns 1 if every shard answers, else 0 with the first down shard and
 * why in *why.
 */
int
bus_is_up(const char **why)
{
	u_int	 i;

	for (i = 0; i < bus.nshards; i++) {
		if (!bus_shard_up(&bus.shards[i], why))
			return (0);
	}
	return (1);
}

/* Returns 1 if the shard of a chat answers, else 0 with why in *why. */
int
bus_chat_is_up(const char *chat, size_t len, const char **why)
{
	return (bus_shard_up(bus_shard_of(chat, len), why));
}

/* The number of shards, and in *up how many of them answer. */
u_int
bus_shards(u_int *up)
{
	u_int	 i;

	*up = 0;
	for (i = 0; i < bus.nshards; i++)
		*up += bus_shard_up(&bus.shards[i], NULL);
	return (bus.nshards);
}

/* The channel of a chat, "racerd:{chat:ID}"; the caller frees it. */
static char *
bus_channel(const char *chat, size_t len)
{
	char	*ch;

	xasprintf(&ch, BUS_PREFIX "%.*s}", (int)len, chat);
	return (ch);
}

static int
bus_sub_command(const char *cmd, const char *chat, size_t len)
{
	const char	*argv[2];
	size_t		 argvlen[2];
	struct bus_shard *sh = bus_shard_of(chat, len);
	char		*ch;
	int		 rc;

	if (sh->sub.ac == NULL)
		return (-1);
	ch = bus_channel(chat, len);
	argv[0] = cmd;
	argvlen[0] = strlen(cmd);
	argv[1] = ch;
	argvlen[1] = strlen(ch);
	rc = redisAsyncCommandArgv(sh->sub.ac, bus_on_sub, NULL, 2, argv,
	    argvlen);
	free(ch);
	return (rc == REDIS_OK ? 0 : -1);
}

/* Subscribe to a chat's channel. Returns 0, or -1 if the link is down. */
int
bus_subscribe(const char *chat, size_t len)
{
	return (bus_sub_command("SUBSCRIBE", chat, len));
}

/* Unsubscribe from a chat's channel. Returns 0, or -1 if the link is down. */
int
bus_unsubscribe(const char *chat, size_t len)
{
	return (bus_sub_command("UNSUBSCRIBE", chat, len));
}

/*
 * Commands.  A call collects its arguments, is sent on the cmd link, and
 * its reply is decoded by the call's done function into the caller's typed
 * result.  Script calls go by EVALSHA and fall back to EVAL once if the
 * store lost its script cache.
 */
struct bus_call;
typedef void	 bus_done_fn(struct bus_call *, const redisReply *);

struct bus_call {
	bus_done_fn	*done;		/* NULL: nobody waits for the reply */
	union {
		bus_info_cb	*info;
		bus_range_cb	*range;
		bus_page_cb	*page;
		bus_sent_cb	*sent;
		bus_claim_cb	*claim;
		bus_pos_cb	*pos;
		bus_gen_cb	*gen;
		bus_members_cb	*members;
	}		 cb;
	void		*arg;
	struct bus_shard *shard;	/* where it was sent */
	char		*chat;		/* replies with envelopes: to open */
	const char	*script;	/* NULL: not a script, or sent whole */
	const char	*what;		/* for the log */
	int		 argc;
	int		 argsize;
	char		**argv;
	size_t		*argvlen;
};

static void
bus_call_free(struct bus_call *call)
{
	int	 i;

	for (i = 0; i < call->argc; i++)
		free(call->argv[i]);
	free(call->chat);
	free(call->argv);
	free(call->argvlen);
	free(call);
}

static void
bus_on_call(redisAsyncContext *ac, void *r, void *arg)
{
	struct bus_call	*call = arg;
	redisReply	*reply = r;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0 && call->script != NULL) {
		/* The store lost its script cache: send the body once. */
		free(call->argv[0]);
		free(call->argv[1]);
		call->argv[0] = xstrdup("EVAL");
		call->argvlen[0] = 4;
		call->argv[1] = xstrdup(call->script);
		call->argvlen[1] = strlen(call->script);
		call->script = NULL;
		log_info("store had no script cache; sent the script whole");
		if (redisAsyncCommandArgv(ac, bus_on_call, call, call->argc,
		    (const char **)call->argv, call->argvlen) == REDIS_OK)
			return;
		reply = NULL;
	}
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		wk.counters->store_errors++;
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "READONLY", 8) == 0 && call->shard->cmd.up) {
		/* The primary became a replica (a failover): find the new one. */
		log_warnx("store %scmd connection: the server turned replica; "
		    "reconnecting", call->shard->label);
		bus_down(&call->shard->cmd, "the server turned replica");
		redisAsyncFree(ac);
	}
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warnx("store: %s: %s", call->what, reply->str);
	bus.pending--;
	call->shard->cmd.heard = util_mono_ms();
	if (call->done != NULL)
		call->done(call, reply != NULL &&
		    reply->type == REDIS_REPLY_ERROR ? NULL : reply);
	bus_call_free(call);
	if (bus.pending == 0)
		worker_store_idle();
}

/* Append an allocated argument to a command, which then owns it. */
static void
bus_call_arg_own(struct bus_call *call, char *s, size_t len)
{
	if (call->argc == call->argsize) {
		call->argsize = call->argsize == 0 ? 16 : call->argsize * 2;
		call->argv = xreallocarray(call->argv, call->argsize,
		    sizeof *call->argv);
		call->argvlen = xreallocarray(call->argvlen, call->argsize,
		    sizeof *call->argvlen);
	}
	call->argv[call->argc] = s;
	call->argvlen[call->argc] = len;
	call->argc++;
}

/* Append one argument to a command. */
static void
bus_call_arg(struct bus_call *call, const char *s, size_t len)
{
	char	*copy;

	copy = xmalloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	bus_call_arg_own(call, copy, len);
}

static void
bus_call_str(struct bus_call *call, const char *s)
{
	bus_call_arg(call, s, strlen(s));
}

/* Append a formatted argument. */
static void __attribute__((__format__(__printf__, 2, 3)))
bus_call_argf(struct bus_call *call, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = xvasprintf(&s, fmt, ap);
	va_end(ap);
	bus_call_arg(call, s, n);
	free(s);
}

static void
bus_call_u64(struct bus_call *call, uint64_t v)
{
	bus_call_argf(call, "%llu", (unsigned long long)v);
}

/*
 * Append racerd:{chat:CHAT}, followed by :SUFFIX unless suffix is NULL.
 * Built by hand: every message costs several of these.
 */
static void
bus_call_name(struct bus_call *call, const char *chat, size_t len,
    const char *suffix)
{
	size_t	 plen = sizeof BUS_PREFIX - 1, slen, n;
	char	*s;

	slen = suffix != NULL ? strlen(suffix) + 1 : 0;
	n = plen + len + 1 + slen;
	s = xmalloc(n + 1);
	memcpy(s, BUS_PREFIX, plen);
	memcpy(s + plen, chat, len);
	s[plen + len] = '}';
	if (suffix != NULL) {
		s[plen + len + 1] = ':';
		memcpy(s + plen + len + 2, suffix, slen - 1);
	}
	s[n] = '\0';
	bus_call_arg_own(call, s, n);
}

/* Append the key racerd:{chat:CHAT}:SUFFIX. */
static void
bus_call_key(struct bus_call *call, const char *chat, size_t len,
    const char *suffix)
{
	bus_call_name(call, chat, len, suffix);
}

/* Append a chat's channel. */
static void
bus_call_channel(struct bus_call *call, const char *chat, size_t len)
{
	bus_call_name(call, chat, len, NULL);
}

/*
 * Append a fresh epoch (16 hex digits), in case the message starts its
 * chat.  Every message carries one, so it is not a getrandom(2) each:
 * SipHash, under a random key of this worker (bus_init), of a counter,
 * is as unpredictable and never repeats within the worker.
 */
static void
bus_call_epoch(struct bus_call *call)
{
	uint8_t		 in[8], out[crypto_shorthash_BYTES];
	char		 hex[17];

	bus.epochs++;
	memcpy(in, &bus.epochs, sizeof in);
	crypto_shorthash(out, in, sizeof in, bus.epoch_key);
	sodium_bin2hex(hex, sizeof hex, out, sizeof out);
	bus_call_arg(call, hex, 16);
}

/*
 * Send a prepared command to shard sh.  Returns 0 (its done function will run with
 * the reply, or NULL if the link breaks), or -1 if the store is down now
 * (the call is freed and nothing is called back).
 */
static int
bus_call_send(struct bus_shard *sh, struct bus_call *call)
{
	call->shard = sh;
	if (sh->cmd.ac == NULL || !sh->cmd.up ||
	    redisAsyncCommandArgv(sh->cmd.ac, bus_on_call, call, call->argc,
	    (const char **)call->argv, call->argvlen) != REDIS_OK) {
		bus_call_free(call);
		return (-1);
	}
	bus.pending++;
	return (0);
}

/* Calls sent and not answered yet. */
u_int
bus_pending(void)
{
	return (bus.pending);
}

static struct bus_call *
bus_call_new(const char *what, bus_done_fn *done, void *arg)
{
	struct bus_call	*call;

	call = xcalloc(1, sizeof *call);
	call->what = what;
	call->done = done;
	call->arg = arg;
	return (call);
}

/* A new call of a script; append the number of keys, keys and args. */
static struct bus_call *
bus_script_call(enum bus_script_id id, bus_done_fn *done, void *arg)
{
	struct bus_call	*call;

	call = bus_call_new(bus_lua[id].name, done, arg);
	call->script = bus_lua[id].body;
	bus_call_arg(call, "EVALSHA", 7);
	bus_call_arg(call, bus.sha[id], 40);
	return (call);
}

/*
 * Reply decoding.  Each bus_decode_* function reads one reply shape of a
 * script or command, checks every element it touches, and returns 0, or
 * -1 if the reply is not of that shape (a store error, a foreign value, a
 * truncated array).  Decoded strings point into the reply.
 */
static int
bus_is(const redisReply *r, int type)
{
	return (r != NULL && r->type == type);
}

static int
bus_u64(const redisReply *r, uint64_t *out)
{
	char	*end;

	if (bus_is(r, REDIS_REPLY_INTEGER)) {
		if (r->integer < 0)
			return (-1);
		*out = r->integer;
		return (0);
	}
	if (!bus_is(r, REDIS_REPLY_STRING) || r->len == 0 ||
	    r->str[0] < '0' || r->str[0] > '9')
		return (-1);
	errno = 0;
	*out = strtoull(r->str, &end, 10);
	return (errno != 0 || *end != '\0' ? -1 : 0);
}

/* An epoch: 1 to BUS_EPOCH_MAX bytes without spaces. */
static int
bus_epoch_ok(const char *s, size_t len)
{
	return (len > 0 && len <= BUS_EPOCH_MAX &&
	    memchr(s, ' ', len) == NULL && memchr(s, '\0', len) == NULL);
}

/* info.lua: {latest, epoch}. */
int
bus_decode_info(const struct redisReply *r, struct bus_info *out)
{
	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements != 2 ||
	    bus_u64(r->element[0], &out->latest) != 0 ||
	    !bus_is(r->element[1], REDIS_REPLY_STRING) ||
	    !bus_epoch_ok(r->element[1]->str, r->element[1]->len))
		return (-1);
	out->epoch = r->element[1]->str;
	return (0);
}

/*
 * publish.lua, one message: {1, seq, epoch} ({1, seq, epoch, message}
 * when held for WAIT) or {0, seq, epoch, envelope or nil}.
 */
int
bus_decode_sent(const struct redisReply *r, struct bus_sent *out)
{
	const redisReply	*env;

	memset(out, 0, sizeof *out);
	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements < 3 ||
	    !bus_is(r->element[0], REDIS_REPLY_INTEGER) ||
	    bus_u64(r->element[1], &out->seq) != 0 || out->seq == 0)
		return (-1);
	if (r->element[0]->integer == 1)
		return (0);
	if (r->element[0]->integer != 0)
		return (-1);
	out->repeat = 1;
	if (r->elements == 4 && bus_is(r->element[3], REDIS_REPLY_STRING)) {
		env = r->element[3];
		out->env = env->str;
		out->len = env->len;
	}
	return (0);
}

/* One stream entry {"SEQ-0", {"m", envelope, "t", ms}}. */
static int
bus_decode_entry(const redisReply *e, struct bus_entry *out)
{
	const redisReply	*f;
	char			*end;

	if (!bus_is(e, REDIS_REPLY_ARRAY) || e->elements != 2 ||
	    !bus_is(e->element[0], REDIS_REPLY_STRING))
		return (-1);
	errno = 0;
	out->seq = strtoull(e->element[0]->str, &end, 10);
	if (errno != 0 || out->seq == 0 || strcmp(end, "-0") != 0)
		return (-1);
	f = e->element[1];
	if (!bus_is(f, REDIS_REPLY_ARRAY) || f->elements < 2 ||
	    !bus_is(f->element[1], REDIS_REPLY_STRING))
		return (-1);
	out->env = f->element[1]->str;
	out->len = f->element[1]->len;
	return (0);
}

/*
 * XRANGE of a chat's log: entries in *out (the caller frees it; never
 * NULL on success), their number in *n.
 */
int
bus_decode_range(const struct redisReply *r, struct bus_entry **out,
    size_t *n)
{
	size_t	 i;

	*out = NULL;
	*n = 0;
	if (!bus_is(r, REDIS_REPLY_ARRAY))
		return (-1);
	*out = xreallocarray(NULL, r->elements + 1, sizeof **out);
	for (i = 0; i < r->elements; i++) {
		if (bus_decode_entry(r->element[i], &(*out)[i]) != 0) {
			free(*out);
			*out = NULL;
			return (-1);
		}
	}
	*n = r->elements;
	return (0);
}

/*
 * history.lua: {latest, epoch or nil, seq1, envelope1, ...}.  The caller
 * frees out->entries.
 */
int
bus_decode_page(const struct redisReply *r, struct bus_page *out)
{
	const redisReply	*ep;
	struct bus_entry	*e;
	size_t			 i;

	memset(out, 0, sizeof *out);
	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements < 2 ||
	    r->elements % 2 != 0 || bus_u64(r->element[0], &out->latest) != 0)
		return (-1);
	ep = r->element[1];
	if (bus_is(ep, REDIS_REPLY_STRING)) {
		if (!bus_epoch_ok(ep->str, ep->len))
			return (-1);
		out->epoch = ep->str;
	} else if (!bus_is(ep, REDIS_REPLY_NIL))
		return (-1);
	out->entries = xreallocarray(NULL, r->elements / 2, sizeof *e);
	for (i = 2; i < r->elements; i += 2) {
		e = &out->entries[out->n];
		if (bus_u64(r->element[i], &e->seq) != 0 || e->seq == 0 ||
		    !bus_is(r->element[i + 1], REDIS_REPLY_STRING)) {
			free(out->entries);
			out->entries = NULL;
			return (-1);
		}
		e->env = r->element[i + 1]->str;
		e->len = r->element[i + 1]->len;
		out->n++;
	}
	return (0);
}

/*
 * claim.lua: nil (unknown or expired), "user" (another user's), or
 * {user, epoch, last, state, generation}.
 */
int
bus_decode_claim(const struct redisReply *r, struct bus_claim *out)
{
	uint64_t	 last;

	memset(out, 0, sizeof *out);
	if (bus_is(r, REDIS_REPLY_NIL)) {
		out->result = BUS_CLAIM_UNKNOWN;
		return (0);
	}
	if (bus_is(r, REDIS_REPLY_STRING) && strcmp(r->str, "user") == 0) {
		out->result = BUS_CLAIM_FOREIGN;
		return (0);
	}
	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements != 5 ||
	    !bus_is(r->element[0], REDIS_REPLY_STRING) ||
	    !bus_is(r->element[1], REDIS_REPLY_STRING) ||
	    !bus_epoch_ok(r->element[1]->str, r->element[1]->len) ||
	    bus_u64(r->element[4], &out->gen) != 0 || out->gen == 0)
		return (-1);
	out->result = BUS_CLAIM_OK;
	out->user = r->element[0]->str;
	out->epoch = r->element[1]->str;
	out->last = -1;
	if (bus_u64(r->element[2], &last) == 0)
		out->last = last;
	return (0);
}

/*
 * attach.lua: the position "EPOCH SEQ" the user left at, or nil.  Returns
 * 1 with *out filled, 0 for none, -1 for a bad reply.
 */
int
bus_decode_pos(const struct redisReply *r, struct bus_pos *out)
{
	const char	*sp;
	char		*end;
	size_t		 elen;

	if (bus_is(r, REDIS_REPLY_NIL))
		return (0);
	if (!bus_is(r, REDIS_REPLY_STRING) ||
	    (sp = memchr(r->str, ' ', r->len)) == NULL)
		return (-1);
	elen = sp - r->str;
	if (!bus_epoch_ok(r->str, elen) || sp[1] < '0' || sp[1] > '9')
		return (-1);
	errno = 0;
	out->seq = strtoull(sp + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return (-1);
	memcpy(out->epoch, r->str, elen);
	out->epoch[elen] = '\0';
	return (1);
}

static int
bus_cmp_member(const void *a, const void *b)
{
	const struct bus_member	*ma = a, *mb = b;

	return (strcmp(ma->user, mb->user));
}

/*
 * HGETALL of a chat's :who hash, {token, "STATE USER", ...}: one member
 * per user, sorted, connected if any of its sessions is.  The caller
 * frees *out (never NULL on success).
 */
int
bus_decode_members(const struct redisReply *r, struct bus_member **out,
    size_t *n)
{
	struct bus_member	*m;
	const redisReply	*v;
	const char		*sp;
	size_t			 i, j;

	*out = NULL;
	*n = 0;
	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements % 2 != 0)
		return (-1);
	m = xreallocarray(NULL, r->elements / 2 + 1, sizeof *m);
	for (i = 1; i < r->elements; i += 2) {
		v = r->element[i];
		if (!bus_is(v, REDIS_REPLY_STRING) ||
		    (sp = strchr(v->str, ' ')) == NULL || sp[1] == '\0')
			continue;	/* not ours: skip, serve the rest */
		m[*n].user = sp + 1;
		m[*n].connected = (sp - v->str == 9 &&
		    strncmp(v->str, "connected", 9) == 0);
		(*n)++;
	}
	qsort(m, *n, sizeof *m, bus_cmp_member);
	for (i = 0, j = 0; i < *n; i++) {
		if (j > 0 && strcmp(m[j - 1].user, m[i].user) == 0)
			m[j - 1].connected |= m[i].connected;
		else
			m[j++] = m[i];
	}
	*n = j;
	*out = m;
	return (0);
}

/* HGET of a session's generation: *gen, 0 if the session is gone. */
int
bus_decode_gen(const struct redisReply *r, uint64_t *gen)
{
	*gen = 0;
	if (bus_is(r, REDIS_REPLY_NIL))
		return (0);
	return (bus_u64(r, gen));
}

/*
 * One message on a chat's channel: "EPOCH SEQ ENVELOPE" (a message),
 * "! JSON" (a frame for every member: presence) or "K TOKEN GEN" (the
 * session TOKEN was claimed for the GENth time).  Returns 0 or -1.
 */
int
bus_decode_event(const char *msg, size_t len, struct bus_event *ev)
{
	const char	*sp1, *sp2;
	char		 num[24], *end;
	size_t		 n;

	memset(ev, 0, sizeof *ev);
	if (len > 2 && msg[0] == '!' && msg[1] == ' ') {
		ev->type = BUS_EVENT_FRAME;
		ev->json = msg + 2;
		ev->jlen = len - 2;
		return (0);
	}
	if ((sp1 = memchr(msg, ' ', len)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', len - (sp1 + 1 - msg))) == NULL)
		return (-1);
	n = len - (sp2 + 1 - msg);
	if (sp1 - msg == 1 && msg[0] == 'K') {
		if (sp2 - (sp1 + 1) != CONN_TOKEN_LEN || n == 0 ||
		    n >= sizeof num || !sess_valid_token(sp1 + 1,
		    CONN_TOKEN_LEN))
			return (-1);
		ev->type = BUS_EVENT_CLAIM;
		memcpy(ev->token, sp1 + 1, CONN_TOKEN_LEN);
		ev->token[CONN_TOKEN_LEN] = '\0';
		memcpy(num, sp2 + 1, n);
		num[n] = '\0';
		if (num[0] < '0' || num[0] > '9')
			return (-1);
		errno = 0;
		ev->gen = strtoull(num, &end, 10);
		return (errno != 0 || *end != '\0' || ev->gen == 0 ? -1 : 0);
	}
	ev->type = BUS_EVENT_MESSAGE;
	ev->epoch = msg;
	ev->elen = sp1 - msg;
	if (!bus_epoch_ok(ev->epoch, ev->elen) ||
	    (size_t)(sp2 - (sp1 + 1)) >= sizeof num || sp1[1] < '0' ||
	    sp1[1] > '9')
		return (-1);
	memcpy(num, sp1 + 1, sp2 - (sp1 + 1));
	num[sp2 - (sp1 + 1)] = '\0';
	errno = 0;
	ev->seq = strtoull(num, &end, 10);
	if (errno != 0 || *end != '\0' || ev->seq == 0)
		return (-1);
	ev->json = sp2 + 1;
	ev->jlen = n;
	return (0);
}

/*
 * Open a sealed envelope of chat (seal.c) for delivery: *env and *len are
 * replaced by the plain one, which the caller frees (NULL returned when
 * the envelope was not sealed).  One that does not open is delivered as
 * such, and counted.
 */
static char *
bus_open(const char *chat, size_t chat_len, const char **env, size_t *len)
{
	char	*out;
	size_t	 outlen;
	int	 rc;

	if (!seal_enabled() && memchr(*env, '\001', *len) == NULL)
		return (NULL);
	rc = seal_open_env(chat, chat_len, *env, *len, &out, &outlen);
	if (rc == 0)
		return (NULL);
	if (rc == -1) {
		wk.counters->sealed_unreadable++;
		log_debug("chat %.*s: a sealed body does not open",
		    (int)chat_len, chat);
	}
	*env = out;
	*len = outlen;
	return (out);
}

/* Open n entries in place; returns what to free (bus_open_free). */
static char **
bus_open_entries(const char *chat, struct bus_entry *e, size_t n)
{
	char	**opened;
	size_t	  i;

	if (chat == NULL)
		return (NULL);
	opened = xcalloc(n + 1, sizeof *opened);
	for (i = 0; i < n; i++)
		opened[i] = bus_open(chat, strlen(chat), &e[i].env, &e[i].len);
	return (opened);
}

static void
bus_open_free(char **opened, size_t n)
{
	size_t	 i;

	if (opened == NULL)
		return;
	for (i = 0; i < n; i++)
		free(opened[i]);
	free(opened);
}

/*
 * Done functions: decode the reply and call the caller back, with NULL
 * when the store failed or answered something else.
 */
static void
bus_done_info(struct bus_call *call, const redisReply *r)
{
	struct bus_info	 info;

	call->cb.info(bus_decode_info(r, &info) == 0 ? &info : NULL,
	    call->arg);
}

/*
 * A message of store-sync-replicas: in the primary's history, held back
 * until WAIT says that enough replicas have it too.
 */
struct bus_held {
	bus_sent_cb	*cb;
	void		*arg;
	struct bus_sent	 sent;
	char		*env;		/* sent.env's copy, or NULL */
	char		*chat;
	char		*msg;		/* the channel message, or NULL */
	size_t		 msglen;
};

static void
bus_held_free(struct bus_held *h)
{
	free(h->env);
	free(h->chat);
	free(h->msg);
	free(h);
}

/* WAIT answered: deliver the message (its echo acknowledges it), or not. */
static void
bus_done_waited(struct bus_call *call, const redisReply *r)
{
	struct bus_held	*h = call->arg;
	struct bus_call	*pub;

	if (!bus_is(r, REDIS_REPLY_INTEGER) ||
	    r->integer < wk.cfg->store_sync_replicas) {
		/* Not acknowledged; a retry with its id WAITs again. */
		wk.counters->store_errors++;
		h->cb(NULL, h->arg);
		bus_held_free(h);
		return;
	}
	if (h->msg != NULL) {
		pub = bus_call_new("PUBLISH", NULL, NULL);
		bus_call_str(pub, "PUBLISH");
		bus_call_channel(pub, h->chat, strlen(h->chat));
		bus_call_arg(pub, h->msg, h->msglen);
		if (bus_call_send(call->shard, pub) != 0) {
			h->cb(NULL, h->arg);
			bus_held_free(h);
			return;
		}
	}
	h->cb(&h->sent, h->arg);
	bus_held_free(h);
}

/* Hold a publish's outcome until WAIT store-sync-replicas answers. */
static void
bus_hold(struct bus_shard *sh, const char *chat, bus_sent_cb *cb, void *arg,
    const redisReply *r, const struct bus_sent *sent)
{
	struct bus_held	*h;
	struct bus_call	*wait;

	h = xcalloc(1, sizeof *h);
	h->cb = cb;
	h->arg = arg;
	h->sent = *sent;
	if (sent->env != NULL) {
		h->env = xmalloc(sent->len + 1);
		memcpy(h->env, sent->env, sent->len);
		h->env[sent->len] = '\0';
		h->sent.env = h->env;
	}
	h->chat = xstrdup(chat);
	if (!sent->repeat && r->elements == 4 &&
	    bus_is(r->element[3], REDIS_REPLY_STRING)) {
		h->msglen = r->element[3]->len;
		h->msg = xmalloc(h->msglen);
		memcpy(h->msg, r->element[3]->str, h->msglen);
	}
	wait = bus_call_new("WAIT", bus_done_waited, h);
	bus_call_str(wait, "WAIT");
	bus_call_u64(wait, wk.cfg->store_sync_replicas);
	bus_call_u64(wait, BUS_WAIT_MS);
	if (bus_call_send(sh, wait) != 0) {
		h->cb(NULL, h->arg);
		bus_held_free(h);
	}
}

/*
 * Publishes.  What a worker is given to publish in one loop turn goes to
 * each shard as one call of publish.lua, sent when the turn's events are
 * handled (or when BUS_BATCH_MAX messages wait): one script run and one
 * reply for many messages instead of one each.
 */
static void
bus_batch_free(struct bus_batch *b)
{
	u_int	 i;

	for (i = 0; i < b->n; i++)
		free(b->pubs[i].chat);
	free(b->pubs);
	if (b->keys != NULL)
		bus_call_free(b->keys);
	if (b->args != NULL)
		bus_call_free(b->args);
	free(b);
}

/* Every message of a batch failed (the store is away, or shutdown). */
static void
bus_batch_fail(struct bus_batch *b)
{
	u_int	 i;

	bus.pending -= b->n;
	for (i = 0; i < b->n; i++)
		b->pubs[i].cb(NULL, b->pubs[i].arg);
	bus_batch_free(b);
}

/* One message's answer. */
static void
bus_done_pub(struct bus_shard *sh, struct bus_pub *p, const redisReply *r)
{
	struct bus_sent	 sent;
	char		*opened = NULL;

	if (bus_decode_sent(r, &sent) != 0) {
		wk.counters->store_errors++;
		if (bus_is(r, REDIS_REPLY_ARRAY) && r->elements == 2 &&
		    bus_is(r->element[1], REDIS_REPLY_STRING))
			log_warnx("store %schat %s: a message was refused: %s",
			    sh->label, p->chat, r->element[1]->str);
		p->cb(NULL, p->arg);
		return;
	}
	if (sent.env != NULL)
		opened = bus_open(p->chat, strlen(p->chat), &sent.env,
		    &sent.len);
	if (wk.cfg->store_sync_replicas > 0)
		bus_hold(sh, p->chat, p->cb, p->arg, r, &sent);
	else
		p->cb(&sent, p->arg);
	free(opened);
}

static void
bus_done_batch(struct bus_call *call, const redisReply *r)
{
	struct bus_batch	*b = call->arg;
	u_int			 i;

	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements != b->n) {
		for (i = 0; i < b->n; i++)
			b->pubs[i].cb(NULL, b->pubs[i].arg);
	} else {
		for (i = 0; i < b->n; i++)
			bus_done_pub(call->shard, &b->pubs[i], r->element[i]);
	}
	bus_batch_free(b);
}

/* Move src's arguments to the end of dst. */
static void
bus_call_take(struct bus_call *dst, struct bus_call *src)
{
	int	 i;

	for (i = 0; i < src->argc; i++) {
		bus_call_arg_own(dst, src->argv[i], src->argvlen[i]);
		src->argv[i] = NULL;
	}
	src->argc = 0;
}

/* Send one batch as one call. */
static void
bus_batch_send(struct bus_shard *sh, struct bus_batch *b)
{
	struct bus_call		*call;
	u_int			 n;

	call = bus_script_call(BUS_PUBLISH, bus_done_batch, b);
	bus_call_u64(call, b->keys->argc);
	bus_call_take(call, b->keys);
	bus_call_u64(call, wk.cfg->history_size);
	bus_call_u64(call, wk.cfg->dedup_window);
	bus_call_u64(call, util_now_ms());
	bus_call_u64(call, (uint64_t)wk.cfg->history_ttl * 1000);
	bus_call_str(call, wk.cfg->store_sync_replicas > 0 ? "1" : "0");
	bus_call_take(call, b->args);
	bus_call_free(b->keys);
	bus_call_free(b->args);
	b->keys = b->args = NULL;
	n = b->n;
	if (bus_call_send(sh, call) != 0) {
		bus_batch_fail(b);
		return;
	}
	bus.pending -= n;	/* now one call */
}

/* Take a shard's batches (full ones first) off it. */
static struct bus_batch *
bus_batch_take(struct bus_shard *sh)
{
	struct bus_batch	*list;

	if (sh->batch != NULL) {
		*sh->full_tail = sh->batch;
		sh->batch = NULL;
	}
	list = sh->full;
	sh->full = NULL;
	sh->full_tail = &sh->full;
	return (list);
}

/* After the loop turn: send what the shard was given, in order. */
static void
bus_on_flush(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct bus_shard	*sh = arg;
	struct bus_batch	*b, *next;

	for (b = bus_batch_take(sh); b != NULL; b = next) {
		next = b->next;
		bus_batch_send(sh, b);
	}
	if (bus.pending == 0)
		worker_store_idle();
}

static void
bus_done_range(struct bus_call *call, const redisReply *r)
{
	struct bus_entry	*e;
	char			**opened = NULL;
	size_t			 n;

	if (bus_decode_range(r, &e, &n) == 0)
		opened = bus_open_entries(call->chat, e, n);
	call->cb.range(e, n, call->arg);
	bus_open_free(opened, n);
	free(e);
}

static void
bus_done_page(struct bus_call *call, const redisReply *r)
{
	struct bus_page	 page;
	char		**opened;

	if (bus_decode_page(r, &page) != 0) {
		call->cb.page(NULL, call->arg);
		return;
	}
	opened = bus_open_entries(call->chat, page.entries, page.n);
	call->cb.page(&page, call->arg);
	bus_open_free(opened, page.n);
	free(page.entries);
}

static void
bus_done_claim(struct bus_call *call, const redisReply *r)
{
	struct bus_claim	 claim;

	call->cb.claim(bus_decode_claim(r, &claim) == 0 ? &claim : NULL,
	    call->arg);
}

static void
bus_done_pos(struct bus_call *call, const redisReply *r)
{
	struct bus_pos	 pos;
	int		 rc;

	rc = bus_decode_pos(r, &pos);
	if (rc == -1 && r != NULL)
		log_warnx("store: a stored position is malformed; ignored");
	call->cb.pos(r != NULL, rc == 1 ? &pos : NULL, call->arg);
}

static void
bus_done_gen(struct bus_call *call, const redisReply *r)
{
	uint64_t	 gen;

	call->cb.gen(bus_decode_gen(r, &gen) == 0 ? (int64_t)gen : -1,
	    call->arg);
}

static void
bus_done_members(struct bus_call *call, const redisReply *r)
{
	struct bus_member	*m;
	size_t			 n;

	bus_decode_members(r, &m, &n);
	call->cb.members(m, n, call->arg);
	free(m);
}

/* A sweep that looked at a whole batch goes on: churn never outruns it. */
static int	bus_expire_shard(struct bus_shard *);

static void
bus_done_expired(struct bus_call *call, const redisReply *r)
{
	uint64_t	 ended, seen;

	if (!bus_is(r, REDIS_REPLY_ARRAY) || r->elements != 2 ||
	    bus_u64(r->element[0], &ended) != 0 ||
	    bus_u64(r->element[1], &seen) != 0)
		return;
	if (ended > 0)
		log_debug("ended %llu session(s) past their window",
		    (unsigned long long)ended);
	if (seen >= BUS_EXPIRE_BATCH && !bus.closing)
		bus_expire_shard(call->shard);
}

/* Append the keys seq, epoch and log of a chat. */
static void
bus_call_chat_keys(struct bus_call *call, const char *chat, size_t len)
{
	bus_call_arg(call, "3", 1);
	bus_call_key(call, chat, len, "seq");
	bus_call_key(call, chat, len, "epoch");
	bus_call_key(call, chat, len, "log");
}

/*
 * A chat's latest seq and epoch, creating the epoch if it has none.
 * Returns 0 (cb gets the answer, NULL on failure), or -1 if the store is
 * down (cb is not called).
 */
int
bus_room_info(const char *chat, size_t len, bus_info_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_INFO, bus_done_info, arg);
	call->cb.info = cb;
	bus_call_chat_keys(call, chat, len);
	bus_call_epoch(call);
	bus_call_u64(call, wk.cfg->history_ttl > 0 ?
	    (uint64_t)wk.cfg->history_ttl * 1000 : BUS_EMPTY_TTL_MS);
	return (bus_call_send(bus_shard_of(chat, len), call));
}

/*
 * Publish a message: the envelope is head + seq + tail.  With a non-empty
 * id the send is idempotent per (user, id) for dedup-window seconds.
 * Returns 0 (cb gets the outcome, NULL on failure), or -1 if the store is
 * down now (cb is not called).
 */
int
bus_publish(const char *chat, size_t len, const char *head, const char *tail,
    const char *user, const char *id, bus_sent_cb *cb, void *arg)
{
	struct bus_shard	*sh = bus_shard_of(chat, len);
	struct bus_batch	*b;
	struct bus_pub		*p;
	char			*dedup, *sealed;

	if (bus.closing || sh->cmd.ac == NULL || !sh->cmd.up)
		return (-1);
	if ((b = sh->batch) == NULL) {
		b = sh->batch = xcalloc(1, sizeof *b);
		b->keys = bus_call_new("publish keys", NULL, NULL);
		b->args = bus_call_new("publish args", NULL, NULL);
		event_active(sh->flush, EV_TIMEOUT, 0);
	}
	if (b->n == b->size) {
		b->size = b->size == 0 ? 16 : b->size * 2;
		b->pubs = xreallocarray(b->pubs, b->size, sizeof *b->pubs);
	}
	p = &b->pubs[b->n++];
	p->cb = cb;
	p->arg = arg;
	p->chat = xstrndup(chat, len);
	bus.pending++;

	bus_call_key(b->keys, chat, len, "seq");
	bus_call_key(b->keys, chat, len, "epoch");
	bus_call_key(b->keys, chat, len, "log");
	bus_call_str(b->args, *id != '\0' ? "4" : "3");
	if (*id != '\0') {
		/* The user's length keeps (a, b:c) apart from (a:b, c). */
		xasprintf(&dedup, "id:%zu:%s:%s", strlen(user), user, id);
		bus_call_key(b->keys, chat, len, dedup);
		free(dedup);
	}
	bus_call_str(b->args, head);
	if (seal_enabled()) {
		/* The store never holds a plaintext body. */
		sealed = seal_tail(p->chat, tail);
		bus_call_str(b->args, sealed != NULL ? sealed : tail);
		free(sealed);
	} else
		bus_call_str(b->args, tail);
	bus_call_epoch(b->args);
	bus_call_channel(b->args, chat, len);
	if (b->n == BUS_BATCH_MAX) {
		/* Full: it goes first when the turn ends, never from here. */
		*sh->full_tail = b;
		sh->full_tail = &b->next;
		sh->batch = NULL;
	}
	return (0);
}

/*
 * Read history entries with seq from..to (to 0: up to the latest), at
 * most count (0: BUS_RANGE_COUNT).  Returns 0 (cb gets the entries, NULL
 * on failure), or -1 if the store is down.
 */
int
bus_range(const char *chat, size_t len, uint64_t from, uint64_t to, int count,
    bus_range_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_call_new("XRANGE", bus_done_range, arg);
	call->cb.range = cb;
	call->chat = xstrndup(chat, len);
	bus_call_str(call, "XRANGE");
	bus_call_key(call, chat, len, "log");
	bus_call_argf(call, "%llu-0", (unsigned long long)from);
	if (to == 0)
		bus_call_str(call, "+");
	else
		bus_call_argf(call, "%llu-0", (unsigned long long)to);
	bus_call_str(call, "COUNT");
	bus_call_u64(call, count > 0 ? count : BUS_RANGE_COUNT);
	return (bus_call_send(bus_shard_of(chat, len), call));
}

/*
 * A page of history: seq > since, and with before != 0 the newest limit
 * entries with seq < before, oldest first.  Returns 0 (cb gets the page,
 * NULL on failure), or -1 if the store is down.
 */
int
bus_history(const char *chat, size_t len, uint64_t since, uint64_t before,
    int limit, bus_page_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_HISTORY, bus_done_page, arg);
	call->cb.page = cb;
	call->chat = xstrndup(chat, len);
	bus_call_chat_keys(call, chat, len);
	bus_call_u64(call, since);
	bus_call_u64(call, before);
	bus_call_u64(call, limit);
	bus_call_u64(call, util_now_ms());
	bus_call_u64(call, (uint64_t)wk.cfg->history_ttl * 1000);
	return (bus_call_send(bus_shard_of(chat, len), call));
}

/*
 * Members of a chat, connected or away, on every host.  Returns 0 (cb
 * gets them, NULL on failure), or -1 if the store is down.
 */
int
bus_presence(const char *chat, size_t len, bus_members_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_call_new("HGETALL", bus_done_members, arg);
	call->cb.members = cb;
	bus_call_str(call, "HGETALL");
	bus_call_key(call, chat, len, "who");
	return (bus_call_send(bus_shard_of(chat, len), call));
}

/*
 * Sessions.  A session's record is racerd:{chat:ID}:sess:TOKEN (user,
 * owner, epoch, last, state, gen); :who maps its token to "STATE USER"
 * for presence; :pos:USER keeps "EPOCH SEQ" after the session ended; the
 * sorted set racerd:due holds "CHAT TOKEN" by deadline.
 */
static void
bus_call_sess_key(struct bus_call *call, const struct bus_session *s)
{
	bus_call_argf(call, BUS_PREFIX "%s}:sess:%s", s->chat, s->token);
}

static void
bus_call_pos_key(struct bus_call *call, const struct bus_session *s)
{
	bus_call_argf(call, BUS_PREFIX "%s}:pos:%s", s->chat, s->user);
}

static void
bus_call_member(struct bus_call *call, const char *chat, const char *token)
{
	bus_call_argf(call, "%s %s", chat, token);
}

/*
 * Record the session of a plain join (a lease until deadline) and fetch
 * the position the user left at.  Returns 0 (cb gets whether the store
 * answered and the position or NULL), or -1 if the store is down.
 */
int
bus_attach(const struct bus_session *s, const char *epoch, uint64_t last,
    uint64_t deadline, bus_pos_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_ATTACH, bus_done_pos, arg);
	call->cb.pos = cb;
	bus_call_str(call, "4");
	bus_call_sess_key(call, s);
	bus_call_pos_key(call, s);
	bus_call_str(call, BUS_DUE);
	bus_call_key(call, s->chat, strlen(s->chat), "who");
	bus_call_str(call, s->user);
	bus_call_str(call, s->owner);
	bus_call_str(call, epoch);
	bus_call_u64(call, last);
	bus_call_u64(call, deadline);
	bus_call_member(call, s->chat, s->token);
	bus_call_channel(call, s->chat, strlen(s->chat));
	bus_call_str(call, s->token);
	bus_call_u64(call, BUS_SLACK_MS);
	bus_call_u64(call, wk.cfg->presence_events_max);
	return (bus_call_send(bus_shard_of(s->chat, strlen(s->chat)), call));
}

/*
 * Claim a session for a resume (s->user "" for any user).  Returns 0 (cb
 * gets the claim, NULL on failure), or -1 if the store is down.
 */
int
bus_claim(const struct bus_session *s, uint64_t deadline, bus_claim_cb *cb,
    void *arg)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_CLAIM, bus_done_claim, arg);
	call->cb.claim = cb;
	bus_call_str(call, "3");
	bus_call_sess_key(call, s);
	bus_call_str(call, BUS_DUE);
	bus_call_key(call, s->chat, strlen(s->chat), "who");
	bus_call_str(call, s->owner);
	bus_call_u64(call, deadline);
	bus_call_member(call, s->chat, s->token);
	bus_call_channel(call, s->chat, strlen(s->chat));
	bus_call_str(call, s->token);
	bus_call_str(call, s->user);
	bus_call_u64(call, util_now_ms());
	bus_call_u64(call, BUS_SLACK_MS);
	bus_call_u64(call, wk.cfg->presence_events_max);
	return (bus_call_send(bus_shard_of(s->chat, strlen(s->chat)), call));
}

/*
 * A connection dropped: its session is away and resumable until deadline.
 * Returns 0, or -1 if the store is down.
 */
int
bus_detach(const struct bus_session *s, uint64_t last, uint64_t deadline)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_DETACH, NULL, NULL);
	bus_call_str(call, "3");
	bus_call_sess_key(call, s);
	bus_call_str(call, BUS_DUE);
	bus_call_key(call, s->chat, strlen(s->chat), "who");
	bus_call_str(call, s->owner);
	bus_call_u64(call, last);
	bus_call_u64(call, deadline);
	bus_call_member(call, s->chat, s->token);
	bus_call_channel(call, s->chat, strlen(s->chat));
	bus_call_str(call, s->user);
	bus_call_str(call, s->token);
	bus_call_u64(call, BUS_SLACK_MS);
	bus_call_u64(call, wk.cfg->presence_events_max);
	return (bus_call_send(bus_shard_of(s->chat, strlen(s->chat)), call));
}

/*
 * The client closed: end the session now and keep the user's position
 * for pos_ttl seconds.  Returns 0, or -1 if the store is down.
 */
int
bus_end(const struct bus_session *s, uint64_t last, int pos_ttl)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_END, NULL, NULL);
	bus_call_str(call, "4");
	bus_call_sess_key(call, s);
	bus_call_str(call, BUS_DUE);
	bus_call_pos_key(call, s);
	bus_call_key(call, s->chat, strlen(s->chat), "who");
	bus_call_str(call, s->owner);
	bus_call_member(call, s->chat, s->token);
	bus_call_u64(call, last);
	bus_call_u64(call, pos_ttl);
	bus_call_channel(call, s->chat, strlen(s->chat));
	bus_call_str(call, s->user);
	bus_call_str(call, s->token);
	bus_call_u64(call, wk.cfg->presence_events_max);
	return (bus_call_send(bus_shard_of(s->chat, strlen(s->chat)), call));
}

static int
bus_expire_shard(struct bus_shard *sh)
{
	struct bus_call	*call;

	call = bus_script_call(BUS_EXPIRE, bus_done_expired, NULL);
	bus_call_str(call, "1");
	bus_call_str(call, BUS_DUE);
	bus_call_u64(call, util_now_ms());
	bus_call_u64(call, bus.expire_window);
	bus_call_u64(call, bus.expire_pos_ttl);
	bus_call_u64(call, BUS_SLACK_MS);
	bus_call_u64(call, BUS_EXPIRE_BATCH);
	bus_call_u64(call, wk.cfg->presence_events_max);
	return (bus_call_send(sh, call));
}

/*
 * End what is due on every shard that answers: lapsed leases turn away
 * (resumable for window ms), away sessions past their window end, keeping
 * positions pos_ttl seconds.  Returns 0, or -1 if a shard is down.
 */
int
bus_expire(uint64_t window, int pos_ttl)
{
	u_int	 i;
	int	 rc = 0;

	bus.expire_window = window;
	bus.expire_pos_ttl = pos_ttl;
	for (i = 0; i < bus.nshards; i++) {
		if (!bus_shard_up(&bus.shards[i], NULL) ||
		    bus_expire_shard(&bus.shards[i]) != 0)
			rc = -1;
	}
	return (rc);
}

/*
 * Renew the leases of n sessions until deadline, recording their
 * positions: one call to each shard that holds some of them.  Returns 0,
 * or -1 if a shard is down.
 */
int
bus_renew(const struct bus_lease *l, size_t n, uint64_t deadline)
{
	struct bus_call	*call;
	size_t		 i;
	u_int		 sh;
	int		 rc = 0;

	for (sh = 0; sh < bus.nshards; sh++) {
		call = NULL;
		for (i = 0; i < n; i++) {
			if (bus_shard_index(l[i].chat, strlen(l[i].chat)) != sh)
				continue;
			if (call == NULL) {
				call = bus_script_call(BUS_RENEW, NULL, NULL);
				bus_call_str(call, "1");
				bus_call_str(call, BUS_DUE);
				bus_call_u64(call, deadline);
				bus_call_u64(call, BUS_SLACK_MS);
				bus_call_u64(call, wk.cfg->presence_events_max);
			}
			bus_call_member(call, l[i].chat, l[i].token);
			bus_call_str(call, l[i].owner);
			bus_call_u64(call, l[i].last);
		}
		if (call != NULL && bus_call_send(&bus.shards[sh], call) != 0)
			rc = -1;
	}
	return (rc);
}

/*
 * The generation of a session (how often it was claimed).  Returns 0 (cb
 * gets it, 0 if the session is gone, -1 on failure), or -1 if the store is
 * down.
 */
int
bus_generation(const char *chat, const char *token, bus_gen_cb *cb,
    void *arg)
{
	struct bus_call	*call;

	call = bus_call_new("HGET", bus_done_gen, arg);
	call->cb.gen = cb;
	bus_call_str(call, "HGET");
	bus_call_argf(call, BUS_PREFIX "%s}:sess:%s", chat, token);
	bus_call_str(call, "gen");
	return (bus_call_send(bus_shard_of(chat, strlen(chat)), call));
}
