/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for static.c (the pure parts). */
/*
 * The path mapping is what keeps requests inside webroot: every spelling
 * of "..", encoded slashes, NULs and dot files must be refused before a
 * file is opened.  Opening itself (symbolic links out of the root) is
 * tested against a real directory by tests/integration/web_static.sh.
 */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "racerd.h"
#include "testutil.h"

Suite	*static_suite(void);

START_TEST(test_map_good)
{
	static const struct {
		const char	*path, *rel;
	} good[] = {
		{ "/", "index.html" },
		{ "/racer.js", "racer.js" },
		{ "/vendor/", "vendor/index.html" },
		{ "/vendor/libsodium-sumo.mjs", "vendor/libsodium-sumo.mjs" },
		{ "/a%20b.txt", "a b.txt" },
		{ "/a+b", "a+b" },
		{ "/x.y.z", "x.y.z" },
		{ "/caf%C3%A9", "caf\xc3\xa9" }
	};
	char	 rel[PATH_MAX];
	size_t	 i;

	for (i = 0; i < nitems(good); i++) {
		ck_assert_msg(static_map(good[i].path, rel, sizeof rel) == 0,
		    "%s refused", good[i].path);
		ck_assert_str_eq(rel, good[i].rel);
	}
}
END_TEST

START_TEST(test_map_bad)
{
	static const char *bad[] = {
		"", "racer.js", "/..", "/../etc/passwd", "/a/../b",
		"/%2e%2e/etc/passwd", "/%2E%2E/x", "/.%2e/x", "/a/%2e%2e",
		"/a%2fb", "/a%2F..%2Fb", "/..%2f..%2fetc", "/a%5cb", "/a\\b",
		"/.git/config", "/.htpasswd", "/a/.hidden", "/.", "/./x",
		"//etc/passwd", "/a//b", "/a%00b", "/a%", "/a%zz", "/%"
	};
	char	 rel[PATH_MAX];
	size_t	 i;

	for (i = 0; i < nitems(bad); i++) {
		ck_assert_msg(static_map(bad[i], rel, sizeof rel) == -1,
		    "%s not refused", bad[i]);
	}
	ck_assert_int_eq(static_map(NULL, rel, sizeof rel), -1);
	ck_assert_int_eq(static_map("/abcdef", rel, 4), -1);
}
END_TEST

START_TEST(test_etag_match)
{
	const char	*e = "\"1f-2a-3b000000000\"";

	ck_assert_int_eq(static_etag_match(NULL, e), 0);
	ck_assert_int_eq(static_etag_match("", e), 0);
	ck_assert_int_eq(static_etag_match(e, e), 1);
	ck_assert_int_eq(static_etag_match("*", e), 1);
	ck_assert_int_eq(static_etag_match("W/\"1f-2a-3b000000000\"", e), 1);
	ck_assert_int_eq(static_etag_match("\"x\", \"1f-2a-3b000000000\"",
	    e), 1);
	ck_assert_int_eq(static_etag_match("\"1f-2a-3b00000000\"", e), 0);
	ck_assert_int_eq(static_etag_match("\"x\",\"y\"", e), 0);
	ck_assert_int_eq(static_etag_match("\"unterminated", e), 0);
}
END_TEST

START_TEST(test_type)
{
	ck_assert_str_eq(static_type("index.html"), "text/html; charset=utf-8");
	ck_assert_str_eq(static_type("racer.js"),
	    "text/javascript; charset=utf-8");
	ck_assert_str_eq(static_type("vendor/x.mjs"),
	    "text/javascript; charset=utf-8");
	ck_assert_str_eq(static_type("style.CSS"), "text/css; charset=utf-8");
	ck_assert_str_eq(static_type("LICENSE"), "application/octet-stream");
	ck_assert_str_eq(static_type("a.d/LICENSE"),
	    "application/octet-stream");
}
END_TEST

Suite *
static_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("static");
	tc = tcase_create("map");
	tcase_add_test(tc, test_map_good);
	tcase_add_test(tc, test_map_bad);
	suite_add_tcase(s, tc);
	tc = tcase_create("etag");
	tcase_add_test(tc, test_etag_match);
	tcase_add_test(tc, test_type);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (testutil_run(static_suite()));
}
