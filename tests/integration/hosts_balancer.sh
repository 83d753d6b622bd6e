#!/bin/sh
# SPDX-License-Identifier: ISC
# Many hosts behind a balancer: three racerd instances on 127.0.0.1,
# 127.0.0.2 and 127.0.0.3 share one store behind nginx (the upstream and
# WebSocket settings of contrib/nginx-racerd.conf).  30 clients join one
# chat through nginx; the second instance is stopped with TERM; its
# clients resume through nginx on the others and every client ends with
# every message once, in order.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_clients
need nginx

start_redis
up="" i=0
for h in 1 2 3; do
	p=$(free_port)
	write_conf_as "$T/h$h.conf" "$p" 1 "h$h" "redis = unix:$REDIS_SOCK"
	sed -i "s/^listen = 127\.0\.0\.1:/listen = 127.0.0.$h:/" "$T/h$h.conf"
	start_racerd "$T/h$h.conf"
	eval "M$h=\$MASTER"
	up="$up	server 127.0.0.$h:$p max_fails=1 fail_timeout=5s;
"
	until [ "$(curl -s -o /dev/null -w '%{http_code}' \
	    "http://127.0.0.$h:$p/healthz")" = 200 ]; do
		i=$((i + 1))
		[ "$i" -ge 200 ] && { fail "host $h not healthy"; finish; }
		sleep 0.1
	done
done

# The proxy settings of contrib/nginx-racerd.conf, around this test's
# upstream.
NP=$(free_port)
mkdir -p "$T/nginx"
sed -n '/^map /,$p' "$top_srcdir/contrib/nginx-racerd.conf" |
    sed "s/listen 80;/listen 127.0.0.1:$NP;/" >"$T/nginx/site.conf"
cat >"$T/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
user root;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $T/nginx/body;
	proxy_temp_path $T/nginx/proxy;
	fastcgi_temp_path $T/nginx/fcgi;
	uwsgi_temp_path $T/nginx/uwsgi;
	scgi_temp_path $T/nginx/scgi;
	upstream racerd {
		least_conn;
$up	}
	include $T/nginx/site.conf;
}
CONF
nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" &
PIDS="$PIDS $!"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$NP/healthz")" = 200 ]; do
	i=$((i + 1))
	[ "$i" -ge 100 ] && { fail "nginx did not come up";
	    cat "$T/nginx/error.log"; finish; }
	sleep 0.1
done
ok "three hosts behind nginx"

timeout -k 3 90 $PY "$top_srcdir/tests/integration/lbclient.py" \
    --port "$NP" --victim "$M2" --clients 30 --count 20 ||
    fail "a host stopped behind the balancer (see above)"
ok "a host stopped with TERM: its clients resumed through nginx, nothing lost"
if [ "$FAILS" -ne 0 ]; then
	for h in 1 2 3; do
		echo "--- $NAME: racerd-h$h.log (last 15 lines)"
		tail -n 15 "$T/racerd-h$h.log" 2>/dev/null
	done
	tail -n 20 "$T/nginx/error.log"
fi
finish
