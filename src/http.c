/* SPDX-License-Identifier: ISC */
/* racerd: HTTP/1.1 request layer. */
/*
 * Each worker connection feeds the bytes it reads to an http_parse until a
 * whole request is available, then either upgrades to WebSocket or answers
 * one of the HTTP endpoints and, on keep-alive, resets the parser for the
 * next request.  Parsing is done by http-parser; this module assembles the
 * pieces it hands out, enforces the size caps and the header rules racerd
 * relies on, and writes responses into an evbuffer.
 *
 * Invariants: no I/O and no process globals; every size that comes from
 * the client is capped before memory is allocated for it (request line
 * plus headers by max_header, the body by max_body).  The parser stops
 * right after a request, so bytes that follow it (a pipelined request or
 * the first WebSocket frames) stay with the caller.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <nettle/sha1.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"

/* RFC 6455 §1.3: appended to Sec-WebSocket-Key before hashing. */
#define HTTP_WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HTTP_WS_KEY_LEN	24	/* base64 of a 16-byte nonce */
#define HTTP_WS_NONCE	16

/* Which callback ran last: http-parser splits names and values. */
enum http_last {
	HTTP_LAST_NONE,
	HTTP_LAST_FIELD,
	HTTP_LAST_VALUE
};

/*
 * Where http_frame_scan() is in a message.  http-parser is lenient about
 * line ends (a lone LF or CR ends a line, the two bytes after chunk data
 * may be anything); a proxy in front may frame the same bytes otherwise,
 * which is request smuggling.  So racerd reads the framing once more,
 * strictly, and refuses what is not CRLF.
 */
enum http_frame {
	HTTP_FRAME_HEAD,	/* request line and header lines */
	HTTP_FRAME_HEAD_END,	/* the empty line ending them was seen */
	HTTP_FRAME_BODY,	/* Content-Length body: http-parser counts */
	HTTP_FRAME_CHUNK_SIZE,	/* chunk-size [; ext] CRLF */
	HTTP_FRAME_CHUNK_DATA,	/* fr_chunk bytes of data */
	HTTP_FRAME_CHUNK_CRLF,	/* the CRLF after chunk data */
	HTTP_FRAME_TRAILER,	/* trailer lines, then an empty line */
	HTTP_FRAME_DONE		/* the message ends here */
};

/* The headers racerd reads; all others are skipped without copying. */
enum http_hdr {
	HTTP_HDR_OTHER,
	HTTP_HDR_HOST,
	HTTP_HDR_ORIGIN,
	HTTP_HDR_AUTHORIZATION,
	HTTP_HDR_CONTENT_TYPE,
	HTTP_HDR_WS_KEY,
	HTTP_HDR_WS_VERSION,
	HTTP_HDR_UPGRADE,
	HTTP_HDR_CONNECTION,
	HTTP_HDR_TRANSFER_ENCODING,
	HTTP_HDR_EXPECT,
	HTTP_HDR_IF_NONE_MATCH
};

static const struct {
	const char	*name;		/* lower case */
	enum http_hdr	 id;
} http_hdrs[] = {
	{ "host", HTTP_HDR_HOST },
	{ "origin", HTTP_HDR_ORIGIN },
	{ "authorization", HTTP_HDR_AUTHORIZATION },
	{ "content-type", HTTP_HDR_CONTENT_TYPE },
	{ "sec-websocket-key", HTTP_HDR_WS_KEY },
	{ "sec-websocket-version", HTTP_HDR_WS_VERSION },
	{ "upgrade", HTTP_HDR_UPGRADE },
	{ "connection", HTTP_HDR_CONNECTION },
	{ "transfer-encoding", HTTP_HDR_TRANSFER_ENCODING },
	{ "expect", HTTP_HDR_EXPECT },
	{ "if-none-match", HTTP_HDR_IF_NONE_MATCH }
};

static int	http_on_url(http_parser *, const char *, size_t);
static int	http_on_header_field(http_parser *, const char *, size_t);
static int	http_on_header_value(http_parser *, const char *, size_t);
static int	http_on_headers_complete(http_parser *);
static int	http_on_body(http_parser *, const char *, size_t);
static int	http_on_message_complete(http_parser *);
static int	http_unhex(char);

static const http_parser_settings http_settings = {
	.on_url = http_on_url,
	.on_header_field = http_on_header_field,
	.on_header_value = http_on_header_value,
	.on_headers_complete = http_on_headers_complete,
	.on_body = http_on_body,
	.on_message_complete = http_on_message_complete
};

static char
http_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A' + 'a');
	return (c);
}

/* RFC 7230 §3.2.6 tchar: what a header name may be made of. */
static int
http_is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return (1);
	return (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
http_is_idchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return (1);
	return (c == '.' || c == '_' || c == ':' || c == '-');
}

/* Case-insensitive comparison of s[0..len) with a lower-case literal. */
static int
http_token_is(const char *s, size_t len, const char *lit)
{
	size_t	 i;

	if (strlen(lit) != len)
		return (0);
	for (i = 0; i < len; i++) {
		if (http_lower(s[i]) != lit[i])
			return (0);
	}
	return (1);
}

/* Strip optional whitespace (SP, HTAB) from both ends. */
static void
http_trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/*
 * Step through a comma-separated list (RFC 7230 §7), skipping empty
 * elements. Returns 1 with the trimmed element, or 0 at the end.
 */
static int
http_list_next(const char **s, const char *end, const char **tok,
    size_t *toklen)
{
	const char	*comma;

	while (*s < end) {
		comma = memchr(*s, ',', end - *s);
		if (comma == NULL)
			comma = end;
		*tok = *s;
		*toklen = comma - *s;
		*s = comma == end ? end : comma + 1;
		http_trim(tok, toklen);
		if (*toklen != 0)
			return (1);
	}
	return (0);
}

static int
http_list_has(const char *s, size_t len, const char *lit)
{
	const char	*end = s + len, *tok;
	size_t		 toklen;

	while (http_list_next(&s, end, &tok, &toklen)) {
		if (http_token_is(tok, toklen, lit))
			return (1);
	}
	return (0);
}

static char *
http_strndup(struct http_parse *p, const char *s, size_t len)
{
	char	*d;

	if ((d = malloc(len + 1)) == NULL) {
		p->status = 500;
		return (NULL);
	}
	memcpy(d, s, len);
	d[len] = '\0';
	return (d);
}

/*
 * Append to b, keeping it NUL-terminated and at most max bytes long. On
 * overflow sets the parse status to toolarge; on allocation failure, 500.
 */
static int
http_buf_add(struct http_parse *p, struct http_buf *b, const char *data,
    size_t len, size_t max, int toolarge)
{
	size_t	 need, size;
	char	*d;

	if (len > max - b->len) {
		p->status = toolarge;
		return (-1);
	}
	need = b->len + len + 1;
	if (need > b->size) {
		size = b->size == 0 ? 256 : b->size;
		while (size < need)
			size *= 2;
		if (size > max + 1)
			size = max + 1;
		if ((d = realloc(b->data, size)) == NULL) {
			p->status = 500;
			return (-1);
		}
		b->data = d;
		b->size = size;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return (0);
}

static void
http_buf_free(struct http_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

static void
http_req_clear(struct http_req *r)
{
	free(r->path);
	free(r->query);
	free(r->host);
	free(r->origin);
	free(r->authorization);
	free(r->content_type);
	free(r->ws_key);
	free(r->ws_version);
	free(r->if_none_match);
	free(r->body);
	memset(r, 0, sizeof *r);
}

static enum http_hdr
http_header_id(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < nitems(http_hdrs); i++) {
		if (http_token_is(name, len, http_hdrs[i].name))
			return (http_hdrs[i].id);
	}
	return (HTTP_HDR_OTHER);
}

/* Collect Transfer-Encoding codings; only a lone "chunked" is served. */
static void
http_header_te(struct http_parse *p, const char *v, size_t len)
{
	const char	*end = v + len, *tok;
	size_t		 toklen;

	while (http_list_next(&v, end, &tok, &toklen)) {
		p->te_codings++;
		if (http_token_is(tok, toklen, "chunked"))
			p->te_chunked++;
	}
}

/*
 * A header value is complete: store or interpret it. Singleton headers
 * that repeat are refused (RFC 6455 §11.3.1, RFC 7230 §5.4) rather than
 * guessing which copy another hop would have used.
 */
static int
http_header_end(struct http_parse *p)
{
	struct http_req	*r = &p->req;
	const char	*v = p->value.data != NULL ? p->value.data : "";
	size_t		 len = p->value.len;
	char		**slot;

	http_trim(&v, &len);
	switch (p->field_id) {
	case HTTP_HDR_OTHER:
		return (0);
	case HTTP_HDR_UPGRADE:
		if (http_list_has(v, len, "websocket"))
			r->flags |= HTTP_REQ_UPGRADE_WS;
		return (0);
	case HTTP_HDR_CONNECTION:
		if (http_list_has(v, len, "upgrade"))
			r->flags |= HTTP_REQ_CONN_UPGRADE;
		return (0);
	case HTTP_HDR_TRANSFER_ENCODING:
		http_header_te(p, v, len);
		return (0);
	case HTTP_HDR_EXPECT:
		if (!http_token_is(v, len, "100-continue")) {
			p->status = 417;
			return (-1);
		}
		r->flags |= HTTP_REQ_EXPECT_CONTINUE;
		return (0);
	case HTTP_HDR_HOST:
		slot = &r->host;
		break;
	case HTTP_HDR_ORIGIN:
		slot = &r->origin;
		break;
	case HTTP_HDR_AUTHORIZATION:
		slot = &r->authorization;
		break;
	case HTTP_HDR_CONTENT_TYPE:
		slot = &r->content_type;
		break;
	case HTTP_HDR_WS_KEY:
		slot = &r->ws_key;
		break;
	case HTTP_HDR_WS_VERSION:
		slot = &r->ws_version;
		break;
	case HTTP_HDR_IF_NONE_MATCH:
		/* A list header (RFC 7232 §3.2): a repeat is no error. */
		if (r->if_none_match != NULL)
			return (0);
		slot = &r->if_none_match;
		break;
	default:
		return (0);
	}
	if (*slot != NULL) {
		p->status = 400;
		return (-1);
	}
	if ((*slot = http_strndup(p, v, len)) == NULL)
		return (-1);
	return (0);
}

static int
http_on_url(http_parser *hp, const char *at, size_t len)
{
	struct http_parse	*p = hp->data;

	return (http_buf_add(p, &p->url, at, len, p->max_header, 431));
}

static int
http_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct http_parse	*p = hp->data;
	size_t			 i;

	/* Trailers of a chunked body are not used: skip them. */
	if (p->state & HTTP_PARSE_HEADERS_DONE)
		return (0);
	if (p->last == HTTP_LAST_VALUE && http_header_end(p) != 0)
		return (-1);
	if (p->last != HTTP_LAST_FIELD)
		p->field_len = 0;
	p->last = HTTP_LAST_FIELD;

	/* This http-parser build is lenient: it lets "Host :" through. */
	for (i = 0; i < len; i++) {
		if (!http_is_tchar(at[i])) {
			p->status = 400;
			return (-1);
		}
		if (p->field_len < HTTP_FIELD_MAX)
			p->field[p->field_len++] = http_lower(at[i]);
		else
			p->field_len = HTTP_FIELD_MAX + 1;
	}
	return (0);
}

static int
http_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct http_parse	*p = hp->data;

	if (p->state & HTTP_PARSE_HEADERS_DONE)
		return (0);
	if (p->last != HTTP_LAST_VALUE) {
		p->field_id = HTTP_HDR_OTHER;
		if (p->field_len <= HTTP_FIELD_MAX)
			p->field_id = http_header_id(p->field, p->field_len);
		p->value.len = 0;
	}
	p->last = HTTP_LAST_VALUE;
	if (p->field_id == HTTP_HDR_OTHER)
		return (0);
	return (http_buf_add(p, &p->value, at, len, p->max_header, 431));
}

/* Split the request-target into path and query (origin or absolute form). */
static int
http_url_split(struct http_parse *p)
{
	struct http_req		*r = &p->req;
	struct http_parser_url	 u;
	const char		*path = "";
	size_t			 len = 0;

	/* struct http_parser_url holds 16-bit offsets. */
	if (p->url.len == 0 || p->url.len > UINT16_MAX) {
		p->status = p->url.len == 0 ? 400 : 431;
		return (-1);
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(p->url.data, p->url.len,
	    r->method == HTTP_CONNECT, &u) != 0) {
		p->status = 400;
		return (-1);
	}
	if (u.field_set & (1 << UF_PATH)) {
		path = p->url.data + u.field_data[UF_PATH].off;
		len = u.field_data[UF_PATH].len;
	} else if (u.field_set & (1 << UF_SCHEMA)) {
		path = "/";	/* RFC 7230 §5.3.2: empty path is "/" */
		len = 1;
	}
	if ((r->path = http_strndup(p, path, len)) == NULL)
		return (-1);
	r->path_len = len;
	if (u.field_set & (1 << UF_QUERY)) {
		r->query = http_strndup(p,
		    p->url.data + u.field_data[UF_QUERY].off,
		    u.field_data[UF_QUERY].len);
		if (r->query == NULL)
			return (-1);
	}
	return (0);
}

static int
http_on_headers_complete(http_parser *hp)
{
	struct http_parse	*p = hp->data;
	struct http_req		*r = &p->req;

	if (p->last == HTTP_LAST_VALUE && http_header_end(p) != 0)
		return (-1);
	p->last = HTTP_LAST_NONE;
	http_buf_free(&p->value);

	r->method = hp->method;
	r->http_major = hp->http_major;
	r->http_minor = hp->http_minor;
	if (http_url_split(p) != 0)
		return (-1);
	http_buf_free(&p->url);

	/* RFC 7230 §3.3.1: a coding we do not understand gets 501. */
	if (p->te_codings != 0) {
		if (p->te_codings != 1 || p->te_chunked != 1) {
			p->status = 501;
			return (-1);
		}
		r->flags |= HTTP_REQ_CHUNKED;
	}
	if (hp->flags & F_CONTENTLENGTH) {
		r->flags |= HTTP_REQ_CONTENT_LENGTH;
		r->content_length = hp->content_length;
		if (r->content_length > p->max_body) {
			p->status = 413;
			return (-1);
		}
	}
	if (hp->upgrade)
		r->flags |= HTTP_REQ_UPGRADE;
	p->state |= HTTP_PARSE_HEADERS_DONE;
	return (0);
}

static int
http_on_body(http_parser *hp, const char *at, size_t len)
{
	struct http_parse	*p = hp->data;

	return (http_buf_add(p, &p->body, at, len, p->max_body, 413));
}

static int
http_on_message_complete(http_parser *hp)
{
	struct http_parse	*p = hp->data;
	struct http_req		*r = &p->req;

	r->body = p->body.data;
	r->body_len = p->body.len;
	memset(&p->body, 0, sizeof p->body);
	if (http_should_keep_alive(hp))
		r->flags |= HTTP_REQ_KEEPALIVE;
	if (hp->upgrade)
		r->flags |= HTTP_REQ_UPGRADE;
	p->state |= HTTP_PARSE_COMPLETE;

	/* Stop here: what follows is the next request or WebSocket data. */
	http_parser_pause(hp, 1);
	return (0);
}

/* A line of the message ended (its CRLF was seen). Returns 1 at its end. */
static int
http_frame_eol(struct http_parse *p)
{
	size_t	 line = p->fr_line;

	p->fr_line = 0;
	switch (p->fr_state) {
	case HTTP_FRAME_HEAD:
		/* RFC 7230 §3.5: empty lines before the request line. */
		if (line != 0) {
			p->fr_lines++;
			return (0);
		}
		if (p->fr_lines == 0)
			return (0);
		p->fr_state = HTTP_FRAME_HEAD_END;
		return (1);
	case HTTP_FRAME_CHUNK_SIZE:
		p->fr_hex = 0;
		if (p->fr_chunk == 0)
			p->fr_state = HTTP_FRAME_TRAILER;
		else
			p->fr_state = HTTP_FRAME_CHUNK_DATA;
		return (0);
	case HTTP_FRAME_CHUNK_CRLF:
		p->fr_state = HTTP_FRAME_CHUNK_SIZE;
		p->fr_hex = 1;
		p->fr_chunk = 0;
		return (0);
	case HTTP_FRAME_TRAILER:
		if (line != 0)
			return (0);
		p->fr_state = HTTP_FRAME_DONE;
		return (1);
	default:
		return (0);
	}
}

/* One byte of a line (not CR or LF). Returns 0, or -1 if it is refused. */
static int
http_frame_byte(struct http_parse *p, char ch)
{
	int	 v;

	switch (p->fr_state) {
	case HTTP_FRAME_CHUNK_CRLF:
		return (-1);
	case HTTP_FRAME_HEAD:
	case HTTP_FRAME_TRAILER:
		/* RFC 7230 §3.2.4: obs-fold may be refused with a 400. */
		if (p->fr_line == 0 && (ch == ' ' || ch == '\t') &&
		    (p->fr_lines > 0 || p->fr_state == HTTP_FRAME_TRAILER))
			return (-1);
		break;
	case HTTP_FRAME_CHUNK_SIZE:
		if (p->fr_hex && (v = http_unhex(ch)) != -1) {
			if (p->fr_chunk > p->max_body) {
				p->status = 413;
				return (-1);
			}
			p->fr_chunk = p->fr_chunk * 16 + v;
		} else
			p->fr_hex = 0;
		break;
	default:
		break;
	}
	p->fr_line++;
	return (0);
}

/*
 * Check the framing of the n bytes at buf that are about to be fed to
 * http-parser. Returns how many of them may be fed: all, or fewer when
 * the head or the message ends inside them. Returns (size_t)-1 with the
 * status set (400 unless already set) if a line does not end with CRLF.
 */
static size_t
http_frame_scan(struct http_parse *p, const char *buf, size_t n)
{
	size_t	 i, k;

	for (i = 0; i < n; i++) {
		switch (p->fr_state) {
		case HTTP_FRAME_BODY:
			return (n);
		case HTTP_FRAME_HEAD_END:
		case HTTP_FRAME_DONE:
			return (i);
		case HTTP_FRAME_CHUNK_DATA:
			k = n - i;
			if (k > p->fr_chunk)
				k = p->fr_chunk;
			p->fr_chunk -= k;
			i += k - 1;
			if (p->fr_chunk == 0)
				p->fr_state = HTTP_FRAME_CHUNK_CRLF;
			continue;
		default:
			break;
		}
		if (p->fr_cr) {
			p->fr_cr = 0;
			if (buf[i] != '\n')
				goto bad;
			if (http_frame_eol(p))
				return (i + 1);
		} else if (buf[i] == '\r')
			p->fr_cr = 1;
		else if (buf[i] == '\n' || http_frame_byte(p, buf[i]) != 0)
			goto bad;
	}
	return (n);

bad:
	if (p->status == 0)
		p->status = 400;
	return ((size_t)-1);
}

static void
http_parse_init(struct http_parse *p, size_t max_header, size_t max_body)
{
	memset(p, 0, sizeof *p);
	p->max_header = max_header;
	p->max_body = max_body;
	http_parser_init(&p->parser, HTTP_REQUEST);
	p->parser.data = p;
}

/*
 * Create a parser that refuses a request line plus headers longer than
 * max_header bytes (431) or a body longer than max_body bytes (413).
 * Returns NULL if out of memory. The caller frees it with
 * http_parse_free().
 */
struct http_parse *
http_parse_new(size_t max_header, size_t max_body)
{
	struct http_parse	*p;

	if ((p = malloc(sizeof *p)) == NULL)
		return (NULL);
	http_parse_init(p, max_header, max_body);
	return (p);
}

/* Free a parser and the request it holds; NULL is allowed. */
void
http_parse_free(struct http_parse *p)
{
	if (p == NULL)
		return;
	http_parse_reset(p);
	free(p);
}

/*
 * Forget the current request (invalidating pointers into it) and get
 * ready for the next one on a keep-alive connection.
 */
void
http_parse_reset(struct http_parse *p)
{
	http_req_clear(&p->req);
	http_buf_free(&p->value);
	http_buf_free(&p->url);
	http_buf_free(&p->body);
	http_parse_init(p, p->max_header, p->max_body);
}

/*
 * After a feed: where the framing goes next. The head or a chunked body
 * ended by our reading must have ended by http-parser's too, else the
 * two disagree and the request is refused. Returns 0, or -1 (400).
 */
static int
http_frame_next(struct http_parse *p)
{
	switch (p->fr_state) {
	case HTTP_FRAME_HEAD_END:
		if (!(p->state & HTTP_PARSE_HEADERS_DONE))
			break;
		if (p->req.flags & HTTP_REQ_CHUNKED) {
			p->fr_state = HTTP_FRAME_CHUNK_SIZE;
			p->fr_hex = 1;
			p->fr_chunk = 0;
		} else
			p->fr_state = HTTP_FRAME_BODY;
		return (0);
	case HTTP_FRAME_DONE:
		break;
	default:
		if (p->state & HTTP_PARSE_HEADERS_DONE &&
		    p->fr_state == HTTP_FRAME_HEAD)
			break;
		return (0);
	}
	p->status = 400;
	return (-1);
}

static int
http_errno_status(enum http_errno e)
{
	switch (e) {
	case HPE_HEADER_OVERFLOW:
		return (431);
	default:
		return (400);
	}
}

/*
 * Feed len bytes read from the client. Returns 1 when a whole request is
 * available (http_parse_req()), with *consumed the bytes that belong to
 * it: the rest is the next request or WebSocket data and is not looked
 * at. Returns 0 when all len bytes were consumed and more are needed, or
 * -1 on a bad request, with http_parse_status() the status to answer
 * (400, 413, 417, 431, 500 or 501); the connection must then be closed.
 */
int
http_parse_feed(struct http_parse *p, const char *buf, size_t len,
    size_t *consumed)
{
	size_t	 off = 0, n, used;
	int	 open;

	*consumed = 0;
	if (p->status != 0)
		return (-1);
	if (p->state & HTTP_PARSE_COMPLETE)
		return (1);
	while (off < len) {
		n = len - off;
		open = !(p->state & HTTP_PARSE_HEADERS_DONE);
		if (open) {
			/* Never show http-parser more header than allowed. */
			if (p->header_bytes >= p->max_header) {
				p->status = 431;
				return (-1);
			}
			if (n > p->max_header - p->header_bytes)
				n = p->max_header - p->header_bytes;
		}
		if ((n = http_frame_scan(p, buf + off, n)) == (size_t)-1)
			return (-1);
		used = http_parser_execute(&p->parser, &http_settings,
		    buf + off, n);
		if (open)
			p->header_bytes += used;
		off += used;
		*consumed = off;
		if (p->state & HTTP_PARSE_COMPLETE)
			return (1);
		if (HTTP_PARSER_ERRNO(&p->parser) != HPE_OK || used != n) {
			if (p->status == 0) {
				p->status = http_errno_status(
				    HTTP_PARSER_ERRNO(&p->parser));
			}
			return (-1);
		}
		if (http_frame_next(p) != 0)
			return (-1);
	}
	return (0);
}

/* Returns the status to answer after http_parse_feed() failed, else 0. */
int
http_parse_status(const struct http_parse *p)
{
	return (p->status);
}

/*
 * Returns 1 once the request line and headers are in (the request may
 * still lack its body: see HTTP_REQ_EXPECT_CONTINUE), else 0.
 */
int
http_parse_headers_done(const struct http_parse *p)
{
	return (p->status == 0 && (p->state & HTTP_PARSE_HEADERS_DONE));
}

/*
 * Returns the request once its headers are in, or NULL. The request is
 * borrowed: it lives until http_parse_reset() or http_parse_free().
 */
const struct http_req *
http_parse_req(const struct http_parse *p)
{
	if (!http_parse_headers_done(p))
		return (NULL);
	return (&p->req);
}

/*
 * Append a whole response to out: status line, Content-Type (when
 * content_type is not NULL), Content-Length, Connection, the extra
 * headers (each "Name: value\r\n", or NULL) and len bytes of body. An
 * informational (1xx) status gets only the extra headers. Returns 0, or
 * -1 if the evbuffer could not grow.
 */
int
http_response(struct evbuffer *out, int status, const char *extra,
    const char *content_type, const void *body, size_t len, int keep_alive)
{
	int	 nobody;

	if (extra == NULL)
		extra = "";
	if (evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status,
	    http_status_str(status)) < 0)
		return (-1);
	if (status >= 100 && status < 200)
		return (evbuffer_add_printf(out, "%s\r\n", extra) < 0 ? -1 : 0);

	/* RFC 7230 §3.3: no body and no length for 204 and 304. */
	nobody = (status == 204 || status == 304);
	if (content_type != NULL && !nobody &&
	    evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type) < 0)
		return (-1);
	if (!nobody &&
	    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len) < 0)
		return (-1);
	if (evbuffer_add_printf(out, "Connection: %s\r\n%s\r\n",
	    keep_alive ? "keep-alive" : "close", extra) < 0)
		return (-1);
	if (!nobody && len != 0 && evbuffer_add(out, body, len) != 0)
		return (-1);
	return (0);
}

/*
 * Append an error response whose body is {"error":message} as JSON (the
 * reason phrase if message is NULL or not UTF-8). Returns 0, or -1 if out
 * of memory.
 */
int
http_error(struct evbuffer *out, int status, const char *message,
    const char *extra, int keep_alive)
{
	json_t	*json = NULL;
	char	*s;
	int	 rv;

	if (message != NULL)
		json = json_pack("{s:s}", "error", message);
	if (json == NULL)
		json = json_pack("{s:s}", "error", http_status_str(status));
	if (json == NULL)
		return (-1);
	s = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	if (s == NULL)
		return (-1);
	rv = http_response(out, status, extra, "application/json", s,
	    strlen(s), keep_alive);
	free(s);
	return (rv);
}

/*
 * Compute Sec-WebSocket-Accept for key (RFC 6455 §4.2.2 step 5.4) into
 * out, NUL-terminated. Returns 0, or -1 if key is not the base64 of a
 * 16-byte nonce (§4.1: exactly 24 characters).
 */
int
http_ws_accept(const char *key, char out[HTTP_WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx	 ctx;
	uint8_t		 digest[SHA1_DIGEST_SIZE];
	unsigned char	 nonce[HTTP_WS_NONCE];
	size_t		 nonce_len;

	if (key == NULL || strnlen(key, HTTP_WS_KEY_LEN + 1) != HTTP_WS_KEY_LEN)
		return (-1);
	if (sodium_base642bin(nonce, sizeof nonce, key, HTTP_WS_KEY_LEN, NULL,
	    &nonce_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    nonce_len != sizeof nonce)
		return (-1);

	sha1_init(&ctx);
	sha1_update(&ctx, HTTP_WS_KEY_LEN, (const uint8_t *)key);
	sha1_update(&ctx, strlen(HTTP_WS_GUID), (const uint8_t *)HTTP_WS_GUID);
	sha1_digest(&ctx, sizeof digest, digest);
	if (sodium_bin2base64(out, HTTP_WS_ACCEPT_LEN + 1, digest,
	    sizeof digest, sodium_base64_VARIANT_ORIGINAL) == NULL)
		return (-1);
	return (0);
}

static int
http_ws_fail(int *status, const char **message, const char **extra, int s,
    const char *m, const char *e)
{
	*status = s;
	*message = m;
	*extra = e;
	return (-1);
}

/*
 * Check that req is a WebSocket opening handshake racerd can accept
 * (RFC 6455 §4.2.1). Returns 0 if so, or -1 with *status, *message (for
 * http_error) and *extra (extra headers, or NULL) filled in.
 */
int
http_ws_check(const struct http_req *req, int *status, const char **message,
    const char **extra)
{
	const int	 upgrade = HTTP_REQ_UPGRADE_WS|HTTP_REQ_CONN_UPGRADE;
	char		 accept[HTTP_WS_ACCEPT_LEN + 1];

	if (req->method != HTTP_GET) {
		return (http_ws_fail(status, message, extra, 405,
		    "method not allowed", "Allow: GET\r\n"));
	}
	if ((req->flags & upgrade) != upgrade) {
		return (http_ws_fail(status, message, extra, 426,
		    "websocket upgrade required", "Upgrade: websocket\r\n"));
	}
	if (req->http_major < 1 || (req->http_major == 1 &&
	    req->http_minor < 1)) {
		return (http_ws_fail(status, message, extra, 400,
		    "websocket requires HTTP/1.1", NULL));
	}
	if (req->host == NULL) {
		return (http_ws_fail(status, message, extra, 400,
		    "missing Host header", NULL));
	}
	if (req->ws_version == NULL || strcmp(req->ws_version, "13") != 0) {
		return (http_ws_fail(status, message, extra, 426,
		    "unsupported websocket version",
		    "Sec-WebSocket-Version: 13\r\n"));
	}
	if (http_ws_accept(req->ws_key, accept) != 0) {
		return (http_ws_fail(status, message, extra, 400,
		    "invalid Sec-WebSocket-Key", NULL));
	}
	return (0);
}

/*
 * Append the 101 response that completes the handshake for key, with
 * extra headers (or NULL). Returns 0, or -1 if key is invalid or the
 * evbuffer could not grow.
 */
int
http_ws_response(struct evbuffer *out, const char *key, const char *extra)
{
	char	 accept[HTTP_WS_ACCEPT_LEN + 1];

	if (http_ws_accept(key, accept) != 0)
		return (-1);
	if (evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept,
	    extra != NULL ? extra : "") < 0)
		return (-1);
	return (0);
}

/*
 * Returns 1 if s[0..len) is a valid chat or user id: 1 to max bytes of
 * [A-Za-z0-9._:-], and not "." or "..". Returns 0 otherwise.
 */
int
http_valid_id(const char *s, size_t len, size_t max)
{
	size_t	 i;

	if (s == NULL || len == 0 || len > max)
		return (0);
	if (s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.')))
		return (0);
	for (i = 0; i < len; i++) {
		if (!http_is_idchar(s[i]))
			return (0);
	}
	return (1);
}

static enum http_route
http_route_chat(const char *s, size_t len, enum http_route route,
    const char **chat, size_t *chat_len)
{
	*chat = s;
	*chat_len = len;
	if (!http_valid_id(s, len, RD_CHAT_MAX))
		return (HTTP_ROUTE_BAD_ID);
	return (route);
}

/*
 * Classify a raw (undecoded) path. For the chat routes, *chat and
 * *chat_len point at the chat segment inside path; HTTP_ROUTE_BAD_ID
 * means a chat route whose segment is not a valid id (the caller answers
 * 400). Everything else is HTTP_ROUTE_OTHER (static files or 404).
 */
enum http_route
http_route(const char *path, const char **chat, size_t *chat_len)
{
	static const char	 messages[] = "/messages";
	static const char	 presence[] = "/presence";
	const char		*rest;
	size_t			 len, sl = sizeof messages - 1;

	*chat = NULL;
	*chat_len = 0;
	if (path == NULL)
		return (HTTP_ROUTE_OTHER);
	if (strcmp(path, "/healthz") == 0)
		return (HTTP_ROUTE_HEALTHZ);
	if (strcmp(path, "/metrics") == 0)
		return (HTTP_ROUTE_METRICS);
	if (strncmp(path, "/ws/", 4) == 0) {
		rest = path + 4;
		return (http_route_chat(rest, strlen(rest), HTTP_ROUTE_WS,
		    chat, chat_len));
	}
	if (strncmp(path, "/chats/", 7) != 0)
		return (HTTP_ROUTE_OTHER);
	rest = path + 7;
	len = strlen(rest);
	if (len >= sl && memcmp(rest + len - sl, messages, sl) == 0) {
		return (http_route_chat(rest, len - sl, HTTP_ROUTE_MESSAGES,
		    chat, chat_len));
	}
	if (len >= sl && memcmp(rest + len - sl, presence, sl) == 0) {
		return (http_route_chat(rest, len - sl, HTTP_ROUTE_PRESENCE,
		    chat, chat_len));
	}
	return (HTTP_ROUTE_OTHER);
}

static int
http_unhex(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	c = http_lower(c);
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	return (-1);
}

/*
 * Percent-decode s[0..len) into out (outlen bytes, NUL-terminated), with
 * '+' as a space if plus is set (query strings). The result may hold NUL
 * bytes: *outl (if not NULL) gives its length. Returns 0, or -1 on a
 * malformed escape or if out is too small.
 */
int
http_decode(const char *s, size_t len, int plus, char *out, size_t outlen,
    size_t *outl)
{
	size_t	 i, o = 0;
	int	 hi, lo;

	for (i = 0; i < len; i++) {
		if (o + 1 >= outlen)
			return (-1);
		if (s[i] == '%') {
			if (len - i < 3)
				return (-1);
			hi = http_unhex(s[i + 1]);
			lo = http_unhex(s[i + 2]);
			if (hi == -1 || lo == -1)
				return (-1);
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '+' && plus)
			out[o++] = ' ';
		else
			out[o++] = s[i];
	}
	if (outlen == 0)
		return (-1);
	out[o] = '\0';
	if (outl != NULL)
		*outl = o;
	return (0);
}

/*
 * Look up the first name=value pair of a raw query string (NULL allowed)
 * and decode its value into out as http_decode() does; "name" without
 * '=' has an empty value. Names are matched byte for byte, undecoded.
 * Returns 1 if found, 0 if absent, or -1 if the value is malformed or
 * does not fit.
 */
int
http_query_get(const char *query, const char *name, char *out,
    size_t outlen, size_t *len)
{
	const char	*s = query, *amp, *eq, *v;
	size_t		 nlen, elen, vlen;

	if (query == NULL)
		return (0);
	nlen = strlen(name);
	for (;;) {
		amp = strchr(s, '&');
		elen = amp != NULL ? (size_t)(amp - s) : strlen(s);
		eq = memchr(s, '=', elen);
		if ((eq != NULL ? (size_t)(eq - s) : elen) == nlen &&
		    memcmp(s, name, nlen) == 0) {
			v = eq != NULL ? eq + 1 : s + elen;
			vlen = elen - (v - s);
			if (http_decode(v, vlen, 1, out, outlen, len) != 0)
				return (-1);
			return (1);
		}
		if (amp == NULL)
			return (0);
		s = amp + 1;
	}
}

/*
 * Look up an unsigned decimal query parameter of at most max: digits only,
 * after decoding.  Returns 1 with *out set, 0 if absent, or -1 if bad.
 */
int
http_query_u64(const char *query, const char *name, uint64_t max,
    uint64_t *out)
{
	char		 buf[32], *end;
	size_t		 len;
	uint64_t	 v;
	int		 rc;

	rc = http_query_get(query, name, buf, sizeof buf, &len);
	if (rc != 1)
		return (rc);
	if (len == 0 || strlen(buf) != len || buf[0] < '0' || buf[0] > '9')
		return (-1);
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return (-1);
	*out = v;
	return (1);
}
