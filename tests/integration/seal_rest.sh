#!/bin/sh
# SPDX-License-Identifier: ISC
# Message bodies sealed at rest (storage-key-file): members and HTTP
# history read them in clear, while the store's keys, its AOF and its
# pub/sub hold no plaintext body (and, without the key file, they do: the
# scan can see them).  A new first key and HUP: old and new messages read.
# A key removed: its messages are reported "unknown key", counted in
# /metrics, and the rest are served.  One stored byte flipped: only that
# message is reported unreadable.  Live delivery the same: a member on an
# instance without the sender's key gets "unknown key" frames, in order,
# and then the next message it can open.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

SR="$top_srcdir/tests/integration/seal_rest.py"
sr() {
	timeout -k 3 60 $PY "$SR" "$@"
}

# A store that writes everything to its AOF at once.
start_redis_aof

"$RACERCTL" keygen storage --kid k1 >"$T/k1.line" || fail "keygen k1"
"$RACERCTL" keygen storage --kid k2 >"$T/k2.line" || fail "keygen k2"
cp "$T/k1.line" "$T/storage.keys"
chmod 600 "$T/storage.keys"

PS=$(free_port)
PC=$(free_port)
write_conf_as "$T/s.conf" "$PS" 2 s "redis = unix:$REDIS_SOCK" \
    "storage-key-file = $T/storage.keys"
write_conf_as "$T/c.conf" "$PC" 2 c "redis = unix:$REDIS_SOCK"
start_racerd "$T/s.conf" "$PS"
SMASTER=$MASTER
start_racerd "$T/c.conf" "$PC"

# Sealed: 100 marked bodies, none of them anywhere in the store.
redis-cli -s "$REDIS_SOCK" subscribe 'racerd:{chat:sealed}' \
    >"$T/sub-sealed.out" 2>&1 &
PIDS="$PIDS $!"
sleep 0.3
M1=SEALME$$
sr send --port "$PS" --chat sealed --marker "$M1" -n 100 ||
    fail "sealed chat (see above)"
sleep 0.5
sr scan --marker "$M1" --expect 0 --redis-sock "$REDIS_SOCK" \
    --aof-dir "$T/rdata/appendonlydir" --sub-file "$T/sub-sealed.out" ||
    fail "plaintext in the store (see above)"
ok "100 sealed messages: read in clear, no plaintext in keys, AOF or pub/sub"

# In clear without the key file: the same scan finds them.
redis-cli -s "$REDIS_SOCK" subscribe 'racerd:{chat:clear}' \
    >"$T/sub-clear.out" 2>&1 &
PIDS="$PIDS $!"
sleep 0.3
M2=CLEARME$$
sr send --port "$PC" --chat clear --marker "$M2" -n 10 ||
    fail "clear chat (see above)"
sleep 0.5
sr scan --marker "$M2" --expect 10 --redis-sock "$REDIS_SOCK" \
    --aof-dir "$T/rdata/appendonlydir" --sub-file "$T/sub-clear.out" ||
    fail "the scan does not see plaintext (see above)"
ok "without storage-key-file the scan finds every body"

# reload: HUP, then until both workers said "keys reloaded" once more.
reload() {
	before=$(grep -c "keys reloaded" "$T/racerd-s.log")
	kill -HUP "$SMASTER"
	i=0
	while [ "$(grep -c "keys reloaded" "$T/racerd-s.log")" -lt \
	    $((before + 2)) ]; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { fail "keys not reloaded"; return; }
		sleep 0.1
	done
}

# Rotation: k2 first, k1 kept; then k1 gone.
cat "$T/k2.line" "$T/k1.line" >"$T/storage.keys"
reload
sr send --port "$PS" --chat sealed --marker "$M1" --tag r -n 10 ||
    fail "after rotation (see above)"
[ "$(redis-cli -s "$REDIS_SOCK" --raw xrevrange 'racerd:{chat:sealed}:log' \
    + - count 1 | grep -c "$(printf '\001')k2:")" = 1 ] ||
    fail "the newest message is not sealed with k2"
sr history --port "$PS" --chat sealed --marker "$M1" --readable 110 ||
    fail "history across two keys (see above)"
ok "a new first key seals; both keys' messages read"

cp "$T/k2.line" "$T/storage.keys"
reload
sr history --port "$PS" --chat sealed --marker "$M1" --readable 10 \
    --sealed 100 --reason "unknown key k1" ||
    fail "history with k1 gone (see above)"
n=$(curl -s "http://127.0.0.1:$PS/metrics" |
    sed -n 's/^racerd_sealed_unreadable_total //p')
[ "${n:-0}" -ge 100 ] || fail "racerd_sealed_unreadable_total is ${n:-none}"
ok "messages of a removed key are reported, counted, and the rest served"

# Live: s seals with k2 only; l, on the same store, has k1 only.
cp "$T/k1.line" "$T/l.keys"
chmod 600 "$T/l.keys"
PL=$(free_port)
write_conf_as "$T/l.conf" "$PL" 2 l "redis = unix:$REDIS_SOCK" \
    "storage-key-file = $T/l.keys"
start_racerd "$T/l.conf" "$PL"
sr live --port "$PS" --port2 "$PL" --chat live --marker "$M1" -n 20 \
    --reason "unknown key k2" || fail "live delivery of k2 messages on l"
n=$(curl -s "http://127.0.0.1:$PL/metrics" |
    sed -n 's/^racerd_sealed_unreadable_total //p')
[ "${n:-0}" -ge 20 ] || fail "l's racerd_sealed_unreadable_total is ${n:-none}"
ok "live messages of a key this host lacks are reported, in order, and counted"

# One byte flipped in one stored body.
sr send --port "$PS" --chat tamper --marker "$M1" -n 3 ||
    fail "tamper chat (see above)"
sr tamper --port "$PS" --chat tamper --redis-sock "$REDIS_SOCK" \
    --victim 1 || fail "tamper (see above)"
ok "a tampered body is reported unreadable, its neighbours served"
finish
