#!/bin/sh
# SPDX-License-Identifier: ISC
# The scale of one host: SCALE_CLIENTS (100,000) idle WebSockets in one
# chat on racerd with SCALE_WORKERS (6) workers and its embedded store,
# opened by several loadgen processes (a process may hold 20,000
# descriptors here), each binding its own source addresses 127.0.K.1 and
# 127.0.K.2 to get past the ephemeral ports of one address; then one
# message POSTed to the chat.  Prints the time to connect them all, the
# RSS per connection (racerd's processes, and with the store) and the
# time from the POST until the last member has the message.
#
#   sh contrib/bench/scale.sh
#   SCALE_CLIENTS=20000 RACERD=build/racerd sh contrib/bench/scale.sh
#
# Only processes this script started are signalled, by pid; its files
# are in a temporary directory removed on exit.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/common.sh"
: "${RACERD:=$top/build/racerd}"
: "${SCALE_CLIENTS:=100000}"
: "${SCALE_WORKERS:=6}"
: "${SCALE_PER_PROC:=16000}"	# connections per loadgen process
: "${SCALE_HOLD:=60}"		# seconds a loadgen holds its connections

T=$(mktemp -d "${TMPDIR:-/tmp}/racerd-scale.XXXXXX") || exit 1
chmod 755 "$T"
racerd=""
lgs=""
cleanup() {
	for p in $lgs $racerd; do
		kill -TERM "$p" 2>/dev/null
	done
	sleep 1
	for p in $lgs $racerd; do
		kill -KILL "$p" 2>/dev/null
	done
	rm -f "/dev/shm/racerd-scale$$"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mono_ns() {
	/usr/bin/python3 -c 'import time; print(time.monotonic_ns())'
}

[ -x "$RACERD" ] || { say "scale.sh: no racerd at $RACERD"; exit 1; }
cc -O2 -Wall -Wextra -o "$T/loadgen" "$here/loadgen.c" \
    $(pkg-config --cflags --libs libevent_core openssl) -lm || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null

port=$(free_port)
key=scale-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$key" >"$T/api.keys"
chmod 600 "$T/api.keys"
mkdir -p "$T/run" "$T/state"
cat >"$T/racerd.conf" <<EOF
listen = 127.0.0.1:$port
workers = $SCALE_WORKERS
instance = scale$$
run-dir = $T/run
state-dir = $T/state
log-file = $T/racerd.log
redis = embedded
api-key-file = $T/api.keys
EOF
"$RACERD" -f -c "$T/racerd.conf" >"$T/stderr" 2>&1 &
racerd=$!
wait_health "$port" "$racerd" 200 || {
	say "scale.sh: racerd did not start"; tail -5 "$T/stderr" >&2
	exit 1
}
sleep 1
pids=$racerd
store=
for c in $(pgrep -P "$racerd"); do
	if [ "$(comm_of "$c")" = redis-server ]; then
		store=$c
	else
		pids=$pids,$c
	fi
done
r0=$(rss_kb "$pids")
s0=$(rss_kb "$store")
say "scale.sh: racerd on port $port, $SCALE_WORKERS workers (pids $pids," \
    "store $store); $SCALE_CLIENTS connections"

# The loadgens, one per SCALE_PER_PROC connections.
left=$SCALE_CLIENTS
k=1
t0=$(mono_ns)
while [ "$left" -gt 0 ]; do
	n=$SCALE_PER_PROC
	[ "$n" -gt "$left" ] && n=$left
	"$T/loadgen" --mode racerd --idle --clients "$n" --chats 1 \
	    --url "ws://127.0.0.1:$port/ws/big$$" --duration "$SCALE_HOLD" \
	    --connect-timeout 60 --source-ips "127.0.$k.1,127.0.$k.2" \
	    >"$T/lg$k.out" 2>"$T/lg$k.err" &
	lgs="$lgs $!"
	left=$((left - n))
	k=$((k + 1))
done
nlg=$((k - 1))
i=0
while [ "$(cat "$T"/lg*.err 2>/dev/null | grep -c 'loadgen: ready')" -lt \
    "$nlg" ]; do
	i=$((i + 1))
	[ $i -lt 1200 ] || { say "scale.sh: the loadgens are not ready"; exit 1; }
	sleep 0.1
done
t1=$(mono_ns)
ready=$(cat "$T"/lg*.err | sed -n 's/^loadgen: ready \([0-9]*\) .*/\1/p' |
    awk '{ n += $1 } END { print n }')
sleep 2
r1=$(rss_kb "$pids")
s1=$(rss_kb "$store")

# One message to all of them.
/usr/bin/python3 - "$port" "big$$" "$key" >"$T/post.out" <<'EOF'
import json, sys, time, urllib.request
port, chat, key = sys.argv[1:]
req = urllib.request.Request(
    "http://127.0.0.1:%s/chats/%s/messages" % (port, chat),
    data=json.dumps({"body": "to everyone", "id": "scale-1"}).encode(),
    headers={"Authorization": "Bearer " + key,
             "Content-Type": "application/json"}, method="POST")
t = time.monotonic_ns()
with urllib.request.urlopen(req, timeout=30) as r:
    r.read()
print(t)
EOF
tp=$(cat "$T/post.out")
# Wait for the loadgens to end (SCALE_HOLD) and read their summaries.
for p in $lgs; do
	wait "$p"
done
lgs=""
msgs=0
last=0
for f in "$T"/lg*.out; do
	l=$(tail -n 1 "$f")
	m=$(echo "$l" | sed -n 's/.* msgs=\([0-9]*\).*/\1/p')
	t=$(echo "$l" | sed -n 's/.* last_msg_ns=\([0-9]*\).*/\1/p')
	msgs=$((msgs + ${m:-0}))
	[ "${t:-0}" -gt "$last" ] && last=$t
done
[ "${ready:-0}" -gt 0 ] || { say "scale.sh: no connection was ready"; exit 1; }
awk -v n="$SCALE_CLIENTS" -v ready="$ready" -v t0="$t0" -v t1="$t1" \
    -v r0="$r0" -v r1="$r1" -v s0="$s0" -v s1="$s1" -v tp="${tp:-0}" \
    -v last="$last" -v msgs="$msgs" -v w="$SCALE_WORKERS" 'BEGIN {
	printf "connections ready     %d of %d (%d workers)\n", ready, n, w
	printf "time to connect all   %.1f s\n", (t1 - t0) / 1e9
	printf "RSS per connection    %d B (%d B with the store)\n",
	    (r1 - r0) * 1024 / ready, (r1 - r0 + s1 - s0) * 1024 / ready
	printf "message received by   %d of %d\n", msgs, ready
	if (tp > 0 && last > tp)
		printf "last member has it    %.0f ms after the POST\n",
		    (last - tp) / 1e6
}'
grep -h "connect_errors" "$T"/lg*.out | awk '{ for (i = 1; i <= NF; i++)
    if ($i ~ /^connect_errors=/) { split($i, a, "="); e += a[2] } }
    END { printf "connect errors        %d\n", e }'
# What the loadgens said besides "ready" (the first error of each).
grep -hv 'loadgen: ready' "$T"/lg*.err 2>/dev/null | sort | uniq -c | head >&2
# What racerd logged besides its start.
grep -v 'started\|serving\|connection is up\|starting\|listening\|embedded store\|open files' \
    "$T/racerd.log" 2>/dev/null | head -5 >&2
