"""Corpus sampling: deterministic, every supported file format, clear errors for bad input."""
import gzip
import json

import pandas as pd
import pytest

from kis import corpus
from wf import SHARED


def records(n):
    return [{"id": f"doc{i}", "text": f"text number {i} " * (i + 1)} for i in range(n)]


def test_sample_is_seeded_and_in_source_order():
    recs = records(50)
    a = corpus.sample(recs, 10, seed=3)
    assert a == corpus.sample(recs, 10, seed=3)
    assert a != corpus.sample(recs, 10, seed=4)
    idx = [int(r["id"][3:]) for r in a]
    assert idx == sorted(idx) and len(set(idx)) == 10


def test_sample_hash_changes_with_the_ids():
    assert corpus.sample_hash(["a", "b"]) != corpus.sample_hash(["b", "a"])
    assert corpus.sample_hash(["a", "b"]) == corpus.sample_hash(("a", "b"))


@pytest.mark.parametrize("fmt", ["json", "jsonl", "jsonl.gz", "parquet"])
def test_local_formats(tmp_path, fmt):
    recs = records(5)
    path = tmp_path / f"c.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(recs))
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in recs))
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt") as fh:
            fh.write("\n".join(json.dumps(r) for r in recs))
    else:
        pd.DataFrame(recs).to_parquet(path)
    assert corpus.read_local(path) == recs


def test_bad_records_name_the_file_and_record(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "body": "no text"}\n')
    with pytest.raises(corpus.CorpusError, match=r"bad.jsonl: record 1 \(id 'b'\) has no field 'text'"):
        corpus.read_local(path)
    path.write_text('{"id": "a", "text": "ok"}\nnot json\n')
    with pytest.raises(corpus.CorpusError, match="bad.jsonl: line 2 is not valid JSON"):
        corpus.read_local(path)


def test_missing_and_empty_corpus(tmp_path):
    with pytest.raises(corpus.CorpusError, match="does not exist"):
        corpus.read_local(tmp_path / "absent.jsonl")
    with pytest.raises(corpus.CorpusError, match="empty"):
        corpus.sample([{"id": "a", "text": "  "}], None, seed=0)
    with pytest.raises(corpus.CorpusError, match="empty"):
        corpus.build({"source": "local", "path": str(_write(tmp_path / "e.json", [])), "seed": 0})


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_python_docs_exists_everywhere_and_is_deterministic():
    a, b = corpus.python_docs(), corpus.python_docs()
    assert a == b
    assert len(a) > 100 and sum(len(r["text"]) for r in a) > 300_000
    assert any(r["id"].startswith("topic:") for r in a) and any(r["id"].startswith("module:") for r in a)


def test_build_metadata_names_the_corpus():
    frame, meta = corpus.build({"source": "python_docs", "n_texts": 20, "seed": 0, "min_chars": 100})
    assert len(frame) == 20 and meta["corpus_id"].startswith("cpython-docs-")
    assert meta["sample_hash"] == corpus.sample_hash(frame.id)


def test_hf_streaming_path(monkeypatch):
    """The HF streaming code path with a local stand-in for load_dataset (no hub here)."""
    import datasets

    class Stream:
        def __init__(self, rows):
            self.rows = rows

        def shuffle(self, seed, buffer_size):
            import random
            rows = list(self.rows)
            random.Random(seed).shuffle(rows)
            return Stream(rows)

        def __iter__(self):
            return iter(self.rows)

    asked = {}

    def fake_load(name, config, split, streaming, revision):
        asked.update(name=name, config=config, split=split, streaming=streaming)
        return Stream([{"id": str(i), "text": "x" * (i * 10)} for i in range(100)])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    frame, meta = corpus.build({"source": "hf", "n_texts": 7, "seed": 1, "min_chars": 50,
                                "hf": {"dataset": "wikimedia/wikipedia", "name": "20231101.en"}})
    assert asked == {"name": "wikimedia/wikipedia", "config": "20231101.en", "split": "train", "streaming": True}
    assert len(frame) == 7 and (frame.text.str.len() >= 50).all()
    assert meta["corpus_id"] == "hf:wikimedia/wikipedia/20231101.en/train"


def test_shared_wikipedia_sample_reads():
    path = SHARED / "data" / "wikipedia" / "enwiki_2015_sample.jsonl.gz"
    if not path.exists():
        pytest.skip(f"shared Wikipedia sample absent ({path})")
    frame, meta = corpus.build({"source": "local", "path": str(path), "n_texts": 10, "seed": 0})
    assert len(frame) == 10 and frame.text.str.len().min() > 0
