#!/bin/sh
# SPDX-License-Identifier: ISC
# Refusals: every bad handshake gets its HTTP status (and Allow, Upgrade or
# Sec-WebSocket-Version header, JSON error body), every bad frame its
# error or close code (1002, 1003, 1007, 1008, 1009), ping gets pong and
# close 1000 a close; after each, a fresh client can still join and chat.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "max-message-size = 1024" \
    "header-timeout = 2"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up"

wsclient errors --port "$PORT" --max-message-size 1024 --header-timeout 2 ||
    fail "refusals (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "racerd died"
wait_healthy "$PORT" 3 || fail "not healthy after the refusals"
ok "each refusal has its status or close code; racerd kept serving"
finish
