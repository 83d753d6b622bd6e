#!/bin/sh
# SPDX-License-Identifier: ISC
# racerd benchmark kit: run a private nginx + nchan pub/sub server, the
# baseline racerd is compared with.
#
# usage: nchan.sh -p PORT -d DIR [-w WORKERS] [-c CERT -k KEY -s PLAINPORT]
# (with -c, PORT speaks TLS and PLAINPORT plain HTTP for /healthz)
#
# Writes DIR/nginx.conf and runs nginx in the foreground (daemon off) with
# its pid file, logs and temporary files in DIR, so the system nginx (if
# any) is never touched.  The shell execs nginx, so "nchan.sh ... &" leaves
# the nginx master's pid in $!; stop it with SIGTERM (or SIGQUIT) to that
# pid.  Chat N is the channel in ws://127.0.0.1:PORT/ws/NAME: every text
# message a WebSocket client sends is published to its channel and
# delivered to every subscriber of it, the sender included.
#
# nginx-light and libnginx-mod-nchan are installed from Debian if missing;
# a policy-rc.d that forbids starting services keeps the package scripts
# from starting the system nginx.
set -eu

port=
dir=
plain=
cert=
key=
workers=${NCHAN_WORKERS:-2}
while getopts c:d:k:p:s:w: opt; do
	case $opt in
	c)	cert=$OPTARG ;;
	d)	dir=$OPTARG ;;
	k)	key=$OPTARG ;;
	p)	port=$OPTARG ;;
	s)	plain=$OPTARG ;;
	w)	workers=$OPTARG ;;
	*)	port= ;;
	esac
done
if [ -z "$port" ] || [ -z "$dir" ] || [ $OPTIND -le $# ] ||
    { [ -n "$cert" ] && { [ -z "$key" ] || [ -z "$plain" ]; }; }; then
	echo "usage: nchan.sh -p PORT -d DIR [-w WORKERS]" \
	    "[-c CERT -k KEY -s PLAINPORT]" >&2
	exit 1
fi
# With -c: PORT speaks TLS (TLS 1.2 and 1.3), PLAINPORT plain HTTP.
if [ -n "$cert" ]; then
	listen="listen 127.0.0.1:$port ssl backlog=4096;
		listen 127.0.0.1:$plain backlog=4096;
		ssl_certificate $cert;
		ssl_certificate_key $key;
		ssl_protocols TLSv1.2 TLSv1.3;"
else
	listen="listen 127.0.0.1:$port backlog=4096;"
fi

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
	    grep -q "install ok installed"
}

if ! installed nginx-light || ! installed libnginx-mod-nchan; then
	echo "nchan.sh: installing nginx-light libnginx-mod-nchan" >&2
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# Keep the postinst from starting the system nginx.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		rm_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends nginx-light libnginx-mod-nchan >&2 ||
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends nginx-light \
	    libnginx-mod-nchan >&2; }
	[ -n "${rm_policy:-}" ] && rm -f /usr/sbin/policy-rc.d
fi

module=$(dpkg -L libnginx-mod-nchan | grep '/ngx_nchan_module\.so$' | head -1)
if [ -z "$module" ]; then
	echo "nchan.sh: ngx_nchan_module.so not found" >&2
	exit 1
fi

mkdir -p "$dir/tmp"
dir=$(cd "$dir" && pwd)
# Workers run as nobody when the master is root.
chmod 755 "$dir" "$dir/tmp"

# 10,000 idle connections plus headroom.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=65536
[ "$nofile" -gt 65536 ] && nofile=65536
conns=$((nofile - 64))

cat >"$dir/nginx.conf" <<EOF
load_module $module;
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
	worker_connections $conns;
	multi_accept on;
}
http {
	access_log off;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	server {
		$listen
		location = /healthz {
			return 200 "ok\n";
		}
		location ~ /ws/(\w+)$ {
			nchan_pubsub websocket;
			nchan_channel_id \$1;
			# A new subscriber waits for the next message instead of
			# replaying the channel's buffer.
			nchan_subscriber_first_message newest;
		}
	}
}
EOF

exec nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
