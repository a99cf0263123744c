"""Reruns after a finished tiny run (tests/conftest.py `tiny_run`: tiny GPT-2 + Llama): a changed setting plans
exactly the jobs that depend on it. The expectation is not hard-coded: it is the set of jobs snakemake plans when
the first output the setting touches is forced (`--forcerun FILE`: that output and everything downstream), which
the params-change detection must reproduce. Figure settings are covered by tests/test_figure_reruns.py."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

import wf

TARGET_RULES = {"all"}  # rules that only collect files
MODEL_RULES = {"prepare_model", "covariance", "covariance_diagnostics", "known", "keys", "superposition", "preedit",
               "trajectory"}


def job_blocks(config: Path, *extra: str) -> list[tuple[str, str]]:
    """Dry run: (rule, indented block of the job's details) for every job snakemake would run now."""
    proc = wf.snakemake(config, "-n", *extra)
    return re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", proc.stdout + proc.stderr, re.M)


def planned(config: Path, *extra: str) -> set[tuple[str, str]]:
    """Dry run: the jobs snakemake would run now, as (rule, wildcards) pairs."""
    jobs = set()
    for rule, body in job_blocks(config, *extra):
        if rule not in TARGET_RULES:
            wildcards = re.search(r"^    wildcards: (.*)$", body, re.M)
            jobs.add((rule, wildcards.group(1) if wildcards else ""))
    return jobs


def models_of(jobs) -> set[str]:
    return {m for _, wc in jobs for m in re.findall(r"\bmodel=([^,\s]+)", wc)}


def test_a_finished_run_plans_nothing(tiny_run):
    assert planned(tiny_run) == set()


def test_one_models_covariance_setting_reruns_that_model_only(tiny_run):
    # models.<m>.covariance.max_length: this model's C only (the per-model override of corpus.max_length)
    cfg = yaml.safe_load(tiny_run.read_text())
    assert set(cfg["models"]) == {"tiny-gpt2", "tiny-llama"}
    short = cfg["corpus"]["max_length"] - 8
    jobs = planned(wf.variant(tiny_run, "gpt2_max_length",
                              lambda c: c["models"]["tiny-gpt2"].update(covariance={"max_length": short})))
    forced = planned(tiny_run, "--forcerun", wf.target(tiny_run, "covariance", "tiny-gpt2.safetensors"))
    print("planned:", sorted(jobs))
    assert ("covariance", "model=tiny-gpt2") in jobs
    assert jobs == forced  # that model's covariance and everything downstream, nothing else
    # no model job of the other model (its figures that read the cross-model statistics table do follow)
    assert models_of({j for j in jobs if j[0] in MODEL_RULES}) == {"tiny-gpt2"}
    assert not {r for r, _ in jobs} & {"prepare_model", "corpus", "facts", "known", "select_items", "keys"}
    # setting it to the global value it replaces is no change at all
    same = cfg["corpus"]["max_length"]
    assert planned(wf.variant(tiny_run, "gpt2_max_length_same",
                              lambda c: c["models"]["tiny-gpt2"].update(covariance={"max_length": same}))) == set()


def test_global_covariance_setting_reruns_every_models_covariance(tiny_run):
    # corpus.max_length is global by design: every model's C changes, nothing about facts, knowledge or keys
    cfg = yaml.safe_load(tiny_run.read_text())
    jobs = planned(wf.variant(tiny_run, "max_length",
                              lambda c: c["corpus"].update(max_length=c["corpus"]["max_length"] - 8)))
    forced = planned(tiny_run, "--forcerun", "covariance")
    assert {("covariance", f"model={m}") for m in cfg["models"]} <= jobs
    assert forced <= jobs <= forced | {("corpus", "")}  # the corpus rule's params hold the whole corpus section
    assert not {r for r, _ in jobs} & {"prepare_model", "facts", "known", "select_items", "keys"}
    # store_dtype (covariance section): every C again, downstream only
    assert planned(wf.variant(tiny_run, "store_dtype",
                              lambda c: c["covariance"].update(store_dtype="float32"))) == forced


def test_one_models_dtype_reruns_that_model_from_the_start(tiny_run):
    # the dtype changes the model itself: its manifest, C and known facts; the analysis items are the facts every
    # model knows, so the other model's keys (and what reads them) follow, but never its C or known facts
    jobs = planned(wf.variant(tiny_run, "gpt2_dtype", lambda c: c["models"]["tiny-gpt2"].update(dtype="float64")))
    forced = planned(tiny_run, "--forcerun", wf.target(tiny_run, "models", "tiny-gpt2", "manifest.json"))
    assert jobs == forced
    for rule in ("prepare_model", "covariance", "known"):
        assert (rule, "model=tiny-gpt2") in jobs and (rule, "model=tiny-llama") not in jobs


def test_cluster_settings_and_budgets_rerun_nothing(tiny_run):
    # where and how a job runs never changes a result: SLURM resources, batch budgets (halved on OOM retries)
    for name, change in {
        "size_gb": lambda c: c["models"]["tiny-gpt2"].update(size_gb=40),
        "checkpoint_gb": lambda c: c["models"]["tiny-gpt2"].update(checkpoint_gb=24.2),
        "gpu_model": lambda c: c["models"]["tiny-llama"].update(gpu_model="a100"),
        "token_budget": lambda c: c["covariance"].update(token_budget=64),
    }.items():
        assert planned(wf.variant(tiny_run, name, change)) == set(), name


def test_a_label_reruns_no_model_job(tiny_run):
    # labels name models in the statistics table and the figures; no model job reads them
    jobs = planned(wf.variant(tiny_run, "label", lambda c: c["models"]["tiny-gpt2"].update(label="renamed")))
    assert ("statistics", "") in jobs
    assert not {r for r, _ in jobs} & MODEL_RULES


# Faults -----------------------------------------------------------------------------------------------------------

def test_a_failed_job_leaves_no_output_a_later_run_would_trust(tmp_path):
    import pandas as pd

    config = wf.tiny_config(tmp_path, families=("gpt2",))
    cfg = yaml.safe_load(config.read_text())
    corpus, texts = Path(cfg["corpus"]["path"]), wf.results(config) / "corpus" / "texts.parquet"
    wf.snakemake(config, "--cores", "1", str(texts))
    good = pd.read_parquet(texts)
    # the corpus file gains a broken record; the rerun fails (--forcerun: the rule does not track the file's content)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(lines[:3] + ['{"id": "broken", "text": '] + lines[3:]) + "\n")
    proc = wf.snakemake(config, "--cores", "1", "--forcerun", "corpus", str(texts), check=False)
    assert proc.returncode != 0
    assert not texts.exists()  # the earlier table is gone: nothing downstream can read a stale corpus
    assert not list(wf.results(config).rglob("*texts.parquet*"))  # nor a half-written temporary beside it
    log = (wf.results(config) / "logs" / "corpus" / "corpus.log").read_text()
    assert f"{corpus}: line 4 is not valid JSON" in log  # the error names file and record
    assert ("corpus", "") in planned(config, str(texts))  # the next run redoes it
    corpus.write_text("\n".join(lines) + "\n")
    wf.snakemake(config, "--cores", "1", str(texts))
    pd.testing.assert_frame_equal(pd.read_parquet(texts), good)
    assert planned(config, str(texts)) == set()


def test_retries_halve_the_gpu_batch_budgets(tmp_path):
    # profiles set `retries`; attempt k of a GPU job runs with budget // 2^(k-1) (an out-of-memory error retried
    # smaller), and the budget is a resource, not a param: the retried result is the same result
    config = wf.tiny_config(tmp_path, families=("gpt2",))
    cfg = yaml.safe_load(config.read_text())
    budgets = {}
    for attempt in (1, 2, 3):
        budgets[attempt] = {rule: int(v) for rule, body in job_blocks(config, "--attempt", str(attempt))
                            for v in re.findall(r"\b(?:token_budget|batch_size)=(\d+)", body)}
    assert budgets[1]["covariance"] == cfg["covariance"]["token_budget"]
    assert {"covariance", "known", "keys"} <= set(budgets[1])
    for rule, first in budgets[1].items():
        assert budgets[2][rule] == max(1, first // 2) and budgets[3][rule] == max(1, first // 4), rule
