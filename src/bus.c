/* racerd: a worker's links to the store (prefix bus_). */
/*
 * Each worker keeps two asynchronous hiredis connections on its libevent
 * loop: "cmd" for commands and scripts, "sub" for pub/sub.  Both are named
 * (CLIENT SETNAME racerd:INSTANCE:wN:cmd|sub) so that operators see who is
 * who, and both are retried with exponential back-off and full jitter.
 *
 * Every message goes through one server-side script (bus_publish): dedup
 * by (user, id), epoch created if missing, INCR seq, XADD to the chat's
 * stream with the seq as entry id (trimmed to history-size), PUBLISH of
 * "EPOCH SEQ ENVELOPE" on the chat's channel.  The store is the single
 * sequencer; every worker, the sender's included, delivers from its
 * subscription, so every member everywhere sees one order.
 *
 * Liveness: the cmd link is probed with PING; the sub link with a probe
 * message published (through cmd) on this worker's own probe channel,
 * which must come back within BUS_DEADLINE_MS.  A subscription can look
 * connected and be dead; then it is dropped and rebuilt, and room.c fills
 * what was missed from history.
 *
 * Keys of a chat share the hash tag {chat:ID}: racerd:{chat:ID}:seq,
 * :epoch, :log (stream), :id:USER:ID (dedup); channel racerd:{chat:ID}.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <nettle/sha1.h>
#include <sodium.h>

#include "racerd.h"
#include "registry.h"

#define BUS_PROBE_MS		1000
#define BUS_DEADLINE_MS		3000
#define BUS_BACKOFF_MIN_MS	100
#define BUS_BACKOFF_MAX_MS	5000
#define BUS_RANGE_COUNT		1000	/* entries per history read */
#define BUS_KEY_MAX		(16 + 128 + 16 + 2 * 64)

#define BUS_PREFIX		"racerd:{chat:"

/*
 * KEYS: seq, epoch, log[, dedup]; ARGV: envelope head, envelope tail,
 * fresh epoch, history-size, dedup-window, channel, now (ms), history-ttl
 * (ms, 0: none).  Entries are {m: envelope, t: ms}.  With a ttl, entries
 * older than it are trimmed (the oldest is looked at every 32nd message,
 * which keeps the cost off the common path) and the stream expires when
 * the chat is idle that long.
 * Returns {1, seq, epoch} or, for a repeated id, {0, seq, epoch, envelope}.
 */
static const char bus_publish_lua[] =
"local epoch = redis.call('GET', KEYS[2])\n"
"if not epoch then\n"
"  epoch = ARGV[3]\n"
"  redis.call('SET', KEYS[2], epoch)\n"
"  redis.call('DEL', KEYS[1], KEYS[3])\n"
"end\n"
"if KEYS[4] then\n"
"  local prev = redis.call('GET', KEYS[4])\n"
"  if prev then\n"
"    local e = redis.call('XRANGE', KEYS[3], prev .. '-0', prev .. '-0')\n"
"    local env = false\n"
"    if e[1] then env = e[1][2][2] end\n"
"    return {0, tonumber(prev), epoch, env}\n"
"  end\n"
"end\n"
"local seq = redis.call('INCR', KEYS[1])\n"
"local ttl = tonumber(ARGV[8])\n"
"if ttl > 0 and seq % 32 == 1 then\n"
"  local cutoff = tonumber(ARGV[7]) - ttl\n"
"  local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)\n"
"  if first[1] and tonumber(first[1][2][4] or '0') < cutoff then\n"
"    local old = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1000)\n"
"    local keep = nil\n"
"    for _, x in ipairs(old) do\n"
"      if tonumber(x[2][4] or '0') >= cutoff then keep = x[1] break end\n"
"    end\n"
"    if not keep then\n"
"      keep = (tonumber(string.match(old[#old][1], '^%d+')) + 1) .. '-0'\n"
"    end\n"
"    redis.call('XTRIM', KEYS[3], 'MINID', keep)\n"
"  end\n"
"end\n"
"local env = ARGV[1] .. seq .. ARGV[2]\n"
"redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[4], seq .. '-0', 'm', env,\n"
"    't', ARGV[7])\n"
"if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end\n"
"if KEYS[4] then redis.call('SET', KEYS[4], seq, 'EX', ARGV[5]) end\n"
"redis.call('PUBLISH', ARGV[6], epoch .. ' ' .. seq .. ' ' .. env)\n"
"return {1, seq, epoch}\n";

/* KEYS: seq, epoch, log; ARGV: fresh epoch.  Returns {seq, epoch}. */
static const char bus_info_lua[] =
"local epoch = redis.call('GET', KEYS[2])\n"
"if not epoch then\n"
"  epoch = ARGV[1]\n"
"  redis.call('SET', KEYS[2], epoch)\n"
"  redis.call('DEL', KEYS[1], KEYS[3])\n"
"end\n"
"local seq = redis.call('GET', KEYS[1]) or 0\n"
"return {tonumber(seq), epoch}\n";

/*
 * KEYS: seq, epoch, log; ARGV: since (exclusive), before (exclusive, 0:
 * none), limit, now (ms), history-ttl (ms, 0: none).  With before, the
 * newest limit entries under it; else the oldest over since.  Entries past
 * the ttl that the publish script has not trimmed yet are left out.  Returns {latest, epoch or false, seq1, env1, ...},
 * oldest first.
 */
static const char bus_history_lua[] =
"local latest = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
"local epoch = redis.call('GET', KEYS[2])\n"
"local e\n"
"if ARGV[2] ~= '0' then\n"
"  local low = '-'\n"
"  if ARGV[1] ~= '0' then low = '(' .. ARGV[1] .. '-0' end\n"
"  e = redis.call('XREVRANGE', KEYS[3], '(' .. ARGV[2] .. '-0', low,\n"
"      'COUNT', ARGV[3])\n"
"  local n = #e\n"
"  for i = 1, math.floor(n / 2) do e[i], e[n - i + 1] = e[n - i + 1], e[i] end\n"
"else\n"
"  e = redis.call('XRANGE', KEYS[3], '(' .. ARGV[1] .. '-0', '+',\n"
"      'COUNT', ARGV[3])\n"
"end\n"
"local out = {latest, epoch}\n"
"local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[5])\n"
"for i, x in ipairs(e) do\n"
"  if ARGV[5] == '0' or tonumber(x[2][4] or '0') >= cutoff then\n"
"    out[#out + 1] = tonumber((string.gsub(x[1], '-0$', '')))\n"
"    out[#out + 1] = x[2][2]\n"
"  end\n"
"end\n"
"return out\n";

struct bus_link {
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

/* A command kept until it is answered, to re-send a script with EVAL. */
struct bus_call {
	bus_reply_cb	*cb;
	void		*arg;
	const char	*script;	/* NULL: not a script, or sent whole */
	int		 argc;
	int		 argsize;
	char		**argv;
	size_t		*argvlen;
};

#define BUS_SCRIPTS_MAX	16

static struct {
	struct event_base	*base;
	char			 host[256];
	char			 path[256];
	int			 port;
	int			 db;
	char			 user[256];	/* AUTH; never logged */
	char			 password[256];	/* "": no AUTH */
	char			 name[64];	/* racerd:INSTANCE:wN */
	char			 probe_ch[128];
	struct bus_link		 cmd;
	struct bus_link		 sub;
	struct event		*probe;
	uint64_t		 sub_seen;	/* last message on sub */
	struct bus_script	 publish;
	struct bus_script	 info;
	struct bus_script	 history;
	struct bus_script	*scripts[BUS_SCRIPTS_MAX];
	int			 nscripts;
	int			 closing;
	u_int			 pending;	/* calls awaiting a reply */
} bus;

static void	bus_connect(struct bus_link *);

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
 * Make a script known: its SHA-1 is computed now and the script is loaded
 * into the store on every (re)connection of the cmd link.
 */
void
bus_script_register(struct bus_script *sc)
{
	RD_ASSERT(bus.nscripts < BUS_SCRIPTS_MAX);
	bus_sha1(sc->body, sc->sha);
	bus.scripts[bus.nscripts++] = sc;
}

/* Take the store's address apart (config.c validated it). */
static int
bus_parse(const char *addr)
{
	struct config_store	 st;

	if (config_store_parse(addr, &st) != 0)
		return (-1);
	snprintf(bus.host, sizeof bus.host, "%s", st.host);
	snprintf(bus.path, sizeof bus.path, "%s", st.path);
	bus.port = st.port;
	bus.db = st.db;
	memcpy(bus.user, st.user, sizeof bus.user);
	memcpy(bus.password, st.password, sizeof bus.password);
	sodium_memzero(&st, sizeof st);
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
		log_warnx("store %s connection lost: %s", l->what, why);
	l->up = 0;
	snprintf(l->why, sizeof l->why, "%s: %s", l->what, why);
}

static void
bus_schedule_retry(struct bus_link *l)
{
	struct timeval	 tv;
	unsigned	 delay;

	if (bus.closing)
		return;
	if (l->backoff == 0)
		l->backoff = BUS_BACKOFF_MIN_MS;
	else if ((l->backoff *= 2) > BUS_BACKOFF_MAX_MS)
		l->backoff = BUS_BACKOFF_MAX_MS;
	/* Jitter keeps workers and hosts from reconnecting in step. */
	delay = l->backoff / 2 + randombytes_uniform(l->backoff / 2 + 1);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(l->retry, &tv);
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
	if (l == &bus.sub)
		room_sub_lost();
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
		log_warnx("store %s connection: %s", l->what, why);
	bus_down(l, why);
	l->denied = 1;
	redisAsyncFree(ac);	/* after this callback; then a retry */
}

/* The first answer on a fresh link: it is up. */
static void
bus_link_answered(struct bus_link *l)
{
	if (!l->up)
		log_info("store %s connection is up", l->what);
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
	const char	*chat;
	size_t		 chat_len;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 3)
		return;
	type = reply->element[0];
	ch = reply->element[1];
	msg = reply->element[2];
	if (type->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
		return;
	bus.sub_seen = util_mono_ms();
	if (strcmp(ch->str, bus.probe_ch) == 0) {
		bus_link_answered(bus_link_of(ac));
		return;
	}
	if (bus_chat_of(ch->str, ch->len, &chat, &chat_len) != 0)
		return;
	if (strcmp(type->str, "message") == 0 &&
	    msg->type == REDIS_REPLY_STRING)
		room_on_message(chat, chat_len, msg->str, msg->len);
	else if (strcmp(type->str, "subscribe") == 0)
		room_on_subscribed(chat, chat_len);
	else if (strcmp(type->str, "unsubscribe") == 0)
		room_on_unsubscribed(chat, chat_len);
}

static void
bus_probe(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	uint64_t	 now = util_mono_ms();
	struct bus_link	*l;

	l = &bus.cmd;
	if (l->ac != NULL) {
		/* Busy is not dead: only silence since the probe is. */
		if (l->probe_sent != 0 && now - l->probe_sent >
		    BUS_DEADLINE_MS && l->heard < l->probe_sent) {
			log_warnx("store cmd connection did not answer within "
			    "%d ms; reconnecting", BUS_DEADLINE_MS);
			bus_down(l, "probe timed out");
			redisAsyncFree(l->ac);	/* runs bus_on_disconnect */
		} else if (l->probe_sent == 0) {
			l->probe_sent = now;
			redisAsyncCommand(l->ac, bus_on_pong, NULL, "PING");
		}
	}

	/* The subscription: a probe through the store must come back. */
	l = &bus.sub;
	if (l->ac == NULL)
		return;
	if (l->probe_sent != 0 && now - l->probe_sent > BUS_DEADLINE_MS &&
	    bus.sub_seen < l->probe_sent) {
		log_warnx("store sub connection did not deliver a probe "
		    "within %d ms; reconnecting", BUS_DEADLINE_MS);
		bus_down(l, "probe timed out");
		redisAsyncFree(l->ac);
		return;
	}
	if (l->probe_sent == 0 && bus.cmd.up &&
	    (now - bus.sub_seen > BUS_PROBE_MS || !l->up)) {
		l->probe_sent = now;
		redisAsyncCommand(bus.cmd.ac, NULL, NULL, "PUBLISH %s %s",
		    bus.probe_ch, "probe");
	}
}

static void
bus_retry(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	bus_connect(arg);
}

static void
bus_connect(struct bus_link *l)
{
	redisAsyncContext	*ac;
	int			 i;

	if (bus.path[0] != '\0')
		ac = redisAsyncConnectUnix(bus.path);
	else
		ac = redisAsyncConnect(bus.host, bus.port);
	if (ac == NULL || ac->err) {
		bus_down(l, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		bus_schedule_retry(l);
		return;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, bus.base) != REDIS_OK) {
		redisAsyncFree(ac);
		bus_down(l, "cannot attach to the event loop");
		bus_schedule_retry(l);
		return;
	}
	redisAsyncSetConnectCallback(ac, bus_on_connect);
	redisAsyncSetDisconnectCallback(ac, bus_on_disconnect);
	l->ac = ac;
	if (bus.password[0] != '\0' && bus.user[0] != '\0')
		redisAsyncCommand(ac, bus_on_auth, NULL, "AUTH %s %s", bus.user,
		    bus.password);
	else if (bus.password[0] != '\0')
		redisAsyncCommand(ac, bus_on_auth, NULL, "AUTH %s",
		    bus.password);
	redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s:%s", bus.name,
	    l->what);
	if (bus.db != 0)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", bus.db);
	l->probe_sent = util_mono_ms();
	if (l == &bus.cmd) {
		for (i = 0; i < bus.nscripts; i++)
			redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s",
			    bus.scripts[i]->body);
		redisAsyncCommand(ac, bus_on_pong, NULL, "PING");
		return;
	}
	/* sub: the probe channel first (it answers), then every room. */
	redisAsyncCommand(ac, bus_on_sub, NULL, "SUBSCRIBE %s", bus.probe_ch);
	room_resubscribe_all();
}

/*
 * Start the store links of worker idx of instance.  Returns 0, or -1 if
 * the address cannot be used.
 */
int
bus_init(struct event_base *base, const char *addr, const char *instance,
    int idx)
{
	struct timeval	 tv = { BUS_PROBE_MS / 1000,
	    (BUS_PROBE_MS % 1000) * 1000 };
	char		 host[64];

	memset(&bus, 0, sizeof bus);
	bus.base = base;
	if (bus_parse(addr) != 0)
		return (-1);
	bus.publish.body = bus_publish_lua;
	bus.info.body = bus_info_lua;
	bus.history.body = bus_history_lua;
	bus_script_register(&bus.publish);
	bus_script_register(&bus.info);
	bus_script_register(&bus.history);
	snprintf(bus.name, sizeof bus.name, "racerd:%s:w%d", instance, idx);
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	snprintf(bus.probe_ch, sizeof bus.probe_ch, "racerd:probe:%s:%ld",
	    host, (long)getpid());
	bus.cmd.what = "cmd";
	bus.sub.what = "sub";
	snprintf(bus.cmd.why, sizeof bus.cmd.why, "connecting");
	snprintf(bus.sub.why, sizeof bus.sub.why, "connecting");
	bus.cmd.retry = evtimer_new(base, bus_retry, &bus.cmd);
	bus.sub.retry = evtimer_new(base, bus_retry, &bus.sub);
	bus.probe = event_new(base, -1, EV_PERSIST, bus_probe, NULL);
	if (bus.cmd.retry == NULL || bus.sub.retry == NULL ||
	    bus.probe == NULL)
		return (-1);
	evtimer_add(bus.probe, &tv);
	/* Connect from the loop, once every module registered its scripts. */
	tv.tv_sec = tv.tv_usec = 0;
	evtimer_add(bus.cmd.retry, &tv);
	evtimer_add(bus.sub.retry, &tv);
	return (0);
}

/* Close the store links at worker exit. */
void
bus_shutdown(void)
{
	bus.closing = 1;
	if (bus.probe != NULL)
		event_free(bus.probe);
	bus.probe = NULL;
	if (bus.cmd.ac != NULL)
		redisAsyncFree(bus.cmd.ac);
	if (bus.sub.ac != NULL)
		redisAsyncFree(bus.sub.ac);
	bus.cmd.ac = bus.sub.ac = NULL;
	if (bus.cmd.retry != NULL)
		event_free(bus.cmd.retry);
	if (bus.sub.retry != NULL)
		event_free(bus.sub.retry);
	bus.cmd.retry = bus.sub.retry = NULL;
}

/* Returns 1 if both links answer, else 0 with the reason in *why. */
int
bus_is_up(const char **why)
{
	if (why != NULL)
		*why = !bus.cmd.up ? bus.cmd.why : bus.sub.why;
	return (bus.cmd.up && bus.sub.up);
}

static void
bus_channel(char *buf, size_t size, const char *chat, size_t len)
{
	snprintf(buf, size, BUS_PREFIX "%.*s}", (int)len, chat);
}

/* Subscribe to a chat's channel. Returns 0, or -1 if the link is down. */
int
bus_subscribe(const char *chat, size_t len)
{
	char	 ch[BUS_KEY_MAX];

	if (bus.sub.ac == NULL)
		return (-1);
	bus_channel(ch, sizeof ch, chat, len);
	return (redisAsyncCommand(bus.sub.ac, bus_on_sub, NULL,
	    "SUBSCRIBE %s", ch) == REDIS_OK ? 0 : -1);
}

/* Unsubscribe from a chat's channel. Returns 0, or -1 if the link is down. */
int
bus_unsubscribe(const char *chat, size_t len)
{
	char	 ch[BUS_KEY_MAX];

	if (bus.sub.ac == NULL)
		return (-1);
	bus_channel(ch, sizeof ch, chat, len);
	return (redisAsyncCommand(bus.sub.ac, bus_on_sub, NULL,
	    "UNSUBSCRIBE %s", ch) == REDIS_OK ? 0 : -1);
}

static void
bus_call_free(struct bus_call *call)
{
	int	 i;

	for (i = 0; i < call->argc; i++)
		free(call->argv[i]);
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
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warnx("store: %s", reply->str);
	bus.pending--;
	bus.cmd.heard = util_mono_ms();
	if (call->cb != NULL)
		call->cb(reply, call->arg);
	bus_call_free(call);
	if (bus.pending == 0)
		worker_store_idle();
}

/* Append one argument to a command. */
void
bus_call_arg(struct bus_call *call, const char *s, size_t len)
{
	if (call->argc == call->argsize) {
		call->argsize = call->argsize == 0 ? 16 : call->argsize * 2;
		call->argv = xreallocarray(call->argv, call->argsize,
		    sizeof *call->argv);
		call->argvlen = xreallocarray(call->argvlen, call->argsize,
		    sizeof *call->argvlen);
	}
	call->argv[call->argc] = xmalloc(len + 1);
	memcpy(call->argv[call->argc], s, len);
	call->argv[call->argc][len] = '\0';
	call->argvlen[call->argc] = len;
	call->argc++;
}

/* Append a formatted argument. */
void
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

/* Append the key racerd:{chat:CHAT}:SUFFIX. */
void
bus_call_key(struct bus_call *call, const char *chat, size_t len,
    const char *suffix)
{
	char	 key[BUS_KEY_MAX];
	int	 n;

	n = snprintf(key, sizeof key, BUS_PREFIX "%.*s}:%s", (int)len, chat,
	    suffix);
	bus_call_arg(call, key, n);
}

/* Append a fresh random epoch (16 hex digits). */
void
bus_call_epoch(struct bus_call *call)
{
	uint8_t	 rnd[8];
	char	 hex[17];

	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
	bus_call_arg(call, hex, 16);
}

/*
 * Send a prepared command.  Returns 0 (the callback will run with the
 * reply, or NULL if the link breaks), or -1 if the store is down now (the
 * call is freed and the callback is not run).
 */
int
bus_call_send(struct bus_call *call)
{
	if (bus.cmd.ac == NULL || !bus.cmd.up ||
	    redisAsyncCommandArgv(bus.cmd.ac, bus_on_call, call, call->argc,
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

/* A new command; cb (may be NULL) gets the reply. */
struct bus_call *
bus_call_new(bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = xcalloc(1, sizeof *call);
	call->cb = cb;
	call->arg = arg;
	return (call);
}

/* A new call of a registered script; append numkeys, keys and args. */
struct bus_call *
bus_script_call(struct bus_script *sc, bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_call_new(cb, arg);
	call->script = sc->body;
	bus_call_arg(call, "EVALSHA", 7);
	bus_call_arg(call, sc->sha, 40);
	return (call);
}

/*
 * A chat's latest seq and epoch, creating the epoch if it has none.  The
 * reply is {seq, epoch}.  Returns 0, or -1 if the store is down (cb is
 * then not called).
 */
int
bus_room_info(const char *chat, size_t len, bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;

	call = bus_script_call(&bus.info, cb, arg);
	bus_call_arg(call, "3", 1);
	bus_call_key(call, chat, len, "seq");
	bus_call_key(call, chat, len, "epoch");
	bus_call_key(call, chat, len, "log");
	bus_call_epoch(call);
	return (bus_call_send(call));
}

/*
 * Publish a message: the envelope is head + seq + tail.  With a non-empty
 * id the send is idempotent per (user, id) for dedup-window seconds.
 * Returns 0 (cb will be called with the reply, or NULL if the store went
 * away), or -1 if the store is down now (cb is not called).
 */
int
bus_publish(const char *chat, size_t len, const char *head, const char *tail,
    const char *user, const char *id, bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;
	char		 num[32], dedup[2 * 64 + 8];
	int		 n;

	call = bus_script_call(&bus.publish, cb, arg);
	bus_call_arg(call, *id != '\0' ? "4" : "3", 1);
	bus_call_key(call, chat, len, "seq");
	bus_call_key(call, chat, len, "epoch");
	bus_call_key(call, chat, len, "log");
	if (*id != '\0') {
		snprintf(dedup, sizeof dedup, "id:%s:%s", user, id);
		bus_call_key(call, chat, len, dedup);
	}
	bus_call_arg(call, head, strlen(head));
	bus_call_arg(call, tail, strlen(tail));
	bus_call_epoch(call);
	n = snprintf(num, sizeof num, "%d", wk.cfg->history_size);
	bus_call_arg(call, num, n);
	n = snprintf(num, sizeof num, "%d", wk.cfg->dedup_window);
	bus_call_arg(call, num, n);
	bus_channel(dedup, sizeof dedup, chat, len);
	bus_call_arg(call, dedup, strlen(dedup));
	bus_call_argf(call, "%llu", (unsigned long long)util_now_ms());
	bus_call_argf(call, "%llu", (unsigned long long)wk.cfg->history_ttl *
	    1000);
	return (bus_call_send(call));
}

static void
bus_on_reply(__unused redisAsyncContext *ac, void *r, void *arg)
{
	struct bus_call	*call = arg;

	bus.pending--;
	bus.cmd.heard = util_mono_ms();
	call->cb(r, call->arg);
	bus_call_free(call);
	if (bus.pending == 0)
		worker_store_idle();
}

/*
 * Read history entries with seq from..to (to 0: up to the latest), at
 * most count (0: BUS_RANGE_COUNT).  Returns 0, or -1 if the store is down.
 */
int
bus_range(const char *chat, size_t len, uint64_t from, uint64_t to, int count,
    bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;
	char		 key[BUS_KEY_MAX], end[32];

	if (bus.cmd.ac == NULL || !bus.cmd.up)
		return (-1);
	snprintf(key, sizeof key, BUS_PREFIX "%.*s}:log", (int)len, chat);
	if (to == 0)
		snprintf(end, sizeof end, "+");
	else
		snprintf(end, sizeof end, "%llu-0", (unsigned long long)to);
	call = xcalloc(1, sizeof *call);
	call->cb = cb;
	call->arg = arg;
	if (redisAsyncCommand(bus.cmd.ac, bus_on_reply, call,
	    "XRANGE %s %llu-0 %s COUNT %d", key, (unsigned long long)from,
	    end, count > 0 ? count : BUS_RANGE_COUNT) != REDIS_OK) {
		free(call);
		return (-1);
	}
	bus.pending++;
	return (0);
}

/*
 * A page of history: seq > since, and with before != 0 the newest limit
 * entries with seq < before.  The reply is {latest, epoch or nil, seq1,
 * envelope1, ...}, oldest first.  Returns 0, or -1 if the store is down.
 */
int
bus_history(const char *chat, size_t len, uint64_t since, uint64_t before,
    int limit, bus_reply_cb *cb, void *arg)
{
	struct bus_call	*call;
	char		 num[32];
	int		 n;

	call = bus_script_call(&bus.history, cb, arg);
	bus_call_arg(call, "3", 1);
	bus_call_key(call, chat, len, "seq");
	bus_call_key(call, chat, len, "epoch");
	bus_call_key(call, chat, len, "log");
	n = snprintf(num, sizeof num, "%llu", (unsigned long long)since);
	bus_call_arg(call, num, n);
	n = snprintf(num, sizeof num, "%llu", (unsigned long long)before);
	bus_call_arg(call, num, n);
	n = snprintf(num, sizeof num, "%d", limit);
	bus_call_arg(call, num, n);
	bus_call_argf(call, "%llu", (unsigned long long)util_now_ms());
	bus_call_argf(call, "%llu", (unsigned long long)wk.cfg->history_ttl *
	    1000);
	return (bus_call_send(call));
}
