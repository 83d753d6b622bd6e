#!/bin/sh
# SPDX-License-Identifier: ISC
# A slow member: it joins on a raw socket with a small receive buffer and
# reads nothing more while 10 MiB (160 messages of 64 KiB) are sent to its
# chat (max-outbound-bytes = 1 MiB, max-message-size = 128 KiB). It is
# closed as too slow (racerd_slow_closes_total +1, the log names it; a
# 4208 close frame if it ever gets one), what it did get is seq 1..k
# without a hole, and its session stays resumable. The RSS of the worker
# serving it grows by less than 2 x max-outbound-bytes; the other members
# (on both workers) receive all 160 intact.
# The 4208 close frame is only looked for (it is queued behind the full
# queue, and the connection is dropped a second later); to require it of a
# member that starts reading 3 s after the flood:
#   SLOW_ARGS="--read-delay 3 --require-frame" tests/integration/res_slow.sh
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
: "${REGDUMP:=$top_builddir/tests/regdump}"

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "max-outbound-bytes = 1048576" \
    "max-message-size = 131072"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 2 workers, max-outbound-bytes 1 MiB"

# Under ASan the worker's RSS is the sanitizer's, not racerd's.
SAN=""
ldd "$RACERD" 2>/dev/null | grep -q libasan && SAN=--sanitized
WSC_TIMEOUT=40 wsclient slow --port "$PORT" --regdump "$REGDUMP" \
    --segment "/racerd-$INSTANCE" --log "$T/racerd.log" \
    --max-outbound 1048576 --total 10485760 --size 65536 --members 3 \
    ${SLOW_ARGS:-} $SAN --timeout 35 || fail "slow member (see above)"
kill -0 "$MASTER" 2>/dev/null || fail "racerd died"
ok "slow member closed, worker memory bounded, others got everything"
finish
