#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the client library under wsclient.py and the
# other clients (batchclient.py, failoverclient.py, hardclient.py, ...).
"""The client library of racerd's integration tests.

It holds what more than one test needs: the FAIL bookkeeping (fail, note,
check), TLS set-up under RACERD_TEST_CA, well-formed WebSocket clients on
python3-websockets (Client, join, SClient, sconnect) and the checks of what
they receive (check_welcome, check_envelope, describe_seqs, check_resume),
raw sockets for hand-built handshakes and frames (Raw, frame, ws_request,
ws_open, next_frame, read_until_close), the one HTTP helper (http_req, with
http_get and fetch_history on top of it), and small helpers for
the store, /metrics and /proc (redis_cli, metric, rss_kib, tag, read_keys).
The subcommands themselves are in ws_chat.py, ws_errors.py, ws_sess.py and
ws_res.py, dispatched by wsclient.py.
"""

import asyncio
import base64
import collections
import hashlib
import http.client
import json
import os
import random
import re
import socket
import ssl
import struct
import subprocess
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

    def __init__(self, port, timeout=5, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port),
                                                 timeout=timeout)
        else:
            # Set before the connect: shrinking the window of an open
            # connection stalls loopback TCP in retransmission back-off.
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
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
# Sessions: a client that keeps every frame in order, resume queries and
# the check of a resumed stream (used by the session, load-balancer,
# failover, replica and shard tests)

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


# --------------------------------------------------------------------------
# HTTP: every request made with http.client goes through http_req

def http_req(port, method, path, body=None, headers=None, timeout=10,
             conn=None):
    """One request: (status, headers with lowercased names, body bytes).

    On a connection of its own, closed after the answer; or, with conn (an
    http.client.HTTPConnection the caller keeps alive), on that one, left
    open.  A body that is not bytes is sent as JSON.  Errors (OSError,
    http.client.HTTPException) are the caller's.
    """
    if conn is None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        c = conn
    try:
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=hdrs)
        resp = c.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def http_get(port, path, timeout=5, headers=None):
    """(status, body bytes); status 0 when there is no answer."""
    try:
        st, _, body = http_req(port, "GET", path, headers=headers,
                               timeout=timeout)
    except (OSError, http.client.HTTPException):
        return 0, b""
    return st, body


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


# --------------------------------------------------------------------------
# Odds and ends: the store (redis-cli), /proc, key files, unique names

async def redis_cli(sock, *args):
    p = await asyncio.create_subprocess_exec(
        "redis-cli", "-s", sock, *args, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(p.communicate(), 10)
    return out.decode("utf-8", "replace")


def rss_kib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def read_keys(path):
    with open(path) as f:
        return [k.strip() for k in f if k.strip() and not k.startswith("#")]


def tag():
    return "%d-%04d" % (os.getpid(), random.randrange(10000))
