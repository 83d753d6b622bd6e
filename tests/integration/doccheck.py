# SPDX-License-Identifier: ISC
"""Check the manual pages against the code.

doccheck.py protocol SRCDIR PAGE
    Every frame type, error code, close code, HTTP status, query parameter,
    JSON member and presence event that the daemon's source can emit (or
    accept) must be documented in PAGE (racerd-protocol.7).

doccheck.py usage PROGRAM PAGE
    The options that "PROGRAM -h" prints must be those of the SYNOPSIS of
    PAGE, and every option the page describes must be in its SYNOPSIS.

Prints one line per problem and exits 1 if there is any, else 0.
"""

import os
import re
import subprocess
import sys

# --- reading C source ------------------------------------------------------


def strip_comments(text):
    """C source without its comments, string literals kept."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_args(text, name):
    """The argument lists (as strings) of every call of name in text."""
    calls = []
    for m in re.finditer(r"\b%s\s*\(" % re.escape(name), text):
        i, depth, args, cur = m.end(), 1, [], []
        while i < len(text) and depth > 0:
            c = text[i]
            if c == '"':
                j = i + 1
                while j < len(text) and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                cur.append(text[i:j + 1])
                i = j + 1
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth == 0:
                    break
            if c == "," and depth == 1:
                args.append("".join(cur).strip())
                cur = []
            else:
                cur.append(c)
            i += 1
        args.append("".join(cur).strip())
        calls.append(args)
    return calls


def literals(expr):
    """The string literals of a C expression, unescaped simply."""
    return [s.replace('\\"', '"') for s in
            re.findall(r'"((?:[^"\\]|\\.)*)"', expr)]


def numbers(expr, lo, hi):
    return {int(x) for x in re.findall(r"\b(\d{3,4})\b", expr)
            if lo <= int(x) <= hi}


def daemon_sources(srcdir):
    """{name: text without comments} of the daemon's C files."""
    files = {}
    for name in sorted(os.listdir(srcdir)):
        if not name.endswith((".c", ".h")) or name.startswith("racer") \
                and not name.startswith("racerd"):
            continue
        with open(os.path.join(srcdir, name), encoding="utf-8") as f:
            files[name] = strip_comments(f.read())
    return files


def lua_sources(srcdir):
    texts = []
    luadir = os.path.join(srcdir, "lua")
    for name in sorted(os.listdir(luadir)):
        if name.endswith(".lua"):
            with open(os.path.join(luadir, name), encoding="utf-8") as f:
                texts.append(re.sub(r"--[^\n]*", "", f.read()))
    return "\n".join(texts)


# --- what the source can emit ----------------------------------------------

# Close codes a WebSocket library reports locally; never sent (RFC 6455 7.4.1).
NOT_ON_WIRE = {1005, 1006, 1015}


def macros(src):
    """{NAME: number} of every '#define NAME number'."""
    out = {}
    for text in src.values():
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+\(?"
                             r"(\d+)\)?[ \t]*$", text, re.M):
            out[m.group(1)] = int(m.group(2))
    return out


def code_of(expr, defs, lo, hi):
    """Numbers in [lo, hi] of an expression, macros resolved."""
    found = numbers(expr, lo, hi)
    for word in re.findall(r"\b[A-Z_][A-Z0-9_]*\b", expr):
        if word in defs and lo <= defs[word] <= hi:
            found.add(defs[word])
    return found


def extract(srcdir):
    src = daemon_sources(srcdir)
    lua = lua_sources(srcdir)
    every = "\n".join(src.values())
    defs = macros(src)
    got = {k: set() for k in ("types", "client_types", "errors", "closes",
                              "statuses", "params", "members", "events")}

    # Frame types: packed by proto.c, written literally, or by the scripts.
    for args in call_args(every, "proto_buf_pack"):
        lits = [literals(a) for a in args[2:]]
        for i, l in enumerate(lits[:-1]):
            if l == ["type"] and lits[i + 1]:
                got["types"].add(lits[i + 1][0])
        for l in lits:
            got["members"].update(l)
    got["types"].update(re.findall(r'\\"type\\":\\"(\w+)\\"', every))
    got["types"].update(re.findall(r"\btype\s*=\s*'(\w+)'", lua))
    # What proto_parse accepts, and the enum that names it.
    proto = src.get("proto.c", "")
    got["client_types"].update(
        re.findall(r'strcmp\s*\(\s*\w+\s*,\s*"(\w+)"\s*\)', proto))
    m = re.search(r"enum\s+proto_type\s*\{([^}]*)\}", src.get("proto.h", ""))
    if m:
        got["client_types"].update(
            w.lower() for w in re.findall(r"PROTO_(\w+)", m.group(1)))

    # Error codes of error frames.
    for fn in ("ws_send_error", "ws_send_error_id", "ws_refuse",
               "proto_error", "proto_error_id"):
        for args in call_args(every, fn):
            i = 0 if fn.startswith("proto_") else 1
            if len(args) > i:
                got["errors"].update(literals(args[i])[:1])
    for args in call_args(proto, "proto_fail"):
        for a in args:
            lit = literals(a)
            if lit:
                got["errors"].add(lit[0])
                break

    # Close codes: ws_close, wslay_event_queue_close, close_code
    # assignments, a hand-made close frame (CODE >> 8), named macros.
    for fn in ("ws_close", "wslay_event_queue_close"):
        for args in call_args(every, fn):
            if len(args) > 1:
                got["closes"] |= code_of(args[1], defs, 1000, 4999)
    for m in re.finditer(r"\bclose_code\s*=\s*([^;]+);", every):
        got["closes"] |= code_of(m.group(1), defs, 1000, 4999)
    for m in re.finditer(r"\b(\d{4})\s*>>\s*8\b", every):
        got["closes"] |= numbers(m.group(1), 1000, 4999)
    for name, value in defs.items():
        if "CLOSE" in name and 1000 <= value <= 4999:
            got["closes"].add(value)
    # What wslay sends for racerd: its parser's refusals (1002, and 1007
    # for a text frame that is not UTF-8), 1009 over the size racerd sets,
    # and the echo of a client's close (1000).
    wsc = src.get("ws.c", "")
    if "wslay_event_recv" in wsc:
        got["closes"] |= {1002, 1007}
    if "set_max_recv_msg_length" in wsc:
        got["closes"].add(1009)
    if "WSLAY_CONNECTION_CLOSE" in wsc:
        got["closes"].add(1000)
    got["closes"] -= NOT_ON_WIRE

    # HTTP statuses.
    where = {"http_error": 1, "http_response": 1, "conn_reply_json": 1,
             "http_ws_fail": 3, "http_buf_add": -1}
    for fn, i in where.items():
        for args in call_args(every, fn):
            if len(args) > abs(i) - (1 if i < 0 else 0):
                got["statuses"] |= code_of(args[i], defs, 100, 599)
    for m in re.finditer(r"\bstatus\s*=\s*([^;=][^;]*);", every):
        got["statuses"] |= code_of(m.group(1), defs, 100, 599)
    for m in re.finditer(r"^(\w*status\w*)\s*\([^)]*\)\s*\{(.*?)^\}", every,
                         re.M | re.S):
        for r in re.findall(r"return\s*\(\s*(\d{3})\s*\)", m.group(2)):
            got["statuses"] |= numbers(r, 100, 599)
    got["statuses"] |= numbers(" ".join(re.findall(r'"HTTP/1\.1 (\d{3}) ',
                                                   every)), 100, 599)

    # Query parameters.
    for fn in ("http_query_get", "http_query_u64"):
        for args in call_args(every, fn):
            if len(args) > 1:
                got["params"].update(literals(args[1])[:1])

    # JSON members and values written by hand or with json_pack.
    got["members"].update(re.findall(r'\\"(\w+)\\"', "\n".join(
        src.get(f, "") for f in ("proto.c", "api.c", "seal.c", "conn.c"))))
    for f in ("api.c", "conn.c"):
        for fn in ("json_pack", "json_object_set_new"):
            for args in call_args(src.get(f, ""), fn):
                for a in args[1:]:
                    got["members"].update(l for l in literals(a)
                                          if re.fullmatch(r"\w+", l))
    got["members"] = {w for w in got["members"]
                      if re.fullmatch(r"[a-z_]+", w)}

    # Presence events of the scripts.
    got["events"].update(re.findall(r"\bevent\s*=\s*'(\w+)'", lua))
    got["events"].update(re.findall(
        r"\bpresence\s*\((?:[^,()]+,\s*)+?'(\w+)'", lua))
    return got


# What the extraction must find at least: if a pattern stops matching
# (the code changed shape), this test fails instead of passing vacuously.
FLOOR = {
    "types": {"welcome", "msg", "presence", "resumed", "history", "error",
              "refreshed"},
    "client_types": {"msg", "ack", "history", "refresh"},
    "errors": {"bad_json", "bad_type", "bad_field", "rate_limited",
               "forbidden", "unauthorized", "unavailable"},
    "closes": {1000, 1002, 1003, 1007, 1008, 1009, 4001, 4009, 4100, 4200,
               4208},
    "statuses": {101, 200, 201, 400, 401, 403, 404, 405, 408, 413, 426, 431,
                 503},
    "params": {"user", "token", "session", "last", "since", "epoch",
               "before", "limit"},
    "members": {"type", "chat", "seq", "id", "from", "ts", "body", "sealed",
                "session", "epoch", "window", "code", "message", "event",
                "latest", "messages", "next", "exp", "replayed",
                "complete"},
    "events": {"join", "away", "back", "leave"},
}

# The contract's close codes: documented even where racerd does not send
# them itself (1001, 1011 from proxies; 4003 reserved).
CONTRACT_CLOSES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 4001,
                   4003, 4009, 4100, 4200, 4208}


# --- reading the page -------------------------------------------------------


def sections(page):
    """{section name: its lines} of an mdoc page."""
    out, name = {}, ""
    for line in page.splitlines():
        m = re.match(r"\.Sh\s+(.*)", line)
        if m:
            name = m.group(1).strip().strip('"')
        out.setdefault(name, []).append(line)
    return out


def items(lines):
    """The .It heads of lines, as strings without the macro."""
    return [l[4:].strip() for l in lines if l.startswith(".It ")]


def protocol(srcdir, pagefile):
    with open(pagefile, encoding="utf-8") as f:
        page = f.read()
    sec = sections(page)
    got = extract(srcdir)
    bad = []

    for k, floor in FLOOR.items():
        lost = floor - got[k]
        if lost:
            bad.append("the source scan found no %s %s: has the code "
                       "changed shape? (update %s)" % (
                           k, sorted(lost), os.path.basename(__file__)))

    def need(kind, what, ok):
        for w in sorted(what):
            if not ok(w):
                bad.append("%s %s is not documented in %s" % (
                    kind, w, os.path.basename(pagefile)))

    quoted = lambda w: ('"%s"' % w) in page or \
        re.search(r"\bQq %s\b" % re.escape(w), page) is not None
    need("frame type", got["types"] | got["client_types"],
         lambda w: ('"type":"%s"' % w) in page)
    errs = items(sec.get("ERROR CODES", []))
    need("error code", got["errors"], lambda w: "Cm " + w in errs)
    closes = items(sec.get("CLOSE CODES", []))
    need("close code", got["closes"] | CONTRACT_CLOSES,
         lambda w: str(w) in closes)
    for lo in (4000, 4100, 4200):
        if "%d to %d" % (lo, lo + 99) not in closes:
            bad.append("close-code class %d to %d is not documented" %
                       (lo, lo + 99))
    statuses = items(sec.get("HTTP STATUS CODES", []))
    need("HTTP status", got["statuses"], lambda w: str(w) in statuses)
    need("query parameter", got["params"],
         lambda w: re.search(r"^\.It Cm %s Ns =" % re.escape(w), page,
                             re.M) is not None)
    need("JSON member or value", got["members"], quoted)
    need("presence event", got["events"], quoted)

    for k in sorted(got):
        print("# %s: %s" % (k, " ".join(str(x) for x in sorted(got[k]))))
    return bad


# --- usage against SYNOPSIS -------------------------------------------------


def usage_options(text):
    opts = set()
    for tok in re.findall(r"(?<![\w/.])(--?[A-Za-z][\w-]*)", text):
        if tok.startswith("--"):
            opts.add(tok)
        else:
            opts.update("-" + c for c in tok[1:])
    return opts


def mdoc_options(line):
    """Options named by the Fl macros of one mdoc line, in order."""
    toks = [t.lstrip(".") if i == 0 else t for i, t in
            enumerate(line.split())]
    out = []
    for i, t in enumerate(toks):
        if t != "Fl" or i + 1 >= len(toks):
            continue
        arg = toks[i + 1]
        if arg.startswith("\\-") or arg.startswith("-"):
            out.append("--" + arg.lstrip("\\-").replace("\\-", "-"))
        elif re.fullmatch(r"[A-Za-z0-9]+", arg) and \
                not re.fullmatch(r"[A-Z][a-z]", arg):
            out.extend("-" + c for c in arg)
    return out


def usage(program, pagefile):
    with open(pagefile, encoding="utf-8") as f:
        sec = sections(f.read())
    p = subprocess.run([program, "-h"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    text = p.stdout.decode("utf-8", "replace")
    name = os.path.basename(program)
    bad = []
    if "usage:" not in text:
        return ["%s -h prints no usage: %r" % (name, text)]
    printed = usage_options(text)
    synopsis = set()
    for line in sec.get("SYNOPSIS", []):
        synopsis.update(mdoc_options(line))
    if not synopsis:
        bad.append("%s: no options found in the SYNOPSIS" % pagefile)
    for o in sorted(printed - synopsis):
        bad.append("%s -h prints %s, the SYNOPSIS of %s does not" % (
            name, o, os.path.basename(pagefile)))
    for o in sorted(synopsis - printed):
        bad.append("the SYNOPSIS of %s has %s, %s -h does not print it" % (
            os.path.basename(pagefile), o, name))
    # Every option the page describes is in the SYNOPSIS; ".It Fl a , Fl
    # \-long" names one option twice, other heads name several.
    for line in sec.get("DESCRIPTION", []):
        if not line.startswith(".It "):
            continue
        named = mdoc_options(line)
        if not named:
            continue
        if line.startswith(".It Fl "):
            if not set(named) & synopsis:
                bad.append("%s describes %s, its SYNOPSIS does not "
                           "have it" % (os.path.basename(pagefile),
                                        " ".join(named)))
        else:
            for o in named:
                if o not in synopsis:
                    bad.append("%s describes %s, its SYNOPSIS does not "
                               "have it" % (os.path.basename(pagefile), o))
    print("# %s -h: %s" % (name, " ".join(sorted(printed))))
    print("# SYNOPSIS: %s" % " ".join(sorted(synopsis)))
    return bad


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("protocol", "usage"):
        sys.exit("usage: doccheck.py protocol SRCDIR PAGE | "
                 "usage PROGRAM PAGE")
    if sys.argv[1] == "protocol":
        bad = protocol(sys.argv[2], sys.argv[3])
    else:
        bad = usage(sys.argv[2], sys.argv[3])
    for b in bad:
        print(b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
