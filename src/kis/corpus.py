"""The text corpus behind C = E[k kᵀ]: a deterministic, seeded sample of documents.

Sources:
- ``python_docs``: the documentation that ships with every CPython (the pydoc topic pages and the docstrings
  of the standard library, read with ``ast`` — nothing is imported). Exists on any machine with no download;
  the offline default. The paper used Wikipedia; a documentation corpus gives roughly half the early-layer
  kurtosis on SmolLM2, so every C records its corpus and every figure names it.
- ``local``: a JSON / JSONL(.gz) / Parquet file of records with an id field and a text field.
- ``hf``: a Hugging Face dataset, streamed (e.g. ``wikimedia/wikipedia`` ``20231101.en``, the paper's scale).
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import json
import logging
import random
import sys
import sysconfig
from pathlib import Path

import pandas as pd

from .io import jsonl_records

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    pass


def python_docs() -> list[dict]:
    """CPython's own documentation: pydoc topic pages + standard-library docstrings (sorted, deterministic)."""
    from pydoc_data.topics import topics

    records = [{"id": f"topic:{k}", "text": v} for k, v in sorted(topics.items())]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        docs = [ast.get_docstring(tree)] + [ast.get_docstring(n) for n in ast.walk(tree)
                                             if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(d for d in docs if d)
        if text:
            records.append({"id": f"module:{path.stem}", "text": text})
    return records


def python_docs_id() -> str:
    return f"cpython-docs-{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def read_local(path: str | Path, id_field: str = "id", text_field: str = "text") -> list[dict]:
    """Records from a local JSON list, JSONL (optionally .gz) or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        raw = pd.read_parquet(path).to_dict("records")
    else:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            if name.endswith((".jsonl", ".jsonl.gz")):
                raw = jsonl_records(fh, path, CorpusError)
            else:
                raw = json.load(fh)
    records = []
    for i, rec in enumerate(raw):
        if text_field not in rec:
            raise CorpusError(f"{path}: record {i} (id {rec.get(id_field, '?')!r}) has no field {text_field!r}")
        if not isinstance(rec[text_field], str):
            raise CorpusError(f"{path}: record {i} field {text_field!r} is not a string")
        records.append({"id": str(rec.get(id_field, i)), "text": rec[text_field]})
    return records


def stream_hf(dataset: str, name: str | None, split: str, text_field: str, id_field: str, n_texts: int, seed: int,
              buffer_size: int, min_chars: int, revision: str | None = None) -> list[dict]:
    """The first n_texts of a seeded, buffered shuffle of a streamed HF dataset."""
    from datasets import load_dataset

    if dataset == "wikipedia":
        log.warning("legacy 'wikipedia' dataset (%s): a different dump than the paper's changes C", name)
    ds = load_dataset(dataset, name, split=split, streaming=True, revision=revision)
    ds = ds.shuffle(seed=seed, buffer_size=buffer_size)
    out = []
    for i, rec in enumerate(ds):
        text = rec[text_field]
        if len(text) >= min_chars:
            out.append({"id": str(rec.get(id_field, i)), "text": text})
        if len(out) >= n_texts:
            break
    return out


def sample(records: list[dict], n_texts: int | None, seed: int, min_chars: int = 0, where: str = "corpus"
           ) -> list[dict]:
    """Deterministic seeded sample of n_texts records (all of them if n_texts is None), in source order."""
    kept = [r for r in records if len(r["text"].strip()) >= max(min_chars, 1)]
    if not kept:
        raise CorpusError(f"{where}: the corpus is empty (no text of at least {max(min_chars, 1)} characters "
                          f"among {len(records)} records)")
    ids = [r["id"] for r in kept]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{where}: duplicate record ids")
    if n_texts is None or n_texts >= len(kept):
        if n_texts is not None and n_texts > len(kept):
            log.warning("%s: asked for %d texts, only %d available; using all", where, n_texts, len(kept))
        return kept
    chosen = sorted(random.Random(seed).sample(range(len(kept)), n_texts))
    return [kept[i] for i in chosen]


def sample_hash(ids) -> str:
    """SHA-256 of the sampled ids in order: two C's come from the same texts iff their hashes agree."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\0")
    return h.hexdigest()


def build(cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Sample the configured corpus → (frame[id, text], metadata)."""
    source = cfg["source"]
    seed = int(cfg.get("seed", 0))
    n = cfg.get("n_texts")
    min_chars = int(cfg.get("min_chars", 0))
    if source == "python_docs":
        corpus_id = python_docs_id()
        recs = sample(python_docs(), n, seed, min_chars, where=corpus_id)
    elif source == "local":
        corpus_id = f"local:{Path(cfg['path']).name}"
        recs = sample(read_local(cfg["path"], cfg.get("id_field", "id"), cfg.get("text_field", "text")),
                      n, seed, min_chars, where=str(cfg["path"]))
    elif source == "hf":
        hf = cfg["hf"]
        corpus_id = f"hf:{hf['dataset']}/{hf.get('name')}/{hf.get('split', 'train')}"
        recs = stream_hf(hf["dataset"], hf.get("name"), hf.get("split", "train"), hf.get("text_field", "text"),
                         hf.get("id_field", "id"), int(n), seed, int(hf.get("buffer_size", 10_000)), min_chars,
                         hf.get("revision"))
        if not recs:
            raise CorpusError(f"{corpus_id}: the stream gave no text")
    else:
        raise CorpusError(f"unknown corpus source {source!r}; use python_docs, local or hf")
    frame = pd.DataFrame(recs, columns=["id", "text"])
    meta = {"corpus_name": cfg.get("name", corpus_id), "corpus_id": corpus_id, "seed": seed,
            "n_texts": len(frame), "n_chars": int(frame.text.str.len().sum()),
            "sample_hash": sample_hash(frame.id)}
    return frame, meta


def run_rule(*, corpus, texts, logger=None) -> None:
    """Rule `corpus`: the `corpus:` settings → the seeded text sample behind C (`texts`)."""
    from .io import write_parquet

    logger = logger or log
    frame, meta = build(corpus)
    write_parquet(frame, texts, metadata=meta)
    logger.info("corpus %s: %d texts, %d characters, sample hash %s", meta["corpus_id"], meta["n_texts"],
                meta["n_chars"], meta["sample_hash"])
