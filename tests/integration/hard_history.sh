#!/bin/sh
# SPDX-License-Identifier: ISC
# WebSocket history frames: each is a store read of up to 1,000 entries,
# so a connection has one in flight at a time ("busy" for another; ten
# refusals close it with 1008) and they share max-message-rate with msgs.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

HC="$top_srcdir/tests/integration/hardclient.py"
start_redis
port=$(free_port)
write_conf "$T/racerd.conf" "$port" 1 "redis = unix:$REDIS_SOCK" \
    "max-message-rate = 5"
start_racerd "$T/racerd.conf" "$port"

timeout -k 3 60 $PY "$HC" history --port "$port" --limit 5 ||
    fail "history limits"
ok "history frames: one in flight, within max-message-rate"

finish
