#!/bin/sh
# SPDX-License-Identifier: ISC
# Clients that send and never read: a worker's memory stays bounded by
# max-outbound-bytes, and a client that starts reading gets every answer.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

HC="$top_srcdir/tests/integration/hardclient.py"
start_redis
port=$(free_port)
write_conf "$T/racerd.conf" "$port" 1 "redis = unix:$REDIS_SOCK" \
    "max-outbound-bytes = 65536"
start_racerd "$T/racerd.conf" "$port"
worker=$(worker_pids "$MASTER" | head -n 1)

# 400 pages of 200 messages of 1 KB: about 90 MB of answers.  The bounds
# leave room for a sanitizer build's quarantine; without the limit the
# worker grows by 80 MiB (100 MiB and more under ASan).
timeout -k 3 120 $PY "$HC" pipeline --port "$port" --pid "$worker" \
    --n 400 --limit 48 || fail "pipelined history"
ok "pipelined HTTP stops being read past max-outbound-bytes"

# 50,000 pings (6 MB of pongs) from a client that reads nothing.
timeout -k 3 90 $PY "$HC" pings --port "$port" --pid "$worker" \
    --n 50000 --limit 64 || fail "ping flood"
ok "a client pinging without reading is closed with 4208"

finish
