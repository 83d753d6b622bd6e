#!/bin/sh
# SPDX-License-Identifier: ISC
# End-to-end encryption in the page (libsodium.js, loaded only then):
# alice's and bob's pages share a secret and read each other; carol's,
# with another secret, shows "[encrypted message it cannot read]"; HTTP
# history holds only e2e1: bodies; racer(1) with the secret (through
# RACER_E2E_SECRET) reads the browsers' messages, and they read its.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need_browser
start_web 2
ok "racerd up"
browser e2e || fail "end-to-end in the page (see above)"
ok "pages and racer share end-to-end encrypted messages"
finish
