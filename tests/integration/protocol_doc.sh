#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd-protocol(7) cannot go stale silently: every frame type, error
# code, close code, HTTP status, query parameter, JSON member and presence
# event that the daemon's source can emit or accept is documented in it
# (tests/integration/doccheck.py reads both).
. "${top_srcdir:-.}/tests/integration/lib.sh"

$PY "$top_srcdir/tests/integration/doccheck.py" protocol "$top_srcdir/src" \
    "$top_srcdir/man/racerd-protocol.7" >"$T/out" 2>&1 ||
    fail "$(grep -v '^#' "$T/out")"
grep '^#' "$T/out"
ok "every code the source can emit is in racerd-protocol(7)"
finish
