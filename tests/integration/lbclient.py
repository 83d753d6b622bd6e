#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: hosts behind nginx (hosts_balancer.sh).
"""Clients join one chat through nginx in front of three racerd hosts; one
host is stopped with TERM; its clients, closed with 4200, resume through
nginx on the others; every client ends with every message once, in order.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import (check, check_resume, describe_seqs, fail, note, rq,  # noqa: E402,E501
                   sconnect, tag, until)


async def run(a):
    chat = "lb-" + tag()
    users = ["u%d" % i for i in range(a.clients)]
    cs = {}
    for u in users:
        cs[u] = await sconnect(a.port, chat, "user=%s" % u)
    hosts = {}
    for c in cs.values():
        hosts[c.welcome.get("instance", c.worker)] = 1
    sender = cs[users[0]]
    for i in range(a.count):
        await sender.send_msg("before %d" % i, "b-%d" % i)
    ok = [await c.wait_msgs(a.count, 15) for c in cs.values()]
    check(all(ok), "before the stop: %d of %d clients got %d messages" %
          (sum(ok), len(ok), a.count))

    os.kill(a.victim, signal.SIGTERM)
    await until(lambda: sum(1 for c in cs.values() if c.closed) > 0, 10)
    await asyncio.sleep(1)
    gone = [u for u, c in cs.items() if c.closed is not None]
    codes = {cs[u].closed[0] for u in gone}
    check(gone and codes == {4200}, "clients of the stopped host: %d, "
          "closed with %r (expected 4200)" % (len(gone), codes))
    for u in gone:
        c = cs[u]
        last = c.last()
        r = None
        for _ in range(20):
            try:
                r = await sconnect(a.port, chat, rq(c.welcome["session"],
                                                    last, u))
                break
            except Exception as e:  # noqa: BLE001 - retried, then reported
                err = e
                await asyncio.sleep(0.25)
        if r is None:
            fail("%s: no resume through the balancer: %r" % (u, err))
            continue
        await until(lambda: r.resumed is not None, 10)
        check_resume(r, last, True, "%s: resume through the balancer" % u)
        r.before = [m.get("seq") for m in c.msgs]
        cs[u] = r
    note("%d of %d clients were on the stopped host; they resumed "
         "through nginx" % (len(gone), len(cs)))
    if users[0] in gone:
        sender = cs[users[0]]
    for i in range(a.count):
        await sender.send_msg("after %d" % i, "a-%d" % i)
    total = 2 * a.count
    for u, c in cs.items():
        before = getattr(c, "before", [])
        seqs = before + [m.get("seq") for m in c.msgs]
        await until(lambda: len(before) + len(c.msgs) >= total, 15)
        seqs = before + [m.get("seq") for m in c.msgs]
        why = describe_seqs(seqs, 1, total)
        check(why is None, "%s: %s" % (u, why))
    note("every client has seq 1..%d once, in order" % total)
    for c in cs.values():
        await c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--victim", type=int, required=True)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--count", type=int, default=20)
    a = p.parse_args()
    asyncio.run(run(a))
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
