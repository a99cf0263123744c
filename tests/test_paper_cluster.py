"""The paper's config under the SLURM profile, planned without submitting (issue 29): every job asks for at least
the profile's defaults, every GPU job for at least the covariance plan's memory and runtime, for all 11 models — also
with the README's cluster command as written. Dry runs only: no model is loaded, nothing is submitted."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import yaml

from kis import plan
from wf import REPO

PAPER = REPO / "config" / "paper.yaml"
PROFILE = REPO / "profiles" / "slurm"
GPU_RULES = {"covariance", "known", "keys", "superposition", "preedit", "trajectory"}


def paper():
    return yaml.safe_load(PAPER.read_text())


def profile_defaults() -> dict[str, int]:
    entries = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]
    return {k: int(v) for k, v in (e.split("=", 1) for e in entries)}


def parse_jobs(text: str) -> list[dict]:
    """[{rule, local, model, resources, threads}] of a dry run's job listing."""
    jobs = []
    for kind, rule, body in re.findall(r"^(local)?rule (\w+):\n((?:    .*\n)*)", text, re.M):
        res = re.search(r"^    resources: (.*)$", body, re.M)
        model = re.search(r"^    wildcards: .*\bmodel=([^,\s]+)", body, re.M)
        threads = re.search(r"^    threads: (\d+)$", body, re.M)
        jobs.append({"rule": rule, "local": bool(kind), "model": model.group(1) if model else None,
                     "resources": dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {},
                     "threads": int(threads.group(1)) if threads else 1})
    return jobs


def dry_run(args: list[str], workdir) -> list[dict]:
    """Snakemake's plan (-n) of `args`, run from the repository root with results under workdir."""
    cmd = [*args, "-n", "--directory", str(workdir)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{text[-6000:]}"
    jobs = parse_jobs(text)
    total = re.search(r"^total\s+(\d+)$", text, re.M)
    assert total and len(jobs) == int(total.group(1)), "every planned job is parsed"
    return jobs


SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(scope="module")
def slurm_jobs(tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM profile needs the executor plugin")
    return dry_run([*SNAKEMAKE, "--profile", str(PROFILE), "--configfile", str(PAPER)],
                   tmp_path_factory.mktemp("paper-slurm"))


def planned(name: str) -> dict:
    """kis.plan's resources of one paper model from its published shapes (resources/model_shapes.yaml)."""
    cfg = paper()
    spec = cfg["models"][name]
    shape = plan.load_shapes()[spec["hub_id"]]
    return plan.shape_resources(shape, dtype=spec.get("dtype", "float32"), n_texts=cfg["corpus"]["n_texts"],
                                max_length=cfg["corpus"]["max_length"],
                                token_budget=cfg["covariance"]["token_budget"],
                                store_dtype=cfg["covariance"]["store_dtype"], size_gb=spec.get("size_gb"),
                                checkpoint_gb=spec.get("checkpoint_gb"))


def test_every_queued_job_asks_for_the_profile_defaults_or_more(slurm_jobs):
    defaults = profile_defaults()
    queued = [j for j in slurm_jobs if not j["local"] and j["rule"] != "all"]
    assert {"corpus", "facts", "prepare_model", "covariance", "covariance_diagnostics"} <= {j["rule"] for j in queued}
    for job in queued:
        res = job["resources"]
        for key, floor in defaults.items():
            assert int(res[key]) >= floor, f"{job['rule']}[{job['model']}] asks for {key}={res.get(key)} < {floor}"
    corpus = next(j for j in queued if j["rule"] == "corpus")
    assert int(corpus["resources"]["mem_mb"]) >= 1.25 * 1387  # peak measured on 100k Wikipedia-length texts


def test_every_gpu_job_asks_for_the_plan_for_all_11_models(slurm_jobs):
    models = set(paper()["models"])
    assert len(models) == 11
    for rule in GPU_RULES | {"covariance_diagnostics", "prepare_model"}:
        assert {j["model"] for j in slurm_jobs if j["rule"] == rule} == models, rule
    for job in slurm_jobs:
        if job["rule"] not in GPU_RULES | {"covariance_diagnostics", "prepare_model"}:
            continue
        res, want = job["resources"], planned(job["model"])
        where = f"{job['rule']}[{job['model']}]"
        mem, runtime = int(res["mem_mb"]), int(res["runtime"])
        if job["rule"] in GPU_RULES | {"prepare_model"}:  # the jobs that load the model
            assert mem >= want["load_mb"], f"{where}: {mem} MB < loading {want['load_mb']} MB"
        if job["rule"] in GPU_RULES:
            assert res["gpu"] == "1", where
        if job["rule"] == "covariance":
            assert mem >= want["mem_mb"] and runtime >= want["runtime"], (where, res, want)
        if job["rule"] == "covariance_diagnostics":
            assert mem >= want["diagnostics_mem_mb"] and runtime >= want["diagnostics_runtime"], (where, res, want)


def test_diagnostics_runtime_covers_single_core_eigvalsh(slurm_jobs):
    """Independent of kis.plan: one float64 eigvalsh per layer took 7.5 s on one core at n = 4096 (the review);
    the n³ extrapolation must fit the job's runtime even on one core (1–4 h for f ≥ 10,240)."""
    shapes = plan.load_shapes()
    cfg = paper()
    for job in (j for j in slurm_jobs if j["rule"] == "covariance_diagnostics"):
        s = shapes[cfg["models"][job["model"]]["hub_id"]]
        minutes = s.n_layers * 7.5 * (s.d_ff / 4096) ** 3 / 60
        assert int(job["resources"]["runtime"]) >= minutes, (job["model"], job["resources"]["runtime"], minutes)
        assert int(job["resources"]["runtime"]) > 60 or s.d_ff < 10240


def test_gpt_j_jobs_hold_its_float32_checkpoint_beside_the_model(slurm_jobs):
    """GPT-J's main branch is one 24.2 GB float32 .bin: loading holds it beside the 12.1 GB float16 model."""
    need_mb = (24.2e9 + 12.1e9) / 2 ** 20
    gptj = [j for j in slurm_jobs if j["model"] == "gpt-j-6b" and j["rule"] in GPU_RULES | {"prepare_model"}]
    # prepare, covariance, known, keys, superposition, 7 trajectories (the study) and their 5 preedit jobs (ROME with
    # r-ROME, MEMIT with AlphaEdit share one: forecast_leader)
    assert len(gptj) == 5 + 7 + 5
    for job in gptj:
        assert int(job["resources"]["mem_mb"]) >= need_mb, (job["rule"], job["resources"]["mem_mb"])


def test_diagnostics_use_eight_threads(tmp_path):
    jobs = dry_run([*SNAKEMAKE, "--cores", "16", "--configfile", str(PAPER)], tmp_path)
    diag = [j for j in jobs if j["rule"] == "covariance_diagnostics"]
    assert len(diag) == 11 and all(j["threads"] == 8 for j in diag)


def readme_slurm_command() -> list[str]:
    """The README's SLURM command (cluster section), joined across its backslash continuations."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"^(snakemake --profile profiles/slurm .*?)(?<!\\)\n", text, re.M | re.S)
    assert block, "README has no `snakemake --profile profiles/slurm` command"
    return shlex.split(block.group(1).replace("\\\n", " "), comments=True)


def test_readme_cluster_command_keeps_the_profile_defaults(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM profile needs the executor plugin")
    cmd = readme_slurm_command()
    assert cmd[:3] == ["snakemake", "--profile", "profiles/slurm"] and "config/paper.yaml" in cmd
    jobs = dry_run([*SNAKEMAKE, *cmd[1:]], tmp_path)
    defaults = profile_defaults()
    for job in jobs:
        if job["local"] or job["rule"] == "all":
            continue
        for key, floor in defaults.items():
            assert int(job["resources"].get(key, 0)) >= floor, (job["rule"], job["model"], key, job["resources"])
