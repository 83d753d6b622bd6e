#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: publishes batched per loop turn (chat_batch.sh).
"""Three chats, each with a member (python3-websockets) and a sender that
writes its 100 messages in one write.  Every member must see its chat's
100 messages once, with seqs 1..100 in order, history must hold them, and
the store must have run publish.lua far fewer times than there were
messages (one call carries what a loop turn received).  Then a message
that the store refuses fails alone: the others of its call are
acknowledged.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import (check, fetch_history, frame, note, sconnect,  # noqa
                   tag, ws_open)

N = 100
CHATS = 3


def evalsha_calls(sock):
    out = subprocess.run(["redis-cli", "-s", sock, "INFO", "commandstats"],
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            for f in line.split(":", 1)[1].split(","):
                k, v = f.split("=")
                if k == "calls":
                    return int(v)
    return 0


async def run(a):
    t = tag()
    chats = ["batch-%s-%d" % (t, i) for i in range(CHATS)]
    members = [await sconnect(a.port, c, "user=m%d" % i)
               for i, c in enumerate(chats)]
    senders = [ws_open(a.port, c, "s%d" % i)[0] for i, c in enumerate(chats)]
    bursts = []
    for i in range(CHATS):
        bursts.append(b"".join(
            frame(1, json.dumps({"type": "msg", "id": "b%d-%d" % (i, k),
                                 "body": "burst %d" % k}))
            for k in range(N)))
    subprocess.run(["redis-cli", "-s", a.redis, "CONFIG", "RESETSTAT"],
                   capture_output=True, timeout=10)
    for r, b in zip(senders, bursts):
        r.send(b)
    for i, m in enumerate(members):
        if not check(await m.wait_msgs(N, 20), "chat %d: the member has "
                     "%d of %d messages" % (i, len(m.msgs), N)):
            continue
        seqs = [x.get("seq") for x in m.msgs]
        check(seqs == list(range(1, N + 1)), "chat %d: seqs %r" %
              (i, seqs[:10]))
        ids = [x.get("id") for x in m.msgs]
        check(ids == ["b%d-%d" % (i, k) for k in range(N)],
              "chat %d: ids out of order: %r" % (i, ids[:10]))
    calls = evalsha_calls(a.redis)
    note("%d messages in %d chats: %d EVALSHA calls" %
         (N * CHATS, CHATS, calls))
    check(0 < calls <= N * CHATS // 10, "%d EVALSHA calls for %d messages: "
          "publishes are not batched" % (calls, N * CHATS))
    for i, c in enumerate(chats):
        _, _, env = fetch_history(a.port, c)
        check([x.get("id") for x in env] == ["b%d-%d" % (i, k)
                                             for k in range(N)],
              "chat %d: history holds %d of %d" % (i, len(env), N))
    # A message the store refuses fails alone: with chat 0's seq set back
    # to 98, the XADDs of 99 and 100 are refused (the stream has them) and
    # 101 and 102, in the same call, go through.
    subprocess.run(["redis-cli", "-s", a.redis, "SET",
                    "racerd:{chat:%s}:seq" % chats[0], "98"],
                   capture_output=True, timeout=10)
    k = len(members[0].msgs)
    senders[0].send(b"".join(
        frame(1, json.dumps({"type": "msg", "id": "x-%d" % j,
                             "body": "again %d" % j})) for j in range(4)))
    errors, echoes = [], []
    try:
        while len(errors) + len(echoes) < 4:
            _, _, op, data = senders[0].read_frame(10)
            f = json.loads(data) if op == 1 else {}
            if not str(f.get("id", "")).startswith("x-"):
                continue        # the burst's echoes, unread until now
            if f.get("type") == "error":
                errors.append(f.get("id"))
            elif f.get("type") == "msg":
                echoes.append((f.get("id"), f.get("seq")))
    except Exception as e:  # noqa: BLE001
        check(False, "reading the sender's answers: %r" % e)
    check(errors == ["x-0", "x-1"], "refused: %r, not x-0 and x-1" % errors)
    check(echoes == [("x-2", 101), ("x-3", 102)],
          "acknowledged: %r, not x-2 and x-3 as 101 and 102" % echoes)
    check(await members[0].wait_msgs(k + 2, 10), "the member got %d of 2" %
          (len(members[0].msgs) - k))
    note("in one call, 2 messages refused by the store and 2 accepted: "
         "refused %r, acknowledged %r" % (errors, echoes))
    for r in senders:
        r.close()
    for m in members:
        await m.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis", required=True)
    a = p.parse_args()
    wslib.run_async(run(a), 50)
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
