#!/bin/sh
# SPDX-License-Identifier: ISC
# Certificates change without dropping anyone: a WebSocket opened over
# TLS, then SIGHUP with a new certificate (serial 2) in the same files:
# the next handshake shows serial 2, the open connection still chats and
# no worker was replaced.  A new pair whose key does not match keeps
# serial 2 in use and the reason is logged; racerd -t refuses that pair
# and names the file.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need openssl

tls_make_ca
tls_make_cert one 1
tls_make_cert two 2
tls_make_cert three 3
cp "$T/one.pem" "$T/server.pem"
cp "$T/one.key" "$T/server.key"
PORT=$(free_port)
RACERD_TEST_TLS=1
RACERD_TEST_CA=$T/ca.pem
export RACERD_TEST_CA
write_conf "$T/racerd.conf" "$PORT" 2
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up on TLS only"

# serial: the serial number of the certificate the next handshake shows.
serial() {
	echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
	    -CAfile "$T/ca.pem" 2>/dev/null |
	    openssl x509 -noout -serial 2>/dev/null
}
[ "$(serial)" = "serial=01" ] || fail "serial before: $(serial)"

# A member that stays connected over the reload: it joins, says so, waits
# for "go", then sends and must get its echo.
cat >"$T/stay.py" <<'PYEOF'
import asyncio, os, sys
sys.path.insert(0, sys.argv[1] + "/tests/integration")
import wslib

async def main(port, ready, go):
    c = await wslib.join(port, "reload", "stayer")
    open(ready, "w").close()
    for _ in range(300):
        if os.path.exists(go):
            break
        await asyncio.sleep(0.1)
    if c.closed is not None:
        print("FAIL: closed during the reload: %s" % (c.closed,))
        return 1
    await c.send_msg("after the reload")
    if not await c.wait_msgs(1, 10):
        print("FAIL: no echo after the reload")
        return 1
    await c.close()
    return 0

sys.exit(asyncio.run(main(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
PYEOF
timeout 60 $PY "$T/stay.py" "$top_srcdir" "$PORT" "$T/ready" "$T/go" &
STAY=$!
i=0
while [ ! -e "$T/ready" ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e "$T/ready" ] || fail "the member did not join"
BEFORE=$(worker_pids "$MASTER" | sort | tr '\n' ' ')

# Renewal: new files in place, SIGHUP.
cp "$T/two.pem" "$T/server.pem"
cp "$T/two.key" "$T/server.key"
kill -HUP "$MASTER"
wait_log "certificate reloaded" 5 || fail "no reload logged"
sleep 0.3
[ "$(serial)" = "serial=02" ] || fail "serial after HUP: $(serial)"
AFTER=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
[ "$BEFORE" = "$AFTER" ] || fail "workers replaced: $BEFORE -> $AFTER"
touch "$T/go"
wait "$STAY" || fail "the open connection did not survive the reload"
ok "HUP: new handshakes get serial 2, the open connection chats on"

# A pair that does not match: refused by racerd -t, naming the file, and
# on HUP the certificate in use stays.
cp "$T/three.pem" "$T/server.pem"
cp "$T/one.key" "$T/server.key"
"$RACERD" -t -c "$T/racerd.conf" >"$T/t.out" 2>&1 &&
    fail "racerd -t accepted a key that does not match"
grep -q "tls-key $T/server.key does not match the certificate in tls-certificate $T/server.pem" \
    "$T/t.out" || fail "racerd -t said: $(cat "$T/t.out")"
kill -HUP "$MASTER"
wait_log "reload: tls-key .* does not match .*; keeping the old certificate" 5 ||
    fail "the refused pair was not logged"
sleep 0.3
[ "$(serial)" = "serial=02" ] || fail "serial after a bad HUP: $(serial)"
wait_healthy "$PORT" 3 || fail "not healthy after a bad HUP"
ok "a mismatched pair: racerd -t refuses it, HUP keeps serial 2"

# And at start: racerd does not start with it, and says why.
"$RACERD" -f -c "$T/racerd.conf" >"$T/start.out" 2>&1 &&
    fail "racerd started with a key that does not match"
grep -q "does not match" "$T/start.out" ||
    fail "start error: $(cat "$T/start.out")"
ok "a mismatched pair stops the start"
finish
