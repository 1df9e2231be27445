#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying roarkar's cluster path and for CI's tests:
#
#   bash slurm/local-cluster.sh start    # install, configure, start, wait until the node is idle
#   bash slurm/local-cluster.sh status   # is it up? (exit 0 when the node takes jobs)
#   bash slurm/local-cluster.sh stop     # stop the daemons (state and config stay)
#
# start installs Debian's slurm-wlm and munge with apt-get when sbatch or munged is missing, writes
# /etc/slurm/slurm.conf from this machine's hostname, core count and memory (one node, one default
# partition "local"), starts munged (as the munge user), slurmctld and slurmd without systemd, and
# waits until the node is idle. It is idempotent: a running cluster with the same config is left
# alone; a changed config restarts the daemons. It needs root. It never overwrites a slurm.conf it
# did not write (a real cluster's).
#
# Exit status: 0 done; 3 this machine cannot run it (not root, no apt-get, a foreign slurm.conf),
# with the reason on stderr (the SLURM tests then skip with that reason); 1 anything else.
#
# State (spool, logs, pid files): $ROARKAR_SLURM_STATE, default /var/lib/roarkar-slurm.
# Daemon logs: $ROARKAR_SLURM_STATE/log/{slurmctld,slurmd}.log.
set -euo pipefail

STATE=${ROARKAR_SLURM_STATE:-/var/lib/roarkar-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by roarkar slurm/local-cluster.sh"
PARTITION=local
WAIT_S=${ROARKAR_SLURM_WAIT_S:-90}

say() { echo "local-cluster: $*" >&2; }
unsupported() { say "cannot run a SLURM cluster here: $*"; exit 3; }
die() { say "$*"; exit 1; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() {
    # this node's state as sinfo reports it (idle, mixed, allocated, down*, drained, ...), or empty
    sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -n 1
}

check_root() {
    [[ $(id -u) -eq 0 ]] || unsupported "not root (slurmd, munged and apt-get need root)"
}

install_packages() {
    if command -v sbatch >/dev/null && command -v slurmctld >/dev/null \
        && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null \
        || unsupported "slurm-wlm and munge are not installed, and there is no apt-get"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    local log=$STATE/log/apt.log
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1 || true   # a stale package index: refresh it, try again
        apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$log" 2>&1 \
            || die "apt-get install slurm-wlm munge failed; see $log"
    fi
}

render_config() {
    # the slurm.conf for this machine: its short hostname, core count and memory
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc --all)
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)   # MB, as slurmd measures it
    cat <<EOF
$MARKER
# A one-node test cluster: $host, $cpus CPUs, $mem MB. Rewritten by every start; do not edit.
ClusterName=roarkar
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job waits cred_expire + 1 s before it may start again (default 120 s): short here
AuthInfo=cred_expire=20
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# schedule every few seconds (defaults 60 s and 30 s): a requeued job starts soon after it may
SchedulerParameters=sched_interval=5,bf_interval=5
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
# seconds between SIGTERM and SIGKILL when a job step ends (submitit ignores SIGTERM): short here
KillWait=5
# finished jobs stay visible to scontrol/squeue this long (no accounting database: sacct fails)
MinJobAge=600
MaxArraySize=10001
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

check_not_foreign() {
    if [[ -e $CONF ]] && ! grep -qxF "$MARKER" "$CONF"; then
        unsupported "$CONF was not written by this script (a real cluster's?); leaving it alone"
    fi
}

write_config() {
    # prints "changed" when the config file was (re)written
    local tmp
    mkdir -p /etc/slurm
    tmp=$(mktemp)
    render_config >"$tmp"
    if [[ -e $CONF ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return
    fi
    install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    echo changed
}

node_up() {
    case $(node_state) in
        idle | mixed | allocated | completing) return 0 ;;
    esac
    return 1
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        install -d -o munge -g munge -m 0700 /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

stop_slurm() {
    local name
    for name in slurmctld slurmd; do
        if pid_alive "$STATE/$name.pid"; then
            kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 100); do
        pid_alive "$STATE/slurmctld.pid" || pid_alive "$STATE/slurmd.pid" || return 0
        sleep 0.1
    done
    die "slurmctld/slurmd did not stop within 10 s (pids in $STATE/*.pid)"
}

start() {
    check_not_foreign
    if [[ -e $CONF ]] && [[ $(cat "$CONF") == "$(render_config)" ]] && node_up; then
        say "already up: node $(hostname -s) is $(node_state); partition $PARTITION"
        return 0
    fi
    check_root
    # slurmctld, slurmd and DDP's rendezvous (MASTER_ADDR is the node's name) all resolve it
    getent hosts "$(hostname -s)" >/dev/null \
        || die "this machine's name $(hostname -s) does not resolve; add it to /etc/hosts"
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$STATE/log"
    install_packages
    local changed
    changed=$(write_config)
    start_munge
    if [[ -n $changed ]]; then
        say "wrote $CONF ($(hostname -s), $(nproc --all) CPUs)"
        stop_slurm
    fi
    pid_alive "$STATE/slurmctld.pid" || slurmctld
    pid_alive "$STATE/slurmd.pid" || slurmd
    local state="" deadline=$((SECONDS + WAIT_S))
    while ((SECONDS < deadline)); do
        state=$(node_state)
        case $state in
            idle | mixed | allocated | completing)
                say "up: node $(hostname -s) is $state; partition $PARTITION; logs in $STATE/log"
                return 0
                ;;
            down* | drain* | fail*)
                # e.g. "unexpectedly rebooted" after a restart: this is our own node, resume it
                scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
                ;;
        esac
        sleep 0.5
    done
    die "node $(hostname -s) not idle after ${WAIT_S} s (state '${state:-none}'); see $STATE/log"
}

stop() {
    check_root
    stop_slurm
    if [[ -s /run/munge/munged.pid ]] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        kill "$(cat /run/munge/munged.pid)"
    fi
    say "stopped"
}

status() {
    if node_up; then
        say "up: node $(hostname -s) is $(node_state); partition $PARTITION"
        return 0
    fi
    say "not up (node state '$(node_state)')"
    return 1
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
