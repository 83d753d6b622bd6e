#!/bin/sh
# SPDX-License-Identifier: ISC
# racer(1) on an input that never ends and has no newline (/dev/zero, read
# a chunk per loop turn, and the same through a pipe): it refuses the
# over-long line once, stays in its chat (it prints what another member
# sends meanwhile) and exits promptly on TERM and on INT.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
RACER=${RACER:-$top_builddir/racer}

# zero NAME SIGNAL HOW: racer reading /dev/zero (HOW: file or pipe) until
# SIGNAL, while bob says hello in the chat.
zero() {
	name=$1 sig=$2 how=$3
	if [ "$how" = file ]; then
		"$RACER" --user "$name" "$URL" zero </dev/zero \
		    >"$T/$name.out" 2>"$T/$name.err" &
	else
		# A pipe: racer is the last process, $! is its pid.
		cat /dev/zero | "$RACER" --user "$name" "$URL" zero \
		    >"$T/$name.out" 2>"$T/$name.err" &
	fi
	pid=$!
	PIDS="$PIDS $pid"
	wait_lines "$T/$name.err" 'not sent' 1 10 ||
	    fail "$name: no word about the over-long line"
	sleep 1
	"$RACER" --user bob --send "hello $name" "$URL" zero \
	    >/dev/null 2>"$T/bob.err" || fail "$name: bob could not send"
	wait_lines "$T/$name.out" "hello $name" 1 10 ||
	    fail "$name: did not print a message while reading its input"
	kill -0 "$pid" 2>/dev/null || fail "$name: exited on its own"
	kill -"$sig" "$pid"
	if ! wait_child "$pid" 5; then
		fail "$name: still running 5 s after $sig"
		kill -KILL "$pid" 2>/dev/null
		return
	fi
	n=$(grep -c 'not sent' "$T/$name.err")
	[ "$n" -eq 1 ] ||
	    fail "$name: $n words about the over-long line, not 1"
	echo "  $name ($how, $sig): exit status $STATUS; $(head -n 1 "$T/$name.err")"
}

zero zerofile TERM file
ok "racer < /dev/zero: one refusal, serves its chat, exits on TERM"
zero zeroint INT file
ok "racer < /dev/zero: exits on INT"
zero zeropipe TERM pipe
ok "cat /dev/zero | racer: exits on TERM"

finish
