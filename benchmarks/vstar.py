"""v* on a cached prefix (kis.vstar.optimize_delta, the default) against whole rows every step (cache_prefix=False,
the earlier way): the value shift δ that every editor optimises, for the same facts, in the same process. With
--layers: δ at several layers in one batch (vstar.optimize_deltas, WilKE's five v* per edit) against one layer at a
time.

    python benchmarks/vstar.py --manifest results/models/gemma3-270m/manifest.json --layer 4   # a prepared model
    python benchmarks/vstar.py                       # SmolLM2-135M from PyPI (benchmarks/out/smollm2), layer 6
    python benchmarks/vstar.py --manifest results/models/gemma3-270m/manifest.json --layers 0,1,2,3,4

For the first --facts records of resources/facts.json: ROME's v* (config/config.yaml's editing settings: context
templates, KL prompt, GPT-J's ROME values) at --layer both ways; prints both times, the ratio, the largest relative
difference of δ and the optimiser steps of each. δ changes nothing before the subject's last token (causal
attention), so the tokens before it need running only once; every step then runs the rest of the rows.

Timing (benchmarks/timing.py): a warm-up of both ways on the first fact (2 optimiser steps), then --reps (3)
repetitions interleaved, each over all facts, at --threads (1) torch threads for both; the ratio is the ratio of the
minima with the per-repetition range; δ of the last repetitions are compared.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import timing  # noqa: E402
from bench_common import OUT, REPO, first_facts, model_for  # noqa: E402

from kis import editing, hparams, models, vstar  # noqa: E402

WARMUP_STEPS = 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=3, help="records whose new target is optimised")
    ap.add_argument("--layer", type=int, help="edited layer (default: the config's ROME rule)")
    ap.add_argument("--layers", help="comma-separated layers: δ at all of them in one batch against one at a time")
    timing.add_arguments(ap, out=str(OUT / "vstar.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    settings = hparams.load_config(REPO / "config" / "config.yaml")["editing"]  # over config/hparams.yaml
    hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), names=(name,))
    layer = hp["layer"] if args.layer is None else args.layer
    facts = first_facts(args.facts)
    kw = dict(templates=settings["context_templates"], kl_prompt=settings["kl_prompt"])
    targets = [dict(prompt=f["prompt"], subject=f["subject"], target=f["target_new"]["str"]) for f in facts]
    warm_hp = dict(hp, v_num_grad_steps=WARMUP_STEPS)   # the warm-up: the first fact, a few optimiser steps
    if args.layers:
        layers = [int(x) for x in args.layers.split(",")]

        def one_at_a_time(ts, h):
            return [[vstar.optimize_delta(model, tok, layer=lay, hp=h, **t, **kw) for lay in layers] for t in ts]

        def batched(ts, h):
            return [vstar.optimize_deltas(model, tok, layers=layers, hp=h, **t, **kw) for t in ts]
        methods = [("one_layer_at_a_time", one_at_a_time), ("all_layers_in_one_batch", batched)]
        what = f"layers {layers}"
    else:
        def whole(ts, h):
            return [[vstar.optimize_delta(model, tok, layer=layer, hp=h, cache_prefix=False, **t, **kw)] for t in ts]

        def cached(ts, h):
            return [[vstar.optimize_delta(model, tok, layer=layer, hp=h, cache_prefix=True, **t, **kw)] for t in ts]
        methods = [("whole_rows", whole), ("cached_prefix", cached)]
        what = f"layer {layer}"
    run = timing.compare([(n, lambda fn=fn: fn(targets, hp)) for n, fn in methods], reps=args.reps,
                         warmup=args.warmup, threads=args.threads,
                         warmup_calls={n: lambda fn=fn: fn(targets[:1], warm_hp) for n, fn in methods})
    (a, _), (b, _) = methods
    ra, rb = run.results[a], run.results[b]
    rel = max(float((y.delta - x.delta).norm() / x.delta.norm()) for xa, yb in zip(ra, rb) for x, y in zip(xa, yb))
    steps = {a: [[r.steps for r in row] for row in ra], b: [[r.steps for r in row] for row in rb]}
    result = {"model": name, "where": what, "facts": len(facts), "templates": len(kw["templates"]),
              "max_rel_diff_delta": rel, "steps": steps}
    timing.finish(result, run, args.json,
                  f"{name}, {what}, {len(facts)} facts × {len(kw['templates'])} templates: {run.ratio_text()}; "
                  f"largest relative difference of δ {rel:.1e} (float32 sums in another order, through Adam); steps "
                  f"{steps[a]} vs {steps[b]}")


if __name__ == "__main__":
    main()
