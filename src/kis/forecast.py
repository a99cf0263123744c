"""Forecast of forgetting: does the closed form Σ_i Λ_i P_ij say which held-out facts a lifelong edit stream breaks?

long_table: one row per (recorded step, held-out fact) from a trajectory table (kis.trajectory): the predicted
displacement ‖Σ_i Λ_i P_ij‖ of the fact's key at the edited layer(s), the measured ‖(W_n − W_0) k_j‖, Δ log P(true)
and lost correctness since step 0, and the pre-edit risk. forgetting_auc: ROC AUC of a prediction for "forgotten"
(correct at step 0, not at step n) with a bootstrap interval. top_decile_forgotten: the share of the riskiest tenth
that is forgotten at the end. Pure numpy / pandas (the figure env has no torch).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

FORECAST_COLUMNS = {
    "model": "config key of the model",
    "method": "editing method",
    "step": "edits applied so far (> 0)",
    "status": "the trajectory row's status (ok | diverged)",
    "case_id": "held-out fact",
    "predicted": "‖Σ_i Λ_i P_ij‖ at the measure layer(s): the closed form's displacement of the fact's key",
    "measured": "‖(W_n − W_0) k_j‖ there",
    "logp_true": "log P(target_true | prompt) at this step",
    "delta_logp_true": "log P(true) now − at step 0",
    "correct0": "target_true the argmax at every token at step 0",
    "correct": "the same at this step",
    "forgotten": "correct0 and not correct",
    "prior_risk": "pre-edit forecast sqrt(Σ_i P_ij²) over the planned stream (kis.trajectory.prior_risk)",
}
NEEDED = ("model", "method", "step", "status", "interference_measured_keys", "interference_predicted_keys",
          "heldout_logp_true_facts", "heldout_correct_facts", "prior_risk_facts")


def long_table(traj: pd.DataFrame, test_case_ids) -> pd.DataFrame:
    """FORECAST_COLUMNS, one row per (step > 0, held-out fact), from one trajectory table (rows of one method)."""
    missing = [c for c in NEEDED if c not in traj.columns]
    if missing:
        raise ValueError(f"trajectory table lacks column(s) {missing} (written before the forecast existed?)")
    ids = [int(c) for c in test_case_ids]
    t = traj.sort_values("step")
    base = t[t.step == 0]
    if base.empty:
        raise ValueError("trajectory table has no step 0 (the unedited model)")
    lp0 = np.asarray(base.heldout_logp_true_facts.iloc[0], dtype=float)
    c0 = np.asarray(base.heldout_correct_facts.iloc[0], dtype=bool)
    frames = []
    for rec in t[t.step > 0].itertuples():
        cols = {"predicted": rec.interference_predicted_keys, "measured": rec.interference_measured_keys,
                "logp_true": rec.heldout_logp_true_facts, "correct": rec.heldout_correct_facts,
                "prior_risk": rec.prior_risk_facts}
        for name, v in cols.items():
            if len(v) != len(ids):
                raise ValueError(f"{rec.method} step {rec.step}: {len(v)} values of {name} for {len(ids)} held-out facts")
        lp, ok = np.asarray(cols["logp_true"], dtype=float), np.asarray(cols["correct"], dtype=bool)
        frames.append(pd.DataFrame({"model": rec.model, "method": rec.method, "step": int(rec.step),
                                    "status": rec.status, "case_id": ids,
                                    "predicted": np.asarray(cols["predicted"], dtype=float),
                                    "measured": np.asarray(cols["measured"], dtype=float), "logp_true": lp,
                                    "delta_logp_true": lp - lp0, "correct0": c0, "correct": ok,
                                    "forgotten": c0 & ~ok, "prior_risk": np.asarray(cols["prior_risk"], dtype=float)}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FORECAST_COLUMNS))
    return out[list(FORECAST_COLUMNS)]


def auc(pred, label) -> float:
    """ROC AUC = P(pred of a positive > pred of a negative) + ½ P(tie), by average ranks; NaN with one class."""
    pred, label = np.asarray(pred, dtype=float), np.asarray(label, dtype=bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(pred)
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def forgetting_auc(pred, forgotten, *, n_boot: int, seed: int) -> tuple[float, float, float]:
    """(AUC, 2.5 %, 97.5 % bootstrap percentiles) of `pred` for `forgotten`; resamples with one class are
    skipped; NaN when the sample has one class."""
    pred, forgotten = np.asarray(pred, dtype=float), np.asarray(forgotten, dtype=bool)
    a = auc(pred, forgotten)
    if not np.isfinite(a):
        return a, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        i = rng.integers(0, len(pred), len(pred))
        b = auc(pred[i], forgotten[i])
        if np.isfinite(b):
            boots.append(b)
    if not boots:
        return a, float("nan"), float("nan")
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return a, float(lo), float(hi)


def top_decile_forgotten(risk, forgotten) -> float:
    """Share forgotten among the ceil(10 %) of facts of highest risk (NaN without facts)."""
    risk, forgotten = np.asarray(risk, dtype=float), np.asarray(forgotten, dtype=bool)
    if not len(risk):
        return float("nan")
    n = max(1, int(np.ceil(len(risk) / 10)))
    return float(forgotten[np.argsort(-risk, kind="stable")[:n]].mean())


def summary(long: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Per (model, method): AUC of the predicted displacement for "forgotten" over every recorded step (facts
    correct at step 0), its interval, and the pre-edit forecast's top decile forgotten at the last ok step."""
    rows = []
    for (model, method), g in long.groupby(["model", "method"], sort=False):
        g = g[g.status == "ok"]
        known = g[g.correct0]
        a, lo, hi = forgetting_auc(known.predicted, known.forgotten, n_boot=n_boot, seed=seed)
        last = g[g.step == g.step.max()] if len(g) else g
        rows.append({"model": model, "method": method, "auc": a, "auc_lo": lo, "auc_hi": hi,
                     "n_pairs": len(known), "n_forgotten": int(known.forgotten.sum()),
                     "last_step": int(last.step.max()) if len(last) else 0,
                     "forgotten_at_end": float(last.forgotten[last.correct0].mean()) if last.correct0.any()
                     else float("nan"),
                     "top_decile_forgotten": top_decile_forgotten(last.prior_risk[last.correct0],
                                                                  last.forgotten[last.correct0])})
    return pd.DataFrame(rows, columns=["model", "method", "auc", "auc_lo", "auc_hi", "n_pairs", "n_forgotten",
                                       "last_step", "forgotten_at_end", "top_decile_forgotten"])
