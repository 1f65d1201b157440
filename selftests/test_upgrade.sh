#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# HTTP/1.1 Upgrade transport end to end, through a real nginx.  Topology of
# netns.sh (client -> edge <- NAT <- agent -> lansvc); on the edge host a real
# nginx (Debian's nginx-light, private config, pid, logs and temp paths under
# a mktemp dir) is the reverse proxy in front of the control port:
#   $IP_EDGE:$P_NGX   location = /rsplice -> rsplice-edge $IP_EDGE:$CTRL_PORT
#                     (proxy_http_version 1.1, Upgrade/Connection headers),
#                     location = /noupgrade: the same without them
#   $IP_EDGE:$P_NGX_SHORT  /rsplice with proxy_read_timeout 2s (heartbeat test)
# The agent dials only nginx (--edge $IP_EDGE:$P_NGX --transport http
# --http-path /rsplice); the edge serves --http-path /rsplice.
# For both data paths (splice, sockmap) and both ways of pairing (pooled:
# --pool 8, CONNECT: --pool 0): a 100 MiB download and a 32 MiB upload (echoed
# back in full: nginx ends an upgraded connection at the first FIN)
# byte-exact (sha256), a banner-first service (x5), every
# control-port connection of the edge comes from nginx, nginx logged a 101
# for each.  Then, on the edge's control port directly: a wrong path gets
# 404, a GET without Upgrade 426, garbage 400, oversized headers 431, each
# with one log line while the tunnel keeps working; a trickled request gets
# 408 and an upgraded connection without a hello is closed, both at the
# handshake deadline counted from accept; nginx without the
# upgrade headers gets 426 with a hint; a raw (non-HTTP) agent still works
# on the same port; heartbeats shorter than nginx's proxy_read_timeout keep
# an idle control connection, longer ones lose it.
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), UPGRADE_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" upgrade

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 P_NGX=8088 P_NGX_SHORT=8089
P_HTTP=8080 P_ECHO=8081 P_BANNER=8085
S_HTTP=8000 S_ECHO=9000 S_BANNER=9200
HTTP_SIZE_MIB=100 UPLOAD_MIB=32
HPATH=/rsplice

NGX=$WORK/nginx
mkdir -p "$LOGS" "$WORK/www"
RESULTS=()

# the large generated files go even when the logs are kept
cleanup_extra() { rm -f "$WORK/www/big.bin" "$WORK"/*.bin; }
count() { grep -c -- "$1" "$2" 2>/dev/null; }

# ------------------------------------------------------------ LAN services --
start_services() {
	local log=$LOGS/services.log p
	spawn http "$NS_LANSVC" "$log" $(py http_server.py) --bind "$IP_SVC" \
		--port "$S_HTTP" --directory "$WORK/www"
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn banner "$NS_LANSVC" "$log" $(py banner.py) server --bind "$IP_SVC" \
		--port "$S_BANNER" --size 300000
	for p in "$S_HTTP" "$S_ECHO" "$S_BANNER"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || return 1
	done
}

# ---------------------------------------------------- nginx, the HTTP proxy --
start_nginx() {
	nginx_start "$NS_EDGE" "$NGX" "$P_NGX" "$P_NGX_SHORT" <<-EOF
		log_format up '\$remote_addr "\$request" \$status \$server_port';
		access_log $NGX/logs/access.log up;
		server {
			listen $IP_EDGE:$P_NGX;
			location = $HPATH {
				proxy_pass http://$IP_EDGE:$CTRL_PORT;
				proxy_http_version 1.1;
				proxy_set_header Upgrade \$http_upgrade;
				proxy_set_header Connection "upgrade";
				proxy_set_header Host \$host;
				proxy_read_timeout 3600s;
				proxy_send_timeout 3600s;
			}
			location = /noupgrade {
				proxy_pass http://$IP_EDGE:$CTRL_PORT$HPATH;
			}
		}
		server {
			listen $IP_EDGE:$P_NGX_SHORT;
			location = $HPATH {
				proxy_pass http://$IP_EDGE:$CTRL_PORT;
				proxy_http_version 1.1;
				proxy_set_header Upgrade \$http_upgrade;
				proxy_set_header Connection "upgrade";
				proxy_read_timeout 2s;
			}
		}
	EOF
}

# ---------------------------------------------------------------- daemons ---

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$LOGS/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --http-path "$HPATH" \
		--route "$IP_EDGE_PUB:$P_HTTP=http" --route "$IP_EDGE_PUB:$P_ECHO=echo" \
		--route "$IP_EDGE_PUB:$P_BANNER=banner" --agent-wait 3000 --metrics "$EDGE_METRICS" \
		$(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 50 0.1 listening "$NS_EDGE" "$P_BANNER"
}

# start_agent KEY POOL EDGE [ARGS...]: an agent offering the three services
start_agent() {
	local key=$1 pool=$2 edge=$3
	shift 3
	# shellcheck disable=SC2046
	spawn "$key" "$NS_AGENT" "$LOGS/$DP-$key.log" "$AGENT_BIN" --edge "$edge" \
		--token-file "$WORK/token" --pool "$pool" --service "http=$IP_SVC:$S_HTTP" \
		--service "echo=$IP_SVC:$S_ECHO" --service "banner=$IP_SVC:$S_BANNER" \
		$(dp_args) -v "$@"
}

start_http_agent() { # start_http_agent KEY POOL [NGINX_PORT [ARGS...]]
	local key=$1 pool=$2 port=${3:-$P_NGX}
	shift 3 2>/dev/null || shift $#
	start_agent "$key" "$pool" "$IP_EDGE:$port" --transport http --http-path "$HPATH" "$@"
}

tunnel_ping() {
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" \
		--port "$P_ECHO" --delay 0.1 --timeout 4
}

# the edge's established control-port peers (addresses), sorted, unique
ctrl_peers() {
	in_ns "$NS_EDGE" ss -Htn state established "( sport = :$CTRL_PORT )" |
		awk '{ print $NF }' | sed 's/:[0-9]*$//' | sort -u | tr '\n' ' '
}

# --------------------------------------------------------------- transfers --
t_download() { # t_download TAG
	local tag=$1 out sum t0 ms
	t0=$(now_ms)
	out=$(run_in "$NS_CLIENT" 120 curl -sS --max-time 110 -o "$WORK/dl.bin" \
		-w '%{http_code} %{size_download}' "http://$IP_EDGE_PUB:$P_HTTP/big.bin" 2>&1)
	ms=$(( $(now_ms) - t0 ))
	sum=$(sha256sum "$WORK/dl.bin" 2>/dev/null | cut -d' ' -f1)
	rm -f "$WORK/dl.bin"
	RESULTS+=("$tag $HTTP_SIZE_MIB MiB download: $ms ms ($(( HTTP_SIZE_MIB * 8 * 1000 / (ms > 0 ? ms : 1) )) Mbit/s)")
	assert "$tag $HTTP_SIZE_MIB MiB download through the tunnel, sha256 equal" \
		'[ "$sum" = "$HTTP_SHA" ]' "curl: '$out', sha256 ${sum:-none} != $HTTP_SHA"
}

# nginx ends an upgraded connection as soon as one side sends its FIN
# (ngx_http_upstream_process_upgraded), so a half-close cannot cross it:
# the echo is read back in full before the client closes.
t_upload() {
	local tag=$1 out
	out=$(run_in "$NS_CLIENT" 90 $(py echo_client.py) upload --no-half-close \
		--host "$IP_EDGE_PUB" --port "$P_ECHO" --size $((UPLOAD_MIB << 20)) --timeout 80 2>&1)
	diag "$out"
	assert "$tag $UPLOAD_MIB MiB upload, echoed back in full, sha256 equal" \
		'[[ "$out" == OK* ]]' "$out"
}

t_banner() {
	local tag=$1 i out bad=""
	for i in 1 2 3 4 5; do
		out=$(run_in "$NS_CLIENT" 15 $(py banner.py) client --host "$IP_EDGE_PUB" \
			--port "$P_BANNER" --size 300000 --timeout 10 2>&1)
		[[ "$out" == OK* ]] || bad="$bad [try $i: $out]"
	done
	assert "$tag server speaks first: a 300 KB banner arrives exactly once (x5)" \
		'[ -z "$bad" ]' "$bad"
}

# run_pool POOL KIND: the tunnel through nginx for one way of pairing
run_pool() {
	local pool=$1 kind=$2 tag elog=$LOGS/$DP-edge.log alog peers
	local pooled0 direct0 pooled1 direct1 up0 up1 ngx0 ngx1
	alog=$LOGS/$DP-agent.log
	tag="[$DP, $kind]"
	ngx0=$(count "\"GET $HPATH HTTP/1.1\" 101 $P_NGX" "$NGX/logs/access.log")
	up0=$(count "upgraded over HTTP" "$elog")
	start_http_agent agent "$pool"
	if ! wait_until 50 0.2 tunnel_ping; then
		fail "$tag tunnel through nginx up" "no echo through the tunnel"
		stop agent
		return
	fi
	pass "$tag agent dials only nginx ($IP_EDGE:$P_NGX, HTTP upgrade): tunnel up"
	sleep 0.5 # the pool fills
	pooled0=$(count "paired with a pooled data connection" "$elog")
	direct0=$(count "paired with data connection from" "$elog")
	t_download "$tag"
	t_upload "$tag"
	t_banner "$tag"
	peers=$(ctrl_peers)
	assert "$tag every control-port connection of the edge comes from nginx ($IP_EDGE)" \
		'[ "$peers" = "$IP_EDGE " ]' "peers: '$peers'"
	pooled1=$(count "paired with a pooled data connection" "$elog")
	direct1=$(count "paired with data connection from" "$elog")
	up1=$(count "upgraded over HTTP" "$elog")
	ngx1=$(count "\"GET $HPATH HTTP/1.1\" 101 $P_NGX" "$NGX/logs/access.log")
	diag "$tag pooled pairs $pooled0 -> $pooled1, CONNECT pairs $direct0 -> $direct1, edge upgrades $up0 -> $up1, nginx 101s $ngx0 -> $ngx1"
	if [ "$pool" -gt 0 ]; then
		assert "$tag the 7 clients used pooled data connections" \
			'[ $((pooled1 - pooled0)) -ge 7 ] && [ "$direct1" = "$direct0" ]' \
			"pooled: $pooled0 -> $pooled1, CONNECT: $direct0 -> $direct1"
	else
		assert "$tag the 7 clients used CONNECT data connections, from nginx" \
			'[ $((direct1 - direct0)) -ge 7 ] && [ "$pooled1" = "$pooled0" ] &&
			 ! grep "paired with data connection from" "$elog" | grep -qv "from $IP_EDGE:"' \
			"CONNECT: $direct0 -> $direct1, pooled: $pooled0 -> $pooled1"
	fi
	assert "$tag the agent relayed on the $DP path" \
		'grep -q "done via $DP" "$alog"' "no 'done via $DP' in the agent log"
	stop agent
	# nginx logs a request when its connection ends: once the agent is gone,
	# every control and data connection the edge upgraded is a 101 line there
	up1=$(count "upgraded over HTTP" "$elog")
	wait_until 20 0.1 eval '[ "$(count "\"GET $HPATH HTTP/1.1\" 101 $P_NGX" "$NGX/logs/access.log")" -ge $((ngx0 + up1 - up0)) ]'
	ngx1=$(count "\"GET $HPATH HTTP/1.1\" 101 $P_NGX" "$NGX/logs/access.log")
	assert "$tag every connection was upgraded by nginx: edge upgrades = nginx 101s >= 8" \
		'[ $((up1 - up0)) -ge 8 ] && [ $((up1 - up0)) = $((ngx1 - ngx0)) ]' \
		"edge upgrades $up0 -> $up1, nginx 101s $ngx0 -> $ngx1"
}

# ------------------------------------------- the control port, directly ----
# raw_http WHAT ARGS...: one request from the router namespace (the internet
# side of the edge's control port), its status on stdout
raw_http() {
	run_in "$NS_ROUTER" 10 $(py http_raw.py) --host "$IP_EDGE" --port "$CTRL_PORT" "$@" 2>&1
}

# refused NAME WANT_STATUS LOG_PATTERN ARGS...: the edge answers WANT_STATUS
# (or just closes, when WANT_STATUS is "any"), logs LOG_PATTERN once, and the
# tunnel still works
refused() {
	local name=$1 want=$2 pat=$3 elog=$LOGS/$DP-edge.log n0 n1 out m0 m1
	shift 3
	sleep 1.1 # refusals are logged at most once a second
	n0=$(count "$pat" "$elog")
	m0=$(edge_metric rsplice_errors_total reason="http-$want")
	out=$(raw_http "$@")
	sleep 0.2
	n1=$(count "$pat" "$elog")
	m1=$(edge_metric rsplice_errors_total reason="http-$want")
	diag "$name: $out; edge log: $(grep -- "$pat" "$elog" | tail -n 1)"
	if [ "$want" = any ]; then
		assert "[$DP] $name: refused, one clear log line" '[ $((n1 - n0)) = 1 ]' \
			"answer '$out', log lines matching '$pat': $n0 -> $n1"
	else
		assert "[$DP] $name: $want and one clear log line" \
			'[ "$out" = "STATUS $want" ] && [ $((n1 - n0)) = 1 ]' \
			"answer '$out', log lines matching '$pat': $n0 -> $n1"
		assert_moved "[$DP] $name: rsplice_errors_total{reason=\"http-$want\"} +1" 1 "$m0" "$m1"
	fi
	assert "[$DP] $name: the edge keeps serving (echo through the tunnel)" \
		'wait_until 10 0.2 tunnel_ping' "no echo through the tunnel"
}

run_direct() {
	local out
	start_http_agent agent 2
	if ! wait_until 50 0.2 tunnel_ping; then
		fail "[$DP] tunnel up for the control-port tests" "no echo"
		stop agent
		return
	fi
	refused "wrong path" 404 "refused with 404: path '/other'" \
		--request 'GET /other HTTP/1.1\r\nHost: edge\r\nUpgrade: rsplice\r\nConnection: Upgrade\r\n\r\n'
	out=$(run_in "$NS_ROUTER" 10 curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		"http://$IP_EDGE:$CTRL_PORT$HPATH" 2>&1)
	sleep 0.2
	assert "[$DP] curl GET without Upgrade: 426 Upgrade Required" '[ "$out" = 426 ]' "curl: '$out'"
	refused "GET without Upgrade" 426 "refused with 426: no 'Upgrade: rsplice' header" \
		--request "GET $HPATH HTTP/1.1\\r\\nHost: edge\\r\\nConnection: close\\r\\n\\r\\n"
	refused "control character in a header" 400 "refused with 400: garbage in the HTTP request head" \
		--request "GET $HPATH HTTP/1.1\\r\\nHost: ed\\x01ge\\r\\nUpgrade: rsplice\\r\\n\\r\\n"
	refused "bare LF line ends" 400 "refused with 400: garbage in the HTTP request head" \
		--request "GET $HPATH HTTP/1.1\\nHost: edge\\n\\n"
	refused "header line without a colon" 400 "refused with 400: header line without a name" \
		--request "GET $HPATH HTTP/1.1\\r\\nHost: edge\\r\\nUpgrade rsplice\\r\\n\\r\\n"
	refused "request with a body" 400 "refused with 400: request with a body" \
		--request "GET $HPATH HTTP/1.1\\r\\nHost: edge\\r\\nUpgrade: rsplice\\r\\nConnection: Upgrade\\r\\nContent-Length: 5\\r\\n\\r\\nhello"
	refused "no Host header" 400 "refused with 400: no Host header" \
		--request "GET $HPATH HTTP/1.1\\r\\nUpgrade: rsplice\\r\\nConnection: Upgrade\\r\\n\\r\\n"
	# the edge stops reading at 4096 bytes; it drains the rest after its
	# answer (a close with unread bytes would reset and lose the 431)
	refused "oversized request head (5000-byte header)" 431 \
		"refused with 431: HTTP request head larger than 4096 bytes" --big-header 5000
	refused "garbage that is not HTTP (no hello magic either)" any \
		"control port: connection from .* closed" \
		--request '\x00\x01garbage garbage garbage garbage garbage garbage garbage'
	# the handshake deadline (--hello-timeout, 5 s, from accept) covers the
	# HTTP request and then the hello; trickled bytes do not extend it
	sleep 1.1
	local slow held bg m0 m1
	m0=$(edge_metric rsplice_errors_total reason=http-408)
	run_in "$NS_ROUTER" 15 $(py http_raw.py) --host "$IP_EDGE" --port "$CTRL_PORT" \
		--timeout 12 --trickle 0.3 --request "GET $HPATH HTTP/1.1\\r\\nHost: edge\\r\\nUpgrade: rsplice\\r\\nConnection: Upgrade\\r\\nX-Slow: $(printf 'a%.0s' {1..40})\\r\\n\\r\\n" \
		>"$WORK/slow.out" 2>&1 &
	bg=$!
	held=$(run_in "$NS_ROUTER" 15 $(py http_raw.py) --host "$IP_EDGE" --port "$CTRL_PORT" \
		--timeout 12 --hold 10 --request "GET $HPATH HTTP/1.1\\r\\nHost: edge\\r\\nUpgrade: rsplice\\r\\nConnection: Upgrade\\r\\n\\r\\n" 2>&1)
	wait "$bg"
	m1=$(edge_metric rsplice_errors_total reason=http-408)
	slow=$(cat "$WORK/slow.out")
	diag "trickled request: $(echo $slow); upgraded without a hello: $(echo $held)"
	assert "[$DP] a trickled HTTP request gets 408 at the handshake deadline (5 s from accept)" \
		'[[ "$slow" == "STATUS 408"* ]] && awk "/^AFTER/ { exit !(\$2 >= 4.5 && \$2 < 7) }" <<<"$slow"' \
		"got '$slow'"
	assert "[$DP] an upgraded connection without a hello is closed at the same deadline" \
		'[[ "$held" == "STATUS 101"*closed ]] && awk "/^AFTER/ { exit !(\$2 >= 4.5 && \$2 < 7) }" <<<"$held" &&
		 grep -q "closed: no hello (timed out)" "$LOGS/$DP-edge.log" &&
		 grep -q "refused with 408: incomplete HTTP request (timed out)" "$LOGS/$DP-edge.log"' \
		"got '$held'"
	assert_moved "[$DP] the trickled request: rsplice_errors_total{reason=\"http-408\"} +1" 1 "$m0" "$m1"
	# nginx without proxy_http_version 1.1 / the Upgrade headers
	sleep 1.1
	out=$(run_in "$NS_ROUTER" 10 curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		-H 'Upgrade: rsplice' -H 'Connection: Upgrade' "http://$IP_EDGE:$P_NGX/noupgrade" 2>&1)
	sleep 0.2
	assert "[$DP] nginx without the upgrade settings: the edge answers 426 and logs the nginx fix" \
		'[ "$out" = 426 ] && grep -q "HTTP/1.0 request, no upgrade possible (a proxy in between needs: proxy_http_version 1.1" "$LOGS/$DP-edge.log"' \
		"curl through /noupgrade: '$out'"
	stop agent
}

# raw and HTTP agents on the same control port
run_raw() {
	local alog=$LOGS/$DP-raw.log
	start_agent raw 2 "$IP_EDGE:$CTRL_PORT" --name rawagent
	if wait_until 50 0.2 tunnel_ping; then
		pass "[$DP] a raw (non-HTTP) agent works on the same control port"
	else
		fail "[$DP] a raw (non-HTTP) agent works on the same control port" "no echo"
	fi
	assert "[$DP] raw agent: no HTTP on its connections" \
		'! grep -q "upgraded the connection" "$alog" && grep -q "authenticated to edge" "$alog"' \
		"see $alog"
	t_download "[$DP, raw]"
	stop raw
}

# heartbeat vs nginx's proxy_read_timeout (2 s on $P_NGX_SHORT)
run_heartbeat() {
	local log1=$LOGS/$DP-hb1.log log2=$LOGS/$DP-hb2.log
	start_http_agent hb1 0 "$P_NGX_SHORT" --heartbeat 500
	wait_until 50 0.2 tunnel_ping
	sleep 6
	assert "[$DP] heartbeat 500 ms < proxy_read_timeout 2 s: the idle control connection lives 6 s" \
		'! grep -q "control connection to edge .* lost" "$log1" && tunnel_ping' \
		"$(grep "lost" "$log1" | head -n 1)"
	stop hb1
	start_http_agent hb2 0 "$P_NGX_SHORT" --heartbeat 5000
	wait_until 50 0.2 tunnel_ping
	sleep 6
	assert "[$DP] heartbeat 5 s > proxy_read_timeout 2 s: nginx cuts the idle control connection" \
		'grep -q "control connection to edge .* lost: peer closed" "$log2"' \
		"no 'lost' line in $log2"
	stop hb2
}

run_datapath() {
	DP=$1
	banner "data path: $DP"
	T_FAIL_LOGS=("$LOGS/$DP-edge.log" "$LOGS/$DP-agent.log" "$NGX/logs/error.log")
	dp_attach || return
	if ! start_edge; then
		fail "[$DP] edge starts" "no listener"
	else
		run_pool 8 pooled
		run_pool 0 CONNECT
		run_direct
		run_raw
		[ "$DP" = splice ] && run_heartbeat
	fi
	stop edge
	dp_detach
}

main() {
	local o
	need_tools nginx curl nsenter ss sha256sum python3 || return
	make_token
	head -c $((HTTP_SIZE_MIB << 20)) /dev/urandom >"$WORK/www/big.bin"
	HTTP_SHA=$(sha256sum "$WORK/www/big.bin" | cut -d' ' -f1)
	topology_up || return
	if ! start_services; then
		fail "LAN services (http, echo, banner) start in lansvc" "see $LOGS/services.log"
		return
	fi
	if ! start_nginx; then
		fail "nginx (the upgrade-capable reverse proxy) starts on the edge host" "see its log"
		diag_file "$NGX/logs/error.log" "$NGX/logs/stderr.log"
		return
	fi
	pass "nginx (the upgrade-capable reverse proxy) starts on the edge host"
	for_each_datapath
	diag "=== measurements ==="
	for o in "${RESULTS[@]}"; do diag "$o"; done
}

nd_main
