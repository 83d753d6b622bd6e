#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd integration tests: end-to-end bodies, from an independent side.
"""Seal and open e2e1: bodies with PyNaCl (Debian's python3-nacl), and
watch a chat as a plain WebSocket member that holds no secret.

  e2e.py seal SECRET CHAT TEXT      print the body "e2e1:..."
  e2e.py open SECRET CHAT BODY      print the text; exit 1 if it does not open
  e2e.py observe PORT CHAT COUNT    join as "observer", print the body of
                                    each message (one JSON string a line)
                                    until COUNT arrived or 20 s passed

The format (racer(1), racer.js): "e2e1:" + standard padded base64 of
nonce[24] || XChaCha20-Poly1305-IETF ciphertext, the chat id as associated
data; key = Argon2id13(secret, opslimit 2, memlimit 64 MiB, salt = first
16 bytes of the unkeyed 32-byte BLAKE2b of the chat id).
"""

import asyncio
import base64
import hashlib
import json
import os
import sys

import nacl.bindings as b
import nacl.pwhash
import nacl.utils


def key(secret, chat):
    salt = hashlib.blake2b(chat.encode(), digest_size=32).digest()[:16]
    return nacl.pwhash.argon2id.kdf(
        32, secret.encode(), salt,
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)


def seal(secret, chat, text):
    # E2E_NONCE (hex) fixes the nonce, for the known-answer vector.
    fixed = os.environ.get("E2E_NONCE")
    nonce = bytes.fromhex(fixed) if fixed else nacl.utils.random(24)
    ct = b.crypto_aead_xchacha20poly1305_ietf_encrypt(
        text.encode(), chat.encode(), nonce, key(secret, chat))
    return "e2e1:" + base64.b64encode(nonce + ct).decode()


def unseal(secret, chat, body):
    if not body.startswith("e2e1:"):
        raise ValueError("not an e2e1: body")
    box = base64.b64decode(body[5:], validate=True)
    return b.crypto_aead_xchacha20poly1305_ietf_decrypt(
        box[24:], chat.encode(), box[:24], key(secret, chat)).decode()


async def observe(port, chat, count):
    import websockets
    url = "ws://127.0.0.1:%s/ws/%s?user=observer&since=0" % (port, chat)
    n = 0
    async with websockets.connect(url) as ws:
        while n < count:
            f = json.loads(await ws.recv())
            if f.get("type") == "msg":
                print(json.dumps(f.get("body")), flush=True)
                n += 1


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, x, chat, y = sys.argv[1:]
    if cmd == "seal":
        print(seal(x, chat, y))
    elif cmd == "open":
        try:
            print(unseal(x, chat, y))
        except Exception as e:  # a wrong key is a CryptoError
            print("cannot open: %s" % e, file=sys.stderr)
            sys.exit(1)
    elif cmd == "observe":
        try:
            asyncio.run(asyncio.wait_for(observe(x, chat, int(y)), 20))
        except asyncio.TimeoutError:
            sys.exit(1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
