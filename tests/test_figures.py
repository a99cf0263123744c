"""Figures from small synthetic tables (tests/synth.py) in the formats of docs/CONTRACTS.md (no model, no pipeline)."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kis import figures, io
from synth import CORPUS, MODELS, ref_kurtosis, write_tables

@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    sups = write_tables(root)
    return root, sups


def assert_no_empty_axes(fig):
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.lines or ax.images or ax.patches or ax.collections, f"empty panel {ax.get_title()!r}"


# ------------------------------------------------------------ tests

def test_heatmap_norm_and_values(tables):
    root, sups = tables
    sup, corpus = figures.read_superposition(root / "superposition" / "big.parquet")
    assert corpus == CORPUS
    fig, table = figures.heatmap_figure(sup, "Big-2M", "all", corpus)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == MODELS["big"][3]  # one panel per layer
    for im in images:
        norm = im.norm
        assert (norm.vmin, norm.vcenter, norm.vmax) == (-1.0, 0.0, 1.0)
        assert norm(0.0) == pytest.approx(0.5) and norm(-1.0) == 0.0 and norm(1.0) == 1.0
        assert im.get_cmap().name == "RdBu_r"
    p2 = sup[(sup.kind == "P") & (sup.layer == 2)].pivot(index="i", columns="j", values="value").to_numpy()
    np.testing.assert_allclose(images[2].get_array(), p2)
    assert "knowledge index" in {fig.axes[0].get_xlabel(), fig.axes[-2].get_xlabel()}
    assert CORPUS in fig._suptitle.get_text()
    assert len(table) == MODELS["big"][3] * 48 ** 2
    assert_no_empty_axes(fig)


def test_heatmap_layer_selection_and_errors(tables):
    root, _ = tables
    sup, corpus = figures.read_superposition(root / "superposition" / "big.parquet")
    fig, table = figures.heatmap_figure(sup, "Big-2M", [0, 3], corpus)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["layer 0", "layer 3"]
    assert sorted(table.layer.unique()) == [0, 3]
    with pytest.raises(figures.FigureError, match="layer 9"):
        figures.heatmap_figure(sup, "Big-2M", [9], corpus)
    broken = sup.drop(index=sup.index[(sup.kind == "P") & (sup.layer == 1)][:1])
    with pytest.raises(figures.FigureError, match="kind=P layer=1: fields .i., .j. do not cover"):
        figures.matrix(broken, "P", 1, "x.parquet")


def test_heatmap_models_ordered_by_size(tables):
    root, sups = tables
    stat = figures.read_statistics(root / "statistics.parquet")
    fig, table = figures.heatmap_models_figure(sups, stat, 0, {m: CORPUS for m in sups})
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.images]
    assert titles == ["Small-1M", "Big-2M", "Neo-3M"]  # by n_params, not by key order
    assert list(table.drop_duplicates("model").model) == ["small", "big", "neo"]
    assert_no_empty_axes(fig)


def legend_kurtoses(ax):
    return [float(re.search(r"kurtosis (-?[\d.]+)", t.get_text()).group(1)) for t in ax.get_legend().get_texts()]


def test_kde_legend_carries_scipy_kurtosis(tables):
    root, sups = tables
    sup, corpus = figures.read_superposition(root / "superposition" / "neo.parquet")
    fig, table = figures.kde_figure(sup, "Neo-3M", 128, corpus)
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == MODELS["neo"][3]
    for layer, ax in enumerate(panels):
        p = sup[(sup.kind == "P") & (sup.layer == layer) & (sup.i != sup.j)]["value"]
        k = stats.kurtosis(p, fisher=True, bias=True)
        assert legend_kurtoses(ax) == [pytest.approx(k, abs=0.006)]
        assert k == pytest.approx(ref_kurtosis(sup, layer))
        x, y = ax.lines[0].get_data()
        np.testing.assert_allclose(y, stats.gaussian_kde(p.to_numpy())(x), rtol=1e-10)
        assert len(x) == 128
    assert_no_empty_axes(fig)


def test_kde_models_one_axis(tables):
    root, sups = tables
    stat = figures.read_statistics(root / "statistics.parquet")
    fig, table = figures.kde_models_figure(sups, stat, 0, 64, {m: CORPUS for m in sups})
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" (")[0] for t in texts] == ["Small-1M", "Big-2M", "Neo-3M"]
    expected = [ref_kurtosis(sups[m], 0) for m in ("small", "big", "neo")]
    assert legend_kurtoses(ax) == [pytest.approx(k, abs=0.006) for k in expected]
    assert CORPUS in ax.get_title()


def test_scaling_law_rows_and_values(tables):
    root, sups = tables
    stat = figures.read_statistics(root / "statistics.parquet")
    fig, table = figures.scaling_law_figure(stat)
    assert len(table) == sum(MODELS[m][3] for m in sups)  # one row per (model, layer) ...
    assert not table.duplicated(["model", "layer"]).any()
    assert (table.n == 48).all()  # ... at n = N, although the statistics hold n = 16, 32 too
    for r in table.itertuples():
        assert r.kurtosis == pytest.approx(ref_kurtosis(sups[r.model], r.layer))
    mean_small = np.mean([ref_kurtosis(sups["small"], l) for l in range(3)])
    assert table[table.model == "small"].mean_kurtosis_model.iloc[0] == pytest.approx(mean_small)
    # thirds of relative depth: 3 layers at 0, 0.5, 1 → early, middle, late, one layer each
    small = table[table.model == "small"].sort_values("layer")
    assert small.depth_third.tolist() == ["early", "middle", "late"]
    assert small.mean_kurtosis_third.tolist() == pytest.approx([ref_kurtosis(sups["small"], l) for l in range(3)])
    for m, g in table.groupby("model"):
        for third, h in g.groupby("depth_third"):
            assert np.allclose(h.mean_kurtosis_third, h["kurtosis"].mean())
    ax1, ax2 = fig.axes
    assert len(ax1.lines) == 3 and ax2.get_xscale() == "log"
    # one line per family through its sizes: the two gpt2 models joined, the NeoX model alone
    assert sorted(len(ln.get_xdata()) for ln in ax2.lines) == [1, 2] and "within" in ax2.get_title()
    # colour by family: the two gpt2 models share a hue, the NeoX model has another; the larger is darker
    colours = {ln.get_label().split(" (")[0]: np.array(ln.get_color()[:3]) for ln in ax1.lines}
    assert colours["Big-2M"].sum() < colours["Small-1M"].sum()
    assert np.argmax(colours["Small-1M"]) == np.argmax(colours["Big-2M"]) != np.argmax(colours["Neo-3M"])
    assert_no_empty_axes(fig)


def test_angles(tables):
    root, _ = tables
    sup, corpus = figures.read_superposition(root / "superposition" / "neo.parquet", kinds=("cos_white", "cos_act"))
    fig, table = figures.angles_figure(sup, "Neo-3M", ["first", "middle", "last"], corpus)
    assert sorted(table.layer.unique()) == [0, 2, 4]
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 3
    for ax in panels:
        assert any(np.allclose(ln.get_xdata(), 90.0) for ln in ax.lines)  # 90° marked
    w = sup[(sup.kind == "cos_white") & (sup.layer == 2) & (sup.i < sup.j)]["value"].to_numpy()
    got = table[(table.layer == 2) & (table.space == "whitening")].angle_mean.iloc[0]
    assert got == pytest.approx(np.mean(np.arccos(w)) * 180 / np.pi)
    d = table[(table.layer == 2) & (table.space == "activation")]
    assert (d.density * (d.bin_right - d.bin_left)).sum() == pytest.approx(1.0)
    assert_no_empty_axes(fig)


def test_convergence_uses_first_n_submatrix(tables):
    root, sups = tables
    stat = figures.read_statistics(root / "statistics.parquet")
    sup, corpus = figures.read_superposition(root / "superposition" / "small.parquet")
    ns = figures.convergence_ns(stat, "small", 1, 48, "statistics")
    assert ns == [16, 32, 48]
    fig, table = figures.convergence_figure(sup, "Small-1M", 1, ns, 64, corpus)
    ks = table.drop_duplicates("n").set_index("n")["kurtosis"]
    for n in ns:
        assert ks[n] == pytest.approx(ref_kurtosis(sups["small"], 1, n))
    ax1, ax2 = fig.axes
    assert legend_kurtoses(ax1) == [pytest.approx(ks[n], abs=0.006) for n in ns]
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), [ks[n] for n in ns])
    assert_no_empty_axes(fig)
    with pytest.raises(figures.FigureError, match="largest n is 48"):
        figures.convergence_ns(stat, "small", 1, 64, "statistics")


def test_case_study_top_pair(tables):
    root, sups = tables
    sup = sups["big"]
    items = pd.read_parquet(root / "knowledge" / "items.parquet")
    md, table = figures.case_study(sup, items, "Big-2M", 0, 20, CORPUS)
    p = sup[(sup.kind == "P") & (sup.layer == 0) & (sup.i != sup.j)]
    best = p.loc[p.value.abs().idxmax()]
    assert (table.i.iloc[0], table.j.iloc[0]) == (best.i, best.j)
    assert table.value.iloc[0] == best.value
    assert len(table) == 20 and (np.diff(table.abs_value) <= 0).all() and (table.i != table.j).all()
    top20 = np.sort(p.value.abs().to_numpy())[::-1][:20]
    np.testing.assert_allclose(table.abs_value, top20)
    i = int(best.i)
    assert table.fact_i.iloc[0] == f"The capital of [Country {i}] number {i} is [City {i}]"
    assert table.case_id_i.iloc[0] == 1000 + i
    row1 = md.splitlines()[6]
    assert row1.startswith(f"| 1 | {best.value:.4f} | {i} |") and CORPUS in md
    with pytest.raises(figures.FigureError, match="no row for item"):
        figures.case_study(sup, items[items.item != 5], "Big-2M", 0, 20, CORPUS)


def test_run_functions_write_png_and_csv(tables, tmp_path):
    root, _ = tables
    sup_path = root / "superposition" / "small.parquet"
    figures.run_kde(sup_path, "small", tmp_path / "k.png", tmp_path / "k.csv", "Small-1M", 32, 72)
    from matplotlib.image import imread
    img = imread(tmp_path / "k.png")
    assert img.ndim == 3 and img.shape[0] > 50
    csv = pd.read_csv(tmp_path / "k.csv")
    assert set(csv.layer) == {0, 1, 2} and (csv.corpus_id == CORPUS).all() and (csv.model == "small").all()
    from PIL import Image
    figures.run_scaling_law(root / "statistics.parquet", tmp_path / "s.png", tmp_path / "s.csv", 300)
    assert Image.open(tmp_path / "s.png").info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_missing_corpus_id_is_an_error(tables, tmp_path):
    root, sups = tables
    io.write_parquet(sups["small"], tmp_path / "s.parquet", metadata={"model": "small"})
    with pytest.raises(figures.FigureError, match="corpus_id"):
        figures.read_superposition(tmp_path / "s.parquet")


def test_case_study_bad_prompt_names_file_item_and_field(tables):
    root, sups = tables
    items = pd.read_parquet(root / "knowledge" / "items.parquet")
    items.loc[items.item == 7, "prompt"] = "no placeholder here"
    with pytest.raises(figures.FigureError, match=r"items\.parquet: item 7: field 'prompt'"):
        figures.case_study(sups["big"], items, "Big-2M", 0, 20, CORPUS, where="items.parquet")


def test_parameter_counts_read_like_people_write_them():
    assert [figures.human(n) for n in (42_600, 134_515_008, 1.5e9, 6.05e9, 999)] == \
        ["42.6K", "135M", "1.5B", "6.05B", "999"]


def test_figure_modules_import_without_torch():
    """The figure rules run in envs/figures.yaml, which has no torch: kis.figures and kis.editing_figures (and
    what they import: the superposition readers and statistics, the template check) must not need it."""

    code = ("import sys\n"
            "class NoTorch:\n"  # any `import torch` now fails
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('no torch here')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "import kis.figures, kis.editing_figures\n"
            "assert 'torch' not in sys.modules\n"
            "assert kis.figures.kurtosis([0.0, 1.0, 0.0, -1.0]) == -1.0  # m4 / m2² − 3 = 0.5 / 0.25 − 3\n"
            "kis.probe.check_template('{} is', 'prompt')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_title_wider_than_the_figure_widens_the_png_instead_of_being_cut(tmp_path):
    """The corpus id in a title can be longer than the figure is wide: the saved PNG grows to hold it."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    fig.suptitle("C from corpus " + "x" * 120)
    figures.save(fig, pd.DataFrame({"a": [1]}), tmp_path / "t.png", tmp_path / "t.csv", dpi=50)
    assert Image.open(tmp_path / "t.png").size[0] > 4 * 2 * 50  # far wider than 2 in × 50 dpi
