/* SPDX-License-Identifier: ISC */
/* racer: the chat protocol of the client. */
/*
 * What racer says and hears in one chat.  Messages to send wait in a
 * queue (racer_chat_add) until the server echoes them with a seq: each
 * carries a random id, so a send repeated after a reconnect, an
 * "unavailable" or a "rate_limited" error is stored once
 * (racerd-protocol(7): the server deduplicates by user and id).
 * At most RACER_CHAT_WINDOW are in flight on one connection; racer.c
 * paces the rest.
 *
 * What arrives is printed in seq order, each seq at most once: a message
 * is printed only if its seq is above the last one printed, so a replay
 * after a resume, the echo of a repeated id and history pages that
 * overlap never print twice.  While a history page is awaited (--history,
 * or a gap after an incomplete resume) what arrives is held, and handled
 * in its order after the page is printed.
 *
 * The position -- session token, epoch, last seq -- makes the next
 * connection's query: a resume (session and last), a join after a known
 * seq (since), or a plain join.  Output goes to standard output, one line
 * per message or notice; a failed write ends racer.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "racer.h"

/*
 * Messages in flight.  Under racerd's 20 refusals in a row (then 4100),
 * so that a burst past max-message-rate is refused, not disconnected.
 */
#define RACER_CHAT_WINDOW	16
#define RACER_CHAT_ID_BYTES	8	/* an id is 16 hex digits */
#define RACER_CHAT_PAGE_MAX	1000	/* racerd-protocol(7): a history page */

struct racer_out {
	TAILQ_ENTRY(racer_out)	 entry;
	char			 id[2 * RACER_CHAT_ID_BYTES + 1];
	char			*frame;		/* {"type":"msg",...} */
	size_t			 len;
	int			 sent;		/* on this connection */
};
TAILQ_HEAD(racer_outs, racer_out);

static struct {
	struct racer_outs	 queue;		/* not acknowledged yet */
	u_int			 queued;
	u_int			 inflight;	/* sent on this connection */
	u_int			 refused;	/* lines never sent */

	char			 user[RD_USER_MAX + 1];
	char			 session[RACER_SESSION_MAX + 1];
	char			 epoch[BUS_EPOCH_MAX + 1];
	uint64_t		 last;		/* last seq printed */
	uint64_t		 pos;		/* resume from here */
	int			 have_pos;	/* pos means something */
	uint64_t		 acked;		/* last ack sent */
	int			 joined;	/* welcomed on this one */
	int			 resuming;	/* this join replays from pos */
	int			 replaying;	/* ... and resumed is due */
	int			 welcomed;	/* ever */
	int			 reset;		/* the epoch changed */

	int			 hist;		/* a history page is awaited */
	int			 hist_gap;	/* ... to fill a gap */
	uint64_t		 hist_from;	/* print page seqs above this */
	json_t			*held;		/* live envelopes meanwhile */
} chat;

/* --- Output --- */

static void __attribute__((__format__(__printf__, 1, 2)))
racer_chat_out(const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (racer_opts.send != NULL)
		return;		/* --send prints nothing but errors */
	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	if (n < 0 || fflush(stdout) != 0)
		racer_exit(RACER_EXIT_FAIL, "standard output: %s",
		    strerror(errno));
}

/* A notice line ("-- ... --") in text mode; nothing with --json. */
static void __attribute__((__format__(__printf__, 1, 2)))
racer_chat_notice(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	if (racer_opts.json)
		return;
	va_start(ap, fmt);
	if (xvasprintf(&s, fmt, ap) == -1)
		fatalx("xvasprintf");
	va_end(ap);
	racer_chat_out("-- %s --\n", s);
	free(s);
}

static void
racer_chat_json(json_t *v)
{
	char	*s;

	if ((s = json_dumps(v, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	racer_chat_out("%s\n", s);
	free(s);
}

/*
 * A copy of s (len bytes) that a terminal shows as one line and does not
 * act on: control characters become \n, \r or \xHH.  The caller frees it.
 */
static char *
racer_chat_escape(const char *s, size_t len)
{
	char	*out, *p;
	size_t	 i;
	u_char	 c;

	p = out = xmalloc(4 * len + 1);
	for (i = 0; i < len; i++) {
		c = s[i];
		if (c == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else if (c == '\r') {
			*p++ = '\\';
			*p++ = 'r';
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			snprintf(p, 5, "\\x%02x", c);
			p += 4;
		} else
			*p++ = c;
	}
	*p = '\0';
	return (out);
}

static uint64_t
racer_chat_seq(json_t *env)
{
	json_t	*v = json_object_get(env, "seq");

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return (0);
	return ((uint64_t)json_integer_value(v));
}

static const char *
racer_chat_str(json_t *o, const char *key)
{
	return (json_string_value(json_object_get(o, key)));
}

/*
 * With end-to-end encryption on, the envelope as racer shows it: the body
 * opened, or marked as one it cannot read or one that was not encrypted.
 * Returns a new reference.
 */
static json_t *
racer_chat_opened(json_t *env)
{
	json_t		*out, *v = json_object_get(env, "body");
	const char	*body = json_string_value(v);
	char		*text, *marked;
	size_t		 len;

	if ((out = json_copy(env)) == NULL)
		fatalx("json_copy");
	if (body == NULL)
		return (out);
	len = json_string_length(v);
	if ((text = racer_e2e_open(body, len, &len)) != NULL) {
		v = json_stringn(text, len);
		free(text);
		if (v == NULL)
			v = json_string(RACER_E2E_UNREADABLE);
		json_object_set_new(out, "body", v);
		json_object_set_new(out, "e2e", json_true());
		return (out);
	}
	json_object_set_new(out, "e2e", json_false());
	if (strncmp(body, "e2e1:", 5) == 0) {
		if (racer_opts.json)
			json_object_set_new(out, "unreadable", json_true());
		else {
			json_object_set_new(out, "body",
			    json_string(RACER_E2E_UNREADABLE));
		}
	} else if (!racer_opts.json) {
		xasprintf(&marked, "(not encrypted) %s", body);
		json_object_set_new(out, "body", json_string(marked));
		free(marked);
	}
	return (out);
}

/* Print one message, whatever its seq; it becomes the last printed. */
static void
racer_chat_show(json_t *env)
{
	const char	*from, *body;
	char		*f, *b, hms[16];
	uint64_t	 seq = racer_chat_seq(env);
	json_t		*ts;
	time_t		 t;
	struct tm	 tm;

	if (seq > chat.last)
		chat.last = seq;
	if (seq > chat.pos)
		chat.pos = seq;
	if (racer_e2e_on())
		env = racer_chat_opened(env);
	else
		json_incref(env);
	if (racer_opts.json) {
		racer_chat_json(env);
		json_decref(env);
		return;
	}
	ts = json_object_get(env, "ts");
	t = json_is_integer(ts) ? (time_t)(json_integer_value(ts) / 1000) :
	    time(NULL);
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(hms, sizeof hms, "%H:%M:%S", &tm) == 0)
		snprintf(hms, sizeof hms, "??:??:??");
	if ((from = racer_chat_str(env, "from")) == NULL)
		from = "?";
	if ((body = racer_chat_str(env, "body")) == NULL)
		body = "";
	f = racer_chat_escape(from, strlen(from));
	b = racer_chat_escape(body, json_string_length(json_object_get(env,
	    "body")));
	racer_chat_out("%s [%" PRIu64 "] %s: %s\n", hms, seq, f, b);
	free(f);
	free(b);
	json_decref(env);
}

/* --- Sending --- */

/*
 * Send what is queued and not in flight on this connection, up to the
 * window.  A send that fails waits for the next connection.
 */
void
racer_chat_pump(void)
{
	struct racer_out	*o;

	if (!chat.joined)
		return;
	TAILQ_FOREACH(o, &chat.queue, entry) {
		if (chat.inflight >= RACER_CHAT_WINDOW)
			break;
		if (o->sent)
			continue;
		if (racer_send_text(o->frame, o->len) != 0)
			break;
		o->sent = 1;
		chat.inflight++;
	}
}

/* Nothing in flight any more: it all goes again (with the same ids). */
static void
racer_chat_unsend(void)
{
	struct racer_out	*o;

	TAILQ_FOREACH(o, &chat.queue, entry)
		o->sent = 0;
	chat.inflight = 0;
}

/*
 * Queue line (len bytes) as a message.  Returns 0, or -1 with *why set
 * when it cannot be sent (not UTF-8, a NUL byte, too long).
 */
int
racer_chat_add(const char *line, size_t len, const char **why)
{
	struct racer_out	*o;
	uint8_t			 rnd[RACER_CHAT_ID_BYTES];
	json_t			*body, *frame;
	char			*sealed;

	if (len > RACER_MSG_MAX) {
		*why = "it is longer than the server takes";
		goto refuse;
	}
	if (memchr(line, '\0', len) != NULL) {
		*why = "it contains a NUL byte";
		goto refuse;
	}
	if ((body = json_stringn(line, len)) == NULL) {
		*why = "it is not valid UTF-8";
		goto refuse;
	}
	if (racer_e2e_on()) {
		sealed = racer_e2e_seal(line, len);
		json_decref(body);
		body = json_string(sealed);
		free(sealed);
		if (body == NULL)
			fatalx("cannot encode a sealed message");
	}
	o = xcalloc(1, sizeof *o);
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(o->id, sizeof o->id, rnd, sizeof rnd);
	frame = json_pack("{s:s, s:o, s:s}", "type", "msg", "body", body,
	    "id", o->id);
	if (frame == NULL || (o->frame = json_dumps(frame,
	    JSON_COMPACT)) == NULL)
		fatalx("cannot encode a message");
	json_decref(frame);
	o->len = strlen(o->frame);
	if (o->len > RACER_MSG_MAX) {
		free(o->frame);
		free(o);
		*why = "it is longer than the server takes";
		goto refuse;
	}
	TAILQ_INSERT_TAIL(&chat.queue, o, entry);
	chat.queued++;
	racer_chat_pump();
	return (0);
refuse:
	chat.refused++;
	return (-1);
}

/* Messages queued and not acknowledged. */
u_int
racer_chat_pending(void)
{
	return (chat.queued);
}

/* Lines that could not be sent at all. */
u_int
racer_chat_refused(void)
{
	return (chat.refused);
}

/* An envelope from us with a queued id is that message's acknowledgement. */
static void
racer_chat_acked(json_t *env)
{
	struct racer_out	*o;
	const char		*from, *id;

	from = racer_chat_str(env, "from");
	id = racer_chat_str(env, "id");
	if (from == NULL || id == NULL || strcmp(from, chat.user) != 0)
		return;
	TAILQ_FOREACH(o, &chat.queue, entry) {
		if (strcmp(o->id, id) == 0)
			break;
	}
	if (o == NULL)
		return;
	TAILQ_REMOVE(&chat.queue, o, entry);
	chat.queued--;
	if (o->sent)
		chat.inflight--;
	free(o->frame);
	free(o);
	racer_progress();
}

/* Tell the server how far we are (racerd-protocol(7): {"type":"ack"}). */
void
racer_chat_ack(void)
{
	char	 buf[64];
	int	 n;

	if (!chat.joined || !chat.have_pos || chat.pos <= chat.acked)
		return;
	n = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"seq\":%" PRIu64 "}",
	    chat.pos);
	if (racer_send_text(buf, n) == 0)
		chat.acked = chat.pos;
}

/* --- History pages --- */

static void	racer_chat_dispatch(json_t *, const char *);

/*
 * A page arrived (page is NULL if none is coming): print its messages
 * above hist_from in seq order, then handle the frames held meanwhile, in
 * the order they came (the last-printed rule drops what the page had).
 * Returns how many page messages were printed.
 */
static u_int
racer_chat_release(json_t *page)
{
	json_t		*held = chat.held, *env;
	size_t		 i;
	uint64_t	 seq, prev = chat.hist_from;
	u_int		 shown = 0;

	json_array_foreach(page, i, env) {
		seq = racer_chat_seq(env);
		if (!json_is_object(env) || seq <= prev)
			continue;
		racer_chat_show(env);
		prev = seq;
		shown++;
	}
	chat.hist = 0;
	if ((chat.held = json_array()) == NULL)
		fatalx("json_array");
	json_array_foreach(held, i, env)
		racer_chat_dispatch(env, racer_chat_str(env, "type"));
	json_decref(held);
	return (shown);
}

/* Ask for the newest limit messages before seq before; hold live ones. */
static void
racer_chat_history_request(uint64_t before, uint64_t limit, uint64_t from,
    int gap)
{
	char	 buf[96];
	int	 n;

	if (limit > RACER_CHAT_PAGE_MAX)
		limit = RACER_CHAT_PAGE_MAX;
	if (before <= 1 || limit == 0)
		return;
	n = snprintf(buf, sizeof buf, "{\"type\":\"history\",\"before\":%"
	    PRIu64 ",\"limit\":%" PRIu64 "}", before, limit);
	if (racer_send_text(buf, n) != 0)
		return;
	chat.hist = 1;
	chat.hist_gap = gap;
	chat.hist_from = from;
}

static void
racer_chat_history(json_t *root)
{
	json_t	*page = json_object_get(root, "messages"), *env;
	size_t	 i;
	u_int	 shown;

	if (!chat.hist)
		return;
	if (!json_is_array(page))
		page = NULL;
	json_array_foreach(page, i, env)
		racer_chat_acked(env);
	shown = racer_chat_release(page);
	if (chat.hist_gap)
		racer_chat_notice("%u of them fetched from history", shown);
	racer_progress();
}

/* --- Frames from the server --- */

static void
racer_chat_welcome(json_t *root)
{
	const char	*user, *session, *epoch;
	json_t		*seqv = json_object_get(root, "seq");
	uint64_t	 seq;

	user = racer_chat_str(root, "user");
	session = racer_chat_str(root, "session");
	epoch = racer_chat_str(root, "epoch");
	if (user == NULL || session == NULL || epoch == NULL ||
	    strlen(user) > RD_USER_MAX || strlen(session) >=
	    sizeof chat.session || strlen(epoch) >= sizeof chat.epoch ||
	    !json_is_integer(seqv) || json_integer_value(seqv) < 0)
		racer_exit(RACER_EXIT_FAIL, "malformed welcome from the "
		    "server");
	seq = json_integer_value(seqv);
	if (chat.epoch[0] != '\0' && strcmp(chat.epoch, epoch) != 0) {
		racer_chat_notice("the chat's history was reset: seq starts "
		    "again");
		chat.reset = 1;
		chat.last = chat.pos = 0;
	}
	snprintf(chat.user, sizeof chat.user, "%s", user);
	snprintf(chat.session, sizeof chat.session, "%s", session);
	snprintf(chat.epoch, sizeof chat.epoch, "%s", epoch);
	if (!chat.resuming && seq > chat.pos)
		chat.pos = seq;
	chat.have_pos = 1;
	chat.joined = 1;
	chat.replaying = chat.resuming;
	if (!chat.welcomed && racer_opts.history > 0)
		racer_chat_history_request(racer_opts.since >= 0 ?
		    (uint64_t)racer_opts.since + 1 : seq + 1,
		    racer_opts.history, 0, 0);
	chat.welcomed = 1;
	racer_joined();
	racer_chat_pump();
}

static void
racer_chat_msg(json_t *env)
{
	racer_chat_acked(env);
	if (racer_chat_seq(env) > chat.last)
		racer_chat_show(env);
}

static void
racer_chat_presence(json_t *root)
{
	const char	*event, *user;
	char		*u;

	if (racer_opts.quiet)
		return;
	if (racer_opts.json) {
		racer_chat_json(root);
		return;
	}
	event = racer_chat_str(root, "event");
	user = racer_chat_str(root, "user");
	if (event == NULL || user == NULL)
		return;
	u = racer_chat_escape(user, strlen(user));
	if (strcmp(event, "join") == 0)
		racer_chat_notice("%s joined", u);
	else if (strcmp(event, "away") == 0)
		racer_chat_notice("%s is away", u);
	else if (strcmp(event, "back") == 0)
		racer_chat_notice("%s is back", u);
	else if (strcmp(event, "leave") == 0)
		racer_chat_notice("%s left", u);
	free(u);
}

static json_int_t
racer_chat_int(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return (json_is_integer(v) && json_integer_value(v) >= 0 ?
	    json_integer_value(v) : 0);
}

/*
 * The end of a replay.  Incomplete: the messages between our position and
 * the seam are not coming; say how many, and ask history for what it
 * still has of them (a page of at most RACER_CHAT_PAGE_MAX).
 */
static void
racer_chat_resumed(json_t *root)
{
	uint64_t	 from, to, n;

	from = racer_chat_int(root, "from");
	to = racer_chat_int(root, "to");
	if (racer_opts.json)
		racer_chat_json(root);
	if (json_is_true(json_object_get(root, "complete"))) {
		n = racer_chat_int(root, "replayed");
		racer_chat_notice("resumed, %" PRIu64 " missed message%s "
		    "replayed", n, n == 1 ? "" : "s");
	} else {
		if (chat.reset)
			from = 0;
		n = to > from ? to - from : 0;
		racer_chat_notice("history gap, %" PRIu64 " message%s not "
		    "recoverable", n, n == 1 ? "" : "s");
		if (chat.last > from)
			from = chat.last;
		if (to > from && !chat.hist)
			racer_chat_history_request(to + 1, to - from, from, 1);
	}
	if (to > chat.pos)
		chat.pos = to;
	chat.reset = 0;
	chat.replaying = 0;
	racer_progress();
}

static void
racer_chat_error(json_t *root)
{
	const char	*s;
	char		*code, *message, *s2;
	int		 retry;

	s = racer_chat_str(root, "code");
	code = racer_chat_escape(s != NULL ? s : "?", s != NULL ? strlen(s) :
	    1);
	s = racer_chat_str(root, "message");
	message = racer_chat_escape(s != NULL ? s : "", s != NULL ?
	    strlen(s) : 0);
	if (chat.hist) {
		racer_warnx("history unavailable: %s", message);
		racer_chat_release(NULL);
		racer_progress();
	}
	if (strcmp(code, "forbidden") == 0 && racer_chat_str(root,
	    "id") != NULL) {
		/* The token may not send here: no point trying again. */
		xasprintf(&s2, "refused by the server: %s", message);
		free(code);
		free(message);
		racer_give_up(RACER_EXIT_REFUSED, s2);
		free(s2);
		return;
	}
	retry = strcmp(code, "unavailable") == 0 ||
	    strcmp(code, "rate_limited") == 0;
	if (!retry || racer_opts.verbose)
		racer_warnx("server: %s: %s%s", code, message, retry ?
		    "; sending again" : "");
	if (retry) {
		/* Errors name no id: everything in flight goes again later. */
		racer_chat_unsend();
		racer_retry_later();
	}
	free(code);
	free(message);
}

/* Handle one frame; while a history page is awaited, hold what prints. */
static void
racer_chat_dispatch(json_t *root, const char *type)
{
	if (chat.hist && (strcmp(type, "msg") == 0 ||
	    strcmp(type, "presence") == 0 || strcmp(type, "resumed") == 0)) {
		if (strcmp(type, "msg") == 0)
			racer_chat_acked(root);
		if (json_array_append(chat.held, root) != 0)
			fatalx("json_array_append");
		return;
	}
	if (strcmp(type, "msg") == 0)
		racer_chat_msg(root);
	else if (strcmp(type, "presence") == 0)
		racer_chat_presence(root);
	else if (strcmp(type, "resumed") == 0)
		racer_chat_resumed(root);
	else if (strcmp(type, "history") == 0)
		racer_chat_history(root);
	else if (strcmp(type, "error") == 0)
		racer_chat_error(root);
	else if (strcmp(type, "refreshed") == 0 && racer_opts.verbose)
		racer_warnx("token refreshed");
}

/* One text message from the server. */
void
racer_chat_frame(const char *buf, size_t len)
{
	json_t		*root;
	const char	*type;
	char		*s;

	root = json_loadb(buf, len, 0, NULL);
	if ((type = racer_chat_str(root, "type")) == NULL) {
		s = racer_chat_escape(buf, len < 60 ? len : 60);
		racer_warnx("not a racerd frame: %s", s);
		free(s);
	} else if (strcmp(type, "welcome") == 0)
		racer_chat_welcome(root);
	else if (chat.joined)
		racer_chat_dispatch(root, type);
	json_decref(root);
}
/* --- The position --- */

static void
racer_chat_param(struct evbuffer *b, const char *name, const char *value)
{
	const u_char	*p;

	if (evbuffer_add_printf(b, "%s%s=", evbuffer_get_length(b) > 0 ?
	    "&" : "", name) == -1)
		fatalx("evbuffer_add_printf");
	for (p = (const u_char *)value; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
			if (evbuffer_add(b, p, 1) != 0)
				fatalx("evbuffer_add");
		} else if (evbuffer_add_printf(b, "%%%02X", *p) == -1)
			fatalx("evbuffer_add_printf");
	}
}

/*
 * The query of the next connection: user and token, then a resume
 * (session, last, epoch), a join after a known seq (since, epoch) or
 * nothing more.  Returns a string the caller frees ("" for none).
 */
char *
racer_chat_query(void)
{
	struct evbuffer	*b;
	char		 num[24], *s;
	size_t		 len;

	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	if (chat.user[0] != '\0')
		racer_chat_param(b, "user", chat.user);
	if (racer_opts.token != NULL)
		racer_chat_param(b, "token", racer_opts.token);
	snprintf(num, sizeof num, "%" PRIu64, chat.pos);
	chat.resuming = chat.have_pos;
	if (chat.session[0] != '\0') {
		racer_chat_param(b, "session", chat.session);
		racer_chat_param(b, "last", num);
	} else if (chat.have_pos)
		racer_chat_param(b, "since", num);
	if (chat.have_pos && chat.epoch[0] != '\0')
		racer_chat_param(b, "epoch", chat.epoch);
	len = evbuffer_get_length(b);
	s = xmalloc(len + 1);
	if (evbuffer_remove(b, s, len) != (int)len)
		fatalx("evbuffer_remove");
	s[len] = '\0';
	evbuffer_free(b);
	return (s);
}

/* The connection is gone: nothing is in flight, no page is coming. */
void
racer_chat_disconnected(void)
{
	chat.joined = 0;
	chat.replaying = 0;
	chat.acked = 0;
	racer_chat_unsend();
	if (chat.hist)
		racer_chat_release(NULL);
}

/* Returns 1 while a replay or a history page is still to come, else 0. */
int
racer_chat_busy(void)
{
	return (chat.joined && (chat.replaying || chat.hist));
}

int
racer_chat_has_session(void)
{
	return (chat.session[0] != '\0');
}

/* The server no longer knows the session: join again, from pos. */
void
racer_chat_forget_session(void)
{
	chat.session[0] = '\0';
}

void
racer_chat_init(void)
{
	TAILQ_INIT(&chat.queue);
	if ((chat.held = json_array()) == NULL)
		fatalx("json_array");
	if (racer_opts.user != NULL)
		snprintf(chat.user, sizeof chat.user, "%s", racer_opts.user);
	if (racer_opts.since >= 0) {
		chat.pos = chat.last = racer_opts.since;
		chat.have_pos = 1;
	}
}
