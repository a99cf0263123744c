"""Memory plan and resources of the covariance stage: pure arithmetic on a model's shapes, no device needed.

S_l = Σ_t k_t k_tᵀ (f × f, float64) is kept as its upper triangle in row panels (kis.panels): 8·P(f) bytes, with
P(f) = Σ_i r_i·(f − a_i) ≈ f²(1 + r/f)/2 for panels of r rows starting at a_i. The layers are split into groups of
consecutive layers; each group takes one pass over the corpus, whose forward stops after the group's last layer:

    weights + activations(one batch) + Σ_{l ∈ group} 8·P(f_l) + reserve  ≤  device bytes.

activations(one batch) counts what lives at the peak, inside the last hooked block: the forward runs with
use_cache=False (kis.probe.run_until_stop), so no KV cache is held (it would add 2·L·tokens·d_kv·bytes: 12.5 GiB
for one 16,384-token batch of Llama-2-13B).

The groups are filled from the LAST layer backwards (the fewest groups; the first one takes the remainder, so the
partial passes stop as early as possible). C does not depend on the plan: each layer's sums see the same keys in the
same batches in the same order whatever group it is in.

Resources of the SLURM rule (`shape_resources`), from the shapes and the corpus's token count T:
    mem_mb  = 1.25 · max(host_peak, loading) + 1024 MB,  host_peak = weights + 2 GiB (Python, torch) + 8 KB·n_texts
              (texts) + 4 B·T (token ids) + one row block of C (r·f·(8 + store bytes)); loading = weights + 2 GiB
              + the checkpoint read beside them when it is no safetensors file of the run's dtype (load_host_bytes)
    runtime = 10 min + 3 · hours_estimate (the estimate assumes an H100; ×3 covers an A100-class GPU)
    hours_estimate = [2·N_block·(last+1)·T + 2·s·d·(last+1)·T  (forward of each pass, s = mean row length)
                      + 2·T·Σ_l P(f_l)]  / (efficiency · peak FLOP/s of the product dtype)
                     + 24·Σ_l P(f_l)·n_GEMM / (efficiency · memory bandwidth)   (the float64 fold, one per GEMM:
                       n_GEMM = T/TENSOR_CORE_CHUNK + T/token_budget for half keys on tensor cores, else T/token_budget)
`models.<m>.size_gb` only overrides the weight bytes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

GiB = 2 ** 30
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
SHAPES_FILE = Path(__file__).resolve().parents[2] / "resources" / "model_shapes.yaml"

# one NVIDIA H100 SXM 80GB (dense, no sparsity): the published peak rates; EFFICIENCY of them is assumed reached
H100 = {"name": "NVIDIA H100 SXM 80GB", "memory_bytes": 81559 * 2 ** 20, "bandwidth": 3.35e12,
        "flops": {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 66.9e12, "tf32": 494.7e12,
                  "float64": 66.9e12}}
EFFICIENCY = 0.4
EAGER_ATTENTION = {"gptj"}  # families whose transformers attention materialises the score matrix (no SDPA)
RESERVE_BYTES = int(1.5 * GiB)  # CUDA context, allocator slack
RESERVE_FRACTION = 0.05
# tokens per key GEMM on tensor cores (kis.panels): the truncated fp32 accumulation stays below 1e-6 relative
TENSOR_CORE_CHUNK = 256
TOKENS_PER_TEXT = 700  # mean tokens of an English Wikipedia article (GPT-2/Llama tokenizers), before truncation
# seconds of one float64 eigvalsh at n = 4096 on one core: 7.5 s measured in the review of issue 29, 9.2 s
# extrapolated (n³) from n = 2048 on the project's 2-core VM; covariance_diagnostics runs one per layer
EIGH_S_4096 = 10.0


@dataclass(frozen=True)
class Shape:
    family: str
    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    vocab: int
    context: int
    dtype: str = "float32"

    @property
    def fs(self) -> list[int]:
        return [self.d_ff] * self.n_layers


def load_shapes(path: str | Path = SHAPES_FILE) -> dict[str, Shape]:
    """{hub id: Shape} from resources/model_shapes.yaml (published config.json values)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text())
    out = {}
    for name, entry in raw.items():
        try:
            out[name] = Shape(**entry)
        except TypeError as e:
            raise ValueError(f"{path}: entry {name!r}: {e}") from None
    return out


def layer_params(s: Shape) -> int:
    """Parameters of one transformer block, by family (biases and norms included)."""
    d, f, kv = s.d_model, s.d_ff, s.d_model * s.n_kv_heads // s.n_heads
    if s.family == "gpt2":   # c_attn 3d²+3d, c_proj d²+d, c_fc df+f, c_proj fd+d, ln_1, ln_2
        return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    if s.family == "gptj":   # q,k,v,out without bias, fc_in df+f, fc_out fd+d, one ln
        return 4 * d * d + 2 * d * f + f + d + 2 * d
    if s.family == "pythia":  # query_key_value 3d²+3d, dense d²+d, h_to_4h, 4h_to_h, two lns
        return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    if s.family == "llama":  # q, o d²; k, v d·kv; gate, up, down d·f; two RMS norms
        return 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
    if s.family == "qwen":  # as llama, with q, k, v biases (d + 2·kv)
        return 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d + d + 2 * kv
    if s.family == "gemma":  # as llama (heads·head_dim taken as d), four RMS norms (Gemma 2/3; Gemma 3 adds q/k norms)
        return 2 * d * d + 2 * d * kv + 3 * d * f + 4 * d
    raise ValueError(f"no parameter formula for family {s.family!r}")


def count_params(s: Shape) -> int:
    """All parameters: embeddings (+ untied unembedding, GPT-2's positions) + blocks + final norm."""
    d, v = s.d_model, s.vocab
    if s.family == "gpt2":
        outer = v * d + s.context * d + 2 * d  # tied lm_head
    elif s.family == "gptj":
        outer = 2 * v * d + v + 2 * d  # lm_head has a bias
    elif s.family == "pythia":
        outer = 2 * v * d + 2 * d
    elif s.family == "gemma":
        outer = v * d + d  # tied lm_head
    else:
        outer = 2 * v * d + d
    return outer + s.n_layers * layer_params(s)


# ---------------------------------------------------------------- the packed accumulator

def panel_rows(f: int) -> int:
    """Rows per panel: a function of f alone, so the accumulation order never depends on the plan."""
    if f >= 8192:
        return 2048
    if f >= 2048:
        return 1024
    if f >= 512:
        return 256
    return f


def panel_bounds(f: int) -> list[tuple[int, int]]:
    """(a_i, b_i): panel i holds S[a_i:b_i, a_i:]."""
    r = panel_rows(f)
    return [(a, min(a + r, f)) for a in range(0, f, r)]


def packed_elements(f: int) -> int:
    """P(f) = Σ_i r_i·(f − a_i): the stored upper-triangle elements."""
    return sum((b - a) * (f - a) for a, b in panel_bounds(f))


def accumulator_bytes(f: int) -> int:
    return 8 * packed_elements(f)


# ---------------------------------------------------------------- the plan

def activation_bytes(s: Shape, token_budget: int, seq: int, act_dtype: str | None = None) -> int:
    """Device memory of one batch's forward, stopped inside the last hooked block (no logits, no KV cache), plus
    the key products. Per token, in the model's dtype: 16 d-vectors (residual stream, embeddings, norm outputs, q, k,
    v, their rotary copies, attention output; at most ~10 live at once) and 4 f-vectors (the MLP's activation,
    up projection and their product, the key, and the attended keys' copy in the hook), plus the keys in float32 (the
    operand where half keys are cast); then one float32 panel product r·f, the attention mask (rows·seq² in the
    model's dtype) and, for eager attention, the fp32 scores and probabilities of one layer (rows·heads·seq²·8)."""
    act = DTYPE_BYTES[act_dtype or s.dtype]
    f, r = s.d_ff, panel_rows(s.d_ff)
    per_token = 16 * s.d_model * act + 4 * f * act + 4 * f
    rows = max(1, token_budget // max(seq, 1))
    attention = rows * seq * seq * act
    if s.family in EAGER_ATTENTION:
        attention += rows * s.n_heads * seq * seq * 8
    return token_budget * per_token + 4 * r * f + attention


def kv_cache_bytes(s: Shape, tokens: int, act_dtype: str | None = None) -> int:
    """What a forward with use_cache=True would keep: keys and values of every layer, 2·L·tokens·d_kv·bytes."""
    return 2 * s.n_layers * tokens * (s.d_model * s.n_kv_heads // s.n_heads) * DTYPE_BYTES[act_dtype or s.dtype]


@dataclass
class Plan:
    groups: list[list[int]]
    device_budget: int
    weight_bytes: int
    activation_bytes: int
    reserve_bytes: int
    group_bytes: list[int]
    device_peak: int
    host_peak: int
    checkpoint_bytes: int
    cache_bytes: int
    forward_layers: int  # Σ over passes of the layers each forward runs
    notes: list[str] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return len(self.groups)

    def summary(self) -> dict:
        out = asdict(self)
        out["passes"] = self.passes
        out["groups"] = [[g[0], g[-1]] for g in self.groups]  # first and last layer of each group
        return out

    def describe(self) -> str:
        spans = ", ".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else f"{g[0]}" for g in self.groups)
        return (f"{self.passes} pass(es), layer groups [{spans}]; device peak {self.device_peak / GiB:.1f} GiB of "
                f"{self.device_budget / GiB:.1f} GiB (weights {self.weight_bytes / GiB:.1f}, one batch "
                f"{self.activation_bytes / GiB:.1f}, sums {max(self.group_bytes) / GiB:.1f}); host peak "
                f"{self.host_peak / GiB:.1f} GiB; checkpoint {self.checkpoint_bytes / GiB:.1f} GiB; "
                f"cache {self.cache_bytes / GiB:.1f} GiB")


def make_plan(fs: list[int], *, device_bytes: int, weight_bytes: int, activation: int, store_dtype: str = "float64",
              n_texts: int = 0, n_tokens: int = 0, reserve: int | None = None) -> Plan:
    """Split layers (their key sizes `fs`) into consecutive groups whose float64 sums fit beside weights + one batch.

    Groups are packed from the last layer backwards, so every group but the first is full. Raises ValueError
    naming the numbers when even one layer does not fit."""
    reserve = RESERVE_BYTES + int(RESERVE_FRACTION * device_bytes) if reserve is None else reserve
    free = device_bytes - weight_bytes - activation - reserve
    sizes = [accumulator_bytes(f) for f in fs]
    if free < max(sizes):
        raise ValueError(
            f"covariance plan: one layer's float64 sums ({max(sizes) / GiB:.2f} GiB) do not fit: device "
            f"{device_bytes / GiB:.1f} GiB − weights {weight_bytes / GiB:.1f} − one batch {activation / GiB:.2f} − "
            f"reserve {reserve / GiB:.1f} leaves {free / GiB:.2f} GiB. Lower covariance.token_budget or use a larger GPU.")
    groups, current, used = [], [], 0
    for layer in reversed(range(len(fs))):
        if current and used + sizes[layer] > free:
            groups.append(current[::-1])
            current, used = [], 0
        current.append(layer)
        used += sizes[layer]
    groups.append(current[::-1])
    groups.reverse()
    group_bytes = [sum(sizes[i] for i in g) for g in groups]
    store = DTYPE_BYTES[store_dtype]
    widest = max(fs)
    row_block = panel_rows(widest) * widest * (8 + store)
    host = weight_bytes + 2 * GiB + 8192 * n_texts + 4 * n_tokens + row_block
    return Plan(groups=groups, device_budget=int(device_bytes), weight_bytes=int(weight_bytes),
                activation_bytes=int(activation), reserve_bytes=int(reserve), group_bytes=group_bytes,
                device_peak=int(weight_bytes + activation + reserve + max(group_bytes)), host_peak=int(host),
                checkpoint_bytes=max(group_bytes), cache_bytes=sum(f * f * store for f in fs),
                forward_layers=sum(g[-1] + 1 for g in groups))


def plan_for_shape(s: Shape, *, device_bytes: int, token_budget: int, seq: int, dtype: str | None = None,
                   store_dtype: str = "float32", n_texts: int = 0, n_tokens: int = 0,
                   weight_bytes: int | None = None) -> Plan:
    dtype = dtype or s.dtype
    weights = count_params(s) * DTYPE_BYTES[dtype] if weight_bytes is None else weight_bytes
    return make_plan(s.fs, device_bytes=device_bytes, weight_bytes=weights,
                     activation=activation_bytes(s, token_budget, seq, dtype), store_dtype=store_dtype,
                     n_texts=n_texts, n_tokens=n_tokens)


def product_dtype(model_dtype: str) -> str:
    """The arithmetic of the key products: half keys on tensor cores (fp32 accumulation), else the model's dtype."""
    return model_dtype if model_dtype in ("bfloat16", "float16", "float64") else "float32"


def estimate_seconds(s: Shape, plan: Plan, *, n_tokens: int, seq: int, token_budget: int, dtype: str | None = None,
                     gpu: dict = H100, efficiency: float = EFFICIENCY) -> dict:
    """Seconds of the forwards, the key products and the float64 fold (formula in the module docstring)."""
    dtype = dtype or s.dtype
    rate = gpu["flops"][product_dtype(dtype)] * efficiency
    mean_row = min(seq, TOKENS_PER_TEXT)
    fwd = sum((2 * layer_params(s) + 2 * mean_row * s.d_model) * (g[-1] + 1) * n_tokens for g in plan.groups)
    packed = sum(packed_elements(f) for f in s.fs)
    products = 2 * packed * n_tokens
    folds = math.ceil(n_tokens / token_budget)
    if product_dtype(dtype) in ("bfloat16", "float16"):  # tensor cores: one GEMM per chunk (kis.panels)
        folds += math.ceil(n_tokens / TENSOR_CORE_CHUNK)
    fold_bytes = 24 * packed * folds
    out = {"forward_s": fwd / rate, "products_s": products / rate,
           "fold_s": fold_bytes / (gpu["bandwidth"] * efficiency), "flops": fwd + products,
           "rate_flops": rate}
    out["total_s"] = out["forward_s"] + out["products_s"] + out["fold_s"]
    return out


def corpus_tokens(n_texts: int, seq: int) -> int:
    """Expected tokens of a corpus sample: n_texts · min(row length, TOKENS_PER_TEXT)."""
    return int(n_texts * min(seq, TOKENS_PER_TEXT))


def covariance_seq(context: int, max_length: int | None, token_budget: int) -> int:
    """Tokens kept per corpus text (kis.models.covariance_max_length): max_length, never beyond the context; when
    None, min(context, the configured token budget) as the reference code did."""
    return min(int(max_length), context) if max_length else min(context, token_budget)


def load_host_bytes(weight_bytes: int, checkpoint_gb: float | None = None) -> int:
    """Host memory while a job loads its model (before it moves to the GPU): the model's weights + Python and torch
    (2 GiB), + the checkpoint's state dict read beside them when its files are not memory-mapped safetensors in the
    run's dtype (models.<m>.checkpoint_gb: GPT-J-6B's main branch is one 24.2 GB float32 pytorch_model.bin)."""
    return int(weight_bytes + 2 * GiB + (checkpoint_gb or 0) * 1e9)


def diagnostics_resources(n_layers: int, d_ff: int) -> dict:
    """{"mem_mb", "runtime"} of covariance_diagnostics: one float64 layer and its eigendecomposition workspace
    (~4 f²·8 bytes) + 2 GiB; runtime 10 min + 1.5 × the single-core time of L float64 eigvalsh (cubic in f from
    EIGH_S_4096), so the job finishes even where --max-threads leaves it one core (the rule asks for 8 threads)."""
    single_s = n_layers * EIGH_S_4096 * (d_ff / 4096) ** 3
    return {"mem_mb": int(4 * d_ff ** 2 * 8 / 2 ** 20 + 2048), "runtime": int(10 + 1.5 * single_s / 60)}


def shape_resources(s: Shape, *, dtype: str, n_texts: int, max_length: int | None, token_budget: int,
                    store_dtype: str, size_gb: float | None = None, checkpoint_gb: float | None = None) -> dict:
    """{"mem_mb", "runtime", "load_mb", "diagnostics_mem_mb", "diagnostics_runtime"} of a model's covariance jobs on
    one H100 (formula in the module docstring); mem_mb covers the larger of loading and the pass."""
    weights = int(size_gb * 1e9) if size_gb else count_params(s) * DTYPE_BYTES[dtype]
    seq = covariance_seq(s.context, max_length, token_budget)
    n_tokens = corpus_tokens(n_texts, seq)
    the_plan = make_plan(s.fs, device_bytes=H100["memory_bytes"], weight_bytes=weights,
                         activation=activation_bytes(s, token_budget, seq, dtype), store_dtype=store_dtype,
                         n_texts=n_texts, n_tokens=n_tokens)
    seconds = estimate_seconds(s, the_plan, n_tokens=n_tokens, seq=seq, token_budget=token_budget,
                               dtype=dtype)["total_s"]
    load = load_host_bytes(weights, checkpoint_gb)
    diag = diagnostics_resources(s.n_layers, s.d_ff)
    return {"mem_mb": int(1.25 * max(the_plan.host_peak, load) / 2 ** 20 + 1024),
            "runtime": int(10 + 3 * seconds / 60), "load_mb": int(1.25 * load / 2 ** 20 + 1024),
            "diagnostics_mem_mb": diag["mem_mb"], "diagnostics_runtime": diag["runtime"]}


def covariance_resources(*, n_layers: int, d_model: int, d_ff: int, n_params: int, dtype: str, family: str,
                         n_texts: int, max_length: int | None, token_budget: int, store_dtype: str,
                         size_gb: float | None = None, context: int = 2048, checkpoint_gb: float | None = None) -> dict:
    """shape_resources from a prepared model's manifest (heads guessed as d/128; size_gb, else the manifest's
    parameter count, gives the weights)."""
    s = Shape(family=family, n_layers=n_layers, d_model=d_model, d_ff=d_ff, n_heads=max(1, d_model // 128),
              n_kv_heads=max(1, d_model // 128), vocab=0, context=context, dtype=dtype)
    size_gb = size_gb or n_params * DTYPE_BYTES[dtype] / 1e9
    return shape_resources(s, dtype=dtype, n_texts=n_texts, max_length=max_length, token_budget=token_budget,
                           store_dtype=store_dtype, size_gb=size_gb, checkpoint_gb=checkpoint_gb)
