#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes
# One public port, many protocols (mux routes, --route PORT=MATCH>SERVICE,...).
# Topology of netns.sh (client -> edge <- NAT <- agent -> lansvc).  In lansvc:
# a real nginx (Debian's nginx-light, ssl module) with a private config and
# certificates made here (self-signed, one per name), a private sshd on a
# high port with throwaway keys, a Python echo server and a banner server.
#
# Edge routes (--peek-timeout 1500):
#   P_MUX    = sni:www.example.com>web, sni:*.git.example.com>git,
#              host:alpha.example>ha, host:*.beta.example>hb, ssh>ssh, echo
#              (echo: the default, for anything else)
#   P_STRICT = sni:www.example.com>web, tls>git  (no default: others closed)
#   P_SILENT = ssh>ssh, banner  (a client that sends nothing gets the
#              server-speaks-first banner service after the peek timeout)
# For both data paths (splice, sockmap) it checks:
#   - curl --resolve with SNI reaches two different LAN TLS servers through one
#     port (certificate verified for the name, body says which server), and a
#     16 MiB file through the SNI route byte-exact (sha256);
#   - HTTP Host routing to two LAN HTTP servers (exact and wildcard), and the
#     file through a Host route byte-exact;
#   - ssh (OpenSSH client and sshd) through the same port runs a command;
#   - a client whose first bytes match nothing gets the default (echo): 1 MiB
#     of random bytes echoed byte-exact, so the peeked bytes went through the
#     tunnel in order;
#   - a ClientHello trickled 7 bytes per segment is still routed by its SNI;
#   - on the strict port an unknown protocol is closed (and logged), garbage
#     and stalled partial hellos are all closed within the bound, a TLS hello
#     with another name takes the tls rule;
#   - a silent client gets the banner after the peek timeout, not before;
#   - the cost of peeking: 200 HTTP requests, each on a new connection,
#     through the Host rule and through a plain route to the same server
#     (P_PLAIN = ha): p50 through the rule within 5 ms of the plain one;
#   - the edge is still running at the end.
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), MUX_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" mux

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 P_MUX=8443 P_STRICT=8444 P_SILENT=8445 P_PLAIN=8446
S_WEB=9443 S_GIT=9444 S_HA=9080 S_HB=9081 S_SSH=2222 S_ECHO=9000 S_BANNER=9200
PEEK_MS=1500
FILE_MIB=16

NGX=$WORK/nginx
RUN_SSHD_MADE=0

# sshd's privilege-separation dir, if we made it; the big file even when
# the logs are kept
cleanup_extra() {
	[ "$RUN_SSHD_MADE" = 1 ] && rmdir /run/sshd 2>/dev/null
	rm -f "$NGX/www/file.bin"
}
in_client() { # in_client SECONDS CMD...
	local t=$1
	shift
	timeout -k 2 "$t" nsenter --net="/run/netns/$NS_CLIENT" -- "$@"
}

# ---------------------------------------------------------- LAN services ----
make_cert() { # make_cert NAME SAN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$WORK/$1.key" -out "$WORK/$1.pem" -days 2 -subj "/CN=$2" \
		-addext "subjectAltName=DNS:$2" >/dev/null 2>&1
}

start_services() {
	mkdir -p "$NGX/www"
	head -c $((FILE_MIB << 20)) /dev/urandom >"$NGX/www/file.bin"
	FILE_SHA=$(sha256sum "$NGX/www/file.bin" | cut -d' ' -f1)
	make_cert www www.example.com && make_cert git '*.git.example.com' || return 1
	nginx_start "$NS_LANSVC" "$NGX" "$S_WEB" "$S_GIT" "$S_HA" "$S_HB" <<-EOF || return 1
		access_log $NGX/logs/access.log;
		default_type application/octet-stream;
		server {
			listen $IP_SVC:$S_WEB ssl;
			ssl_certificate $WORK/www.pem;
			ssl_certificate_key $WORK/www.key;
			root $NGX/www;
			location = /who { return 200 "web\n"; }
		}
		server {
			listen $IP_SVC:$S_GIT ssl;
			ssl_certificate $WORK/git.pem;
			ssl_certificate_key $WORK/git.key;
			location = /who { return 200 "git\n"; }
		}
		server {
			listen $IP_SVC:$S_HA;
			root $NGX/www;
			location = /who { return 200 "alpha \$host\n"; }
		}
		server {
			listen $IP_SVC:$S_HB;
			location = /who { return 200 "beta \$host\n"; }
		}
	EOF
	# sshd: throwaway host and user keys, private config, no PAM, key only
	ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh_host_ed25519_key" &&
		ssh-keygen -q -t ed25519 -N '' -f "$WORK/id_ed25519" || return 1
	cp "$WORK/id_ed25519.pub" "$WORK/authorized_keys"
	cat >"$WORK/sshd_config" <<-EOF
	Port $S_SSH
	ListenAddress $IP_SVC
	HostKey $WORK/ssh_host_ed25519_key
	AuthorizedKeysFile $WORK/authorized_keys
	PermitRootLogin prohibit-password
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	StrictModes no
	UseDNS no
	PidFile none
	LogLevel ERROR
	EOF
	if [ ! -d /run/sshd ]; then
		mkdir -m 755 /run/sshd && RUN_SSHD_MADE=1
	fi
	spawn sshd "$NS_LANSVC" "$WORK/sshd.log" /usr/sbin/sshd -D -e -f "$WORK/sshd_config"
	spawn echo "$NS_LANSVC" "$WORK/echo.log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn banner "$NS_LANSVC" "$WORK/banner.log" $(py banner.py) server --bind "$IP_SVC" \
		--port "$S_BANNER" --size 300000
	local p
	for p in "$S_SSH" "$S_ECHO" "$S_BANNER"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || { diag "port $p not listening"; return 1; }
	done
}

# --------------------------------------------------------------- daemons ----

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$WORK/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_MUX=sni:www.example.com>web,sni:*.git.example.com>git,host:alpha.example>ha,host:*.beta.example>hb,ssh>ssh,echo" \
		--route "$IP_EDGE_PUB:$P_STRICT=sni:www.example.com>web,tls>git" \
		--route "$IP_EDGE_PUB:$P_SILENT=ssh>ssh,banner" \
		--route "$IP_EDGE_PUB:$P_PLAIN=ha" \
		--peek-timeout "$PEEK_MS" --agent-wait 3000 --metrics "$EDGE_METRICS" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 50 0.1 listening "$NS_EDGE" "$P_SILENT"
}

start_agent() {
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$WORK/$DP-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --pool 4 \
		--service "web=$IP_SVC:$S_WEB" --service "git=$IP_SVC:$S_GIT" \
		--service "ha=$IP_SVC:$S_HA" --service "hb=$IP_SVC:$S_HB" \
		--service "ssh=$IP_SVC:$S_SSH" --service "echo=$IP_SVC:$S_ECHO" \
		--service "banner=$IP_SVC:$S_BANNER" $(dp_args) -v
}

# curl_tls NAME PORT PATH [CAFILE]: GET https://NAME:PORT/PATH from the client,
# NAME resolved to the edge; the certificate is verified against CAFILE
curl_tls() {
	in_client 30 curl -sS --max-time 25 --resolve "$1:$2:$IP_EDGE_PUB" \
		--cacert "${4:-$WORK/www.pem}" "https://$1:$2$3" 2>&1
}

curl_host() { # curl_host HOST PATH
	in_client 30 curl -sS --max-time 25 -H "Host: $1" "http://$IP_EDGE_PUB:$P_MUX$2" 2>&1
}

tunnel_up() { [ "$(curl_host alpha.example /who)" = "alpha alpha.example" ]; }

# ------------------------------------------------------------------ tests ---
t_sni() {
	local out sha
	out=$(curl_tls www.example.com "$P_MUX" /who "$WORK/www.pem")
	assert_eq "[$DP] SNI www.example.com on port $P_MUX reaches the web TLS server (certificate verified)" \
		"web" "$out"
	out=$(curl_tls repo.git.example.com "$P_MUX" /who "$WORK/git.pem")
	assert_eq "[$DP] SNI repo.git.example.com (rule sni:*.git.example.com) reaches the git TLS server" \
		"git" "$out"
	sha=$(in_client 60 curl -sS --max-time 50 --resolve "www.example.com:$P_MUX:$IP_EDGE_PUB" \
		--cacert "$WORK/www.pem" "https://www.example.com:$P_MUX/file.bin" 2>/dev/null |
		sha256sum | cut -d' ' -f1)
	assert_eq "[$DP] $FILE_MIB MiB over TLS through the SNI route byte-exact (sha256)" \
		"$FILE_SHA" "$sha"
}

t_host() {
	local out sha
	out=$(curl_host alpha.example /who)
	assert_eq "[$DP] Host: alpha.example reaches the alpha HTTP server" "alpha alpha.example" "$out"
	out=$(curl_host Www.Beta.Example:8443 /who)
	assert_eq "[$DP] Host: Www.Beta.Example:8443 (rule host:*.beta.example) reaches beta" \
		"beta www.beta.example" "$out"
	sha=$(curl_host alpha.example /file.bin | sha256sum | cut -d' ' -f1)
	assert_eq "[$DP] $FILE_MIB MiB through the Host route byte-exact (sha256)" "$FILE_SHA" "$sha"
}

t_ssh() {
	local out
	out=$(in_client 30 ssh -F /dev/null -p "$P_MUX" -i "$WORK/id_ed25519" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
		-o LogLevel=ERROR -o ConnectTimeout=20 "root@$IP_EDGE_PUB" echo mux-ssh-ok 2>&1)
	assert_eq "[$DP] ssh through the same port (rule ssh) runs a command on the LAN sshd" \
		"mux-ssh-ok" "$out"
}

t_default() {
	local out
	out=$(in_client 40 $(py echo_client.py) upload --host "$IP_EDGE_PUB" --port "$P_MUX" \
		--size $((1 << 20)) --timeout 30 2>&1)
	assert "[$DP] no rule matches: the default service (echo) echoes 1 MiB of random bytes byte-exact" \
		'[[ "$out" == OK* ]]' "$out"
	assert "[$DP] the edge logged the default for it" \
		'grep -q "service .echo. (default)" "$WORK/$DP-edge.log"' "no '(default)' line"
}

t_slow_hello() {
	local out
	out=$(in_client 30 $(py tls_trickle.py) --host "$IP_EDGE_PUB" --port "$P_MUX" \
		--sni www.example.com --cafile "$WORK/www.pem" --chunk 7 --delay 0.01 2>"$WORK/trickle.err")
	diag "[$DP] trickled hello: $(cat "$WORK/trickle.err")"
	assert_eq "[$DP] a ClientHello trickled 7 bytes per segment is still routed by its SNI" \
		"web" "$out"
}

t_strict() {
	local out t0 dt nm0 pt0
	out=$(curl_tls other.example "$P_STRICT" /who "$WORK/git.pem" ; echo "rc=$?")
	# the git server's certificate does not name other.example: the
	# handshake itself proves which server answered
	assert "[$DP] strict port: TLS with another name takes the tls rule (git server's certificate)" \
		'[[ "$out" == *"no alternative certificate subject name matches"* ]] || [[ "$out" == *"SSL: no alternative"* ]]' "$out"
	nm0=$(edge_metric rsplice_errors_total reason=mux-no-match)
	pt0=$(edge_metric rsplice_peek_timeouts_total)
	t0=$(now_ms)
	out=$(in_client 10 curl -sS --max-time 8 "http://$IP_EDGE_PUB:$P_STRICT/" 2>&1; echo "rc=$?")
	dt=$(( $(now_ms) - t0 ))
	assert "[$DP] strict port: plain HTTP matches no rule and is closed at once (${dt} ms)" \
		'[[ "$out" == *"Empty reply"* || "$out" == *"reset"* ]] && [ "$dt" -lt 1000 ]' "$out"
	assert "[$DP] strict port: the close is logged" \
		'grep -q "matches no rule, and the route has no default service" "$WORK/$DP-edge.log"' \
		"no log line"
	assert_moved "[$DP] strict port: the close counts in rsplice_errors_total{reason=\"mux-no-match\"} (+1)" \
		1 "$nm0" "$(edge_metric rsplice_errors_total reason=mux-no-match)"
	assert_moved "[$DP] strict port: plain HTTP decided at once: rsplice_peek_timeouts_total +0" \
		0 "$pt0" "$(edge_metric rsplice_peek_timeouts_total)"
	out=$(in_client 60 $(py garbage_clients.py) --host "$IP_EDGE_PUB" --port "$P_STRICT" \
		--bound $(( PEEK_MS / 1000 + 3 )) --rounds 3 2>&1)
	diag "[$DP] garbage: $out"
	assert "[$DP] strict port: 30 garbage, stalled and silent clients all closed within the bound" \
		'[[ "$out" == "closed 30 of 30"* ]]' "$out"
}

t_silent() {
	local out t0 dt pt0 nm0
	pt0=$(edge_metric rsplice_peek_timeouts_total)
	nm0=$(edge_metric rsplice_errors_total reason=mux-no-match)
	t0=$(now_ms)
	out=$(in_client 20 $(py banner.py) client --host "$IP_EDGE_PUB" --port "$P_SILENT" \
		--size 300000 --timeout 15 2>&1)
	dt=$(( $(now_ms) - t0 ))
	assert "[$DP] a silent client gets the server-speaks-first default after the peek timeout (${dt} ms)" \
		'[[ "$out" == OK* ]] && [ "$dt" -ge '"$PEEK_MS"' ] && [ "$dt" -lt $((PEEK_MS + 3000)) ]' \
		"$out after $dt ms"
	assert_moved "[$DP] the silent client counts once in rsplice_peek_timeouts_total" \
		1 "$pt0" "$(edge_metric rsplice_peek_timeouts_total)"
	assert_moved "[$DP] it got the default: rsplice_errors_total{reason=\"mux-no-match\"} +0" \
		0 "$nm0" "$(edge_metric rsplice_errors_total reason=mux-no-match)"
	out=$(in_client 30 ssh -F /dev/null -p "$P_SILENT" -i "$WORK/id_ed25519" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
		-o LogLevel=ERROR -o ConnectTimeout=20 "root@$IP_EDGE_PUB" echo silent-port-ssh 2>&1)
	assert_eq "[$DP] ssh shares the port with the silent default" "silent-port-ssh" "$out"
}

t_latency() {
	local mux plain m p
	mux=$(in_client 60 $(py http_rtt.py) --host "$IP_EDGE_PUB" --port "$P_MUX" \
		--host-header alpha.example --expect alpha --count 200 2>&1)
	plain=$(in_client 60 $(py http_rtt.py) --host "$IP_EDGE_PUB" --port "$P_PLAIN" \
		--host-header alpha.example --expect alpha --count 200 2>&1)
	diag "[$DP] 200 requests, new connection each: Host rule: $mux; plain route: $plain"
	# shellcheck disable=SC2034 # m and p are read by the assert below
	m=$(sed -n 's/^p50 \([0-9]*\)\..*/\1/p' <<<"$mux")
	p=$(sed -n 's/^p50 \([0-9]*\)\..*/\1/p' <<<"$plain")
	assert "[$DP] peeking costs little: p50 through the Host rule within 5 ms of a plain route" \
		'[[ "$mux" == *"failures 0" ]] && [[ "$plain" == *"failures 0" ]] && [ -n "$m" ] && [ -n "$p" ] && [ "$m" -le $((p + 5)) ]' \
		"rule: $mux; plain: $plain"
}

run_datapath() {
	DP=$1
	local t
	banner "data path: $DP"
	T_FAIL_LOGS=("$WORK/$DP-edge.log" "$WORK/$DP-agent.log")
	dp_attach || return
	if ! start_edge; then
		fail "[$DP] edge starts" "no listener"
	else
		start_agent
		if wait_until 50 0.2 tunnel_up; then
			pass "[$DP] edge + agent up, a Host-routed request works"
			for t in t_sni t_host t_ssh t_default t_slow_hello t_strict t_silent t_latency; do
				diag "--- $t"
				"$t"
			done
			assert "[$DP] edge and agent relayed on the $DP path" \
				'grep -q "done via $DP" "$WORK/$DP-edge.log" && grep -q "done via $DP" "$WORK/$DP-agent.log"' \
				"no 'done via $DP'"
		else
			fail "[$DP] edge + agent up, a Host-routed request works" "got '$(curl_host alpha.example /who)'"
		fi
		stop agent
	fi
	assert_edge_alive
	stop edge
	dp_detach
}

main() {
	need_tools nginx curl openssl ssh ssh-keygen /usr/sbin/sshd python3 nsenter ss sha256sum || return
	make_token
	topology_up || return
	if ! start_services; then
		fail "LAN services (nginx TLS + HTTP, sshd, echo, banner) start" "see $WORK"
		diag_file "$NGX/logs/error.log" "$NGX/logs/stderr.log" "$WORK/sshd.log"
		return
	fi
	pass "LAN services (nginx TLS + HTTP, sshd, echo, banner) start"
	for_each_datapath
}

nd_main
