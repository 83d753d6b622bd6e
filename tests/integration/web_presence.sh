#!/bin/sh
# SPDX-License-Identifier: ISC
# Presence in the chat page: alice's page lists only her; bob's page
# joins and appears in her list (count 2), and he sees both; bob leaves
# (the Leave button, closing with 1000) and is gone from her list.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need_browser
start_web 2
ok "racerd up"
browser presence || fail "presence (see above)"
ok "a second page joining and leaving shows in the first's list"
finish
