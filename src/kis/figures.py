"""The paper's figures, from the Parquet tables only (no model is loaded).

Each `*_figure` function is pure: frames in, (matplotlib Figure, DataFrame of the plotted numbers) out.
`run_*` functions are the rule edges: read the tables, draw, write PNG + CSV atomically.
P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i; its off-diagonal kurtosis is scipy's Fisher, biased (the paper's).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402
from scipy import stats  # noqa: E402

from . import io, probe, superposition  # noqa: E402
from .superposition import kurtosis, offdiag  # noqa: E402

log = logging.getLogger(__name__)

SUP_COLUMNS = superposition.COLUMNS_LONG
STAT_COLUMNS = ("model", "label", "family", "n_params", "layer", "rel_depth", "kind", "n", "kurtosis", "corpus_id")
ITEM_COLUMNS = ("item", "prompt", "subject", "target_true")
FAMILY_CMAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys", "YlOrBr", "PuRd")
KDE_RANGE = (0.0025, 0.9975)  # the KDE x axis spans the central 99.5% of the entries


class FigureError(ValueError):
    """A table does not hold what a figure needs; the message names file, record and field."""


# ---------------------------------------------------------------- checks and selections (pure)

def check_columns(frame: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FigureError(f"{where}: missing column(s) {missing}; has {list(frame.columns)}")


def matrix(sup: pd.DataFrame, kind: str, layer: int, where: str = "superposition") -> np.ndarray:
    """The N×N matrix of one kind at one layer from the long table (kind, layer, i, j, value)."""
    rows = sup[(sup["kind"] == kind) & (sup["layer"] == layer)]
    if rows.empty:
        raise FigureError(f"{where}: no rows with kind={kind!r}, layer={layer} "
                          f"(layers: {sorted(sup.loc[sup['kind'] == kind, 'layer'].unique().tolist())})")
    try:
        m = superposition.to_matrices(rows, where)[0][(kind, int(layer))]
    except ValueError as e:
        raise FigureError(str(e)) from None
    if not np.isfinite(m).all():
        bad = np.argwhere(~np.isfinite(m))[0]
        raise FigureError(f"{where}: kind={kind!r}, layer={layer}, (i, j)=({bad[0]}, {bad[1]}): value is not finite")
    return m


def upper_pairs(m: np.ndarray) -> np.ndarray:
    """Entries with i < j (for symmetric kinds such as cosines: each pair once)."""
    return m[np.triu_indices(len(m), k=1)]


def layers_of(sup: pd.DataFrame, kind: str = "P") -> list[int]:
    return sorted(int(x) for x in sup.loc[sup["kind"] == kind, "layer"].unique())


def pick_layers(available: list[int], spec, where: str) -> list[int]:
    """'all', or a list of layer numbers and first / middle / last (middle = the layer at position L//2)."""
    if spec == "all":
        return list(available)
    if isinstance(spec, (str, int)):
        spec = [spec]
    named = {"first": available[0], "middle": available[len(available) // 2], "last": available[-1]}
    out = []
    for s in spec:
        layer = named.get(s, s) if isinstance(s, str) else int(s)
        if isinstance(layer, str) or layer not in available:
            raise FigureError(f"{where}: layer {s!r} is not available (layers {available[0]}..{available[-1]})")
        if layer not in out:
            out.append(layer)
    return out


def kde_curve(x: np.ndarray, grid: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        raise FigureError(f"{where}: {len(x)} value(s) with no spread; a KDE needs at least two distinct values")
    return stats.gaussian_kde(x)(grid)


def kde_grid_of(samples, points: int) -> np.ndarray:
    """One x grid spanning the central 99.5% of every sample (heavy tails would flatten the peak)."""
    lo = min(np.quantile(s, KDE_RANGE[0]) for s in samples)
    hi = max(np.quantile(s, KDE_RANGE[1]) for s in samples)
    pad = 0.05 * (hi - lo) if hi > lo else 1e-3
    return np.linspace(lo - pad, hi + pad, int(points))


def convergence_ns(stat: pd.DataFrame, model: str, layer: int, n_all: int, where: str) -> list[int]:
    """The item counts n of the statistics table (16, 32, …, N) for this model and layer."""
    rows = stat[(stat["model"] == model) & (stat["kind"] == "P") & (stat["layer"] == layer)]
    ns = sorted(int(n) for n in rows["n"].unique())
    if not ns:
        raise FigureError(f"{where}: no rows with model={model!r}, kind='P', layer={layer}")
    if ns[-1] != n_all:
        raise FigureError(f"{where}: model={model!r}, layer={layer}: largest n is {ns[-1]}, "
                          f"but the superposition table has N={n_all} items")
    return ns


def fact_text(item, where: str = "items") -> str:
    """'prompt with [subject] [target]', e.g. 'The mother tongue of [Danielle Darrieux] is [French]'."""
    probe.check_template(item.prompt, f"{where}: item {item.item}: field 'prompt'", FigureError)
    return item.prompt.replace("{}", f"[{item.subject}]", 1) + f" [{item.target_true}]"


def corpus_note(corpus_ids) -> str:
    ids = sorted({str(c) for c in corpus_ids if c is not None and not (isinstance(c, float) and math.isnan(c))})
    if not ids:
        raise FigureError("no corpus_id: the table does not name the corpus behind C")
    return "C from corpus " + ", ".join(ids)


def human(n: float) -> str:
    """Parameter counts as people write them: 42K, 135M, 1.5B."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def model_order(stat: pd.DataFrame, models, where: str = "statistics") -> pd.DataFrame:
    """One row per model (model, label, family, n_params), smallest first."""
    info = stat.drop_duplicates("model").set_index("model")
    missing = [m for m in models if m not in info.index]
    if missing:
        raise FigureError(f"{where}: no rows for model(s) {missing}")
    return info.loc[list(models), ["label", "family", "n_params"]].reset_index().sort_values(
        ["n_params", "model"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- figures (pure)

def _grid(n: int, ncols: int | None = None, size=(2.6, 2.4), **kw):
    ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols + 1.0, size[1] * nrows + 0.9),
                             squeeze=False, layout="constrained", **kw)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def _heat(ax, m: np.ndarray):
    im = ax.imshow(m, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=0.0, vmin=-1.0, vmax=1.0), interpolation="nearest")
    ax.set_xlabel("knowledge index")
    ax.set_ylabel("knowledge index")
    return im


def heatmap_figure(sup: pd.DataFrame, label: str, layers, corpus_id: str):
    """P per layer of one model: a grid of N×N heatmaps, colour limits [-1, 1] centred at 0."""
    layers = pick_layers(layers_of(sup), layers, f"superposition of {label}")
    fig, axes = _grid(len(layers), size=(2.5, 2.5))
    rows = []
    for ax, layer in zip(axes, layers):
        m = matrix(sup, "P", layer, f"superposition of {label}")
        im = _heat(ax, m)
        ax.set_title(f"layer {layer}", fontsize=10)
        ii, jj = np.indices(m.shape)
        rows.append(pd.DataFrame({"layer": layer, "i": ii.ravel(), "j": jj.ravel(), "value": m.ravel()}))
    for ax in axes:
        ax.label_outer()
    fig.colorbar(im, ax=axes, shrink=0.8, label="$P_{ij}$ (clipped to [-1, 1])")
    fig.suptitle(f"{label}: superposition matrix P per layer\n{corpus_note([corpus_id])}", fontsize=11)
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "label", label)
    table["corpus_id"] = corpus_id
    return fig, table


def heatmap_models_figure(sups: dict, stat: pd.DataFrame, layer: int, corpus_ids: dict):
    """The paper's side-by-side: P at one layer for every model, ordered by parameter count."""
    order = model_order(stat, list(sups))
    fig, axes = _grid(len(order), ncols=len(order), size=(3.0, 3.0))
    rows = []
    for ax, r in zip(axes, order.itertuples()):
        m = matrix(sups[r.model], "P", layer, f"superposition of {r.model}")
        im = _heat(ax, m)
        ax.set_title(f"{r.label}\n{human(r.n_params)} parameters", fontsize=10)
        ii, jj = np.indices(m.shape)
        rows.append(pd.DataFrame({"model": r.model, "label": r.label, "n_params": r.n_params, "layer": layer,
                                  "i": ii.ravel(), "j": jj.ravel(), "value": m.ravel(),
                                  "corpus_id": corpus_ids[r.model]}))
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.colorbar(im, ax=axes, shrink=0.8, label="$P_{ij}$ (clipped to [-1, 1])")
    fig.suptitle(f"Superposition matrix P at layer {layer}, models by size\n{corpus_note(corpus_ids.values())}",
                 fontsize=11)
    return fig, pd.concat(rows, ignore_index=True)


def _kde_axes(ax, curves, title=None):
    """curves: list of (legend label, x, density, colour)."""
    for name, x, y, colour in curves:
        ax.plot(x, y, color=colour, lw=1.4, label=name)
    ax.set_xlabel("off-diagonal $P_{ij}$")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="best")


def kde_figure(sup: pd.DataFrame, label: str, points: int, corpus_id: str):
    """Gaussian KDE of the off-diagonal P entries, one panel per layer; the legend gives the kurtosis."""
    layers = layers_of(sup)
    xs = {layer: offdiag(matrix(sup, "P", layer, f"superposition of {label}")) for layer in layers}
    grid = kde_grid_of(list(xs.values()), points)  # one x axis for all layers: panels compare directly
    fig, axes = _grid(len(layers), size=(2.8, 2.2), sharex=True, sharey=True)
    rows = []
    for ax, layer in zip(axes, layers):
        x = xs[layer]
        dens = kde_curve(x, grid, f"superposition of {label}, layer {layer}")
        k = kurtosis(x)
        _kde_axes(ax, [(f"kurtosis {k:.2f}", grid, dens, "C0")], f"layer {layer}")
        rows.append(pd.DataFrame({"layer": layer, "x": grid, "density": dens, "kurtosis": k, "n_values": len(x)}))
    for ax in axes:
        ax.label_outer()
    fig.suptitle(f"{label}: KDE of off-diagonal P per layer\n{corpus_note([corpus_id])}", fontsize=11)
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "label", label)
    table["corpus_id"] = corpus_id
    return fig, table


def kde_models_figure(sups: dict, stat: pd.DataFrame, layer: int, points: int, corpus_ids: dict):
    """KDE of off-diagonal P at one layer, every model on one axis (ordered by size)."""
    order = model_order(stat, list(sups))
    xs = {r.model: offdiag(matrix(sups[r.model], "P", layer, f"superposition of {r.model}"))
          for r in order.itertuples()}
    grid = kde_grid_of(list(xs.values()), points)
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(order)))
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    curves, rows = [], []
    for colour, r in zip(colours, order.itertuples()):
        dens = kde_curve(xs[r.model], grid, f"superposition of {r.model}, layer {layer}")
        k = kurtosis(xs[r.model])
        curves.append((f"{r.label} (kurtosis {k:.2f})", grid, dens, colour))
        rows.append(pd.DataFrame({"model": r.model, "label": r.label, "n_params": r.n_params, "layer": layer,
                                  "x": grid, "density": dens, "kurtosis": k, "n_values": len(xs[r.model]),
                                  "corpus_id": corpus_ids[r.model]}))
    _kde_axes(ax, curves, f"Off-diagonal P at layer {layer}, all models\n{corpus_note(corpus_ids.values())}")
    return fig, pd.concat(rows, ignore_index=True)


def _family_colours(info: pd.DataFrame) -> dict:
    """Colour by family, shade by size within the family (darker = larger)."""
    out = {}
    for f_idx, (family, grp) in enumerate(info.sort_values("family").groupby("family", sort=True)):
        cmap = plt.get_cmap(FAMILY_CMAPS[f_idx % len(FAMILY_CMAPS)])
        grp = grp.sort_values(["n_params", "model"])
        shades = np.linspace(0.45, 0.95, len(grp)) if len(grp) > 1 else [0.75]
        out.update({m: cmap(s) for m, s in zip(grp["model"], shades)})
    return out


def scaling_law_figure(stat: pd.DataFrame):
    """Left: kurtosis of off-diagonal P (n = N) against relative depth per model. Right: its layer mean
    against parameter count, a line through each family's sizes (log x): families differ in tokenizer, width and
    training, so the size trend is read within a family. The table adds each model's mean over its layers and over
    the early / middle / late third of its relative depth."""
    check_columns(stat, STAT_COLUMNS, "statistics")
    p = stat[stat["kind"] == "P"]
    if p.empty:
        raise FigureError("statistics: no rows with kind='P'")
    full = p[p["n"] == p.groupby("model")["n"].transform("max")]  # n = N: every item
    if full.duplicated(["model", "layer"]).any():
        dup = full[full.duplicated(["model", "layer"], keep=False)].iloc[0]
        raise FigureError(f"statistics: model={dup.model!r}, layer={dup.layer}: more than one row with kind='P', "
                          f"n={dup.n}")
    table = full[["model", "label", "family", "n_params", "layer", "rel_depth", "n", "kurtosis", "corpus_id"]]
    table = table.sort_values(["n_params", "model", "layer"], kind="stable").reset_index(drop=True)
    table["mean_kurtosis_model"] = table.groupby("model")["kurtosis"].transform("mean")
    # early / middle / late: thirds of relative depth (a layer on a boundary goes to the earlier third)
    table["depth_third"] = pd.cut(table["rel_depth"], [-np.inf, 1 / 3, 2 / 3, np.inf],
                                  labels=["early", "middle", "late"]).astype(str)
    table["mean_kurtosis_third"] = table.groupby(["model", "depth_third"])["kurtosis"].transform("mean")
    info = table.drop_duplicates("model")
    colours = _family_colours(info)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.6), layout="constrained")
    for r in info.itertuples():
        d = table[table["model"] == r.model]
        ax1.plot(d["rel_depth"], d["kurtosis"], "-o", ms=3, lw=1.3, color=colours[r.model],
                 label=f"{r.label} ({human(r.n_params)})")
    ax1.set_xlabel("relative depth (layer / (L − 1))")
    ax1.set_ylabel("kurtosis of off-diagonal P")
    ax1.set_title("Kurtosis across layers", fontsize=10)
    ax1.legend(fontsize=7, frameon=False, ncol=2 if len(info) > 6 else 1)
    for family, grp in info.groupby("family", sort=True):
        grp = grp.sort_values("n_params")
        ax2.plot(grp["n_params"], grp["mean_kurtosis_model"], "-", color=colours[grp["model"].iloc[-1]],
                 lw=1.3, label=family)
        ax2.scatter(grp["n_params"], grp["mean_kurtosis_model"], c=[colours[m] for m in grp["model"]], s=30,
                    zorder=3, edgecolors="k", linewidths=0.4)
        for r in grp.itertuples():
            ax2.annotate(r.label, (r.n_params, r.mean_kurtosis_model), fontsize=7, xytext=(4, 4),
                         textcoords="offset points")
    ax2.set_xscale("log")
    ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
    ax2.xaxis.set_minor_formatter(NullFormatter())
    if np.log10(info["n_params"].max() / info["n_params"].min()) < 1:  # under a decade: no major tick inside
        ax2.set_xticks(sorted(info["n_params"].unique()))
    ax2.set_xlabel("parameters")
    ax2.set_ylabel("mean kurtosis over layers")
    ax2.set_title("Mean kurtosis against model size\n(a line joins the sizes of one family: compare within it)",
                  fontsize=10)
    ax2.legend(fontsize=8, frameon=False, title="family", title_fontsize=8)
    ax2.margins(x=0.25, y=0.15)
    fig.suptitle(f"Scaling law of knowledge superposition\n{corpus_note(table['corpus_id'])}", fontsize=11)
    return fig, table


def angles_figure(sup: pd.DataFrame, label: str, layers, corpus_id: str, bin_width: float = 2.0):
    """Pairwise angles between keys, in whitening space (C^-1/2 k) and in activation space (k)."""
    chosen = pick_layers(layers_of(sup, "cos_white"), layers, f"superposition of {label}")
    edges = np.arange(0.0, 180.0 + bin_width, bin_width)
    fig, axes = _grid(len(chosen), ncols=len(chosen), size=(3.6, 3.0))
    rows = []
    for ax, layer in zip(axes, chosen):
        for kind, space, colour in (("cos_white", "whitening", "C3"), ("cos_act", "activation", "C0")):
            cos = upper_pairs(matrix(sup, kind, layer, f"superposition of {label}"))
            deg = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))  # θ = arccos(cos)
            dens, _ = np.histogram(deg, bins=edges, density=True)
            ax.stairs(dens, edges, color=colour, fill=True, alpha=0.35)
            ax.stairs(dens, edges, color=colour, lw=1.2,
                      label=f"{space}: {deg.mean():.1f}° ± {deg.std():.1f}°")
            rows.append(pd.DataFrame({"layer": layer, "space": space, "bin_left": edges[:-1], "bin_right": edges[1:],
                                      "density": dens, "angle_mean": deg.mean(), "angle_std": deg.std(),
                                      "n_pairs": len(deg)}))
        ax.axvline(90.0, color="k", ls="--", lw=0.9)
        ax.set_ylim(0, 1.3 * ax.get_ylim()[1])  # room for the legend above the histograms
        ax.set_xlim(0, 180)
        ax.set_xticks([0, 45, 90, 135, 180])
        ax.set_xlabel("angle between keys (degrees)")
        ax.set_ylabel("density")
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left", framealpha=0.95, edgecolor="none")  # hides the 90° line
    fig.suptitle(f"{label}: pairwise key angles, whitening vs activation space (90° dashed)\n"
                 f"{corpus_note([corpus_id])}", fontsize=11)
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "label", label)
    table["corpus_id"] = corpus_id
    return fig, table


def convergence_figure(sup: pd.DataFrame, label: str, layer: int, ns: list[int], points: int, corpus_id: str):
    """Off-diagonal P of the first n items (P[:n, :n]) as n grows: KDEs on one axis, kurtosis against n."""
    m = matrix(sup, "P", layer, f"superposition of {label}")
    if ns[-1] > len(m):
        raise FigureError(f"superposition of {label}: n={ns[-1]} exceeds the {len(m)} items")
    xs = {n: offdiag(m[:n, :n]) for n in ns}
    grid = kde_grid_of(list(xs.values()), points)
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(ns)))
    ks = {n: kurtosis(xs[n]) for n in ns}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    curves, rows = [], []
    for colour, n in zip(colours, ns):
        dens = kde_curve(xs[n], grid, f"superposition of {label}, layer {layer}, n={n}")
        curves.append((f"n = {n} (kurtosis {ks[n]:.2f})", grid, dens, colour))
        rows.append(pd.DataFrame({"n": n, "x": grid, "density": dens, "kurtosis": ks[n], "n_values": len(xs[n])}))
    _kde_axes(ax1, curves, f"KDE of off-diagonal P[:n, :n], layer {layer}")
    ax2.plot(ns, [ks[n] for n in ns], "-o", color="C3")
    ax2.set_xscale("log", base=2)
    if len(ns) <= 8:
        ax2.set_xticks(ns, [str(n) for n in ns])
    ax2.set_xlabel("number of facts n")
    ax2.set_ylabel("kurtosis of off-diagonal P")
    ax2.set_title("Kurtosis against n", fontsize=10)
    fig.suptitle(f"{label}: convergence in the number of facts\n{corpus_note([corpus_id])}", fontsize=11)
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "layer", layer)
    table.insert(0, "label", label)
    table["corpus_id"] = corpus_id
    return fig, table


def case_study(sup: pd.DataFrame, items: pd.DataFrame, label: str, layer: int, top: int, corpus_id: str,
               where: str = "items"):
    """The `top` off-diagonal entries with the largest |P_ij| and the two facts of each: (Markdown, frame)."""
    check_columns(items, ITEM_COLUMNS, where)
    m = matrix(sup, "P", layer, f"superposition of {label}")
    by_item = items.set_index("item")
    if by_item.index.duplicated().any():
        raise FigureError(f"{where}: item {by_item.index[by_item.index.duplicated()][0]} appears twice")
    missing = sorted(set(range(len(m))) - set(by_item.index))
    if missing:
        raise FigureError(f"{where}: no row for item(s) {missing[:10]} of the {len(m)}×{len(m)} P of {label}")
    ii, jj = np.nonzero(~np.eye(len(m), dtype=bool))
    vals = m[ii, jj]
    order = np.lexsort((jj, ii, -np.abs(vals)))[:top]  # largest |P_ij| first, ties by (i, j)
    texts = {int(r.item): fact_text(r, where) for r in items.itertuples()}
    cols = {"rank": np.arange(1, len(order) + 1), "layer": layer, "i": ii[order], "j": jj[order],
            "value": vals[order], "abs_value": np.abs(vals[order])}
    table = pd.DataFrame(cols)
    table["case_id_i"] = [by_item.loc[i, "case_id"] if "case_id" in by_item else None for i in table["i"]]
    table["case_id_j"] = [by_item.loc[j, "case_id"] if "case_id" in by_item else None for j in table["j"]]
    table["fact_i"] = [texts[i] for i in table["i"]]
    table["fact_j"] = [texts[j] for j in table["j"]]
    table.insert(0, "label", label)
    table["corpus_id"] = corpus_id

    def cell(s):
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = [f"# Most superposed fact pairs: {label}, layer {layer}", "",
             f"The {len(table)} off-diagonal entries of P with the largest |P_ij| among {len(m)} facts "
             f"({corpus_note([corpus_id])}). A ROME edit of fact i moves the FFN output for fact j by "
             "P_ij (v_i − W k_i): P_ij = ±1 means fact j receives the whole edit.", "",
             "| rank | P_ij | i | fact i | j | fact j |", "|---:|---:|---:|---|---:|---|"]
    lines += [f"| {r.rank} | {r.value:.4f} | {r.i} | {cell(r.fact_i)} | {r.j} | {cell(r.fact_j)} |"
              for r in table.itertuples()]
    return "\n".join(lines) + "\n", table


# ---------------------------------------------------------------- I/O edges (called by workflow scripts)

def read_superposition(path, kinds=("P",)) -> tuple[pd.DataFrame, str]:
    """The long table of some kinds, and the corpus_id of its metadata."""
    path = Path(path)
    frame = superposition.read_frame(path, kinds)
    check_columns(frame, SUP_COLUMNS, str(path))
    if frame.empty:
        raise FigureError(f"{path}: no rows with kind in {list(kinds)}")
    corpus_id = io.read_parquet_metadata(path).get("corpus_id")
    if not corpus_id:
        raise FigureError(f"{path}: metadata has no corpus_id (the corpus behind C)")
    return frame, corpus_id


def read_statistics(path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    check_columns(frame, STAT_COLUMNS, str(path))
    return frame


def save(fig, table: pd.DataFrame, png, csv, dpi: int, model: str | None = None, float_format="%.6g") -> None:
    """PNG at `dpi` and the numbers behind it as CSV (first column: the model key), each written atomically."""
    if model is not None:
        table.insert(0, "model", model)
    with io.atomic_path(png) as tmp:  # tight: a long corpus id in a title widens the image instead of being cut off
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    with io.atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format)


def run_heatmap(table, model, png, csv, label, layers, dpi):
    sup, corpus_id = read_superposition(table)
    save(*heatmap_figure(sup, label, layers, corpus_id), png, csv, dpi, model)


def run_heatmap_models(tables, models, statistics, png, csv, layer, dpi):
    read = {m: read_superposition(p) for m, p in zip(models, tables)}
    fig, frame = heatmap_models_figure({m: r[0] for m, r in read.items()}, read_statistics(statistics), layer,
                                       {m: r[1] for m, r in read.items()})
    save(fig, frame, png, csv, dpi)


def run_kde(table, model, png, csv, label, points, dpi):
    sup, corpus_id = read_superposition(table)
    save(*kde_figure(sup, label, points, corpus_id), png, csv, dpi, model)


def run_kde_models(tables, models, statistics, png, csv, layer, points, dpi):
    read = {m: read_superposition(p) for m, p in zip(models, tables)}
    fig, frame = kde_models_figure({m: r[0] for m, r in read.items()}, read_statistics(statistics), layer, points,
                                   {m: r[1] for m, r in read.items()})
    save(fig, frame, png, csv, dpi)


def run_scaling_law(statistics, png, csv, dpi):
    save(*scaling_law_figure(read_statistics(statistics)), png, csv, dpi)


def run_angles(table, model, png, csv, label, layers, dpi):
    sup, corpus_id = read_superposition(table, kinds=("cos_white", "cos_act"))
    save(*angles_figure(sup, label, layers, corpus_id), png, csv, dpi, model)


def run_convergence(table, statistics, model, png, csv, label, layer, points, dpi):
    sup, corpus_id = read_superposition(table)
    stat = read_statistics(statistics)
    n_all = len(matrix(sup, "P", layer, str(table)))
    ns = convergence_ns(stat, model, layer, n_all, str(statistics))
    save(*convergence_figure(sup, label, layer, ns, points, corpus_id), png, csv, dpi, model)


def run_case_study(table, item_table, model, md, csv, label, layer, top):
    sup, corpus_id = read_superposition(table)
    text, frame = case_study(sup, pd.read_parquet(item_table), label, layer, top, corpus_id, where=str(item_table))
    frame.insert(0, "model", model)
    with io.atomic_path(md) as tmp:
        Path(tmp).write_text(text)
    with io.atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
