#!/bin/sh
# SPDX-License-Identifier: ISC
# Take-over: a resume of a session whose connection is still open closes
# the old connection with 4009 and the new one replays and goes on. Then
# ten times two resumes of one session at once (the holder connected or
# dropped): exactly one stays open; each loser is closed with 4009 or
# refused with a 4xx; the connected holder is closed with 4009; the
# winner replayed complete:true and receives the next message.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "reconnect-window = 30"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up"

WSC_TIMEOUT=40 wsclient takeover --port "$PORT" --rounds 10 --timeout 35 ||
    fail "take-over (see above)"
ok "one session, one connection: the others closed with 4009"
finish
