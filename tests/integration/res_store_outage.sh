#!/bin/sh
# SPDX-License-Identifier: ISC
# Store outage: 20 members of one chat (2 workers) send with ids, one at a
# time, retrying "unavailable" with the same id, while the external
# redis-server (AOF, appendfsync always) is killed (-9) and started again
# on the same socket and directory. Every acknowledged message is in
# history exactly once, with its acknowledged seq; every message was
# acknowledged in the end; each member's stream is seq 1..latest without
# gap or duplicate (a repeat's answer to its own sender set aside); every
# send while the store is down gets "unavailable"; members stay
# connected; /healthz is 503 with "error" during the outage and 200 after.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis_aof

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "redis = unix:$REDIS_SOCK"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 2 workers on an external store (AOF, fsync always)"

# The restarted store's pid goes to $T/redis2.pid (the trap kills it).
WSC_TIMEOUT=45 wsclient outage --port "$PORT" --redis-pid "$REDIS_PID" \
    --redis-sock "$REDIS_SOCK" --redis-argv "$ARGV" \
    --pidfile "$T/redis2.pid" --clients 20 --before 2 --down 2.5 \
    --after 2 --timeout 40 || fail "store outage (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "racerd died"
echo "  store links lost (log lines): $(grep -c 'connection lost' \
    "$T/racerd.log")"
ok "nothing acknowledged lost, no gap or duplicate, 503 then 200"
finish
