#!/bin/sh
# SPDX-License-Identifier: ISC
# racer(1) basics: two racer processes (alice in text, bob with --json)
# chat through a 2-worker racerd, driven through fifos; an independent
# client (python3-websockets) sees the same messages in the same order,
# seq 1..N, each once.  Presence lines; the end of input makes racer exit
# 0 once its messages are acknowledged; --history, --since and --quiet
# print exactly what they promise.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need mkfifo

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
CHAT=racer-basic
N=10			# lines per sender
ok "racerd up"

# The independent observer: joins first, writes "SEQ FROM BODY" per
# message once it has COUNT of them (or on timeout).
cat >"$T/observe.py" <<'PYEOF'
import asyncio, sys
sys.path.insert(0, sys.argv[1] + "/tests/integration")
import wslib

async def main(port, chat, count, out, ready):
    c = await wslib.join(port, chat, "observer")
    open(ready, "w").close()
    got = await c.wait_msgs(count, 40)
    with open(out, "w") as f:
        for m in c.msgs:
            f.write("%s %s %s\n" % (m.get("seq"), m.get("from"),
                                    m.get("body")))
    await c.close()
    return 0 if got else 1

sys.exit(asyncio.run(main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                          sys.argv[5], sys.argv[6])))
PYEOF
PYTHONDONTWRITEBYTECODE=1 timeout -k 2 50 $PY "$T/observe.py" "$top_srcdir" "$PORT" "$CHAT" \
    $((2 * N)) "$T/obs.out" "$T/obs.ready" &
OBS=$!
PIDS="$PIDS $OBS"
i=0
while [ ! -f "$T/obs.ready" ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -f "$T/obs.ready" ] || fail "the observer did not join"

start_racer alice -u alice "$URL" "$CHAT"
A=$RACER_PID
start_racer bob --json -u bob "$URL" "$CHAT"
B=$RACER_PID
exec 3>"$T/alice.in" 4>"$T/bob.in"
wait_lines "$T/alice.out" '^-- alice joined --$' 1 ||
    fail "alice: no '-- alice joined --' ($(cat "$T/alice.err"))"
wait_lines "$T/bob.out" '"event":"join","user":"bob"' 1 ||
    fail "bob: no join event ($(cat "$T/bob.err"))"
ok "two racers joined (presence shown)"

# Alternate, with bodies that need care: quotes, a backslash, a tab,
# UTF-8, a CRLF line end (the CR is not part of the message).
i=1
while [ "$i" -le "$N" ]; do
	printf 'a%d "quoted" back\\slash\n' "$i" >&3
	printf 'b%d tab\there, caf\303\251 \342\234\223\r\n' "$i" >&4
	i=$((i + 1))
done
wait_lines "$T/alice.out" '^[0-9:]* \[' $((2 * N)) 20 ||
    fail "alice printed $(grep -c '^[0-9:]* \[' "$T/alice.out") of $((2 * N)) messages"
wait_lines "$T/bob.out" '"type":"msg"' $((2 * N)) 20 ||
    fail "bob printed $(grep -c '"type":"msg"' "$T/bob.out") of $((2 * N)) messages"
wait "$OBS" || fail "the observer did not get $((2 * N)) messages"

racer_lines "$T/alice.out" >"$T/alice.msgs"
$PY -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("type") == "msg":
        print("%s %s %s" % (m["seq"], m["from"], m["body"]))
' "$T/bob.out" >"$T/bob.msgs" || fail "bob --json printed a line that is not JSON"
cp "$T/obs.out" "$T/obs.msgs"
seq 1 $((2 * N)) >"$T/seqs"
for who in alice bob obs; do
	cut -d' ' -f1 "$T/$who.msgs" 2>/dev/null | cmp -s - "$T/seqs" ||
	    fail "$who: seqs are not 1..$((2 * N)) in order: $(cut -d' ' -f1 "$T/$who.msgs" | tr '\n' ' ')"
done
cmp -s "$T/alice.msgs" "$T/obs.msgs" ||
    fail "alice and the observer differ: $(diff "$T/alice.msgs" "$T/obs.msgs" | head -5)"
cmp -s "$T/bob.msgs" "$T/obs.msgs" ||
    fail "bob and the observer differ: $(diff "$T/bob.msgs" "$T/obs.msgs" | head -5)"
grep -q '^[0-9]* alice a3 "quoted" back\\slash$' "$T/obs.msgs" ||
    fail "alice's message body was altered: $(grep ' alice a3 ' "$T/obs.msgs")"
grep -q "^[0-9]* bob b3 tab	here, café ✓$" "$T/obs.msgs" ||
    fail "bob's message body was altered: $(grep ' bob b3 ' "$T/obs.msgs")"
seq 1 "$N" >"$T/seqs.n"
for who in a b; do
	sed -n "s/^[0-9]* [a-z]* $who\([0-9]*\) .*/\1/p" "$T/obs.msgs" |
	    cmp -s - "$T/seqs.n" || fail "$who's lines are not in send order"
done
grep -q '^[0-9][0-9]:[0-9][0-9]:[0-9][0-9] \[1\] ' "$T/alice.out" ||
    fail "alice's lines are not 'HH:MM:SS [seq] user: body'"
ok "alice, bob (--json) and an independent client saw the same $((2 * N)) messages in one order"

# The end of input: alice exits 0 once acknowledged; bob hears her leave.
printf 'last words\n' >&3
exec 3>&-
if wait_child "$A" 10; then
	[ "$STATUS" -eq 0 ] || fail "alice exited $STATUS ($(cat "$T/alice.err"))"
else
	fail "alice still running 10 s after the end of her input"
fi
[ -s "$T/alice.err" ] && fail "alice wrote to stderr: $(cat "$T/alice.err")"
wait_lines "$T/bob.out" '"body":"last words"' 1 ||
    fail "bob did not get alice's last words"
wait_lines "$T/bob.out" '"event":"leave","user":"alice"' 1 ||
    fail "bob did not see alice leave"
LAST=$((2 * N + 1))
ok "end of input: exit 0 after the acknowledgement; the others see a leave"

# --history 5: the last five, then exit (standard input is empty).
timeout -k 2 20 "$RACER" --history 5 -u carol "$URL" "$CHAT" </dev/null \
    >"$T/carol.out" 2>"$T/carol.err"
st=$?
[ "$st" -eq 0 ] || fail "--history: exit $st ($(cat "$T/carol.err"))"
racer_lines "$T/carol.out" | cut -d' ' -f1 | tr '\n' ' ' >"$T/carol.seqs"
[ "$(cat "$T/carol.seqs")" = "$(seq $((LAST - 4)) $LAST | tr '\n' ' ')" ] ||
    fail "--history 5 printed seqs $(cat "$T/carol.seqs"), expected the last 5 of $LAST"
ok "--history 5 prints the last five messages in order"

# --since: what followed, then the resumed notice; --quiet: no presence.
timeout -k 2 20 "$RACER" --since $((LAST - 3)) -q -u dave "$URL" "$CHAT" \
    </dev/null >"$T/dave.out" 2>"$T/dave.err"
st=$?
[ "$st" -eq 0 ] || fail "--since: exit $st ($(cat "$T/dave.err"))"
racer_lines "$T/dave.out" | cut -d' ' -f1 | tr '\n' ' ' >"$T/dave.seqs"
[ "$(cat "$T/dave.seqs")" = "$(seq $((LAST - 2)) $LAST | tr '\n' ' ')" ] ||
    fail "--since $((LAST - 3)) printed seqs $(cat "$T/dave.seqs")"
grep -q '^-- resumed, 3 missed messages replayed --$' "$T/dave.out" ||
    fail "--since: no '-- resumed, 3 missed messages replayed --': $(cat "$T/dave.out")"
grep -Eq '^-- .* (joined|left|is away|is back) --$' "$T/dave.out" &&
    fail "--quiet printed presence: $(cat "$T/dave.out")"
ok "--since replays what followed and says so; --quiet hides presence"

# --history with --since: the page before the position, then the replay
# (erin's own presence join may come too: a --since join is a member).
timeout -k 2 20 "$RACER" -n 2 -s $((LAST - 1)) -j -u erin "$URL" "$CHAT" \
    </dev/null >"$T/erin.out" 2>"$T/erin.err"
st=$?
[ "$st" -eq 0 ] || fail "--history --since: exit $st ($(cat "$T/erin.err"))"
$PY -c '
import json, sys
frames = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join(str(f.get("seq", f["type"])) for f in frames
               if f["type"] != "presence"))' "$T/erin.out" >"$T/erin.seqs"
[ "$(cat "$T/erin.seqs")" = "$((LAST - 2)) $((LAST - 1)) $LAST resumed" ] ||
    fail "--history 2 --since $((LAST - 1)) --json printed $(cat "$T/erin.seqs")"
ok "--history with --since: older page, replay, resumed, in that order"

exec 4>&-
if wait_child "$B" 10; then
	[ "$STATUS" -eq 0 ] || fail "bob exited $STATUS ($(cat "$T/bob.err"))"
else
	fail "bob still running 10 s after the end of his input"
fi
finish
