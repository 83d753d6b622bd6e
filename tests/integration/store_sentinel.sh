#!/bin/sh
# SPDX-License-Identifier: ISC
# Failover with Redis Sentinel: a primary, two replicas and three
# sentinels (down-after 1 s) on loopback ports; racerd finds the primary
# through sentinel://.  A client chats under load, the primary is killed
# with -9; after the failover the client goes on (resending unacknowledged
# messages with their ids) and every message acknowledged before and after
# is in history exactly once on racerd a (store-sync-replicas = 1, so
# that no acknowledged message can be lost with the old primary).  racerd
# b (store-sync-replicas = 0) chats through the same failover: nothing
# twice, and what asynchronous replication lost is counted.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

redis_on() {	# redis_on NAME PORT [ARGS...]
	n=$1 p=$2
	shift 2
	mkdir -p "$T/$n"
	redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
	    --daemonize no --dir "$T/$n" --logfile "$T/$n.log" "$@" &
	PIDS="$PIDS $!"
	LAST=$!
}
RP=$(free_port)
redis_on primary "$RP"
PRIMARY=$LAST
for r in 1 2; do
	redis_on "replica$r" "$(free_port)" --replicaof 127.0.0.1 "$RP"
done
sents=""
for s in 1 2 3; do
	sp=$(free_port)
	cat >"$T/sentinel$s.conf" <<CONF
port $sp
bind 127.0.0.1
daemonize no
dir $T
logfile $T/sentinel$s.log
sentinel monitor m 127.0.0.1 $RP 2
sentinel down-after-milliseconds m 1000
sentinel failover-timeout m 10000
sentinel parallel-syncs m 2
CONF
	redis-server "$T/sentinel$s.conf" --sentinel &
	PIDS="$PIDS $!"
	sents="$sents${sents:+,}127.0.0.1:$sp"
	SP=$sp
done
i=0
until [ "$(redis-cli -p "$RP" INFO replication | grep -c 'state=online')" = 2 ] &&
    redis-cli -p "$SP" SENTINEL replicas m 2>/dev/null | grep -q "^slave$"; do
	i=$((i + 1))
	[ "$i" -ge 150 ] && { fail "replicas or sentinels not ready"; finish; }
	sleep 0.1
done
# Until every sentinel knows the others, a failover cannot be voted.
i=0
until [ "$(redis-cli -p "$SP" SENTINEL sentinels m 2>/dev/null |
    grep -c '^name$')" -ge 2 ]; do
	i=$((i + 1))
	[ "$i" -ge 300 ] && { fail "the sentinels did not find each other"; finish; }
	sleep 0.1
done
ok "a primary, two replicas, three sentinels"

# a waits for a replica before acknowledging (store-sync-replicas = 1),
# b does not; both chat through the same failover.
pa=$(free_port)
pb=$(free_port)
write_conf_as "$T/a.conf" "$pa" 2 a "redis = sentinel://$sents/m" \
    "store-sync-replicas = 1"
write_conf_as "$T/b.conf" "$pb" 2 b "redis = sentinel://$sents/m"
start_racerd "$T/a.conf" "$pa"
start_racerd "$T/b.conf" "$pb"
grep -q "the primary of m is 127.0.0.1:$RP" "$T/racerd-a.log" ||
    fail "racerd did not log the primary the sentinels named"

FO="$top_srcdir/tests/integration/failoverclient.py"
timeout -k 3 90 $PY "$FO" --port "$pb" --flag "$T/killed" --may-lose \
    --name "store-sync-replicas = 0" --after 30 >"$T/b.out" 2>&1 &
BCLIENT=$!
PIDS="$PIDS $BCLIENT"
timeout -k 3 90 $PY "$FO" --port "$pa" --primary "$PRIMARY" \
    --flag "$T/killed" --before 30 --after 30 ||
    fail "chat through a failover, store-sync-replicas = 1 (see above)"
wait "$BCLIENT" || fail "chat through a failover, store-sync-replicas = 0"
cat "$T/b.out"
grep "the primary of m is" "$T/racerd-a.log" | tail -n 1 |
    sed 's/^/  racerd: /'
ok "after the failover every acknowledged message is in history once"
ok "store-sync-replicas = 0: no message twice; what was lost is counted"

# A failover that breaks nothing (SENTINEL FAILOVER): the old primary
# lives on as a replica, so only +switch-master tells racerd to move.
i=0
until [ "$(redis-cli -p "$SP" SENTINEL FAILOVER m 2>&1)" = OK ]; do
	i=$((i + 1))
	[ "$i" -ge 200 ] && { fail "SENTINEL FAILOVER was refused"; break; }
	sleep 0.1
done
i=0
until grep -q "the sentinels switched m from" "$T/racerd-a.log"; do
	i=$((i + 1))
	[ "$i" -ge 200 ] && { fail "racerd did not follow +switch-master"; break; }
	sleep 0.1
done
NEW=$(redis-cli -p "$SP" SENTINEL get-master-addr-by-name m | tail -n 1)
i=0
until [ "$(redis-cli -p "$NEW" CLIENT LIST |
    grep -c "name=racerd:${INSTANCE}a:w")" -ge 4 ]; do
	i=$((i + 1))
	[ "$i" -ge 100 ] && {
		fail "racerd's links are not on the new primary (port $NEW)"
		break
	}
	sleep 0.1
done
grep "the sentinels switched m from" "$T/racerd-a.log" | tail -n 1 |
    sed 's/^/  racerd: /'
ok "+switch-master: both links of every worker move to the new primary"
finish
