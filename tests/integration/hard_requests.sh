#!/bin/sh
# SPDX-License-Identifier: ISC
# Hostile HTTP clients: what a refused request set does not stay on the
# connection for the next keep-alive request, and client-chosen values
# never split or forge a log line.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

HC="$top_srcdir/tests/integration/hardclient.py"
start_redis
port=$(free_port)
write_conf "$T/racerd.conf" "$port" 1 "redis = unix:$REDIS_SOCK" \
    "allowed-origins = http://good.example"
start_racerd "$T/racerd.conf" "$port"

timeout -k 3 30 $PY "$HC" reset --port "$port" || fail "keep-alive reset"
ok "a refused user or epoch does not stay for the next request"

# A refused Origin is logged (debug) with the client's bytes in it: the
# line must stay one line of printable ASCII, whatever those bytes are.
$PY - "$port" <<'PY' || fail "log forging client"
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /ws/k HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nOrigin: http://\x9b2J\xff\\FORGED\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n")
head = s.recv(4096)
if not head.startswith(b"HTTP/1.1 403"):
    print("FAIL: a refused origin answered %r" % head[:40])
    sys.exit(1)
PY
wait_log 'FORGED' 5 || fail "no log line about the refused origin"
if LC_ALL=C grep -a 'FORGED' "$T/racerd.log" | LC_ALL=C grep -q '[^ -~]'; then
	fail "client bytes reached the log unescaped"
fi
LC_ALL=C grep -aq 'refused origin http://\\x9b2J\\xff\\\\FORGED' \
    "$T/racerd.log" || fail "the refused origin is not escaped as expected"
ok "client values are escaped in the log"

finish
