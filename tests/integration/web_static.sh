#!/bin/sh
# SPDX-License-Identifier: ISC
# Static files under webroot: / serves index.html, /racer.js its
# library, with Content-Type, Content-Length, ETag and Cache-Control;
# If-None-Match gives 304 (and a changed file a new ETag); HEAD has the
# headers and no body; POST is 405.  No way out of the root answers
# anything but 404: "..", "%2e%2e" in any case, encoded slashes (%2f,
# %5c), dot files, a directory without index.html (no listing), and
# symbolic links that lead out of the root (to a file or a directory);
# a link inside the root is served.  With webroot empty, / is a 404.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients

W=$T/www
mkdir -p "$W/sub" "$W/empty" "$T/outside"
cp "$top_srcdir/contrib/web/racer.js" "$W/racer.js"
printf '<!doctype html><title>t</title>index\n' >"$W/index.html"
printf 'sub index\n' >"$W/sub/index.html"
printf 'body { color: red }\n' >"$W/sub/style.css"
printf 'hidden\n' >"$W/.secret"
printf 'TOP SECRET\n' >"$T/outside/secret.txt"
ln -s "$T/outside/secret.txt" "$W/leak.txt"
ln -s "$T/outside" "$W/outdir"
ln -s ../../outside/secret.txt "$W/sub/rel-leak.txt"
ln -s sub/style.css "$W/alias.css"

PORT=$(free_port)
write_conf "$T/racerd.conf" "$PORT" 1 "webroot = $W"
start_racerd "$T/racerd.conf" "$PORT"
B=http://127.0.0.1:$PORT
ok "racerd up"

# get PATH [curl args...]: status, and headers in $T/h, body in $T/b.
get() {
	p=$1
	shift
	rm -f "$T/h" "$T/b"
	curl -s --path-as-is --max-time 5 -D "$T/h" -o "$T/b" \
	    -w '%{http_code}' "$@" "$B$p"
}
hdr() {
	[ -f "$T/h" ] || return 0
	sed -n "s/^$1: *//Ip" "$T/h" | tr -d '\r'
}

[ "$(get /)" = 200 ] || fail "/ is not 200"
grep -q index "$T/b" || fail "/ is not index.html"
[ "$(hdr Content-Type)" = "text/html; charset=utf-8" ] ||
    fail "/ has Content-Type $(hdr Content-Type)"
[ "$(hdr Cache-Control)" = no-cache ] || fail "Cache-Control: $(hdr Cache-Control)"
[ "$(get /racer.js)" = 200 ] || fail "/racer.js is not 200"
cmp -s "$T/b" "$W/racer.js" || fail "/racer.js is not the file"
[ "$(hdr Content-Type)" = "text/javascript; charset=utf-8" ] ||
    fail "/racer.js has Content-Type $(hdr Content-Type)"
[ "$(hdr Content-Length)" = "$(wc -c <"$W/racer.js" | tr -d ' ')" ] ||
    fail "/racer.js has Content-Length $(hdr Content-Length)"
[ "$(hdr X-Content-Type-Options)" = nosniff ] || fail "no nosniff"
[ "$(get /sub/style.css)" = 200 ] &&
    [ "$(hdr Content-Type)" = "text/css; charset=utf-8" ] ||
    fail "/sub/style.css: $(hdr Content-Type)"
[ "$(get /sub/)" = 200 ] && grep -q 'sub index' "$T/b" ||
    fail "/sub/ is not its index.html"
[ "$(get /alias.css)" = 200 ] || fail "a link inside the root is not served"
ok "files, index.html, types, lengths"

[ "$(get /racer.js)" = 200 ] || fail "/racer.js"
ETAG=$(hdr ETag)
case $ETAG in
\"*\") ;;
*) fail "no strong ETag: '$ETAG'" ;;
esac
[ "$(get /racer.js -H "If-None-Match: $ETAG")" = 304 ] ||
    fail "If-None-Match with the ETag is not 304"
[ -s "$T/b" ] && fail "a 304 with a body"
[ "$(hdr ETag)" = "$ETAG" ] || fail "the 304 does not repeat the ETag"
[ "$(get /racer.js -H "If-None-Match: \"other\", W/$ETAG")" = 304 ] ||
    fail "a list with the weak ETag is not 304"
[ "$(get /racer.js -H 'If-None-Match: "other"')" = 200 ] ||
    fail "another ETag is not 200"
sleep 0.01
echo '// changed' >>"$W/racer.js"
[ "$(get /racer.js -H "If-None-Match: $ETAG")" = 200 ] ||
    fail "a changed file still 304"
[ "$(hdr ETag)" != "$ETAG" ] || fail "a changed file kept its ETag"
ok "ETag and If-None-Match"

[ "$(get /racer.js -I)" = 200 ] || fail "HEAD is not 200"
# The raw answer to HEAD ends with its headers.
$PY - "$PORT" <<'PYEOF' || fail "HEAD has a body"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"HEAD /racer.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
head, sep, rest = data.partition(b"\r\n\r\n")
sys.exit(0 if sep and rest == b"" and head.startswith(b"HTTP/1.1 200") else 1)
PYEOF
[ "$(hdr Content-Length)" = "$(wc -c <"$W/racer.js" | tr -d ' ')" ] ||
    fail "HEAD has Content-Length $(hdr Content-Length)"
[ "$(get /racer.js -X POST -d x)" = 405 ] || fail "POST is not 405"
[ "$(hdr Allow)" = "GET, HEAD" ] || fail "405 without Allow: GET, HEAD"
ok "HEAD and 405"

for p in /../outside/secret.txt /sub/../../outside/secret.txt \
    /%2e%2e/outside/secret.txt /%2E%2E/outside/secret.txt \
    /.%2e/outside/secret.txt /sub/%2e%2e/index.html \
    /..%2foutside%2fsecret.txt /sub%2fstyle.css /sub%2Fstyle.css \
    /..%5coutside%5csecret.txt /.secret /%2esecret /sub/.. /sub/. \
    /leak.txt /outdir/secret.txt /sub/rel-leak.txt /empty/ /empty /sub \
    /nothing /a%00b //etc/passwd "/$T/outside/secret.txt" /%; do
	s=$(get "$p")
	[ "$s" = 404 ] || fail "$p gives $s, not 404"
	grep -q 'SECRET\|hidden' "$T/b" && fail "$p leaked a file"
done
ok "no escape: dot segments, encoded slashes, dot files, links out, listings"

# A chat route is not a file: /ws/x without an upgrade is still 426.
[ "$(get /ws/room)" = 426 ] || fail "/ws/room is not 426"
[ "$(get /healthz)" = 200 ] || fail "/healthz"

# webroot empty: nothing is served.
kill -TERM "$MASTER"
wait_gone "$MASTER" 10 || fail "racerd did not stop"
write_conf "$T/racerd.conf" "$PORT" 1 "webroot ="
start_racerd "$T/racerd.conf" "$PORT"
[ "$(get /)" = 404 ] || fail "webroot empty: / is not 404"
[ "$(get /racer.js)" = 404 ] || fail "webroot empty: /racer.js is not 404"
ok "an empty webroot serves nothing"
finish
