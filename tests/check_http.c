/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for http.c. */
/*
 * Requests are fed as scripted reads with chosen chunk sizes (down to one
 * byte at a time, as a slow client would send them); responses are written
 * to an evbuffer and compared byte for byte.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "racerd.h"
#include "http.h"
#include "testutil.h"

#define MAX_HEADER	8192
#define MAX_BODY	65536

Suite	*http_suite(void);

/* Chunk sizes every scripted feed is run with; the last is "all at once". */
static const size_t chunks[] = { 1, 2, 3, 5, 7, 16, 64, (size_t)-1 };

static const char upgrade_req[] =
    "GET /ws/room-1?user=alice&last=5 HTTP/1.1\r\n"
    "Host: chat.example:8080\r\n"
    "Upgrade: WebSocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://chat.example\r\n"
    "Authorization: Bearer abc.def\r\n"
    "User-Agent: check_http\r\n"
    "\r\n";

/* RFC 6455 §5.7: a masked text frame "Hello". */
static const char ws_frame[] =
    "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

/*
 * Feed len bytes in pieces of at most chunk bytes until the parser answers
 * something other than 0. *off is how far the parser consumed.
 */
static int
feed(struct http_parse *p, const char *data, size_t len, size_t chunk,
    size_t *off)
{
	size_t	 n, used;
	int	 rv = 0;

	*off = 0;
	while (*off < len) {
		n = len - *off;
		if (n > chunk)
			n = chunk;
		rv = http_parse_feed(p, data + *off, n, &used);
		*off += used;
		if (rv != 0)
			return (rv);
		ck_assert_uint_eq(used, n);
	}
	return (rv);
}

/* Parse a whole request that must succeed in one go. */
static struct http_parse *
parse_ok(const char *text)
{
	struct http_parse	*p;
	size_t			 off;

	p = http_parse_new(MAX_HEADER, MAX_BODY);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(feed(p, text, strlen(text), 1, &off), 1);
	ck_assert_uint_eq(off, strlen(text));
	ck_assert_ptr_nonnull(http_parse_req(p));
	return (p);
}

/* Feed text with every chunk size and expect failure with status. */
static void
parse_fail(const char *text, size_t len, size_t max_header, size_t max_body,
    int status)
{
	struct http_parse	*p;
	size_t			 i, off, used;

	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(max_header, max_body);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(feed(p, text, len, chunks[i], &off), -1);
		ck_assert_int_eq(http_parse_status(p), status);
		ck_assert_ptr_null(http_parse_req(p));
		/* The error sticks. */
		ck_assert_int_eq(http_parse_feed(p, "x", 1, &used), -1);
		http_parse_free(p);
	}
}

/* Return (and drain) an evbuffer's contents as a string. */
static char *
drain(struct evbuffer *b)
{
	size_t	 len = evbuffer_get_length(b);
	char	*s;

	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(evbuffer_remove(b, s, len), (int)len);
	s[len] = '\0';
	return (s);
}

START_TEST(test_upgrade_full)
{
	struct http_parse	*p;
	const struct http_req	*r;
	size_t			 i, off, len = strlen(upgrade_req);
	int			 status;
	const char		*message, *extra;

	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_ptr_null(http_parse_req(p));
		ck_assert_int_eq(feed(p, upgrade_req, len, chunks[i], &off), 1);
		ck_assert_uint_eq(off, len);
		r = http_parse_req(p);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->method, HTTP_GET);
		ck_assert_int_eq(r->http_major, 1);
		ck_assert_int_eq(r->http_minor, 1);
		ck_assert_str_eq(r->path, "/ws/room-1");
		ck_assert_uint_eq(r->path_len, 10);
		ck_assert_str_eq(r->query, "user=alice&last=5");
		ck_assert_str_eq(r->host, "chat.example:8080");
		ck_assert_str_eq(r->ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
		ck_assert_str_eq(r->ws_version, "13");
		ck_assert_str_eq(r->origin, "http://chat.example");
		ck_assert_str_eq(r->authorization, "Bearer abc.def");
		ck_assert_ptr_null(r->content_type);
		ck_assert_ptr_null(r->body);
		ck_assert_int_eq(r->flags, HTTP_REQ_KEEPALIVE|
		    HTTP_REQ_UPGRADE_WS|HTTP_REQ_CONN_UPGRADE|HTTP_REQ_UPGRADE);
		ck_assert_int_eq(http_ws_check(r, &status, &message, &extra),
		    0);
		http_parse_free(p);
	}
}
END_TEST

START_TEST(test_split_every_offset)
{
	struct http_parse	*p;
	const struct http_req	*r;
	size_t			 i, used, len = strlen(upgrade_req);

	/* Two reads split at every byte: names and values arrive in pieces. */
	for (i = 1; i < len; i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(http_parse_feed(p, upgrade_req, i, &used), 0);
		ck_assert_uint_eq(used, i);
		ck_assert_int_eq(http_parse_feed(p, upgrade_req + i, len - i,
		    &used), 1);
		ck_assert_uint_eq(used, len - i);
		r = http_parse_req(p);
		ck_assert_str_eq(r->path, "/ws/room-1");
		ck_assert_str_eq(r->host, "chat.example:8080");
		ck_assert_str_eq(r->ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
		ck_assert_str_eq(r->ws_version, "13");
		ck_assert_str_eq(r->authorization, "Bearer abc.def");
		http_parse_free(p);
	}
}
END_TEST

START_TEST(test_header_values)
{
	struct http_parse	*p;
	const struct http_req	*r;

	/* An empty value must not glue two names together; OWS is trimmed. */
	p = parse_ok("GET /x HTTP/1.1\r\n"
	    "X-Empty:\r\n"
	    "Host:  a b \t\r\n"
	    "Origin:\r\n"
	    "\r\n");
	r = http_parse_req(p);
	ck_assert_str_eq(r->host, "a b");
	ck_assert_str_eq(r->origin, "");
	ck_assert_ptr_null(r->query);
	ck_assert_int_eq(r->flags, HTTP_REQ_KEEPALIVE);
	http_parse_free(p);

	/* Repeated list headers combine; tokens, not substrings. */
	p = parse_ok("GET /x HTTP/1.1\r\nHost: a\r\n"
	    "Connection: keep-alive\r\nConnection: ,upgrade ,\r\n"
	    "Upgrade: h2c\r\nUpgrade: websocket/13x, websocket\r\n\r\n");
	r = http_parse_req(p);
	ck_assert_int_eq(r->flags & (HTTP_REQ_UPGRADE_WS|
	    HTTP_REQ_CONN_UPGRADE), HTTP_REQ_UPGRADE_WS|HTTP_REQ_CONN_UPGRADE);
	http_parse_free(p);

	p = parse_ok("GET /x HTTP/1.1\r\nHost: a\r\n"
	    "Connection: upgrade-insecure\r\nUpgrade: websockets\r\n\r\n");
	r = http_parse_req(p);
	ck_assert_int_eq(r->flags & (HTTP_REQ_UPGRADE_WS|
	    HTTP_REQ_CONN_UPGRADE), 0);
	http_parse_free(p);

	/* HTTP/1.0 and Connection: close are not keep-alive. */
	p = parse_ok("GET /x HTTP/1.0\r\n\r\n");
	r = http_parse_req(p);
	ck_assert_int_eq(r->http_minor, 0);
	ck_assert_int_eq(r->flags & HTTP_REQ_KEEPALIVE, 0);
	http_parse_free(p);
	p = parse_ok("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
	ck_assert_int_eq(http_parse_req(p)->flags & HTTP_REQ_KEEPALIVE, 0);
	http_parse_free(p);

	/* Absolute form: the path and query come out of the URL. */
	p = parse_ok("GET http://h:1/ws/x?user=a HTTP/1.1\r\nHost: h\r\n\r\n");
	r = http_parse_req(p);
	ck_assert_str_eq(r->path, "/ws/x");
	ck_assert_str_eq(r->query, "user=a");
	http_parse_free(p);
	p = parse_ok("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
	ck_assert_str_eq(http_parse_req(p)->path, "/");
	http_parse_free(p);
}
END_TEST

START_TEST(test_pipelined)
{
	static const char	 two[] =
	    "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
	    "GET /metrics?x=1 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
	struct http_parse	*p;
	const struct http_req	*r;
	size_t			 i, off, off2, used, len = sizeof two - 1;
	size_t			 first = strlen("GET /healthz HTTP/1.1\r\n"
			     "Host: a\r\n\r\n");

	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(feed(p, two, len, chunks[i], &off), 1);
		ck_assert_uint_eq(off, first);
		r = http_parse_req(p);
		ck_assert_str_eq(r->path, "/healthz");
		ck_assert_str_eq(r->host, "a");
		ck_assert_int_eq(r->flags & HTTP_REQ_KEEPALIVE,
		    HTTP_REQ_KEEPALIVE);

		/* Until reset, the same request stays and nothing is used. */
		ck_assert_int_eq(http_parse_feed(p, two + off, len - off,
		    &used), 1);
		ck_assert_uint_eq(used, 0);

		http_parse_reset(p);
		ck_assert_ptr_null(http_parse_req(p));
		ck_assert_int_eq(feed(p, two + off, len - off, chunks[i],
		    &off2), 1);
		ck_assert_uint_eq(off + off2, len);
		r = http_parse_req(p);
		ck_assert_str_eq(r->path, "/metrics");
		ck_assert_str_eq(r->query, "x=1");
		ck_assert_str_eq(r->host, "b");
		ck_assert_int_eq(r->flags & HTTP_REQ_KEEPALIVE, 0);
		http_parse_free(p);
	}
}
END_TEST

START_TEST(test_upgrade_trailing)
{
	struct http_parse	*p;
	char			 buf[1024];
	size_t			 i, off, len, reqlen = strlen(upgrade_req);

	memcpy(buf, upgrade_req, reqlen);
	memcpy(buf + reqlen, ws_frame, sizeof ws_frame - 1);
	len = reqlen + sizeof ws_frame - 1;
	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(feed(p, buf, len, chunks[i], &off), 1);
		ck_assert_uint_eq(off, reqlen);
		ck_assert_int_eq(http_parse_req(p)->flags & HTTP_REQ_UPGRADE,
		    HTTP_REQ_UPGRADE);
		http_parse_free(p);
	}
}
END_TEST

/* Build "GET / HTTP/1.1\r\nHost: aaa...\r\n\r\n" of exactly len bytes. */
static char *
request_of(size_t len)
{
	static const char	 head[] = "GET / HTTP/1.1\r\nHost: ";
	static const char	 tail[] = "\r\n\r\n";
	size_t			 pad;
	char			*s;

	pad = len - (sizeof head - 1) - (sizeof tail - 1);

	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, head, sizeof head - 1);
	memset(s + sizeof head - 1, 'a', pad);
	memcpy(s + sizeof head - 1 + pad, tail, sizeof tail);
	ck_assert_uint_eq(strlen(s), len);
	return (s);
}

START_TEST(test_header_too_large)
{
	struct http_parse	*p;
	char			*s, line[512];
	size_t			 i, off;

	/* Exactly at the cap is fine; one byte over is 431. */
	s = request_of(128);
	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(128, 0);
		ck_assert_int_eq(feed(p, s, 128, chunks[i], &off), 1);
		ck_assert_uint_eq(strlen(http_parse_req(p)->host),
		    128 - 22 - 4);
		http_parse_free(p);
	}
	parse_fail(s, 128, 127, 0, 431);
	free(s);

	/* A long request line counts too (431, never 414). */
	memcpy(line, "GET /", 5);
	memset(line + 5, 'a', 300);
	strcpy(line + 305, " HTTP/1.1\r\n\r\n");
	parse_fail(line, strlen(line), 128, 0, 431);

	/* Past http-parser's own 80 KiB limit: still 431. */
	s = request_of(100000);
	parse_fail(s, 100000, 200000, 0, 431);
	free(s);
}
END_TEST

START_TEST(test_body_too_large)
{
	static const char	 cl[] = "POST /chats/r/messages HTTP/1.1\r\n"
	    "Host: a\r\nContent-Length: 11\r\n\r\nhello world";
	static const char	 chunked[] =
	    "POST /chats/r/messages HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
	struct http_parse	*p;
	size_t			 off;

	parse_fail(cl, sizeof cl - 1, MAX_HEADER, 10, 413);
	parse_fail(chunked, sizeof chunked - 1, MAX_HEADER, 10, 413);

	/* Refused at the headers, before any of the body is sent. */
	p = http_parse_new(MAX_HEADER, 10);
	ck_assert_int_eq(feed(p, cl, sizeof cl - 1 - 11, 1, &off), -1);
	ck_assert_int_eq(http_parse_status(p), 413);
	http_parse_free(p);

	/* At the cap it fits. */
	p = http_parse_new(MAX_HEADER, 11);
	ck_assert_int_eq(feed(p, cl, sizeof cl - 1, 1, &off), 1);
	ck_assert_str_eq(http_parse_req(p)->body, "hello world");
	http_parse_free(p);
	p = http_parse_new(MAX_HEADER, 11);
	ck_assert_int_eq(feed(p, chunked, sizeof chunked - 1, 1, &off), 1);
	ck_assert_str_eq(http_parse_req(p)->body, "hello world");
	http_parse_free(p);
}
END_TEST

START_TEST(test_bad_request)
{
	static const char	*bad[] = {
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",	/* TLS */
		"hello world\r\n\r\n",
		"GET / FTP/1.1\r\n\r\n",
		"GET /a b HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\r\nNo Colon\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\001b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\n"
		    "Sec-WebSocket-Key: a\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\n"
		    "Content-Length: 1\r\n\r\nx",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		    "Content-Length: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "zz\r\n",
	};
	static const char	 nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	size_t			 i;

	for (i = 0; i < nitems(bad); i++)
		parse_fail(bad[i], strlen(bad[i]), MAX_HEADER, MAX_BODY, 400);
	parse_fail(nul, sizeof nul - 1, MAX_HEADER, MAX_BODY, 400);
}
END_TEST

/*
 * A line ended by a lone LF (or CR) among CRLF lines is framed one way
 * by http-parser and maybe another by a proxy in front (request
 * smuggling). Every such request is a 400, whatever the
 * chunk sizes it arrives in; bytes after chunk data must be CRLF.
 */
START_TEST(test_framing_bare_lf)
{
	static const char	*bad[] = {
		"POST /a HTTP/1.1\r\nHost: a\r\nX-Pad: x\nContent-Length: 5"
		    "\r\n\r\nhello",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\n\r\nhello",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\n"
		    "hello",
		"GET /a HTTP/1.1\nHost: a\n\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n\n",
		"\nGET /a HTTP/1.1\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n\rX",
		"GET /a HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\nhello\r\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhelloXY0\r\n\r\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n0\r\n\n",
		"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "0\r\nX-T: 1\nX-U: 2\r\n\r\n",
	};
	static const char	 good[] =
	    "\r\nPOST /a HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5;x=1\r\nhe\nl\r\r\n0\r\nX-T: 1\r\n\r\n"
	    "GET /next HTTP/1.1\r\n\r\n";
	struct http_parse	*p;
	size_t			 i, off;

	for (i = 0; i < nitems(bad); i++)
		parse_fail(bad[i], strlen(bad[i]), MAX_HEADER, MAX_BODY, 400);

	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(feed(p, good, sizeof good - 1, chunks[i],
		    &off), 1);
		ck_assert_uint_eq(off, strstr(good, "GET") - good);
		ck_assert_uint_eq(http_parse_req(p)->body_len, 5);
		ck_assert_mem_eq(http_parse_req(p)->body, "he\nl\r", 5);
		http_parse_reset(p);
		ck_assert_int_eq(feed(p, good + off, sizeof good - 1 - off,
		    chunks[i], &off), 1);
		ck_assert_str_eq(http_parse_req(p)->path, "/next");
		http_parse_free(p);
	}
}
END_TEST

START_TEST(test_unsupported)
{
	static const char	 gzip[] = "POST / HTTP/1.1\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
	static const char	 gzip_only[] = "POST / HTTP/1.1\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n";
	static const char	 expect[] = "POST / HTTP/1.1\r\n"
	    "Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx";

	parse_fail(gzip, sizeof gzip - 1, MAX_HEADER, MAX_BODY, 501);
	parse_fail(gzip_only, sizeof gzip_only - 1, MAX_HEADER, MAX_BODY, 501);
	parse_fail(expect, sizeof expect - 1, MAX_HEADER, MAX_BODY, 417);
}
END_TEST

START_TEST(test_post_body)
{
	static const char	 post[] =
	    "POST /chats/r1/messages HTTP/1.1\r\n"
	    "Host: a\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 14\r\n"
	    "\r\n"
	    "{\"body\":\"hi\"}\n"
	    "GET /next HTTP/1.1\r\n\r\n";
	static const char	 chunked[] =
	    "POST /chats/r1/messages HTTP/1.1\r\n"
	    "Host: a\r\n"
	    "Transfer-Encoding: Chunked\r\n"
	    "\r\n"
	    "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n"
	    "Host: trailer\r\n\r\n";
	struct http_parse	*p;
	const struct http_req	*r;
	size_t			 i, off;

	for (i = 0; i < nitems(chunks); i++) {
		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(feed(p, post, sizeof post - 1, chunks[i],
		    &off), 1);
		ck_assert_uint_eq(off, strstr(post, "GET") - post);
		r = http_parse_req(p);
		ck_assert_int_eq(r->method, HTTP_POST);
		ck_assert_str_eq(r->content_type, "application/json");
		ck_assert_int_eq(r->flags & HTTP_REQ_CONTENT_LENGTH,
		    HTTP_REQ_CONTENT_LENGTH);
		ck_assert_uint_eq(r->content_length, 14);
		ck_assert_uint_eq(r->body_len, 14);
		ck_assert_str_eq(r->body, "{\"body\":\"hi\"}\n");
		http_parse_free(p);

		p = http_parse_new(MAX_HEADER, MAX_BODY);
		ck_assert_int_eq(feed(p, chunked, sizeof chunked - 1,
		    chunks[i], &off), 1);
		ck_assert_uint_eq(off, sizeof chunked - 1);
		r = http_parse_req(p);
		ck_assert_int_eq(r->flags & HTTP_REQ_CHUNKED,
		    HTTP_REQ_CHUNKED);
		ck_assert_uint_eq(r->body_len, 9);
		ck_assert_str_eq(r->body, "Wikipedia");
		ck_assert_str_eq(r->host, "a");
		http_parse_free(p);
	}
}
END_TEST

START_TEST(test_expect_continue)
{
	static const char	 head[] = "POST /chats/r/messages HTTP/1.1\r\n"
	    "Host: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
	struct http_parse	*p;
	const struct http_req	*r;
	size_t			 off, used;

	p = http_parse_new(MAX_HEADER, MAX_BODY);
	ck_assert_int_eq(feed(p, head, sizeof head - 2, 1, &off), 0);
	ck_assert_int_eq(http_parse_headers_done(p), 0);
	ck_assert_int_eq(http_parse_feed(p, "\n", 1, &used), 0);
	ck_assert_int_eq(http_parse_headers_done(p), 1);
	r = http_parse_req(p);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->flags & HTTP_REQ_EXPECT_CONTINUE,
	    HTTP_REQ_EXPECT_CONTINUE);
	ck_assert_ptr_null(r->body);
	ck_assert_int_eq(http_parse_feed(p, "hello", 5, &used), 1);
	ck_assert_uint_eq(used, 5);
	ck_assert_str_eq(http_parse_req(p)->body, "hello");
	http_parse_free(p);
}
END_TEST

/* Parse text, run http_ws_check and compare its verdict. */
static void
ws_check_is(const char *text, int status, const char *message,
    const char *extra)
{
	struct http_parse	*p;
	int			 st;
	const char		*m, *e;

	p = parse_ok(text);
	ck_assert_int_eq(http_ws_check(http_parse_req(p), &st, &m, &e), -1);
	ck_assert_int_eq(st, status);
	ck_assert_str_eq(m, message);
	if (extra == NULL)
		ck_assert_ptr_null(e);
	else
		ck_assert_str_eq(e, extra);
	http_parse_free(p);
}

#define WS_KEY	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define WS_VER	"Sec-WebSocket-Version: 13\r\n"
#define WS_UPG	"Upgrade: websocket\r\nConnection: Upgrade\r\n"

START_TEST(test_ws_check)
{
	static const char	*upgrade = "websocket upgrade required";
	static const char	*version = "unsupported websocket version";
	static const char	*badkey = "invalid Sec-WebSocket-Key";

	ws_check_is("POST /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_KEY WS_VER
	    "\r\n", 405, "method not allowed", "Allow: GET\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_KEY WS_VER "\r\n",
	    426, upgrade, "Upgrade: websocket\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
	    "Connection: Upgrade\r\n" WS_KEY WS_VER "\r\n",
	    426, upgrade, "Upgrade: websocket\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
	    WS_KEY WS_VER "\r\n", 426, upgrade, "Upgrade: websocket\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
	    "Connection: keep-alive\r\n" WS_KEY WS_VER "\r\n",
	    426, upgrade, "Upgrade: websocket\r\n");
	ws_check_is("GET /ws/a HTTP/1.0\r\nHost: h\r\n" WS_UPG WS_KEY WS_VER
	    "\r\n", 400, "websocket requires HTTP/1.1", NULL);
	ws_check_is("GET /ws/a HTTP/1.1\r\n" WS_UPG WS_KEY WS_VER "\r\n",
	    400, "missing Host header", NULL);
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_KEY "\r\n",
	    426, version, "Sec-WebSocket-Version: 13\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_KEY
	    "Sec-WebSocket-Version: 8\r\n\r\n",
	    426, version, "Sec-WebSocket-Version: 13\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_KEY
	    "Sec-WebSocket-Version: 13, 8\r\n\r\n",
	    426, version, "Sec-WebSocket-Version: 13\r\n");
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_VER "\r\n",
	    400, badkey, NULL);
	ws_check_is("GET /ws/a HTTP/1.1\r\nHost: h\r\n" WS_UPG WS_VER
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n\r\n",
	    400, badkey, NULL);
}
END_TEST

START_TEST(test_ws_accept)
{
	static const char	*bad[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",	/* 23 */
		"dGhlIHNhbXBsZSBub25jZQ==A",	/* 25 */
		"dGhlIHNhbXBsZSBub25jZQ==\n",
		"AAAAAAAAAAAAAAAAAAAAAAA=",	/* 17 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAA",	/* 18 bytes */
		"dGhlIHNhbXBsZSBub25jZR==",	/* non-canonical */
		"dGhlIHNhbXBsZSBub25j!Q==",
		"dGhlIHNhbXBsZSBub25jZQ-_",
	};
	char			 out[HTTP_WS_ACCEPT_LEN + 1];
	size_t			 i;

	/* RFC 6455 §1.3. */
	ck_assert_int_eq(http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ck_assert_int_eq(http_ws_accept("AAAAAAAAAAAAAAAAAAAAAA==", out), 0);

	ck_assert_int_eq(http_ws_accept(NULL, out), -1);
	for (i = 0; i < nitems(bad); i++)
		ck_assert_int_eq(http_ws_accept(bad[i], out), -1);
}
END_TEST

START_TEST(test_ws_response)
{
	struct evbuffer	*b;
	char		*s;

	b = evbuffer_new();
	ck_assert_int_eq(http_ws_response(b, "dGhlIHNhbXBsZSBub25jZQ==", NULL),
	    0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "\r\n");
	free(s);
	ck_assert_int_eq(http_ws_response(b, "short", NULL), -1);
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_valid_id)
{
	char	 id[130];

	memset(id, 'a', sizeof id);
	ck_assert_int_eq(http_valid_id(id, 128, RD_CHAT_MAX), 1);
	ck_assert_int_eq(http_valid_id(id, 129, RD_CHAT_MAX), 0);
	ck_assert_int_eq(http_valid_id(id, 64, RD_USER_MAX), 1);
	ck_assert_int_eq(http_valid_id(id, 65, RD_USER_MAX), 0);
	ck_assert_int_eq(http_valid_id("", 0, 128), 0);
	ck_assert_int_eq(http_valid_id(NULL, 0, 128), 0);
	ck_assert_int_eq(http_valid_id(".", 1, 128), 0);
	ck_assert_int_eq(http_valid_id("..", 2, 128), 0);
	ck_assert_int_eq(http_valid_id("...", 3, 128), 1);
	ck_assert_int_eq(http_valid_id(".a", 2, 128), 1);
	ck_assert_int_eq(http_valid_id("a", 1, 128), 1);
	ck_assert_int_eq(http_valid_id("Az09._:-", 8, 128), 1);
	ck_assert_int_eq(http_valid_id("%41", 3, 128), 0);
	ck_assert_int_eq(http_valid_id("a b", 3, 128), 0);
	ck_assert_int_eq(http_valid_id("a\0b", 3, 128), 0);
	ck_assert_int_eq(http_valid_id("a/b", 3, 128), 0);
	ck_assert_int_eq(http_valid_id("a+b", 3, 128), 0);
	ck_assert_int_eq(http_valid_id("\xc3\xa9", 2, 128), 0);
}
END_TEST

/* Check one http_route() answer and the chat segment it reports. */
static void
route_is(const char *path, enum http_route want, const char *chat)
{
	const char	*c;
	size_t		 len;

	ck_assert_int_eq(http_route(path, &c, &len), want);
	if (chat == NULL) {
		ck_assert_ptr_null(c);
		ck_assert_uint_eq(len, 0);
	} else {
		ck_assert_uint_eq(len, strlen(chat));
		ck_assert_mem_eq(c, chat, len);
	}
}

START_TEST(test_route)
{
	char	 path[200];

	route_is("/ws/room-1", HTTP_ROUTE_WS, "room-1");
	route_is("/chats/r1/messages", HTTP_ROUTE_MESSAGES, "r1");
	route_is("/chats/r.1:x/presence", HTTP_ROUTE_PRESENCE, "r.1:x");
	route_is("/healthz", HTTP_ROUTE_HEALTHZ, NULL);
	route_is("/metrics", HTTP_ROUTE_METRICS, NULL);
	route_is("/", HTTP_ROUTE_OTHER, NULL);
	route_is("/index.html", HTTP_ROUTE_OTHER, NULL);
	route_is("/healthz/", HTTP_ROUTE_OTHER, NULL);
	route_is("/ws", HTTP_ROUTE_OTHER, NULL);
	route_is("/chats/r1", HTTP_ROUTE_OTHER, NULL);
	route_is("/chats/r1/other", HTTP_ROUTE_OTHER, NULL);
	route_is("/chats/messages", HTTP_ROUTE_OTHER, NULL);
	route_is(NULL, HTTP_ROUTE_OTHER, NULL);

	route_is("/ws/", HTTP_ROUTE_BAD_ID, "");
	route_is("/ws/a%41", HTTP_ROUTE_BAD_ID, "a%41");
	route_is("/ws/a/b", HTTP_ROUTE_BAD_ID, "a/b");
	route_is("/ws/a/", HTTP_ROUTE_BAD_ID, "a/");
	route_is("/ws/..", HTTP_ROUTE_BAD_ID, "..");
	route_is("/ws/.", HTTP_ROUTE_BAD_ID, ".");
	route_is("/chats//messages", HTTP_ROUTE_BAD_ID, "");
	route_is("/chats/a/b/messages", HTTP_ROUTE_BAD_ID, "a/b");
	route_is("/chats/a%20b/presence", HTTP_ROUTE_BAD_ID, "a%20b");

	strcpy(path, "/ws/");
	memset(path + 4, 'c', 128);
	path[4 + 128] = '\0';
	route_is(path, HTTP_ROUTE_WS, path + 4);
	strcat(path, "c");
	route_is(path, HTTP_ROUTE_BAD_ID, path + 4);
}
END_TEST

/* Check one http_query_get() answer. */
static void
query_is(const char *query, const char *name, size_t outlen, int want,
    const char *value, size_t value_len)
{
	char	 out[256];
	size_t	 len = 12345;

	ck_assert_uint_le(outlen, sizeof out);
	ck_assert_int_eq(http_query_get(query, name, out, outlen, &len), want);
	if (want == 1) {
		ck_assert_uint_eq(len, value_len);
		ck_assert_mem_eq(out, value, len);
		ck_assert_int_eq(out[len], '\0');
	}
}

START_TEST(test_query_get)
{
	static const char	 q[] = "user=al%69ce&last=5&name=a+b%20c%2B"
	    "&empty=&flag&bad=%4&bad2=%zz&pct=%&nul=a%00b&UP=%4a%4A&x=1=2";

	query_is(q, "user", 256, 1, "alice", 5);
	query_is(q, "last", 256, 1, "5", 1);
	query_is(q, "name", 256, 1, "a b c+", 6);
	query_is(q, "empty", 256, 1, "", 0);
	query_is(q, "flag", 256, 1, "", 0);
	query_is(q, "nul", 256, 1, "a\0b", 3);
	query_is(q, "UP", 256, 1, "JJ", 2);
	query_is(q, "x", 256, 1, "1=2", 3);
	query_is(q, "bad", 256, -1, NULL, 0);
	query_is(q, "bad2", 256, -1, NULL, 0);
	query_is(q, "pct", 256, -1, NULL, 0);
	query_is(q, "missing", 256, 0, NULL, 0);
	query_is(q, "use", 256, 0, NULL, 0);
	query_is(q, "up", 256, 0, NULL, 0);
	query_is(NULL, "user", 256, 0, NULL, 0);
	query_is("", "user", 256, 0, NULL, 0);

	/* The first match wins; a longer name is not a match. */
	query_is("xuser=1&user=2&user=3", "user", 256, 1, "2", 1);

	/* out holds the value and a NUL. */
	query_is(q, "user", 6, 1, "alice", 5);
	query_is(q, "user", 5, -1, NULL, 0);
	query_is(q, "empty", 1, 1, "", 0);
	query_is(q, "empty", 0, -1, NULL, 0);
}
END_TEST

/* The seq and paging parameters (last, since, before, limit). */
START_TEST(test_query_u64)
{
	uint64_t	 v;

	ck_assert_int_eq(http_query_u64(NULL, "last", INT64_MAX, &v), 0);
	ck_assert_int_eq(http_query_u64("user=a", "last", INT64_MAX, &v), 0);
	ck_assert_int_eq(http_query_u64("user=a&last=0", "last", INT64_MAX,
	    &v), 1);
	ck_assert(v == 0);
	ck_assert_int_eq(http_query_u64("last=42&since=7", "since",
	    INT64_MAX, &v), 1);
	ck_assert(v == 7);
	ck_assert_int_eq(http_query_u64("last=9223372036854775807", "last",
	    INT64_MAX, &v), 1);
	ck_assert(v == INT64_MAX);
	ck_assert_int_eq(http_query_u64("limit=1000", "limit", 1000, &v), 1);
	ck_assert(v == 1000);
	ck_assert_int_eq(http_query_u64("limit=1001", "limit", 1000, &v), -1);
	/* Empty, signed, not a number, past the maximum, or with junk. */
	ck_assert_int_eq(http_query_u64("last=", "last", INT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=-1", "last", INT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=+1", "last", INT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=x", "last", INT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=9223372036854775808", "last",
	    INT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=99999999999999999999999", "last",
	    UINT64_MAX, &v), -1);
	ck_assert_int_eq(http_query_u64("last=12abc", "last", INT64_MAX, &v),
	    -1);
	ck_assert_int_eq(http_query_u64("last=1%00", "last", INT64_MAX, &v),
	    -1);
	ck_assert_int_eq(http_query_u64("last=%31", "last", INT64_MAX, &v), 1);
	ck_assert(v == 1);
}
END_TEST

START_TEST(test_error_bytes)
{
	struct evbuffer	*b;
	char		*s;

	b = evbuffer_new();
	ck_assert_int_eq(http_error(b, 400, "bad \"chat\" id", NULL, 1), 0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 400 Bad Request\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 27\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n"
	    "{\"error\":\"bad \\\"chat\\\" id\"}");
	free(s);

	ck_assert_int_eq(http_error(b, 405, "a\\b\n\x01", "Allow: GET\r\n", 0),
	    0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 405 Method Not Allowed\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 24\r\n"
	    "Connection: close\r\n"
	    "Allow: GET\r\n"
	    "\r\n"
	    "{\"error\":\"a\\\\b\\n\\u0001\"}");
	free(s);

	/* No message, or one that is not UTF-8: the reason phrase. */
	ck_assert_int_eq(http_error(b, 431, "\xff", NULL, 0), 0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 43\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "{\"error\":\"Request Header Fields Too Large\"}");
	free(s);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_response_bytes)
{
	struct evbuffer	*b;
	char		*s;

	b = evbuffer_new();
	ck_assert_int_eq(http_response(b, 201, "X-A: 1\r\n",
	    "application/json", "{\"seq\":1}", 9, 1), 0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 201 Created\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 9\r\n"
	    "Connection: keep-alive\r\n"
	    "X-A: 1\r\n"
	    "\r\n"
	    "{\"seq\":1}");
	free(s);

	ck_assert_int_eq(http_response(b, 404, NULL, NULL, NULL, 0, 0), 0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 404 Not Found\r\n"
	    "Content-Length: 0\r\n"
	    "Connection: close\r\n"
	    "\r\n");
	free(s);

	ck_assert_int_eq(http_response(b, 204, NULL, "text/plain", "x", 1, 1),
	    0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 204 No Content\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);

	ck_assert_int_eq(http_response(b, 100, NULL, NULL, NULL, 0, 1), 0);
	s = drain(b);
	ck_assert_str_eq(s, "HTTP/1.1 100 Continue\r\n\r\n");
	free(s);
	evbuffer_free(b);
}
END_TEST

Suite *
http_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("http");

	tc = tcase_create("parse");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_upgrade_full);
	tcase_add_test(tc, test_split_every_offset);
	tcase_add_test(tc, test_header_values);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_upgrade_trailing);
	tcase_add_test(tc, test_post_body);
	tcase_add_test(tc, test_expect_continue);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse_errors");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_header_too_large);
	tcase_add_test(tc, test_body_too_large);
	tcase_add_test(tc, test_bad_request);
	tcase_add_test(tc, test_unsupported);
	tcase_add_test(tc, test_framing_bare_lf);
	suite_add_tcase(s, tc);

	tc = tcase_create("websocket");
	tcase_add_test(tc, test_ws_check);
	tcase_add_test(tc, test_ws_accept);
	tcase_add_test(tc, test_ws_response);
	suite_add_tcase(s, tc);

	tc = tcase_create("ids");
	tcase_add_test(tc, test_valid_id);
	tcase_add_test(tc, test_route);
	tcase_add_test(tc, test_query_get);
	tcase_add_test(tc, test_query_u64);
	suite_add_tcase(s, tc);

	tc = tcase_create("responses");
	tcase_add_test(tc, test_error_bytes);
	tcase_add_test(tc, test_response_bytes);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	return (testutil_run(http_suite()));
}
