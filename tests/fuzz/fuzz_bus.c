/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the decoding of store replies (bus.c). */
/*
 * Whatever a store (or something posing as one) answers must be decoded
 * or refused, never read past.  The first input byte picks the target:
 *
 *   0..127    the rest is RESP, read by hiredis's own reader into a reply
 *             that every bus_decode_* function is given in turn
 *   128..191  the rest is one message on a chat's channel
 *             (bus_decode_event)
 *   192..255  the rest is a stored envelope, opened by seal_open with a
 *             fixed key ring (a store may hand back anything)
 *
 * On success each decoder's promises are checked: sequence numbers above
 * 0, members sorted and unique, pointers inside the input.  RESP that
 * declares more than FUZZ_COUNT_MAX elements or bytes is skipped: hiredis's
 * reader allocates what a count says before the elements arrive (racerd
 * trusts its store that far), which is hiredis's to bound, not ours.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "racerd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_COUNT_MAX	100000

/* Returns 1 if some "*N" or "$N" header of the RESP text declares too much. */
static int
fuzz_too_big(const char *s, size_t len)
{
	size_t		 i, j;
	unsigned long	 n;

	for (i = 0; i < len; i++) {
		if ((s[i] != '*' && s[i] != '$') || (i > 0 && s[i - 1] != '\n'))
			continue;
		for (j = i + 1, n = 0; j < len && s[j] >= '0' && s[j] <= '9';
		    j++) {
			n = n * 10 + (s[j] - '0');
			if (n > FUZZ_COUNT_MAX)
				return (1);
		}
	}
	return (0);
}

static void
fuzz_reply(const redisReply *r)
{
	struct bus_info		 info;
	struct bus_sent		 sent;
	struct bus_page		 page;
	struct bus_claim	 claim;
	struct bus_pos		 pos;
	struct bus_entry	*e;
	struct bus_member	*m;
	uint64_t		 gen;
	size_t			 i, n;

	if (bus_decode_info(r, &info) == 0 && strlen(info.epoch) == 0)
		abort();
	if (bus_decode_sent(r, &sent) == 0 && sent.seq == 0)
		abort();
	if (bus_decode_page(r, &page) == 0) {
		for (i = 0; i < page.n; i++)
			if (page.entries[i].seq == 0 ||
			    page.entries[i].env == NULL)
				abort();
		free(page.entries);
	}
	if (bus_decode_range(r, &e, &n) == 0) {
		for (i = 0; i < n; i++)
			if (e[i].seq == 0)
				abort();
		free(e);
	}
	if (bus_decode_claim(r, &claim) == 0 &&
	    claim.result == BUS_CLAIM_OK && (claim.gen == 0 ||
	    claim.user == NULL || claim.epoch == NULL))
		abort();
	if (bus_decode_pos(r, &pos) == 1 && (strlen(pos.epoch) == 0 ||
	    strlen(pos.epoch) > BUS_EPOCH_MAX))
		abort();
	if (bus_decode_members(r, &m, &n) == 0) {
		for (i = 1; i < n; i++)
			if (strcmp(m[i - 1].user, m[i].user) >= 0)
				abort();
		free(m);
	}
	(void)bus_decode_gen(r, &gen);
}

static void
fuzz_event(const char *msg, size_t len)
{
	struct bus_event	 ev;
	const char		*end = msg + len;

	if (bus_decode_event(msg, len, &ev) != 0)
		return;
	switch (ev.type) {
	case BUS_EVENT_MESSAGE:
		if (ev.seq == 0 || ev.elen == 0 || ev.elen > BUS_EPOCH_MAX ||
		    ev.epoch < msg || ev.json + ev.jlen != end)
			abort();
		break;
	case BUS_EVENT_FRAME:
		if (ev.json < msg || ev.json + ev.jlen != end)
			abort();
		break;
	case BUS_EVENT_CLAIM:
		if (ev.gen == 0 || strlen(ev.token) != CONN_TOKEN_LEN)
			abort();
		break;
	}
}

static void
fuzz_open(const char *env, size_t len)
{
	static struct auth_key	 k;
	struct auth_keys	 ks;
	char			*out;
	size_t			 outlen;
	int			 rc;

	if (k.len == 0) {
		memcpy(k.kid, "k1", 3);
		k.alg = AUTH_STORAGE;
		k.len = 32;
		memset(k.key, 7, 32);
	}
	ks.k = &k;
	ks.n = 1;
	ks.nhmac = 0;
	rc = seal_open(&ks, "chat", 4, env, len, &out, &outlen);
	if (rc == 0 && out != NULL)
		abort();
	if (rc != 0 && (out == NULL || strlen(out) != outlen))
		abort();
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	redisReader	*rd;
	void		*reply = NULL;
	char		*copy;

	if (len < 1)
		return (0);
	/* Stored strings come NUL-terminated from hiredis: so do these. */
	copy = malloc(len);
	if (copy == NULL)
		abort();
	memcpy(copy, data + 1, len - 1);
	copy[len - 1] = '\0';
	if (data[0] < 128) {
		if (fuzz_too_big(copy, len - 1)) {
			free(copy);
			return (0);
		}
		if ((rd = redisReaderCreate()) == NULL)
			abort();
		if (redisReaderFeed(rd, copy, len - 1) == REDIS_OK &&
		    redisReaderGetReply(rd, &reply) == REDIS_OK &&
		    reply != NULL) {
			fuzz_reply(reply);
			freeReplyObject(reply);
		}
		redisReaderFree(rd);
	} else if (data[0] < 192)
		fuzz_event(copy, len - 1);
	else
		fuzz_open(copy, len - 1);
	free(copy);
	return (0);
}
