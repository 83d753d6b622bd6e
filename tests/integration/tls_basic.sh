#!/bin/sh
# SPDX-License-Identifier: ISC
# TLS on the client port: racerd listens plain and TLS at once, with a
# certificate signed by a CA this test makes with openssl.  /healthz and
# /metrics answer on both ports; python3-websockets chats over wss://
# (verifying against that CA); ALPN picks http/1.1; a client speaking
# plain HTTP to the TLS port is closed and the worker lives on; a TLS 1.1
# client is refused (a control server shows the same probe succeeds where
# TLS 1.1 is allowed); a handshake that never finishes is cut off after
# header-timeout.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need openssl

tls_make_ca
tls_make_cert server 1
PORT=$(free_port)
TPORT=$(free_port)
# Both ports, whatever RACERD_TEST_TLS says.
RACERD_TEST_TLS=0 write_conf "$T/racerd.conf" "$PORT" 2 \
    "tls-listen = 127.0.0.1:$TPORT" "tls-certificate = $T/server.pem" \
    "tls-key = $T/server.key" "header-timeout = 2"
"$RACERD" -t -c "$T/racerd.conf" >/dev/null || fail "racerd -t refused it"
"$RACERD" -f -c "$T/racerd.conf" 2>>"$T/racerd.err" &
MASTER=$!
PIDS="$PIDS $MASTER"
RACERD_TEST_TLS=0 wait_healthy "$PORT" 20 || { fail "not healthy"; finish; }
grep -q "listening on 127.0.0.1:$TPORT (TLS)" "$T/racerd.log" ||
    fail "TLS listener not logged"
ok "racerd up on a plain and a TLS port"

# /healthz and /metrics on both ports; the TLS one verifies.
for url in "http://127.0.0.1:$PORT" "https://127.0.0.1:$TPORT"; do
	for path in /healthz /metrics; do
		st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		    --cacert "$T/ca.pem" "$url$path")
		[ "$st" = 200 ] || fail "$url$path answered $st"
	done
done
curl -s --max-time 5 "https://127.0.0.1:$TPORT/healthz" >/dev/null 2>&1 &&
    fail "curl trusted the test CA without --cacert"
ok "/healthz and /metrics on both ports"

# ALPN: http/1.1 is chosen; a client offering only h2 is refused.
echo | timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" \
    -CAfile "$T/ca.pem" -alpn http/1.1 >"$T/alpn" 2>&1
grep -q "ALPN protocol: http/1.1" "$T/alpn" || fail "no ALPN http/1.1"
grep -q "Verify return code: 0 (ok)" "$T/alpn" || fail "does not verify"
echo | timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" \
    -CAfile "$T/ca.pem" -alpn h2 >"$T/alpn2" 2>&1 &&
    fail "a client offering only h2 was accepted"
ok "ALPN http/1.1"

# Chat over wss:// with python3-websockets and the test's CA.
RACERD_TEST_CA=$T/ca.pem wsclient basic --port "$TPORT" --timeout 40 ||
    fail "basic chat over wss:// (see above)"
ok "chat over wss://"

# Plain HTTP to the TLS port: the connection is closed, nobody crashes.
BEFORE=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
$PY - "$TPORT" <<'PYEOF' || fail "plain HTTP to the TLS port"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
t = time.time()
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
except ConnectionResetError:
    pass
if b"HTTP/1.1 200" in data:
    print("FAIL: the TLS port answered plain HTTP")
    sys.exit(1)
if time.time() - t > 4:
    print("FAIL: not closed at once")
    sys.exit(1)
PYEOF
sleep 0.3
AFTER=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
[ "$BEFORE" = "$AFTER" ] || fail "workers changed: $BEFORE -> $AFTER"
wait_log "TLS connection ended: .*http request" 5 ||
    fail "the failed handshake was not logged"
RACERD_TEST_TLS=0 wait_healthy "$PORT" 2 || fail "not healthy afterwards"
ok "plain HTTP to the TLS port is closed, workers live on"

# TLS 1.1: the probe works against a server that allows it (the control),
# and racerd refuses it.
CPORT=$(free_port)
openssl s_server -accept "127.0.0.1:$CPORT" -cert "$T/server.pem" \
    -key "$T/server.key" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -quiet \
    </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
# tls11 PORT: succeeds if a TLS 1.1 handshake completes there.
tls11() {
	echo | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_1 \
	    -cipher 'DEFAULT:@SECLEVEL=0' >"$T/tls11" 2>&1 &&
	    grep -q "Protocol *: TLSv1.1" "$T/tls11" &&
	    ! grep -q "Cipher is (NONE)" "$T/tls11"
}
i=0
until tls11 "$CPORT" || [ "$i" -ge 30 ]; do
	sleep 0.1
	i=$((i + 1))
done
tls11 "$CPORT" || fail "control: the TLS 1.1 probe does not work here"
tls11 "$TPORT" && fail "racerd accepted TLS 1.1"
for v in tls1_2 tls1_3; do
	echo | timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" -$v \
	    -CAfile "$T/ca.pem" >"$T/$v" 2>&1 || fail "$v refused"
done
ok "TLS 1.1 refused, 1.2 and 1.3 spoken"

# A handshake that never finishes: cut off after header-timeout (2 s).
$PY - "$TPORT" <<'PYEOF' || fail "silent TLS client"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t = time.time()
try:
    d = s.recv(1)
except (ConnectionResetError, socket.timeout):
    d = None
took = time.time() - t
if d is None or d != b"" or took < 1.5 or took > 6:
    print("FAIL: silent client: recv %r after %.1f s" % (d, took))
    sys.exit(1)
PYEOF
ok "a silent TLS client is closed after header-timeout"
finish
