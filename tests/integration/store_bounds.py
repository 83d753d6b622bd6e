#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: what one client can make the store and a worker
# hold, and answers that must not go wrong (store_bounds.sh runs this).
"""Checks, each against a running racerd (python3-websockets as client):

  longid   a 128-byte chat id chats live like any other
  dedup    user a with id "b:c" and user "a:b" with id "c" are two messages
  count    upgrades refused for max-chats do not stay counted against
           max-connections
  since    a ?since= join is a member: presence join, and listed
  ghosts   connections aborted right after their upgrade leave no member
           "connected" once the reconnect window is over
  replay   a resume that missed far more than max-outbound-bytes gets all
           of it, paced, and is not closed 4208
  ttl      every key in the store but the session schedule has an expiry
  idle     with history-ttl = 3, a chat's keys expire 3 s after its last
           message, and an idle chat disappears
  full     a full store answers sends with "unavailable"
  bigchat  with presence-events-max = 3, joins and leaves beyond 3 members
           send no presence events; the presence listing has everyone

Usage: store_bounds.py CHECK --port P [options].  Prints one FAIL line per
failed check; exit status 0 only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import websockets

from wslib import FAILS, check, fail


def url(port, chat, **query):
    q = "&".join("%s=%s" % kv for kv in query.items())
    return "ws://127.0.0.1:%d/ws/%s%s" % (port, chat, "?" + q if q else "")


def http_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=10) as r:
        return json.loads(r.read())


async def connect(port, chat, **query):
    """Join; returns (ws, welcome)."""
    ws = await websockets.connect(url(port, chat, **query), max_size=None,
                                  open_timeout=10, close_timeout=2)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if welcome.get("type") != "welcome":
        raise RuntimeError("first frame %r" % welcome)
    return ws, welcome


async def until(ws, pred, timeout=10):
    """Frames until one satisfies pred; returns it (None on timeout)."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        try:
            f = json.loads(await asyncio.wait_for(ws.recv(), left))
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            return None
        if pred(f):
            return f


def is_msg(f, body=None):
    return f.get("type") == "msg" and (body is None or f.get("body") == body)


async def do_longid(a):
    for n in (121, 122, 127, 128):
        chat = ("c%d-" % n + "x" * n)[:n]
        r, _ = await connect(a.port, chat, user="reader")
        w, _ = await connect(a.port, chat, user="writer")
        await w.send(json.dumps({"type": "msg", "body": "hi %d" % n}))
        got = await until(r, lambda f: is_msg(f, "hi %d" % n), 5)
        check(got is not None and got.get("chat") == chat,
              "chat id of %d bytes: no live delivery" % n)
        await r.close()
        await w.close()


async def do_dedup(a):
    chat = "dedup-%d" % time.monotonic_ns()
    seqs = []
    for user, mid in (("a", "b:c"), ("a:b", "c")):
        ws, _ = await connect(a.port, chat, user=user)
        await ws.send(json.dumps({"type": "msg", "body": user, "id": mid}))
        got = await until(ws, lambda f: f.get("type") in ("msg", "error"))
        check(got is not None and got.get("type") == "msg" and
              got.get("from") == user,
              "send of %s/%s: %r" % (user, mid, got))
        if got:
            seqs.append(got.get("seq"))
        await ws.close()
    check(len(set(seqs)) == 2, "(a, b:c) and (a:b, c) share a seq: %r" % seqs)
    page = http_get(a.port, "/chats/%s/messages" % chat)
    check(len(page["messages"]) == 2,
          "history has %d messages, not 2" % len(page["messages"]))


def upgrade(port, chat, user):
    """A raw upgrade request; returns the socket, left open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET /ws/%s?user=%s HTTP/1.1\r\nHost: x\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (chat, user)).encode())
    return s


async def do_count(a):
    """max-chats = 1, max-connections = 2."""
    hold, _ = await connect(a.port, "count-a", user="u1")
    refused, keep = 0, []
    for i in range(5):
        # Refused for max-chats, kept open (keep-alive): not counted.
        s = upgrade(a.port, "count-b%d" % i, "u2")
        refused += s.recv(12) == b"HTTP/1.1 503"
        keep.append(s)
    check(refused == 5, "only %d of 5 joins of other chats refused" % refused)
    try:
        ws, _ = await connect(a.port, "count-a", user="u3")
        await ws.close()
    except websockets.InvalidStatusCode as e:
        fail("second member of count-a refused with %d: refused "
             "upgrades stayed counted" % e.status_code)
    for s in keep:
        s.close()
    await hold.close()


async def do_since(a):
    chat = "since-%d" % time.monotonic_ns()
    obs, _ = await connect(a.port, chat, user="observer")
    ws, _ = await connect(a.port, chat, user="late", since="0")
    got = await until(obs, lambda f: f.get("type") == "presence" and
                      f.get("user") == "late" and f.get("event") == "join")
    check(got is not None, "no presence join for a ?since= join")
    members = {m["user"]: m["state"] for m in
               http_get(a.port, "/chats/%s/presence" % chat)["members"]}
    check(members.get("late") == "connected",
          "?since= join not listed as connected: %r" % members)
    await ws.close()
    await obs.close()


def abort_after_upgrade(port, chat, user):
    s = upgrade(port, chat, user)
    s.recv(12)          # "HTTP/1.1 101": the upgrade is done
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()           # RST, before the session's record is answered


async def do_ghosts(a):
    """reconnect-window = 1."""
    chat = "ghosts-%d" % time.monotonic_ns()
    for i in range(a.count):
        abort_after_upgrade(a.port, chat, "g%d" % i)
    left = None
    t0 = time.monotonic()
    for _ in range(int(a.wait * 10)):
        left = [m for m in http_get(a.port, "/chats/%s/presence" % chat)
                ["members"]]
        if not left:
            print("  %d aborted after their upgrade: none listed %.1f s "
                  "later" % (a.count, time.monotonic() - t0))
            break
        await asyncio.sleep(0.1)
    check(not left, "%d of %d aborted members still listed %.0f s later "
          "(%d connected)" % (len(left), a.count, a.wait,
                              sum(m["state"] == "connected" for m in left)))


async def do_replay(a):
    chat = "replay-%d" % time.monotonic_ns()
    r, welcome = await connect(a.port, chat, user="reader")
    token, last = welcome["session"], welcome["seq"]
    r.transport.abort()                 # no close frame: resumable
    w, _ = await connect(a.port, chat, user="writer")
    body = "x" * a.size
    n = a.total // a.size
    # The writer keeps 8 in flight, reading its echoes: no slow client.
    sent = echoed = 0
    while echoed < n:
        while sent < n and sent - echoed < 8:
            await w.send(json.dumps({"type": "msg",
                                     "body": "%d %s" % (sent, body)}))
            sent += 1
        if await until(w, is_msg, 10) is None:
            fail("writer's echo %d did not come" % echoed)
            return
        echoed += 1
    r, _ = await connect(a.port, chat, session=token, last=str(last))
    seqs, resumed = [], None
    try:
        while resumed is None:
            f = json.loads(await asyncio.wait_for(r.recv(), 30))
            if f.get("type") == "msg":
                seqs.append(f["seq"])
            elif f.get("type") == "resumed":
                resumed = f
    except websockets.ConnectionClosed as e:
        fail("resume of %d bytes closed with %s after %d messages" %
             (n * a.size, e.code, len(seqs)))
    except asyncio.TimeoutError:
        fail("resume stalled after %d messages" % len(seqs))
    if resumed is not None:
        check(resumed.get("complete") is True and
              resumed.get("replayed") == n,
              "resumed %r after %d of %d messages" % (resumed, len(seqs), n))
        check(seqs == list(range(last + 1, last + 1 + n)),
              "replay not seq %d..%d once each" % (last + 1, last + n))
        print("  replayed %d messages, %d bytes" % (n, n * a.size))
    await r.close()
    await w.close()


def redis(a, *args):
    return subprocess.run(["redis-cli", "-s", a.redis_sock] + list(args),
                          capture_output=True, text=True, timeout=10).stdout


async def do_ttl(a):
    chat = "ttl-%d" % time.monotonic_ns()
    obs, _ = await connect(a.port, chat, user="obs")
    ws, _ = await connect(a.port, chat, user="w")
    await ws.send(json.dumps({"type": "msg", "body": "b", "id": "i1"}))
    await until(ws, lambda f: is_msg(f, "b"))
    await ws.close()                     # 1000: a position is kept
    quiet, _ = await connect(a.port, chat + "-never-written", user="q")
    gone, _ = await connect(a.port, chat, user="abort")
    gone.transport.abort()               # away: record and who entries
    await asyncio.sleep(1)
    nkeys = int(redis(a, "DBSIZE").strip() or "0")
    check(nkeys >= 6, "only %d keys in the store" % nkeys)
    # One script looks at every key: no round trip per key.
    bad = [k for k in redis(a, "EVAL", "local r = {} "
           "for _, k in ipairs(redis.call('KEYS', '*')) do "
           "if redis.call('PTTL', k) == -1 then r[#r + 1] = k end end "
           "return r", "0").split() if k and k != "racerd:due"]
    check(not bad, "%d of %d keys have no expiry, e.g. %s" %
          (len(bad), nkeys, " ".join(sorted(bad)[:5])))
    await quiet.close()
    await obs.close()


async def do_idle(a):
    """history-ttl = 3 s: a chat's keys expire 3 s (and at most a 64th
    more) after its last message, move with each message, and the chat
    is gone completely once idle that long."""
    ttl = 3000
    chat = "idle-%d" % time.monotonic_ns()
    keys = ["racerd:{chat:%s}:%s" % (chat, k) for k in ("seq", "epoch", "log")]

    def pttls():
        return [int(redis(a, "PTTL", k).strip() or "-3") for k in keys]

    ws, _ = await connect(a.port, chat, user="w")
    for i in range(2):
        await ws.send(json.dumps({"type": "msg", "body": "m%d" % i,
                                  "id": "i%d" % i}))
        check(await until(ws, lambda f, i=i: is_msg(f, "m%d" % i))
              is not None, "no echo of m%d" % i)
    left = pttls()
    check(all(ttl - 1000 < x <= ttl + ttl // 64 for x in left),
          "after a message the chat's keys expire in %r ms, not about %d" %
          (left, ttl))
    await asyncio.sleep(1.2)
    await ws.send(json.dumps({"type": "msg", "body": "m2", "id": "i2"}))
    check(await until(ws, lambda f: is_msg(f, "m2")) is not None,
          "no echo of m2")
    left = pttls()
    check(all(ttl - 300 < x <= ttl + ttl // 64 for x in left),
          "a message 1.2 s later did not move the expiry: %r ms" % left)
    await ws.close()
    await asyncio.sleep((ttl + ttl // 64) / 1000 + 0.5)
    there = [k for k in keys if redis(a, "EXISTS", k).strip() != "0"]
    check(not there, "idle past history-ttl, the chat still has %r" % there)


async def do_full(a):
    ws, _ = await connect(a.port, "full", user="u")
    redis(a, "CONFIG", "SET", "maxmemory", "1")
    try:
        await ws.send(json.dumps({"type": "msg", "body": "b", "id": "f1"}))
        got = await until(ws, lambda f: f.get("type") in ("msg", "error"))
        check(got is not None and got.get("type") == "error" and
              got.get("code") == "unavailable",
              "a send to a full store got %r" % got)
    finally:
        redis(a, "CONFIG", "SET", "maxmemory", "0")
    await ws.close()


async def do_bigchat(a):
    chat = "big-%d" % time.monotonic_ns()
    obs, _ = await connect(a.port, chat, user="u1")
    others = {}
    for u in ("u2", "u3", "u4", "u5"):
        others[u], _ = await connect(a.port, chat, user=u)
    members = [m["user"] for m in
               http_get(a.port, "/chats/%s/presence" % chat)["members"]]
    check(members == ["u1", "u2", "u3", "u4", "u5"],
          "presence lists %r" % members)
    await others.pop("u5").close()      # 4 left: still too many
    for _ in range(50):                 # ended in the store before u4
        if len(http_get(a.port, "/chats/%s/presence" % chat)
               ["members"]) == 4:
            break
        await asyncio.sleep(0.1)
    await others.pop("u4").close()      # 3 left: told
    seen = []
    while True:
        f = await until(obs, lambda f: f.get("type") == "presence", 2)
        if f is None:
            break
        seen.append((f["event"], f["user"]))
    want = [("join", "u1"), ("join", "u2"), ("join", "u3"), ("leave", "u4")]
    check(seen == want, "presence events %r, not %r" % (seen, want))
    for ws in others.values():
        await ws.close()
    await obs.close()


CHECKS = {"longid": do_longid, "dedup": do_dedup, "count": do_count,
          "since": do_since, "ghosts": do_ghosts, "replay": do_replay,
          "ttl": do_ttl, "idle": do_idle, "full": do_full,
          "bigchat": do_bigchat}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("check", choices=sorted(CHECKS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-sock")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--wait", type=float, default=8)
    p.add_argument("--size", type=int, default=60000)
    p.add_argument("--total", type=int, default=50 * 1000 * 1000)
    a = p.parse_args()
    asyncio.run(CHECKS[a.check](a))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
