/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for proto.c. */
/*
 * Client frames are decoded from tables of valid and invalid inputs, each
 * with the error code the client must see; server frames are compared
 * byte for byte and parsed back with jansson.  The UTF-8 validator is
 * checked against a table (Autobahn-style cases), every split of a valid
 * string, and an independent reference decoder over all short sequences.
 */
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "racerd.h"
#include "proto.h"
#include "testutil.h"

Suite	*proto_suite(void);

/* Parse a NUL-terminated frame; returns proto_parse's answer. */
static int
parse(const char *s, struct proto_in *in, const char **code,
    const char **msg)
{
	*code = *msg = NULL;
	return (proto_parse(s, strlen(s), in, code, msg));
}

START_TEST(test_parse_msg)
{
	struct proto_in	 in;
	const char	*code, *msg;
	char		 id[RD_MSGID_MAX + 1], buf[256];

	ck_assert_int_eq(parse("{\"type\":\"msg\",\"body\":\"hi\"}", &in,
	    &code, &msg), 0);
	ck_assert_int_eq(in.type, PROTO_MSG);
	ck_assert_uint_eq(in.body_len, 2);
	ck_assert_mem_eq(in.body, "hi", 2);
	ck_assert_str_eq(in.id, "");
	ck_assert_ptr_nonnull(in.root);
	ck_assert_ptr_null(code);
	proto_in_clear(&in);
	ck_assert_ptr_null(in.root);
	proto_in_clear(&in);		/* twice is harmless */

	/* Escapes are decoded; unknown fields and whitespace are fine. */
	ck_assert_int_eq(parse(" {\"extra\":[1,{}], \"body\" : "
	    "\"a\\\"b\\\\c\\nd\\u00e9\\ud83d\\ude00\", \"type\":\"msg\", "
	    "\"id\":\"c-1\"}\r\n", &in, &code, &msg), 0);
	ck_assert_int_eq(in.type, PROTO_MSG);
	ck_assert_uint_eq(in.body_len, 13);
	ck_assert_mem_eq(in.body, "a\"b\\c\nd\xc3\xa9\xf0\x9f\x98\x80", 13);
	ck_assert_str_eq(in.id, "c-1");
	proto_in_clear(&in);

	/* An id of exactly RD_MSGID_MAX bytes, including non-ASCII. */
	memset(id, 'x', RD_MSGID_MAX);
	memcpy(id, "\xc3\xa9", 2);
	id[RD_MSGID_MAX] = '\0';
	snprintf(buf, sizeof buf, "{\"type\":\"msg\",\"body\":\" \","
	    "\"id\":\"%s\"}", id);
	ck_assert_int_eq(parse(buf, &in, &code, &msg), 0);
	ck_assert_str_eq(in.id, id);
	ck_assert_uint_eq(in.body_len, 1);
	proto_in_clear(&in);
}
END_TEST

START_TEST(test_parse_ack_history)
{
	struct proto_in	 in;
	const char	*code, *msg;

	ck_assert_int_eq(parse("{\"type\":\"ack\",\"seq\":0}", &in, &code,
	    &msg), 0);
	ck_assert_int_eq(in.type, PROTO_ACK);
	ck_assert_int_eq(in.seq, 0);
	proto_in_clear(&in);

	ck_assert_int_eq(parse("{\"seq\":9223372036854775807,"
	    "\"type\":\"ack\"}", &in, &code, &msg), 0);
	ck_assert_int_eq(in.seq, INT64_MAX);
	proto_in_clear(&in);

	ck_assert_int_eq(parse("{\"type\":\"history\"}", &in, &code, &msg),
	    0);
	ck_assert_int_eq(in.type, PROTO_HISTORY);
	ck_assert_int_eq(in.before, -1);
	ck_assert_int_eq(in.limit, 0);
	proto_in_clear(&in);

	ck_assert_int_eq(parse("{\"type\":\"history\",\"before\":1,"
	    "\"limit\":1}", &in, &code, &msg), 0);
	ck_assert_int_eq(in.before, 1);
	ck_assert_int_eq(in.limit, 1);
	proto_in_clear(&in);

	ck_assert_int_eq(parse("{\"type\":\"history\",\"limit\":1000,"
	    "\"before\":9007199254740993}", &in, &code, &msg), 0);
	ck_assert_int_eq(in.before, 9007199254740993LL);
	ck_assert_int_eq(in.limit, 1000);
	proto_in_clear(&in);
}
END_TEST

/* The frame is exactly len bytes: what follows in memory is not read. */
START_TEST(test_parse_len)
{
	struct proto_in	 in;
	const char	*code, *msg;
	static const char buf[] = "{\"type\":\"ack\",\"seq\":7}garbage";

	ck_assert_int_eq(proto_parse(buf, 22, &in, &code, &msg), 0);
	ck_assert_int_eq(in.seq, 7);
	proto_in_clear(&in);
	ck_assert_int_eq(proto_parse(buf, 21, &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_json");
	ck_assert_int_eq(proto_parse(buf, 23, &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_json");
	ck_assert_int_eq(proto_parse(buf, 0, &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_json");
	ck_assert_int_eq(proto_parse(NULL, 0, &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_json");
}
END_TEST

static const struct {
	const char	*in;
	const char	*code;
} bad_frames[] = {
	/* Not JSON, not an object, trailing garbage, not UTF-8. */
	{ "", "bad_json" },
	{ "   ", "bad_json" },
	{ "hello", "bad_json" },
	{ "{", "bad_json" },
	{ "[{\"type\":\"ack\",\"seq\":1}]", "bad_json" },
	{ "\"msg\"", "bad_json" },
	{ "42", "bad_json" },
	{ "null", "bad_json" },
	{ "{'type':'ack','seq':1}", "bad_json" },
	{ "{\"type\":\"ack\",\"seq\":1,}", "bad_json" },
	{ "{\"type\":\"ack\",\"seq\":1} x", "bad_json" },
	{ "{\"type\":\"ack\",\"seq\":1}{}", "bad_json" },
	{ "{\"type\":\"ack\",\"seq\":01}", "bad_json" },
	{ "{\"type\":\"msg\",\"type\":\"msg\",\"body\":\"x\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"body\":\"y\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"a\\u0000b\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\\ud800\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\\udc00\\ud800\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\\x41\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"a\nb\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"a\xff" "b\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\xc0\xaf\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\xed\xa0\x80\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\xf4\x90\x80\x80\"}", "bad_json" },
	{ "{\"type\":\"msg\",\"body\":\"\xe2\x82\"}", "bad_json" },
	/* Integers jansson cannot hold are not JSON we accept. */
	{ "{\"type\":\"ack\",\"seq\":99999999999999999999}", "bad_json" },

	/* Missing or unknown type. */
	{ "{}", "bad_type" },
	{ "{\"body\":\"x\"}", "bad_type" },
	{ "{\"type\":1,\"body\":\"x\"}", "bad_type" },
	{ "{\"type\":null}", "bad_type" },
	{ "{\"type\":[\"msg\"]}", "bad_type" },
	{ "{\"type\":\"\"}", "bad_type" },
	{ "{\"type\":\"MSG\",\"body\":\"x\"}", "bad_type" },
	{ "{\"type\":\"msg \",\"body\":\"x\"}", "bad_type" },
	{ "{\"type\":\"welcome\"}", "bad_type" },
	{ "{\"type\":\"error\"}", "bad_type" },

	/* msg */
	{ "{\"type\":\"msg\"}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":null}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":1}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":[\"x\"]}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":{}}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"\"}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":1}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":null}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"\"}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"a\\nb\"}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"\\t\"}", "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"a\\u007f\"}",
	    "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"a\\u0085\"}",
	    "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":\"a\xc2\x9f\"}",
	    "bad_field" },
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":"
	    "\"0123456789012345678901234567890123456789"
	    "012345678901234567890123X\"}", "bad_field" },	/* 65 */
	{ "{\"type\":\"msg\",\"body\":\"x\",\"id\":"
	    "\"0123456789012345678901234567890123456789"
	    "01234567890123456789012\xc3\xa9\"}", "bad_field" }, /* 65 */

	/* ack */
	{ "{\"type\":\"ack\"}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":null}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":-1}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":1.5}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":1.0}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":1e3}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":\"1\"}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":true}", "bad_field" },
	{ "{\"type\":\"ack\",\"seq\":-9223372036854775808}", "bad_field" },

	/* history */
	{ "{\"type\":\"history\",\"before\":0}", "bad_field" },
	{ "{\"type\":\"history\",\"before\":-1}", "bad_field" },
	{ "{\"type\":\"history\",\"before\":2.0}", "bad_field" },
	{ "{\"type\":\"history\",\"before\":\"5\"}", "bad_field" },
	{ "{\"type\":\"history\",\"before\":null}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":0}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":-1}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":1001}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":4294967297}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":10.0}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":\"10\"}", "bad_field" },
	{ "{\"type\":\"history\",\"limit\":false}", "bad_field" },
	{ "{\"type\":\"history\",\"before\":5,\"limit\":0}", "bad_field" },
};

START_TEST(test_parse_bad)
{
	struct proto_in	 in;
	const char	*code, *msg;
	size_t		 i;

	for (i = 0; i < nitems(bad_frames); i++) {
		memset(&in, 0xa5, sizeof in);
		if (parse(bad_frames[i].in, &in, &code, &msg) != -1)
			ck_abort_msg("accepted %zu: %s", i, bad_frames[i].in);
		ck_assert_ptr_nonnull(code);
		ck_assert_ptr_nonnull(msg);
		ck_assert_msg(strcmp(code, bad_frames[i].code) == 0,
		    "frame %zu %s: %s (%s), wanted %s", i, bad_frames[i].in,
		    code, msg, bad_frames[i].code);
		ck_assert_ptr_null(in.root);
		ck_assert_ptr_null(in.body);
		proto_in_clear(&in);
	}
}
END_TEST

START_TEST(test_parse_messages)
{
	struct proto_in	 in;
	const char	*code, *msg;

	ck_assert_int_eq(parse("{\"type\":\"msg\",\"body\":\"\"}", &in, &code,
	    &msg), -1);
	ck_assert_str_eq(code, "bad_field");
	ck_assert_str_eq(msg, "empty message");

	ck_assert_int_eq(parse("{\"type\":\"nope\"}", &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_type");
	ck_assert_str_eq(msg, "unknown type");

	ck_assert_int_eq(parse("[]", &in, &code, &msg), -1);
	ck_assert_str_eq(code, "bad_json");
	ck_assert_str_eq(msg, "frame is not a JSON object");
}
END_TEST

START_TEST(test_build_exact)
{
	char	*s;

	s = proto_welcome("room-1", "alice", "tok.en", "e1", 42, 120);
	ck_assert_str_eq(s, "{\"type\":\"welcome\",\"chat\":\"room-1\","
	    "\"user\":\"alice\",\"session\":\"tok.en\",\"epoch\":\"e1\","
	    "\"seq\":42,\"window\":120}");
	free(s);
	s = proto_welcome("c", "u", "t", "e", INT64_MAX, 0);
	ck_assert_str_eq(s, "{\"type\":\"welcome\",\"chat\":\"c\","
	    "\"user\":\"u\",\"session\":\"t\",\"epoch\":\"e\","
	    "\"seq\":9223372036854775807,\"window\":0}");
	free(s);

	s = proto_error("bad_json", "invalid JSON");
	ck_assert_str_eq(s, "{\"type\":\"error\",\"code\":\"bad_json\","
	    "\"message\":\"invalid JSON\"}");
	free(s);

	s = proto_presence("join", "bob");
	ck_assert_str_eq(s, "{\"type\":\"presence\",\"event\":\"join\","
	    "\"user\":\"bob\"}");
	free(s);
	s = proto_presence("away", "guest-0a1b2c3d");
	ck_assert_str_eq(s, "{\"type\":\"presence\",\"event\":\"away\","
	    "\"user\":\"guest-0a1b2c3d\"}");
	free(s);

	s = proto_resumed(5, 9, 4, 1);
	ck_assert_str_eq(s, "{\"type\":\"resumed\",\"from\":5,\"to\":9,"
	    "\"replayed\":4,\"complete\":true}");
	free(s);
	s = proto_resumed(0, 1234567890123, 0, 0);
	ck_assert_str_eq(s, "{\"type\":\"resumed\",\"from\":0,"
	    "\"to\":1234567890123,\"replayed\":0,\"complete\":false}");
	free(s);
	s = proto_resumed(1, 2, 1, 7);		/* any non-zero is true */
	ck_assert_str_eq(s, "{\"type\":\"resumed\",\"from\":1,\"to\":2,"
	    "\"replayed\":1,\"complete\":true}");
	free(s);

	s = proto_msg_head("room-1");
	ck_assert_str_eq(s, "{\"type\":\"msg\",\"chat\":\"room-1\",\"seq\":");
	free(s);
	s = proto_msg_tail("c1", "alice", 1700000000000ULL, "hi", 2);
	ck_assert_str_eq(s, ",\"id\":\"c1\",\"from\":\"alice\","
	    "\"ts\":1700000000000,\"body\":\"hi\"}");
	free(s);
	s = proto_msg_tail(NULL, "alice", UINT64_MAX, "hi there", 2);
	ck_assert_str_eq(s, ",\"id\":null,\"from\":\"alice\","
	    "\"ts\":18446744073709551615,\"body\":\"hi\"}");
	free(s);
	s = proto_msg_tail("", "a", 0, "a\0b", 3);
	ck_assert_str_eq(s, ",\"id\":\"\",\"from\":\"a\",\"ts\":0,"
	    "\"body\":\"a\\u0000b\"}");
	free(s);
}
END_TEST

/* Quotes, backslash, control characters, DEL, '/', non-ASCII, U+2028. */
#define NASTY		"q\"b\\n\nr\rt\tf\fb\bc\x01\x1f" "d\x7f/\xc3\xa9" \
			"\xe2\x80\xa8\xf0\x9f\x98\x80"
#define NASTY_JSON	"\"q\\\"b\\\\n\\nr\\rt\\tf\\fb\\bc\\u0001\\u001F" \
			"d\x7f/\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\""

START_TEST(test_build_escape)
{
	char	*s;

	s = proto_error("x", NASTY);
	ck_assert_str_eq(s, "{\"type\":\"error\",\"code\":\"x\","
	    "\"message\":" NASTY_JSON "}");
	free(s);

	s = proto_presence(NASTY, NASTY);
	ck_assert_str_eq(s, "{\"type\":\"presence\",\"event\":" NASTY_JSON
	    ",\"user\":" NASTY_JSON "}");
	free(s);

	s = proto_welcome(NASTY, NASTY, NASTY, NASTY, 1, 2);
	ck_assert_str_eq(s, "{\"type\":\"welcome\",\"chat\":" NASTY_JSON
	    ",\"user\":" NASTY_JSON ",\"session\":" NASTY_JSON
	    ",\"epoch\":" NASTY_JSON ",\"seq\":1,\"window\":2}");
	free(s);

	s = proto_msg_head(NASTY);
	ck_assert_str_eq(s, "{\"type\":\"msg\",\"chat\":" NASTY_JSON
	    ",\"seq\":");
	free(s);

	s = proto_msg_tail(NASTY, NASTY, 3, NASTY, strlen(NASTY));
	ck_assert_str_eq(s, ",\"id\":" NASTY_JSON ",\"from\":" NASTY_JSON
	    ",\"ts\":3,\"body\":" NASTY_JSON "}");
	free(s);
}
END_TEST

START_TEST(test_build_null)
{
	ck_assert_ptr_null(proto_error(NULL, "x"));
	ck_assert_ptr_null(proto_error("x", NULL));
	ck_assert_ptr_null(proto_error("x", "a\xff"));
	ck_assert_ptr_null(proto_presence("join", "\xc0\xaf"));
	ck_assert_ptr_null(proto_welcome("c", "u", "s", "\xed\xa0\x80", 1,
	    1));
	ck_assert_ptr_null(proto_welcome("c", NULL, "s", "e", 1, 1));
	ck_assert_ptr_null(proto_msg_head(NULL));
	ck_assert_ptr_null(proto_msg_head("\xe2\x82"));
	ck_assert_ptr_null(proto_msg_tail("i", NULL, 1, "b", 1));
	ck_assert_ptr_null(proto_msg_tail("i", "u", 1, NULL, 0));
	ck_assert_ptr_null(proto_msg_tail("\x80", "u", 1, "b", 1));
	ck_assert_ptr_null(proto_msg_tail("i", "u", 1, "\xf4\x90\x80\x80",
	    4));
	/* body_len counts: a cut code point is invalid. */
	ck_assert_ptr_null(proto_msg_tail("i", "u", 1, "\xc3\xa9", 1));
}
END_TEST

/* Build head + seq + tail; the caller frees. */
static char *
envelope(const char *chat, int64_t seq, const char *id, const char *from,
    uint64_t ts, const char *body, size_t body_len)
{
	char	*head, *tail, *s;

	head = proto_msg_head(chat);
	tail = proto_msg_tail(id, from, ts, body, body_len);
	ck_assert_ptr_nonnull(head);
	ck_assert_ptr_nonnull(tail);
	xasprintf(&s, "%s%" PRId64 "%s", head, seq, tail);
	free(head);
	free(tail);
	return (s);
}

START_TEST(test_envelope_roundtrip)
{
	static const char *keys[] = {
		"type", "chat", "seq", "id", "from", "ts", "body"
	};
	char		 body[300], *s;
	json_t		*j, *v;
	json_error_t	 err;
	void		*it;
	size_t		 i, n;

	/* Every byte 0x01..0x7f, then non-ASCII including U+2028/2029. */
	for (n = 0; n < 127; n++)
		body[n] = (char)(n + 1);
	memcpy(body + n, "\xe2\x80\xa8\xe2\x80\xa9\xef\xbf\xbf\xf4\x8f\xbf\xbf",
	    13);
	n += 13;

	s = envelope("room:1.a_b-c", 9007199254740993LL, "\"id\\",
	    "us\"er", 1700000000123ULL, body, n);
	j = json_loads(s, JSON_REJECT_DUPLICATES, &err);
	ck_assert_msg(j != NULL, "%s: %s", s, err.text);
	ck_assert_uint_eq(json_object_size(j), nitems(keys));
	for (i = 0, it = json_object_iter(j); it != NULL;
	    i++, it = json_object_iter_next(j, it))
		ck_assert_str_eq(json_object_iter_key(it), keys[i]);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "msg");
	ck_assert_str_eq(json_string_value(json_object_get(j, "chat")),
	    "room:1.a_b-c");
	v = json_object_get(j, "seq");
	ck_assert(json_is_integer(v));
	ck_assert_int_eq(json_integer_value(v), 9007199254740993LL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")),
	    "\"id\\");
	ck_assert_str_eq(json_string_value(json_object_get(j, "from")),
	    "us\"er");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "ts")),
	    1700000000123LL);
	v = json_object_get(j, "body");
	ck_assert_uint_eq(json_string_length(v), n);
	ck_assert_mem_eq(json_string_value(v), body, n);
	json_decref(j);
	free(s);

	/* A NULL id comes back as null. */
	s = envelope("c", 1, NULL, "u", 0, "x", 1);
	j = json_loads(s, JSON_REJECT_DUPLICATES, &err);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_null(json_object_get(j, "id")));
	json_decref(j);
	free(s);
}
END_TEST

START_TEST(test_history)
{
	const char	*env[3];
	char		*e[3], *s;
	int64_t		 seqs[3] = { 1, 2, 3 };
	json_t		*j, *a;
	json_error_t	 err;
	size_t		 i, n;

	s = proto_history(NULL, 0);
	ck_assert_str_eq(s, "{\"type\":\"history\",\"messages\":[]}");
	j = json_loads(s, 0, &err);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "messages")), 0);
	json_decref(j);
	free(s);

	/* Inserted verbatim, in order, comma-separated. */
	env[0] = "{\"a\":1}";
	env[1] = "{\"b\":[2]}";
	env[2] = "{\"c\":\"3\"}";
	s = proto_history(env, 1);
	ck_assert_str_eq(s, "{\"type\":\"history\",\"messages\":[{\"a\":1}]}");
	free(s);
	s = proto_history(env, 3);
	ck_assert_str_eq(s, "{\"type\":\"history\",\"messages\":"
	    "[{\"a\":1},{\"b\":[2]},{\"c\":\"3\"}]}");
	free(s);

	for (n = 1; n <= 3; n += 2) {
		for (i = 0; i < n; i++) {
			e[i] = envelope("room", seqs[i], "i", "u\"",
			    1000 + i, NASTY, strlen(NASTY));
			env[i] = e[i];
		}
		s = proto_history(env, n);
		j = json_loads(s, JSON_REJECT_DUPLICATES, &err);
		ck_assert_msg(j != NULL, "%s: %s", s, err.text);
		ck_assert_str_eq(json_string_value(json_object_get(j, "type")),
		    "history");
		a = json_object_get(j, "messages");
		ck_assert_uint_eq(json_array_size(a), n);
		for (i = 0; i < n; i++) {
			ck_assert_int_eq(json_integer_value(json_object_get(
			    json_array_get(a, i), "seq")), seqs[i]);
			ck_assert_str_eq(json_string_value(json_object_get(
			    json_array_get(a, i), "body")), NASTY);
			ck_assert_ptr_nonnull(strstr(s, e[i]));
			free(e[i]);
		}
		json_decref(j);
		free(s);
	}
}
END_TEST

static const struct {
	const char	*s;
	size_t		 len;
	int		 valid;
} utf8_cases[] = {
#define V(s)	{ s, sizeof (s) - 1, 1 }
#define I(s)	{ s, sizeof (s) - 1, 0 }
	V(""),
	V("a"),
	V("\0"),
	V("abcdefg"),
	V("abcdefgh"),
	V("abcdefghijklmnopq"),
	V("\x7f"),
	V("\xc2\x80"),				/* U+0080 */
	V("\xdf\xbf"),				/* U+07FF */
	V("\xe0\xa0\x80"),			/* U+0800 */
	V("\xe2\x82\xac"),			/* U+20AC */
	V("\xe2\x80\xa8"),			/* U+2028 */
	V("\xed\x9f\xbf"),			/* U+D7FF */
	V("\xee\x80\x80"),			/* U+E000 */
	V("\xef\xbf\xbd"),			/* U+FFFD */
	V("\xef\xbf\xbf"),			/* U+FFFF */
	V("\xf0\x90\x80\x80"),			/* U+10000 */
	V("\xf0\x9f\x98\x80"),			/* U+1F600 */
	V("\xf4\x8f\xbf\xbf"),			/* U+10FFFF */
	V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),	/* κόσμε */
	V("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1"
	    "-UTF-8!!"),				/* Autobahn 6.2.1 */
	I("\x80"),				/* lone continuation */
	I("\xbf"),
	I("\x80\xbf\x80\xbf"),
	I("\xc0\xaf"),				/* overlong '/' */
	I("\xc0\x80"),				/* overlong NUL */
	I("\xc1\xbf"),
	I("\xe0\x80\xaf"),
	I("\xe0\x9f\xbf"),			/* overlong U+07FF */
	I("\xf0\x80\x80\xaf"),
	I("\xf0\x8f\xbf\xbf"),			/* overlong U+FFFF */
	I("\xf8\x80\x80\x80\xaf"),		/* 5-byte forms */
	I("\xfc\x80\x80\x80\x80\xaf"),
	I("\xed\xa0\x80"),			/* U+D800 */
	I("\xed\xad\xbf"),
	I("\xed\xb0\x80"),			/* U+DC00 */
	I("\xed\xbf\xbf"),			/* U+DFFF */
	I("\xed\xa0\x80\xed\xb0\x80"),		/* surrogate pair */
	I("\xf4\x90\x80\x80"),			/* U+110000 */
	I("\xf5\x80\x80\x80"),
	I("\xf7\xbf\xbf\xbf"),
	I("\xfe"),
	I("\xff"),
	I("\xfe\xfe\xff\xff"),
	I("\xc2"),				/* truncated */
	I("\xe2\x82"),
	I("\xf0\x9f\x98"),
	I("\xf0\x9f"),
	I("\xc2\x41"),				/* bad continuation */
	I("\xe2\x28\xa1"),
	I("\xe2\x82\x28"),
	I("\xf0\x9f\x28\x80"),
	I("\xf0\x9f\x98\x28"),
	I("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
	    "edited"),				/* Autobahn 6.4.2 */
	I("abcdefgh\xe2\x82"),			/* truncated after fast path */
	I("abcdefghijklmno\x80"),
#undef V
#undef I
};

START_TEST(test_utf8_table)
{
	size_t	 i;

	for (i = 0; i < nitems(utf8_cases); i++) {
		ck_assert_msg(proto_utf8_valid(utf8_cases[i].s,
		    utf8_cases[i].len) == utf8_cases[i].valid,
		    "utf8 case %zu", i);
	}
	ck_assert_int_eq(proto_utf8_valid(NULL, 0), 1);
}
END_TEST

/* A prefix or suffix is valid exactly when the cut is on a boundary. */
START_TEST(test_utf8_splits)
{
	static const char s[] = "ab\xc3\xa9" "cdefghij\xe2\x82\xac"
	    "klmnopqr\xf0\x9f\x98\x80st\xf4\x8f\xbf\xbf\xdf\xbf" "uvwxyz012"
	    "\xe0\xa0\x80";
	size_t	 len = sizeof s - 1, i;
	int	 boundary;

	ck_assert_int_eq(proto_utf8_valid(s, len), 1);
	for (i = 0; i <= len; i++) {
		boundary = i == len || ((unsigned char)s[i] & 0xc0) != 0x80;
		ck_assert_msg(proto_utf8_valid(s, i) == boundary,
		    "prefix %zu", i);
		ck_assert_msg(proto_utf8_valid(s + i, len - i) == boundary,
		    "suffix %zu", i);
	}
}
END_TEST

/* One bad or good non-ASCII byte at every offset and alignment. */
START_TEST(test_utf8_offsets)
{
	char	 buf[64];
	size_t	 n, pos, off;

	for (off = 0; off < 8; off++) {
		for (n = 1; n + off <= 40; n++) {
			for (pos = 0; pos < n; pos++) {
				memset(buf, 'a', sizeof buf);
				buf[off + pos] = '\x80';
				ck_assert_int_eq(proto_utf8_valid(buf + off,
				    n), 0);
				buf[off + pos] = '\xff';
				ck_assert_int_eq(proto_utf8_valid(buf + off,
				    n), 0);
				if (pos + 2 > n)
					continue;
				memcpy(buf + off + pos, "\xc3\xa9", 2);
				ck_assert_int_eq(proto_utf8_valid(buf + off,
				    n), 1);
				ck_assert_int_eq(proto_utf8_valid(buf + off,
				    pos + 1), 0);
			}
		}
	}
}
END_TEST

/*
 * Reference: decode by the bit patterns of RFC 3629 §3, then reject what
 * §3/§4 forbid.  Returns the length of the sequence at p, or 0 if bad.
 */
static size_t
ref_decode(const uint8_t *p, size_t len)
{
	static const uint32_t	 min[] = { 0, 0x80, 0x800, 0x10000 };
	uint32_t		 cp;
	size_t			 n, k;

	if (p[0] < 0x80)
		return (1);
	else if ((p[0] & 0xe0) == 0xc0) {
		n = 1;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 2;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 3;
		cp = p[0] & 0x07;
	} else
		return (0);
	if (len < n + 1)
		return (0);
	for (k = 1; k <= n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return (0);
	return (n + 1);
}

static int
ref_valid(const uint8_t *p, size_t len)
{
	size_t	 i = 0, n;

	while (i < len) {
		if ((n = ref_decode(p + i, len - i)) == 0)
			return (0);
		i += n;
	}
	return (1);
}

START_TEST(test_utf8_reference)
{
	static const uint8_t	 tail[] = {
		0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
		0xff
	};
	uint8_t			 b[4];
	uint32_t		 v;
	size_t			 i, j;

	for (v = 0; v < 0x1000000; v++) {
		b[0] = v >> 16;
		b[1] = v >> 8;
		b[2] = v;
		if (v < 0x100 && proto_utf8_valid(b + 2, 1) !=
		    ref_valid(b + 2, 1))
			ck_abort_msg("1 byte %02x", b[2]);
		if (v < 0x10000 && proto_utf8_valid(b + 1, 2) !=
		    ref_valid(b + 1, 2))
			ck_abort_msg("2 bytes %04x", (unsigned)v);
		if (proto_utf8_valid(b, 3) != ref_valid(b, 3))
			ck_abort_msg("3 bytes %06x", (unsigned)v);
	}
	for (v = 0xf00000; v < 0x1000000; v++) {
		b[0] = v >> 16;
		b[1] = v >> 8;
		for (i = 0; i < nitems(tail); i++) {
			for (j = 0; j < nitems(tail); j++) {
				b[2] = tail[i];
				b[3] = tail[j];
				if (proto_utf8_valid(b, 4) != ref_valid(b, 4))
					ck_abort_msg("4 bytes %02x%02x%02x%02x",
					    b[0], b[1], b[2], b[3]);
			}
		}
		v |= 0xff;			/* next b[1] */
	}
}
END_TEST

START_TEST(test_ws_header)
{
	static const struct {
		int		 opcode;
		size_t		 len;
		size_t		 hlen;
		uint8_t		 hdr[PROTO_WS_HDR_MAX];
	} cases[] = {
		{ 0x1, 0, 2, { 0x81, 0x00 } },
		{ 0x1, 1, 2, { 0x81, 0x01 } },
		{ 0x1, 125, 2, { 0x81, 0x7d } },
		{ 0x1, 126, 4, { 0x81, 0x7e, 0x00, 0x7e } },
		{ 0x2, 256, 4, { 0x82, 0x7e, 0x01, 0x00 } },
		{ 0x1, 65535, 4, { 0x81, 0x7e, 0xff, 0xff } },
		{ 0x1, 65536, 10, { 0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0 } },
		{ 0x2, 0x12345678, 10,
		    { 0x82, 0x7f, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78 } },
		{ 0x0, 70000, 10,
		    { 0x80, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70 } },
		{ 0x8, 2, 2, { 0x88, 0x02 } },
		{ 0x9, 125, 2, { 0x89, 0x7d } },
		{ 0xa, 0, 2, { 0x8a, 0x00 } },
	};
	uint8_t	 hdr[PROTO_WS_HDR_MAX];
	size_t	 i, n;

	for (i = 0; i < nitems(cases); i++) {
		memset(hdr, 0xee, sizeof hdr);
		n = proto_ws_header(hdr, cases[i].opcode, cases[i].len);
		ck_assert_uint_eq(n, cases[i].hlen);
		ck_assert_mem_eq(hdr, cases[i].hdr, n);
		if (n < sizeof hdr)
			ck_assert_uint_eq(hdr[n], 0xee);
	}
#if SIZE_MAX > 0xffffffffUL
	n = proto_ws_header(hdr, 0x1, (size_t)0x0102030405060708ULL);
	ck_assert_uint_eq(n, 10);
	ck_assert_mem_eq(hdr, "\x81\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
#endif
}
END_TEST

/* RFC 6455 §5.5: a control frame over 125 bytes is a bug in the caller. */
START_TEST(test_ws_header_control)
{
	uint8_t	 hdr[PROTO_WS_HDR_MAX];

	proto_ws_header(hdr, 0x9, 126);
}
END_TEST

Suite *
proto_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("proto");

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_msg);
	tcase_add_test(tc, test_parse_ack_history);
	tcase_add_test(tc, test_parse_len);
	tcase_add_test(tc, test_parse_bad);
	tcase_add_test(tc, test_parse_messages);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_build_exact);
	tcase_add_test(tc, test_build_escape);
	tcase_add_test(tc, test_build_null);
	tcase_add_test(tc, test_envelope_roundtrip);
	tcase_add_test(tc, test_history);
	suite_add_tcase(s, tc);

	tc = tcase_create("utf8");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_utf8_table);
	tcase_add_test(tc, test_utf8_splits);
	tcase_add_test(tc, test_utf8_offsets);
	tcase_add_test(tc, test_utf8_reference);
	suite_add_tcase(s, tc);

	tc = tcase_create("ws_header");
	tcase_add_test(tc, test_ws_header);
	tcase_add_test_raise_signal(tc, test_ws_header_control, SIGABRT);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	return (testutil_run(proto_suite()));
}
