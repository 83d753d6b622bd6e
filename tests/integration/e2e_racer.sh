#!/bin/sh
# SPDX-License-Identifier: ISC
# End-to-end encrypted chat with racer(1). alice and bob share a secret
# (a file and RACER_E2E_SECRET): each reads the other's messages in
# plain text, while an observer without the secret (python3-websockets)
# and HTTP history see only e2e1: bodies, none holding the text. carol
# with a wrong secret sees "[encrypted message it cannot read]" for each
# and stays connected; a message sent without encryption is marked. A
# body sealed by PyNaCl (python3-nacl, an independent implementation)
# opens in racer, and one sealed by racer opens in PyNaCl.  The
# known-answer vector of racerd-protocol(7) is what PyNaCl makes with its
# nonce, byte for byte, and racer reads it.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need mkfifo
$PY -c 'import nacl.bindings, nacl.pwhash' 2>/dev/null || need python3-nacl
E2E="$PY $top_srcdir/tests/integration/e2e.py"

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
CHAT=e2e.room-1
SECRET='correct horse battery staple'
printf '%s\n' "$SECRET" >"$T/secret"
ok "racerd up"

$E2E observe "$PORT" "$CHAT" 4 >"$T/obs.out" 2>"$T/obs.err" &
OBS=$!
PIDS="$PIDS $OBS"
start_racer alice -u alice --e2e-secret-file "$T/secret" "$URL" "$CHAT"
A=$RACER_PID
export RACER_E2E_SECRET="$SECRET"
start_racer bob -u bob -l "$URL" "$CHAT"
B=$RACER_PID
RACER_E2E_SECRET=wrong
start_racer carol -u carol -l "$URL" "$CHAT"
C=$RACER_PID
unset RACER_E2E_SECRET
exec 3>"$T/alice.in" 4>"$T/bob.in" 5>"$T/carol.in"
for who in alice bob carol; do
	wait_lines "$T/$who.out" "^-- $who joined --\$" 1 ||
	    fail "$who did not join ($(cat "$T/$who.err"))"
done
ok "alice, bob (same secret) and carol (wrong secret) joined"

echo 'hello from alice, sealed' >&3
RACER_E2E_SECRET=$SECRET timeout 20 "$RACER" -u bob \
    --send 'and bob answers' "$URL" "$CHAT" ||
    fail "bob's --send with the secret failed"
KAT=$($E2E seal "$SECRET" "$CHAT" "$(printf 'sealed by PyNaCl: caf\303\251')")
timeout 20 "$RACER" -u nacl --send "$KAT" "$URL" "$CHAT" ||
    fail "sending the PyNaCl body failed"
timeout 20 "$RACER" -u plain --send 'not sealed at all' "$URL" "$CHAT" ||
    fail "sending a plain body failed"
wait_lines "$T/bob.out" '^[0-9:]* \[' 4 20 ||
    fail "bob printed $(grep -c '^[0-9:]* \[' "$T/bob.out") of 4 messages"
wait_lines "$T/carol.out" '^[0-9:]* \[' 4 20 ||
    fail "carol printed $(grep -c '^[0-9:]* \[' "$T/carol.out") of 4 messages"
wait_lines "$T/alice.out" '^[0-9:]* \[' 4 20 ||
    fail "alice printed $(grep -c '^[0-9:]* \[' "$T/alice.out") of 4 messages"

racer_lines "$T/bob.out" >"$T/bob.msgs"
printf '%s\n' '1 alice hello from alice, sealed' '2 bob and bob answers' \
    "$(printf '3 nacl sealed by PyNaCl: caf\303\251')" \
    '4 plain (not encrypted) not sealed at all' >"$T/want"
cmp -s "$T/bob.msgs" "$T/want" ||
    fail "bob read: $(cat "$T/bob.msgs") (wanted $(cat "$T/want"))"
racer_lines "$T/alice.out" | cmp -s - "$T/want" ||
    fail "alice read: $(racer_lines "$T/alice.out")"
ok "the two with the secret read each other and the PyNaCl body"

racer_lines "$T/carol.out" >"$T/carol.msgs"
[ "$(grep -c '\[encrypted message it cannot read\]$' "$T/carol.msgs")" = 3 ] ||
    fail "carol: $(cat "$T/carol.msgs")"
grep -q 'hello from alice\|bob answers\|PyNaCl' "$T/carol.msgs" &&
    fail "carol read a sealed text"
kill -0 "$C" 2>/dev/null || fail "carol's racer stopped"
ok "a wrong secret gives the cannot-read line, and the session goes on"

wait "$OBS" || fail "the observer did not get 4 messages: $(cat "$T/obs.err")"
curl -s --max-time 10 \
    "http://127.0.0.1:$PORT/chats/$CHAT/messages?since=0&limit=100" \
    >"$T/history.json"
$PY - "$T/history.json" "$T/obs.out" <<'PYEOF' || fail "plain text reached racerd"
import json, sys
hist = [m["body"] for m in json.load(open(sys.argv[1]))["messages"]]
obs = [json.loads(l) for l in open(sys.argv[2])]
bad = []
for where, bodies in (("history", hist), ("observer", obs)):
    sealed = [b for b in bodies if b != "not sealed at all"]
    if len(sealed) < 3 or not all(b.startswith("e2e1:") for b in sealed):
        bad.append("%s: %s" % (where, bodies))
    if any(w in b for b in bodies for w in ("alice", "bob", "PyNaCl")):
        bad.append("%s holds a plain text" % where)
if bad:
    print("; ".join(bad))
    sys.exit(1)
PYEOF
ok "an observer and HTTP history see only e2e1: bodies"

# What racer sealed opens in PyNaCl; with another chat id (the associated
# data) or another secret it does not.
BODY=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"][0]["body"])' \
    "$T/history.json")
[ "$($E2E open "$SECRET" "$CHAT" "$BODY")" = 'hello from alice, sealed' ] ||
    fail "PyNaCl could not open racer's body $BODY"
$E2E open "$SECRET" other-chat "$BODY" 2>/dev/null &&
    fail "racer's body opened under another chat id"
$E2E open wrong "$CHAT" "$BODY" 2>/dev/null &&
    fail "racer's body opened with a wrong secret"
ok "racer's sealed body opens in PyNaCl, only with its chat and secret"

exec 3>&-
wait_child "$A" 15 || fail "alice did not exit at the end of input"

# The vector in racerd-protocol(7): secret "correct horse battery
# staple", chat "lobby", nonce bytes 0 to 23, text "hello".
VEC=$(sed -n 's/^\(e2e1:[A-Za-z0-9+\/=]*\)$/\1/p' \
    "$top_srcdir/man/racerd-protocol.7")
[ -n "$VEC" ] || fail "no e2e1: vector in racerd-protocol(7)"
NONCE=000102030405060708090a0b0c0d0e0f1011121314151617
[ "$(E2E_NONCE=$NONCE $E2E seal "$SECRET" lobby hello)" = "$VEC" ] ||
    fail "PyNaCl does not make the vector of racerd-protocol(7)"
start_racer dave -u dave --e2e-secret-file "$T/secret" "$URL" lobby
D=$RACER_PID
exec 6>"$T/dave.in"
wait_lines "$T/dave.out" '^-- dave joined --$' 1 ||
    fail "dave did not join ($(cat "$T/dave.err"))"
timeout 20 "$RACER" -u kat --send "$VEC" "$URL" lobby ||
    fail "sending the vector failed"
wait_lines "$T/dave.out" '^[0-9:]* \[' 1 20 ||
    fail "dave printed no message"
[ "$(racer_lines "$T/dave.out")" = "1 kat hello" ] ||
    fail "racer read the vector as: $(racer_lines "$T/dave.out")"
exec 6>&-
wait_child "$D" 15 || fail "dave did not exit at the end of input"
ok "the vector of racerd-protocol(7): PyNaCl makes it and racer reads it"
finish
