#!/bin/sh
# SPDX-License-Identifier: ISC
# Presence is written at most every presence-interval ms per chat (1000
# here, 2 workers): a join after a quiet interval reaches a watcher at
# once, joins that follow within the interval come later and together,
# each once and in order; held joins go out before a message, which is
# not held; a member welcomed while presence is held gets only what came
# after its welcome.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 2 "presence-interval = 1000"
start_racerd "$T/racerd.conf" "$PORT"
ok "racerd up, presence-interval 1000"

timeout -k 3 60 $PY "$top_srcdir/tests/integration/presence_batch.py" \
    --port "$PORT" --interval 1000 --timeout 50 ||
    fail "presence batching (see above)"
ok "presence held within the interval, in order, before messages"
finish
