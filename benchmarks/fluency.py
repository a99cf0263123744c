"""Greedy decoding for the fluency metric: prompts of all lengths left-padded into one batch (kis.trajectory.
greedy_texts) against the earlier batching, where only prompts of one token length shared a batch.

    python benchmarks/fluency.py --manifest results/models/gemma3-270m/manifest.json   # a prepared model
    python benchmarks/fluency.py                       # SmolLM2-135M from PyPI (benchmarks/out/smollm2)

Decodes the generation prompts of the first --facts CounterFact records (resources/facts.json; ROME's max_out_len
100 tokens in all, no stop at EOS) both ways; prints both times, the ratio, how many continuations are identical and
both n-gram entropies. Greedy decoding is a chain of one-token forwards: with few prompts per length the old batching
ran nearly one chain per prompt; one left-padded batch runs one chain for all.

Timing (benchmarks/timing.py): a warm-up of both on two prompts (20 tokens), then --reps (3) repetitions interleaved
at --threads (1) torch threads for both; the ratio is the ratio of the minima with the per-repetition range; the
continuations of the last repetitions are compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import timing  # noqa: E402
from bench_common import OUT, REPO, model_for  # noqa: E402

from kis import probe, trajectory  # noqa: E402

WARMUP_LEN = 20


@torch.no_grad()
def by_length(model, tok, prompts, max_len=100, batch_size=32):
    """The baseline: a batch holds prompts of one token length only (no padding), a KV cache carries the steps."""
    rows = [list(tok(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    out, groups = [""] * len(rows), {}
    for i, r in enumerate(rows):
        groups.setdefault(len(r), []).append(i)
    for width, idx in sorted(groups.items()):
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            seq = torch.tensor([rows[i] for i in chunk])
            with probe.head_at(model, torch.full((len(chunk), 1), width - 1)):
                res = model(input_ids=seq, use_cache=True)
            for _ in range(max(0, max_len - width)):
                nxt = res.logits[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], 1)
                res = model(input_ids=nxt, past_key_values=res.past_key_values, use_cache=True)
            for i, s in zip(chunk, seq.tolist()):
                out[i] = tok.decode(s, skip_special_tokens=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=8, help="records whose first generation prompt is decoded")
    ap.add_argument("--max-len", type=int, default=100)
    timing.add_arguments(ap, out=str(OUT / "fluency.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    facts = json.loads((REPO / "resources" / "facts.json").read_text())[:args.facts]
    prompts = [f["generation_prompts"][0] for f in facts]
    warm = min(args.max_len, WARMUP_LEN)  # the warm-up: two prompts, a few tokens
    run = timing.compare([("one_length_per_batch", lambda: by_length(model, tok, prompts, args.max_len)),
                          ("left_padded", lambda: trajectory.greedy_texts(model, tok, prompts, args.max_len))],
                         reps=args.reps, warmup=args.warmup, threads=args.threads,
                         warmup_calls={"one_length_per_batch": lambda: by_length(model, tok, prompts[:2], warm),
                                       "left_padded": lambda: trajectory.greedy_texts(model, tok, prompts[:2], warm)})
    base, new = run.results["one_length_per_batch"], run.results["left_padded"]
    same = sum(a == b for a, b in zip(base, new))
    lengths = sorted({len(tok(p)["input_ids"]) for p in prompts})
    ent = [trajectory.n_gram_entropy(base), trajectory.n_gram_entropy(new)]
    result = {"model": name, "prompts": len(prompts), "token_lengths": lengths, "max_len": args.max_len,
              "identical_continuations": same, "n_gram_entropy": ent}
    timing.finish(result, run, args.json,
                  f"{name}, {len(prompts)} prompts ({len(lengths)} token lengths {lengths[0]}-{lengths[-1]}), max_len "
                  f"{args.max_len}: {run.ratio_text()}; identical continuations {same}/{len(prompts)}; n-gram "
                  f"entropy {ent[0]:.4f} vs {ent[1]:.4f}")


if __name__ == "__main__":
    main()
