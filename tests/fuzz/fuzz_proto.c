/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the JSON frame parser (proto.c). */
/*
 * The input is one WebSocket text message as a client sends it.  A frame
 * proto_parse accepts must hold what it promises (a msg body of at least
 * one byte without NUL, an id of at most 64 bytes, a history limit in
 * range), and an accepted msg encoded back with proto_msg_tail must be
 * valid JSON that carries the same body and id.  A refusal must name an
 * error code and message.  proto_utf8_valid is checked against the
 * inputs jansson accepts: a JSON text jansson took is valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "racerd.h"
#include "proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_roundtrip(const struct proto_in *in)
{
	json_t		*o;
	const char	*body, *id = NULL;
	char		*tail, *s;
	size_t		 body_len, tlen;

	tail = proto_msg_tail(in->id[0] != '\0' ? in->id : NULL, "fuzz-user",
	    1, in->body, in->body_len);
	if (tail == NULL)
		abort();
	/* The tail completes proto_msg_head's opening of the envelope. */
	s = proto_msg_head("chat");
	if (s == NULL)
		abort();
	tlen = strlen(s);
	s = realloc(s, tlen + strlen(tail) + 64);
	if (s == NULL)
		abort();
	strcpy(s + tlen, "1");
	strcat(s, tail);
	o = json_loads(s, JSON_ALLOW_NUL, NULL);
	if (o == NULL || json_unpack(o, "{s:s%}", "body", &body,
	    &body_len) != 0)
		abort();
	if (json_is_string(json_object_get(o, "id")))
		id = json_string_value(json_object_get(o, "id"));
	if (body_len != in->body_len || memcmp(body, in->body, body_len) != 0)
		abort();
	if (in->id[0] != '\0' && (id == NULL || strcmp(id, in->id) != 0))
		abort();
	json_decref(o);
	free(s);
	free(tail);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct proto_in	 in;
	const char	*code, *message;
	json_t		*j;

	j = json_loadb((const char *)data, len, JSON_DECODE_ANY, NULL);
	if (j != NULL) {
		if (!proto_utf8_valid(data, len))
			abort();
		json_decref(j);
	}
	if (proto_parse((const char *)data, len, &in, &code, &message) != 0) {
		if (code == NULL || message == NULL)
			abort();
		return (0);
	}
	switch (in.type) {
	case PROTO_MSG:
		if (in.body_len == 0 || memchr(in.body, '\0',
		    in.body_len) != NULL || strlen(in.id) > RD_MSGID_MAX)
			abort();
		fuzz_roundtrip(&in);
		break;
	case PROTO_ACK:
		if (in.seq < 0)
			abort();
		break;
	case PROTO_HISTORY:
		if (in.limit < 0 || in.limit > PROTO_LIMIT_MAX ||
		    (in.before != -1 && in.before < 1))
			abort();
		break;
	default:
		abort();
	}
	proto_in_clear(&in);
	return (0);
}
