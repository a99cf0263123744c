"""Teacher-forced scoring with the LM head only at the scored positions (kis.probe.head_at) against the full logits.

    python benchmarks/scoring.py --manifest results/models/gemma3-270m/manifest.json   # a prepared model
    python benchmarks/scoring.py                       # SmolLM2-135M from PyPI (benchmarks/out/smollm2)

Scores the first --facts CounterFact records (resources/facts.json) in batches of 32, once with logits at every
position (the baseline: log-softmax over (B, T, V), then the target positions read) and once with the head run only
where a target token is predicted; prints both times, the ratio and the largest difference of log P(target).
Gemma 3's head has 262k rows (more parameters than its 18 blocks), so it gains most.

Timing (benchmarks/timing.py): a warm-up of both on 4 facts, then --reps (3) repetitions interleaved at --threads (1)
torch threads for both; the ratio is the ratio of the minima with the per-repetition range; the scores of the last
repetitions are compared.
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

from kis import probe  # noqa: E402


def full_logits_scores(model, pad_id, prompts, targets, batch_size):
    """The baseline: the LM head at every position of every row."""
    out = []
    for start in range(0, len(prompts), batch_size):
        ps, ts = prompts[start:start + batch_size], targets[start:start + batch_size]
        logp = torch.log_softmax(probe.logits(model, [p + t for p, t in zip(ps, ts)], pad_id), -1)
        for b, (p, t) in enumerate(zip(ps, ts)):
            out.append(float(sum(logp[b, len(p) - 1 + j, t[j]] for j in range(len(t)))))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    timing.add_arguments(ap, out=str(OUT / "scoring.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    facts = json.loads((REPO / "resources" / "facts.json").read_text())[:args.facts]
    texts = [f["requested_rewrite"]["prompt"].format(f["requested_rewrite"]["subject"]) for f in facts]
    prompts = [probe.prompt_ids(tok, t) for t in texts]
    targets = [probe.target_ids(tok, t, f["requested_rewrite"]["target_true"]["str"]) for t, f in zip(texts, facts)]
    pad_id = probe.pad_id(tok)

    def full(n):
        return full_logits_scores(model, pad_id, prompts[:n], targets[:n], args.batch_size)

    def head(n):
        return [float(lp.sum()) for lp, _ in probe.teacher_forced(model, pad_id, prompts[:n], targets[:n],
                                                                  batch_size=args.batch_size, order=list(range(n)))]
    n, warm = len(prompts), min(len(prompts), 4)   # the warm-up: 4 facts
    run = timing.compare([("full_logits", lambda: full(n)), ("head_at_scored", lambda: head(n))], reps=args.reps,
                         warmup=args.warmup, threads=args.threads,
                         warmup_calls={"full_logits": lambda: full(warm), "head_at_scored": lambda: head(warm)})
    base, new = run.results["full_logits"], run.results["head_at_scored"]
    diff = max(abs(a - b) for a, b in zip(base, new))
    vocab = model.get_output_embeddings().weight.shape[0]
    result = {"model": name, "vocab": vocab, "facts": len(facts), "batch_size": args.batch_size,
              "max_abs_diff_logp": diff}
    timing.finish(result, run, args.json, f"{name} (vocab {vocab}), {len(facts)} facts, batch {args.batch_size}: "
                                          f"{run.ratio_text()}; max |Δ log P(target)| {diff:.2e}")
    if diff > 1e-3:
        sys.exit("scores differ")


if __name__ == "__main__":
    main()
