"""The editing study's summary, from the trajectory tables only (no model is loaded): one row per model × method ×
recorded step with the CounterFact metrics, held-out knowledge, fluency, ‖ΔW‖_F and the seconds per edit.

seconds_per_edit at a row = its `seconds` (wall seconds of the edits since the previous row) / (step − previous step);
NaN at step 0. A diverged trajectory's last row has status "diverged" and its reason.
"""
from __future__ import annotations

import logging
import math

import pandas as pd

from . import editing_figures, io
from .figures import FigureError

log = logging.getLogger(__name__)

# summary column: (trajectory column it copies, header of the Markdown table); seconds_per_edit is computed
COLUMNS = {"efficacy": ("efficacy", "efficacy"), "paraphrase": ("paraphrase", "paraphrase"),
           "neighborhood": ("neighborhood", "neighborhood"), "heldout_acc": ("heldout_acc", "held-out acc"),
           "heldout_p_true": ("heldout_p_true", "held-out P(true)"), "fluency": ("fluency", "fluency"),
           "delta_w_fro": ("delta_w_fro", "‖ΔW‖_F"), "seconds_per_edit": (None, "s / edit"),
           "status": ("status", "status")}
KEY = ("model", "method", "step")
NEEDED = (*KEY, "seconds", "reason", *(src for src, _ in COLUMNS.values() if src))


def summary(tables, labels: dict | None = None) -> pd.DataFrame:
    """The summary of the trajectory tables at `tables` (paths): columns model, label, method, step, then COLUMNS;
    rows sorted by model, method (the order of `tables` within a model), step. An error names a table that lacks a
    column, has no rows, repeats a step or holds another (model, method) than a table before it."""
    labels = labels or {}
    out, seen = [], set()
    for path in tables:
        t = editing_figures.read_one(path, NEEDED)  # the columns, rows and corpus id the figures check
        for col in ("model", "method"):
            if t[col].nunique() != 1:
                raise FigureError(f"{path}: column {col!r} holds {sorted(t[col].unique())}, not one value")
        model, method = str(t.model.iloc[0]), str(t.method.iloc[0])
        if (model, method) in seen:
            raise FigureError(f"{path}: a second table of model {model!r}, method {method!r}")
        seen.add((model, method))
        if t.step.duplicated().any():
            raise FigureError(f"{path}: step {int(t.step[t.step.duplicated()].iloc[0])} recorded twice")
        t = t.sort_values("step")
        steps = t.step.astype(int).tolist()
        per_edit = [float("nan")] + [float(s) / (b - a) if b > a else float("nan")
                                     for s, a, b in zip(t.seconds.iloc[1:], steps, steps[1:])]
        rows = pd.DataFrame({"model": model, "label": str(labels.get(model, model)), "method": method,
                             "step": steps})
        for name, (src, _) in COLUMNS.items():
            rows[name] = per_edit if src is None else t[src].to_numpy()
        rows["reason"] = t.reason.astype(str).to_numpy()
        out.append(rows)
    if not out:
        raise FigureError("no trajectory tables given")
    frame = pd.concat(out, ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(frame.method))}
    return (frame.assign(_m=frame.method.map(order)).sort_values(["model", "_m", "step"], kind="stable")
            .drop(columns="_m").reset_index(drop=True))


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def markdown(frame: pd.DataFrame) -> str:
    """The summary as a Markdown table (three significant digits; a diverged row's reason after its status)."""
    head = ["model", "method", "step", *(h for _, h in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in frame.itertuples(index=False):
        status = r.status if r.status == "ok" or not r.reason else f"{r.status}: {r.reason}"
        cells = [r.label, r.method, str(int(r.step)), *(_cell(getattr(r, c)) for c in COLUMNS if c != "status"),
                 status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def run_summary(tables, csv, md, labels=None) -> None:
    """Rule study_summary: the trajectory tables → summary CSV (every value) and Markdown table."""
    frame = summary(tables, labels)
    with io.atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with io.atomic_path(md) as tmp:
        tmp.write_text(markdown(frame))
    log.info("study summary: %d rows (%d models × %d methods), %d not ok", len(frame), frame.model.nunique(),
             frame.method.nunique(), int((frame.status != "ok").sum()))
