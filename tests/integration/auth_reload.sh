#!/bin/sh
# SPDX-License-Identifier: ISC
# auth = token configuration: racerd -t refuses a missing key file, a
# malformed line, a short HMAC key and auth = token without keys (naming
# file and line), and warns about a key file others may read.  Then the
# reload: the HMAC key file is replaced and the master gets SIGHUP; tokens
# of the old key are refused on new joins, tokens of the new key are
# accepted, the workers are not replaced and the connection made with the
# old key stays; a bad key file on HUP keeps the keys in force.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
RACERCTL=${RACERCTL:-$top_builddir/racerctl}

PORT=$(free_port)
"$RACERCTL" keygen hmac --kid k1 >"$T/hmac.keys" || fail "keygen"
"$RACERCTL" keygen hmac --kid k2 >"$T/new.keys" || fail "keygen"
chmod 600 "$T/hmac.keys" "$T/new.keys"

# racerd -t: errors with file and line, warnings.
check_t() {	# CONTENT MODE WANT-STATUS PATTERN
	printf '%s' "$1" >"$T/t.keys"
	chmod "$2" "$T/t.keys"
	write_conf "$T/t.conf" "$PORT" 1 "auth = token" \
	    "auth-hmac-key-file = $T/t.keys"
	"$RACERD" -t -c "$T/t.conf" >"$T/t.out" 2>&1
	st=$?
	[ "$st" = "$3" ] || fail "racerd -t on \"$1\": status $st, want $3"
	grep -q -- "$4" "$T/t.out" ||
	    fail "racerd -t on \"$1\": no \"$4\" in: $(cat "$T/t.out")"
}
check_t "$(cat "$T/hmac.keys")
" 600 0 "is valid"
check_t "$(cat "$T/hmac.keys")
" 644 0 "warning: auth-hmac-key-file $T/t.keys: mode 0644 is wider than 0640"
check_t "# keys
k1
" 600 1 "$T/t.keys:2: expected \"KID BASE64KEY\""
check_t "k1 c2hvcnQga2V5
" 600 1 "$T/t.keys:1: the HMAC key is shorter than 32 bytes"
check_t "k1 not*base64
" 600 1 "$T/t.keys:1: the key is not base64"
rm -f "$T/t.keys"
"$RACERD" -t -c "$T/t.conf" >"$T/t.out" 2>&1 &&
    fail "racerd -t with a missing key file passed"
grep -q "auth-hmac-key-file $T/t.keys: No such file" "$T/t.out" ||
    fail "missing key file: $(cat "$T/t.out")"
write_conf "$T/t.conf" "$PORT" 1 "auth = token"
"$RACERD" -t -c "$T/t.conf" >"$T/t.out" 2>&1 &&
    fail "racerd -t with auth = token and no key file passed"
grep -q "auth = token needs auth-hmac-key-file" "$T/t.out" ||
    fail "no key file: $(cat "$T/t.out")"
write_conf "$T/t.conf" "$PORT" 1 "auth = tokens"
"$RACERD" -t -c "$T/t.conf" >"$T/t.out" 2>&1 &&
    fail "racerd -t with auth = tokens passed"
grep -q "t.conf:9: auth: \"tokens\" is not none or token" "$T/t.out" ||
    fail "auth = tokens: $(cat "$T/t.out")"
ok "racerd -t: key file errors with file:line, mode warning"

write_conf "$T/racerd.conf" "$PORT" 2 "auth = token" \
    "auth-hmac-key-file = $T/hmac.keys"
start_racerd "$T/racerd.conf" "$PORT"
grep -q "auth = none on a non-loopback" "$T/racerd.log" &&
    fail "auth warning on a loopback listen"
BEFORE=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
ok "racerd up with key k1"

$PY "$top_srcdir/tests/integration/authclient.py" reload --port "$PORT" \
    --old "$("$RACERCTL" token --key-file "$T/hmac.keys" --sub alice \
	--chats 'team-*')" \
    --new "$("$RACERCTL" token --key-file "$T/new.keys" --sub bob \
	--chats 'team-*')" \
    --keys "$T/hmac.keys" --new-keys "$T/new.keys" --log "$T/racerd.log" \
    --master "$MASTER" --workers 2 || fail "reload (see above)"
AFTER=$(worker_pids "$MASTER" | sort | tr '\n' ' ')
[ "$BEFORE" = "$AFTER" ] ||
    fail "workers replaced by a key reload: $BEFORE -> $AFTER"
grep -q "reload failed: $T/hmac.keys:1: the HMAC key is shorter" \
    "$T/racerd.log" || fail "bad key file on HUP: reason not logged"
ok "HUP: new key in, old key out, connections and workers kept"
finish
