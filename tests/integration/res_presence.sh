#!/bin/sh
# SPDX-License-Identifier: ISC
# Presence across hosts: two racerd instances (A, B; 2 workers each) on one
# external redis-server, session-lease = 3, reconnect-window = 2. Members
# on both; GET /chats/C/presence on either lists all of them connected,
# and the watcher on A saw their joins. On A a dropped connection turns
# away, then leaves after the window; a close 1000 leaves at once. Then
# instance B's master and workers are killed at once (-9): its members
# show away, then leave, within lease + window (+ the 1 s expiry ticks),
# not before, with away and leave events to both survivors on A, which
# stay connected and can still chat.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
PA=$(free_port)
PB=$(free_port)
write_conf_as "$T/a.conf" "$PA" 2 a "redis = unix:$REDIS_SOCK" \
    "session-lease = 3" "reconnect-window = 2"
write_conf_as "$T/b.conf" "$PB" 2 b "redis = unix:$REDIS_SOCK" \
    "session-lease = 3" "reconnect-window = 2"
start_racerd "$T/a.conf" "$PA"
MA=$MASTER
start_racerd "$T/b.conf" "$PB"
MB=$MASTER
WB=$(worker_pids "$MB" | tr '\n' ' ')
[ "$(echo $WB | wc -w)" -eq 2 ] ||
    fail "instance B has workers '$WB', expected 2"
ok "instances A and B up on one store; B is master $MB, workers $WB"

WSC_TIMEOUT=45 wsclient presence --port-a "$PA" --port-b "$PB" \
    --kill-pids "$MB $WB" --lease 3 --window 2 --timeout 40 ||
    fail "presence (see above)"
for p in $MB $WB; do
	wait_gone "$p" 3 || fail "pid $p of instance B still runs"
done
kill -0 "$MA" 2>/dev/null || fail "instance A died"
wait_healthy "$PA" 3 || fail "instance A not healthy after B died"
ok "B's members left on time; A's members stayed"
finish
