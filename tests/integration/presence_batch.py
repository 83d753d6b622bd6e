#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration test: presence written at most every
# presence-interval ms per chat (chat_presence.sh runs this).
"""Against a racerd with presence-interval = 1000 (python3-websockets as
client), a watcher w sees:

  quiet    a join after a quiet second at once (well within the interval)
  held     joins that follow within the interval later, together, each once
  order    joins held when a message comes: before the message, which is
           not held
  welcome  a member welcomed while presence is held gets only the frames
           that came after its welcome (its own join), not those before

Usage: presence_batch.py --port P [--interval MS].  Prints one FAIL line
per failed check; exit status 0 only if nothing failed.  Every wait is
bounded.
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request

import websockets

from wslib import FAILS, check, fail, note


class Member:
    """A joined client that records every frame with its arrival time."""

    def __init__(self, ws, welcome):
        self.ws, self.welcome = ws, welcome
        self.frames = []            # (monotonic time, frame)
        self.task = asyncio.ensure_future(self.read())

    async def read(self):
        try:
            async for data in self.ws:
                self.frames.append((time.monotonic(), json.loads(data)))
        except websockets.ConnectionClosed:
            pass

    def joins(self):
        return [(t, f["user"]) for t, f in self.frames
                if f.get("type") == "presence" and f.get("event") == "join"]

    async def wait(self, pred, timeout):
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            await asyncio.sleep(0.01)
        return pred()

    async def close(self):
        await self.ws.close()
        self.task.cancel()


async def join(port, chat, user):
    ws = await websockets.connect("ws://127.0.0.1:%d/ws/%s?user=%s" %
                                  (port, chat, user), open_timeout=10,
                                  close_timeout=2)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if welcome.get("type") != "welcome":
        raise RuntimeError("%s: first frame %r" % (user, welcome))
    return Member(ws, welcome)


def listed(port, chat, user):
    with urllib.request.urlopen("http://127.0.0.1:%d/chats/%s/presence" %
                                (port, chat), timeout=10) as r:
        return any(m.get("user") == user
                   for m in json.loads(r.read()).get("members", []))


async def run(a):
    port, every = a.port, a.interval / 1000.0
    chat = "pbatch-%d" % int(time.time() * 1000)
    users = []

    async def add(user):
        m = await join(port, chat, user)
        users.append(m)
        return m

    async def recorded(user):
        """Until the store lists user: its join has been published."""
        for _ in range(200):
            if listed(port, chat, user):
                return
            await asyncio.sleep(0.01)
        fail("%s is not listed in the presence of %s" % (user, chat))

    def joined(*names):
        return lambda: all(n in [u for _, u in w.joins()] for n in names)

    w = await add("w")
    check(await w.wait(joined("w"), 5), "w saw no join of its own")
    await asyncio.sleep(every * 1.2)

    # quiet: at once.
    u1 = await add("u1")
    t1 = time.monotonic()
    check(await w.wait(joined("u1"), 5), "w saw no join of u1")
    lag = [t for t, u in w.joins() if u == "u1"][0] - t1
    check(lag < every / 2, "the join of u1 after a quiet interval came "
          "%.3f s after its welcome: held (interval %.1f s)" % (lag, every))

    # held: u2..u4 within the interval come later, together, each once.
    for u in ("u2", "u3", "u4"):
        await add(u)
    check(await w.wait(joined("u2", "u3", "u4"), every * 3 + 5),
          "w did not see the joins of u2..u4: %r" % w.joins())
    got = [(t, u) for t, u in w.joins() if u in ("u2", "u3", "u4")]
    ts = [t for t, _ in got]
    check([u for _, u in got] == ["u2", "u3", "u4"],
          "joins of u2..u4 as %r, expected each once, in order" %
          [u for _, u in got])
    if ts:
        check(min(ts) - t1 >= every / 2, "the joins of u2..u4 came %.3f s "
              "after u1's: not held (interval %.1f s)" % (min(ts) - t1,
                                                         every))
        check(max(ts) - min(ts) < every / 2, "the joins of u2..u4 came "
              "%.3f s apart: not together" % (max(ts) - min(ts)))
        note("held joins came %.3f s after the quiet one, within %.3f s of "
             "each other" % (min(ts) - t1, max(ts) - min(ts)))

    # order: held joins go before a message, which is not held.
    await asyncio.sleep(every * 1.2)
    await add("u5")
    check(await w.wait(joined("u5"), 5), "w saw no join of u5")
    await add("u6")
    await recorded("u6")
    t_send = time.monotonic()
    await u1.ws.send(json.dumps({"type": "msg", "body": "after u6",
                                 "id": "pb-1"}))
    check(await w.wait(lambda: any(f.get("type") == "msg"
                                   for _, f in w.frames), 5),
          "w got no message")
    kinds = [(f.get("type"), f.get("user") or f.get("body"))
             for _, f in w.frames if f.get("type") in ("msg", "presence")]
    i_msg = kinds.index(("msg", "after u6"))
    check(("presence", "u6") in kinds[:i_msg], "the held join of u6 did "
          "not come before the message: %r" % kinds[-4:])
    t_msg = [t for t, f in w.frames if f.get("type") == "msg"][0]
    check(t_msg - t_send < every / 2, "the message came %.3f s after it was "
          "sent: held with presence" % (t_msg - t_send))

    # welcome: n, welcomed while u8's join is held, does not get it.
    await asyncio.sleep(every * 1.2)
    await add("u7")
    check(await w.wait(joined("u7"), 5), "w saw no join of u7")
    await add("u8")
    await recorded("u8")
    await asyncio.sleep(0.05)       # its join reaches every worker
    n = await add("n")
    check(await w.wait(joined("u8", "n"), every * 3 + 5),
          "w did not see the joins of u8 and n: %r" % w.joins())
    check(await n.wait(lambda: "n" in [u for _, u in n.joins()], 5),
          "n saw no join of its own")
    await asyncio.sleep(0.2)
    check([u for _, u in n.joins()] == ["n"], "n, welcomed while presence "
          "was held, got joins %r, expected only its own" %
          [u for _, u in n.joins()])

    for m in users:
        seen = [u for _, u in m.joins()]
        check(len(seen) == len(set(seen)), "%s got a join twice: %r" %
              (m.welcome.get("user"), seen))
        await m.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--interval", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(a), a.timeout))
    except Exception as e:  # noqa: BLE001
        fail("presence_batch: %r" % e)
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
