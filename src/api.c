/* SPDX-License-Identifier: ISC */
/* racerd: the HTTP chat API (history, publishing and presence). */
/*
 * GET  /chats/{chat}/messages?since=S&before=B&limit=N  a history page
 * POST /chats/{chat}/messages                          publish (API key)
 * GET  /chats/{chat}/presence                          who is there
 *
 * All three answer asynchronously: the connection stops reading requests
 * (conn_wait) until the store has answered and conn_answered() is called,
 * so that pipelined requests are answered in order.  A page is assembled
 * by concatenating the stored envelopes, exactly as clients got them live;
 * nothing is parsed again.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"
#include "proto.h"
#include "registry.h"

#define API_LIMIT_DEFAULT	100
#define API_KEYS_MAX		64
#define API_FROM_DEFAULT	"api"

struct api_req {
	struct conn	*c;
	int		 keep;
	char		 chat[RD_CHAT_MAX + 1];
	char		*head;		/* POST: envelope head */
	char		*tail;		/* POST: envelope tail */
};

static struct api_keyset {
	size_t		 n;
	uint8_t		 hash[API_KEYS_MAX][crypto_generichash_BYTES];
} api_keys;

/* After a full buffer without a newline: does the line go on? */
static int
api_line_goes_on(FILE *f)
{
	int	 ch;

	if ((ch = getc(f)) == EOF)
		return (0);
	if (ungetc(ch, f) == EOF)
		return (1);
	return (1);
}

/*
 * Load the API keys (one per line, blank lines and # comments skipped)
 * from path.  Returns 0, or -1 with a message in *cause ("FILE:LINE: ..."
 * for a bad line); the keys in force then stay as they were.
 */
int
api_load_keys(const char *path, char **cause)
{
	static uint8_t	 hash[API_KEYS_MAX][crypto_generichash_BYTES];
	FILE		*f;
	char		 line[1024];
	size_t		 len, n = 0;
	u_int		 lineno = 0;
	int		 rv = -1;

	if (path == NULL || *path == '\0')
		goto done;
	if ((f = fopen(path, "re")) == NULL) {
		xasprintf(cause, "api-key-file %s: %s", path, strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		len = strcspn(line, "\r\n");
		/* A line fgets cut in two would become two keys. */
		if (line[len] == '\0' && len == sizeof line - 1 &&
		    api_line_goes_on(f)) {
			xasprintf(cause, "api-key-file %s:%u: line longer than "
			    "%zu characters", path, lineno, sizeof line - 2);
			goto out;
		}
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (n == API_KEYS_MAX || len < 16) {
			xasprintf(cause, "api-key-file %s:%u: %s", path, lineno,
			    len < 16 ? "a key is shorter than 16 characters" :
			    "too many keys");
			goto out;
		}
		crypto_generichash(hash[n++], crypto_generichash_BYTES,
		    (const uint8_t *)line, len, NULL, 0);
	}
	if (ferror(f)) {
		xasprintf(cause, "api-key-file %s: %s", path, strerror(errno));
		goto out;
	}
	rv = 0;
out:
	fclose(f);
	sodium_memzero(line, sizeof line);
	if (rv != 0)
		return (-1);
done:
	memcpy(api_keys.hash, hash, n * sizeof hash[0]);
	api_keys.n = n;
	return (0);
}

/* Returns 1 if the request carries a configured API key, else 0. */
static int
api_authorized(const struct http_req *req)
{
	uint8_t		 h[crypto_generichash_BYTES];
	const char	*key;
	size_t		 i;
	int		 ok = 0;

	if (req->authorization == NULL ||
	    strncasecmp(req->authorization, "Bearer ", 7) != 0)
		return (0);
	key = req->authorization + 7;
	crypto_generichash(h, sizeof h, (const uint8_t *)key, strlen(key),
	    NULL, 0);
	/* Hashes have one length, so every comparison is constant-time. */
	for (i = 0; i < api_keys.n; i++)
		ok |= (sodium_memcmp(h, api_keys.hash[i], sizeof h) == 0);
	return (ok);
}

static struct api_req *
api_req_new(struct conn *c, const char *chat, size_t len, int keep)
{
	struct api_req	*a;

	a = xcalloc(1, sizeof *a);
	a->c = c;
	a->keep = keep;
	memcpy(a->chat, chat, len);
	conn_ref(c);
	conn_wait(c);
	return (a);
}

static void
api_req_free(struct api_req *a)
{
	conn_unref(a->c);
	free(a->head);
	free(a->tail);
	free(a);
}

static void
api_on_history(const struct bus_page *page, void *arg)
{
	struct api_req	*a = arg;
	struct evbuffer	*b;
	json_t		*chat;
	char		*s, *body;
	size_t		 i, len;

	if (a->c->state != CONN_HTTP)
		goto out;
	if (page == NULL) {
		http_error(conn_output(a->c), 503, "store unavailable", NULL,
		    a->keep);
		conn_answered(a->c, a->keep);
		goto out;
	}
	b = evbuffer_new();
	chat = json_string(a->chat);
	s = json_dumps(chat, JSON_ENCODE_ANY);
	evbuffer_add_printf(b, "{\"chat\":%s,\"epoch\":", s);
	free(s);
	json_decref(chat);
	if (page->epoch != NULL)
		evbuffer_add_printf(b, "\"%s\"", page->epoch);
	else
		evbuffer_add_printf(b, "null");
	evbuffer_add_printf(b, ",\"latest\":%llu,\"messages\":[",
	    (unsigned long long)page->latest);
	for (i = 0; i < page->n; i++) {
		if (i > 0)
			evbuffer_add(b, ",", 1);
		evbuffer_add(b, page->entries[i].env, page->entries[i].len);
	}
	if (page->n > 0 && page->entries[page->n - 1].seq < page->latest)
		evbuffer_add_printf(b, "],\"next\":%llu}",
		    (unsigned long long)page->entries[page->n - 1].seq);
	else
		evbuffer_add_printf(b, "],\"next\":null}");
	len = evbuffer_get_length(b);
	body = xmalloc(len);
	evbuffer_remove(b, body, len);
	evbuffer_free(b);
	http_response(conn_output(a->c), 200, NULL, "application/json", body,
	    len, a->keep);
	free(body);
	conn_answered(a->c, a->keep);
out:
	api_req_free(a);
}

/* GET /chats/{chat}/messages. Returns 0 when answered, RD_AGAIN if later. */
static int
api_history(struct conn *c, const struct http_req *req, const char *chat,
    size_t len, int keep)
{
	struct evbuffer	*out = conn_output(c);
	struct api_req	*a;
	uint64_t	 since = 0, before = 0, limit = API_LIMIT_DEFAULT;
	const char	*msg;
	char		 sub[RD_USER_MAX + 1];
	int		 status;

	if (auth_request(req, chat, len, AUTH_HISTORY, sub, sizeof sub,
	    &status, &msg) != 0) {
		http_error(out, status, msg, status == 401 ? AUTH_CHALLENGE :
		    NULL, keep);
		return (0);
	}
	if (http_query_u64(req->query, "since", INT64_MAX, &since) == -1 ||
	    http_query_u64(req->query, "before", INT64_MAX, &before) == -1) {
		http_error(out, 400, "since and before are sequence numbers",
		    NULL, keep);
		return (0);
	}
	if (http_query_u64(req->query, "limit", PROTO_LIMIT_MAX, &limit) == -1 ||
	    limit == 0) {
		http_error(out, 400, "limit must be 1 to 1000", NULL, keep);
		return (0);
	}
	if (http_query_u64(req->query, "before", INT64_MAX, &before) == 1 &&
	    before == 0) {
		http_error(out, 400, "before must be at least 1", NULL, keep);
		return (0);
	}
	a = api_req_new(c, chat, len, keep);
	if (bus_history(chat, len, since, before, limit, api_on_history,
	    a) != 0) {
		http_error(out, 503, "store unavailable", NULL, keep);
		api_req_free(a);
		conn_answered(c, keep);
	}
	return (RD_AGAIN);
}

static void
api_on_published(const struct bus_sent *sent, void *arg)
{
	struct api_req	*a = arg;
	char		 body[64];

	if (a->c->state != CONN_HTTP)
		goto out;
	if (sent == NULL) {
		http_error(conn_output(a->c), 503, "store unavailable; send "
		    "it again with the same id", NULL, a->keep);
	} else {
		snprintf(body, sizeof body, "{\"seq\":%llu}",
		    (unsigned long long)sent->seq);
		http_response(conn_output(a->c), 201, NULL,
		    "application/json", body, strlen(body), a->keep);
	}
	conn_answered(a->c, a->keep);
out:
	api_req_free(a);
}

/* POST /chats/{chat}/messages. Returns 0 when answered, RD_AGAIN if later. */
static int
api_publish(struct conn *c, const struct http_req *req, const char *chat,
    size_t len, int keep)
{
	struct evbuffer	*out = conn_output(c);
	struct api_req	*a;
	json_t		*root, *body, *id, *from;
	json_error_t	 err;
	const char	*fromstr = API_FROM_DEFAULT, *idstr = "", *msg;
	char		 gen[UTIL_MSG_ID_SIZE], sub[RD_USER_MAX + 1] = "";
	int		 status;

	/* An API key; or with auth = token, a token with write. */
	if (api_keys.n == 0 && !auth_enabled()) {
		http_error(out, 403, "publishing over HTTP is disabled (no "
		    "api-key-file)", NULL, keep);
		return (0);
	}
	if (!api_authorized(req) && !auth_enabled()) {
		http_error(out, 401, "missing or invalid API key",
		    "WWW-Authenticate: Bearer\r\n", keep);
		return (0);
	}
	if (!api_authorized(req) && auth_request(req, chat, len, AUTH_WRITE,
	    sub, sizeof sub, &status, &msg) != 0) {
		http_error(out, status, msg, status == 401 ? AUTH_CHALLENGE :
		    NULL, keep);
		return (0);
	}
	root = json_loadb(req->body != NULL ? req->body : "", req->body_len,
	    JSON_REJECT_DUPLICATES, &err);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		http_error(out, 400, "the body must be a JSON object", NULL,
		    keep);
		return (0);
	}
	body = json_object_get(root, "body");
	id = json_object_get(root, "id");
	from = json_object_get(root, "from");
	if (!json_is_string(body) || json_string_length(body) == 0 ||
	    json_string_length(body) > (size_t)wk.cfg->max_message_size ||
	    (id != NULL && (!json_is_string(id) ||
	    json_string_length(id) == 0 ||
	    json_string_length(id) > RD_MSGID_MAX)) ||
	    (from != NULL && (!json_is_string(from) ||
	    !http_valid_id(json_string_value(from), json_string_length(from),
	    RD_USER_MAX)))) {
		json_decref(root);
		http_error(out, 400, "need body (a non-empty string), and "
		    "optionally id (1 to 64 bytes) and from (a user id)",
		    NULL, keep);
		return (0);
	}
	if (id != NULL && proto_check_id(json_string_value(id),
	    json_string_length(id)) != NULL) {
		json_decref(root);
		http_error(out, 400, "id contains a control character", NULL,
		    keep);
		return (0);
	}
	if (*sub != '\0')
		fromstr = sub;		/* the token's sub, not the body's */
	else if (from != NULL)
		fromstr = json_string_value(from);
	if (id != NULL)
		idstr = json_string_value(id);
	else
		util_msg_id(gen);
	a = api_req_new(c, chat, len, keep);
	a->head = proto_msg_head(a->chat);
	a->tail = proto_msg_tail(*idstr != '\0' ? idstr : gen, fromstr,
	    util_now_ms(), json_string_value(body), json_string_length(body));
	if (a->tail == NULL || bus_publish(a->chat, len, a->head, a->tail,
	    fromstr, idstr, api_on_published, a) != 0) {
		http_error(out, a->tail == NULL ? 400 : 503, a->tail == NULL ?
		    "invalid string" : "store unavailable", NULL, keep);
		api_req_free(a);
		conn_answered(c, keep);
	} else
		wk.counters->msgs_in++;
	json_decref(root);
	return (RD_AGAIN);
}

/*
 * The headers of a request are in and its body is still to come: refuse
 * a publish without a valid key now rather than read a body for nothing,
 * and answer Expect: 100-continue (RFC 7231 §5.1.1) with 100 when the
 * body will be read.  Returns 0 to go on reading, or -1 when a final
 * answer was queued: the connection is then closed after it, the body
 * unread.
 */
int
api_headers(struct conn *c, const struct http_req *req)
{
	const char	*chat, *msg;
	char		 sub[RD_USER_MAX + 1];
	size_t		 chat_len;
	int		 status;

	if (http_route(req->path, &chat, &chat_len) == HTTP_ROUTE_MESSAGES &&
	    req->method == HTTP_POST) {
		/* As api_publish: an API key, or a token with write. */
		if (api_keys.n == 0 && !auth_enabled()) {
			http_error(conn_output(c), 403, "publishing over HTTP "
			    "is disabled (no api-key-file)", NULL, 0);
			return (-1);
		}
		if (!api_authorized(req) && !auth_enabled()) {
			http_error(conn_output(c), 401, "missing or invalid "
			    "API key", "WWW-Authenticate: Bearer\r\n", 0);
			return (-1);
		}
		if (!api_authorized(req) && auth_request(req, chat, chat_len,
		    AUTH_WRITE, sub, sizeof sub, &status, &msg) != 0) {
			http_error(conn_output(c), status, msg, status == 401 ?
			    AUTH_CHALLENGE : NULL, 0);
			return (-1);
		}
	}
	if (req->flags & HTTP_REQ_EXPECT_CONTINUE)
		http_response(conn_output(c), 100, NULL, NULL, NULL, 0, 1);
	return (0);
}

/*
 * /chats/{chat}/messages: GET reads history, POST publishes.  Returns 0
 * when answered, or RD_AGAIN when the answer comes later.
 */
int
api_messages(struct conn *c, const struct http_req *req, const char *chat,
    size_t len, int keep)
{
	if (req->method == HTTP_GET)
		return (api_history(c, req, chat, len, keep));
	if (req->method == HTTP_POST)
		return (api_publish(c, req, chat, len, keep));
	http_error(conn_output(c), 405, "method not allowed",
	    "Allow: GET, POST\r\n", keep);
	return (0);
}

static void
api_on_presence(const struct bus_member *m, size_t n, void *arg)
{
	struct api_req	*a = arg;
	json_t		*o, *list;
	char		*body;
	size_t		 i;

	if (a->c->state != CONN_HTTP)
		goto out;
	if (m == NULL) {
		http_error(conn_output(a->c), 503, "store unavailable", NULL,
		    a->keep);
		conn_answered(a->c, a->keep);
		goto out;
	}
	list = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", "user",
		    m[i].user, "state", m[i].connected ? "connected" :
		    "away"));
	o = json_pack("{s:s, s:o}", "chat", a->chat, "members", list);
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	http_response(conn_output(a->c), 200, NULL, "application/json", body,
	    strlen(body), a->keep);
	free(body);
	conn_answered(a->c, a->keep);
out:
	api_req_free(a);
}

/*
 * GET /chats/{chat}/presence: members connected or away, on every host.
 * Returns 0 when answered, or RD_AGAIN when the answer comes later.
 */
int
api_presence(struct conn *c, const struct http_req *req, const char *chat,
    size_t len, int keep)
{
	struct api_req	*a;
	const char	*msg;
	char		 sub[RD_USER_MAX + 1];
	int		 status;

	if (req->method != HTTP_GET) {
		http_error(conn_output(c), 405, "method not allowed",
		    "Allow: GET\r\n", keep);
		return (0);
	}
	if (auth_request(req, chat, len, AUTH_READ, sub, sizeof sub,
	    &status, &msg) != 0) {
		http_error(conn_output(c), status, msg, status == 401 ?
		    AUTH_CHALLENGE : NULL, keep);
		return (0);
	}
	a = api_req_new(c, chat, len, keep);
	if (bus_presence(chat, len, api_on_presence, a) != 0) {
		http_error(conn_output(c), 503, "store unavailable", NULL, keep);
		api_req_free(a);
		conn_answered(c, keep);
	}
	return (RD_AGAIN);
}
