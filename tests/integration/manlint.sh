#!/bin/sh
# SPDX-License-Identifier: ISC
# The man pages are clean under mandoc -Tlint.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need mandoc
for m in "$top_srcdir"/man/*.[0-9]; do
	out=$(mandoc -Tlint -W warning "$m" 2>&1)
	[ -z "$out" ] || fail "$m: $out"
done
finish
