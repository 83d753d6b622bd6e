#!/bin/sh
# SPDX-License-Identifier: ISC
# racer --send: 100 lines from standard input are all acknowledged, exit
# 0 with nothing on stdout, and HTTP history holds each exactly once, in
# order, from the sender, with distinct 16-hex-digit ids.  --send TEXT.
# A line that cannot be sent (invalid UTF-8) is named on stderr and makes
# the exit 1, the others are stored.  The --timeout runs from the end of
# the input, not from the start.  A burst past max-message-rate is refused
# ("rate_limited") and racer sends again, with the same ids, until every
# line is stored once (in any order: an error names no id).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need curl
need redis-server
need timeout

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "max-message-rate = 100"
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
ok "racerd up"

# check_history CHAT USER PREFIX COUNT [any]: history of CHAT holds
# PREFIX1 .. PREFIXCOUNT from USER, once each, in order (in any order with
# "any"), with distinct ids.
check_history() {
	curl -s --max-time 10 \
	    "http://127.0.0.1:$PORT/chats/$1/messages?since=0&limit=1000" \
	    >"$T/history.json"
	$PY - "$T/history.json" "$2" "$3" "$4" "${5:-}" <<'PYEOF'
import json, re, sys
path, user, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], \
    int(sys.argv[4])
anyorder = sys.argv[5] == "any"
try:
    page = json.load(open(path))
except ValueError as e:
    print("history is not JSON: %s" % e)
    sys.exit(1)
msgs = page.get("messages", [])
bodies = [m.get("body") for m in msgs]
want = ["%s%d" % (prefix, i) for i in range(1, count + 1)]
why = []
if (sorted(bodies) if anyorder else bodies) != \
        (sorted(want) if anyorder else want):
    dups = sorted({b for b in bodies if bodies.count(b) > 1})
    missing = [b for b in want if b not in bodies]
    why.append("%d messages (expected %d), %d duplicated %s, %d missing "
               "%s, first %s" % (len(bodies), count, len(dups), dups[:5],
                                 len(missing), missing[:5], bodies[:3]))
if [m.get("seq") for m in msgs] != list(range(1, len(msgs) + 1)):
    why.append("seqs are not 1..%d" % len(msgs))
if any(m.get("from") != user for m in msgs):
    why.append("not all from %s" % user)
ids = [m.get("id") for m in msgs]
if len(set(ids)) != len(ids) or \
        not all(isinstance(i, str) and re.fullmatch("[0-9a-f]{16}", i)
                for i in ids):
    why.append("ids are not distinct 16-hex-digit strings: %s" % ids[:3])
if why:
    print("; ".join(why))
    sys.exit(1)
PYEOF
}

# 100 lines from standard input.
seq 1 100 | sed 's/^/line /' |
    timeout -k 2 30 "$RACER" --send - -u sender "$URL" send100 \
    >"$T/out" 2>"$T/err"
st=$?
[ "$st" -eq 0 ] || fail "--send - of 100 lines: exit $st ($(cat "$T/err"))"
[ -s "$T/out" ] && fail "--send printed on stdout: $(head -3 "$T/out")"
[ -s "$T/err" ] && fail "--send printed on stderr: $(head -3 "$T/err")"
why=$(check_history send100 sender "line " 100) ||
    fail "after --send - of 100 lines: $why"
ok "--send - : 100 lines acknowledged, each stored once, in order"

# --send TEXT, twice: two messages (fresh ids), not deduplicated.
for i in 1 2; do
	timeout -k 2 20 "$RACER" -m "one $i" -u sender "$URL" sendone \
	    >"$T/out" 2>"$T/err"
	st=$?
	[ "$st" -eq 0 ] || fail "--send TEXT: exit $st ($(cat "$T/err"))"
done
why=$(check_history sendone sender "one " 2) || fail "--send TEXT: $why"
ok "--send TEXT: one message per run, each with its own id"

# An invalid line among good ones; empty lines are skipped.
printf 'bad 1\n\nbad 2\n\377\376\nbad 3' |
    timeout -k 2 20 "$RACER" --send - -u sender "$URL" sendbad \
    >"$T/out" 2>"$T/err"
st=$?
[ "$st" -eq 1 ] || fail "a line of invalid UTF-8: exit $st, expected 1"
grep -q '^racer: line 4 not sent: it is not valid UTF-8$' "$T/err" ||
    fail "no warning naming line 4: $(cat "$T/err")"
grep -q '^racer: 1 line not sent$' "$T/err" ||
    fail "no '1 line not sent': $(cat "$T/err")"
[ "$(wc -l <"$T/err")" -eq 2 ] || fail "stderr: $(cat "$T/err")"
why=$(check_history sendbad sender "bad " 3) ||
    fail "the good lines around an invalid one: $why"
ok "an invalid line: named, exit 1, the good lines stored"

# A slow producer: 4 lines over 2 s with --timeout 1 is not a timeout.
(for i in 1 2 3 4; do echo "slow $i"; sleep 0.5; done) |
    timeout -k 2 20 "$RACER" --send - -t 1 -u sender "$URL" sendslow \
    >"$T/out" 2>"$T/err"
st=$?
[ "$st" -eq 0 ] || fail "a slow producer: exit $st ($(cat "$T/err"))"
why=$(check_history sendslow sender "slow " 4) || fail "slow producer: $why"
ok "--timeout counts from the end of the input"

# A burst past max-message-rate (100/s): refused, sent again, stored once.
seq 1 600 | sed 's/^/burst /' |
    timeout -k 2 50 "$RACER" --send - -t 30 -v -u sender "$URL" sendburst \
    >"$T/out" 2>"$T/err"
st=$?
[ "$st" -eq 0 ] || fail "a burst of 600: exit $st ($(tail -3 "$T/err"))"
grep -q 'rate_limited' "$T/err" ||
    echo "  (the burst was never rate-limited: $(head -2 "$T/err"))"
why=$(check_history sendburst sender "burst " 600 any) ||
    fail "burst: $why"
ok "a burst past max-message-rate: every line stored once (refused $(grep -c rate_limited "$T/err") times, closed $(grep -c 'closed by the server (41' "$T/err") times)"
finish
