"""The one-pass, all-layer covariance against an independent float64 reference, and its resumability."""
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny
from kis import covariance, models

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Lists are mutable sequences, typically used to store collections of homogeneous items.",
    "A",
    "Tuples are immutable sequences, typically used to store collections of heterogeneous data. " * 3,
    "Ranges represent an immutable sequence of numbers.",
    "Text sequence type: str. Textual data in Python is handled with str objects, or strings.",
]

# where each family keeps its FFN output projection — written out here, independently of kis.models
FFN_OUT = {"gpt2": "transformer.h.{}.mlp.c_proj", "gptj": "transformer.h.{}.mlp.fc_out",
           "gpt_neox": "gpt_neox.layers.{}.mlp.dense_4h_to_h", "llama": "model.layers.{}.mlp.down_proj"}


def reference(model, tok, texts, family, max_length):
    """float64 Σ k kᵀ / T, one text at a time (no padding at all), hooks written without kis."""
    n_layers = model.config.num_hidden_layers if hasattr(model.config, "num_hidden_layers") else model.config.n_layer
    mods = dict(model.named_modules())
    sums, count = None, 0
    for text in texts:
        ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
        got = {}
        hooks = [mods[FFN_OUT[family].format(i)].register_forward_pre_hook(
            lambda m, a, i=i: got.__setitem__(i, a[0][0].double())) for i in range(n_layers)]
        with torch.no_grad():
            model(input_ids=ids)
        for h in hooks:
            h.remove()
        if sums is None:
            sums = [torch.zeros(got[0].shape[1], got[0].shape[1], dtype=torch.float64) for _ in range(n_layers)]
        for i in range(n_layers):
            sums[i] += got[i].T @ got[i]
        count += ids.shape[1]
    return [s / count for s in sums], count


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_one_pass_equals_float64_reference(family):
    model, tok = tiny.model(family)
    ref, ref_count = reference(model, tok, TEXTS, family, max_length=40)
    # a small budget forces several padded batches of different widths
    sums, count = covariance.collect(model, tok, TEXTS, max_length=40, token_budget=64)
    covs = covariance.finalize(sums, count)
    assert count == ref_count  # pad tokens are not counted
    assert len(covs) == len(ref) == models.n_layers(model)
    for c, r in zip(covs, ref):
        rel = torch.linalg.norm(c - r) / torch.linalg.norm(r)
        assert rel < 1e-6, rel
        assert torch.equal(c, c.T)


def test_pad_tokens_excluded():
    """Padding a batch must not change C: the same texts batched one by one or all together."""
    model, tok = tiny.model("gpt2")
    one = covariance.finalize(*covariance.collect(model, tok, TEXTS, max_length=40, token_budget=1))
    many = covariance.finalize(*covariance.collect(model, tok, TEXTS, max_length=40, token_budget=10_000))
    for a, b in zip(one, many):
        assert torch.linalg.norm(a - b) / torch.linalg.norm(a) < 1e-6


def test_batches_fit_the_budget_and_cover_every_text():
    lengths = np.array([5, 40, 7, 40, 1, 12, 33])
    order = covariance.length_order(lengths)
    assert list(lengths[order]) == sorted(lengths, reverse=True)
    got = list(covariance.batches(lengths, order, token_budget=80))
    assert sorted(i for b in got for i in b) == list(range(len(lengths)))
    for b in got:
        assert len(b) == 1 or len(b) * lengths[b].max() <= 80


def test_save_load_roundtrip_and_metadata(tmp_path):
    model, tok = tiny.model("llama")
    sums, count = covariance.collect(model, tok, TEXTS, max_length=32, token_budget=64)
    covs = covariance.finalize(sums, count)
    path = tmp_path / "c.safetensors"
    covariance.save(path, covs, count, {"corpus_id": "unit-test", "model": "tiny"}, store_dtype="float64")
    back, meta = covariance.load(path)
    assert meta["corpus_id"] == "unit-test" and meta["n_tokens"] == count and meta["n_layers"] == len(covs)
    for i, c in enumerate(covs):
        assert torch.equal(back[i], c)


def test_diagnostics_flag_singular_and_ill_conditioned():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    good = torch.tensor(a @ a.T + 6 * np.eye(6))
    low_rank = torch.tensor(a[:, :2] @ a[:, :2].T)
    ill = torch.tensor(np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 1e-10]))
    table = covariance.diagnostics([good, low_rank, ill], condition_warn=1e8)
    assert list(table.singular) == [False, True, False]
    assert list(table.ill_conditioned) == [False, True, True]
    assert table.loc[0, "condition_number"] == pytest.approx(np.linalg.cond(good.numpy()), rel=1e-6)
    assert table.loc[1, "rank"] == 2


def test_empty_corpus_is_a_clear_error():
    model, tok = tiny.model("gpt2")
    with pytest.raises(ValueError, match="empty"):
        covariance.collect(model, tok, ["", ""], max_length=16)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import tiny
    from kis import covariance
    model, tok = tiny.model("gpt_neox", n_layer={n_layer}, f={f})
    texts = {texts!r}
    def progress(done, group, **_):
        if group == {kill_group} and done >= {kill_after}:
            os.kill(os.getpid(), signal.SIGKILL)   # die like an OOM-killed or pre-empted job
    covariance.collect(model, tok, texts, max_length=40, token_budget=48, checkpoint={ckpt!r},
                       checkpoint_every=1, fingerprint_id="fp", progress=progress, groups={groups!r})
""")


def killed_run(tmp_path, texts, *, groups, kill_group, kill_after, n_layer=3, f=64):
    """Run collect in a subprocess that SIGKILLs itself in pass `kill_group`; returns the checkpoint directory."""
    ckpt = tmp_path / "c.checkpoint"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), texts=texts, kill_after=kill_after, ckpt=str(ckpt),
                               groups=groups, kill_group=kill_group, n_layer=n_layer, f=f)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return ckpt


def saved_groups(ckpt) -> dict:
    return covariance.Checkpoints(ckpt, "fp").saved()


def test_killed_job_resumes_to_the_same_result(tmp_path):
    texts = TEXTS * 3
    ckpt = killed_run(tmp_path, texts, groups=None, kill_group=0, kill_after=9)
    state = saved_groups(ckpt)[(0, 1, 2)]
    assert 0 < state["done"] < len(texts)

    model, tok = tiny.model("gpt_neox")
    seen = []
    resumed = covariance.collect(model, tok, texts, max_length=40, token_budget=48, checkpoint=ckpt,
                                 checkpoint_every=1, fingerprint_id="fp", progress=lambda done, **_: seen.append(done))
    assert seen[0] > state["done"]  # it started after the checkpoint, not from scratch
    full = covariance.collect(model, tok, texts, max_length=40, token_budget=48)
    assert resumed[1] == full[1]
    for a, b in zip(resumed[0], full[0]):
        assert torch.equal(a, b)  # the float64 state is saved exactly: the resumed sums are bit-identical


def test_kill_in_the_middle_of_group_2_resumes_to_the_same_C(tmp_path):
    """Two passes (layers 0-1, then 2-3); killed inside the second; the rerun keeps pass 1 and resumes pass 2."""
    texts = TEXTS * 3
    ckpt = killed_run(tmp_path, texts, groups=[[0, 1], [2, 3]], kill_group=1, kill_after=9, n_layer=4, f=600)
    saved = saved_groups(ckpt)
    assert saved[(0, 1)]["done"] == len(texts)          # the first pass finished and was kept
    assert 0 < saved[(2, 3)]["done"] < len(texts)      # the second was checkpointed part-way

    model, tok = tiny.model("gpt_neox", n_layer=4, f=600)
    seen = []
    resumed = covariance.collect(model, tok, texts, max_length=40, token_budget=48, checkpoint=ckpt,
                                 checkpoint_every=1, fingerprint_id="fp", groups=[[0, 1], [2, 3]],
                                 progress=lambda done, layers, **_: seen.append((layers, done)))
    assert seen[0][0] == (2, 3) and seen[0][1] > saved[(2, 3)]["done"]  # no pass over layers 0-1 again
    one = covariance.collect(model, tok, texts, max_length=40, token_budget=48)  # one group, never killed
    assert resumed[1] == one[1]
    for a, b in zip(covariance.finalize(*resumed), covariance.finalize(*one)):
        assert torch.linalg.norm(a - b) / torch.linalg.norm(b) <= 1e-12
        assert torch.equal(a, b)


def test_checkpoint_of_other_settings_is_not_used(tmp_path, caplog):
    model, tok = tiny.model("gpt2")
    ckpt = tmp_path / "c.checkpoint"

    class Stop(Exception):
        pass

    calls = []

    def stop(done, **_):
        calls.append(done)
        if len(calls) == 2:  # after the first batch's checkpoint
            raise Stop

    with pytest.raises(Stop):
        covariance.collect(model, tok, TEXTS, max_length=40, token_budget=48, checkpoint=ckpt, checkpoint_every=1,
                           fingerprint_id="other", progress=stop)
    assert covariance.Checkpoints(ckpt, "other").saved()
    sums, count = covariance.collect(model, tok, TEXTS, max_length=40, checkpoint=ckpt, fingerprint_id="mine")
    assert "starting over" in caplog.text
    assert count == sum(len(tok(t, truncation=True, max_length=40)["input_ids"]) for t in TEXTS)


def test_smaller_budget_after_a_kill_resumes_too(tmp_path):
    """An OOM retry halves the token budget; the checkpoint counts texts, so it still resumes."""
    model, tok = tiny.model("gpt2")
    ckpt = tmp_path / "c.checkpoint"
    texts = TEXTS * 2

    class Stop(Exception):
        pass

    def stop_early(done, **_):
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        covariance.collect(model, tok, texts, max_length=40, token_budget=48, checkpoint=ckpt, checkpoint_every=1,
                           fingerprint_id="fp", progress=stop_early)
    resumed = covariance.collect(model, tok, texts, max_length=40, token_budget=24, checkpoint=ckpt,
                                 checkpoint_every=1, fingerprint_id="fp")
    full = covariance.collect(model, tok, texts, max_length=40, token_budget=48)
    assert resumed[1] == full[1]
    for a, b in zip(covariance.finalize(*resumed), covariance.finalize(*full)):
        assert torch.linalg.norm(a - b) / torch.linalg.norm(b) < 1e-6


def test_context_length_from_config():
    model, _ = tiny.model("gpt2")
    assert covariance.context_length(model) == 128


def test_wide_keys_take_the_half_product_path_and_match_the_reference():
    """f ≥ 512 accumulates only the blocks on and above the diagonal, then mirrors: same C as the reference."""
    from transformers import AutoModelForCausalLM

    _, tok = tiny.model("llama")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(tiny.config("llama", len(tok), f=600)).eval()
    ref, _ = reference(model, tok, TEXTS, "llama", max_length=40)
    covs = covariance.finalize(*covariance.collect(model, tok, TEXTS, max_length=40, token_budget=64))
    for c, r in zip(covs, ref):
        assert torch.linalg.norm(c - r) / torch.linalg.norm(r) < 1e-6
