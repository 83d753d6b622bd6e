#!/bin/sh
# SPDX-License-Identifier: ISC
# Deployment: the embedded store's files are not readable by other users,
# the pid file is never written through a symbolic link and is locked by
# the running master, and contrib/racerd.service passes systemd-analyze
# verify (with an exposure score from systemd-analyze security).
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need systemd-analyze
umask 022

# The embedded store (redis = embedded, the default).
port=$(free_port)
write_conf "$T/racerd.conf" "$port" 1 "pid-file = $T/racerd.pid"
start_racerd "$T/racerd.conf" "$port"
ok "racerd with its embedded store up"
mode=$(stat -c %a "$T/state")
[ "$mode" = 750 ] || fail "state-dir has mode $mode, not 750"
open=$(find "$T/state" -perm /o=rwx | head -n 3)
[ -z "$open" ] || fail "readable by others in state-dir: $open"
echo "  state-dir: $(find "$T/state" -printf '%m %P\n' | tr '\n' ' ')"
ok "state-dir 0750, the store's files closed to other users"

# A second racerd (another instance) given the same pid file.
port2=$(free_port)
write_conf_as "$T/b.conf" "$port2" 1 b "pid-file = $T/racerd.pid" \
    "redis = unix:$T/run/redis.sock"
if timeout -k 2 10 "$RACERD" -f -c "$T/b.conf" 2>"$T/b.err"; then
	fail "a second racerd started on a locked pid file"
fi
grep -q "racerd.pid: locked by another racerd" "$T/b.err" ||
    fail "no word about the locked pid file: $(cat "$T/b.err")"
[ "$(cat "$T/racerd.pid")" = "$MASTER" ] ||
    fail "the running master's pid file was overwritten"
ok "the pid file is locked by the running master"

# A pid file that is a symbolic link is refused, its target untouched.
echo precious >"$T/victim"
ln -s "$T/victim" "$T/link.pid"
port3=$(free_port)
write_conf_as "$T/c.conf" "$port3" 1 c "pid-file = $T/link.pid" \
    "redis = unix:$T/run/redis.sock"
if timeout -k 2 10 "$RACERD" -f -c "$T/c.conf" 2>"$T/c.err"; then
	fail "racerd started with a symbolic link as pid file"
fi
grep -q "link.pid: is a symbolic link" "$T/c.err" ||
    fail "no word about the symbolic link: $(cat "$T/c.err")"
[ "$(cat "$T/victim")" = precious ] ||
    fail "the pid file's symbolic link was followed"
ok "a pid file that is a symbolic link is refused"

# The systemd unit, with the binary under test in place of the installed
# one (verify checks that the commands exist).
sed "s|/usr/local/sbin/racerd|$RACERD|" \
    "$top_srcdir/contrib/racerd.service" >"$T/racerd.service"
if ! systemd-analyze verify --man=no "$T/racerd.service" >"$T/verify" 2>&1
then
	fail "systemd-analyze verify: $(cat "$T/verify")"
fi
for k in User=racerd StateDirectoryMode=0750 NoNewPrivileges=yes \
    ProtectSystem=strict PrivateTmp=yes ProtectHome=yes; do
	grep -q "^$k\$" "$T/racerd.service" || fail "the unit lacks $k"
done
score=$(systemd-analyze security --offline=yes "$T/racerd.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for racerd.service: //p')
echo "  systemd-analyze security: ${score:-not available}"
ok "contrib/racerd.service verifies, runs as racerd, hardened"

finish
