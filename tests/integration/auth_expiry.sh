#!/bin/sh
# SPDX-License-Identifier: ISC
# auth = token, expiry while connected: a token that expires 5 s after the
# join (exp 25 s ago, 30 s of leeway) is closed with 4001 within exp +
# leeway + 1 s; one refreshed with a later token ({"type":"refresh"},
# answered "refreshed") stays connected past its first expiry.  Refreshes
# with another sub, without the chat or expired are refused with error
# frames and change nothing.
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
write_conf "$T/racerd.conf" "$PORT" 2 "auth = token" \
    "auth-hmac-key-file = $T/hmac.keys"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with auth = token"

$PY "$top_srcdir/tests/integration/authclient.py" expiry --port "$PORT" \
    --short "$(tok --sub alice --chats 'team-*' --ttl -25s)" \
    --short2 "$(tok --sub alice --chats 'team-*' --ttl -25s)" \
    --long "$(tok --sub alice --chats team-1 --ttl 1h)" \
    --bob "$(tok --sub bob --chats 'team-*')" \
    --other-chat "$(tok --sub alice --chats other)" \
    --expired "$(tok --sub alice --chats 'team-*' --ttl -60s)" ||
    fail "expiry (see above)"
ok "expired token closed with 4001 in time; a refreshed one stays"
finish
