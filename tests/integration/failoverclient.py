#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: a store failover (store_sentinel.sh).
"""A sender and a watcher in one chat; the sender sends messages with ids,
one at a time, each until it is acknowledged (its echo), resending with
the same id after an "unavailable" error or a lost connection (resuming
its session).  After `before` acknowledged messages the primary is killed
with -9 and the file --flag is made; once `after` more are acknowledged,
history must hold every acknowledged message exactly once.

Without --primary the client does not kill: it sends (paced) until the
flag appears, then `after` more.  With --may-lose, acknowledged messages
missing from history are counted and reported, not failed: the store's
asynchronous replication may lose what the replicas had not received
(store-sync-replicas = 0).  A message twice is always a failure.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import (check, fail, fetch_history, note, rq, sconnect,  # noqa: E402,E501
                   tag, until)


async def connect(port, chat, prev):
    """Join, or resume prev's session; retried while the store fails over."""
    end = time.monotonic() + 30
    err = None
    while time.monotonic() < end:
        try:
            if prev is None:
                return await sconnect(port, chat, "user=ann")
            return await sconnect(port, chat, rq(prev.welcome["session"],
                                                 prev.last(), "ann"))
        except Exception as e:  # noqa: BLE001 - the store is failing over
            err = e
            await asyncio.sleep(0.2)
    fail("no join or resume within 30 s: %r" % (err,))
    return None


async def run(a):
    chat = "fo-" + tag()
    c = await connect(a.port, chat, None)
    acked = {}          # id -> seq
    resent = 0
    why = None
    t_kill = t_back = None
    i = 0
    deadline = time.monotonic() + 60
    n_after = 0
    while (t_kill is None or n_after < a.after) and \
            time.monotonic() < deadline:
        if t_kill is None and a.primary and len(acked) >= a.before:
            os.kill(a.primary, signal.SIGKILL)
            t_kill = time.monotonic()
            open(a.flag, "w").close()
        elif t_kill is None and not a.primary:
            if os.path.exists(a.flag):
                t_kill = time.monotonic()
            else:
                await asyncio.sleep(0.01)
        mid, body = "m-%d" % i, "message %d" % i
        while mid not in acked and time.monotonic() < deadline:
            if c is None or c.closed is not None:
                c = await connect(a.port, chat, c)
                if c is None:
                    break
            k, nerr = len(c.msgs), len(c.other)
            try:
                await c.send_msg(body, mid)
            except Exception as e:  # noqa: BLE001 - the connection went away
                why = e
                await asyncio.sleep(0.1)
                continue
            await until(lambda: any(m.get("id") == mid for m in c.msgs[k:])
                        or len(c.other) > nerr or c.closed is not None, 5)
            got = [m for m in c.msgs[k:] if m.get("id") == mid]
            if got:
                acked[mid] = got[0].get("seq")
                if t_kill is not None:
                    n_after += 1
                if t_kill is not None and t_back is None:
                    t_back = time.monotonic()
            else:
                resent += 1
                why = c.other[nerr:] or c.closed
                await asyncio.sleep(0.1)
        i += 1
    n_before = len(acked) - n_after
    check(t_kill is not None and n_after >= a.after, "only %d of %d "
          "messages acknowledged after the kill within 60 s (the last "
          "refusal: %r)" % (n_after, a.after, why))
    if t_back is not None:
        note("first acknowledgement %.1f s after the primary was killed; "
             "%d sends repeated meanwhile" % (t_back - t_kill, resent))
    # Each worker reconnects on its own: one may still be on its way.
    _, _, env = fetch_history(a.port, chat, wait503=10)
    ids = collections.Counter(m.get("id") for m in env)
    lost = sorted(m for m in acked if ids[m] == 0)
    dup = sorted(m for m in acked if ids[m] > 1)
    if not a.may_lose:
        check(not lost, "acknowledged but not in history: %r" % lost[:10])
    check(not dup, "in history more than once: %r" % dup[:10])
    note("%s: %d messages acknowledged (%d before the kill): %d in "
         "history, %d lost, %d twice" % (a.name, len(acked), n_before,
                                         len(acked) - len(lost), len(lost),
                                         len(dup)))
    if c is not None:
        await c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--primary", type=int, default=0)
    p.add_argument("--flag", required=True)
    p.add_argument("--may-lose", action="store_true")
    p.add_argument("--name", default="store-sync-replicas = 1")
    p.add_argument("--before", type=int, default=30)
    p.add_argument("--after", type=int, default=30)
    a = p.parse_args()
    asyncio.run(run(a))
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
