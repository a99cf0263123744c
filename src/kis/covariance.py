"""C_l = (1/T) Σ_t k_t k_tᵀ for EVERY layer l in ONE forward pass over the corpus.

A pre-hook on each FFN output projection sees its input, the key k (f values), for every token. Pad tokens
are dropped; the forward stops inside the last block (no unembedding). Products run in fp32 (TF32 off) and
are folded into fp64 running sums, checkpointed atomically so a killed job resumes where it stopped.
The reference code instead ran one forward per layer, stopping at it: L times the work.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import models
from .probe import exact_fp32, key_hooks, length_order, pad, pad_id, run_until_stop

log = logging.getLogger(__name__)


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [ids for ids in enc["input_ids"] if len(ids) > 0]


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


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the old checkpoint or the new one, never half of one


def collect(model, tokenizer, texts: list[str], *, max_length: int, token_budget: int = 4096,
            checkpoint: str | Path | None = None, checkpoint_every: int = 10, fingerprint_id: str = "",
            progress=None, device: str | torch.device = "cpu") -> tuple[list[torch.Tensor], int]:
    """Running sums S_l = Σ_t k_t k_tᵀ (fp64) over all attended tokens, for all layers, and the token count T.

    C_l = S_l / T. With `checkpoint`, state is saved every `checkpoint_every` batches and resumed from when
    its fingerprint matches (texts, max_length and model are in it; the token budget is not, so a retry with
    a smaller budget resumes too).
    """
    L = models.n_layers(model)
    _, f = models.dims(model)
    rows = tokenize(tokenizer, texts, max_length)
    if not rows:
        raise ValueError("covariance corpus is empty: no text gave any token")
    lengths = np.array([len(r) for r in rows])
    order = length_order(lengths)
    pid = pad_id(tokenizer)

    sums = [torch.zeros((f, f), dtype=torch.float64, device=device) for _ in range(L)]
    count, done = 0, 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("fingerprint") == fingerprint_id:
            sums, count, done = list(state["sums"]), int(state["count"]), int(state["done"])
            log.info("resuming from checkpoint %s: %d of %d texts, %d tokens done", ckpt, done, len(rows), count)
        else:
            log.warning("checkpoint %s belongs to other settings (fingerprint %s != %s); starting over",
                        ckpt, state.get("fingerprint"), fingerprint_id)

    h = f // 2 if f >= 512 else 0  # above the diagonal only: 3/4 of the products (S is mirrored at the end)

    def add(layer, k):
        k = k.float()
        if h:
            sums[layer][:h] += (k[:, :h].T @ k).double()              # rows 0..h: the top half, whole width
            sums[layer][h:, h:] += (k[:, h:].T @ k[:, h:]).double()   # the bottom-right block
        else:
            sums[layer] += (k.T @ k).double()

    total = int(lengths.sum())
    remaining = order[done:]
    start, tokens_run, batch_no = time.perf_counter(), 0, 0
    with exact_fp32():
        for batch in batches(lengths, remaining, token_budget):
            ids, mask = pad([rows[i] for i in batch], pid)
            forward_keys(model, ids.to(device), mask.to(device), add)
            n = int(mask.sum())
            count += n
            done += len(batch)
            tokens_run += n
            batch_no += 1
            if progress is not None:
                progress(done=done, n_texts=len(rows), tokens=count, total_tokens=total,
                         tokens_per_s=tokens_run / max(time.perf_counter() - start, 1e-9))
            if ckpt is not None and batch_no % checkpoint_every == 0 and done < len(rows):
                _save_checkpoint(ckpt, {"fingerprint": fingerprint_id, "sums": sums, "count": count, "done": done})
    if h:
        for s in sums:
            s[h:, :h] = s[:h, h:].T  # the bottom-left block was never accumulated: mirror it
    return sums, count


def finalize(sums: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """C_l = S_l / T, symmetrised (the fp32 products are symmetric only to rounding)."""
    return [((s + s.T) / (2 * count)).cpu() for s in sums]


def save(path: str | Path, covs: list[torch.Tensor], count: int, metadata: dict, store_dtype: str = "float64"):
    """One safetensors file: layer.<l> tensors + count, with string metadata. Written atomically."""
    from safetensors.torch import save_file

    from .io import atomic_path

    dtype = models.DTYPES[store_dtype]
    tensors = {f"layer.{i}": c.to(dtype).contiguous() for i, c in enumerate(covs)}
    tensors["count"] = torch.tensor(count, dtype=torch.int64)
    meta = {k: json.dumps(v) for k, v in {**metadata, "n_layers": len(covs), "n_tokens": count,
                                           "store_dtype": store_dtype}.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load(path: str | Path, layers=None, dtype=torch.float64) -> tuple[dict[int, torch.Tensor], dict]:
    """({layer: C}, metadata) from a cache written by `save`."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = {k: json.loads(v) for k, v in (fh.metadata() or {}).items()}
        wanted = range(int(meta["n_layers"])) if layers is None else layers
        for layer in wanted:
            out[int(layer)] = fh.get_tensor(f"layer.{layer}").to(dtype)
    return out, meta


def diagnostics(covs: dict[int, torch.Tensor] | list[torch.Tensor], condition_warn: float = 1e8):
    """Per-layer spectrum summary of C: condition number, smallest/largest eigenvalue, numerical rank."""
    import pandas as pd

    items = covs.items() if isinstance(covs, dict) else enumerate(covs)
    rows = []
    for layer, c in items:
        ev = torch.linalg.eigvalsh(c.to(torch.float64)).numpy()
        lo, hi = float(ev[0]), float(ev[-1])
        tol = hi * len(ev) * np.finfo(np.float64).eps
        cond = hi / lo if lo > 0 else float("inf")
        rows.append({"layer": int(layer), "f": len(ev), "trace": float(ev.sum()), "eig_min": lo, "eig_max": hi,
                     "condition_number": cond, "rank": int((ev > tol).sum()),
                     "singular": bool(lo <= tol), "ill_conditioned": bool(not cond < condition_warn)})
    return pd.DataFrame(rows)


def context_length(model) -> int:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        if getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot tell the context length of {cfg.model_type}; set corpus.max_length")


def run_rule(*, manifest, texts, cov, max_length, store_dtype, checkpoint, checkpoint_every, token_budget,
             device="cpu", logger=None):
    """The covariance stage end to end: model + corpus sample → cache file (+ resumable checkpoint)."""
    import pandas as pd
    from tqdm import tqdm

    from .io import read_parquet_metadata

    logger = logger or log
    model, tok, man = models.load_prepared(manifest, device=device)
    frame = pd.read_parquet(texts)
    corpus_meta = read_parquet_metadata(texts)
    if max_length is None:
        max_length = context_length(model)
        logger.info("corpus.max_length not set: truncating to the model's context, %d tokens", max_length)
    fp = fingerprint(location=man["location"], revision=man.get("revision"), dtype=man["dtype"],
                     sample=corpus_meta.get("sample_hash"), max_length=max_length)
    bar = tqdm(total=len(frame), unit="text", mininterval=10, file=sys.stderr, desc="covariance")

    def progress(done, n_texts, tokens, total_tokens, tokens_per_s):
        bar.total = n_texts
        bar.n = done
        bar.set_postfix(tokens=f"{tokens}/{total_tokens}", tok_s=f"{tokens_per_s:.0f}", refresh=False)
        bar.refresh()

    t0 = time.perf_counter()
    sums, count = collect(model, tok, frame.text.tolist(), max_length=max_length, token_budget=token_budget,
                          checkpoint=checkpoint, checkpoint_every=checkpoint_every, fingerprint_id=fp,
                          progress=progress, device=device)
    bar.close()
    seconds = time.perf_counter() - t0
    logger.info("covariance: %d tokens from %d texts in %.1f s (%.0f tokens/s this run)", count, len(frame),
                seconds, count / max(seconds, 1e-9))
    meta = {"model": man["source"], "model_location": man["location"], "revision": man.get("revision"),
            "model_dtype": man["dtype"], "family": man["family"], "corpus_id": corpus_meta.get("corpus_id"),
            "corpus_name": corpus_meta.get("corpus_name"), "sample_hash": corpus_meta.get("sample_hash"),
            "n_texts": len(frame), "max_length": max_length}
    save(cov, finalize(sums, count), count, meta, store_dtype)
    if checkpoint and Path(checkpoint).exists():
        Path(checkpoint).unlink()


def run_diagnostics(*, cov, table, condition_warn, logger=None):
    """Rule `covariance_diagnostics`: condition number and rank of every layer's C → a table, bad layers logged."""
    from .io import write_parquet

    logger = logger or log
    covs, meta = load(cov)
    frame = diagnostics(covs, condition_warn)
    for row in frame.itertuples():
        if row.singular or row.ill_conditioned:
            logger.warning("layer %d: C is %s, condition number %.3g (rank %d of %d)", row.layer,
                           "singular" if row.singular else "badly conditioned", row.condition_number, row.rank, row.f)
    frame["corpus_id"] = meta.get("corpus_id")
    write_parquet(frame, table, metadata=meta)
    logger.info("diagnostics for %d layers, %d flagged", len(frame), int((frame.singular | frame.ill_conditioned).sum()))
