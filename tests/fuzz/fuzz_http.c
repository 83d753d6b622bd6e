/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the HTTP request parser (http.c). */
/*
 * The first input byte picks the caps (request head, body) and the size
 * of the pieces the rest is fed in; the rest is what a client sends on
 * one connection, pipelined requests included.  Each input is parsed
 * twice, in those pieces and all at once: both must give the same
 * requests and both fail or neither (a difference is a framing bug), every
 * refusal must be one of the statuses http.c documents, and each request
 * goes through the routing, query and handshake helpers the worker uses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "racerd.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const size_t fuzz_heads[] = { 64, 512, 8192, 8192 };
static const size_t fuzz_bodies[] = { 0, 16, 1024, 1024 * 1024 };
static const size_t fuzz_chunks[] = { 1, 2, 3, 7, 16, 100, 1000, SIZE_MAX };

/* What one request looked like, to compare the two parses. */
static void
fuzz_note(uint64_t *h, const void *p, size_t len)
{
	const uint8_t	*b = p;
	size_t		 i;

	for (i = 0; i < len; i++)
		*h = (*h ^ b[i]) * 1099511628211ULL;
	*h = (*h ^ len) * 1099511628211ULL;
}

static void
fuzz_str(uint64_t *h, const char *s)
{
	if (s == NULL)
		fuzz_note(h, "", 0);
	else
		fuzz_note(h, s, strlen(s) + 1);
}

static void
fuzz_req(uint64_t *h, const struct http_req *r)
{
	const char	*chat, *msg, *extra;
	char		 buf[256];
	size_t		 len, chat_len;
	int		 status;
	enum http_route	 route;

	fuzz_note(h, &r->method, sizeof r->method);
	fuzz_note(h, &r->flags, sizeof r->flags);
	fuzz_str(h, r->path);
	fuzz_str(h, r->query);
	fuzz_str(h, r->host);
	fuzz_str(h, r->ws_key);
	fuzz_note(h, r->body != NULL ? r->body : "", r->body_len);
	if (r->path == NULL || strlen(r->path) != r->path_len)
		abort();

	route = http_route(r->path, &chat, &chat_len);
	if (route != HTTP_ROUTE_OTHER && route != HTTP_ROUTE_HEALTHZ &&
	    route != HTTP_ROUTE_METRICS && route != HTTP_ROUTE_BAD_ID &&
	    (chat_len == 0 || chat_len > RD_CHAT_MAX))
		abort();
	if (http_query_get(r->query, "user", buf, sizeof buf, &len) == 1 &&
	    len >= sizeof buf)
		abort();
	if (http_ws_check(r, &status, &msg, &extra) != 0 &&
	    (status < 400 || status > 499 || msg == NULL))
		abort();
}

/* Parse all of data in pieces of chunk bytes; returns the verdict. */
static uint64_t
fuzz_parse(const uint8_t *data, size_t len, size_t head, size_t body,
    size_t chunk)
{
	struct http_parse	*p;
	uint64_t		 h = 14695981039346656037ULL;
	size_t			 off = 0, n, used;
	int			 rc, status;

	if ((p = http_parse_new(head, body)) == NULL)
		abort();
	while (off < len) {
		n = len - off;
		if (n > chunk)
			n = chunk;
		rc = http_parse_feed(p, (const char *)data + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (rc == -1) {
			status = http_parse_status(p);
			if (status != 400 && status != 413 && status != 417 &&
			    status != 431 && status != 501)
				abort();
			/*
			 * Which of two faults is named first may depend on
			 * where a read ends; that a request failed may not.
			 */
			fuzz_note(&h, "error", 5);
			break;
		}
		if (rc == 0) {
			if (used != n)
				abort();
			continue;
		}
		fuzz_req(&h, http_parse_req(p));
		fuzz_note(&h, &off, sizeof off);
		if (http_parse_req(p)->flags & HTTP_REQ_UPGRADE)
			break;
		http_parse_reset(p);
	}
	if (http_parse_req(p) != NULL && !(http_parse_req(p)->flags &
	    HTTP_REQ_UPGRADE))
		fuzz_req(&h, http_parse_req(p));
	http_parse_free(p);
	return (h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	size_t	 head, body, chunk;

	if (len < 1)
		return (0);
	head = fuzz_heads[data[0] & 3];
	body = fuzz_bodies[(data[0] >> 2) & 3];
	chunk = fuzz_chunks[(data[0] >> 4) & 7];
	data++;
	len--;
	if (fuzz_parse(data, len, head, body, chunk) !=
	    fuzz_parse(data, len, head, body, SIZE_MAX))
		abort();
	return (0);
}
