# SPDX-License-Identifier: ISC
# racerd integration test helpers; sourced by tests/integration/*.sh.
#
# Each test gets a private directory, free ports, its own instance name
# (so its registry segment is /dev/shm/racerd-$INSTANCE) and a trap that
# stops exactly the processes it started, by pid, and removes what they
# left, even when the test fails.

set -u
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
: "${RACERD:=$top_builddir/racerd}"
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/racerd-test.XXXXXX")
INSTANCE="t$$x$(od -An -N3 -tu4 /dev/urandom | tr -d " ")"
PIDS=""
FAILS=0
NAME=$(basename "$0" .sh)

cleanup() {
	for p in $PIDS; do
		kill -KILL "$p" 2>/dev/null
	done
	# Workers and the embedded store die with their master.
	for f in "$T"/*.pid "$T"/run*/*.pid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	# Browsers (chromium under chromedriver) name $T in their command
	# line: stop any that a killed driver left behind, by pid.
	if [ -n "${KILL_BY_TMP:-}" ]; then
		for f in /proc/[0-9]*/cmdline; do
			p=${f#/proc/}
			p=${p%/cmdline}
			[ "$p" = $$ ] && continue
			tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "$T/" &&
			    kill -KILL "$p" 2>/dev/null
		done
	fi
	sleep 0.2
	rm -f /dev/shm/racerd-"$INSTANCE"*
	if [ "$FAILS" -ne 0 ] && [ -f "$T/racerd.log" ]; then
		echo "--- $NAME: racerd.log (last 40 lines)"
		tail -n 40 "$T/racerd.log"
	fi
	# Instances of write_conf_as log to racerd-NAME.log.
	if [ "$FAILS" -ne 0 ]; then
		for f in "$T"/racerd-*.log; do
			[ -f "$f" ] || continue
			echo "--- $NAME: ${f##*/} (last 30 lines)"
			tail -n 30 "$f"
		done
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

STEPFAILS=0
fail() {
	echo "FAIL: $NAME: $*"
	FAILS=$((FAILS + 1))
}

# ok MESSAGE: a step is done; says "ok" only if it had no failure.
ok() {
	[ "$FAILS" -eq "$STEPFAILS" ] && echo "ok: $NAME: $*"
	STEPFAILS=$FAILS
}

# Finish: exit 0 if nothing failed.
finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$NAME: $FAILS check(s) failed"
		exit 1
	fi
	exit 0
}

# A tool the test needs: missing is a skip (77) on a developer's machine
# and a failure under CI, which installs everything.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $NAME: $1 is not installed"
		exit 1
	fi
	echo "SKIP: $NAME: $1 is not installed"
	exit 77
}

# The tools most tests use: curl, redis-server, timeout and Debian's
# python3-websockets (the independent WebSocket client).
need_clients() {
	need curl
	need redis-server
	need timeout
	$PY -c 'import websockets' 2>/dev/null || need python3-websockets
}

# --- TLS: certificates made by openssl(1) for the test ---

# tls_make_ca: a self-signed CA, $T/ca.pem and $T/ca.key.
tls_make_ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -days 2 -subj "/CN=racerd test CA $$" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" \
	    -keyout "$T/ca.key" -out "$T/ca.pem" 2>"$T/openssl.err" ||
	    { cat "$T/openssl.err"; fail "openssl: cannot make a CA"; finish; }
}

# tls_make_cert NAME SERIAL: a certificate for 127.0.0.1 and localhost
# signed by the CA, with that serial number: $T/NAME.pem and $T/NAME.key.
tls_make_cert() {
	cat >"$T/$1.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -subj "/CN=localhost" -keyout "$T/$1.key" -out "$T/$1.csr" \
	    2>"$T/openssl.err" &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
	    -set_serial "$2" -days 2 -extfile "$T/$1.ext" -out "$T/$1.pem" \
	    2>"$T/openssl.err" ||
	    { cat "$T/openssl.err"; fail "openssl: cannot make $1"; finish; }
}

# RACERD_TEST_TLS=1 runs a test over TLS: write_conf and write_conf_as
# put racerd on tls-listen only (listen is empty), http_status and
# wait_healthy use https://, and wsclient.py speaks wss:// and HTTPS,
# all verified against the test's CA ($RACERD_TEST_CA).
if [ "${RACERD_TEST_TLS:-}" = 1 ]; then
	need openssl
	tls_make_ca
	tls_make_cert server 1
	RACERD_TEST_CA=$T/ca.pem
	export RACERD_TEST_CA
	echo "note: $NAME: racerd on TLS only (RACERD_TEST_TLS=1)"
fi

# The listening lines of a configuration for PORT, plain or TLS.
listen_conf() {
	if [ "${RACERD_TEST_TLS:-}" = 1 ]; then
		printf 'listen =\ntls-listen = 127.0.0.1:%s\n' "$1"
		printf 'tls-certificate = %s\ntls-key = %s\n' "$T/server.pem" \
		    "$T/server.key"
	else
		printf 'listen = 127.0.0.1:%s\n' "$1"
	fi
}

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# write_conf FILE PORT WORKERS [extra "key = value" lines...]
write_conf() {
	f=$1 port=$2 workers=$3
	shift 3
	listen_conf "$port" >"$f"
	cat >>"$f" <<CONF
workers = $workers
instance = $INSTANCE
run-dir = $T/run
state-dir = $T/state
log-file = $T/racerd.log
log-level = debug
shutdown-timeout = 5
CONF
	for line in "$@"; do
		echo "$line" >>"$f"
	done
}

# http_status URL: prints the HTTP status code (000 when unreachable).
http_status() {
	http_curl "$1" -o /dev/null -w '%{http_code}'
}

# http_curl URL [CURL OPTIONS]: curl -s with a 5 s limit; under
# RACERD_TEST_TLS=1 an http:// URL becomes https:// with the test's CA.
http_curl() {
	_url=$1
	shift
	if [ "${RACERD_TEST_TLS:-}" = 1 ]; then
		case $_url in
		http://*) _url=https://${_url#http://} ;;
		esac
		curl -s --max-time 5 --cacert "$RACERD_TEST_CA" "$@" "$_url"
	else
		curl -s --max-time 5 "$@" "$_url"
	fi
}

# wait_healthy PORT [SECONDS]: until /healthz answers 200.
wait_healthy() {
	i=0
	while [ "$i" -lt $((${2:-15} * 10)) ]; do
		[ "$(http_status "http://127.0.0.1:$1/healthz")" = 200 ] &&
		    return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# wait_gone PID [SECONDS]: until the process has exited.
wait_gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ "$i" -ge $((${2:-10} * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# children PID: the pids of a process's children, one per line.
children() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$'
}

# worker_pids MASTER: the children that are workers (not redis-server).
worker_pids() {
	for c in $(children "$1"); do
		case "$(cat /proc/"$c"/comm 2>/dev/null)" in
		redis-server) ;;
		*) echo "$c" ;;
		esac
	done
}

# wait_log PATTERN [SECONDS]: until the log has a line matching PATTERN.
wait_log() {
	i=0
	while ! grep -q -- "$1" "$T/racerd.log" 2>/dev/null; do
		[ "$i" -ge $((${2:-10} * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# --- helpers for the chat tests (chat_*.sh) ---

# write_conf_as FILE PORT WORKERS NAME [extra "key = value" lines...]:
# like write_conf, for another racerd instance named $INSTANCE$NAME with
# its own run-dir ($T/run-NAME), state-dir and log file ($T/racerd-NAME.log).
write_conf_as() {
	f=$1 port=$2 workers=$3 name=$4
	shift 4
	listen_conf "$port" >"$f"
	cat >>"$f" <<CONF
workers = $workers
instance = $INSTANCE$name
run-dir = $T/run-$name
state-dir = $T/state-$name
log-file = $T/racerd-$name.log
log-level = debug
shutdown-timeout = 5
CONF
	for line in "$@"; do
		echo "$line" >>"$f"
	done
}

# start_redis: a private redis-server on the unix socket $T/redis.sock
# (REDIS_SOCK), no persistence; its pid joins PIDS. Fails the test if it
# does not answer PING within 5 s.
start_redis() {
	start_redis_as redis
}

# start_redis_as NAME: the same on $T/NAME.sock, logging to $T/NAME.log.
start_redis_as() {
	REDIS_SOCK=$T/$1.sock
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
	    --save "" --appendonly no --daemonize no --dir "$T" \
	    --logfile "$T/$1.log" &
	REDIS_PID=$!
	PIDS="$PIDS $REDIS_PID"
	i=0
	while [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" != PONG ]; do
		i=$((i + 1))
		if [ "$i" -ge 50 ]; then
			fail "redis-server did not start"
			finish
		fi
		sleep 0.1
	done
}

# start_redis_aof: like start_redis, with an AOF written at every command
# (appendfsync always) in $T/rdata and noeviction; ARGV holds its command
# line as JSON, for a test that kills the store and starts it again.
start_redis_aof() {
	REDIS_SOCK=$T/redis.sock
	mkdir -p "$T/rdata"
	set -- redis-server --port 0 --unixsocket "$REDIS_SOCK" \
	    --unixsocketperm 700 --appendonly yes --appendfsync always \
	    --dir "$T/rdata" --save "" --maxmemory-policy noeviction \
	    --daemonize no --logfile "$T/redis.log"
	"$@" &
	REDIS_PID=$!
	PIDS="$PIDS $REDIS_PID"
	ARGV=$($PY -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@")
	i=0
	while [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" != PONG ]; do
		i=$((i + 1))
		if [ "$i" -ge 50 ]; then
			fail "redis-server did not start"
			finish
		fi
		sleep 0.1
	done
}

# start_racerd CONF [PORT]: racerd in the foreground, in the background;
# its pid is MASTER and joins PIDS. With PORT, waits until healthy and
# fails the test (and stops) if it does not get there.
start_racerd() {
	"$RACERD" -f -c "$1" 2>>"$T/racerd.err" &
	MASTER=$!
	PIDS="$PIDS $MASTER"
	if [ -n "${2:-}" ] && ! wait_healthy "$2" 20; then
		fail "racerd ($1) not healthy on port $2"
		cat "$T/racerd.err" 2>/dev/null
		finish
	fi
}

# wsclient ARGS...: run tests/integration/wsclient.py, bounded in time
# (WSC_TIMEOUT seconds, default 50).
wsclient() {
	timeout -k 3 "${WSC_TIMEOUT:-50}" \
	    $PY "$top_srcdir/tests/integration/wsclient.py" "$@"
}

# --- helpers for the racer(1) tests (racer_*.sh) ---

: "${RACER:=$top_builddir/racer}"

# start_racer NAME ARGS...: racer ARGS in the background, reading the
# fifo $T/NAME.in (the caller opens it for writing; its end is racer's
# end of input) and writing $T/NAME.out and $T/NAME.err; its pid is
# RACER_PID and joins PIDS.
start_racer() {
	name=$1
	shift
	rm -f "$T/$name.in"
	mkfifo "$T/$name.in"
	"$RACER" "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
	RACER_PID=$!
	PIDS="$PIDS $RACER_PID"
}

# wait_lines FILE PATTERN COUNT [SECONDS]: until FILE has at least COUNT
# lines matching the basic regular expression PATTERN.
wait_lines() {
	i=0
	while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "$3" ]; do
		[ "$i" -ge $((${4:-10} * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# wait_child PID [SECONDS]: until the background child PID has exited
# (it is then a zombie until waited for); its exit status goes to STATUS.
# Returns 1 if it is still running after SECONDS (default 10).
wait_child() {
	i=0
	while [ "$(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null)" != Z ] &&
	    kill -0 "$1" 2>/dev/null; do
		[ "$i" -ge $((${2:-10} * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	wait "$1"
	STATUS=$?
	return 0
}

# racer_lines FILE: racer's text output as "SEQ FROM BODY" lines (the
# messages only; notices and presence dropped).
racer_lines() {
	sed -n 's/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9] \[\([0-9]*\)\] \([^:]*\): /\1 \2 /p' "$1"
}

# --- helpers for the web client tests (web_*.sh) ---

# need_browser: Debian's chromium, chromium-driver and python3-selenium.
need_browser() {
	need chromium
	need chromedriver
	$PY -c 'import selenium' 2>/dev/null || need python3-selenium
	KILL_BY_TMP=1
}

# start_web [WORKERS] [extra "key = value" lines...]: racerd on a free
# port (PORT) with the web page of the source tree as its webroot and an
# external store (start_redis), healthy.
start_web() {
	workers=${1:-1}
	[ $# -gt 0 ] && shift
	start_redis
	PORT=$(free_port)
	write_conf "$T/racerd.conf" "$PORT" "$workers" \
	    "redis = unix:$REDIS_SOCK" \
	    "webroot = $(cd "$top_srcdir/contrib/web" && pwd)" "$@"
	start_racerd "$T/racerd.conf" "$PORT"
}

# browser SCENARIO [ARGS...]: tests/integration/browser.py against PORT,
# bounded in time (BROWSER_TIMEOUT seconds, default 150).
browser() {
	scenario=$1
	shift
	timeout -k 5 "${BROWSER_TIMEOUT:-150}" $PY \
	    "$top_srcdir/tests/integration/browser.py" "$scenario" \
	    --port "$PORT" --tmp "$T" --racer "$RACER" \
	    --regdump "${REGDUMP:-$top_builddir/tests/regdump}" \
	    --instance "$INSTANCE" "$@"
}
