#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: hostile clients, run by tests/integration/hard_*.sh.
"""Clients that misbehave on purpose: keep-alive requests that were refused,
pipelining without reading, pinging without reading, history floods.

Built on the raw-socket helpers of wslib.py (Raw, frame, ws_request).
Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wslib  # noqa: E402
from wslib import Raw, check, fail, frame, next_frame, note, ws_request  # noqa: E402,E501


def ws_upgrade(r, port, path):
    """Send an upgrade on r; returns (status, welcome or None)."""
    r.send(ws_request(port, path))
    st, _, body = r.read_response()
    if st != 101:
        return st, body
    _, _, op, data = next_frame(r)
    return st, json.loads(data) if op == 1 else None


def send_msg(port, chat, body):
    """Join, send one message, wait for its echo; returns its seq."""
    r = Raw(port)
    st, w = ws_upgrade(r, port, "/ws/%s?user=w" % chat)
    if not check(st == 101, "writer upgrade answered %s" % st):
        return 0
    r.send(frame(1, json.dumps({"type": "msg", "body": body})))
    end = time.monotonic() + 10
    while time.monotonic() < end:
        _, _, op, data = next_frame(r)
        m = json.loads(data) if op == 1 else {}
        if m.get("type") == "msg" and m.get("body") == body:
            r.close()
            return m["seq"]
    fail("no echo of the writer's message")
    return 0


def do_reset(a):
    """A refused epoch must not stay for the next request (keep-alive)."""
    seq = send_msg(a.port, "k", "one")
    r = Raw(a.port)
    st, _ = ws_upgrade(r, a.port, "/ws/k?since=0&epoch=bad!x")
    check(st == 400, "a bad epoch answered %s, not 400" % st)
    st, _ = ws_upgrade(r, a.port, "/ws/k?since=0&user=a%0aFORGED")
    check(st == 400, "a bad user answered %s, not 400" % st)
    st, w = ws_upgrade(r, a.port, "/ws/k?since=0")
    if not check(st == 101, "the join after them answered %s" % st):
        return
    check(w.get("type") == "welcome", "first frame %r" % w)
    got, resumed = [], None
    end = time.monotonic() + 10
    while resumed is None and time.monotonic() < end:
        _, _, op, data = next_frame(r)
        m = json.loads(data) if op == 1 else {}
        if m.get("type") == "msg":
            got.append(m["seq"])
        elif m.get("type") == "resumed":
            resumed = m
    note("join with since=0 after two refused requests: %s, then %s" %
         (got, resumed))
    check(resumed is not None and resumed.get("complete") is True and
          resumed.get("replayed") == 1 and got == [seq],
          "the refused epoch stayed: replay %s, resumed %s" % (got, resumed))
    r.close()


def fill_chat(port, chat, n, size):
    """n messages of size bytes each in chat, sent over one WebSocket."""
    r = Raw(port)
    st, _ = ws_upgrade(r, port, "/ws/%s?user=filler" % chat)
    if not check(st == 101, "filler upgrade answered %s" % st):
        return 0
    for i in range(n):
        body = ("%05d" % i) + "x" * (size - 5)
        r.send(frame(1, json.dumps({"type": "msg", "body": body})))
    seen = 0
    end = time.monotonic() + 30
    while seen < n and time.monotonic() < end:
        _, _, op, data = next_frame(r, 10)
        if op == 1 and json.loads(data).get("type") == "msg":
            seen += 1
    r.close()
    check(seen == n, "filler saw %d of %d echoes" % (seen, n))
    return seen


def do_pipeline(a):
    """Pipelined history GETs, not read: the worker must not grow."""
    n, per = a.n or 400, 200
    if not fill_chat(a.port, "p", per, 1000):
        return
    rss0 = wslib.rss_kib(a.pid)
    r = Raw(a.port, timeout=30, rcvbuf=65536)
    req = b"GET /chats/p/messages?since=0&limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
    sender = threading.Thread(target=r.send, args=(req * n,))
    sender.start()
    time.sleep(4)
    rss1 = wslib.rss_kib(a.pid)
    grew = (rss1 - rss0) // 1024
    note("%d pipelined pages of %d messages unread: worker RSS %d -> %d "
         "KiB (+%d MiB)" % (n, per, rss0, rss1, grew))
    check(grew < a.limit, "the worker grew by %d MiB (bound %d MiB) with "
          "unread answers" % (grew, a.limit))
    ok = 0
    for i in range(n):
        st, _, body = r.read_response(30)
        page = json.loads(body)
        seqs = [m["seq"] for m in page.get("messages", [])]
        if st == 200 and seqs == list(range(1, per + 1)):
            ok += 1
        elif ok == i:
            fail("answer %d: status %d, %d messages" % (i, st, len(seqs)))
    sender.join(10)
    note("then read: %d of %d answers correct" % (ok, n))
    check(ok == n, "%d of %d pipelined answers correct" % (ok, n))
    r.close()


def send_quietly(sock, data, timeout=15):
    """Send what the peer takes; it may stop reading or hang up.  Gives up
    once the peer has taken nothing for timeout seconds (sendall's timeout
    would bound the whole send, which a loaded machine can outlast).  sock
    is the sender's own (a dup): the reader sets its timeout apart."""
    view = memoryview(data)
    sock.settimeout(timeout)
    try:
        while view:
            view = view[sock.send(view[:1 << 16]):]
    except OSError:
        pass
    finally:
        sock.close()


def drain(r, timeout):
    """Everything the peer sends until it hangs up: (bytes, ended)."""
    chunks = [r.buf]
    r.buf = b""
    end = time.monotonic() + timeout
    r.sock.settimeout(1)
    while time.monotonic() < end:
        try:
            d = r.sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return b"".join(chunks), True
        if not d:
            return b"".join(chunks), True
        chunks.append(d)
    return b"".join(chunks), False


def frames(data):
    """(opcode, payload) of each whole unmasked server frame in data."""
    i = 0
    while i + 2 <= len(data):
        op, n, h = data[i] & 15, data[i + 1] & 127, 2
        if n == 126:
            n, h = int.from_bytes(data[i + 2:i + 4], "big"), 4
        elif n == 127:
            n, h = int.from_bytes(data[i + 2:i + 10], "big"), 10
        if i + h + n > len(data):
            return
        yield op, data[i + h:i + h + n]
        i += h + n


def do_pings(a):
    """Pings, never reading the pongs: closed with 4208 like a slow client."""
    n = a.n or 50000
    r = Raw(a.port, timeout=30, rcvbuf=4096)
    st, _ = ws_upgrade(r, a.port, "/ws/pings?user=pinger")
    if not check(st == 101, "upgrade answered %s" % st):
        return
    rss0 = wslib.rss_kib(a.pid)
    ping = frame(9, b"p" * 125)
    sender = threading.Thread(target=send_quietly,
                              args=(r.sock.dup(), ping * n))
    sender.start()
    sender.join(10)
    time.sleep(0.5)
    rss1 = wslib.rss_kib(a.pid)
    grew = (rss1 - rss0) // 1024
    note("%d pings of 125 bytes, pongs unread: worker RSS %d -> %d KiB "
         "(+%d MiB)" % (n, rss0, rss1, grew))
    check(grew < a.limit, "the worker grew by %d MiB (bound %d MiB)" %
          (grew, a.limit))
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    data, ended = drain(r, 60)
    pongs, code = 0, None
    for op, payload in frames(data):
        if op == 10:
            pongs += 1
        elif op == 8:
            code = int.from_bytes(payload[:2], "big") if payload else 0
    slow = wslib.metric(a.port, "racerd_slow_closes_total")
    note("read %d pongs, then %s%s; slow closes: %s" %
         (pongs, "close %s and " % code if code is not None else "",
          "the end of the connection" if ended else "no end", slow))
    # Like any slow client that stops reading while closing, it may be
    # hung up on before its close frame is out: then it only sees the end.
    check(ended and pongs < n and slow == 1 and code in (None, 4208),
          "a client pinging without reading was not closed as too slow "
          "(close %s after %d pongs, slow closes %s)" % (code, pongs, slow))
    r.close()


def do_history(a):
    """History frames: one in flight per connection, and rate-limited."""
    rate = a.limit
    fill_chat(a.port, "h", min(rate, 5), 100)
    # A flood in one write: one read at a time, the rest refused (busy),
    # and a client that keeps at it is closed with 1008.
    r = Raw(a.port, timeout=10)
    st, _ = ws_upgrade(r, a.port, "/ws/h?user=flood")
    if not check(st == 101, "upgrade answered %s" % st):
        return
    req = frame(1, json.dumps({"type": "history", "limit": 1000}))
    r.send(req * 200)
    pages, busy, code = 0, 0, None
    end = time.monotonic() + 15
    while code is None and time.monotonic() < end:
        try:
            _, _, op, data = r.read_frame(5)
        except (OSError, EOFError):
            break
        m = json.loads(data) if op == 1 else {}
        if m.get("type") == "history":
            pages += 1
        elif m.get("type") == "error" and m.get("code") == "busy":
            busy += 1
        elif op == 8:
            code = int.from_bytes(data[:2], "big")
    note("200 history frames in one write: %d page(s), %d busy, close %s" %
         (pages, busy, code))
    check(pages <= 2 and busy >= 1 and code == 1008,
          "a history flood: %d pages, %d busy, close %s" %
          (pages, busy, code))
    r.close()

    # One at a time, each after its answer: within max-message-rate only.
    r = Raw(a.port, timeout=10)
    st, _ = ws_upgrade(r, a.port, "/ws/h?user=pager")
    pages, limited = 0, 0
    for i in range(rate + 10):
        r.send(frame(1, json.dumps({"type": "history", "limit": 10})))
        while True:
            _, _, op, data = r.read_frame(5)
            m = json.loads(data) if op == 1 else {}
            if m.get("type") == "history":
                pages += 1
                break
            if m.get("type") == "error":
                check(m.get("code") == "rate_limited",
                      "history answered with error %r" % m)
                limited += 1
                break
    note("%d history requests in a row at max-message-rate %d: %d pages, "
         "%d rate_limited" % (rate + 10, rate, pages, limited))
    check(pages >= rate and limited >= 1 and pages + limited == rate + 10,
          "history past the rate: %d pages, %d limited" % (pages, limited))
    r.close()


def post_head(port, key, length, extra=""):
    h = "POST /chats/api/messages HTTP/1.1\r\nHost: x\r\n"
    if key is not None:
        h += "Authorization: Bearer %s\r\n" % key
    h += "Content-Type: application/json\r\nContent-Length: %d\r\n" % length
    return (h + extra + "\r\n").encode()


def do_api(a):
    """POST: the key is checked before the body, Expect is answered."""
    # No key, a 900 KB body announced, only the headers sent: 401 at once.
    r = Raw(a.port, timeout=3)
    r.send(post_head(a.port, None, 900000))
    try:
        st, _, _ = r.read_response(3)
    except (OSError, EOFError) as e:
        st = repr(e)
    note("POST without a key, body not sent: %s" % st)
    check(st == 401, "POST without a key before its body: %s, not 401" % st)
    check(st != 401 or r.wait_eof(3), "the connection stayed open after "
          "refusing a body it did not read")
    r.close()

    # A wrong key with Expect: 100-continue: the final 401, no 100.
    r = Raw(a.port, timeout=3)
    r.send(post_head(a.port, "wrong-key-0123456789", 20,
                     "Expect: 100-continue\r\n"))
    try:
        st, _, _ = r.read_response(3)
    except (OSError, EOFError) as e:
        st = repr(e)
    note("POST with a wrong key and Expect: %s" % st)
    check(st == 401, "a wrong key with Expect answered %s, not 401" % st)
    r.close()

    # The right key with Expect: 100 Continue, then the body, then 201.
    body = json.dumps({"body": "after 100", "id": "exp-1"}).encode()
    r = Raw(a.port, timeout=3)
    r.send(post_head(a.port, a.key, len(body), "Expect: 100-continue\r\n"))
    try:
        st, _, _ = r.read_response(3)
    except (OSError, EOFError) as e:
        st = repr(e)
    note("POST with the key and Expect: %s first" % st)
    check(st == 100, "Expect: 100-continue answered %s, not 100" % st)
    r.send(body)
    st, _, resp = r.read_response(5)
    check(st == 201, "the body after 100 Continue: %s %r" % (st, resp))

    # Ids with control characters are refused, as over a WebSocket.
    for bad in ("a\nb", "x\u0085y", "tab\there"):
        body = json.dumps({"body": "x", "id": bad}).encode()
        r.send(post_head(a.port, a.key, len(body)) + body)
        st, _, resp = r.read_response(5)
        check(st == 400, "id %r answered %s %r, not 400" % (bad, st, resp))
    note("ids with control characters: 400")
    r.close()


def first_bytes(r, timeout):
    """What the server sends first within timeout (b"" if nothing)."""
    r.sock.settimeout(timeout)
    try:
        return r.sock.recv(4096)
    except socket.timeout:
        return b""
    except OSError:
        return b"reset"


def do_perip(a):
    """max-connections-per-ip over all workers, then max-request-rate."""
    limit, extra = a.n, 3
    conns = [Raw(a.port) for _ in range(limit + extra)]
    time.sleep(0.5)
    refused = [r for r in conns if first_bytes(r, 0.5).startswith(
        b"HTTP/1.1 429")]
    note("%d connections from 127.0.0.1 at max-connections-per-ip %d: "
         "%d refused with 429" % (len(conns), limit, len(refused)))
    check(len(refused) == extra, "%d of %d connections refused, not %d" %
          (len(refused), len(conns), extra))
    # Those held serve; one closed makes room for another.
    held = [r for r in conns if r not in refused]
    st, _ = ws_upgrade(held[0], a.port, "/ws/perip?user=held")
    check(st == 101, "a connection within the limit answered %s" % st)
    held[1].close()
    time.sleep(0.5)
    r = Raw(a.port)
    got = first_bytes(r, 0.5)
    check(got == b"", "a connection after one closed got %r" % got[:30])
    r.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, _ = r.read_response(5)
    check(st in (200, 503), "its request answered %s" % st)
    for c in conns + [r]:
        c.close()
    time.sleep(0.5)

    # The rate: 3 connections (spread over the workers), 20 requests each,
    # pipelined; at most twice the rate can pass (two one-second windows).
    rate, per = a.limit, 20
    rs = [Raw(a.port) for _ in range(3)]
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    # The window is a second of CLOCK_MONOTONIC, Python's monotonic clock
    # on Linux: start just after a new one.
    time.sleep(1.02 - time.monotonic() % 1)
    for r in rs:
        r.send(req * per)
    codes, after = {}, {}
    for r in rs:
        for i in range(per):
            st, hdrs, _ = r.read_response(5)
            codes[st] = codes.get(st, 0) + 1
            if st == 429:
                after[hdrs.get("retry-after")] = 1
    passed = codes.get(200, 0) + codes.get(503, 0)
    note("%d requests at max-request-rate %d: %s" % (3 * per, rate, codes))
    check(rate <= passed <= 2 * rate and codes.get(429, 0) >= per,
          "rate %d: %s" % (rate, codes))
    check(list(after) == ["1"], "429 without Retry-After: 1: %r" % after)
    time.sleep(2.1)
    rs[0].send(req)
    st, _, _ = rs[0].read_response(5)
    check(st != 429, "a request two seconds later answered %s" % st)
    for r in rs:
        r.close()


CMDS = {"reset": do_reset, "pipeline": do_pipeline, "pings": do_pings,
        "history": do_history, "api": do_api, "perip": do_perip}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("cmd", choices=sorted(CMDS))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, default=0, help="the worker's pid")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--key", default="")
    a = ap.parse_args()
    try:
        CMDS[a.cmd](a)
    except (OSError, EOFError, ValueError, KeyError) as e:
        fail("%s: %r" % (a.cmd, e))
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
