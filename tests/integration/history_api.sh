#!/bin/sh
# SPDX-License-Identifier: ISC
# POST /chats/CHAT/messages authorisation: 403 when racerd has no
# api-key-file; 401 (JSON error) without a key, with a wrong, truncated,
# extended or case-changed key, another scheme, or no scheme; nothing of a
# refused POST is delivered or stored. Each key of the file gets 201
# {"seq":N} and the message reaches members as an envelope; a repeated id
# gets the same seq; malformed bodies and chat ids get 400.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
P1=$(free_port)
P2=$(free_port)
{
	echo "# API keys"
	echo "first-api-key-0123456789-$$"
	echo
	echo "second-api-key-abcdefghij-$$"
} >"$T/keys"
write_conf_as "$T/a.conf" "$P1" 2 a "redis = unix:$REDIS_SOCK" \
    "api-key-file = $T/keys"
write_conf_as "$T/b.conf" "$P2" 1 b "redis = unix:$REDIS_SOCK"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
ok "racerd a (api-key-file) and b (none) up"

WSC_TIMEOUT=30 wsclient api --port "$P1" --port-nokeys "$P2" \
    --key-file "$T/keys" --timeout 25 || fail "API authorisation (see above)"
ok "403 without keys, 401 with a wrong one, 201 {seq} with each key"
finish
