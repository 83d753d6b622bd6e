#!/bin/sh
# SPDX-License-Identifier: ISC
# Per-address limits over all workers: max-connections-per-ip (429 and
# closed) and max-request-rate (429 with Retry-After, keep-alive kept).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

HC="$top_srcdir/tests/integration/hardclient.py"
start_redis
port=$(free_port)
write_conf "$T/racerd.conf" "$port" 3 "redis = unix:$REDIS_SOCK" \
    "max-connections-per-ip = 6" "max-request-rate = 10"
start_racerd "$T/racerd.conf" "$port"
sleep 1.2	# the health probes of start_racerd spent this second's rate

timeout -k 3 60 $PY "$HC" perip --port "$port" --n 6 --limit 10 ||
    fail "per-address limits"
ok "max-connections-per-ip and max-request-rate over 3 workers"

finish
