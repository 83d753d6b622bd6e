#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd benchmark kit: run workloads W1-W5 against racerd and, in the same
# run, against nginx + nchan, ROUNDS (3) times, then print the median of
# each figure, its range, and the racerd/nchan ratio of the medians.  See
# contrib/bench/README.md.
#
#   sh contrib/bench/run.sh                 full run (10 to 15 minutes)
#   ROUNDS=1 sh contrib/bench/run.sh        one round (3 to 5 minutes)
#   QUICK=1 sh contrib/bench/run.sh         small numbers, one round,
#                                           under a minute
#   RACERD=/path/to/racerd sh contrib/bench/run.sh
#   TARGETS="shards1 shards2" WORKLOADS=w2 sh contrib/bench/run.sh
#                                           one store against two shards
#   RACERD_QUERY=user=bench TARGETS="racerd hs256 eddsa" WORKLOADS=w4 \
#       sh contrib/bench/run.sh             auth = none against tokens
#   TARGETS="racerd sealed" WORKLOADS=w1 sh contrib/bench/run.sh
#                                           history in clear against sealed
#   TLS=1 WORKLOADS=w1 sh contrib/bench/run.sh
#                                           both on TLS, one certificate
#
# Every server runs on 127.0.0.1 on a free port, with private files in a
# temporary directory, and is restarted for each workload.  Only processes
# this script started are signalled, by pid; the directory is removed on
# exit (KEEP=1 keeps it, with every loadgen output).
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/common.sh"

if [ "${QUICK:-0}" = 1 ]; then
	: "${ROUNDS:=1}"
	: "${W1_CLIENTS:=200}" "${W1_SECS:=2}"
	: "${W2_CHATS:=100}" "${W2_RATES:=1 5 20 50}" "${W2_SECS:=2}"
	: "${W3_CLIENTS:=1000}" "${W4_SECS:=2}"
	: "${W5_CLIENTS:=1000}" "${W5_CONNECT_RATE:=2000}" "${W5_SECS:=2}"
fi
: "${TARGETS:=racerd nchan}"		# servers to measure
: "${ROUNDS:=3}"			# each figure is the median of these
: "${WORKLOADS:=w1 w2 w3 w4 w5}"
: "${RACERD:=$top/build/racerd}"	# the racerd binary
: "${RACERCTL:=$(dirname "$RACERD")/racerctl}"	# for hs256 and eddsa
# Measure throughput, not the per-connection rate limit (set it empty for
# a racerd that predates max-message-rate).
: "${RACERD_CONF_EXTRA=max-message-rate = 0}"
: "${WORKERS:=2}"			# worker processes of either server
: "${SIZE:=64}"				# payload bytes
: "${SOURCE_IPS:=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}"
: "${W1_CLIENTS:=1000}"			# fan-out: clients in the one chat
: "${W1_INFLIGHT:=8}"
: "${W1_SECS:=5}"
: "${W1_RATE:=20}"			# msg/s of the fixed-rate latency run
: "${W2_CHATS:=1000}"			# chats of 2 clients, both sending
: "${W2_RATES:=1 2 5 10 20 50 100 200}"	# msg/s per client, in steps
: "${W2_SECS:=3}"
: "${W2_P99_MS:=50}"
: "${W3_CLIENTS:=10000}"		# idle connections
: "${W3_CHATS:=100}"
: "${W4_CONCURRENCY:=100}"		# connect-upgrade-close loops
: "${W4_SECS:=3}"
: "${W5_CLIENTS:=5000}"			# members of the one big chat
: "${W5_CONNECT_RATE:=5000}"		# ... connecting at this pace
: "${W5_RATE:=10}"			# then messages/s into the chat
: "${W5_SECS:=5}"
: "${LG_OPTS:=}"			# more loadgen options, e.g. --quickack
: "${RACERD_QUERY:=}"			# query of racerd URLs, e.g. user=U&token=JWT
: "${TLS:=${RACERD_TLS:-0}}"		# 1: every server on TLS, one certificate

T=$(mktemp -d "${TMPDIR:-/tmp}/racerd-bench.XXXXXX") || exit 1
chmod 755 "$T"
started=""		# pids of servers we started
current=""		# pid of the server running now
extra=""		# its store's pid (racerd), commas
shardpids=""		# redis-servers started for racerd's shards
results=$T/results

cleanup() {
	for p in $started; do
		kill -TERM "$p" 2>/dev/null
	done
	sleep 0.5
	for p in $started; do
		kill -KILL "$p" 2>/dev/null
	done
	stop_store
	# The registry segment of our racerd instance, if it was killed.
	rm -f "/dev/shm/racerd-bench$$"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run.sh: kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Raise our file limit (servers inherit it): 10,000 sockets and more.
ulimit -Hn 65536 2>/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# bench_token KEYFILE: a day's token of user bench for every chat.
bench_token() {
	"$RACERCTL" token --key-file "$1" --kid b --sub bench --chats '*' \
	    --ttl 1d
}

# After start_*: $port, $current, $pids (server processes, commas),
# $extra (the store's process for racerd, or empty).
start_nchan() {
	port=$(free_port)
	hport=$port
	d=$T/nchan.$port
	mkdir -p "$d"
	tlsopt=""
	if [ "$TLS" = 1 ]; then
		# The same certificate as racerd's; /healthz on a plain port.
		hport=$(free_port)
		tlsopt="-s $hport -c $T/cert.pem -k $T/key.pem"
	fi
	# shellcheck disable=SC2086
	sh "$here/nchan.sh" -p "$port" -d "$d" -w "$WORKERS" $tlsopt \
	    >"$d/stderr" 2>&1 &
	current=$!
	started="$started $current"
	if ! wait_health "$hport" "$current"; then
		say "run.sh: nginx + nchan did not start:"
		tail -n 5 "$d/stderr" "$d/error.log" >&2 2>/dev/null
		return 1
	fi
	pids=$(echo "$current" $(pgrep -P "$current") | tr ' ' ,)
	extra=
}

# start_racerd [N [AUTH]]: with its embedded store, or on N redis-servers
# of its own (shards; each persisted as the embedded store is, appendfsync
# everysec), started here; with AUTH (hs256 or eddsa), auth = token and a
# key made by racerctl, its clients user "bench" with a token.
start_racerd() {
	[ -x "$RACERD" ] || { say "run.sh: no racerd at $RACERD"; return 1; }
	port=$(free_port)
	hport=$port
	d=$T/racerd.$port
	mkdir -p "$d/run" "$d/state"
	store=embedded
	shardpids=
	if [ -n "${1:-}" ]; then
		store=
		i=0
		while [ "$i" -lt "$1" ]; do
			mkdir -p "$d/shard$i"
			redis-server --port 0 --unixsocket "$d/shard$i/sock" \
			    --unixsocketperm 700 --dir "$d/shard$i" \
			    --appendonly yes --appendfsync everysec --save "" \
			    --maxmemory-policy noeviction --daemonize no \
			    --logfile "$d/shard$i/log" &
			started="$started $!"
			shardpids=${shardpids:+$shardpids,}$!
			store=${store:+$store, }unix:$d/shard$i/sock
			i=$((i + 1))
		done
		i=0
		while [ "$i" -lt "$1" ]; do
			tries=0
			until [ "$(redis-cli -s "$d/shard$i/sock" ping \
			    2>/dev/null)" = PONG ]; do
				tries=$((tries + 1))
				[ $tries -lt 50 ] || {
					say "run.sh: redis-server did not start"
					return 1
				}
				sleep 0.1
			done
			i=$((i + 1))
		done
	fi
	if [ "$TLS" = 1 ]; then
		# Clients on TLS; /healthz on a plain port beside it.
		hport=$(free_port)
		printf 'tls-listen = 127.0.0.1:%s\ntls-certificate = %s\n' \
		    "$port" "$T/cert.pem" >"$d/tls.conf"
		printf 'tls-key = %s\n' "$T/key.pem" >>"$d/tls.conf"
	else
		: >"$d/tls.conf"
	fi
	cat - "$d/tls.conf" >"$d/racerd.conf" <<EOF
listen = 127.0.0.1:$hport
workers = $WORKERS
instance = bench$$
run-dir = $d/run
state-dir = $d/state
log-file = $d/racerd.log
redis = $store
EOF
	[ -n "${RACERD_CONF_EXTRA:-}" ] &&
	    printf '%s\n' "$RACERD_CONF_EXTRA" >>"$d/racerd.conf"
	token=
	conf=
	case ${2:-} in
	hs256)
		"$RACERCTL" keygen hmac --kid b >"$d/auth.keys" &&
		    token=$(bench_token "$d/auth.keys") &&
		    conf="auth = token
auth-hmac-key-file = $d/auth.keys" ;;
	eddsa)
		"$RACERCTL" keygen ed25519 --kid b --out "$d/auth.private" \
		    >"$d/auth.keys" 2>/dev/null &&
		    token=$(bench_token "$d/auth.private") &&
		    conf="auth = token
auth-ed25519-key-file = $d/auth.keys" ;;
	sealed)
		"$RACERCTL" keygen storage --kid b >"$d/auth.storage" &&
		    conf="storage-key-file = $d/auth.storage" ;;
	esac || {
		say "run.sh: racerctl ($RACERCTL) failed"
		return 1
	}
	[ -n "$conf" ] && printf '%s\n' "$conf" >>"$d/racerd.conf"
	chmod 600 "$d"/auth.* 2>/dev/null
	"$RACERD" -f -c "$d/racerd.conf" >"$d/stderr" 2>&1 &
	current=$!
	started="$started $current"
	if ! wait_health "$hport" "$current"; then
		say "run.sh: racerd did not start:"
		tail -n 5 "$d/stderr" "$d/racerd.log" >&2 2>/dev/null
		return 1
	fi
	pids=$current
	extra=$shardpids
	for c in $(pgrep -P "$current"); do
		if [ "$(comm_of "$c")" = redis-server ]; then
			extra=${extra:+$extra,}$c
		else
			pids=$pids,$c
		fi
	done
}

stop_server() {
	[ -n "$current" ] || return 0
	kill -TERM "$current" 2>/dev/null
	i=0
	while kill -0 "$current" 2>/dev/null && [ $i -lt 150 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$current" 2>/dev/null
	wait "$current" 2>/dev/null
	current=
	stop_store
}

# stop_store: racerd stops its redis-server; if it could not, we do.  Only
# a pid whose command line names our directory is ours.
stop_store() {
	for p in $(echo "${extra:-}" | tr , ' '); do
		grep -q "$T" "/proc/$p/cmdline" 2>/dev/null &&
		    kill -TERM "$p" 2>/dev/null
	done
	# Shards we started for it are ours whatever their title says.
	for p in $(echo "${shardpids:-}" | tr , ' '); do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	extra=
	shardpids=
}

# mode_of TARGET: the framing its clients speak, racerd or nchan.
mode_of() {
	case $1 in
	nchan)	echo nchan ;;
	*)	echo racerd ;;
	esac
}

# url TARGET NAME: the WebSocket URL template of a fresh chat prefix.
url() {
	scheme=ws
	m=$(mode_of "$1")
	[ "$TLS" = 1 ] && scheme=wss
	if [ "$m" = racerd ] && [ -n "${token:-}" ]; then
		echo "$scheme://127.0.0.1:$port/ws/$2$$x%d?user=bench&token=$token"
	elif [ "$m" = racerd ] && [ -n "${RACERD_QUERY:-}" ]; then
		echo "$scheme://127.0.0.1:$port/ws/$2$$x%d?$RACERD_QUERY"
	else
		echo "$scheme://127.0.0.1:$port/ws/$2$$x%d"
	fi
}

# lg NAME ARGS...: run loadgen, keep its output, print its summary line.
lg() {
	name=$1
	shift
	# shellcheck disable=SC2086
	"$T/loadgen" $LG_OPTS "$@" >"$T/$name.out" 2>"$T/$name.err"
	tail -n 1 "$T/$name.out"
}

# field KEY LINE: the value of KEY=value in a summary line.
field() {
	echo "$2" | awk -v k="$1" '{ for (i = 1; i <= NF; i++)
	    if (index($i, k "=") == 1) {
		print substr($i, length(k) + 2)
		exit
	    } }'
}

put() {
	echo "$1 $2 $3" >>"$results"
}

# get TARGET KEY [min|max]: the median of KEY over the rounds (of the
# rounds that have a number), or their least or greatest; n/a if none.
get() {
	awk -v t="$1" -v k="$2" '$1 == t && $2 == k && $3 ~ /^-?[0-9.]+$/ {
	    print $3 }' "$results" 2>/dev/null | sort -g |
	    awk -v w="${3:-median}" '{ v[n++] = $1 } END {
		if (n == 0) print "n/a"
		else if (w == "min") print v[0]
		else if (w == "max") print v[n - 1]
		else if (n % 2) print v[(n - 1) / 2]
		else print (v[n / 2 - 1] + v[n / 2]) / 2 }'
}

# clean LINE: 1 if nothing was lost, refused or out of order.
clean() {
	for k in connect_errors lost reordered seq_errors misrouted \
	    server_errors server_closes drops; do
		v=$(field "$k" "$1")
		[ "${v:-0}" = 0 ] || { echo 0; return; }
	done
	echo 1
}

w1() {
	t=$1
	cpu="--cpu-pids $pids${extra:+ --cpu-pids-extra $extra}"
	# shellcheck disable=SC2086
	l=$(lg "$t-w1-tput" --mode "$(mode_of "$t")" --url "$(url "$t" w1a)" \
	    --clients "$W1_CLIENTS" --inflight "$W1_INFLIGHT" \
	    --duration "$W1_SECS" --size "$SIZE" $cpu)
	say "  $t W1 $W1_INFLIGHT in flight: $l"
	put "$t" w1_dps "$(field deliveries/s "$l")"
	put "$t" w1_us "$(field server_us/delivery "$l")"
	put "$t" w1_us_all "$(field server+extra_us/delivery "$l")"
	put "$t" w1_clean "$(clean "$l")"
	put "$t" w1_ccpu "$(field client_cpu "$l")"
	l=$(lg "$t-w1-lat" --mode "$(mode_of "$t")" --url "$(url "$t" w1b)" \
	    --clients "$W1_CLIENTS" --inflight 1 --duration "$W1_SECS" \
	    --size "$SIZE")
	say "  $t W1 1 in flight: $l"
	put "$t" w1_p50 "$(field p50_ms "$l")"
	put "$t" w1_p99 "$(field p99_ms "$l")"
	put "$t" w1_lclean "$(clean "$l")"
	# The same fan-out at a fixed rate well below either server's limit.
	l=$(lg "$t-w1-rate" --mode "$(mode_of "$t")" --url "$(url "$t" w1c)" \
	    --clients "$W1_CLIENTS" --rate "$W1_RATE" --duration "$W1_SECS" \
	    --size "$SIZE")
	say "  $t W1 $W1_RATE msg/s: $l"
	put "$t" w1_rp50 "$(field p50_ms "$l")"
	put "$t" w1_rp99 "$(field p99_ms "$l")"
	put "$t" w1_rclean "$(clean "$l")"
}

w2() {
	t=$1
	best=0
	bdps=0
	for r in $W2_RATES; do
		name=w2r$(echo "$r" | tr . p)x
		l=$(lg "$t-w2-$r" --mode "$(mode_of "$t")" --url "$(url "$t" "$name")" \
		    --clients $((2 * W2_CHATS)) --chats "$W2_CHATS" \
		    --senders $((2 * W2_CHATS)) --rate "$r" \
		    --duration "$W2_SECS" --drain 2 --size "$SIZE" \
		    --source-ips "$SOURCE_IPS")
		say "  $t W2 $r msg/s: $l"
		p99=$(field p99_ms "$l")
		ok=$(awk -v p="${p99:-999999}" -v m="$W2_P99_MS" \
		    'BEGIN { print ((p < m) ? 1 : 0) }')
		if [ "$ok" != 1 ] || [ "$(clean "$l")" != 1 ]; then
			break
		fi
		best=$r
		bdps=$(field deliveries/s "$l")
	done
	put "$t" w2_rate "$best"
	put "$t" w2_dps "$bdps"
}

w3() {
	t=$1
	sleep 1
	all=$pids${extra:+,$extra}
	r0=$(rss_kb "$pids")
	a0=$(rss_kb "$all")
	# shellcheck disable=SC2086
	"$T/loadgen" $LG_OPTS --mode "$(mode_of "$t")" \
	    --url "$(url "$t" w3)" --idle \
	    --clients "$W3_CLIENTS" --chats "$W3_CHATS" --duration 4 \
	    --source-ips "$SOURCE_IPS" >"$T/$t-w3.out" 2>"$T/$t-w3.err" &
	lgpid=$!
	i=0
	while ! grep -q 'loadgen: ready' "$T/$t-w3.err" 2>/dev/null &&
	    [ "$i" -lt 600 ] &&
	    kill -0 "$lgpid" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 1.5
	r1=$(rss_kb "$pids")
	a1=$(rss_kb "$all")
	wait "$lgpid"
	l=$(tail -n 1 "$T/$t-w3.out")
	say "  $t W3: $l; RSS $r0 -> $r1 KiB (with store $a0 -> $a1)"
	put "$t" w3_hs_p99 "$(field hs_p99_ms "$l")"
	n=$(field connections "$l")
	if [ "${n:-0}" -gt 0 ]; then
		put "$t" w3_bytes $(((r1 - r0) * 1024 / n))
		[ -n "$extra" ] &&
		    put "$t" w3_bytes_all $(((a1 - a0) * 1024 / n))
		put "$t" w3_conns "$n"
	fi
}

w4() {
	t=$1
	l=$(lg "$t-w4" --mode "$(mode_of "$t")" --url "$(url "$t" w4)" --connect-only \
	    --clients "$W4_CONCURRENCY" --chats 1000 --duration "$W4_SECS" \
	    --source-ips "$SOURCE_IPS")
	say "  $t W4: $l"
	put "$t" w4_hps "$(field handshakes/s "$l")"
	put "$t" w4_errors "$(field connect_errors "$l")"
}

# W5: one chat of W5_CLIENTS members joining at W5_CONNECT_RATE connects
# a second (every join a presence event to those already in), then one
# member sending W5_RATE messages a second to all of them.
w5() {
	t=$1
	l=$(lg "$t-w5" --mode "$(mode_of "$t")" --url "$(url "$t" w5)" \
	    --clients "$W5_CLIENTS" --chats 1 --senders 1 --rate "$W5_RATE" \
	    --connect-rate "$W5_CONNECT_RATE" --concurrency "$W5_CLIENTS" \
	    --connect-timeout 10 --duration "$W5_SECS" --drain 3 \
	    --size "$SIZE" --source-ips "$SOURCE_IPS")
	say "  $t W5: $l"
	put "$t" w5_connect_s "$(field connect_s "$l")"
	put "$t" w5_failed "$(field connect_errors "$l")"
	put "$t" w5_hs_p99 "$(field hs_p99_ms "$l")"
	put "$t" w5_presence "$(field presence "$l")"
	put "$t" w5_p99 "$(field p99_ms "$l")"
	put "$t" w5_lost "$(field lost "$l")"
}

# busy_pct: how much of the machine other processes used over 1 s.
busy_pct() {
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
	echo "$a $b" | awk '{ u = $3 - $1; i = $4 - $2;
	    printf "%d", (u + i > 0) ? 100 * u / (u + i) : 0 }'
}

cc -O2 -Wall -Wextra -o "$T/loadgen" "$here/loadgen.c" \
    $(pkg-config --cflags --libs libevent_core openssl) -lm || {
	say "run.sh: cannot build loadgen (apt-get install libevent-dev libssl-dev)"
	exit 1
}

if [ "$TLS" = 1 ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -days 1 -subj /CN=127.0.0.1 -keyout "$T/key.pem" \
	    -out "$T/cert.pem" 2>/dev/null || {
		say "run.sh: openssl cannot make a certificate"
		exit 1
	}
	chmod 644 "$T/key.pem"	# nginx's workers read it as nobody
fi

busy=$(busy_pct)
say "run.sh: $(nproc) CPUs, ${busy}% busy before the run; loadgen and the"
say "        server share them"
[ "$busy" -gt 15 ] &&
    say "run.sh: warning: the machine is busy, figures will be noisy"

# Each workload on a freshly started server of each target, ROUNDS
# times, the targets taking turns so that a slow minute hits all of them.
: >"$results"
round=0
while [ "$round" -lt "$ROUNDS" ]; do
	round=$((round + 1))
	for w in $WORKLOADS; do
		for t in $TARGETS; do
			case $t in
			racerd)	start_racerd || { stop_server; continue; } ;;
			hs256|eddsa|sealed)
				start_racerd "" "$t" ||
				    { stop_server; continue; } ;;
			shards[1-9]|shards[1-9][0-9])
				start_racerd "${t#shards}" ||
				    { stop_server; continue; } ;;
			nchan)	start_nchan || { stop_server; continue; } ;;
			*)	say "run.sh: unknown target $t"; exit 1 ;;
			esac
			say "$w on $t, round $round of $ROUNDS (port $port, pids" \
			    "$pids${extra:+, store $extra})"
			$w "$t"
			stop_server
		done
	done
done

# ratio A B: A/B to 2 decimals, or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
	    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0)
		printf "%.2f", a / b; else printf "n/a" }'
}

# The table has a column per target and the ratio of the first to the
# last (racerd/nchan by default).
first=${TARGETS%% *}
last=${TARGETS##* }
row() {
	printf '%-46s' "$1"
	for t in $TARGETS; do
		printf ' %12s' "$(get "$t" "$2")"
	done
	printf ' %8s  %s\n' "$(ratio "$(get "$first" "$2")" \
	    "$(get "$last" "$2")")" "$3"
	[ "$ROUNDS" -gt 1 ] || return 0
	printf '%-46s' "  range of $ROUNDS rounds"
	for t in $TARGETS; do
		lo=$(get "$t" "$2" min)
		if [ "$lo" = n/a ]; then
			printf ' %12s' ""
		else
			printf ' %12s' "$lo-$(get "$t" "$2" max)"
		fi
	done
	printf '\n'
}

printf '\n%-46s' "figure"
for t in $TARGETS; do
	printf ' %12s' "$t"
done
printf ' %8s\n' "ratio"
row "W1 deliveries/s ($W1_CLIENTS clients, $W1_INFLIGHT in flight)" w1_dps \
    "higher is better"
row "W1 server CPU us/delivery" w1_us "lower is better"
row "W1 server CPU us/delivery, with redis-server" w1_us_all \
    "lower is better"
row "W1 p50 latency ms (1 in flight)" w1_p50 "lower is better"
row "W1 p99 latency ms (1 in flight)" w1_p99 "lower is better"
row "W1 p50 latency ms ($W1_RATE msg/s)" w1_rp50 "lower is better"
row "W1 p99 latency ms ($W1_RATE msg/s)" w1_rp99 "lower is better"
row "W2 max msg/s per client, p99<${W2_P99_MS}ms, no loss" w2_rate \
    "higher is better"
row "W2 deliveries/s at that rate" w2_dps ""
row "W3 RSS bytes per idle connection" w3_bytes "lower is better"
row "W3 RSS bytes per idle conn., with redis-server" w3_bytes_all \
    "lower is better"
row "W3 handshake p99 ms while they connect" w3_hs_p99 "lower is better"
row "W4 handshakes/s ($W4_CONCURRENCY loops)" w4_hps "higher is better"
row "W5 connect phase s ($W5_CLIENTS at $W5_CONNECT_RATE/s)" w5_connect_s \
    "lower is better"
row "W5 connects failed or timed out (10 s)" w5_failed "lower is better"
row "W5 handshake p99 ms" w5_hs_p99 "lower is better"
row "W5 presence frames received" w5_presence ""
row "W5 p99 ms of $W5_RATE msg/s to every member" w5_p99 "lower is better"
row "W5 deliveries lost" w5_lost "must be 0"
busy=$(busy_pct)
echo "machine: $(nproc) CPUs, ${busy}% busy right after the run (others)"
for t in $TARGETS; do
	case "$(get "$t" w1_clean min)$(get "$t" w1_lclean min)$(get "$t" \
	    w1_rclean min)" in
	*0*)	say "note: $t lost or refused messages in W1 (see above)" ;;
	esac
	c=$(get "$t" w1_ccpu max)
	awk -v c="$c" 'BEGIN { exit !(c + 0 > 0.9) }' &&
	    say "note: loadgen used $c CPU in $t W1: it may be the limit"
done
exit 0
