#!/bin/sh
# SPDX-License-Identifier: ISC
# Recovery is all or nothing. Instance a (history-size 50): a client 100
# messages behind, its position trimmed out of history, resumes with
# complete:false and nothing replayed, then gets live traffic; 5 behind is
# replayed in full. Instance b (recovery-max 20): exactly 20 missed are
# replayed, 21 give complete:false. Then the external store is flushed
# (FLUSHALL): the session is gone (401), the next message has seq 1 in a
# new epoch, a join with ?since=5&epoch=OLD gets complete:false and no
# replay, ?since=0&epoch=NEW gets complete:true; a chat with a member
# connected through the flush still acknowledges its next message.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

start_redis
P1=$(free_port)
P2=$(free_port)
write_conf_as "$T/a.conf" "$P1" 2 a "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 30" "history-size = 50"
write_conf_as "$T/b.conf" "$P2" 2 b "redis = unix:$REDIS_SOCK" \
    "reconnect-window = 30" "recovery-max = 20"
start_racerd "$T/a.conf" "$P1"
start_racerd "$T/b.conf" "$P2"
ok "racerd a (history-size 50) and b (recovery-max 20) on one store"

WSC_TIMEOUT=40 wsclient incomplete --port "$P1" --port-b "$P2" \
    --history-size 50 --recovery-max 20 --trim-missed 100 \
    --redis-sock "$REDIS_SOCK" --timeout 35 ||
    fail "incomplete recovery (see above)"
ok "trimmed, over recovery-max and flushed positions give complete:false"
finish
