#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd -h, racer -h and racerctl -h print the options of the SYNOPSIS of
# their manual pages, and each page's SYNOPSIS has every option it
# describes (tests/integration/doccheck.py compares them).
. "${top_srcdir:-.}/tests/integration/lib.sh"
: "${RACER:=$top_builddir/racer}"
: "${RACERCTL:=$top_builddir/racerctl}"

for pair in "$RACERD:racerd.8" "$RACER:racer.1" "$RACERCTL:racerctl.8"; do
	prog=${pair%:*} page=${pair##*:}
	$PY "$top_srcdir/tests/integration/doccheck.py" usage "$prog" \
	    "$top_srcdir/man/$page" >"$T/out" 2>&1 ||
	    fail "$(grep -v '^#' "$T/out")"
	grep '^#' "$T/out"
	ok "$(basename "$prog") -h matches the SYNOPSIS of $page"
done
finish
