"""The architecture registry and model loading (hub id / local dir / GGUF), with tiny random models."""
import json

import pytest
import torch

import tiny
from kis import models

# the FFN output projection as each family's modelling code names it, independently of the registry
EXPECTED = {"gpt2": ("gpt2", "transformer.h.1.mlp.c_proj"), "gptj": ("gptj", "transformer.h.1.mlp.fc_out"),
            "gpt_neox": ("pythia", "gpt_neox.layers.1.mlp.dense_4h_to_h"),
            "llama": ("llama", "model.layers.1.mlp.down_proj")}


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_registry_finds_the_output_projection(family):
    model, tok = tiny.model(family)
    fam, name = EXPECTED[family]
    assert models.architecture(model).family == fam
    assert models.ffn_out_name(model, 1) == name
    assert models.ffn_out(model, 1) is dict(model.named_modules())[name]
    assert models.n_layers(model) == 3
    assert models.dims(model) == (32, 64)


@pytest.mark.parametrize("family", tiny.FAMILIES)
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
    for family in tiny.FAMILIES:
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
    manifest = models.prepare({"local_dir": str(src)}, tmp_path / "prepared")
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
    manifest = models.prepare({"hub_id": "openai-community/gpt2", "revision": "abc123"}, tmp_path / "p")
    assert seen == [("openai-community/gpt2", "abc123", False)]
    assert manifest["location"] == "openai-community/gpt2" and manifest["revision"] == "abc123"


def test_model_entry_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        models.source_of({"hub_id": "gpt2", "local_dir": "/x"})
    with pytest.raises(ValueError, match="exactly one"):
        models.source_of({"dtype": "float32"})


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.prepare({"local_dir": str(tmp_path / "nope")}, tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="no file"):
        models.resolve_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        models.resolve_gguf("pypi:no_such_package_xyz/model.gguf")
