#!/bin/sh
# SPDX-License-Identifier: ISC
# A join racing its chat's unsubscription: the last member leaves, the
# worker unsubscribes a couple of seconds later, and a new member joins
# while that UNSUBSCRIBE is still unanswered (the store is held with
# CLIENT PAUSE around it). The new member gets its welcome (seq 1) and can
# chat (its message gets seq 2). Found by chat_churn, which hits it rarely.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1 "redis = unix:$REDIS_SOCK"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 1 worker on an external store"

wsclient rejoin --port "$PORT" --redis-sock "$REDIS_SOCK" --timeout 30 ||
    fail "join during unsubscription (see above)"
ok "a join racing the unsubscription was welcomed"
finish
