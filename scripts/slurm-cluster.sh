#!/usr/bin/env bash
# slurm-cluster.sh — a one-node Slurm cluster on localhost for gaffer's tests.
#
# It installs Debian's Slurm and munge packages when they are missing, writes
# /etc/slurm/slurm.conf, and starts the daemons by hand (no systemd needed).
# Every command is idempotent: a second `up` only checks that all is running.
#
#   scripts/slurm-cluster.sh up       install if needed, configure, start
#   scripts/slurm-cluster.sh down     cancel all jobs, stop the daemons this script runs
#   scripts/slurm-cluster.sh status   show what runs; exit 0 only if the cluster takes jobs
#   scripts/slurm-cluster.sh clean    down, then remove state, logs and the generated config
#   scripts/slurm-cluster.sh logs     print the tail of every daemon log
#
# Must run as root (it installs packages and starts daemons). Works with no
# stdin and CI=true. Settings, all optional, through the environment:
#
#   GAFFER_SLURM_ACCOUNTING=slurmdbd|jobcomp  default slurmdbd (see below)
#   GAFFER_SLURM_CPUS=N       CPUs the node offers (default: max(nproc, 32));
#                             more than the machine has is allowed on purpose,
#                             so tests can run many small jobs at once
#   GAFFER_SLURM_MEM_MB=N     memory the node offers in MiB (default: the machine's)
#   GAFFER_SLURM_TMP_MB=N     scratch disk (--tmp) the node offers (default: size of /tmp's file system)
#   GAFFER_SLURM_MIN_JOB_AGE=S  seconds a finished job stays in squeue/scontrol (default 3600)
#   GAFFER_SLURM_NO_INSTALL=1 never run apt-get
#
# Accounting. gaffer's adapter reads finished jobs from squeue/scontrol while
# the controller still holds them (MinJobAge) and falls back to sacct. We run
# slurmdbd with a private MariaDB by default, because that is what real
# clusters run: plain `sacct` works for every user, keeps exit codes and
# signals of timed-out and cancelled jobs, and lasts beyond MinJobAge. The
# lighter jobcomp mode (GAFFER_SLURM_ACCOUNTING=jobcomp) needs `sacct -c`,
# loses signals (a timed-out job reads 0:0) and only root or the log's owner
# can read it.
set -euo pipefail

ACCOUNTING=${GAFFER_SLURM_ACCOUNTING:-slurmdbd}
STATE=/var/lib/gaffer-slurm          # controller state, spool, database, logs
RUN=/run/gaffer-slurm                # pid files, sockets
LOGS=$STATE/log
CONF=/etc/slurm/slurm.conf           # the clients (sbatch, squeue...) read this path
DBDCONF=/etc/slurm/slurmdbd.conf
DBSOCK=$RUN/db/mysqld.sock
DBPORT=3307                          # not 3306, so a system MariaDB is left alone
OWNED=$RUN/owned                     # daemons this script started (munged may be shared)

say() { printf 'slurm-cluster: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }

# alive PIDFILE: the pid in the file runs and is not a zombie. PID 1 on some
# VMs and containers is no real init and reaps late, so a stopped daemon can
# linger as a zombie that `kill -0` still finds.
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

# stop PIDFILE NAME: SIGTERM, then SIGKILL after 20 s.
stop() {
	local pid i
	alive "$1" || { rm -f "$1"; return 0; }
	pid=$(cat "$1")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$1" || break
		sleep 0.2
	done
	if alive "$1"; then
		say "$2 ignored SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
	say "stopped $2"
}

install_packages() {
	local want=(munge slurmctld slurmd slurm-client) missing=() p
	if [ "$ACCOUNTING" = slurmdbd ]; then want+=(slurmdbd mariadb-server); fi
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "${GAFFER_SLURM_NO_INSTALL:-}" = 1 ] && fail "packages missing: ${missing[*]}"
	say "installing ${missing[*]}"
	# Without an init system, package scripts must not try to start daemons:
	# policy-rc.d exiting 101 tells invoke-rc.d "not now".
	local policy=/usr/sbin/policy-rc.d added=0
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\nexit 101\n' >$policy
		chmod 755 $policy
		added=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null
	if [ $added = 1 ]; then rm -f $policy; fi
}

write_config() {
	local cpus mem tmp real_cpus extra=""
	real_cpus=$(nproc)
	cpus=${GAFFER_SLURM_CPUS:-$((real_cpus > 32 ? real_cpus : 32))}
	mem=${GAFFER_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024) - 256}' /proc/meminfo)}
	tmp=${GAFFER_SLURM_TMP_MB:-$(df -Pm /tmp | awk 'NR == 2 {print $2}')}
	# A node that claims more than slurmd detects is drained unless told to
	# trust the configuration.
	if [ "$cpus" -gt "$real_cpus" ]; then extra="SlurmdParameters=config_overrides"; fi
	local acct="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log"
	if [ "$ACCOUNTING" = slurmdbd ]; then
		acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
	fi
	mkdir -p /etc/slurm
	cat >"$CONF.tmp" <<CONF
# Written by gaffer's scripts/slurm-cluster.sh; changes are overwritten by 'up'.
ClusterName=gaffer
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
TmpFS=/tmp
MpiDefault=none
# No cgroups: works in VMs and containers, at the price of memory limits not
# being enforced and of daemonized job processes escaping scancel.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SchedulerType=sched/backfill
# Start jobs as soon as they arrive instead of on the default 3 s batch tick.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Without a default, a job gets the whole node's memory and runs alone.
DefMemPerCPU=256
# Refuse impossible requests at sbatch time instead of leaving them pending.
EnforcePartLimits=ALL
# Keep finished jobs (with exit codes) in squeue/scontrol for this long.
MinJobAge=${GAFFER_SLURM_MIN_JOB_AGE:-3600}
MaxJobCount=100000
# SIGTERM to SIGKILL delay for cancelled and timed-out jobs (default 30 s).
KillWait=5
InactiveLimit=0
$acct
$extra
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem TmpDisk=$tmp State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
	CHANGED=1
	if cmp -s "$CONF.tmp" "$CONF"; then CHANGED=0; fi
	mv "$CONF.tmp" "$CONF"
	chmod 644 "$CONF"
	if [ "$ACCOUNTING" = slurmdbd ]; then
		umask 077
		cat >"$DBDCONF" <<CONF
# Written by gaffer's scripts/slurm-cluster.sh
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=gaffer
StorageLoc=gaffer_acct
CONF
		umask 022
	fi
}

own() { grep -qsx "$1" "$OWNED" || echo "$1" >>"$OWNED"; }

start_munge() {
	if [ ! -s /etc/munge/munge.key ]; then
		install -d -o munge -g munge -m 700 /etc/munge
		runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
	fi
	alive /run/munge/munged.pid && return 0
	install -d -o munge -g munge -m 755 /run/munge
	runuser -u munge -- /usr/sbin/munged
	until_ok 20 munged sh -c 'munge -n | unmunge'
	own munged
	say "munged started"
}

db() { mariadb --no-defaults -S "$DBSOCK" -u root "$@"; }

start_database() {
	alive "$RUN/db/mysqld.pid" && return 0
	install -d -o mysql -g mysql "$STATE/db" "$RUN/db"
	if [ ! -d "$STATE/db/mysql" ]; then
		mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/db" \
			--skip-test-db >"$LOGS/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed; see $LOGS/mariadb-install.log"
	fi
	# mariadbd stays in the foreground: detach it from our stdio entirely.
	setsid -f /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$STATE/db" \
		--socket="$DBSOCK" --pid-file="$RUN/db/mysqld.pid" --port=$DBPORT \
		--bind-address=127.0.0.1 --innodb-buffer-pool-size=128M \
		--innodb-lock-wait-timeout=900 --log-error="$RUN/db/mariadb.err" \
		</dev/null >/dev/null 2>&1
	until_ok 60 mariadbd db -e 'select 1'
	db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'gaffer';
	       CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'gaffer';
	       GRANT ALL ON gaffer_acct.* TO 'slurm'@'127.0.0.1';
	       GRANT ALL ON gaffer_acct.* TO 'slurm'@'localhost';"
	own mariadbd
	say "mariadbd started"
}

start_slurmdbd() {
	alive "$RUN/slurmdbd.pid" && return 0
	/usr/sbin/slurmdbd
	until_ok 60 slurmdbd bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
	own slurmdbd
	say "slurmdbd started"
}

start_slurmctld() {
	if alive "$RUN/slurmctld.pid"; then
		if [ "$CHANGED" = 1 ]; then
			say "slurm.conf changed: scontrol reconfigure (accounting mode changes need 'down' first)"
			scontrol reconfigure
		fi
		return 0
	fi
	/usr/sbin/slurmctld
	until_ok 60 slurmctld sh -c 'scontrol ping | grep -q UP'
	own slurmctld
	say "slurmctld started"
}

node_ready() { sinfo -h -n localhost -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start_slurmd() {
	if ! alive "$RUN/slurmd.pid"; then
		# -N: the node is "localhost" whatever the machine's hostname.
		/usr/sbin/slurmd -N localhost
		own slurmd
		say "slurmd started"
	fi
	# A node left drained by an earlier run (e.g. a changed CPU count) must be resumed.
	if sinfo -h -n localhost -o %T | grep -Eq 'drain|down'; then
		scontrol update NodeName=localhost State=RESUME || true
	fi
	until_ok 60 "node localhost" node_ready
}

cmd_up() {
	[ "$(id -u)" = 0 ] || fail "run as root"
	case $ACCOUNTING in slurmdbd | jobcomp) ;; *) fail "GAFFER_SLURM_ACCOUNTING must be slurmdbd or jobcomp" ;; esac
	getent hosts localhost >/dev/null || fail "localhost does not resolve"
	install_packages
	mkdir -p "$STATE/ctld" "$STATE/slurmd" "$LOGS" "$RUN"
	write_config
	start_munge
	if [ "$ACCOUNTING" = slurmdbd ]; then
		start_database
		start_slurmdbd
	fi
	start_slurmctld
	start_slurmd
	say "up: $(sinfo -h -o '%P %a %D %T cpus=%c mem=%mMiB')"
}

cmd_down() {
	if alive "$RUN/slurmctld.pid"; then
		local ids
		ids=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
		if [ -n "${ids// /}" ]; then
			say "cancelling jobs $ids"
			# shellcheck disable=SC2086
			scancel $ids 2>/dev/null || true
		fi
	fi
	stop "$RUN/slurmd.pid" slurmd
	stop "$RUN/slurmctld.pid" slurmctld
	stop "$RUN/slurmdbd.pid" slurmdbd
	stop "$RUN/db/mysqld.pid" mariadbd
	# munged may serve other software: stop it only if we started it.
	if grep -qsx munged "$OWNED"; then stop /run/munge/munged.pid munged; fi
	rm -f "$OWNED"
}

cmd_status() {
	local n ok=0
	for n in slurmctld slurmd slurmdbd; do
		if alive "$RUN/$n.pid"; then echo "$n: running"; else echo "$n: stopped"; fi
	done
	if alive "$RUN/db/mysqld.pid"; then echo "mariadbd: running"; else echo "mariadbd: stopped"; fi
	if alive /run/munge/munged.pid; then echo "munged: running"; else echo "munged: stopped"; fi
	if alive "$RUN/slurmctld.pid" && node_ready; then
		sinfo
		ok=1
	fi
	[ $ok = 1 ]
}

cmd_clean() {
	cmd_down
	rm -rf "$STATE" "$RUN"
	rm -f "$CONF" "$DBDCONF"
	say "state, logs and config removed; packages and the munge key kept"
}

cmd_logs() {
	local f
	for f in "$LOGS"/*.log "$RUN/db/mariadb.err"; do
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
