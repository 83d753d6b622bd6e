/* SPDX-License-Identifier: ISC */
/* racerd: HTTP/1.1 request layer -- types and prototypes. */
/*
 * Types shared by http.c and its callers (worker connections and the HTTP
 * endpoint handlers). Kept out of racerd.h so that only the modules that
 * speak HTTP see <http_parser.h>.
 */
#ifndef RACERD_HTTP_H
#define RACERD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

struct evbuffer;

#define HTTP_WS_ACCEPT_LEN	28	/* base64 of a SHA-1 digest */
#define HTTP_FIELD_MAX		32	/* longest header name we look at */

/* One request, filled in by the parser; all strings are NUL-terminated. */
struct http_req {
	enum http_method method;
	unsigned short	 http_major;
	unsigned short	 http_minor;

	char		*path;		/* raw, not decoded, never NULL */
	size_t		 path_len;
	char		*query;		/* raw, after '?'; NULL if no '?' */

	/* Singleton headers, trimmed; NULL when absent. */
	char		*host;
	char		*origin;
	char		*authorization;
	char		*content_type;
	char		*ws_key;	/* Sec-WebSocket-Key */
	char		*ws_version;	/* Sec-WebSocket-Version */
	char		*if_none_match;	/* If-None-Match, the first one */

	uint64_t	 content_length; /* if HTTP_REQ_CONTENT_LENGTH */
	char		*body;		/* NULL or body_len bytes + NUL */
	size_t		 body_len;

	int		 flags;
#define HTTP_REQ_KEEPALIVE	0x01	/* http_should_keep_alive() */
#define HTTP_REQ_UPGRADE_WS	0x02	/* Upgrade lists "websocket" */
#define HTTP_REQ_CONN_UPGRADE	0x04	/* Connection lists "upgrade" */
#define HTTP_REQ_CONTENT_LENGTH	0x08	/* Content-Length was sent */
#define HTTP_REQ_CHUNKED	0x10	/* body came chunked */
#define HTTP_REQ_EXPECT_CONTINUE 0x20	/* Expect: 100-continue */
#define HTTP_REQ_UPGRADE	0x40	/* what follows is another protocol */
};

/* A growable byte string capped by its owner. */
struct http_buf {
	char		*data;		/* NUL-terminated when non-NULL */
	size_t		 len;
	size_t		 size;
};

/* Incremental parser state for one connection. */
struct http_parse {
	http_parser	 parser;
	struct http_req	 req;

	size_t		 max_header;	/* request line + headers, bytes */
	size_t		 max_body;
	size_t		 header_bytes;	/* fed while the headers were open */
	int		 status;	/* HTTP status to answer; 0: no error */

	int		 state;
#define HTTP_PARSE_HEADERS_DONE	0x1
#define HTTP_PARSE_COMPLETE	0x2

	/* Header being assembled: http-parser hands out pieces. */
	int		 last;		/* enum http_last in http.c */
	char		 field[HTTP_FIELD_MAX + 1];
	size_t		 field_len;	/* HTTP_FIELD_MAX + 1: not ours */
	int		 field_id;	/* enum http_hdr in http.c */
	struct http_buf	 value;
	struct http_buf	 url;
	struct http_buf	 body;		/* moves to req when complete */
	int		 te_codings;	/* Transfer-Encoding codings seen */
	int		 te_chunked;	/* ... of which "chunked" */

	/*
	 * Our own view of the framing, checked byte by byte ahead of
	 * http-parser: every line ends with CRLF (a lone CR or LF is a 400)
	 * and the parser is never shown more than one message.
	 */
	int		 fr_state;	/* enum http_frame in http.c */
	int		 fr_cr;		/* the last byte was a CR */
	size_t		 fr_line;	/* bytes on the current line */
	size_t		 fr_lines;	/* non-empty lines in the head */
	int		 fr_hex;	/* still reading a chunk size */
	uint64_t	 fr_chunk;	/* chunk size, then data bytes left */
};

enum http_route {
	HTTP_ROUTE_OTHER,	/* static files or 404 */
	HTTP_ROUTE_WS,		/* /ws/{chat} */
	HTTP_ROUTE_MESSAGES,	/* /chats/{chat}/messages */
	HTTP_ROUTE_PRESENCE,	/* /chats/{chat}/presence */
	HTTP_ROUTE_HEALTHZ,	/* /healthz */
	HTTP_ROUTE_METRICS,	/* /metrics */
	HTTP_ROUTE_BAD_ID	/* a chat route with an invalid chat id: 400 */
};

/* http.c */
struct http_parse *http_parse_new(size_t, size_t);
void		 http_parse_free(struct http_parse *);
void		 http_parse_reset(struct http_parse *);
int		 http_parse_feed(struct http_parse *, const char *, size_t,
		     size_t *);
int		 http_parse_status(const struct http_parse *);
int		 http_parse_headers_done(const struct http_parse *);
const struct http_req *http_parse_req(const struct http_parse *);
int		 http_response(struct evbuffer *, int, const char *,
		     const char *, const void *, size_t, int);
int		 http_error(struct evbuffer *, int, const char *, const char *,
		     int);
int		 http_ws_accept(const char *, char [HTTP_WS_ACCEPT_LEN + 1]);
int		 http_ws_check(const struct http_req *, int *, const char **,
		     const char **);
int		 http_ws_response(struct evbuffer *, const char *,
		     const char *);
int		 http_valid_id(const char *, size_t, size_t);
enum http_route	 http_route(const char *, const char **, size_t *);
int		 http_decode(const char *, size_t, int, char *, size_t,
		     size_t *);
int		 http_query_get(const char *, const char *, char *, size_t,
		     size_t *);
int		 http_query_u64(const char *, const char *, uint64_t,
		     uint64_t *);

#endif
