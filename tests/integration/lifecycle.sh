#!/bin/sh
# SPDX-License-Identifier: ISC
# Master/worker lifecycle: start as a daemon, worker respawn and registry
# reaping, reload (bad file kept out, good file rolls workers), a second
# master on the same instance refused, graceful TERM, and kill -9 of the
# master (workers follow it; the next start replaces the stale segment).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need curl
need redis-server
: "${REGDUMP:=$top_builddir/tests/regdump}"

PORT=$(free_port)
CONF=$T/racerd.conf
write_conf "$CONF" "$PORT" 2

# -t: a good file passes, a bad one names file and line.
"$RACERD" -t -c "$CONF" >/dev/null || fail "-t rejects a valid file"
printf 'workers = 2\nbogus-key = 1\n' >"$T/bad.conf"
out=$("$RACERD" -t -c "$T/bad.conf" 2>&1) && fail "-t accepts a bad file"
echo "$out" | grep -q "bad.conf:2" || fail "-t does not name the line: $out"

# Start as a daemon: the parent exits 0 once the master is ready.
"$RACERD" -c "$CONF" || fail "daemon start failed"
[ -s "$T/run/$INSTANCE.pid" ] || fail "no pid file"
MASTER=$(cat "$T/run/$INSTANCE.pid")
PIDS="$MASTER"
wait_healthy "$PORT" || fail "/healthz never became 200"
[ -e "/dev/shm/racerd-$INSTANCE" ] || fail "no registry segment"
W=$(worker_pids "$MASTER" | wc -l)
[ "$W" -eq 2 ] || fail "expected 2 workers, found $W"
ok "daemon up with 2 workers, healthz 200"

# A second master on the same instance refuses, naming the live one.
P2=$(free_port)
write_conf "$T/second.conf" "$P2" 1
out=$("$RACERD" -f -c "$T/second.conf" 2>&1) && fail "second master started"
echo "$out" | grep -q "in use" || fail "second master's refusal unclear: $out"
[ "$(cat "$T/run/$INSTANCE.pid")" = "$MASTER" ] || fail "pid file clobbered"
kill -0 "$MASTER" || fail "first master died"
ok "second master on the instance refused: $out"

# kill -9 of a worker: a new one within a second, slot clean.
VICTIM=$(worker_pids "$MASTER" | head -n 1)
kill -9 "$VICTIM"
i=0
while :; do
	N=$(worker_pids "$MASTER" | grep -vx "$VICTIM" | wc -l)
	[ "$N" -eq 2 ] && break
	i=$((i + 1))
	[ "$i" -ge 10 ] && { fail "no new worker within 1 s"; break; }
	sleep 0.1
done
sleep 0.3
"$REGDUMP" "/racerd-$INSTANCE" >"$T/dump" || fail "regdump"
grep -q "pid $VICTIM " "$T/dump" && fail "dead worker still in registry"
for w in $(worker_pids "$MASTER"); do
	grep -q "pid $w conns" "$T/dump" || fail "worker $w not in registry"
done
grep -q "members 0" "$T/dump" || fail "members left: $(cat "$T/dump")"
wait_log "killed by signal 9" 2 || fail "worker death not logged"
wait_healthy "$PORT" 3 || fail "not healthy after respawn"
ok "killed worker replaced within 1 s, registry slot clean"

# HUP with a broken file: the old configuration stays, the reason is
# logged, the workers are not replaced.
BEFORE=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
cp "$CONF" "$CONF.good"
echo "workers = many" >>"$CONF"
kill -HUP "$MASTER"
wait_log "reload failed: .*racerd.conf:[0-9]*" 5 ||
    fail "broken reload not logged with file:line"
sleep 0.5
AFTER=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
[ "$BEFORE" = "$AFTER" ] || fail "workers replaced after a bad reload"
wait_healthy "$PORT" 2 || fail "not serving after a bad reload"
ok "HUP with a broken file kept the old configuration"

# HUP with a good file: every worker is replaced, one at a time.
cp "$CONF.good" "$CONF"
sed -i 's/^log-level = .*/log-level = info/' "$CONF"
kill -HUP "$MASTER"
wait_log "reload complete" 15 || fail "reload did not complete"
AFTER=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
for w in $BEFORE; do
	echo " $AFTER " | grep -q " $w " && fail "worker $w survived reload"
done
wait_healthy "$PORT" 3 || fail "not healthy after reload"
ok "HUP with a good file replaced the workers"

# USR1 reopens the log: move it away, signal, a new file appears.
mv "$T/racerd.log" "$T/racerd.log.1"
kill -USR1 "$MASTER"
i=0
while [ ! -e "$T/racerd.log" ] && [ "$i" -lt 30 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e "$T/racerd.log" ] || fail "USR1 did not reopen the log"
cat "$T/racerd.log.1" "$T/racerd.log" >"$T/racerd.log.all" 2>/dev/null
ok "USR1 reopened the log file"

# kill -9 of the master: workers and store follow; the segment is stale.
KIDS=$(children "$MASTER")
kill -9 "$MASTER"
for k in $KIDS; do
	wait_gone "$k" 3 || fail "child $k outlived its master"
done
[ -e "/dev/shm/racerd-$INSTANCE" ] || fail "segment vanished (test invalid)"
"$RACERD" -c "$CONF" || fail "restart after kill -9 failed"
MASTER=$(cat "$T/run/$INSTANCE.pid")
PIDS="$MASTER"
wait_healthy "$PORT" || fail "not healthy after stale restart"
grep -q "stale" "$T/racerd.log" ||
    fail "stale segment replacement not logged"
ok "kill -9 of the master: children gone, stale segment replaced"

# TERM: everything gone, segment unlinked, pid file removed, exit 0.
KIDS=$(children "$MASTER")
kill -TERM "$MASTER"
wait_gone "$MASTER" 10 || fail "master did not exit on TERM"
for k in $KIDS; do
	wait_gone "$k" 2 || fail "child $k survived TERM"
done
[ -e "/dev/shm/racerd-$INSTANCE" ] && fail "segment not unlinked"
[ -e "$T/run/$INSTANCE.pid" ] && fail "pid file not removed"

# The exit status: run in the foreground where we are the parent.
"$RACERD" -f -c "$CONF" 2>>"$T/fg.err" &
FG=$!
PIDS="$FG"
wait_healthy "$PORT" || fail "foreground start failed"
kill -TERM "$FG"
wait "$FG"
rc=$?
[ "$rc" -eq 0 ] || fail "TERM exit status $rc"
[ -e "/dev/shm/racerd-$INSTANCE" ] && fail "segment not unlinked (fg)"
ok "TERM: all processes gone, segment and pid file removed, exit 0"
finish
