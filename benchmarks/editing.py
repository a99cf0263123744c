"""Seconds per ROME edit on SmolLM2-135M (CPU by default), and the helpers the slow editing test shares.

    python benchmarks/editing.py [--edits 5] [--threads 1] [--device cpu] [--reps 3]
    python benchmarks/editing.py --tiny gpt2 --device cuda     # GPT-2-small-sized random model (d 768, f 3072, 12 layers)

One method, no in-process baseline (the reference ROME runs the same passes). Timing (benchmarks/timing.py): a
warm-up edit (2 v* steps), then --reps (3) repetitions of the --edits facts edited one after the other, each
repetition from the unedited weights; seconds per edit from the fastest and the median repetition.

C comes from results/covariance/smollm2-135m.safetensors when it exists, else a quick one is computed once from
the first 100 shared Wikipedia texts (128 tokens each) with kis.covariance.collect and kept under /tmp/kis_edit.
With --tiny the model has random weights (timing only: v* never converges, so every edit runs all
v_num_grad_steps, an upper bound), C comes from 64 CPython-docs texts plus a ridge, and the edited facts are the
shared CounterFact sample's (or built-in ones when it is absent).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import timing  # noqa: E402
from bench_common import FACTS, OUT, REPO, SMOL, random_model, smollm2, sync, wiki_texts  # noqa: E402

from kis import covariance, editing, knowledge, models, trajectory  # noqa: E402

CACHE = REPO / "results" / "covariance" / "smollm2-135m.safetensors"
TMP = Path("/tmp/kis_edit")

log = logging.getLogger("benchmarks.editing")


def quick_covariance(model, tok, n_texts: int = 100, max_length: int = 128) -> Path:
    """A C cache from the first n_texts shared Wikipedia texts (all layers), computed once."""
    path = TMP / f"smollm2_wiki{n_texts}_len{max_length}.safetensors"
    if path.exists():
        return path
    texts = wiki_texts(n_texts)
    t0 = time.perf_counter()
    sums, count = covariance.collect(model, tok, texts, max_length=max_length, token_budget=2048)
    covariance.save(path, covariance.finalize(sums, count), count,
                    {"model": SMOL, "corpus_id": f"enwiki_2015_sample first {n_texts}", "n_texts": n_texts,
                     "max_length": max_length})
    log.info("quick C from %d texts, %d tokens, in %.0f s → %s", n_texts, count, time.perf_counter() - t0, path)
    return path


def covariance_path(model, tok) -> Path:
    if CACHE.exists():
        log.info("using the workflow's covariance cache %s", CACHE)
        return CACHE
    log.info("no %s yet: computing a quick C from shared Wikipedia texts", CACHE)
    return quick_covariance(model, tok)


def counterfact() -> list[dict]:
    """The shared CounterFact sample as fact dicts, in file order (validated by kis.knowledge.load_facts)."""
    frame, _ = knowledge.load_facts({"source": "local", "path": str(FACTS)})
    return trajectory.facts_by_id(frame, frame.case_id.tolist())


def random_gpt2(device="cpu", d=768, f=3072, layers=12, vocab=50257):
    """(model, tokenizer, C of every layer): a GPT-2-small-sized random model; C from 64 CPython-docs texts."""
    from kis import corpus, schema

    model, tok = random_model("gpt2", d, f, layers, vocab=vocab, positions=1024, device=device)
    frame, _ = corpus.build(schema.filled("corpus", {"source": "python_docs", "n_texts": 64, "seed": 0,
                                                     "min_chars": 500}))
    sums, count = covariance.collect(model, tok, frame.text.tolist(), max_length=128, token_budget=2048, device=device)
    return model, tok, covariance.finalize(sums, count)


FALLBACK_FACTS = [("The mother tongue of {} is", "Danielle Darrieux", "French", "English"),
                  ("{} is located in the continent of", "Mount Kilimanjaro", "Africa", "Asia"),
                  ("The capital of {} is", "Norway", "Oslo", "Paris"),
                  ("{} plays the position of", "Lionel Messi", "forward", "goalkeeper"),
                  ("{} was developed by", "Windows 95", "Microsoft", "Apple")]


def facts_for_timing(n: int) -> list[dict]:
    if FACTS.exists():
        return counterfact()[:n]
    log.warning("no %s: timing on %d built-in facts", FACTS, len(FALLBACK_FACTS))
    return [{"case_id": i, "prompt": p, "subject": s, "target_true": t, "target_new": nw, "relation_id": "",
             "paraphrase_prompts": [], "neighborhood_prompts": []}
            for i, (p, s, t, nw) in enumerate(FALLBACK_FACTS)][:n]


def editing_settings() -> dict:
    """config/config.yaml's editing section over the hyperparameter table (config/hparams.yaml), as the workflow."""
    from kis import hparams

    return hparams.load_config(REPO / "config" / "config.yaml")["editing"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", choices=["gpt2"], help="GPT-2-small-sized random model instead of SmolLM2 (timing only)")
    timing.add_arguments(ap, out=str(OUT / "editing.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    settings = editing_settings()
    ridge = 0.0
    if args.tiny:
        model, tok, all_covs = random_gpt2(args.device)
        name, ridge = "random GPT-2-small-sized (d 768, f 3072, 12 layers, vocab 50257)", 1e-2
        hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), ["gpt2"])
        covs = {hp["layer"]: all_covs[hp["layer"]]}
        facts = facts_for_timing(args.edits)
    else:
        model, tok = smollm2(args.device)
        name = "SmolLM2-135M-Instruct"
        hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), ["smollm2-135m"])
        covs, _ = covariance.load(covariance_path(model, tok), layers=[hp["layer"]])
        facts = counterfact()[:args.edits]

    def editor(h):
        return editing.make_editor("rome", model, tok, covs, h, settings["context_templates"], settings["kl_prompt"],
                                   ridge=ridge)
    ed, warm_ed = editor(hp), editor(dict(hp, v_num_grad_steps=2))   # the warm-up: one edit, 2 v* steps
    W = models.ffn_weight(model, hp["layer"])
    W0 = W.detach().clone()

    def edits(e, batch):
        """The facts edited one after the other from the unedited weights (each repetition starts there)."""
        with torch.no_grad():
            W.copy_(W0)
        return [e.edit(f) for f in batch]

    run = timing.compare([("rome_edits", lambda: edits(ed, facts))], reps=args.reps, warmup=args.warmup,
                         threads=args.threads, warmup_calls={"rome_edits": lambda: edits(warm_ed, facts[:1])},
                         sync=lambda: sync(args.device))
    with torch.no_grad():
        W.copy_(W0)
    res = run.results["rome_edits"]
    for f, r in zip(facts, res):
        print(f"case {f['case_id']}: {r.seconds:.2f} s, v* prob {r.v_prob:.3f}, {r.info['steps']} steps "
              "(last repetition)")
    m = run.report["methods"]["rome_edits"]
    per_edit = {"min_s": round(m["min_s"] / len(facts), 3), "median_s": round(m["median_s"] / len(facts), 3)}
    last = [r.seconds for r in res]
    result = {"model": name, "device": args.device, "layer": hp["layer"], "templates": len(settings["context_templates"]),
              "v_num_grad_steps": hp["v_num_grad_steps"], "edits": len(facts), "s_per_edit": per_edit,
              "last_rep_edit_s": [round(x, 3) for x in last], "steps": [r.info["steps"] for r in res]}
    timing.finish(result, run, args.json,
                  f"ROME on {name} ({args.device}, layer {hp['layer']}, {len(settings['context_templates'])} "
                  f"templates, up to {hp['v_num_grad_steps']} v* steps): {per_edit['min_s']:.2f} s per edit (the "
                  f"fastest of {args.reps} repetitions of {len(facts)} edits; median {per_edit['median_s']:.2f}; last "
                  f"repetition's edits {min(last):.2f}-{max(last):.2f} s)")


if __name__ == "__main__":
    main()
