#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd benchmark kit: test loadgen itself, end to end, against the Python
# stand-in server (standin.py) and the re-chunking proxy (chunkproxy.py):
# frames cut at every byte, coalesced reads, 64 KiB and fragmented
# messages, ping/pong, server close, and loss and seq jumps that loadgen
# must report.  About 30 seconds.
#
# usage: sh contrib/bench/selftest.sh
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
py=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/racerd-lgtest.XXXXXX") || exit 1
started=""
fails=0

cleanup() {
	for p in $started; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

$py -c 'import websockets' 2>/dev/null || {
	echo "selftest.sh: needs python3-websockets"
	exit 77
}
cc -O2 -Wall -Wextra -Werror -o "$T/loadgen" "$here/loadgen.c" \
    $(pkg-config --cflags --libs libevent_core openssl) -lm || exit 1
"$T/loadgen" --self-test || fails=$((fails + 1))

wait_port() {
	i=0
	until $py -c "import socket; socket.create_connection(('127.0.0.1',
$1)).close()" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 50 ] && return 1
		sleep 0.1
	done
}

# standin ARGS: start a stand-in, set $port and $spid.
standin() {
	port=$(free_port)
	$py "$here/standin.py" --port "$port" "$@" 2>"$T/standin.err" &
	spid=$!
	started="$started $spid"
	wait_port "$port"
}

# proxy ARGS: start a proxy in front of $port, set $pport and $ppid.
proxy() {
	pport=$(free_port)
	$py "$here/chunkproxy.py" --listen "$pport" --to "$port" "$@" \
	    2>"$T/proxy.err" &
	ppid=$!
	started="$started $ppid"
	wait_port "$pport"
}

stop() {
	for p in "$@"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

field() {
	echo "$2" | awk -v k="$1" '{ for (i = 1; i <= NF; i++)
	    if (index($i, k "=") == 1) {
		print substr($i, length(k) + 2)
		exit
	    } }'
}

# check NAME "KEY=VALUE ..." LOADGEN-ARGS...: run loadgen, compare fields.
check() {
	name=$1
	want=$2
	shift 2
	line=$("$T/loadgen" "$@" 2>"$T/lg.err" | tail -n 1)
	bad=
	for kv in $want; do
		k=${kv%%=*}
		v=${kv#*=}
		got=$(field "$k" "$line")
		case $v in
		+)	[ "${got:-0}" != 0 ] || bad="$bad $k=${got:-none}" ;;
		*)	[ "$got" = "$v" ] || bad="$bad $k=${got:-none}" ;;
		esac
	done
	if [ -z "$bad" ]; then
		echo "ok   $name"
	else
		echo "FAIL $name:$bad (want $want)"
		echo "     $line"
		sed 's/^/     /' "$T/lg.err"
		fails=$((fails + 1))
	fi
}

ok="lost=0 reordered=0 seq_errors=0 misrouted=0 connect_errors=0 drops=0"

standin
u="ws://127.0.0.1:$port/ws/c%d"
# 20 clients in 3 chats (7, 7, 6), senders 0-5 (2 per chat), 30 each.
check "racerd framing, 3 chats, 6 senders" "$ok deliveries=1200" \
    --url "$u" --clients 20 --chats 3 --senders 6 --messages 30 --inflight 3
check "rate mode" "$ok sent=+" \
    --url "$u" --clients 20 --chats 10 --senders 20 --rate 20 --duration 1
check "64 KiB messages" "$ok deliveries=600" \
    --url "$u" --clients 20 --messages 30 --size 65536 --inflight 3
check "refused upgrade counts as connect error" "connect_errors=5" \
    --url "ws://127.0.0.1:$port/nope/%d" --clients 5 --messages 1 --drain 0
check "connect-only" "handshakes=+ connect_errors=0" \
    --url "$u" --connect-only --clients 5 --chats 5 --duration 1
proxy --split 1
check "frames split at every byte" "$ok deliveries=25" \
    --url "ws://127.0.0.1:$pport/ws/c%d" --clients 5 --messages 5 \
    --size 130 --drain 10
stop "$ppid"
proxy --random 3000
check "64 KiB frames in random pieces" "$ok deliveries=200" \
    --url "ws://127.0.0.1:$pport/ws/c%d" --clients 10 --messages 20 \
    --size 65536 --inflight 4 --drain 10
stop "$ppid"
proxy --coalesce 20
check "several frames per read" "$ok deliveries=2000" \
    --url "ws://127.0.0.1:$pport/ws/c%d" --clients 20 --messages 100 \
    --size 300 --inflight 8 --drain 5
stop "$ppid" "$spid"

standin --mode nchan
check "nchan framing" "$ok deliveries=1200" --mode nchan \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 20 --chats 3 \
    --senders 6 --messages 30 --inflight 3
stop "$spid"

standin --fragment 1000
check "fragmented messages" "$ok deliveries=200" \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 10 --messages 20 \
    --size 5000 --inflight 2
stop "$spid"

standin --ping 0.2
check "ping answered with pong" "connections=30 drops=0 pings=+" \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 30 --idle --duration 1.5
stop "$spid"

# 50 receivers x 40 messages = 2000 deliveries, every 97th dropped: 20.
# All 40 go out at once: a dropped echo must not stall the sender.
standin --drop-every 97
check "loss is detected" "lost=20 seq_errors=20 deliveries=1980" \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 50 --messages 40 \
    --inflight 40 --drain 1
stop "$spid"

standin --bad-seq 5
check "server seq jump is detected" "lost=0 seq_errors=10" \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 10 --messages 20
stop "$spid"

standin --close-after 100
check "server close is echoed and counted" "server_closes=1 ready=9" \
    --url "ws://127.0.0.1:$port/ws/c%d" --clients 10 --messages 20 --drain 1
stop "$spid"

if [ $fails -eq 0 ]; then
	echo "selftest.sh: all passed"
	exit 0
fi
echo "selftest.sh: $fails failed"
exit 1
