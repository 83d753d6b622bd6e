#!/bin/sh
# SPDX-License-Identifier: ISC
# Idempotent sends: one id sent twice (back to back, and again later) is
# stored once; both echoes carry the one seq and the other member gets it
# once. Another user's message with the same id is a message of its own.
# Across a resume: a message stored just before the cut is replayed, and
# sending it again with its id is answered with the original seq. A POST
# repeating an id gets the same seq. History holds each message once.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
echo "dedup-test-key-0123456789-$$" >"$T/keys"
write_conf "$T/racerd.conf" "$PORT" 2 "api-key-file = $T/keys" \
    "reconnect-window = 30" "dedup-window = 60"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up"

WSC_TIMEOUT=30 wsclient dedup --port "$PORT" --key-file "$T/keys" \
    --timeout 25 || fail "idempotent sends (see above)"
ok "repeated ids stored once, answered with the original seq"
finish
