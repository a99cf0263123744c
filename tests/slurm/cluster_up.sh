#!/usr/bin/env bash
# Start a private single-node SLURM cluster under DIR (no system config touched):
#   munged on its own socket/key, slurmctld + slurmd on free ports, a fake GPU (gres gpu:fake:N, File=/dev/null),
#   no accounting (job status through squeue: MinJobAge is long so finished jobs stay visible).
# Usage: cluster_up.sh DIR [N_FAKE_GPUS]   then   export SLURM_CONF=DIR/etc/slurm.conf PATH=DIR/bin:$PATH
# Stop with cluster_down.sh DIR (kills only the pids recorded under DIR/run).
set -euo pipefail
D=$(realpath -m "${1:?usage: cluster_up.sh DIR [N_GPUS]}")
NGPU=${2:-1}
HOST=$(hostname -s)
mkdir -p "$D"/{etc,run,log,spool/ctld,spool/d,munge}
chmod 700 "$D/munge"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours OMP_NUM_THREADS: the node gets every core
MEM_MB=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)

# munge: a fresh key for this cluster only
dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$D/munge/munge.key"
SOCK="$D/munge/munge.socket"
munged --force --key-file="$D/munge/munge.key" --socket="$SOCK" --pid-file="$D/run/munged.pid" \
    --log-file="$D/log/munged.log" --seed-file="$D/munge/munged.seed" --num-threads=2

cat > "$D/etc/slurm.conf" <<CONF
ClusterName=kistest
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=86400
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:fake:$NGPU State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
: > "$D/etc/gres.conf"
for i in $(seq "$NGPU"); do echo "NodeName=$HOST Name=gpu Type=fake File=/dev/null Count=1" >> "$D/etc/gres.conf"; done

# The jobstep plugin strips SLURM_* (SLURM_CONF too) from the environment of its inner `srun`; a real node reads
# /etc/slurm/slurm.conf. To leave the system config alone, DIR/bin/srun re-adds SLURM_CONF: put DIR/bin first on PATH.
mkdir -p "$D/bin"
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$D/etc/slurm.conf" "$(command -v srun)" > "$D/bin/srun"
chmod +x "$D/bin/srun"

export SLURM_CONF="$D/etc/slurm.conf"
slurmctld -i
slurmd
# wait until the node accepts jobs
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    case "$state" in idle|mix|alloc) echo "SLURM up: SLURM_CONF=$SLURM_CONF PATH=$D/bin:\$PATH node=$HOST state=$state cpus=$CPUS mem=${MEM_MB}M gpus=fake:$NGPU"; exit 0;; esac
    sleep 1
done
echo "SLURM did not come up (node state: '${state:-none}'); logs:" >&2
tail -n 20 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
exit 1
