#!/bin/sh
# SPDX-License-Identifier: ISC
# "Load older" in the chat page: 500 messages (m1..m500, sent by racer)
# are paged back from the last 50 shown on joining, with the keyboard
# (Enter on the button), until the page says it is the beginning; the
# page then shows seqs 1..500 once each, in order, with their bodies.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need_browser
start_web 1
i=1
while [ "$i" -le 500 ]; do
	echo "m$i"
	i=$((i + 1))
done | timeout 60 "$RACER" -u filler --send - "ws://127.0.0.1:$PORT" \
    web-older || fail "racer could not send 500 messages"
ok "500 messages in history"
browser older --chat web-older --count 500 || fail "load older (see above)"
ok "load older paged back through 500 messages without a gap"
finish
