"""The covariance stage's memory plan and time for every model of config/paper.yaml on one 80 GB H100.

Shapes come from resources/model_shapes.yaml (the published config.json values; the hub is not needed). Time is an
estimate, not a measurement: forward and key-product FLOPs at EFFICIENCY × the H100 SXM's dense peak for the
product dtype (bf16/fp16 989 TFLOP/s, fp32 67 TFLOP/s with TF32 off), plus the float64 fold at EFFICIENCY × 3.35 TB/s
(kis.plan.estimate_seconds). Corpus: corpus.n_texts × min(max_length, 700) tokens.

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    ap.add_argument("--device-gb", type=float, help="device memory in GiB (default: an H100 80GB, 79.6 GiB)")
    ap.add_argument("--efficiency", type=float, default=plan.EFFICIENCY)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    shapes = plan.load_shapes()
    device = int(args.device_gb * GiB) if args.device_gb else plan.H100["memory_bytes"]
    cov, corpus = cfg["covariance"], cfg["corpus"]
    budget = cov.get("token_budget", 4096)
    store = cov.get("store_dtype", "float64")
    print(f"device: {plan.H100['name']}, {device / GiB:.1f} GiB; token budget {budget}; C stored as {store}; "
          f"{corpus.get('n_texts')} texts; efficiency {args.efficiency} of peak (bf16/fp16 989.4, fp32 66.9 "
          f"TFLOP/s; 3.35 TB/s)")
    head = (f"{'model':<14} {'dtype':<9} {'L':>3} {'f':>6} {'passes':>6} {'groups':<26} {'device':>8} "
            f"{'host':>7} {'ckpt':>7} {'cache':>7} {'tokens':>7} {'hours':>6}")
    print(head)
    print("-" * len(head))
    fit = 0
    for name, spec in cfg["models"].items():
        s = shapes[spec["hub_id"]]
        dtype = spec.get("dtype", "float32")
        seq = min((spec.get("covariance") or {}).get("max_length") or corpus.get("max_length") or s.context, s.context)
        n_tokens = plan.corpus_tokens(corpus.get("n_texts") or 0, seq)
        try:
            p = plan.plan_for_shape(s, device_bytes=device, token_budget=budget, seq=seq, dtype=dtype,
                                    store_dtype=store, n_texts=corpus.get("n_texts") or 0, n_tokens=n_tokens)
        except ValueError as e:
            print(f"{name:<14} {dtype:<9} {s.n_layers:>3} {s.d_ff:>6}  does not fit: {e}")
            continue
        fit += 1
        est = plan.estimate_seconds(s, p, n_tokens=n_tokens, seq=seq, token_budget=budget, dtype=dtype,
                                    efficiency=args.efficiency)
        spans = ",".join(f"{g[0]}-{g[-1]}" for g in p.groups)
        print(f"{name:<14} {dtype:<9} {s.n_layers:>3} {s.d_ff:>6} {p.passes:>6} {spans:<26} "
              f"{p.device_peak / GiB:>7.1f}G {p.host_peak / GiB:>6.1f}G {p.checkpoint_bytes / GiB:>6.1f}G "
              f"{p.cache_bytes / GiB:>6.1f}G {n_tokens / 1e6:>6.1f}M {est['total_s'] / 3600:>6.2f}")
    print(f"fit on {device / GiB:.0f} GB: {fit} of {len(cfg['models'])} models" if args.device_gb else
          f"fit on 80 GB: {fit} of {len(cfg['models'])} models")


if __name__ == "__main__":
    main()
