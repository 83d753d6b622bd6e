/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for bus.c's reply decoding. */
/*
 * Every reply shape of the store's scripts and commands is decoded here
 * without a server: replies are built by hiredis's own reader from RESP
 * text, as they would arrive, including malformed ones (wrong types,
 * short arrays, bad numbers, foreign values) that must be refused rather
 * than read past.  Channel messages are decoded from tables.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "racerd.h"
#include "testutil.h"

Suite	*bus_suite(void);

/* A reply from RESP text, as hiredis reads it off a socket. */
static redisReply *
resp(const char *text)
{
	redisReader	*rd;
	void		*reply = NULL;

	rd = redisReaderCreate();
	ck_assert_ptr_nonnull(rd);
	ck_assert_int_eq(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
	ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
	ck_assert_ptr_nonnull(reply);
	redisReaderFree(rd);
	return (reply);
}

#define ERR	"-ERR something\r\n"
#define NIL	"$-1\r\n"

START_TEST(test_info)
{
	static const char *bad[] = {
		ERR, NIL, ":5\r\n", "*1\r\n:5\r\n",
		"*2\r\n:5\r\n:7\r\n",			/* epoch a number */
		"*2\r\n:-1\r\n$2\r\nab\r\n",		/* negative seq */
		"*2\r\n$1\r\nx\r\n$2\r\nab\r\n",	/* seq not a number */
		"*2\r\n:5\r\n$3\r\na b\r\n",		/* space in epoch */
		"*2\r\n:5\r\n$0\r\n\r\n",		/* empty epoch */
		"*2\r\n:5\r\n$65\r\n"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\r\n",					/* epoch too long */
		"*3\r\n:5\r\n$2\r\nab\r\n:1\r\n",
	};
	struct bus_info	 info;
	redisReply	*r;
	size_t		 i;

	r = resp("*2\r\n:42\r\n$16\r\n0123456789abcdef\r\n");
	ck_assert_int_eq(bus_decode_info(r, &info), 0);
	ck_assert_uint_eq(info.latest, 42);
	ck_assert_str_eq(info.epoch, "0123456789abcdef");
	freeReplyObject(r);
	ck_assert_int_eq(bus_decode_info(NULL, &info), -1);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_info(r, &info) == -1,
		    "info accepted bad reply %zu", i);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_sent)
{
	static const char *bad[] = {
		ERR, NIL, ":1\r\n", "*2\r\n:1\r\n:5\r\n",
		"*3\r\n:2\r\n:5\r\n$1\r\ne\r\n",	/* neither 0 nor 1 */
		"*3\r\n:1\r\n:0\r\n$1\r\ne\r\n",	/* seq 0 */
		"*3\r\n$1\r\n1\r\n:5\r\n$1\r\ne\r\n",	/* flag a string */
		"*3\r\n:1\r\n$2\r\nxy\r\n$1\r\ne\r\n",	/* seq not a number */
	};
	struct bus_sent	 s;
	redisReply	*r;
	size_t		 i;

	r = resp("*3\r\n:1\r\n:7\r\n$1\r\ne\r\n");
	ck_assert_int_eq(bus_decode_sent(r, &s), 0);
	ck_assert_int_eq(s.repeat, 0);
	ck_assert_uint_eq(s.seq, 7);
	freeReplyObject(r);

	r = resp("*4\r\n:0\r\n:3\r\n$1\r\ne\r\n$7\r\n{\"a\":1}\r\n");
	ck_assert_int_eq(bus_decode_sent(r, &s), 0);
	ck_assert_int_eq(s.repeat, 1);
	ck_assert_uint_eq(s.seq, 3);
	ck_assert_uint_eq(s.len, 7);
	ck_assert_mem_eq(s.env, "{\"a\":1}", 7);
	freeReplyObject(r);

	/* A repeat whose original was trimmed: Lua false is nil. */
	r = resp("*4\r\n:0\r\n:3\r\n$1\r\ne\r\n" NIL);
	ck_assert_int_eq(bus_decode_sent(r, &s), 0);
	ck_assert_int_eq(s.repeat, 1);
	ck_assert_ptr_null(s.env);
	freeReplyObject(r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_sent(r, &s) == -1,
		    "sent accepted bad reply %zu", i);
		freeReplyObject(r);
	}
}
END_TEST

#define ENTRY(id, env)							\
	"*2\r\n$" id "\r\n*4\r\n$1\r\nm\r\n" env "$1\r\nt\r\n$2\r\n12\r\n"

START_TEST(test_range)
{
	static const char *bad[] = {
		ERR, NIL, ":1\r\n",
		"*1\r\n" ENTRY("3\r\n5-1", "$2\r\n{}\r\n"),	/* not -0 */
		"*1\r\n" ENTRY("3\r\n0-0", "$2\r\n{}\r\n"),	/* seq 0 */
		"*1\r\n" ENTRY("3\r\nx-0", "$2\r\n{}\r\n"),	/* no number */
		"*1\r\n" ENTRY("3\r\n5-0", ":2\r\n"),		/* env a number */
		"*1\r\n*2\r\n$3\r\n5-0\r\n*1\r\n$1\r\nm\r\n",	/* short */
		"*1\r\n*1\r\n$3\r\n5-0\r\n",			/* no fields */
		"*1\r\n:5\r\n",
		"*2\r\n" ENTRY("3\r\n5-0", "$2\r\n{}\r\n") ERR,
	};
	struct bus_entry *e;
	redisReply	*r;
	size_t		 i, n;

	r = resp("*2\r\n" ENTRY("3\r\n5-0", "$2\r\n{}\r\n")
	    ENTRY("4\r\n16-0", "$3\r\n[1]\r\n"));
	ck_assert_int_eq(bus_decode_range(r, &e, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(e[0].seq, 5);
	ck_assert_uint_eq(e[0].len, 2);
	ck_assert_mem_eq(e[0].env, "{}", 2);
	ck_assert_uint_eq(e[1].seq, 16);
	ck_assert_mem_eq(e[1].env, "[1]", 3);
	free(e);
	freeReplyObject(r);

	r = resp("*0\r\n");
	ck_assert_int_eq(bus_decode_range(r, &e, &n), 0);
	ck_assert_ptr_nonnull(e);	/* empty is not failure */
	ck_assert_uint_eq(n, 0);
	free(e);
	freeReplyObject(r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_range(r, &e, &n) == -1,
		    "range accepted bad reply %zu", i);
		ck_assert_ptr_null(e);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_page)
{
	static const char *bad[] = {
		ERR, NIL, "*1\r\n:1\r\n",
		"*3\r\n:1\r\n$1\r\ne\r\n:1\r\n",		/* odd */
		"*2\r\n$1\r\nx\r\n$1\r\ne\r\n",			/* latest */
		"*2\r\n:1\r\n:5\r\n",				/* epoch */
		"*4\r\n:1\r\n$1\r\ne\r\n:0\r\n$2\r\n{}\r\n",	/* seq 0 */
		"*4\r\n:1\r\n$1\r\ne\r\n:1\r\n:2\r\n",		/* env */
		"*4\r\n:1\r\n$1\r\ne\r\n" NIL "$2\r\n{}\r\n",	/* seq nil */
	};
	struct bus_page	 p;
	redisReply	*r;
	size_t		 i;

	r = resp("*6\r\n:9\r\n$2\r\nep\r\n:7\r\n$2\r\n{}\r\n:8\r\n$3\r\n"
	    "[8]\r\n");
	ck_assert_int_eq(bus_decode_page(r, &p), 0);
	ck_assert_uint_eq(p.latest, 9);
	ck_assert_str_eq(p.epoch, "ep");
	ck_assert_uint_eq(p.n, 2);
	ck_assert_uint_eq(p.entries[0].seq, 7);
	ck_assert_uint_eq(p.entries[1].seq, 8);
	ck_assert_mem_eq(p.entries[1].env, "[8]", 3);
	free(p.entries);
	freeReplyObject(r);

	/* A chat that never had a message: no epoch, no entries. */
	r = resp("*2\r\n:0\r\n" NIL);
	ck_assert_int_eq(bus_decode_page(r, &p), 0);
	ck_assert_ptr_null(p.epoch);
	ck_assert_uint_eq(p.n, 0);
	free(p.entries);
	freeReplyObject(r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_page(r, &p) == -1,
		    "page accepted bad reply %zu", i);
		ck_assert_ptr_null(p.entries);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_claim)
{
	static const char *bad[] = {
		ERR, ":1\r\n", "$5\r\nother\r\n",
		"*4\r\n$1\r\nu\r\n$1\r\ne\r\n$1\r\n3\r\n$8\r\nattached\r\n",
		"*5\r\n$1\r\nu\r\n$1\r\ne\r\n$1\r\n3\r\n$4\r\naway\r\n:0\r\n",
		"*5\r\n:1\r\n$1\r\ne\r\n$1\r\n3\r\n$4\r\naway\r\n:2\r\n",
		"*5\r\n$1\r\nu\r\n" NIL "$1\r\n3\r\n$4\r\naway\r\n:2\r\n",
		("*5\r\n$1\r\nu\r\n$1\r\ne\r\n$1\r\n3\r\n$4\r\naway\r\n"
		"$1\r\nx\r\n"),
	};
	struct bus_claim cl;
	redisReply	*r;
	size_t		 i;

	r = resp(NIL);
	ck_assert_int_eq(bus_decode_claim(r, &cl), 0);
	ck_assert_int_eq(cl.result, BUS_CLAIM_UNKNOWN);
	freeReplyObject(r);

	r = resp("$4\r\nuser\r\n");
	ck_assert_int_eq(bus_decode_claim(r, &cl), 0);
	ck_assert_int_eq(cl.result, BUS_CLAIM_FOREIGN);
	freeReplyObject(r);

	r = resp("*5\r\n$5\r\nalice\r\n$2\r\nep\r\n$2\r\n17\r\n"
	    "$4\r\naway\r\n:3\r\n");
	ck_assert_int_eq(bus_decode_claim(r, &cl), 0);
	ck_assert_int_eq(cl.result, BUS_CLAIM_OK);
	ck_assert_str_eq(cl.user, "alice");
	ck_assert_str_eq(cl.epoch, "ep");
	ck_assert_int_eq(cl.last, 17);
	ck_assert_uint_eq(cl.gen, 3);
	freeReplyObject(r);

	/* No position recorded: last unknown, not 0. */
	r = resp("*5\r\n$5\r\nalice\r\n$2\r\nep\r\n" NIL
	    "$8\r\nattached\r\n:1\r\n");
	ck_assert_int_eq(bus_decode_claim(r, &cl), 0);
	ck_assert_int_eq(cl.last, -1);
	freeReplyObject(r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_claim(r, &cl) == -1,
		    "claim accepted bad reply %zu", i);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_pos)
{
	static const char *bad[] = {
		ERR, ":5\r\n", "$2\r\nep\r\n", "$4\r\nep x\r\n",
		"$5\r\nep 1x\r\n", "$3\r\n 12\r\n", "$5\r\nep -1\r\n",
		"*1\r\n:1\r\n",
	};
	struct bus_pos	 pos;
	redisReply	*r;
	size_t		 i;

	r = resp(NIL);
	ck_assert_int_eq(bus_decode_pos(r, &pos), 0);
	freeReplyObject(r);

	r = resp("$19\r\n0123456789abcdef 12\r\n");
	ck_assert_int_eq(bus_decode_pos(r, &pos), 1);
	ck_assert_str_eq(pos.epoch, "0123456789abcdef");
	ck_assert_uint_eq(pos.seq, 12);
	freeReplyObject(r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = resp(bad[i]);
		ck_assert_msg(bus_decode_pos(r, &pos) == -1,
		    "pos accepted bad reply %zu", i);
		freeReplyObject(r);
	}
}
END_TEST

START_TEST(test_members)
{
	struct bus_member *m;
	redisReply	*r;
	size_t		 n;

	/* One user with two sessions, one connected: connected. */
	r = resp("*10\r\n$2\r\nt1\r\n$9\r\naway carl\r\n"
	    "$2\r\nt2\r\n$15\r\nconnected alice\r\n"
	    "$2\r\nt3\r\n$10\r\naway alice\r\n"
	    "$2\r\nt4\r\n$4\r\njunk\r\n"
	    "$2\r\nt5\r\n:7\r\n");
	ck_assert_int_eq(bus_decode_members(r, &m, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[0].user, "alice");
	ck_assert_int_eq(m[0].connected, 1);
	ck_assert_str_eq(m[1].user, "carl");
	ck_assert_int_eq(m[1].connected, 0);
	free(m);
	freeReplyObject(r);

	r = resp("*0\r\n");
	ck_assert_int_eq(bus_decode_members(r, &m, &n), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(n, 0);
	free(m);
	freeReplyObject(r);

	r = resp("*1\r\n$2\r\nt1\r\n");
	ck_assert_int_eq(bus_decode_members(r, &m, &n), -1);
	ck_assert_ptr_null(m);
	freeReplyObject(r);
	r = resp(ERR);
	ck_assert_int_eq(bus_decode_members(r, &m, &n), -1);
	freeReplyObject(r);
}
END_TEST

START_TEST(test_gen)
{
	redisReply	*r;
	uint64_t	 gen;

	r = resp(NIL);
	ck_assert_int_eq(bus_decode_gen(r, &gen), 0);
	ck_assert_uint_eq(gen, 0);
	freeReplyObject(r);
	r = resp("$1\r\n4\r\n");
	ck_assert_int_eq(bus_decode_gen(r, &gen), 0);
	ck_assert_uint_eq(gen, 4);
	freeReplyObject(r);
	r = resp("$2\r\n4x\r\n");
	ck_assert_int_eq(bus_decode_gen(r, &gen), -1);
	freeReplyObject(r);
	r = resp(ERR);
	ck_assert_int_eq(bus_decode_gen(r, &gen), -1);
	freeReplyObject(r);
}
END_TEST

static const struct {
	const char	*msg;
	int		 rc;
	int		 type;
	uint64_t	 num;		/* seq or gen */
	const char	*part;		/* epoch, json or token */
} events[] = {
	{ "ep 5 {\"type\":\"msg\"}", 0, BUS_EVENT_MESSAGE, 5, "ep" },
	{ "ep 18446744073709551615 x", 0, BUS_EVENT_MESSAGE,
	    18446744073709551615ULL, "ep" },
	{ "ep 5 ", 0, BUS_EVENT_MESSAGE, 5, "ep" },
	{ "! {\"type\":\"presence\"}", 0, BUS_EVENT_FRAME, 0,
	    "{\"type\":\"presence\"}" },
	{ "K ABCDEFGHIJKLMNOPQRSTUV 3", 0, BUS_EVENT_CLAIM, 3,
	    "ABCDEFGHIJKLMNOPQRSTUV" },
	{ "K ABCDEFGHIJKLMNOPQRSTU 3", -1, 0, 0, NULL },	/* short */
	{ "K ABCDEFGHIJKLMNOPQRST=V 3", -1, 0, 0, NULL },	/* alphabet */
	{ "K ABCDEFGHIJKLMNOPQRSTUV 0", -1, 0, 0, NULL },	/* gen 0 */
	{ "K ABCDEFGHIJKLMNOPQRSTUV x", -1, 0, 0, NULL },
	{ "K ABCDEFGHIJKLMNOPQRSTUV ", -1, 0, 0, NULL },
	{ "ep 0 {}", -1, 0, 0, NULL },
	{ "ep x {}", -1, 0, 0, NULL },
	{ "ep -1 {}", -1, 0, 0, NULL },
	{ "ep 18446744073709551616 {}", -1, 0, 0, NULL },	/* overflow */
	{ "ep 5", -1, 0, 0, NULL },
	{ "nospaces", -1, 0, 0, NULL },
	{ "", -1, 0, 0, NULL },
	{ "!", -1, 0, 0, NULL },
	{ " 5 {}", -1, 0, 0, NULL },				/* no epoch */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    " 5 {}", -1, 0, 0, NULL },				/* 65 bytes */
};

START_TEST(test_event)
{
	struct bus_event ev;
	size_t		 i, plen;

	for (i = 0; i < sizeof events / sizeof events[0]; i++) {
		ck_assert_msg(bus_decode_event(events[i].msg,
		    strlen(events[i].msg), &ev) == events[i].rc,
		    "event %zu: %s", i, events[i].msg);
		if (events[i].rc != 0)
			continue;
		ck_assert_int_eq(ev.type, events[i].type);
		plen = strlen(events[i].part);
		switch (ev.type) {
		case BUS_EVENT_MESSAGE:
			ck_assert_uint_eq(ev.seq, events[i].num);
			ck_assert_uint_eq(ev.elen, plen);
			ck_assert_mem_eq(ev.epoch, events[i].part, plen);
			ck_assert_ptr_eq(ev.json + ev.jlen, events[i].msg +
			    strlen(events[i].msg));
			break;
		case BUS_EVENT_FRAME:
			ck_assert_uint_eq(ev.jlen, plen);
			ck_assert_mem_eq(ev.json, events[i].part, plen);
			break;
		case BUS_EVENT_CLAIM:
			ck_assert_uint_eq(ev.gen, events[i].num);
			ck_assert_str_eq(ev.token, events[i].part);
			break;
		}
	}
}
END_TEST

/* A token with a NUL in it is refused (found by fuzz_bus). */
START_TEST(test_event_token_nul)
{
	struct bus_event ev;
	const char	 msg[] = "K ABCDEFGHIJKL\x1b\0OPQRSTUV 3";

	ck_assert_int_eq(bus_decode_event(msg, sizeof msg - 1, &ev), -1);
}
END_TEST

/* A message is not read past its length (channel payloads are binary). */
START_TEST(test_event_bounded)
{
	struct bus_event ev;
	const char	*msg = "ep 12 {}";

	ck_assert_int_eq(bus_decode_event(msg, 4, &ev), -1);	/* "ep 1" */
	ck_assert_int_eq(bus_decode_event(msg, 6, &ev), 0);
	ck_assert_uint_eq(ev.seq, 12);
	ck_assert_uint_eq(ev.jlen, 0);
}
END_TEST

/*
 * The shard of a chat: jump hash of FNV-1a 64, the values an independent
 * implementation (the sharding integration test's) gives.
 */
START_TEST(test_shard_hash)
{
	static const struct {
		const char	*chat;
		u_int		 n, want;
	} v[] = {
		{ "a", 3, 2 }, { "a", 1000, 163 }, { "room-1", 10, 5 },
		{ "room-1", 1000, 414 }, { "lobby", 10, 8 },
		{ "chat-42", 5, 3 }, { "chat-42", 1000, 740 }, { "", 1000, 266 },
	};
	char	 id[32];
	u_int	 i, n, a, b, count[4] = { 0 };

	for (i = 0; i < nitems(v); i++)
		ck_assert_uint_eq(bus_shard_hash(v[i].chat, strlen(v[i].chat),
		    v[i].n), v[i].want);
	for (i = 0; i < 40000; i++) {
		snprintf(id, sizeof id, "c%u", i);
		ck_assert_uint_eq(bus_shard_hash(id, strlen(id), 1), 0);
		count[bus_shard_hash(id, strlen(id), 4)]++;
		/* One more shard: a chat stays, or moves to the new one. */
		for (n = 1; n < 8; n++) {
			a = bus_shard_hash(id, strlen(id), n);
			b = bus_shard_hash(id, strlen(id), n + 1);
			ck_assert(b == a || b == n);
		}
	}
	for (i = 0; i < 4; i++)
		ck_assert(count[i] > 9000 && count[i] < 11000);
}
END_TEST

Suite *
bus_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("bus");
	tc = tcase_create("scripts");
	tcase_add_test(tc, test_info);
	tcase_add_test(tc, test_sent);
	tcase_add_test(tc, test_page);
	tcase_add_test(tc, test_claim);
	tcase_add_test(tc, test_pos);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_test(tc, test_range);
	tcase_add_test(tc, test_members);
	tcase_add_test(tc, test_gen);
	suite_add_tcase(s, tc);

	tc = tcase_create("channel");
	tcase_add_test(tc, test_event);
	tcase_add_test(tc, test_event_bounded);
	tcase_add_test(tc, test_event_token_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("shards");
	tcase_add_test(tc, test_shard_hash);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (testutil_run(bus_suite()));
}
