"""Superposition of the keys, per layer, in float64 with a Cholesky solve (no explicit inverse):

    G_ij = (C⁻¹k_i)ᵀ k_j                  the whitening-space Gram matrix K C⁻¹ Kᵀ
    P_ij = G_ij / G_ii                     how far an edit of fact i moves key j (not symmetric; P_ii = 1)
    Q_ij = k_iᵀ k_j                        the activation-space Gram matrix K Kᵀ
    cos_white_ij = G_ij / √(G_ii G_jj)     cosine of C^-1/2 k_i and C^-1/2 k_j
    cos_act_ij = Q_ij / √(Q_ii Q_jj)       cosine of k_i and k_j

and their statistics: the excess kurtosis of the off-diagonal entries (the paper's measure) and more, for the
first n = 16, 32, 64, …, N items (the convergence series). torch is imported by the functions that compute;
the readers and statistics serve the figure rules, whose env has no torch.
"""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("P", "Q", "cos_white", "cos_act")
COLUMNS_LONG = ("kind", "layer", "i", "j", "value")
COSINES = ("cos_white", "cos_act")


class SingularCovariance(ValueError):
    pass


def condition_number(c: torch.Tensor) -> float:
    import torch

    ev = torch.linalg.eigvalsh(c.double())
    return float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")


def factor(c: torch.Tensor, *, ridge: float = 0.0, where: str = "") -> tuple[torch.Tensor, bool]:
    """(lower Cholesky factor of C, whether a ridge was added). C + ridge·mean(diag C)·I only if C fails."""
    import torch

    c = c.double()
    chol, info = torch.linalg.cholesky_ex(c)
    if int(info) == 0:
        return chol, False
    cond = condition_number(c)
    if ridge <= 0:
        raise SingularCovariance(
            f"{where}C is not positive definite (Cholesky failed at minor {int(info)}), condition number "
            f"{cond:.3g}; set superposition.ridge > 0 (e.g. 1e-6) to add ridge·mean(diag C)·I")
    lam = ridge * float(torch.diagonal(c).mean())
    log.warning("%sC is not positive definite (condition number %.3g): adding ridge %g·mean(diag C)·I = %.3g·I",
                where, cond, ridge, lam)
    chol, info = torch.linalg.cholesky_ex(c + lam * torch.eye(c.shape[0], dtype=c.dtype, device=c.device))
    if int(info) != 0:
        raise SingularCovariance(f"{where}C + {lam:.3g}·I is still not positive definite (condition number of C "
                                 f"{cond:.3g}); increase superposition.ridge")
    return chol, True


def matrices(k: torch.Tensor, chol: torch.Tensor, where: str = "") -> dict[str, torch.Tensor]:
    """The N × N matrices of KINDS (float64) from keys K (N × f) and the Cholesky factor of C."""
    import torch

    k = k.to(chol.device, torch.float64)
    x = torch.cholesky_solve(k.T.contiguous(), chol)  # C⁻¹Kᵀ (f × N)
    g = x.T @ k.T                                      # G_ij = (C⁻¹k_i)·k_j
    q = k @ k.T                                        # Q_ij = k_i·k_j
    gd, qd = torch.diagonal(g), torch.diagonal(q)
    bad = torch.nonzero((gd <= 0) | (qd <= 0)).flatten()
    if len(bad):
        raise ValueError(f"{where}key of item index {int(bad[0])} is zero (kᵀk = {float(qd[bad[0]]):.3g}, "
                         f"kᵀC⁻¹k = {float(gd[bad[0]]):.3g})")
    return {"P": g / gd[:, None],                                  # P_ij = G_ij / G_ii
            "Q": q,
            "cos_white": g / torch.sqrt(gd[:, None] * gd[None, :]),  # G_ij / √(G_ii G_jj)
            "cos_act": q / torch.sqrt(qd[:, None] * qd[None, :])}


def to_frame(layer: int, mats: dict[str, torch.Tensor], items) -> "pd.DataFrame":
    import pandas as pd

    items = np.asarray(items)
    n = len(items)
    i, j = np.repeat(items, n), np.tile(items, n)
    return pd.concat([pd.DataFrame({"kind": kind, "layer": layer, "i": i, "j": j,
                                    "value": mats[kind].cpu().numpy().reshape(-1)}) for kind in KINDS],
                     ignore_index=True)


def compute(keys: dict[int, np.ndarray], covs, items, *, ridge: float = 0.0, model: str = "", device="cpu",
            condition_warn: float = 1e8):
    """Long table (kind, layer, i, j, value) for every layer, and the layers that needed a ridge.

    `covs(layer)` returns C of that layer (so a big model's covariances are loaded one at a time).
    """
    import pandas as pd
    import torch

    frames, ridged = [], []
    for layer in sorted(keys):
        where = f"model {model}, layer {layer}: "
        c = covs(layer).to(device, torch.float64)
        if c.shape != (keys[layer].shape[1],) * 2:
            raise ValueError(f"{where}C is {tuple(c.shape)} but the keys have f={keys[layer].shape[1]}")
        chol, used = factor(c, ridge=ridge, where=where)
        d = torch.diagonal(chol)
        bound = float((d.max() / d.min()) ** 2)  # a lower bound on cond(C), free from the factor
        if bound > condition_warn:
            log.warning("%sC is badly conditioned: cond(C) ≥ %.3g", where, bound)
        if used:
            ridged.append(layer)
        frames.append(to_frame(layer, matrices(torch.from_numpy(keys[layer]), chol, where), items))
    return pd.concat(frames, ignore_index=True), ridged


def read_frame(path, kinds=None) -> "pd.DataFrame":
    """The long table (kind, layer, i, j, value) of a superposition file, only the given kinds if any."""
    import pandas as pd

    return pd.read_parquet(path, columns=list(COLUMNS_LONG),
                           filters=[("kind", "in", list(kinds))] if kinds is not None else None)


def to_matrices(frame, where: str = "superposition") -> tuple[dict[tuple[str, int], np.ndarray], np.ndarray]:
    """({(kind, layer): N × N matrix}, items) from a long table; every (kind, layer) must cover all N×N pairs."""
    frame = frame.sort_values(["kind", "layer", "i", "j"], kind="stable")
    items = np.sort(frame.i.unique())
    n = len(items)
    out = {}
    for (kind, layer), g in frame.groupby(["kind", "layer"], sort=True):
        if len(g) != n * n or not (np.array_equal(g.i.to_numpy(), np.repeat(items, n))
                                   and np.array_equal(g.j.to_numpy(), np.tile(items, n))):
            raise ValueError(f"{where}: kind={kind} layer={layer}: fields 'i', 'j' do not cover all {n}×{n} pairs")
        out[(str(kind), int(layer))] = g.value.to_numpy().reshape(n, n)
    return out, items


def read(path, kinds=None) -> tuple[dict[tuple[str, int], np.ndarray], np.ndarray, dict]:
    """({(kind, layer): N × N matrix}, items, metadata) from a superposition table."""
    from .io import read_parquet_metadata

    mats, items = to_matrices(read_frame(path, kinds), str(path))
    return mats, items, read_parquet_metadata(path)


def run_rule(*, model, key_table, cov, table, ridge, condition_warn, device="cpu", logger=None):
    """The superposition stage: keys table + covariance cache → superposition table."""
    from . import covariance
    from . import keys as keys_mod
    from .io import write_parquet

    logger = logger or log
    k, items, _, kmeta = keys_mod.read(key_table)
    _, cmeta = covariance.load(cov, layers=[])
    t0 = time.perf_counter()
    frame, ridged = compute(k, lambda layer: covariance.load(cov, layers=[layer])[0][layer], items, ridge=ridge,
                            model=model, device=device, condition_warn=condition_warn)
    logger.info("superposition: %d layers × %d items in %.1f s%s", len(k), len(items), time.perf_counter() - t0,
                f"; ridge added on layers {ridged}" if ridged else "")
    meta = {"model": model, "corpus_id": cmeta.get("corpus_id"), "n_items": int(len(items)),
            "position": kmeta.get("position"), "context_templates": kmeta.get("context_templates"),
            "ridge": ridge, "ridged_layers": ridged, "n_tokens": cmeta.get("n_tokens")}
    write_parquet(frame, table, metadata=meta)


# ---------------------------------------------------------------- statistics

def offdiag(m: np.ndarray) -> np.ndarray:
    """Entries with i ≠ j, row-major (P is not symmetric: both P_ij and P_ji count)."""
    return m[~np.eye(m.shape[0], dtype=bool)]


def kurtosis(x) -> float:
    # κ = E[(x−μ)⁴]/σ⁴ − 3 (Fisher, biased: scipy's default, as in the paper)
    from scipy import stats

    return float(stats.kurtosis(x))


def summarize(x: np.ndarray, cosine: bool) -> dict:
    """Moments of the off-diagonal entries x: excess kurtosis (Fisher, biased: scipy's default), mean, …"""
    from scipy import stats

    angle = np.degrees(np.arccos(np.clip(x, -1.0, 1.0))) if cosine else None
    return {"kurtosis": kurtosis(x), "mean": float(np.mean(x)), "std": float(np.std(x)),
            "skewness": float(stats.skew(x)), "share_abs_gt_0_1": float(np.mean(np.abs(x) > 0.1)),
            "angle_mean": float(np.mean(angle)) if cosine else np.nan,
            "angle_std": float(np.std(angle)) if cosine else np.nan}


def sizes(n_items: int, start: int = 16) -> list[int]:
    """16, 32, 64, … below N, then N itself."""
    out, n = [], start
    while n < n_items:
        out.append(n)
        n *= 2
    return out + [n_items]


def statistics(mats: dict[tuple[str, int], np.ndarray], n_layers: int) -> "pd.DataFrame":
    """One row per (layer, kind, n): statistics of the off-diagonal entries of the first n items' block."""
    import pandas as pd

    rows = []
    for (kind, layer), m in sorted(mats.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for n in sizes(m.shape[0]):
            rows.append({"layer": layer, "rel_depth": layer / (n_layers - 1) if n_layers > 1 else 0.0,
                         "kind": kind, "n": n, **summarize(offdiag(m[:n, :n]), kind in COSINES)})
    return pd.DataFrame(rows)


COLUMNS = ["model", "label", "family", "n_params", "n_layers", "d_model", "d_ff", "layer", "rel_depth", "kind",
           "n", "kurtosis", "mean", "std", "skewness", "share_abs_gt_0_1", "angle_mean", "angle_std", "corpus_id"]


def statistics_table(runs: list[dict]) -> tuple["pd.DataFrame", dict]:
    """All models: runs = [{model, label, manifest (path), table (superposition path)}] → (table, metadata)."""
    import json
    from pathlib import Path

    import pandas as pd

    frames, n_items = [], {}
    for run in runs:
        man = json.loads(Path(run["manifest"]).read_text())
        for field in ("family", "n_params", "n_layers", "d_model", "d_ff"):
            if field not in man:
                raise ValueError(f"{run['manifest']}: missing field {field!r}")
        mats, items, meta = read(run["table"])
        frame = statistics(mats, int(man["n_layers"]))
        frame = frame.assign(model=run["model"], label=run["label"], family=man["family"],
                             n_params=int(man["n_params"]), n_layers=int(man["n_layers"]),
                             d_model=int(man["d_model"]), d_ff=int(man["d_ff"]), corpus_id=meta.get("corpus_id"))
        frames.append(frame[COLUMNS])
        n_items[run["model"]] = int(len(items))
    counts = set(n_items.values())
    return pd.concat(frames, ignore_index=True), {"n_items": counts.pop() if len(counts) == 1 else n_items}


def run_statistics(*, tables, manifests, table, models, labels, logger=None):
    """Rule `statistics`: every model's superposition table → one statistics table (kurtosis per layer logged)."""
    from .io import write_parquet

    logger = logger or log
    runs = [{"model": m, "label": labels[m], "manifest": man, "table": t} for m, man, t in zip(models, manifests, tables)]
    frame, meta = statistics_table(runs)
    write_parquet(frame, table, metadata=meta)
    full = frame[(frame.kind == "P") & (frame.n == frame.groupby("model").n.transform("max"))]
    for model, g in full.groupby("model"):
        logger.info("%s: kurtosis of off-diagonal P per layer %s", model,
                    g.sort_values("layer")["kurtosis"].round(2).tolist())
