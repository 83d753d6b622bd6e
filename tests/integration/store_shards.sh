#!/bin/sh
# SPDX-License-Identifier: ISC
# Shards: two racerd instances share three redis-servers named by one
# redis option.  200 chats, a member of each on both instances: every
# chat's keys and channel are on the shard the jump hash names (checked
# with redis-cli), order, history and resume hold across instances; then
# one shard is killed: /healthz names it, its chats are refused with 503
# and the chats of the other two go on.  A restart with a shard added
# says which share of chats moved.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

socks="" pids="" list=""
for i in 0 1 2; do
	start_redis_as "shard$i"
	socks="$socks${socks:+,}$REDIS_SOCK"
	pids="$pids${pids:+,}$REDIS_PID"
	list="$list${list:+, }unix:$REDIS_SOCK"
done
P1=$(free_port)
P2=$(free_port)
write_conf_as "$T/a.conf" "$P1" 2 a "redis = $list"
write_conf_as "$T/b.conf" "$P2" 2 b "redis = $list"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
for i in 0 1 2; do
	redis-cli -s "$T/shard$i.sock" CLIENT LIST |
	    grep -q "name=racerd:${INSTANCE}a:w[0-9]*:sub" ||
	    fail "instance a has no subscription connection on shard $i"
done
grep -q "store: 3 shard(s)" "$T/racerd-a.log" ||
    fail "racerd did not say at start that it has 3 shards"
ok "two racerd instances on three shards"

WSC_TIMEOUT=120 timeout -k 3 120 $PY \
    "$top_srcdir/tests/integration/shardclient.py" --ports "$P1,$P2" \
    --socks "$socks" --pids "$pids" --chats 200 --kill 1 ||
    fail "chats over shards (see above)"
ok "keys on their shards; a dead shard stops only its own chats"

# The shard list changes (a fourth shard): a restart says how much moved.
kill -TERM "$MASTER"
wait "$MASTER"
start_redis_as shard3
write_conf_as "$T/b.conf" "$P2" 1 b "redis = $list, unix:$REDIS_SOCK"
start_racerd "$T/b.conf"
i=0
until grep -q "store shards changed from 3 to 4" "$T/racerd-b.log"; do
	i=$((i + 1))
	[ "$i" -ge 100 ] && { fail "no word of the shards that changed"; break; }
	sleep 0.1
done
share=$(sed -n 's/.*about \([0-9.]*\)% of chats now live on another.*/\1/p' \
    "$T/racerd-b.log" | tail -n 1)
echo "  moved share logged: ${share:-none}%"
case "$share" in
2[0-9].*) ;;	# a fourth shard takes 1/4 of the chats
*) fail "moved share \"$share\", expected about 25%" ;;
esac
ok "a restart with a shard added says about a quarter of chats moved"
finish
