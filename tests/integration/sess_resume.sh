#!/bin/sh
# SPDX-License-Identifier: ISC
# Resume without loss: while one client streams 500 messages, another is
# cut off (TCP abort, no close frame) and resumes with its token and last
# seq: first on another worker of the same racerd (X-Racerd-Worker
# differs), then on another racerd instance sharing the external store.
# Each time it ends up with exactly seq 1..500: replay, resumed
# complete:true, then live traffic, no gap and no duplicate at the seam.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
P1=$(free_port)
P2=$(free_port)
write_conf_as "$T/a.conf" "$P1" 2 a "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 30"
write_conf_as "$T/b.conf" "$P2" 2 b "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 30"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
ok "two racerd instances with 2 workers each on one redis-server"

WSC_TIMEOUT=40 wsclient resume --ports "$P1" --count 500 --timeout 35 ||
    fail "resume on another worker (see above)"
ok "cut off and resumed on another worker: seq 1..500 once each"

WSC_TIMEOUT=40 wsclient resume --ports "$P1,$P2" --count 500 --timeout 35 ||
    fail "resume on another instance (see above)"
ok "cut off and resumed on another instance: seq 1..500 once each"
finish
