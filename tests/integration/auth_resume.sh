#!/bin/sh
# SPDX-License-Identifier: ISC
# auth = token and sessions: a session resumed with a token of another sub
# is refused with 403 and the connection holding it is untouched; with an
# expired token or none, 401.  ?since= joins need a token too (with the
# history right: they read history back), and the session's own user
# resumes it (the holder then gets 4009).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
RACERCTL=${RACERCTL:-$top_builddir/racerctl}

"$RACERCTL" keygen ed25519 --kid e1 --out "$T/e1.key" >"$T/ed.keys" \
    2>/dev/null || fail "keygen"
tok() {
	"$RACERCTL" token --key-file "$T/e1.key" "$@" ||
	    fail "racerctl token $*"
}
PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "auth = token" \
    "auth-ed25519-key-file = $T/ed.keys" "reconnect-window = 30"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with auth = token (EdDSA)"

$PY "$top_srcdir/tests/integration/authclient.py" resume --port "$PORT" \
    --alice "$(tok --sub alice --chats 'team-*')" \
    --bob "$(tok --sub bob --chats 'team-*')" \
    --expired "$(tok --sub alice --chats 'team-*' --ttl -31s)" \
    --nohistory "$(tok --sub alice --chats 'team-*' --rights read,write)" ||
    fail "resume (see above)"
ok "resume: another sub 403, expired 401, holder untouched"
finish
