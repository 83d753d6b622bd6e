#!/usr/bin/python3
# SPDX-License-Identifier: ISC
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

# With RACERD_TEST_CA set (lib.sh does it under RACERD_TEST_TLS=1) racerd
# listens with TLS only: every WebSocket becomes wss://, every HTTP
# connection HTTPS and every raw socket a TLS one, verified against that
# CA, so that the same checks run over TLS.
TLS_CA = os.environ.get("RACERD_TEST_CA")
TLS_CTX = None
if TLS_CA:
    import http.client
    import ssl

    TLS_CTX = ssl.create_default_context(cafile=TLS_CA)
    _ws_connect = websockets.connect

    def _wss_connect(uri, *args, **kwargs):
        if uri.startswith("ws://"):
            uri = "wss://" + uri[5:]
        kwargs.setdefault("ssl", TLS_CTX)
        return _ws_connect(uri, *args, **kwargs)

    def _https_connection(host, port=None, **kwargs):
        return http.client.HTTPSConnection(host, port, context=TLS_CTX,
                                           **kwargs)

    websockets.connect = _wss_connect
    http.client.HTTPConnection = _https_connection


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
        if TLS_CTX is not None:
            self.sock = TLS_CTX.wrap_socket(self.sock,
                                            server_hostname="127.0.0.1")
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


def linger_case(port):
    """A refused request with more input behind it, sent at once: the
    answer arrives whole and the connection ends with a FIN, not a reset
    (racerd reads and drops the rest before it closes)."""
    r = Raw(port)
    what = "eof"
    try:
        r.sock.settimeout(5)
        r.send(b"GET /ws/a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n" +
               b"x" * 262144)
        while True:
            d = r.sock.recv(65536)
            if not d:
                break
            r.buf += d
    except ConnectionResetError:
        what = "a reset"
    except (OSError, ValueError) as e:
        what = repr(e)
    finally:
        r.close()
    check(r.buf.startswith(b"HTTP/1.1 400") and what == "eof",
          "refused with more input behind: got %r, then %s (wanted the "
          "400, then the end)" % (r.buf[:20], what))


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
    linger_case(port)
    live("a refusal with input behind it")
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
    if len(sys.argv) > 1 and sys.argv[1] in SESS_COMMANDS:
        return sess_main()
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


# ==========================================================================
# Sessions, history and the HTTP API: the client side of sess_*.sh and
# history_*.sh.  Everything below is used only by the subcommands that
# sess_main() dispatches; nothing above depends on it.

import http.client
import signal


class Refused(Exception):
    """The server answered the WebSocket handshake with an HTTP error."""

    def __init__(self, status):
        Exception.__init__(self, "HTTP %d" % status)
        self.status = status


class SClient(Client):
    """A Client that keeps every frame in arrival order (log) and notes
    the resumed frame and how many msg frames preceded it."""

    def __init__(self, ws, welcome, worker, port, chat, user):
        self.log = []
        self.resumed = None
        self.resumed_at = None
        Client.__init__(self, ws, welcome, worker, port, chat, user)

    async def _read(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    m = {"type": "<binary>"}
                else:
                    try:
                        m = json.loads(raw)
                    except ValueError:
                        m = {"type": "<bad json>", "raw": raw}
                if not isinstance(m, dict):
                    m = {"type": "<not an object>", "raw": raw}
                self.log.append(m)
                if m.get("type") == "msg":
                    self.msgs.append(m)
                    if self.want is not None and len(self.msgs) >= self.want:
                        self.enough.set()
                    continue
                self.other.append(m)
                if m.get("type") == "resumed" and self.resumed is None:
                    self.resumed = m
                    self.resumed_at = len(self.msgs)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            self.other.append({"type": "<reader error>", "error": repr(e)})
        self.closed = (self.ws.close_code, self.ws.close_reason)
        self.enough.set()

    def seqs(self):
        return [m.get("seq") for m in self.msgs]

    def last(self):
        """The seq this client holds everything up to."""
        if self.msgs:
            return self.msgs[-1].get("seq")
        if self.resumed is not None:
            return self.resumed.get("to")
        return self.welcome.get("seq")

    def saw(self, event, user):
        return any(o.get("type") == "presence" and o.get("event") == event and
                   o.get("user") == user for o in self.other)

    def unexpected(self):
        """Frames that are neither msg, presence, resumed nor history."""
        return [o for o in self.other if o.get("type") not in
                ("presence", "resumed", "history")]

    async def abort(self):
        """Drop the TCP connection without a close frame (RST)."""
        self.ws.transport.abort()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except Exception:  # noqa: BLE001
            pass


async def sconnect(port, chat, query, timeout=10, user=None):
    """Open /ws/CHAT?QUERY, read the welcome; returns an SClient.

    Raises Refused(status) if the handshake gets an HTTP error, JoinError
    on a timeout, OSError if nothing listens.
    """
    url = "ws://127.0.0.1:%d/ws/%s?%s" % (port, chat, query)
    try:
        ws = await asyncio.wait_for(websockets.connect(
            url, max_size=None, ping_interval=None, close_timeout=3,
            max_queue=None), timeout)
    except websockets.exceptions.InvalidStatusCode as e:
        raise Refused(e.status_code)
    except asyncio.TimeoutError:
        raise JoinError("%s: no handshake answer within %d s" % (url,
                                                                 timeout))
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        ws.transport.abort()
        raise JoinError("%s: 101 but no welcome within %d s" % (url, timeout))
    except BaseException:
        ws.transport.abort()
        raise
    try:
        welcome = json.loads(raw)
    except ValueError:
        welcome = {"type": "<bad json>", "raw": raw}
    if not isinstance(welcome, dict):
        welcome = {"type": "<not an object>", "raw": raw}
    if user is None:
        user = welcome.get("user")
    return SClient(ws, welcome, ws.response_headers.get("X-Racerd-Worker"),
                   port, chat, user)


def rq(token, last, user=None, epoch=None):
    """The query string of a resume."""
    q = "session=%s&last=%d" % (token, last)
    if user is not None:
        q += "&user=%s" % user
    if epoch is not None:
        q += "&epoch=%s" % epoch
    return q


async def until(pred, timeout, step=0.02):
    """Poll pred() until it is true or timeout seconds pass; returns it."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return bool(pred())
        await asyncio.sleep(step)


async def expect_refused(port, chat, query, status, what):
    """A handshake that must be refused with HTTP status."""
    try:
        c = await sconnect(port, chat, query)
    except Refused as e:
        return check(e.status == status, "%s: HTTP %d, expected %d" %
                     (what, e.status, status))
    except Exception as e:  # noqa: BLE001
        fail("%s: %r, expected HTTP %d" % (what, e, status))
        return False
    fail("%s: accepted (welcome %r), expected HTTP %d" %
         (what, c.welcome, status))
    await c.close()
    return False


def check_resume(c, frm, complete, who, to=None):
    """The frames of a resumed connection: welcome, replay, resumed.

    complete True: the msgs before resumed are exactly frm+1..to, K of
    them, and the first msg after resumed is to+1.  complete False: no msg
    before resumed, replayed 0.  Returns the resumed frame or None.
    """
    w = c.welcome
    if not check(w.get("type") == "welcome",
                 "%s: first frame %r is not a welcome" % (who, w)):
        return None
    r = c.resumed
    if not check(r is not None, "%s: no resumed frame (frames %r)" %
                 (who, [(o.get("type"), o.get("seq")) for o in c.log[:8]])):
        return None
    check(r.get("from") == frm, "%s: resumed from %r, expected %d (%r)" %
          (who, r.get("from"), frm, r))
    check(r.get("complete") is complete, "%s: resumed complete %r, expected "
          "%r (%r)" % (who, r.get("complete"), complete, r))
    if to is not None:
        check(r.get("to") == to, "%s: resumed to %r, expected %d (%r)" %
              (who, r.get("to"), to, r))
    replay = c.msgs[:c.resumed_at]
    rto = r.get("to") if isinstance(r.get("to"), int) else -1
    if complete:
        why = describe_seqs([m.get("seq") for m in replay], frm + 1,
                            rto - frm)
        check(why is None, "%s: replay before resumed (from %d to %r): %s" %
              (who, frm, r.get("to"), why))
        check(r.get("replayed") == len(replay),
              "%s: resumed says replayed %r, %d msg frames came before it" %
              (who, r.get("replayed"), len(replay)))
    else:
        check(r.get("replayed") == 0 and not replay,
              "%s: incomplete resume replayed %r (%d msg frames before it: "
              "%r)" % (who, r.get("replayed"), len(replay),
                       [m.get("seq") for m in replay[:10]]))
    after = c.msgs[c.resumed_at:]
    if after:
        check(after[0].get("seq") == rto + 1,
              "%s: first msg after resumed (to %r) has seq %r" %
              (who, r.get("to"), after[0].get("seq")))
    return r


def http_req(port, method, path, body=None, headers=None, timeout=10):
    """One request on its own connection: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def http_json(port, method, path, body=None, headers=None):
    """(status, parsed JSON body or None)."""
    st, _, data = http_req(port, method, path, body, headers)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, None


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
                self.conn.request("POST", "/chats/%s/messages" % chat,
                                  body=json.dumps(msg).encode(), headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                try:
                    return resp.status, json.loads(data)
                except ValueError:
                    return resp.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def read_keys(path):
    with open(path) as f:
        return [k.strip() for k in f if k.strip() and not k.startswith("#")]


def tag():
    return "%d-%04d" % (os.getpid(), random.randrange(10000))


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

SESS_COMMANDS = ("resume", "window", "restart", "history-fill",
                 "history-check", "incomplete", "dedup", "takeover",
                 "workerkill", "api")


def sess_main():
    """The subcommands of sess_*.sh and history_*.sh."""
    ap = argparse.ArgumentParser(description="sessions, history, API")
    sp = ap.add_subparsers(dest="cmd", required=True)
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

    p = sp.add_parser("window", help="resume within and after the window")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--slack", type=float, default=2.5,
                   help="how late after the window the expiry may be")
    p.add_argument("--timeout", type=float, default=40)

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

    p = sp.add_parser("history-fill", help="send messages, keep a snapshot")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chat", required=True)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--posts", type=int, default=1000)
    p.add_argument("--key-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=50)

    p = sp.add_parser("history-check", help="page through the snapshot")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--send-one", action="store_true")
    p.add_argument("--timeout", type=float, default=40)

    p = sp.add_parser("incomplete", help="trimmed, recovery-max, flushed")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port-b", type=int, required=True)
    p.add_argument("--history-size", type=int, required=True)
    p.add_argument("--recovery-max", type=int, required=True)
    p.add_argument("--trim-missed", type=int, default=100)
    p.add_argument("--redis-sock", required=True)
    p.add_argument("--timeout", type=float, default=40)

    p = sp.add_parser("dedup", help="repeated ids are stored once")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--timeout", type=float, default=30)

    p = sp.add_parser("takeover", help="concurrent resumes of one session")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--timeout", type=float, default=40)

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

    p = sp.add_parser("api", help="POST authorisation")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port-nokeys", type=int, required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--timeout", type=float, default=30)

    a = ap.parse_args()
    fn = {"resume": do_resume, "window": do_window, "restart": do_restart,
          "history-fill": do_history_fill,
          "history-check": do_history_check, "incomplete": do_incomplete,
          "dedup": do_dedup, "takeover": do_takeover,
          "workerkill": do_workerkill, "api": do_api}[a.cmd]
    run_async(fn(a), a.timeout)
    return 1 if FAILS else 0


# --------------------------------------------------------------------------
# Resilience tests (tests/integration/res_*.sh): subcommands outage, proxy,
# blackhole, slow, presence and limits.  A block of its own, dispatched
# before main() (see the end of this block), so that the subcommands above
# stay as they are.

RES = {}


def res_cmd(name):
    def deco(f):
        RES[name] = f
        return f
    return deco


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


def http_get(port, path, timeout=5, headers=None):
    """(status, body bytes); status 0 when there is no answer."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        c.close()


def fetch_history(port, chat, limit=1000, wait503=0):
    """Every message of a chat over HTTP: (latest, epoch, envelopes).
    A 503 is asked again for up to wait503 s (a worker reconnecting to
    the store answers so meanwhile)."""
    since, out, latest, epoch = 0, [], None, None
    end = time.monotonic() + wait503
    for _ in range(10000):
        while True:
            st, body = http_get(port, "/chats/%s/messages?since=%d&limit=%d"
                                % (chat, since, limit))
            if st != 503 or time.monotonic() > end:
                break
            time.sleep(0.1)
        if st != 200:
            fail("GET history of %s since %d: status %d %r" %
                 (chat, since, st, body[:200]))
            return latest, epoch, out
        page = json.loads(body)
        latest, epoch = page.get("latest"), page.get("epoch")
        out.extend(page.get("messages") or [])
        if page.get("next") is None:
            break
        since = page["next"]
    return latest, epoch, out


def metric(port, name):
    st, body = http_get(port, "/metrics")
    for line in body.decode("utf-8", "replace").splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == name:
            return float(f[1])
    return None


def rss_kib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


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

@res_cmd("outage")
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

@res_cmd("proxy")
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

@res_cmd("blackhole")
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

@res_cmd("slow")
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
    check(welcome.get("seq") == warm, "slow member's welcome: seq %r, "
          "expected %d" % (welcome.get("seq"), warm))
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
    check(got == list(range(warm + 1, warm + 1 + len(got))),
          "slow member: what it received is not seq %d..k: %r" %
          (warm + 1, got[:20]))
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


@res_cmd("presence")
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


@res_cmd("limits")
def do_limits(a):
    for step in (limits_connections, limits_connections_resume,
                 limits_chats, limits_origins, limits_size, limits_rate):
        try:
            step(a)
        except Exception as e:  # noqa: BLE001
            fail("%s: %r" % (step.__name__, e))


def res_main():
    ap = argparse.ArgumentParser(description="racerd resilience tests")
    sp = ap.add_subparsers(dest="cmd", required=True)
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

    p = sp.add_parser("proxy", help="TCP to unix proxy, can blackhole")
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--ctl", required=True)
    p.add_argument("--lifetime", type=float, default=120)

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

    p = sp.add_parser("presence", help="presence across two instances")
    p.add_argument("--port-a", type=int, required=True)
    p.add_argument("--port-b", type=int, required=True)
    p.add_argument("--kill-pids", required=True)
    p.add_argument("--lease", type=int, default=3)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--timeout", type=float, default=45)

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

    a = ap.parse_args()
    f = RES[a.cmd]
    if a.cmd == "proxy":
        run_async(f(a), a.lifetime + 5)
    elif asyncio.iscoroutinefunction(f):
        run_async(f(a), a.timeout)
    else:
        f(a)
    return 1 if FAILS else 0


if __name__ == "__main__" and sys.argv[1:2] and sys.argv[1] in RES:
    sys.exit(res_main())


if __name__ == "__main__":
    sys.exit(main())
