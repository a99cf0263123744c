"""The covariance stage's memory plan and time for every model of config/paper.yaml on one 80 GB H100, and the plan
on one 48 GB card (an L40S: 46,068 MiB; an RTX A6000 has 49,140 MiB).

Shapes come from resources/model_shapes.yaml (the published config.json values; the hub is not needed). Time is an
estimate, not a measurement: forward and key-product FLOPs at EFFICIENCY × the H100 SXM's dense peak for the
product dtype (bf16/fp16 989 TFLOP/s, fp32 67 TFLOP/s with TF32 off), plus the float64 fold at EFFICIENCY × 3.35 TB/s
(kis.plan.estimate_seconds), one fold per tensor-core GEMM of kis.plan.TENSOR_CORE_CHUNK tokens for half models.
Corpus: corpus.n_texts × min(max_length, 700) tokens; a text is cut at max_length, or at min(context, token budget)
when that is null (the reference code's rule, kis.models.covariance_max_length). The activations are those that live
during the pass: no KV cache (the forward runs with use_cache=False); "kv avoided" is what a cache would have held.

    python benchmarks/paper_plan.py [--config config/paper.yaml] [--device-gb 80] [--efficiency 0.4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from kis import plan  # noqa: E402

GiB = plan.GiB
CARD_48GB = 46068 * 2 ** 20  # an NVIDIA L40S as nvidia-smi reports it (the smaller of the 48 GB cards)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    ap.add_argument("--device-gb", type=float, help="device memory in GiB (default: an H100 80GB, 79.6 GiB)")
    ap.add_argument("--efficiency", type=float, default=plan.EFFICIENCY)
    ap.add_argument("--small-gb", type=float, help="the second card's memory in GiB (default: 48 GB, 45.0 GiB)")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    shapes = plan.load_shapes()
    device = int(args.device_gb * GiB) if args.device_gb else plan.H100["memory_bytes"]
    small = int(args.small_gb * GiB) if args.small_gb else CARD_48GB
    cov, corpus = cfg["covariance"], cfg["corpus"]
    budget = cov.get("token_budget", 4096)
    store = cov.get("store_dtype", "float64")
    print(f"device: {plan.H100['name']}, {device / GiB:.1f} GiB; token budget {budget}; C stored as {store}; "
          f"{corpus.get('n_texts')} texts; efficiency {args.efficiency} of peak (bf16/fp16 989.4, fp32 66.9 "
          f"TFLOP/s; 3.35 TB/s); half keys: one GEMM per {plan.TENSOR_CORE_CHUNK} tokens; 48 GB column: "
          f"{small / GiB:.1f} GiB")
    head = (f"{'model':<14} {'dtype':<9} {'L':>3} {'f':>6} {'seq':>6} {'passes':>6} {'groups':<10} {'device':>8} "
            f"{'kv avoided':>10} {'host':>7} {'ckpt':>7} {'cache':>7} {'tokens':>7} {'hours':>6} {'48 GB':>14}")
    print(head)
    print("-" * len(head))
    fit, fit_small, ckpt_total, cache_total = 0, 0, 0, 0
    for name, spec in cfg["models"].items():
        s = shapes[spec["hub_id"]]
        dtype = spec.get("dtype", "float32")
        max_length = (spec.get("covariance") or {}).get("max_length") or corpus.get("max_length")
        seq = plan.covariance_seq(s.context, max_length, budget)
        n_tokens = plan.corpus_tokens(corpus.get("n_texts") or 0, seq)
        try:
            p = plan.plan_for_shape(s, device_bytes=device, token_budget=budget, seq=seq, dtype=dtype,
                                    store_dtype=store, n_texts=corpus.get("n_texts") or 0, n_tokens=n_tokens)
        except ValueError as e:
            print(f"{name:<14} {dtype:<9} {s.n_layers:>3} {s.d_ff:>6}  does not fit: {e}")
            continue
        fit += 1
        try:
            q = plan.plan_for_shape(s, device_bytes=small, token_budget=budget, seq=seq, dtype=dtype,
                                    store_dtype=store, n_texts=corpus.get("n_texts") or 0, n_tokens=n_tokens)
            on_small = f"{q.passes}p {q.device_peak / GiB:.1f}G"
            fit_small += 1
        except ValueError:
            on_small = "does not fit"
        est = plan.estimate_seconds(s, p, n_tokens=n_tokens, seq=seq, token_budget=budget, dtype=dtype,
                                    efficiency=args.efficiency)
        spans = ",".join(f"{g[0]}-{g[-1]}" for g in p.groups)
        kv = plan.kv_cache_bytes(s, budget, dtype)
        ckpt_total, cache_total = ckpt_total + p.checkpoint_bytes, cache_total + p.cache_bytes
        print(f"{name:<14} {dtype:<9} {s.n_layers:>3} {s.d_ff:>6} {seq:>6} {p.passes:>6} {spans:<10} "
              f"{p.device_peak / GiB:>7.1f}G {kv / GiB:>9.1f}G {p.host_peak / GiB:>6.1f}G "
              f"{p.checkpoint_bytes / GiB:>6.1f}G {p.cache_bytes / GiB:>6.1f}G {n_tokens / 1e6:>6.1f}M "
              f"{est['total_s'] / 3600:>6.2f} {on_small:>14}")
    print(f"disk: covariance caches {cache_total / GiB:.0f} GiB, group checkpoints {ckpt_total / GiB:.0f} GiB "
          "while every covariance job runs at once")
    print(f"fit on {small / GiB:.1f} GiB (48 GB): {fit_small} of {len(cfg['models'])} models")
    print(f"fit on {device / GiB:.0f} GB: {fit} of {len(cfg['models'])} models" if args.device_gb else
          f"fit on 80 GB: {fit} of {len(cfg['models'])} models")


if __name__ == "__main__":
    main()
