#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the session, history and API subcommands of
# wsclient.py.
"""Sessions, history and the HTTP API: the client side of sess_*.sh and
history_*.sh.  Subcommands resume (cut off mid-stream, resume elsewhere),
window (resume within and after the session window), restart (clients
resume across a restart of racerd), history-fill and history-check (page
through a chat's history), incomplete (resumes the history cannot serve
whole), dedup (repeated message ids are stored once), takeover (concurrent
resumes of one session), workerkill (the sessions of a killed worker
expire on time) and api (POST authorisation), with their helpers.
"""

import asyncio
import base64
import collections
import http.client
import json
import os
import random
import re
import signal
import subprocess
import time

import websockets

from wslib import (FAILS, Raw, Refused, SClient, check, check_resume,
                   close_payload, describe_seqs, expect_refused, fail, frame,
                   http_req, note, read_keys, redis_cli, rq, run_async,
                   sconnect, tag, until, ws_request)


# --------------------------------------------------------------------------
# The API client of history-fill and dedup; processes under /proc

class Poster:
    """POST /chats/CHAT/messages over one keep-alive connection."""

    def __init__(self, port, key):
        self.port = port
        self.key = key
        self.conn = None

    def post(self, chat, msg):
        hdrs = {"Content-Type": "application/json"}
        if self.key is not None:
            hdrs["Authorization"] = "Bearer " + self.key
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=10)
            try:
                st, rh, data = http_req(self.port, "POST",
                                        "/chats/%s/messages" % chat, msg,
                                        hdrs, conn=self.conn)
                if rh.get("connection", "").lower() == "close":
                    self.close()
                try:
                    return st, json.loads(data)
                except ValueError:
                    return st, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def proc_state(pid):
    """The state letter of a process, or None if there is no such pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    """The pids of a process's children."""
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


async def wait_exit(pid, timeout):
    """Until pid is gone or a zombie; returns True if it got there."""
    return await until(lambda: proc_state(pid) in (None, "Z"), timeout, 0.05)


# --------------------------------------------------------------------------
# Subcommand: resume (sess_resume.sh)

async def do_resume(a):
    """A client cut off mid-stream resumes elsewhere with nothing lost."""
    ports = [int(p) for p in a.ports.split(",")]
    chat = "resume-" + tag()
    s = await sconnect(ports[0], chat, "user=sender")
    v = await sconnect(ports[0], chat, "user=victim")
    token = v.welcome.get("session")
    check(isinstance(token, str) and re.fullmatch(r"[A-Za-z0-9_-]{22}",
                                                  token or ""),
          "session token %r is not 22 base64url characters" % (token,))
    if FAILS:
        return
    note("sender on port %d worker %s, victim on port %d worker %s" %
         (s.port, s.worker, v.port, v.worker))
    resumed_ev = asyncio.Event()
    hold = a.count - a.after

    async def send_all():
        for k in range(a.count):
            if k == hold:
                # The last ones go out only once the victim is back, so
                # that live traffic crosses the replay (the seam).
                await asyncio.wait_for(resumed_ev.wait(), 20)
            await s.send_msg("m%d" % k, "r-%d" % k)
            if k % 5 == 4:
                await asyncio.sleep(a.pace)

    sender = asyncio.ensure_future(send_all())
    if not check(await v.wait_msgs(a.cut_at, 15),
                 "victim received %d of the first %d messages" %
                 (len(v.msgs), a.cut_at)):
        sender.cancel()
        return
    await v.abort()
    before = list(v.msgs)
    last = v.last()
    why = describe_seqs([m.get("seq") for m in before], 1, len(before))
    check(why is None, "victim before the cut: %s" % why)
    note("victim cut off (TCP abort) holding seq 1..%d" % last)
    await asyncio.sleep(a.away)

    r = None
    port = ports[-1]
    for attempt in range(1, 41):
        try:
            r = await sconnect(port, chat, rq(token, last, "victim"))
        except Exception as e:  # noqa: BLE001
            fail("resume (attempt %d) refused: %r" % (attempt, e))
            sender.cancel()
            return
        if len(ports) > 1 or r.worker != v.worker:
            break
        # Same worker as before: drop it unread and try again; the
        # session is away again and the position unchanged.
        await r.abort()
        r = None
    if not check(r is not None, "40 resumes all landed on worker %s" %
                 v.worker):
        sender.cancel()
        return
    resumed_ev.set()
    note("resumed (attempt %d) on port %d worker %s (cut off on port %d "
         "worker %s)" % (attempt, r.port, r.worker, v.port, v.worker))
    if len(ports) == 1:
        check(r.worker is not None and r.worker != v.worker,
              "resume on the same worker %s" % r.worker)
    else:
        check(r.port != v.port, "resume on the same instance")
    try:
        await asyncio.wait_for(sender, 30)
    except Exception as e:  # noqa: BLE001
        fail("sender did not finish: %r" % e)
        return
    check(await s.wait_msgs(a.count, 20), "sender received %d of %d" %
          (len(s.msgs), a.count))
    check(await r.wait_msgs(a.count - len(before), 20),
          "resumed victim received %d messages, expected %d" %
          (len(r.msgs), a.count - len(before)))
    await asyncio.sleep(0.3)
    rr = check_resume(r, last, True, "victim's resume")
    if rr is not None:
        live = len(r.msgs) - r.resumed_at
        note("resumed %r; %d msgs replayed, %d live after it" %
             (rr, r.resumed_at, live))
        check(live >= a.after, "only %d live messages after resumed, "
              "expected >= %d" % (live, a.after))
    check(r.welcome.get("seq") is not None and
          r.welcome.get("seq") >= last,
          "resume welcome seq %r < last %d" % (r.welcome.get("seq"), last))
    whole = before + r.msgs
    why = describe_seqs([m.get("seq") for m in whole], 1, a.count)
    check(why is None, "victim over both connections: %s" % why)
    ids = [m.get("id") for m in whole]
    check(ids == ["r-%d" % k for k in range(a.count)][:len(ids)] and
          len(ids) == a.count,
          "victim's ids are not r-0..r-%d in order" % (a.count - 1))
    why = describe_seqs(s.seqs(), 1, a.count)
    check(why is None, "sender: %s" % why)
    check(r.closed is None, "resumed victim was closed: %r" % (r.closed,))
    for c, who in ((r, "victim"), (s, "sender")):
        check(not c.unexpected(), "%s got unexpected frames %r" %
              (who, c.unexpected()[:3]))
    note("sender saw presence %s" % [(o.get("event"), o.get("user"))
                                     for o in s.other
                                     if o.get("type") == "presence"])
    await r.close()
    await s.close()


# --------------------------------------------------------------------------
# Subcommand: window (sess_window.sh)

def close_after_welcome(port, chat, user):
    """Upgrade, read the welcome, close 1000; returns the welcome's token."""
    r = Raw(port)
    r.send(ws_request(port, "/ws/%s?user=%s" % (chat, user)))
    st, _, _ = r.read_response()
    check(st == 101, "%s's upgrade: HTTP %d" % (user, st))
    _, _, op, data = r.read_frame()
    r.send(frame(8, close_payload(1000)))
    r.close()       # at once, as a client that is done does
    return json.loads(data).get("session") if op == 1 else None


async def do_window(a):
    port, win = a.port, a.window
    chat = "window-" + tag()
    b = await sconnect(port, chat, "user=bob")
    c = await sconnect(port, chat, "user=alice")
    check(c.welcome.get("window") == win, "welcome window %r, expected %d" %
          (c.welcome.get("window"), win))
    n = 0

    async def bob_sends(k):
        nonlocal n
        for _ in range(k):
            n += 1
            await b.send_msg("b%d" % n, "w-%d" % n)
        if not check(await b.wait_msgs(n, 10), "bob has %d of %d echoes" %
                     (len(b.msgs), n)):
            raise RuntimeError("no echo")

    await bob_sends(3)
    check(await c.wait_msgs(3, 10), "alice received %d of 3" % len(c.msgs))
    token = c.welcome.get("session")

    # Within the window: resume works.
    await c.abort()
    t0 = time.monotonic()
    check(await until(lambda: b.saw("away", "alice"), 5),
          "bob saw no presence away for alice after her TCP abort")
    await bob_sends(2)
    await asyncio.sleep(max(0, t0 + win / 2 - time.monotonic()))
    c = await sconnect(port, chat, rq(token, 3, "alice"))
    await c.wait_msgs(2, 5)
    await asyncio.sleep(0.2)
    check_resume(c, 3, True, "resume %.1f s into a %d s window" %
                 (time.monotonic() - t0, win), to=5)
    note("resume within the window: %r" % (c.resumed,))

    # After the window: leave, then 401; the next plain join replays.
    await c.abort()
    t0 = time.monotonic()
    await bob_sends(2)          # 6, 7: missed
    got = await until(lambda: b.saw("leave", "alice"), win + 5, 0.01)
    dt = time.monotonic() - t0
    if check(got, "bob saw no presence leave for alice %d s after her "
             "abort (window %d s)" % (win + 5, win)):
        note("leave seen %.2f s after the abort (window %d s)" % (dt, win))
        check(dt >= win - 0.2, "leave %.2f s after the abort, before the "
              "%d s window ended" % (dt, win))
        check(dt <= win + a.slack, "leave %.2f s after the abort: more than"
              " %.1f s past the %d s window" % (dt, a.slack, win))
    await bob_sends(1)          # 8: after expiry
    await expect_refused(port, chat, rq(token, 5, "alice"), 401,
                         "resume after the window")
    await expect_refused(port, chat, rq(token, 5), 401,
                         "resume after the window (no user)")
    # Another user's join gets nothing of alice's.
    d = await sconnect(port, chat, "user=carol")
    await asyncio.sleep(0.5)
    check(not d.msgs and d.resumed is None,
          "carol's plain join got %d msgs and resumed %r" %
          (len(d.msgs), d.resumed))
    await d.close()
    c = await sconnect(port, chat, "user=alice")
    check(c.welcome.get("seq") == 8, "alice's join: welcome seq %r, "
          "expected 8" % c.welcome.get("seq"))
    check(c.welcome.get("session") != token,
          "alice's plain join got the expired token back")
    await c.wait_msgs(3, 5)
    await until(lambda: c.resumed is not None, 5)
    check_resume(c, 5, True, "alice's plain join after the window", to=8)
    check([m.get("id") for m in c.msgs[:3]] == ["w-6", "w-7", "w-8"],
          "replay ids %r" % [m.get("id") for m in c.msgs[:3]])
    await bob_sends(1)          # 9 live
    check(await c.wait_msgs(4, 5) and c.msgs[3].get("seq") == 9,
          "alice after the replay: %r" % c.seqs())
    note("after the window: 401, then the plain join replayed 6..8 and "
         "resumed %r" % (c.resumed,))

    # Close 1000: the session ends at once.
    token = c.welcome.get("session")
    await c.close(1000)
    t0 = time.monotonic()
    await bob_sends(2)          # 10, 11
    got = await until(lambda: sum(1 for o in b.other if o.get("event") ==
                                  "leave" and o.get("user") == "alice") >= 2,
                      3, 0.01)
    check(got, "no presence leave for alice within 3 s of her close 1000")
    if got:
        note("leave after close 1000 seen in %.2f s" %
             (time.monotonic() - t0))
    await expect_refused(port, chat, rq(token, 9, "alice"), 401,
                         "resume right after a close 1000")
    c = await sconnect(port, chat, "user=alice")
    await c.wait_msgs(2, 5)
    await until(lambda: c.resumed is not None, 5)
    check_resume(c, 9, True, "alice's plain join after a close 1000", to=11)
    note("after close 1000: 401, then replay of 10..11, resumed %r" %
         (c.resumed,))
    # The position was handed over once: a second plain join while the
    # first is connected replays nothing.
    e = await sconnect(port, chat, "user=alice")
    await asyncio.sleep(0.5)
    check(not e.msgs, "a second plain join of alice replayed %r" % e.seqs())

    # A close 1000 that comes while the session record is still being
    # written ends the session all the same: the store holds its writes
    # (CLIENT PAUSE) while dave is welcomed, closes and goes.
    out = await redis_cli(a.redis_sock, "CLIENT", "PAUSE", "1000", "ALL")
    check(out.strip() == "OK", "CLIENT PAUSE: %r" % out)
    token = await asyncio.to_thread(close_after_welcome, port, chat, "dave")
    got = await until(lambda: b.saw("leave", "dave"), 3, 0.01)
    check(got, "no presence leave for dave within 3 s of his close 1000 "
          "while his session was being written")
    check(not b.saw("away", "dave"), "dave's close 1000 while his session "
          "was being written left it away")
    await expect_refused(port, chat, rq(token, 11, "dave"), 401,
                         "resume after a close 1000 while the session was "
                         "being written")
    for x in (b, c, e):
        check(not x.unexpected(), "%s got unexpected frames %r" %
              (x.user, x.unexpected()[:3]))
        await x.close()


# --------------------------------------------------------------------------
# Subcommand: restart (sess_restart.sh)

class Reconnector:
    """A client that keeps its session: on 4200/1001 or a lost connection
    it retries with back-off and jitter until it gets back in, resumes with
    its token and last seq, and re-sends what was not acknowledged with
    the same id."""

    def __init__(self, port, chat, user):
        self.port, self.chat, self.user = port, chat, user
        self.msgs = []          # every msg across connections
        self.bad = []           # duplicates and strays
        self.repeats = 0        # echoes of re-sent ids (original seq)
        self.myseq = {}         # id -> seq of own messages
        self.outbox = {}        # id -> body, not acknowledged yet
        self.resent = set()
        self.token = None
        self.base = 0
        self.conns = 0
        self.ends = []          # close code of each connection, or None
        self.resumes = []
        self.refusals = []
        self.ws = None
        self.ready = False
        self.stop = False

    def last(self):
        return self.msgs[-1]["seq"] if self.msgs else self.base

    async def send(self, mid, body):
        self.outbox[mid] = body
        if self.ready:
            try:
                await self.ws.send(json.dumps({"type": "msg", "body": body,
                                               "id": mid}))
            except websockets.ConnectionClosed:
                pass            # re-sent after the resume

    async def run(self):
        delay = 0.05
        url = "ws://127.0.0.1:%d/ws/%s?" % (self.port, self.chat)
        while not self.stop:
            q = ("user=%s" % self.user if self.token is None else
                 rq(self.token, self.last(), self.user))
            try:
                ws = await asyncio.wait_for(websockets.connect(
                    url + q, max_size=None, ping_interval=None,
                    close_timeout=2, max_queue=None), 5)
            except websockets.exceptions.InvalidStatusCode as e:
                self.refusals.append(e.status_code)
                if e.status_code < 500:
                    fail("%s: reconnect refused with HTTP %d" %
                         (self.user, e.status_code))
                    return
                ws = None
            except (OSError, asyncio.TimeoutError,
                    websockets.exceptions.InvalidHandshake,
                    websockets.ConnectionClosed):
                ws = None
            if ws is None:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
                continue
            delay = 0.05
            self.conns += 1
            self.ws = ws
            code = await self.serve(ws, self.token is not None)
            self.ready = False
            self.ends.append(code)
            if code is not None and 4000 <= code < 4100:
                fail("%s: closed with %d: do not reconnect" % (self.user,
                                                                code))
                return

    async def serve(self, ws, resuming):
        try:
            async for raw in ws:
                m = json.loads(raw)
                t = m.get("type")
                if t == "welcome":
                    if self.token is None:
                        self.token = m.get("session")
                        self.base = m.get("seq")
                    if not resuming:
                        self.ready = True
                elif t == "msg":
                    self.on_msg(m)
                elif t == "resumed":
                    self.resumes.append(m)
                    if m.get("complete") is not True:
                        fail("%s: resumed %r" % (self.user, m))
                    for mid in list(self.outbox):
                        self.resent.add(mid)
                        await ws.send(json.dumps({
                            "type": "msg", "body": self.outbox[mid],
                            "id": mid}))
                    self.ready = True
                elif t != "presence":
                    self.bad.append(m)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code if ws.close_code != 1006 else None

    def on_msg(self, m):
        seq, mid = m.get("seq"), m.get("id")
        if isinstance(seq, int) and seq <= self.last():
            if (m.get("from") == self.user and mid in self.resent and
                    self.myseq.get(mid) == seq):
                self.repeats += 1   # echo of a re-send: the original seq
                self.outbox.pop(mid, None)
            else:
                self.bad.append(m)
            return
        self.msgs.append(m)
        if m.get("from") == self.user:
            self.myseq[mid] = seq
            self.outbox.pop(mid, None)


async def do_restart(a):
    port = a.port
    chat = "restart-" + tag()
    cl = [Reconnector(port, chat, "u%d" % i) for i in range(a.clients)]
    tasks = [asyncio.ensure_future(c.run()) for c in cl]
    try:
        await restart_body(a, cl)
    finally:
        for c in cl:
            c.stop = True
            if c.ws is not None:
                try:
                    await asyncio.wait_for(c.ws.close(), 3)
                except Exception:  # noqa: BLE001
                    pass
        for t in tasks:
            t.cancel()


async def restart_body(a, cl):
    if not check(await until(lambda: all(c.ready for c in cl), 15),
                 "only %d of %d clients joined" %
                 (sum(c.ready for c in cl), len(cl))):
        return
    senders = cl[:a.senders]
    sent = []

    async def burst(k):
        for s in senders:
            for j in range(k):
                mid = "%s-%d" % (s.user, len(sent))
                sent.append(mid)
                await s.send(mid, "body of " + mid)

    def all_have(n):
        return all(len(c.msgs) >= n for c in cl)

    await burst(a.before)
    check(await until(lambda: all_have(len(sent)), 15),
          "before the restart: clients have %s of %d messages" %
          (sorted({len(c.msgs) for c in cl}), len(sent)))
    note("%d clients joined; %d messages delivered before the restart" %
         (len(cl), len(sent)))

    flowing = [True]

    async def flow():
        while flowing[0]:
            await burst(1)
            await asyncio.sleep(a.interval)

    fl = asyncio.ensure_future(flow())
    await asyncio.sleep(0.5)
    conns0 = [c.conns for c in cl]
    t0 = time.monotonic()
    os.kill(a.old_pid, signal.SIGTERM)
    note("TERM sent to master %d with %d messages sent" % (a.old_pid,
                                                            len(sent)))
    if not check(await wait_exit(a.old_pid, a.shutdown_timeout + 10),
                 "old master %d still running %d s after TERM" %
                 (a.old_pid, a.shutdown_timeout + 10)):
        flowing[0] = False
        return
    t1 = time.monotonic()
    note("old master gone after %.2f s" % (t1 - t0))
    # Clients are retrying meanwhile (connection refused); let them.
    await asyncio.sleep(a.down)
    with open(a.errfile, "ab") as err:
        p = subprocess.Popen([a.racerd, "-f", "-c", a.conf],
                             stdout=subprocess.DEVNULL, stderr=err,
                             stdin=subprocess.DEVNULL)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % p.pid)
    note("new master %d started %.2f s after TERM" %
         (p.pid, time.monotonic() - t0))
    back = await until(lambda: all(c.ready and c.conns > n
                                   for c, n in zip(cl, conns0)), 25)
    check(back, "%d of %d clients back 25 s after the restart" %
          (sum(1 for c, n in zip(cl, conns0) if c.ready and c.conns > n),
           len(cl)))
    note("all clients resumed %.2f s after TERM" % (time.monotonic() - t0))
    await asyncio.sleep(a.after)
    flowing[0] = False
    await fl
    total = len(sent)
    ok = await until(lambda: all_have(total) and
                     not any(s.outbox for s in senders), 20)
    check(ok, "after the restart: clients have %s of %d messages; %d "
          "unacknowledged" % (sorted({len(c.msgs) for c in cl}), total,
                              sum(len(s.outbox) for s in senders)))
    await asyncio.sleep(0.5)
    ids = set(sent)
    ends = collections.Counter()
    for c in cl:
        why = describe_seqs([m.get("seq") for m in c.msgs], 1, total)
        check(why is None, "%s: %s" % (c.user, why))
        got = [m.get("id") for m in c.msgs]
        check(set(got) == ids and len(got) == len(ids),
              "%s: %d ids, %d distinct, %d sent" % (c.user, len(got),
                                                     len(set(got)), total))
        check(not c.bad, "%s: %d duplicate or unexpected frames, e.g. %r" %
              (c.user, len(c.bad), c.bad[:2]))
        check(len(c.resumes) >= 1, "%s never resumed" % c.user)
        for e in c.ends:
            ends[e] += 1
    note("close codes seen by the clients (None: no close frame): %s" %
         dict(ends))
    bad = {e: k for e, k in ends.items() if e not in (4200, 1001)}
    check(not bad, "connections ended otherwise than with 4200/1001: %s" %
          bad)
    note("%d messages (%d before TERM) delivered exactly once to %d "
         "clients; %d re-sends answered with the original seq" %
         (total, a.before * a.senders, len(cl),
          sum(s.repeats for s in senders)))


# --------------------------------------------------------------------------
# Subcommands: history-fill, history-check (history_paging.sh)

RETRIED_503 = collections.Counter()


def http_get_retry(port, path, timeout=10):
    """GET path; a 503 (store unavailable, allowed while the store is
    away or a worker reconnects to it) is retried for up to timeout s."""
    end = time.monotonic() + timeout
    while True:
        st, hdrs, body = http_req(port, "GET", path)
        if st != 503 or time.monotonic() > end:
            return st, hdrs, body
        RETRIED_503[path.split("?")[0]] += 1
        time.sleep(0.1)


def get_page(port, chat, query):
    st, _, data = http_get_retry(port, "/chats/%s/messages?%s" %
                                 (chat, query))
    try:
        o = json.loads(data)
    except ValueError:
        o = None
    if not check(st == 200 and isinstance(o, dict),
                 "GET ?%s: status %d body %r" % (query, st,
                                                str(o)[:200])):
        return None
    return o


async def do_history_fill(a):
    port, chat = a.port, a.chat
    key = read_keys(a.key_file)[0]
    rec = await sconnect(port, chat, "user=recorder")
    w = await sconnect(port, chat, "user=writer")
    nws = a.count - a.posts
    t0 = time.monotonic()
    for k in range(nws):
        await w.send_msg("ws message %d \u00e9" % k, "ws-%d" % k)
        if k % 200 == 199:
            await w.wait_msgs(k - 100, 10)
    check(await w.wait_msgs(nws, 20), "writer got %d of %d echoes" %
          (len(w.msgs), nws))
    poster = Poster(port, key)

    def posts():
        out = []
        for k in range(a.posts):
            out.append(poster.post(chat, {"body": "posted %d" % k,
                                          "id": "post-%d" % k,
                                          "from": "backend"}))
        poster.close()
        return out

    res = await asyncio.to_thread(posts)
    bad = [r for r in res if r[0] != 201]
    check(not bad, "%d of %d POSTs not 201, e.g. %r" % (len(bad), a.posts,
                                                        bad[:2]))
    check(await rec.wait_msgs(a.count, 20), "recorder got %d of %d" %
          (len(rec.msgs), a.count))
    note("%d messages over WebSocket and %d POSTed in %.1f s" %
         (nws, a.posts, time.monotonic() - t0))
    why = describe_seqs(rec.seqs(), 1, a.count)
    check(why is None, "recorder: %s" % why)
    page = get_page(port, chat, "since=0&limit=1")
    snap = {"chat": chat, "epoch": page and page.get("epoch"),
            "welcome_epoch": rec.welcome.get("epoch"), "msgs": rec.msgs}
    check(snap["epoch"] == snap["welcome_epoch"],
          "history epoch %r, welcome epoch %r" % (snap["epoch"],
                                                  snap["welcome_epoch"]))
    with open(a.out, "w") as f:
        json.dump(snap, f)
    await rec.close()
    await w.close()


def walk_since(port, chat, snap, limit):
    """Page forward with since/next; every seq exactly once, as live."""
    n = len(snap["msgs"])
    got = []
    since, pages = 0, 0
    while since is not None and pages <= n // limit + 2:
        o = get_page(port, chat, "since=%d&limit=%d" % (since, limit))
        if o is None:
            return
        pages += 1
        ms = o.get("messages") or []
        check(o.get("latest") == n and o.get("epoch") == snap["epoch"] and
              o.get("chat") == chat,
              "page since=%d: chat %r epoch %r latest %r (expected %s %s "
              "%d)" % (since, o.get("chat"), o.get("epoch"), o.get("latest"),
                       chat, snap["epoch"], n))
        check(len(ms) <= limit, "page since=%d limit=%d has %d messages" %
              (since, limit, len(ms)))
        if ms and not check(ms[0].get("seq") == since + 1,
                            "page since=%d starts at seq %r" %
                            (since, ms[0].get("seq"))):
            return
        got.extend(ms)
        nxt = o.get("next")
        if nxt is not None:
            if not check(ms and nxt == ms[-1].get("seq"),
                         "page since=%d: next %r, last seq on it %r" %
                         (since, nxt, ms and ms[-1].get("seq"))):
                return
        since = nxt
    why = describe_seqs([m.get("seq") for m in got], 1, n)
    check(why is None, "since/next paging by %d: %s" % (limit, why))
    diff = [i for i, (x, y) in enumerate(zip(got, snap["msgs"])) if x != y]
    check(not diff, "since/next paging by %d: %d envelopes differ from what "
          "was delivered live, e.g. %r vs %r" %
          (limit, len(diff), diff and got[diff[0]],
           diff and snap["msgs"][diff[0]]))
    return pages


def walk_before(port, chat, snap, limit):
    """Page backward with before; every seq exactly once, oldest first."""
    n = len(snap["msgs"])
    got = []
    before = n + 1
    for _ in range(n // limit + 3):
        o = get_page(port, chat, "before=%d&limit=%d" % (before, limit))
        if o is None:
            return
        ms = o.get("messages") or []
        if not ms:
            break
        want = list(range(max(1, before - limit), before))
        if not check([m.get("seq") for m in ms] == want,
                     "page before=%d limit=%d: seqs %r..%r (%d), expected "
                     "%d..%d" % (before, limit, ms[0].get("seq"),
                                 ms[-1].get("seq"), len(ms), want[0],
                                 want[-1])):
            return
        got[:0] = ms
        before = ms[0].get("seq")
        if before == 1:
            break
    why = describe_seqs([m.get("seq") for m in got], 1, n)
    check(why is None, "before paging by %d: %s" % (limit, why))
    check(got == snap["msgs"], "before paging by %d: envelopes differ from "
          "what was delivered live" % limit)


async def wait_usable(port, chat, timeout, runs=10):
    """Until runs GETs in a row (each on a new connection, so on any
    worker) answer 200: after a store restart each worker reconnects on
    its own, and meanwhile answers 503.  Returns seconds waited or None."""
    t0 = time.monotonic()
    good = 0
    codes = collections.Counter()
    while time.monotonic() - t0 < timeout:
        st, _, _ = await asyncio.to_thread(
            http_req, port, "GET", "/chats/%s/messages?limit=1" % chat)
        codes[st] += 1
        good = good + 1 if st == 200 else 0
        if good >= runs:
            if set(codes) != {200}:
                note("history answered %s before %d 200s in a row (%.2f s)"
                     % (dict(codes), runs, time.monotonic() - t0))
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    fail("history GET still failing after %d s: %s" % (timeout,
                                                       dict(codes)))
    return None


async def do_history_check(a):
    port = a.port
    with open(a.snapshot) as f:
        snap = json.load(f)
    chat, n = snap["chat"], len(snap["msgs"])
    if await wait_usable(port, chat, 15) is None:
        return
    o = get_page(port, chat, "since=0")
    if o is None:
        return
    ms = o.get("messages") or []
    check([m.get("seq") for m in ms] == list(range(1, 101)) and
          o.get("next") == 100,
          "default page: %d messages %r..%r, next %r (expected 1..100, "
          "next 100)" % (len(ms), ms and ms[0].get("seq"),
                         ms and ms[-1].get("seq"), o.get("next")))
    check(o.get("epoch") == snap["epoch"], "epoch %r, before it was %r" %
          (o.get("epoch"), snap["epoch"]))
    pages = walk_since(port, chat, snap, 1000)
    walk_since(port, chat, snap, 777)
    o = get_page(port, chat, "since=%d" % n)
    check(o is not None and o.get("messages") == [] and
          o.get("next") is None,
          "page since=latest: %r" % (o and str(o)[:200]))
    walk_before(port, chat, snap, 1000)
    walk_before(port, chat, snap, 333)
    note("%d messages paged by since/next (%s pages of 1000, and by 777) "
         "and by before (1000, 333): each once, as delivered live" %
         (n, pages))

    bad = ["since=abc", "since=-1", "since=", "since=1.5", "since=0x10",
           "limit=0", "limit=-1", "limit=abc", "limit=", "limit=1001",
           "before=abc", "before=-5", "before=0", "before=",
           "since=5%00abc", "since=%2B1"]
    n400 = 0
    for q in bad:
        st, _, body = http_get_retry(port,
                                     "/chats/%s/messages?%s" % (chat, q))
        n400 += st == 400
        if check(st == 400, "GET ?%s: status %d, expected 400 (%r)" %
                 (q, st, body[:100])):
            try:
                e = json.loads(body)
                check(isinstance(e.get("error"), str),
                      "GET ?%s: 400 body %r" % (q, body[:100]))
            except ValueError:
                fail("GET ?%s: 400 body is not JSON: %r" % (q, body[:100]))
    st, _, _ = http_get_retry(port, "/chats/a!b/messages")
    n400 += st == 400
    check(st == 400, "GET /chats/a!b/messages: status %d, expected 400" % st)
    o = get_page(port, chat, "since=%%3%d" % 5)
    check(o is not None and (o.get("messages") or [{}])[0].get("seq") == 6,
          "GET ?since=%%35 (percent-encoded 5): %r" % (str(o)[:100],))
    o = get_page(port, chat, "limit=1000&since=%d" % (n - 1000))
    check(o is not None and len(o.get("messages") or []) == 1000,
          "limit=1000 is allowed")
    note("%d of %d malformed queries answered 400" % (n400, len(bad) + 1))

    if RETRIED_503:
        note("503 answers retried: %d" % sum(RETRIED_503.values()))
    # The WebSocket history request: the newest page before a seq.  An
    # error "unavailable" (the worker's store link is not back yet) is
    # retried, as a client would.
    c = await sconnect(port, chat, "user=reader")
    hs = []
    for req in ({"type": "history", "before": n - 99, "limit": 50},
                {"type": "history", "limit": 10}):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            k = len(c.other)
            await c.ws.send(json.dumps(req))
            await until(lambda: any(x.get("type") in ("history", "error")
                                    for x in c.other[k:]), 5)
            got = [x for x in c.other[k:]
                   if x.get("type") in ("history", "error")]
            if got and got[0].get("type") == "history":
                hs.append(got[0])
                break
            note("WebSocket history %r answered %r; again" % (req, got[:1]))
            await asyncio.sleep(0.2)
    if check(len(hs) == 2, "WebSocket history: %d answers" % len(hs)):
        check(hs[0].get("messages") == snap["msgs"][n - 150:n - 100],
              "WebSocket history before=%d limit=50: seqs %r" %
              (n - 99, [m.get("seq") for m in hs[0].get("messages") or []]
               [:5]))
        check(hs[1].get("messages") == snap["msgs"][n - 10:],
              "WebSocket history limit=10: seqs %r" %
              [m.get("seq") for m in hs[1].get("messages") or []])
    if a.send_one:
        check(c.welcome.get("epoch") == snap["epoch"],
              "welcome epoch %r, expected %r" % (c.welcome.get("epoch"),
                                                  snap["epoch"]))
        mid = "after-%d" % time.monotonic_ns()
        end = time.monotonic() + 10
        while not c.msgs and time.monotonic() < end:
            k = len(c.other)
            await c.send_msg("one more", mid)
            await until(lambda: c.msgs or any(x.get("type") == "error"
                                              for x in c.other[k:]), 5)
            if not c.msgs:
                note("send answered %r; again with the same id" %
                     ([x for x in c.other[k:]
                       if x.get("type") == "error"][:1],))
                await asyncio.sleep(0.2)
        if check(c.msgs, "no echo of a new message"):
            check(c.msgs[0].get("seq") == n + 1,
                  "a new message got seq %r, expected %d" %
                  (c.msgs[0].get("seq"), n + 1))
        snap["msgs"].append(c.msgs[0] if c.msgs else None)
        with open(a.snapshot, "w") as f:
            json.dump(snap, f)
    await c.close()


# --------------------------------------------------------------------------
# Subcommand: incomplete (sess_incomplete.sh)

async def away_and_back(port, chat, c, sender, missed, who):
    """c drops (TCP abort); sender sends missed messages; c resumes.
    Returns (new SClient, last seq before the cut, latest)."""
    last = c.last()
    token = c.welcome.get("session")
    await c.abort()
    n0 = len(sender.msgs)
    for k in range(missed):
        await sender.send_msg("%s %d" % (who, k), "%s-%d" % (who, k))
    check(await sender.wait_msgs(n0 + missed, 20), "%s: sender has %d of %d"
          % (who, len(sender.msgs), n0 + missed))
    latest = sender.msgs[-1].get("seq")
    r = await sconnect(port, chat, rq(token, last, c.user))
    await until(lambda: r.resumed is not None, 10)
    await asyncio.sleep(0.3)
    return r, last, latest


async def do_incomplete(a):
    t = tag()
    # 1. History trimmed past the position (history-size on port a.port).
    port = a.port
    chat = "trim-" + t
    s = await sconnect(port, chat, "user=bob")
    c = await sconnect(port, chat, "user=alice")
    for k in range(10):
        await s.send_msg("x", "t-%d" % k)
    check(await c.wait_msgs(10, 10), "alice got %d of 10" % len(c.msgs))
    c, last, latest = await away_and_back(port, chat, c, s, a.trim_missed,
                                          "trim")
    check_resume(c, last, False, "resume %d behind with history-size %d" %
                 (a.trim_missed, a.history_size), to=latest)
    o = get_page(port, chat, "since=%d&limit=1000" % last)
    if o is not None:
        ms = o.get("messages") or []
        check(ms and ms[0].get("seq") > last + 1 and
              len(ms) <= a.history_size,
              "history after %d messages with history-size %d: %d kept, "
              "first %r (trimming did not happen?)" %
              (latest, a.history_size, len(ms), ms and ms[0].get("seq")))
        note("trimmed: history keeps %d..%d; alice was at %d: resumed %r" %
             (ms[0].get("seq"), ms[-1].get("seq"), last, c.resumed))
    await s.send_msg("after", "t-after")
    if check(await c.wait_msgs(1, 10), "no live message after an "
             "incomplete resume"):
        check(c.msgs[0].get("seq") == latest + 1, "live after the "
              "incomplete resume: seq %r, expected %d" %
              (c.msgs[0].get("seq"), latest + 1))
    # Control: a gap the history still holds is replayed in full.
    c, last, latest = await away_and_back(port, chat, c, s, 5, "ctl")
    check_resume(c, last, True, "control: resume 5 behind", to=latest)
    await c.close()
    await s.close()

    # 2. recovery-max (port a.port_b): exactly recovery-max missed is
    # replayed, one more is not.
    port = a.port_b
    chat = "recmax-" + t
    s = await sconnect(port, chat, "user=bob")
    c = await sconnect(port, chat, "user=alice")
    await s.send_msg("x", "r-0")
    check(await c.wait_msgs(1, 10), "alice got no message")
    c, last, latest = await away_and_back(port, chat, c, s, a.recovery_max,
                                          "rm")
    check_resume(c, last, True, "resume exactly recovery-max (%d) behind" %
                 a.recovery_max, to=latest)
    c, last, latest = await away_and_back(port, chat, c, s,
                                          a.recovery_max + 1, "rm1")
    check_resume(c, last, False, "resume recovery-max + 1 (%d) behind" %
                 (a.recovery_max + 1), to=latest)
    note("recovery-max %d: %d behind replayed, %d behind complete:false" %
         (a.recovery_max, a.recovery_max, a.recovery_max + 1))
    await c.close()
    await s.close()

    # 3. The store flushed: a new epoch at seq 1; the old position is not
    # resumed.  Chat F1 has nobody connected during the flush, chat F2
    # keeps a member connected through it.
    port = a.port
    f1, f2 = "flush1-" + t, "flush2-" + t
    s1 = await sconnect(port, f1, "user=bob")
    c1 = await sconnect(port, f1, "user=alice")
    s2 = await sconnect(port, f2, "user=bob")
    for k in range(5):
        await s1.send_msg("x", "f1-%d" % k)
        await s2.send_msg("x", "f2-%d" % k)
    check(await c1.wait_msgs(5, 10) and await s2.wait_msgs(5, 10),
          "messages before the flush not delivered")
    e1 = c1.welcome.get("epoch")
    e1b = s2.welcome.get("epoch")
    token = c1.welcome.get("session")
    await c1.abort()            # resumable session, away
    await s1.close(1000)
    await asyncio.sleep(0.5)
    out = await redis_cli(a.redis_sock, "FLUSHALL")
    check(out.strip() == "OK", "FLUSHALL answered %r" % out)
    note("store flushed; old epochs %s (%s), %s (%s)" % (e1, f1, e1b, f2))
    await asyncio.sleep(0.3)
    await expect_refused(port, f1, rq(token, 5, "alice"), 401,
                         "resume of a session lost in the flush")
    d = await sconnect(port, f1, "user=carol")
    await d.send_msg("first again", "new-1")
    if check(await d.wait_msgs(1, 10), "no echo of the first message after "
             "the flush"):
        check(d.msgs[0].get("seq") == 1, "first message after the flush "
              "got seq %r, expected 1" % d.msgs[0].get("seq"))
    o = get_page(port, f1, "since=0")
    e2 = o and o.get("epoch")
    check(o is not None and e2 and e2 != e1 and o.get("latest") == 1,
          "history after the flush: epoch %r (old %r), latest %r" %
          (e2, e1, o and o.get("latest")))
    x = await sconnect(port, f1, "user=dave")
    check(x.welcome.get("epoch") == e2 and x.welcome.get("seq") == 1,
          "welcome after the flush: epoch %r seq %r, expected %r 1" %
          (x.welcome.get("epoch"), x.welcome.get("seq"), e2))
    await x.close()
    c = await sconnect(port, f1, "user=alice&since=5&epoch=%s" % e1)
    await until(lambda: c.resumed is not None, 10)
    await asyncio.sleep(0.3)
    check_resume(c, 5, False, "join since=5 with the old epoch")
    await c.close()
    c = await sconnect(port, f1, "user=erin&since=0&epoch=%s" % e2)
    await until(lambda: c.resumed is not None, 10)
    await asyncio.sleep(0.3)
    check_resume(c, 0, True, "control: join since=0 with the new epoch",
                 to=1)
    await c.close()
    note("after the flush: seq 1 in epoch %s; old position refused "
         "(complete:false)" % e2)
    # F2: bob stayed connected through the flush.
    y = await sconnect(port, f2, "user=carol")
    await y.send_msg("first again", "new-2")
    got = await y.wait_msgs(1, 10)
    if check(got, "F2 (a member connected through the flush): the sender "
             "got no echo of its message"):
        check(y.msgs[0].get("seq") == 1, "F2: first message after the "
              "flush got seq %r" % y.msgs[0].get("seq"))
    await asyncio.sleep(0.5)
    note("F2: bob, connected through the flush, received %r after seq 5; "
         "frames %r" % ([(m.get("seq"), m.get("id")) for m in s2.msgs[5:]],
                        [o.get("type") for o in s2.other
                         if o.get("type") != "presence"]))
    for z in (d, y, s2):
        await z.close()


# --------------------------------------------------------------------------
# Subcommand: dedup (sess_dedup.sh)

async def do_dedup(a):
    port = a.port
    chat = "dedup-" + tag()
    b = await sconnect(port, chat, "user=bob")
    c = await sconnect(port, chat, "user=alice")
    await c.send_msg("once", "d1")
    await c.send_msg("once", "d1")
    check(await c.wait_msgs(2, 10), "alice: %d echoes of d1 sent twice" %
          len(c.msgs))
    check(await b.wait_msgs(1, 10), "bob got no d1")
    await asyncio.sleep(0.5)
    s1 = c.msgs[0].get("seq")
    check([(m.get("id"), m.get("seq")) for m in c.msgs] ==
          [("d1", s1), ("d1", s1)],
          "alice's echoes of d1 sent twice: %r" %
          [(m.get("id"), m.get("seq")) for m in c.msgs])
    check(len(b.msgs) == 1, "bob received d1 %d times: %r" %
          (len(b.msgs), b.seqs()))
    await c.send_msg("other", "d-other")
    await c.send_msg("once", "d1")
    # The repeat's echo goes to alice alone, so it may come before or
    # after d-other's: look for it by id.
    check(await c.wait_msgs(4, 10), "alice: no echo of a later repeat")
    await asyncio.sleep(0.3)
    later = [(m.get("id"), m.get("seq")) for m in c.msgs[2:]]
    check(sorted(later, key=str) == sorted([("d1", s1), ("d-other", s1 + 1)],
                                           key=str),
          "d-other then d1 again: echoes %r, expected d-other %r and d1 %r" %
          (later, s1 + 1, s1))
    await b.send_msg("bob's own d1", "d1")
    check(await b.wait_msgs(3, 10), "bob: no echo of his d1")
    sb = b.msgs[-1].get("seq")
    check(b.msgs[-1].get("id") == "d1" and b.msgs[-1].get("from") == "bob"
          and sb not in (s1, None),
          "bob's d1 (another user, same id): %r, alice's d1 has seq %r" %
          (b.msgs[-1], s1))
    note("d1 twice: one seq %r for both echoes, bob saw it once; bob's own "
         "d1 is seq %r" % (s1, sb))

    # Across a resume: d2 is stored, but alice loses the connection before
    # she counts its echo; after the resume she sends it again.
    await c.send_msg("across", "d2")
    check(await until(lambda: any(m.get("id") == "d2" for m in b.msgs), 10),
          "bob did not get d2")
    s2 = [m.get("seq") for m in b.msgs if m.get("id") == "d2"][0]
    token = c.welcome.get("session")
    await c.abort()
    last = s2 - 1
    r = await sconnect(port, chat, rq(token, last, "alice"))
    await until(lambda: r.resumed is not None, 10)
    check_resume(r, last, True, "alice's resume")
    check([m.get("id") for m in r.msgs] == ["d2"],
          "replay after the cut: %r" % [(m.get("id"), m.get("seq"))
                                        for m in r.msgs])
    await r.send_msg("across", "d2")
    await r.send_msg("once", "d1")
    check(await r.wait_msgs(3, 10), "alice: %d frames after re-sending d2 "
          "and d1 (expected 3)" % len(r.msgs))
    check([(m.get("id"), m.get("seq")) for m in r.msgs[1:3]] ==
          [("d2", s2), ("d1", s1)],
          "re-sends after the resume: %r, expected d2 %r, d1 %r" %
          ([(m.get("id"), m.get("seq")) for m in r.msgs[1:3]], s2, s1))

    # POST with a repeated id.
    key = read_keys(a.key_file)[0]
    p = Poster(port, key)
    r1 = p.post(chat, {"body": "posted", "id": "p1", "from": "backend"})
    r2 = p.post(chat, {"body": "posted", "id": "p1", "from": "backend"})
    p.close()
    check(r1[0] == 201 and r2[0] == 201 and isinstance(r1[1], dict) and
          r1[1] == r2[1] and isinstance(r1[1].get("seq"), int),
          "POST id p1 twice: %r then %r" % (r1, r2))
    note("POST id p1 twice: %r, %r" % (r1, r2))
    await asyncio.sleep(0.5)
    o = get_page(port, chat, "since=0")
    if o is not None:
        hist = [(m.get("from"), m.get("id")) for m in o.get("messages")]
        cnt = collections.Counter(hist)
        check(all(k == 1 for k in cnt.values()),
              "history holds duplicates: %r" %
              {k: v for k, v in cnt.items() if v > 1})
        check(set(cnt) == {("alice", "d1"), ("alice", "d-other"),
                           ("bob", "d1"), ("alice", "d2"),
                           ("backend", "p1")},
              "history holds %r" % hist)
        note("history: %r" % [(m.get("seq"), m.get("from"), m.get("id"))
                              for m in o.get("messages")])
    seqs = b.seqs()
    check(len(seqs) == len(set(seqs)) and seqs == sorted(seqs),
          "bob's stream has duplicates or disorder: %r" % seqs)
    for x in (b, r):
        check(not x.unexpected(), "%s: unexpected frames %r" %
              (x.user, x.unexpected()[:3]))
        await x.close()


# --------------------------------------------------------------------------
# Subcommand: takeover (sess_takeover.sh)

async def do_takeover(a):
    port = a.port
    chat = "take-" + tag()
    b = await sconnect(port, chat, "user=bob")
    cur = await sconnect(port, chat, "user=alice")
    token = cur.welcome.get("session")
    n = 0

    async def bob_says():
        nonlocal n
        n += 1
        await b.send_msg("m%d" % n, "k-%d" % n)
        check(await b.wait_msgs(n, 10), "bob: no echo of k-%d" % n)
        return n

    # A resume while the session's connection is still open: the old one
    # is closed with 4009, the new one replays and goes on.
    await bob_says()
    check(await cur.wait_msgs(1, 10), "alice got nothing")
    await bob_says()            # alice also gets seq 2, but resumes at 1
    await cur.wait_msgs(2, 5)
    r = await sconnect(port, chat, rq(token, 1, "alice"))
    got = await until(lambda: cur.closed is not None, 5)
    check(got and cur.closed[0] == 4009,
          "the connection that held the session: closed %r, expected 4009"
          % (cur.closed,))
    await until(lambda: r.resumed is not None, 5)
    check_resume(r, 1, True, "take-over resume", to=2)
    await bob_says()
    check(await r.wait_msgs(2, 5) and r.msgs[1].get("seq") == 3,
          "the new connection after the take-over: %r" % r.seqs())
    note("open session taken over: old closed %r, new resumed %r" %
         (cur.closed, r.resumed))
    cur = r

    # Two resumes at once, a.rounds times; the holder is connected in odd
    # rounds and dropped (TCP abort) in even ones.
    combos = collections.Counter()
    for rnd in range(a.rounds):
        last = cur.last()
        if rnd % 2 == 0:
            await cur.abort()
        res = await asyncio.gather(
            *(sconnect(port, chat, rq(token, last, "alice"))
              for _ in range(2)), return_exceptions=True)
        await until(lambda: cur.closed is not None and
                    sum(1 for x in res if isinstance(x, SClient) and
                        x.closed is None) <= 1, 3)
        await asyncio.sleep(0.3)
        who = "round %d" % rnd
        if rnd % 2 == 1:
            check(cur.closed is not None and cur.closed[0] == 4009,
                  "%s: the holder was closed with %r, expected 4009" %
                  (who, cur.closed))
        live = [x for x in res if isinstance(x, SClient) and
                x.closed is None]
        lost = [x for x in res if x not in live]
        desc = []
        where = ["worker %s open" % x.worker for x in live]
        for x in lost:
            if isinstance(x, SClient):
                desc.append("closed %r" % (x.closed[0],))
                where.append("worker %s %s" % (x.worker, x.closed[0]))
                check(x.closed[0] == 4009, "%s: a losing resume was closed "
                      "with %r, expected 4009" % (who, x.closed))
            elif isinstance(x, Refused):
                desc.append("HTTP %d" % x.status)
                check(400 <= x.status < 500, "%s: a losing resume got %d" %
                      (who, x.status))
            elif (isinstance(x, websockets.ConnectionClosed) and
                  x.rcvd is not None and x.rcvd.code == 4009):
                # It claimed the session and was upgraded, and the other
                # resume took the session over before its welcome went out.
                desc.append("closed 4009 before its welcome")
            else:
                desc.append(repr(x))
                fail("%s: a resume failed: %r" % (who, x))
        combos[", ".join(sorted(desc))] += 1
        if not check(len(live) == 1, "%s (holder %s on worker %s): %d of 2 "
                     "concurrent resumes still open (%s)" %
                     (who, "dropped" if rnd % 2 == 0 else "connected",
                      cur.worker, len(live), ", ".join(where))):
            for x in live:
                await x.close()
            return
        w = live[0]
        check_resume(w, last, True, "%s: the winner" % who)
        k = await bob_says()
        check(await w.wait_msgs(1, 5) and w.msgs[-1].get("seq") == k,
              "%s: the winner did not receive seq %d (%r)" %
              (who, k, w.seqs()[-3:]))
        for x in lost:
            if isinstance(x, SClient):
                check(all(m.get("seq") != k for m in x.msgs),
                      "%s: the loser received seq %d" % (who, k))
        cur = w
    note("%d concurrent resume pairs; losers: %s" % (a.rounds, dict(combos)))
    for x in (cur, b):
        check(not x.unexpected(), "%s: unexpected frames %r" %
              (x.user, x.unexpected()[:3]))
        await x.close()


# --------------------------------------------------------------------------
# Subcommand: workerkill (sess_worker_kill.sh)

async def victims_elsewhere(a, chat, m, prefix):
    """a.victims clients of chat on one worker other than m's, and that
    worker's pid (a child of a.master); None if not found."""
    victims, spare = [], []
    for i in range(60):
        # Every attempt has a user of its own: the sessions of those that
        # land on the watcher's worker must not touch a victim's position.
        c = await sconnect(a.port, chat, "user=%s%d" % (prefix, i))
        if c.worker != m.worker and (not victims or
                                     c.worker == victims[0].worker):
            victims.append(c)
            if len(victims) == a.victims:
                break
        else:
            spare.append(c)
    for c in spare:
        await c.close(1000)
    if not check(len(victims) == a.victims, "only %d clients landed on one "
                 "worker other than the watcher's (%s)" %
                 (len(victims), m.worker)):
        return None
    wk = victims[0].worker
    out = await asyncio.to_thread(
        lambda: subprocess.run([a.regdump, a.segment], capture_output=True,
                               text=True, timeout=10).stdout)
    pid = None
    for line in out.splitlines():
        f = line.split()
        if f[:2] == ["slot", wk]:
            pid = int(f[3])
    if not check(pid is not None and proc_ppid(pid) == a.master,
                 "worker %s: pid %r is not a child of master %d:\n%s" %
                 (wk, pid, a.master, out)):
        return None
    note("watcher on worker %s; %d victims on worker %s (pid %d)" %
         (m.worker, len(victims), wk, pid))
    return victims, pid


async def watch_leaves(m, users, t0, lo, hi):
    """Until m saw presence leave for every user, at most hi seconds after
    t0; each must come between lo and hi seconds after t0."""
    seen = {}
    while time.monotonic() < t0 + hi + 2 and len(seen) < len(users):
        for u in users:
            if u not in seen and m.saw("leave", u):
                seen[u] = time.monotonic() - t0
        await asyncio.sleep(0.01)
    note("leave seen %s s later (expected %.1f..%.1f s)" %
         ({u: round(t, 2) for u, t in sorted(seen.items())}, lo, hi))
    for u in users:
        t = seen.get(u)
        if check(t is not None, "watcher saw no leave for %s within %.1f s"
                 % (u, hi + 2)):
            check(lo <= t <= hi, "%s: leave %.2f s after the drop, expected"
                  " %.1f..%.1f s" % (u, t, lo, hi))


async def do_workerkill(a):
    port, win = a.port, a.window
    await workerkill_dropped(a, port, win)
    if a.lease:
        await workerkill_connected(a, port, win)
    check(kill_ok(a.master), "master %d died" % a.master)


async def workerkill_dropped(a, port, win):
    """Victims drop (TCP abort), then their worker is killed."""
    chat = "wkill-" + tag()
    m = await sconnect(port, chat, "user=watcher")
    found = await victims_elsewhere(a, chat, m, "v")
    if found is None:
        return
    victims, pid = found
    for k in range(3):
        await m.send_msg("x", "wk-%d" % k)
    for c in victims:
        check(await c.wait_msgs(3, 10), "%s got %d of 3" % (c.user,
                                                            len(c.msgs)))
    epoch = m.welcome.get("epoch")
    tokens = {c.user: c.welcome.get("session") for c in victims}
    for c in victims:
        c.ws.transport.abort()
    t0 = time.monotonic()
    check(await until(lambda: all(m.saw("away", c.user) for c in victims),
                      5), "watcher saw away for %r only" %
          [c.user for c in victims if m.saw("away", c.user)])
    os.kill(pid, signal.SIGKILL)
    note("victims dropped; worker %d killed %.2f s later" %
         (pid, time.monotonic() - t0))
    for k in range(3, 5):
        await m.send_msg("x", "wk-%d" % k)
    check(await m.wait_msgs(5, 10), "watcher has %d of 5" % len(m.msgs))
    await watch_leaves(m, [c.user for c in victims], t0, win - 0.2,
                       win + a.slack)
    for c in victims:
        key = "racerd:{chat:%s}:pos:%s" % (chat, c.user)
        v = (await redis_cli(a.redis_sock, "GET", key)).strip()
        check(v == "%s 3" % epoch, "%s = %r, expected %r" %
              (key, v, "%s 3" % epoch))
    for c in victims[:2]:
        await expect_refused(port, chat, rq(tokens[c.user], 3, c.user), 401,
                             "resume of %s after the window" % c.user)
    j = await sconnect(port, chat, "user=%s" % victims[0].user)
    await j.wait_msgs(2, 5)
    await until(lambda: j.resumed is not None, 5)
    check_resume(j, 3, True, "%s's next join" % j.user, to=5)
    await j.close()
    await m.close()


async def workerkill_connected(a, port, win):
    """The worker is killed while its victims are still connected: their
    sessions are attached to a dead worker.  One resumes at once (a take-
    over of the dead worker's session); the others turn away when the
    lease lapses and leave after the window, their positions stored."""
    lease = a.lease
    chat = "wkill2-" + tag()
    if not check(await until(lambda: len([1 for c in children(a.master)
                                          if proc_state(c) not in
                                          (None, "Z")]) >= a.workers, 5),
                 "the killed worker was not replaced"):
        return
    m = await sconnect(port, chat, "user=watcher")
    found = await victims_elsewhere(a, chat, m, "w")
    if found is None:
        return
    victims, pid = found
    for k in range(3):
        await m.send_msg("x", "wk2-%d" % k)
    for c in victims:
        check(await c.wait_msgs(3, 10), "%s got %d of 3" % (c.user,
                                                            len(c.msgs)))
    epoch = m.welcome.get("epoch")
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    note("worker %d killed with %d victims connected" % (pid, len(victims)))
    ok = await until(lambda: all(c.closed is not None for c in victims), 5)
    check(ok, "victims' connections still open 5 s after their worker died")
    for k in range(3, 5):
        await m.send_msg("x", "wk2-%d" % k)
    check(await m.wait_msgs(5, 10), "watcher has %d of 5" % len(m.msgs))
    # One resumes at once, its session still attached to the dead worker.
    first, rest = victims[0], victims[1:]
    r = await sconnect(port, chat, rq(first.welcome.get("session"), 3,
                                      first.user))
    await until(lambda: r.resumed is not None, 5)
    check_resume(r, 3, True, "%s resuming %.2f s after its worker died" %
                 (first.user, time.monotonic() - t0), to=5)
    # The others: away when the lease lapses, leave after the window.
    ok = await until(lambda: all(m.saw("away", c.user) for c in rest),
                     lease + a.slack + 1, 0.01)
    t1 = time.monotonic()
    note("away after %.2f s (session-lease %d s)" % (t1 - t0, lease))
    check(ok, "watcher saw away only for %r within %.1f s of the kill "
          "(session-lease %d s)" % ([c.user for c in rest
                                     if m.saw("away", c.user)],
                                    lease + a.slack + 1, lease))
    # The window runs from away.
    await watch_leaves(m, [c.user for c in rest], t1, win - 0.2,
                       win + a.slack)
    check(not m.saw("leave", first.user), "leave for %s, who resumed" %
          first.user)
    pos = {}
    for c in rest:
        key = "racerd:{chat:%s}:pos:%s" % (chat, c.user)
        v = (await redis_cli(a.redis_sock, "GET", key)).strip()
        f = v.split()
        if check(len(f) == 2 and f[0] == epoch and f[1].isdigit() and
                 int(f[1]) <= 3, "%s = %r, expected %r with a seq <= 3" %
                 (key, v, epoch)):
            pos[c.user] = int(f[1])
    note("positions stored for the victims of the dead worker: %s (they "
         "had received 1..3)" % pos)
    if rest and rest[0].user in pos:
        u, p = rest[0].user, pos[rest[0].user]
        j = await sconnect(port, chat, "user=%s" % u)
        await j.wait_msgs(5 - p, 5)
        await until(lambda: j.resumed is not None, 5)
        check_resume(j, p, True, "%s's next join" % u, to=5)
        await j.close()
    await r.close()
    await m.close()


def kill_ok(pid):
    return proc_state(pid) not in (None, "Z")


# --------------------------------------------------------------------------
# Subcommand: api (history_api.sh)

async def do_api(a):
    port = a.port
    chat = "api-" + tag()
    keys = read_keys(a.key_file)
    path = "/chats/%s/messages" % chat
    msg = {"body": "hello", "id": "a1", "from": "backend"}

    def post(m, auth=None, p=None, raw=None):
        h = {"Content-Type": "application/json"}
        if auth is not None:
            h["Authorization"] = auth
        st, _, body = http_req(a.port if p is None else p, "POST",
                               path, raw if raw is not None else m, h)
        try:
            return st, json.loads(body)
        except ValueError:
            return st, body

    def refused(st, o, want, what):
        check(st == want and isinstance(o, dict) and
              isinstance(o.get("error"), str),
              "%s: %d %r, expected %d with a JSON error" %
              (what, st, o, want))

    member = await sconnect(port, chat, "user=member")
    # 403: no api-key-file on the other instance.
    for auth in (None, "Bearer " + keys[0]):
        st, o = post(msg, auth, a.port_nokeys)
        refused(st, o, 403, "POST to an instance without api-key-file "
                "(Authorization %r)" % (auth and "Bearer <key>"))
    # 401: missing or wrong credentials.
    wrong = [None, "", "Bearer", "Bearer ", "Bearer " + keys[0][:-1],
             "Bearer " + keys[0] + "x", "Bearer " + keys[0].upper()
             if keys[0].upper() != keys[0] else "Bearer " + keys[0].lower(),
             "Basic " + base64.b64encode(keys[0].encode()).decode(),
             keys[0], "Bearer  " + keys[0], "Bearer %s %s" % (keys[0],
                                                              keys[1])]
    for auth in wrong:
        st, o = post(msg, auth)
        refused(st, o, 401, "POST with Authorization %r" % (auth,))
    await asyncio.sleep(0.3)
    check(not member.msgs, "a refused POST was delivered: %r" %
          member.msgs[:1])
    o = get_page(port, chat, "since=0")
    check(o is not None and o.get("latest") == 0 and not o.get("messages"),
          "refused POSTs reached history: %r" % (o,))
    note("403 without api-key-file; 401 for %d wrong credentials" %
         len(wrong))
    # 201 with each key; a repeated id gets the same seq.
    res = []
    for i, k in enumerate(keys):
        st, o = post({"body": "hello %d" % i, "id": "a%d" % i,
                      "from": "backend"}, "Bearer " + k)
        check(st == 201 and o == {"seq": i + 1},
              "POST with key %d: %d %r, expected 201 {\"seq\": %d}" %
              (i, st, o, i + 1))
        res.append(o)
    st, o = post({"body": "hello 0", "id": "a0", "from": "backend"},
                 "Bearer " + keys[-1])
    check(st == 201 and o == {"seq": 1}, "POST repeating id a0: %d %r" %
          (st, o))
    if check(await member.wait_msgs(len(keys), 10), "member got %d of %d "
             "POSTed messages" % (len(member.msgs), len(keys))):
        for i, m in enumerate(member.msgs[:len(keys)]):
            check(m.get("seq") == i + 1 and m.get("from") == "backend" and
                  m.get("id") == "a%d" % i and m.get("body") ==
                  "hello %d" % i and m.get("chat") == chat and
                  isinstance(m.get("ts"), int),
                  "POSTed message delivered as %r" % m)
    await asyncio.sleep(0.3)
    check(len(member.msgs) == len(keys), "member got %d messages for %d "
          "distinct POSTs" % (len(member.msgs), len(keys)))
    # Malformed bodies and chat ids.
    auth = "Bearer " + keys[0]
    for what, raw in (("not JSON", b"{"), ("an array", b"[]"),
                      ("no body", b'{"id":"x"}'),
                      ("body not a string", b'{"body":5}'),
                      ("from with !", b'{"body":"x","from":"a!b"}')):
        st, o = post(None, auth, raw=raw)
        refused(st, o, 400, "POST %s" % what)
    st, _, body = http_req(port, "POST", "/chats/a!b/messages",
                           {"body": "x"}, {"Authorization": auth})
    check(st == 400, "POST to chat a!b: %d %r" % (st, body[:100]))
    note("201 {seq} with each of %d keys, repeat id -> same seq; "
         "malformed -> 400" % len(keys))
    st, o = post({"body": "no from", "id": "nf"}, auth)
    if check(st == 201, "POST without from: %d %r" % (st, o)):
        await member.wait_msgs(len(keys) + 1, 5)
        note("POST without from is delivered as from %r" %
             (member.msgs[-1].get("from") if member.msgs else None))
    await member.close()


# --------------------------------------------------------------------------

def add_commands(sp):
    """Add the session, history and API subcommands to the subparsers sp."""
    p = sp.add_parser("resume", help="cut off mid-stream, resume elsewhere")
    p.add_argument("--ports", required=True,
                   help="one port (resume on another worker) or two "
                   "(resume on the second instance)")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--cut-at", type=int, default=150)
    p.add_argument("--after", type=int, default=100,
                   help="messages sent only once the victim is back")
    p.add_argument("--away", type=float, default=0.5)
    p.add_argument("--pace", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=50)
    p.set_defaults(run=lambda a: run_async(do_resume(a), a.timeout))

    p = sp.add_parser("window", help="resume within and after the window")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--slack", type=float, default=2.5,
                   help="how late after the window the expiry may be")
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_window(a), a.timeout))

    p = sp.add_parser("restart", help="clients resume across a restart")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--old-pid", type=int, required=True)
    p.add_argument("--racerd", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--errfile", required=True)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--senders", type=int, default=5)
    p.add_argument("--before", type=int, default=20, help="per sender")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--down", type=float, default=0.5,
                   help="seconds between the old master's exit and the "
                   "new start")
    p.add_argument("--after", type=float, default=1.0)
    p.add_argument("--shutdown-timeout", type=int, default=5)
    p.add_argument("--timeout", type=float, default=55)
    p.set_defaults(run=lambda a: run_async(do_restart(a), a.timeout))

    p = sp.add_parser("history-fill", help="send messages, keep a snapshot")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chat", required=True)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--posts", type=int, default=1000)
    p.add_argument("--key-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=50)
    p.set_defaults(run=lambda a: run_async(do_history_fill(a), a.timeout))

    p = sp.add_parser("history-check", help="page through the snapshot")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--send-one", action="store_true")
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_history_check(a), a.timeout))

    p = sp.add_parser("incomplete", help="trimmed, recovery-max, flushed")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port-b", type=int, required=True)
    p.add_argument("--history-size", type=int, required=True)
    p.add_argument("--recovery-max", type=int, required=True)
    p.add_argument("--trim-missed", type=int, default=100)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_incomplete(a), a.timeout))

    p = sp.add_parser("dedup", help="repeated ids are stored once")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(run=lambda a: run_async(do_dedup(a), a.timeout))

    p = sp.add_parser("takeover", help="concurrent resumes of one session")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_takeover(a), a.timeout))

    p = sp.add_parser("workerkill", help="sessions of a killed worker "
                      "expire on time")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--victims", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--slack", type=float, default=2.5)
    p.add_argument("--lease", type=int, default=0,
                   help="session-lease: also kill a worker with its "
                   "clients connected")
    p.add_argument("--master", type=int, required=True)
    p.add_argument("--regdump", required=True)
    p.add_argument("--segment", required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_workerkill(a), a.timeout))

    p = sp.add_parser("api", help="POST authorisation")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port-nokeys", type=int, required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(run=lambda a: run_async(do_api(a), a.timeout))
