#!/bin/sh
# SPDX-License-Identifier: ISC
# History paging and durability: 5,000 messages (4,000 over WebSocket,
# 1,000 POSTed) in one chat. Paging by since/next (1000 and 777 at a time)
# returns each seq exactly once, envelopes exactly as delivered live;
# before pages the same way backwards; the default limit is 100; bad
# parameters get 400 with a JSON error; the WebSocket history request
# answers the newest page before a seq. All of it again after the
# embedded store is killed (kill -9; the master restarts it) and after
# racerd is restarted (TERM, start again): same epoch, and the next
# message gets seq 5001 (then 5002).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
echo "history-paging-test-key-$$" >"$T/keys"
# max-message-rate 0: one client writes 4,000 messages as fast as it can.
write_conf "$T/racerd.conf" "$PORT" 2 "api-key-file = $T/keys" \
    "max-message-rate = 0"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up (embedded store)"

CHAT=paging-$$
WSC_TIMEOUT=45 wsclient history-fill --port "$PORT" --chat "$CHAT" \
    --count 5000 --posts 1000 --key-file "$T/keys" --out "$T/snap.json" \
    --timeout 40 || fail "filling the history (see above)"
[ -s "$T/snap.json" ] || { fail "no snapshot"; finish; }
ok "5,000 messages sent"

WSC_TIMEOUT=30 wsclient history-check --port "$PORT" \
    --snapshot "$T/snap.json" --timeout 25 || fail "paging (see above)"
ok "paged through 5,000 messages"

# kill -9 of the embedded redis-server: the master starts another one.
R1=$(for c in $(children "$MASTER"); do
	[ "$(cat /proc/"$c"/comm 2>/dev/null)" = redis-server ] && echo "$c"
done)
if [ -z "$R1" ]; then
	fail "no redis-server child of master $MASTER"
	finish
fi
kill -9 "$R1"
i=0
while :; do
	R2=$(for c in $(children "$MASTER"); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" = redis-server ] &&
		    echo "$c"
	done)
	[ -n "$R2" ] && [ "$R2" != "$R1" ] && break
	i=$((i + 1))
	[ "$i" -ge 100 ] && { fail "no new redis-server within 10 s"; finish; }
	sleep 0.1
done
wait_healthy "$PORT" 15 || fail "not healthy 15 s after the store restart"
ok "embedded store killed ($R1) and restarted ($R2)"

WSC_TIMEOUT=30 wsclient history-check --port "$PORT" \
    --snapshot "$T/snap.json" --send-one --timeout 25 ||
    fail "paging after the store restart (see above)"
ok "history intact after the store restart; the next message is 5001"

kill -TERM "$MASTER"
wait_gone "$MASTER" 15 || fail "master still running 15 s after TERM"
wait "$MASTER" 2>/dev/null
start_racerd "$T/racerd.conf" "$PORT"
WSC_TIMEOUT=30 wsclient history-check --port "$PORT" \
    --snapshot "$T/snap.json" --send-one --timeout 25 ||
    fail "paging after the racerd restart (see above)"
ok "history intact after a racerd restart; the next message is 5002"
finish
