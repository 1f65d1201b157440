#!/bin/bash
# SPDX-License-Identifier: MIT
# Packaging test: `make install` / `make uninstall` with DESTDIR and PREFIX,
# the installed man pages (rendered without warnings, and listing exactly the
# options of the programs), the systemd units (systemd-analyze verify, and the
# capabilities they grant are enough for the kernel data path), the example
# config (both daemons accept it) and the bash completion.
#
# TAP-like output: one "ok N - ..." / "not ok N - ..." line per check,
# "ok N - ... # SKIP why" when a tool or root is missing.  Exit status is
# non-zero when a check failed.  Root is needed only for the capability checks
# (they load BPF); everything else installs into temporary directories.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 2
BUILD=${BUILD:-build}
export LC_ALL=C.UTF-8

N=0
FAILED=0
WORK=$(mktemp -d /tmp/rsplice-install.XXXXXX)
PIN=/sys/fs/bpf/rsplice-install-$$
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if [ -e "$PIN" ]; then
		"$BUILD/rsplice" --pin-dir "$PIN" detach >/dev/null 2>&1
		rm -rf "$PIN" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # run.sh's timeout: clean up on the way out

ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
	N=$((N + 1)); FAILED=$((FAILED + 1))
	echo "not ok $N - $1"
	[ -s "$WORK/out" ] && sed 's/^/#   /' "$WORK/out" | tail -n 30
	return 0
}
skip() { N=$((N + 1)); echo "ok $N - $1 # SKIP $2"; }
diag() { printf '# %s\n' "$@"; }

# check DESCRIPTION CMD...: ok when CMD exits 0; its output is shown on failure.
check() {
	local desc=$1
	shift
	if "$@" >"$WORK/out" 2>&1; then ok "$desc"; else not_ok "$desc"; fi
	rm -f "$WORK/out"
}

# ---------------------------------------------------------------- install

LOCAL=$WORK/local # PREFIX=/usr/local (the default)
DIST=$WORK/dist   # PREFIX=/usr
L_SBIN=$LOCAL/usr/local/sbin
L_UNITS=$LOCAL/usr/local/lib/systemd/system
L_MAN=$LOCAL/usr/local/share/man
L_COMP=$LOCAL/usr/local/share/bash-completion/completions

check "make install DESTDIR=... (PREFIX defaults to /usr/local)" \
	make -s --no-print-directory install DESTDIR="$LOCAL"

# path mode (or "-> target" for a symlink), relative to DESTDIR
expected_local() {
	cat <<EOF
etc/rsplice/rsplice.conf.example 644
usr/local/lib/systemd/system/rsplice-agent.service 644
usr/local/lib/systemd/system/rsplice-attach.service 644
usr/local/lib/systemd/system/rsplice-edge.service 644
usr/local/sbin/rsplice 755
usr/local/sbin/rsplice-agent 755
usr/local/sbin/rsplice-edge 755
usr/local/share/bash-completion/completions/rsplice 644
usr/local/share/bash-completion/completions/rsplice-agent -> rsplice
usr/local/share/bash-completion/completions/rsplice-edge -> rsplice
usr/local/share/man/man5/rsplice.conf.5 644
usr/local/share/man/man8/rsplice-agent.8 644
usr/local/share/man/man8/rsplice-edge.8 644
usr/local/share/man/man8/rsplice.8 644
EOF
}

# installed_tree DIR: the same listing of what is under DIR
installed_tree() {
	(cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort | while read -r f; do
		if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(stat -c %a "$f")"; fi
	done)
}

check "installs exactly the programs, units, man pages, completion and example config, with their modes" \
	diff -u <(expected_local) <(installed_tree "$LOCAL")

same_programs() {
	local b
	for b in rsplice rsplice-edge rsplice-agent; do
		cmp "$BUILD/$b" "$L_SBIN/$b" || return 1
		"$L_SBIN/$b" --version || return 1
	done
}
check "installed programs are the built ones and run (--version)" same_programs

# Every Exec*= of every unit names an installed executable.
exec_paths_exist() { # DESTDIR UNITDIR SBINDIR
	local d=$1 u=$2 sbin=$3 line path n=0
	while IFS= read -r line; do
		path=${line#*=}
		path=${path%% *}
		if [ "$path" = /bin/kill ]; then # ExecReload= of the daemons: SIGHUP
			[ -x /bin/kill ] || { echo "$line: /bin/kill is missing"; return 1; }
			continue
		fi
		[[ $path == "$sbin"/* ]] || { echo "$line: not under $sbin"; return 1; }
		[ -x "$d$path" ] || { echo "$line: $d$path is not executable"; return 1; }
		n=$((n + 1))
	done < <(grep -h '^Exec[A-Za-z]*=' "$d$u"/rsplice-*.service)
	[ "$n" -ge 5 ] || { echo "only $n Exec lines"; return 1; }
}
check "units run the programs from /usr/local/sbin" \
	exec_paths_exist "$LOCAL" /usr/local/lib/systemd/system /usr/local/sbin

expected_dist() {
	expected_local | sed -e 's|^usr/local/lib/systemd/|lib/systemd/|' -e 's|^usr/local/|usr/|' | sort
}
dist_install() {
	make -s --no-print-directory install DESTDIR="$DIST" PREFIX=/usr &&
		diff -u <(expected_dist) <(installed_tree "$DIST") &&
		exec_paths_exist "$DIST" /lib/systemd/system /usr/sbin
}
check "PREFIX=/usr: programs in /usr/sbin, units in /lib/systemd/system (Debian) naming /usr/sbin" \
	dist_install

# ---------------------------------------------------------------- man pages

PAGES=("$L_MAN/man8/rsplice.8" "$L_MAN/man8/rsplice-edge.8" "$L_MAN/man8/rsplice-agent.8"
	"$L_MAN/man5/rsplice.conf.5")

groff_clean() {
	local p err
	for p in "${PAGES[@]}"; do
		err=$(groff -man -Tutf8 -ww -z "$p" 2>&1)
		[ -z "$err" ] || { echo "${p##*/}: $err"; return 1; }
	done
}
if command -v groff >/dev/null; then
	check "groff -man -Tutf8 -ww renders every page without a warning" groff_clean
else
	skip "groff -man -Tutf8 -ww renders every page without a warning" "groff not installed (groff-base)"
fi

man_clean() {
	local p out err
	for p in "${PAGES[@]}"; do
		out=$(MAN_KEEP_STDERR=1 MANWIDTH=80 man --warnings=w -l "$p" 2>"$WORK/man.err") ||
			{ echo "${p##*/}: man -l failed"; return 1; }
		err=$(cat "$WORK/man.err")
		[ -z "$err" ] || { echo "${p##*/}: $err"; return 1; }
		if ! grep -q '^NAME' <<<"$out" || ! grep -q '^SEE ALSO' <<<"$out"; then
			echo "${p##*/}: no NAME or SEE ALSO section in the rendered page"
			return 1
		fi
	done
}
man_finds_pages() {
	local name sect want
	for name in rsplice.8 rsplice-edge.8 rsplice-agent.8 rsplice.conf.5; do
		sect=${name##*.}
		want=$L_MAN/man$sect/$name
		[ "$(man -M "$L_MAN" -w "$sect" "${name%.*}" 2>&1)" = "$want" ] ||
			{ echo "man -M $L_MAN -w $sect ${name%.*}: not $want"; return 1; }
	done
}
if command -v man >/dev/null; then
	check "man -l renders every page without a warning" man_clean
	check "man finds every page by name in the installed tree" man_finds_pages
else
	skip "man -l renders every page without a warning" "man not installed (man-db)"
	skip "man finds every page by name in the installed tree" "man not installed (man-db)"
fi

mandoc_clean() {
	mandoc -Tlint -Wwarning "${PAGES[@]}"
}
if command -v mandoc >/dev/null; then
	check "mandoc -Tlint finds no warning in any page" mandoc_clean
else
	skip "mandoc -Tlint finds no warning in any page" "mandoc not installed"
fi

# Long options as a program's --help lists them, as a page's source spells
# them anywhere (\-\-name), and as the tags of its .TP entries.
help_opts() { "$1" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u; }
page_opts() { sed 's/\\-/-/g' "$1" | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u; }
page_entries() { sed -n '/^\.TP/{n;p}' "$1" | sed 's/\\-/-/g' | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u; }

same_options() { # PROGRAM PAGE: an entry for every option, no unknown option
	local missing extra
	missing=$(comm -23 <(help_opts "$1") <(page_entries "$2"))
	extra=$(comm -13 <(help_opts "$1") <(page_opts "$2"))
	[ -n "$(help_opts "$1")" ] || { echo "$1 --help lists no option"; return 1; }
	[ -z "$missing" ] || echo "in $1 --help but not in ${2##*/}:" "${missing//$'\n'/ }"
	[ -z "$extra" ] || echo "in ${2##*/} but not in $1 --help:" "${extra//$'\n'/ }"
	[ -z "$missing$extra" ]
}
check "rsplice-edge(8) has an entry for every option of rsplice-edge --help, and no other" \
	same_options "$L_SBIN/rsplice-edge" "$L_MAN/man8/rsplice-edge.8"
check "rsplice-agent(8) has an entry for every option of rsplice-agent --help, and no other" \
	same_options "$L_SBIN/rsplice-agent" "$L_MAN/man8/rsplice-agent.8"

# rsplice: the commands of `rsplice help`, the global options of its usage and
# the options of `rsplice attach -h` are all in rsplice(8).
rsplice_cmds() { "$L_SBIN/rsplice" help | sed -n 's/^Usage:.*{\(.*\)}.*/\1/p' | tr -d '|' | xargs -n1; }
cli_documented() {
	local page=$L_MAN/man8/rsplice.8 c o missing='' extra
	[ -n "$(rsplice_cmds)" ] || { echo "rsplice help lists no command"; return 1; }
	for c in $(rsplice_cmds); do
		grep -qE "^(\\.B $c|\\\\fB$c\\\\fR)( |$)" "$page" || missing="$missing $c"
	done
	for o in $({ "$L_SBIN/rsplice" help; "$L_SBIN/rsplice" attach -h; } |
		grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
		page_entries "$page" | grep -qx -- "$o" || missing="$missing $o"
	done
	[ -z "$missing" ] || { echo "not in rsplice.8:$missing"; return 1; }
	extra=$(comm -13 <({ "$L_SBIN/rsplice" help; "$L_SBIN/rsplice" attach -h; } |
		grep -oE -- '--[a-z][a-z0-9-]+' | sort -u) <(page_opts "$page"))
	[ -z "$extra" ] || { echo "in rsplice.8 but not in rsplice help / attach -h:" "${extra//$'\n'/ }"; return 1; }
}
check "rsplice(8) has an entry for every command and option of rsplice help / attach -h" cli_documented

pages_versioned() {
	local v p
	v=$("$L_SBIN/rsplice-edge" --version | awk '{print $2}')
	[ -n "$v" ] || return 1
	for p in "${PAGES[@]}"; do
		grep -q "^\.TH .* \"rsplice $v\" " "$p" || { echo "${p##*/}: .TH does not say rsplice $v"; return 1; }
	done
}
check "every page's header carries the programs' version" pages_versioned

# Keys: every long option of a daemon but config, help and version.
daemon_keys() { help_opts "$1" | sed 's/^--//' | grep -vxE 'config|help|version'; }
conf_documents_keys() {
	local src k missing=
	src=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$L_MAN/man5/rsplice.conf.5")
	for k in $(daemon_keys "$L_SBIN/rsplice-edge") $(daemon_keys "$L_SBIN/rsplice-agent"); do
		grep -qE "^$k = " <<<"$src" || missing="$missing $k"
	done
	[ -z "$missing" ] || { echo "keys not in rsplice.conf.5:$missing"; return 1; }
}
check "rsplice.conf(5) documents a key for every option of both daemons" conf_documents_keys

# ---------------------------------------------------------------- example config

EXAMPLE=$LOCAL/etc/rsplice/rsplice.conf.example
example_lists_keys() {
	local k missing=
	for k in $(daemon_keys "$L_SBIN/rsplice-edge") $(daemon_keys "$L_SBIN/rsplice-agent"); do
		grep -qE "^;?$k = " "$EXAMPLE" || missing="$missing $k"
	done
	[ -z "$missing" ] || { echo "keys not in rsplice.conf.example:$missing"; return 1; }
}
check "rsplice.conf.example lists every key" example_lists_keys

# A daemon reads the whole file before the token: "cannot open token file"
# means the file itself was accepted.  The agent gets --edge on the command line
# so that the example's host name is not resolved (the flag overrides the key).
config_accepted() { # CONFIG
	local out rc=0
	out=$("$L_SBIN/rsplice-edge" -c "$1" --token-file "$WORK/no-token" 2>&1)
	grep -q "token file '$WORK/no-token'" <<<"$out" || { echo "rsplice-edge: $out"; rc=1; }
	out=$("$L_SBIN/rsplice-agent" -c "$1" --edge 127.0.0.1:7000 --token-file "$WORK/no-token" 2>&1)
	grep -q "token file '$WORK/no-token'" <<<"$out" || { echo "rsplice-agent: $out"; rc=1; }
	return $rc
}
check "rsplice-edge and rsplice-agent accept rsplice.conf.example" config_accepted "$EXAMPLE"
sed -E 's/^;([a-z-]+ = )/\1/' "$EXAMPLE" >"$WORK/uncommented.conf"
check "... and the example with every commented-out key set to its default" \
	config_accepted "$WORK/uncommented.conf"

# ---------------------------------------------------------------- systemd units

UNITS=(rsplice-attach.service rsplice-edge.service rsplice-agent.service)

units_syntax() {
	local u line n bad=0
	for u in "${UNITS[@]}"; do
		n=0
		while IFS= read -r line; do
			n=$((n + 1))
			[[ -z $line || $line == '#'* || $line =~ ^\[(Unit|Service|Install)\]$ ||
				$line =~ ^[A-Z][A-Za-z]+=[^[:space:]] ]] && continue
			echo "$u:$n: not a comment, [Unit]/[Service]/[Install] or Key=value: $line"
			bad=1
		done <"$L_UNITS/$u"
	done
	return $bad
}
check "units: every line is a comment, a section header or Key=value" units_syntax

has() { grep -qxF -- "$2" "$L_UNITS/$1" || { echo "$1: no line '$2'"; return 1; }; }
daemon_units_hardened() {
	local u rc=0 d
	for u in rsplice-edge.service rsplice-agent.service; do
		for d in Type=exec "ExecStart=/usr/local/sbin/${u%.service} -c /etc/rsplice/rsplice.conf" \
			Restart=on-failure RestartSec=2s LimitNOFILE=1048576 NoNewPrivileges=yes \
			ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
			"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" SystemCallArchitectures=native \
			Wants=rsplice-attach.service After=rsplice-attach.service \
			After=network-online.target WantedBy=multi-user.target \
			'ExecReload=/bin/kill -HUP $MAINPID'; do
			has "$u" "$d" || rc=1
		done
	done
	for d in Type=oneshot RemainAfterExit=yes "ExecStart=/usr/local/sbin/rsplice attach -f" \
		"ExecStop=/usr/local/sbin/rsplice detach" NoNewPrivileges=yes; do
		has rsplice-attach.service "$d" || rc=1
	done
	# pins are made under /sys, which ProtectKernelTunables= makes read-only
	! grep -q '^ProtectKernelTunables=' "$L_UNITS/rsplice-attach.service" ||
		{ echo "rsplice-attach.service: ProtectKernelTunables= keeps it from pinning"; rc=1; }
	return $rc
}
check "units: daemons hardened and ordered after rsplice-attach; attach/detach oneshot" \
	daemon_units_hardened

# The bounding set of a unit, as setpriv wants it: -all,+bpf,+net_admin
caps_of() {
	local caps
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$L_UNITS/$1")
	[ -n "$caps" ] || return 1
	printf -- '-all'
	for c in $caps; do printf ',+%s' "$(tr '[:upper:]' '[:lower:]' <<<"${c#CAP_}")"; done
}
caps_exact() {
	local rc=0
	[ "$(caps_of rsplice-attach.service)" = "-all,+bpf,+net_admin,+perfmon" ] || rc=1
	[ "$(caps_of rsplice-edge.service)" = "-all,+bpf,+net_admin,+net_bind_service,+sys_resource" ] || rc=1
	[ "$(caps_of rsplice-agent.service)" = "-all,+bpf,+net_admin,+sys_resource" ] || rc=1
	# AmbientCapabilities= hands the same set over once the units get a User=
	for u in rsplice-edge.service rsplice-agent.service; do
		[ "$(sed -n 's/^AmbientCapabilities=//p' "$L_UNITS/$u")" = \
			"$(sed -n 's/^CapabilityBoundingSet=//p' "$L_UNITS/$u")" ] || rc=1
	done
	[ $rc = 0 ] || grep -H '^CapabilityBoundingSet=\|^AmbientCapabilities=' "$L_UNITS"/*.service
	return $rc
}
check "units: capability bounding sets are exactly the documented ones" caps_exact

# systemd-analyze verify on copies whose Exec lines point into DESTDIR (it
# checks that they are executable) and with MANPATH on the installed pages (it
# runs man for every Documentation=man:...).  It needs no running systemd.
analyze_verify() {
	local out
	mkdir -p "$WORK/units"
	for u in "${UNITS[@]}"; do
		sed "s|/usr/local/sbin/|$L_SBIN/|g" "$L_UNITS/$u" >"$WORK/units/$u"
	done
	out=$(cd "$WORK/units" && MANPATH=$L_MAN systemd-analyze verify "${UNITS[@]/#/./}" 2>&1)
	local rc=$?
	[ -n "$out" ] && echo "$out"
	[ $rc = 0 ] && [ -z "$out" ]
}
if command -v systemd-analyze >/dev/null; then
	check "systemd-analyze verify: all three units, no warning" analyze_verify
	for u in "${UNITS[@]}"; do
		# "→ Overall exposure level for X.service: 2.6 OK 🙂" without the arrow and face
		diag "$(systemd-analyze security --offline=yes "$WORK/units/$u" 2>/dev/null |
			tail -n 1 | sed 's/^[^O]*//' | cut -d' ' -f1-7)"
	done
else
	skip "systemd-analyze verify: all three units, no warning" \
		"systemd-analyze not installed; only the line syntax and directives above were checked"
fi

# ---------------------------------------------------------------- capabilities

# Run the programs as root with only a unit's bounding set, as systemd does for
# a root service with CapabilityBoundingSet= and NoNewPrivileges=yes, on the
# kernel data path (--datapath sockmap refuses to start without it).
with_caps() { # CAPS CMD...
	local caps=$1
	shift
	setpriv --no-new-privs --inh-caps=-all --bounding-set="$caps" -- "$@"
}

port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
wait_listen() { # PORT: up to 5 s
	local _
	for _ in $(seq 50); do port_free "$1" || return 0; sleep 0.1; done
	return 1
}

caps_reason=
if [ "$(id -u)" -ne 0 ]; then
	caps_reason="needs root"
elif ! command -v setpriv >/dev/null || ! command -v python3 >/dev/null; then
	caps_reason="needs setpriv and python3"
elif ! "$L_SBIN/rsplice" --pin-dir "$PIN" attach >"$WORK/out" 2>&1; then
	caps_reason="rsplice attach fails even with every capability: $(head -n 1 "$WORK/out")"
else
	"$L_SBIN/rsplice" --pin-dir "$PIN" detach >/dev/null 2>&1
fi

CAPS_CHECKS=(
	"rsplice attach / status runs with the capabilities of rsplice-attach.service"
	"without capabilities rsplice-edge --datapath sockmap refuses to start (control)"
	"edge and agent with their units' capabilities splice a connection in the kernel"
	"rsplice detach runs with the capabilities of rsplice-attach.service"
)
if [ -n "$caps_reason" ]; then
	for c in "${CAPS_CHECKS[@]}"; do skip "$c" "$caps_reason"; done
else
	A_CAPS=$(caps_of rsplice-attach.service)
	E_CAPS=$(caps_of rsplice-edge.service)
	G_CAPS=$(caps_of rsplice-agent.service)
	diag "bounding sets: attach $A_CAPS, edge $E_CAPS, agent $G_CAPS"

	attached_with_caps() {
		with_caps "$A_CAPS" "$L_SBIN/rsplice" --pin-dir "$PIN" attach -f &&
			with_caps "$A_CAPS" "$L_SBIN/rsplice" --pin-dir "$PIN" -j status |
			python3 -c 'import json, sys; s = json.load(sys.stdin); sys.exit(0 if s["attached"] else 1)'
	}
	check "${CAPS_CHECKS[0]}" attached_with_caps

	head -c 32 /dev/urandom | base64 >"$WORK/token"
	chmod 600 "$WORK/token"
	# three free loopback ports below the ephemeral range (32768 and up)
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		BASE=$((10000 + RANDOM % 20000))
		port_free "$BASE" && port_free $((BASE + 1)) && port_free $((BASE + 2)) && break
	done
	CTL=$BASE ROUTE=$((BASE + 1)) SVC=$((BASE + 2))

	refuses_without_caps() { # exits 1 at once (124 would mean it ran)
		timeout 5 setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- \
			"$L_SBIN/rsplice-edge" --control "127.0.0.1:$CTL" --token-file "$WORK/token" \
			--datapath sockmap --pin-dir "$PIN"
		[ $? = 1 ]
	}
	check "${CAPS_CHECKS[1]}" refuses_without_caps

	spliced_with_caps() {
		local client_out pairs
		python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
' "$SVC" >/dev/null 2>&1 &
		PIDS+=($!)
		# setpriv itself in the background (not with_caps): $! must be the
		# daemon's pid, which setpriv becomes, for the cleanup to stop it
		setpriv --no-new-privs --inh-caps=-all --bounding-set="$E_CAPS" -- \
			"$L_SBIN/rsplice-edge" --control "127.0.0.1:$CTL" \
			--token-file "$WORK/token" --route "127.0.0.1:$ROUTE=echo" \
			--datapath sockmap --pin-dir "$PIN" >"$WORK/edge.log" 2>&1 &
		PIDS+=($!)
		setpriv --no-new-privs --inh-caps=-all --bounding-set="$G_CAPS" -- \
			"$L_SBIN/rsplice-agent" --edge "127.0.0.1:$CTL" \
			--token-file "$WORK/token" --service "echo=127.0.0.1:$SVC" \
			--datapath sockmap --pin-dir "$PIN" >"$WORK/agent.log" 2>&1 &
		PIDS+=($!)
		if ! wait_listen "$ROUTE" || ! wait_listen "$SVC"; then
			echo "nothing listens on port $ROUTE or $SVC"
			cat "$WORK/edge.log" "$WORK/agent.log"
			return 1
		fi
		# The client holds its connection open (until told on stdin) while
		# `rsplice status` counts the spliced pairs, then checks 1 MiB of echo.
		coproc CLIENT {
			timeout 30 python3 -c '
import os, socket, sys, threading
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
def echo(data):
    threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
    got = b""
    while len(got) < len(data):
        d = c.recv(65536)
        if not d: break
        got += d
    return got == data
print("ready" if echo(b"hello\n") else "bad-hello", flush=True)
sys.stdin.readline()
print("ok" if echo(os.urandom(1 << 20)) else "bad-echo", flush=True)
' "$ROUTE" 2>&1
		}
		local cpid=$CLIENT_PID
		read -r -t 25 client_out <&"${CLIENT[0]}"
		[ "$client_out" = ready ] || { echo "client: ${client_out:-no answer}"; cat "$WORK/edge.log" "$WORK/agent.log"; return 1; }
		pairs=$("$L_SBIN/rsplice" --pin-dir "$PIN" -j status |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["spliced_pairs"])')
		echo go >&"${CLIENT[1]}"
		read -r -t 25 client_out <&"${CLIENT[0]}"
		wait "$cpid" 2>/dev/null
		echo "spliced pairs while the client was connected: $pairs" | tee "$WORK/pairs"
		[ "$client_out" = ok ] || { cat "$WORK/edge.log" "$WORK/agent.log"; return 1; }
		# one pair in the edge (client, data connection), one in the agent
		[ "$pairs" -ge 2 ] || { cat "$WORK/edge.log" "$WORK/agent.log"; return 1; }
	}
	check "${CAPS_CHECKS[2]}" spliced_with_caps
	[ -s "$WORK/pairs" ] && diag "$(cat "$WORK/pairs")"

	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()

	detached_with_caps() {
		with_caps "$A_CAPS" "$L_SBIN/rsplice" --pin-dir "$PIN" detach && [ ! -e "$PIN" ]
	}
	check "${CAPS_CHECKS[3]}" detached_with_caps
fi

# ---------------------------------------------------------------- bash completion

check "completion/rsplice.bash loads and registers rsplice, rsplice-edge, rsplice-agent" \
	bash -c 'source completion/rsplice.bash && complete -p rsplice && complete -p rsplice-edge && complete -p rsplice-agent'

installed_completion_loads() {
	local c
	for c in rsplice rsplice-edge rsplice-agent; do
		# what bash-completion does on demand: source completions/<command>
		bash -c "source '$L_COMP/$c' && complete -p $c" || return 1
	done
}
check "installed completion loads under each command's name (symlinks)" installed_completion_loads

# complete_words PATH WORD...: the completions bash would offer for the words,
# the last one being completed (bash splits "--opt=x" into "--opt" "=" "x").
complete_words() {
	local path=$1
	shift
	PATH="$path" bash -c '
		source completion/rsplice.bash
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		fn=$(complete -p "${1##*/}" | sed -E "s/.*-F ([^ ]+).*/\\1/")
		"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort | xargs' x "$@"
}
expect_completion() { # WANT PATH WORD...
	local want=$1 got
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want" ] || { echo "completing '${*:2}': got '$got', want '$want'"; return 1; }
}
completions_work() {
	local p=$L_SBIN:/usr/bin:/bin rc=0
	expect_completion "attach conns detach help keygen kill route service status" "$p" rsplice "" || rc=1
	expect_completion "status" "$p" rsplice st || rc=1
	expect_completion "--max-socks" "$p" rsplice --pin-dir /x attach --m || rc=1
	expect_completion "--pin-dir --pretty" "$p" rsplice --p || rc=1
	expect_completion "--datapath" "$p" rsplice-edge --datap || rc=1
	expect_completion "--data-ports --datapath" "$p" rsplice-edge --data || rc=1
	expect_completion "auto sockmap splice" "$p" rsplice-edge --datapath "" || rc=1
	expect_completion "sockmap splice" "$p" rsplice-agent --datapath = s || rc=1
	expect_completion "--backoff-max --backoff-min" "$p" rsplice-agent --backoff-m || rc=1
	expect_completion "" "$p" rsplice-edge --route "" || rc=1
	return $rc
}
check "completion: commands, options and --datapath values" completions_work

# With the programs on PATH the daemons' options come from --help; without,
# from the script's own lists, which must match --help too.
completion_lists_match_help() {
	local prog rc=0 from_help static
	for prog in rsplice-edge rsplice-agent; do
		from_help=$("$L_SBIN/$prog" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u | xargs)
		static=$(complete_words /usr/bin:/bin "$prog" --)
		[ "$static" = "$from_help" ] || { echo "$prog: script lists '$static', --help '$from_help'"; rc=1; }
		[ "$(complete_words "$L_SBIN:/usr/bin:/bin" "$prog" --)" = "$from_help" ] || rc=1
	done
	return $rc
}
check "completion: every long option of both daemons, with and without them on PATH" \
	completion_lists_match_help

# ---------------------------------------------------------------- uninstall

uninstall_clean() { # DESTDIR [make args...]
	local d=$1 left
	shift
	make -s --no-print-directory uninstall DESTDIR="$d" "$@" || return 1
	left=$(cd "$d" && find . \( -type f -o -type l \))
	[ -z "$left" ] || { echo "left behind: $left"; return 1; }
}
check "make uninstall removes every installed file" uninstall_clean "$LOCAL"
check "make uninstall PREFIX=/usr removes every installed file" uninstall_clean "$DIST" PREFIX=/usr

echo "# $((N - FAILED))/$N passed"
[ "$FAILED" -eq 0 ]
