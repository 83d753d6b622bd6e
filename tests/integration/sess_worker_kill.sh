#!/bin/sh
# SPDX-License-Identifier: ISC
# Sessions outlive their worker (reconnect-window 3 s, session-lease 3 s,
# external store). 1: 4 clients on one worker drop their connections (TCP
# abort); once a member on the other worker has seen them away, their
# worker is killed (kill -9). The watcher still sees presence leave for
# each 3..5.5 s after the drop, each position is stored
# (racerd:{chat:C}:pos:USER = "EPOCH 3"), resumes get 401 and the next
# plain join replays what was missed. 2: the (respawned) worker is killed
# with its 4 clients still connected: one resumes at once (its session is
# still attached to the dead worker) and gets complete:true; the others
# turn away within the lease and leave after the window, with a position
# stored that their next join replays from.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli
: "${REGDUMP:=$top_builddir/tests/regdump}"

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 3" "session-lease = 3"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 2 workers on an external store, reconnect-window 3"

WSC_TIMEOUT=45 wsclient workerkill --port "$PORT" --window 3 --lease 3 \
    --victims 4 --master "$MASTER" --regdump "$REGDUMP" \
    --segment "/racerd-$INSTANCE" --redis-sock "$REDIS_SOCK" --timeout 40 ||
    fail "sessions of a killed worker (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "master died"
ok "sessions of a killed worker expired on time, positions stored"
finish
