/* SPDX-License-Identifier: ISC */
/* racerd: sessions that survive interruptions (prefix sess_). */
/*
 * Every WebSocket connection has a session in the store (bus.c owns its
 * keys and scripts): its user, epoch, last position, state ("attached" or
 * "away") and owner, the connection holding it (host:pid:n).  A schedule
 * of deadlines in the store drives its life:
 *
 * - attached: a lease (session-lease seconds) that the owning worker renews
 *   every third of it; when a host or worker dies the lease lapses and the
 *   session turns away, resumable for reconnect-window seconds;
 * - away: the end of the reconnect window.
 *
 * Every worker on every host sweeps the schedule each second; the sweep
 * claims due sessions atomically, so each is ended exactly once whoever is
 * alive.  An ended session leaves the user's position for the next join,
 * which is followed by a replay of what was missed (join.c).
 *
 * This module decides what to record and when: owner names, tokens, the
 * client's position, lease and window deadlines.
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
#include <sodium.h>

#include "racerd.h"
#include "proto.h"
#include "registry.h"

#define SESS_EXPIRE_MS		1000
#define SESS_LEASE_MS		((uint64_t)wk.cfg->session_lease * 1000)
#define SESS_RENEW_MS		(SESS_LEASE_MS / 3)
#define SESS_POS_MAX		(30 * 24 * 3600)	/* seconds */
/* A position outlives neither 30 days nor the history it points into. */
#define SESS_POS_TTL		(wk.cfg->history_ttl > 0 &&		\
	wk.cfg->history_ttl < SESS_POS_MAX ? wk.cfg->history_ttl : SESS_POS_MAX)
#define SESS_RENEW_BATCH	500
#define SESS_OWNER_MAX		128	/* host:pid:n */

static struct {
	struct event		*expire_ev;
	struct event		*renew_ev;
	uint64_t		 next_owner;
} sess;

/* The owner name of a connection: host:pid:n. */
static void
sess_owner_name(struct conn *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%ld:%llu", util_hostname(), (long)getpid(),
	    (unsigned long long)c->owner);
}

static void
sess_expire(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	bus_expire((uint64_t)wk.cfg->reconnect_window * 1000, SESS_POS_TTL);
}

/* What names c's session in the store; owner is the caller's buffer. */
static void
sess_of(struct conn *c, const char *chat, struct bus_session *s,
    char *owner, size_t size)
{
	sess_owner_name(c, owner, size);
	s->chat = chat;
	s->token = c->session;
	s->user = c->user;
	s->owner = owner;
}

/*
 * What the client surely has: the last seq it acknowledged, or else the
 * last one whose bytes left this process.
 */
static uint64_t
sess_position(struct conn *c)
{
	return (conn_position(c->queued_seq, c->flushed_seq, c->acked_seq,
	    evbuffer_get_length(bufferevent_get_output(c->bev))));
}

/*
 * Renew the leases of this worker's attached sessions, and record their
 * positions, in batches: a session whose worker dies keeps a recent one.
 */
static void
sess_renew(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	struct bus_lease	*l;
	struct conn		*c;
	char			(*owner)[SESS_OWNER_MAX];
	size_t			 n = 0;
	uint64_t		 deadline = util_now_ms() + SESS_LEASE_MS;

	l = xreallocarray(NULL, SESS_RENEW_BATCH, sizeof *l);
	owner = xreallocarray(NULL, SESS_RENEW_BATCH, sizeof *owner);
	TAILQ_FOREACH(c, &wk.conns, entry) {
		if (!c->attached || c->room == NULL)
			continue;
		sess_owner_name(c, owner[n], sizeof owner[n]);
		l[n].chat = room_name(c->room);
		l[n].token = c->session;
		l[n].owner = owner[n];
		l[n].last = sess_position(c);
		if (++n == SESS_RENEW_BATCH) {
			bus_renew(l, n, deadline);
			n = 0;
		}
	}
	bus_renew(l, n, deadline);
	free(owner);
	free(l);
}

/* Set up sessions for this worker. Returns 0 or -1. */
int
sess_init(void)
{
	struct timeval	 tv;

	sess.expire_ev = event_new(wk.base, -1, EV_PERSIST, sess_expire, NULL);
	sess.renew_ev = event_new(wk.base, -1, EV_PERSIST, sess_renew, NULL);
	if (sess.expire_ev == NULL || sess.renew_ev == NULL)
		return (-1);
	tv.tv_sec = SESS_EXPIRE_MS / 1000;
	tv.tv_usec = (SESS_EXPIRE_MS % 1000) * 1000;
	util_timer_add(sess.expire_ev, &tv);
	tv.tv_sec = SESS_RENEW_MS / 1000;
	tv.tv_usec = (SESS_RENEW_MS % 1000) * 1000;
	util_timer_add(sess.renew_ev, &tv);
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

/*
 * Record the session of a connection that joined without a token, and
 * fetch the position the user left at, if any.  Returns 0 (cb gets the
 * answer), or -1 if the store is down (cb is not called).
 */
int
sess_attach(struct conn *c, const char *epoch, uint64_t last, bus_pos_cb *cb,
    void *arg)
{
	struct bus_session	 s;
	char			 owner[SESS_OWNER_MAX];

	sess_of(c, room_name(c->room), &s, owner, sizeof owner);
	return (bus_attach(&s, epoch, last, util_now_ms() + SESS_LEASE_MS, cb,
	    arg));
}

/*
 * Claim c's session token (c->session) in chat for a resume, before the
 * upgrade; c->user, if set, must be the session's user.  Returns 0 (cb
 * gets the claim), or -1 if the store is down (cb is not called).
 */
int
sess_claim(struct conn *c, const char *chat, bus_claim_cb *cb, void *arg)
{
	struct bus_session	 s;
	char			 owner[SESS_OWNER_MAX];

	sess_of(c, chat, &s, owner, sizeof owner);
	return (bus_claim(&s, util_now_ms() + SESS_LEASE_MS, cb, arg));
}

/*
 * The connection is going away: keep its session resumable for the
 * reconnect window, or, after a client close 1000, end it and store the
 * user's position.  The record is written before anyone is told.
 */
void
sess_detach(struct conn *c)
{
	struct bus_session	 s;
	char			 owner[SESS_OWNER_MAX];
	uint64_t		 last;
	int			 rc;

	if (!c->attached || c->room == NULL)
		return;
	c->attached = 0;
	sess_of(c, room_name(c->room), &s, owner, sizeof owner);
	last = sess_position(c);
	if (conn_close_ends_session(c->close_code, c->close_by_client))
		rc = bus_end(&s, last, SESS_POS_TTL);
	else
		rc = bus_detach(&s, last, util_now_ms() +
		    (uint64_t)wk.cfg->reconnect_window * 1000);
	if (rc != 0)
		log_warnx("store down: session of %s in %s not recorded; its "
		    "lease ends it", c->user, s.chat);
}

/*
 * A connection went away while its session was being claimed or recorded:
 * the session is away from now on, at position last, or ends there if the
 * client closed with 1000 before its record was written.
 */
void
sess_abandon(struct conn *c, const char *chat, uint64_t last)
{
	struct bus_session	 s;
	char			 owner[SESS_OWNER_MAX];
	int			 rc;

	sess_of(c, chat, &s, owner, sizeof owner);
	if (conn_close_ends_session(c->close_code, c->close_by_client))
		rc = bus_end(&s, last, SESS_POS_TTL);
	else
		rc = bus_detach(&s, last, util_now_ms() +
		    (uint64_t)wk.cfg->reconnect_window * 1000);
	if (rc != 0)
		log_warnx("store down: session of %s in %s not recorded; its "
		    "lease ends it", c->user, chat);
}

static void
sess_on_gen(int64_t gen, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CONN_WS && gen > (int64_t)c->gen)
		sess_taken_over(c);
	conn_unref(c);
}

/*
 * A resumed connection has joined its room: a newer claim whose notice
 * went by before the join would otherwise leave two holders.
 */
void
sess_check_gen(struct conn *c)
{
	conn_ref(c);
	if (bus_generation(room_name(c->room), c->session, sess_on_gen,
	    c) != 0)
		conn_unref(c);
}

/* A newer connection holds the session now. */
void
sess_taken_over(struct conn *c)
{
	c->attached = 0;
	ws_close(c, WS_CLOSE_TAKEN_OVER, "session taken over by a newer connection");
}
