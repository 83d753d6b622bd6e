#!/bin/sh
# SPDX-License-Identifier: ISC
# The reconnect window (3 s here): a resume 1.5 s after a TCP abort
# replays what was missed; after the window the watcher sees presence
# leave (not before the window ends, at most 2.5 s after), the resume gets
# 401, and the user's next plain join replays what was missed since the
# stored position, then resumed complete:true (another user's join gets
# nothing). A close 1000 ends the session at once: leave, 401, and the
# next plain join replays again; the position is handed over only once.
# So does one that comes while the store is still writing the session.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

start_redis
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 3"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up, reconnect-window 3"

WSC_TIMEOUT=35 wsclient window --port "$PORT" --window 3 \
    --redis-sock "$REDIS_SOCK" --timeout 30 ||
    fail "reconnect window (see above)"
ok "resume within the window; 401 and replay on the next join after it"
finish
