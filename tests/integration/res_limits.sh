#!/bin/sh
# SPDX-License-Identifier: ISC
# Limits trigger at their configured value and not before, each on an
# instance of its own (one external store):
# - max-connections = 4 (WebSocket connections of all workers): the 5th
#   handshake gets 503, plain HTTP is not counted, one leaving makes room
#   for exactly one; and 8 resumes (session=TOKEN) while the store takes
#   1 s to answer their claims (CLIENT PAUSE WRITE) leave at most 4
#   connected;
# - max-chats = 3: a 4th distinct chat gets 503, another member of a chat
#   that is there does not, an emptied chat frees its entry;
# - max-message-rate = 4: 4 messages at once are stored, the 5th is refused
#   with rate_limited; 19 refusals in a row keep the connection, the 20th
#   closes it with 4100; a second later the bucket is full again;
# - allowed-origins: the listed origins and no Origin get 101, any other
#   Origin 403;
# - max-message-size = 512: 512 bytes are echoed, 513 close 1009.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
PC=$(free_port)
PH=$(free_port)
PM=$(free_port)
write_conf_as "$T/c.conf" "$PC" 2 c "redis = unix:$REDIS_SOCK" \
    "max-connections = 4"
write_conf_as "$T/h.conf" "$PH" 2 h "redis = unix:$REDIS_SOCK" \
    "max-chats = 3"
write_conf_as "$T/m.conf" "$PM" 2 m "redis = unix:$REDIS_SOCK" \
    "max-message-rate = 4" "max-message-size = 512" \
    "allowed-origins = https://a.example https://b.example"
start_racerd "$T/c.conf" "$PC"
start_racerd "$T/h.conf" "$PH"
start_racerd "$T/m.conf" "$PM"
ok "three racerd instances up, one limit each"

WSC_TIMEOUT=40 wsclient limits --port-conns "$PC" --port-chats "$PH" \
    --port-misc "$PM" --max-connections 4 --max-chats 3 \
    --max-message-rate 4 --max-message-size 512 \
    --origins "https://a.example https://b.example" \
    --redis-sock "$REDIS_SOCK" ||
    fail "limits (see above)"
for p in "$PC" "$PH" "$PM"; do
	wait_healthy "$p" 3 || fail "instance on port $p not healthy after"
done
ok "each limit triggered at its value, not before"
finish
