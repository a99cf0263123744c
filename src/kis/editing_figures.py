"""Figures of the lifelong editing trajectories, from the trajectory tables only (no model is loaded).

trajectory_figure: unrelated-knowledge confidence (mean held-out P(target_true)), retention of earlier edits and
efficacy against the number of edits; one row of panels per model, one line per method; a diverged trajectory
ends in a cross. interference_figure: measured ‖(W_n − W_0) k_j‖ against the closed form ‖Σ_i r_i P_ij‖ for every
held-out key j at every recorded step, with y = x. forecast_figure: the closed form's predicted displacement of each
held-out fact's key against the change of its log P(true), all steps, a panel per model, the ROC AUC of the
prediction for "forgotten" (kis.forecast) per method in the legend.
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
          "interference_predicted_keys")
# (colour, dashes, marker) of each method of kis.editing.METHODS, in that order (kis.editing needs torch, which the
# figure rules' env lacks; tests/test_editing.py checks the two agree). Methods often coincide (efficacy 1.0 for
# all): distinct dashes and markers keep every line visible.
STYLES = {"rome": ("tab:red", "-", "o"), "r-rome": ("tab:orange", "-", "v"), "memit": ("tab:blue", "--", "s"),
          "alphaedit": ("tab:green", "-.", "^"), "deltaedit": ("tab:purple", ":", "D"),
          "wilke": ("tab:brown", (0, (5, 1, 1, 1)), "P"), "kis": ("black", "-", "*")}


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
    """One row per (model, method, step, held-out key j) with step > 0: measured and predicted ‖Δ k_j‖."""
    rows = []
    for rec in frame[frame.step > 0].itertuples():
        meas, pred = list(rec.interference_measured_keys), list(rec.interference_predicted_keys)
        if len(meas) != len(pred):
            raise FigureError(f"{rec.model}/{rec.method} step {rec.step}: {len(meas)} measured but {len(pred)} "
                              "predicted interference values")
        rows += [{"model": rec.model, "method": rec.method, "layer": int(rec.layer), "step": int(rec.step), "key": j,
                  "measured": float(m), "predicted": float(p)} for j, (m, p) in enumerate(zip(meas, pred))]
    return pd.DataFrame(rows, columns=["model", "method", "layer", "step", "key", "measured", "predicted"])


def interference_figure(frame: pd.DataFrame, labels: dict | None = None):
    """(Figure, points): measured vs predicted interference on held-out keys, log-log, y = x, a panel per model."""
    labels = labels or {}
    pts = interference_points(frame)
    model_list = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(1, len(model_list), figsize=(4.6 * len(model_list), 4.2), squeeze=False)
    for c, model in enumerate(model_list):
        ax = axes[0, c]
        sub = pts[(pts.model == model) & (pts.measured > 0) & (pts.predicted > 0)]
        for method in _methods(frame[frame.model == model]):
            s = sub[sub.method == method]
            if len(s):
                rel = np.median(np.abs(s.measured - s.predicted) / s.measured)
                ax.scatter(s.predicted, s.measured, s=8, alpha=0.5, color=STYLES.get(method, (None,))[0],
                           label=f"{method} (median rel. dev. {rel:.1e})")
        if len(sub):
            lo = float(min(sub.measured.min(), sub.predicted.min()))
            hi = float(max(sub.measured.max(), sub.predicted.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
            ax.set_xscale("log")
            ax.set_yscale("log")
            log_ticks(ax.xaxis, [lo, hi])
            log_ticks(ax.yaxis, [lo, hi])
            ax.legend(fontsize=7)
        ax.set_xlabel("predicted ‖Σ_i r_i P_ij‖")
        ax.set_ylabel("measured ‖(W_n − W_0) k_j‖")
        ax.set_title(labels.get(model, model), fontsize=9)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Interference on held-out keys\n{corpus_note(frame['corpus_id'])}", fontsize=10)
    fig.tight_layout()
    return fig, pts


def run_trajectories(tables, png, csv, interference_png, interference_csv, labels=None, dpi: int = 300) -> None:
    frame = read_tables(tables)
    fig, data = trajectory_figure(frame, labels)
    save(fig, data, png, csv, dpi, float_format=None)
    fig, pts = interference_figure(frame, labels)
    save(fig, pts, interference_png, interference_csv, dpi, float_format=None)


def read_forecasts(paths) -> pd.DataFrame:
    """The forecast tables (kis.forecast.FORECAST_COLUMNS) stacked, with their corpus_id (Parquet metadata)."""
    return _read(paths, forecast.FORECAST_COLUMNS, "forecast")


def forecast_figure(long: pd.DataFrame, labels: dict | None = None, n_boot: int = 1000, seed: int = 0):
    """(Figure, summary): predicted ‖Σ_i Λ_i P_ij‖ (log x) against Δ log P(true) for every held-out fact and recorded
    step, a panel per model, a colour per method; forgotten facts (lost correctness) drawn as crosses. The legend
    gives each method's forecast AUC [95 % bootstrap] and the pre-edit top-decile share forgotten (summary rows)."""
    labels = labels or {}
    summ = forecast.summary(long, n_boot, seed)
    model_list = list(dict.fromkeys(long.model))
    fig, axes = plt.subplots(1, len(model_list), figsize=(5.0 * len(model_list), 4.2), squeeze=False)
    for c, model in enumerate(model_list):
        ax = axes[0, c]
        sub = long[(long.model == model) & (long.status == "ok")]
        for method in _methods(sub):
            s = sub[(sub.method == method) & (sub.predicted > 0)]
            colour = STYLES.get(method, (None,))[0]
            row = summ[(summ.model == model) & (summ.method == method)].iloc[0]
            auc = (f"AUC {row.auc:.2f} [{row.auc_lo:.2f}, {row.auc_hi:.2f}]" if np.isfinite(row.auc)
                   else "AUC n/a (no held-out fact forgotten)")
            label = f"{method}: {auc}, top decile {row.top_decile_forgotten:.2f}"
            ax.scatter(s.predicted[~s.forgotten], s.delta_logp_true[~s.forgotten], s=8, alpha=0.5, color=colour,
                       label=label)
            ax.scatter(s.predicted[s.forgotten], s.delta_logp_true[s.forgotten], s=18, marker="x", color=colour)
        if len(sub[sub.predicted > 0]):
            ax.set_xscale("log")
            log_ticks(ax.xaxis, sub.predicted[sub.predicted > 0])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("predicted displacement ‖Σ_i Λ_i P_ij‖")
        ax.set_ylabel("Δ log P(true) since step 0")
        ax.set_title(f"{labels.get(model, model)} (×: forgotten)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"Forecast of forgetting on held-out facts\n{corpus_note(long['corpus_id'])}", fontsize=10)
    fig.tight_layout()
    return fig, summ


def run_forecast(tables, png, csv, summary_csv, labels=None, dpi: int = 300, n_boot: int = 1000,
                 seed: int = 0) -> None:
    """Rule fig_forecast: the forecast figure, its points (csv) and the AUC per method (summary_csv)."""
    long = read_forecasts(tables)
    fig, summ = forecast_figure(long, labels, n_boot, seed)
    save(fig, long.drop(columns=["corpus_id"]), png, csv, dpi, float_format=None)
    with io.atomic_path(summary_csv) as tmp:
        summ.to_csv(tmp, index=False)
