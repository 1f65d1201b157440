#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# PROXY protocol v2 end to end: a LAN service behind rsplice learns the real
# public client address.  Topology of netns.sh (client -> edge <- NAT <- agent
# -> lansvc); the LAN service is a real nginx (Debian's nginx-light) with a
# private config, pid file, logs and temp paths under a mktemp dir:
#   port S_PP    listen ... proxy_protocol: /who answers
#                "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:..."
#   port S_PLAIN a plain listener: /who answers "$remote_addr:$remote_port"
# The agent offers pp=...,proxy=v2 and plain=... (no option).  For both data
# paths (splice, sockmap) and both ways a client gets its data connection
# (pooled: --pool 8, CONNECT: --pool 0) it checks: the service saw the
# client's real IP and source port and the edge's public address; a file comes
# through the proxy=v2 service byte-exact; the plain service saw no header (a
# header would make nginx answer 400) and the agent's address.
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), PROXY_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" proxy

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 P_PP=8090 P_PLAIN=8091 S_PP=9300 S_PLAIN=9301
FILE_MIB=16

NGX=$WORK/nginx
CPORT=20000 # client source ports: private to the client namespace, below the
            # ephemeral range (32768-60999) so no kernel-chosen port ever holds one

# the generated file goes even when the logs are kept
cleanup_extra() { rm -f "$NGX/www/file.bin"; }

# ------------------------------------------------------------------ nginx ---
start_nginx() {
	mkdir -p "$NGX/www"
	head -c $((FILE_MIB << 20)) /dev/urandom >"$NGX/www/file.bin"
	FILE_SHA=$(sha256sum "$NGX/www/file.bin" | cut -d' ' -f1)
	nginx_start "$NS_LANSVC" "$NGX" "$S_PP" "$S_PLAIN" <<-EOF
		log_format pp '\$proxy_protocol_addr:\$proxy_protocol_port \$remote_addr "\$request" \$status';
		access_log $NGX/logs/access.log pp;
		default_type application/octet-stream;
		server {
			listen $IP_SVC:$S_PP proxy_protocol;
			root $NGX/www;
			location = /who {
				return 200 "\$proxy_protocol_addr:\$proxy_protocol_port \$proxy_protocol_server_addr:\$proxy_protocol_server_port\n";
			}
		}
		server {
			listen $IP_SVC:$S_PLAIN;
			root $NGX/www;
			location = /who { return 200 "\$remote_addr:\$remote_port\n"; }
		}
	EOF
}

# --------------------------------------------------------------- daemons ----

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$WORK/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_PP=pp" --route "$IP_EDGE_PUB:$P_PLAIN=plain" \
		--agent-wait 3000 $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 50 0.1 listening "$NS_EDGE" "$P_PLAIN"
}

start_agent() { # start_agent POOL
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$WORK/$DP-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --pool "$1" \
		--service "pp=$IP_SVC:$S_PP,proxy=v2" --service "plain=$IP_SVC:$S_PLAIN" \
		$(dp_args) -v
}

# curl_who PUBLIC_PORT: GET /who from the client from source port $CPORT
# (callers take a fresh one with next_cport first: a client port in TIME_WAIT
# cannot be reused, and $(...) runs in a subshell)
next_cport() { CPORT=$((CPORT + 1)); }
curl_who() {
	timeout 15 nsenter --net="/run/netns/$NS_CLIENT" -- curl -sS --max-time 10 \
		--local-port "$CPORT" "http://$IP_EDGE_PUB:$1/who" 2>&1
}

tunnel_up() { next_cport; curl_who "$P_PLAIN" | grep -q "^$IP_AGENT_SVC:"; }

count() { grep -c "$1" "$2" 2>/dev/null; }

# ------------------------------------------------------------------ tests ---
# run_pool POOL KIND: every check for one way of pairing (pooled or CONNECT)
run_pool() {
	local pool=$1 kind=$2 tag out sha plain0 pooled0 direct0 pooled1 direct1 want
	local elog=$WORK/$DP-edge.log alog
	tag="[$DP, $kind]"
	start_agent "$pool"
	alog=$WORK/$DP-agent.log
	if ! wait_until 50 0.2 tunnel_up; then
		fail "$tag tunnel up" "no answer from the plain service through the tunnel"
		stop agent
		return
	fi
	sleep 0.5 # let the agent fill its pool
	pooled0=$(count "paired with a pooled data connection" "$elog")
	direct0=$(count "paired with data connection from" "$elog")

	next_cport
	out=$(curl_who "$P_PP")
	want="$IP_CLIENT:$CPORT $IP_EDGE_PUB:$P_PP"
	diag "$tag proxy=v2 service says: $out"
	assert_eq "$tag proxy=v2: nginx sees the client's real address and port, and the edge's public address" \
		"$want" "$out"

	sha=$(timeout 60 nsenter --net="/run/netns/$NS_CLIENT" -- curl -sS --max-time 50 \
		"http://$IP_EDGE_PUB:$P_PP/file.bin" 2>/dev/null | sha256sum | cut -d' ' -f1)
	assert_eq "$tag proxy=v2: $FILE_MIB MiB file byte-exact (sha256)" "$FILE_SHA" "$sha"

	next_cport
	out=$(curl_who "$P_PLAIN")
	diag "$tag plain service says: $out"
	assert "$tag no option: the service gets no header (HTTP 200, sees the agent $IP_AGENT_SVC)" \
		'[[ "$out" == "$IP_AGENT_SVC:"* ]]' "got '$out'"
	sha=$(timeout 60 nsenter --net="/run/netns/$NS_CLIENT" -- curl -sS --max-time 50 \
		"http://$IP_EDGE_PUB:$P_PLAIN/file.bin" 2>/dev/null | sha256sum | cut -d' ' -f1)
	assert_eq "$tag no option: file byte-exact (sha256)" "$FILE_SHA" "$sha"

	pooled1=$(count "paired with a pooled data connection" "$elog")
	direct1=$(count "paired with data connection from" "$elog")
	if [ "$pool" -gt 0 ]; then
		assert "$tag the 4 requests used pooled data connections" \
			'[ $((pooled1 - pooled0)) -ge 4 ]' "pooled: $pooled0 -> $pooled1"
	else
		assert "$tag the 4 requests used CONNECT data connections" \
			'[ $((direct1 - direct0)) -ge 4 ] && [ "$pooled1" = "$pooled0" ]' \
			"CONNECT: $direct0 -> $direct1, pooled: $pooled0 -> $pooled1"
	fi
	assert "$tag the agent relayed on the $DP path" \
		'grep -q "done via $DP" "$alog"' "no 'done via $DP' in the agent log"
	stop agent
}

run_datapath() {
	DP=$1
	banner "data path: $DP"
	T_FAIL_LOGS=("$WORK/$DP-edge.log" "$WORK/$DP-agent.log" "$NGX/logs/error.log")
	dp_attach || return
	if ! start_edge; then
		fail "[$DP] edge starts" "no listener"
	else
		run_pool 8 pooled
		run_pool 0 CONNECT
	fi
	stop edge
	dp_detach
}

main() {
	need_tools nginx curl nsenter ss sha256sum || return
	make_token
	topology_up || return
	if ! start_nginx; then
		fail "nginx (proxy_protocol and plain listeners) starts in lansvc" "see its log"
		diag_file "$NGX/logs/error.log" "$NGX/logs/stderr.log"
		return
	fi
	pass "nginx (proxy_protocol and plain listeners) starts in lansvc"
	out=$(timeout 10 nsenter --net="/run/netns/$NS_AGENT" -- curl -s -o /dev/null \
		-w '%{http_code}' --max-time 5 "http://$IP_SVC:$S_PP/who" 2>/dev/null)
	assert "control: nginx's proxy_protocol listener drops a request without a header" \
		'[ "$out" = 000 ] && grep -q "broken header" "$NGX/logs/error.log"' \
		"HTTP code '$out' (000: no reply), error.log: $(grep -c "broken header" "$NGX/logs/error.log")"
	for_each_datapath
	assert "nginx logged the client's real address for proxy=v2 requests" \
		'grep -q "^$IP_CLIENT:[0-9]* " "$NGX/logs/access.log"' "see $NGX/logs/access.log"
}

nd_main
