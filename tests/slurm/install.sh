#!/usr/bin/env bash
# Install the Debian packages a single-node SLURM test cluster needs (idempotent, quiet).
# Exit 0: installed (or already there). Exit 3: not possible here (reason on stdout) — callers skip.
set -euo pipefail
PKGS=(slurmctld slurmd slurm-client munge)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then echo "SKIP: not root, cannot install ${missing[*]}"; exit 3; fi
if [ ! -r /etc/debian_version ] || ! command -v apt-get >/dev/null; then
    echo "SKIP: not a Debian system with apt-get, cannot install ${missing[*]}"; exit 3
fi
# another apt/dpkg run (e.g. a parallel job) holds the lock: wait for it rather than fail
command -v fuser >/dev/null && for _ in $(seq 60); do
    fuser /var/lib/dpkg/lock-frontend /var/lib/apt/lists/lock >/dev/null 2>&1 || break
    sleep 5
done
log=$(mktemp)
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "SKIP: apt-get could not install ${missing[*]}:"; tail -5 "$log"; rm -f "$log"; exit 3
fi
rm -f "$log"
# the packages' own services are not wanted (we start private daemons); on systemd hosts they may start
for s in slurmctld slurmd munge; do
    command -v systemctl >/dev/null && systemctl is-active -q "$s" 2>/dev/null && systemctl stop "$s" || true
done
echo "installed ${missing[*]}"
