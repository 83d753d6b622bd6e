#!/bin/sh
# SPDX-License-Identifier: ISC
# Graceful restart: 50 clients in one chat, 5 of them sending (100
# messages before, then one every 50 ms each, through the restart). racerd
# gets TERM and is started again on the same port and configuration (the
# embedded store, its data in state-dir). Each client reconnects by
# itself: on close 4200/1001 or a lost connection it retries with back-off
# until the new server answers, resumes with its token and last seq, and
# re-sends what was not acknowledged with the same id. All resume
# complete:true; every client ends with seq 1..N exactly once, N being
# the number of distinct messages sent; every connection ended with
# 4200 or 1001.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "reconnect-window = 30"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up (embedded store)"

# The new master's pid goes to $T/restarted.pid, which the cleanup kills.
WSC_TIMEOUT=58 wsclient restart --port "$PORT" --old-pid "$MASTER" \
    --racerd "$RACERD" --conf "$T/racerd.conf" \
    --pidfile "$T/restarted.pid" --errfile "$T/racerd.err" \
    --clients 50 --senders 5 --shutdown-timeout 5 --timeout 55 ||
    fail "clients across a restart (see above)"
NEW=$(cat "$T/restarted.pid" 2>/dev/null)
[ -n "$NEW" ] && kill -0 "$NEW" 2>/dev/null || fail "new master not running"
wait_healthy "$PORT" 5 || fail "not healthy after the restart"
ok "50 clients resumed across a graceful restart, nothing lost or doubled"
finish
