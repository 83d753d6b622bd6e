#!/bin/sh
# SPDX-License-Identifier: ISC
# Lossless live delivery: while one sender streams 2,000 messages, the
# subscription connection of a worker is killed in the store (CLIENT KILL)
# three times, a different worker each time; every client still gets seq
# 1..2000 exactly once, in order, and each killed subscription comes back.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 3 "redis = unix:$REDIS_SOCK"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 3 workers on an external store"

wsclient fanout --ports "$PORT" --clients 24 --senders 1 --count 2000 \
    --stagger 0.002 --min-workers 2 \
    --batch 20 --pause 0.02 --kills 3 --redis-sock "$REDIS_SOCK" \
    --instances "$INSTANCE" --deliver-timeout 20 --timeout 45 ||
    fail "delivery across subscription kills (see above)"
echo "  gaps filled: $(curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" |
    grep '^racerd_gaps_filled_total ' || echo '(no metric)')"
ok "no message lost across 3 subscription kills"
finish
