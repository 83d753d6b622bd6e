/* SPDX-License-Identifier: ISC */
/* racerd: joining a chat, one state machine (prefix join_). */
/*
 * A WebSocket join goes through these states, advanced by join_drive()
 * alone (memcached's drive_machine): each store reply records its result
 * and drives again, so the whole path reads top to bottom in one switch.
 *
 *   JOIN_CLAIM      a resume claims its session in the store, before the
 *                   101 (401 unknown, 403 another user's, 503 store down)
 *   JOIN_UPGRADE    count the connection, join the room, answer 101
 *   JOIN_WAIT_ROOM  until the room is subscribed and knows its epoch and
 *                   latest seq (room.c drives members then)
 *   JOIN_WELCOME    the welcome; from here live messages are held
 *   JOIN_ATTACH     a plain join records its session and learns where the
 *                   user left the chat, if the store kept that
 *   JOIN_REPLAY     what the client missed, from history, then resumed
 *   JOIN_LIVE       the held messages follow, in order; joined
 *
 * The seam: the latest seq at the welcome (replay_to) splits the stream.
 * Everything up to it comes from history, everything after it from the
 * held live messages, so nothing is lost or doubled.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "racerd.h"
#include "http.h"
#include "proto.h"

#define JOIN_PAGE	100	/* history entries read at once in a replay */

enum join_state {
	JOIN_CLAIM,
	JOIN_UPGRADE,
	JOIN_WAIT_ROOM,
	JOIN_WELCOME,
	JOIN_ATTACH,
	JOIN_REPLAY,
	JOIN_LIVE
};

struct join {
	enum join_state	 state;
	int		 busy;		/* a store call is out */
	int		 resume;	/* claimed a session token */
	int		 keep;		/* keep-alive, for an HTTP refusal */
	int64_t		 last;		/* ?last=, or -1 */
	int64_t		 from;		/* replay after this, or -1: none */
	uint64_t	 replay_to;	/* the latest seq at the welcome */
	uint64_t	 next;		/* replay: the next seq to read */
	int		 paused;	/* replay: waiting for output to drain */
	char		 epoch[BUS_EPOCH_MAX + 1];	/* "" for any */
	char		 key[32];	/* Sec-WebSocket-Key */
	char		 chat[];
};

static void
join_claimed(const struct bus_claim *cl, void *arg)
{
	struct conn	*c = arg;
	struct join	*j = c->join;
	int		 keep;

	if (j == NULL)
		goto out;
	if (c->state != CONN_HTTP) {
		/* Gone while claiming: a claimed session must not linger. */
		if (cl != NULL && cl->result == BUS_CLAIM_OK) {
			snprintf(c->user, sizeof c->user, "%s", cl->user);
			sess_abandon(c, j->chat, cl->last >= 0 ? cl->last : 0);
		}
		goto out;
	}
	j->busy = 0;
	keep = j->keep;
	if (cl == NULL || cl->result != BUS_CLAIM_OK) {
		if (cl == NULL)
			http_error(conn_output(c), 503, "store unavailable",
			    NULL, keep);
		else if (cl->result == BUS_CLAIM_UNKNOWN)
			http_error(conn_output(c), 401, "session unknown or "
			    "expired: join again without it", NULL, keep);
		else
			http_error(conn_output(c), 403, "session belongs to "
			    "another user", NULL, keep);
		join_free(c);
		conn_answered(c, keep);
		goto out;
	}
	snprintf(c->user, sizeof c->user, "%s", cl->user);
	if (j->epoch[0] == '\0')
		snprintf(j->epoch, sizeof j->epoch, "%s", cl->epoch);
	if (j->last >= 0)
		j->from = j->last;
	else
		j->from = cl->last >= 0 ? cl->last : 0;
	c->attached = 1;
	c->gen = cl->gen;
	j->state = JOIN_UPGRADE;
	join_drive(c);
	if (c->state == CONN_WS)
		conn_ws_begin(c);	/* frames sent behind the request */
out:
	conn_unref(c);
}

static void
join_attached(int ok, const struct bus_pos *pos, void *arg)
{
	struct conn	*c = arg;
	struct join	*j = c->join;

	if (j == NULL)
		goto out;
	if (c->state != CONN_WS || c->room == NULL) {
		/*
		 * Gone while attaching: away (or ended) now, not when the
		 * lease ends, at what the client had: the position handed
		 * over, its since, or the welcome.
		 */
		if (ok)
			sess_abandon(c, j->chat, pos != NULL ? pos->seq :
			    j->from >= 0 ? (uint64_t)j->from : j->replay_to);
		goto out;
	}
	j->busy = 0;
	if (ok)
		c->attached = 1;
	if (j->from >= 0)
		j->state = JOIN_REPLAY;		/* ?since= says where */
	else if (pos != NULL) {
		/* Handed over: what this user missed since they left. */
		j->from = pos->seq;
		snprintf(j->epoch, sizeof j->epoch, "%s", pos->epoch);
		j->state = JOIN_REPLAY;
	} else
		j->state = JOIN_LIVE;
	join_drive(c);
out:
	conn_unref(c);
}

static void
join_resumed(struct conn *c, int complete)
{
	struct join	*j = c->join;
	char		*s;

	s = proto_resumed(j->from, j->replay_to, j->next - (j->from + 1),
	    complete);
	ws_send_text(c, s, strlen(s));
	free(s);
	j->state = JOIN_LIVE;
}

/* A page of the replay: every seq from j->next on, without a hole. */
static void
join_replayed(const struct bus_entry *e, size_t n, void *arg)
{
	struct conn	*c = arg;
	struct join	*j = c->join;
	uint64_t	 want;
	size_t		 i;

	if (c->state != CONN_WS || c->room == NULL || j == NULL)
		goto out;
	j->busy = 0;
	want = j->replay_to - j->next + 1;
	if (want > JOIN_PAGE)
		want = JOIN_PAGE;
	for (i = 0; e != NULL && i < n; i++)
		if (e[i].seq != j->next + i)
			break;
	if (e == NULL || n != want || i != n) {
		/*
		 * A hole: history was trimmed past the client's position
		 * (or, between two pages, past what is left to read).
		 */
		join_resumed(c, 0);
	} else {
		for (i = 0; i < n; i++)
			ws_send_text(c, e[i].env, e[i].len);
		j->next += n;
		c->queued_seq = j->next - 1;
		if (j->next > j->replay_to)
			join_resumed(c, 1);
	}
	join_drive(c);
out:
	conn_unref(c);
}

/*
 * Replay what the client missed after j->from, if its epoch is the
 * chat's, it is not more than recovery-max messages, and history still has
 * them; else nothing, and resumed says complete:false.  History is read a
 * page at a time as the client takes it: a replay is not a slow client,
 * and its output stays under max-outbound-bytes plus one page.
 */
static void
join_replay(struct conn *c, struct join *j)
{
	struct evbuffer	*out = conn_output(c);
	uint64_t	 to;

	if (j->next == 0) {
		j->next = j->from + 1;
		if ((j->epoch[0] != '\0' && strcmp(j->epoch,
		    room_epoch(c->room)) != 0) ||
		    (uint64_t)j->from > j->replay_to ||
		    j->replay_to - j->from > (uint64_t)wk.cfg->recovery_max) {
			join_resumed(c, 0);
			return;
		}
		/* Its position is what it had until the replay sends more. */
		c->queued_seq = c->flushed_seq = j->from;
	}
	if (j->next > j->replay_to) {
		join_resumed(c, 1);
		return;
	}
	if (evbuffer_get_length(out) > (size_t)wk.cfg->max_outbound_bytes / 2) {
		j->paused = 1;		/* join_output_drained goes on */
		return;
	}
	to = j->replay_to;
	if (to - j->next + 1 > JOIN_PAGE)
		to = j->next + JOIN_PAGE - 1;
	conn_ref(c);
	j->busy = 1;
	if (bus_range(room_name(c->room), strlen(room_name(c->room)),
	    j->next, to, to - j->next + 1, join_replayed, c) != 0) {
		j->busy = 0;
		conn_unref(c);
		join_resumed(c, 0);
	}
}

/* The connection's output drained: a paused replay goes on. */
void
join_output_drained(struct conn *c)
{
	struct join	*j = c->join;

	if (j != NULL && j->paused && c->state == CONN_WS) {
		j->paused = 0;
		join_drive(c);
	}
}

/*
 * Advance a connection's join as far as it goes without waiting: until a
 * store call is out, the room is not ready yet, or it is live.
 */
void
join_drive(struct conn *c)
{
	struct join	*j;
	char		*s;
	int		 keep, resume;

	while ((j = c->join) != NULL && !j->busy && !j->paused &&
	    c->state != CONN_DEAD) {
		switch (j->state) {
		case JOIN_CLAIM:
			conn_ref(c);
			j->busy = 1;
			if (sess_claim(c, j->chat, join_claimed, c) != 0) {
				/* Still inside the request: conn_request answers. */
				conn_unref(c);
				c->waiting = 0;
				http_error(conn_output(c), 503,
				    "store unavailable", NULL, j->keep);
				join_free(c);
				return;
			}
			break;
		case JOIN_UPGRADE:
			if (conn_upgrade_finish(c, j->chat, j->key,
			    j->keep) != 0) {
				/* Refused with an HTTP answer, or closed. */
				keep = j->keep;
				resume = j->resume;
				if (resume && c->attached) {
					/* Claimed, not joined: away again. */
					c->attached = 0;
					sess_abandon(c, j->chat, j->from);
				}
				join_free(c);
				if (resume)
					conn_answered(c, keep);
				return;
			}
			j->state = JOIN_WAIT_ROOM;
			break;
		case JOIN_WAIT_ROOM:
			if (!room_is_ready(c->room))
				return;		/* room.c drives us */
			j->state = JOIN_WELCOME;
			break;
		case JOIN_WELCOME:
			s = proto_welcome(room_name(c->room), c->user,
			    c->session, room_epoch(c->room),
			    room_latest(c->room), wk.cfg->reconnect_window);
			room_welcome(c);
			c->replaying = 1;
			ws_send_text(c, s, strlen(s));
			free(s);
			c->queued_seq = c->flushed_seq = room_latest(c->room);
			j->replay_to = room_latest(c->room);
			if (j->resume && c->gen > 0)
				sess_check_gen(c);
			j->state = j->resume ? JOIN_REPLAY : JOIN_ATTACH;
			break;
		case JOIN_ATTACH:
			conn_ref(c);
			j->busy = 1;
			if (sess_attach(c, room_epoch(c->room), j->replay_to,
			    join_attached, c) != 0) {
				j->busy = 0;
				conn_unref(c);
				j->state = j->from >= 0 ? JOIN_REPLAY :
				    JOIN_LIVE;
			}
			break;
		case JOIN_REPLAY:
			join_replay(c, j);
			if (j->paused)
				return;
			break;
		case JOIN_LIVE:
			join_free(c);
			room_release(c);
			return;
		}
	}
}

/*
 * Start joining chat: a resume (token != NULL) claims the session first,
 * a plain join upgrades at once; a join with since >= 0 replays after it.
 */
void
join_start(struct conn *c, const struct join_params *p)
{
	struct join	*j;
	size_t		 len = strlen(p->chat);

	j = xcalloc(1, sizeof *j + len + 1);
	memcpy(j->chat, p->chat, len + 1);
	snprintf(j->key, sizeof j->key, "%s", p->key);
	snprintf(j->epoch, sizeof j->epoch, "%s", p->epoch);
	j->keep = p->keep;
	j->last = p->last;
	j->from = p->since;
	c->join = j;
	if (p->token != NULL) {
		j->resume = 1;
		memcpy(c->session, p->token, CONN_TOKEN_LEN);
		c->session[CONN_TOKEN_LEN] = '\0';
		conn_wait(c);
		j->state = JOIN_CLAIM;
	} else
		j->state = JOIN_UPGRADE;
	join_drive(c);
}

/* Forget a connection's join (done, refused, or the connection is gone). */
void
join_free(struct conn *c)
{
	free(c->join);
	c->join = NULL;
}
