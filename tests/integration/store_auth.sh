#!/bin/sh
# SPDX-License-Identifier: ISC
# Store credentials: a redis-server with requirepass and a Redis 6 ACL
# user.  redis://:PASSWORD@ and redis://USER:PASSWORD@ (a %-escaped @ in
# it) both chat; a wrong password stops racerd at start with the store's
# reason; a password changed under a running racerd turns /healthz to 503
# "authentication refused" (logged), and racerd recovers when it is set
# back.  The password never appears in a log line or an error message.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need redis-cli

RPORT=$(free_port)
PASS=s3cret-Pw
UPASS='p@ss:w0rd'
UPASS_URL='p%40ss%3Aw0rd'
redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no \
    --daemonize no --dir "$T" --logfile "$T/redis.log" \
    --requirepass "$PASS" \
    --user default on ">$PASS" '~*' '&*' '+@all' \
    --user racerd on ">$UPASS" '~racerd:*' '&*' '+@all' &
PIDS="$PIDS $!"
rcli() {
	REDISCLI_AUTH=$PASS redis-cli -h 127.0.0.1 -p "$RPORT" "$@" 2>/dev/null
}
i=0
until [ "$(rcli ping)" = PONG ] || [ "$i" -ge 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ "$(rcli ping)" = PONG ] || { fail "redis-server did not start"; finish; }
[ "$(redis-cli -h 127.0.0.1 -p "$RPORT" set x 1 2>&1)" != OK ] ||
    fail "the store does not require a password"
ok "redis-server with requirepass and an ACL user"

# No secret in what racerd wrote: the log, its stderr, start errors.
no_secret() {
	if grep -l -e "$PASS" -e "$UPASS" -e "$UPASS_URL" "$T"/*.log \
	    "$T"/*.err "$T"/*.out 2>/dev/null | grep -v redis.log; then
		fail "a password was written ($1)"
	fi
}

# A wrong password: no start, the store's reason, exit 1.
PORT=$(free_port)
write_conf "$T/bad.conf" "$PORT" 1 "redis = redis://:wrong-$PASS@127.0.0.1:$RPORT/0"
"$RACERD" -f -c "$T/bad.conf" >"$T/bad.out" 2>&1
st=$?
[ "$st" = 1 ] || fail "racerd with a wrong password exited $st"
grep -q "store redis://:\*\*\*@127.0.0.1:$RPORT/0 refused to authenticate: WRONGPASS" \
    "$T/bad.out" "$T/racerd.log" || fail "start error: $(cat "$T/bad.out")"
grep -q "wrong-" "$T/bad.out" "$T/racerd.log" && fail "password shown"
ok "a wrong password stops the start with the store's reason"

# requirepass: the default user.
write_conf "$T/racerd.conf" "$PORT" 2 "redis = redis://:$PASS@127.0.0.1:$RPORT/0"
start_racerd "$T/racerd.conf" "$PORT"
wsclient basic --port "$PORT" --timeout 40 || fail "chat with requirepass"
[ "$(rcli client list | grep -c 'name=racerd:')" -ge 4 ] ||
    fail "racerd's store connections are not there"
kill "$MASTER"
wait_gone "$MASTER" 10 || fail "racerd did not stop"
ok "redis://:PASSWORD@ authenticates and chats"

# An ACL user, with a %-escaped password; keys under racerd:* only.
write_conf "$T/racerd.conf" "$PORT" 2 \
    "redis = redis://racerd:$UPASS_URL@127.0.0.1:$RPORT/0"
start_racerd "$T/racerd.conf" "$PORT"
wsclient basic --port "$PORT" --timeout 40 || fail "chat as an ACL user"
rcli client list | grep 'name=racerd:' | grep -q 'user=racerd' ||
    fail "not connected as user racerd"
ok "redis://USER:PASSWORD@ authenticates as the ACL user and chats"

# The password changes under racerd: 503 with the reason, then back.
rcli acl setuser racerd resetpass ">other-$UPASS" >/dev/null
rcli client kill user racerd >/dev/null
# First the link is lost ("closed"), then a reconnect is refused: wait
# for the refusal, which comes after the back-off (at most a few seconds).
i=0
while http_curl "http://127.0.0.1:$PORT/healthz" >"$T/health.out" &&
    ! grep -q 'authentication refused' "$T/health.out" &&
    [ "$i" -lt 150 ]; do
	sleep 0.1
	i=$((i + 1))
done
grep -q '"error":"store: [a-z]*: authentication refused: WRONGPASS' \
    "$T/health.out" || fail "healthz said: $(cat "$T/health.out")"
wait_log "store [a-z]* connection: authentication refused: WRONGPASS" 5 ||
    fail "the refusal was not logged"
rcli acl setuser racerd resetpass ">$UPASS" >/dev/null
wait_healthy "$PORT" 15 || fail "not healthy once the password is back"
wsclient basic --port "$PORT" --timeout 40 || fail "chat after recovery"
ok "a refused password: 503 with the reason, recovered when it is back"

no_secret "logs"
ok "no password in any log or message"
finish
