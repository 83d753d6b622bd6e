/* SPDX-License-Identifier: ISC */
/* racerd: WebSocket connections (wslay glue). */
/*
 * wslay parses and validates what clients send (masking, opcodes, control
 * frame rules, close codes, UTF-8 of text and close reasons, the
 * max-message-size cap) and writes control frames (pong, close).  Its
 * recv and send callbacks move bytes between wslay and the connection's
 * bufferevent, and the send callback always takes everything, so a control
 * frame is never left half-written between two of our data frames.
 *
 * Data frames from the server do not go through wslay's queue, which would
 * copy each message once per member: they are encoded once (frame.c) and
 * added to each member's output by reference.  A connection whose output
 * passes max-outbound-bytes is closed with 4208 and resumes from history.
 *
 * Liveness uses the bufferevent's read timeout: after ping-interval of
 * silence the server pings; after idle-timeout the connection is dropped.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <wslay/wslay.h>

#include "racerd.h"
#include "proto.h"
#include "registry.h"

#define WS_CLOSE_WAIT		1	/* seconds to wait for the peer's close */
#define WS_MAX_ERRORS		10	/* refused frames before 1008 */
#define WS_HISTORY_LIMIT	100	/* a history page without limit */
#define WS_MAX_LIMITED		20	/* refused by the rate limit, in a row */

static void	ws_check_closed(struct conn *);
static void	ws_too_slow(struct conn *);
static void	ws_output(struct conn *);
static int	ws_rate_ok(struct conn *, const char *);
static void	ws_track(struct conn *, const uint8_t *, size_t);

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    __unused int flags, void *arg)
{
	struct conn	*c = arg;
	int		 n;

	n = evbuffer_remove(bufferevent_get_input(c->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return (-1);
	}
	ws_track(c, buf, n);
	return (n);
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    __unused int flags, void *arg)
{
	struct conn	*c = arg;

	if (evbuffer_add(bufferevent_get_output(c->bev), data, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return (-1);
	}
	return (len);
}

/* An error frame; the connection stays open. */
void
ws_send_error(struct conn *c, const char *code, const char *message)
{
	ws_send_error_id(c, code, message, NULL);
}

/* An error frame about the msg with this id (NULL or "": none). */
void
ws_send_error_id(struct conn *c, const char *code, const char *message,
    const char *id)
{
	char	*s;

	if (id != NULL && *id != '\0')
		s = proto_error_id(code, message, id);
	else
		s = proto_error(code, message);
	if (s == NULL)
		return;
	ws_send_text(c, s, strlen(s));
	free(s);
}

/* A refused request: an error frame, and 1008 when it keeps happening. */
static void
ws_refuse(struct conn *c, const char *code, const char *message)
{
	ws_send_error(c, code, message);
	if (++c->errors >= WS_MAX_ERRORS)
		ws_close(c, WS_CLOSE_POLICY, "too many refused requests");
}

static void
ws_on_history(const struct bus_page *page, void *arg)
{
	struct conn	*c = arg;
	const char	**envs;
	char		*s;
	size_t		 i;

	c->history_busy = 0;
	if (c->state != CONN_WS)
		goto out;
	if (page == NULL) {
		ws_send_error(c, "unavailable", "the store is unavailable");
		goto out;
	}
	envs = xcalloc(page->n + 1, sizeof *envs);
	for (i = 0; i < page->n; i++)
		envs[i] = page->entries[i].env;
	s = proto_history(envs, page->n);
	ws_send_text(c, s, strlen(s));
	free(s);
	free(envs);
out:
	conn_unref(c);
}

/* {"type":"history"}: the newest limit messages before seq before. */
static void
ws_history(struct conn *c, int64_t before, int limit)
{
	if (c->room == NULL)
		return;
	/*
	 * Each page is a store read of up to 1,000 entries: one at a time
	 * per connection, and within max-message-rate with the messages.
	 */
	if (c->history_busy) {
		ws_refuse(c, "busy", "a history request is in flight; wait "
		    "for its answer");
		return;
	}
	if (!ws_rate_ok(c, NULL))
		return;
	if (before <= 0)
		before = room_latest(c->room) + 1;
	conn_ref(c);
	c->history_busy = 1;
	if (bus_history(room_name(c->room), strlen(room_name(c->room)), 0,
	    before, limit > 0 ? limit : WS_HISTORY_LIMIT, ws_on_history,
	    c) != 0) {
		c->history_busy = 0;
		conn_unref(c);
		ws_send_error(c, "unavailable", "the store is unavailable");
	}
}

/*
 * A token bucket that fills with rate tokens a second and holds at most
 * rate: at now (monotonic ms), take one token if there is one.  Returns
 * 1 if one was taken, 0 if the bucket is empty.
 */
int
ws_bucket_take(double *tokens, uint64_t *at, uint64_t now, int rate)
{
	*tokens += (double)(now - *at) * rate / 1000.0;
	if (*tokens > rate)
		*tokens = rate;
	*at = now;
	if (*tokens < 1.0)
		return (0);
	*tokens -= 1.0;
	return (1);
}

/*
 * max-message-rate messages a second (as many may come at once).  Returns
 * 1 if the message may go; else it is refused, and a client that keeps
 * sending past the limit is closed with 4100.
 */
static int
ws_rate_ok(struct conn *c, const char *id)
{
	int	 rate = wk.cfg->max_message_rate;

	if (rate == 0)
		return (1);
	if (ws_bucket_take(&c->tokens, &c->tokens_at, util_mono_ms(), rate)) {
		c->limited = 0;
		return (1);
	}
	ws_send_error_id(c, "rate_limited", "too many messages; slow down",
	    id);
	if (++c->limited >= WS_MAX_LIMITED)
		ws_close(c, WS_CLOSE_RATE, "message rate exceeded; reconnect later");
	return (0);
}

static void
ws_text(struct conn *c, const uint8_t *msg, size_t len)
{
	struct proto_in	 in;
	const char	*code, *message;

	if (proto_parse((const char *)msg, len, &in, &code, &message) != 0) {
		ws_refuse(c, code, message);
		return;
	}
	switch (in.type) {
	case PROTO_MSG:
		if (!auth_allowed(c, AUTH_WRITE, in.id) || !ws_rate_ok(c, in.id))
			break;
		wk.counters->msgs_in++;
		room_publish(c, in.body, in.body_len, in.id);
		break;
	case PROTO_ACK:
		c->acked_seq = conn_acked(c->acked_seq, c->queued_seq, in.seq);
		break;
	case PROTO_HISTORY:
		if (auth_allowed(c, AUTH_HISTORY, NULL))
			ws_history(c, in.before, in.limit);
		break;
	case PROTO_REFRESH:
		/* A signature check costs: refreshes count as messages. */
		if (ws_rate_ok(c, NULL))
			auth_refresh(c, in.token, in.token_len);
		break;
	}
	proto_in_clear(&in);
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *uarg)
{
	struct conn	*c = uarg;

	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		c->ws_msg_at = util_mono_ms();	/* a pong does not count */
		if (c->state == CONN_WS && !c->ws_closing)
			ws_text(c, arg->msg, arg->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		/* RFC 6455 §7.4.1: 1003, a type of data it cannot accept. */
		ws_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
		break;
	case WSLAY_CONNECTION_CLOSE:
		if (!c->ws_closing) {
			c->close_code = arg->status_code == 0 ? WS_CLOSE_NO_STATUS :
			    arg->status_code;
			c->close_by_client = 1;
		}
		c->ws_closing = 1;
		break;
	default:
		break;
	}
	(void)ctx;
}

/*
 * The wslay context of a connection, made when it is needed.  An idle
 * connection has none: wslay's context holds two 4 KiB buffers, more than
 * everything else an idle connection costs.  Returns 0 or -1.
 */
static int
ws_ctx(struct conn *c)
{
	struct wslay_event_callbacks	 cb;

	if (c->ws != NULL)
		return (0);
	memset(&cb, 0, sizeof cb);
	cb.recv_callback = ws_recv_cb;
	cb.send_callback = ws_send_cb;
	cb.on_msg_recv_callback = ws_msg_cb;
	if (wslay_event_context_server_init(&c->ws, &cb, c) != 0) {
		c->ws = NULL;
		return (-1);
	}
	wslay_event_config_set_max_recv_msg_length(c->ws,
	    wk.cfg->max_message_size);
	return (0);
}

/*
 * Let go of the wslay context of a connection that has gone quiet (no
 * message for ping-interval; pings and pongs do not count, and are what
 * bring it here then) and is between messages: nothing half-received,
 * nothing queued, not closing.  A connection that keeps sending keeps its
 * context rather than make and free one for every message.
 */
static void
ws_ctx_idle(struct conn *c)
{
	if (c->ws == NULL || c->state != CONN_WS || c->ws_closing ||
	    c->trk_hlen != 0 || c->trk_left != 0 || c->trk_in_msg ||
	    wslay_event_want_write(c->ws) ||
	    !wslay_event_get_read_enabled(c->ws) ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) != 0 ||
	    (c->ws_msg_at != 0 && util_mono_ms() - c->ws_msg_at <
	    (uint64_t)wk.cfg->ping_interval * 1000))
		return;
	wslay_event_context_free(c->ws);
	c->ws = NULL;
}

/*
 * Follow frame boundaries in the bytes handed to wslay (RFC 6455 §5.2),
 * only to know when the connection is between messages.
 */
static void
ws_track(struct conn *c, const uint8_t *p, size_t n)
{
	uint64_t	 len;
	size_t		 take;
	int		 i, len7;

	while (n > 0) {
		if (c->trk_left > 0) {
			take = n < c->trk_left ? n : c->trk_left;
			c->trk_left -= take;
			p += take;
			n -= take;
			if (c->trk_left == 0 && (c->trk_hdr[0] & 0x0f) < 8)
				c->trk_in_msg = !(c->trk_hdr[0] & 0x80);
			continue;
		}
		if (c->trk_hlen < sizeof c->trk_hdr)
			c->trk_hdr[c->trk_hlen] = *p;
		c->trk_hlen++;
		p++;
		n--;
		if (c->trk_hlen < 2)
			continue;
		len7 = c->trk_hdr[1] & 0x7f;
		if (c->trk_hlen < (size_t)(2 + (len7 == 126 ? 2 : len7 == 127 ?
		    8 : 0) + ((c->trk_hdr[1] & 0x80) ? 4 : 0)))
			continue;
		len = len7;
		if (len7 >= 126) {
			len = 0;
			for (i = 0; i < (len7 == 126 ? 2 : 8); i++)
				len = (len << 8) | c->trk_hdr[2 + i];
		}
		c->trk_hlen = 0;
		c->trk_left = len;
		if (len == 0 && (c->trk_hdr[0] & 0x0f) < 8)
			c->trk_in_msg = !(c->trk_hdr[0] & 0x80);
	}
}

/* Turn a fresh upgrade into a WebSocket. Returns 0 or -1. */
int
ws_start(struct conn *c)
{
	struct timeval	 tv;

	c->tokens = wk.cfg->max_message_rate;
	c->tokens_at = util_mono_ms();
	c->state = CONN_WS;
	tv.tv_sec = wk.cfg->ping_interval;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	return (0);
}

/*
 * wslay's frame parser refused the input (a fragmented or over-long
 * control frame, a bad length): it then queues a close without a status.
 * Say 1002 ourselves (RFC 6455 §7.4.1) and hang up once it is written.
 */
static void
ws_protocol_error(struct conn *c)
{
	static const char reason[] = "protocol error";
	uint8_t		 frame[2 + 2 + sizeof reason - 1];

	frame[0] = 0x88;
	frame[1] = 2 + sizeof reason - 1;
	frame[2] = WS_CLOSE_PROTOCOL >> 8;
	frame[3] = WS_CLOSE_PROTOCOL & 0xff;
	memcpy(frame + 4, reason, sizeof reason - 1);
	c->ws_closing = 1;
	c->close_code = WS_CLOSE_PROTOCOL;
	evbuffer_add(bufferevent_get_output(c->bev), frame, sizeof frame);
	conn_close_after_write(c);
}

/* Bytes arrived: let wslay parse them, then send what it queued. */
void
ws_input(struct conn *c)
{
	struct timeval	 tv = { wk.cfg->ping_interval, 0 };

	if (c->pinged) {
		c->pinged = 0;
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
	if (ws_ctx(c) != 0) {
		conn_close(c);
		return;
	}
	if (wslay_event_recv(c->ws) != 0) {
		ws_protocol_error(c);
		return;
	}
	ws_output(c);
}

/* A client too slow for what is queued to it: 4208, it resumes later. */
static void
ws_too_slow(struct conn *c)
{
	wk.counters->closes_slow++;
	log_debug("closing %s: more than %d bytes queued", c->user,
	    wk.cfg->max_outbound_bytes);
	ws_close(c, WS_CLOSE_TOO_SLOW, "too slow: resume from history");
}

/* Send what wslay has queued, then see whether the socket is done. */
static void
ws_output(struct conn *c)
{
	size_t	 queued;

	if (c->state == CONN_DEAD || c->ws == NULL)
		return;
	/*
	 * Pongs and other control frames count against max-outbound-bytes
	 * too: a client that pings and never reads is a slow client.
	 */
	if (!c->ws_closing && wslay_event_want_write(c->ws)) {
		queued = evbuffer_get_length(bufferevent_get_output(c->bev));
		if (conn_over_limit(queued,
		    wslay_event_get_queued_msg_length(c->ws),
		    (size_t)wk.cfg->max_outbound_bytes)) {
			ws_too_slow(c);
			return;
		}
	}
	if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
		conn_close(c);
		return;
	}
	ws_check_closed(c);
	ws_ctx_idle(c);
}

static void
ws_check_closed(struct conn *c)
{
	struct timeval	 tv = { WS_CLOSE_WAIT, 0 };

	if (!wslay_event_get_close_sent(c->ws))
		return;
	c->ws_closing = 1;
	if (wslay_event_get_close_received(c->ws) ||
	    !wslay_event_want_read(c->ws)) {
		/* A peer that sent its close sends nothing more. */
		c->peer_closed = wslay_event_get_close_received(c->ws);
		conn_close_after_write(c);
		return;
	}
	/* We started the close: give the peer a moment to answer it. */
	if (!c->close_wait) {
		c->close_wait = 1;
		util_timer_add(c->timer, &tv);
	}
}

/* The read timeout fired: ping once, then give up. */
void
ws_timeout(struct conn *c)
{
	struct wslay_event_msg	 ping;
	struct timeval		 tv;
	int			 left;

	if (c->ws_closing) {
		conn_close(c);
		return;
	}
	if (c->pinged) {
		log_debug("dropping %s: silent for %d s", c->user,
		    wk.cfg->idle_timeout);
		c->close_code = WS_CLOSE_ABNORMAL;
		conn_close(c);
		return;
	}
	memset(&ping, 0, sizeof ping);
	ping.opcode = WSLAY_PING;
	if (ws_ctx(c) != 0 || wslay_event_queue_msg(c->ws, &ping) != 0) {
		conn_close(c);
		return;
	}
	c->pinged = 1;
	left = wk.cfg->idle_timeout - wk.cfg->ping_interval;
	tv.tv_sec = left > 1 ? left : 1;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
	ws_output(c);
}

/*
 * Queue a shared frame to one connection.  Returns 0, or -1 if the
 * connection takes no more (closing, or just closed for being too slow).
 */
int
ws_send_frame(struct conn *c, struct frame *f)
{
	struct evbuffer	*out;

	if (c->state != CONN_WS || c->ws_closing)
		return (-1);
	out = bufferevent_get_output(c->bev);
	/* A joining connection's replay paces itself (join.c). */
	if (c->join == NULL && conn_over_limit(evbuffer_get_length(out),
	    f->len, (size_t)wk.cfg->max_outbound_bytes)) {
		ws_too_slow(c);
		return (-1);
	}
	frame_ref(f);
	if (evbuffer_add_reference(out, f->data, f->len, frame_release,
	    f) != 0) {
		frame_unref(f);
		return (-1);
	}
	wk.counters->bytes_out += f->len;
	return (0);
}

/* Send one text message to one connection (copies it). */
int
ws_send_text(struct conn *c, const char *buf, size_t len)
{
	struct frame	*f;
	int		 rc;

	f = frame_text(buf, len);
	rc = ws_send_frame(c, f);
	frame_unref(f);
	return (rc);
}

/* Start the closing handshake with code and reason. */
void
ws_close(struct conn *c, int code, const char *reason)
{
	if (c->state != CONN_WS || c->ws_closing)
		return;
	if (ws_ctx(c) != 0) {
		conn_close(c);
		return;
	}
	c->ws_closing = 1;
	c->close_code = code;
	wslay_event_queue_close(c->ws, code, (const uint8_t *)reason,
	    reason != NULL ? strlen(reason) : 0);
	ws_output(c);
}

void
ws_free(struct conn *c)
{
	if (c->ws != NULL) {
		wslay_event_context_free(c->ws);
		c->ws = NULL;
	}
}
