#!/bin/sh
# SPDX-License-Identifier: ISC
# auth = none warns, once, when racerd listens beyond loopback: not on
# 127.0.0.1; once for listen and tls-listen on 0.0.0.0 together; not with
# auth = token on 0.0.0.0.  The 0.0.0.0 cases run in a network namespace
# of their own (unshare -n), where only its loopback can reach them.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need curl
need redis-server
need openssl
need unshare
need ip

RACERCTL=${RACERCTL:-$top_builddir/racerctl}
WARN="auth = none on a non-loopback address"

P=$(free_port)
write_conf "$T/lo.conf" "$P" 1
start_racerd "$T/lo.conf" "$P"
[ "$(grep -c "$WARN" "$T/racerd.log")" = 0 ] ||
    fail "auth = none on 127.0.0.1 warned"
ok "auth = none on 127.0.0.1: no warning"
kill -TERM "$MASTER"
wait_gone "$MASTER" 10 || fail "racerd did not stop"

if ! unshare -n true 2>/dev/null; then
	[ "${CI:-}" = true ] && { fail "unshare -n is not allowed here"; finish; }
	echo "SKIP: $NAME: unshare -n is not allowed here"
	exit 77
fi

# open_run NAME CONF: racerd -f -c CONF in a new network namespace,
# until its worker serves; then TERM.  Its log is $T/racerd-NAME.log.
open_run() {
	unshare -n sh -c 'ip link set lo up && exec "$0" -f -c "$1"' \
	    "$RACERD" "$2" 2>>"$T/racerd.err" &
	pid=$!
	PIDS="$PIDS $pid"
	i=0
	until grep -q "worker\[0\] .*serving" "$T/racerd-$1.log" 2>/dev/null
	do
		i=$((i + 1))
		if [ "$i" -ge 100 ] || ! kill -0 "$pid" 2>/dev/null; then
			fail "$1: racerd did not start in its namespace"
			tail -n 5 "$T/racerd.err" "$T/racerd-$1.log"
			break
		fi
		sleep 0.1
	done
	kill -TERM "$pid"
	wait_gone "$pid" 10 || fail "$1: racerd did not stop"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 1 -subj /CN=localhost -keyout "$T/key.pem" -out "$T/cert.pem" \
    2>/dev/null || fail "openssl cannot make a certificate"
conf_open() {	# conf_open NAME [LINES...]
	n=$1
	shift
	cat >"$T/$n.conf" <<CONF
listen = 0.0.0.0:$(free_port)
tls-listen = 0.0.0.0:$(free_port)
tls-certificate = $T/cert.pem
tls-key = $T/key.pem
workers = 1
instance = $INSTANCE$n
run-dir = $T/run-$n
state-dir = $T/state-$n
log-file = $T/racerd-$n.log
log-level = debug
shutdown-timeout = 5
CONF
	for line in "$@"; do
		echo "$line" >>"$T/$n.conf"
	done
}
conf_open none
open_run none "$T/none.conf"
n=$(grep -c "$WARN" "$T/racerd-none.log")
[ "$n" = 1 ] || fail "listen and tls-listen on 0.0.0.0: $n warnings, not 1"
grep "$WARN" "$T/racerd-none.log" | sed 's/^/  /'
ok "auth = none on 0.0.0.0: one warning"

"$RACERCTL" keygen hmac --kid k1 >"$T/hmac.keys" || fail "keygen"
chmod 600 "$T/hmac.keys"
conf_open token "auth = token" "auth-hmac-key-file = $T/hmac.keys"
open_run token "$T/token.conf"
[ "$(grep -c "$WARN" "$T/racerd-token.log")" = 0 ] ||
    fail "auth = token on 0.0.0.0 warned"
ok "auth = token on 0.0.0.0: no warning"
finish
