"""One-pass, all-layer covariance vs the reference code's per-layer passes, same texts, same process.

The reference implementation (ROME's layer_stats, used by the paper's code) collects C for ONE layer per pass
over the corpus, stopping the forward at that layer. We hook every layer's FFN output projection and stop after
the last one. Both fold fp32 products into fp64 sums here, so the ratio measures the pass structure.

Timing (benchmarks/timing.py): a warm-up of both methods on two texts, then --reps (3) repetitions interleaved
(per-layer, one pass, per-layer, one pass, ...), both at --threads (1) torch threads; the ratio is the ratio of the
minima, printed with the range of the per-repetition ratios; the C of the last repetitions are compared. The default
size, 8 texts × 128 tokens (≈ 830 tokens: the texts are tokenized to at most 128), keeps the run under 5 minutes on a
shared 2-core CPU: the per-layer baseline makes 30 passes (≈ 48 s a repetition there, ≈ 18 tokens/s on one thread);
at the earlier default, 32 texts (3,545 tokens), one repetition of it alone takes ≈ 200 s.

    python benchmarks/covariance.py                # SmolLM2-135M (offline), shared Wikipedia sample if present
    python benchmarks/covariance.py --tiny gpt2 --d 768 --f 3072 --layers 12 --device cuda   # GPT-2-small-sized
    python benchmarks/covariance.py --tiny gpt2 --device cuda --dtype bfloat16 --skip-baseline  # half fast path
    python benchmarks/covariance.py --tiny gpt2 --tokens 2000 --skip-baseline  # CPU smoke check

FLOPs counted: forward 2·(block parameters up to the last layer)·T + the key products 2·Σ_l P(f_l)·T (P: the packed
upper triangle, kis.plan.packed_elements); the fraction of peak divides by the device's dense peak for the product
dtype (H100/H200: bf16/fp16 989.4, fp32 without TF32 66.9 TFLOP/s; A100: 312 and 19.5).
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402
from bench_common import OUT, WIKI, random_model, smollm2, sync  # noqa: E402

from kis import corpus, covariance, models, panels, plan, probe, schema  # noqa: E402

PEAKS = {"H100": plan.H100["flops"], "H200": plan.H100["flops"],
         "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12, "float64": 19.5e12}}


def counted_flops(model, tokens: int) -> float:
    """2·(parameters of the blocks)·T for the forward (it stops inside the last block) + 2·Σ P(f)·T products."""
    blocks = sum(p.numel() for p in models.blocks(model).parameters())
    packed = sum(plan.packed_elements(f) for f in covariance.layer_widths(model))
    return 2.0 * blocks * tokens + 2.0 * packed * tokens


def device_peak(device, dtype: str):
    if not str(device).startswith("cuda"):
        return None, platform.processor() or platform.machine()
    name = torch.cuda.get_device_name(torch.device(device))
    for key, rates in PEAKS.items():
        if key in name:
            return rates[plan.product_dtype(dtype)], name
    return None, name


def per_layer_passes(model, tok, texts, max_length, token_budget, device):
    """The reference method: for each layer, a pass over all texts that stops at that layer."""
    L = models.n_layers(model)
    _, f = models.dims(model)
    rows = covariance.tokenize(tok, texts, max_length)
    lengths = torch.tensor([len(r) for r in rows]).numpy()
    order = probe.length_order(lengths)
    sums, count = [], 0
    for layer in range(L):
        s = torch.zeros((f, f), dtype=torch.float64, device=device)
        count = 0

        def add(_layer, k):
            nonlocal s
            k = k.float()
            s += (k.T @ k).double()

        for batch in covariance.batches(lengths, order, token_budget):
            ids, mask = probe.pad([rows[i] for i in batch], probe.pad_id(tok))
            covariance.forward_keys(model, ids.to(device), mask.to(device), add, layers=[layer])
            count += int(mask.sum())
        sums.append(s)
    return sums, count


TEXTS = 8  # ≈ 830 tokens: 3 interleaved repetitions + warm-up in < 5 minutes on 2 CPU cores (see the docstring)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=TEXTS)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--token-budget", type=int, default=2048)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", help="random-weight model of this family instead of SmolLM2 (timing only)")
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--f", type=int, default=3072)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--skip-baseline", action="store_true", help="only time the one-pass method")
    ap.add_argument("--tokens", type=int, help="about this many corpus tokens (texts = tokens / max-length)")
    timing.add_arguments(ap, out=str(OUT / "covariance.json"))
    args = ap.parse_args(argv)

    if args.tiny:
        # GPT-2 small's 1024 positions (tiny.config's 128 made --max-length 512 index past the position table)
        model, tok = random_model(args.tiny, args.d, args.f, args.layers, dtype=args.dtype, device=args.device,
                                  positions=1024)
        name = f"random {args.tiny} d={args.d} f={args.f} L={args.layers} {args.dtype}"
    else:
        model, tok = smollm2(args.device)
        name = "SmolLM2-135M-Instruct (fp32)"

    args.max_length = models.covariance_max_length(model, args.max_length, batch_tokens=None)  # ≤ the context
    if args.tokens:
        args.texts = max(2, -(-args.tokens // args.max_length))
    if WIKI.exists():
        frame, meta = corpus.build(schema.filled("corpus", {"source": "local", "path": str(WIKI), "n_texts": args.texts,
                                                            "seed": 0}))
    else:
        frame, meta = corpus.build(schema.filled("corpus", {"source": "python_docs", "n_texts": args.texts, "seed": 0,
                                                            "min_chars": 500}))
    texts = frame.text.tolist()

    def one_pass(subset):
        return covariance.collect(model, tok, subset, max_length=args.max_length, token_budget=args.token_budget,
                                  device=args.device)

    def per_layer(subset):
        return per_layer_passes(model, tok, subset, args.max_length, args.token_budget, args.device)

    methods = [("one_pass", lambda: one_pass(texts))]
    if not args.skip_baseline:
        methods.insert(0, ("per_layer", lambda: per_layer(texts)))
    # warm-up (allocations, kernels) on two texts; then per_layer, one_pass, per_layer, one_pass, ...
    run = timing.compare(methods, reps=args.reps, warmup=args.warmup, threads=args.threads,
                         warmup_calls={"one_pass": lambda: one_pass(texts[:2]), "per_layer": lambda: per_layer(texts[:2])},
                         sync=lambda: sync(args.device))
    sums, count = run.results["one_pass"]
    one = run.report["methods"]["one_pass"]["min_s"]
    result = {"model": name, "corpus": meta["corpus_id"], "texts": len(texts), "tokens": count,
              "layers": models.n_layers(model), "device": args.device, "machine": platform.machine(),
              "one_pass_s": round(one, 2), "one_pass_tokens_per_s": round(count / one, 1),
              "products": panels.product_mode(next(model.parameters()).dtype, args.device)}
    flops = counted_flops(model, count)
    peak, device_name = device_peak(args.device, args.dtype)
    result.update(device_name=device_name, counted_tflop=round(flops / 1e12, 3),
                  achieved_tflop_s=round(flops / one / 1e12, 2),
                  peak_tflop_s=peak and round(peak / 1e12, 1), fraction_of_peak=peak and round(flops / one / peak, 3))
    if not args.skip_baseline:
        ref_sums, ref_count = run.results["per_layer"]
        assert ref_count == count
        worst = max(float(torch.linalg.norm(a - b) / torch.linalg.norm(b)) for a, b in zip(sums, ref_sums))
        base = run.report["methods"]["per_layer"]["min_s"]
        result.update(per_layer_s=round(base, 2), per_layer_tokens_per_s=round(count / base, 1), max_rel_diff=worst)
        line = (f"one pass: {result['one_pass_tokens_per_s']:.0f} tokens/s; per-layer passes: "
                f"{result['per_layer_tokens_per_s']:.0f} tokens/s (the minima); {run.ratio_text('.1f')}; max rel. "
                f"diff of C {worst:.1e}")
    timing.finish(result, run, args.json, line if not args.skip_baseline else None)


if __name__ == "__main__":
    main()
