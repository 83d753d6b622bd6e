/* SPDX-License-Identifier: ISC */
/* racerd: chat frame format. */
/*
 * The JSON frames of racerd-protocol(7) (FRAMES FROM THE CLIENT, FRAMES
 * FROM THE SERVER): proto_parse decodes and validates what a client
 * sends, the proto_* builders encode what the server sends, plus two
 * byte-level helpers: UTF-8 validation (RFC 3629) for the parser and the
 * escaper, and server frame headers (RFC 6455 §5.2) for the WebSocket
 * layer.
 * Used by the worker: the WebSocket glue (ws.c, frame.c, join.c, room.c),
 * the HTTP API (api.c) and auth (auth.c).
 *
 * Invariants: no I/O and no process globals (jansson's allocator is left
 * alone).  Every string that reaches a client is escaped by jansson (a
 * message's id, sender and body by proto_buf_string, the way jansson does
 * it), so the output is valid JSON for any UTF-8 input.  Builders return
 * NULL only for a NULL or non-UTF-8 string argument; running out of memory
 * is fatal, as with xmalloc.  Key order is fixed: objects are packed in
 * the order of the contract and dumped with JSON_PRESERVE_ORDER.
 *
 * A client body may not contain U+0000: jansson's default (no
 * JSON_ALLOW_NUL) rejects "\u0000" as bad_json, so every body is a C
 * string and body_len == strlen(body).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "racerd.h"
#include "proto.h"

#define PROTO_DUMP_FLAGS	(JSON_COMPACT | JSON_PRESERVE_ORDER | \
				    JSON_ENCODE_ANY)

/* An output string being assembled; data is ours, not jansson's. */
struct proto_buf {
	char		*data;
	size_t		 len;
	size_t		 size;
};

static void	 proto_buf_add(struct proto_buf *, const void *, size_t);
static int	 proto_buf_dump_cb(const char *, size_t, void *);
static int	 proto_buf_pack(struct proto_buf *, const char *, ...);
static char	*proto_buf_finish(struct proto_buf *);
static int	 proto_fail(struct proto_in *, const char **, const char **,
		     const char *, const char *);
static int	 proto_get_int(const json_t *, const char *, int64_t, int64_t,
		     int64_t *);
static const char *proto_parse_msg(struct proto_in *);
static const char *proto_parse_ack(struct proto_in *);
static const char *proto_parse_history(struct proto_in *);
static const char *proto_parse_refresh(struct proto_in *);

static void
proto_buf_add(struct proto_buf *b, const void *p, size_t n)
{
	size_t	 want;

	if (n == 0)
		return;
	if (n > b->size - b->len) {
		want = b->size == 0 ? 128 : b->size;
		while (n > want - b->len) {
			if (want > SIZE_MAX / 2)
				fatalx("proto: string too long");
			want *= 2;
		}
		b->data = xreallocarray(b->data, 1, want);
		b->size = want;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static int
proto_buf_dump_cb(const char *p, size_t n, void *arg)
{
	proto_buf_add(arg, p, n);
	return (0);
}

/*
 * Pack a JSON value with jansson's json_pack format and append its compact
 * encoding.  Returns 0, or -1 if a string argument was NULL or not UTF-8.
 */
static int
proto_buf_pack(struct proto_buf *b, const char *fmt, ...)
{
	json_error_t	 err;
	json_t		*j;
	va_list		 ap;

	va_start(ap, fmt);
	j = json_vpack_ex(&err, 0, fmt, ap);
	va_end(ap);
	if (j == NULL) {
		if (json_error_code(&err) == json_error_out_of_memory)
			fatalx("proto: out of memory");
		return (-1);
	}
	if (json_dump_callback(j, proto_buf_dump_cb, b, PROTO_DUMP_FLAGS) != 0)
		fatalx("proto: json_dump_callback failed");
	json_decref(j);
	return (0);
}

/*
 * Append s (len bytes) as a JSON string, escaped as jansson does with
 * PROTO_DUMP_FLAGS: '"', '\\' and control characters only, UTF-8 kept.
 * The hot path (every message's tail) need not build a json_t for it.
 * Returns 0, or -1 if s is NULL or not UTF-8.
 */
static int
proto_buf_string(struct proto_buf *b, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const uint8_t		*p = (const uint8_t *)s;
	size_t			 i, run;
	char			 esc[6];

	if (s == NULL || !proto_utf8_valid(s, len))
		return (-1);
	proto_buf_add(b, "\"", 1);
	for (i = run = 0; i < len; i++) {
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		proto_buf_add(b, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (p[i]) {
		case '"':
		case '\\':
			esc[1] = p[i];
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[p[i] >> 4];
			esc[5] = hex[p[i] & 0xf];
			proto_buf_add(b, esc, 6);
			continue;
		}
		proto_buf_add(b, esc, 2);
	}
	proto_buf_add(b, s + run, len - run);
	proto_buf_add(b, "\"", 1);
	return (0);
}

static char *
proto_buf_finish(struct proto_buf *b)
{
	proto_buf_add(b, "", 1);
	return (b->data);
}

/*
 * Decode one client frame into in.  Returns 0, or -1 with *code and
 * *message set to static strings (bad_json, bad_type or bad_field); in is
 * then empty.  On success the caller calls proto_in_clear(in).
 */
int
proto_parse(const char *buf, size_t len, struct proto_in *in,
    const char **code, const char **message)
{
	json_error_t	 err;
	json_t		*type;
	const char	*name, *why;

	memset(in, 0, sizeof *in);
	in->before = -1;

	/* jansson checks this too; do not depend on its version for it. */
	if (!proto_utf8_valid(buf, len))
		return (proto_fail(in, code, message, "bad_json",
		    "invalid UTF-8"));
	in->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (in->root == NULL) {
		if (json_error_code(&err) == json_error_out_of_memory)
			fatalx("proto: out of memory");
		return (proto_fail(in, code, message, "bad_json",
		    "invalid JSON"));
	}
	if (!json_is_object(in->root))
		return (proto_fail(in, code, message, "bad_json",
		    "frame is not a JSON object"));

	type = json_object_get(in->root, "type");
	if (type == NULL)
		return (proto_fail(in, code, message, "bad_type",
		    "missing type"));
	if ((name = json_string_value(type)) == NULL)
		return (proto_fail(in, code, message, "bad_type",
		    "type is not a string"));
	if (strcmp(name, "msg") == 0)
		why = proto_parse_msg(in);
	else if (strcmp(name, "ack") == 0)
		why = proto_parse_ack(in);
	else if (strcmp(name, "history") == 0)
		why = proto_parse_history(in);
	else if (strcmp(name, "refresh") == 0)
		why = proto_parse_refresh(in);
	else
		return (proto_fail(in, code, message, "bad_type",
		    "unknown type"));
	if (why != NULL)
		return (proto_fail(in, code, message, "bad_field", why));
	return (0);
}

/* Release what proto_parse kept; in may be cleared twice. */
void
proto_in_clear(struct proto_in *in)
{
	json_decref(in->root);
	memset(in, 0, sizeof *in);
	in->before = -1;
}

static int
proto_fail(struct proto_in *in, const char **code, const char **message,
    const char *c, const char *m)
{
	proto_in_clear(in);
	*code = c;
	*message = m;
	return (-1);
}

/*
 * Read an optional integer member in [min, max].  Returns 0 (leaving *out
 * alone when key is absent), or -1 if it is not an integer in range.
 */
static int
proto_get_int(const json_t *root, const char *key, int64_t min, int64_t max,
    int64_t *out)
{
	json_t		*v;
	json_int_t	 n;

	if ((v = json_object_get(root, key)) == NULL)
		return (0);
	if (!json_is_integer(v))
		return (-1);
	n = json_integer_value(v);
	if (n < min || n > max)
		return (-1);
	*out = n;
	return (0);
}

/*
 * A client id (of a WebSocket msg or an HTTP publish) is stored and
 * echoed to other users: keep it short and printable.  Returns NULL if
 * good, else why not.
 */
const char *
proto_check_id(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i;

	if (len == 0)
		return ("empty id");
	if (len > RD_MSGID_MAX)
		return ("id longer than 64 bytes");
	for (i = 0; i < len; i++) {
		/* C0, DEL, and C1 (U+0080..U+009F, encoded C2 80..9F). */
		if (p[i] < 0x20 || p[i] == 0x7f)
			return ("id contains a control character");
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] <= 0x9f)
			return ("id contains a control character");
	}
	return (NULL);
}

static const char *
proto_parse_msg(struct proto_in *in)
{
	json_t		*v;
	const char	*why;
	size_t		 len;

	in->type = PROTO_MSG;
	v = json_object_get(in->root, "body");
	if (!json_is_string(v))
		return ("body is not a string");
	in->body = json_string_value(v);
	in->body_len = json_string_length(v);
	if (in->body_len == 0)
		return ("empty message");

	if ((v = json_object_get(in->root, "id")) == NULL)
		return (NULL);
	if (!json_is_string(v))
		return ("id is not a string");
	len = json_string_length(v);
	if ((why = proto_check_id(json_string_value(v), len)) != NULL)
		return (why);
	memcpy(in->id, json_string_value(v), len);
	in->id[len] = '\0';
	return (NULL);
}

static const char *
proto_parse_ack(struct proto_in *in)
{
	in->type = PROTO_ACK;
	in->seq = -1;
	if (proto_get_int(in->root, "seq", 0, INT64_MAX, &in->seq) != 0 ||
	    in->seq == -1)
		return ("seq is not a non-negative integer");
	return (NULL);
}

static const char *
proto_parse_history(struct proto_in *in)
{
	int64_t	 limit = 0;

	in->type = PROTO_HISTORY;
	if (proto_get_int(in->root, "before", 1, INT64_MAX, &in->before) != 0)
		return ("before is not a positive integer");
	if (proto_get_int(in->root, "limit", 1, PROTO_LIMIT_MAX, &limit) != 0)
		return ("limit is not an integer from 1 to 1000");
	in->limit = (int)limit;
	return (NULL);
}

static const char *
proto_parse_refresh(struct proto_in *in)
{
	json_t	*v;

	in->type = PROTO_REFRESH;
	v = json_object_get(in->root, "token");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return ("token is not a string");
	in->token = json_string_value(v);
	in->token_len = json_string_length(v);
	return (NULL);
}

/*
 * {"type":"welcome","chat":..,"user":..,"session":..,"epoch":..,"seq":N,
 * "window":W}.  Returns a string the caller frees, or NULL if a string is
 * NULL or not UTF-8.
 */
char *
proto_welcome(const char *chat, const char *user, const char *session,
    const char *epoch, int64_t seq, int window)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:s, s:s, s:s, s:s, s:I, s:i}",
	    "type", "welcome", "chat", chat, "user", user, "session", session,
	    "epoch", epoch, "seq", (json_int_t)seq, "window", window) != 0)
		return (NULL);
	return (proto_buf_finish(&b));
}

/*
 * {"type":"error","code":..,"message":..}.  Returns a string the caller
 * frees, or NULL if a string is NULL or not UTF-8.
 */
char *
proto_error(const char *code, const char *message)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:s, s:s}", "type", "error",
	    "code", code, "message", message) != 0)
		return (NULL);
	return (proto_buf_finish(&b));
}

/*
 * {"type":"error","code":..,"message":..,"id":..}: a refused msg, named
 * by its id so that the client knows which send to retry.  Returns a
 * string the caller frees, or NULL if a string is NULL or not UTF-8.
 */
char *
proto_error_id(const char *code, const char *message, const char *id)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:s, s:s, s:s}", "type", "error",
	    "code", code, "message", message, "id", id) != 0)
		return (NULL);
	return (proto_buf_finish(&b));
}

/*
 * {"type":"presence","event":..,"user":..}.  Returns a string the caller
 * frees, or NULL if a string is NULL or not UTF-8.
 */
char *
proto_presence(const char *event, const char *user)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:s, s:s}", "type", "presence",
	    "event", event, "user", user) != 0)
		return (NULL);
	return (proto_buf_finish(&b));
}

/*
 * {"type":"resumed","from":S,"to":T,"replayed":K,"complete":BOOL}.
 * Returns a string the caller frees; never NULL.
 */
char *
proto_resumed(int64_t from, int64_t to, int64_t replayed, int complete)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:I, s:I, s:I, s:b}", "type", "resumed",
	    "from", (json_int_t)from, "to", (json_int_t)to,
	    "replayed", (json_int_t)replayed, "complete", complete != 0) != 0)
		fatalx("proto: cannot pack resumed");
	return (proto_buf_finish(&b));
}

/*
 * The part of a message envelope before its seq: {"type":"msg","chat":C,
 * "seq": -- the seq is assigned later, in the store.  Returns a string the
 * caller frees, or NULL if chat is NULL or not UTF-8.
 */
char *
proto_msg_head(const char *chat)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:s}", "type", "msg", "chat", chat) != 0)
		return (NULL);
	RD_ASSERT(b.len > 0 && b.data[b.len - 1] == '}');
	b.len--;
	proto_buf_add(&b, ",\"seq\":", 7);
	return (proto_buf_finish(&b));
}

/*
 * The part of a message envelope after its seq: ,"id":I,"from":U,"ts":T,
 * "body":B}.  A NULL id is encoded as null.  head + seq + tail is one JSON
 * object.  Returns a string the caller frees, or NULL if from or body is
 * NULL or a string is not UTF-8.
 */
char *
proto_msg_tail(const char *id, const char *from, uint64_t ts,
    const char *body, size_t body_len)
{
	struct proto_buf	 b;
	char			 tmp[64];
	int			 n;

	memset(&b, 0, sizeof b);
	if (body == NULL || from == NULL)
		return (NULL);
	proto_buf_add(&b, ",\"id\":", 6);
	if (id == NULL)
		proto_buf_add(&b, "null", 4);
	else if (proto_buf_string(&b, id, strlen(id)) != 0)
		goto fail;
	proto_buf_add(&b, ",\"from\":", 8);
	if (proto_buf_string(&b, from, strlen(from)) != 0)
		goto fail;
	n = snprintf(tmp, sizeof tmp, ",\"ts\":%" PRIu64 ",\"body\":", ts);
	RD_ASSERT(n > 0 && (size_t)n < sizeof tmp);
	proto_buf_add(&b, tmp, n);
	if (proto_buf_string(&b, body, body_len) != 0)
		goto fail;
	proto_buf_add(&b, "}", 1);
	return (proto_buf_finish(&b));
fail:
	free(b.data);
	return (NULL);
}

/*
 * {"type":"history","messages":[E1,...]} where each Ei is an encoded
 * envelope inserted verbatim, not parsed again.  Returns a string the
 * caller frees; never NULL.
 */
char *
proto_history(const char **envelopes, size_t n)
{
	struct proto_buf	 b;
	size_t			 i;

	memset(&b, 0, sizeof b);
	proto_buf_add(&b, "{\"type\":\"history\",\"messages\":[", 30);
	for (i = 0; i < n; i++) {
		RD_ASSERT(envelopes[i] != NULL);
		if (i != 0)
			proto_buf_add(&b, ",", 1);
		proto_buf_add(&b, envelopes[i], strlen(envelopes[i]));
	}
	proto_buf_add(&b, "]}", 2);
	return (proto_buf_finish(&b));
}

/*
 * {"type":"refreshed","exp":N}: a refresh was accepted.  Returns a string
 * the caller frees; never NULL.
 */
char *
proto_refreshed(int64_t exp)
{
	struct proto_buf	 b;

	memset(&b, 0, sizeof b);
	if (proto_buf_pack(&b, "{s:s, s:I}", "type", "refreshed", "exp",
	    (json_int_t)exp) != 0)
		fatalx("proto_refreshed");
	return (proto_buf_finish(&b));
}

/*
 * Returns 1 if buf holds well-formed UTF-8 (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF, no truncated sequence),
 * else 0.  wslay checks text frames and close reasons itself; this
 * checks what racerd decodes and what it escapes into JSON.
 */
int
proto_utf8_valid(const void *buf, size_t len)
{
	const uint8_t	*p = buf;
	uint64_t	 w;
	size_t		 i = 0, k, n;
	uint8_t		 c, lo, hi;

	while (i < len) {
		/* Chat text is mostly ASCII: take eight bytes at a time. */
		if (len - i >= 8) {
			memcpy(&w, p + i, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				i += 8;
				continue;
			}
		}
		if ((c = p[i]) < 0x80) {
			i++;
			continue;
		}

		/* RFC 3629 §4: the second byte's range depends on the lead. */
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;	/* overlong */
			else if (c == 0xed)
				hi = 0x9f;	/* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;	/* overlong */
			else if (c == 0xf4)
				hi = 0x8f;	/* above U+10FFFF */
		} else
			return (0);	/* continuation, C0, C1, F5..FF */

		if (len - i - 1 < n)
			return (0);
		if (p[i + 1] < lo || p[i + 1] > hi)
			return (0);
		for (k = 2; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return (0);
		}
		i += n + 1;
	}
	return (1);
}

/*
 * Write an unmasked server frame header with FIN set for a payload of len
 * bytes (RFC 6455 §5.2).  Returns its length: 2, 4 or 10.
 */
size_t
proto_ws_header(uint8_t hdr[PROTO_WS_HDR_MAX], int opcode, size_t len)
{
	uint64_t	 v = len;
	int		 i;

	RD_ASSERT(opcode >= 0 && opcode <= 0xf);
	/* §5.5: control frames carry at most 125 bytes and are never split. */
	RD_ASSERT((opcode & 0x8) == 0 || len <= 125);

	hdr[0] = 0x80 | opcode;
	if (len <= 125) {
		hdr[1] = len;
		return (2);
	}
	if (len <= 0xffff) {
		hdr[1] = 126;
		hdr[2] = len >> 8;
		hdr[3] = len & 0xff;
		return (4);
	}
	/* §5.2: the most significant bit of a 64-bit length must be 0. */
	RD_ASSERT(v <= INT64_MAX);
	hdr[1] = 127;
	for (i = 0; i < 8; i++)
		hdr[2 + i] = (v >> (56 - 8 * i)) & 0xff;
	return (10);
}
