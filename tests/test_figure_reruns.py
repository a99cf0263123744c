"""Figures after a finished tiny end-to-end run (tests/conftest.py `tiny_run`): they agree with the tables, and
dry runs show that each figure target and each figure setting touches only its own figure jobs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import wf
from kis import io

FIGURE_RULES = {"fig_heatmap", "fig_heatmap_models", "fig_kde", "fig_kde_models", "fig_scaling_law", "fig_angles",
                "fig_convergence", "fig_case_study"}
TARGETS = {"all", "figures", "heatmaps", "kde", "scaling_law", "angles", "convergence", "case_study"}
N_MODELS = 2  # tiny_run: tiny GPT-2 and tiny Llama


def jobs(config, *targets, extra=()) -> dict[str, int]:
    """Dry run: {rule: planned jobs}, without the target rules (which only collect files)."""
    return {rule: n for rule, n in wf.planned_jobs(config, *targets, extra=extra).items() if rule not in TARGETS}


def with_figures(config: Path, name: str, **settings) -> Path:
    """A copy of the run's config with changed figure settings, beside it (same .snakemake, same results)."""
    return wf.variant(config, name, lambda cfg: cfg.update(figures={**cfg.get("figures", {}), **settings}))


def test_figures_agree_with_the_tables(tiny_run):
    res = wf.results(tiny_run)
    stat = pd.read_parquet(res / "statistics.parquet")
    scaling = pd.read_csv(res / "figures" / "scaling_law" / "scaling_law.csv")
    full = stat[(stat.kind == "P") & (stat.n == stat.n.max())]
    assert len(scaling) == len(full) == N_MODELS * 3  # one row per (model, layer)
    merged = scaling.merge(full, on=["model", "layer"], suffixes=("", "_stat"))
    np.testing.assert_allclose(merged["kurtosis"], merged["kurtosis_stat"], rtol=1e-5)
    for model in stat.model.unique():
        sup_path = res / "superposition" / f"{model}.parquet"
        sup = pd.read_parquet(sup_path)
        corpus = io.read_parquet_metadata(sup_path)["corpus_id"]
        kde = pd.read_csv(res / "figures" / "kde" / f"kde_{model}.csv")
        assert (kde.corpus_id == corpus).all() and (kde.model == model).all()
        for layer, k in kde.drop_duplicates("layer")[["layer", "kurtosis"]].itertuples(index=False):
            p = sup[(sup.kind == "P") & (sup.layer == layer) & (sup.i != sup.j)].value
            assert k == pytest.approx(stats.kurtosis(p, fisher=True, bias=True), rel=1e-5)
        case = pd.read_csv(res / "figures" / "case_study" / f"case_study_{model}.csv")
        p0 = sup[(sup.kind == "P") & (sup.layer == 0) & (sup.i != sup.j)]
        assert case.abs_value.iloc[0] == pytest.approx(p0.value.abs().max(), rel=1e-5)
        assert len(case) == 20 and (res / "figures" / "heatmaps" / f"heatmaps_{model}.png").stat().st_size > 0


def test_a_figure_target_touches_only_its_jobs(tiny_run):
    assert jobs(tiny_run, "kde") == {}  # finished: nothing to do
    forced = jobs(tiny_run, "kde", extra=("--forcerun", "fig_kde", "fig_kde_models"))
    assert forced == {"fig_kde": N_MODELS, "fig_kde_models": 1}  # no upstream rule, no other figure
    forced = jobs(tiny_run, "figures", extra=("--forcerun", "fig_case_study"))
    assert forced == {"fig_case_study": N_MODELS}


@pytest.mark.parametrize("setting, value, expected", [
    ("kde_points", 128, {"fig_kde": N_MODELS, "fig_kde_models": 1, "fig_convergence": N_MODELS}),
    ("heatmap_layers", [0, 2], {"fig_heatmap": N_MODELS}),
    ("angle_layers", ["first"], {"fig_angles": N_MODELS}),
    ("convergence_layer", 1, {"fig_convergence": N_MODELS}),
    ("case_study_layer", 2, {"fig_case_study": N_MODELS}),
    ("case_study_top", 5, {"fig_case_study": N_MODELS}),
])
def test_a_figure_setting_reruns_only_its_figure(tiny_run, setting, value, expected):
    assert jobs(with_figures(tiny_run, setting, **{setting: value})) == expected


def test_dpi_reruns_every_png_but_no_table(tiny_run):
    planned = jobs(with_figures(tiny_run, "dpi", dpi=120))
    assert {r: n for r, n in planned.items() if r in FIGURE_RULES} == {
        "fig_heatmap": N_MODELS, "fig_heatmap_models": 1, "fig_kde": N_MODELS, "fig_kde_models": 1,
        "fig_scaling_law": 1, "fig_angles": N_MODELS, "fig_convergence": N_MODELS}
    assert all(r.startswith("fig_") for r in planned), planned  # other figure families may use dpi; no table
