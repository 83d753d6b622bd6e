#!/bin/sh
# SPDX-License-Identifier: ISC
# Faults under load: 50 self-resuming members chat in 5 chats over two
# racerd instances (3 workers each) sharing one redis-server (AOF,
# appendfsync always, on a unix socket in the test directory), while
# faults.py kills (-9) a random worker every 2 s, an instance's master
# (started again) every 12 s and the redis-server once (started again on
# the same socket and directory; the AOF reloads). Members resume with
# session and last seq (HTTP 401: join again with since), send with ids
# and send again until acknowledged; 5 of them now and then drop their
# connection and stay away 1-5 s (recovery-max 20, reconnect-window 3:
# complete:false resumes filled from HTTP history, expired sessions
# joined again with since). Then: every member's stream is
# contiguous without duplicates and reaches the chat's latest seq; every
# send was acknowledged; every acknowledged send is in HTTP history
# exactly once; no sanitizer report. SOAK_SECONDS=600 (make check-soak)
# runs the same chaos for that long, the redis-server killed every 90 s
# and a master every 60 s; FAULTS_MASTER_EVERY sets the master's period.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

SECS=${SOAK_SECONDS:-35}
if [ -n "${SOAK_SECONDS:-}" ]; then
	MASTER_EVERY=60 REDIS_EVERY=90
else
	MASTER_EVERY=12 REDIS_EVERY=34
fi
# FAULTS_MASTER_EVERY=2: a master killed and started again every 2 s, the
# churn at the resume seam that once doubled a message.
MASTER_EVERY=${FAULTS_MASTER_EVERY:-$MASTER_EVERY}

start_redis_aof

P1=$(free_port)
P2=$(free_port)
for n in a b; do
	[ $n = a ] && p=$P1 || p=$P2
	write_conf_as "$T/$n.conf" "$p" 3 $n "redis = unix:$REDIS_SOCK" \
	    "history-size = 1000000" "recovery-max = 20" "reconnect-window = 3"
	# Info, not debug: the load would write a debug line per frame.
	sed -i 's/^log-level = debug$/log-level = info/' "$T/$n.conf"
done
start_racerd "$T/a.conf" "$P1"
M1=$MASTER
start_racerd "$T/b.conf" "$P2"
M2=$MASTER
ok "two racerd instances (3 workers each) on one redis-server (AOF always)"

# Restarted masters and redis-servers write their pids to $T/*.pid (the
# trap kills them).
timeout -k 3 $((SECS + 200)) $PY "$top_srcdir/tests/integration/faults.py" \
    --ports "$P1,$P2" --masters "$M1,$M2" --confs "$T/a.conf,$T/b.conf" \
    --racerd "$RACERD" --redis-pid "$REDIS_PID" --redis-argv "$ARGV" \
    --redis-sock "$REDIS_SOCK" --piddir "$T" --members 50 --chats 5 \
    --seconds "$SECS" --master-every "$MASTER_EVERY" \
    --redis-every "$REDIS_EVERY" ||
    fail "faults under load (see above)"
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' \
    "$T/racerd.err" >/dev/null 2>&1; then
	fail "sanitizer report in racerd's standard error"
	grep -E -A 20 'AddressSanitizer|runtime error:' "$T/racerd.err" |
	    head -n 60
fi
echo "  worker exits seen: $(cat "$T"/racerd-?.log 2>/dev/null |
    grep -c -i 'worker.*\(exit\|died\|killed\|signal\)')"
ok "nothing lost or doubled while workers, masters and the store died"
if [ "$FAILS" -ne 0 ]; then
	echo "--- $NAME: racerd.err (last 20 lines)"
	tail -n 20 "$T/racerd.err" 2>/dev/null
fi
finish
