#!/bin/sh
# SPDX-License-Identifier: ISC
# A silently dead subscription: racerd (2 workers) reaches redis through
# a small TCP proxy (wsclient proxy); mid-stream the proxy blackholes one
# worker's subscription connection (it stays open, every byte is dropped
# both ways). The worker's probe must notice within its deadline (probe
# after 1 s idle, 3 s to come back, 1 s timer steps: dropped 2.9..6.5 s
# after the blackhole, with its log line), subscribe again, and fill the
# hole from history: every member, on both workers, receives every
# message once, in order, and the blackholed worker's members hear nothing
# while it lasts (so the blackhole was real).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
PP=$(free_port)
# Started directly (not through wsclient/timeout) so that $! is its pid;
# it ends by itself after --lifetime seconds.
$PY "$top_srcdir/tests/integration/wsclient.py" proxy --listen "$PP" \
    --to "$REDIS_SOCK" --ctl "$T/proxy.ctl" --lifetime 60 \
    >"$T/proxy.log" 2>&1 &
PIDS="$PIDS $!"
i=0
while [ ! -S "$T/proxy.ctl" ]; do
	i=$((i + 1))
	[ "$i" -ge 50 ] && { fail "proxy did not start"; finish; }
	sleep 0.1
done
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = redis://127.0.0.1:$PP"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 2 workers, store links through a proxy"

WSC_TIMEOUT=45 wsclient blackhole --port "$PORT" --ctl "$T/proxy.ctl" \
    --instance "$INSTANCE" --clients 10 --timeout 40 ||
    fail "blackholed subscription (see above)"
n=$(grep -c 'store sub connection did not deliver a probe within' \
    "$T/racerd.log")
[ "$n" -eq 1 ] ||
    fail "$n log lines about a probe that did not come back, expected 1"
grep -q 'store cmd connection did not answer' "$T/racerd.log" &&
    fail "a command connection was dropped too"
grep 'did not deliver a probe' -A 100 "$T/racerd.log" |
    grep -q 'store sub connection is up' ||
    fail "no 'store sub connection is up' after the probe timed out"
echo "  gaps filled: $(curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" |
    grep '^racerd_gaps_filled_total ' || echo '(no metric)')"
ok "blackhole detected by the probe; no message lost"
if [ "$FAILS" -ne 0 ]; then
	echo "--- $NAME: proxy.log"
	tail -n 30 "$T/proxy.log"
fi
finish
