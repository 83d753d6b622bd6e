#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration test driver: faults under load (res_faults.sh).
"""Self-resuming clients chatting while workers, masters and the store die.

MEMBERS clients (Debian's python3-websockets) chat in CHATS chats over two
racerd instances that share one redis-server.  Each keeps its place the
way racerd-protocol(7) asks a client to: after any drop it resumes with
?session=TOKEN&last=SEQ on either instance (42xx, 1001, 1011 and an
abnormal end at once; 41xx with back-off; 4009 stops it), and when the
session is gone (HTTP 401) it joins again with ?since=LAST.  Each sends
with ids, one message in flight, and sends the same id again after an
"unavailable" error, after a drop (once resumed) or when no answer came,
until its echo (the acknowledgement, with a seq) arrives; one message in
ten it sends twice in a row.  --nappers of them now and then drop their
connection and stay away 1-5 s.

Meanwhile the chaos task kills (-9) a random worker every --worker-every
seconds, kills an instance's master and starts it again every
--master-every seconds (the instances in turn), and kills the
redis-server (AOF, appendfsync always) every --redis-every seconds,
starting it again on the same socket and directory.

Then the senders stop, everything is up again, and the checks run:
every member's stream is contiguous from its first seq to its last, with
no duplicate (a complete:false resume is filled from HTTP history, and
counted); every member reaches its chat's latest seq; every send was
acknowledged; every acknowledged send is in HTTP history exactly once, at
its acknowledged seq; no (user, id) is in history twice.

Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

FAILS = []
COUNT = collections.Counter()


def fail(msg):
    if len(FAILS) < 40:
        print("FAIL: %s" % msg, flush=True)
    FAILS.append(msg)


def note(msg):
    print("  %s" % msg, flush=True)


def now():
    return time.monotonic()


# --------------------------------------------------------------------------
# Processes

def children(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def workers(master):
    return [c for c in children(master) if comm(c) != "redis-server"]


def age(pid):
    """Seconds since the process started (0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            start = int(f.read().split(") ", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0
    return up - start / os.sysconf("SC_CLK_TCK")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def kill9(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


async def wait_gone(pids, timeout):
    end = now() + timeout
    while any(alive(p) for p in pids):
        if now() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def http(port, path, timeout=5):
    """(status, parsed JSON or None); status 0 when unreachable."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


async def ahttp(port, path, timeout=5):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, http, port, path, timeout)


async def wait_healthy(port, timeout):
    end = now() + timeout
    while now() < end:
        st, _ = await ahttp(port, "/healthz", 2)
        if st == 200:
            return True
        await asyncio.sleep(0.1)
    return False


def redis_ping(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(sock)
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        s.close()


class Cluster:
    """The two racerd instances and the redis-server, as they come and go."""

    def __init__(self, a):
        self.a = a
        self.ports = [int(p) for p in a.ports.split(",")]
        self.masters = [int(p) for p in a.masters.split(",")]
        self.confs = a.confs.split(",")
        self.up = [True] * len(self.ports)
        self.redis_pid = a.redis_pid
        self.redis_argv = json.loads(a.redis_argv)
        self.procs = []
        self.runs = [{} for _ in self.ports]      # pid -> run of kills
        self.pending = [[] for _ in self.ports]   # runs for the respawned

    def pidfile(self, name, pid):
        with open(os.path.join(self.a.piddir, name + ".pid"), "w") as f:
            f.write("%d\n" % pid)

    def spawn(self, argv, err):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=False)
        self.procs.append(p)
        return p.pid

    async def kill_worker(self):
        """kill -9 a random worker of the instances that are up.  The
        master gives up on a worker slot after 5 crashes in a row, each
        within 10 s of its start (a crash loop, as it should), so a
        worker is only picked if that would not make 4 in a row: each
        worker carries the run of such kills that ended its
        predecessors."""
        cands = []
        for i in range(len(self.ports)):
            if not self.up[i]:
                continue
            ws = workers(self.masters[i])
            for w in ws:
                if w not in self.runs[i]:
                    q = self.pending[i]
                    self.runs[i][w] = q.pop(0) if q else 0
            self.pending[i] = []
            for w in ws:
                run = self.runs[i][w] + 1 if age(w) < 10.5 else 1
                if run <= 3:
                    cands.append((i, w, run))
        if not cands:
            COUNT["worker kills skipped"] += 1
            return
        i, w, run = random.choice(cands)
        if kill9(w):
            COUNT["worker kills"] += 1
            self.pending[i].append(run)

    async def restart_master(self, i):
        old = self.masters[i]
        ws = workers(old)
        self.up[i] = False
        kill9(old)
        COUNT["master kills"] += 1
        if not await wait_gone([old] + ws, 10):
            fail("instance %d: master %d or its workers outlived kill -9" %
                 (i, old))
        for p in self.procs:
            p.poll()
        await asyncio.sleep(0.5)
        with open(os.path.join(self.a.piddir, "racerd.err"), "ab") as err:
            pid = self.spawn([self.a.racerd, "-f", "-c", self.confs[i]], err)
        self.masters[i] = pid
        self.runs[i], self.pending[i] = {}, []
        self.pidfile("master%d" % i, pid)
        if not await wait_healthy(self.ports[i], 30):
            fail("instance %d: not healthy again after its master's "
                 "restart" % i)
        self.up[i] = True

    async def restart_redis(self):
        old = self.redis_pid
        kill9(old)
        COUNT["store kills"] += 1
        if not await wait_gone([old], 10):
            fail("redis-server %d outlived kill -9" % old)
        for p in self.procs:
            p.poll()
        await asyncio.sleep(self.a.redis_down)
        pid = self.spawn(self.redis_argv, subprocess.DEVNULL)
        self.redis_pid = pid
        self.pidfile("redis", pid)
        end = now() + 30
        while not redis_ping(self.a.redis_sock):
            if now() > end:
                fail("redis-server did not come back")
                return
            await asyncio.sleep(0.05)

    async def chaos(self, seconds):
        """Worker kills on one clock; master and store kills, one at a
        time, on another."""
        t0 = now()
        wk = asyncio.ensure_future(self.worker_kills(t0 + seconds))
        events = []
        k = 1
        while self.a.master_every > 0 and \
                k * self.a.master_every < seconds - 3:
            events.append((k * self.a.master_every, "master"))
            k += 1
        k = 0
        while self.a.redis_every > 0 and \
                (k + 0.5) * self.a.redis_every < seconds - 3:
            events.append(((k + 0.5) * self.a.redis_every, "redis"))
            k += 1
        events.sort()
        turn = 0
        for at, what in events:
            d = t0 + at - now()
            if d > 0:
                await asyncio.sleep(d)
            if what == "master":
                note("%5.1f s: kill -9 master of instance %d" %
                     (now() - t0, turn))
                await self.restart_master(turn)
                turn = (turn + 1) % len(self.ports)
            else:
                note("%5.1f s: kill -9 redis-server" % (now() - t0))
                await self.restart_redis()
        d = t0 + seconds - now()
        if d > 0:
            await asyncio.sleep(d)
        await wk

    async def worker_kills(self, end):
        while now() + self.a.worker_every < end:
            await asyncio.sleep(self.a.worker_every)
            await self.kill_worker()


# --------------------------------------------------------------------------
# Members

RESUME_NOW = "now"
BACK_OFF = "back off"
STOP = "stop"


def classify(code):
    """What a client does after a connection ended with CODE."""
    if code is None or code in (1001, 1006, 1011) or \
            4200 <= code < 4300:
        return RESUME_NOW
    if 4100 <= code < 4200:
        return BACK_OFF
    return STOP


class Member:
    def __init__(self, cl, idx, chat):
        self.cl = cl
        self.user = "m%02d" % idx
        self.chat = chat
        self.token = None
        self.epoch = None
        self.first = None       # first seq of its stream
        self.last = None        # last seq it has (None before welcome)
        self.seen = set()       # every seq of its stream
        self.sends = {}         # id -> times sent
        self.acked = {}         # id -> acknowledged seq
        self.pending = None     # (id, body) not acknowledged yet
        self.acked_ev = asyncio.Event()
        self.ws = None
        self.ready = False
        self.n = 0
        self.stopping = False
        self.nap_until = 0
        self.stopped = False
        self.resend_at = None

    # -- the stream

    def take(self, seq, m, how):
        """One message of the stream (live, replayed or from HTTP)."""
        if seq in self.seen or (self.last is not None and seq <= self.last):
            mid = m.get("id")
            if (how == "live" and m.get("from") == self.user and
                    self.acked.get(mid) == seq and self.sends.get(mid, 0) > 1):
                COUNT["repeat answers"] += 1   # a re-send's answer
                return
            fail("%s: seq %d again (%s; it had up to %s)" %
                 (self.user, seq, how, self.last))
            COUNT["duplicates"] += 1
            return
        if seq != self.last + 1:
            fail("%s: seq %d (from %s, id %s) after %d (%s): a gap" %
                 (self.user, seq, m.get("from"), m.get("id"), self.last,
                  how))
            COUNT["gaps"] += 1
        self.seen.add(seq)
        self.last = seq
        if self.first is None:
            self.first = seq
        COUNT["delivered" if how != "http" else "filled from HTTP"] += 1
        if m.get("from") == self.user:
            mid = m.get("id")
            if mid in self.acked and self.acked[mid] != seq:
                fail("%s: its id %s stored twice, seq %d and %d" %
                     (self.user, mid, self.acked[mid], seq))
            elif mid not in self.acked:
                if mid not in self.sends:
                    fail("%s: a message from it it never sent: %r" %
                         (self.user, m))
                self.acked[mid] = seq
                COUNT["acknowledged"] += 1
            if self.pending is not None and self.pending[0] == mid:
                self.pending = None
                self.acked_ev.set()

    async def fill(self, to):
        """complete:false: read (last, to] from HTTP history."""
        COUNT["incomplete resumes"] += 1
        while self.last < to:
            port = random.choice(self.cl.ports)
            st, page = await ahttp(port, "/chats/%s/messages?since=%d"
                                   "&limit=1000" % (self.chat, self.last))
            if st != 200 or not page:
                await asyncio.sleep(0.2)
                continue
            if self.epoch is not None and page.get("epoch") != self.epoch:
                fail("%s: epoch changed to %s during a fill" %
                     (self.user, page.get("epoch")))
            got = False
            for m in page.get("messages", []):
                if m["seq"] > to:
                    break
                self.take(m["seq"], m, "http")
                got = True
            if not got:
                fail("%s: history has no seq after %d (wanted up to %d)" %
                     (self.user, self.last, to))
                return

    # -- sending

    async def transmit(self, double=False):
        """Send the pending message (twice in a row if DOUBLE: a client
        may send an id again at any time, and it is stored once)."""
        if self.pending is None or not self.ready:
            return
        mid, body = self.pending
        for _ in range(2 if double else 1):
            self.sends[mid] = self.sends.get(mid, 0) + 1
            if self.sends[mid] > 1:
                COUNT["re-sends"] += 1
            self.resend_at = now() + 2
            try:
                await self.ws.send(json.dumps({"type": "msg", "id": mid,
                                               "body": body}))
            except websockets.ConnectionClosed:
                pass            # sent again once resumed

    async def sender(self, rate, end):
        while now() < end and not self.stopped:
            await asyncio.sleep(random.expovariate(rate))
            if now() >= end or self.stopped:
                break
            self.n += 1
            mid = "%s-%d" % (self.user, self.n)
            self.pending = (mid, "%s says %d" % (self.user, self.n))
            self.acked_ev.clear()
            COUNT["sent"] += 1
            double = random.random() < self.cl.a.double
            COUNT["sent twice at once"] += double
            await self.transmit(double)
            while self.pending is not None and not self.stopped:
                try:
                    await asyncio.wait_for(self.acked_ev.wait(), 1)
                except asyncio.TimeoutError:
                    if (self.ready and self.resend_at is not None and
                            now() > self.resend_at):
                        COUNT["answer timeouts"] += 1
                        await self.transmit()

    # -- the connection

    async def run(self):
        delay = 0.05
        while not self.stopping:
            port = random.choice(self.cl.ports)
            url = "ws://127.0.0.1:%d/ws/%s?" % (port, self.chat)
            if self.last is None:
                q, kind = "user=%s" % self.user, "join"
            elif self.token is not None:
                q, kind = ("session=%s&last=%d" % (self.token, self.last),
                           "resume")
            else:
                q, kind = ("user=%s&since=%d" % (self.user, self.last),
                           "since")
            try:
                ws = await asyncio.wait_for(websockets.connect(
                    url + q, max_size=None, ping_interval=None,
                    close_timeout=2, max_queue=None), 5)
            except websockets.exceptions.InvalidStatusCode as e:
                ws = None
                if e.status_code == 401 and kind == "resume":
                    COUNT["sessions expired"] += 1
                    self.token = None
                    continue
                if e.status_code not in (502, 503):
                    fail("%s: %s refused with HTTP %d" %
                         (self.user, kind, e.status_code))
                    self.stopped = True
                    return
                COUNT["refused 503"] += 1
            except (OSError, asyncio.TimeoutError,
                    websockets.exceptions.InvalidHandshake,
                    websockets.ConnectionClosed):
                ws = None
                COUNT["connect failures"] += 1
            if ws is None:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1)
                continue
            if kind == "resume":
                COUNT["resumes"] += 1
            elif kind == "since":
                COUNT["since joins"] += 1
            self.ws = ws
            code = await self.serve(ws, kind)
            self.ready = False
            self.ws = None
            if self.stopping:
                return
            d = self.nap_until - now()
            if d > 0:
                await asyncio.sleep(d)
            what = classify(code)
            COUNT["closed %s" % ("abnormally" if code is None
                                 else code)] += 1
            if what == STOP:
                fail("%s: closed with %s: do not reconnect" %
                     (self.user, code))
                self.stopped = True
                self.acked_ev.set()
                return
            if what == BACK_OFF:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2)
            else:
                delay = 0.05
                await asyncio.sleep(random.random() * 0.02)

    async def serve(self, ws, kind):
        before = self.last
        try:
            async for raw in ws:
                m = json.loads(raw)
                t = m.get("type")
                if t == "welcome":
                    if self.epoch is None:
                        self.epoch = m.get("epoch")
                    elif m.get("epoch") != self.epoch:
                        fail("%s: epoch changed from %s to %s" %
                             (self.user, self.epoch, m.get("epoch")))
                        self.epoch = m.get("epoch")
                    self.token = m.get("session")
                    if kind == "join":
                        self.last = m.get("seq")
                        self.ready = True
                        await self.transmit()
                elif t == "msg":
                    if self.last is None or not isinstance(m.get("seq"),
                                                           int):
                        fail("%s: bad message %r" % (self.user, m))
                        continue
                    self.take(m["seq"], m, "live" if self.ready
                              else "replay")
                elif t == "resumed":
                    if m.get("from") != before:
                        fail("%s: resumed from %s, it had %s" %
                             (self.user, m.get("from"), before))
                    if m.get("complete") is True:
                        if m.get("to") != self.last:
                            fail("%s: resumed to %s, it has %s" %
                                 (self.user, m.get("to"), self.last))
                    else:
                        if self.last != before:
                            fail("%s: complete:false after a replay" %
                                 self.user)
                        await self.fill(m.get("to"))
                    self.ready = True
                    await self.transmit()
                elif t == "error":
                    if m.get("code") == "unavailable":
                        COUNT["unavailable"] += 1
                        await asyncio.sleep(0.1 + random.random() * 0.2)
                        await self.transmit()
                    else:
                        fail("%s: error %r" % (self.user, m))
                elif t != "presence":
                    fail("%s: unexpected frame %r" % (self.user, m))
        except websockets.ConnectionClosed:
            pass
        except ValueError as e:
            fail("%s: bad frame: %r" % (self.user, e))
        code = ws.close_code
        return None if code in (None, 1006) else code

    async def napper(self, end):
        """Now and then drop the connection (no close frame) and stay
        away 1-5 s: long enough, with recovery-max 20 and
        reconnect-window 3, for complete:false resumes (filled from
        HTTP history) and expired sessions (401, joined again with
        since)."""
        while now() < end and not self.stopping:
            await asyncio.sleep(random.uniform(3, 8))
            ws = self.ws
            if ws is None or now() >= end:
                continue
            self.nap_until = now() + random.uniform(1, 5)
            COUNT["naps"] += 1
            ws.transport.abort()

    async def close(self):
        self.stopping = True
        ws = self.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1000), 5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass


# --------------------------------------------------------------------------

async def history(cl, chat):
    """All of a chat's history, oldest first, read over HTTP."""
    out, since = [], 0
    for _ in range(100000):
        st, page = await ahttp(random.choice(cl.ports),
                               "/chats/%s/messages?since=%d&limit=1000" %
                               (chat, since), 10)
        if st != 200 or not page:
            await asyncio.sleep(0.2)
            continue
        out += page.get("messages", [])
        if page.get("next") is None:
            return out, page.get("latest")
        since = page["next"]
    return out, None


async def main(a):
    cl = Cluster(a)
    chats = ["faults-%d-%s" % (i, a.tag) for i in range(a.chats)]
    members = [Member(cl, i, chats[i % a.chats]) for i in range(a.members)]
    runs = [asyncio.ensure_future(m.run()) for m in members]
    # Everyone in before the chaos starts.
    end = now() + 30
    while any(m.last is None for m in members) and now() < end:
        await asyncio.sleep(0.1)
    if any(m.last is None for m in members):
        fail("not every member joined within 30 s")
    t0 = now()
    sends = [asyncio.ensure_future(m.sender(a.rate, t0 + a.seconds))
             for m in members]
    naps = [asyncio.ensure_future(m.napper(t0 + a.seconds))
            for m in members[:a.nappers]]
    note("%d members in %d chats on ports %s; %d s of chaos" %
         (a.members, a.chats, a.ports, a.seconds))
    await cl.chaos(a.seconds)
    note("chaos over after %.1f s; draining" % (now() - t0))
    for i, p in enumerate(cl.ports):
        if not await wait_healthy(p, 30):
            fail("instance %d is not healthy after the chaos" % i)
    # Every send acknowledged.
    done, _ = await asyncio.wait(sends, timeout=a.drain)
    if len(done) != len(sends):
        left = [m.user for m in members if m.pending is not None]
        fail("%d sends not acknowledged %d s after the chaos: %s" %
             (len(left), a.drain, " ".join(left[:10])))
    # Every member caught up with its chat.
    latest = {}
    hist = {}
    for c in chats:
        hist[c], latest[c] = await history(cl, c)
    end = now() + a.drain
    while now() < end and any(m.last != latest[m.chat] for m in members
                              if not m.stopped):
        await asyncio.sleep(0.2)
    for m in members:
        if m.last != latest[m.chat]:
            fail("%s: has up to seq %s, %s is at %s" %
                 (m.user, m.last, m.chat, latest[m.chat]))
    for m in members:
        await m.close()
    await asyncio.wait(runs, timeout=10)
    for t in runs + sends + naps:
        t.cancel()
    # History: seq 1..latest, each (user, id) once, every ack in it.
    stored = 0
    for c in chats:
        seqs = [m["seq"] for m in hist[c]]
        if seqs != list(range(1, len(seqs) + 1)) or \
                (seqs and seqs[-1] != latest[c]):
            fail("%s: history is not seq 1..%s (%d entries)" %
                 (c, latest[c], len(seqs)))
        keys = collections.Counter((m.get("from"), m.get("id"))
                                   for m in hist[c])
        for k, n in keys.items():
            if n > 1:
                fail("%s: %s id %s stored %d times" % (c, k[0], k[1], n))
                COUNT["doubled in history"] += 1
        stored += len(seqs)
        where = {(m.get("from"), m.get("id")): m["seq"] for m in hist[c]}
        for mb in members:
            if mb.chat != c:
                continue
            for mid, seq in mb.acked.items():
                if where.get((mb.user, mid)) != seq:
                    fail("%s: acknowledged %s (seq %d) is %s in history" %
                         (mb.user, mid, seq, "at seq %s" %
                          where[(mb.user, mid)] if (mb.user, mid) in where
                          else "not"))
                    COUNT["acknowledged, not at that seq in history"] += 1
    # Streams: contiguous, without duplicates, from first to last.
    for m in members:
        if m.first is not None and \
                len(m.seen) != m.last - m.first + 1:
            fail("%s: stream %d..%d has %d seqs" %
                 (m.user, m.first, m.last, len(m.seen)))
    COUNT["in history"] = stored
    for k in ("naps", "resumes", "since joins", "sessions expired", "duplicates",
              "gaps", "incomplete resumes", "filled from HTTP"):
        COUNT[k] += 0       # shown even when none
    print("counts: " + ", ".join("%s %d" % kv for kv in
                                 sorted(COUNT.items())), flush=True)
    if COUNT["acknowledged"] == 0 or COUNT["resumes"] == 0:
        fail("nothing was acknowledged or nobody resumed: no test")


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ports", required=True, help="PORT1,PORT2")
    p.add_argument("--masters", required=True, help="PID1,PID2")
    p.add_argument("--confs", required=True, help="CONF1,CONF2")
    p.add_argument("--racerd", required=True)
    p.add_argument("--redis-pid", type=int, required=True)
    p.add_argument("--redis-argv", required=True, help="JSON array")
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--piddir", required=True,
                   help="pids of what it starts go to DIR/NAME.pid")
    p.add_argument("--members", type=int, default=50)
    p.add_argument("--chats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=35)
    p.add_argument("--rate", type=float, default=1.0,
                   help="messages per second per member")
    p.add_argument("--worker-every", type=float, default=2)
    p.add_argument("--master-every", type=float, default=12)
    p.add_argument("--redis-every", type=float, default=34)
    p.add_argument("--redis-down", type=float, default=1.5)
    p.add_argument("--nappers", type=int, default=5,
                   help="members that now and then go away 1-5 s")
    p.add_argument("--double", type=float, default=0.1,
                   help="share of messages sent twice in a row")
    p.add_argument("--drain", type=float, default=60)
    p.add_argument("--tag", default=str(os.getpid()))
    return p.parse_args()


if __name__ == "__main__":
    args = parse()
    asyncio.run(main(args))
    sys.exit(1 if FAILS else 0)
