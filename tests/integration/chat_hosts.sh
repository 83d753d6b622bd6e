#!/bin/sh
# SPDX-License-Identifier: ISC
# One order across hosts: two racerd instances (own ports, instance names,
# run-dirs) share one external redis-server on a unix socket; clients and
# senders on both see every message once, in one seq order.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
P1=$(free_port)
P2=$(free_port)
write_conf_as "$T/a.conf" "$P1" 2 a "redis = unix:$REDIS_SOCK"
write_conf_as "$T/b.conf" "$P2" 2 b "redis = unix:$REDIS_SOCK"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
# Both instances really use the one store.
for n in a b; do
	redis-cli -s "$REDIS_SOCK" CLIENT LIST |
	    grep -q "name=racerd:$INSTANCE$n:w[0-9]*:sub" ||
	    fail "instance $n has no subscription connection in the store"
done
ok "two racerd instances on one redis-server"

wsclient fanout --ports "$P1,$P2" --clients 20 --senders 6 --count 100 \
    --deliver-timeout 20 --timeout 45 ||
    fail "fan-out over two instances (see above)"
ok "clients on both instances saw 600 messages in one order"
finish
