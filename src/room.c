/* SPDX-License-Identifier: ISC */
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
 * waiting members go on joining (join.c).  After the last member leaves the
 * room lingers ROOM_LINGER_MS, then unsubscribes and is freed when the
 * store confirms (the client library forgets a channel's callback on the
 * unsubscribe reply, so a room is never re-subscribed before it).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "racerd.h"
#include "proto.h"
#include "registry.h"

_Static_assert(REG_NAME_MAX == RD_CHAT_MAX,
    "a registry name holds a chat id");

#define ROOM_LINGER_MS		2000
#define ROOM_PENDING_MAX	65536	/* held messages before a full reread */
#define ROOM_PRESENCE_MAX	1024	/* presence frames held before a write */

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
	char			 epoch[BUS_EPOCH_MAX + 1];
	struct room_msg		*held;		/* sorted by seq */
	u_int			 nheld;
	struct event		*linger;
	struct event		*retry;		/* ask where the chat is */
	struct frame		**pres;		/* presence held, in order */
	u_int			 npres;
	uint32_t		 pres_count;	/* presence frames ever held */
	uint64_t		 pres_at;	/* last presence write, mono ms */
	struct event		*pres_timer;	/* writes what is held */
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
static void	room_drain(struct room *);
static void	room_ask(struct room *);
static void	room_retry_cb(evutil_socket_t, short, void *);
static void	room_on_info(const struct bus_info *, void *);
static void	room_presence_flush(struct room *);
static void	room_presence_cb(evutil_socket_t, short, void *);

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
		evtimer_del(r->retry);
		evtimer_del(r->pres_timer);
	}
	if (r->busy)
		return;
	room_drop_held(r);
	while (r->npres > 0)
		frame_unref(r->pres[--r->npres]);
	free(r->pres);
	event_free(r->linger);
	event_free(r->retry);
	event_free(r->pres_timer);
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
	r->retry = evtimer_new(wk.base, room_retry_cb, r);
	r->pres_timer = evtimer_new(wk.base, room_presence_cb, r);
	if (r->linger == NULL || r->retry == NULL || r->pres_timer == NULL)
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
 * Answers to repeated sends wait until the connection has been sent their
 * seq (room_on_published): then they follow it, in order.
 */
static void
room_send_repeats(struct conn *c)
{
	struct conn_held	*h, **hp;

	hp = &c->repeats;
	while ((h = *hp) != NULL) {
		if (h->seq > c->queued_seq) {
			hp = &h->next;
			continue;
		}
		*hp = h->next;
		ws_send_frame(c, h->f);
		frame_unref(h->f);
		free(h);
	}
}

/*
 * Queue a frame to a member, or hold it while the member joins.  Every
 * delivery to a member passes here, and a message at or below what the
 * member already has is never sent again (live, gap fill, held or
 * replayed: the one guard of "no duplicates" per connection).
 */
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
	if (seq != 0 && seq <= c->queued_seq)
		return;
	if (ws_send_frame(c, f) == 0 && seq != 0) {
		c->queued_seq = seq;
		room_send_repeats(c);
	}
}

/* The join is over (join.c): send what was held, in order. */
void
room_release(struct conn *c)
{
	struct conn_held	*h;

	c->replaying = 0;
	while ((h = c->held) != NULL) {
		c->held = h->next;
		room_send(c, h->f, h->seq);
		frame_unref(h->f);
		free(h);
	}
	c->held_tail = NULL;
	room_send_repeats(c);	/* the replay may have passed their seq */
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

/* The epoch of the chat, as the room knows it. */
const char *
room_epoch(struct room *r)
{
	return (r->epoch);
}

/* The last seq this worker delivered in the room. */
uint64_t
room_latest(struct room *r)
{
	return (r->last);
}

/*
 * Returns 1 if the room is subscribed and knows where the chat is; else
 * 0, and the store is asked if nobody is asking yet.
 */
int
room_is_ready(struct room *r)
{
	if (r->known && r->state == ROOM_SUBSCRIBED)
		return (1);
	room_ask(r);
	return (0);
}

/* Members waiting for the room to be ready go on joining. */
static void
room_ready(struct room *r)
{
	struct conn	*c, *next;

	TAILQ_FOREACH_SAFE(c, &r->members, member, next)
		if (c->join != NULL)
			join_drive(c);
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
		util_timer_add(r->linger, &tv);
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
	room_presence_flush(r);		/* presence that came first goes first */
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

static void
room_on_range(const struct bus_entry *e, size_t n, void *arg)
{
	struct room	*r = arg;
	uint64_t	 before = r->last;
	size_t		 i;

	r->busy = 0;
	if (r->dead) {
		room_free(r);
		return;
	}
	if (e == NULL) {
		/* The store went away; the resubscription catches up. */
		return;
	}
	if (n > 0 && e[0].seq > r->last + 1) {
		/* History was trimmed past what we had: gone for good. */
		log_warnx("chat %s: seq %llu..%llu are not in history; "
		    "skipping them", r->name,
		    (unsigned long long)r->last + 1,
		    (unsigned long long)e[0].seq - 1);
		r->last = e[0].seq - 1;
	}
	for (i = 0; i < n; i++)
		if (e[i].seq == r->last + 1)
			room_deliver(r, e[i].seq, e[i].env, e[i].len);
	if (r->last > before)
		wk.counters->gaps_filled++;
	if (r->held != NULL && r->held->seq > r->last + 1 && n == 0) {
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

/* Ask the store where the chat is, if nobody asked yet. */
static void
room_ask(struct room *r)
{
	if (r->state == ROOM_SUBSCRIBED && !r->known && !r->busy &&
	    bus_room_info(r->name, r->len, room_on_info, r) == 0)
		r->busy = 1;
}

/* A second after the store failed to say where the chat is: ask again. */
static void
room_retry_cb(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	room_ask(arg);
}

static void
room_on_info(const struct bus_info *info, void *arg)
{
	struct room	*r = arg;
	struct timeval	 tv = { 1, 0 };

	r->busy = 0;
	if (r->dead) {
		room_free(r);
		return;
	}
	if (info == NULL) {
		/* Store trouble: members wait; ask again in a second. */
		util_timer_add(r->retry, &tv);
		return;
	}
	r->known = 1;
	r->last = info->latest;
	snprintf(r->epoch, sizeof r->epoch, "%s", info->epoch);
	room_ready(r);
	room_drain(r);
}

/* The store confirmed a SUBSCRIBE: learn where the chat is, or catch up. */
void
room_on_subscribed(const char *name, size_t len)
{
	struct room	*r;

	if ((r = room_find(name, len)) == NULL)
		return;
	r->state = ROOM_SUBSCRIBED;
	if (r->known) {
		/* Members who joined while it was (re)subscribing. */
		room_ready(r);
		room_catch_up(r);
		return;
	}
	room_ask(r);
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

/*
 * Presence is written at most every presence-interval ms per chat, as
 * Nagle's algorithm does for TCP: a frame after a quiet interval goes out
 * at once, the ones that follow it within the interval are held and then
 * written together, one write per member for all of them.  A chat filling
 * up costs each member a few writes instead of one per join.  Held
 * presence goes out before any message, so the order of what a member
 * receives does not change, and a member welcomed while frames were held
 * gets only those that came after its welcome (room_welcome).
 */
static void
room_presence_flush(struct room *r)
{
	struct frame	*all;
	struct conn	*c, *next;
	uint32_t	 base;
	u_int		 i, skip;

	if (r->npres == 0)
		return;
	evtimer_del(r->pres_timer);
	r->pres_at = util_mono_ms();
	base = r->pres_count - r->npres;	/* ever held before these */
	if (r->npres == 1) {
		all = r->pres[0];
		frame_ref(all);
	} else
		all = frame_join(r->pres, r->npres);
	TAILQ_FOREACH_SAFE(c, &r->members, member, next) {
		if (!c->welcomed)
			continue;
		skip = (int32_t)(c->pres_seen - base) > 0 ?
		    c->pres_seen - base : 0;
		if (skip == 0 && !c->replaying) {
			room_send(c, all, 0);	/* the common case */
			continue;
		}
		/* Welcomed since, or joining: frame by frame. */
		conn_ref(c);
		for (i = skip; i < r->npres && c->room == r; i++)
			room_send(c, r->pres[i], 0);
		conn_unref(c);
	}
	frame_unref(all);
	for (i = 0; i < r->npres; i++)
		frame_unref(r->pres[i]);
	r->npres = 0;
}

static void
room_presence_cb(__unused evutil_socket_t fd, __unused short events,
    void *arg)
{
	room_presence_flush(arg);
}

/* A frame for every member (presence), from the chat's channel. */
static void
room_frame(struct room *r, const char *json, size_t len)
{
	struct frame	*f;
	struct conn	*c, *next;
	struct timeval	 tv;
	uint64_t	 now = util_mono_ms(), every, wait;

	every = (uint64_t)wk.cfg->presence_interval;
	f = frame_text(json, len);
	if (every == 0 || (r->npres == 0 && now - r->pres_at >= every)) {
		r->pres_at = now;
		TAILQ_FOREACH_SAFE(c, &r->members, member, next)
			if (c->welcomed)
				room_send(c, f, 0);
		frame_unref(f);
		return;
	}
	if (r->pres == NULL)
		r->pres = xcalloc(ROOM_PRESENCE_MAX, sizeof *r->pres);
	r->pres[r->npres++] = f;
	r->pres_count++;
	if (r->npres == ROOM_PRESENCE_MAX) {
		room_presence_flush(r);
		return;
	}
	if (r->npres == 1) {
		wait = r->pres_at + every > now ? r->pres_at + every - now : 0;
		tv.tv_sec = wait / 1000;
		tv.tv_usec = (wait % 1000) * 1000;
		util_timer_add(r->pres_timer, &tv);
	}
}

/* A member is welcomed: from now on it is told of presence. */
void
room_welcome(struct conn *c)
{
	c->welcomed = 1;
	c->pres_seen = c->room->pres_count;
}

/*
 * A session was claimed for the genth time: its connections here with an
 * older claim are closed with 4009.
 */
static void
room_claimed(struct room *r, const char *token, uint64_t gen)
{
	struct conn	*c, *next;

	TAILQ_FOREACH_SAFE(c, &r->members, member, next) {
		if (c->gen < gen && strcmp(c->session, token) == 0)
			sess_taken_over(c);
	}
}

/* A message. */
static void
room_message(struct room *r, const struct bus_event *ev)
{
	struct conn	*c;

	if (r->known && (strlen(r->epoch) != ev->elen ||
	    memcmp(r->epoch, ev->epoch, ev->elen) != 0)) {
		/* The store lost the chat's history: a new epoch begins. */
		log_warnx("chat %s: new epoch %.*s (was %s)", r->name,
		    (int)ev->elen, ev->epoch, r->epoch);
		snprintf(r->epoch, sizeof r->epoch, "%.*s", (int)ev->elen,
		    ev->epoch);
		r->last = 0;
		room_drop_held(r);
		TAILQ_FOREACH(c, &r->members, member)
			c->queued_seq = c->flushed_seq = c->acked_seq = 0;
	}
	if (!r->known || r->busy) {
		room_hold(r, ev->seq, ev->json, ev->jlen);
		return;
	}
	if (ev->seq <= r->last)
		return;
	if (ev->seq == r->last + 1) {
		room_deliver(r, ev->seq, ev->json, ev->jlen);
		if (r->held != NULL)
			room_drain(r);
		return;
	}
	room_hold(r, ev->seq, ev->json, ev->jlen);
	room_catch_up(r);
}

/* Something on the chat's channel (bus.c decoded it). */
void
room_on_event(const char *name, size_t len, const struct bus_event *ev)
{
	struct room	*r;

	if ((r = room_find(name, len)) == NULL)
		return;
	switch (ev->type) {
	case BUS_EVENT_MESSAGE:
		room_message(r, ev);
		break;
	case BUS_EVENT_FRAME:
		room_frame(r, ev->json, ev->jlen);
		break;
	case BUS_EVENT_CLAIM:
		room_claimed(r, ev->token, ev->gen);
		break;
	}
}

/* A shard's subscription link broke: its rooms must subscribe again. */
void
room_sub_lost(u_int shard)
{
	struct room	*r, *next;
	u_int		 i;

	for (i = 0; i < rooms.size; i++) {
		for (r = rooms.table[i]; r != NULL; r = next) {
			next = r->next;
			if (bus_shard_index(r->name, r->len) != shard)
				continue;
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

/* A new subscription link to a shard: subscribe its rooms again. */
void
room_resubscribe_all(u_int shard)
{
	struct room	*r;
	u_int		 i;

	for (i = 0; i < rooms.size; i++) {
		for (r = rooms.table[i]; r != NULL; r = r->next) {
			if (bus_shard_index(r->name, r->len) != shard)
				continue;
			r->state = ROOM_SUBSCRIBING;
			bus_subscribe(r->name, r->len);
		}
	}
}

struct room_send {
	struct conn	*c;
	char		*tail;		/* for a repeat the store forgot */
	char		 id[RD_MSGID_MAX + 1];	/* the client's, or "" */
};

static void
room_on_published(const struct bus_sent *sent, void *arg)
{
	struct room_send *s = arg;
	struct conn	*c = s->c;
	struct room	*r = c->room;
	struct conn_held *h, **hp;
	struct frame	*f;
	char		*env;

	if (c->state != CONN_WS || r == NULL)
		goto out;
	if (sent == NULL) {
		ws_send_error_id(c, "unavailable", "the store did not take "
		    "the message; send it again with the same id", s->id);
		goto out;
	}
	if (!sent->repeat)
		goto out;	/* the echo comes through the channel */
	/* A repeat: answer with the original, to the sender only. */
	if (sent->env != NULL)
		f = frame_text(sent->env, sent->len);
	else {
		xasprintf(&env, "%s%llu%s", r->head,
		    (unsigned long long)sent->seq, s->tail);
		f = frame_text(env, strlen(env));
		free(env);
	}
	/*
	 * Not before the connection has the original's seq (its echo is
	 * still on the way through the channel, or the room is filling a
	 * gap before it, or the member is joining): sent now, the answer
	 * would come ahead of the seqs before it and the echo again after.
	 * It waits for room_send to pass that seq.
	 */
	if (sent->seq > c->queued_seq || c->replaying) {
		h = xmalloc(sizeof *h);
		h->f = f;
		h->seq = sent->seq;
		for (hp = &c->repeats; *hp != NULL; hp = &(*hp)->next)
			if ((*hp)->seq > h->seq)
				break;
		h->next = *hp;
		*hp = h;
		goto out;
	}
	ws_send_frame(c, f);
	frame_unref(f);
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
	char			 gen[UTIL_MSG_ID_SIZE];

	if (r == NULL)
		return;
	if (*id == '\0') {
		/* No id from the client: one of ours, not deduplicated. */
		util_msg_id(gen);
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
	/* Rooms awaiting a reply go when bus_shutdown ends the calls. */
	free(rooms.table);
	rooms.table = NULL;
}
