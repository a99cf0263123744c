"""Where AlphaEdit's null space meets the corpus and the keys of facts (the `studies` target; no edit is written).

AlphaEdit writes ΔW = Δ P₀, P₀ = U₀U₀ᵀ the eigenvectors of C = E[k kᵀ] with eigenvalue below an ABSOLUTE threshold
(0.02 in its published GPT-J / Llama-3 hyperparameters), so a key k moves by Δ P₀ k and what reaches it is ‖P₀k‖².
Over the corpus behind C, E‖P₀k‖² = tr(P₀C), the sum of the eigenvalues below the threshold. Per layer of the model's
AlphaEdit window: the null space's dimensions and share of f, tr(C)/f, the median eigenvalue, the corpus energy share
tr(P₀C)/tr(C), the median and 90th percentile of the fact keys' share ‖P₀k‖²/‖k‖², and mean ‖P₀k‖² / tr(P₀C): how
much more of an AlphaEdit update reaches a fact's key than an average corpus token's. The same threshold is another
constraint on another model: it depends on the scale of the model's keys.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from . import covariance, editing, keys
from .io import write_parquet

log = logging.getLogger(__name__)

COLUMNS = {
    "model": "config key of the model",
    "layer": "a layer of the model's AlphaEdit window (kis.editing.resolve_hparams)",
    "f": "key width (FFN inner dimension)",
    "threshold": "AlphaEdit's nullspace_threshold at this layer (absolute eigenvalue of C)",
    "below": "eigenvalues of C below the threshold: the null space's dimension",
    "share": "below / f",
    "mean_eig": "tr(C) / f",
    "median_eig": "median eigenvalue of C",
    "corpus_share": "tr(P₀C) / tr(C): share of the corpus keys' energy inside the null space",
    "fact_share_median": "median over the analysis facts' keys of ‖P₀k‖² / ‖k‖²",
    "fact_share_p90": "90th percentile of the same",
    "ratio": "mean ‖P₀k‖² over the fact keys / tr(P₀C) (inf when the null space holds no corpus energy)",
    "n_keys": "fact keys (the analysis set: subject's last token, keys.context_templates)",
}


def reach(C: torch.Tensor, K: torch.Tensor, threshold: float) -> dict:
    """C (f, f), K (N, f) keys: the COLUMNS from f to ratio, P₀ = U₀U₀ᵀ (U₀ the eigenvectors below threshold)."""
    ev, vec = torch.linalg.eigh(C.double())
    below = ev < threshold
    proj = K.double() @ vec[:, below]                            # (N, f₀): U₀ᵀk
    energy = (proj ** 2).sum(1)                                  # ‖P₀k‖²
    share = (energy / (K.double() ** 2).sum(1)).numpy()
    corpus = float(ev[below].sum())                              # tr(P₀C) = E‖P₀k‖² over the corpus
    return {"f": ev.numel(), "threshold": float(threshold), "below": int(below.sum()),
            "share": int(below.sum()) / ev.numel(), "mean_eig": float(ev.mean()), "median_eig": float(np.median(ev.numpy())),
            "corpus_share": corpus / float(ev.sum()), "fact_share_median": float(np.median(share)),
            "fact_share_p90": float(np.percentile(share, 90)),
            "ratio": float(energy.mean()) / corpus if corpus > 0 else float("inf"), "n_keys": int(K.shape[0])}


def run_rule(*, cov, key_table, table, model: str, settings: dict, names, logger=None) -> pd.DataFrame:
    """Rule null_space: C + the analysis set's keys → studies/null_space/{model}.parquet, one row per layer of the
    AlphaEdit window (hyperparameters resolved as the trajectory rule resolves them: settings, names)."""
    logger = logger or log
    K, _, _, kmeta = keys.read(key_table)
    n_layers, d_ff = int(kmeta.get("n_layers", len(K))), int(kmeta.get("d_ff", next(iter(K.values())).shape[1]))
    hp = editing.resolve_hparams(settings, "alphaedit", n_layers, list(names) or [model], d_ff)
    layers = list(hp["layers"])
    covs, cmeta = covariance.load(cov, layers=layers)
    rows = []
    for layer in layers:
        if layer not in K:
            raise ValueError(f"{key_table}: no keys of layer {layer} (AlphaEdit's window {layers})")
        thr = editing.per_layer(hp["nullspace_threshold"], layer, "nullspace_threshold")
        r = {"model": model, "layer": layer, **reach(covs[layer], torch.from_numpy(K[layer]), thr)}
        logger.info("%s layer %d: null space %d of %d, corpus energy %.2e, fact keys %.2e (median), ratio %.1f",
                    model, layer, r["below"], r["f"], r["corpus_share"], r["fact_share_median"], r["ratio"])
        rows.append(r)
    frame = pd.DataFrame(rows)[list(COLUMNS)]
    meta = {"model": model, "corpus_id": cmeta.get("corpus_id"), "layers": layers,
            "nullspace_threshold_source": hp["sources"].get("nullspace_threshold", hp["source"]),
            "keys": {k: kmeta.get(k) for k in ("position", "context_templates", "n_items", "source")}}
    write_parquet(frame, table, metadata=meta)
    return frame
