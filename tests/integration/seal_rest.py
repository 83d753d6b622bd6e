#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: message bodies sealed at rest (seal_rest.sh).
"""Steps, each against running racerd instances sharing one redis-server:

  send     send N messages whose bodies carry a marker; members get them in
           clear, and so does HTTP history
  scan     count the marker in the store: every key (strings, hashes,
           streams), the AOF files and what a SUBSCRIBE to the chat's
           channel saw; --expect says how many hits are right (0 sealed)
  history  the chat's history over HTTP: N readable, and M reported as
           sealed with the given reason
  live     a member on --port2 gets what a member on --port sends: N
           messages its racerd cannot open, reported as sealed with the
           given reason, in order, then one it can, in clear
  tamper   flip one byte of one stored body (the stream is rewritten with
           the same ids) and check only that message is reported

Every wait is bounded; one FAIL line per failed check; exit 0 only if
nothing failed.
"""

import argparse
import asyncio
import glob
import json
import subprocess
import sys
import urllib.request

import websockets

from wslib import FAILS, check


def redis(a, *args, raw=False):
    r = subprocess.run(["redis-cli", "-s", a.redis_sock] +
                       (["--raw"] if raw else []) + list(args),
                       capture_output=True, timeout=10)
    return r.stdout


def history(a, chat):
    url = "http://127.0.0.1:%d/chats/%s/messages?limit=1000" % (a.port, chat)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["messages"]


async def do_send(a):
    url = "ws://127.0.0.1:%d/ws/%s?user=" % (a.port, a.chat)
    async with websockets.connect(url + "reader", max_size=None) as r, \
            websockets.connect(url + "writer", max_size=None) as w:
        for ws in (r, w):
            json.loads(await asyncio.wait_for(ws.recv(), 10))
        want = ["%s %s %d" % (a.marker, a.tag, i) for i in range(a.n)]
        for b in want:
            await w.send(json.dumps({"type": "msg", "body": b}))
        got = []
        while len(got) < a.n:
            f = json.loads(await asyncio.wait_for(r.recv(), 10))
            if f.get("type") == "msg":
                got.append(f["body"])
        check(got == want, "a member got %r... not the bodies sent" %
              got[:2])
    bodies = [m["body"] for m in history(a, a.chat)]
    check(bodies[-a.n:] == want, "history ends with %r, not the bodies "
          "sent" % bodies[-2:])


async def do_live(a):
    url = "ws://127.0.0.1:%d/ws/%s?user="
    async with websockets.connect(url % (a.port2, a.chat) + "reader",
                                  max_size=None) as r, \
            websockets.connect(url % (a.port, a.chat) + "writer",
                               max_size=None) as w, \
            websockets.connect(url % (a.port2, a.chat) + "local",
                               max_size=None) as l:
        for ws in (r, w, l):
            json.loads(await asyncio.wait_for(ws.recv(), 10))
        for i in range(a.n):
            await w.send(json.dumps({"type": "msg", "body": "%s live %d" %
                                     (a.marker, i)}))
        got = []
        while len(got) < a.n:
            f = json.loads(await asyncio.wait_for(r.recv(), 10))
            if f.get("type") == "msg":
                got.append(f)
        check(all(f.get("body") is None for f in got),
              "a message its racerd cannot open came with a body: %r" %
              [f for f in got if f.get("body") is not None][:1])
        reasons = {f.get("sealed") for f in got}
        check(reasons == {a.reason}, "live sealed reasons %r, not %r" %
              (reasons, a.reason))
        seqs = [f.get("seq") for f in got]
        check(seqs == list(range(seqs[0], seqs[0] + a.n)),
              "live seqs %r are not in order" % seqs[:5])
        body = "%s local" % a.marker
        await l.send(json.dumps({"type": "msg", "body": body}))
        while True:
            f = json.loads(await asyncio.wait_for(r.recv(), 10))
            if f.get("type") == "msg":
                break
        check(f.get("body") == body and f.get("seq") == seqs[-1] + 1,
              "after them the member got %r, not %r in clear" % (f, body))
    print("  live: %d reported %r, then seq %s in clear" %
          (len(got), reasons, f.get("seq")))


def do_scan(a):
    hits = {"keys": 0, "aof": 0, "subscribe": 0}
    marker = a.marker.encode()
    for k in redis(a, "--scan", raw=True).split(b"\n"):
        if not k:
            continue
        t = redis(a, "TYPE", k.decode(), raw=True).strip()
        if t == b"stream":
            v = redis(a, "XRANGE", k.decode(), "-", "+", raw=True)
        elif t == b"hash":
            v = redis(a, "HGETALL", k.decode(), raw=True)
        elif t == b"string":
            v = redis(a, "GET", k.decode(), raw=True)
        else:
            v = b""
        hits["keys"] += v.count(marker)
    for f in glob.glob(a.aof_dir + "/**", recursive=True):
        try:
            with open(f, "rb") as fh:
                hits["aof"] += fh.read().count(marker)
        except IsADirectoryError:
            pass
    with open(a.sub_file, "rb") as fh:
        hits["subscribe"] += fh.read().count(marker)
    print("  marker %s: %r" % (a.marker, hits))
    for where, n in hits.items():
        if a.expect == 0:
            check(n == 0, "%d plaintext bodies in %s" % (n, where))
        else:
            check(n >= a.expect, "only %d of %d bodies in clear in %s "
                  "(the scan cannot see them?)" % (n, a.expect, where))


def do_history(a):
    msgs = history(a, a.chat)
    readable = [m for m in msgs if isinstance(m.get("body"), str)]
    sealed = [m for m in msgs if m.get("body") is None]
    reasons = {m.get("sealed") for m in sealed}
    print("  %s: %d readable, %d sealed %r" % (a.chat, len(readable),
                                              len(sealed), reasons))
    check(len(readable) == a.readable and len(sealed) == a.sealed,
          "history of %s: %d readable and %d sealed, not %d and %d" %
          (a.chat, len(readable), len(sealed), a.readable, a.sealed))
    if a.sealed:
        check(reasons == {a.reason}, "sealed reasons %r, not %r" %
              (reasons, a.reason))
    check(all(m["body"].startswith(a.marker) for m in readable),
          "a readable body is not what was sent")


def do_tamper(a):
    key = "racerd:{chat:%s}:log" % a.chat
    out = subprocess.run(["redis-cli", "-s", a.redis_sock, "--raw", "XRANGE",
                          key, "-", "+"], capture_output=True,
                         timeout=10).stdout.split(b"\n")
    # --raw XRANGE: id, then field/value lines (m, envelope, t, ms).
    entries, i = [], 0
    while i + 4 < len(out):
        entries.append((out[i], out[i + 2], out[i + 4]))
        i += 5
    check(len(entries) >= 3, "only %d entries to tamper with" % len(entries))
    redis(a, "DEL", key)
    for n, (eid, env, ts) in enumerate(entries):
        if n == a.victim:
            at = env.index(b"\x01") + 8     # inside the base64
            env = env[:at] + (b"A" if env[at:at + 1] != b"A" else b"B") + \
                env[at + 1:]
        subprocess.run([b"redis-cli", b"-s", a.redis_sock.encode(), b"EVAL",
                        b"return redis.call('XADD', KEYS[1], ARGV[1], 'm', "
                        b"ARGV[2], 't', ARGV[3])", b"1", key.encode(), eid,
                        env, ts], capture_output=True, timeout=10)
    msgs = history(a, a.chat)
    bad = [i for i, m in enumerate(msgs) if m.get("body") is None]
    check(bad == [a.victim], "messages reported unreadable: %r, not [%d]" %
          (bad, a.victim))
    if bad == [a.victim]:
        check(msgs[a.victim].get("sealed") == "cannot be opened",
              "tampered message says %r" % msgs[a.victim].get("sealed"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=["send", "scan", "history", "live",
                                      "tamper"])
    p.add_argument("--port", type=int)
    p.add_argument("--port2", type=int)
    p.add_argument("--chat")
    p.add_argument("--marker", default="MARKER")
    p.add_argument("--tag", default="m")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--redis-sock")
    p.add_argument("--aof-dir")
    p.add_argument("--sub-file")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--readable", type=int, default=0)
    p.add_argument("--sealed", type=int, default=0)
    p.add_argument("--reason")
    p.add_argument("--victim", type=int, default=1)
    a = p.parse_args()
    if a.step == "send":
        asyncio.run(do_send(a))
    elif a.step == "live":
        asyncio.run(do_live(a))
    else:
        {"scan": do_scan, "history": do_history, "tamper": do_tamper}[
            a.step](a)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
