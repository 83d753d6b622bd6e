#!/bin/sh
# SPDX-License-Identifier: ISC
# racer's failures, each one clear line on stderr and the documented exit
# status: usage and bad URLs (2); a closed port, an unknown host, a plain
# HTTP server, a server that says nothing, one that does not speak HTTP
# (3); racerd refusing the join (4).  Then a scripted stand-in for racerd
# (python3-websockets) checks what the real one rarely does on cue: a
# message never acknowledged (1), close 4009 and 4001 (4), 1008 (1), 4100
# (back-off, then reconnect), and a resume refused with 401 (join again
# with since, the same user, nothing missed, the echo matched by id).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

# expect STATUS PATTERN ARGS...: racer ARGS (empty input) exits STATUS
# with exactly one line on stderr, matching the extended regular
# expression PATTERN, and nothing on stdout.
expect() {
	want=$1 pat=$2
	shift 2
	timeout -k 2 30 "$RACER" "$@" </dev/null >"$T/out" 2>"$T/err"
	st=$?
	if [ "$st" -ne "$want" ]; then
		fail "racer $*: exit $st, expected $want ($(cat "$T/err"))"
	elif [ "$(wc -l <"$T/err")" -ne 1 ]; then
		fail "racer $*: not one line on stderr: $(cat "$T/err")"
	elif ! grep -Eq -- "$pat" "$T/err"; then
		fail "racer $*: stderr '$(cat "$T/err")' does not match '$pat'"
	elif [ -s "$T/out" ]; then
		fail "racer $*: printed $(head -2 "$T/out")"
	fi
}

# Usage and URLs: 2.
P=$(free_port)
expect 2 '^racer: bad URL "http://127.0.0.1:'"$P"'": it must start with ws:// or wss://$' \
    "http://127.0.0.1:$P" lobby
expect 2 '^racer: --cacert and --insecure are for wss:// URLs$' --insecure \
    "ws://127.0.0.1:$P" lobby
expect 2 'bad host in the URL' wss:// lobby
expect 2 '^racer: bad host in the URL' ws:// lobby
expect 2 '^racer: bad host in the URL' ws://:80 lobby
expect 2 '^racer: bad port "99999" in the URL$' ws://127.0.0.1:99999 lobby
expect 2 '^racer: bad host in the URL' 'ws://[::1' lobby
expect 2 'in brackets' ws://::1:80 lobby
expect 2 'no query or fragment' "ws://127.0.0.1:$P/?x=1" lobby
expect 2 '^racer: bad chat id "a b"' "ws://127.0.0.1:$P" 'a b'
expect 2 '^racer: bad chat id "\.\."' "ws://127.0.0.1:$P" ..
expect 2 '^racer: bad user name' -u 'x/y' "ws://127.0.0.1:$P" lobby
expect 2 '^racer: --timeout "0": not a number' -t 0 "ws://127.0.0.1:$P" lobby
expect 2 '^racer: --send: the message is empty$' -m '' "ws://127.0.0.1:$P" lobby
expect 2 'exclude each other' -l -m x "ws://127.0.0.1:$P" lobby
timeout 10 "$RACER" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q '^usage: racer' "$T/err" || fail "no arguments: not usage and 2"
ok "bad usage and URLs: exit 2, one line"

# Cannot connect: 3.
expect 3 "^racer: cannot connect to 127.0.0.1:$P: Connection refused$" \
    "ws://127.0.0.1:$P" lobby
expect 3 '^racer: cannot resolve nosuchhost\.invalid' \
    ws://nosuchhost.invalid lobby
HP=$(free_port)
(cd "$T" && exec $PY -m http.server --bind 127.0.0.1 "$HP") \
    >/dev/null 2>&1 &
PIDS="$PIDS $!"
cat >"$T/raw.py" <<'PYEOF'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
end = time.time() + 40
while time.time() < end:
    s.settimeout(end - time.time())
    try:
        c, _ = s.accept()
    except OSError:
        break
    if sys.argv[1] == "garbage":
        c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    time.sleep(0.2)
    if sys.argv[1] == "garbage":
        c.close()
PYEOF
$PY "$T/raw.py" silent "$T/silent.port" &
PIDS="$PIDS $!"
$PY "$T/raw.py" garbage "$T/garbage.port" &
PIDS="$PIDS $!"
i=0
while { [ ! -s "$T/silent.port" ] || [ ! -s "$T/garbage.port" ] ||
    [ "$(http_status "http://127.0.0.1:$HP/")" = 000 ]; } && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
expect 3 "^racer: ws://127.0.0.1:$HP: not a racerd WebSocket server \(HTTP 404 .*\)$" \
    "ws://127.0.0.1:$HP" lobby
expect 3 "^racer: ws://127.0.0.1:$(cat "$T/silent.port"): no welcome from the server within 2 s$" \
    -t 2 "ws://127.0.0.1:$(cat "$T/silent.port")" lobby
expect 3 "^racer: ws://127.0.0.1:$(cat "$T/garbage.port"): not a racerd WebSocket server \(not an HTTP server .*\)$" \
    "ws://127.0.0.1:$(cat "$T/garbage.port")" lobby
ok "cannot connect (closed port, unknown host, HTTP server, silence, not HTTP): exit 3, one line"

# racerd refuses: 4 (a 503 is retried for --timeout first).
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1 "max-connections = 1"
start_racerd "$T/racerd.conf" "$PORT"
start_racer holder -l -u holder "ws://127.0.0.1:$PORT" lobby
exec 3>"$T/holder.in"
wait_lines "$T/holder.out" '^-- holder joined --$' 1 ||
    fail "the first client did not join ($(cat "$T/holder.err"))"
expect 4 '^racer: refused by the server: 503 too many connections$' \
    -t 2 "ws://127.0.0.1:$PORT" lobby
ok "racerd refuses (503 past --timeout): exit 4, one line"

# The stand-in: MODE decides what each connection gets; it logs
# "N PATH" per handshake and "N < FRAME" per frame from racer.
cat >"$T/fake.py" <<'PYEOF'
import asyncio, http, json, sys, time
import websockets

mode, portfile, logfile = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(logfile, "w", buffering=1)
n = [0]

def welcome(user, session, seq):
    return json.dumps({"type": "welcome", "chat": "lobby", "user": user,
                       "session": session, "epoch": "E1", "seq": seq,
                       "window": 120})

def msg(seq, frm, body, mid="x%d" % 0):
    return json.dumps({"type": "msg", "chat": "lobby", "seq": seq,
                       "id": mid, "from": frm, "ts": int(time.time() * 1000),
                       "body": body})

async def process_request(path, headers):
    n[0] += 1
    log.write("%d %s\n" % (n[0], path))
    if mode == "forbidden" or (mode == "resume" and n[0] == 2):
        body = b'{"error":"session unknown or expired: join again"}' \
            if mode == "resume" else b'{"error":"not allowed into that chat"}'
        return (http.HTTPStatus(401 if mode == "resume" else 403),
                [("Content-Type", "application/json")], body)
    return None

async def reader(ws, k):
    async for raw in ws:
        log.write("%d < %s\n" % (k, raw))
        m = json.loads(raw)
        if mode == "resume" and m.get("type") == "msg":
            await ws.send(msg(8, "u", m["body"], m["id"]))

async def handler(ws, path=None):
    k = n[0]
    if mode == "silent":
        await ws.send(welcome("u", "S1", 0))
        await reader(ws, k)
    elif mode.startswith("close"):
        await ws.send(welcome("u", "S1", 0))
        await asyncio.sleep(0.2)
        await ws.close(int(mode[5:]), "")
    elif mode == "backoff":
        await ws.send(welcome("u", "S1", 0))
        await ws.close(4100 if k == 1 else 4001, "")
    elif mode == "resume" and k == 1:
        await ws.send(welcome("u", "S1", 5))
        await ws.send(msg(6, "v", "six"))
        await asyncio.sleep(0.3)
        await ws.close(4200, "server restarting")
    elif mode == "resume":
        await ws.send(welcome("u", "S2", 7))
        await ws.send(msg(7, "v", "seven"))
        await ws.send(json.dumps({"type": "resumed", "from": 6, "to": 7,
                                  "replayed": 1, "complete": True}))
        await reader(ws, k)

async def main():
    async with websockets.serve(handler, "127.0.0.1", 0,
                                process_request=process_request) as srv:
        open(portfile + ".tmp", "w").write(
            str(srv.sockets[0].getsockname()[1]))
        import os
        os.rename(portfile + ".tmp", portfile)
        await asyncio.sleep(40)

asyncio.run(main())
PYEOF

# fake MODE: start the stand-in; FAKE is its ws:// URL.
fake() {
	rm -f "$T/fake.port"
	$PY "$T/fake.py" "$1" "$T/fake.port" "$T/fake.log" 2>"$T/fake.err" &
	FAKE_PID=$!
	PIDS="$PIDS $FAKE_PID"
	i=0
	while [ ! -s "$T/fake.port" ] && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	FAKE=ws://127.0.0.1:$(cat "$T/fake.port")
}
unfake() {
	kill "$FAKE_PID" 2>/dev/null
	wait "$FAKE_PID" 2>/dev/null
}

fake silent
expect 1 '^racer: 1 message not acknowledged within 2 s$' -t 2 -m hello \
    "$FAKE" lobby
grep -q '^1 < {"type":"msg","body":"hello","id":"[0-9a-f]\{16\}"}$' \
    "$T/fake.log" || fail "the message frame: $(grep '<' "$T/fake.log")"
unfake
fake close4009
expect 4 '^racer: closed by the server: 4009 session taken over by a newer connection$' \
    -l "$FAKE" lobby
unfake
fake close1008
expect 1 '^racer: closed by the server: 1008' -l "$FAKE" lobby
unfake
fake forbidden
expect 4 '^racer: refused by the server: 403 not allowed into that chat$' \
    -l "$FAKE" lobby
unfake
ok "stand-in: unacknowledged (1), 4009 (4), 1008 (1), 403 (4)"

fake backoff
t0=$(date +%s%N)
timeout -k 2 30 "$RACER" -l "$FAKE" lobby </dev/null >"$T/out" 2>"$T/err"
st=$?
t1=$(date +%s%N)
[ "$st" -eq 4 ] || fail "4100 then 4001: exit $st, expected 4"
[ "$(sed -n 1p "$T/err")" = "racer: closed by the server (4100); reconnecting" ] &&
    [ "$(sed -n 2p "$T/err")" = "racer: closed by the server: 4001 unauthorized" ] &&
    [ "$(wc -l <"$T/err")" -eq 2 ] || fail "4100 then 4001: $(cat "$T/err")"
[ $(((t1 - t0) / 1000000)) -ge 500 ] ||
    fail "4100: reconnected after $(((t1 - t0) / 1000000)) ms, expected back-off (>= 500)"
[ "$(grep -c ' /ws/lobby' "$T/fake.log")" -eq 2 ] ||
    fail "4100: $(grep -c ' /ws/lobby' "$T/fake.log") connections, expected 2"
unfake
ok "stand-in: 4100 reconnects after a back-off of $(((t1 - t0) / 1000000)) ms"

fake resume
(sleep 0.1; echo "hello again") |
    timeout -k 2 30 "$RACER" -u u "$FAKE" lobby >"$T/out" 2>"$T/err"
st=$?
[ "$st" -eq 0 ] || fail "resume refused with 401: exit $st ($(cat "$T/err"))"
sed -n 's/^[0-9]* //p' "$T/fake.log" | grep '^/' >"$T/paths"
[ "$(sed -n 1p "$T/paths")" = "/ws/lobby?user=u" ] ||
    fail "first join: $(sed -n 1p "$T/paths")"
[ "$(sed -n 2p "$T/paths")" = "/ws/lobby?user=u&session=S1&last=6&epoch=E1" ] ||
    fail "resume: $(sed -n 2p "$T/paths")"
[ "$(sed -n 3p "$T/paths")" = "/ws/lobby?user=u&since=6&epoch=E1" ] ||
    fail "join again after 401: $(sed -n 3p "$T/paths")"
racer_lines "$T/out" | tr '\n' '|' >"$T/got"
[ "$(cat "$T/got")" = "6 v six|7 v seven|8 u hello again|" ] ||
    fail "printed $(cat "$T/got")"
grep -q '^-- resumed, 1 missed message replayed --$' "$T/out" ||
    fail "no resumed notice: $(cat "$T/out")"
grep -q '^racer: closed by the server (4200 server restarting); reconnecting$' \
    "$T/err" || fail "stderr: $(cat "$T/err")"
grep -q '^racer: session expired; joining again$' "$T/err" ||
    fail "stderr: $(cat "$T/err")"
grep -q 'S1\|S2' "$T/out" "$T/err" && fail "racer printed its session token"
unfake
ok "stand-in: 4200, resume refused (401), joined again with since; echo matched by id"
finish
