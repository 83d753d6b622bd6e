/* SPDX-License-Identifier: ISC */
/* racerd: client connections. */
/*
 * A connection starts in HTTP: requests are parsed by http.c and answered
 * here (health, metrics, errors), with keep-alive, until one upgrades to
 * WebSocket.  A connection belongs to the worker's list from accept until
 * it is freed; freeing is deferred to the next loop turn (event_base_once)
 * so that no callback further up the stack sees freed memory.
 *
 * Limits: the request header must arrive within header-timeout
 * seconds (408 otherwise) and is capped by the parser (431/413).  On the
 * TLS port the same clock starts at accept: the handshake must be over
 * within header-timeout too, or the socket is closed.
 *
 * Output: plain connections are written once per loop turn, straight to
 * the socket (conn_flush); TLS connections hand the same evbuffer (still
 * holding references to shared frames) to their OpenSSL bufferevent,
 * which encrypts it record by record when the socket is writable.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"
#include "registry.h"

#define CONN_MAX_HEADER		8192
#define CONN_CLOSE_TICKS	30	/* seconds a closing client may drain */
#define CONN_LINGER_SECS	2	/* a closed socket waits this for input */
#define CONN_LINGER_MAX		10	/* ... and this in all */
#define CONN_LINGER_SOCKETS	1024	/* at most this many per worker */
#define CONN_CLOSE_STALL	5	/* closing ticks without progress */
#define CONN_MAX_BODY		(1024 * 1024)
#define CONN_HEARTBEAT_STALE_MS	3000
#define CONN_TLS_BATCH		(64 * 1024)	/* joined before TLS writes */


static void
conn_free_cb(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct conn	*c = arg;
	struct conn_held *h;

	while ((h = c->held) != NULL) {
		c->held = h->next;
		frame_unref(h->f);
		free(h);
	}
	while ((h = c->repeats) != NULL) {
		c->repeats = h->next;
		frame_unref(h->f);
		free(h);
	}
	join_free(c);
	ws_free(c);
	auth_conn_free(c);
	bufferevent_free(c->bev);
	event_free(c->timer);
	http_parse_free(c->hp);
	free(c);
	worker_conn_gone();
}

/* Keep a connection's memory while a reply about it is due. */
void
conn_ref(struct conn *c)
{
	c->refs++;
}

/* Drop a reference; the last one frees it on the next loop turn. */
void
conn_unref(struct conn *c)
{
	RD_ASSERT(c->refs > 0);
	if (--c->refs != 0)
		return;
	if (event_base_once(wk.base, -1, EV_TIMEOUT, conn_free_cb, c,
	    NULL) != 0)
		fatalx("event_base_once failed");
}

/*
 * A WebSocket counts against max-connections in the registry from its
 * upgrade until it closes or is refused; these two are the only places
 * that count.
 */
static void
conn_count(struct conn *c)
{
	RD_ASSERT(!c->counted);
	reg_worker_conns(wk.reg, wk.idx, 1);
	c->counted = 1;
	wk.nws++;
}

static void
conn_uncount(struct conn *c)
{
	if (!c->counted)
		return;
	reg_worker_conns(wk.reg, wk.idx, -1);
	c->counted = 0;
	wk.nws--;
}

/*
 * Read and drop what a lingering socket still receives, until the peer's
 * FIN, CONN_LINGER_SECS without input, or the deadline (arg, in seconds
 * of util_mono_ms()); then close it.
 */
static void
conn_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	 tv = { CONN_LINGER_SECS, 0 };
	intptr_t	 until = (intptr_t)arg;
	char		 buf[16384];
	ssize_t		 n;
	int		 i;

	if ((what & EV_READ) && (intptr_t)(util_mono_ms() / 1000) < until) {
		for (i = 0; i < 8; i++) {
			if ((n = read(fd, buf, sizeof buf)) <= 0)
				break;
		}
		if ((i == 8 || (n == -1 && (errno == EAGAIN ||
		    errno == EINTR))) && event_base_once(wk.base, fd, EV_READ,
		    conn_linger_cb, arg, &tv) == 0)
			return;
	}
	close(fd);
	wk.nlinger--;
	worker_conn_gone();	/* a drain waits for lingering sockets too */
}

/*
 * A connection we close after our last word (an error, a close frame):
 * send FIN and keep reading a while on a duplicate of the socket.  Closed
 * with the client's input unread, the kernel would answer with a reset,
 * and a reset can make the client's kernel drop what we sent last before
 * the client has read it; this is nginx's lingering close.
 */
static void
conn_linger(struct conn *c)
{
	struct timeval	 tv = { CONN_LINGER_SECS, 0 };
	intptr_t	 until;
	int		 fd;

	/* Past CONN_LINGER_SOCKETS, or out of descriptors: close at once. */
	if (wk.nlinger >= CONN_LINGER_SOCKETS ||
	    (fd = fcntl(bufferevent_getfd(c->bev), F_DUPFD_CLOEXEC, 0)) == -1)
		return;
	shutdown(fd, SHUT_WR);
	until = (intptr_t)(util_mono_ms() / 1000) + CONN_LINGER_MAX;
	if (event_base_once(wk.base, fd, EV_READ, conn_linger_cb,
	    (void *)until, &tv) != 0) {
		close(fd);
		return;
	}
	wk.nlinger++;
}

/* Stop using the connection now; it is freed when unreferenced. */
void
conn_close(struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	c->state = CONN_DEAD;
	if (c->tls && !c->tls_failed)
		tls_shutdown(c->bev);
	if (c->linger && !c->peer_closed)
		conn_linger(c);
	bufferevent_disable(c->bev, EV_READ|EV_WRITE);
	evtimer_del(c->timer);
	sess_detach(c);
	room_leave(c);
	TAILQ_REMOVE(&wk.conns, c, entry);
	wk.nconns--;
	if (c->ip_counted)
		iplimit_conn_del(wk.idx, c->ip_bucket);
	conn_uncount(c);
	conn_unref(c);
}

/* Close once what is queued has been written. */
void
conn_close_after_write(struct conn *c)
{
	struct timeval	 tv = { 5, 0 };

	if (c->state == CONN_DEAD || c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		c->linger = 1;
		conn_close(c);
		return;
	}
	/* A peer that never reads must not hold us forever. */
	util_timer_add(c->timer, &tv);
}

static void	conn_http_input(struct conn *);

static void
conn_arm_timer(struct conn *c, int seconds)
{
	struct timeval	 tv = { seconds, 0 };

	util_timer_add(c->timer, &tv);
}

/* Worker slots that run and have beaten recently. */
static int
conn_workers_up(int *total)
{
	struct reg_worker_info	 info;
	uint64_t		 now = util_mono_ms();
	int			 i, n = 0;

	*total = config_workers(wk.cfg);
	for (i = 0; i < *total; i++) {
		if (reg_worker_info(wk.reg, i, &info) != 0 || info.pid == 0)
			continue;
		if (now - info.heartbeat < CONN_HEARTBEAT_STALE_MS)
			n++;
	}
	return (n);
}

static void
conn_reply_json(struct conn *c, int status, json_t *o, int keep_alive,
    int head)
{
	char	*s;

	s = json_dumps(o, JSON_COMPACT);
	if (s == NULL)
		fatalx("json_dumps");
	http_response(bufferevent_get_output(c->bev), status, NULL,
	    "application/json", s, head ? 0 : strlen(s), keep_alive);
	free(s);
	json_decref(o);
}

static void
conn_healthz(struct conn *c, int keep_alive, int head)
{
	const char	*why;
	json_t		*o;
	int		 total, up, store;

	up = conn_workers_up(&total);
	store = bus_is_up(&why);
	o = json_pack("{s:s, s:s, s:i, s:i}",
	    "status", store && up == total ? "ok" : "unavailable",
	    "store", store ? "up" : "down",
	    "workers", total, "workers_up", up);
	if (!store)
		json_object_set_new(o, "error", json_sprintf("store: %s", why));
	else if (up != total)
		json_object_set_new(o, "error",
		    json_sprintf("%d of %d workers up", up, total));
	conn_reply_json(c, store && up == total ? 200 : 503, o, keep_alive,
	    head);
}

/*
 * The metrics of GET /metrics, in the order they are printed.  A metric
 * with a counter offset is the sum of that counter over every worker;
 * the others are set by conn_metrics from the registry and the store.
 */
enum {
	M_WORKERS,
	M_WORKERS_UP,
	M_CONNECTIONS,
	M_CHATS,
	M_CHATS_CAPACITY,
	M_MEMBERS,
	M_REPAIRS,
	M_MSGS_IN,
	M_MSGS_OUT,
	M_BYTES_OUT,
	M_HANDSHAKES,
	M_CLOSES_SLOW,
	M_STORE_ERRORS,
	M_GAPS_FILLED,
	M_SEALED_UNREADABLE,
	M_STORE_UP,
	M_STORE_SHARDS,
	M_STORE_SHARDS_UP,
	M_COUNT
};
#define M_SUM(f)	offsetof(struct reg_counters, f)
#define M_SET		((size_t)-1)
static const struct conn_metric {
	const char	*name;
	const char	*type;
	const char	*help;
	size_t		 counter;
} conn_metric_table[M_COUNT] = {
	[M_WORKERS] = { "workers", "gauge",
	    "Configured worker processes.", M_SET },
	[M_WORKERS_UP] = { "workers_up", "gauge",
	    "Workers alive with a fresh heartbeat.", M_SET },
	[M_CONNECTIONS] = { "connections", "gauge",
	    "Open client connections.", M_SET },
	[M_CHATS] = { "chats", "gauge",
	    "Chats with members on this instance.", M_SET },
	[M_CHATS_CAPACITY] = { "chats_capacity", "gauge",
	    "Registry capacity (max-chats).", M_SET },
	[M_MEMBERS] = { "members", "gauge",
	    "Chat memberships on this instance.", M_SET },
	[M_REPAIRS] = { "registry_repairs_total", "counter",
	    "Registry lock recoveries after a holder died.", M_SET },
	[M_MSGS_IN] = { "messages_received_total", "counter",
	    "Messages received from clients.", M_SUM(msgs_in) },
	[M_MSGS_OUT] = { "messages_delivered_total", "counter",
	    "Messages delivered to clients.", M_SUM(msgs_out) },
	[M_BYTES_OUT] = { "bytes_delivered_total", "counter",
	    "Bytes queued to clients.", M_SUM(bytes_out) },
	[M_HANDSHAKES] = { "handshakes_total", "counter",
	    "WebSocket handshakes.", M_SUM(handshakes) },
	[M_CLOSES_SLOW] = { "slow_closes_total", "counter",
	    "Connections closed with 4208 (too slow).", M_SUM(closes_slow) },
	[M_STORE_ERRORS] = { "store_errors_total", "counter",
	    "Failed store commands.", M_SUM(store_errors) },
	[M_GAPS_FILLED] = { "gaps_filled_total", "counter",
	    "Delivery gaps filled from history.", M_SUM(gaps_filled) },
	[M_SEALED_UNREADABLE] = { "sealed_unreadable_total", "counter",
	    "Sealed message bodies that did not open (key gone or damaged).",
	    M_SUM(sealed_unreadable) },
	[M_STORE_UP] = { "store_up", "gauge",
	    "1 if the answering worker reaches every store shard.", M_SET },
	[M_STORE_SHARDS] = { "store_shards", "gauge",
	    "Store shards the redis option names.", M_SET },
	[M_STORE_SHARDS_UP] = { "store_shards_up", "gauge",
	    "Store shards the answering worker reaches.", M_SET },
};

static void
conn_metrics(struct conn *c, int keep_alive, int head)
{
	const struct conn_metric *m;
	struct reg_worker_info	 info;
	struct reg_stats	 st;
	struct evbuffer		*b;
	uint64_t		 v[M_COUNT], n;
	char			*body;
	size_t			 len;
	int			 i, j, total, up;
	u_int			 sup;

	memset(v, 0, sizeof v);
	memset(&st, 0, sizeof st);
	reg_stats(wk.reg, &st);
	up = conn_workers_up(&total);
	for (i = 0; i < total; i++) {
		if (reg_worker_info(wk.reg, i, &info) != 0)
			continue;
		for (j = 0; j < M_COUNT; j++) {
			m = &conn_metric_table[j];
			if (m->counter == M_SET)
				continue;
			memcpy(&n, (char *)&info.counters + m->counter,
			    sizeof n);
			v[j] += n;
		}
	}
	v[M_WORKERS] = total;
	v[M_WORKERS_UP] = up;
	v[M_CONNECTIONS] = reg_total_conns(wk.reg);
	v[M_CHATS] = st.rooms;
	v[M_CHATS_CAPACITY] = st.room_capacity;
	v[M_MEMBERS] = st.members;
	v[M_REPAIRS] = st.repairs;
	v[M_STORE_UP] = bus_is_up(NULL);
	v[M_STORE_SHARDS] = bus_shards(&sup);
	v[M_STORE_SHARDS_UP] = sup;

	b = evbuffer_new();
	for (j = 0; j < M_COUNT; j++) {
		m = &conn_metric_table[j];
		evbuffer_add_printf(b, "# HELP racerd_%s %s\n"
		    "# TYPE racerd_%s %s\nracerd_%s %llu\n", m->name, m->help,
		    m->name, m->type, m->name, (unsigned long long)v[j]);
	}
	len = evbuffer_get_length(b);
	body = xmalloc(len + 1);
	evbuffer_remove(b, body, len);
	evbuffer_free(b);
	http_response(bufferevent_get_output(c->bev), 200, NULL,
	    "text/plain; version=0.0.4", body, head ? 0 : len, keep_alive);
	free(body);
}

/*
 * Outbound accounting, kept apart from the sockets so that it is tested
 * alone (check_conn).  The position a client surely has: what it
 * acknowledged, or else the last seq whose bytes left this process (all
 * that was queued, once nothing is pending).
 */
uint64_t
conn_position(uint64_t queued, uint64_t flushed, uint64_t acked,
    size_t pending)
{
	uint64_t	 last = pending == 0 ? queued : flushed;

	return (acked > last ? acked : last);
}

/*
 * An ack of seq moves the acknowledged position only forward, and never
 * past what was queued to the client.
 */
uint64_t
conn_acked(uint64_t acked, uint64_t queued, int64_t seq)
{
	if (seq > 0 && (uint64_t)seq > acked && (uint64_t)seq <= queued)
		return ((uint64_t)seq);
	return (acked);
}

/* Would adding bytes to what is queued pass max-outbound-bytes? */
int
conn_over_limit(size_t queued, size_t adding, size_t max)
{
	return (queued > max || adding > max - queued);
}

/*
 * Does a close end the session (no resume, the position kept for the next
 * join)?  Only the client's own 1000 does: every other end is an
 * interruption.
 */
int
conn_close_ends_session(int code, int by_client)
{
	return (code == WS_CLOSE_NORMAL && by_client);
}

/*
 * Returns 1 if a browser's Origin may connect by list (allowed-origins,
 * blank-separated): an empty list, no Origin header (not a browser), "*"
 * or an exact (case-insensitive) match in the list.
 */
int
conn_origin_allowed(const char *list, const char *origin)
{
	const char	*p = list, *end;
	size_t		 n, len;

	if (*p == '\0' || origin == NULL)
		return (1);
	len = strlen(origin);
	for (; *p != '\0'; p = end) {
		p += strspn(p, " \t");
		end = p + strcspn(p, " \t");
		n = end - p;
		if ((n == 1 && *p == '*') ||
		    (n == len && strncasecmp(p, origin, n) == 0))
			return (1);
	}
	return (0);
}

/*
 * The upgrade itself (join.c calls it): count the connection, join the
 * room, answer 101.  Returns 0, or -1 if it was refused with an HTTP
 * answer or closed.
 */
int
conn_upgrade_finish(struct conn *c, const char *chat, const char *key,
    int keep)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	char		 hdr[64];

	/* Count first, then look: racing upgrades never pass the limit. */
	conn_count(c);
	if (wk.cfg->max_connections > 0 &&
	    reg_total_conns(wk.reg) > (uint64_t)wk.cfg->max_connections) {
		conn_uncount(c);
		http_error(out, 503, "too many connections", NULL, keep);
		return (-1);
	}
	if (room_join(c, chat, strlen(chat)) == NULL) {
		conn_uncount(c);
		http_error(out, 503, errno == ENOSPC ? "too many chats" :
		    "cannot join the chat", NULL, keep);
		return (-1);
	}
	snprintf(hdr, sizeof hdr, "X-Racerd-Worker: %d\r\n", wk.idx);
	if (http_ws_response(out, key, hdr) != 0 || ws_start(c) != 0) {
		conn_close(c);
		return (-1);
	}
	evtimer_del(c->timer);
	wk.counters->handshakes++;
	return (0);
}

/*
 * A connection upgraded after waiting for the store: the parser's work is
 * done, and frames may have arrived right behind the request.
 */
void
conn_ws_begin(struct conn *c)
{
	c->waiting = 0;
	http_parse_free(c->hp);
	c->hp = NULL;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		ws_input(c);
}

/* Upgrade to a WebSocket in the chat; or answer why not. */
static void
conn_upgrade(struct conn *c, const struct http_req *req, const char *chat,
    size_t chat_len, int keep)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	struct join_params p;
	const char	*msg, *extra, *why;
	char		 token[CONN_TOKEN_LEN + 2], name[RD_CHAT_MAX + 1];
	char		 epoch[BUS_EPOCH_MAX + 1];
	uint8_t		 rnd[4];
	size_t		 len, tlen, elen;
	uint64_t	 qlast, qsince;
	int64_t		 last, since;
	int		 status, rc, trc, erc, arc, lrc, src;

	if (http_ws_check(req, &status, &msg, &extra) != 0) {
		http_error(out, status, msg, extra, keep);
		return;
	}
	if (!conn_origin_allowed(wk.cfg->allowed_origins, req->origin)) {
		log_debug("refused origin %.100s", req->origin);
		http_error(out, 403, "origin not allowed", NULL, keep);
		return;
	}
	if (wk.cfg->max_connections > 0 &&
	    reg_total_conns(wk.reg) >= (uint64_t)wk.cfg->max_connections) {
		http_error(out, 503, "too many connections", NULL, keep);
		return;
	}
	c->user[0] = '\0';
	rc = http_query_get(req->query, "user", c->user, sizeof c->user,
	    &len);
	trc = http_query_get(req->query, "session", token, sizeof token,
	    &tlen);
	erc = http_query_get(req->query, "epoch", epoch, sizeof epoch, &elen);
	lrc = http_query_u64(req->query, "last", INT64_MAX, &qlast);
	src = http_query_u64(req->query, "since", INT64_MAX, &qsince);
	if (rc == -1 || (rc == 1 &&
	    !http_valid_id(c->user, len, RD_USER_MAX))) {
		http_error(out, 400, "invalid user id", NULL, keep);
		return;
	}
	if (trc == -1 || (trc == 1 && !sess_valid_token(token, tlen)) ||
	    erc == -1 || (erc == 1 && !http_valid_id(epoch, elen,
	    BUS_EPOCH_MAX)) || lrc == -1 || src == -1) {
		http_error(out, 400, "invalid session, epoch, last or since",
		    NULL, keep);
		return;
	}
	last = lrc == 1 ? (int64_t)qlast : -1;
	since = src == 1 ? (int64_t)qsince : -1;
	/* With auth = token the user is the token's sub (rc 1). */
	if ((arc = auth_join(c, req, chat, chat_len, rc == 1, &status,
	    &msg)) == -1) {
		http_error(out, status, msg, status == 401 ? AUTH_CHALLENGE :
		    NULL, keep);
		return;
	}
	if (arc == 1)
		rc = 1;
	if (wk.draining) {
		http_error(out, 503, "server shutting down", NULL, 0);
		return;
	}
	if (!bus_chat_is_up(chat, chat_len, &why)) {
		http_error(out, 503, "store unavailable", NULL, keep);
		return;
	}
	sess_new(c);
	memcpy(name, chat, chat_len);
	name[chat_len] = '\0';
	if (trc == 0 && rc == 0) {
		randombytes_buf(rnd, sizeof rnd);
		memcpy(c->user, "guest-", 6);
		sodium_bin2hex(c->user + 6, 9, rnd, sizeof rnd);
	}
	p.chat = name;
	p.key = req->ws_key;
	p.keep = keep;
	p.token = trc == 1 ? token : NULL;
	p.last = last;
	p.since = trc == 1 ? -1 : since;
	p.epoch = erc == 1 ? epoch : "";
	join_start(c, &p);
}

/* Answer one complete request. */
static void
conn_request(struct conn *c, const struct http_req *req)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	const char	*chat;
	size_t		 chat_len;
	int		 keep, head;

	keep = (req->flags & HTTP_REQ_KEEPALIVE) && !wk.draining;
	/* Plain HTTP requests, not upgrades, count against the rate. */
	if (c->ip_counted &&
	    http_route(req->path, &chat, &chat_len) != HTTP_ROUTE_WS &&
	    iplimit_request(wk.idx, c->ip_bucket,
	    wk.cfg->max_request_rate) != 0) {
		http_error(out, 429, "too many requests from your address",
		    "Retry-After: 1\r\n", keep);
		conn_answered(c, keep);
		return;
	}
	/* What a refused request read stays with it, not with the next. */
	c->user[0] = '\0';
	c->session[0] = '\0';
	head = (req->method == HTTP_HEAD);
	switch (http_route(req->path, &chat, &chat_len)) {
	case HTTP_ROUTE_HEALTHZ:
	case HTTP_ROUTE_METRICS:
		if (req->method != HTTP_GET && !head) {
			http_error(out, 405, "method not allowed",
			    "Allow: GET, HEAD\r\n", keep);
			break;
		}
		if (http_route(req->path, &chat, &chat_len) ==
		    HTTP_ROUTE_HEALTHZ)
			conn_healthz(c, keep, head);
		else
			conn_metrics(c, keep, head);
		break;
	case HTTP_ROUTE_WS:
		conn_upgrade(c, req, chat, chat_len, keep);
		if (c->state != CONN_HTTP || c->waiting)
			return;
		break;
	case HTTP_ROUTE_MESSAGES:
		if (api_messages(c, req, chat, chat_len, keep) == RD_AGAIN)
			return;
		break;
	case HTTP_ROUTE_PRESENCE:
		if (api_presence(c, req, chat, chat_len, keep) == RD_AGAIN)
			return;
		break;
	case HTTP_ROUTE_BAD_ID:
		http_error(out, 400, "invalid chat id", NULL, keep);
		break;
	default:
		if (static_serve(c, req, keep) != 0)
			keep = 0;
		break;
	}
	conn_answered(c, keep);
}

/* The output buffer of a connection, for the modules that answer on it. */
struct evbuffer *
conn_output(struct conn *c)
{
	return (bufferevent_get_output(c->bev));
}

/* Stop reading requests until conn_answered: an answer is on its way. */
void
conn_wait(struct conn *c)
{
	c->waiting = 1;
	evtimer_del(c->timer);
}

/*
 * A request has its answer: close or wait for the next one, and go on
 * with any request that arrived meanwhile.
 */
void
conn_answered(struct conn *c, int keep)
{
	int	 was = c->waiting;

	c->waiting = 0;
	if (c->state != CONN_HTTP)
		return;
	if (!keep) {
		conn_close_after_write(c);
		return;
	}
	conn_arm_timer(c, wk.cfg->header_timeout * 6);
	if (was)
		conn_http_input(c);
}

/*
 * Pipelined requests whose answers the client does not read: past
 * max-outbound-bytes of output, stop reading (what the kernel holds waits
 * there) until the output has drained. Returns 1 while held.
 */
static int
conn_http_hold(struct conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) <= (size_t)wk.cfg->max_outbound_bytes)
		return (0);
	if (!c->http_held) {
		c->http_held = 1;
		bufferevent_disable(c->bev, EV_READ);
	}
	return (1);
}

static void
conn_http_input(struct conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	while (c->state == CONN_HTTP && !c->waiting &&
	    evbuffer_get_length(in) > 0 && !conn_http_hold(c)) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = http_parse_feed(c->hp, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == -1) {
			http_error(bufferevent_get_output(c->bev),
			    http_parse_status(c->hp), "bad request", NULL, 0);
			conn_close_after_write(c);
			return;
		}
		if (rc == 0) {
			/* A request has begun: it has a deadline now. */
			if (!c->in_request && used > 0) {
				c->in_request = 1;
				conn_arm_timer(c, wk.cfg->header_timeout);
			}
			/* Headers in, body to come: a look before it. */
			if (!c->head_seen && http_parse_headers_done(c->hp)) {
				c->head_seen = 1;
				if (api_headers(c, http_parse_req(c->hp)) != 0) {
					conn_close_after_write(c);
					return;
				}
			}
			continue;
		}
		c->in_request = 0;
		c->head_seen = 0;
		conn_request(c, http_parse_req(c->hp));
		http_parse_reset(c->hp);
	}
	if (c->state == CONN_WS) {
		/* The parser's work is done; an idle socket keeps little. */
		http_parse_free(c->hp);
		c->hp = NULL;
	}
	/* Frames sent right behind the upgrade request. */
	if (c->state == CONN_WS && evbuffer_get_length(in) > 0)
		ws_input(c);
}

static void
conn_read_cb(__unused struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CONN_HTTP)
		conn_http_input(c);
	else if (c->state == CONN_WS)
		ws_input(c);
}

/* Everything queued to the connection has been written. */
static void
conn_drained(struct conn *c)
{
	c->flushed_seq = c->queued_seq;
	if (c->state == CONN_CLOSING) {
		c->linger = 1;
		conn_close(c);
	}
	else if (c->state == CONN_HTTP && c->http_held) {
		/* The client read its answers: on with its requests. */
		c->http_held = 0;
		bufferevent_enable(c->bev, EV_READ);
		conn_http_input(c);
	}
	else if (c->join != NULL)
		join_output_drained(c);
}

/* The bufferevent finished what a partial write left: back to idle. */
static void
conn_write_cb(__unused struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	/*
	 * A deferred callback (TLS) can come after more was queued: only an
	 * empty buffer is drained.
	 */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return;
	bufferevent_disable(c->bev, EV_WRITE);
	conn_drained(c);
}

/*
 * Write what is queued to one connection now; only what the socket does
 * not take waits for the bufferevent's write event.
 */
static void
conn_flush(struct conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	size_t		 len;
	int		 n, saved;

	if (c->state == CONN_DEAD || evbuffer_get_length(out) == 0)
		return;
	if (c->tls) {
		/*
		 * OpenSSL makes a record, and a write(2), of each piece of
		 * the buffer: join the frames queued this turn first (a copy
		 * per connection, which encryption costs anyway).  Then it
		 * writes; conn_write_cb says when it is all out.
		 */
		len = evbuffer_get_length(out);
		if (evbuffer_pullup(out, len < CONN_TLS_BATCH ? len :
		    CONN_TLS_BATCH) == NULL)
			log_debug("cannot join the output of %s", c->user);
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	/* A socket bufferevent freezes its output's front; so does it. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, bufferevent_getfd(c->bev));
	saved = errno;
	evbuffer_freeze(out, 1);
	if (n == -1 && saved != EAGAIN && saved != EINTR) {
		log_debug("write to %s: %s", c->user, strerror(saved));
		if (c->state == CONN_WS && c->close_code == 0)
			c->close_code = WS_CLOSE_ABNORMAL;
		conn_close(c);
		return;
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
	else
		conn_drained(c);
}

/*
 * Once per loop turn, after every callback that queued output: one write
 * per connection for everything queued to it in that turn, instead of a
 * write event armed and disarmed per message.
 */
static void
conn_flush_all(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	struct conn	*c;

	wk.flush_armed = 0;
	while ((c = TAILQ_FIRST(&wk.flushq)) != NULL) {
		TAILQ_REMOVE(&wk.flushq, c, flushq);
		c->flush_queued = 0;
		conn_flush(c);
		conn_unref(c);
	}
}

/* Output was queued: flush the connection at the end of this loop turn. */
static void
conn_outbuf_cb(__unused struct evbuffer *buf,
    const struct evbuffer_cb_info *info, void *arg)
{
	struct conn	*c = arg;

	if (info->n_added == 0 || c->flush_queued || c->state == CONN_DEAD)
		return;
	c->flush_queued = 1;
	conn_ref(c);
	TAILQ_INSERT_TAIL(&wk.flushq, c, flushq);
	if (!wk.flush_armed) {
		wk.flush_armed = 1;
		event_active(wk.flush_ev, EV_TIMEOUT, 0);
	}
}

/* Set up the per-turn flush; once per worker. */
int
conn_init(void)
{
	TAILQ_INIT(&wk.flushq);
	wk.flush_ev = event_new(wk.base, -1, 0, conn_flush_all, NULL);
	return (wk.flush_ev == NULL ? -1 : 0);
}

static void
conn_event_cb(__unused struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;

	if (what & (BEV_EVENT_EOF|BEV_EVENT_ERROR)) {
		if (c->tls && (what & BEV_EVENT_ERROR)) {
			c->tls_failed = 1;
			log_debug("TLS connection ended: %s",
			    tls_strerror(c->bev));
		}
		if (c->state == CONN_WS && c->close_code == 0)
			c->close_code = WS_CLOSE_ABNORMAL;
		conn_close(c);
	} else if ((what & BEV_EVENT_TIMEOUT) && c->state == CONN_WS)
		ws_timeout(c);
}

static void
conn_timeout(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct conn	*c = arg;

	struct timeval	 tv = { 1, 0 };
	size_t		 left;

	if (c->state != CONN_HTTP) {
		/*
		 * Closing: a client still taking what was queued before the
		 * close (a 4208 behind max-outbound-bytes) gets some more
		 * time; one that stopped reading or answering does not.
		 */
		left = evbuffer_get_length(bufferevent_get_output(c->bev));
		if (left < c->left_mark || c->close_ticks == 0)
			c->stalled = 0;
		else
			c->stalled++;
		c->left_mark = left;
		if (left > 0 && c->stalled < CONN_CLOSE_STALL &&
		    ++c->close_ticks < CONN_CLOSE_TICKS) {
			util_timer_add(c->timer, &tv);
			return;
		}
		conn_close(c);
		return;
	}
	if (c->in_request) {
		http_error(bufferevent_get_output(c->bev), 408,
		    "request header timeout", NULL, 0);
		conn_close_after_write(c);
	} else
		conn_close(c);
}

/*
 * Count a new connection against max-connections-per-ip; one too many is
 * answered 429 and closed without a look at its request.
 */
static void
conn_count_peer(struct conn *c, int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return;
	c->ip_bucket = iplimit_bucket((struct sockaddr *)&ss);
	if (iplimit_conn_add(wk.idx, c->ip_bucket,
	    wk.cfg->max_conns_per_ip) == 0) {
		c->ip_counted = 1;
		return;
	}
	http_error(bufferevent_get_output(c->bev), 429,
	    "too many connections from your address", "Retry-After: 1\r\n",
	    0);
	conn_close_after_write(c);
}

/* Take a freshly accepted socket into service, speaking TLS if tls. */
void
conn_accept(int fd, int tls)
{
	struct conn	*c;
	int		 on = 1;

	if (wk.draining) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	c = xcalloc(1, sizeof *c);
	c->refs = 1;
	if (tls) {
		if ((c->bev = tls_accept(wk.base, fd)) == NULL) {
			log_warnx("cannot start TLS on a connection");
			close(fd);
			free(c);
			return;
		}
		c->tls = 1;
	} else
		c->bev = bufferevent_socket_new(wk.base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(wk.base, conn_timeout, c);
	c->hp = http_parse_new(CONN_MAX_HEADER, CONN_MAX_BODY);
	if (c->bev == NULL || c->timer == NULL || c->hp == NULL)
		fatalx("conn_accept: out of memory");
	c->state = CONN_HTTP;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	if (evbuffer_add_cb(bufferevent_get_output(c->bev), conn_outbuf_cb,
	    c) == NULL)
		fatalx("conn_accept: out of memory");
	bufferevent_enable(c->bev, EV_READ);
	TAILQ_INSERT_TAIL(&wk.conns, c, entry);
	wk.nconns++;
	conn_arm_timer(c, wk.cfg->header_timeout);
	conn_count_peer(c, fd);
}

/* Drain: idle HTTP connections go now, busy ones after their answer. */
void
conn_drain_all(void)
{
	struct conn	*c, *next;

	TAILQ_FOREACH_SAFE(c, &wk.conns, entry, next) {
		if (c->state == CONN_WS)
			ws_close(c, WS_CLOSE_RESTART, "server restarting: resume at once");
		else if (c->state == CONN_HTTP && !c->in_request)
			conn_close(c);
	}
}

/* At exit: free every connection at once. */
void
conn_free_all(void)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&wk.conns)) != NULL) {
		conn_close(c);
	}
	/* Run the deferred frees. */
	event_base_loop(wk.base, EVLOOP_NONBLOCK);
}
