#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM tests (run as root; no systemd needed).
#   scripts/local_slurm.sh install   # Debian packages: slurmctld slurmd slurm-client munge
#   scripts/local_slurm.sh start     # munged, slurmctld, slurmd; partition `debug` with 2 fake GPUs
#   scripts/local_slurm.sh stop      # stop the daemons it started, remove the slurm.conf it wrote
#   scripts/local_slurm.sh status
# slurm.conf must live at /etc/slurm/slurm.conf: the job-step plugin clears every SLURM_*
# variable (SLURM_CONF too) before its inner srun. The script touches only what it made: a
# slurm.conf it did not write (a site's own) is neither overwritten nor removed (start refuses),
# and stop ends only the daemons whose pids it recorded when it started them, never by name.
set -euo pipefail

# LOCAL_SLURM_CONF and LOCAL_SLURM_STATE move both for tests/test_local_slurm.py only.
CONF=${LOCAL_SLURM_CONF:-/etc/slurm/slurm.conf}
GRES=$(dirname "$CONF")/gres.conf
MARK="# local-slurm: written by scripts/local_slurm.sh; removed by 'stop'"
STATE=${LOCAL_SLURM_STATE:-/var/lib/local-slurm}
STARTED=$STATE/started          # one line per daemon this script started: NAME PIDFILE
FAKE_GPUS=${LOCAL_SLURM_GPUS:-2}

install() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

ours() {  # ours FILE: the file exists and this script wrote it
    [ -f "$1" ] && [ "$(head -n 1 "$1")" = "$MARK" ]
}

refuse_foreign_conf() {
    for file in "$CONF" "$GRES"; do
        if [ -e "$file" ] && ! ours "$file"; then
            echo "local_slurm: $file exists and was not written by this script; not touching it" >&2
            return 1
        fi
    done
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$(dirname "$CONF")" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    cat >"$CONF" <<EOF
$MARK
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# No slurmdbd here: finished jobs stay visible to squeue long enough for Snakemake's status checks.
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # Fake GPUs: gres.conf needs character devices; /dev/null's numbers (1, 3) will do.
    local files=()
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
        [ -c "/dev/fakegpu$i" ] || mknod "/dev/fakegpu$i" c 1 3
        files+=("/dev/fakegpu$i")
    done
    { echo "$MARK"; printf 'NodeName=localhost Name=gpu File=%s\n' "${files[@]}"; } >"$GRES"
}

alive() {  # alive PIDFILE: the pid it holds is a running process
    [ -s "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null  # munged removes its own file as it exits
}

launch() {  # launch NAME PIDFILE COMMAND...: start a daemon unless this script's own one runs
    local name=$1 pidfile=$2
    shift 2
    alive "$pidfile" && return 0
    rm -f "$pidfile"
    "$@"
    wait_for "$pidfile" "$name"
    echo "$name $pidfile" >>"$STARTED"
}

wait_for() {  # wait_for FILE WHAT
    for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
    echo "local_slurm: $2 did not start; see /var/log/slurm/" >&2
    return 1
}

start() {
    refuse_foreign_conf
    install
    write_conf
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0400 /etc/munge/munge.key
    # A munged that already answers (the machine's own) is used, not started again.
    if ! munge -n </dev/null >/dev/null 2>&1; then
        launch munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
    fi
    launch slurmctld "$STATE/slurmctld.pid" slurmctld
    launch slurmd "$STATE/slurmd.pid" slurmd -N localhost
    for _ in $(seq 1 100); do
        sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && { status; return 0; }
        sleep 0.2
    done
    echo "local_slurm: the node did not become idle" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    local name pidfile
    if [ -f "$STARTED" ]; then
        # Newest first (slurmd, slurmctld, munged): each by the pid it wrote when this script started it.
        tac "$STARTED" | while read -r name pidfile; do
            if alive "$pidfile"; then
                kill "$(cat "$pidfile")"
                for _ in $(seq 1 50); do alive "$pidfile" || break; sleep 0.1; done
            fi
            rm -f "$pidfile"
        done
        rm -f "$STARTED"
    fi
    for file in "$CONF" "$GRES"; do
        if ours "$file"; then rm -f "$file"; fi
    done
}

status() {
    sinfo -o '%P %a %D %t %c %m %G'
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
