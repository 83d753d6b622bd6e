#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd benchmark kit: a trivial chat server standing in for racerd (or
# nchan) while testing loadgen.  Not a benchmark target: it is slow.
#
# usage: standin.py --port PORT [--mode racerd|nchan] [--drop-every N]
#                   [--fragment BYTES] [--ping SEC] [--close-after N]
#
# GET /ws/CHAT upgrades to a WebSocket (python3-websockets does the
# framing, so loadgen is checked against an independent implementation).
# Every text message is delivered to every member of CHAT, the sender
# included.  In racerd mode the first frame is a "welcome", a join is
# announced to the others with a "presence" frame, and a
# {"type":"msg","body":B,"id":I} is delivered as the racerd envelope with
# a per-chat seq; in nchan mode the text is delivered as it came.
#
#   --drop-every N   skip every Nth delivery (one receiver misses it)
#   --fragment B     send each message in fragments of B bytes
#   --ping SEC       ping every client every SEC seconds; one that does not
#                    answer within SEC is dropped
#   --close-after N  close the connection due the Nth delivery with 4100
#   --bad-seq N      racerd mode: skip one seq number after the Nth message
#
# GET /healthz answers 200.
import argparse
import asyncio
import http
import json
import sys
import time

import websockets

ARGS = None
CHATS = {}		# chat -> set of connections
SEQ = {}		# chat -> last seq
COUNT = {"deliveries": 0, "messages": 0}


async def health(path, headers):
    if path == "/healthz":
        return http.HTTPStatus.OK, [], b"ok\n"
    if not path.startswith("/ws/"):
        return http.HTTPStatus.NOT_FOUND, [], b'{"error":"not found"}\n'
    return None


def fragments(text):
    data = text
    n = ARGS.fragment
    return [data[i:i + n] for i in range(0, len(data), n)] or [""]


async def deliver(members, text):
    for ws in list(members):
        COUNT["deliveries"] += 1
        if ARGS.drop_every and COUNT["deliveries"] % ARGS.drop_every == 0:
            continue
        if ARGS.close_after and COUNT["deliveries"] == ARGS.close_after:
            await ws.close(4100, "overloaded")
            continue
        if ARGS.fragment:
            try:
                await ws.send(fragments(text))
            except websockets.ConnectionClosed:
                pass
        else:
            websockets.broadcast([ws], text)


def envelope(chat, user, text):
    try:
        m = json.loads(text)
    except ValueError:
        return json.dumps({"type": "error", "code": "bad_json",
                           "message": "not JSON"})
    if m.get("type") != "msg":
        return None
    COUNT["messages"] += 1
    SEQ[chat] = SEQ.get(chat, 0) + 1
    if ARGS.bad_seq and COUNT["messages"] == ARGS.bad_seq:
        SEQ[chat] += 1
    return json.dumps({"type": "msg", "chat": chat, "seq": SEQ[chat],
                       "id": m.get("id"), "from": user,
                       "ts": int(time.time() * 1000), "body": m["body"]},
                      separators=(",", ":"))


async def handler(ws, path=None):
    path = ws.path
    chat = path[4:].split("?")[0]
    user = "guest"
    if "user=" in path:
        user = path.split("user=")[1].split("&")[0]
    members = CHATS.setdefault(chat, set())
    if ARGS.mode == "racerd":
        await ws.send(json.dumps({"type": "welcome", "chat": chat,
                                  "user": user, "session": "s",
                                  "epoch": "e", "seq": SEQ.get(chat, 0),
                                  "window": 120}))
        websockets.broadcast(members, json.dumps(
            {"type": "presence", "event": "join", "user": user}))
    members.add(ws)
    try:
        async for text in ws:
            if not isinstance(text, str):
                continue
            if ARGS.mode == "racerd":
                text = envelope(chat, user, text)
                if text is None:
                    continue
            await deliver(members, text)
    except websockets.ConnectionClosed:
        pass
    finally:
        members.discard(ws)


async def main():
    kw = dict(compression=None, max_size=2 ** 24, max_queue=None,
              process_request=health, ping_interval=None)
    if ARGS.ping:
        kw.update(ping_interval=ARGS.ping, ping_timeout=ARGS.ping)
    async with websockets.serve(handler, "127.0.0.1", ARGS.port,
                                backlog=4096, **kw):
        print("standin: listening on 127.0.0.1:%d" % ARGS.port,
              file=sys.stderr, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=("racerd", "nchan"), default="racerd")
    p.add_argument("--drop-every", type=int, default=0)
    p.add_argument("--fragment", type=int, default=0)
    p.add_argument("--ping", type=float, default=0)
    p.add_argument("--close-after", type=int, default=0)
    p.add_argument("--bad-seq", type=int, default=0)
    ARGS = p.parse_args()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
