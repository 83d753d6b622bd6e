#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: the client side, run by tests/integration/*.sh.
"""Drive racerd over real WebSocket connections and check what comes back.

Well-formed traffic goes through Debian's python3-websockets (10.x, asyncio
API), an independent implementation, so that racerd is not only tested
against itself.  Malformed traffic (bad handshakes, unmasked or reserved
frames, bad close codes, invalid UTF-8) is built by hand on raw sockets.

Usage: wsclient.py SUBCOMMAND [options]; see --help of each subcommand.
Every check that fails prints one "FAIL: ..." line; the exit status is 0
only if nothing failed.  Every wait is bounded.

This file only dispatches.  The subcommands are in modules by area:
ws_chat.py (basic, fanout, churn, rejoin), ws_errors.py (errors),
ws_sess.py (sessions, history and the HTTP API) and ws_res.py
(resilience); the client library they share is wslib.py.
"""

import argparse
import sys

import ws_chat
import ws_errors
import ws_res
import ws_sess
import wslib


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sp = ap.add_subparsers(dest="cmd", metavar="SUBCOMMAND", required=True)
    for area in (ws_chat, ws_errors, ws_sess, ws_res):
        area.add_commands(sp)
    a = ap.parse_args()
    a.run(a)
    return 1 if wslib.FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
