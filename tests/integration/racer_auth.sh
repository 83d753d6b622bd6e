#!/bin/sh
# SPDX-License-Identifier: ISC
# racer with tokens: --token-file is sent as ?token=; a refused join (401
# without a valid token, 403 on a chat not granted) and a close with 4001
# are one line on stderr and exit 4; a read-only token's message is
# refused (exit 4); a --token-file rewritten before the expiry is sent in
# a refresh and the connection outlives the first token.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
RACERCTL=${RACERCTL:-$top_builddir/racerctl}

"$RACERCTL" keygen hmac --kid k1 >"$T/hmac.keys" || fail "keygen"
chmod 600 "$T/hmac.keys"
tok() {
	"$RACERCTL" token --key-file "$T/hmac.keys" "$@" ||
	    fail "racerctl token $*"
}
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1 "auth = token" \
    "auth-hmac-key-file = $T/hmac.keys"
start_racerd "$T/racerd.conf" "$PORT"
URL=ws://127.0.0.1:$PORT
ok "racerd up with auth = token"

# Refusals: exit 4 and one line saying why.
expect4() {	# WHAT PATTERN racer-args...
	what=$1 pat=$2
	shift 2
	timeout 20 "$RACER" "$@" >"$T/r.out" 2>"$T/r.err" </dev/null
	st=$?
	[ "$st" = 4 ] || fail "$what: exit $st, want 4 ($(cat "$T/r.err"))"
	[ "$(wc -l <"$T/r.err")" = 1 ] ||
	    fail "$what: not one line on stderr: $(cat "$T/r.err")"
	grep -q -- "$pat" "$T/r.err" ||
	    fail "$what: no \"$pat\" in: $(cat "$T/r.err")"
}
expect4 "no token" "a token is required" -m hi "$URL" team-1
tok --sub alice --chats 'team-*' --ttl -60s >"$T/expired.jwt"
expect4 "expired token" "token expired" -K "$T/expired.jwt" -m hi \
    "$URL" team-1
tok --sub alice --chats 'team-*' >"$T/alice.jwt"
expect4 "chat not granted" "does not grant this chat" -K "$T/alice.jwt" \
    -m hi "$URL" other
tok --sub carol --chats 'team-*' --rights read >"$T/ro.jwt"
expect4 "read-only send" "no write right" -K "$T/ro.jwt" -m hi "$URL" team-1
"$RACER" -K "$T/alice.jwt" -m "hello" "$URL" team-1 ||
    fail "alice with a good token could not send"
ok "racer: 401/403/forbidden are one line and exit 4; a good token sends"

# 4001: a token that expires 5 s after the join, never refreshed.
tok --sub bob --chats 'team-*' --ttl -25s >"$T/short.jwt"
start_racer short -l -K "$T/short.jwt" "$URL" team-1
exec 8>"$T/short.in"
wait_child "$RACER_PID" 15 || fail "racer still running after its expiry"
[ "${STATUS:-}" = 4 ] || fail "expired racer: exit ${STATUS:-?}, want 4"
grep -q "closed by the server: 4001 token expired" "$T/short.err" ||
    fail "expired racer said: $(cat "$T/short.err")"
exec 8>&-
ok "racer closed with 4001: one line, exit 4"

# Refresh: the token file is rewritten before the expiry.
tok --sub dave --chats 'team-*' --ttl -25s >"$T/dave.jwt"
start_racer dave -v -l -K "$T/dave.jwt" "$URL" team-1
exec 8>"$T/dave.in"
sleep 1
tok --sub dave --chats 'team-*' --ttl 1h >"$T/dave.new"
mv "$T/dave.new" "$T/dave.jwt"
wait_lines "$T/dave.err" "token refreshed" 1 5 ||
    fail "racer did not refresh: $(cat "$T/dave.err")"
sleep 6
kill -0 "$RACER_PID" 2>/dev/null ||
    fail "refreshed racer gone: $(cat "$T/dave.err")"
"$RACER" -K "$T/alice.jwt" -m "after the expiry" "$URL" team-1 ||
    fail "send failed"
wait_lines "$T/dave.out" "after the expiry" 1 5 ||
    fail "refreshed racer did not receive: $(cat "$T/dave.out")"
exec 8>&-
ok "racer refreshed from --token-file and outlived the first token"
finish
