/* racerd: a worker's chats and their members. */
/*
 * A room is this worker's view of one chat: its local members, whether
 * the worker is subscribed to the chat's channel, and the last seq it
 * delivered.  Rooms live in a hash table keyed by chat id (SipHash with a
 * per-process key: chat ids come from clients).  The registry in shared
 * memory (reg_join/reg_leave) counts members across workers.
 *
 * Ordering: messages come from the subscription in the store's order.  A
 * message is delivered only if its seq is last + 1; a message further
 * ahead is held (sorted) while the missing range is read from the chat's
 * history (bus_range); older ones are dropped.  The same catch-up runs
 * after a subscription is (re)established.  So every member receives
 * seq last+1, last+2, ... with no gap and no duplicate.
 *
 * Life cycle: created on the first join (SUBSCRIBE), known once the store
 * has told it the latest seq and epoch (bus_room_info), at which point
 * waiting members get their welcome.  After the last member leaves the
 * room lingers ROOM_LINGER_MS, then unsubscribes and is freed when the
 * store confirms (hiredis forgets a channel's callback on the unsubscribe
 * reply, so a room is never re-subscribed before that reply).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <sodium.h>

#include "racerd.h"
#include "proto.h"
#include "registry.h"

#define ROOM_LINGER_MS		2000
#define ROOM_PENDING_MAX	65536	/* held messages before a full reread */
#define ROOM_EPOCH_MAX		64

enum room_state {
	ROOM_SUBSCRIBING,	/* SUBSCRIBE sent (or link down) */
	ROOM_SUBSCRIBED,	/* confirmed on the current link */
	ROOM_UNSUBSCRIBING	/* UNSUBSCRIBE sent, waiting for the reply */
};

struct room_msg {
	struct room_msg	*next;
	uint64_t	 seq;
	size_t		 len;
	char		 json[];
};

struct room {
	struct room		*next;		/* hash chain */
	uint64_t		 hash;
	TAILQ_HEAD(, conn)	 members;
	u_int			 nmembers;
	enum room_state		 state;
	int			 resubscribe;	/* joined while unsubscribing */
	int			 known;		/* last and epoch are valid */
	int			 busy;		/* info or range outstanding */
	int			 dead;		/* freed when busy ends */
	uint64_t		 last;		/* last seq delivered */
	char			 epoch[ROOM_EPOCH_MAX + 1];
	struct room_msg		*held;		/* sorted by seq */
	u_int			 nheld;
	struct event		*linger;
	char			*head;		/* envelope head, per chat */
	size_t			 len;
	char			 name[REG_NAME_MAX + 1];
};

static struct {
	struct room	**table;
	u_int		  size;		/* buckets, a power of two */
	u_int		  count;
	uint8_t		  key[crypto_shorthash_KEYBYTES];
} rooms;

static void	room_catch_up(struct room *);
static uint64_t	room_entry_seq(const redisReply *);
static void	room_drain(struct room *);

static uint64_t
room_hash(const char *name, size_t len)
{
	uint8_t		 out[crypto_shorthash_BYTES];
	uint64_t	 h;

	crypto_shorthash(out, (const uint8_t *)name, len, rooms.key);
	memcpy(&h, out, sizeof h);
	return (h);
}

static struct room *
room_find(const char *name, size_t len)
{
	struct room	*r;
	uint64_t	 h = room_hash(name, len);

	for (r = rooms.table[h & (rooms.size - 1)]; r != NULL; r = r->next)
		if (r->hash == h && r->len == len &&
		    memcmp(r->name, name, len) == 0)
			return (r);
	return (NULL);
}

static void
room_grow(void)
{
	struct room	**old = rooms.table, *r, *next;
	u_int		  i, oldsize = rooms.size;

	rooms.size *= 2;
	rooms.table = xcalloc(rooms.size, sizeof *rooms.table);
	for (i = 0; i < oldsize; i++) {
		for (r = old[i]; r != NULL; r = next) {
			next = r->next;
			r->next = rooms.table[r->hash & (rooms.size - 1)];
			rooms.table[r->hash & (rooms.size - 1)] = r;
		}
	}
	free(old);
}

/* Set up the room table; once per worker. */
void
room_init(void)
{
	rooms.size = 256;
	rooms.table = xcalloc(rooms.size, sizeof *rooms.table);
	randombytes_buf(rooms.key, sizeof rooms.key);
}

/* Rooms this worker has. */
u_int
room_count(void)
{
	return (rooms.count);
}

static void
room_drop_held(struct room *r)
{
	struct room_msg	*m;

	while ((m = r->held) != NULL) {
		r->held = m->next;
		free(m);
	}
	r->nheld = 0;
}

/* Forget a room: out of the table now, its memory once no reply is due. */
static void
room_free(struct room *r)
{
	struct room	**pp;

	if (!r->dead) {
		for (pp = &rooms.table[r->hash & (rooms.size - 1)]; *pp != r;
		    pp = &(*pp)->next)
			;
		*pp = r->next;
		rooms.count--;
		r->dead = 1;
		evtimer_del(r->linger);
	}
	if (r->busy)
		return;
	room_drop_held(r);
	event_free(r->linger);
	free(r->head);
	free(r);
}

static void
room_linger_cb(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct room	*r = arg;

	if (r->nmembers != 0)
		return;
	if (r->state == ROOM_SUBSCRIBED &&
	    bus_unsubscribe(r->name, r->len) == 0) {
		r->state = ROOM_UNSUBSCRIBING;
		return;
	}
	/* Not subscribed on a live link: nothing to undo in the store. */
	if (r->state != ROOM_UNSUBSCRIBING)
		room_free(r);
}

static struct room *
room_new(const char *name, size_t len)
{
	struct room	*r;
	u_int		 b;

	if (rooms.count >= rooms.size)
		room_grow();
	r = xcalloc(1, sizeof *r);
	memcpy(r->name, name, len);
	r->len = len;
	r->hash = room_hash(name, len);
	TAILQ_INIT(&r->members);
	r->linger = evtimer_new(wk.base, room_linger_cb, r);
	if (r->linger == NULL)
		fatalx("evtimer_new");
	r->head = proto_msg_head(r->name);
	b = r->hash & (rooms.size - 1);
	r->next = rooms.table[b];
	rooms.table[b] = r;
	rooms.count++;
	r->state = ROOM_SUBSCRIBING;
	bus_subscribe(r->name, r->len);	/* or on the next (re)connect */
	return (r);
}

/*
 * Welcome a member, then hold its live messages until it is known what it
 * missed: a resumed session or a join with since replays from the
 * client's position; a plain join records a new session first and replays
 * from where the user left, if the store kept that.
 */
static void
room_welcome(struct room *r, struct conn *c)
{
	char	*s;

	s = proto_welcome(r->name, c->user, c->session, r->epoch, r->last,
	    wk.cfg->reconnect_window);
	c->welcomed = 1;
	ws_send_text(c, s, strlen(s));
	free(s);
	c->queued_seq = c->flushed_seq = r->last;
	c->replaying = 1;
	c->replay_to = r->last;
	if (c->resuming) {
		if (c->gen > 0)
			sess_check_gen(c);
		room_replay(c, c->resume_from, c->resume_epoch);
	}
	else
		sess_attach(c, r->epoch, r->last);
}

/* Queue a frame to a member, or hold it while the member replays. */
static void
room_send(struct conn *c, struct frame *f, uint64_t seq)
{
	struct conn_held	*h;

	if (c->replaying) {
		h = xmalloc(sizeof *h);
		h->next = NULL;
		h->f = f;
		h->seq = seq;
		frame_ref(f);
		if (c->held == NULL)
			c->held_tail = &c->held;
		*c->held_tail = h;
		c->held_tail = &h->next;
		return;
	}
	if (ws_send_frame(c, f) == 0 && seq != 0)
		c->queued_seq = seq;
}

/* The replay is over: send what was held, in order. */
void
room_replay_done(struct conn *c)
{
	struct conn_held	*h;

	c->replaying = 0;
	while ((h = c->held) != NULL) {
		c->held = h->next;
		if (h->seq == 0 || h->seq > c->queued_seq)
			room_send(c, h->f, h->seq);
		frame_unref(h->f);
		free(h);
	}
	c->held_tail = NULL;
}

static void
room_resumed(struct conn *c, uint64_t from, uint64_t replayed, int complete)
{
	char	*s;

	s = proto_resumed(from, c->replay_to, replayed, complete);
	ws_send_text(c, s, strlen(s));
	free(s);
	room_replay_done(c);
}

static void
room_on_replay(void *reply_, void *arg)
{
	redisReply	*reply = reply_, *e, *fields;
	struct conn	*c = arg;
	uint64_t	 from = (uint64_t)c->resume_from, want, seq;
	size_t		 i;

	if (c->state != CONN_WS || c->room == NULL)
		goto out;
	want = c->replay_to - from;
	/* All or nothing: every seq from+1..replay_to, or none. */
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != want) {
		room_resumed(c, from, 0, 0);
		goto out;
	}
	for (i = 0; i < reply->elements; i++) {
		e = reply->element[i];
		seq = room_entry_seq(e);
		if (seq != from + 1 + i) {
			room_resumed(c, from, 0, 0);
			goto out;
		}
	}
	for (i = 0; i < reply->elements; i++) {
		fields = reply->element[i]->element[1];
		if (fields->type == REDIS_REPLY_ARRAY && fields->elements >= 2)
			ws_send_text(c, fields->element[1]->str,
			    fields->element[1]->len);
	}
	c->queued_seq = c->replay_to;
	room_resumed(c, from, want, 1);
out:
	conn_unref(c);
}

/*
 * Replay to c what it missed after seq from, up to the seam (replay_to),
 * if its epoch is the chat's, it is not more than recovery-max messages,
 * and history still has every one of them; else nothing, and resumed says
 * complete:false.
 */
void
room_replay(struct conn *c, uint64_t from, const char *epoch)
{
	struct room	*r = c->room;

	c->resume_from = from;
	if ((*epoch != '\0' && strcmp(epoch, r->epoch) != 0) ||
	    from > c->replay_to ||
	    c->replay_to - from > (uint64_t)wk.cfg->recovery_max) {
		room_resumed(c, from, 0, 0);
		return;
	}
	if (from == c->replay_to) {
		room_resumed(c, from, 0, 1);
		return;
	}
	conn_ref(c);
	if (bus_range(r->name, r->len, from + 1, c->replay_to,
	    c->replay_to - from, room_on_replay, c) != 0) {
		conn_unref(c);
		room_resumed(c, from, 0, 0);
	}
}

/*
 * Add a WebSocket connection to a chat.  Returns the room, or NULL with
 * errno ENOSPC when the registry is full.
 */
struct room *
room_join(struct conn *c, const char *name, size_t len)
{
	struct room	*r;

	if (reg_join(wk.reg, wk.idx, name, len, NULL) != 0)
		return (NULL);
	if ((r = room_find(name, len)) == NULL)
		r = room_new(name, len);
	evtimer_del(r->linger);
	if (r->state == ROOM_UNSUBSCRIBING)
		r->resubscribe = 1;
	TAILQ_INSERT_TAIL(&r->members, c, member);
	r->nmembers++;
	c->room = r;
	return (r);
}

/* The chat id of a room. */
const char *
room_name(struct room *r)
{
	return (r->name);
}

/* The last seq this worker delivered in the room. */
uint64_t
room_latest(struct room *r)
{
	return (r->last);
}

/* Welcome a member that just joined if the room knows where it is. */
void
room_greet(struct conn *c)
{
	struct room	*r = c->room;

	if (r != NULL && r->known && r->state == ROOM_SUBSCRIBED &&
	    !c->welcomed)
		room_welcome(r, c);
}

/* Take a connection out of its chat. */
void
room_leave(struct conn *c)
{
	struct room	*r = c->room;
	struct timeval	 tv = { ROOM_LINGER_MS / 1000,
	    (ROOM_LINGER_MS % 1000) * 1000 };

	if (r == NULL)
		return;
	TAILQ_REMOVE(&r->members, c, member);
	r->nmembers--;
	c->room = NULL;
	if (reg_leave(wk.reg, wk.idx, r->name, r->len) != 0)
		log_warn("registry leave %s", r->name);
	if (r->nmembers == 0)
		evtimer_add(r->linger, &tv);
}

/* Deliver one envelope to every welcomed member: one frame, shared. */
static void
room_deliver(struct room *r, uint64_t seq, const char *json, size_t len)
{
	struct frame	*f;
	struct conn	*c, *next;
	uint64_t	 n = 0;

	r->last = seq;
	if (r->nmembers == 0)
		return;
	f = frame_text(json, len);
	TAILQ_FOREACH_SAFE(c, &r->members, member, next) {
		if (c->welcomed) {
			room_send(c, f, seq);
			n++;
		}
	}
	frame_unref(f);
	wk.counters->msgs_out += n;
}

/* Hold a message that is ahead of what was delivered, sorted by seq. */
static void
room_hold(struct room *r, uint64_t seq, const char *json, size_t len)
{
	struct room_msg	**pp, *m;

	for (pp = &r->held; *pp != NULL && (*pp)->seq < seq; pp = &(*pp)->next)
		;
	if (*pp != NULL && (*pp)->seq == seq)
		return;
	if (r->nheld >= ROOM_PENDING_MAX) {
		/* History has them all: forget and reread from there. */
		room_drop_held(r);
		return;
	}
	m = xmalloc(sizeof *m + len);
	m->seq = seq;
	m->len = len;
	memcpy(m->json, json, len);
	m->next = *pp;
	*pp = m;
	r->nheld++;
}

/* Deliver held messages that are next in line; catch up on a hole. */
static void
room_drain(struct room *r)
{
	struct room_msg	*m;

	while ((m = r->held) != NULL && m->seq <= r->last + 1) {
		r->held = m->next;
		r->nheld--;
		if (m->seq == r->last + 1)
			room_deliver(r, m->seq, m->json, m->len);
		free(m);
	}
	if (r->held != NULL)
		room_catch_up(r);
}

static uint64_t
room_entry_seq(const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return (0);
	return (strtoull(e->element[0]->str, NULL, 10));
}

static void
room_on_range(void *reply_, void *arg)
{
	redisReply	*reply = reply_, *e, *fields;
	struct room	*r = arg;
	uint64_t	 seq, before = r->last;
	size_t		 i;

	r->busy = 0;
	if (r->dead) {
		room_free(r);
		return;
	}
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
		/* The store went away; the resubscription catches up. */
		return;
	}
	for (i = 0; i < reply->elements; i++) {
		e = reply->element[i];
		seq = room_entry_seq(e);
		fields = e->element[1];
		if (seq != r->last + 1 || fields->type != REDIS_REPLY_ARRAY ||
		    fields->elements < 2 ||
		    fields->element[1]->type != REDIS_REPLY_STRING)
			continue;
		room_deliver(r, seq, fields->element[1]->str,
		    fields->element[1]->len);
	}
	if (r->last > before)
		wk.counters->gaps_filled++;
	if (r->held != NULL && r->held->seq > r->last + 1 &&
	    reply->elements == 0) {
		/* History no longer has them: they are gone for good. */
		log_warnx("chat %s: seq %llu..%llu are not in history; "
		    "skipping them", r->name,
		    (unsigned long long)r->last + 1,
		    (unsigned long long)r->held->seq - 1);
		r->last = r->held->seq - 1;
	}
	room_drain(r);
}

/* Read what is missing after r->last from history. */
static void
room_catch_up(struct room *r)
{
	uint64_t	 to = 0;

	if (r->busy || r->state != ROOM_SUBSCRIBED || !r->known)
		return;
	if (r->held != NULL)
		to = r->held->seq - 1;
	if (bus_range(r->name, r->len, r->last + 1, to, 0, room_on_range,
	    r) == 0)
		r->busy = 1;
}

static void
room_on_info(void *reply_, void *arg)
{
	redisReply	*reply = reply_;
	struct room	*r = arg;
	struct conn	*c;

	r->busy = 0;
	if (r->dead) {
		room_free(r);
		return;
	}
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_STRING) {
		/* Store trouble: members wait; the resubscription retries. */
		return;
	}
	r->known = 1;
	r->last = reply->element[0]->integer;
	snprintf(r->epoch, sizeof r->epoch, "%s", reply->element[1]->str);
	TAILQ_FOREACH(c, &r->members, member)
		if (!c->welcomed)
			room_welcome(r, c);
	room_drain(r);
}

/* The store confirmed a SUBSCRIBE: learn where the chat is, or catch up. */
void
room_on_subscribed(const char *name, size_t len)
{
	struct room	*r;
	struct conn	*c;

	if ((r = room_find(name, len)) == NULL)
		return;
	r->state = ROOM_SUBSCRIBED;
	if (r->known) {
		/* Members who joined while it was (re)subscribing. */
		TAILQ_FOREACH(c, &r->members, member)
			if (!c->welcomed)
				room_welcome(r, c);
		room_catch_up(r);
		return;
	}
	if (r->busy)
		return;
	if (bus_room_info(r->name, r->len, room_on_info, r) == 0)
		r->busy = 1;
}

/* The store confirmed an UNSUBSCRIBE. */
void
room_on_unsubscribed(const char *name, size_t len)
{
	struct room	*r;

	if ((r = room_find(name, len)) == NULL ||
	    r->state != ROOM_UNSUBSCRIBING)
		return;
	if (r->nmembers == 0 && !r->resubscribe) {
		room_free(r);
		return;
	}
	r->resubscribe = 0;
	r->state = ROOM_SUBSCRIBING;
	bus_subscribe(r->name, r->len);
}

/* Parse "EPOCH SEQ JSON" from the channel. Returns 0 or -1. */
static int
room_parse(const char *msg, size_t len, const char **epoch, size_t *elen,
    uint64_t *seq, const char **json, size_t *jlen)
{
	const char	*sp1, *sp2;
	char		*end;

	if ((sp1 = memchr(msg, ' ', len)) == NULL)
		return (-1);
	if ((sp2 = memchr(sp1 + 1, ' ', len - (sp1 + 1 - msg))) == NULL)
		return (-1);
	*epoch = msg;
	*elen = sp1 - msg;
	*seq = strtoull(sp1 + 1, &end, 10);
	if (end != sp2 || *seq == 0 || *elen > ROOM_EPOCH_MAX)
		return (-1);
	*json = sp2 + 1;
	*jlen = len - (*json - msg);
	return (0);
}

/*
 * Not a message: "! JSON" is a frame for every member (presence), and
 * "K TOKEN GEN" says a session was claimed for the GENth time: its
 * connections here with an older claim are closed with 4009.
 */
static void
room_control(struct room *r, const char *msg, size_t len)
{
	struct frame	*f;
	struct conn	*c, *next;
	char		 token[CONN_TOKEN_LEN + 1];
	unsigned long long gen;

	if (msg[0] == '!') {
		f = frame_text(msg + 2, len - 2);
		TAILQ_FOREACH_SAFE(c, &r->members, member, next)
			if (c->welcomed)
				room_send(c, f, 0);
		frame_unref(f);
		return;
	}
	if (len > 100 || sscanf(msg, "K %22s %llu", token, &gen) != 2)
		return;
	TAILQ_FOREACH_SAFE(c, &r->members, member, next) {
		if (c->gen < gen && strcmp(c->session, token) == 0)
			sess_taken_over(c);
	}
}

/* A message from the chat's channel. */
void
room_on_message(const char *name, size_t len, const char *msg, size_t mlen)
{
	struct room	*r;
	const char	*epoch, *json;
	size_t		 elen, jlen;
	uint64_t	 seq;

	if ((r = room_find(name, len)) == NULL)
		return;
	if (mlen > 2 && msg[1] == ' ' && (msg[0] == '!' || msg[0] == 'K')) {
		room_control(r, msg, mlen);
		return;
	}
	if (room_parse(msg, mlen, &epoch, &elen, &seq, &json, &jlen) != 0) {
		log_warnx("chat %s: malformed message on the channel", r->name);
		return;
	}
	if (r->known && (strlen(r->epoch) != elen ||
	    memcmp(r->epoch, epoch, elen) != 0)) {
		/* The store lost the chat's history: a new epoch begins. */
		log_warnx("chat %s: new epoch %.*s (was %s)", r->name,
		    (int)elen, epoch, r->epoch);
		snprintf(r->epoch, sizeof r->epoch, "%.*s", (int)elen, epoch);
		r->last = 0;
		room_drop_held(r);
	}
	if (!r->known || r->busy) {
		room_hold(r, seq, json, jlen);
		return;
	}
	if (seq <= r->last)
		return;
	if (seq == r->last + 1) {
		room_deliver(r, seq, json, jlen);
		if (r->held != NULL)
			room_drain(r);
		return;
	}
	room_hold(r, seq, json, jlen);
	room_catch_up(r);
}

/* The subscription link broke: every room must subscribe again. */
void
room_sub_lost(void)
{
	struct room	*r, *next;
	u_int		 i;

	for (i = 0; i < rooms.size; i++) {
		for (r = rooms.table[i]; r != NULL; r = next) {
			next = r->next;
			if (r->state == ROOM_UNSUBSCRIBING &&
			    r->nmembers == 0 && !r->resubscribe) {
				room_free(r);
				continue;
			}
			r->state = ROOM_SUBSCRIBING;
			r->resubscribe = 0;
		}
	}
}

/* A new subscription link: subscribe every room again. */
void
room_resubscribe_all(void)
{
	struct room	*r;
	u_int		 i;

	for (i = 0; i < rooms.size; i++) {
		for (r = rooms.table[i]; r != NULL; r = r->next) {
			r->state = ROOM_SUBSCRIBING;
			bus_subscribe(r->name, r->len);
		}
	}
}

struct room_send {
	struct conn	*c;
	char		*tail;		/* for a repeat the store forgot */
	char		 id[PROTO_ID_MAX + 1];	/* the client's, or "" */
};

static void
room_on_published(void *reply_, void *arg)
{
	redisReply	*reply = reply_;
	struct room_send *s = arg;
	struct conn	*c = s->c;
	struct room	*r = c->room;
	char		*env;

	if (c->state != CONN_WS || r == NULL)
		goto out;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER) {
		ws_send_error_id(c, "unavailable", "the store did not take "
		    "the message; send it again with the same id", s->id);
		goto out;
	}
	if (reply->element[0]->integer == 1)
		goto out;	/* the echo comes through the channel */
	/* A repeat: answer with the original, to the sender only. */
	if (reply->elements == 4 &&
	    reply->element[3]->type == REDIS_REPLY_STRING)
		ws_send_text(c, reply->element[3]->str, reply->element[3]->len);
	else {
		xasprintf(&env, "%s%lld%s", r->head,
		    reply->element[1]->integer, s->tail);
		ws_send_text(c, env, strlen(env));
		free(env);
	}
out:
	conn_unref(c);
	free(s->tail);
	free(s);
}

/* A member sends a message into its chat. */
void
room_publish(struct conn *c, const char *body, size_t len, const char *id)
{
	struct room_send	*s;
	struct room		*r = c->room;
	uint8_t			 rnd[8];
	char			 gen[20];

	if (r == NULL)
		return;
	if (*id == '\0') {
		/* No id from the client: one of ours, not deduplicated. */
		randombytes_buf(rnd, sizeof rnd);
		gen[0] = 's';
		gen[1] = '-';
		sodium_bin2hex(gen + 2, sizeof gen - 2, rnd, sizeof rnd);
	}
	s = xmalloc(sizeof *s);
	s->c = c;
	snprintf(s->id, sizeof s->id, "%s", id);
	s->tail = proto_msg_tail(*id != '\0' ? id : gen, c->user,
	    util_now_ms(), body, len);
	conn_ref(c);
	if (bus_publish(r->name, r->len, r->head, s->tail, c->user, id,
	    room_on_published, s) != 0) {
		conn_unref(c);
		free(s->tail);
		free(s);
		ws_send_error_id(c, "unavailable", "the store is "
		    "unavailable; send it again with the same id", id);
	}
}

/* At worker exit. */
void
room_free_all(void)
{
	struct room	*r, *next;
	u_int		 i;

	for (i = 0; i < rooms.size; i++) {
		for (r = rooms.table[i]; r != NULL; r = next) {
			next = r->next;
			room_free(r);
		}
	}
	/* Rooms still awaiting a reply are freed by hiredis's teardown. */
	free(rooms.table);
	rooms.table = NULL;
}
