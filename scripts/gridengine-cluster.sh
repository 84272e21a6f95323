#!/usr/bin/env bash
# gridengine-cluster.sh — a one-node Son of Grid Engine cluster on this
# machine, for gaffer's Grid Engine tests.
#
# It installs Debian's gridengine-master, gridengine-exec and
# gridengine-client when they are missing, configures one cell with one
# execution host (this machine), and starts sge_qmaster and sge_execd by
# hand: no systemd or init scripts are needed. Every command is idempotent:
# a second `up` checks what runs and re-applies the configuration.
#
#   scripts/gridengine-cluster.sh up      install if needed, configure, start, wait for qstat
#   scripts/gridengine-cluster.sh down    delete all jobs, stop sge_execd and sge_qmaster
#   scripts/gridengine-cluster.sh status  show what runs; exit 0 only if the queue takes jobs
#   scripts/gridengine-cluster.sh clean   down, then wipe the spool, accounting and host files
#   scripts/gridengine-cluster.sh logs    the tail of the daemons' message files
#
# Must run as root. Works with no stdin and CI=true. Settings, all optional:
#
#   GAFFER_GE_SLOTS=N          slots of queue all.q (default max(nproc, 32)): more
#                              than the machine's cores, so that many tiny test
#                              jobs run at once
#   GAFFER_GE_MEM_MB=N         memory the host offers as the consumable mem_free
#                              (default: the machine's, minus 256 MiB)
#   GAFFER_GE_SCHED_INTERVAL=T scheduler interval (default 0:0:1; Debian's is 0:0:15)
#   GAFFER_GE_NO_INSTALL=1     never run apt-get
#
# What it configures, and why:
#
#   - host_aliases: this machine's name resolves to 127.0.0.1, which resolves
#     back to "localhost"; Grid Engine's communication library refuses a
#     client whose two names differ unless host_aliases makes them one host.
#   - min_uid and min_gid 0: Debian's defaults (1000) refuse root's jobs and
#     put the queue in error state.
#   - accounting flushed every second (reporting_params flush_time), so that
#     qacct sees a job about a second after it ends, not 15 s.
#   - scheduler: every second, and one second after a submission or a job's
#     end; scheduling information kept for `qstat -j`.
#   - queue all.q: load_thresholds NONE (a busy 2-core machine would otherwise
#     put it in alarm state and stop dispatching), pe_list smp.
#   - parallel environment smp: all slots of a job on one host; gaffer asks
#     for cores with `-pe smp N`.
#   - mem_free made consumable, with the host's memory as its capacity: gaffer
#     asks for memory with `-l mem_free=...`, and `qsub -w e` refuses what no
#     host can give.
#   - execd_params ENABLE_ADDGRP_KILL=TRUE: qdel and h_rt kill every process
#     of a job, also those that left its process group.
set -euo pipefail

[ -r /etc/default/gridengine ] && . /etc/default/gridengine
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
LIBEXEC=/usr/lib/gridengine # the real binaries and the host name tools
RUN=/run/gaffer-gridengine
ADMIN=sgeadmin
QUEUE=all.q
# The binaries read these (not SGE_MASTER_PIDFILE, which Debian's init
# scripts set); with them the pid files are where `status` looks.
export SGE_QMASTER_PIDFILE=$RUN/qmaster.pid
export SGE_EXECD_PIDFILE=$RUN/execd.pid
HOST=$(hostname)
SLOTS=${GAFFER_GE_SLOTS:-$(($(nproc) > 32 ? $(nproc) : 32))}
SCHED_INTERVAL=${GAFFER_GE_SCHED_INTERVAL:-0:0:1}
MEM_MB=${GAFFER_GE_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024) - 256}' /proc/meminfo)}

say() { printf 'gridengine-cluster: %s\n' "$*" >&2; }
fail() {
	say "error: $*"
	exit 1
}

# alive PIDFILE: the pid in the file runs and is not a zombie (a PID 1
# that is no real init may reap a stopped daemon late).
alive() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	kill -0 "$pid" 2>/dev/null || return 1
	! grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status"
}

# until_ok SECONDS WHAT CMD...: retry CMD every 0.2 s until it succeeds.
until_ok() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	fail "$what not ready after ${secs}s; see '$0 logs'"
}

# stop_daemon PIDFILE NAME SECONDS: wait for a daemon already asked to stop,
# then SIGTERM it, then SIGKILL it.
stop_daemon() {
	local pid i
	alive "$1" || {
		rm -f "$1"
		return 0
	}
	pid=$(cat "$1")
	for ((i = 0; i < $3 * 5; i++)); do
		alive "$1" || break
		sleep 0.2
	done
	if alive "$1"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			alive "$1" || break
			sleep 0.2
		done
	fi
	if alive "$1"; then
		say "$2 ignored SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
	say "stopped $2"
}

qmaster_up() { alive "$SGE_QMASTER_PIDFILE"; }
execd_up() { alive "$SGE_EXECD_PIDFILE"; }

install_packages() {
	local want=(gridengine-common gridengine-master gridengine-exec gridengine-client) missing=() p
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "${GAFFER_GE_NO_INSTALL:-}" = 1 ] && fail "packages missing: ${missing[*]}"
	say "installing ${missing[*]}"
	# The packages ask three debconf questions; answer them: configure the
	# cell automatically, call it "default", and this host is the master.
	for p in "${want[@]}"; do
		printf '%s shared/gridengineconfig boolean true\n' "$p"
		printf '%s shared/gridenginecell string %s\n' "$p" "$SGE_CELL"
		printf '%s shared/gridenginemaster string %s\n' "$p" "$HOST"
	done | debconf-set-selections
	# Without an init system the maintainer scripts must not start the
	# daemons (they would, before host_aliases exists): policy-rc.d exiting
	# 101 tells invoke-rc.d "not now".
	local policy=/usr/sbin/policy-rc.d added=0
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\nexit 101\n' >$policy
		chmod 755 $policy
		added=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	mkdir -p "$RUN"
	quiet apt-get update -q </dev/null
	quiet apt-get install -y -q --no-install-recommends "${want[@]}" </dev/null
	if [ $added = 1 ]; then rm -f $policy; fi
}

# unfold joins the lines that qconf -sconf continues after a backslash.
unfold() { sed -e ':a' -e '/\\$/{N;s/[[:space:]]*\\\n[[:space:]]*/ /;ba' -e '}'; }

# global_conf: the edits gaffer needs on the (unfolded) global
# configuration, as a filter. It also drops any line whose name holds "=":
# the leftover of an edit that once missed a continuation line.
global_conf() {
	sed -e '/^[^[:space:]]*=/d' \
		-e 's/^min_uid .*/min_uid                      0/' \
		-e 's/^min_gid .*/min_gid                      0/' \
		-e 's/^administrator_mail .*/administrator_mail           none/' \
		-e 's/^reporting_params .*/reporting_params             accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00/' \
		-e 's/^execd_params .*/execd_params                 ENABLE_ADDGRP_KILL=TRUE/'
}

# quiet CMD...: run a command whose chatter ("added ...", "modified ...")
# goes to stderr; show it only if the command fails.
quiet() {
	local out
	if ! out=$("$@" 2>&1); then
		say "$* failed: $out"
		return 1
	fi
}

# init_cell creates the cell when its spool is missing. Debian's postinst
# does this only on a first install; after `clean`, or after a remove and
# reinstall without purge, it is up to us.
init_cell() {
	id "$ADMIN" >/dev/null 2>&1 || fail "user $ADMIN is missing (gridengine-common creates it)"
	install -d -o "$ADMIN" -g "$ADMIN" "$SGE_ROOT/$SGE_CELL" "$COMMON" "$SPOOL" \
		"$SPOOL/qmaster" "$SPOOL/qmaster/job_scripts" "$SPOOL/spooldb" "$SPOOL/execd"
	install -d -o "$ADMIN" -g "$ADMIN" "$RUN"
	if [ ! -s "$COMMON/bootstrap" ]; then
		install -o "$ADMIN" -g "$ADMIN" -m 644 /usr/share/gridengine/default-bootstrap "$COMMON/bootstrap"
	fi
	if [ ! -e "$SPOOL/spooldb/sge" ]; then
		say "initialising cell $SGE_CELL"
		runuser -u "$ADMIN" -- /usr/share/gridengine/scripts/init_cluster \
			"$SGE_ROOT" "$SGE_CELL" "$SPOOL/spooldb" "$ADMIN" >"$RUN/init_cluster.log" 2>&1 ||
			fail "init_cluster failed; see $RUN/init_cluster.log"
		rm -f "$SPOOL/spooldb/.gaffer-global"
	fi
	# The accounting flush interval is read when the qmaster starts; one
	# changed later takes effect only after the flush already scheduled
	# (15 s). So the first start must find our global configuration in the
	# spool already.
	if [ ! -e "$SPOOL/spooldb/.gaffer-global" ] && ! qmaster_up; then
		local f
		f=$(mktemp)
		global_conf </usr/share/gridengine/default-configuration >"$f"
		chmod 644 "$f"
		runuser -u "$ADMIN" -- "$LIBEXEC/spooldefaults" configuration "$f" >/dev/null
		rm -f "$f"
		touch "$SPOOL/spooldb/.gaffer-global"
	fi
}

# write_hosts writes host_aliases and act_qmaster. The communication
# library wants the name a client calls itself to be the name its address
# resolves back to; here the host name resolves to 127.0.0.1, whose name is
# "localhost". The first word of the line is the name Grid Engine uses.
write_hosts() {
	getent hosts "$HOST" >/dev/null || fail "host name $HOST does not resolve; add '127.0.1.1 $HOST' to /etc/hosts"
	local names=("$HOST" localhost) n ip line
	n=$(hostname -f 2>/dev/null || true)
	[ -n "$n" ] && names+=("$n")
	for ip in $(getent ahostsv4 "$HOST" | awk '{print $1}' | sort -u); do
		n=$("$LIBEXEC/gethostbyaddr" -name "$ip" 2>/dev/null || true)
		[ -n "$n" ] && names+=("$n")
	done
	line=$(printf '%s\n' "${names[@]}" | awk '!seen[$0]++' | paste -sd' ')
	HOSTS_CHANGED=0
	if [ "$(cat "$COMMON/host_aliases" 2>/dev/null)" != "$line" ]; then
		echo "$line" >"$COMMON/host_aliases"
		chown "$ADMIN:$ADMIN" "$COMMON/host_aliases"
		HOSTS_CHANGED=1
	fi
	if [ "$(cat "$COMMON/act_qmaster" 2>/dev/null)" != "$HOST" ]; then
		echo "$HOST" >"$COMMON/act_qmaster"
		chown "$ADMIN:$ADMIN" "$COMMON/act_qmaster"
	fi
}

start_qmaster() {
	if qmaster_up && [ "$HOSTS_CHANGED" = 1 ]; then
		say "host_aliases changed: restarting sge_qmaster"
		stop_qmaster
	fi
	if ! qmaster_up; then
		/usr/sbin/sge_qmaster </dev/null >"$RUN/qmaster.out" 2>&1 ||
			fail "sge_qmaster did not start: $(cat "$RUN/qmaster.out")"
		say "sge_qmaster started"
	fi
	until_ok 60 sge_qmaster qconf -sh
}

stop_qmaster() {
	qmaster_up || return 0
	# A controlled shutdown takes 5 to 10 s.
	qconf -km >/dev/null 2>&1 || true
	stop_daemon "$SGE_QMASTER_PIDFILE" sge_qmaster 40
}

# apply_file SHOW NAME ADD MODIFY FILE: create an object from a file
# (qconf -A...), or modify it (qconf -M...) if it differs from the file.
apply_file() {
	local show=$1 name=$2 add=$3 mod=$4 file=$5 cur
	if cur=$(qconf "$show" "$name" 2>/dev/null); then
		if [ "$(unfold <<<"$cur" | tr -s ' ')" != "$(tr -s ' ' <"$file")" ]; then
			quiet qconf "$mod" "$file"
		fi
	else
		quiet qconf "$add" "$file"
	fi
}

configure() {
	local d
	d=$(mktemp -d)
	GLOBAL_CHANGED=0
	qconf -sconf global | unfold >"$d/global.old"
	global_conf <"$d/global.old" >"$d/global"
	if ! cmp -s "$d/global.old" "$d/global"; then
		# qconf -mconf runs $EDITOR with the file's name as its only
		# argument; this editor copies our version over it.
		printf '#!/bin/sh\ncat %q >"$1"\n' "$d/global" >"$d/editor"
		chmod 755 "$d/editor"
		EDITOR="$d/editor" quiet qconf -mconf global
		GLOBAL_CHANGED=1
	fi

	qconf -ss 2>/dev/null | grep -qx "$HOST" || quiet qconf -as "$HOST"
	qconf -sh 2>/dev/null | grep -qx "$HOST" || quiet qconf -ah "$HOST"

	# mem_free becomes a consumable whose capacity is set per host.
	qconf -sc >"$d/complex"
	awk '$1 == "mem_free" { $6 = "YES"; $7 = "0" } { print }' "$d/complex" >"$d/complex.new"
	if ! cmp -s <(tr -s ' ' <"$d/complex") <(tr -s ' ' <"$d/complex.new"); then
		quiet qconf -Mc "$d/complex.new"
	fi

	cat >"$d/exechost" <<EOF
hostname              $HOST
load_scaling          NONE
complex_values        mem_free=${MEM_MB}M
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
	# The host's listing adds load values: compare what we set.
	if ! qconf -se "$HOST" >"$d/exechost.cur" 2>/dev/null; then
		quiet qconf -Ae "$d/exechost"
	elif ! grep -qx "complex_values *mem_free=${MEM_MB}M" "$d/exechost.cur"; then
		quiet qconf -Me "$d/exechost"
	fi

	cat >"$d/smp" <<'EOF'
pe_name            smp
slots              99999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
	apply_file -sp smp -Ap -Mp "$d/smp"

	# The queue: the template's fields, with ours.
	cat >"$d/queue" <<EOF
qname                 $QUEUE
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
	apply_file -sq "$QUEUE" -Aq -Mq "$d/queue"

	qconf -ssconf >"$d/sched.old"
	sed -e "s/^schedule_interval .*/schedule_interval                 $SCHED_INTERVAL/" \
		-e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
		-e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
		-e 's/^schedd_job_info .*/schedd_job_info                   true/' \
		"$d/sched.old" >"$d/sched"
	if ! cmp -s "$d/sched.old" "$d/sched"; then
		quiet qconf -Msconf "$d/sched"
	fi
	rm -rf "$d"
}

start_execd() {
	if execd_up && [ "$GLOBAL_CHANGED" = 1 ]; then
		# execd reads min_uid and execd_params when it starts.
		say "global configuration changed: restarting sge_execd"
		stop_execd
	fi
	if ! execd_up; then
		/usr/sbin/sge_execd </dev/null >"$RUN/execd.out" 2>&1 ||
			fail "sge_execd did not start: $(cat "$RUN/execd.out")"
		until_ok 30 "sge_execd pid file" test -s "$SGE_EXECD_PIDFILE"
		say "sge_execd started"
	fi
}

stop_execd() {
	execd_up || return 0
	# -kej: the execd and its jobs; plain -ke leaves jobs running.
	qconf -kej "$HOST" >/dev/null 2>&1 || true
	stop_daemon "$SGE_EXECD_PIDFILE" sge_execd 20
}

# queue_ready: the queue instance exists and shows no state letter (u: no
# execd, a: alarm, E: error, d: disabled...).
queue_ready() {
	qstat -f -q "$QUEUE" 2>/dev/null | awk -v q="$QUEUE@$HOST" '
		$1 == q { found = 1; if (NF >= 6) bad = 1 }
		END { exit !(found && !bad) }'
}

cmd_up() {
	[ "$(id -u)" = 0 ] || fail "run as root"
	install_packages
	init_cell
	write_hosts
	start_qmaster
	configure
	start_execd
	# Clear an error or disabled state left by an earlier run.
	qmod -c "$QUEUE@$HOST" >/dev/null 2>&1 || true
	qmod -e "$QUEUE@$HOST" >/dev/null 2>&1 || true
	until_ok 60 "queue $QUEUE@$HOST" queue_ready
	until_ok 30 qstat qstat
	say "up: $(qstat -f -q "$QUEUE" | awk -v q="$QUEUE@$HOST" '$1 == q {print $1, "slots(resv/used/tot)=" $3}'), mem_free=${MEM_MB}M, scheduler every $SCHED_INTERVAL"
}

cmd_down() {
	if qmaster_up && qstat >/dev/null 2>&1; then
		if [ -n "$(qstat -u '*' 2>/dev/null)" ]; then
			say "deleting all jobs"
			qdel -f -u '*' >/dev/null 2>&1 || true
			local i
			for ((i = 0; i < 100; i++)); do
				[ -z "$(qstat -u '*' 2>/dev/null)" ] && break
				sleep 0.2
			done
		fi
	fi
	stop_execd
	stop_qmaster
}

cmd_status() {
	if qmaster_up; then echo "sge_qmaster: running"; else echo "sge_qmaster: stopped"; fi
	if execd_up; then echo "sge_execd: running"; else echo "sge_execd: stopped"; fi
	qmaster_up && execd_up && queue_ready || return 1
	qstat -f -q "$QUEUE"
}

cmd_clean() {
	cmd_down
	rm -rf "${SPOOL:?}/spooldb" "${SPOOL:?}/qmaster" "${SPOOL:?}/execd" "$RUN"
	rm -f "$COMMON/accounting" "$COMMON/host_aliases" "$COMMON/act_qmaster"
	say "spool, accounting and host files removed; packages kept (the next 'up' re-creates the cell)"
}

cmd_logs() {
	local f
	for f in "$SPOOL/qmaster/messages" "$SPOOL"/execd/*/messages; do
		[ -f "$f" ] || continue
		echo "== $f"
		tail -n 30 "$f"
	done
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
clean) cmd_clean ;;
logs) cmd_logs ;;
*)
	echo "usage: $0 up|down|status|clean|logs" >&2
	exit 2
	;;
esac
