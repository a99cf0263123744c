"""What reaches the prompt when r-ROME writes at the template-mean key (r-ROME, WilKE, kis): no edit is written.

    python benchmarks/write_at.py --manifest results/models/gemma3-270m/manifest.json --layers 0,1,2,3,4
    python benchmarks/write_at.py --layers 2,3,4,5,6          # SmolLM2-135M from PyPI

r-ROME writes v* = W k₀ + δ at k̄ (the key averaged over the context templates), u = C⁻¹k̄, so the prompt's own key
k₀ gets  W' k₀ = W k₀ + ρ (W (k₀ − k̄) + δ),  ρ = uᵀk₀ / uᵀk̄:  it receives all of δ only when ρ = 1 and W k₀ = W k̄.
For the first --facts records of resources/facts.json, per layer: the median and 10th / 90th percentiles of ρ, the
share of facts with ρ < 0.5, and ‖W (k₀ − k̄)‖ / ‖W k₀‖. C from the first --n-texts texts of the shared Wikipedia
sample (128 tokens each), as benchmarks/editing_methods.py takes it.
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--layers", required=True, help="comma-separated layers")
    ap.add_argument("--facts", type=int, default=40)
    ap.add_argument("--n-texts", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not WIKI.exists():
        sys.exit(f"{WIKI} is absent: this benchmark takes C from the shared Wikipedia sample")
    torch.set_num_threads(args.threads)
    layers = [int(x) for x in args.layers.split(",")]
    model, tok, name = model_for(args.manifest)
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    covs, count = wiki_covariances(model, tok, args.n_texts)
    facts = first_facts(args.facts)
    prompts, subjects = [f["prompt"] for f in facts], [f["subject"] for f in facts]
    kbar = keys.averaged(model, tok, prompts, subjects, layers=layers, templates=settings["context_templates"])
    k0 = keys.averaged(model, tok, prompts, subjects, layers=layers)
    print(f"{name}, {len(facts)} facts, C from {count} tokens:")
    for i, layer in enumerate(layers):
        L = editing.cholesky(covs[layer].double(), float(settings.get("cov_ridge", 0.0)))
        W = models.ffn_weight(model, layer).detach().double()
        U = torch.stack([editing.whiten(L, k) for k in kbar[i]])                      # (N, f): u = C⁻¹k̄
        rho = ((U * k0[i]).sum(1) / (U * kbar[i]).sum(1)).numpy()
        gap = ((kbar[i] - k0[i]) @ W.T).norm(dim=1) / (k0[i] @ W.T).norm(dim=1)
        p10, p50, p90 = np.percentile(rho, [10, 50, 90])
        print(f"layer {layer}: ρ median {p50:.2f} [p10 {p10:.2f}, p90 {p90:.2f}], share ρ < 0.5 "
              f"{np.mean(rho < 0.5):.2f}; ‖W(k₀ − k̄)‖/‖W k₀‖ median {float(gap.median()):.2f}, "
              f"p90 {float(np.percentile(gap.numpy(), 90)):.2f}")


if __name__ == "__main__":
    main()
