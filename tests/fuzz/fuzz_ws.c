/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the WebSocket input path (ws.c). */
/*
 * The input is what a client sends after its upgrade.  It goes through
 * the worker's own code: a connection made by conn_accept on one end of
 * a socketpair (the other end is closed: what the server writes back is
 * thrown away), turned into a WebSocket by ws_start, its bytes put in the
 * bufferevent's input and handed to ws_input: frame tracking, wslay's
 * parser and callbacks, the UTF-8 check and proto_parse of each text
 * message.  The connection is in no chat and no store is reached (a msg
 * stops at room_publish, a history frame at ws_history).  The first byte
 * picks the size of the pieces the rest arrives in and, for some inputs,
 * a small max-message-size.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "racerd.h"
#include "registry.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const size_t fuzz_chunks[] = { 1, 2, 3, 7, 16, 125, 4096, SIZE_MAX };
static struct reg_counters fuzz_counters;

static void
fuzz_setup(void)
{
	if (wk.base != NULL)
		return;
	signal(SIGPIPE, SIG_IGN);
	log_open(NULL, 1, LOG_LEVEL_ERROR, "fuzz");
	if ((wk.cfg = config_default()) == NULL ||
	    (wk.base = event_base_new()) == NULL)
		abort();
	TAILQ_INIT(&wk.conns);
	wk.counters = &fuzz_counters;
	wk.cfg->max_message_rate = 0;
	if (conn_init() != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct conn	*c;
	struct evbuffer	*in;
	size_t		 off, n, chunk;
	int		 fds[2];

	if (len < 1)
		return (0);
	fuzz_setup();
	chunk = fuzz_chunks[data[0] & 7];
	wk.cfg->max_message_size = (data[0] & 0x80) ? 64 : 65536;
	data++;
	len--;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
		abort();
	close(fds[1]);
	conn_accept(fds[0], 0);
	c = TAILQ_LAST(&wk.conns, conns);
	if (c == NULL || ws_start(c) != 0)
		abort();
	snprintf(c->user, sizeof c->user, "fuzz");
	conn_ref(c);	/* ours until the end, whatever the input closes */
	for (off = 0; off < len && c->state == CONN_WS; off += n) {
		n = len - off;
		if (n > chunk)
			n = chunk;
		/* A socket bufferevent freezes its input's end: as it reads. */
		in = bufferevent_get_input(c->bev);
		evbuffer_unfreeze(in, 0);
		if (evbuffer_add(in, data + off, n) != 0)
			abort();
		evbuffer_freeze(in, 0);
		ws_input(c);
		event_base_loop(wk.base, EVLOOP_NONBLOCK);
	}
	conn_close(c);
	conn_unref(c);
	event_base_loop(wk.base, EVLOOP_NONBLOCK);
	if (wk.nconns != 0)
		abort();
	return (0);
}
