"""Small synthetic tables in the formats of docs/CONTRACTS.md (no model, no pipeline), for the figure tests
(tests/test_figures.py) and the report built through snakemake (tests/test_report.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kis import io

CORPUS = "synthetic:test-corpus"
# model key → (label, family, n_params, n_layers, f): two families, sizes out of key order on purpose
MODELS = {"big": ("Big-2M", "gpt2", 2_000_000, 4, 24),
          "small": ("Small-1M", "gpt2", 1_000_000, 3, 16),
          "neo": ("Neo-3M", "gpt_neox", 3_000_000, 5, 20)}


# ------------------------------------------------------------ synthetic tables (contract formats)

def keys_and_cov(n_items: int, f: int, rng):
    """Keys with a shared mean (activation angles < 90°) and C = E[k kᵀ] from correlated samples."""
    mix = rng.normal(size=(f, f)) / np.sqrt(f) + np.eye(f)
    mean = rng.normal(size=f)
    samples = rng.normal(size=(40 * f, f)) @ mix + mean
    cov = samples.T @ samples / len(samples)
    keys = rng.standard_t(3, size=(n_items, f)) @ mix + mean
    return keys, cov


def superposition_long(keys, cov, layer: int) -> pd.DataFrame:
    m = keys @ np.linalg.solve(cov, keys.T)  # M_ij = (C⁻¹k_i)ᵀk_j
    d = np.diag(m)
    mats = {"P": m / d[:, None],  # P_ij = M_ij / M_ii
            "Q": m / np.sqrt(np.outer(d, d)) * 0.5,
            "cos_white": m / np.sqrt(np.outer(d, d)),
            "cos_act": (keys @ keys.T) / np.outer(np.linalg.norm(keys, axis=1), np.linalg.norm(keys, axis=1))}
    n = len(keys)
    ii, jj = np.indices((n, n))
    return pd.concat([pd.DataFrame({"kind": kind, "layer": layer, "i": ii.ravel(), "j": jj.ravel(),
                                    "value": v.ravel().astype(np.float64)}) for kind, v in mats.items()],
                     ignore_index=True)


def superposition_table(model: str, n_items: int, seed: int) -> pd.DataFrame:
    _, _, _, n_layers, f = MODELS[model]
    rng = np.random.default_rng(seed)
    return pd.concat([superposition_long(*keys_and_cov(n_items, f, rng), layer) for layer in range(n_layers)],
                     ignore_index=True)


def ref_kurtosis(sup: pd.DataFrame, layer: int, n: int | None = None) -> float:
    """Independent formula: excess kurtosis of P_ij, i ≠ j < n, from the raw moments."""
    p = sup[(sup.kind == "P") & (sup.layer == layer) & (sup.i != sup.j)]
    if n is not None:
        p = p[(p.i < n) & (p.j < n)]
    x = p["value"].to_numpy()
    c = x - x.mean()
    return float(np.mean(c ** 4) / np.mean(c ** 2) ** 2 - 3.0)


def statistics_table(sups: dict, ns) -> pd.DataFrame:
    rows = []
    for model, sup in sups.items():
        label, family, n_params, n_layers, f = MODELS[model]
        for layer in range(n_layers):
            for n in ns:
                rows.append(dict(model=model, label=label, family=family, n_params=n_params, n_layers=n_layers,
                                 d_model=8, d_ff=f, layer=layer, rel_depth=layer / (n_layers - 1), kind="P", n=n,
                                 kurtosis=ref_kurtosis(sup, layer, n), corpus_id=CORPUS))
    return pd.DataFrame(rows)


def items_table(n_items: int) -> pd.DataFrame:
    return pd.DataFrame({"item": np.arange(n_items), "case_id": 1000 + np.arange(n_items),
                         "prompt": [f"The capital of {{}} number {k} is" for k in range(n_items)],
                         "subject": [f"Country {k}" for k in range(n_items)],
                         "target_true": [f"City {k}" for k in range(n_items)],
                         "target_new": "Paris", "relation_id": "P36",
                         "text": [f"The capital of Country {k} number {k} is" for k in range(n_items)]})


def write_tables(results: Path, n_items: int = 48, models=tuple(MODELS), ns=(16, 32, 48)) -> dict:
    results = Path(results)
    sups = {m: superposition_table(m, n_items, seed) for seed, m in enumerate(models)}
    for m, sup in sups.items():
        io.write_parquet(sup, results / "superposition" / f"{m}.parquet",
                         metadata={"model": m, "corpus_id": CORPUS, "n_items": n_items})
    io.write_parquet(statistics_table(sups, ns), results / "statistics.parquet", metadata={"n_items": n_items})
    io.write_parquet(items_table(n_items), results / "knowledge" / "items.parquet", metadata={"n_items": n_items})
    return sups
