#!/bin/sh
# SPDX-License-Identifier: ISC
# The publishing API against hostile clients: the key is checked before the
# body is read, Expect: 100-continue is answered, ids with control
# characters are refused, and a key-file line too long for the reader
# stops racerd with FILE:LINE instead of becoming two keys.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

HC="$top_srcdir/tests/integration/hardclient.py"
KEY="hard-api-key-0123456789-$$"

# A 1,500-character key line: refused, with its file and line.
port=$(free_port)
{ echo "# keys"; head -c 1500 /dev/zero | tr '\0' K; echo; } >"$T/long"
write_conf "$T/long.conf" "$port" 1 "api-key-file = $T/long"
if "$RACERD" -t -c "$T/long.conf" >"$T/long.out" 2>&1; then
	fail "a 1,500-character key line was accepted"
fi
grep -q "$T/long:2: line longer than" "$T/long.out" ||
    fail "no FILE:LINE for the long key line: $(cat "$T/long.out")"
ok "a key line over 1,022 characters is an error with its line"

start_redis
echo "$KEY" >"$T/keys"
write_conf "$T/racerd.conf" "$port" 1 "redis = unix:$REDIS_SOCK" \
    "api-key-file = $T/keys"
start_racerd "$T/racerd.conf" "$port"

timeout -k 3 60 $PY "$HC" api --port "$port" --key "$KEY" ||
    fail "API requests"
ok "key before body, Expect: 100-continue, ids without control characters"

finish
