#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the errors subcommand of wsclient.py.
"""Malformed traffic, built by hand on raw sockets: the subcommand errors
(chat_errors.sh) sends bad HTTP requests (unknown paths, bad methods,
oversized or slow headers) and bad WebSocket handshakes and frames
(unmasked or reserved frames, bad close codes, invalid UTF-8, oversized
messages) and checks each answer, and that racerd still serves a fresh
client after every case.
"""

import asyncio
import base64
import json
import os
import time

from wslib import (FAILS, Raw, alive, check, close_payload, fail, frame,
                   next_frame, note, read_until_close, ws_open, ws_request)


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

def add_commands(sp):
    """Add errors to the subparsers sp."""
    p = sp.add_parser("errors", help="bad handshakes and frames")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-message-size", type=int, required=True)
    p.add_argument("--header-timeout", type=int, required=True)
    p.set_defaults(run=do_errors)
