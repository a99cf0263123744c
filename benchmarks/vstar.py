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
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import yaml  # noqa: E402
from bench_common import REPO, first_facts, model_for  # noqa: E402

from kis import editing, models, vstar  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=3, help="records whose new target is optimised")
    ap.add_argument("--layer", type=int, help="edited layer (default: the config's ROME rule)")
    ap.add_argument("--layers", help="comma-separated layers: δ at all of them in one batch against one at a time")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), names=(name,))
    layer = hp["layer"] if args.layer is None else args.layer
    facts = first_facts(args.facts)
    kw = dict(templates=settings["context_templates"], hp=hp, kl_prompt=settings["kl_prompt"])
    targets = [dict(prompt=f["prompt"], subject=f["subject"], target=f["target_new"]["str"]) for f in facts]
    if args.layers:
        per_layer(model, tok, name, targets, [int(x) for x in args.layers.split(",")], kw, args.threads)
        return
    times, deltas, steps = {}, {}, {}
    for cached in (False, True):
        t0 = time.perf_counter()
        res = [vstar.optimize_delta(model, tok, layer=layer, cache_prefix=cached, **t, **kw) for t in targets]
        times[cached] = time.perf_counter() - t0
        deltas[cached], steps[cached] = [r.delta for r in res], [r.steps for r in res]
    rel = max(float((a - b).norm() / b.norm()) for a, b in zip(deltas[True], deltas[False]))
    print(f"{name}, layer {layer}, {len(facts)} facts × {len(settings['context_templates'])} templates, "
          f"{args.threads} thread(s): whole rows {times[False]:.1f} s, cached prefix {times[True]:.1f} s, ratio "
          f"{times[False] / times[True]:.2f}x; largest relative difference of δ {rel:.1e}; steps {steps[False]} vs "
          f"{steps[True]}")


def per_layer(model, tok, name, targets, layers, kw, threads):
    """δ at every layer of `layers`: one optimize_delta per layer against one optimize_deltas for all."""
    t0 = time.perf_counter()
    one = [[vstar.optimize_delta(model, tok, layer=layer, **t, **kw) for layer in layers] for t in targets]
    t1 = time.perf_counter()
    batch = [vstar.optimize_deltas(model, tok, layers=layers, **t, **kw) for t in targets]
    t2 = time.perf_counter()
    rel = max(float((b.delta - a.delta).norm() / a.delta.norm()) for ra, rb in zip(one, batch) for a, b in zip(ra, rb))
    print(f"{name}, layers {layers}, {len(targets)} facts × {len(kw['templates'])} templates, {threads} thread(s): "
          f"one layer at a time {t1 - t0:.1f} s, all layers in one batch {t2 - t1:.1f} s, ratio "
          f"{(t1 - t0) / (t2 - t1):.2f}x; largest relative difference of δ {rel:.1e} (float32 rounding in another "
          f"order, through Adam); steps {[[r.steps for r in ra] for ra in one]} vs "
          f"{[[r.steps for r in rb] for rb in batch]}")

if __name__ == "__main__":
    main()
