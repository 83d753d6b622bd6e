# SPDX-License-Identifier: ISC
# Shell functions shared by the benchmark scripts (run.sh, scale.sh,
# selftest.sh); sourced, not run.

say() {
	printf '%s\n' "$*" >&2
}

# free_port: a TCP port of 127.0.0.1 that the kernel has just handed out.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_code URL: the status of a GET, or 000 without an answer in 2 s.
http_code() {
	curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null
}

# wait_health PORT PID [TENTHS]: until GET /healthz is 200, for up to
# TENTHS tenths of a second (1200: the first nchan start may install
# packages); 1 if PID died first or time ran out.
wait_health() {
	i=0
	while [ $i -lt "${3:-1200}" ]; do
		kill -0 "$2" 2>/dev/null || return 1
		[ "$(http_code "http://127.0.0.1:$1/healthz")" = 200 ] &&
		    return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# rss_kb PIDS: summed VmRSS of comma-separated pids, in KiB.
rss_kb() {
	s=0
	for p in $(echo "$1" | tr , ' '); do
		r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		s=$((s + ${r:-0}))
	done
	echo "$s"
}

comm_of() {
	cat "/proc/$1/comm" 2>/dev/null
}
