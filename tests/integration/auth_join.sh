#!/bin/sh
# SPDX-License-Identifier: ISC
# auth = token: a token for team-* joins team-1 (101, as its sub) and is
# refused on other (403); no token, an expired one, a bad signature or an
# unknown key: 401; ?user=bob with sub alice: 403.  A read-only token gets
# "forbidden" for msg and history frames and keeps its connection.  HTTP
# history without a token: 401, without the history right: 403; presence
# needs read; POST takes an API key or a token with write (from = sub).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
RACERCTL=${RACERCTL:-$top_builddir/racerctl}

"$RACERCTL" keygen hmac --kid k1 >"$T/hmac.keys" || fail "keygen"
"$RACERCTL" keygen hmac --kid k2 >"$T/other.keys" || fail "keygen"
chmod 600 "$T/hmac.keys"
echo "an-api-key-of-the-backend" >"$T/api.keys"
tok() {
	"$RACERCTL" token --key-file "$T/hmac.keys" "$@" ||
	    fail "racerctl token $*"
}
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "auth = token" \
    "auth-hmac-key-file = $T/hmac.keys" "api-key-file = $T/api.keys"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with auth = token"

$PY "$top_srcdir/tests/integration/authclient.py" join --port "$PORT" \
    --team "$(tok --sub alice --chats 'team-*')" \
    --expired "$(tok --sub alice --chats 'team-*' --ttl -60s)" \
    --other-key "$("$RACERCTL" token --key-file "$T/other.keys" \
	--sub alice --chats 'team-*')" \
    --readonly "$(tok --sub carol --chats 'team-*' --rights read)" \
    --nohistory "$(tok --sub dave --chats 'team-*' --rights read,write)" \
    --api-key "an-api-key-of-the-backend" ||
    fail "joins, rights and HTTP (see above)"
ok "joins, refusals, rights, HTTP history, presence and POST"
grep -q "eyJ" "$T/racerd.log" && fail "a token appears in the log"
ok "no token in the log"
finish
