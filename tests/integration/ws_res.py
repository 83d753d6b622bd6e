#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the resilience subcommands of wsclient.py.
"""Resilience: the client side of res_*.sh.  Subcommands outage (the store
is killed and restarted under traffic), proxy (a TCP to unix-socket proxy
of the store link that can blackhole a connection), blackhole (a worker's
subscription goes silent and is detected), slow (a member that does not
read is closed, the others are not held up), presence (presence across
two instances, also when one dies) and limits (each configured limit at
its value), with their helpers.
"""

import asyncio
import base64
import collections
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time

import websockets

from wslib import (FAILS, JoinError, Raw, TLS_CTX, check, check_welcome,
                   close_payload, describe_seqs, fail, fetch_history, frame,
                   http_get, metric, note, read_until_close, rss_kib,
                   run_async, ws_open, ws_request, ws_url)


# --------------------------------------------------------------------------
# A client that keeps the arrival time of every frame, and what the
# resilience subcommands share

def now():
    return time.monotonic()


class RClient:
    """A joined client that keeps every frame with its arrival time.

    msgs: "msg" envelopes in arrival order; times: their arrival times;
    presence: (t, event, user); errors: error frames; resp: the frames that
    answer this client's own sends (error frames, and messages from itself).
    """

    def __init__(self, ws, welcome, worker, port, chat, user):
        self.ws = ws
        self.welcome = welcome
        self.worker = worker
        self.port = port
        self.chat = chat
        self.user = user
        self.msgs = []
        self.times = []
        self.presence = []
        self.errors = []
        self.other = []
        self.resp = asyncio.Queue()
        self.closed = None
        self.closed_at = None
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                t = now()
                try:
                    m = json.loads(raw)
                except ValueError:
                    m = {"type": "<bad json>", "raw": raw[:200]}
                if not isinstance(m, dict):
                    m = {"type": "<not an object>", "raw": raw[:200]}
                typ = m.get("type")
                if typ == "msg":
                    self.msgs.append(m)
                    self.times.append(t)
                    if m.get("from") == self.user:
                        self.resp.put_nowait(m)
                elif typ == "presence":
                    self.presence.append((t, m.get("event"), m.get("user")))
                elif typ == "error":
                    self.errors.append((t, m))
                    self.resp.put_nowait(m)
                else:
                    self.other.append(m)
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            self.other.append({"type": "<reader error>", "error": repr(e)})
        self.closed = (self.ws.close_code, self.ws.close_reason)
        self.closed_at = now()
        self.changed.set()

    async def wait_until(self, pred, timeout):
        """Wait until pred() holds (or the connection ended); bounded."""
        end = now() + timeout
        while not pred():
            left = end - now()
            if left <= 0 or self.closed is not None:
                return pred()
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    async def send_msg(self, body, mid=None):
        m = {"type": "msg", "body": body}
        if mid is not None:
            m["id"] = mid
        await self.ws.send(json.dumps(m))

    async def answer(self, mid, timeout):
        """The answer to a send of mid: ("ack", seq), ("error", code) or None.

        Messages of this client with another id (late copies of earlier
        sends) are skipped.
        """
        end = now() + timeout
        while True:
            left = end - now()
            if left <= 0:
                return None
            try:
                m = await asyncio.wait_for(self.resp.get(), left)
            except asyncio.TimeoutError:
                return None
            if m.get("type") == "error":
                return ("error", m.get("code"))
            if m.get("id") == mid:
                return ("ack", m.get("seq"))

    async def close(self, code=1000):
        try:
            await asyncio.wait_for(self.ws.close(code), 5)
        except Exception:  # noqa: BLE001
            pass
        try:
            await asyncio.wait_for(self.task, 5)
        except Exception:  # noqa: BLE001
            self.task.cancel()

    def abort(self):
        """Drop the TCP connection without a close frame."""
        self.ws.transport.abort()


async def rjoin(port, chat, user, timeout=10, query=""):
    """Join chat as user; returns an RClient after the welcome."""
    url = ws_url(port, chat, user) + query
    try:
        ws = await asyncio.wait_for(websockets.connect(
            url, max_size=None, ping_interval=None, close_timeout=3,
            max_queue=None), timeout)
    except asyncio.TimeoutError:
        raise JoinError("no handshake answer within %d s" % timeout)
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except BaseException:
        ws.transport.abort()
        raise
    try:
        welcome = json.loads(raw)
    except ValueError:
        welcome = {"type": "<bad json>", "raw": raw}
    return RClient(ws, welcome, ws.response_headers.get("X-Racerd-Worker"),
                   port, chat, user)


def slot_pid(regdump_path, segment, slot):
    out = subprocess.run([regdump_path, segment], capture_output=True,
                         text=True, timeout=10).stdout
    for line in out.splitlines():
        f = line.split()
        if f[:2] == ["slot", str(slot)] and "pid" in f:
            return int(f[f.index("pid") + 1])
    return None


def log_lines(path, pattern):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in f if re.search(pattern,
                                                                 line)]
    except OSError:
        return []


def stream_check(c, total, retried=()):
    """Why c's stream is not seq 1..total once each, in order (or None).

    A client that sent an id again after "unavailable" gets the stored
    original as the answer to the repeat, besides the copy in the stream;
    one such extra copy per retried id of its own is set aside.  Returns
    (why or None, number of copies set aside, of which out of order).
    """
    last, excused, ahead, bad = 0, set(), 0, []
    for m in c.msgs:
        s = m.get("seq")
        if s == last + 1:
            last = s
            continue
        key = m.get("id")
        if m.get("from") == c.user and key in retried and \
                key not in excused:
            excused.add(key)
            if isinstance(s, int) and s > last:
                ahead += 1
            continue
        bad.append((last, s))
    why = None
    if bad or last != total:
        why = ("stream breaks at %d place(s), e.g. after seq %s came %s; "
               "stream reached seq %d of %d" %
               (len(bad), bad[0][0] if bad else "-",
                bad[0][1] if bad else "-", last, total))
    return why, len(excused), ahead


# ---- outage

async def do_outage(a):
    port = a.port
    chat = "outage-%d" % os.getpid()
    argv = json.loads(a.redis_argv)
    clients = []
    for i in range(a.clients):
        clients.append(await rjoin(port, chat, "o%02d" % i))
        await asyncio.sleep(0.01)
    for c in clients:
        check_welcome(c, fresh=True)
    note("%d clients joined %s on workers %s" %
         (len(clients), chat,
          dict(collections.Counter(c.worker for c in clients))))
    if FAILS:
        return

    ph = {"kill": None, "restart": None, "up": None, "healthy": None}
    stop = [False]
    attempts = []           # (t, user, id, outcome, detail)
    acks = {}               # (user, id) -> seq
    sent_ids = collections.defaultdict(list)
    retried = collections.defaultdict(set)
    samples = []            # (t, status, body)
    done = [False]

    async def sender(c):
        k = 0
        while not stop[0]:
            mid = "%s-%d" % (c.user, k)
            sent_ids[c.user].append(mid)
            tries = 0
            while True:
                t = now()
                try:
                    await c.send_msg("m %s %d" % (c.user, k), mid)
                except websockets.ConnectionClosed:
                    fail("%s: connection closed while sending %s (%r)" %
                         (c.user, mid, c.closed))
                    return
                r = await c.answer(mid, 10)
                if r is None:
                    attempts.append((t, c.user, mid, "none", None))
                    fail("%s: send of %s (try %d) got neither its echo "
                         "nor an error within 10 s" % (c.user, mid,
                                                       tries + 1))
                    return
                attempts.append((t, c.user, mid, r[0], r[1]))
                if r[0] == "ack":
                    acks[(c.user, mid)] = r[1]
                    break
                if r[1] != "unavailable":
                    fail("%s: send of %s refused with %r, expected "
                         "unavailable" % (c.user, mid, r[1]))
                tries += 1
                retried[c.user].add(mid)
                if tries > 400:
                    fail("%s: %s refused %d times" % (c.user, mid, tries))
                    return
                await asyncio.sleep(a.retry)
            k += 1
            await asyncio.sleep(a.interval)

    async def poller():
        while not done[0]:
            t = now()
            st, body = await asyncio.to_thread(http_get, port, "/healthz",
                                               2)
            samples.append((t, st, body))
            await asyncio.sleep(0.1)

    def redis_ping():
        try:
            out = subprocess.run(["redis-cli", "-s", a.redis_sock, "ping"],
                                 capture_output=True, text=True,
                                 timeout=2).stdout
        except subprocess.TimeoutExpired:
            return False
        return out.strip() == "PONG"

    poll = asyncio.ensure_future(poller())
    t0 = now()
    senders = [asyncio.ensure_future(sender(c)) for c in clients]
    await asyncio.sleep(a.before)
    before_acks = len(acks)
    os.kill(a.redis_pid, 9)
    ph["kill"] = now()
    note("t=%.2f s: redis-server %d killed (-9) after %d acknowledged "
         "messages" % (ph["kill"] - t0, a.redis_pid, before_acks))
    await asyncio.sleep(a.down)
    ph["restart"] = now()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % p.pid)
    while not await asyncio.to_thread(redis_ping):
        if now() - ph["restart"] > 10:
            fail("restarted redis-server does not answer PING")
            stop[0] = done[0] = True
            return
        await asyncio.sleep(0.05)
    ph["up"] = now()
    note("t=%.2f s: redis-server restarted (pid %d), answers PING at "
         "t=%.2f s" % (ph["restart"] - t0, p.pid, ph["up"] - t0))
    while not any(s[0] > ph["up"] and s[1] == 200 for s in samples):
        if now() - ph["up"] > 20:
            fail("/healthz not 200 within 20 s of the store's return")
            break
        await asyncio.sleep(0.05)
    ph["healthy"] = now()
    note("t=%.2f s: /healthz 200 again (%.2f s after the store answered)"
         % (ph["healthy"] - t0, ph["healthy"] - ph["up"]))
    await asyncio.sleep(a.after)
    stop[0] = True
    await asyncio.wait(senders, timeout=20)
    for s in senders:
        if not s.done():
            fail("a sender did not finish within 20 s of the stop")
            s.cancel()
    # 10 answers of 200 in a row (both workers' links are back).
    run, end = 0, now() + 15
    while run < 10 and now() < end:
        st, body = await asyncio.to_thread(http_get, port, "/healthz", 2)
        run = run + 1 if st == 200 else 0
        await asyncio.sleep(0.05)
    done[0] = True
    await poll
    check(run >= 10, "/healthz did not answer 200 ten times in a row after "
          "the outage")

    # ---- what the store has
    latest, epoch, hist = await asyncio.to_thread(fetch_history, port, chat)
    check(epoch == clients[0].welcome.get("epoch"),
          "epoch changed across the outage: %r -> %r (history lost?)" %
          (clients[0].welcome.get("epoch"), epoch))
    seqs = [m.get("seq") for m in hist]
    why = describe_seqs(seqs, 1, latest or 0)
    check(why is None, "history: %s" % why)
    where = collections.defaultdict(list)
    for m in hist:
        where[(m.get("from"), m.get("id"))].append(m.get("seq"))
    dup = {k: v for k, v in where.items() if len(v) > 1}
    check(not dup, "%d message(s) stored more than once, e.g. %r" %
          (len(dup), list(dup.items())[:3]))
    lost = [(k, s) for k, s in acks.items() if where.get(k) != [s]]
    check(not lost, "%d of %d acknowledged messages are not in history once "
          "with their acknowledged seq, e.g. %r" %
          (len(lost), len(acks), [(k, s, where.get(k)) for k, s in
                                  lost[:3]]))
    allids = {(u, i) for u, ids in sent_ids.items() for i in ids}
    unacked = allids - set(acks)
    check(not unacked, "%d message(s) never acknowledged, e.g. %r" %
          (len(unacked), sorted(unacked)[:3]))
    strange = set(where) - allids
    check(not strange, "history holds messages nobody sent: %r" %
          sorted(strange)[:3])
    note("history: %d messages, seq 1..%r, each acknowledged one once" %
         (len(hist), latest))

    # ---- what each client received
    aside = ahead = 0
    end = now() + 15
    for c in clients:
        await c.wait_until(lambda: len(c.msgs) >= (latest or 0),
                           max(end - now(), 0.01))
    await asyncio.sleep(0.3)
    for c in clients:
        why, n, nahead = stream_check(c, latest or 0, retried[c.user])
        aside += n
        ahead += nahead
        check(why is None, "%s (worker %s): %s" % (c.user, c.worker, why))
        check(c.closed is None, "%s was disconnected: %r" % (c.user,
                                                             c.closed))
        odd = [o for o in c.other]
        check(not odd, "%s: unexpected frames %r" % (c.user, odd[:3]))
    note("every client received seq 1..%r once, in order (%d repeat "
         "answers to retried ids set aside, %d of them ahead of the "
         "stream)" % (latest, aside, ahead))

    # ---- sends during the outage (until the new store is started: it
    # may take racerd's connection before it answers our PING)
    lo, hi = ph["kill"] + 0.2, ph["restart"]
    during = [x for x in attempts if lo <= x[0] < hi]
    outcomes = collections.Counter((x[3], x[4]) if x[3] == "error"
                                   else (x[3],) for x in during)
    bad = [x for x in during if (x[3], x[4]) != ("error", "unavailable")]
    check(during, "no send was attempted while the store was down")
    check(not bad, "sends while the store was down answered otherwise "
          "than unavailable: %r" % bad[:5])
    users = {x[1] for x in during}
    check(len(users) == len(clients), "only %d of %d clients sent while "
          "the store was down" % (len(users), len(clients)))
    note("%d sends while the store was down: %s" %
         (len(during), dict(outcomes)))

    # ---- /healthz
    pre = [s for s in samples if s[0] < ph["kill"]]
    check(pre and all(s[1] == 200 for s in pre),
          "/healthz before the outage: %r" %
          sorted(collections.Counter(s[1] for s in pre).items()))
    dn = [s for s in samples if lo <= s[0] < hi]
    check(dn, "no /healthz sample while the store was down")
    not503 = [(round(s[0] - t0, 2), s[1]) for s in dn if s[1] != 503]
    check(not not503, "/healthz while the store was down: %r" %
          not503[:5])
    for s in dn[:1]:
        try:
            o = json.loads(s[2])
            check(isinstance(o.get("error"), str),
                  "/healthz 503 body has no \"error\": %r" % s[2][:200])
            note("/healthz during the outage: 503 %s" % s[2][:160].decode())
        except ValueError:
            fail("/healthz 503 body is not JSON: %r" % s[2][:200])
    for c in clients:
        await c.close()


# ---- proxy (a store link that can be blackholed)

async def do_proxy(a):
    """Forward TCP 127.0.0.1:LISTEN to the unix socket TO; control socket.

    Control commands, one per line: "list" (one line per connection: id,
    name from CLIENT SETNAME, state, t_open, t_closed, closed_by);
    "blackhole REGEX" (connections open now whose name matches drop every
    byte from now on, both ways, while staying open; answers "ok ID...");
    "status ID"; "probes ID" (when the connection sent a PUBLISH to a
    racerd:probe: channel).  Times are CLOCK_MONOTONIC seconds.
    """
    pairs = {}
    nid = [0]
    out = sys.stdout

    def log(msg):
        out.write("%.3f %s\n" % (now(), msg))
        out.flush()

    async def pump(p, src, dst, up):
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if up and p["name"] is None and len(p["head"]) < 4096:
                    p["head"] += data
                    mt = re.search(rb"SETNAME\r\n\$\d+\r\n([^\r]+)\r\n",
                                   p["head"])
                    if mt:
                        p["name"] = mt.group(1).decode("latin-1")
                        log("conn %d is %s" % (p["id"], p["name"]))
                if up and b"racerd:probe:" in data:
                    p["probes"].append(now())
                if p["black"]:
                    p["dropped"] += len(data)
                    continue
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        if p["closed"] is None:
            p["closed"] = now()
            p["closed_by"] = "racerd" if up else "redis"
            log("conn %d (%s) closed by %s; %d bytes dropped" %
                (p["id"], p["name"], p["closed_by"], p["dropped"]))
        for w in (p["cw"], p["sw"]):
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass

    async def on_client(cr, cw):
        nid[0] += 1
        p = {"id": nid[0], "name": None, "head": b"", "black": False,
             "opened": now(), "closed": None, "closed_by": None,
             "dropped": 0, "cw": cw, "sw": None, "probes": []}
        try:
            sr, sw = await asyncio.open_unix_connection(a.to)
        except OSError as e:
            log("conn %d: cannot reach %s: %r" % (p["id"], a.to, e))
            cw.close()
            return
        p["sw"] = sw
        pairs[p["id"]] = p
        log("conn %d open" % p["id"])
        await asyncio.gather(pump(p, cr, sw, True), pump(p, sr, cw, False))

    def line_of(p):
        return "%d %s %s %.3f %s %s" % (
            p["id"], p["name"], "closed" if p["closed"] else
            ("black" if p["black"] else "open"), p["opened"],
            "%.3f" % p["closed"] if p["closed"] else "-",
            p["closed_by"] or "-")

    async def on_ctl(r, w):
        try:
            while True:
                line = await r.readline()
                if not line:
                    break
                f = line.decode().split(None, 1)
                if not f:
                    continue
                if f[0] == "list":
                    ans = "".join(line_of(p) + "\n" for p in pairs.values())
                    ans += ".\n"
                elif f[0] == "blackhole" and len(f) == 2:
                    ids = []
                    for p in pairs.values():
                        if p["closed"] is None and p["name"] and \
                                re.search(f[1].strip(), p["name"]):
                            p["black"] = True
                            ids.append(str(p["id"]))
                            log("conn %d (%s) blackholed" % (p["id"],
                                                            p["name"]))
                    ans = "ok %s\n" % " ".join(ids)
                elif f[0] == "status" and len(f) == 2 and \
                        int(f[1]) in pairs:
                    ans = line_of(pairs[int(f[1])]) + "\n"
                elif f[0] == "probes" and len(f) == 2 and \
                        int(f[1]) in pairs:
                    ans = " ".join("%.3f" % t for t in
                                   pairs[int(f[1])]["probes"]) + "\n"
                else:
                    ans = "error\n"
                w.write(ans.encode())
                await w.drain()
        except (ConnectionError, OSError, ValueError):
            pass
        w.close()

    srv = await asyncio.start_server(on_client, "127.0.0.1", a.listen)
    ctl = await asyncio.start_unix_server(on_ctl, a.ctl)
    log("proxy 127.0.0.1:%d -> %s, control %s" % (a.listen, a.to, a.ctl))
    async with srv, ctl:
        await asyncio.sleep(a.lifetime)


async def proxy_ctl(path, cmd):
    r, w = await asyncio.open_unix_connection(path)
    w.write((cmd + "\n").encode())
    await w.drain()
    lines = []
    while True:
        line = (await asyncio.wait_for(r.readline(), 5)).decode()
        if not line:
            break
        line = line.rstrip("\n")
        if cmd == "list":
            if line == ".":
                break
            lines.append(line)
        else:
            lines.append(line)
            break
    w.close()
    return lines


# ---- blackhole

async def do_blackhole(a):
    port = a.port
    chat = "bh-%d" % os.getpid()
    clients = []
    for i in range(a.clients):
        clients.append(await rjoin(port, chat, "h%02d" % i))
        await asyncio.sleep(0.02)
    for c in clients:
        check_welcome(c, fresh=True)
    workers = collections.Counter(c.worker for c in clients)
    note("%d clients on workers %s" % (len(clients), dict(workers)))
    if not check(len(workers) >= 2, "clients landed on one worker only; "
                 "need members on two"):
        return
    victim = clients[0].worker
    name = "racerd:%s:w%s:sub" % (a.instance, victim)
    lst = await proxy_ctl(a.ctl, "list")
    mine = [x for x in lst if x.split()[1] == name and x.split()[2] ==
            "open"]
    if not check(len(mine) == 1, "no open proxied connection named %s: %r"
                 % (name, lst)):
        return
    vs = [c for c in clients if c.worker == victim]
    os_ = [c for c in clients if c.worker != victim]
    senders = [vs[-1], os_[-1]]
    note("victim: worker %s (%d members); senders on workers %s" %
         (victim, len(vs), [s.worker for s in senders]))

    stop = [False]
    sent = {}

    async def send(j, s):
        k = 0
        while not stop[0]:
            mid = "s%d-%d" % (j, k)
            sent[mid] = s.user
            await s.send_msg("b%d-%d" % (j, k), mid)
            k += 1
            await asyncio.sleep(a.interval)

    t0 = now()
    jobs = [asyncio.ensure_future(send(j, s)) for j, s in
            enumerate(senders)]
    await asyncio.sleep(a.before)
    t_b = now()
    ans = await proxy_ctl(a.ctl, "blackhole ^%s$" % re.escape(name))
    ids = ans[0].split()[1:] if ans and ans[0].startswith("ok") else []
    if not check(len(ids) == 1, "blackhole %s answered %r" % (name, ans)):
        stop[0] = True
        return
    note("t=%.2f s: %s (proxy conn %s) blackholed" % (t_b - t0, name,
                                                      ids[0]))
    t_closed = None
    while now() - t_b < a.detect_max + 5:
        st = (await proxy_ctl(a.ctl, "status %s" % ids[0]))[0].split()
        if st[2] == "closed":
            t_closed = float(st[4])
            by = st[5]
            break
        await asyncio.sleep(0.05)
    if t_closed is None:
        fail("the blackholed subscription was not dropped within %.0f s" %
             (a.detect_max + 5))
    else:
        det = t_closed - t_b
        note("racerd dropped the blackholed subscription %.2f s after the "
             "blackhole (closed by %s)" % (det, by))
        check(by == "racerd", "the blackholed connection was closed by %s"
              % by)
        check(det <= a.detect_max, "detection took %.2f s, more than %.1f s"
              " (probe after > 1 s idle, dropped > 3 s later, on 1 s timer "
              "ticks: at most 6 s, + 1 s slack)" %
              (det, a.detect_max))
        check(det >= a.detect_min, "dropped after %.2f s, before the probe "
              "deadline %.1f s: not the probe?" % (det, a.detect_min))
    # When the probe that found it went out (on the victim's cmd link),
    # and how long it was given.
    cmdname = "racerd:%s:w%s:cmd" % (a.instance, victim)
    cmds = [x.split()[0] for x in lst if x.split()[1] == cmdname and
            x.split()[2] == "open"]
    if check(len(cmds) == 1, "no open proxied connection named %s" %
             cmdname) and t_closed is not None:
        pr = (await proxy_ctl(a.ctl, "probes %s" % cmds[0]))[0].split()
        pr = [float(x) for x in pr if t_b < float(x) < t_closed]
        if check(pr, "no probe went out between the blackhole and the "
                 "drop"):
            note("first probe %.2f s after the blackhole, link dropped "
                 "%.2f s after that probe" % (pr[0] - t_b, t_closed - pr[0]))
            check(0.95 <= pr[0] - t_b <= 2.5, "the probe went out %.2f s "
                  "after the subscription fell silent (idle probe after "
                  "1 s, on 1 s ticks)" % (pr[0] - t_b))
            check(2.95 <= t_closed - pr[0] <= 4.5, "the link was dropped "
                  "%.2f s after its probe (deadline 3 s, on 1 s ticks)" %
                  (t_closed - pr[0]))
    # The worker subscribes again through the proxy.
    t_new = None
    while now() - t_b < a.detect_max + 10:
        lst = await proxy_ctl(a.ctl, "list")
        new = [x for x in lst if x.split()[1] == name and x.split()[2] ==
               "open" and x.split()[0] not in ids]
        if new:
            t_new = float(new[0].split()[3])
            break
        await asyncio.sleep(0.05)
    check(t_new is not None, "%s did not reconnect" % name)
    await asyncio.sleep(a.after)
    stop[0] = True
    await asyncio.gather(*jobs)
    total = len(sent)
    note("%d messages sent in %.1f s" % (total, now() - t0))

    end = now() + 15
    for c in clients:
        await c.wait_until(lambda: len(c.msgs) >= total,
                           max(end - now(), 0.01))
    await asyncio.sleep(0.3)
    for c in clients:
        who = "%s (worker %s)" % (c.user, c.worker)
        why = describe_seqs([m.get("seq") for m in c.msgs], 1, total)
        check(why is None, "%s: %s" % (who, why))
        ids_ = [m.get("id") for m in c.msgs]
        check(sorted(ids_) == sorted(sent), "%s: ids are not exactly the "
              "%d sent" % (who, total))
        check(c.closed is None, "%s was disconnected %r" % (who, c.closed))
    # The blackhole was real: the victim's members heard nothing while it
    # lasted; the others kept hearing.
    if t_closed is not None:
        for c in clients:
            quiet = [t for t in c.times if t_b + 0.3 < t < t_closed - 0.1]
            if c.worker == victim:
                check(not quiet, "%s on the blackholed worker received %d "
                      "messages during the blackhole (not blackholed?)" %
                      (c.user, len(quiet)))
            else:
                check(quiet, "%s on worker %s received nothing during the "
                      "blackhole of worker %s" % (c.user, c.worker, victim))
    if not FAILS:
        note("all %d members received seq 1..%d once, in order" %
             (len(clients), total))
    for c in clients:
        await c.close()


# ---- slow

async def do_slow(a):
    port = a.port
    chat = "slow-%d" % os.getpid()
    limit = a.max_outbound
    n = a.total // a.size
    pad = a.size - 200

    fast = []
    for i in range(a.members):
        fast.append(await rjoin(port, chat, "fast%d" % i))
    sender = await rjoin(port, chat, "sender")
    note("fast members on workers %s, sender on %s" %
         ([c.worker for c in fast], sender.worker))

    async def send_big(k):
        await sender.send_msg(("%06d" % k) + "x" * pad, "big-%d" % k)
        return await sender.wait_until(lambda: len(sender.msgs) > k, 10)

    # Warm-up: the workers have handled messages of this size before the
    # slow member comes, so that what the RSS shows is its queue.
    warm = a.warmup
    for k in range(warm):
        if not await send_big(k):
            fail("warm-up: no echo of message %d within 10 s" % k)
            return

    # Every member has the warm-up, so every worker that serves one knows
    # its latest seq.
    for c in fast:
        if not await c.wait_until(lambda: len(c.msgs) >= warm, 10):
            fail("warm-up: %s has %d of %d messages" %
                 (c.user, len(c.msgs), warm))
            return

    # The slow member: a raw socket with a small receive buffer that does
    # not read after the welcome.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    if TLS_CTX is not None:
        s = TLS_CTX.wrap_socket(s, server_hostname="127.0.0.1")
    slow = Raw.__new__(Raw)
    slow.sock, slow.buf, slow.eof = s, b"", False
    key = base64.b64encode(os.urandom(16)).decode()
    slow.send(ws_request(port, "/ws/%s?user=slowpoke" % chat, key))
    st, hdrs, _ = slow.read_response()
    if not check(st == 101, "slow member: handshake %d" % st):
        return
    fin, rsv, op, data = slow.read_frame()
    welcome = json.loads(data)
    # The welcome's seq is the latest its worker knows: a worker that
    # serves no fast member may still be hearing the last warm-up message
    # from the bus, which then comes live.  Either way the stream goes on
    # from it without a hole.
    wseq = welcome.get("seq")
    if not check(isinstance(wseq, int) and 0 < wseq <= warm,
                 "slow member's welcome: seq %r, expected %d or just "
                 "before it" % (wseq, warm)):
        return
    wslot = int(hdrs.get("x-racerd-worker"))
    wpid = slot_pid(a.regdump, a.segment, wslot)
    note("slow member on worker %d (pid %s) after %d warm-up messages" %
         (wslot, wpid, warm))
    if not check(wpid, "no pid for worker slot %d in the registry" % wslot):
        return
    await asyncio.sleep(0.5)
    base = rss_kib(wpid)
    hwm0 = rss_kib(wpid, "VmHWM")
    closes0 = metric(port, "racerd_slow_closes_total")
    peak = [base]
    done = [False]

    async def sampler():
        while not done[0]:
            v = rss_kib(wpid)
            if v is not None and v > peak[0]:
                peak[0] = v
            await asyncio.sleep(0.01)

    samp = asyncio.ensure_future(sampler())
    t0 = now()
    for k in range(warm, warm + n):
        if not await send_big(k):
            fail("sender: no echo of message %d within 10 s" % k)
            break
    dt = now() - t0
    total = warm + n
    end = now() + 15
    for c in fast:
        await c.wait_until(lambda: len(c.msgs) >= total,
                           max(end - now(), 0.01))
    done[0] = True
    await samp
    hwm1 = rss_kib(wpid, "VmHWM")
    if hwm1 is not None and hwm0 is not None and hwm1 > hwm0:
        peak[0] = max(peak[0], hwm1)
    grow = (peak[0] - base) * 1024
    note("%d messages of %d bytes (%.1f MiB) sent in %.2f s; worker RSS "
         "%d KiB before, peak %d KiB (+%.2f MiB; limit 2 x %d bytes)" %
         (n, a.size, n * a.size / 1048576.0, dt, base, peak[0],
          grow / 1048576.0, limit))
    if a.sanitized:
        # ASan keeps freed memory in quarantine and shadows it: RSS says
        # nothing about racerd's own use there.
        note("sanitizer build: RSS bound not checked")
    else:
        check(grow < 2 * limit, "worker RSS grew by %d bytes, not less than "
              "2 x max-outbound-bytes (%d)" % (grow, 2 * limit))

    for c in fast + [sender]:
        why = describe_seqs([m.get("seq") for m in c.msgs], 1, total)
        check(why is None, "%s: %s" % (c.user, why))
        check(c.closed is None, "%s was disconnected: %r" % (c.user,
                                                             c.closed))
        check(all(len(m.get("body", "")) == pad + 6 and
                  m.get("body", "")[:6] == "%06d" % (m.get("seq", 0) - 1)
                  for m in c.msgs),
              "%s: a body arrived cut or changed" % c.user)

    # Now the slow member reads what it was given, up to the end.
    def drain():
        got, nbytes = [], 0
        end = now() + 15
        while now() < end:
            try:
                fin, rsv, op, data = slow.read_frame(max(end - now(), 0.1))
            except EOFError:
                return got, None, b"EOF", nbytes
            except (socket.timeout, OSError) as e:
                return got, None, repr(e).encode(), nbytes
            nbytes += len(data)
            if op == 8:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 \
                    else 1005
                return got, code, data[2:], nbytes
            if op == 1:
                m = json.loads(data)
                if m.get("type") == "msg":
                    got.append(m.get("seq"))
        return got, None, b"still open after 15 s", nbytes

    if a.read_delay:
        await asyncio.sleep(a.read_delay)
    got, code, reason, nbytes = await asyncio.to_thread(drain)
    slow.close()
    note("slow member read %d messages (%.1f MiB) then %s" %
         (len(got), nbytes / 1048576.0,
          "close %d %r" % (code, reason) if code else reason.decode()))
    check(got == list(range(wseq + 1, wseq + 1 + len(got))),
          "slow member: what it received is not seq %d..k: %r" %
          (wseq + 1, got[:20]))
    check(len(got) < n, "slow member received all %d messages: not slow "
          "enough for the test" % n)
    check(code is not None or reason == b"EOF", "slow member: the "
          "connection did not end (%s)" % reason.decode())
    closes1 = metric(port, "racerd_slow_closes_total")
    check(closes0 is not None and closes1 == closes0 + 1,
          "racerd_slow_closes_total went %r -> %r, expected +1" %
          (closes0, closes1))
    lines = log_lines(a.log, r"closing slowpoke: more than %d bytes queued"
                      % limit)
    check(len(lines) == 1, "log: %d lines 'closing slowpoke: more than %d "
          "bytes queued'" % (len(lines), limit))
    check(not log_lines(a.log, r"closing (fast|sender)"),
          "a fast member was closed as slow")
    if code is not None:
        check(code == 4208, "slow member: close code %d %r, expected 4208"
              % (code, reason))
    elif a.require_frame:
        fail("slow member: no 4208 close frame on the wire (%s)" %
             reason.decode())
    else:
        note("note: the 4208 close frame never reached the slow member: "
             "the connection ended with %s" % reason.decode())

    # Its session stays resumable: a resume from 3 messages back replays
    # those 3 and says complete.
    last = total - 3
    try:
        r = await rjoin(port, chat, "slowpoke", 10,
                        "&session=%s&last=%d" % (welcome.get("session"),
                                                 last))
        ok = await r.wait_until(lambda: any(o.get("type") == "resumed"
                                            for o in r.other), 10)
        res = [o for o in r.other if o.get("type") == "resumed"]
        check(ok and res and res[0].get("complete") is True and
              res[0].get("replayed") == 3,
              "resume after the slow close: resumed frame %r" % res)
        check([m.get("seq") for m in r.msgs][:3] == [last + 1, last + 2,
                                                     total],
              "resume after the slow close replayed %r" %
              [m.get("seq") for m in r.msgs])
        await r.close()
    except Exception as e:  # noqa: BLE001
        fail("resume after the slow close failed: %r" % e)
    for c in fast + [sender]:
        await c.close()


# ---- presence

async def presence_of(port, chat):
    st, body = await asyncio.to_thread(http_get, port,
                                       "/chats/%s/presence" % chat)
    if st != 200:
        return None
    o = json.loads(body)
    return {m.get("user"): m.get("state") for m in o.get("members", [])}


async def do_presence(a):
    pa, pb = a.port_a, a.port_b
    chat = "pres-%d" % os.getpid()
    kill_pids = [int(x) for x in a.kill_pids.split()]
    watch = await rjoin(pa, chat, "a0")
    a1 = await rjoin(pa, chat, "a1")
    adrop = await rjoin(pa, chat, "adrop")
    aquit = await rjoin(pa, chat, "aquit")
    bs = [await rjoin(pb, chat, "b%d" % i) for i in range(3)]
    everyone = [watch, a1, adrop, aquit] + bs
    for c in everyone:
        check_welcome(c, window=a.window)
    names = sorted(c.user for c in everyone)
    note("a0 a1 adrop aquit on instance A (workers %s), b0..b2 on B "
         "(workers %s)" % ([c.worker for c in everyone[:4]],
                           [c.worker for c in bs]))

    # Both instances list everyone connected; the watcher saw the joins.
    want = {u: "connected" for u in names}
    for p, tag in ((pa, "A"), (pb, "B")):
        got, end = None, now() + 3
        while now() < end:
            got = await presence_of(p, chat)
            if got == want:
                break
            await asyncio.sleep(0.1)
        check(got == want, "presence on instance %s: %r, expected %r" %
              (tag, got, want))
    await watch.wait_until(lambda: {u for _, e, u in watch.presence
                                    if e == "join"} >= set(names) - {"a0"},
                           3)
    joins = {u for _, e, u in watch.presence if e == "join"}
    check(joins >= set(names) - {"a0"}, "watcher saw joins of %s only" %
          sorted(joins))

    def events(c, user):
        return [(t, e) for t, e, u in c.presence if u == user]

    # A dropped connection: away, then leave after the window.  A close
    # 1000: leave at once.
    t_drop = now()
    adrop.abort()
    t_quit = now()
    await aquit.close(1000)
    ok_ = await watch.wait_until(lambda: any(e == "leave" for _, e in
                                             events(watch, "adrop")),
                                 a.window + 4)
    ev = events(watch, "adrop")
    check(ok_, "no leave event for adrop within window + 4 s: %r" % ev)
    away = [t for t, e in ev if e == "away"]
    leave = [t for t, e in ev if e == "leave"]
    if check(away and leave, "adrop: events %r, expected away then leave" %
             [e for _, e in ev]):
        check(away[0] - t_drop < 1.5, "away for adrop %.2f s after the drop"
              % (away[0] - t_drop))
        check(a.window - 0.3 <= leave[0] - away[0] <= a.window + 2,
              "adrop: leave %.2f s after away, window %d s" %
              (leave[0] - away[0], a.window))
    evq = events(watch, "aquit")
    check([e for _, e in evq][-1:] == ["leave"] and "away" not in
          [e for _, e in evq] and evq[-1][0] - t_quit < 1.5,
          "aquit (close 1000): events %r, expected leave at once" %
          [(round(t - t_quit, 2), e) for t, e in evq])
    got = await presence_of(pa, chat)
    want = {u: "connected" for u in ("a0", "a1", "b0", "b1", "b2")}
    check(got == want, "presence after the drop and the quit: %r" % got)
    note("dropped: away after %.2f s, leave %.2f s later; close 1000: "
         "leave after %.2f s" % (away[0] - t_drop if away else -1,
                                 leave[0] - away[0] if leave and away
                                 else -1,
                                 evq[-1][0] - t_quit if evq else -1))

    # Instance B dies at once, master and workers, at a random phase of
    # the 1 s lease and expiry timers.
    await asyncio.sleep(random.random())
    for p in kill_pids:
        os.kill(p, 9)
    t_kill = now()
    note("killed instance B (-9): pids %s" % kill_pids)
    seen_away = set()
    lo = a.lease - a.lease / 3.0 + a.window - 0.5
    hi = a.lease + a.window + 3.0
    end = t_kill + hi + 1
    while now() < end:
        got = await presence_of(pa, chat)
        if got is not None:
            seen_away |= {u for u, s in got.items() if s == "away"}
            if not any(u.startswith("b") for u in got):
                break
        await asyncio.sleep(0.1)
    t_gone = now()
    for c in (watch, a1):
        await c.wait_until(lambda: all(any(e == "leave" for _, e in
                                           events(c, "b%d" % i))
                                       for i in range(3)), 2)
    got = await presence_of(pa, chat)
    check(got == {"a0": "connected", "a1": "connected"},
          "presence on A %.1f s after B died: %r" % (t_gone - t_kill, got))
    check(seen_away >= {"b0", "b1", "b2"}, "presence on A never showed "
          "b0..b2 away before they left (saw away: %s)" % sorted(seen_away))
    for c in (watch, a1):
        for i in range(3):
            u = "b%d" % i
            ev = events(c, u)
            es = [e for _, e in ev]
            if not check(es[-2:] == ["away", "leave"],
                         "%s: events about %s: %r, expected away, leave" %
                         (c.user, u, es)):
                continue
            ta, tl = ev[-2][0] - t_kill, ev[-1][0] - t_kill
            check(a.lease - a.lease / 3.0 - 0.5 <= ta <= a.lease + 1.5,
                  "%s: %s away %.2f s after the kill (lease %d s)" %
                  (c.user, u, ta, a.lease))
            check(lo <= tl <= hi, "%s: %s left %.2f s after the kill, "
                  "expected %.1f..%.1f s (lease %d + window %d)" %
                  (c.user, u, tl, lo, hi, a.lease, a.window))
            if c is watch:
                note("%s: away after %.2f s, leave after %.2f s" %
                     (u, ta, tl))
        wrong = [(e, u) for _, e, u in c.presence if u in ("a0", "a1") and
                 e in ("away", "leave")]
        check(not wrong, "%s: presence events about live members: %r" %
              (c.user, wrong))
        check(c.closed is None, "%s was disconnected: %r" % (c.user,
                                                             c.closed))
    # The survivors still chat.
    await watch.send_msg("still here", "a0-after")
    check(await a1.wait_until(lambda: any(m.get("id") == "a0-after" for m in
                                          a1.msgs), 5),
          "a1 did not receive a0's message after B died")
    for c in (watch, a1):
        await c.close()


# ---- limits

def ws_try(port, path, extra=""):
    """A raw handshake: (status, headers, body, Raw or None)."""
    r = Raw(port)
    r.send(ws_request(port, path, extra=extra))
    st, hdrs, body = r.read_response()
    if st != 101:
        r.close()
        return st, hdrs, body, None
    fin, rsv, op, data = r.read_frame()
    return st, hdrs, data, r


def json_error_body(body):
    try:
        o = json.loads(body)
        return isinstance(o, dict) and isinstance(o.get("error"), str)
    except ValueError:
        return False


def frames_for(r, want, timeout=5):
    """Read frames until want(frames) or a close; returns the frames."""
    seen = []
    end = now() + timeout
    while not want(seen):
        left = end - now()
        if left <= 0:
            break
        try:
            fin, rsv, op, data = r.read_frame(left)
        except (EOFError, socket.timeout, OSError):
            break
        if op == 1:
            m = json.loads(data)
            if m.get("type") == "presence":
                continue
            seen.append(m)
        else:
            seen.append({"opcode": op, "data": data})
            if op == 8:
                break
    return seen


def limits_connections(a):
    nf = len(FAILS)
    port, n = a.port_conns, a.max_connections
    held = []
    for i in range(n):
        st, hdrs, body, r = ws_try(port, "/ws/conn-%d?user=c%d" % (i % 2, i))
        if not check(st == 101, "connection %d of max-connections %d: "
                     "status %d %r" % (i + 1, n, st, body[:100])):
            return
        held.append((r, hdrs.get("x-racerd-worker")))
    note_if_ok(nf, "max-connections %d: %d connections open on workers %s"
               % (n, n, sorted(collections.Counter(w for _, w in
                                                   held).items())))
    st, hdrs, body, r = ws_try(port, "/ws/conn-0?user=over")
    check(st == 503 and json_error_body(body),
          "connection %d (max-connections %d): status %d %r, expected 503 "
          "with a JSON error" % (n + 1, n, st, body[:100]))
    if r:
        r.close()
    st, body = http_get(port, "/healthz")
    check(st == 200, "plain HTTP while at max-connections: /healthz %d" %
          st)
    # One leaves: one more may come, and only one.
    r0, _ = held.pop(0)
    r0.send(frame(8, close_payload(1000)))
    read_until_close(r0)
    r0.close()
    end = now() + 5
    while metric(port, "racerd_connections") != n - 1 and now() < end:
        time.sleep(0.05)
    st, hdrs, body, r = ws_try(port, "/ws/conn-1?user=again")
    check(st == 101, "after one of %d left, a new connection got %d %r" %
          (n, st, body[:100]))
    if r:
        held.append((r, None))
    st, hdrs, body, r = ws_try(port, "/ws/conn-1?user=over2")
    check(st == 503, "connection %d after the replacement: status %d" %
          (n + 1, st))
    if r:
        r.close()
    for r, _ in held:
        r.close()


def limits_connections_resume(a):
    """Resumes count too: 2n resumes while the store is slow to answer
    their claims (CLIENT PAUSE WRITE, 1 s) leave at most n connected."""
    nf = len(FAILS)
    port, n = a.port_conns, a.max_connections

    def conns_now(want, timeout=5):
        end = now() + timeout
        while metric(port, "racerd_connections") != want and now() < end:
            time.sleep(0.02)

    conns_now(0)
    toks = []
    for i in range(2 * n):
        r, w = ws_open(port, "conn-r", "r%d" % i)
        toks.append(("r%d" % i, w.get("session")))
        r.close()               # dropped: away, resumable
        conns_now(0)
    raws = [Raw(port) for _ in toks]
    out = subprocess.run(["redis-cli", "-s", a.redis_sock, "CLIENT", "PAUSE",
                          "1000", "WRITE"], capture_output=True, text=True,
                         timeout=5).stdout
    check(out.strip() == "OK", "CLIENT PAUSE answered %r" % out)
    for r, (user, tok) in zip(raws, toks):
        r.send(ws_request(port, "/ws/conn-r?user=%s&session=%s&last=0" %
                          (user, tok)))
    got = collections.Counter()
    for r in raws:
        try:
            got[r.read_response(5)[0]] += 1
        except Exception as e:  # noqa: BLE001
            got[repr(e)] += 1
    time.sleep(0.3)
    conns = metric(port, "racerd_connections")
    check(got.get(101, 0) <= n and (conns or 0) <= n,
          "%d resumes with max-connections %d (claims answered after "
          "1 s): %r; racerd_connections %r" % (2 * n, n, dict(got), conns))
    for r in raws:
        r.close()
    note_if_ok(nf, "max-connections %d: %d resumes while the store is "
               "slow: %r" % (n, 2 * n, dict(got)))


def limits_chats(a):
    nf = len(FAILS)
    port, n = a.port_chats, a.max_chats
    held = []
    for i in range(n):
        st, hdrs, body, r = ws_try(port, "/ws/chat-%d?user=u%d" % (i, i))
        if not check(st == 101, "chat %d of max-chats %d: status %d %r" %
                     (i + 1, n, st, body[:100])):
            return
        held.append(r)
    st, hdrs, body, r = ws_try(port, "/ws/chat-%d?user=over" % n)
    check(st == 503 and json_error_body(body),
          "chat %d (max-chats %d): status %d %r, expected 503 with a JSON "
          "error" % (n + 1, n, st, body[:100]))
    if r:
        r.close()
    # Another member of a chat that is there is no new chat.
    st, hdrs, body, r = ws_try(port, "/ws/chat-0?user=second")
    check(st == 101, "second member of an existing chat at max-chats: "
          "status %d %r" % (st, body[:100]))
    if r:
        held.append(r)
    # A chat whose last member left frees its entry.
    last = held.pop(n - 1)
    last.send(frame(8, close_payload(1000)))
    read_until_close(last)
    last.close()
    st, end = None, now() + 5
    while now() < end:
        st, hdrs, body, r = ws_try(port, "/ws/chat-%d?user=new" % n)
        if st == 101:
            held.append(r)
            break
        time.sleep(0.1)
    check(st == 101, "after chat-%d emptied, a new chat got %r" % (n - 1,
                                                                  st))
    st, hdrs, body, r = ws_try(port, "/ws/chat-%d?user=over2" % (n + 1))
    check(st == 503, "chat %d after the replacement: status %d" %
          (n + 1, st))
    if r:
        r.close()
    note_if_ok(nf, "max-chats %d: %d chats joined, the next refused (503), "
               "room for one again after one emptied" % (n, n))
    for r in held:
        r.close()


def limits_origins(a):
    nf = len(FAILS)
    port = a.port_misc
    allowed = a.origins.split()
    cases = [(o, 101) for o in allowed] + [(None, 101)] + [
        (o, 403) for o in ("https://c.example", allowed[0] + ".evil",
                           allowed[0].replace("https:", "http:"),
                           allowed[0][:-1], "null")]
    for o, want in cases:
        extra = "Origin: %s\r\n" % o if o is not None else ""
        st, hdrs, body, r = ws_try(port, "/ws/orig?user=o", extra)
        if r:
            r.close()
        check(st == want, "Origin %r: status %d, expected %d" % (o, st,
                                                                  want))
        if want == 403 and st == 403:
            check(json_error_body(body), "Origin %r: 403 body %r" %
                  (o, body[:100]))
    note_if_ok(nf, "allowed-origins: %d listed and no Origin get 101, 5 "
               "others 403" % len(allowed))


def limits_size(a):
    nf = len(FAILS)
    port, limit = a.port_misc, a.max_message_size
    pad = limit - len(json.dumps({"type": "msg", "body": ""}))
    st, hdrs, body, r = ws_try(port, "/ws/size?user=s1")
    r.send(frame(1, json.dumps({"type": "msg", "body": "x" * pad})))
    fs = frames_for(r, lambda s: bool(s))
    check(fs and fs[0].get("type") == "msg" and
          len(fs[0].get("body", "")) == pad,
          "a message of max-message-size (%d) bytes: got %r" %
          (limit, str(fs)[:200]))
    r.send(frame(1, json.dumps({"type": "msg", "body": "x" * (pad + 1)})))
    code, reason, seen = read_until_close(r)
    check(code == 1009, "a message of %d bytes: close %r, expected 1009" %
          (limit + 1, code))
    r.close()
    note_if_ok(nf, "max-message-size %d: %d bytes echoed, %d closed 1009"
               % (limit, limit, limit + 1))


def limits_rate(a):
    nf = len(FAILS)
    port, rate = a.port_misc, a.max_message_rate

    def burst(user, n):
        st, hdrs, body, r = ws_try(port, "/ws/rate?user=%s" % user)
        r.send(b"".join(frame(1, json.dumps({"type": "msg", "body": "r",
                                              "id": "%s-%d" % (user, i)}))
                        for i in range(n)))
        return r

    # rate + 19 at once: rate stored, 19 refused, still open.
    r = burst("r19", rate + 19)
    fs = frames_for(r, lambda s: sum(1 for m in s if m.get("type") ==
                                     "error") >= 19 and
                    sum(1 for m in s if m.get("type") == "msg") >= rate, 5)
    errs = [m for m in fs if m.get("type") == "error"]
    msgs = [m for m in fs if m.get("type") == "msg"]
    check(len(msgs) == rate and all(e.get("code") == "rate_limited" for e in
                                    errs) and len(errs) == 19,
          "%d messages at once (max-message-rate %d): %d echoed, errors %r"
          % (rate + 19, rate, len(msgs),
             collections.Counter(e.get("code") for e in errs)))
    check([m.get("id") for m in msgs] == ["r19-%d" % i for i in
                                          range(rate)],
          "the first %d were not the ones stored: %r" %
          (rate, [m.get("id") for m in msgs]))
    r.send(frame(9, b"alive?"))
    fs2 = frames_for(r, lambda s: any(m.get("opcode") in (8, 10)
                                      for m in s), 3)
    check(any(m.get("opcode") == 10 for m in fs2),
          "after 19 refused in a row the connection is not open: %r" %
          fs2[:3])
    # After a second the bucket is full again: rate more, then refused.
    time.sleep(1.1)
    r.send(b"".join(frame(1, json.dumps({"type": "msg", "body": "r",
                                          "id": "r19-again-%d" % i}))
                    for i in range(rate + 1)))
    fs = frames_for(r, lambda s: len(s) >= rate + 1, 5)
    check(sum(1 for m in fs if m.get("type") == "msg") == rate and
          sum(1 for m in fs if m.get("code") == "rate_limited") == 1,
          "a second later, %d at once: %r" %
          (rate + 1, [m.get("type") + ":" + str(m.get("code", m.get("id")))
                      for m in fs if "type" in m]))
    r.close()
    # rate + 20 at once: the 20th refusal in a row closes with 4100.
    r = burst("r20", rate + 20)
    code, reason, seen = read_until_close(r, 5)
    nerr = 0
    for op, data in seen:
        if op == 1 and json.loads(data).get("code") == "rate_limited":
            nerr += 1
    check(code == 4100, "%d at once: close %r %r, expected 4100" %
          (rate + 20, code, reason))
    check(nerr == 20, "%d rate_limited errors before the close, expected "
          "20" % nerr)
    r.close()
    # The stored ones may still be on their way to the store.
    end = now() + 3
    while True:
        latest, epoch, hist = fetch_history(port, "rate")
        by = collections.Counter(m.get("from") for m in hist)
        if by.get("r20", 0) >= rate or now() > end:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    latest, epoch, hist = fetch_history(port, "rate")
    by = collections.Counter(m.get("from") for m in hist)
    check(by.get("r20") == rate, "user r20 has %r messages stored, expected "
          "%d" % (by.get("r20"), rate))
    note_if_ok(nf, "max-message-rate %d: %d taken at once, the next "
               "refused; 19 refusals keep the connection, the 20th closes "
               "4100" % (rate, rate))


def note_if_ok(before, msg):
    """note(msg) unless a check failed since FAILS had before entries."""
    if len(FAILS) == before:
        note(msg)


def do_limits(a):
    for step in (limits_connections, limits_connections_resume,
                 limits_chats, limits_origins, limits_size, limits_rate):
        try:
            step(a)
        except Exception as e:  # noqa: BLE001
            fail("%s: %r" % (step.__name__, e))


# --------------------------------------------------------------------------

def add_commands(sp):
    """Add the resilience subcommands to the subparsers sp."""
    p = sp.add_parser("outage", help="the store is killed and restarted")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-pid", type=int, required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--redis-argv", required=True, help="JSON list")
    p.add_argument("--pidfile", required=True)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--before", type=float, default=2.0)
    p.add_argument("--down", type=float, default=2.5)
    p.add_argument("--after", type=float, default=2.0)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--retry", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=50)
    p.set_defaults(run=lambda a: run_async(do_outage(a), a.timeout))

    p = sp.add_parser("proxy", help="TCP to unix proxy, can blackhole")
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--ctl", required=True)
    p.add_argument("--lifetime", type=float, default=120)
    p.set_defaults(run=lambda a: run_async(do_proxy(a), a.lifetime + 5))

    p = sp.add_parser("blackhole", help="a subscription goes silent")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ctl", required=True)
    p.add_argument("--instance", required=True)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--before", type=float, default=1.5)
    p.add_argument("--after", type=float, default=2.0)
    p.add_argument("--detect-min", type=float, default=2.9)
    p.add_argument("--detect-max", type=float, default=7.0)
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_blackhole(a), a.timeout))

    p = sp.add_parser("slow", help="a member that does not read")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--regdump", required=True)
    p.add_argument("--segment", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--max-outbound", type=int, default=1048576)
    p.add_argument("--sanitized", action="store_true")
    p.add_argument("--total", type=int, default=10 * 1048576)
    p.add_argument("--size", type=int, default=65536)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--warmup", type=int, default=16,
                   help="messages sent before the slow member joins")
    p.add_argument("--read-delay", type=float, default=0,
                   help="seconds to wait after the flood before reading")
    p.add_argument("--require-frame", action="store_true",
                   help="fail unless the 4208 close frame is read")
    p.add_argument("--timeout", type=float, default=45)
    p.set_defaults(run=lambda a: run_async(do_slow(a), a.timeout))

    p = sp.add_parser("presence", help="presence across two instances")
    p.add_argument("--port-a", type=int, required=True)
    p.add_argument("--port-b", type=int, required=True)
    p.add_argument("--kill-pids", required=True)
    p.add_argument("--lease", type=int, default=3)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--timeout", type=float, default=45)
    p.set_defaults(run=lambda a: run_async(do_presence(a), a.timeout))

    p = sp.add_parser("limits", help="each limit at its value")
    p.add_argument("--port-conns", type=int, required=True)
    p.add_argument("--port-chats", type=int, required=True)
    p.add_argument("--port-misc", type=int, required=True)
    p.add_argument("--max-connections", type=int, required=True)
    p.add_argument("--max-chats", type=int, required=True)
    p.add_argument("--max-message-rate", type=int, required=True)
    p.add_argument("--max-message-size", type=int, required=True)
    p.add_argument("--origins", required=True)
    p.add_argument("--redis-sock", required=True)
    p.set_defaults(run=do_limits)
