#!/bin/sh
# SPDX-License-Identifier: ISC
# racer.js unit tests under Node's test runner (the library needs no
# DOM): close-code classes, back-off and jitter, resume with session and
# last, re-sends with the same id, gap recovery from history, token
# refresh, and end-to-end sealing against a vector made by PyNaCl
# (python3-nacl); what racer.js seals opens in PyNaCl.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need node
$PY -c 'import nacl.bindings, nacl.pwhash' 2>/dev/null || need python3-nacl
E2E="$PY $top_srcdir/tests/integration/e2e.py"

TEXT=$(printf 'sealed by PyNaCl for racer.js: caf\303\251')
SEALED=$($E2E seal 'web secret' web.lib "$TEXT")
E2E_VECTOR=$($PY -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \
    'web secret' web.lib "$TEXT" "$SEALED")
export E2E_VECTOR
timeout -k 5 120 node --test "$top_srcdir/tests/web/racer.test.mjs" >"$T/node.out" 2>&1 ||
    fail "node --test: $(grep -B2 -A12 '^not ok' "$T/node.out")"
grep -q '^# pass [1-9]' "$T/node.out" || fail "no test passed: $(cat "$T/node.out")"
grep '^# \(tests\|pass\|fail\)' "$T/node.out"
ok "racer.js unit tests"

BACK=$(sed -n 's/.*E2E_SEALED="\(e2e1:[^"]*\)".*/\1/p' "$T/node.out" | head -1)
[ -n "$BACK" ] || fail "racer.js did not seal the vector's text"
[ "$($E2E open 'web secret' web.lib "$BACK")" = "$TEXT" ] ||
    fail "PyNaCl cannot open what racer.js sealed: $BACK"
ok "racer.js opens PyNaCl's body and PyNaCl opens racer.js's"
finish
