#!/bin/sh
# SPDX-License-Identifier: ISC
# racer across server trouble.  A listening racer ("watch") and a sending
# one ("feed", --send - from a fifo) stay up while racerd is restarted
# (TERM, then started again on the same port and configuration, the
# embedded store keeping its data), while every worker is killed (-9),
# while racerd stays down longer than reconnect-window (the resume gets
# 401: racer joins again with since), and while watch is frozen past
# recovery-max (the resume is incomplete: racer says so and fetches the
# gap from history).  Others send before, during and after.  watch prints
# every message exactly once, in seq order, and says how it resumed; feed
# exits 0 with each of its lines stored once.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need curl
need redis-server
need timeout
need mkfifo

PORT=$(free_port)
WINDOW=6
write_conf "$T/racerd.conf" "$PORT" 2 "reconnect-window = $WINDOW" \
    "recovery-max = 12"
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
CHAT=racer-restart
TOTAL=0
MSG='^[0-9:]* \['

# send PREFIX N: N lines PREFIX1..PREFIXN from user "other", acknowledged.
send() {
	seq 1 "$2" | sed "s/^/$1/" |
	    timeout -k 2 30 "$RACER" --send - -u other "$URL" "$CHAT" \
	    2>"$T/send.err"
	st=$?
	[ "$st" -eq 0 ] || fail "sending $1*: exit $st ($(cat "$T/send.err"))"
	TOTAL=$((TOTAL + $2))
}

# stop_racerd: TERM the master, wait until it is gone.  (It is started
# again with the fifos' write ends closed: it must not hold them open.)
stop_racerd() {
	kill -TERM "$MASTER"
	wait_gone "$MASTER" 15 || fail "racerd still running 15 s after TERM"
}

# watch_has N [SECONDS]: watch has printed N messages.
watch_has() {
	wait_lines "$T/watch.out" "$MSG" "$1" "${2:-30}" ||
	    fail "watch printed $(grep -c "$MSG" "$T/watch.out") of $1 messages ($(tail -2 "$T/watch.err"))"
}

start_racer watch -l -u watcher "$URL" "$CHAT"
WATCH=$RACER_PID
exec 3>"$T/watch.in"
start_racer feed --send - -t 60 -u feeder "$URL" "$CHAT"
FEED=$RACER_PID
exec 4>"$T/feed.in"
wait_lines "$T/watch.out" '^-- watcher joined --$' 1 ||
    fail "watch did not join ($(cat "$T/watch.err"))"

send pre 5
n=1
while [ "$n" -le 5 ]; do
	echo "feed$n" >&4
	n=$((n + 1))
done
TOTAL=$((TOTAL + 5))
watch_has "$TOTAL" 10
ok "before the restart: $TOTAL messages"

# 1. Graceful restart: watch is closed with 4200 and resumes by itself;
# feed's lines written while racerd is down go once it is back.
stop_racerd
while [ "$n" -le 10 ]; do
	echo "feed$n" >&4
	n=$((n + 1))
done
TOTAL=$((TOTAL + 5))
start_racerd "$T/racerd.conf" "$PORT" 3>&- 4>&-
send post 5
exec 4>&-
if wait_child "$FEED" 60; then
	[ "$STATUS" -eq 0 ] ||
	    fail "feed exited $STATUS across the restart ($(cat "$T/feed.err"))"
else
	fail "feed still running 60 s after the end of its input"
fi
watch_has "$TOTAL"
grep -q '^racer: closed by the server (4200 .*); reconnecting$' \
    "$T/watch.err" || fail "watch did not report the 4200: $(cat "$T/watch.err")"
wait_lines "$T/watch.out" '^-- resumed, [0-9]* missed messages\{0,1\} replayed --$' 1 ||
    fail "watch printed no resumed notice"
ok "graceful restart: watch resumed ($(grep -c '^-- resumed' "$T/watch.out") resume(s)); feed exited 0"

# 2. Every worker killed: no close frame; the master starts new ones.
for w in $(worker_pids "$MASTER"); do
	kill -KILL "$w"
done
send kill 5		# racer retries the 503 of workers still starting
watch_has "$TOTAL"
grep -q '^racer: connection lost (.*); reconnecting$' "$T/watch.err" ||
    fail "watch did not report the lost connection: $(cat "$T/watch.err")"
ok "workers killed: watch reconnected and resumed"

# 3. Away for longer than reconnect-window: the session is gone (401),
# racer joins again after the last seq it printed.  watch is frozen until
# the new workers have swept the session (they do each second): a resume
# that comes before the first sweep is still accepted.
kill -STOP "$WATCH"
stop_racerd
sleep $((WINDOW + 1))
start_racerd "$T/racerd.conf" "$PORT" 3>&- 4>&-
sleep 2
send late 3
kill -CONT "$WATCH"
watch_has "$TOTAL" 40
grep -q '^racer: session expired; joining again$' "$T/watch.err" ||
    fail "watch did not rejoin after a 401: $(tail -3 "$T/watch.err")"
ok "after the window: 401, joined again with since, nothing missed"

# 4. More missed than recovery-max (12): the resume is incomplete.
kill -STOP "$WATCH"
stop_racerd
start_racerd "$T/racerd.conf" "$PORT" 3>&- 4>&-
send gap 15
kill -CONT "$WATCH"
watch_has "$TOTAL"
grep -q '^-- history gap, 15 messages not recoverable --$' \
    "$T/watch.out" || fail "no gap notice: $(tail -3 "$T/watch.out")"
grep -q '^-- 15 of them fetched from history --$' "$T/watch.out" ||
    fail "the gap was not fetched: $(tail -3 "$T/watch.out")"
ok "incomplete resume: the gap is said and fetched from history"

# Every message once, in seq order; the same as history.
racer_lines "$T/watch.out" >"$T/watch.msgs"
cut -d' ' -f1 "$T/watch.msgs" | tr '\n' ' ' >"$T/got"
seq 1 "$TOTAL" | tr '\n' ' ' >"$T/want"
cmp -s "$T/got" "$T/want" ||
    fail "watch's seqs are not 1..$TOTAL once each: $(cat "$T/got")"
curl -s --max-time 10 \
    "http://127.0.0.1:$PORT/chats/$CHAT/messages?since=0&limit=1000" |
    $PY -c '
import json, sys
for m in json.load(sys.stdin)["messages"]:
    print("%s %s %s" % (m["seq"], m["from"], m["body"]))' >"$T/history.msgs"
cmp -s "$T/watch.msgs" "$T/history.msgs" ||
    fail "watch and history differ: $(diff "$T/watch.msgs" "$T/history.msgs" | head -5)"
[ "$FAILS" -eq 0 ] || curl -s --max-time 10 \
    "http://127.0.0.1:$PORT/chats/$CHAT/messages?since=0&limit=1000"
sed -n 's/^[0-9]* feeder //p' "$T/history.msgs" | sort | tr '\n' ' ' \
    >"$T/feed.got"
seq 1 10 | sed 's/^/feed/' | sort | tr '\n' ' ' >"$T/feed.want"
cmp -s "$T/feed.got" "$T/feed.want" ||
    fail "feed's lines in history: $(cat "$T/feed.got")"
kill -0 "$WATCH" 2>/dev/null || fail "watch is gone ($(cat "$T/watch.err"))"
ok "watch printed all $TOTAL messages exactly once, as history has them"

kill -TERM "$WATCH"
if wait_child "$WATCH" 10; then
	[ "$STATUS" -eq 0 ] || fail "watch exited $STATUS on TERM"
else
	fail "watch still running 10 s after TERM"
fi
finish
