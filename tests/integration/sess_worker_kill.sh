#!/bin/sh
# Sessions outlive their worker: 4 clients on one worker drop their
# connections (TCP abort, no close frame); once a member on the other
# worker has seen them go away, their worker is killed (kill -9). With a
# 3 s reconnect window the watcher still sees presence leave for each
# within the window plus 2.5 s, each position is stored
# (racerd:{chat:C}:pos:USER = "EPOCH 3" in the external store), their
# resumes get 401 and the next plain join replays what was missed.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need curl
need redis-server
need redis-cli
need timeout
$PY -c 'import websockets' 2>/dev/null || need python3-websockets
: "${REGDUMP:=$top_builddir/tests/regdump}"

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 3"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 2 workers on an external store, reconnect-window 3"

WSC_TIMEOUT=40 wsclient workerkill --port "$PORT" --window 3 --victims 4 \
    --master "$MASTER" --regdump "$REGDUMP" --segment "/racerd-$INSTANCE" \
    --redis-sock "$REDIS_SOCK" --timeout 35 ||
    fail "sessions of a killed worker (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "master died"
ok "sessions of a killed worker expired on time, positions stored"
finish
