#!/usr/bin/env bash
# Stop the daemons cluster_up.sh started under DIR (only the pids recorded there).
D=$(realpath -m "${1:?usage: cluster_down.sh DIR}")
export SLURM_CONF="$D/etc/slurm.conf"
[ -f "$SLURM_CONF" ] && scancel --quiet --full --user root 2>/dev/null || true
for name in slurmd slurmctld munged; do
    pidfile="$D/run/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # only a pid that still runs this daemon: never a recycled id
    if [ -n "$pid" ] && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
done
