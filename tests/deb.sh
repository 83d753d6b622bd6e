#!/bin/sh
# SPDX-License-Identifier: ISC
# The Debian package end to end: built from this tree by dpkg-buildpackage
# (debian/), installed with dpkg, the racerd user made by its postinst,
# the unit's ExecStartPre and ExecStart command lines run as that user
# (with the directories systemd would make), a message sent with racer and
# read back from the history, then purged: binaries, configuration, data
# and log directories gone.  It installs a package, so it needs root and
# is not part of `make check`: `sh contrib/dev.sh deb` runs it (and CI).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "deb.sh: needs root" >&2; exit 1; }
if dpkg-query -W -f='${Status}' racerd 2>/dev/null | grep -q installed; then
	echo "deb.sh: a racerd package is installed already; not touching it" >&2
	exit 1
fi

d=$(mktemp -d "${TMPDIR:-/tmp}/racerd-deb.XXXXXX")
pid=""
installed=0
made_run=0
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		sleep 1
		kill -KILL "$pid" 2>/dev/null || true
	fi
	[ "$installed" = 1 ] && dpkg --purge racerd >/dev/null 2>&1 || true
	[ "$made_run" = 1 ] && rm -rf /run/racerd
	rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() {
	echo "FAIL: deb: $*" >&2
	for f in /var/log/racerd/racerd.log "$d/start.err"; do
		[ -f "$f" ] && tail -n 20 "$f" >&2
	done
	exit 1
}
ok() {
	echo "ok: deb: $*"
}

# A copy of the tree (what git knows, or everything but build output).
mkdir "$d/racerd-0.1.0"
if [ -d "$top/.git" ] && command -v git >/dev/null; then
	git -C "$top" ls-files -z --cached --others --exclude-standard |
	    (cd "$top" && xargs -0 tar -cf - --no-recursion) |
	    tar -xf - -C "$d/racerd-0.1.0"
else
	(cd "$top" && tar -cf - --exclude='./build*' --exclude=./debian/racerd \
	    .) | tar -xf - -C "$d/racerd-0.1.0"
fi
(cd "$d/racerd-0.1.0" &&
    DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
    dpkg-buildpackage -us -uc -b >"$d/build.log" 2>&1) || {
	tail -n 30 "$d/build.log" >&2
	fail "dpkg-buildpackage failed"
}
deb=$(ls "$d"/racerd_*_*.deb)
ok "built $(basename "$deb")"

dpkg -i "$deb" >"$d/install.log" 2>&1 || {
	cat "$d/install.log" >&2
	fail "dpkg -i failed"
}
installed=1
for f in /usr/sbin/racerd /usr/sbin/racerctl /usr/bin/racer \
    /etc/racerd/racerd.conf /etc/logrotate.d/racerd \
    /usr/share/man/man7/racerd-protocol.7.gz /usr/share/racerd/www/index.html
do
	[ -e "$f" ] || fail "$f is not installed"
done
getent passwd racerd >/dev/null || fail "postinst made no racerd user"
[ "$(stat -c '%U:%G %a' /etc/racerd/racerd.conf)" = "root:racerd 640" ] ||
    fail "racerd.conf is $(stat -c '%U:%G %a' /etc/racerd/racerd.conf)"
# The unit where dh_installsystemd finds it, enabled by the maintainer
# scripts (started too where systemd runs).
[ -e /lib/systemd/system/racerd.service ] || fail "no /lib/systemd/system/racerd.service"
grep -q deb-systemd-helper /var/lib/dpkg/info/racerd.postinst ||
    fail "postinst does not enable the unit"
[ -e /var/lib/dpkg/info/racerd.prerm ] || fail "no prerm stops the unit"
ok "installed: binaries, configuration, unit, manual pages, web page; user racerd"

unit=/lib/systemd/system/racerd.service
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
case $start in
/usr/sbin/racerd\ *) ;;
*) fail "the unit starts '$start', not /usr/sbin/racerd" ;;
esac

# A free port for this run; the rest is the packaged configuration.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listen = 127.0.0.1:%s\nlog-file = /var/log/racerd/racerd.log\n' \
    "$port" >>/etc/racerd/racerd.conf
# What systemd makes for the unit: RuntimeDirectory, StateDirectory and
# LogsDirectory (the unit must ask for each).
for k in RuntimeDirectory StateDirectory LogsDirectory; do
	grep -q "^$k=racerd\$" "$unit" || fail "the unit has no $k=racerd"
done
[ -e /run/racerd ] && fail "/run/racerd exists already"
made_run=1
install -d -o racerd -g racerd -m 750 /run/racerd /var/lib/racerd \
    /var/log/racerd
# shellcheck disable=SC2086
runuser -u racerd -- $pre >"$d/pre.out" 2>&1 ||
    fail "ExecStartPre ($pre): $(cat "$d/pre.out")"
# shellcheck disable=SC2086
runuser -u racerd -- $start 2>"$d/start.err" || fail "ExecStart ($start)"
i=0
until [ -s /run/racerd/racerd.pid ] && [ "$(curl -s -o /dev/null \
    -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "racerd is not healthy on port $port"
	sleep 0.1
done
pid=$(cat /run/racerd/racerd.pid)
[ "$(stat -c %U "/proc/$pid")" = racerd ] || fail "racerd runs as $(stat -c %U "/proc/$pid")"
ok "the unit's command lines run racerd as racerd (pid $pid, port $port)"

body="packaged hello $$"
timeout 20 /usr/bin/racer -u deb --send "$body" "ws://127.0.0.1:$port" \
    lobby >"$d/racer.out" 2>&1 || fail "racer --send: $(cat "$d/racer.out")"
curl -s "http://127.0.0.1:$port/chats/lobby/messages" | grep -q "$body" ||
    fail "the message is not in the history"
ok "racer sent a message; the history has it"

kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "racerd did not stop on TERM"
	sleep 0.1
done
pid=""
rm -rf /run/racerd	# systemd removes the RuntimeDirectory
made_run=0
dpkg --purge racerd >"$d/purge.log" 2>&1 || {
	cat "$d/purge.log" >&2
	fail "dpkg --purge failed"
}
installed=0
for f in /usr/sbin/racerd /usr/bin/racer /etc/racerd/racerd.conf \
    /etc/logrotate.d/racerd /lib/systemd/system/racerd.service \
    /var/lib/racerd /var/log/racerd; do
	[ ! -e "$f" ] || fail "$f is still there after the purge"
done
ok "stopped and purged: nothing of it left"
