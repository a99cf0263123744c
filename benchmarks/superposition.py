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
2 OpenMP threads were ~18x SLOWER per small forward than 1 (spin-waiting when a core is taken). Timing
(benchmarks/timing.py): a warm-up of both on a few items, then --reps (3) repetitions interleaved (reference rows,
ours, reference rows, ours, ...); the ratio is the ratio of the minima with the per-repetition range, and the
reference's timed rows are compared with our P in the same run.
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
import timing  # noqa: E402
from bench_common import FACTS, OUT, WIKI, smollm2  # noqa: E402

from kis import corpus, covariance, keys, models, schema, superposition  # noqa: E402


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


def reference_rows(model, tok, prompts, subjects, c_inv, layer, rows):
    """The pair loop for rows i of one layer: keys recomputed inside, 2 forwards per pair (i, j); C⁻¹ given (the
    reference computes it once per layer, timed apart)."""
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

    n = len(prompts)
    p = torch.empty((len(rows), n), dtype=torch.float64)
    for r, i in enumerate(rows):
        for j in range(n):
            ki, kj = key(i), key(j)
            u = c_inv @ ki
            p[r, j] = (u @ kj) / (u @ ki)
    return p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="items (the first N CounterFact records)")
    ap.add_argument("--rows", type=int, default=1, help="rows i of the reference pair loop to time (2·N forwards each)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cov-texts", type=int, default=50)
    ap.add_argument("--random-cov", action="store_true", help="random SPD C instead of one from Wikipedia")
    timing.add_arguments(ap, out=str(OUT / "superposition.json"))
    args = ap.parse_args(argv)
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
        frame, meta = corpus.build(schema.filled("corpus", {"source": "local", "path": str(WIKI),
                                                            "n_texts": args.cov_texts, "seed": 0}))
        t = time.perf_counter()
        sums, count = covariance.collect(model, tok, frame.text.tolist(), max_length=128)
        covs = covariance.finalize(sums, count)
        cov_name = f"{meta['corpus_id']}: {len(frame)} texts, {count} tokens ({time.perf_counter() - t:.0f} s)"

    t = time.perf_counter()
    c_inv = torch.linalg.inv(covs[0])  # the reference computes it once per layer
    inv_s = time.perf_counter() - t
    rows, n = list(range(args.rows)), len(prompts)

    def extrapolate(seconds):
        """The reference's whole stage from its timed rows of layer 0: (s per row × N rows + inverse) × L layers."""
        return (seconds / len(rows) * n + inv_s) * L

    run = timing.compare(
        [("reference", lambda: reference_rows(model, tok, prompts, subjects, c_inv, 0, rows)),
         ("ours", lambda: ours(model, tok, prompts, subjects, covs, args.batch_size))],
        reps=args.reps, warmup=args.warmup, threads=args.threads, scale={"reference": extrapolate},
        warmup_calls={"reference": lambda: reference_rows(model, tok, prompts[:2], subjects[:2], c_inv, 0, [0]),
                      "ours": lambda: ours(model, tok, prompts[:4], subjects[:4], covs, args.batch_size)})
    times, mats, n_rows = run.results["ours"]
    ref_p = run.results["reference"]
    ref_min = run.report["methods"]["reference"]
    per_row_s = min(ref_min["measured_seconds"]) / len(rows)
    diff = float((ref_p - mats[0]["P"][:args.rows]).abs().max())
    result = {"model": "SmolLM2-135M-Instruct (fp32)", "n_items": n, "layers": L, "d_ff": f,
              "covariance": cov_name, "machine": platform.machine(), "ours_total_s": run.report["methods"]["ours"]["min_s"],
              "ours_stages_last_rep": {k: round(v, 2) for k, v in times.items()}, "table_rows": n_rows,
              "reference": {"timed_rows": args.rows, "layer": 0, "forwards_timed": 2 * args.rows * n,
                            "s_per_row": round(per_row_s, 3), "inverse_s_per_layer": round(inv_s, 3),
                            "extrapolated_total_s": round(ref_min["min_s"], 1),
                            "extrapolation": f"(s_per_row × {n} rows + inverse) × {L} layers"},
              "max_abs_diff_P_rows": diff}
    timing.finish(result, run, args.json,
                  f"ours (keys + P/Q/cosines for all {L} layers, table, statistics): min {result['ours_total_s']:.1f} "
                  f"s; reference pair loop: min {ref_min['min_s']:.0f} s = {ref_min['min_s'] / 3600:.1f} h "
                  f"EXTRAPOLATED from {args.rows} timed row(s) of layer 0 ({2 * args.rows * n} forwards); "
                  f"{run.ratio_text('.0f')}; max |ΔP| on the timed rows {diff:.2e}")
    if diff > 1e-4:
        sys.exit("the reference rows of P differ from ours")


if __name__ == "__main__":
    main()
