#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd benchmark kit: a TCP proxy that re-cuts the server -> client byte
# stream, to test how loadgen reassembles frames.  Client -> server bytes
# pass unchanged.
#
# usage: chunkproxy.py --listen PORT --to PORT (--split N | --random N |
#                      --coalesce MS) [--delay SEC]
#
#   --split N     write N bytes at a time, each write separate (TCP_NODELAY)
#                 and --delay seconds apart (default 0.0005), so that the
#                 client reads every piece on its own: --split 1 cuts every
#                 frame at every byte boundary
#   --random N    the same with piece sizes drawn from 1..N
#   --coalesce MS gather everything that arrives within MS ms and write it
#                 at once, so that one read holds several frames
import argparse
import asyncio
import random
import socket
import sys

ARGS = None


async def down(reader, writer):
    loop = asyncio.get_running_loop()
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if ARGS.coalesce:
            buf = bytearray(data)
            end = loop.time() + ARGS.coalesce / 1000.0
            while loop.time() < end:
                try:
                    more = await asyncio.wait_for(reader.read(65536),
                                                  end - loop.time())
                except asyncio.TimeoutError:
                    break
                if not more:
                    break
                buf += more
            writer.write(bytes(buf))
            await writer.drain()
            continue
        i = 0
        while i < len(data):
            n = ARGS.split or random.randint(1, ARGS.random)
            writer.write(data[i:i + n])
            await writer.drain()
            i += n
            await asyncio.sleep(ARGS.delay)
    writer.close()


async def up(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve(creader, cwriter):
    sock = cwriter.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1",
                                                         ARGS.to)
    except OSError:
        cwriter.close()
        return
    try:
        await asyncio.gather(down(sreader, cwriter), up(creader, swriter))
    except (ConnectionError, OSError):
        pass
    finally:
        cwriter.close()
        swriter.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", ARGS.listen,
                                        backlog=4096)
    print("chunkproxy: 127.0.0.1:%d -> %d" % (ARGS.listen, ARGS.to),
          file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--to", type=int, required=True)
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--random", type=int, default=0)
    p.add_argument("--coalesce", type=float, default=0)
    p.add_argument("--delay", type=float, default=0.0005)
    ARGS = p.parse_args()
    if not (ARGS.split or ARGS.random or ARGS.coalesce):
        p.error("one of --split, --random, --coalesce")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
