"""Issue 25: a resumed job is the job it claims to be, and a shared results folder harms no one.

One test per defect: (1) a covariance checkpoint of other texts, (2) a trajectory checkpoint of other settings,
(3) a link at a lock's path, (4) a second run sharing the results folder, (5) evaluation prompts longer than the
context — each fails on the code before the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wf
from kis import io, schema


# ------------------------------------------------------------ defect 3: the lock never follows a link

@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_a_link_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, how):
    """Anyone who can write to a shared results folder could put a link at <output>.lock pointing to a file another
    user owns; taking the lock must not truncate or write that file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's data\n")
    out = tmp_path / "results" / "covariance" / "m.safetensors"
    out.parent.mkdir(parents=True)
    lock = Path(f"{out}.lock")
    (os.symlink if how == "symlink" else os.link)(victim, lock)
    with pytest.raises(io.LockedError, match="link") as err:
        with io.output_lock(out):
            pass
    assert str(lock) in str(err.value)
    assert victim.read_text() == "the victim's data\n"


def test_the_results_lock_refuses_a_link_too(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".kis-run.lock").symlink_to(victim)
    with pytest.raises(io.LockedError, match="symbolic link"):
        io.results_lock(results)
    assert victim.read_text() == "mine"


# ------------------------------------------------------------ defect 4: a second run sharing the results folder

HOLDER = """
import sys, time
from kis import io
if hasattr(io, "results_lock"):  # a running workflow holds its results folder (the Snakefile's onstart)
    io.results_lock({results!r})
with io.output_lock({out!r}):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_sharing_the_results_folder_is_refused_before_it_touches_a_log(tmp_path):
    """Run 1 (here a process holding the results folder and its covariance output, as a running workflow does) has
    written its covariance log; run 2, from another working directory with the same absolute `results:`, must fail
    at start naming the folder and the holder — and leave run 1's log as it was (Snakemake deletes a job's log
    before the job starts, so a per-job lock comes too late)."""
    config = wf.tiny_config(tmp_path / "a")
    results = wf.results(config)
    log = results / "logs" / "covariance" / "tiny-gpt2.log"
    log.parent.mkdir(parents=True)
    log.write_text("run 1's covariance log: 663 bytes of progress\n")
    out = results / "covariance" / "tiny-gpt2.safetensors"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(results=str(results), out=str(out))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        other = tmp_path / "b"
        other.mkdir()
        proc = wf.snakemake(config, "--cores", "1", cwd=other, check=False)
        assert proc.returncode != 0
        said = proc.stdout + proc.stderr
        assert "results folder" in said and str(results.resolve()) in said and f'"pid": {holder.pid}' in said
        assert log.read_text() == "run 1's covariance log: 663 bytes of progress\n"
        assert not list(results.glob("knowledge/**/*.parquet")) and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # once run 1 is gone (killed: the kernel dropped its lock), the same run goes ahead: the stale lock is taken over
    proc = wf.snakemake(config, "--cores", "1", "-n", cwd=tmp_path / "b")
    assert proc.returncode == 0


def test_the_results_lock_is_held_for_the_process_and_released_when_it_dies(tmp_path):
    results = tmp_path / "results"
    code = f"from kis import io\nio.results_lock({str(results)!r})\nprint('ok', flush=True)\nimport time\ntime.sleep(60)"
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "ok"
        assert json.loads((results / ".kis-run.lock").read_text())["pid"] == first.pid
        second = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "")], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0 and "LockedError" in second.stderr and "in use by another" in second.stderr
    finally:
        first.kill()
        first.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        again = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "")], capture_output=True,
                               text=True, timeout=60)
        if again.returncode == 0:
            break
    assert again.returncode == 0, again.stderr
    assert "stale lock" in again.stderr  # the dead holder's file is taken over, with a warning
    assert not (results / ".kis-run.lock").exists()  # a run that ends removes its lock file
    quiet = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "")], capture_output=True, text=True,
                           timeout=60)
    assert quiet.returncode == 0 and "stale lock" not in quiet.stderr


# ------------------------------------------------------------ defect 1: a covariance checkpoint of other texts

TEXTS = [f"Text number {i} says that the {w} is near the river and far from the hills." * (1 + i % 3)
         for i, w in enumerate(["mill", "bridge", "tower", "church", "school", "market", "station", "farm"] * 2)]


def _cov_inputs(tmp_path, texts, family="gpt2", seed=0):
    import pandas as pd

    import tiny
    from kis import corpus, models

    src = tmp_path / f"model-{family}-{seed}"
    if not src.exists():
        tiny.save(src, family, seed=seed)
    models.prepare({**schema.defaults("models.*"), "local_dir": str(src)}, tmp_path / "prepared")
    frame = pd.DataFrame({"id": [f"t{i}" for i in range(len(texts))], "text": texts})
    io.write_parquet(frame, tmp_path / "texts.parquet",
                     metadata={"corpus_id": "local:test", "sample_hash": corpus.sample_hash(frame.id)})
    return tmp_path / "prepared" / "manifest.json", tmp_path / "texts.parquet"


def _cov_rule(manifest, texts, cov, **kw):
    from kis import covariance

    args = dict(manifest=manifest, texts=texts, cov=cov, max_length=40, store_dtype="float64", checkpoint_every=1,
                checkpoint_minutes=30, device_memory_mib=0, token_budget=48, batch_tokens=None)
    covariance.run_rule(**{**args, **kw})


def _killed_after(monkeypatch, n_batches):
    """covariance.forward_keys raises after n_batches calls (the job is killed in its pass)."""
    from kis import covariance

    real, calls = covariance.forward_keys, []

    def forward(*a, **kw):
        calls.append(1)
        if len(calls) > n_batches:
            raise KeyboardInterrupt("killed")
        return real(*a, **kw)

    monkeypatch.setattr(covariance, "forward_keys", forward)
    return real


def _c_bytes(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}, fh.metadata()


def test_a_covariance_checkpoint_of_other_texts_with_the_same_ids_is_refused(tmp_path, monkeypatch, caplog):
    """Killed mid-pass, then every text upper-cased (the same ids, so the same sample hash): the rerun must start
    over and write the C a clean run on the new texts writes, bit for bit — and C's metadata must tell the two
    corpora apart."""
    import logging

    manifest, texts = _cov_inputs(tmp_path / "run", TEXTS)
    cov = tmp_path / "run" / "cov.safetensors"
    real = _killed_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        _cov_rule(manifest, texts, cov)
    assert list(Path(f"{cov}.checkpoint").glob("layers-*.safetensors")), "the killed job left no checkpoint"
    monkeypatch.setattr("kis.covariance.forward_keys", real)
    _, texts = _cov_inputs(tmp_path / "run", [t.upper() for t in TEXTS])
    with caplog.at_level(logging.WARNING, logger="kis.covariance"):
        _cov_rule(manifest, texts, cov)
    assert "belongs to other settings" in caplog.text and "'texts'" in caplog.text
    clean_manifest, clean_texts = _cov_inputs(tmp_path / "clean", [t.upper() for t in TEXTS])
    _cov_rule(clean_manifest, clean_texts, tmp_path / "clean" / "cov.safetensors")
    resumed, meta = _c_bytes(cov)
    clean, clean_meta = _c_bytes(tmp_path / "clean" / "cov.safetensors")
    assert resumed == clean
    _, lower_texts = _cov_inputs(tmp_path / "lower", TEXTS)
    _cov_rule(*_cov_inputs(tmp_path / "lower", TEXTS), tmp_path / "lower" / "cov.safetensors")
    _, lower_meta = _c_bytes(tmp_path / "lower" / "cov.safetensors")
    assert json.loads(lower_meta["sample_hash"]) == json.loads(meta["sample_hash"])  # the ids alone agree ...
    assert json.loads(lower_meta["text_hash"]) != json.loads(meta["text_hash"])  # ... the texts do not


@pytest.mark.parametrize("field", ["model", "revision", "dtype", "weights", "texts", "max_length", "products"])
def test_every_field_of_the_covariance_signature_refuses_a_checkpoint(field, tmp_path, caplog):
    """checkpoint_signature names everything that changes C: changing any one field makes a saved group checkpoint
    another run's (warned naming the field, removed, the pass starts over), while the same signature resumes."""
    import logging

    import tiny
    from kis import covariance

    model, tok = tiny.model("gpt2")
    man = {"location": "/m", "revision": None, "dtype": "float32"}
    sig = covariance.checkpoint_signature(model, man, [f"t{i}" for i in range(len(TEXTS))], TEXTS, max_length=40,
                                          products="fp32-exact")
    assert set(sig) == {"model", "revision", "dtype", "weights", "texts", "max_length", "products"}

    def run(signature, **kw):
        return covariance.collect(model, tok, TEXTS, max_length=40, token_budget=48, checkpoint=tmp_path / "ck",
                                  fingerprint_id=covariance.fingerprint(**signature), signature=signature,
                                  groups=[[0], [1, 2]], **kw)

    with pytest.raises(tiny.Stop):
        run(sig, checkpoint_every=1, progress=tiny.stop_after(6))
    assert list((tmp_path / "ck").glob("layers-*.safetensors"))
    changed = {**sig, field: f"other {sig[field]}"}
    with caplog.at_level(logging.WARNING, logger="kis.covariance"):
        run(changed)
    assert f"field '{field}'" in caplog.text and "starting over" in caplog.text
    __import__("shutil").rmtree(tmp_path / "ck")  # the finished groups of the changed run (the rule removes them)
    caplog.clear()
    with pytest.raises(tiny.Stop):
        run(sig, checkpoint_every=1, progress=tiny.stop_after(6))
    with caplog.at_level(logging.INFO, logger="kis.covariance"):
        run(sig)
    assert "resuming layers" in caplog.text and "other settings" not in caplog.text


def test_the_weights_id_tells_two_models_apart_and_a_reload_the_same(tmp_path):
    import tiny
    from kis import models

    a, _ = tiny.model("gpt2", seed=0)
    assert models.weights_id(a) == models.weights_id(tiny.model("gpt2", seed=0)[0])
    b, _ = tiny.model("gpt2", seed=0)
    with __import__("torch").no_grad():
        models.ffn_weight(b, 1)[3, 5] += 1e-3  # one weight of one layer
    assert models.weights_id(a) != models.weights_id(b)
    assert models.weights_id(a) != models.weights_id(tiny.model("gpt2", seed=1)[0])


# ------------------------------------------------------------ defect 2: a trajectory checkpoint of other settings

class Killed(Exception):
    pass


def _kill_at(monkeypatch, case_id):
    """trajectory.immediate raises when it checks `case_id`'s edit (the job is killed in that edit)."""
    from kis import trajectory

    real = trajectory.immediate

    def immediate(m, t, fact):
        if fact["case_id"] == case_id:
            raise Killed
        return real(m, t, fact)

    monkeypatch.setattr(trajectory, "immediate", immediate)
    return lambda: monkeypatch.setattr(trajectory, "immediate", real)


def test_a_trajectory_checkpoint_of_other_settings_is_refused_by_the_rule(tmp_path, covs, monkeypatch, caplog):
    """The rule killed after edit 3 of 8, then kl_prompt and context_templates changed: the rerun must start over
    (warned, naming the field) and write the table a clean run with the new settings writes — not resume edits made
    under the old settings while its metadata names the new ones. The per-step progress lines are logged."""
    import logging

    import pandas as pd

    import wf
    from editfix import HP, TEMPLATES, tiny_facts
    from test_trajectory import write_inputs
    from kis import trajectory

    facts = tiny_facts()
    write_inputs(tmp_path, facts, covs)
    settings = {**wf.defaults("editing"), "n_edits": 8, "n_test": 3, "eval_every": 4, "seed": 1,
                "require_known": False, "context_templates": TEMPLATES, "layer_fraction": 0.5, "fluency_prompts": 0,
                "defaults": {"rome": {**HP, "nullspace_threshold": 0.0, "v_num_grad_steps": 5}}, "published": {},
                "overrides": {}}
    new = {"kl_prompt": "{} was a", "context_templates": ["{}", "Another fact. {}"]}

    def rule(out, every, **kw):
        return trajectory.run_rule(manifest=tmp_path / "prepared" / "manifest.json", cov=tmp_path / "cov.safetensors",
                                   known=tmp_path / "known.parquet", facts=tmp_path / "facts.parquet", table=out,
                                   model="tiny-llama", method="rome", settings={**settings, **kw},
                                   names=["tiny-llama"], batch_size=32, checkpoint_every=every)

    out = tmp_path / "traj" / "rome.parquet"
    edit_ids = trajectory.split([f["case_id"] for f in facts], 8, 3, 1)[0]
    restore = _kill_at(monkeypatch, edit_ids[3])
    with pytest.raises(Killed):
        rule(out, 1)
    assert out.with_suffix(".ckpt.pt").exists()
    restore()
    with caplog.at_level(logging.INFO):
        resumed, meta = rule(out, 1, **new)
    assert "starting the trajectory over" in caplog.text and "resumed" not in caplog.text
    assert "checkpoint field 'templates'" in caplog.text
    assert "step 0: held-out P(true)" in caplog.text and "step 8: held-out P(true)" in caplog.text
    clean, clean_meta = rule(tmp_path / "clean" / "rome.parquet", 0, **new)
    assert meta["context_templates"] == new["context_templates"]
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), clean.drop(columns="seconds"), check_exact=True)
    assert not out.with_suffix(".ckpt.pt").exists()


FIELDS = ["method", "model", "weights", "edits", "edit_facts", "test", "test_facts", "protected", "layers", "hp",
          "templates", "kl_prompt", "steps", "evaluation", "model_files", "cov", "cov_ridge", "settings"]


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_of_the_trajectory_signature_refuses_a_checkpoint(field, covs, tmp_path, monkeypatch):
    """checkpoint_signature names everything that changes a trajectory: a checkpoint saved by a killed run is refused
    (ValueError naming the field) when that one input really changes — the editor, the model, the stream's facts
    under the same ids, C, the settings — and accepted when nothing does."""
    import copy

    from editfix import TEMPLATES, hp_for, peaked_tiny, tiny_facts
    from kis import editing, models, trajectory

    model, tok = peaked_tiny()
    facts = tiny_facts()
    man = {"location": "/models/tiny", "revision": None, "dtype": "float32"}
    settings = {"cov_ridge": 0.0, "seed": 1}
    base = dict(method="least-interference", model_name="tiny", edits=facts[:5], test=facts[6:9], prot=facts[9:12],
                hp=hp_for("least-interference", covs, [0, 1, 2]), templates=TEMPLATES, kl_prompt="{} is a", steps={0, 2, 5},
                max_neighborhood=10, covs=covs, man=man, settings=settings, nudge=False)
    base["hp"].update(v_num_grad_steps=4, n_protected=3)

    def other_fact(f, **kw):
        return {**copy.deepcopy(f), **kw}

    other_covs = {k: v * 1.01 for k, v in covs.items()}
    changes = {
        "method": dict(method="wilke", prot=None), "model": dict(model_name="tiny-2"), "weights": dict(nudge=True),
        "edits": dict(edits=facts[1:6]),
        "edit_facts": dict(edits=facts[:4] + [other_fact(facts[4], target_new="Paris")]),
        "test": dict(test=facts[5:8]), "test_facts": dict(test=[other_fact(facts[6], prompt="{} lives in")] + facts[7:9]),
        "protected": dict(prot=facts[9:11] + [facts[5]]),
        "layers": dict(hp={**base["hp"], "layers": [0, 1]}), "hp": dict(hp={**base["hp"], "v_lr": 0.25}),
        "templates": dict(templates=["{}", "Another fact. {}"]), "kl_prompt": dict(kl_prompt="{} was a"),
        "steps": dict(steps={0, 3, 5}), "evaluation": dict(max_neighborhood=5),
        "model_files": dict(man={**man, "location": "/models/elsewhere"}), "cov": dict(covs=other_covs),
        "cov_ridge": dict(settings={**settings, "cov_ridge": 1e-3}), "settings": dict(settings={**settings, "seed": 2}),
    }
    assert sorted(changes) == sorted(FIELDS)

    def trial(ckpt, **kw):
        a = {**base, **kw}
        m = copy.deepcopy(model)
        if a["nudge"]:
            with __import__("torch").no_grad():
                models.ffn_weight(m, 2)[0, 0] += 1e-3
        ed = editing.make_editor(a["method"], m, tok, a["covs"], a["hp"], a["templates"], a["kl_prompt"],
                                 protected=a["prot"])
        return trajectory.run(m, tok, ed, a["edits"], a["test"], eval_every=5, record_steps=a["steps"],
                              model_name=a["model_name"], max_neighborhood=a["max_neighborhood"], fluency_prompts=0,
                              checkpoint=ckpt, checkpoint_every=1, inputs=trajectory.run_inputs(a["man"], a["covs"],
                                                                                                a["settings"]))

    ckpt = tmp_path / "t.pt"
    restore = _kill_at(monkeypatch, facts[2]["case_id"])
    with pytest.raises(Killed):
        trial(ckpt)
    restore()
    saved = ckpt.read_bytes()
    sig = __import__("torch").load(ckpt, weights_only=True)["signature"]
    assert sorted(sig) == sorted(FIELDS)  # the test covers every field the signature names
    with pytest.raises(ValueError, match=f"checkpoint field '{field}'"):
        trial(ckpt, **changes[field])
    ckpt.write_bytes(saved)
    # and nothing changed: the checkpoint is taken (the run goes on after edit 2 and removes it at the end)
    trial(ckpt)
    assert not ckpt.exists()


# ------------------------------------------------------------ defect 5: evaluation prompts longer than the context

@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("field", ["paraphrase_prompts", "neighborhood_prompts", "generation_prompts"])
def test_an_evaluation_prompt_longer_than_the_context_is_named_where_the_facts_are_read(family, field, tmp_path):
    """Context 128 tokens (tiny models): an evaluation prompt that does not fit is a FactsError of the known rule
    naming the case id, the field and the prompt's index — not an IndexError after hours of editing (GPT-2) or a
    silent score beyond the context (Llama) — and the known table is not written. A prompt that fits passes."""
    import pandas as pd

    import tiny
    from editfix import tiny_facts
    from kis import knowledge, models

    src = tiny.save(tmp_path / "model", family)
    models.prepare({**schema.defaults("models.*"), "local_dir": str(src)}, tmp_path / "prepared")
    facts = tiny_facts()
    long = "word " * 140
    facts[4] = {**facts[4], field: list(facts[4][field]) + [long]}
    io.write_parquet(pd.DataFrame(facts), tmp_path / "facts.parquet", metadata={"source": "synthetic"})
    with pytest.raises(knowledge.FactsError) as err:
        knowledge.run_known(manifest=tmp_path / "prepared" / "manifest.json", facts=tmp_path / "facts.parquet",
                            known=tmp_path / "known.parquet", model="tiny", batch_size=8)
    n = len(facts[4][field]) - 1
    assert f"case_id {facts[4]['case_id']}: {field}[{n}]" in str(err.value) and "context (128 tokens)" in str(err.value)
    assert not (tmp_path / "known.parquet").exists()
    fits = "word " * 20
    facts[4][field][-1] = fits
    io.write_parquet(pd.DataFrame(facts), tmp_path / "facts.parquet", metadata={"source": "synthetic"})
    knowledge.run_known(manifest=tmp_path / "prepared" / "manifest.json", facts=tmp_path / "facts.parquet",
                        known=tmp_path / "known.parquet", model="tiny", batch_size=8)
    assert len(pd.read_parquet(tmp_path / "known.parquet")) == len(facts)


def test_a_prompt_just_fitting_with_its_longer_target_is_checked_exactly():
    """The exact rule: prompt tokens + the longer target's tokens ≤ context (probe.target_ids), both sides of it."""
    import tiny
    from kis import knowledge, probe

    _, tok = tiny.model("gpt2")
    fact = {"case_id": 7, "target_true": "river", "target_new": "the old mill bridge"}
    sides = set()
    for words in range(20, 130):
        q = "word " * words
        need = len(probe.prompt_ids(tok, q)) + max(len(probe.target_ids(tok, q, fact[t]))
                                                   for t in ("target_true", "target_new"))
        fact["neighborhood_prompts"] = [q]
        sides.add(need <= 128)
        if need <= 128:
            knowledge.check_evaluation_prompts(tok, fact, 128)
        else:
            with pytest.raises(knowledge.FactsError, match="target_new"):
                knowledge.check_evaluation_prompts(tok, fact, 128)
    assert sides == {True, False}


# ------------------------------------------------------------ the minor defects found with them

@pytest.mark.parametrize("change,said", [
    (lambda c: c.update(models={1: next(iter(c["models"].values()))}), "the key 1 is a int, not a name"),
    (lambda c: c.update(models={"all_models_layer0": next(iter(c["models"].values()))}), "starts with 'all_models'"),
    (lambda c: c.update(results=""), "filesystem root"),
    (lambda c: c.update(results="/"), "filesystem root"),
])
def test_a_config_no_run_can_use_is_named_while_the_dag_is_built(tmp_path, change, said):
    """An integer model key (was a bare TypeError), a model named like the all-model figures (silently lost its own
    heatmap), results '' or '/' (planned every output at the filesystem root): a dry run stops naming the key."""
    import yaml

    config = wf.tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    change(cfg)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = wf.snakemake(config, "-n", check=False)
    assert proc.returncode != 0
    assert said in proc.stdout + proc.stderr


def test_a_damaged_manifest_is_warned_about_while_the_dag_is_built(tmp_path):
    config = wf.tiny_config(tmp_path)
    manifest = wf.results(config) / "models" / "tiny-gpt2" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"n_layers": 3, "d_mod')
    proc = wf.snakemake(config, "-n", "--forcerun", "covariance", check=False)
    said = proc.stdout + proc.stderr
    assert f"WARNING: {wf.target(config, 'models', 'tiny-gpt2', 'manifest.json')} is damaged" in said
    assert "--forcerun prepare_model" in said


def test_diagnostics_never_report_a_rank_above_the_token_count():
    """C from T = 5 tokens of f = 64 values has rank ≤ 5; rounding in fp32 products lifts its zero eigenvalues above
    the float64 tolerance, so the numerical count alone says more."""
    import numpy as np
    import torch

    from kis import covariance

    rng = np.random.default_rng(0)
    k = torch.tensor(rng.standard_normal((5, 64)), dtype=torch.float32) * 10
    c = (k.T @ k).double() / 5 + torch.tensor(rng.standard_normal((64, 64)) * 1e-9).double()
    c = (c + c.T) / 2
    raw = covariance.diagnostics([c])
    assert raw["rank"][0] > 5  # the bug's condition: noise above the float64 tolerance
    capped = covariance.diagnostics([c], n_tokens=5)
    assert capped["rank"][0] == 5 and bool(capped["singular"][0])
    full = covariance.diagnostics([torch.eye(8, dtype=torch.float64)], n_tokens=100)
    assert full["rank"][0] == 8 and not bool(full["singular"][0])


def test_a_kill_while_the_manifest_is_written_leaves_the_old_one_whole(tmp_path, monkeypatch):
    import tiny
    from kis import models

    src = tiny.save(tmp_path / "model", "gpt2")
    first = models.prepare({**schema.defaults("models.*"), "local_dir": str(src)}, tmp_path / "prepared")
    real = Path.write_text

    def half(self, text, *a, **kw):
        real(self, text[: len(text) // 2], *a, **kw)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(Path, "write_text", half)
    with pytest.raises(KeyboardInterrupt):
        models.prepare({**schema.defaults("models.*"), "local_dir": str(src), "dtype": "float32"},
                       tmp_path / "prepared")
    monkeypatch.setattr(Path, "write_text", real)
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text()) == first
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == ["manifest.json"]


def test_trust_remote_code_is_warned_about_in_the_log(tmp_path, caplog):
    import logging

    import tiny
    from kis import models

    src = tiny.save(tmp_path / "model", "gpt2")
    with caplog.at_level(logging.WARNING, logger="kis.models"):
        models.load(str(src))
    assert "trust_remote_code" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="kis.models"):
        models.load(str(src), trust_remote_code=True)
    assert "trust_remote_code is true" in caplog.text and str(src) in caplog.text
