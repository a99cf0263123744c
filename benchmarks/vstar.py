"""v* on a cached prefix (kis.vstar.optimize_delta, the default) against whole rows every step (cache_prefix=False,
the earlier way): the value shift δ that every editor optimises, for the same facts, in the same process.

    python benchmarks/vstar.py --manifest results/models/gemma3-270m/manifest.json --layer 4   # a prepared model
    python benchmarks/vstar.py                       # SmolLM2-135M from PyPI (benchmarks/out/smollm2), layer 6

For the first --facts records of resources/facts.json: ROME's v* (config/config.yaml's editing settings: context
templates, KL prompt, GPT-J's ROME values) at --layer both ways; prints both times, the ratio, the largest relative
difference of δ and the optimiser steps of each. δ changes nothing before the subject's last token (causal
attention), so the tokens before it need running only once; every step then runs the rest of the rows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import yaml  # noqa: E402
from bench_common import REPO, model_for  # noqa: E402

from kis import editing, models, vstar  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2 from PyPI)")
    ap.add_argument("--facts", type=int, default=3, help="records whose new target is optimised")
    ap.add_argument("--layer", type=int, help="edited layer (default: the config's ROME rule)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok, name = model_for(args.manifest)
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), names=(name,))
    layer = hp["layer"] if args.layer is None else args.layer
    facts = [r["requested_rewrite"] for r in json.loads((REPO / "resources" / "facts.json").read_text())[:args.facts]]
    times, deltas, steps = {}, {}, {}
    for cached in (False, True):
        t0 = time.perf_counter()
        res = [vstar.optimize_delta(model, tok, prompt=f["prompt"], subject=f["subject"], target=f["target_new"]["str"],
                                    layer=layer, templates=settings["context_templates"], hp=hp,
                                    kl_prompt=settings["kl_prompt"], cache_prefix=cached) for f in facts]
        times[cached] = time.perf_counter() - t0
        deltas[cached], steps[cached] = [r.delta for r in res], [r.steps for r in res]
    rel = max(float((a - b).norm() / b.norm()) for a, b in zip(deltas[True], deltas[False]))
    print(f"{name}, layer {layer}, {len(facts)} facts × {len(settings['context_templates'])} templates, "
          f"{args.threads} thread(s): whole rows {times[False]:.1f} s, cached prefix {times[True]:.1f} s, ratio "
          f"{times[False] / times[True]:.2f}x; largest relative difference of δ {rel:.1e}; steps {steps[False]} vs "
          f"{steps[True]}")


if __name__ == "__main__":
    main()
