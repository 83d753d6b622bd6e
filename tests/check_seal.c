/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for seal.c (message bodies sealed at rest). */
/*
 * Envelopes are built by proto.c as racerd builds them, sealed and opened
 * with key rings made here: the plain envelope comes back byte for byte,
 * the sealed one holds no plaintext, and every way a stored body can go
 * wrong (another chat, a flipped byte, a key that is gone, a truncated
 * record) is reported in the envelope, never delivered as garbage.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "racerd.h"
#include "proto.h"
#include "testutil.h"

Suite	*seal_suite(void);

static void
ring(struct auth_keys *ks, const char *kid1, const char *kid2)
{
	const char	*kids[2] = { kid1, kid2 };
	size_t		 i;

	memset(ks, 0, sizeof *ks);
	ks->k = xcalloc(2, sizeof *ks->k);
	for (i = 0; i < 2 && kids[i] != NULL; i++) {
		snprintf(ks->k[i].kid, sizeof ks->k[i].kid, "%s", kids[i]);
		ks->k[i].alg = AUTH_STORAGE;
		ks->k[i].len = 32;
		/* A key derived from its id, so two rings agree. */
		crypto_generichash(ks->k[i].key, 32, (const uint8_t *)kids[i],
		    strlen(kids[i]), NULL, 0);
		ks->n++;
	}
}

/* An envelope as delivered: head + seq + tail. */
static char *
envelope(const char *chat, const char *body, char **tailp)
{
	char	*head, *tail, *env;

	head = proto_msg_head(chat);
	tail = proto_msg_tail("id-1", "alice", 1700000000000ULL, body,
	    strlen(body));
	ck_assert_ptr_nonnull(tail);
	xasprintf(&env, "%s42%s", head, tail);
	free(head);
	*tailp = tail;
	return (env);
}

/* The stored form of the same envelope, sealed with ks for chat. */
static char *
sealed(const struct auth_keys *ks, const char *chat, const char *tail)
{
	char	*head, *st, *env;

	head = proto_msg_head(chat);
	st = seal_tail_with(ks, chat, tail);
	ck_assert_ptr_nonnull(st);
	xasprintf(&env, "%s42%s", head, st);
	free(head);
	free(st);
	return (env);
}

START_TEST(test_roundtrip)
{
	static const char *bodies[] = { "hello", "a \"quoted\" \\ body",
	    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac", ",\"body\":\"x", "\x01", "}" };
	struct auth_keys ks;
	char		*tail, *plain, *env, *out;
	size_t		 i, outlen;

	ring(&ks, "k1", NULL);
	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		plain = envelope("lobby", bodies[i], &tail);
		env = sealed(&ks, "lobby", tail);
		ck_assert_ptr_nonnull(strstr(env, "\"from\":\"alice\""));
		if (strlen(bodies[i]) > 3)
			ck_assert_msg(strstr(env, bodies[i]) == NULL,
			    "body %zu in clear in %s", i, env);
		ck_assert_int_eq(seal_open(&ks, "lobby", 5, env, strlen(env),
		    &out, &outlen), 1);
		ck_assert_uint_eq(outlen, strlen(plain));
		ck_assert_str_eq(out, plain);
		free(out);
		/* The plain envelope is not sealed: used as it is. */
		ck_assert_int_eq(seal_open(&ks, "lobby", 5, plain,
		    strlen(plain), &out, &outlen), 0);
		ck_assert_ptr_null(out);
		free(plain);
		free(env);
		free(tail);
	}
	auth_keys_clear(&ks);
}
END_TEST

START_TEST(test_refused)
{
	struct auth_keys ks, other;
	char		*tail, *plain, *env, *out;
	size_t		 outlen, i, len;
	const char	*want = ",\"body\":null,\"sealed\":\"cannot be opened\"}";

	ring(&ks, "k1", NULL);
	plain = envelope("lobby", "secret words", &tail);
	env = sealed(&ks, "lobby", tail);
	len = strlen(env);

	/* Sealed for another chat (the chat id is associated data). */
	ck_assert_int_eq(seal_open(&ks, "lobbz", 5, env, len, &out, &outlen),
	    -1);
	ck_assert_ptr_nonnull(strstr(out, want));
	ck_assert_ptr_nonnull(strstr(out, "\"from\":\"alice\""));
	free(out);

	/*
	 * Any byte of the sealed body flipped (but the last base64 digit,
	 * whose low bits may be padding).
	 */
	for (i = strstr(env, "\x01") - env + 4; i < len - 3; i++) {
		env[i] ^= 0x01;
		ck_assert_int_eq(seal_open(&ks, "lobby", 5, env, len, &out,
		    &outlen), -1);
		free(out);
		env[i] ^= 0x01;
	}
	/* Truncated. */
	ck_assert_int_eq(seal_open(&ks, "lobby", 5, env, len - 10, &out,
	    &outlen), -1);
	free(out);

	/* A key that is gone. */
	ring(&other, "k2", NULL);
	ck_assert_int_eq(seal_open(&other, "lobby", 5, env, len, &out,
	    &outlen), -1);
	ck_assert_ptr_nonnull(strstr(out, "\"sealed\":\"unknown key k1\""));
	free(out);
	auth_keys_clear(&other);

	/* Rotation: a new first key, the old one still opens. */
	ring(&other, "k2", "k1");
	ck_assert_int_eq(seal_open(&other, "lobby", 5, env, len, &out,
	    &outlen), 1);
	ck_assert_str_eq(out, plain);
	free(out);
	free(env);
	env = sealed(&other, "lobby", tail);
	ck_assert_ptr_nonnull(strstr(env, "\x01k2:"));
	ck_assert_int_eq(seal_open(&ks, "lobby", 5, env, strlen(env), &out,
	    &outlen), -1);
	free(out);
	auth_keys_clear(&other);

	free(env);
	free(plain);
	free(tail);
	auth_keys_clear(&ks);
}
END_TEST

Suite *
seal_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("seal");
	tc = tcase_create("seal");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_refused);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (testutil_run(seal_suite()));
}
