#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: chats spread over store shards (store_shards.sh).
"""Two racerd instances share three redis-servers as shards.

Every chat's keys and channel must be on the one shard that jump
consistent hash of the FNV-1a 64-bit hash of its id names (computed here
independently of racerd); chat, history and resume work through either
instance; after one shard is killed its chats are refused with 503,
/healthz names it, and the chats of the other shards go on.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import (Refused, check, check_resume, fail, fetch_history,  # noqa: E402,E501
                   http_get, metric, note, rq, sconnect, tag, until)


def fnv1a64(data):
    h = 14695981039346656037
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def jump(key, n):
    """Lamping and Veach's jump consistent hash of a 64-bit key."""
    b, j = -1, 0
    while j < n:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(chat, n):
    return jump(fnv1a64(chat.encode()), n)


def redis_cli(sock, *args):
    out = subprocess.run(["redis-cli", "-s", sock] + list(args),
                         capture_output=True, text=True, timeout=20)
    return out.stdout.splitlines()


def chats_in(lines, prefix="racerd:{chat:"):
    """The chat ids named by keys or channels racerd:{chat:ID}..."""
    found = set()
    for k in lines:
        if k.startswith(prefix) and "}" in k:
            found.add(k[len(prefix):k.index("}")])
    return found


async def pair(a, chat):
    """A member on each instance; one message from each, in one order."""
    x = await sconnect(a.ports[0], chat, "user=ann")
    y = await sconnect(a.ports[1], chat, "user=bob")
    await x.send_msg("from ann")
    await x.wait_msgs(1, 10)
    await y.send_msg("from bob")
    ok = await x.wait_msgs(2, 10) and await y.wait_msgs(2, 10)
    bodies = [[m.get("body") for m in c.msgs] for c in (x, y)]
    check(ok and x.seqs() == y.seqs() == [1, 2] and bodies[0] == bodies[1],
          "%s: the two members saw %r / %r (%r / %r)" %
          (chat, x.seqs(), y.seqs(), bodies[0], bodies[1]))
    return x, y


async def run(a):
    n = len(a.socks)
    t = tag()
    chats = ["shard-%s-%d" % (t, i) for i in range(a.chats)]
    want = {c: shard_of(c, n) for c in chats}
    per = [sum(1 for c in chats if want[c] == s) for s in range(n)]
    note("%d chats over %d shards by the hash: %s" % (len(chats), n, per))
    check(all(p > 0 for p in per), "a shard holds no chat: %r" % per)

    members = {}
    for i in range(0, len(chats), 25):
        got = await asyncio.gather(*(pair(a, c) for c in chats[i:i + 25]),
                                   return_exceptions=True)
        for c, g in zip(chats[i:i + 25], got):
            if isinstance(g, Exception):
                fail("%s: %r" % (c, g))
            else:
                members[c] = g
    note("%d chats with a member on each instance, 2 messages each" %
         len(members))

    # Where the keys and subscriptions are.
    for s, sock in enumerate(a.socks):
        keys = chats_in(redis_cli(sock, "--scan", "--pattern",
                                  "racerd:{chat:shard-%s-*" % t))
        chans = chats_in(redis_cli(sock, "PUBSUB", "CHANNELS",
                                   "racerd:{chat:shard-%s-*" % t))
        mine = {c for c in chats if want[c] == s}
        check(keys == mine, "shard %d holds the keys of %d chats, the hash "
              "names %d; wrong: %r, missing: %r" %
              (s, len(keys), len(mine), sorted(keys - mine)[:5],
               sorted(mine - keys)[:5]))
        check(chans == mine, "shard %d has the channels of %d chats, the "
              "hash names %d; wrong: %r, missing: %r" %
              (s, len(chans), len(mine), sorted(chans - mine)[:5],
               sorted(mine - chans)[:5]))
    note("every chat's keys and channel are on its shard only")

    # History through either instance.
    for i, c in enumerate(chats[:30]):
        latest, _, env = fetch_history(a.ports[i % 2], c)
        check(latest == 2 and [m.get("body") for m in env] ==
              [m.get("body") for m in members[c][0].msgs],
              "%s: history %r latest %r" % (c, env, latest))

    # A resume on the other instance gets what it missed.
    resumed = 0
    for s in range(n):
        for c in [c for c in chats if want[c] == s][:2]:
            x, y = members[c]
            token, last = x.welcome.get("session"), x.last()
            await x.abort()
            await y.send_msg("while ann was away")
            await y.wait_msgs(3, 10)
            r = await sconnect(a.ports[1], c, rq(token, last, "ann"))
            await until(lambda: r.resumed is not None, 10)
            if check_resume(r, last, True, "%s: resume" % c, to=3):
                resumed += 1
            members[c] = (r, y)
    note("%d resumes (through the other instance) replayed what they missed"
         % resumed)

    # One shard dies: its chats are refused, the others go on.
    os.kill(a.pids[a.kill], signal.SIGKILL)
    h = {}

    def down():
        st, body = http_get(a.ports[0], "/healthz")
        try:
            h.update(json.loads(body))
        except ValueError:
            pass
        return st == 503
    check(await until(down, 15, 0.2), "/healthz still ok after shard %d "
          "died: %r" % (a.kill, h))
    check("shard %d " % a.kill in str(h.get("error")),
          "/healthz does not name shard %d: %r" % (a.kill, h))
    note("/healthz after shard %d died: %r" % (a.kill, h))
    up = metric(a.ports[1], "racerd_store_shards_up")
    check(up == n - 1, "racerd_store_shards_up is %r, expected %d" % (up, n - 1))

    dead = [c for c in chats if want[c] == a.kill][:10]
    for c in dead:
        try:
            w = await sconnect(a.ports[0], c, "user=late")
            fail("%s (on the dead shard): joined, welcome %r" % (c, w.welcome))
            await w.close()
        except Refused as e:
            check(e.status == 503, "%s (on the dead shard): HTTP %d, "
                  "expected 503" % (c, e.status))

    alive = [c for c in chats if want[c] != a.kill and c in members]
    sent = 0
    for c in alive:
        x, y = members[c]
        k = len(y.msgs)
        await x.send_msg("after the shard died")
        if check(await y.wait_msgs(k + 1, 10) and
                 y.msgs[-1].get("body") == "after the shard died",
                 "%s (shard %d): no delivery after shard %d died (%r)" %
                 (c, want[c], a.kill, y.seqs()[-3:])):
            sent += 1
        w = None
        if c == alive[0] or c == alive[-1]:
            try:
                w = await sconnect(a.ports[1], c, "user=late")
            except Exception as e:  # noqa: BLE001
                fail("%s (shard %d): a new join failed: %r" %
                     (c, want[c], e))
            if w is not None:
                await w.close()
    note("%d of %d chats on the live shards chatted on; %d joins to the "
         "dead shard refused with 503" % (sent, len(alive), len(dead)))

    for x, y in members.values():
        await x.close()
        await y.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ports", required=True)
    p.add_argument("--socks", required=True)
    p.add_argument("--pids", required=True)
    p.add_argument("--chats", type=int, default=200)
    p.add_argument("--kill", type=int, default=1)
    a = p.parse_args()
    a.ports = [int(x) for x in a.ports.split(",")]
    a.socks = a.socks.split(",")
    a.pids = [int(x) for x in a.pids.split(",")]
    asyncio.run(run(a))
    sys.exit(1 if wslib.FAILS else 0)


if __name__ == "__main__":
    main()
