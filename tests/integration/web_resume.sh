#!/bin/sh
# SPDX-License-Identifier: ISC
# A worker is killed -9 under an open page (2 workers; the page's worker
# is the one the registry counts its connection on).  A racer, on the
# other worker when the kernel lets it, sends 30 messages at once.  The
# page shows "resuming", comes back "connected", shows each of the 30
# once and in order after a "Reconnected -- N missed messages recovered"
# marker, and history holds each once.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need_browser
start_web 2 "session-lease = 5"
ok "racerd up with 2 workers"
browser kill || fail "resume after a worker was killed (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "master died"
ok "the page resumed and shows every message once, in order"
finish
