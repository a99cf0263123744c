"""Context templates sampled from the model as ROME's / MEMIT's code (kis.templates): seeded, recorded in the
trajectory table's metadata; the fixed list unchanged."""
import re

import pytest
import torch

import tiny
from kis import templates

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generated_templates_follow_the_recipes_and_the_seed(family):
    model, tok = tiny.model(family)
    rome = templates.generate(model, tok, "rome", seed=0)
    assert rome == templates.generate(model, tok, "r-rome", seed=0) == templates.generate(model, tok, "wilke", seed=0)
    assert rome != templates.generate(model, tok, "rome", seed=1)
    assert len(rome) == 1 + 10 + 10 and rome[0] == "{}"  # ROME: "{}" + 10 × 5 tokens + 10 × 10 tokens
    memit = templates.generate(model, tok, "memit", seed=0)
    assert memit == templates.generate(model, tok, "alphaedit", seed=0)
    assert len(memit) == 1 + 5 and memit[0] == "{}"       # MEMIT: "{}" + one sample from each of 5 words
    for seed_word, t in zip(("The", "Therefore", "Because", "I", "You"), memit[1:]):
        assert t.startswith(seed_word)
    for t in rome + memit:
        assert re.fullmatch(r"[^{}]*\{\}[^{}]*", t) and (t == "{}" or t.endswith(". {}"))
    # sampled, not greedy: ten draws from the same start are not all alike
    assert len(set(rome[1:11])) > 1


def test_sampling_is_top_k_with_the_given_generator():
    """top_k = 1 is greedy decoding (checked by hand); the tokens in all reach max_len; the same generator state gives
    the same draws."""
    model, tok = tiny.model("llama")
    start = [tok.bos_token_id]
    got = templates.sample(model, start, 2, 6, 1, torch.Generator().manual_seed(0))
    ids = list(start)
    with torch.no_grad():
        while len(ids) < 6:
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert got == [ids, ids]
    a = templates.sample(model, start, 3, 7, 5, torch.Generator().manual_seed(4))
    b = templates.sample(model, start, 3, 7, 5, torch.Generator().manual_seed(4))
    assert a == b and all(len(r) == 7 for r in a)
    with torch.no_grad():  # every drawn token is among the top 5 at its position
        for r in a:
            logits = model(input_ids=torch.tensor([r])).logits[0]
            for i in range(1, len(r)):
                assert r[i] in torch.topk(logits[i - 1], 5).indices.tolist()


def test_clean_drops_braces_and_double_newlines():
    assert templates.clean("a {b}\n\nc") == "a  b  c"


def test_the_rule_records_generated_templates_and_keeps_the_fixed_list(tmp_path, covs):
    import wf
    from editfix import HP, TEMPLATES, tiny_facts
    from test_trajectory import write_inputs
    from kis import models, trajectory

    facts = tiny_facts()
    write_inputs(tmp_path, facts, covs)
    settings = {**wf.defaults("editing"), "n_edits": 2, "n_test": 2, "eval_every": 2, "seed": 1,
                "require_known": False, "layer_fraction": 0.5, "fluency_prompts": 0,
                "defaults": {"rome": {**HP, "v_num_grad_steps": 3}}, "published": {}, "overrides": {}}

    def rule(name, **kw):
        return trajectory.run_rule(manifest=tmp_path / "prepared" / "manifest.json", cov=tmp_path / "cov.safetensors",
                                   known=tmp_path / "known.parquet", facts=tmp_path / "facts.parquet",
                                   table=tmp_path / name / "rome.parquet", model="tiny-llama", method="rome",
                                   settings={**settings, **kw}, names=["tiny-llama"], batch_size=32,
                                   checkpoint_every=0)

    _, fixed = rule("fixed", context_templates=TEMPLATES)
    assert fixed["context_templates"] == TEMPLATES and fixed["context_templates_source"].startswith("fixed")
    _, gen = rule("gen", context_templates="generated", template_seed=3)
    net, tok, _ = models.load_prepared(tmp_path / "prepared" / "manifest.json")
    assert gen["context_templates"] == templates.generate(net, tok, "rome", 3)
    assert gen["context_templates_source"] == "generated: rome's recipe (kis.templates), seed 3"
    assert len(gen["context_templates"]) == 21
    _, other = rule("other", context_templates="generated", template_seed=4)
    assert other["context_templates"] != gen["context_templates"]
