#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the client side of tests/integration/auth_*.sh.
"""Check racerd's auth = token over real connections.

WebSocket traffic goes through Debian's python3-websockets; refused
handshakes are read on a raw socket, so that the status and the JSON
reason can both be checked.  Tokens come from the shell script (made by
racerctl) on the command line.  Every check that fails prints one
"FAIL: ..." line; the exit status is 0 only if nothing failed.  Every
wait is bounded.

Usage: authclient.py SUBCOMMAND --port N [options]
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
import urllib.parse
import urllib.request

import websockets

from wslib import FAILS, check, fail, note


def claims(tok):
    p = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def q(**kw):
    return urllib.parse.urlencode({k: v for k, v in kw.items()
                                   if v is not None})


def handshake(port, chat, query="", headers=None):
    """A WebSocket upgrade on a raw socket: returns (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = ("GET /ws/%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n" %
           (chat, "?" + query if query else ""))
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            b = s.recv(4096)
            if not b:
                break
            data += b
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        if status != 101:
            clen = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    clen = int(line.split(b":")[1])
            while len(body) < clen:
                b = s.recv(4096)
                if not b:
                    break
                body += b
    finally:
        s.close()
    return status, body.decode(errors="replace")


def http(port, method, path, token=None, bearer=None, body=None):
    """An HTTP request; returns (status, parsed JSON body or text)."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    if token is not None:
        url += ("&" if "?" in url else "?") + q(token=token)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if bearer is not None:
        req.add_header("Authorization", "Bearer " + bearer)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Client:
    """A joined WebSocket; a reader task collects frames."""

    def __init__(self, ws, welcome):
        self.ws = ws
        self.welcome = welcome
        self.frames = []
        self.closed = None          # (code, reason, monotonic time)
        self.event = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self.event.set()
        except websockets.ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason,
                       time.time())
        self.event.set()

    async def wait_for(self, pred, timeout):
        """Wait until a frame satisfies pred; returns it or None."""
        end = time.monotonic() + timeout
        seen = 0
        while True:
            for f in self.frames[seen:]:
                if pred(f):
                    return f
            seen = len(self.frames)
            if self.closed is not None:
                return None
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_closed(self, timeout):
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except asyncio.TimeoutError:
            pass
        return self.closed

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:  # noqa: BLE001
            pass
        self.task.cancel()


async def join(port, chat, query):
    """Open /ws/CHAT?QUERY and read the welcome; returns a Client."""
    url = "ws://127.0.0.1:%d/ws/%s?%s" % (port, chat, query)
    ws = await asyncio.wait_for(websockets.connect(
        url, ping_interval=None, close_timeout=3), 10)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return Client(ws, welcome)


def is_msg(body):
    return lambda f: f.get("type") == "msg" and f.get("body") == body


def is_error(code):
    return lambda f: f.get("type") == "error" and f.get("code") == code


def refused(port, chat, query, status, why, what, headers=None):
    """Check that a handshake is refused with status and reason why."""
    st, body = handshake(port, chat, query, headers)
    check(st == status, "%s: status %d, want %d (%s)" %
          (what, st, status, body))
    if why is not None and st == status:
        check(why in body, "%s: reason %r, want %r" % (what, body, why))
    return st


# --------------------------------------------------------------------------
# join: who gets in, and what a token allows once in

async def cmd_join(a):
    port = a.port
    # A token for team-* joins team-1, as its sub.
    c = await join(port, "team-1", q(token=a.team))
    check(c.welcome.get("type") == "welcome" and
          c.welcome.get("user") == "alice",
          "team token on team-1: welcome %r" % c.welcome)
    refused(port, "other", q(token=a.team), 403,
            "does not grant this chat", "team token on other")
    refused(port, "team-1", "", 401, "a token is required", "no token")
    refused(port, "team-1", q(user="alice"), 401, "a token is required",
            "?user= without a token")
    refused(port, "team-1", q(token=a.expired), 401, "token expired",
            "expired token")
    refused(port, "team-1", q(token=a.team[:-4] + "AAAA"), 401,
            "bad signature", "bad signature")
    refused(port, "team-1", q(token=a.other_key), 401, "unknown kid",
            "a token of another key")
    refused(port, "team-1", q(user="bob", token=a.team), 403,
            "user differs from the token's sub", "?user=bob, sub alice")
    refused(port, "team-1", "", 401, "a token is required",
            "Authorization: Basic", {"Authorization": "Basic eDp5"})
    st, _ = handshake(port, "team-1", q(user="alice"),
                      {"Authorization": "Bearer " + a.team})
    check(st == 101, "token in Authorization: Bearer: status %d" % st)
    same = await join(port, "team-1", q(user="alice", token=a.team))
    check(same.welcome.get("user") == "alice", "?user=alice with sub "
          "alice: %r" % same.welcome)
    await same.close()
    note("joins: 101 for team-1, 403 other, 401 none/expired/bad, "
         "403 user mismatch")

    # A read-only token: msg and history are refused, the connection
    # stays and still reads.
    ro = await join(port, "team-1", q(token=a.readonly))
    check(ro.welcome.get("user") == "carol", "read-only welcome %r" %
          ro.welcome)
    await ro.send({"type": "msg", "body": "from carol", "id": "ro-1"})
    e = await ro.wait_for(is_error("forbidden"), 10)
    check(e is not None and e.get("id") == "ro-1",
          "read-only msg: no error forbidden naming ro-1 (%r)" % ro.frames)
    await ro.send({"type": "history"})
    e2 = await ro.wait_for(lambda f: f is not e and
                           is_error("forbidden")(f), 10)
    check(e2 is not None, "read-only history frame: no error forbidden")
    await c.send({"type": "msg", "body": "hello carol", "id": "a-1"})
    check(await ro.wait_for(is_msg("hello carol"), 10) is not None,
          "read-only member did not receive alice's message")
    check(ro.closed is None, "read-only member was closed: %r" %
          (ro.closed,))
    check(not any(f.get("type") == "msg" and f.get("body") == "from carol"
                  for f in ro.frames + c.frames),
          "carol's refused message was delivered")
    await c.send({"type": "history"})
    h = await c.wait_for(lambda f: f.get("type") == "history", 10)
    check(h is not None, "alice (all rights): no history page")
    note("read-only token: msg and history refused with forbidden, "
         "connection open, still reading")

    # HTTP: history needs a token with history; presence one with read.
    st, _ = http(port, "GET", "/chats/team-1/messages?since=0")
    check(st == 401, "history without token: %d" % st)
    st, b = http(port, "GET", "/chats/team-1/messages?since=0",
                 bearer=a.nohistory)
    check(st == 403, "history with a token lacking history: %d %r" %
          (st, b))
    st, b = http(port, "GET", "/chats/team-1/messages?since=0",
                 bearer=a.team)
    check(st == 200 and any(m.get("body") == "hello carol"
                            for m in b.get("messages", [])),
          "history with the team token (Bearer): %d %r" % (st, b))
    st, b = http(port, "GET", "/chats/team-1/messages?since=0",
                 token=a.team)
    check(st == 200, "history with ?token=: %d" % st)
    st, b = http(port, "GET", "/chats/other/messages?since=0",
                 token=a.team)
    check(st == 403, "history of a chat not granted: %d" % st)
    st, b = http(port, "GET", "/chats/team-1/presence")
    check(st == 401, "presence without token: %d" % st)
    st, b = http(port, "GET", "/chats/team-1/presence", token=a.readonly)
    check(st == 200 and {"user": "carol", "state": "connected"} in
          b.get("members", []), "presence with a read token: %d %r" %
          (st, b))
    note("HTTP history: 401 without token, 403 without history, 200 with")

    # POST: a token with write publishes as its sub; read-only may not.
    st, b = http(port, "POST", "/chats/team-1/messages", bearer=a.team,
                 body={"body": "posted", "from": "mallory"})
    check(st == 201, "POST with a write token: %d %r" % (st, b))
    m = await c.wait_for(is_msg("posted"), 10)
    check(m is not None and m.get("from") == "alice",
          "POST with a token: from %r, want alice" %
          (m.get("from") if m else None))
    st, b = http(port, "POST", "/chats/team-1/messages", bearer=a.readonly,
                 body={"body": "nope"})
    check(st == 403, "POST with a read-only token: %d %r" % (st, b))
    st, b = http(port, "POST", "/chats/team-1/messages",
                 body={"body": "nope"})
    check(st == 401, "POST without token or key: %d %r" % (st, b))
    st, b = http(port, "POST", "/chats/team-1/messages", bearer=a.api_key,
                 body={"body": "by key", "from": "backend"})
    check(st == 201, "POST with the API key: %d %r" % (st, b))
    m = await c.wait_for(is_msg("by key"), 10)
    check(m is not None and m.get("from") == "backend",
          "POST with the API key: from %r" % (m.get("from") if m else None))
    note("POST: write token 201 as its sub, read-only 403, none 401, "
         "API key 201")
    await ro.close()
    await c.close()


# --------------------------------------------------------------------------
# resume: a session is resumed only with a token of its user

async def cmd_resume(a):
    port = a.port
    holder = await join(port, "team-1", q(token=a.alice))
    sess = holder.welcome.get("session")
    check(bool(sess), "no session in the welcome %r" % holder.welcome)
    # The welcome goes out before the session is written to the store: a
    # resume in that moment finds no session (401), so wait for it first.
    end = time.monotonic() + 10
    while time.monotonic() < end:
        st, body = handshake(port, "team-1", q(session=sess, last=0,
                                               token=a.bob))
        if st != 401 or "session unknown" not in body:
            break
        time.sleep(0.1)
    check(st == 403 and "another user" in body,
          "resume with bob's token: status %d, want 403 (%s)" % (st, body))
    refused(port, "team-1", q(session=sess, last=0, token=a.expired), 401,
            "token expired", "resume with an expired token")
    refused(port, "team-1", q(session=sess, last=0), 401,
            "a token is required", "resume without a token")
    # The attached connection is untouched: still open, still live.
    other = await join(port, "team-1", q(token=a.bob))
    await other.send({"type": "msg", "body": "still there?", "id": "b-1"})
    check(await holder.wait_for(is_msg("still there?"), 10) is not None,
          "holder missed a message after the refused resumes")
    check(holder.closed is None, "holder closed: %r" % (holder.closed,))
    note("resume with another sub: 403, expired: 401; holder untouched")
    # ?since= joins are checked too.
    refused(port, "team-1", q(since=0), 401, "a token is required",
            "since= without a token")
    refused(port, "team-1", q(since=0, token=a.nohistory), 403,
            "the token has no history right",
            "since= with a token without the history right")
    s = await join(port, "team-1", q(since=0, token=a.alice))
    r = await s.wait_for(lambda f: f.get("type") == "resumed", 10)
    check(r is not None, "since=0 with a token: no resumed")
    await s.close()
    # With alice's token the resume works and takes the session over.
    r = await join(port, "team-1", q(session=sess, last=0, token=a.alice))
    check(r.welcome.get("user") == "alice", "resume as alice: %r" %
          r.welcome)
    cl = await holder.wait_closed(10)
    check(cl is not None and cl[0] == 4009, "holder after alice's resume: "
          "%r, want 4009" % (cl,))
    note("since= needs a token; alice's own token resumes (4009 to the "
         "holder)")
    await r.close()
    await other.close()


# --------------------------------------------------------------------------
# expiry: closed with 4001 at exp + leeway, unless refreshed

async def cmd_expiry(a):
    port = a.port
    leeway = 30
    exp = claims(a.short)["exp"]
    due = exp + leeway
    c = await join(port, "team-1", q(token=a.short))
    note("short token: exp %+.1f s, closes at exp+%d = %+.1f s" %
         (exp - time.time(), leeway, due - time.time()))
    r = await join(port, "team-1", q(token=a.short2))
    exp2 = claims(a.short2)["exp"]
    # Refusals keep the old expiry and the connection.
    await r.send({"type": "refresh", "token": a.bob})
    check(await r.wait_for(is_error("forbidden"), 10) is not None,
          "refresh with another sub: no error forbidden")
    await r.send({"type": "refresh", "token": a.other_chat})
    n = len([f for f in r.frames if f.get("code") == "forbidden"])
    f = await r.wait_for(lambda f: is_error("forbidden")(f) and
                         len([g for g in r.frames
                              if g.get("code") == "forbidden"]) > n, 10)
    check(f is not None, "refresh without the chat: no error forbidden")
    await r.send({"type": "refresh", "token": a.expired})
    check(await r.wait_for(is_error("unauthorized"), 10) is not None,
          "refresh with an expired token: no error unauthorized")
    await r.send({"type": "refresh", "token": a.long})
    f = await r.wait_for(lambda f: f.get("type") == "refreshed", 10)
    check(f is not None and f.get("exp") == claims(a.long)["exp"],
          "refresh: got %r, want refreshed with exp %d" %
          (f, claims(a.long)["exp"]))
    cl = await c.wait_closed(due - time.time() + 1 + 5)
    now = time.time()
    check(cl is not None, "short token still open %.1f s after exp+%d" %
          (now - due, leeway))
    if cl is not None:
        check(cl[0] == 4001, "short token closed with %r, want 4001" %
              (cl,))
        check(due - 0.2 <= cl[2] <= due + 1,
              "short token closed at exp+%d%+.2f s, want within "
              "[exp+%d, exp+%d+1]" % (leeway, cl[2] - due, leeway, leeway))
        note("short token closed with %d at exp+%d%+.2f s" %
             (cl[0], leeway, cl[2] - due))
    # The refreshed one outlives its first expiry, and still works.
    wait = exp2 + leeway + 1.5 - time.time()
    if wait > 0:
        await asyncio.sleep(wait)
    check(r.closed is None, "refreshed connection closed: %r" %
          (r.closed,))
    await r.send({"type": "msg", "body": "after refresh", "id": "r-1"})
    check(await r.wait_for(is_msg("after refresh"), 10) is not None,
          "refreshed connection cannot send past its first expiry")
    note("refreshed connection open and sending %.1f s past its first "
         "exp+%d" % (time.time() - exp2 - leeway, leeway))
    await r.close()


# --------------------------------------------------------------------------
# reload: a new key file and HUP, connections kept

def wait_log(path, text, count, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, errors="replace") as f:
                if f.read().count(text) >= count:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


async def cmd_reload(a):
    port = a.port
    held = await join(port, "team-1", q(token=a.old))
    check(held.welcome.get("user") == "alice", "old-key join %r" %
          held.welcome)
    refused(port, "team-1", q(token=a.new), 401, "unknown kid",
            "new-key token before the reload")
    # Replace the key file, then HUP the master.
    os.replace(a.new_keys, a.keys)
    os.kill(a.master, signal.SIGHUP)
    check(wait_log(a.log, "keys reloaded", a.workers, 10),
          "the workers did not log \"keys reloaded\"")
    refused(port, "team-1", q(token=a.old), 401, "unknown kid",
            "old-key token after the reload")
    n = await join(port, "team-1", q(token=a.new))
    check(n.welcome.get("user") == "bob", "new-key join %r" % n.welcome)
    await n.send({"type": "msg", "body": "new key", "id": "n-1"})
    check(await held.wait_for(is_msg("new key"), 10) is not None,
          "the old-key connection missed a message after the reload")
    check(held.closed is None, "old-key connection closed by the "
          "reload: %r" % (held.closed,))
    note("after HUP: old key refused (401), new key joins, the old-key "
         "connection stays")
    # A bad file: HUP keeps the keys in force.
    with open(a.keys, "w") as f:
        f.write("k9 c2hvcnQ=\n")
    os.kill(a.master, signal.SIGHUP)
    check(wait_log(a.log, "reload failed", 1, 10),
          "a bad key file on HUP was not logged as a failed reload")
    m = await join(port, "team-1", q(token=a.new))
    check(m.welcome.get("user") == "bob", "new-key join after a bad "
          "reload %r" % m.welcome)
    check(held.closed is None and n.closed is None,
          "connections closed by a bad reload")
    note("a bad key file on HUP: logged, the keys in force kept")
    for c in (held, n, m):
        await c.close()


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("join")
    for o in ("team", "expired", "other-key", "readonly", "nohistory",
              "api-key"):
        p.add_argument("--" + o, required=True)
    p = sp.add_parser("resume")
    for o in ("alice", "bob", "expired", "nohistory"):
        p.add_argument("--" + o, required=True)
    p = sp.add_parser("expiry")
    for o in ("short", "short2", "long", "bob", "other-chat", "expired"):
        p.add_argument("--" + o, required=True)
    p = sp.add_parser("reload")
    for o in ("old", "new", "keys", "new-keys", "log"):
        p.add_argument("--" + o, required=True)
    p.add_argument("--master", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    for p in sp.choices.values():
        p.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    fn = {"join": cmd_join, "resume": cmd_resume, "expiry": cmd_expiry,
          "reload": cmd_reload}[a.cmd]
    try:
        asyncio.run(fn(a))
    except Exception as e:  # noqa: BLE001 - a crash is a failure
        fail("%s: %r" % (a.cmd, e))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
