#!/bin/sh
# SPDX-License-Identifier: ISC
# Churn: 10,000 joins and leaves (close 1000, close 1001, dropped TCP,
# with and without a message) across 200 chats, 50 at a time, leave the
# registry empty (rooms 0, members 0, conns 0 on every worker) and no
# racerd:{chat:*} channel subscribed in the store.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli
: "${REGDUMP:=$top_builddir/tests/regdump}"

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = unix:$REDIS_SOCK"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up on an external store"

wsclient churn --port "$PORT" --joins 10000 --chats 200 --concurrency 50 \
    --regdump "$REGDUMP" --segment "/racerd-$INSTANCE" \
    --redis-sock "$REDIS_SOCK" --timeout 50 ||
    fail "churn (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "racerd died"
ok "10,000 joins and leaves left nothing behind"
finish
