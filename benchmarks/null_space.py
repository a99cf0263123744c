"""How much of the key space AlphaEdit's null space keeps, per model and layer of its window.

AlphaEdit projects every update onto P = U₀U₀ᵀ, U₀ the eigenvectors of C = E[k kᵀ] with eigenvalue below an ABSOLUTE
threshold (0.02 in its published GPT-J / Llama-3 hyperparameters). How many directions pass depends on the scale of
the model's keys, so the same threshold means a different constraint on another model. This prints, for each
covariance file (the workflow's results/covariance/{model}.safetensors), the layers of the model's AlphaEdit window
(config/config.yaml rules), f, tr(C)/f, the median eigenvalue and the share of eigenvalues below the threshold.

    PYTHONPATH=src .venv/bin/python benchmarks/null_space.py results/covariance/*.safetensors
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from bench_common import REPO

sys.path.insert(0, str(REPO / "src"))
from kis import covariance, editing  # noqa: E402


def null_space_rows(covs: dict, layers, threshold) -> list[dict]:
    """One row per layer: f, tr(C)/f, median eigenvalue, the threshold (one number or {layer: number}), directions
    below it and their share."""
    rows = []
    for layer in layers:
        ev = torch.linalg.eigvalsh(covs[layer].double())
        thr = editing.per_layer(threshold, layer, "nullspace_threshold")
        below = int((ev < thr).sum())
        rows.append({"layer": layer, "f": ev.numel(), "mean_eig": float(ev.mean()), "median_eig": float(ev.median()),
                     "threshold": thr, "below": below, "share": below / ev.numel()})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("covariances", nargs="+", help="results/covariance/{model}.safetensors (model key = file stem)")
    ap.add_argument("--threshold", type=float, help="default: the model's AlphaEdit nullspace_threshold")
    args = ap.parse_args(argv)
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    print("| model | corpus | layer | f | tr(C)/f | median eigenvalue | threshold | directions below | share |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for path in args.covariances:
        key = Path(path).name.split(".")[0]
        covs, meta = covariance.load(path)  # every layer of the model
        n_layers = len(covs)
        d_ff = int(next(iter(covs.values())).shape[0])
        hp = editing.resolve_hparams(settings, "alphaedit", n_layers, [key], d_ff)
        thr = args.threshold if args.threshold is not None else hp["nullspace_threshold"]
        for r in null_space_rows(covs, hp["layers"], thr):
            out.append({"model": key, **r})
            print(f"| {key} | {meta.get('corpus_name', '?')} | {r['layer']} | {r['f']} | {r['mean_eig']:.3g} | "
                  f"{r['median_eig']:.3g} | {r['threshold']:g} | {r['below']} | {r['share']:.2f} |")
    return out


if __name__ == "__main__":
    main()
