#!/usr/bin/env bash
# End to end on a real (single-node, private) SLURM cluster:
#   the tiny config (tests/wf.py: tiny random models, a small local corpus) runs through
#   `snakemake --profile profiles/slurm` (default target) and once locally with profiles/local — or, with
#   --reference, a finished local run's config is reused (its models, corpus, results); every non-local job must
#   have gone through sbatch (snakemake's submission lines, the plugin's per-job logs and squeue's history agree),
#   GPU rules must have held a (fake) GPU, figure rules must have run locally, and the two results folders must
#   hold the same numbers. A dry run afterwards must find nothing to do.
# Usage: tests/slurm/e2e.sh WORKDIR [--reference CONFIG | FAMILY ...]   (default: one tiny gpt2 model)
# Exit 0: passed; 3: skipped (reason printed); anything else: failed. The daemons it started are stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=$(realpath -m "${1:?usage: e2e.sh WORKDIR [--reference CONFIG | FAMILY ...]}"); shift
REF=""
if [ "${1:-}" = "--reference" ]; then REF=$(realpath "${2:?--reference needs a config path}"); shift 2; fi
FAMILIES=("$@")
[ $# -eq 0 ] && FAMILIES=(gpt2)
PY=${PYTHON:-python3}
mkdir -p "$W"

"$REPO/tests/slurm/install.sh" || exit $?
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || { echo "SKIP: snakemake-executor-plugin-slurm is not installed (pip install -e '.[workflow]')"; exit 3; }

CL="$W/cluster"
trap '"$REPO/tests/slurm/cluster_down.sh" "$CL"' EXIT
"$REPO/tests/slurm/cluster_up.sh" "$CL" 1

# one set of inputs (models, corpus), two complete configs that differ only in the results folder
"$PY" - "$REPO" "$W" "$REF" "${FAMILIES[@]}" <<'EOF'
import sys
from pathlib import Path
import yaml
sys.path.insert(0, f"{sys.argv[1]}/tests")
import wf
w, ref, families = Path(sys.argv[2]), sys.argv[3], tuple(sys.argv[4:])
cfg = yaml.safe_load(Path(ref).read_text() if ref else wf.tiny_config(w / "inputs", families=families).read_text())
for run in ("slurm",) if ref else ("local", "slurm"):
    (w / run).mkdir(exist_ok=True)
    (w / run / "config.yaml").write_text(yaml.safe_dump({**cfg, "results": str(w / run / "results")}, sort_keys=False))
    if ref:  # the reference's relative inputs (the .test layout): the same files, under the same names
        wf.link_inputs(Path(ref), w / run)
print("models:", ", ".join(cfg["models"]), f"(reference run: {ref})" if ref else "")
EOF

smk() { "$PY" -m snakemake -s "$REPO/Snakefile" --directory "$W/$1" --configfile "$W/$1/config.yaml" "${@:2}"; }

if [ -z "$REF" ]; then
    echo "== local run (profiles/local)"
    t0=$SECONDS
    smk local --profile "$REPO/profiles/local" --cores 2 > "$W/local.log" 2>&1 \
        || { tail -n 40 "$W/local.log"; echo "FAIL: local run"; exit 1; }
    echo "local run: $((SECONDS - t0)) s"
    LOCAL_RESULTS="$W/local/results"
else
    LOCAL_RESULTS=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import wf; print(wf.results(sys.argv[2]))' "$REPO/tests" "$REF")
fi

echo "== SLURM run (profiles/slurm)"
export SLURM_CONF="$CL/etc/slurm.conf" PATH="$CL/bin:$PATH"
t0=$SECONDS
# only what this test cluster needs on top of the profile: no accounting (status via squeue), no accounts, no
# job wider than its one node (--max-threads: rules asking for more CPUs would stay PENDING forever), a quick
# first status check, the per-job logs kept to inspect them; a job that cannot start fails the test in 30 min
timeout 1800 "$PY" -m snakemake -s "$REPO/Snakefile" --directory "$W/slurm" --configfile "$W/slurm/config.yaml" \
    --profile "$REPO/profiles/slurm" --slurm-status-command squeue --slurm-no-account --max-threads "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" \
    --slurm-init-seconds-before-status-checks 3 --slurm-keep-successful-logs --retries 0 > "$W/slurm.log" 2>&1 \
    || { tail -n 60 "$W/slurm.log"; squeue --states=all -o "%i|%T|%r|%C|%m|%k"; tail -n 30 "$CL"/log/*.log
         echo "FAIL: SLURM run"; exit 1; }
echo "SLURM run: $((SECONDS - t0)) s"

echo "== jobs"
"$PY" - "$W" <<'EOF'
import re, subprocess, sys
from pathlib import Path
w = Path(sys.argv[1])
log = (w / "slurm.log").read_text()
# snakemake's account of each job: "rule X:" = submitted to SLURM, "localrule X:" = ran here
remote, local, gpu_rules = {}, [], set()
for m in re.finditer(r"^(localrule|rule) (\w+):\n((?:    .*\n)*)", log, re.M):
    kind, rule, body = m.groups()
    jobid = re.search(r"^    jobid: (\d+)$", body, re.M).group(1)
    if kind == "rule":
        remote[jobid] = rule
        if re.search(r"resources: .*\bgpu=1\b", body):
            gpu_rules.add(rule)
    else:
        local.append(rule)
submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
print(f"snakemake jobs: {len(remote)} submitted to SLURM, {len(local)} local ({', '.join(sorted(set(local)))})")
print("SLURM job ids seen:", " ".join(f"{remote[j]}={s}" for j, s in sorted(submitted.items(), key=lambda x: int(x[1]))))
fail = []
if not remote:
    fail.append("no job went to SLURM")
if set(submitted) != set(remote):
    fail.append(f"jobs without an sbatch submission: {sorted(set(remote) - set(submitted))}")
# SLURM's own history (squeue keeps finished jobs for MinJobAge)
q = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%j"], capture_output=True, text=True, check=True)
state = {i: s for i, s, _ in (line.split("|") for line in q.stdout.split())}
print("squeue history:", " ".join(f"{i}:{s}" for i, s in sorted(state.items(), key=lambda x: int(x[0]))))
for j, sid in submitted.items():
    if state.get(sid) != "COMPLETED":
        fail.append(f"SLURM job {sid} ({remote.get(j)}) is {state.get(sid)!r} in squeue, not COMPLETED")
    # the plugin's per-job log (kept with --slurm-keep-successful-logs): .snakemake/slurm_logs/rule_<rule>/.../<id>.log
    logs = list((w / "slurm" / ".snakemake" / "slurm_logs" / f"rule_{remote.get(j)}").rglob(f"{sid}.log"))
    if not logs:
        fail.append(f"no plugin log for SLURM job {sid} ({remote.get(j)})")
    elif "Finished jobid" not in logs[0].read_text() and "steps (100%) done" not in logs[0].read_text():
        fail.append(f"plugin log {logs[0]} does not show the job finishing")
    # GPU rules held a GPU: the allocation carries the gres
    info = subprocess.run(["scontrol", "show", "job", sid], capture_output=True, text=True).stdout
    if remote.get(j) in gpu_rules and "gpu" not in re.sub(r"\s+", " ", info).split("TresPerJob=")[-1].split(" ")[0]:
        tres = re.findall(r"Tres\w*=\S+", info)
        fail.append(f"GPU rule {remote.get(j)} (SLURM job {sid}) got no GPU: {tres}")
print("GPU rules:", ", ".join(sorted(gpu_rules)) or "none")
queued_figures = sorted({r for r in remote.values() if r.startswith("fig_")})
if queued_figures:
    fail.append(f"figure rules went to SLURM instead of running locally: {queued_figures}")
if not gpu_rules:
    fail.append("no job asked for a GPU")
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
EOF

echo "== results: SLURM vs local"
# with --reference, other tests may have added outputs to the reference folder: only the SLURM run's files must match
"$PY" "$REPO/tests/slurm/compare.py" ${REF:+--extra-ok} "$W/slurm/results" "$LOCAL_RESULTS"

echo "== nothing left to do"
smk slurm --profile "$REPO/profiles/slurm" --slurm-status-command squeue --slurm-no-account -n > "$W/dry.log" 2>&1 \
    || { tail -n 20 "$W/dry.log"; echo "FAIL: dry run"; exit 1; }
grep -q "Nothing to be done" "$W/dry.log" || { tail -n 30 "$W/dry.log"; echo "FAIL: a finished SLURM run plans more jobs"; exit 1; }
echo "PASS"
