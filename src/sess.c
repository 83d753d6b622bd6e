/* racerd: sessions that survive interruptions. */
/*
 * Every WebSocket connection has a session: a record in the store,
 * racerd:{chat:ID}:sess:TOKEN = {user, epoch, last, state, owner}, where
 * owner names the connection holding it (host:pid:n) and state is
 * "attached" or "away".  One sorted set, racerd:due, holds every session's
 * deadline (member "CHAT TOKEN"):
 *
 * - attached: a lease (session-lease seconds) that the owning worker renews
 *   every third of it; when a host or worker dies the lease lapses and the
 *   session turns away, resumable for reconnect-window seconds;
 * - away: the end of the reconnect window.
 *
 * Every worker on every host runs the expiry script each second; the
 * script claims due sessions atomically, so each is ended exactly once
 * whoever is alive.  An ended session leaves the user's position
 * (racerd:{chat:ID}:pos:USER = "EPOCH SEQ") for the next join, which is
 * followed by a replay of what was missed.
 *
 * The scripts publish presence ("! JSON") and take-overs ("K TOKEN OWNER")
 * on the chat's channel; room.c hands them on.  They touch the keys of one
 * chat plus racerd:due, which is fine on one Redis but not cluster-safe.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <sodium.h>

#include "racerd.h"
#include "proto.h"
#include "registry.h"

#define SESS_DUE		"racerd:due"
#define SESS_EXPIRE_MS		1000
#define SESS_LEASE_MS		((uint64_t)wk.cfg->session_lease * 1000)
#define SESS_RENEW_MS		(SESS_LEASE_MS / 3)
#define SESS_POS_TTL		(30 * 24 * 3600)	/* seconds */
#define SESS_RENEW_BATCH	500

#define SESS_PRESENCE(ev) \
	"'! {\"type\":\"presence\",\"event\":\"" ev "\",\"user\":\"' .. "

/*
 * Plain join.  KEYS: sess, pos, due, who; ARGV: user, owner, epoch, last,
 * deadline, member, channel, token.  Returns the stored position or nil.
 */
static const char sess_attach_lua[] =
"redis.call('HSET', KEYS[1], 'user', ARGV[1], 'owner', ARGV[2],\n"
"    'epoch', ARGV[3], 'last', ARGV[4], 'state', 'attached')\n"
"redis.call('HSET', KEYS[4], ARGV[8], 'connected ' .. ARGV[1])\n"
"redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])\n"
"redis.call('PUBLISH', ARGV[7], " SESS_PRESENCE("join") "ARGV[1] .. '\"}')\n"
"local pos = redis.call('GET', KEYS[2])\n"
"if pos then redis.call('DEL', KEYS[2]) end\n"
"return pos\n";

/*
 * Resume.  KEYS: sess, due, who; ARGV: owner, deadline, member, channel,
 * token, user ("" for any), now (ms).  An away session past its deadline
 * is expired even before a sweep ends it.  Returns nil (unknown or
 * expired), "user"
 * (someone else's), or {user, epoch, last, previous state, generation}.
 * Every claim bumps the session's generation and says so on the channel
 * ("K TOKEN GEN"): connections of that session with a lower generation
 * close with 4009, wherever they are.
 */
static const char sess_claim_lua[] =
"local s = redis.call('HMGET', KEYS[1], 'user', 'epoch', 'last', 'state')\n"
"if not s[1] then return false end\n"
"if s[4] ~= 'attached' then\n"
"  local due = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[3]) or '0')\n"
"  if due < tonumber(ARGV[7]) then return false end\n"
"end\n"
"if ARGV[6] ~= '' and ARGV[6] ~= s[1] then return 'user' end\n"
"local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)\n"
"redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', 'attached')\n"
"redis.call('HSET', KEYS[3], ARGV[5], 'connected ' .. s[1])\n"
"redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])\n"
"redis.call('PUBLISH', ARGV[4], 'K ' .. ARGV[5] .. ' ' .. gen)\n"
"if s[4] ~= 'attached' then\n"
"  redis.call('PUBLISH', ARGV[4], " SESS_PRESENCE("back") "s[1] .. '\"}')\n"
"end\n"
"return {s[1], s[2], s[3], s[4], gen}\n";

/*
 * The connection dropped.  KEYS: sess, due, who; ARGV: owner, last,
 * deadline, member, channel, user, token.  Returns 1, or 0 if another connection owns it.
 */
static const char sess_detach_lua[] =
"if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n"
"redis.call('HSET', KEYS[1], 'state', 'away', 'last', ARGV[2])\n"
"redis.call('HSET', KEYS[3], ARGV[7], 'away ' .. ARGV[6])\n"
"redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])\n"
"redis.call('PUBLISH', ARGV[5], " SESS_PRESENCE("away") "ARGV[6] .. '\"}')\n"
"return 1\n";

/*
 * The client closed with 1000.  KEYS: sess, due, pos, who; ARGV: owner,
 * member, last, pos ttl, channel, user, token.  Returns 1, or 0 if not the owner.
 */
static const char sess_end_lua[] =
"local s = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
"if s[1] ~= ARGV[1] then return 0 end\n"
"redis.call('DEL', KEYS[1])\n"
"redis.call('HDEL', KEYS[4], ARGV[7])\n"
"redis.call('ZREM', KEYS[2], ARGV[2])\n"
"redis.call('SET', KEYS[3], s[2] .. ' ' .. ARGV[3], 'EX', ARGV[4])\n"
"redis.call('PUBLISH', ARGV[5], " SESS_PRESENCE("leave") "ARGV[6] .. '\"}')\n"
"return 1\n";

/*
 * Due sessions.  KEYS: due; ARGV: now, window (ms), pos ttl.  An attached
 * one whose lease lapsed turns away; an away one ends.  Returns how many
 * ended.
 */
static const char sess_expire_lua[] =
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
"    'LIMIT', 0, 100)\n"
"local n = 0\n"
"for _, m in ipairs(due) do\n"
"  local chat, token = string.match(m, '^(%S+) (%S+)$')\n"
"  local pre = 'racerd:{chat:' .. (chat or '') .. '}'\n"
"  local sk = pre .. ':sess:' .. (token or '')\n"
"  local s = redis.call('HMGET', sk, 'state', 'user', 'epoch', 'last')\n"
"  if not chat or not s[1] then\n"
"    redis.call('ZREM', KEYS[1], m)\n"
"  elseif s[1] == 'attached' then\n"
"    redis.call('HSET', sk, 'state', 'away')\n"
"    redis.call('HSET', pre .. ':who', token, 'away ' .. s[2])\n"
"    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), m)\n"
"    redis.call('PUBLISH', pre, " SESS_PRESENCE("away") "s[2] .. '\"}')\n"
"  else\n"
"    redis.call('SET', pre .. ':pos:' .. s[2], s[3] .. ' ' .. s[4],\n"
"        'EX', ARGV[3])\n"
"    redis.call('DEL', sk)\n"
"    redis.call('HDEL', pre .. ':who', token)\n"
"    redis.call('ZREM', KEYS[1], m)\n"
"    redis.call('PUBLISH', pre, " SESS_PRESENCE("leave") "s[2] .. '\"}')\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"return n\n";

/*
 * Leases.  KEYS: due; ARGV: deadline, then (member, owner, last) for each
 * session.  A session still owned by that connection gets the new
 * deadline and position.
 */
static const char sess_renew_lua[] =
"for i = 2, #ARGV, 3 do\n"
"  local chat, token = string.match(ARGV[i], '^(%S+) (%S+)$')\n"
"  local sk = 'racerd:{chat:' .. (chat or '') .. '}:sess:' .. (token or '')\n"
"  if chat and redis.call('HGET', sk, 'owner') == ARGV[i + 1] then\n"
"    redis.call('HSET', sk, 'last', ARGV[i + 2])\n"
"    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])\n"
"  end\n"
"end\n"
"return 0\n";

static struct {
	struct bus_script	 renew;
	struct bus_script	 attach;
	struct bus_script	 claim;
	struct bus_script	 detach;
	struct bus_script	 end;
	struct bus_script	 expire;
	struct event		*expire_ev;
	struct event		*renew_ev;
	char			 host[64];
	uint64_t		 next_owner;
} sess;

/* The owner name of a connection: host:pid:n. */
void
sess_owner_name(struct conn *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%ld:%llu", sess.host, (long)getpid(),
	    (unsigned long long)c->owner);
}

static void
sess_channel(char *buf, size_t size, const char *chat)
{
	snprintf(buf, size, "racerd:{chat:%s}", chat);
}

static void
sess_on_expired(void *reply_, __unused void *arg)
{
	redisReply	*reply = reply_;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer > 0)
		log_debug("ended %lld session(s) past their window",
		    reply->integer);
}

static void
sess_expire(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	struct bus_call	*call;

	if (!bus_is_up(NULL))
		return;
	call = bus_script_call(&sess.expire, sess_on_expired, NULL);
	bus_call_arg(call, "1", 1);
	bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
	bus_call_argf(call, "%llu", (unsigned long long)util_now_ms());
	bus_call_argf(call, "%llu",
	    (unsigned long long)wk.cfg->reconnect_window * 1000);
	bus_call_argf(call, "%d", SESS_POS_TTL);
	bus_call_send(call);
}

/*
 * What the client surely has: the last seq it acknowledged, or else the
 * last one whose bytes left this process.
 */
static uint64_t
sess_position(struct conn *c)
{
	uint64_t	 last = c->flushed_seq;

	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		last = c->queued_seq;
	if (c->acked_seq > last)
		last = c->acked_seq;
	return (last);
}

/*
 * Renew the leases of this worker's attached sessions, and record their
 * positions, in batches: a session whose worker dies keeps a recent one.
 */
static void
sess_renew(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	struct bus_call	*call = NULL;
	struct conn	*c;
	char		 owner[128];
	int		 n = 0;

	if (!bus_is_up(NULL))
		return;
	TAILQ_FOREACH(c, &wk.conns, entry) {
		if (!c->attached || c->room == NULL)
			continue;
		if (call == NULL) {
			call = bus_script_call(&sess.renew, NULL, NULL);
			bus_call_arg(call, "1", 1);
			bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
			bus_call_argf(call, "%llu",
			    (unsigned long long)(util_now_ms() +
			    SESS_LEASE_MS));
		}
		sess_owner_name(c, owner, sizeof owner);
		bus_call_argf(call, "%s %s", room_name(c->room), c->session);
		bus_call_arg(call, owner, strlen(owner));
		bus_call_argf(call, "%llu",
		    (unsigned long long)sess_position(c));
		if (++n == SESS_RENEW_BATCH) {
			bus_call_send(call);
			call = NULL;
			n = 0;
		}
	}
	if (call != NULL)
		bus_call_send(call);
}

/* Set up sessions for this worker. Returns 0 or -1. */
int
sess_init(void)
{
	struct timeval	 tv;

	sess.renew.body = sess_renew_lua;
	bus_script_register(&sess.renew);
	sess.attach.body = sess_attach_lua;
	sess.claim.body = sess_claim_lua;
	sess.detach.body = sess_detach_lua;
	sess.end.body = sess_end_lua;
	sess.expire.body = sess_expire_lua;
	bus_script_register(&sess.attach);
	bus_script_register(&sess.claim);
	bus_script_register(&sess.detach);
	bus_script_register(&sess.end);
	bus_script_register(&sess.expire);
	if (gethostname(sess.host, sizeof sess.host) != 0)
		snprintf(sess.host, sizeof sess.host, "localhost");
	sess.host[sizeof sess.host - 1] = '\0';
	sess.expire_ev = event_new(wk.base, -1, EV_PERSIST, sess_expire, NULL);
	sess.renew_ev = event_new(wk.base, -1, EV_PERSIST, sess_renew, NULL);
	if (sess.expire_ev == NULL || sess.renew_ev == NULL)
		return (-1);
	tv.tv_sec = SESS_EXPIRE_MS / 1000;
	tv.tv_usec = (SESS_EXPIRE_MS % 1000) * 1000;
	evtimer_add(sess.expire_ev, &tv);
	tv.tv_sec = SESS_RENEW_MS / 1000;
	tv.tv_usec = (SESS_RENEW_MS % 1000) * 1000;
	evtimer_add(sess.renew_ev, &tv);
	return (0);
}

void
sess_shutdown(void)
{
	if (sess.expire_ev != NULL)
		event_free(sess.expire_ev);
	if (sess.renew_ev != NULL)
		event_free(sess.renew_ev);
	sess.expire_ev = sess.renew_ev = NULL;
}

/* A fresh session token and owner name for a new connection. */
void
sess_new(struct conn *c)
{
	uint8_t	 rnd[16];

	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2base64(c->session, sizeof c->session, rnd, sizeof rnd,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	c->owner = ++sess.next_owner;
}

/* Returns 1 if token has the form of a session token. */
int
sess_valid_token(const char *token, size_t len)
{
	size_t	 i;

	if (len != CONN_TOKEN_LEN)
		return (0);
	for (i = 0; i < len; i++) {
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_", token[i]) == NULL || token[i] == '\0')
			return (0);
	}
	return (1);
}

static void
sess_on_attached(void *reply_, void *arg)
{
	redisReply	*reply = reply_;
	struct conn	*c = arg;
	char		 epoch[64];
	unsigned long long seq;

	if (c->state != CONN_WS || c->room == NULL) {
		conn_unref(c);
		return;
	}
	if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
		c->attached = 1;
	if (reply != NULL && reply->type == REDIS_REPLY_STRING &&
	    sscanf(reply->str, "%63s %llu", epoch, &seq) == 2) {
		/* Handed over: what this user missed since they left. */
		room_replay(c, seq, epoch);
	} else
		room_replay_done(c);
	conn_unref(c);
}

/*
 * Record the session of a connection that joined without a token, and
 * fetch the position the user left at, if any.  Live messages are held
 * for the connection until the answer (room_replay_done).
 */
void
sess_attach(struct conn *c, const char *epoch, uint64_t last)
{
	struct bus_call	*call;
	const char	*chat = room_name(c->room);
	size_t		 len = strlen(chat);
	char		 owner[128], ch[160];

	sess_owner_name(c, owner, sizeof owner);
	sess_channel(ch, sizeof ch, chat);
	conn_ref(c);
	call = bus_script_call(&sess.attach, sess_on_attached, c);
	bus_call_arg(call, "4", 1);
	bus_call_argf(call, "racerd:{chat:%s}:sess:%s", chat, c->session);
	bus_call_argf(call, "racerd:{chat:%s}:pos:%s", chat, c->user);
	bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
	bus_call_argf(call, "racerd:{chat:%s}:who", chat);
	bus_call_arg(call, c->user, strlen(c->user));
	bus_call_arg(call, owner, strlen(owner));
	bus_call_arg(call, epoch, strlen(epoch));
	bus_call_argf(call, "%llu", (unsigned long long)last);
	bus_call_argf(call, "%llu",
	    (unsigned long long)(util_now_ms() + SESS_LEASE_MS));
	bus_call_argf(call, "%.*s %s", (int)len, chat, c->session);
	bus_call_arg(call, ch, strlen(ch));
	bus_call_arg(call, c->session, strlen(c->session));
	if (bus_call_send(call) != 0) {
		room_replay_done(c);
		conn_unref(c);
	}
}

/*
 * Claim the session token of chat for connection c (a resume), before
 * the upgrade.  cb gets the reply of the claim script.  Returns 0, or -1
 * if the store is down (cb is not called).
 */
int
sess_claim(struct conn *c, const char *chat, const char *token,
    const char *user, bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;
	char		 owner[128], ch[160];

	sess_owner_name(c, owner, sizeof owner);
	sess_channel(ch, sizeof ch, chat);
	call = bus_script_call(&sess.claim, cb, arg);
	bus_call_arg(call, "3", 1);
	bus_call_argf(call, "racerd:{chat:%s}:sess:%s", chat, token);
	bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
	bus_call_argf(call, "racerd:{chat:%s}:who", chat);
	bus_call_arg(call, owner, strlen(owner));
	bus_call_argf(call, "%llu",
	    (unsigned long long)(util_now_ms() + SESS_LEASE_MS));
	bus_call_argf(call, "%s %s", chat, token);
	bus_call_arg(call, ch, strlen(ch));
	bus_call_arg(call, token, strlen(token));
	bus_call_arg(call, user, strlen(user));
	bus_call_argf(call, "%llu", (unsigned long long)util_now_ms());
	return (bus_call_send(call));
}

/*
 * The connection is going away: keep its session resumable for the
 * reconnect window, or, after a client close 1000, end it and store the
 * user's position.  The record is written before anyone is told.
 */
void
sess_detach(struct conn *c)
{
	struct bus_call	*call;
	const char	*chat;
	char		 owner[128], ch[160];
	uint64_t	 last;

	if (!c->attached || c->room == NULL)
		return;
	c->attached = 0;
	chat = room_name(c->room);
	sess_owner_name(c, owner, sizeof owner);
	sess_channel(ch, sizeof ch, chat);
	last = sess_position(c);
	if (c->close_code == 1000 && c->close_by_client) {
		call = bus_script_call(&sess.end, NULL, NULL);
		bus_call_arg(call, "4", 1);
		bus_call_argf(call, "racerd:{chat:%s}:sess:%s", chat,
		    c->session);
		bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
		bus_call_argf(call, "racerd:{chat:%s}:pos:%s", chat, c->user);
		bus_call_argf(call, "racerd:{chat:%s}:who", chat);
		bus_call_arg(call, owner, strlen(owner));
		bus_call_argf(call, "%s %s", chat, c->session);
		bus_call_argf(call, "%llu", (unsigned long long)last);
		bus_call_argf(call, "%d", SESS_POS_TTL);
	} else {
		call = bus_script_call(&sess.detach, NULL, NULL);
		bus_call_arg(call, "3", 1);
		bus_call_argf(call, "racerd:{chat:%s}:sess:%s", chat,
		    c->session);
		bus_call_arg(call, SESS_DUE, strlen(SESS_DUE));
		bus_call_argf(call, "racerd:{chat:%s}:who", chat);
		bus_call_arg(call, owner, strlen(owner));
		bus_call_argf(call, "%llu", (unsigned long long)last);
		bus_call_argf(call, "%llu", (unsigned long long)util_now_ms() +
		    (uint64_t)wk.cfg->reconnect_window * 1000);
		bus_call_argf(call, "%s %s", chat, c->session);
	}
	bus_call_arg(call, ch, strlen(ch));
	bus_call_arg(call, c->user, strlen(c->user));
	bus_call_arg(call, c->session, strlen(c->session));
	if (bus_call_send(call) != 0)
		log_warnx("store down: session of %s in %s not recorded; its "
		    "lease ends it", c->user, chat);
}

static void
sess_on_gen(void *reply_, void *arg)
{
	redisReply	*reply = reply_;
	struct conn	*c = arg;
	long long	 gen;

	if (c->state == CONN_WS && reply != NULL &&
	    reply->type == REDIS_REPLY_STRING) {
		gen = strtoll(reply->str, NULL, 10);
		if (gen > (long long)c->gen)
			sess_taken_over(c);
	}
	conn_unref(c);
}

/*
 * A resumed connection has joined its room: a newer claim whose notice
 * went by before the join would otherwise leave two holders.
 */
void
sess_check_gen(struct conn *c)
{
	struct bus_call	*call;

	conn_ref(c);
	call = bus_call_new(sess_on_gen, c);
	bus_call_arg(call, "HGET", 4);
	bus_call_argf(call, "racerd:{chat:%s}:sess:%s", room_name(c->room),
	    c->session);
	bus_call_arg(call, "gen", 3);
	if (bus_call_send(call) != 0)
		conn_unref(c);
}

/* A newer connection holds the session now. */
void
sess_taken_over(struct conn *c)
{
	c->attached = 0;
	ws_close(c, 4009, "session taken over by a newer connection");
}
