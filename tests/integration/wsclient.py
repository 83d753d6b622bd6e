#!/usr/bin/python3
# racerd integration tests: the client side, run by tests/integration/chat_*.sh.
"""Drive racerd over real WebSocket connections and check what comes back.

Well-formed traffic goes through Debian's python3-websockets (10.x, asyncio
API), an independent implementation, so that racerd is not only tested
against itself.  Malformed traffic (bad handshakes, unmasked or reserved
frames, bad close codes, invalid UTF-8) is built by hand on raw sockets.

Usage: wsclient.py SUBCOMMAND [options]; see --help of each subcommand.
Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
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

FAILS = []


def fail(msg):
    print("FAIL: %s" % msg, flush=True)
    FAILS.append(msg)


def note(msg):
    print("  %s" % msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


# --------------------------------------------------------------------------
# Well-formed clients (python3-websockets)

class Client:
    """One joined WebSocket client; a reader task collects what arrives."""

    def __init__(self, ws, welcome, worker, port, chat, user):
        self.ws = ws
        self.welcome = welcome
        self.worker = worker
        self.port = port
        self.chat = chat
        self.user = user
        self.msgs = []          # "msg" envelopes, in arrival order
        self.other = []         # every other frame (errors, presence, ...)
        self.closed = None      # (code, reason) once the connection ended
        self.want = None
        self.enough = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self.other.append({"type": "<binary>"})
                    continue
                try:
                    m = json.loads(raw)
                except ValueError:
                    self.other.append({"type": "<bad json>", "raw": raw})
                    continue
                if isinstance(m, dict) and m.get("type") == "msg":
                    self.msgs.append(m)
                    if self.want is not None and len(self.msgs) >= self.want:
                        self.enough.set()
                else:
                    self.other.append(m)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            self.other.append({"type": "<reader error>", "error": repr(e)})
        self.closed = (self.ws.close_code, self.ws.close_reason)
        self.enough.set()

    async def wait_msgs(self, n, timeout):
        """Wait until n messages arrived; returns True if they did."""
        self.want = n
        if len(self.msgs) >= n:
            return True
        if self.closed is not None:
            return False
        self.enough.clear()
        try:
            await asyncio.wait_for(self.enough.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return len(self.msgs) >= n

    async def send_msg(self, body, mid=None):
        m = {"type": "msg", "body": body}
        if mid is not None:
            m["id"] = mid
        await self.ws.send(json.dumps(m))

    async def close(self, code=1000):
        try:
            await asyncio.wait_for(self.ws.close(code), 5)
        except Exception:  # noqa: BLE001
            pass
        try:
            await asyncio.wait_for(self.task, 5)
        except Exception:  # noqa: BLE001
            self.task.cancel()


class JoinError(Exception):
    pass


def ws_url(port, chat, user):
    return "ws://127.0.0.1:%d/ws/%s?user=%s" % (port, chat, user)


async def join(port, chat, user, timeout=10):
    """Open a WebSocket to chat as user, read the welcome; returns a Client."""
    try:
        ws = await asyncio.wait_for(websockets.connect(
            ws_url(port, chat, user), max_size=None, ping_interval=None,
            close_timeout=3, max_queue=4096), timeout)
    except asyncio.TimeoutError:
        raise JoinError("no handshake answer within %d s" % timeout)
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        ws.transport.abort()
        raise JoinError("101 from worker %s but no welcome within %d s" %
                        (ws.response_headers.get("X-Racerd-Worker"),
                         timeout))
    except BaseException:
        ws.transport.abort()
        raise
    try:
        welcome = json.loads(raw)
    except ValueError:
        welcome = {"type": "<bad json>", "raw": raw}
    worker = ws.response_headers.get("X-Racerd-Worker")
    return Client(ws, welcome, worker, port, chat, user)


def check_welcome(c, fresh=False, window=120):
    """Check a welcome frame's fields and their types."""
    w = c.welcome
    who = "welcome of %s in %s" % (c.user, c.chat)
    if not check(isinstance(w, dict) and w.get("type") == "welcome",
                 "%s: first frame is not a welcome: %r" % (who, w)):
        return
    check(w.get("chat") == c.chat, "%s: chat %r" % (who, w.get("chat")))
    check(w.get("user") == c.user, "%s: user %r" % (who, w.get("user")))
    for k in ("session", "epoch"):
        check(isinstance(w.get(k), str) and w.get(k) != "",
              "%s: %s is not a non-empty string: %r" % (who, k, w.get(k)))
    seq = w.get("seq")
    if check(isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0,
             "%s: seq is not an integer >= 0: %r" % (who, seq)):
        if fresh:
            check(seq == 0, "%s: seq %r in a new chat (expected 0)" %
                  (who, seq))
    win = w.get("window")
    check(isinstance(win, int) and not isinstance(win, bool) and
          win == window, "%s: window %r (expected %d)" % (who, win, window))
    check(c.worker is not None and re.fullmatch(r"[0-9]+", c.worker),
          "%s: 101 response has no numeric X-Racerd-Worker header (%r)" %
          (who, c.worker))


def check_envelope(m, chat, who):
    """Check the fields of one delivered message."""
    ok = isinstance(m.get("seq"), int) and isinstance(m.get("ts"), int) \
        and isinstance(m.get("from"), str) and isinstance(m.get("body"), str)
    check(ok, "%s: malformed envelope %r" % (who, m))
    check(m.get("chat") == chat, "%s: envelope chat %r, expected %r" %
          (who, m.get("chat"), chat))
    ts = m.get("ts")
    if isinstance(ts, int):
        now = time.time() * 1000
        check(abs(now - ts) < 120000, "%s: ts %r is not close to now (%d)"
              % (who, ts, now))


def describe_seqs(seqs, first, n):
    """Why a list of seqs is not exactly first..first+n-1 in order."""
    expect = list(range(first, first + n))
    if seqs == expect:
        return None
    cnt = collections.Counter(seqs)
    dups = sorted(s for s, k in cnt.items() if k > 1)
    missing = sorted(set(expect) - set(cnt))
    extra = sorted(set(cnt) - set(expect))
    where = next((i for i, (a, b) in enumerate(zip(seqs, expect)) if a != b),
                 min(len(seqs), n))
    return ("got %d messages (expected %d): first difference at index %d "
            "(%r), %d duplicate(s) %s, %d missing %s, %d unexpected %s" %
            (len(seqs), n, where, seqs[max(0, where - 2):where + 3],
             len(dups), dups[:10], len(missing), missing[:10],
             len(extra), extra[:10]))


async def alive(port, chat="alive", timeout=10):
    """A fresh client can join and chat: its message is echoed with a seq."""
    global ALIVE_N
    ALIVE_N += 1
    user = "alive%d" % ALIVE_N
    mid = "alive-%d-%d" % (os.getpid(), ALIVE_N)
    try:
        c = await join(port, chat, user, timeout)
    except Exception as e:  # noqa: BLE001
        return "cannot join: %r" % e
    try:
        if not isinstance(c.welcome, dict) or \
                c.welcome.get("type") != "welcome":
            return "no welcome: %r" % (c.welcome,)
        await c.send_msg("ping", mid)
        if not await c.wait_msgs(1, timeout):
            return "no echo of its message (other frames %r, closed %r)" % (
                c.other[:3], c.closed)
        m = c.msgs[0]
        if m.get("id") != mid or not isinstance(m.get("seq"), int) or \
                m.get("seq") <= c.welcome.get("seq", 0):
            return "bad echo %r" % m
        return None
    finally:
        await c.close()

ALIVE_N = 0


def run_async(coro, timeout):
    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            fail("did not finish within %d s" % timeout)
    return asyncio.run(bounded())


# --------------------------------------------------------------------------
# Raw sockets: hand-built HTTP requests and WebSocket frames

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Raw:
    """A TCP connection with a read buffer, for hand-built traffic."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _more(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_until(self, sep, timeout=5):
        end = time.monotonic() + timeout
        while sep not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for %r" % sep)
            if not self._more(left):
                raise EOFError("connection closed")
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, timeout=5):
        end = time.monotonic() + timeout
        while len(self.buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out reading %d bytes" % n)
            if not self._more(left):
                raise EOFError("connection closed")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_eof(self, timeout=3):
        """True if the peer closes the connection within timeout."""
        end = time.monotonic() + timeout
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self._more(left)
            except socket.timeout:
                return False
            self.buf = b""
        return True

    def read_response(self, timeout=5):
        """Read one HTTP response: (status, {lower name: value}, body)."""
        head = self.read_until(b"\r\n\r\n", timeout).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                hdrs[k] = (hdrs[k] + ", " if k in hdrs else "") + v.strip()
        n = int(hdrs.get("content-length", "0"))
        body = self.read_exact(n, timeout) if n else b""
        return status, hdrs, body

    def read_frame(self, timeout=5):
        """One frame: (fin, rsv, opcode, payload); payload unmasked."""
        h = self.read_exact(2, timeout)
        fin, rsv, op = h[0] >> 7, (h[0] >> 4) & 7, h[0] & 15
        masked, n = h[1] >> 7, h[1] & 127
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8, timeout))[0]
        key = self.read_exact(4, timeout) if masked else None
        data = self.read_exact(n, timeout)
        if masked:
            fail("server sent a masked frame (RFC 6455 §5.1)")
            data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
        return fin, rsv, op, data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def frame(op, payload=b"", fin=True, rsv=0, mask=True):
    """Build one client frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    k4 = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^
            int.from_bytes(k4, "big")).to_bytes(n, "big") if n else b""
    return hdr + key + body


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def ws_request(port, path, key=None, version="13", extra="", method="GET",
               upgrade=True):
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (method, path, port)
    if upgrade:
        req += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    if key != "":
        req += "Sec-WebSocket-Key: %s\r\n" % key
    if version is not None:
        req += "Sec-WebSocket-Version: %s\r\n" % version
    return (req + extra + "\r\n").encode("latin-1")


def ws_open(port, chat, user):
    """Hand-made handshake; returns (Raw, welcome) after the welcome."""
    key = base64.b64encode(os.urandom(16)).decode()
    r = Raw(port)
    r.send(ws_request(port, "/ws/%s?user=%s" % (chat, user), key))
    st, hdrs, _ = r.read_response()
    if st != 101:
        r.close()
        raise RuntimeError("handshake answered %d" % st)
    want = base64.b64encode(hashlib.sha1((key + GUID).encode())
                            .digest()).decode()
    if hdrs.get("sec-websocket-accept") != want:
        r.close()
        raise RuntimeError("bad Sec-WebSocket-Accept %r" %
                           hdrs.get("sec-websocket-accept"))
    fin, rsv, op, data = r.read_frame()
    if op != 1:
        r.close()
        raise RuntimeError("first frame has opcode %d" % op)
    return r, json.loads(data)


def next_frame(r, timeout=5):
    """The next frame that is not a presence notice."""
    while True:
        fin, rsv, op, data = r.read_frame(timeout)
        if op == 1:
            try:
                if json.loads(data).get("type") == "presence":
                    continue
            except (ValueError, AttributeError):
                pass
        return fin, rsv, op, data


def read_until_close(r, timeout=5):
    """Frames until a close frame: (close code or None, reason, frames seen).

    code None: the connection ended (or timed out) without a close frame;
    then reason says which.
    """
    seen = []
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None, "no close frame within %d s" % timeout, seen
        try:
            fin, rsv, op, data = next_frame(r, left)
        except EOFError:
            return None, "connection closed without a close frame", seen
        except socket.timeout:
            return None, "no close frame within %d s" % timeout, seen
        if op == 8:
            if len(data) >= 2:
                return struct.unpack("!H", data[:2])[0], data[2:], seen
            return 1005, b"", seen
        seen.append((op, data[:200]))


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

async def redis_cli(sock, *args):
    p = await asyncio.create_subprocess_exec(
        "redis-cli", "-s", sock, *args, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(p.communicate(), 10)
    return out.decode("utf-8", "replace")


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
# Subcommand: errors

def http_case(port, name, req, status, header=None, json_body=True):
    """Send one raw request; check status, a header (name, substring)."""
    r = Raw(port)
    try:
        r.send(req)
        st, hdrs, body = r.read_response()
    except Exception as e:  # noqa: BLE001
        fail("%s: no HTTP response: %r" % (name, e))
        return None
    finally:
        r.close()
    if not check(st == status, "%s: status %d, expected %d (body %r)" %
                 (name, st, status, body[:200])):
        return st
    if header is not None:
        hv = hdrs.get(header[0].lower())
        check(hv is not None and header[1].lower() in hv.lower(),
              "%s: header %s is %r, expected to contain %r" %
              (name, header[0], hv, header[1]))
    if json_body:
        try:
            o = json.loads(body)
            check(isinstance(o, dict) and isinstance(o.get("error"), str),
                  "%s: body %r has no \"error\" string" % (name, body))
        except ValueError:
            fail("%s: body is not JSON: %r" % (name, body[:200]))
    return st


def ws_case(port, name, frames, code):
    """Join by hand, send frames, expect a close frame with code."""
    global CASE_N
    CASE_N += 1
    try:
        r, welcome = ws_open(port, "errs-%d" % CASE_N, "raw%d" % CASE_N)
    except Exception as e:  # noqa: BLE001
        fail("%s: cannot open a raw WebSocket: %r" % (name, e))
        return
    try:
        for f in frames:
            try:
                r.send(f)
            except OSError:
                break           # closed early; the close frame is read below
        got, reason, seen = read_until_close(r)
        if got is None:
            fail("%s: %s (expected close %d; frames before: %r)" %
                 (name, reason, code, seen[:3]))
        else:
            check(got == code, "%s: close code %d %r, expected %d" %
                  (name, got, reason, code))
    finally:
        r.close()


CASE_N = 0


def big_headers(n):
    return "X-Filler: %s\r\n" % ("a" * n)


def do_errors(a):
    port, limit = a.port, a.max_message_size
    key = base64.b64encode(os.urandom(16)).decode()

    def live(what):
        why = asyncio.run(alive(port))
        check(why is None, "after %s a fresh client cannot chat: %s" %
              (what, why))

    live("start")
    if FAILS:
        return

    # ---- HTTP errors
    def hc(name, *args):
        http_case(port, name, *args)
        live(name)

    ok_path = "/ws/ok-chat?user=u1"
    bad_chats = [("empty chat id", "/ws/"), ("%20 chat id", "/ws/a%20b"),
                 ("percent-escaped chat id", "/ws/%61bc"),
                 ("chat id ..", "/ws/.."), ("chat id .", "/ws/."),
                 ("129-byte chat id", "/ws/" + "c" * 129),
                 ("chat id with NUL escape", "/ws/a%00b"),
                 ("chat id with !", "/ws/a!b")]
    for name, path in bad_chats:
        hc(name, ws_request(port, path + "?user=u1"), 400)
    # A bare space in the request line (the %20 form is above).
    hc("chat id with a space",
        ws_request(port, "/ws/a b?user=u1"), 400)
    for name, user in (("user with %20", "a%20b"), ("user with !", "a!b"),
                       ("65-byte user", "u" * 65)):
        hc(name, ws_request(port, "/ws/ok?user=" + user), 400)
    # The limits themselves are accepted.
    try:
        r, w = ws_open(port, "c" * 128, "u" * 64)
        check(w.get("chat") == "c" * 128 and w.get("user") == "u" * 64,
              "128-byte chat / 64-byte user: welcome %r" % w)
        r.close()
    except Exception as e:  # noqa: BLE001
        fail("128-byte chat id and 64-byte user refused: %r" % e)
    hc("GET /ws/ without Upgrade",
        ws_request(port, ok_path, key=key, upgrade=False), 426,
        ("Upgrade", "websocket"))
    hc("Sec-WebSocket-Version 8",
        ws_request(port, ok_path, key=key, version="8"), 426,
        ("Sec-WebSocket-Version", "13"))
    hc("missing Sec-WebSocket-Key",
        ws_request(port, ok_path, key=""), 400)
    hc("invalid Sec-WebSocket-Key",
        ws_request(port, ok_path, key="not-a-key"), 400)
    hc("POST /ws/x",
        b"POST /ws/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        405, ("Allow", "GET"))
    hc("unknown path",
        b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", 404)
    hc("POST /healthz",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        405, ("Allow", "GET"))
    hc("request header over 8 KiB",
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n" + big_headers(9000) +
         "\r\n").encode(), 431)
    hc("body over 1 MiB",
        b"POST /chats/x/messages HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n", 413)

    # Keep-alive: two requests, one connection.
    r = Raw(port)
    try:
        for i in range(2):
            r.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, _ = r.read_response()
            check(st == 200, "keep-alive request %d: status %d" % (i + 1, st))
    except Exception as e:  # noqa: BLE001
        fail("keep-alive: second request on one connection failed: %r" % e)
    finally:
        r.close()

    # Header timeout: a request that never completes gets 408.
    r = Raw(port)
    try:
        t0 = time.monotonic()
        r.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        st, _, body = r.read_response(a.header_timeout + 4)
        dt = time.monotonic() - t0
        check(st == 408, "incomplete header: status %d, expected 408" % st)
        check(dt >= a.header_timeout - 0.5,
              "408 after %.1f s, before header-timeout %d s" %
              (dt, a.header_timeout))
        note("incomplete header: %d after %.1f s" % (st, dt))
    except Exception as e:  # noqa: BLE001
        fail("incomplete header: no 408 within header-timeout %d s + 4 s "
             "(%r)" % (a.header_timeout, e))
    finally:
        r.close()
    live("408")

    # ---- frames refused with an error; the connection stays open
    try:
        r, w = ws_open(port, "errs", "raw")
        for payload, code in ((b"{", "bad_json"), (b"not json", "bad_json"),
                              (b'{"type":"nope"}', "bad_type"),
                              (b'{"type":"msg"}', "bad_field"),
                              (b'{"type":"msg","body":5}', "bad_field")):
            r.send(frame(1, payload))
            fin, rsv, op, data = next_frame(r)
            try:
                e = json.loads(data) if op == 1 else {"opcode": op}
            except ValueError:
                e = {"raw": data}
            check(e.get("type") == "error" and e.get("code") == code,
                  "%r: got %r, expected an error %s" % (payload, e, code))
        r.send(frame(1, json.dumps({"type": "msg", "body": "still here",
                                    "id": "raw-1"})))
        fin, rsv, op, data = next_frame(r)
        m = json.loads(data) if op == 1 else {"opcode": op}
        check(m.get("type") == "msg" and m.get("id") == "raw-1",
              "after refused frames a message was answered with %r" % m)
        r.close()
    except Exception as e:  # noqa: BLE001
        fail("refused frames: %r" % e)

    # 10 refused frames close with 1008; 9 do not.
    try:
        r, w = ws_open(port, "errs", "abuser")
        for i in range(9):
            r.send(frame(1, b"{"))
        for i in range(9):
            fin, rsv, op, data = next_frame(r)
            check(op == 1 and json.loads(data).get("type") == "error",
                  "refused frame %d: got opcode %d %r" % (i + 1, op, data))
        r.send(frame(9, b"still-open"))
        fin, rsv, op, data = next_frame(r)
        check(op == 10 and data == b"still-open",
              "after 9 refused frames: expected the pong, got opcode %d %r"
              % (op, data))
        r.send(frame(1, b"{"))
        got, reason, seen = read_until_close(r)
        check(got == 1008, "10th refused frame: close %r (%r), expected 1008"
              % (got, reason))
        r.close()
    except Exception as e:  # noqa: BLE001
        fail("repeated abuse: %r" % e)
    live("1008")

    msg = lambda body: json.dumps({"type": "msg", "body": body})  # noqa
    pad = limit - len(msg(""))
    # A message of exactly max-message-size bytes is accepted.
    try:
        r, w = ws_open(port, "errs", "big")
        r.send(frame(1, msg("x" * pad)))
        fin, rsv, op, data = next_frame(r)
        m = json.loads(data) if op == 1 else {"opcode": op}
        check(m.get("type") == "msg" and len(m.get("body", "")) == pad,
              "a message of max-message-size (%d) bytes: got %r" %
              (limit, str(m)[:200]))
        r.close()
    except Exception as e:  # noqa: BLE001
        fail("message of max-message-size bytes: %r" % e)

    cases = [
        ("binary message", [frame(2, b"\x00\x01\x02")], 1003),
        ("message over max-message-size", [frame(1, msg("x" * (pad + 1)))],
         1009),
        ("fragmented message over max-message-size",
         [frame(1, msg("x" * (pad + 1))[:limit // 2], fin=False),
          frame(0, msg("x" * (pad + 1))[limit // 2:])], 1009),
        ("invalid UTF-8 in a text message",
         [frame(1, b'{"type":"msg","body":"\xff\xfe"}')], 1007),
        ("invalid UTF-8 in a fragmented text message",
         [frame(1, b'{"type":"msg","body":"\xe2', fin=False),
          frame(0, b'\x28\xa1"}')], 1007),
        ("invalid UTF-8 in a close reason",
         [frame(8, close_payload(1000, b"\xff\xfe"))], 1007),
        ("unmasked client frame",
         [frame(1, msg("unmasked"), mask=False)], 1002),
        ("reserved data opcode 3", [frame(3, b"x")], 1002),
        ("reserved control opcode 11", [frame(11, b"x")], 1002),
        ("RSV1 set", [frame(1, msg("rsv"), rsv=4)], 1002),
        ("RSV3 set", [frame(1, msg("rsv"), rsv=1)], 1002),
        ("fragmented ping", [frame(9, b"ab", fin=False)], 1002),
        ("ping over 125 bytes", [frame(9, b"p" * 126)], 1002),
        ("close over 125 bytes",
         [frame(8, close_payload(1000, b"r" * 124))], 1002),
        ("continuation without a message", [frame(0, b"x")], 1002),
        ("new text frame inside a fragmented message",
         [frame(1, b'{"type":', fin=False), frame(1, msg("again"))], 1002),
    ]
    for code in (999, 1005, 1006, 5000):
        cases.append(("close code %d" % code,
                      [frame(8, close_payload(code))], 1002))
    for name, frames_, code in cases:
        ws_case(port, name, frames_, code)
        live(name)

    # Ping: a pong with the same payload (also between fragments).
    try:
        r, w = ws_open(port, "errs", "pinger")
        payload = os.urandom(125)
        r.send(frame(9, payload))
        fin, rsv, op, data = next_frame(r)
        check(op == 10 and data == payload,
              "ping: got opcode %d, payload equal %s" % (op, data == payload))
        whole = msg("fragmented ok")
        r.send(frame(1, whole[:7], fin=False) + frame(9, b"mid") +
               frame(0, whole[7:15], fin=False) + frame(0, whole[15:]))
        got = []
        for _ in range(2):
            fin, rsv, op, data = next_frame(r)
            got.append((op, data))
        check((10, b"mid") in got, "ping between fragments: no pong (%r)" %
              got)
        ms = [json.loads(d) for op, d in got if op == 1]
        check(len(ms) == 1 and ms[0].get("body") == "fragmented ok",
              "fragmented message: got %r" % got)
        # Close 1000: the server answers the close and ends the TCP
        # connection.
        r.send(frame(8, close_payload(1000, b"bye")))
        code, reason, seen = read_until_close(r)
        check(code == 1000, "close 1000 answered with %r" % (code,))
        check(r.wait_eof(3), "TCP connection still open 3 s after the "
              "close handshake")
        r.close()
    except Exception as e:  # noqa: BLE001
        fail("ping/pong, fragments and close: %r" % e)
    live("close 1000")


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

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("basic", help="two members and a bystander")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=40)

    p = sp.add_parser("fanout", help="many clients, many senders, one order")
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

    p = sp.add_parser("errors", help="bad handshakes and frames")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-message-size", type=int, required=True)
    p.add_argument("--header-timeout", type=int, required=True)

    p = sp.add_parser("churn", help="many joins and leaves")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--joins", type=int, default=10000)
    p.add_argument("--chats", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--regdump", required=True)
    p.add_argument("--segment", required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--timeout", type=float, default=50)

    p = sp.add_parser("rejoin", help="join while the chat unsubscribes")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--pause-at", type=float, default=1.0,
                   help="seconds after the last leave to pause the store")
    p.add_argument("--pause-ms", type=int, default=2000)
    p.add_argument("--join-at", type=float, default=2.6)
    p.add_argument("--timeout", type=float, default=30)

    a = ap.parse_args()
    if a.cmd == "basic":
        run_async(do_basic(a), a.timeout)
    elif a.cmd == "fanout":
        if a.kills and not (a.redis_sock and a.instances):
            ap.error("--kills needs --redis-sock and --instances")
        run_async(do_fanout(a), a.timeout)
    elif a.cmd == "errors":
        do_errors(a)
    elif a.cmd == "churn":
        run_async(do_churn(a), a.timeout)
    elif a.cmd == "rejoin":
        run_async(do_rejoin(a), a.timeout)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
