"""The covariance plan checked on a GPU in one run (issue 29): benchmarks/gpu_check.sh calls this.

For a random float16 model of Llama-2-13B's shape (d 5120, f 13824, 40 layers, 40 heads, vocab 32000) built
directly on the device, it measures and writes to one JSON file:
  memory    torch.cuda.max_memory_allocated of the covariance pass against the plan's device bytes without its
            reserve (weights + one batch + the group's float64 sums: kis.plan, the CUDA context is not allocated)
  pass      tokens/s of the plan's first pass (batches of token_budget tokens, rows of 4096) and the fraction of the
            device's dense float16 peak reached (forward + key products counted, benchmarks/covariance.py), beside
            kis.plan's estimate
  products  the relative error of S = Σ k kᵀ against a float64 GEMM of the same half keys for one 16,384-token batch
            of spiky keys (kis.panels.spiky_keys, f = 13,824), for the default chunk and a ladder of chunks, and the
            largest chunk whose error is below 1e-6 (kis.plan.TENSOR_CORE_CHUNK may be raised to it)
  tests     the CUDA-only tests (pytest -k cuda), on a CUDA device

    bash benchmarks/gpu_check.sh [--out FILE]                # a GPU node, ≤ 10 minutes
    bash benchmarks/gpu_check.sh --device cpu --tiny         # smoke check: a tiny model, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
from kis import covariance, panels, plan  # noqa: E402

LLAMA_2_13B = dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                   num_key_value_heads=40, vocab_size=32000, max_position_embeddings=4096)
TINY = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            vocab_size=1000, max_position_embeddings=256)
LADDER = (16384, 4096, 1024, 512, 256, 128, 64)
GiB = plan.GiB


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def product_errors(device, f: int, n: int, dtype=torch.float16) -> dict:
    """Relative error of the panels' S against float64 for n spiky keys of width f, per chunk of the ladder."""
    keys = panels.spiky_keys(n, f, seed=0, dtype=dtype, device=device)
    mode = panels.product_mode(dtype, device)
    k64 = keys.double()
    ref = k64.T @ k64
    del k64
    ref_norm, ref_diag = torch.linalg.norm(ref), torch.diagonal(ref).clone()
    rows = []
    for chunk in (-1, *[c for c in LADDER if c <= n]):
        p = panels.Panels(f, device)
        sync(device)
        t0 = time.perf_counter()
        p.add(keys, mode, chunk=chunk if chunk != n else None)
        sync(device)
        seconds = time.perf_counter() - t0
        s = p.full()
        del p
        rows.append({"chunk": panels.chunk_tokens(mode) if chunk == -1 else chunk, "default": chunk == -1,
                     "rel_frobenius": float(torch.linalg.norm(s - ref) / ref_norm),
                     "max_rel_diagonal": float(((torch.diagonal(s) - ref_diag).abs() / ref_diag).max()),
                     "seconds": seconds})
        del s
    below = [r["chunk"] or n for r in rows if not r["default"] and r["rel_frobenius"] < 1e-6]
    default = rows[0]
    return {"mode": mode, "batch_tokens": n, "f": f, "dtype": str(dtype).replace("torch.", ""),
            "default_chunk": default["chunk"], "default_rel_frobenius": default["rel_frobenius"],
            "largest_chunk_below_1e-6": max(below) if below else None, "ladder": rows[1:]}


def build_model(shape: dict, device, dtype):
    """A random Llama of `shape`, its parameters created on `device` in `dtype` (no host copy)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(**shape)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.eval().requires_grad_(False)


def covariance_pass(model, device, *, token_budget: int, seq: int, batches: int) -> dict:
    """The plan's first pass over random token ids (rows of `seq`), one warm-up batch then `batches` timed ones."""
    import covariance as bench  # benchmarks/covariance.py: FLOPs counted and the devices' peaks

    budget, source = covariance.device_budget(device, None, model)
    the_plan = covariance.plan_model(model, token_budget=token_budget, seq=seq, device_bytes=budget,
                                     store_dtype="float32")
    layers = the_plan.groups[0]
    widths = covariance.layer_widths(model)
    mode = panels.product_mode(next(model.parameters()).dtype, device)
    sums = {i: panels.Panels(widths[i], device) for i in layers}
    rows = max(1, token_budget // seq)
    gen = torch.Generator(device="cpu").manual_seed(0)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds, tokens = 0.0, 0
    with covariance.exact_fp32():
        for b in range(batches + 1):
            ids = torch.randint(0, model.config.vocab_size, (rows, seq), generator=gen).to(device)
            mask = torch.ones_like(ids)
            sync(device)
            t0 = time.perf_counter()
            covariance.forward_keys(model, ids, mask, lambda layer, k: sums[layer].add(k, mode), layers=layers)
            sync(device)
            if b:  # the first batch warms up kernels and the allocator
                seconds, tokens = seconds + time.perf_counter() - t0, tokens + ids.numel()
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    allocated_plan = the_plan.weight_bytes + the_plan.activation_bytes + the_plan.group_bytes[0]
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    peak_flops = next((p["float16"] for key, p in bench.PEAKS.items() if key in name), None) if cuda else None
    flops = bench.counted_flops(model, tokens) * (max(layers) + 1) / len(widths)
    est = plan.estimate_seconds(covariance.model_shape(model), the_plan, n_tokens=tokens, seq=seq,
                                token_budget=token_budget)
    return {
        "device_name": name, "budget_bytes": budget, "budget_from": source, "plan": the_plan.summary(),
        "product_mode": mode, "chunk": panels.chunk_tokens(mode), "token_budget": token_budget, "seq": seq,
        "memory": {"max_memory_allocated": peak, "plan_allocated": allocated_plan,
                   "plan_device_peak": the_plan.device_peak,
                   "ratio": peak / allocated_plan if peak else None,
                   "within_plan": (peak <= allocated_plan) if peak else None},
        "pass": {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
                 "achieved_flops": flops / max(seconds, 1e-9), "peak_flops_float16": peak_flops,
                 "fraction_of_peak": flops / max(seconds, 1e-9) / peak_flops if peak_flops else None,
                 "plan_tokens_per_s_h100": tokens / est["total_s"]},
    }


def cuda_tests() -> dict:
    """The tests that only run with CUDA (their CPU twins run everywhere)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or half_precision_keys",
           "tests/test_covariance.py", "tests/test_products.py"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return {"command": " ".join(cmd[1:]), "returncode": proc.returncode,
            "summary": (proc.stdout.strip().splitlines() or [""])[-1]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a tiny Llama and small batches (a smoke check)")
    ap.add_argument("--batches", type=int, default=4, help="timed batches of the pass (after one warm-up)")
    default_out = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else REPO / "results" / "gpu_check.json"
    ap.add_argument("--out", type=Path, default=default_out)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = args.device
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: torch {torch.__version__} sees no CUDA device (use --device cpu --tiny)")
    shape, budget, seq = (TINY, 512, 128) if args.tiny else (LLAMA_2_13B, 16384, 4096)
    result = {"torch": torch.__version__, "device": device, "tiny": args.tiny, "shape": shape,
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    # the products first, before the model takes the device's memory
    result["products"] = product_errors(device, 128 if args.tiny else shape["intermediate_size"], 16384)
    print(f"products ({result['products']['mode']}), one 16,384-token batch, f = {result['products']['f']}: "
          f"default chunk {result['products']['default_chunk']} → relative error "
          f"{result['products']['default_rel_frobenius']:.2e}; ladder "
          + ", ".join(f"{r['chunk']}: {r['rel_frobenius']:.1e}" for r in result["products"]["ladder"])
          + f"; largest chunk below 1e-6: {result['products']['largest_chunk_below_1e-6']}", flush=True)
    model = build_model(shape, device, torch.float16)
    result["weights_bytes"] = covariance.weight_bytes(model)
    result.update(covariance_pass(model, device, token_budget=budget, seq=seq, batches=args.batches))
    mem, pas = result["memory"], result["pass"]
    print(f"{result['device_name']}, {result['plan']['passes']} pass(es): ", end="")
    if mem["max_memory_allocated"]:
        print(f"max_memory_allocated {mem['max_memory_allocated'] / GiB:.2f} GiB vs plan {mem['plan_allocated'] / GiB:.2f} "
              f"GiB ({'within' if mem['within_plan'] else 'OVER'}); ", end="")
    else:
        print("max_memory_allocated: n/a on the CPU; ", end="")
    print(f"{pas['tokens_per_s']:.0f} tokens/s (plan on an H100 {pas['plan_tokens_per_s_h100']:.0f}), "
          + (f"{100 * pas['fraction_of_peak']:.1f} % of the float16 peak" if pas["fraction_of_peak"] else
             "fraction of peak: n/a"), flush=True)
    del model
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        result["tests"] = cuda_tests()
        print(f"CUDA-only tests: {result['tests']['summary']}", flush=True)
    else:
        result["tests"] = {"skipped": "no CUDA device"}
    result["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
