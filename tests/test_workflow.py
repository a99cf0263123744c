"""The whole workflow end to end on tiny random models: outputs agree with independent computations."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tiny
import wf
from kis import covariance, io
from wf import REPO


def test_lint_is_clean_and_every_rule_has_a_log():
    proc = wf.snakemake(REPO / "config" / "config.yaml", "--lint", cwd=REPO)
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr, proc.stdout


def test_nothing_left_to_do_after_a_run(tiny_run):
    assert wf.planned_jobs(tiny_run) == {}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cached_covariance_equals_independent_reference(tiny_run, family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = wf.results(tiny_run)
    name = f"tiny-{family}"
    covs, meta = covariance.load(res / "covariance" / f"{name}.safetensors")
    texts = pd.read_parquet(res / "corpus" / "texts.parquet")
    corpus_meta = io.read_parquet_metadata(res / "corpus" / "texts.parquet")
    assert meta["sample_hash"] == corpus_meta["sample_hash"] and meta["corpus_id"] == corpus_meta["corpus_id"]
    assert meta["n_texts"] == len(texts) == 16
    # the memory plan and the product arithmetic are recorded (fp32 tiny models: exact fp32 products)
    assert meta["products"] == "fp32-exact"
    assert meta["plan"]["passes"] == len(meta["plan"]["groups"]) >= 1 and meta["plan"]["groups"][-1][-1] == 2
    assert 0 < meta["plan"]["device_peak"] <= meta["plan"]["device_budget"]
    src = Path(json.loads((res / "models" / name / "manifest.json").read_text())["location"])
    model = AutoModelForCausalLM.from_pretrained(src).eval()
    tok = AutoTokenizer.from_pretrained(src)
    ref, count = tiny.covariance_reference(model, tok, texts.text.tolist(), family.replace("-", "_"), max_length=48)
    assert meta["n_tokens"] == count
    for layer, r in enumerate(ref):
        assert torch.linalg.norm(covs[layer] - r) / torch.linalg.norm(r) < 1e-6


def test_diagnostics_cover_every_layer(tiny_run):
    table = pd.read_parquet(wf.results(tiny_run) / "covariance" / "tiny-llama.diagnostics.parquet")
    assert list(table.layer) == [0, 1, 2]
    assert (table.condition_number >= 1).all() and (table.corpus_id == "local:corpus.jsonl").all()


def test_statistics_table_is_complete(tiny_run):
    stats = pd.read_parquet(wf.results(tiny_run) / "statistics.parquet")
    assert set(stats.model) == {"tiny-gpt2", "tiny-llama"}
    full = stats[stats.n == stats.n.max()]
    assert len(full) == 2 * 3 * 4  # models × layers × kinds (P, Q, cos_white, cos_act)
    assert set(stats.n) == {16}
    assert np.isfinite(full["kurtosis"]).all() and (full["kurtosis"] != 0).all()
    assert (stats.corpus_id == "local:corpus.jsonl").all()
