"""SLURM: the profiles ask for what the cluster needs, results are compared numerically (tests/slurm/compare.py),
and — where this machine can host a private single-node cluster (root, Debian, apt) — the tiny workflow runs end
to end through `snakemake --profile profiles/slurm` and matches the local run (tests/slurm/e2e.sh)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import wf
from wf import REPO

import compare  # tests/slurm/compare.py


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def resources(entries) -> dict[str, str]:
    return dict(e.split("=", 1) for e in entries)


def test_slurm_profile_leaves_site_settings_to_the_user():
    p = profile("slurm")
    assert p["executor"] == "slurm"
    assert p["retries"] >= 1  # an out-of-memory GPU job comes back with half the batch budget
    assert p["rerun-incomplete"] is True
    defaults = resources(p["default-resources"])
    assert int(defaults["mem_mb"]) > 0 and int(defaults["runtime"]) > 0
    assert not {"slurm_partition", "slurm_account"} & set(defaults)  # site specific: the user adds them


def test_local_profile_caps_gpu_jobs():
    p = profile("local")
    assert "executor" not in p
    assert int(resources(p["resources"])["gpu"]) >= 1
    assert p["retries"] >= 1


def test_gpu_jobs_ask_for_the_configured_gpu_model(tmp_path):
    # dry run on a fresh tiny config: every job that asks for a GPU names the model's gpu_model (→ --gpus=a100:1),
    # and a model without one asks for any GPU (gpu_model empty → --gpus=1)
    config = wf.tiny_config(tmp_path, families=("gpt2", "llama"))
    cfg = yaml.safe_load(config.read_text())
    cfg["models"]["tiny-gpt2"]["gpu_model"] = "a100"
    cfg["models"]["tiny-gpt2"]["size_gb"] = 10.0
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = wf.snakemake(config, "-n")
    text = out.stdout + out.stderr
    gpu_jobs = 0
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", text, re.M):
        res = re.search(r"^    resources: (.*)$", body, re.M)
        res = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        model = re.search(r"\bmodel=([^,\s]+)", body)
        if res.get("gpu") != "1":
            continue
        gpu_jobs += 1
        assert model, f"GPU rule {rule} has no model wildcard"
        want = "a100" if model.group(1) == "tiny-gpt2" else ""
        assert res.get("gpu_model") == want, f"{rule}[{model.group(1)}] asks for gpu_model={res.get('gpu_model')!r}"
        # memory and runtime scale with the model's size_gb (rules/common.smk): 10 GB → more than the 4 GB floor
        if model.group(1) == "tiny-gpt2":
            assert int(res["mem_mb"]) >= 1024 * 2 * 10 and int(res["runtime"]) >= 60 + 30 * 10
    assert gpu_jobs >= 2 * 3, "expected covariance, known and keys jobs for each model to ask for a GPU"


def test_compare_finds_a_changed_number(tmp_path):
    from safetensors.numpy import save_file

    from kis import io

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"layer": [0, 1, 2], "value": rng.normal(size=3), "key": [rng.normal(size=4) for _ in range(3)]})
    c = rng.normal(size=(5, 5))
    for side in ("a", "b"):
        (tmp_path / side / "cov").mkdir(parents=True)
        io.write_parquet(frame, tmp_path / side / "t.parquet", metadata={"model": "m"})
        save_file({"layer.0": c}, str(tmp_path / side / "cov" / "m.safetensors"), metadata={"model": '"m"'})
    assert compare.compare(tmp_path / "a", tmp_path / "b") == []
    # a last-digit difference (float sums in another order) is tolerated; a real one is not
    save_file({"layer.0": c * (1 + 1e-12)}, str(tmp_path / "b" / "cov" / "m.safetensors"), metadata={"model": '"m"'})
    assert compare.compare(tmp_path / "a", tmp_path / "b") == []
    save_file({"layer.0": c + 1e-3}, str(tmp_path / "b" / "cov" / "m.safetensors"), metadata={"model": '"m"'})
    assert any("layer.0" in p for p in compare.compare(tmp_path / "a", tmp_path / "b"))
    bad = frame.copy()
    bad.loc[1, "key"] = bad.loc[1, "key"] + 1e-3
    io.write_parquet(bad, tmp_path / "b" / "t.parquet", metadata={"model": "m"})
    assert any(p.startswith("t.parquet") and "key" in p for p in compare.compare(tmp_path / "a", tmp_path / "b"))
    io.write_parquet(frame, tmp_path / "b" / "t.parquet", metadata={"model": "other"})
    assert any("metadata model" in p for p in compare.compare(tmp_path / "a", tmp_path / "b"))
    (tmp_path / "b" / "extra.parquet").write_bytes((tmp_path / "a" / "t.parquet").read_bytes())
    assert any("only in" in p for p in compare.compare(tmp_path / "a", tmp_path / "b"))


def cluster_skip_reason() -> str | None:
    """Why this machine cannot host the single-node test cluster (None: it can)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the SLURM end-to-end test starts slurmctld/slurmd/munged as root: not root here"
    if not Path("/etc/debian_version").exists():
        return "the SLURM end-to-end test installs Debian packages: not a Debian system"
    have = all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have and not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is not available"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[workflow]')"
    return None


def test_slurm_end_to_end(request, tmp_path, capsys):
    reason = cluster_skip_reason()
    if reason:
        with capsys.disabled():
            print(f"\nSKIP SLURM end to end: {reason}")
        pytest.skip(reason)
    reference = request.getfixturevalue("tiny_run")  # the finished local run of the tiny config (2 models)
    proc = subprocess.run(["bash", str(REPO / "tests" / "slurm" / "e2e.sh"), str(tmp_path / "e2e"),
                           "--reference", str(reference)],
                          capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHON": sys.executable})
    out = proc.stdout + proc.stderr
    with capsys.disabled():
        print("\n" + "\n".join(line for line in proc.stdout.splitlines()
                               if re.match(r"(==|SLURM|snakemake jobs|GPU rules|squeue|compared|local run|PASS|FAIL)",
                                           line)))
    if proc.returncode == 3:
        pytest.skip(next((line for line in out.splitlines() if line.startswith("SKIP")), "e2e.sh skipped"))
    assert proc.returncode == 0, out[-8000:]
    ids = re.search(r"^SLURM job ids seen: (.+)$", proc.stdout, re.M)
    assert ids and re.findall(r"=\d+", ids.group(1)), "no SLURM job id seen"
    assert re.search(r"^compared (\d+) tables/tensor files, 0 problem\(s\)$", proc.stdout, re.M)
    assert proc.stdout.rstrip().endswith("PASS")
