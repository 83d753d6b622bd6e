/* SPDX-License-Identifier: ISC */
/* racer: one WebSocket connection to racerd (TCP, upgrade, wslay). */
/*
 * A connection is made, used and ended once; racer.c makes a new one to
 * reconnect.  racer_ws_connect resolves the host (getaddrinfo: a
 * command-line client may block on it) and tries its addresses in turn.
 * The upgrade request's answer is read by http_parser: a 101 with
 * "Upgrade: websocket", "Connection: upgrade" and the right
 * Sec-WebSocket-Accept (RFC 6455 §4.1) opens the WebSocket; anything else
 * ends the attempt with what the server said.  A wslay client context then
 * frames the stream: masks from libsodium (§5.3), pongs to pings (§5.5.3),
 * the closing handshake (§5.5.1); bytes move through a bufferevent.
 *
 * The owner hears of it through callbacks.  open (the 101 is checked) and
 * text (one message, called from inside wslay) must not free the
 * connection; end is called exactly once, last, from a timer of its own,
 * so the owner may free the connection there.  Liveness: after
 * RACER_WS_IDLE seconds of silence it pings, and after as many again
 * without a byte from the server the connection is lost.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>
#include <jansson.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "racerd.h"
#include "http.h"
#include "racer.h"

#define RACER_WS_IDLE		30	/* seconds of silence before a ping */
#define RACER_WS_CLOSE_WAIT	2	/* seconds for the server's close */
#define RACER_WS_RESPONSE_MAX	65536	/* bytes of a handshake answer */
#define RACER_WS_BODY_MAX	1024	/* bytes of an error body kept */
#define RACER_WS_IN_MAX		(128 * 1024 * 1024) /* one server message */
#define RACER_WS_NONCE		16	/* RFC 6455 §4.1: 16 random bytes */

enum racer_ws_state {
	RACER_WS_S_CONNECTING,		/* TCP connect to ws->cur */
	RACER_WS_S_TLS,			/* TLS handshake (wss://) */
	RACER_WS_S_UPGRADING,		/* request sent, reading the answer */
	RACER_WS_S_OPEN,		/* WebSocket */
	RACER_WS_S_DONE			/* res is final; end is due */
};

struct racer_ws {
	struct event_base	*base;
	struct racer_ws_cbs	 cbs;
	enum racer_ws_state	 state;
	struct addrinfo		*ai;		/* every address of the host */
	struct addrinfo		*cur;		/* the one being tried */
	char			*host;		/* for messages: host[:port] */
	char			*name;		/* host as connected to (TLS) */
	char			*request;
	struct bufferevent	*bev;
	struct event		*timer;		/* end report; close wait */
	struct racer_ws_result	 res;

	/* The answer to the upgrade request. */
	http_parser		 hp;
	size_t			 resp_len;
	int			 resp_done;
	char			 accept[HTTP_WS_ACCEPT_LEN + 1];
	char			 field[32];	/* header name being read */
	size_t			 field_len;
	char			 value[256];	/* and its value, truncated */
	size_t			 value_len;
	int			 in_value;
	int			 accept_ok;	/* Sec-WebSocket-Accept ok */
	int			 upgrade_ok;	/* Upgrade: websocket */
	char			 reason[64];	/* the status's reason */
	size_t			 reason_len;
	char			 body[RACER_WS_BODY_MAX + 1];
	size_t			 body_len;

	/* The WebSocket. */
	wslay_event_context_ptr	 ctx;
	int			 in_recv;	/* inside wslay_event_recv */
	int			 pinged;
	int			 closing;	/* we queued a close */
	int			 finish;	/* end once output is written */
	char			 close_reason[124];
};

static void	racer_ws_try(struct racer_ws *);
static void	racer_ws_recv(struct racer_ws *);
static void	racer_ws_flush(struct racer_ws *);
static void	racer_ws_event_cb(struct bufferevent *, short, void *);

/* Replace what a terminal would act on; s is NUL-terminated. */
static void
racer_ws_clean(char *s)
{
	for (; *s != '\0'; s++) {
		if ((u_char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

/*
 * The connection is over: record why and report it from the timer, so
 * that the owner is never called back from inside wslay or libevent's
 * bufferevent machinery with this connection still in use.
 */
static void __attribute__((__format__(__printf__, 4, 5)))
racer_ws_end(struct racer_ws *ws, enum racer_ws_end kind, int code,
    const char *fmt, ...)
{
	va_list	 ap;

	if (ws->state == RACER_WS_S_DONE)
		return;
	ws->state = RACER_WS_S_DONE;
	ws->res.kind = kind;
	ws->res.code = code;
	va_start(ap, fmt);
	vsnprintf(ws->res.why, sizeof ws->res.why, fmt, ap);
	va_end(ap);
	racer_ws_clean(ws->res.why);
	if (ws->bev != NULL)
		(void)bufferevent_disable(ws->bev, EV_READ|EV_WRITE);
	evtimer_del(ws->timer);
	event_active(ws->timer, EV_TIMEOUT, 0);
}

static void
racer_ws_timer_cb(__unused int fd, __unused short events, void *arg)
{
	struct racer_ws	*ws = arg;

	if (ws->state == RACER_WS_S_DONE) {
		ws->cbs.end(&ws->res, ws->cbs.arg);	/* may free ws */
		return;
	}
	/* We sent a close and the server did not answer it in time. */
	racer_ws_end(ws, RACER_WS_CLOSED,
	    wslay_event_get_status_code_sent(ws->ctx),
	    "closed (the server did not answer the close)");
}

/* --- The upgrade: request and answer --- */

static void
racer_ws_hdr_done(struct racer_ws *ws)
{
	while (ws->value_len > 0 && (ws->value[ws->value_len - 1] == ' ' ||
	    ws->value[ws->value_len - 1] == '\t'))
		ws->value_len--;
	ws->value[ws->value_len] = '\0';
	ws->field[ws->field_len] = '\0';
	if (strcasecmp(ws->field, "Sec-WebSocket-Accept") == 0)
		ws->accept_ok = (strcmp(ws->value, ws->accept) == 0);
	else if (strcasecmp(ws->field, "Upgrade") == 0)
		ws->upgrade_ok = (strcasecmp(ws->value, "websocket") == 0);
	ws->field_len = ws->value_len = 0;
	ws->in_value = 0;
}

/* Append a piece to a fixed buffer, truncating (one byte kept for NUL). */
static void
racer_ws_append(char *buf, size_t size, size_t *len, const char *at,
    size_t n)
{
	if (n > size - 1 - *len)
		n = size - 1 - *len;
	memcpy(buf + *len, at, n);
	*len += n;
	buf[*len] = '\0';
}

static int
racer_ws_on_field(http_parser *hp, const char *at, size_t len)
{
	struct racer_ws	*ws = hp->data;

	if (ws->in_value)
		racer_ws_hdr_done(ws);
	racer_ws_append(ws->field, sizeof ws->field, &ws->field_len, at, len);
	return (0);
}

static int
racer_ws_on_value(http_parser *hp, const char *at, size_t len)
{
	struct racer_ws	*ws = hp->data;

	ws->in_value = 1;
	racer_ws_append(ws->value, sizeof ws->value, &ws->value_len, at, len);
	return (0);
}

static int
racer_ws_on_headers(http_parser *hp)
{
	struct racer_ws	*ws = hp->data;

	if (ws->in_value)
		racer_ws_hdr_done(ws);
	return (0);
}

static int
racer_ws_on_status(http_parser *hp, const char *at, size_t len)
{
	struct racer_ws	*ws = hp->data;

	racer_ws_append(ws->reason, sizeof ws->reason, &ws->reason_len, at,
	    len);
	return (0);
}

static int
racer_ws_on_body(http_parser *hp, const char *at, size_t len)
{
	struct racer_ws	*ws = hp->data;

	racer_ws_append(ws->body, sizeof ws->body, &ws->body_len, at, len);
	return (0);
}

/* One answer is all we read: stop the parser there. */
static int
racer_ws_on_complete(http_parser *hp)
{
	struct racer_ws	*ws = hp->data;

	ws->resp_done = 1;
	http_parser_pause(hp, 1);
	return (0);
}

static const http_parser_settings racer_ws_settings = {
	.on_status = racer_ws_on_status,
	.on_header_field = racer_ws_on_field,
	.on_header_value = racer_ws_on_value,
	.on_headers_complete = racer_ws_on_headers,
	.on_body = racer_ws_on_body,
	.on_message_complete = racer_ws_on_complete
};

/* An HTTP error answer: racerd's carry {"error":"..."}. */
static void
racer_ws_refused(struct racer_ws *ws)
{
	json_t		*root, *e;
	int		 status = ws->hp.status_code;

	root = json_loadb(ws->body, ws->body_len, 0, NULL);
	e = json_is_object(root) ? json_object_get(root, "error") : NULL;
	if (json_is_string(e)) {
		ws->res.racerd = 1;
		racer_ws_end(ws, RACER_WS_REFUSED, status, "%d %s", status,
		    json_string_value(e));
	} else {
		racer_ws_end(ws, RACER_WS_REFUSED, status, "HTTP %d %s",
		    status, ws->reason);
	}
	json_decref(root);
}

static ssize_t
racer_ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    __unused int flags, void *arg)
{
	struct racer_ws	*ws = arg;
	int		 n;

	n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return (-1);
	}
	return (n);
}

static ssize_t
racer_ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
    size_t len, __unused int flags, void *arg)
{
	struct racer_ws	*ws = arg;

	if (evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return (-1);
	}
	return (len);
}

/* RFC 6455 §5.3: a fresh, unpredictable mask for every frame. */
static int
racer_ws_genmask_cb(__unused wslay_event_context_ptr ctx, uint8_t *buf,
    size_t len, __unused void *arg)
{
	randombytes_buf(buf, len);
	return (0);
}

static void
racer_ws_msg_cb(__unused wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *uarg)
{
	struct racer_ws	*ws = uarg;
	size_t		 n;

	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (ws->state == RACER_WS_S_OPEN)
			ws->cbs.text((const char *)arg->msg, arg->msg_length,
			    ws->cbs.arg);
		break;
	case WSLAY_CONNECTION_CLOSE:
		/* The payload is the code (2 bytes) and a UTF-8 reason. */
		n = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
		if (n > sizeof ws->close_reason - 1)
			n = sizeof ws->close_reason - 1;
		if (n > 0)
			memcpy(ws->close_reason, arg->msg + 2, n);
		ws->close_reason[n] = '\0';
		racer_ws_clean(ws->close_reason);
		break;
	default:
		/* racerd sends no binary messages; pongs need nothing. */
		break;
	}
}

static void
racer_ws_open(struct racer_ws *ws)
{
	struct wslay_event_callbacks	 cb;
	struct timeval			 tv = { RACER_WS_IDLE, 0 };

	memset(&cb, 0, sizeof cb);
	cb.recv_callback = racer_ws_recv_cb;
	cb.send_callback = racer_ws_send_cb;
	cb.genmask_callback = racer_ws_genmask_cb;
	cb.on_msg_recv_callback = racer_ws_msg_cb;
	if (wslay_event_context_client_init(&ws->ctx, &cb, ws) != 0)
		fatalx("wslay_event_context_client_init");
	wslay_event_config_set_max_recv_msg_length(ws->ctx, RACER_WS_IN_MAX);
	ws->state = RACER_WS_S_OPEN;
	if (bufferevent_set_timeouts(ws->bev, &tv, NULL) != 0) {
		racer_ws_end(ws, RACER_WS_LOST, 1006, "cannot set a timeout");
		return;
	}
	ws->cbs.open(ws->cbs.arg);
	/* Frames that came with the 101 wait for no further read event. */
	if (evbuffer_get_length(bufferevent_get_input(ws->bev)) > 0)
		racer_ws_recv(ws);
}

/* The whole answer is in: a WebSocket, or why not. */
static void
racer_ws_answered(struct racer_ws *ws)
{
	if (ws->hp.status_code != 101) {
		racer_ws_refused(ws);
		return;
	}
	if (!ws->hp.upgrade || !ws->upgrade_ok) {
		racer_ws_end(ws, RACER_WS_HANDSHAKE, 101,
		    "101 without Upgrade: websocket");
		return;
	}
	if (!ws->accept_ok) {
		racer_ws_end(ws, RACER_WS_HANDSHAKE, 101,
		    "wrong Sec-WebSocket-Accept in the 101");
		return;
	}
	racer_ws_open(ws);
}

/* Feed what arrived to the parser; bytes after a 101 stay for wslay. */
static void
racer_ws_upgrade_read(struct racer_ws *ws)
{
	struct evbuffer	*in = bufferevent_get_input(ws->bev);
	enum http_errno	 err;
	size_t		 len, n;
	char		*data;

	while (!ws->resp_done && (len = evbuffer_get_length(in)) > 0) {
		if ((data = (char *)evbuffer_pullup(in, -1)) == NULL)
			fatalx("evbuffer_pullup");
		n = http_parser_execute(&ws->hp, &racer_ws_settings, data,
		    len);
		ws->resp_len += n;
		if (evbuffer_drain(in, n) != 0)
			fatalx("evbuffer_drain");
		err = HTTP_PARSER_ERRNO(&ws->hp);
		if (err != HPE_OK && err != HPE_PAUSED) {
			racer_ws_end(ws, RACER_WS_HANDSHAKE, 0,
			    "not an HTTP server (%s)",
			    http_errno_description(err));
			return;
		}
		if (!ws->resp_done && ws->resp_len > RACER_WS_RESPONSE_MAX) {
			racer_ws_end(ws, RACER_WS_HANDSHAKE, 0,
			    "answer to the upgrade longer than %d bytes",
			    RACER_WS_RESPONSE_MAX);
			return;
		}
	}
	if (ws->resp_done)
		racer_ws_answered(ws);
}

/* The server closed during the upgrade: an answer may end at EOF. */
static void
racer_ws_upgrade_eof(struct racer_ws *ws)
{
	racer_ws_upgrade_read(ws);
	if (ws->state != RACER_WS_S_UPGRADING)
		return;
	if (!ws->resp_done && ws->resp_len > 0) {
		http_parser_execute(&ws->hp, &racer_ws_settings, NULL, 0);
		if (ws->resp_done) {
			racer_ws_answered(ws);
			return;
		}
	}
	racer_ws_end(ws, RACER_WS_HANDSHAKE, 0, "%s",
	    ws->resp_len == 0 ? "connection closed without an answer" :
	    "connection closed in the middle of the answer");
}

/* --- The WebSocket --- */

/* Bytes arrived: let wslay parse them, then send what it queued. */
static void
racer_ws_recv(struct racer_ws *ws)
{
	struct timeval	 tv = { RACER_WS_IDLE, 0 };
	int		 rc;

	if (ws->pinged) {
		ws->pinged = 0;
		if (bufferevent_set_timeouts(ws->bev, &tv, NULL) != 0) {
			racer_ws_end(ws, RACER_WS_LOST, 1006,
			    "cannot set a timeout");
			return;
		}
	}
	ws->in_recv = 1;
	rc = wslay_event_recv(ws->ctx);
	ws->in_recv = 0;
	if (rc != 0) {
		racer_ws_end(ws, RACER_WS_LOST, 1006,
		    "cannot read the server's frames (wslay error %d)", rc);
		return;
	}
	racer_ws_flush(ws);
}

static void
racer_ws_closed(struct racer_ws *ws)
{
	int	 code;

	/* 1005 (WSLAY_CODE_NO_STATUS_RCVD) when the close had no code. */
	code = wslay_event_get_status_code_received(ws->ctx);
	racer_ws_end(ws, RACER_WS_CLOSED, code, "%s", ws->close_reason);
}

/* Send what wslay queued; then see whether the closing handshake is over. */
static void
racer_ws_flush(struct racer_ws *ws)
{
	struct timeval	 tv = { RACER_WS_CLOSE_WAIT, 0 };

	if (ws->state != RACER_WS_S_OPEN)
		return;
	if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
		racer_ws_end(ws, RACER_WS_LOST, 1006, "cannot send");
		return;
	}
	if (wslay_event_get_close_received(ws->ctx)) {
		/* wslay queued the answer: end once it is written. */
		ws->finish = 1;
		if (evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
			racer_ws_closed(ws);
		return;
	}
	if (wslay_event_get_close_sent(ws->ctx) &&
	    !evtimer_pending(ws->timer, NULL) &&
	    evtimer_add(ws->timer, &tv) != 0)
		racer_ws_end(ws, RACER_WS_CLOSED,
		    wslay_event_get_status_code_sent(ws->ctx), "closed");
}

/* Silence: ping once, then give up. */
static void
racer_ws_idle(struct racer_ws *ws)
{
	struct wslay_event_msg	 ping;

	if (ws->state != RACER_WS_S_OPEN)
		return;
	if (ws->pinged) {
		racer_ws_end(ws, RACER_WS_LOST, 1006,
		    "no answer from the server for %d s", 2 * RACER_WS_IDLE);
		return;
	}
	memset(&ping, 0, sizeof ping);
	ping.opcode = WSLAY_PING;
	if (wslay_event_queue_msg(ws->ctx, &ping) != 0) {
		racer_ws_end(ws, RACER_WS_LOST, 1006, "cannot ping");
		return;
	}
	ws->pinged = 1;
	if (bufferevent_enable(ws->bev, EV_READ) != 0) {
		racer_ws_end(ws, RACER_WS_LOST, 1006, "cannot read");
		return;
	}
	racer_ws_flush(ws);
}

static void
racer_ws_read_cb(__unused struct bufferevent *bev, void *arg)
{
	struct racer_ws	*ws = arg;

	if (ws->state == RACER_WS_S_UPGRADING)
		racer_ws_upgrade_read(ws);
	else if (ws->state == RACER_WS_S_OPEN)
		racer_ws_recv(ws);
}

static void
racer_ws_write_cb(__unused struct bufferevent *bev, void *arg)
{
	struct racer_ws	*ws = arg;

	if (ws->state == RACER_WS_S_OPEN && ws->finish)
		racer_ws_closed(ws);
}

/* TCP is up: with wss://, TLS starts on it (racer_tls.c). */
static int
racer_ws_start_tls(struct racer_ws *ws)
{
	struct bufferevent	*bev;
	char			 why[256];

	bev = racer_tls_wrap(ws->base, ws->bev, ws->name, why, sizeof why);
	if (bev == NULL) {
		racer_ws_end(ws, RACER_WS_TLS, 0, "%s", why);
		return (-1);
	}
	ws->bev = bev;
	ws->state = RACER_WS_S_TLS;
	bufferevent_setcb(ws->bev, racer_ws_read_cb, racer_ws_write_cb,
	    racer_ws_event_cb, ws);
	if (bufferevent_enable(ws->bev, EV_READ|EV_WRITE) != 0) {
		racer_ws_end(ws, RACER_WS_TLS, 0, "cannot start TLS");
		return (-1);
	}
	return (0);
}

static void
racer_ws_connected(struct racer_ws *ws)
{
	int	 fd = bufferevent_getfd(ws->bev), one = 1;

	if (ws->state == RACER_WS_S_CONNECTING) {
		if (fd != -1 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof one) != 0) {
			/* Only latency suffers. */
		}
		if (racer_opts.tls) {
			racer_ws_start_tls(ws);
			return;
		}
	}
	ws->state = RACER_WS_S_UPGRADING;
	if (bufferevent_write(ws->bev, ws->request,
	    strlen(ws->request)) != 0 ||
	    bufferevent_enable(ws->bev, EV_READ|EV_WRITE) != 0) {
		racer_ws_end(ws, RACER_WS_CONNECT, 0,
		    "cannot send the request");
		return;
	}
}

/* The end of the stream, an error or a timeout. */
static void
racer_ws_event_cb(__unused struct bufferevent *bev, short what, void *arg)
{
	struct racer_ws	*ws = arg;
	char		 why[256];
	int		 error = EVUTIL_SOCKET_ERROR(), tls_failed;

	if (what & BEV_EVENT_CONNECTED) {
		racer_ws_connected(ws);
		return;
	}
	switch (ws->state) {
	case RACER_WS_S_CONNECTING:
		bufferevent_free(ws->bev);
		ws->bev = NULL;
		errno = error;
		ws->cur = ws->cur->ai_next;
		racer_ws_try(ws);
		return;
	case RACER_WS_S_TLS:
		tls_failed = racer_tls_why(ws->bev, why, sizeof why);
		racer_ws_end(ws, RACER_WS_TLS, tls_failed, "%s", why);
		return;
	case RACER_WS_S_UPGRADING:
		if (what & BEV_EVENT_EOF)
			racer_ws_upgrade_eof(ws);
		else
			racer_ws_end(ws, RACER_WS_HANDSHAKE, 0, "%s",
			    strerror(error));
		return;
	case RACER_WS_S_OPEN:
		break;
	case RACER_WS_S_DONE:
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		racer_ws_idle(ws);
	else if (wslay_event_get_close_received(ws->ctx))
		racer_ws_closed(ws);
	else if (ws->closing)
		racer_ws_end(ws, RACER_WS_CLOSED,
		    wslay_event_get_status_code_sent(ws->ctx), "closed");
	else if (what & BEV_EVENT_EOF)
		racer_ws_end(ws, RACER_WS_LOST, 1006,
		    "connection closed without a close frame");
	else
		racer_ws_end(ws, RACER_WS_LOST, 1006, "%s", strerror(error));
}

/*
 * Connect to the next address; errno says why the previous one failed.
 * With none left, the attempt ends.
 */
static void
racer_ws_try(struct racer_ws *ws)
{
	struct addrinfo	*a;
	int		 fd, error = errno;

	for (; (a = ws->cur) != NULL; ws->cur = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, a->ai_protocol);
		if (fd == -1) {
			error = errno;
			continue;
		}
		ws->bev = bufferevent_socket_new(ws->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
		if (ws->bev == NULL) {
			error = errno;
			close(fd);
			continue;
		}
		bufferevent_setcb(ws->bev, racer_ws_read_cb, racer_ws_write_cb,
		    racer_ws_event_cb, ws);
		if (bufferevent_socket_connect(ws->bev, a->ai_addr,
		    a->ai_addrlen) == 0)
			return;
		error = EVUTIL_SOCKET_ERROR();
		bufferevent_free(ws->bev);
		ws->bev = NULL;
	}
	racer_ws_end(ws, RACER_WS_CONNECT, 0, "cannot connect to %s: %s",
	    ws->host, strerror(error != 0 ? error : ECONNREFUSED));
}

/*
 * Open a WebSocket to host:port, sending authority as Host and path (with
 * its query) as the request target.  Returns the connection, which the
 * caller frees with racer_ws_free; every failure, even an immediate one,
 * is reported through cbs->end.
 */
struct racer_ws *
racer_ws_connect(struct event_base *base, const char *host, const char *port,
    const char *authority, const char *path, const struct racer_ws_cbs *cbs)
{
	struct racer_ws	*ws;
	struct addrinfo	 hints;
	uint8_t		 nonce[RACER_WS_NONCE];
	char		 key[sodium_base64_ENCODED_LEN(RACER_WS_NONCE,
			     sodium_base64_VARIANT_ORIGINAL)];
	int		 rc;

	ws = xcalloc(1, sizeof *ws);
	ws->base = base;
	ws->cbs = *cbs;
	ws->state = RACER_WS_S_CONNECTING;
	ws->host = xstrdup(authority);
	ws->name = xstrdup(host);
	if ((ws->timer = evtimer_new(base, racer_ws_timer_cb, ws)) == NULL)
		fatalx("evtimer_new");
	http_parser_init(&ws->hp, HTTP_RESPONSE);
	ws->hp.data = ws;

	randombytes_buf(nonce, sizeof nonce);
	if (sodium_bin2base64(key, sizeof key, nonce, sizeof nonce,
	    sodium_base64_VARIANT_ORIGINAL) == NULL ||
	    http_ws_accept(key, ws->accept) != 0)
		fatalx("cannot make a Sec-WebSocket-Key");
	xasprintf(&ws->request, "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "User-Agent: racer/%s\r\n"
	    "\r\n", path, authority, key, PACKAGE_VERSION);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &ws->ai);
	if (rc != 0) {
		ws->ai = NULL;
		racer_ws_end(ws, RACER_WS_CONNECT, 0, "cannot resolve %s: %s",
		    ws->host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return (ws);
	}
	ws->cur = ws->ai;
	errno = 0;
	racer_ws_try(ws);
	return (ws);
}

/*
 * Queue one text message (wslay copies it) and send it unless wslay is
 * reading (then it goes once the read is done).  Returns 0, or -1 if the
 * connection takes no more.
 */
int
racer_ws_send(struct racer_ws *ws, const char *buf, size_t len)
{
	struct wslay_event_msg	 m;

	if (ws->state != RACER_WS_S_OPEN || ws->closing ||
	    wslay_event_get_close_received(ws->ctx))
		return (-1);
	m.opcode = WSLAY_TEXT_FRAME;
	m.msg = (const uint8_t *)buf;
	m.msg_length = len;
	if (wslay_event_queue_msg(ws->ctx, &m) != 0)
		return (-1);
	if (!ws->in_recv)
		racer_ws_flush(ws);
	return (0);
}

/*
 * Start the closing handshake with code and reason (or NULL); the end
 * follows the server's answer, or RACER_WS_CLOSE_WAIT seconds.  A
 * connection not open yet just ends.
 */
void
racer_ws_close(struct racer_ws *ws, int code, const char *reason)
{
	if (ws->state == RACER_WS_S_DONE)
		return;
	if (ws->state != RACER_WS_S_OPEN) {
		racer_ws_end(ws, RACER_WS_CLOSED, code, "closed");
		return;
	}
	if (ws->closing || wslay_event_get_close_received(ws->ctx))
		return;
	ws->closing = 1;
	if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason,
	    reason != NULL ? strlen(reason) : 0) != 0) {
		racer_ws_end(ws, RACER_WS_CLOSED, code, "closed");
		return;
	}
	if (!ws->in_recv)
		racer_ws_flush(ws);
}

/* Free a connection; not from inside its open or text callbacks. */
void
racer_ws_free(struct racer_ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->bev != NULL)
		bufferevent_free(ws->bev);
	if (ws->ctx != NULL)
		wslay_event_context_free(ws->ctx);
	event_free(ws->timer);
	if (ws->ai != NULL)
		freeaddrinfo(ws->ai);
	free(ws->host);
	free(ws->name);
	free(ws->request);
	free(ws);
}
