# SPDX-License-Identifier: MIT
# Test topology for the rsplice end-to-end tests (sourced, not executed).
#
#   client ----- edge ----- router ===NAT=== agent ----- lansvc
#   .1.2      .1.1  .2.1    .2.2     .3.1   .3.2  .4.1     .4.2
#          10.201.1/24  10.201.2/24  10.201.3/24  10.201.4/24
#
# - client: the public user; its only route is via the edge (10.201.1.1).
# - edge:   public host; knows 10.201.1/24 and 10.201.2/24 only: it has NO
#           route to the LAN (10.201.3/24, 10.201.4/24) and does not forward.
# - router: the LAN's gateway; forwards and masquerades LAN traffic leaving
#           towards the edge (nftables), so the edge sees only 10.201.2.2.
# - agent:  LAN host running rsplice-agent; default route via the router.
# - lansvc: the LAN service host (a different host than both edge and agent),
#           reached by the agent on its directly connected 10.201.4/24.
#
# Namespace names are unique per run (pid + random), interfaces are created
# directly inside the namespaces, so parallel runs never collide and nothing
# is added to the caller's namespace.  All addresses exist only inside these
# namespaces.
#
# Commands run in a namespace with nsenter --net only (not `ip netns exec`,
# which remounts /sys and would hide the bpffs at /sys/fs/bpf from the daemons).

NS_TAG="rs$$x$((RANDOM % 10000))"
NS_CLIENT="$NS_TAG-client"
NS_EDGE="$NS_TAG-edge"
NS_ROUTER="$NS_TAG-router"
NS_AGENT="$NS_TAG-agent"
NS_LANSVC="$NS_TAG-lansvc"
NS_ALL=("$NS_CLIENT" "$NS_EDGE" "$NS_ROUTER" "$NS_AGENT" "$NS_LANSVC")

IP_CLIENT=10.201.1.2
IP_EDGE_PUB=10.201.1.1
IP_EDGE=10.201.2.1
IP_ROUTER_WAN=10.201.2.2
IP_ROUTER_LAN=10.201.3.1
IP_AGENT=10.201.3.2
IP_AGENT_SVC=10.201.4.1
IP_SVC=10.201.4.2

# in_ns NS CMD...: run CMD in network namespace NS (same mount namespace).
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

# _veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B
_veth() {
	ip -n "$1" link add "$2" type veth peer name "$5" netns "$4" || return 1
	ip -n "$1" addr add "$3/24" dev "$2" || return 1
	ip -n "$4" addr add "$6/24" dev "$5" || return 1
	ip -n "$1" link set "$2" up || return 1
	ip -n "$4" link set "$5" up || return 1
}

netns_setup() {
	local ns
	for ns in "${NS_ALL[@]}"; do
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up || return 1
		# No IPv6 chatter, no forwarding unless asked below.
		in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
		in_ns "$ns" sysctl -qw net.ipv4.ip_forward=0
	done
	_veth "$NS_CLIENT" c0 "$IP_CLIENT"     "$NS_EDGE"   e0 "$IP_EDGE_PUB" || return 1
	_veth "$NS_EDGE"   e1 "$IP_EDGE"       "$NS_ROUTER" r0 "$IP_ROUTER_WAN" || return 1
	_veth "$NS_ROUTER" r1 "$IP_ROUTER_LAN" "$NS_AGENT"  a0 "$IP_AGENT" || return 1
	_veth "$NS_AGENT"  a1 "$IP_AGENT_SVC"  "$NS_LANSVC" s0 "$IP_SVC" || return 1

	# client: everything via the edge (it only ever talks to the edge).
	ip -n "$NS_CLIENT" route add default via "$IP_EDGE_PUB" || return 1
	# edge: connected routes only; no default route, no forwarding.
	# router: forwards, masquerades what leaves towards the edge.
	in_ns "$NS_ROUTER" sysctl -qw net.ipv4.ip_forward=1 || return 1
	ip -n "$NS_ROUTER" route add 10.201.4.0/24 via "$IP_AGENT" || return 1
	in_ns "$NS_ROUTER" nft -f - <<-EOF || return 1
	table ip rsnat {
		chain lan_masq {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "r0" ip saddr { 10.201.3.0/24, 10.201.4.0/24 } masquerade
		}
	}
	table ip rsfilter {
		chain lan_forward {
			type filter hook forward priority filter; policy drop;
			ct state established,related accept
			iifname "r1" oifname "r0" accept
		}
	}
	EOF
	# agent: default route via the router; does not forward for lansvc.
	ip -n "$NS_AGENT" route add default via "$IP_ROUTER_LAN" || return 1
	# lansvc: replies go to the agent, which is the only one talking to it.
	ip -n "$NS_LANSVC" route add default via "$IP_AGENT_SVC" || return 1
	return 0
}

# Kill every process still living in our namespaces (all were started by this
# run: the namespaces are private to it), then delete the namespaces.
netns_teardown() {
	local ns pids
	for ns in "${NS_ALL[@]}"; do
		[ -e "/run/netns/$ns" ] || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null
	done
	for ns in "${NS_ALL[@]}"; do
		[ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	done
	return 0
}
