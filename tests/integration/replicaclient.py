#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: store-sync-replicas (store_replicas.sh).
"""One primary with one replica; instance A has store-sync-replicas = 1,
instance B has 0.  While the replica runs, every message acknowledged
through A is on the replica when its echo arrives.  With the replica
killed, A acknowledges nothing (the sender gets "unavailable", nobody
sees the message) while B goes on acknowledging.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import check, note, sconnect, tag, until  # noqa: E402


def on_replica(port, chat):
    out = subprocess.run(["redis-cli", "-p", str(port), "XRANGE",
                          "racerd:{chat:%s}:log" % chat, "-", "+"],
                         capture_output=True, text=True, timeout=10)
    return {int(x.split("-")[0]) for x in out.stdout.split()
            if x.endswith("-0") and x[:-2].isdigit()}


async def acks(c, n, prefix):
    """Send n messages with ids, each after the last one's echo; returns
    the mean time to the echo in ms and the seqs."""
    total, seqs = 0.0, []
    for i in range(n):
        k = len(c.msgs)
        t0 = time.monotonic()
        await c.send_msg("%s %d" % (prefix, i), "%s-%d" % (prefix, i))
        if not check(await c.wait_msgs(k + 1, 10), "%s %d: no echo" %
                     (prefix, i)):
            break
        total += time.monotonic() - t0
        seqs.append(c.msgs[-1].get("seq"))
    return 1000 * total / max(len(seqs), 1), seqs


async def run(a):
    chat = "repl-" + tag()
    x = await sconnect(a.sync_port, chat, "user=ann")
    y = await sconnect(a.async_port, chat, "user=bob")
    ms, seqs = await acks(x, 20, "sync")
    have = on_replica(a.replica, chat)
    check(set(seqs) <= have, "acknowledged with store-sync-replicas = 1 but "
          "not on the replica: %r" % sorted(set(seqs) - have))
    ms0, seqs0 = await acks(y, 20, "async")
    note("with the replica up: echo after %.2f ms (store-sync-replicas = 1) "
         "and %.2f ms (0), mean of 20" % (ms, ms0))

    os.kill(a.replica_pid, signal.SIGKILL)
    await asyncio.sleep(0.5)
    k, ky = len(x.msgs), len(y.msgs)
    t0 = time.monotonic()
    await x.send_msg("without a replica", "lost-1")
    got = await until(lambda: any(o.get("type") == "error" for o in x.other),
                      10)
    took = time.monotonic() - t0
    err = [o for o in x.other if o.get("type") == "error"]
    check(got and err[0].get("code") == "unavailable" and
          err[0].get("id") == "lost-1",
          "no unavailable error for a message no replica took: %r" % err)
    await asyncio.sleep(1)
    check(len(x.msgs) == k and all(m.get("body") != "without a replica"
                                   for m in y.msgs[ky:]),
          "a message no replica took was delivered: %r / %r" %
          (x.msgs[k:], y.msgs[ky:]))
    note("replica killed: the sender got %r after %.1f s, nobody saw the "
         "message" % (err[0].get("code") if err else None, took))
    ms0, seqs0 = await acks(y, 5, "still")
    check(len(seqs0) == 5, "store-sync-replicas = 0 stopped acknowledging "
          "without a replica")
    await x.close()
    await y.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sync-port", type=int, required=True)
    p.add_argument("--async-port", type=int, required=True)
    p.add_argument("--replica", type=int, required=True)
    p.add_argument("--replica-pid", type=int, required=True)
    a = p.parse_args()
    asyncio.run(run(a))
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
