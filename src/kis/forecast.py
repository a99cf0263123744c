"""Forecast of forgetting, evaluated: does the pre-edit risk say which held-out facts an edit stream breaks, and does
it beat baselines that need no superposition?

long_table: one row per (recorded step, held-out fact) from a trajectory table (kis.trajectory): the pre-edit risk
‖Σ_{i≤s} r̂_i P_ij‖ (kis.preedit, from the unedited model only), the baselines (unedited confidence margin, key
norm, a seeded random score), the measured displacement ‖(W_n − W_0) k_j‖ (post-edit: not a forecast), Δ log P(true)
and lost correctness since step 0. step_table: per (model, method, step) and score, the ROC AUC for "forgotten"
(correct at step 0, not at step s; facts correct at step 0 only) with a 95 % bootstrap interval over facts.
paired_forgetting: whether two methods forget different numbers of the same held-out facts, fact by fact (every
method of a model holds out the same facts): the exact McNemar test on the facts one method forgets and the other
keeps, at the last step both reached.
Pure numpy / pandas (the figure env has no torch).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest, rankdata

FORECAST_COLUMNS = {
    "model": "config key of the model",
    "method": "editing method",
    "step": "edits applied so far (> 0)",
    "status": "the trajectory row's status (ok | diverged)",
    "case_id": "held-out fact",
    "risk": "pre-edit forecast ‖Σ_{i≤step} r̂_i P_ij‖ (kis.preedit: unedited model, planned stream, paper's P)",
    "margin0": "unedited confidence margin: min over target tokens of log p(true) − max log p(other)",
    "key_norm": "‖k_j‖ at the measure layer, unedited model",
    "random": "seeded uniform score (one per fact, the same at every step)",
    "measured": "measured displacement ‖(W_n − W_0) k_j‖ at the measure layer(s) (after the edits: not a forecast)",
    "logp_true": "log P(target_true | prompt) at this step",
    "delta_logp_true": "log P(true) now − at step 0",
    "correct0": "target_true the argmax at every token at step 0",
    "correct": "the same at this step",
    "forgotten": "correct0 and not correct",
}
NEEDED = ("model", "method", "step", "status", "interference_measured_keys", "heldout_logp_true_facts",
          "heldout_correct_facts", "forecast_risk_facts", "heldout_margin_facts", "heldout_key_norm_facts")
# score name → (long_table column, sign: higher score = more at risk, when it is known)
SCORES = {"risk": ("risk", 1.0), "confidence": ("margin0", -1.0), "key_norm": ("key_norm", 1.0),
          "random": ("random", 1.0), "measured_displacement": ("measured", 1.0)}
PRE_EDIT = ("risk", "confidence", "key_norm", "random")  # the rest is known only after the edits
STEP_COLUMNS = ["model", "method", "step", "score", "pre_edit", "auc", "auc_lo", "auc_hi", "n_known", "n_forgotten"]


def long_table(traj: pd.DataFrame, test_case_ids, seed: int = 0) -> pd.DataFrame:
    """FORECAST_COLUMNS, one row per (step > 0, held-out fact), from one trajectory table (rows of one method)."""
    missing = [c for c in NEEDED if c not in traj.columns]
    if missing:
        raise ValueError(f"trajectory table lacks column(s) {missing} (written before the pre-edit forecast existed?)")
    ids = [int(c) for c in test_case_ids]
    t = traj.sort_values("step")
    base = t[t.step == 0]
    if base.empty:
        raise ValueError("trajectory table has no step 0 (the unedited model)")
    lp0 = np.asarray(base.heldout_logp_true_facts.iloc[0], dtype=float)
    c0 = np.asarray(base.heldout_correct_facts.iloc[0], dtype=bool)
    rand = np.random.default_rng(seed).random(len(ids))
    frames = []
    for rec in t[t.step > 0].itertuples():
        cols = {"measured": rec.interference_measured_keys, "logp_true": rec.heldout_logp_true_facts,
                "correct": rec.heldout_correct_facts, "risk": rec.forecast_risk_facts,
                "margin0": rec.heldout_margin_facts, "key_norm": rec.heldout_key_norm_facts}
        for name, v in cols.items():
            if len(v) != len(ids):
                raise ValueError(f"{rec.method} step {rec.step}: {len(v)} values of {name} for {len(ids)} held-out facts")
        lp, ok = np.asarray(cols["logp_true"], dtype=float), np.asarray(cols["correct"], dtype=bool)
        frames.append(pd.DataFrame({"model": rec.model, "method": rec.method, "step": int(rec.step),
                                    "status": rec.status, "case_id": ids,
                                    "risk": np.asarray(cols["risk"], dtype=float),
                                    "margin0": np.asarray(cols["margin0"], dtype=float),
                                    "key_norm": np.asarray(cols["key_norm"], dtype=float), "random": rand,
                                    "measured": np.asarray(cols["measured"], dtype=float), "logp_true": lp,
                                    "delta_logp_true": lp - lp0, "correct0": c0, "correct": ok,
                                    "forgotten": c0 & ~ok}))
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
    """(AUC, 2.5 %, 97.5 % bootstrap percentiles) of `pred` for `forgotten`, resampling the rows (facts) with
    replacement; resamples with one class are skipped; NaN when the sample has one class. The resamples depend on
    the seed and the number of rows only: scores of the same facts share them (paired)."""
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


def step_table(long: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """STEP_COLUMNS: per (model, method, recorded step with status ok) and score of SCORES, the AUC of the score
    (signed: higher = more at risk) for "forgotten" among the facts correct at step 0, with its bootstrap interval
    over those facts (one row per fact at one step: the facts are the resampled units)."""
    rows = []
    for (model, method, step), g in long[long.status == "ok"].groupby(["model", "method", "step"], sort=True):
        known = g[g.correct0.astype(bool)]
        if known.case_id.duplicated().any():
            raise ValueError(f"{model}/{method} step {step}: a held-out fact appears twice")
        y = known.forgotten.to_numpy(bool)
        for score, (col, sign) in SCORES.items():
            a, lo, hi = forgetting_auc(sign * known[col].to_numpy(float), y, n_boot=n_boot, seed=seed)
            rows.append({"model": model, "method": method, "step": int(step), "score": score,
                         "pre_edit": score in PRE_EDIT, "auc": a, "auc_lo": lo, "auc_hi": hi,
                         "n_known": len(known), "n_forgotten": int(y.sum())})
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


PAIRED_COLUMNS = ["model", "method_a", "method_b", "step", "n_known", "forgotten_a", "forgotten_b", "only_a", "only_b",
                  "p_mcnemar", "p_holm"]


def paired_forgetting(long: pd.DataFrame, order=None) -> pd.DataFrame:
    """PAIRED_COLUMNS: per model and pair of methods (a before b in `order`, default: first appearance) at the last
    step both recorded with status ok, among the held-out facts correct at step 0: how many each forgot, how many
    only a forgot (b kept them) and only b, and the exact McNemar p-value — binomial(only_a; only_a + only_b, ½),
    two-sided; 1 when no fact differs — with Holm's step-down adjustment over the model's pairs. The two methods must
    hold out the same facts (an error names the model and methods otherwise)."""
    ok = long[long.status == "ok"]
    rows = []
    for model, g in ok.groupby("model", sort=True):
        methods = [m for m in (order or dict.fromkeys(g.method)) if m in set(g.method)]
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                ga, gb = g[g.method == a], g[g.method == b]
                step = int(min(ga.step.max(), gb.step.max()))
                fa = ga[ga.step == step].set_index("case_id")
                fb = gb[gb.step == step].set_index("case_id")
                if step not in set(ga.step) or step not in set(gb.step) or set(fa.index) != set(fb.index):
                    raise ValueError(f"{model}: {a} and {b} do not hold out the same facts at step {step} (or one "
                                     "did not record it)")
                fb = fb.loc[fa.index]
                known = fa.correct0.to_numpy(bool)
                if not np.array_equal(known, fb.correct0.to_numpy(bool)):
                    raise ValueError(f"{model}: {a} and {b} disagree on which held-out facts were correct at step 0")
                xa, xb = fa.forgotten.to_numpy(bool)[known], fb.forgotten.to_numpy(bool)[known]
                only_a, only_b = int((xa & ~xb).sum()), int((xb & ~xa).sum())
                p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
                rows.append({"model": model, "method_a": a, "method_b": b, "step": step, "n_known": int(known.sum()),
                             "forgotten_a": int(xa.sum()), "forgotten_b": int(xb.sum()), "only_a": only_a,
                             "only_b": only_b, "p_mcnemar": float(p)})
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for _, g in out.groupby("model"):
        out.loc[g.index, "p_holm"] = holm(g.p_mcnemar.to_numpy())
    return out


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest times (m − i), running maximum, capped at 1."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adj)
    out[order] = adj
    return out

