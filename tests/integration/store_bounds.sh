#!/bin/sh
# SPDX-License-Identifier: ISC
# Store bounds and answers one client must not be able to break: a 128-byte
# chat id chats live; dedup ids cannot collide across users; refused
# upgrades are not left counted; a ?since= join is a member; aborted
# connections leave no ghost members; a 50 MB resume is replayed paced,
# not closed 4208; every store key has an expiry; a chat idle past
# history-ttl is gone; a full embedded store
# answers "unavailable"; the embedded store runs with store-max-memory;
# presence events stop above presence-events-max.
# The checks themselves are in store_bounds.py.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

SB="$top_srcdir/tests/integration/store_bounds.py"
sb() {
	timeout -k 3 "${SB_TIMEOUT:-60}" $PY "$SB" "$@"
}

start_redis
PA=$(free_port)
PC=$(free_port)
PG=$(free_port)
write_conf_as "$T/a.conf" "$PA" 2 a "redis = unix:$REDIS_SOCK"
write_conf_as "$T/c.conf" "$PC" 2 c "redis = unix:$REDIS_SOCK" \
    "max-chats = 1" "max-connections = 2"
write_conf_as "$T/g.conf" "$PG" 2 g "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 1" "presence-events-max = 3"
start_racerd "$T/a.conf" "$PA"
start_racerd "$T/c.conf" "$PC"
start_racerd "$T/g.conf" "$PG"

for c in longid dedup since; do
	sb "$c" --port "$PA" || fail "$c (see above)"
	ok "$c"
done
sb count --port "$PC" || fail "count (see above)"
ok "refused upgrades are uncounted"
sb ghosts --port "$PG" --count 2000 --wait 8 || fail "ghosts (see above)"
ok "aborted connections leave no ghosts"
sb bigchat --port "$PG" || fail "bigchat (see above)"
ok "presence events stop above presence-events-max; the listing does not"
SB_TIMEOUT=120 sb replay --port "$PA" || fail "replay (see above)"
ok "a 50 MB resume is replayed in full"
sb ttl --port "$PA" --redis-sock "$REDIS_SOCK" || fail "ttl (see above)"
ok "every key has an expiry"
PH=$(free_port)
write_conf_as "$T/h.conf" "$PH" 1 h "redis = unix:$REDIS_SOCK" \
    "history-ttl = 3"
start_racerd "$T/h.conf" "$PH"
sb idle --port "$PH" --redis-sock "$REDIS_SOCK" || fail "idle (see above)"
ok "a chat idle past history-ttl is gone"

# The embedded store: its maxmemory, and a full store refuses writes.
PE=$(free_port)
write_conf_as "$T/e.conf" "$PE" 1 e "store-max-memory = 64mb"
start_racerd "$T/e.conf" "$PE"
ESOCK="$T/run-e/redis.sock"
[ "$(redis-cli -s "$ESOCK" config get maxmemory | tail -n 1)" = 67108864 ] ||
    fail "embedded store maxmemory is not 64mb"
sb full --port "$PE" --redis-sock "$ESOCK" || fail "full (see above)"
ok "the embedded store is bounded and refuses writes when full"

finish
