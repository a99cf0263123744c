"""Figures of the lifelong editing trajectories, from the trajectory tables only (no model is loaded).

trajectory_figure: unrelated-knowledge confidence (mean held-out P(target_true)), retention of earlier edits and
efficacy against the number of edits; one row of panels per model, one line per method; a diverged trajectory
ends in a cross. interference_figure: measured ‖(W_n − W_0) k_j‖ against the paper's prediction ‖Σ_i r_i P_ij‖
(P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i) for every held-out key j at every recorded step, with y = x, and the median
relative error of that prediction per step (interference_table). forecast_figure: per (model, method) the ROC AUC
for "held-out fact forgotten" at each recorded step of the pre-edit risk and its baselines, and of the measured
displacement (post-edit, for reference) (kis.forecast.step_table).
"""
from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import forecast, io  # noqa: E402
from .figures import FigureError, corpus_note, save  # noqa: E402

log = logging.getLogger(__name__)

PANELS = (("heldout_p_true", "unrelated knowledge: mean P(true)"), ("retention", "retention of earlier edits"),
          ("efficacy", "efficacy (edits so far)"))
NEEDED = ("step", "method", "model", "layer", "status", *(p for p, _ in PANELS), "interference_measured_keys",
          "interference_predicted_c_keys", "interference_c_error_keys")
# (colour, dashes, marker) of each method of kis.editing.METHODS, in that order (kis.editing needs torch, which the
# figure rules' env lacks; tests/test_editing.py checks the two agree). Methods often coincide (efficacy 1.0 for
# all): distinct dashes and markers keep every line visible.
STYLES = {"rome": ("tab:red", "-", "o"), "r-rome": ("tab:orange", "-", "v"), "memit": ("tab:blue", "--", "s"),
          "alphaedit": ("tab:green", "-.", "^"), "deltaedit": ("tab:purple", ":", "D"),
          "wilke": ("tab:brown", (0, (5, 1, 1, 1)), "P"), "least-interference": ("black", "-", "*")}


def log_ticks(axis, values) -> list[float]:
    """Labels on a log axis that neither vanish nor overlap: over two decades or more matplotlib's 10^k labels; over
    less (where a range inside one decade shows no 10^k tick at all) 1, 2, 5 × 10^k, else every 1…9 × 10^k, else
    the two ends, written with two significant digits; minor ticks unlabelled. → the labelled ticks ([]: default)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if not len(v) or v.max() / v.min() >= 100:
        return []
    lo, hi = float(v.min()), float(v.max())
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for subs in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0 ** e for e in decades for m in subs if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 2:
            break
    else:
        ticks = [lo, hi]
    axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _pos: f"{x:.2g}"))
    return ticks


def read_one(p, needed) -> pd.DataFrame:
    """One Parquet table with the `needed` columns and rows, its corpus_id (Parquet metadata) as a column."""
    f = pd.read_parquet(p)
    missing = [c for c in needed if c not in f.columns]
    if missing:
        raise FigureError(f"{p}: missing column(s) {missing}")
    if f.empty:
        raise FigureError(f"{p}: no rows")
    corpus_id = io.read_parquet_metadata(p).get("corpus_id")
    if not corpus_id:
        raise FigureError(f"{p}: metadata field corpus_id is missing (which corpus made C?)")
    return f.assign(corpus_id=str(corpus_id))


def _read(paths, needed, what: str) -> pd.DataFrame:
    """Parquet tables stacked (read_one each)."""
    frames = [read_one(p, needed) for p in paths]
    if not frames:
        raise FigureError(f"no {what} tables given")
    return pd.concat(frames, ignore_index=True)


def read_tables(paths) -> pd.DataFrame:
    """The trajectory tables stacked, with the corpus behind each table's C (Parquet metadata) as `corpus_id`."""
    return _read(paths, NEEDED, "trajectory")


def _methods(frame):
    present = list(dict.fromkeys(frame.method))
    return [m for m in STYLES if m in present] + [m for m in present if m not in STYLES]


def trajectory_figure(frame: pd.DataFrame, labels: dict | None = None):
    """(Figure, plotted numbers): PANELS against step, a row per model, a line per method."""
    labels = labels or {}
    model_list = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(len(model_list), len(PANELS), figsize=(4.2 * len(PANELS), 3.2 * len(model_list)),
                             squeeze=False, sharex="row")
    data = []
    for r, model in enumerate(model_list):
        sub = frame[frame.model == model]
        for c, (col, title) in enumerate(PANELS):
            ax = axes[r, c]
            for method in _methods(sub):
                t = sub[sub.method == method].sort_values("step")
                ok = t[t.status == "ok"]
                colour, ls, mk = STYLES.get(method, (None, "-", "o"))
                ax.plot(ok.step, ok[col], ls=ls, marker=mk, ms=4, lw=1.6, alpha=0.85, color=colour,
                        label=method)
                bad = t[t.status != "ok"]
                if len(bad):
                    ax.plot(bad.step, np.nan_to_num(bad[col].to_numpy(), nan=0.0), "x", ms=9, mew=2,
                            color=colour)
                data += [{"model": model, "method": method, "metric": col, "step": int(s), "value": float(v),
                          "status": st} for s, v, st in zip(t.step, t[col], t.status)]
            ax.set_title(f"{labels.get(model, model)}: {title}", fontsize=9)
            ax.set_xlabel("edits")
            ax.set_ylabel("mean P(target_true)" if col == "heldout_p_true" else "share of edits so far")
            if col != "heldout_p_true":
                ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        axes[r, 0].legend(fontsize=8)
    n_edits = int(frame.step.max())
    fig.suptitle(f"Lifelong editing, up to {n_edits} sequential edits\n{corpus_note(frame['corpus_id'])}", fontsize=10)
    fig.tight_layout()
    return fig, pd.DataFrame(data, columns=["model", "method", "metric", "step", "value", "status"])


def interference_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, step, held-out key j) with step > 0: measured ‖Δ k_j‖, the paper's prediction
    ‖Σ_i r_i P_ij‖ (u_i = C⁻¹k_i) and the norm of their difference."""
    rows = []
    for rec in frame[frame.step > 0].itertuples():
        meas, pred, err = (list(rec.interference_measured_keys), list(rec.interference_predicted_c_keys),
                           list(rec.interference_c_error_keys))
        if not len(meas) == len(pred) == len(err):
            raise FigureError(f"{rec.model}/{rec.method} step {rec.step}: {len(meas)} measured, {len(pred)} predicted "
                              f"and {len(err)} error values of the interference")
        rows += [{"model": rec.model, "method": rec.method, "layer": int(rec.layer), "step": int(rec.step), "key": j,
                  "measured": float(m), "predicted_paper": float(p), "error": float(e)}
                 for j, (m, p, e) in enumerate(zip(meas, pred, err))]
    return pd.DataFrame(rows, columns=["model", "method", "layer", "step", "key", "measured", "predicted_paper",
                                       "error"])


def interference_table(pts: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, step): median and max over held-out keys with a nonzero measured displacement of
    ‖pred_j − meas_j‖ / ‖meas_j‖, pred the paper's prediction (interference_points), and the number of such keys."""
    rows = []
    for (model, method, step), g in pts.groupby(["model", "method", "step"], sort=False):
        g = g[g.measured > 0]
        rel = (g.error / g.measured).to_numpy(float)
        rows.append({"model": model, "method": method, "step": int(step),
                     "rel_error_median": float(np.median(rel)) if len(rel) else float("nan"),
                     "rel_error_max": float(rel.max()) if len(rel) else float("nan"), "n_keys": len(rel)})
    return pd.DataFrame(rows, columns=["model", "method", "step", "rel_error_median", "rel_error_max", "n_keys"])


def interference_figure(frame: pd.DataFrame, labels: dict | None = None):
    """(Figure, points, table): a column per model; top: measured interference on held-out keys against the paper's
    prediction, log-log, y = x; bottom: the median relative error of that prediction against edits, per method."""
    labels = labels or {}
    pts = interference_points(frame)
    tab = interference_table(pts)
    model_list = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(2, len(model_list), figsize=(4.6 * len(model_list), 8.0), squeeze=False)
    for c, model in enumerate(model_list):
        ax = axes[0, c]
        sub = pts[(pts.model == model) & (pts.measured > 0) & (pts.predicted_paper > 0)]
        for method in _methods(frame[frame.model == model]):
            s = sub[sub.method == method]
            if len(s):
                rel = np.median(s.error / s.measured)
                ax.scatter(s.predicted_paper, s.measured, s=8, alpha=0.5, color=STYLES.get(method, (None,))[0],
                           label=f"{method} (median rel. error {rel:.1e})")
        if len(sub):
            lo = float(min(sub.measured.min(), sub.predicted_paper.min()))
            hi = float(max(sub.measured.max(), sub.predicted_paper.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
            ax.set_xscale("log")
            ax.set_yscale("log")
            log_ticks(ax.xaxis, [lo, hi])
            log_ticks(ax.yaxis, [lo, hi])
            ax.legend(fontsize=7)
        ax.set_xlabel("paper's prediction ‖Σ_i r_i P_ij‖, u_i = C⁻¹k_i")
        ax.set_ylabel("measured ‖(W_n − W_0) k_j‖")
        ax.set_title(labels.get(model, model), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax = axes[1, c]
        t = tab[tab.model == model]
        for method in _methods(t):
            m = t[(t.method == method) & (t.rel_error_median > 0)].sort_values("step")
            colour, ls, mk = STYLES.get(method, (None, "-", "o"))
            ax.plot(m.step, m.rel_error_median, ls=ls, marker=mk, ms=4, color=colour, label=method)
        if (t.rel_error_median > 0).any():
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_xlabel("edits")
        ax.set_ylabel("median ‖pred − meas‖ / ‖meas‖ (paper's P)")
        ax.set_title(f"{labels.get(model, model)}: error of the paper's prediction", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Interference on held-out keys: the paper's P against the measured\n"
                 f"{corpus_note(frame['corpus_id'])}", fontsize=10)
    fig.tight_layout()
    return fig, pts, tab


def run_trajectories(tables, png, csv, interference_png, interference_csv, interference_table_csv, *, labels,
                     dpi: int) -> None:
    frame = read_tables(tables)
    fig, data = trajectory_figure(frame, labels)
    save(fig, data, png, csv, dpi, float_format=None)
    fig, pts, tab = interference_figure(frame, labels)
    save(fig, pts, interference_png, interference_csv, dpi, float_format=None)
    with io.atomic_path(interference_table_csv) as tmp:
        tab.to_csv(tmp, index=False)


def read_forecasts(paths) -> pd.DataFrame:
    """The forecast tables (kis.forecast.FORECAST_COLUMNS) stacked, with their corpus_id (Parquet metadata)."""
    return _read(paths, forecast.FORECAST_COLUMNS, "forecast")


# line style of each score in the forecast figure: (colour, dashes, marker)
SCORE_STYLES = {"risk": ("black", "-", "o"), "confidence": ("tab:blue", "--", "s"),
                "key_norm": ("tab:green", "-.", "^"), "random": ("0.6", ":", "x"),
                "measured_displacement": ("tab:red", (0, (1, 1)), "D")}


def forecast_figure(long: pd.DataFrame, labels: dict | None = None, *, n_boot: int, seed: int):
    """(Figure, step table): a row per model, a column per method; in each panel the AUC for "forgotten" against
    the recorded step of each score of kis.forecast.SCORES with its 95 % bootstrap interval over facts (error bars),
    chance (0.5) dashed; the measured displacement (post-edit) is drawn for reference, not as a forecast."""
    labels = labels or {}
    tab = forecast.step_table(long, n_boot=n_boot, seed=seed)
    model_list = list(dict.fromkeys(long.model))
    method_list = _methods(long)
    fig, axes = plt.subplots(len(model_list), len(method_list), figsize=(3.4 * len(method_list),
                             3.0 * len(model_list)), squeeze=False, sharey=True)
    for r, model in enumerate(model_list):
        for c, method in enumerate(method_list):
            ax = axes[r, c]
            t = tab[(tab.model == model) & (tab.method == method)]
            for i, score in enumerate(forecast.SCORES):
                s = t[t.score == score].sort_values("step")
                if not len(s):
                    continue
                colour, ls, mk = SCORE_STYLES.get(score, (None, "-", "o"))
                x = s.step.to_numpy(float) + (i - 2) * 0.008 * max(1.0, float(t.step.max()))  # side by side
                yerr = np.vstack([s.auc - s.auc_lo, s.auc_hi - s.auc]).clip(min=0)
                ax.errorbar(x, s.auc, yerr=np.nan_to_num(yerr), ls=ls, marker=mk, ms=4, lw=1.4, capsize=2,
                            color=colour, label=score + ("" if score in forecast.PRE_EDIT else " (post-edit)"))
            ax.axhline(0.5, color="k", lw=0.8, ls="--")
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("edits")
            if c == 0:
                ax.set_ylabel("AUC for forgotten")
            n = t.groupby("step").first()
            note = ", ".join(f"{int(s)}: {int(row.n_forgotten)}/{int(row.n_known)}" for s, row in n.iterrows())
            ax.set_title(f"{labels.get(model, model)}, {method}\nforgotten/known by step: {note}", fontsize=7)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Forecast of forgetting made before the edits, against baselines (95 % bootstrap over facts)\n"
                 f"{corpus_note(long['corpus_id'])}", fontsize=10)
    fig.tight_layout()
    return fig, tab


def run_forecast(tables, png, csv, summary_csv, paired_csv, *, labels, dpi: int, n_boot: int, seed: int) -> None:
    """Rule fig_forecast: the forecast figure, the per-fact rows (csv), the AUC per (model, method, step, score)
    (summary_csv, kis.forecast.step_table) and the paired comparison of forgetting between methods (paired_csv,
    kis.forecast.paired_forgetting)."""
    long = read_forecasts(tables)
    fig, tab = forecast_figure(long, labels, n_boot=n_boot, seed=seed)
    save(fig, long.drop(columns=["corpus_id"]), png, csv, dpi, float_format=None)
    with io.atomic_path(summary_csv) as tmp:
        tab.to_csv(tmp, index=False)
    with io.atomic_path(paired_csv) as tmp:
        forecast.paired_forgetting(long, order=list(STYLES)).to_csv(tmp, index=False)
