#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM tests (run as root; no systemd needed).
#   scripts/local_slurm.sh install   # Debian packages: slurmctld slurmd slurm-client munge
#   scripts/local_slurm.sh start     # munged, slurmctld, slurmd; partition `debug` with 2 fake GPUs
#   scripts/local_slurm.sh stop      # stop the daemons, restore any slurm.conf that was there
#   scripts/local_slurm.sh status
# slurm.conf must live at /etc/slurm/slurm.conf: the job-step plugin clears every SLURM_*
# variable (SLURM_CONF too) before its inner srun. An existing file is backed up and restored.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
BACKUP=/etc/slurm/slurm.conf.before-local-slurm
STATE=/var/lib/local-slurm
FAKE_GPUS=${LOCAL_SLURM_GPUS:-2}

install() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    if [ -f "$CONF" ] && [ ! -f "$BACKUP" ] && ! grep -q "^# local-slurm" "$CONF"; then
        cp "$CONF" "$BACKUP"
    fi
    cat >"$CONF" <<EOF
# local-slurm: written by scripts/local_slurm.sh; removed by 'stop'
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
    printf 'NodeName=localhost Name=gpu File=%s\n' "${files[@]}" >/etc/slurm/gres.conf
}

wait_for() {  # wait_for FILE WHAT
    for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
    echo "local_slurm: $2 did not start; see /var/log/slurm/" >&2
    return 1
}

start() {
    install
    write_conf
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    wait_for /run/munge/munged.pid munged
    pgrep -x slurmctld >/dev/null || slurmctld
    wait_for "$STATE/slurmctld.pid" slurmctld
    pgrep -x slurmd >/dev/null || slurmd -N localhost
    wait_for "$STATE/slurmd.pid" slurmd
    for _ in $(seq 1 100); do
        sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && { status; return 0; }
        sleep 0.2
    done
    echo "local_slurm: the node did not become idle" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    for daemon in slurmd slurmctld; do
        pkill -x "$daemon" 2>/dev/null || true
    done
    pkill -x munged 2>/dev/null || true
    rm -f "$STATE"/*.pid
    if [ -f "$BACKUP" ]; then mv "$BACKUP" "$CONF"; elif grep -qs "^# local-slurm" "$CONF"; then rm -f "$CONF"; fi
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
