#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the chat subcommands of wsclient.py.
"""Chat over real WebSocket connections: the subcommands basic (two members
and a bystander, run by chat_basic.sh and the TLS and store-auth tests),
fanout (many clients and senders, one order, optionally with the store
subscription killed mid-stream: chat_order.sh, chat_hosts.sh,
chat_gapfill.sh), churn (many joins and leaves, the registry and the
store's channels stay bounded: chat_churn.sh) and rejoin (a join while
the chat unsubscribes: chat_rejoin.sh), with their helpers.
"""

import asyncio
import collections
import os
import random
import re
import subprocess
import time

from wslib import (FAILS, alive, check, check_envelope, check_welcome,
                   describe_seqs, fail, join, note, redis_cli, run_async)


# --------------------------------------------------------------------------
# Subcommand: basic

async def do_basic(a):
    port = a.port
    tag = "%d%04d" % (os.getpid(), random.randrange(10000))
    chat, other = "basic-" + tag, "other-" + tag
    ca = await join(port, chat, "alice")
    cb = await join(port, chat, "bob")
    cc = await join(port, other, "carol")
    for c in (ca, cb, cc):
        check_welcome(c, fresh=True)
    if ca.welcome.get("session") == cb.welcome.get("session"):
        fail("alice and bob got the same session token")
    if ca.welcome.get("epoch") != cb.welcome.get("epoch"):
        fail("alice and bob got different epochs for one chat: %r %r" %
             (ca.welcome.get("epoch"), cb.welcome.get("epoch")))
    note("welcome frames checked; workers %s" %
         [c.worker for c in (ca, cb, cc)])

    # Interleaved sends from both members: one order for both, seq 1..6.
    sent = []
    for i in range(3):
        for c in (ca, cb):
            mid = "%s-%d" % (c.user, i)
            body = "hello %d from %s \u00e9\u263a" % (i, c.user)
            await c.send_msg(body, mid)
            sent.append((mid, c.user, body))
            # Each echo to the sender carries its seq before the next send.
            if not await c.wait_msgs(len(sent), 10):
                fail("%s: no echo of %s within 10 s (other %r, closed %r)" %
                     (c.user, mid, c.other[:3], c.closed))
                return
            echo = c.msgs[len(sent) - 1]
            check(echo.get("id") == mid and echo.get("seq") == len(sent),
                  "%s: echo %r, expected id %s seq %d" %
                  (c.user, echo, mid, len(sent)))
    n = len(sent)
    for c in (ca, cb):
        if not await c.wait_msgs(n, 10):
            fail("%s received %d of %d messages" % (c.user, len(c.msgs), n))
            continue
        why = describe_seqs([m.get("seq") for m in c.msgs], 1, n)
        check(why is None, "%s: %s" % (c.user, why))
        for m, (mid, frm, body) in zip(c.msgs, sent):
            check_envelope(m, chat, c.user)
            check(m.get("id") == mid and m.get("from") == frm and
                  m.get("body") == body,
                  "%s: got %r, expected id %s from %s body %r" %
                  (c.user, m, mid, frm, body))
    check([(m.get("seq"), m.get("id")) for m in ca.msgs] ==
          [(m.get("seq"), m.get("id")) for m in cb.msgs],
          "alice and bob saw different orders")
    note("alice and bob: %d messages each, seq 1..%d, same order" % (n, n))

    # A message without an id is delivered as well.
    await cb.send_msg("no id")
    for c in (ca, cb):
        if await c.wait_msgs(n + 1, 10):
            m = c.msgs[n]
            check(m.get("seq") == n + 1 and m.get("body") == "no id" and
                  m.get("from") == "bob",
                  "%s: message without id arrived as %r" % (c.user, m))
        else:
            fail("%s: message without an id not delivered" % c.user)
    n += 1

    # A late joiner's welcome names the latest seq; it receives only what
    # follows it.
    cd = await join(port, chat, "dave")
    check_welcome(cd)
    check(cd.welcome.get("seq") == n, "late welcome seq %r, expected %d" %
          (cd.welcome.get("seq"), n))
    check(cd.welcome.get("epoch") == ca.welcome.get("epoch"),
          "late joiner got another epoch")
    await ca.send_msg("after dave", "alice-late")
    for c, want in ((ca, n + 1), (cb, n + 1), (cd, 1)):
        if not await c.wait_msgs(want, 10):
            fail("%s did not get the message after dave joined" % c.user)
            continue
        m = c.msgs[want - 1]
        check(m.get("seq") == n + 1 and m.get("id") == "alice-late",
              "%s: expected seq %d alice-late, got %r" % (c.user, n + 1, m))
    check(len(cd.msgs) == 1, "dave received older messages: %r" %
          [m.get("seq") for m in cd.msgs])
    n += 1

    # The other chat has its own sequence, and hears nothing of this one.
    await cc.send_msg("elsewhere", "carol-0")
    if await cc.wait_msgs(1, 10):
        m = cc.msgs[0]
        check(m.get("seq") == 1 and m.get("chat") == other and
              m.get("id") == "carol-0",
              "carol's own message arrived as %r (expected seq 1)" % m)
    else:
        fail("carol's message was not echoed")
    await asyncio.sleep(1)
    check(len(cc.msgs) == 1, "carol (other chat) received %d messages: %r" %
          (len(cc.msgs), [(m.get("chat"), m.get("seq")) for m in cc.msgs]))
    for c in (ca, cb, cd):
        check(all(m.get("chat") == chat for m in c.msgs),
              "%s received a message of another chat" % c.user)
    check(len(ca.msgs) == n and len(cb.msgs) == n,
          "alice/bob received %d/%d messages, expected %d" %
          (len(ca.msgs), len(cb.msgs), n))
    for c in (ca, cb, cc, cd):
        errs = [o for o in c.other if o.get("type") not in ("presence",)]
        check(not errs, "%s received unexpected frames %r" % (c.user, errs))
        check(c.closed is None, "%s was disconnected: %r" % (c.user,
                                                            c.closed))
    note("other chat isolated; late joiner starts after its welcome seq")
    for c in (ca, cb, cc, cd):
        await c.close()
    check(ca.closed is not None and ca.closed[0] == 1000,
          "close 1000 was answered with %r" % (ca.closed,))


# --------------------------------------------------------------------------
# Subcommand: fanout (order, hosts, gap filling)

async def sub_clients(sock, instances):
    """{name: id} of the racerd subscription connections in the store."""
    out = await redis_cli(sock, "CLIENT", "LIST")
    found = {}
    for line in out.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        name = f.get("name", "")
        for inst in instances:
            if re.fullmatch(r"racerd:%s:w[0-9]+:sub" % re.escape(inst), name):
                found[name] = f.get("id")
    return found


async def chaos(a, progress, total):
    """Kill a worker's subscription connection a.kills times mid-stream."""
    instances = a.instances.split(",")
    done = 0
    for k in range(a.kills):
        goal = total * (k + 1) // (a.kills + 1)
        while progress() < goal:
            await asyncio.sleep(0.005)
        subs = await sub_clients(a.redis_sock, instances)
        if not subs:
            fail("kill %d: no racerd:*:wN:sub connection in CLIENT LIST" % k)
            return
        names = sorted(subs)
        name = names[k % len(names)]
        out = await redis_cli(a.redis_sock, "CLIENT", "KILL", "ID",
                              subs[name])
        if out.strip() != "1":
            fail("CLIENT KILL ID %s (%s) answered %r" % (subs[name], name,
                                                       out.strip()))
            continue
        note("at %d/%d sent: killed %s (id %s)" % (progress(), total, name,
                                                  subs[name]))
        done += 1
        # The worker must subscribe again (a new connection, same name).
        end = time.monotonic() + 10
        while True:
            now = await sub_clients(a.redis_sock, instances)
            if now.get(name) not in (None, subs[name]):
                break
            if time.monotonic() > end:
                fail("%s did not reconnect within 10 s" % name)
                break
            await asyncio.sleep(0.02)
    return done


async def do_fanout(a):
    ports = [int(p) for p in a.ports.split(",")]
    chat = a.chat or "fan-%d-%04d" % (os.getpid(), random.randrange(10000))
    n = a.clients

    async def one(i):
        return await join(ports[i % len(ports)], chat, "u%d" % i, 15)

    if a.stagger:
        # One at a time: each accept is a fresh race between the workers.
        clients = []
        for i in range(n):
            clients.append(await one(i))
            await asyncio.sleep(a.stagger)
    else:
        clients = await asyncio.gather(*(one(i) for i in range(n)))
    for c in clients:
        check_welcome(c, fresh=True)
    places = collections.Counter((c.port, c.worker) for c in clients)
    note("%d clients joined %s; per (port, worker): %s" %
         (n, chat, dict(sorted(places.items(), key=str))))
    for p in ports:
        w = {c.worker for c in clients if c.port == p}
        check(len(w) >= a.min_workers,
              "port %d: clients landed on %d distinct workers %s, need >= %d"
              % (p, len(w), sorted(w, key=str), a.min_workers))
    if FAILS:
        return

    # Senders: round-robin over the (port, worker) groups, so that every
    # worker that has clients sends too.
    groups = collections.defaultdict(list)
    for c in clients:
        groups[(c.port, c.worker)].append(c)
    order = sorted(groups, key=str)
    senders = []
    if a.senders > n:
        fail("more senders (%d) than clients (%d)" % (a.senders, n))
        return
    while len(senders) < a.senders:
        for g in order:
            if groups[g] and len(senders) < a.senders:
                senders.append(groups[g].pop(0))
    note("senders on %s" % [(s.port, s.worker) for s in senders])

    total = a.senders * a.count
    sent = [0]
    expect = {}

    async def send(j, s):
        for k in range(a.count):
            mid = "s%d-%d" % (j, k)
            expect[mid] = (s.user, "b%d-%d" % (j, k))
            await s.send_msg("b%d-%d" % (j, k), mid)
            sent[0] += 1
            if a.batch and (k + 1) % a.batch == 0:
                await asyncio.sleep(a.pause)

    t0 = time.monotonic()
    jobs = [send(j, s) for j, s in enumerate(senders)]
    if a.kills:
        jobs.append(chaos(a, lambda: sent[0], total))
    res = await asyncio.gather(*jobs)
    note("%d messages sent in %.2f s" % (total, time.monotonic() - t0))
    if a.kills and res[-1] != a.kills:
        fail("only %r of %d subscription kills happened" % (res[-1], a.kills))

    late = []
    for c in clients:
        left = a.deliver_timeout - (time.monotonic() - t0)
        if not await c.wait_msgs(total, max(left, 0.1)):
            late.append(c)
    t1 = time.monotonic() - t0
    note("delivery complete after %.2f s" % t1)
    for c in late:
        fail("%s (port %d worker %s) received %d of %d messages "
             "(closed %r, other %r)" % (c.user, c.port, c.worker, len(c.msgs),
                                        total, c.closed,
                                        [o for o in c.other if
                                         o.get("type") != "presence"][:3]))
    await asyncio.sleep(0.3)    # anything after the last one is extra
    ref = None
    for c in clients:
        who = "%s (port %d worker %s)" % (c.user, c.port, c.worker)
        why = describe_seqs([m.get("seq") for m in c.msgs], 1, total)
        check(why is None, "%s: %s" % (who, why))
        ids = [m.get("id") for m in c.msgs]
        check(set(ids) == set(expect) and len(ids) == len(expect),
              "%s: ids are not exactly the %d sent (%d distinct of %d)" %
              (who, total, len(set(ids)), len(ids)))
        bad = [m for m in c.msgs
               if expect.get(m.get("id")) != (m.get("from"), m.get("body"))
               or m.get("chat") != chat]
        check(not bad, "%s: %d envelopes with wrong from/body/chat, e.g. %r"
              % (who, len(bad), bad[:1]))
        pairs = [(m.get("seq"), m.get("id")) for m in c.msgs]
        if ref is None:
            ref = (who, pairs)
        elif pairs != ref[1]:
            i = next((i for i, (x, y) in enumerate(zip(pairs, ref[1]))
                      if x != y), min(len(pairs), len(ref[1])))
            fail("%s and %s differ at index %d: %r vs %r" %
                 (who, ref[0], i, pairs[i:i + 2], ref[1][i:i + 2]))
    # Per-sender order is not promised by the contract; report it only.
    if ref is not None:
        pos = {mid: i for i, (_, mid) in enumerate(ref[1])}
        swapped = sum(1 for j in range(a.senders) for k in range(1, a.count)
                      if pos.get("s%d-%d" % (j, k), 0) <
                      pos.get("s%d-%d" % (j, k - 1), 0))
        if swapped:
            note("note: %d messages overtook an earlier one of the same "
                 "sender" % swapped)
    if not FAILS:
        note("all %d clients received seq 1..%d once each, in one order" %
             (n, total))
    await asyncio.gather(*(c.close() for c in clients))


# --------------------------------------------------------------------------
# Subcommand: churn

def regdump(a):
    out = subprocess.run([a.regdump, a.segment], capture_output=True,
                         text=True, timeout=10).stdout
    rooms = members = None
    conns = []
    for line in out.splitlines():
        f = line.split()
        if f[:1] == ["rooms"]:
            rooms, members = int(f[1]), int(f[3])
        elif f[:1] == ["slot"]:
            conns.append(int(f[f.index("conns") + 1]))
    return rooms, members, conns, out


async def chat_channels(sock):
    out = await redis_cli(sock, "PUBSUB", "CHANNELS", "racerd:{chat:*")
    return [line for line in out.splitlines() if line.strip()]


async def do_churn(a):
    port = a.port
    stats = collections.Counter()
    peak = {"members": 0, "rooms": 0, "channels": 0}
    counter = [0]
    t0 = time.monotonic()
    prefix = "churn%d" % os.getpid()

    async def once(n):
        chat = "%s-%d" % (prefix, random.randrange(a.chats))
        try:
            c = await join(port, chat, "c%d" % n, 10)
        except Exception as e:  # noqa: BLE001
            stats["join failed: %s" % (e,)] += 1
            return
        if c.welcome.get("type") != "welcome" or \
                c.welcome.get("chat") != chat:
            stats["bad welcome"] += 1
        mode = n % 5
        if mode == 0:           # orderly close
            await c.close(1000)
        elif mode == 1:         # going away: a resumable session
            await c.close(1001)
        elif mode == 2:         # TCP dropped without a close frame
            c.ws.transport.abort()
            c.task.cancel()
        elif mode == 3:         # say something, then leave
            await c.send_msg("hi", "m%d" % n)
            if not await c.wait_msgs(1, 10):
                stats["message not echoed"] += 1
            await c.close(1000)
        else:                   # stay a moment, then leave
            await asyncio.sleep(random.random() * 0.05)
            await c.close(1000)
        stats["joins"] += 1

    async def runner():
        while counter[0] < a.joins:
            n = counter[0]
            counter[0] += 1
            await once(n)

    async def sampler():
        while counter[0] < a.joins:
            await asyncio.sleep(0.5)
            rooms, members, conns, _ = await asyncio.to_thread(regdump, a)
            if rooms is not None:
                peak["rooms"] = max(peak["rooms"], rooms)
                peak["members"] = max(peak["members"], members)
            peak["channels"] = max(peak["channels"],
                                   len(await chat_channels(a.redis_sock)))

    samp = asyncio.ensure_future(sampler())
    await asyncio.gather(*(runner() for _ in range(a.concurrency)))
    samp.cancel()
    dt = time.monotonic() - t0
    note("%d joins and leaves over %d chats in %.1f s (%d at a time); "
         "peak rooms %d members %d chat channels %d" %
         (stats["joins"], a.chats, dt, a.concurrency, peak["rooms"],
          peak["members"], peak["channels"]))
    for k, v in stats.items():
        if k != "joins":
            fail("%d times: %s" % (v, k))
    check(stats["joins"] == a.joins, "only %d of %d joins completed" %
          (stats["joins"], a.joins))
    # The checks below mean nothing unless the churn was seen at all.
    check(peak["members"] > 0 and peak["rooms"] > 0,
          "registry never showed a member during the churn (%r)" % peak)
    check(peak["channels"] > 0,
          "no racerd:{chat:*} channel was ever subscribed during the churn")

    end = time.monotonic() + 10
    while True:
        rooms, members, conns, out = regdump(a)
        if rooms == 0 and members == 0 and conns and not any(conns):
            break
        if time.monotonic() > end:
            fail("registry not empty 10 s after the churn:\n%s" % out)
            break
        await asyncio.sleep(0.2)
    note("registry after the churn: rooms %r members %r conns %r" %
         (rooms, members, conns))
    end = time.monotonic() + 10
    while True:
        ch = await chat_channels(a.redis_sock)
        if not ch:
            break
        if time.monotonic() > end:
            fail("%d chat channel(s) still subscribed 10 s after the churn,"
                 " e.g. %s" % (len(ch), ch[:5]))
            break
        await asyncio.sleep(0.2)
    why = await alive(port)
    check(why is None, "after the churn a fresh client cannot chat: %s" %
          why)


# --------------------------------------------------------------------------
# Subcommand: rejoin

async def do_rejoin(a):
    """A join that races its chat's unsubscription still gets a welcome.

    The last member leaves; the worker unsubscribes the chat a couple of
    seconds later.  The store is paused (CLIENT PAUSE) around that moment,
    so the UNSUBSCRIBE is still unanswered when a new member joins.
    """
    port = a.port
    chat = "rejoin-%d" % os.getpid()
    c = await join(port, chat, "first")
    check_welcome(c, fresh=True)
    await c.send_msg("before", "r-1")
    check(await c.wait_msgs(1, 10), "first member: no echo")
    await c.close()
    t0 = time.monotonic()
    await asyncio.sleep(a.pause_at)
    out = await redis_cli(a.redis_sock, "CLIENT", "PAUSE",
                          str(int(a.pause_ms)), "ALL")
    check(out.strip() == "OK", "CLIENT PAUSE answered %r" % out)
    await asyncio.sleep(a.join_at - a.pause_at)
    note("store paused %.1f..%.1f s after the last leave; joining at %.1f s"
         % (a.pause_at, a.pause_at + a.pause_ms / 1000,
            time.monotonic() - t0))
    try:
        c = await join(port, chat, "second", a.pause_ms / 1000 + 8)
    except Exception as e:  # noqa: BLE001
        fail("join racing the unsubscription: %s" % (e,))
        return
    check_welcome(c)
    check(c.welcome.get("seq") == 1, "rejoin welcome seq %r, expected 1" %
          c.welcome.get("seq"))
    await c.send_msg("after", "r-2")
    if check(await c.wait_msgs(1, 10), "rejoined member: no echo"):
        check(c.msgs[0].get("seq") == 2 and c.msgs[0].get("id") == "r-2",
              "rejoined member: echo %r, expected seq 2" % c.msgs[0])
    await c.close()


# --------------------------------------------------------------------------

def add_commands(sp):
    """Add basic, fanout, churn and rejoin to the subparsers sp."""
    p = sp.add_parser("basic", help="two members and a bystander")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=40)
    p.set_defaults(run=lambda a: run_async(do_basic(a), a.timeout))

    fanout = p = sp.add_parser("fanout",
                               help="many clients, many senders, one order")
    p.add_argument("--ports", required=True, help="comma-separated")
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--senders", type=int, default=10)
    p.add_argument("--count", type=int, default=100, help="per sender")
    p.add_argument("--chat")
    p.add_argument("--min-workers", type=int, default=1,
                   help="distinct X-Racerd-Worker values needed per port")
    p.add_argument("--stagger", type=float, default=0.0,
                   help="join one at a time, this many seconds apart")
    p.add_argument("--batch", type=int, default=0,
                   help="pause after every BATCH sends of one sender")
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--kills", type=int, default=0,
                   help="kill a worker's subscription this many times")
    p.add_argument("--redis-sock")
    p.add_argument("--instances", default="",
                   help="racerd instance names, comma-separated")
    p.add_argument("--deliver-timeout", type=float, default=30)
    p.add_argument("--timeout", type=float, default=50)

    def run_fanout(a):
        if a.kills and not (a.redis_sock and a.instances):
            fanout.error("--kills needs --redis-sock and --instances")
        run_async(do_fanout(a), a.timeout)
    p.set_defaults(run=run_fanout)

    p = sp.add_parser("churn", help="many joins and leaves")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--joins", type=int, default=10000)
    p.add_argument("--chats", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--regdump", required=True)
    p.add_argument("--segment", required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--timeout", type=float, default=50)
    p.set_defaults(run=lambda a: run_async(do_churn(a), a.timeout))

    p = sp.add_parser("rejoin", help="join while the chat unsubscribes")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--pause-at", type=float, default=1.0,
                   help="seconds after the last leave to pause the store")
    p.add_argument("--pause-ms", type=int, default=2000)
    p.add_argument("--join-at", type=float, default=2.6)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(run=lambda a: run_async(do_rejoin(a), a.timeout))
