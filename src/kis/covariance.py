"""C_l = (1/T) Σ_t k_t k_tᵀ for every layer l, in as few passes over the corpus as the device memory allows.

A pre-hook on each FFN output projection sees its input, the key k (f values), for every token. Pad tokens
are dropped. A memory plan (kis.plan) splits the layers into groups whose float64 sums fit beside the weights and
one batch; each group takes one pass whose forward stops after its last layer (one group: one pass for all layers;
the reference code ran one pass per layer, L times the work). Products: exact fp32 (TF32 off) for fp32 models,
fp16/bf16 keys on tensor cores with fp32 accumulation (kis.panels), folded into float64 upper-triangle panels,
checkpointed per group atomically so a killed job resumes where it stopped. The cache is written row block by row
block (kis.tensorfile): host memory never holds more than one layer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from . import models, panels, plan
from .io import atomic_path, first_difference
from .probe import exact_fp32, key_hooks, length_order, pad, pad_id, run_until_stop
from .tensorfile import StreamWriter

log = logging.getLogger(__name__)
PROGRESS_S, PROGRESS_STEP = 30.0, 0.05  # covariance progress: a log line at most every 30 s or 5 % of a pass


def tokenize(tokenizer, texts: list[str], max_length: int, chunk: int = 1000) -> list[np.ndarray]:
    """Token ids of each non-empty text (int32 arrays, 4 bytes a token), tokenized `chunk` texts at a time."""
    rows = []
    for i in range(0, len(texts), chunk):
        enc = tokenizer(list(texts[i:i + chunk]), truncation=True, max_length=max_length, add_special_tokens=True)
        rows.extend(np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"] if len(ids) > 0)
    return rows


def batches(lengths, order, token_budget: int):
    """Contiguous slices of `order` whose padded size (rows × longest row) fits in token_budget."""
    start = 0
    while start < len(order):
        longest = lengths[order[start]]  # sorted descending: the first row is the longest
        size = max(1, token_budget // max(longest, 1))
        yield order[start:start + size]
        start += size


def forward_keys(model, ids, mask, on_key, layers=None):
    """One forward that hands the attended (non-pad) keys of each layer, as (n, f), to on_key."""
    flat = mask.reshape(-1).bool()

    def keep(layer, k):
        on_key(layer, k.reshape(-1, k.shape[-1])[flat])

    with key_hooks(model, keep, layers), torch.no_grad():
        run_until_stop(model, ids, mask)


def fingerprint(**items) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_signature(model, manifest: dict, ids, texts, *, max_length: int, products: str) -> dict:
    """Everything that changes C, one field each — a checkpoint resumes only when every field agrees:
    the model (where it was loaded from, revision, dtype, and the weights as loaded: models.weights_id), the texts
    themselves (ids and content: corpus.text_hash), the truncation length, and the product mode (exact fp32 or
    half-precision products, kis.panels). The token budget and the layer plan are not in it: they change how the
    sums are grouped, not C (tests/test_covariance.py: a smaller budget after a kill resumes to the same C)."""
    from .corpus import text_hash

    return {"model": manifest["location"], "revision": manifest.get("revision"), "dtype": manifest["dtype"],
            "weights": models.weights_id(model), "texts": text_hash(ids, texts), "max_length": int(max_length),
            "products": products}


# ---------------------------------------------------------------- the memory plan of a loaded model

def layer_widths(model) -> list[int]:
    """f_l of every layer: the key size, the side of C_l."""
    return [int(models.ffn_weight(model, layer).shape[1]) for layer in range(models.n_layers(model))]


def weight_bytes(model) -> int:
    seen, n = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            n += t.numel() * t.element_size()
    return n


def model_dtype(model) -> str:
    dtype = next(model.parameters()).dtype
    return next(k for k, v in models.DTYPES.items() if v == dtype)


def model_shape(model) -> plan.Shape:
    cfg = model.config
    d, f = models.dims(model)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None) or 1
    try:
        ctx = models.context_length(model)
    except ValueError:
        ctx = 0
    return plan.Shape(family=models.architecture(model).family, n_layers=models.n_layers(model), d_model=d, d_ff=f,
                      n_heads=int(heads), n_kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
                      vocab=int(cfg.vocab_size), context=ctx, dtype=model_dtype(model))


def plan_model(model, *, token_budget: int, seq: int, device_bytes: int, store_dtype: str = "float64",
               n_texts: int = 0, n_tokens: int = 0, reserve: int | None = None) -> plan.Plan:
    """kis.plan.make_plan for a loaded model: its own weights, key sizes and one batch of token_budget tokens."""
    return plan.make_plan(layer_widths(model), device_bytes=device_bytes, weight_bytes=weight_bytes(model),
                          activation=plan.activation_bytes(model_shape(model), token_budget, seq),
                          store_dtype=store_dtype, n_texts=n_texts, n_tokens=n_tokens, reserve=reserve)


def device_budget(device, memory_mib: int | None = None, model=None) -> tuple[int, str]:
    """(bytes the plan may use on `device`, where that number comes from; memory_mib 0 or None: what is free); the
    model is already loaded there."""
    if memory_mib:
        return int(memory_mib) * 2**20, "covariance.device_memory_mib"
    dev = torch.device(device)
    resident = weight_bytes(model) if model is not None else 0
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free + torch.cuda.memory_reserved(dev)), "free CUDA memory + what torch holds (the weights)"
    try:
        meminfo = Path("/proc/meminfo").read_text()
        avail = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable"))) * 1024
    except (OSError, StopIteration):
        return 1 << 50, "unbounded (no /proc/meminfo on this CPU host)"
    return avail + resident, "available host memory + the loaded weights"


# ---------------------------------------------------------------- per-group checkpoints

def intact(path) -> str | None:
    """None when a safetensors file holds every byte its header promises, else what is wrong (e.g. truncated)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 + n:
                return f"{size} bytes, shorter than its {n}-byte header"
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        return f"unreadable header ({e})"
    if size < 8 + n + end:
        return f"truncated: {size} bytes of {8 + n + end}"
    return None


class Checkpoints:
    """A directory of per-group checkpoints: layers-<a>-<b>.safetensors holds the float64 panels s.<layer>.<i> of
    layers a..b, with the fingerprint, texts done and tokens counted in its metadata. A finished group's file
    (done = every text) stays until the cache is written. Writes are atomic (unique temporary names)."""

    def __init__(self, directory, fingerprint_id: str, every: int | None = None, minutes: float | None = None,
                 signature: dict | None = None):
        self.dir = Path(directory)
        if self.dir.is_file():  # a single-file checkpoint of an earlier version: it cannot be resumed
            log.warning("checkpoint %s is a file from an earlier version; removing it and starting over", self.dir)
            self.dir.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fp, self.every, self.minutes, self.signature = fingerprint_id, every, minutes, signature
        self.last_time, self.last_write_s, self.write_s_total = time.monotonic(), 0.0, 0.0

    def path(self, layers) -> Path:
        return self.dir / f"layers-{layers[0]}-{layers[-1]}.safetensors"

    def saved(self) -> dict[tuple, dict]:
        """{layers: metadata} of the checkpoints of this fingerprint; others are removed (with a warning)."""
        from safetensors import safe_open

        out = {}
        for path in sorted(self.dir.glob("layers-*.safetensors")):
            damage = intact(path)
            if damage is None:
                try:
                    with safe_open(str(path), framework="pt") as fh:
                        meta = {k: json.loads(v) for k, v in (fh.metadata() or {}).items()}
                    meta["layers"], meta["count"], meta["done"]  # noqa: B018 — the fields a resume needs
                except Exception as e:  # noqa: BLE001 — any unreadable file is discarded, named in the warning
                    damage = f"{type(e).__name__}: {e}"
            if damage is not None:
                log.warning("checkpoint %s is damaged (%s); discarding it: its layer group starts over", path, damage)
                path.unlink()
                continue
            if meta.get("fingerprint") != self.fp:
                diff = first_difference(meta.get("signature") or {}, self.signature or {})
                log.warning("checkpoint %s belongs to other settings (fingerprint %s != %s%s); starting over",
                            path, meta.get("fingerprint"), self.fp, f": field {diff}" if diff else "")
                path.unlink()
                continue
            out[tuple(meta["layers"])] = meta
        return out

    def load(self, layers, widths, device) -> dict[int, panels.Panels]:
        """The panels of `layers` read straight onto `device` (no zero sums allocated first)."""
        from safetensors import safe_open

        out = {}
        with safe_open(str(self.path(layers)), framework="pt", device=str(device)) as fh:
            for layer in layers:
                n = len(plan.panel_bounds(widths[layer]))
                out[layer] = panels.Panels(widths[layer], tensors=[fh.get_tensor(f"s.{layer}.{i}") for i in range(n)])
        return out

    def due(self, batch_no: int) -> bool:
        """Every `every` batches, or every `minutes` but never sooner than 20× the last write (I/O < 5 %)."""
        if self.every and batch_no % self.every == 0:
            return True
        if self.minutes:
            return time.monotonic() - self.last_time >= max(60 * self.minutes, 20 * self.last_write_s)
        return False

    def save(self, layers, sums: dict[int, panels.Panels], count: int, done: int) -> None:
        specs = {f"s.{layer}.{i}": (torch.float64, tuple(t.shape))
                 for layer in layers for i, t in enumerate(sums[layer].tensors)}
        meta = {"fingerprint": self.fp, "layers": list(layers), "count": int(count), "done": int(done),
                "signature": self.signature}
        t0 = time.perf_counter()
        with atomic_path(self.path(layers)) as tmp:
            writer = StreamWriter(tmp, specs)
            try:
                for layer in layers:
                    for i, t in enumerate(sums[layer].tensors):
                        writer.write(f"s.{layer}.{i}", t)  # one panel on the host at a time
                writer.close({k: json.dumps(v) for k, v in meta.items()})
            except BaseException:
                writer.abort()
                raise
        self.last_write_s = time.perf_counter() - t0
        self.write_s_total += self.last_write_s
        self.last_time = time.monotonic()


# ---------------------------------------------------------------- the passes

def accumulate(model, tokenizer, texts: list[str], *, max_length: int, token_budget: int = 4096, groups=None,
               checkpoint: str | Path | None = None, checkpoint_every: int = 0,
               checkpoint_minutes: float | None = None, fingerprint_id: str = "", progress=None,
               device: str | torch.device = "cpu", keep: bool = True, signature: dict | None = None):
    """One pass over the corpus per layer group: S_l = Σ_t k_t k_tᵀ (float64 panels) for every layer, and T.

    Returns (T, {layer: Panels} if keep else {}, product mode, Checkpoints or None). The groups run one after
    another; each forward stops after its group's last layer. With `checkpoint` (a directory), each group is saved
    every `checkpoint_every` batches (0: not by count) and/or `checkpoint_minutes`, and once finished; a rerun
    resumes from the saved groups whose fingerprint matches (checkpoint_signature: texts, max_length, model,
    products; the token budget and the plan are not, so an OOM retry with a smaller budget or another node's plan
    resumes too). `signature`, when
    given, is the dict the fingerprint was made from: a refused checkpoint's warning names the field that differs."""
    L = models.n_layers(model)
    widths = layer_widths(model)
    rows = tokenize(tokenizer, texts, max_length)
    if not rows:
        raise ValueError("covariance corpus is empty: no text gave any token")
    lengths = np.array([len(r) for r in rows])
    order = length_order(lengths)
    pid = pad_id(tokenizer)
    groups = [list(range(L))] if groups is None else [list(g) for g in groups]
    if sorted(i for g in groups for i in g) != list(range(L)):
        raise ValueError(f"layer groups {groups} must cover layers 0..{L - 1} exactly once")
    mode = panels.product_mode(next(model.parameters()).dtype, device)
    ckpts = (Checkpoints(checkpoint, fingerprint_id, checkpoint_every, checkpoint_minutes, signature=signature)
             if checkpoint else None)
    saved = ckpts.saved() if ckpts else {}
    finished = {g: m for g, m in saved.items() if m["done"] >= len(rows)}
    partial = [list(g) for g, m in saved.items() if m["done"] < len(rows)]
    covered = {i for g in saved for i in g}
    todo = partial + [r for r in ([i for i in g if i not in covered] for g in groups) if r]
    counts = {m["count"] for m in finished.values()}
    kept: dict[int, panels.Panels] = {}
    if finished:
        log.info("checkpoint: layer groups %s already finished", [list(g) for g in finished])
    total, run_tokens = int(lengths.sum()), 0
    with exact_fp32():
        for number, layers in enumerate(todo):
            if tuple(layers) in saved:
                sums = ckpts.load(layers, widths, device)
                count, done = saved[tuple(layers)]["count"], saved[tuple(layers)]["done"]
                log.info("resuming layers %d-%d from checkpoint: %d of %d texts, %d tokens done",
                         layers[0], layers[-1], done, len(rows), count)
            else:
                sums = {i: panels.Panels(widths[i], device) for i in layers}
                count, done = 0, 0

            def add(layer, k, sums=sums):
                sums[layer].add(k, mode)

            start, tokens_run, batch_no = time.perf_counter(), 0, 0  # this process's tokens and time only
            for batch in batches(lengths, order[done:], token_budget):
                ids, mask = pad([rows[i] for i in batch], pid)
                forward_keys(model, ids.to(device), mask.to(device), add, layers=layers)
                n = int(mask.sum())
                count, done, tokens_run, batch_no = count + n, done + len(batch), tokens_run + n, batch_no + 1
                if progress is not None:
                    progress(done=done, n_texts=len(rows), tokens=count, total_tokens=total,
                             tokens_per_s=tokens_run / max(time.perf_counter() - start, 1e-9),
                             run_tokens=run_tokens + tokens_run,
                             group=number, n_groups=len(todo), layers=(layers[0], layers[-1]))
                if ckpts is not None and done < len(rows) and ckpts.due(batch_no):
                    ckpts.save(layers, sums, count, done)
            run_tokens += tokens_run
            counts.add(count)
            if len(counts) != 1:
                raise RuntimeError(f"layer groups counted different token totals {sorted(counts)}: the corpus or the "
                                   "tokenizer changed between passes")
            if ckpts is not None:
                ckpts.save(layers, sums, count, done)
                finished[tuple(layers)] = {"count": count, "done": done}
            if keep:
                kept.update(sums)
            del sums
    if keep:
        for layers in finished:
            if not set(layers) <= set(kept):
                kept.update(ckpts.load(list(layers), widths, device))
    return counts.pop(), kept, mode, ckpts


def collect(model, tokenizer, texts: list[str], *, max_length: int, token_budget: int = 4096,
            checkpoint: str | Path | None = None, checkpoint_every: int = 0,
            checkpoint_minutes: float | None = None, fingerprint_id: str = "", progress=None,
            device: str | torch.device = "cpu", groups=None, signature: dict | None = None
            ) -> tuple[list[torch.Tensor], int]:
    """Running sums S_l = Σ_t k_t k_tᵀ (fp64, full f × f, on `device`) over all attended tokens, and T.

    C_l = S_l / T. `groups` (lists of consecutive layers, e.g. plan_model(...).groups) only changes how many passes
    run: S is bit-identical for any grouping. Checkpoints as in `accumulate`."""
    count, kept, _, _ = accumulate(model, tokenizer, texts, max_length=max_length, token_budget=token_budget,
                                   groups=groups, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                   checkpoint_minutes=checkpoint_minutes, fingerprint_id=fingerprint_id,
                                   progress=progress, device=device, keep=True, signature=signature)
    return [kept[layer].full() for layer in range(models.n_layers(model))], count


def finalize(sums: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """C_l = S_l / T on the host (S is exactly symmetric: its lower triangle mirrors the upper one)."""
    return [(s / count).cpu() for s in sums]


# ---------------------------------------------------------------- the cache file

def _cache_meta(metadata: dict, n_layers: int, count: int, store_dtype: str) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in {**metadata, "n_layers": n_layers, "n_tokens": count,
                                          "store_dtype": store_dtype}.items()}


def _write_cache(path, widths: list[int], count: int, metadata: dict, store_dtype: str, layer_rows) -> None:
    """One safetensors file (layer.<l>: C_l, count) written row block by row block: layer_rows(l) yields (row, C
    rows) pieces. Atomic; host memory holds one piece."""
    dtype = models.DTYPES[store_dtype]
    specs = {f"layer.{layer}": (dtype, (f, f)) for layer, f in enumerate(widths)}
    specs["count"] = (torch.int64, ())
    with atomic_path(path) as tmp:
        writer = StreamWriter(tmp, specs)
        try:
            for layer in range(len(widths)):
                for row, block in layer_rows(layer):
                    writer.write(f"layer.{layer}", block.to(dtype), row=row)
            writer.write("count", torch.tensor(count, dtype=torch.int64))
            writer.close(_cache_meta(metadata, len(widths), count, store_dtype))
        except BaseException:
            writer.abort()
            raise


def save(path: str | Path, covs: list[torch.Tensor], count: int, metadata: dict, store_dtype: str = "float64"):
    """One safetensors file: layer.<l> tensors + count, with string metadata. Written atomically, one layer at a
    time (host memory: one converted layer beyond `covs`)."""
    _write_cache(path, [int(c.shape[0]) for c in covs], count, metadata, store_dtype,
                 lambda layer: [(0, covs[layer])])


def write_from_checkpoints(path, ckpts: Checkpoints, widths: list[int], count: int, metadata: dict,
                           store_dtype: str, device="cpu") -> None:
    """The cache from finished group checkpoints, layer by layer, row block by row block: C = S / T."""
    saved = ckpts.saved()
    group_of = {i: list(g) for g in saved for i in g}

    def layer_rows(layer):
        sums = _load_layer(ckpts, group_of[layer], layer, widths[layer], device)  # this layer's panels only
        for i, (a, _b) in enumerate(sums.bounds):
            yield a, sums.row_block(i) / count

    _write_cache(path, widths, count, metadata, store_dtype, layer_rows)


def _load_layer(ckpts: Checkpoints, layers, layer: int, f: int, device) -> panels.Panels:
    from safetensors import safe_open

    with safe_open(str(ckpts.path(layers)), framework="pt", device=str(device)) as fh:
        return panels.Panels(f, tensors=[fh.get_tensor(f"s.{layer}.{i}") for i in range(len(plan.panel_bounds(f)))])


def load(path: str | Path, layers=None, dtype=torch.float64) -> tuple[dict[int, torch.Tensor], dict]:
    """({layer: C}, metadata) from a cache written by `save`; only the layers asked for are read."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = {k: json.loads(v) for k, v in (fh.metadata() or {}).items()}
        wanted = range(int(meta["n_layers"])) if layers is None else layers
        for layer in wanted:
            out[int(layer)] = fh.get_tensor(f"layer.{layer}").to(dtype)
    return out, meta


def iter_layers(path: str | Path, dtype=torch.float64):
    """(layer, C_l) of a cache, one layer in memory at a time."""
    _, meta = load(path, layers=[])
    for layer in range(int(meta["n_layers"])):
        yield layer, load(path, layers=[layer], dtype=dtype)[0][layer]


def diagnostics(covs, condition_warn: float = 1e8, n_tokens: int | None = None):
    """Per-layer spectrum summary of C: condition number, smallest/largest eigenvalue, numerical rank.

    `covs`: a list, a {layer: C} dict, or an iterable of (layer, C) pairs (e.g. iter_layers: one layer at a time).
    n_tokens: the T of C = (1/T) Σ k kᵀ. rank(C) ≤ T, so the reported rank is at most T (rounding in the products
    lifts would-be zero eigenvalues above the float64 tolerance), and C with T < f is singular by construction."""
    import pandas as pd

    items = covs.items() if isinstance(covs, dict) else enumerate(covs) if isinstance(covs, list) else covs
    rows = []
    for layer, c in items:
        ev = torch.linalg.eigvalsh(c.to(torch.float64)).numpy()
        del c
        lo, hi = float(ev[0]), float(ev[-1])
        tol = hi * len(ev) * np.finfo(np.float64).eps
        cond = hi / lo if lo > 0 else float("inf")
        rows.append({"layer": int(layer), "f": len(ev), "trace": float(ev.sum()), "eig_min": lo, "eig_max": hi,
                     "condition_number": cond, "rank": min(int((ev > tol).sum()), n_tokens or len(ev)),
                     "singular": bool(lo <= tol or (n_tokens or len(ev)) < len(ev)),
                     "ill_conditioned": bool(not cond < condition_warn)})
    return pd.DataFrame(rows)


def run_rule(*, manifest, texts, cov, max_length, store_dtype, checkpoint_every, checkpoint_minutes, device_memory_mib,
             token_budget, batch_tokens, checkpoint=None, device="cpu", logger=None):
    """Rule `covariance`: model + corpus sample → cache file `cov`, through a memory plan of layer groups (logged and
    recorded in the cache metadata) with per-group checkpoints in the directory `checkpoint` (default:
    `<cov>.checkpoint` beside the cache, so it is no param and never reruns anything), written every
    `checkpoint_every` batches (0: by time only) and at most `checkpoint_minutes` apart. `device_memory_mib` caps the
    device memory the plan may use (0: the GPU's free memory). Texts are truncated to `max_length`, or, when that is
    None, by the reference code's rule min(context, batch_tokens) (kis.models.covariance_max_length; batch_tokens is
    the configured token budget, never a retry's halved one)."""
    import shutil

    import pandas as pd

    from .io import read_parquet_metadata

    logger = logger or log
    model, tok, man = models.load_prepared(manifest, device=device)
    frame = pd.read_parquet(texts)
    corpus_meta = read_parquet_metadata(texts)
    setting = max_length
    max_length = models.covariance_max_length(model, setting, batch_tokens=batch_tokens)
    if setting is None:
        logger.info("max_length not set: truncating each text to %d tokens (min(context %d, token budget %s), the "
                    "reference code's rule)", max_length, models.context_length(model), batch_tokens)
    signature = checkpoint_signature(model, man, frame.id.tolist(), frame.text.tolist(), max_length=max_length,
                                     products=panels.product_mode(next(model.parameters()).dtype, device))
    fp = fingerprint(**signature)
    budget, source = device_budget(device, device_memory_mib, model)
    the_plan = plan_model(model, token_budget=token_budget, seq=max_length, device_bytes=budget,
                          store_dtype=store_dtype, n_texts=len(frame),
                          n_tokens=plan.corpus_tokens(len(frame), max_length))
    logger.info("covariance plan on %s (budget from %s): %s", device, source, the_plan.describe())
    state = {"run_tokens": 0, "last_t": 0.0, "last_frac": -1.0, "group": None}

    def progress(done, n_texts, tokens, total_tokens, tokens_per_s, group, n_groups, layers, run_tokens=0, **_):
        # a log line at most every PROGRESS_S seconds or PROGRESS_STEP of a pass, and at each pass's end
        state["run_tokens"] = run_tokens
        now, frac = time.monotonic(), done / max(n_texts, 1)
        if (group == state["group"] and done < n_texts and now - state["last_t"] < PROGRESS_S
                and frac - state["last_frac"] < PROGRESS_STEP):
            return
        state.update(last_t=now, last_frac=frac, group=group)
        logger.info("covariance, pass %d/%d (layers %d-%d): %d/%d texts, %d/%d tokens, %.0f tokens/s this run",
                    group + 1, n_groups, layers[0], layers[1], done, n_texts, tokens, total_tokens, tokens_per_s)

    t0 = time.perf_counter()
    ckpt_dir = Path(checkpoint) if checkpoint else Path(f"{cov}.checkpoint")
    count, _, mode, ckpts = accumulate(model, tok, frame.text.tolist(), max_length=max_length,
                                       token_budget=token_budget, groups=the_plan.groups, checkpoint=ckpt_dir,
                                       checkpoint_every=checkpoint_every, checkpoint_minutes=checkpoint_minutes,
                                       fingerprint_id=fp, progress=progress, device=device, keep=False,
                                       signature=signature)
    seconds = time.perf_counter() - t0
    run_tokens = state["run_tokens"]  # resumed tokens are not this run's work: the rate counts only its own
    logger.info("covariance: %d tokens from %d texts (%d of them this run, in %.1f s: %.0f tokens/s this run, %d "
                "passes); checkpoint writes %.1f s (%.1f %%); products %s", count, len(frame), run_tokens, seconds,
                run_tokens / max(seconds, 1e-9), the_plan.passes, ckpts.write_s_total,
                100 * ckpts.write_s_total / max(seconds, 1e-9), mode)
    meta = {"model": man["source"], "model_location": man["location"], "revision": man.get("revision"),
            "model_dtype": man["dtype"], "family": man["family"], "corpus_id": corpus_meta.get("corpus_id"),
            "corpus_name": corpus_meta.get("corpus_name"), "sample_hash": corpus_meta.get("sample_hash"),
            "text_hash": signature["texts"], "weights_id": signature["weights"], "n_texts": len(frame),
            "max_length": max_length, "products": mode, "plan": the_plan.summary()}
    write_from_checkpoints(cov, ckpts, layer_widths(model), count, meta, store_dtype, device=device)
    shutil.rmtree(ckpt_dir, ignore_errors=True)


def run_diagnostics(*, cov, table, condition_warn, threads=None, logger=None):
    """Rule `covariance_diagnostics`: condition number and rank of every layer's C (one layer in memory at a time)
    → a table; singular or badly conditioned layers are logged. torch uses exactly the job's `threads`."""
    from .io import write_parquet

    logger = logger or log
    if threads:
        models.pin_threads(threads)
    _, meta = load(cov, layers=[])
    frame = diagnostics(iter_layers(cov), condition_warn, n_tokens=int(meta["n_tokens"]))
    for row in frame.itertuples():
        if row.singular or row.ill_conditioned:
            logger.warning("layer %d: C is %s, condition number %.3g (rank %d of %d)", row.layer,
                           "singular" if row.singular else "badly conditioned", row.condition_number, row.rank, row.f)
    frame["corpus_id"] = meta.get("corpus_id")
    write_parquet(frame, table, metadata=meta)
    logger.info("diagnostics for %d layers, %d flagged", len(frame), int((frame.singular | frame.ill_conditioned).sum()))
