/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for the server-free logic of ws.c and conn.c. */
/*
 * The message rate bucket (max-message-rate), the Origin check
 * (allowed-origins), the close codes and their classes, and outbound
 * accounting (the position a session records, acks, max-outbound-bytes,
 * which close ends a session): each a function of its inputs, tested
 * without a socket.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "racerd.h"
#include "http.h"
#include "testutil.h"

Suite	*conn_suite(void);

/* A full bucket lets rate messages through at once, then one per 1/rate s. */
START_TEST(test_bucket_burst)
{
	double		 tokens = 10;
	uint64_t	 at = 1000;
	int		 i;

	for (i = 0; i < 10; i++)
		ck_assert_int_eq(ws_bucket_take(&tokens, &at, 1000, 10), 1);
	ck_assert_int_eq(ws_bucket_take(&tokens, &at, 1000, 10), 0);
	/* 99 ms: not yet a tenth of a second. */
	ck_assert_int_eq(ws_bucket_take(&tokens, &at, 1099, 10), 0);
	ck_assert_int_eq(ws_bucket_take(&tokens, &at, 1100, 10), 1);
	ck_assert_int_eq(ws_bucket_take(&tokens, &at, 1100, 10), 0);
}
END_TEST

/* A long quiet spell fills the bucket to rate, never beyond. */
START_TEST(test_bucket_cap)
{
	double		 tokens = 0;
	uint64_t	 at = 0;
	int		 i, n = 0;

	for (i = 0; i < 100; i++)
		n += ws_bucket_take(&tokens, &at, 3600000, 5);
	ck_assert_int_eq(n, 5);
	ck_assert(tokens >= 0 && tokens < 1);
	ck_assert_uint_eq(at, 3600000);
}
END_TEST

/* Paced at exactly the rate, nothing is refused. */
START_TEST(test_bucket_steady)
{
	double		 tokens = 0;
	uint64_t	 at = 0, t;
	int		 refused = 0;

	for (t = 1; t <= 10000; t++)
		refused += !ws_bucket_take(&tokens, &at, t, 1000);
	ck_assert_int_eq(refused, 0);
}
END_TEST

START_TEST(test_origin)
{
	/* No list: anyone; no Origin: not a browser, allowed. */
	ck_assert_int_eq(conn_origin_allowed("", "https://evil.example"), 1);
	ck_assert_int_eq(conn_origin_allowed("https://a.example", NULL), 1);
	ck_assert_int_eq(conn_origin_allowed("https://a.example  "
	    "http://b.example", "http://b.example"), 1);
	ck_assert_int_eq(conn_origin_allowed("https://a.example",
	    "HTTPS://A.EXAMPLE"), 1);
	ck_assert_int_eq(conn_origin_allowed("\thttps://a.example",
	    "https://a.example"), 1);
	ck_assert_int_eq(conn_origin_allowed("*", "https://any.example"), 1);
	/* A prefix, a longer name or another scheme is not a match. */
	ck_assert_int_eq(conn_origin_allowed("https://a.example",
	    "https://a.example.evil"), 0);
	ck_assert_int_eq(conn_origin_allowed("https://a.example.evil",
	    "https://a.example"), 0);
	ck_assert_int_eq(conn_origin_allowed("https://a.example",
	    "http://a.example"), 0);
	ck_assert_int_eq(conn_origin_allowed("**", "https://a.example"), 0);
	ck_assert_int_eq(conn_origin_allowed("https://a.example", ""), 0);
}
END_TEST

/* What a session records as the client's position. */
START_TEST(test_position)
{
	/* Nothing pending: everything queued has left. */
	ck_assert(conn_position(7, 5, 0, 0) == 7);
	/* Bytes pending: only what had left when the output last drained. */
	ck_assert(conn_position(7, 5, 0, 100) == 5);
	/* An ack is proof of its own. */
	ck_assert(conn_position(7, 5, 6, 100) == 6);
	ck_assert(conn_position(7, 7, 3, 0) == 7);
	ck_assert(conn_position(0, 0, 0, 0) == 0);
}
END_TEST

START_TEST(test_acked)
{
	ck_assert(conn_acked(0, 10, 4) == 4);
	ck_assert(conn_acked(4, 10, 10) == 10);
	/* Never back, never past what was queued, never negative. */
	ck_assert(conn_acked(4, 10, 3) == 4);
	ck_assert(conn_acked(4, 10, 11) == 4);
	ck_assert(conn_acked(4, 10, -1) == 4);
	ck_assert(conn_acked(0, 0, 0) == 0);
}
END_TEST

/* max-outbound-bytes: at the limit is allowed, one byte more is not. */
START_TEST(test_over_limit)
{
	ck_assert_int_eq(conn_over_limit(0, 1024, 1024), 0);
	ck_assert_int_eq(conn_over_limit(1000, 24, 1024), 0);
	ck_assert_int_eq(conn_over_limit(1000, 25, 1024), 1);
	ck_assert_int_eq(conn_over_limit(0, 1025, 1024), 1);
	ck_assert_int_eq(conn_over_limit(2048, 0, 1024), 1);
	/* No wrap-around for huge sizes. */
	ck_assert_int_eq(conn_over_limit(1000, SIZE_MAX, 1024), 1);
	ck_assert_int_eq(conn_over_limit(SIZE_MAX, 1, SIZE_MAX), 1);
}
END_TEST

/* Only the client's own 1000 ends a session; the rest can resume. */
START_TEST(test_close_ends_session)
{
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_NORMAL, 1), 1);
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_NORMAL, 0), 0);
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_GOING_AWAY, 1), 0);
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_ABNORMAL, 0), 0);
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_TOO_SLOW, 0), 0);
	ck_assert_int_eq(conn_close_ends_session(WS_CLOSE_TAKEN_OVER, 0), 0);
}
END_TEST

/*
 * The close codes racerd sends, by class (racerd-protocol(7)): 1xxx of
 * RFC 6455, 40xx "do not reconnect as is", 41xx "reconnect later", 42xx
 * "resume now".
 */
START_TEST(test_close_classes)
{
	ck_assert_int_eq(WS_CLOSE_NORMAL, 1000);
	ck_assert_int_eq(WS_CLOSE_PROTOCOL, 1002);
	ck_assert_int_eq(WS_CLOSE_UNSUPPORTED, 1003);
	ck_assert_int_eq(WS_CLOSE_POLICY, 1008);
	ck_assert_int_eq(WS_CLOSE_BAD_DATA, 1007);
	ck_assert_int_eq(WS_CLOSE_TOO_BIG, 1009);
	ck_assert(WS_CLOSE_IS_FINAL(WS_CLOSE_UNAUTHORIZED));
	ck_assert(WS_CLOSE_IS_FINAL(WS_CLOSE_FORBIDDEN));
	ck_assert(WS_CLOSE_IS_FINAL(WS_CLOSE_TAKEN_OVER));
	ck_assert(WS_CLOSE_IS_LATER(WS_CLOSE_RATE));
	ck_assert(WS_CLOSE_IS_RESUME(WS_CLOSE_RESTART));
	ck_assert(WS_CLOSE_IS_RESUME(WS_CLOSE_TOO_SLOW));
	/* The classes do not overlap, and RFC 6455's codes are in none. */
	ck_assert(!WS_CLOSE_IS_LATER(4099) && !WS_CLOSE_IS_FINAL(4100));
	ck_assert(!WS_CLOSE_IS_RESUME(4199) && !WS_CLOSE_IS_LATER(4200));
	ck_assert(!WS_CLOSE_IS_RESUME(4300) && !WS_CLOSE_IS_FINAL(3999));
	ck_assert(!WS_CLOSE_IS_FINAL(WS_CLOSE_NORMAL) &&
	    !WS_CLOSE_IS_LATER(WS_CLOSE_POLICY) &&
	    !WS_CLOSE_IS_RESUME(WS_CLOSE_GOING_AWAY));
}
END_TEST

Suite *
conn_suite(void)
{
	Suite	*s = suite_create("conn");
	TCase	*tc;

	tc = tcase_create("rate");
	tcase_add_test(tc, test_bucket_burst);
	tcase_add_test(tc, test_bucket_cap);
	tcase_add_test(tc, test_bucket_steady);
	suite_add_tcase(s, tc);

	tc = tcase_create("upgrade");
	tcase_add_test(tc, test_origin);
	tcase_add_test(tc, test_close_classes);
	tcase_add_test(tc, test_position);
	tcase_add_test(tc, test_acked);
	tcase_add_test(tc, test_over_limit);
	tcase_add_test(tc, test_close_ends_session);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	return (testutil_run(conn_suite()));
}
