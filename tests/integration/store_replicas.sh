#!/bin/sh
# SPDX-License-Identifier: ISC
# store-sync-replicas: a primary redis-server and its replica on loopback
# ports; racerd a waits for one replica (WAIT 1) before a message is
# delivered and acknowledged, racerd b does not wait.  With the replica
# killed, a acknowledges nothing and b goes on.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

RP=$(free_port)
RR=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$T" --logfile "$T/primary.log" &
PIDS="$PIDS $!"
mkdir -p "$T/replica"
redis-server --port "$RR" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$T/replica" --logfile "$T/replica.log" \
    --replicaof 127.0.0.1 "$RP" &
REPLICA=$!
PIDS="$PIDS $REPLICA"
i=0
until redis-cli -p "$RR" INFO replication 2>/dev/null |
    grep -q "master_link_status:up"; do
	i=$((i + 1))
	[ "$i" -ge 100 ] && { fail "the replica did not sync"; finish; }
	sleep 0.1
done
ok "a primary and a replica"

P1=$(free_port)
P2=$(free_port)
write_conf_as "$T/a.conf" "$P1" 1 a "redis = redis://127.0.0.1:$RP" \
    "store-sync-replicas = 1"
write_conf_as "$T/b.conf" "$P2" 1 b "redis = redis://127.0.0.1:$RP"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
timeout -k 3 60 $PY "$top_srcdir/tests/integration/replicaclient.py" \
    --sync-port "$P1" --async-port "$P2" --replica "$RR" \
    --replica-pid "$REPLICA" || fail "store-sync-replicas (see above)"
ok "store-sync-replicas = 1 acknowledges only what a replica has"
finish
