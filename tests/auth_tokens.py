#!/usr/bin/python3
# SPDX-License-Identifier: ISC
# racerd: JWTs for tests/check_auth.c, made independently of racerd.
"""Print keys and test tokens, one per line, for check_auth.

Usage: auth_tokens.py NOW

HS256 tokens are signed with Python's hmac + hashlib, EdDSA tokens with
python3-nacl (libsodium's Python binding, but not racerd's code); the
JSON and base64url are Python's.  Output lines:

    hmac KID BASE64KEY          a key of the HMAC key file
    ed25519 KID BASE64PUBKEY    a key of the Ed25519 key file
    ed25519-secret KID BASE64   its 64-byte secret key (for racerctl)
    token NAME TOKEN            a token; check_auth knows what to expect

NOW is the time the tokens are made for (seconds since the epoch).
"""

import base64
import hashlib
import hmac
import json
import sys

import nacl.signing

NOW = int(sys.argv[1])
K1 = bytes(range(32))                   # HMAC key "k1", 32 bytes
K2 = bytes(range(100, 148))             # HMAC key "k2", 48 bytes
SEED = bytes(range(200, 232))           # Ed25519 key "e1"
SK = nacl.signing.SigningKey(SEED)
PK = bytes(SK.verify_key)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def part(x):
    if isinstance(x, str):
        x = x.encode()
    if not isinstance(x, bytes):
        x = json.dumps(x, separators=(",", ":")).encode()
    return b64u(x)


def hs(hdr, claims, key=K1, digest=hashlib.sha256, pad=None):
    m = part(hdr) + "." + part(claims)
    if pad is not None:
        m = pad(m)
    return m + "." + b64u(hmac.new(key, m.encode(), digest).digest())


def ed(hdr, claims):
    m = part(hdr) + "." + part(claims)
    return m + "." + b64u(SK.sign(m.encode()).signature)


def claims(**kw):
    c = {"sub": "alice", "chats": ["team-*", "lobby"], "exp": NOW + 600}
    for k, v in kw.items():
        if v is None:
            del c[k]
        else:
            c[k] = v
    return c


H1 = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
STD_HDR = base64.b64encode(b'{"alg":"HS256","kid":"k1","x":"???"}').decode()
assert "/" in STD_HDR and "=" not in STD_HDR
E1 = {"alg": "EdDSA", "typ": "JWT", "kid": "e1"}
OK = hs(H1, claims())

T = {
    "hs_ok": OK,
    "hs_k2": hs({"alg": "HS256", "kid": "k2"}, claims(), key=K2),
    "hs_nokid": hs({"alg": "HS256"}, claims()),
    "ed_ok": ed(E1, claims(sub="bob", chats=["*"])),
    "ed_nokid": ed({"alg": "EdDSA"}, claims()),
    "alg_none": part({"alg": "none", "kid": "k1"}) + "." +
    part(claims()) + ".",
    "alg_none_nosig": part({"alg": "none"}) + "." + part(claims()) + ".",
    "alg_hs512": hs({"alg": "HS512", "kid": "k1"}, claims(),
                    digest=hashlib.sha512),
    "alg_missing": hs({"kid": "k1"}, claims()),
    # alg confusion: HS256 "signed" with the Ed25519 public key bytes.
    "confusion_kid": hs({"alg": "HS256", "kid": "e1"}, claims(), key=PK),
    "confusion_nokid": hs({"alg": "HS256"}, claims(), key=PK),
    "ed_with_hmac_kid": ed({"alg": "EdDSA", "kid": "k1"}, claims()),
    "bad_sig": hs(H1, claims(), key=K2),
    "tampered": OK.split(".")[0] + "." + part(claims(sub="mallory")) +
    "." + OK.split(".")[2],
    "ed_bad_sig": ed(E1, claims())[:-30] + ed(E1, claims(sub="x"))[-30:],
    "truncated": OK[:-10],
    "two_parts": OK.rsplit(".", 1)[0],
    "extra_dots": OK + ".e30",
    "empty_part": "." + OK.split(".", 1)[1],
    "bad_b64": "!" + OK[1:],
    # The standard alphabet ('/' for '_') in the header.
    "std_b64": hs(None, claims(),
                  pad=lambda m: STD_HDR + "." + m.split(".")[1]),
    "pad_header": hs(H1, claims(), pad=lambda m: m.split(".")[0] + "=." +
                     m.split(".")[1]),
    "pad_claims": hs(H1, claims(), pad=lambda m: m + "="),
    "hdr_not_object": hs('"HS256"', claims()),
    "claims_not_object": hs(H1, [1, 2]),
    "claims_not_json": hs(H1, "{sub: alice"),
    "hdr_dup_alg": hs('{"alg":"HS256","alg":"none","kid":"k1"}', claims()),
    "crit": hs({"alg": "HS256", "kid": "k1", "crit": ["x"]}, claims()),
    "no_sub": hs(H1, claims(sub=None)),
    "no_exp": hs(H1, claims(exp=None)),
    "no_chats": hs(H1, claims(chats=None)),
    "exp_string": hs(H1, claims(exp=str(NOW + 600))),
    "exp_negative": hs(H1, claims(exp=-1)),
    "expired": hs(H1, claims(exp=NOW - 31)),
    "exp_in_leeway": hs(H1, claims(exp=NOW - 29)),
    "exp_real": hs(H1, claims(exp=NOW + 0.5)),
    "nbf_future": hs(H1, claims(nbf=NOW + 31)),
    "nbf_in_leeway": hs(H1, claims(nbf=NOW + 29)),
    "iat_future": hs(H1, claims(iat=NOW + 60)),
    "iat_past": hs(H1, claims(iat=NOW - 3600)),
    "sub_space": hs(H1, claims(sub="al ice")),
    "sub_long": hs(H1, claims(sub="a" * 65)),
    "sub_dotdot": hs(H1, claims(sub="..")),
    "sub_number": hs(H1, claims(sub=7)),
    "unknown_kid": hs({"alg": "HS256", "kid": "zz"}, claims()),
    "kid_number": hs({"alg": "HS256", "kid": 1}, claims()),
    "big": hs(H1, claims(pad="x" * 10240)),
    "rights_read": hs(H1, claims(rights=["read"])),
    "rights_rh": hs(H1, claims(rights=["history", "read"])),
    "rights_empty": hs(H1, claims(rights=[])),
    "rights_bad": hs(H1, claims(rights=["read", "admin"])),
    "rights_string": hs(H1, claims(rights="read")),
    "chats_string": hs(H1, claims(chats="lobby")),
    "chats_bad": hs(H1, claims(chats=["lob by"])),
    "chats_star_inside": hs(H1, claims(chats=["a*b"])),
    "chats_number": hs(H1, claims(chats=[1])),
}

print("hmac k1 %s" % base64.b64encode(K1).decode())
print("hmac k2 %s" % base64.b64encode(K2).decode())
print("ed25519 e1 %s" % base64.b64encode(PK).decode())
print("ed25519-secret e1 %s" % base64.b64encode(SEED + PK).decode())
for name, tok in T.items():
    print("token %s %s" % (name, tok))
