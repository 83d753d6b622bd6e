#!/bin/sh
# SPDX-License-Identifier: ISC
# Publishes of one loop turn go to the store as one script call: a sender
# that writes 100 messages at once costs a handful of EVALSHA calls (INFO
# commandstats of a private redis-server), and every message still reaches
# a member once, in seq order, and is in history.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
P=$(free_port)
write_conf "$T/racerd.conf" "$P" 1 "redis = unix:$REDIS_SOCK" \
    "max-message-rate = 0"
start_racerd "$T/racerd.conf" "$P"
timeout -k 3 60 $PY "$top_srcdir/tests/integration/batchclient.py" \
    --port "$P" --redis "$REDIS_SOCK" || fail "batched publishes (see above)"
ok "a burst of messages is published in a few store calls, none lost"
finish
