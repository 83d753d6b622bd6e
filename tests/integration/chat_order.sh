#!/bin/sh
# SPDX-License-Identifier: ISC
# One order for everyone: 4 workers, 40 clients spread over them (at
# least 3 distinct X-Racerd-Worker values), 10 senders x 100 messages sent
# at once: every client receives all 1,000, seq 1..1000 without gaps or
# duplicates, and every client's (seq, id) list equals the first one's.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 4
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up with 4 workers"

wsclient fanout --ports "$PORT" --clients 40 --senders 10 --count 100 \
    --stagger 0.002 --min-workers 3 --deliver-timeout 20 --timeout 45 ||
    fail "fan-out over 4 workers (see above)"
ok "40 clients on >= 3 workers saw 1,000 messages in one order"
finish
