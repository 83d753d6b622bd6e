#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd developer set-up: install what is missing (Debian 12, as root),
# bootstrap, configure and build, then run racerd or the tests.
#
#   sh contrib/dev.sh run         build and run racerd in the foreground on
#                                 127.0.0.1:8080 with its embedded store
#                                 and the web client of contrib/web
#   sh contrib/dev.sh test        build (-Werror) and run every test
#   sh contrib/dev.sh sanitizers  the same under ASan + UBSan
#   sh contrib/dev.sh sanitizers-tls  the chat tests under ASan + UBSan
#                                 with racerd on TLS only
#   sh contrib/dev.sh distcheck   make distcheck
#   sh contrib/dev.sh deb         the Debian package: built, installed,
#                                 run, used and purged (tests/deb.sh)
#   sh contrib/dev.sh fuzz        build the libFuzzer harnesses with clang
#                                 and run each FUZZ_SECONDS (default 60)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

PKGS="build-essential autoconf automake pkg-config libevent-dev libwslay-dev
libhiredis-dev libsodium-dev check libjansson-dev libinih-dev nettle-dev
libhttp-parser-dev libssl-dev openssl redis-server mandoc curl python3
python3-websockets python3-nacl procps nodejs chromium chromium-driver
python3-selenium systemd nginx-light iproute2 util-linux"
# Only the fuzzing step needs clang (and its libFuzzer runtime).
FUZZ_PKGS="clang libclang-rt-dev"

deps() {
	missing=""
	for p in $PKGS ${1:-}; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "dev.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
}

build() {
	dir=$1
	shift
	[ -x configure ] || ./bootstrap.sh
	mkdir -p "$dir"
	cd "$dir"
	[ -f Makefile ] || "$top/configure" "$@" >configure.out ||
	    { cat configure.out; exit 1; }
	make -j"$(nproc)"
}

check() {
	if ! make -j"$(nproc)" check; then
		for f in test-suite.log; do
			[ -f "$f" ] && cat "$f"
		done
		exit 1
	fi
}

case "${1:-}" in
run)
	deps
	build build
	# The built-in defaults, and the web client from the source tree.
	printf 'webroot = %s/contrib/web\n' "$top" >racerd-dev.conf
	exec ./racerd -f -c racerd-dev.conf
	;;
test)
	deps
	build build --enable-debug
	check
	;;
sanitizers)
	deps
	build build-san --enable-debug --enable-sanitizers
	export ASAN_OPTIONS=detect_leaks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	check
	;;
sanitizers-tls)
	# The chat tests again under ASan + UBSan, with racerd on TLS only
	# and every client on wss:// and https:// (tests/integration/lib.sh).
	deps
	build build-san --enable-debug --enable-sanitizers
	export ASAN_OPTIONS=detect_leaks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	export RACERD_TEST_TLS=1
	tests=""
	for t in chat_basic chat_errors chat_order chat_hosts chat_gapfill \
	    chat_rejoin sess_resume sess_takeover history_api res_slow \
	    lifecycle; do
		tests="$tests tests/integration/$t.sh"
	done
	if ! make -j"$(nproc)" check TESTS="$tests"; then
		cat test-suite.log
		exit 1
	fi
	;;
distcheck)
	deps
	build build
	make -j"$(nproc)" distcheck
	;;
deb)
	# The Debian package built, installed, run, used and purged.
	deps "debhelper git"
	sh tests/deb.sh
	;;
fuzz)
	deps "$FUZZ_PKGS"
	build build-fuzz --enable-debug --enable-fuzzing CC=clang
	make fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
	;;
*)
	echo "usage: sh contrib/dev.sh run|test|sanitizers|sanitizers-tls|distcheck|deb|fuzz" >&2
	exit 2
	;;
esac
