"""Seconds per ROME edit on SmolLM2-135M (CPU by default), and the helpers the slow editing test shares.

    python benchmarks/editing.py [--edits 5] [--threads 1] [--device cpu]
    python benchmarks/editing.py --tiny gpt2 --device cuda     # GPT-2-small-sized random model (d 768, f 3072, 12 layers)

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
from bench_common import FACTS, REPO, SMOL, random_model, smollm2, sync, wiki_texts  # noqa: E402

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
    from kis import corpus

    model, tok = random_model("gpt2", d, f, layers, vocab=vocab, positions=1024, device=device)
    frame, _ = corpus.build({"source": "python_docs", "n_texts": 64, "seed": 0, "min_chars": 500})
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
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", choices=["gpt2"], help="GPT-2-small-sized random model instead of SmolLM2 (timing only)")
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
    ed = editing.make_editor("rome", model, tok, covs, hp, settings["context_templates"], settings["kl_prompt"],
                             ridge=ridge)
    secs = []
    for f in facts:
        sync(args.device)
        t0 = time.perf_counter()
        res = ed.edit(f)
        sync(args.device)
        secs.append(time.perf_counter() - t0)
        print(f"case {f['case_id']}: {secs[-1]:.2f} s, v* prob {res.v_prob:.3f}, {res.info['steps']} steps")
    print(f"ROME on {name} ({args.device}, {args.threads} thread(s), layer {hp['layer']}, "
          f"{len(settings['context_templates'])} templates, up to {hp['v_num_grad_steps']} v* steps): "
          f"{sum(secs) / len(secs):.2f} s per edit (min {min(secs):.2f}, max {max(secs):.2f}, {len(secs)} edits)")



if __name__ == "__main__":
    main()
