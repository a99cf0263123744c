"""Issue 14: every bad input and fault is named, leaves no partial output, and a rerun after the fix recovers
(one test per row of the issue's table, tiny models), plus the kill-and-truncate fault test of the covariance job."""
from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import tiny
import wf
from kis import corpus, covariance, io, knowledge, models, schema

TEXTS = [f"Text number {i} says that the {w} is near the river and far from the hills." * (1 + i % 3)
         for i, w in enumerate(["mill", "bridge", "tower", "church", "school", "market", "station", "farm"] * 2)]
ROOT = Path(__file__).resolve().parents[1]


def cov_run(ckpt, **kw):
    model, tok = tiny.model("gpt2")
    return covariance.collect(model, tok, TEXTS, max_length=40, token_budget=48, checkpoint=ckpt, fingerprint_id="fp",
                              groups=[[0], [1, 2]], **kw)


# ------------------------------------------------------------ row 1 + the fault test: truncated checkpoint

KILLED = """
import sys, time
sys.path.insert(0, {tests!r})
import tiny
from kis import covariance
model, tok = tiny.model("gpt2")
def slow(**_):
    time.sleep(0.3)
covariance.collect(model, tok, {texts!r}, max_length=40, token_budget=48, checkpoint={ckpt!r}, checkpoint_every=1,
                   fingerprint_id="fp", groups=[[0], [1, 2]], progress=slow)
"""


def test_killed_job_with_a_truncated_checkpoint_resumes_to_a_bit_identical_c(tmp_path, caplog):
    ckpt = tmp_path / "c.checkpoint"
    code = KILLED.format(tests=str(ROOT / "tests"), texts=TEXTS, ckpt=str(ckpt))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(ckpt.glob("layers-1-2.safetensors"))) == 0:
        time.sleep(0.1)  # group [0] finished, group [1, 2] saved once: kill it mid-pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    files = sorted(ckpt.glob("layers-*.safetensors"))
    assert files, "the killed job left no checkpoint"
    damaged = files[-1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # truncated mid-tensor
    with caplog.at_level(logging.WARNING):
        resumed = cov_run(ckpt, checkpoint_every=1)
    assert str(damaged) in caplog.text and "discarding" in caplog.text
    full = covariance.collect(*tiny.model("gpt2"), TEXTS, max_length=40, token_budget=48)
    assert resumed[1] == full[1]
    for a, b in zip(covariance.finalize(*resumed), covariance.finalize(*full)):
        assert torch.equal(a, b)  # bit-identical C


def test_truncated_header_is_discarded_and_group_starts_over(tmp_path, caplog):
    ckpt = tmp_path / "c.checkpoint"
    ckpt.mkdir()
    (ckpt / "layers-0-0.safetensors").write_bytes(b"\x10\x00\x00")  # shorter than its 8-byte header length
    with caplog.at_level(logging.WARNING):
        got = cov_run(ckpt)
    assert "layers-0-0.safetensors" in caplog.text and "damaged" in caplog.text
    assert got[1] == covariance.collect(*tiny.model("gpt2"), TEXTS, max_length=40, token_budget=48)[1]


# ------------------------------------------------------------ row 2: two runs sharing a results folder

def test_second_run_on_the_same_output_is_locked_out_naming_the_holder(tmp_path, caplog):
    out = tmp_path / "results" / "covariance" / "m.safetensors"
    with io.output_lock(out):
        holder = json.loads(Path(f"{out}.lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"]
        code = (f"from kis import io\nwith io.output_lock({str(out)!r}): pass")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0
        assert "LockedError" in proc.stderr and str(out) in proc.stderr
        assert f'"pid": {os.getpid()}' in proc.stderr and "delete" in proc.stderr
    assert not out.exists() and not Path(f"{out}.lock").exists()  # nothing left behind
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # once the first run is done, the second one runs


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "x.parquet"
    Path(f"{out}.lock").write_text(json.dumps({"host": "h", "pid": 999999, "workdir": "/gone"}))
    with caplog.at_level(logging.WARNING), io.output_lock(out):
        pass
    assert "stale lock" in caplog.text and "999999" in caplog.text


# ------------------------------------------------------------ row 3: damaged tables do not block the DAG

def test_damaged_tables_do_not_block_the_dag(tmp_path):
    config = wf.tiny_config(tmp_path)
    res = wf.results(config)
    stat = res / "statistics.parquet"
    sup = res / "superposition" / "tiny-gpt2.parquet"
    for path in (stat, sup):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 damaged")
    planned = wf.planned_jobs(config)  # builds the DAG: reads no result file
    assert planned.get("statistics") == 1 and planned.get("superposition") == 1
    forced = wf.planned_jobs(config, extra=("--forcerun", "statistics"))
    assert forced.get("statistics") == 1
    stat.unlink()
    sup.unlink()  # fixed: the same plan
    assert wf.planned_jobs(config) == planned


# ------------------------------------------------------------ rows 4, 5: facts

def record(case_id=1, prompt="The capital of {} is", subject="France"):
    return {"case_id": case_id, "requested_rewrite": {
        "prompt": prompt, "subject": subject, "relation_id": "P36",
        "target_true": {"str": "Paris", "id": "Q90"}, "target_new": {"str": "Rome", "id": "Q220"}},
        "paraphrase_prompts": ["x"], "neighborhood_prompts": ["y"]}


def test_a_prompt_that_never_shows_its_subject_is_rejected_naming_case_and_field():
    with pytest.raises(knowledge.FactsError) as err:
        knowledge.validate([record(), record(7, "The capital of {{}} is")], "facts.json")
    msg = str(err.value)
    assert "facts.json" in msg and "case_id 7" in msg and "requested_rewrite.prompt" in msg and "subject" in msg
    frame, skipped = knowledge.validate([record(), record(7, "The capital of {{}} is")], "facts.json", "skip")
    assert skipped == 1 and frame.case_id.tolist() == [1]
    frame, _ = knowledge.validate([record(), record(7)], "facts.json")  # fixed
    assert frame.case_id.tolist() == [1, 7]


def test_a_fact_longer_than_the_context_is_named_with_its_lengths():
    model, tok = tiny.model("gpt2")
    ctx = models.context_length(model)
    facts, _ = knowledge.validate([record(), record(9, subject="Paris " * 200_000)], "facts.json")  # ~1.2 MB
    with pytest.raises(knowledge.FactsError) as err:
        knowledge.known_table(model, tok, facts)
    msg = str(err.value)
    assert "case_id 9" in msg and f"context ({ctx} tokens)" in msg and "characters" in msg
    facts, _ = knowledge.validate([record(), record(9)], "facts.json")
    assert len(knowledge.known_table(model, tok, facts)) == 2  # fixed


# ------------------------------------------------------------ row 6: a misspelled top-level section

def test_a_misspelled_top_level_section_is_a_schema_error():
    from snakemake.utils import validate

    schema = str(ROOT / "config" / "schema.yaml")
    for name in ("config/config.yaml", "config/paper.yaml", ".test/config/config.yaml"):  # every real key passes
        validate(yaml.safe_load((ROOT / name).read_text()), schema)
    cfg = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    cfg["anlysis"] = cfg.pop("analysis")
    with pytest.raises(Exception, match="anlysis"):
        validate(cfg, schema)
    cfg["analysis"] = cfg.pop("anlysis")
    validate(cfg, schema)


# ------------------------------------------------------------ row 7: damaged corpus, facts and model inputs

def lines(n=4):
    return "".join(json.dumps({"id": str(i), "text": f"text {i} " * 5}) + "\n" for i in range(n))


@pytest.mark.parametrize("name,content,where", [
    ("c.jsonl.gz", lambda: gzip.compress(lines().encode())[:-20], "truncated"),
    ("c.json", lambda: b'[{"id": "0", "text": "a"},\n {"id": 1 "text": "b"}]', "line 2"),
    ("c.json", lambda: json.dumps(["just", "strings"]).encode(), "record 0"),
    ("c.jsonl", lambda: lines(2).encode() + b'{"id": "9", "text": "caf\xe9"}\n', "line 3"),
])
def test_a_damaged_corpus_file_is_named_with_line_or_record(tmp_path, name, content, where):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(corpus.CorpusError) as err:
        corpus.read_local(path)
    assert str(path) in str(err.value) and where in str(err.value)
    data = lines()
    path.write_bytes(gzip.compress(data.encode()) if name.endswith(".gz") else
                     (data if name.endswith(".jsonl") else json.dumps([json.loads(x) for x in data.splitlines()]))
                     .encode())
    assert len(corpus.read_local(path)) == 4  # fixed


def test_non_utf8_facts_are_named_with_the_line(tmp_path):
    path = tmp_path / "facts.json"
    path.write_bytes(b'[\n' + json.dumps(record()).encode()[:-1] + b', "x": "\xff"}\n]')
    with pytest.raises(knowledge.FactsError, match=r"facts.json: not UTF-8 text at line 2"):
        knowledge.read_records(path)
    path.write_text(json.dumps([record()]))
    assert len(knowledge.read_records(path)) == 1


def test_a_local_dir_without_a_model_is_named(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    (empty / "README").write_text("not a model")
    with pytest.raises(FileNotFoundError, match=r"holds no Hugging Face model.*config.json"):
        models.prepare({**schema.defaults("models.*"), "local_dir": str(empty)}, tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "manifest.json").exists()
    tiny.save(empty, "gpt2")  # fixed
    assert models.prepare({**schema.defaults("models.*"), "local_dir": str(empty)},
                          tmp_path / "prepared")["source"] == str(empty)


# ------------------------------------------------------------ row 8: config re-saved in another key order

def reorder(obj):
    """The same config with every mapping's keys reversed (what a YAML tool may do)."""
    if isinstance(obj, dict):
        return {k: reorder(obj[k]) for k in reversed(list(obj))}
    return [reorder(x) for x in obj] if isinstance(obj, list) else obj


def test_a_config_resaved_in_another_key_order_reruns_nothing(tiny_run):
    def resave(cfg):
        cfg.clear()
        cfg.update(reorder(yaml.safe_load(Path(tiny_run).read_text())))

    shuffled = wf.variant(tiny_run, "reordered", resave)
    assert list(yaml.safe_load(shuffled.read_text())["corpus"]) != list(yaml.safe_load(tiny_run.read_text())["corpus"])
    assert wf.planned_jobs(shuffled) == {}
    changed = wf.variant(tiny_run, "reordered_seed", lambda c: (resave(c), c["corpus"].update(seed=c["corpus"]["seed"] + 1)))
    assert "corpus" in wf.planned_jobs(changed)  # a changed value still reruns


# ------------------------------------------------------------ row 9: duplicate corpus ids

def test_duplicate_corpus_ids_are_named():
    records = [{"id": "a", "text": "one"}, {"id": "dup-7", "text": "two"}, {"id": "dup-7", "text": "three"}]
    with pytest.raises(corpus.CorpusError, match=r"duplicate record ids \['dup-7'\]"):
        corpus.sample(records, None, 0, where="c.jsonl")
    records[2]["id"] = "b"
    assert len(corpus.sample(records, None, 0)) == 3


# ------------------------------------------------------------ row 10: a resumed job's rate and progress

def test_a_resumed_job_counts_only_its_own_tokens(tmp_path):
    ckpt = tmp_path / "c.checkpoint"

    with pytest.raises(tiny.Stop):
        cov_run(ckpt, checkpoint_every=1, progress=tiny.stop_after(6))
    c0 = covariance.Checkpoints(ckpt, "fp").saved()[(0,)]["count"]  # tokens the killed run had counted
    seen = []
    _, count = cov_run(ckpt, checkpoint_every=1, progress=lambda **kw: seen.append(kw))
    assert 0 < c0 < count
    assert seen[-1]["run_tokens"] == 2 * count - c0  # group [0]'s rest + group [1, 2]: the resumed tokens are not
