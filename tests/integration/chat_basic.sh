#!/bin/sh
# SPDX-License-Identifier: ISC
# Chat basics: two members of one chat exchange messages, each echo
# carrying its seq (1, 2, ...), both see one order; a member of another
# chat hears none of it and has its own seq; a late joiner's welcome names
# the latest seq and it receives only what follows; welcome fields and
# types; X-Racerd-Worker on the 101.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up"

wsclient basic --port "$PORT" --timeout 40 || fail "basic chat (see above)"
ok "two members, one bystander, one late joiner"
finish
