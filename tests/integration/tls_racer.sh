#!/bin/sh
# SPDX-License-Identifier: ISC
# racer(1) over wss://: with --cacert it chats with an independent
# python3-websockets member (both verify the test's CA); without it the
# certificate does not verify against the system's store: exit 3 and the
# reason on one line; a certificate for another name: exit 3 "IP address
# mismatch"; --insecure goes through with a warning; an unreadable
# --cacert is a usage error (2).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need openssl

RACERD_TEST_TLS=1
tls_make_ca
tls_make_cert server 1
RACERD_TEST_CA=$T/ca.pem
export RACERD_TEST_CA
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2
start_racerd "$T/racerd.conf" "$PORT"
URL=wss://127.0.0.1:$PORT
ok "racerd up on TLS only"

# The independent member: joins, then waits for 3 messages.
cat >"$T/observe.py" <<'PYEOF'
import asyncio, sys
sys.path.insert(0, sys.argv[1] + "/tests/integration")
import wslib

async def main(port, out, ready):
    c = await wslib.join(port, "tls-racer", "observer")
    open(ready, "w").close()
    got = await c.wait_msgs(3, 30)
    with open(out, "w") as f:
        for m in c.msgs:
            f.write("%s %s %s\n" % (m.get("seq"), m.get("from"),
                                    m.get("body")))
    await c.close()
    return 0 if got else 1

sys.exit(asyncio.run(main(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
PYEOF
timeout 60 $PY "$T/observe.py" "$top_srcdir" "$PORT" "$T/observed" \
    "$T/ready" &
OBS=$!
i=0
while [ ! -e "$T/ready" ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
for n in 1 2 3; do
	timeout 20 "$RACER" -u alice --cacert "$T/ca.pem" -m "over tls $n" \
	    "$URL" tls-racer >"$T/send$n.out" 2>"$T/send$n.err" ||
	    fail "racer --cacert -m exited $?: $(cat "$T/send$n.err")"
done
wait "$OBS" || fail "the observer did not get 3 messages"
printf '1 alice over tls 1\n2 alice over tls 2\n3 alice over tls 3\n' \
    >"$T/want"
cmp -s "$T/want" "$T/observed" ||
    fail "observer saw: $(cat "$T/observed" 2>/dev/null)"
ok "racer --cacert chats over wss:// with python3-websockets"

# --history over wss://: racer reads what was said.
timeout 20 "$RACER" --cacert "$T/ca.pem" -q -n 3 -l -t 5 "$URL" tls-racer \
    >"$T/hist.out" 2>"$T/hist.err" &
HIST=$!
PIDS="$PIDS $HIST"
wait_lines "$T/hist.out" "over tls" 3 10 || fail "history: $(cat "$T/hist.out")"
kill "$HIST" 2>/dev/null
ok "racer --history over wss://"

# No --cacert: the system's store does not know the test's CA.
timeout 20 "$RACER" -m x "$URL" tls-racer >/dev/null 2>"$T/nocacert.err"
st=$?
[ "$st" = 3 ] || fail "without --cacert racer exited $st"
[ "$(wc -l <"$T/nocacert.err")" = 1 ] ||
    fail "more than one line: $(cat "$T/nocacert.err")"
grep -q "^racer: $URL: certificate verification failed: unable to get local issuer certificate$" \
    "$T/nocacert.err" || fail "said: $(cat "$T/nocacert.err")"
ok "an unknown CA: exit 3 and the reason on one line"

# A certificate for another name (a TLS server that has one).
tls_make_cert other 7
sed -i 's/^subjectAltName=.*/subjectAltName=DNS:other.example/' "$T/other.ext"
openssl x509 -req -in "$T/other.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
    -set_serial 8 -days 2 -extfile "$T/other.ext" -out "$T/other.pem" \
    2>/dev/null || fail "openssl: other"
OPORT=$(free_port)
openssl s_server -accept "127.0.0.1:$OPORT" -cert "$T/other.pem" \
    -key "$T/other.key" -quiet </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
sleep 0.5
timeout 20 "$RACER" --cacert "$T/ca.pem" -m x "wss://127.0.0.1:$OPORT" c \
    >/dev/null 2>"$T/other.err"
st=$?
[ "$st" = 3 ] || fail "a certificate for another name: exit $st"
grep -q "certificate verification failed: IP address mismatch$" \
    "$T/other.err" || fail "said: $(cat "$T/other.err")"
ok "a certificate for another name: exit 3"

# --insecure: through, with a warning.
timeout 20 "$RACER" --insecure -m "insecure" "$URL" tls-racer >/dev/null \
    2>"$T/insecure.err" || fail "--insecure exited $?"
grep -q "^racer: warning: --insecure: the server's certificate is not checked" \
    "$T/insecure.err" || fail "no warning: $(cat "$T/insecure.err")"
ok "--insecure connects and warns"

# Usage errors.
timeout 5 "$RACER" --cacert "$T/nonexistent.pem" -m x "$URL" c \
    2>"$T/u1.err"
[ $? = 2 ] || fail "an unreadable --cacert is not a usage error"
grep -q "nonexistent.pem: No such file or directory" "$T/u1.err" ||
    fail "said: $(cat "$T/u1.err")"
timeout 5 "$RACER" --insecure -m x "ws://127.0.0.1:$PORT" c 2>/dev/null
[ $? = 2 ] || fail "--insecure with ws:// is not a usage error"
ok "usage errors"
finish
