# SPDX-License-Identifier: MIT
# bash completion for rsplice, rsplice-edge and rsplice-agent.
#
# Installed as $(PREFIX)/share/bash-completion/completions/rsplice, with
# rsplice-edge and rsplice-agent as symlinks to it, so that bash-completion
# loads it on demand for each of the three commands.  It needs nothing from
# bash-completion itself: `source` it from ~/.bashrc to use it without.
#
# The options of the daemons are read from their --help (which prints and exits
# before anything else happens), so completion follows new options; the lists
# below are used when the program cannot be run.  The subcommands of rsplice
# are read from `rsplice help`; a subcommand is never run to learn its options.

_rsplice_edge_opts_static='-c --config --control --control-dial --data-ports --http-path --token-file --service-token
 --authorized-keys --key --route --visitable --datapath
 --pin-dir --max-queued --agent-wait --connect-timeout --hello-timeout --max-pending
 --max-conns --max-agents --max-handshakes --peek-timeout --balance
 --heartbeat --drain-timeout --idle-timeout --run-dir --metrics --metrics-allow-public
 --user --group --allow-root
 -v --verbose -h --help -V --version'
_rsplice_agent_opts_static='-c --config --edge --control-listen --edge-data --data-listen --token-file --key --edge-pubkey
 --service --visit --name --transport --http-path --http-host
 --datapath --pin-dir --max-queued --connect-timeout --backoff-min --backoff-max --pool
 --heartbeat --drain-timeout --idle-timeout --run-dir --metrics --metrics-allow-public
 --user --group --allow-root
 -v --verbose -h --help -V --version'
_rsplice_cmds_static='attach detach status conns kill route service keygen help'

# _rsplice_help_opts PROG: the options that "PROG --help" lists, one per word.
_rsplice_help_opts()
{
	local help
	help=$(LC_ALL=C "$1" --help 2>/dev/null) || return 1
	[[ -n $help ]] || return 1
	# short options as they open a line ("  -c, --config"), long ones anywhere
	printf '%s\n' "$help" | grep -oE '^ +-[A-Za-z]\b|--[a-z][a-z0-9-]+' |
		sed 's/^ *//' | sort -u
}

# _rsplice_words: set the caller's cur and prev; "--opt=value" counts as two words.
_rsplice_words()
{
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# bash splits "--opt=val" into "--opt" "=" "val" (COMP_WORDBREAKS)
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi
}

_rsplice_files() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$1"); }
_rsplice_dirs() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$1"); }
_rsplice_words_of() { mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2"); }

# rsplice-edge and rsplice-agent: one function, options from --help.
_rsplice_daemon()
{
	local cur prev prog=${COMP_WORDS[0]} opts
	COMPREPLY=()
	_rsplice_words

	case $prev in
	-c | --config | --token-file | --key | --authorized-keys | --edge-pubkey)
		_rsplice_files "$cur"
		return 0
		;;
	--pin-dir | --run-dir)
		_rsplice_dirs "$cur"
		return 0
		;;
	--datapath)
		_rsplice_words_of 'auto sockmap splice' "$cur"
		return 0
		;;
	--max-queued)
		_rsplice_words_of '0 1M 2M 4M 8M 16M' "$cur"
		return 0
		;;
	--transport)
		_rsplice_words_of 'raw http' "$cur"
		return 0
		;;
	--balance)
		_rsplice_words_of 'least-conns rr' "$cur"
		return 0
		;;
	--user)
		COMPREPLY=($(compgen -u -- "$cur"))
		return 0
		;;
	--group)
		COMPREPLY=($(compgen -g -- "$cur"))
		return 0
		;;
	--control | --control-dial | --control-listen | --edge-data | --data-listen | --data-ports | \
		--route | --edge | --service | --service-token | --name | --agent-wait | \
		--http-path | --http-host | \
		--connect-timeout | --hello-timeout | --max-pending | --max-conns | --max-agents | \
		--max-handshakes | --heartbeat | --drain-timeout | --peek-timeout | \
		--backoff-min | --backoff-max | --pool | --idle-timeout | --metrics | \
		--visit | --visitable)
		return 0 # a value of the user's own
		;;
	esac

	if [[ $cur == -* ]]; then
		opts=$(_rsplice_help_opts "$prog")
		if [[ -z $opts ]]; then
			case ${prog##*/} in
			rsplice-agent*) opts=$_rsplice_agent_opts_static ;;
			*) opts=$_rsplice_edge_opts_static ;;
			esac
		fi
		_rsplice_words_of "$opts" "$cur"
	fi
	return 0
}

# rsplice [OPTIONS] COMMAND [COMMAND OPTIONS]
_rsplice()
{
	local cur prev prog=${COMP_WORDS[0]} cmd='' i w cmds usage
	local global='-j --json -p --pretty --pin-dir --run-dir -v --verbose -h --help -V --version'
	COMPREPLY=()
	_rsplice_words

	case $prev in
	--pin-dir | --run-dir)
		_rsplice_dirs "$cur"
		return 0
		;;
	--socket)
		_rsplice_files "$cur"
		return 0
		;;
	--max-socks | -C | --comment)
		return 0
		;;
	--group)
		COMPREPLY=($(compgen -g -- "$cur"))
		return 0
		;;
	esac

	# the first word that is neither an option nor the value of --pin-dir
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--pin-dir | --run-dir) [[ ${COMP_WORDS[i + 1]-} == = ]] && ((i++)); ((i++)) ;;
		-*) ;;
		*) cmd=$w; break ;;
		esac
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			_rsplice_words_of "$global" "$cur"
		else
			# "Usage: rsplice [ OPTIONS ] { attach | detach | status | conns | kill | ... | help }"
			usage=$(LC_ALL=C "$prog" help 2>/dev/null | sed -n 's/^Usage:.*{\(.*\)}.*/\1/p' | head -n 1)
			cmds=${usage//|/ }
			[[ -n ${cmds// /} ]] || cmds=$_rsplice_cmds_static
			_rsplice_words_of "$cmds" "$cur"
		fi
		return 0
	fi

	# -j and -p are accepted after the command too
	case $cmd in
	a | at | att | atta | attac | attach)
		_rsplice_words_of '-f --force --max-socks --group -h --help -j --json -p --pretty' "$cur" ;;
	ke | key | keyg | keyge | keygen)
		if [[ $cur == -* ]]; then
			_rsplice_words_of '-f --force -C --comment -h --help -j --json -p --pretty' "$cur"
		else
			_rsplice_files "$cur"
		fi ;;
	c | co | con | conn | conns | ki | kil | kill)
		_rsplice_words_of '--socket -h --help -j --json -p --pretty' "$cur" ;;
	r | ro | rou | rout | route | se | ser | serv | servi | servic | service)
		# the subcommand first (list, add, del), then the options
		local sub= j
		for ((j = i + 1; j < COMP_CWORD; j++)); do
			case ${COMP_WORDS[j]} in
			--socket) ((j++)) ;;
			-*) ;;
			*) sub=${COMP_WORDS[j]}; break ;;
			esac
		done
		if [[ -z $sub && $cur != -* ]]; then
			_rsplice_words_of 'list add del' "$cur"
		else
			_rsplice_words_of '--socket -h --help -j --json -p --pretty' "$cur"
		fi ;;
	*)
		_rsplice_words_of '-h --help -j --json -p --pretty' "$cur" ;;
	esac
	return 0
}

complete -F _rsplice rsplice
complete -F _rsplice_daemon rsplice-edge rsplice-agent
