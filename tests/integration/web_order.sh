#!/bin/sh
# SPDX-License-Identifier: ISC
# The chat page in headless Chromium: two pages (alice and bob, each in
# its own browser) join one chat, type 8 messages each with the keyboard
# (Enter sends), and both show the same 16 messages in the same order, as
# HTTP history has them, with sender and time, HTML shown as text.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need_browser
start_web 2
ok "racerd up with the page"
browser order || fail "two pages (see above)"
ok "two pages show the same messages in the same order"
finish
