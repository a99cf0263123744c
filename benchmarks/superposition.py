"""Keys + superposition matrices for every layer (ours) vs the reference code's pair loop, same model and items.

Ours: ONE batched forward for the keys of all items and all layers (stopped after the last layer), then per
layer one float64 Cholesky factor of C and one triangular solve for all N keys → G = K C⁻¹ Kᵀ → P, Q, cosines.
Reference method: for every layer and every pair (i, j), a forward pass for k_i and another for k_j (single
prompt, full model, as a hook-based trace does), then P_ij = (C⁻¹k_i)·k_j / (C⁻¹k_i)·k_i with C⁻¹ from an
explicit inverse computed once per layer: 2·N² forwards per layer. It is far too slow to run in full, so a few
rows i of one layer are timed and the time is EXTRAPOLATED to N rows × L layers (the output says so).

    python benchmarks/superposition.py                 # SmolLM2-135M, 128 CounterFact facts, C from Wikipedia
    python benchmarks/superposition.py --random-cov    # C random SPD (its values do not affect the timing)

Both methods run with the same number of torch threads (--threads, default 1): on a CPU shared with other jobs,
2 OpenMP threads were ~18x SLOWER per small forward than 1 (spin-waiting when a core is taken).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FACTS, WIKI, smollm2  # noqa: E402

from kis import corpus, covariance, keys, models, superposition  # noqa: E402


def random_spd(f: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(f, 2 * f, generator=g, dtype=torch.float64)
    return a @ a.T / (2 * f)


def ours(model, tok, prompts, subjects, covs, batch_size):
    """Keys (all layers, one pass) + P, Q, cos_white, cos_act per layer + the long table + statistics."""
    times = {}
    t = time.perf_counter()
    k = keys.compute(model, tok, prompts, subjects, batch_size=batch_size)
    times["keys_s"] = time.perf_counter() - t
    t = time.perf_counter()
    mats = {}
    for layer in range(k.shape[0]):
        chol, _ = superposition.factor(covs[layer])
        mats[layer] = superposition.matrices(k[layer], chol)
    times["matrices_s"] = time.perf_counter() - t
    t = time.perf_counter()
    frame = pd.concat([superposition.to_frame(layer, m, np.arange(len(prompts))) for layer, m in mats.items()],
                      ignore_index=True)
    times["table_s"] = time.perf_counter() - t
    t = time.perf_counter()
    superposition.statistics({(kind, layer): m[kind].numpy() for layer, m in mats.items()
                              for kind in superposition.KINDS}, k.shape[0])
    times["statistics_s"] = time.perf_counter() - t
    times["total_s"] = sum(times.values())
    return times, mats, len(frame)


def reference_rows(model, tok, prompts, subjects, c, layer, rows):
    """The pair loop for rows i of one layer: keys recomputed inside, 2 forwards per pair (i, j)."""
    module = models.ffn_out(model, layer)

    def key(i):
        ids, index, _ = keys.encode(tok, [prompts[i]], [subjects[i]])
        got = {}
        h = module.register_forward_pre_hook(lambda _m, args: got.__setitem__("k", args[0][0, index[0]]))
        try:
            with torch.no_grad():
                model(input_ids=torch.tensor(ids))
        finally:
            h.remove()
        return got["k"].double()

    t = time.perf_counter()
    c_inv = torch.linalg.inv(c)  # computed once per layer
    inv_s = time.perf_counter() - t
    n = len(prompts)
    p = torch.empty((len(rows), n), dtype=torch.float64)
    t = time.perf_counter()
    for r, i in enumerate(rows):
        for j in range(n):
            ki, kj = key(i), key(j)
            u = c_inv @ ki
            p[r, j] = (u @ kj) / (u @ ki)
    return p, (time.perf_counter() - t) / len(rows), inv_s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="items (the first N CounterFact records)")
    ap.add_argument("--rows", type=int, default=2, help="rows i of the reference pair loop to time")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cov-texts", type=int, default=50)
    ap.add_argument("--random-cov", action="store_true", help="random SPD C instead of one from Wikipedia")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both methods")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if not FACTS.exists():
        print(f"SKIPPED: shared CounterFact sample absent ({FACTS})")
        return
    records = [r["requested_rewrite"] for r in json.loads(FACTS.read_text())][:args.n]
    prompts, subjects = [r["prompt"] for r in records], [r["subject"] for r in records]

    model, tok = smollm2()
    L, (_, f) = models.n_layers(model), models.dims(model)

    if args.random_cov or not WIKI.exists():
        covs, cov_name = [random_spd(f, seed=layer) for layer in range(L)], "random SPD"
    else:
        frame, meta = corpus.build({"source": "local", "path": str(WIKI), "n_texts": args.cov_texts, "seed": 0})
        t = time.perf_counter()
        sums, count = covariance.collect(model, tok, frame.text.tolist(), max_length=128)
        covs = covariance.finalize(sums, count)
        cov_name = f"{meta['corpus_id']}: {len(frame)} texts, {count} tokens ({time.perf_counter() - t:.0f} s)"

    keys.compute(model, tok, prompts[:4], subjects[:4])  # warm-up
    times, mats, n_rows = ours(model, tok, prompts, subjects, covs, args.batch_size)

    ref_p, per_row_s, inv_s = reference_rows(model, tok, prompts, subjects, covs[0], 0, list(range(args.rows)))
    ref_total = (per_row_s * len(prompts) + inv_s) * L
    diff = float((ref_p - mats[0]["P"][:args.rows]).abs().max())
    result = {"model": "SmolLM2-135M-Instruct (fp32)", "n_items": len(prompts), "layers": L, "d_ff": f,
              "covariance": cov_name, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.machine(), "ours": {k: round(v, 2) for k, v in times.items()},
              "table_rows": n_rows,
              "reference": {"timed_rows": args.rows, "layer": 0, "forwards_timed": 2 * args.rows * len(prompts),
                            "s_per_row": round(per_row_s, 3), "inverse_s_per_layer": round(inv_s, 3),
                            "extrapolated_total_s": round(ref_total, 1),
                            "extrapolation": f"(s_per_row × {len(prompts)} rows + inverse) × {L} layers"},
              "ratio": round(ref_total / times["total_s"], 1), "max_abs_diff_P_rows": diff}
    print(json.dumps(result, indent=2))
    print(f"ours (keys + P/Q/cosines for all {L} layers, table, statistics): {times['total_s']:.1f} s; "
          f"reference pair loop: {ref_total:.0f} s = {ref_total / 3600:.1f} h EXTRAPOLATED from {args.rows} "
          f"timed rows of layer 0 ({2 * args.rows * len(prompts)} forwards); ratio {result['ratio']:.0f}x; "
          f"max |ΔP| on the timed rows {diff:.2e}")


if __name__ == "__main__":
    main()
