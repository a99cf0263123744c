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
from kis import covariance, models, probe

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Lists are mutable sequences, typically used to store collections of homogeneous items.",
    "A",
    "Tuples are immutable sequences, typically used to store collections of heterogeneous data. " * 3,
    "Ranges represent an immutable sequence of numbers.",
    "Text sequence type: str. Textual data in Python is handled with str objects, or strings.",
]

@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_one_pass_equals_float64_reference(family):
    model, tok = tiny.model(family)
    ref, ref_count = tiny.covariance_reference(model, tok, TEXTS, family, max_length=40)
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
    order = probe.length_order(lengths)
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

    with pytest.raises(tiny.Stop):
        covariance.collect(model, tok, texts, max_length=40, token_budget=48, checkpoint=ckpt, checkpoint_every=1,
                           fingerprint_id="fp", progress=tiny.stop_after(4))
    resumed = covariance.collect(model, tok, texts, max_length=40, token_budget=24, checkpoint=ckpt,
                                 checkpoint_every=1, fingerprint_id="fp")
    full = covariance.collect(model, tok, texts, max_length=40, token_budget=48)
    assert resumed[1] == full[1]
    for a, b in zip(covariance.finalize(*resumed), covariance.finalize(*full)):
        assert torch.linalg.norm(a - b) / torch.linalg.norm(b) < 1e-6


def test_context_length_from_config():
    model, _ = tiny.model("gpt2")
    assert models.context_length(model) == 128


def test_wide_keys_take_the_half_product_path_and_match_the_reference():
    """f ≥ 512 accumulates only the blocks on and above the diagonal, then mirrors: same C as the reference."""
    from transformers import AutoModelForCausalLM

    _, tok = tiny.model("llama")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(tiny.config("llama", len(tok), f=600)).eval()
    ref, _ = tiny.covariance_reference(model, tok, TEXTS, "llama", max_length=40)
    covs = covariance.finalize(*covariance.collect(model, tok, TEXTS, max_length=40, token_budget=64))
    for c, r in zip(covs, ref):
        assert torch.linalg.norm(c - r) / torch.linalg.norm(r) < 1e-6


def budget_for(model, n_per_group: int, token_budget: int, seq: int) -> int:
    """A device budget (no reserve) whose sums room holds exactly n_per_group layers."""
    from kis import plan

    per_layer = plan.accumulator_bytes(covariance.layer_widths(model)[0])
    act = plan.activation_bytes(covariance.model_shape(model), token_budget, seq)
    return covariance.weight_bytes(model) + act + n_per_group * per_layer + per_layer // 2


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_any_device_budget_gives_the_same_C(device):
    """Budgets forcing 1, 2 and L groups: each plan runs its passes; S is bit-identical to the one-group S."""
    model, tok = tiny.model("llama", n_layer=4, f=600)  # f = 600: three panels per layer
    model = model.to(device)
    texts = TEXTS * 2
    kw = dict(max_length=40, token_budget=64)
    groups_seen, results = [], []
    for per_group in (4, 2, 1):
        p = covariance.plan_model(model, token_budget=64, seq=40, reserve=0,
                                  device_bytes=budget_for(model, per_group, 64, 40))
        assert p.device_peak <= p.device_budget
        groups_seen.append(p.groups)
        passes = set()
        results.append(covariance.collect(model, tok, texts, groups=p.groups, **kw, device=device,
                                          progress=lambda group, **_: passes.add(group)))
        assert passes == set(range(p.passes))
    assert groups_seen == [[[0, 1, 2, 3]], [[0, 1], [2, 3]], [[0], [1], [2], [3]]]
    (one, n1), *others = results
    for sums, n in others:
        assert n == n1
        for a, b in zip(sums, one):
            assert torch.linalg.norm(a - b) / torch.linalg.norm(b) <= 1e-12
            assert torch.equal(a, b)


def test_plan_that_cannot_hold_one_layer_is_a_clear_error():
    model, _ = tiny.model("gpt2")
    with pytest.raises(ValueError, match="do not fit.*token_budget"):
        covariance.plan_model(model, token_budget=64, seq=40, device_bytes=covariance.weight_bytes(model), reserve=0)


def test_cache_from_group_checkpoints_equals_save_of_finalize(tmp_path):
    """run_rule's path (finished group checkpoints → cache, row block by row block) writes exactly save(finalize(S))."""
    model, tok = tiny.model("gptj", n_layer=3, f=520)
    kw = dict(max_length=40, token_budget=64, fingerprint_id="fp")
    count, _, mode, ckpts = covariance.accumulate(model, tok, TEXTS, groups=[[0], [1, 2]], keep=False,
                                                  checkpoint=tmp_path / "ck", **kw)
    assert mode == "fp32-exact"
    widths = covariance.layer_widths(model)
    covariance.write_from_checkpoints(tmp_path / "a.safetensors", ckpts, widths, count, {"m": 1}, "float32")
    sums, n = covariance.collect(model, tok, TEXTS, **kw)
    covariance.save(tmp_path / "b.safetensors", covariance.finalize(sums, n), n, {"m": 1}, "float32")
    a, meta_a = covariance.load(tmp_path / "a.safetensors", dtype=torch.float32)
    b, meta_b = covariance.load(tmp_path / "b.safetensors", dtype=torch.float32)
    assert meta_a == meta_b and meta_a["n_tokens"] == count == n
    for layer in range(3):
        assert torch.equal(a[layer], b[layer])
    from safetensors.torch import load_file  # a plain safetensors reader agrees
    assert torch.equal(load_file(str(tmp_path / "a.safetensors"))["layer.1"], b[1])


SAVE_RSS = textwrap.dedent("""
    import json, resource, sys, torch
    from kis import covariance
    f, L = {f}, {L}
    covs = [torch.rand(f, f, dtype=torch.float64) for _ in range(L)]  # the sums, already in memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    covariance.save({path!r}, covs, 1000, {{"m": "x"}}, store_dtype="float32")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"extra": after - before}}))
""")


def test_saving_a_cache_holds_about_one_layer_beyond_the_sums(tmp_path):
    """Peak RSS of save() above the sums: at most one layer's converted copy (+ slack), not a copy of the file."""
    import json

    f, L = 2048, 6  # 32 MiB per float64 layer, 16 MiB per float32 layer; the old save() held ~2·L·16 MiB more
    script = SAVE_RSS.format(f=f, L=L, path=str(tmp_path / "c.safetensors"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    extra = json.loads(proc.stdout.strip().splitlines()[-1])["extra"]
    one_layer = f * f * 4
    assert extra <= one_layer + 8 * 2 ** 20, f"save() held {extra / 2 ** 20:.0f} MiB above the sums"
    back, _ = covariance.load(tmp_path / "c.safetensors", layers=[L - 1])
    assert back[L - 1].shape == (f, f)


def test_half_precision_keys_fold_to_the_float64_products_of_the_same_keys():
    """bf16 model: the fast path's sums equal Σ k kᵀ of the same bf16 keys in float64 to fp32 accumulation
    precision (each product of two bf16 numbers is exact in fp32)."""
    from kis import panels

    model, tok = tiny.model("llama", n_layer=2, f=600)
    model = model.to(torch.bfloat16)
    rows = covariance.tokenize(tok, TEXTS, 40)
    ids, mask = covariance.pad(rows, tok.pad_token_id)
    keys = {}
    covariance.forward_keys(model, ids, mask, lambda layer, k: keys.__setitem__(layer, k))
    assert keys[0].dtype == torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = panels.product_mode(torch.bfloat16, device)
    assert mode == ("half-as-fp32" if device == "cpu" else mode)
    assert mode in ("half-fp32acc", "half-tf32", "half-as-fp32")
    n = keys[0].shape[0]
    for layer, k in keys.items():
        p = panels.Panels(k.shape[1], device)
        p.add(k.to(device), mode)
        got = p.full().cpu()
        k64 = k.double()
        ref = k64.T @ k64
        # fp32 accumulation of n exact products: |error| ≤ n·2⁻²⁴·Σ|k_i k_j|
        bound = n * 2.0 ** -24 * (k64.abs().T @ k64.abs())
        assert torch.all((got - ref).abs() <= bound + 1e-300)
        assert torch.linalg.norm(got - ref) / torch.linalg.norm(ref) < 1e-6
    sums, count = covariance.collect(model, tok, TEXTS, max_length=40, token_budget=10_000, device=device)
    assert count == n
    for layer in keys:
        k64 = keys[layer].double()
        assert torch.linalg.norm(sums[layer].cpu() - k64.T @ k64) / torch.linalg.norm(k64.T @ k64) < 1e-6
