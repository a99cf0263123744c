"""Keys k_i of the analysis facts: the input of the FFN output projection of EVERY layer at the subject's
last token, in ONE batched forward pass (stopped after the last layer).

The token is found through the tokenizer's offset mapping: the character span of the subject inside
template.format(prompt.format(subject)) is mapped to the tokens that overlap it, so leading-space markers
("Ġ", "▁"), merges across the subject's edge and a BOS token are all handled. With ROME-style context
templates the key is the mean over templates: k = (1/T) Σ_t k(template_t).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

from . import models, probe
from .probe import exact_fp32, key_hooks, length_order, pad, run_until_stop

log = logging.getLogger(__name__)

def encode(tokenizer, prompts, subjects, *, position: str = "subject_last", templates=("{}",), where: str = ""):
    """Token ids and the key's token index for every (item, template) pair, item-major: row = item·T + t."""
    texts, spans = [], []
    for i, (prompt, subject) in enumerate(zip(prompts, subjects)):
        for template in templates:
            text, s, e = probe.fill(template, prompt, subject, where=f"{where}item {i}: ")
            texts.append(text)
            spans.append((s, e))
    rows, index = probe.locate(tokenizer, texts, spans, position,
                               where=lambda r: f"{where}item {r // len(templates)} text {texts[r]!r}: ")
    return rows, index, texts


def at_index(model, tokenizer, rows, index, *, layers=None, batch_size: int = 32, device=None) -> torch.Tensor:
    """Keys (len(layers), R, f) in fp32, on the CPU: layer l's FFN-output input at token index[r] of row r, for
    the given layers (default: every layer). One forward per batch, longest rows first, stopped after the last
    layer."""
    layers = list(range(models.n_layers(model))) if layers is None else [int(x) for x in layers]
    slot = {layer: s for s, layer in enumerate(layers)}
    device = probe.device_of(model) if device is None else device
    _, f = models.dims(model)
    out = torch.zeros((len(layers), len(rows), f), dtype=torch.float32)
    lengths = np.array([len(r) for r in rows])
    order = length_order(lengths)
    pad_id = probe.pad_id(tokenizer)
    with exact_fp32(), torch.no_grad():
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            ids, mask = pad([rows[r] for r in batch], pad_id)  # right padding: real tokens keep their positions
            where = torch.as_tensor([index[r] for r in batch], device=device)
            sel = torch.as_tensor(batch)

            def grab(layer, k):
                out[slot[layer], sel] = k[torch.arange(len(batch), device=k.device), where].float().cpu()

            with key_hooks(model, grab, layers):
                run_until_stop(model, ids.to(device), mask.to(device))
    return out


def averaged(model, tokenizer, prompts, subjects, *, layers=None, position: str = "subject_last",
             templates=("{}",), batch_size: int = 32, device=None, where: str = "") -> torch.Tensor:
    """Keys (len(layers), N, f) in fp64 on the CPU: k_i = (1/T) Σ_t k(template_t), each k taken in fp32."""
    templates = list(templates)
    rows, index, _ = encode(tokenizer, prompts, subjects, position=position, templates=templates, where=where)
    k = at_index(model, tokenizer, rows, index, layers=layers, batch_size=batch_size, device=device)
    n_layers, _, f = k.shape
    return k.reshape(n_layers, len(prompts), len(templates), f).double().mean(2)  # summed in fp64


def compute(model, tokenizer, prompts, subjects, *, position: str = "subject_last", templates=("{}",),
            batch_size: int = 32, device="cpu", where: str = "") -> torch.Tensor:
    """Keys (L, N, f), fp32: k_i of every layer, averaged over the context templates."""
    return averaged(model, tokenizer, prompts, subjects, position=position, templates=templates,
                    batch_size=batch_size, device=device, where=where).float()


# ---------------------------------------------------------------- tables

def to_frame(keys: torch.Tensor, items, case_ids):
    """Long table: one row per (layer, item) with the key as a float32 list of length f."""
    import pandas as pd

    L, N, _ = keys.shape
    arr = keys.numpy()
    return pd.DataFrame({"layer": np.repeat(np.arange(L), N), "item": np.tile(np.asarray(items), L),
                         "case_id": np.tile(np.asarray(case_ids), L),
                         "key": [arr[l, i] for l in range(L) for i in range(N)]})


def read(path) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray, dict]:
    """({layer: K (N × f) float32}, items, case_ids, metadata) from a keys table; items in ascending order."""
    import pyarrow.parquet as pq

    from .io import read_parquet_metadata

    meta = read_parquet_metadata(path)
    table = pq.read_table(path).sort_by([("layer", "ascending"), ("item", "ascending")])
    layer = table.column("layer").to_numpy()
    item = table.column("item").to_numpy()
    case = table.column("case_id").to_numpy()
    col = table.column("key").combine_chunks()
    lengths = col.value_lengths().to_numpy(zero_copy_only=False)
    f = int(meta.get("d_ff", lengths[0] if len(lengths) else 0))
    bad = np.flatnonzero(lengths != f)
    if len(bad):
        r = bad[0]
        raise ValueError(f"{path}: record layer={layer[r]} item={item[r]}: field 'key' has length {lengths[r]}, "
                         f"expected d_ff={f}")
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, f)
    layers = np.unique(layer)
    items = item[layer == layers[0]]
    out = {}
    for l in layers:
        sel = layer == l
        if not np.array_equal(item[sel], items):
            raise ValueError(f"{path}: layer {l} has items {item[sel].tolist()[:8]}…, layer {layers[0]} has "
                             f"{items.tolist()[:8]}…: field 'item' must list the same items for every layer")
        out[int(l)] = flat[sel]
    return out, items, case[layer == layers[0]], meta


def check_items(frame, path) -> None:
    """Every record needs item, case_id, prompt (one '{}') and subject; text, if present, = prompt.format(subject)."""
    for col in ("item", "case_id", "prompt", "subject"):
        if col not in frame.columns:
            raise ValueError(f"{path}: missing column {col!r}")
    for r in frame.itertuples(index=False):
        where = f"{path}: record item={r.item} case_id={r.case_id}: "
        probe.check_template(r.prompt, f"{where}field 'prompt'")
        if not isinstance(r.subject, str) or not r.subject.strip():
            raise ValueError(f"{where}field 'subject' is empty")
        text = getattr(r, "text", None)
        if text is not None and text != r.prompt.replace("{}", r.subject):
            raise ValueError(f"{where}field 'text' {text!r} is not prompt.format(subject)")


def run_rule(*, model, manifest, item_table, table, position, context_templates, batch_size, device="cpu",
             logger=None):
    """The keys stage: model + analysis items → keys table (every layer, one row per (layer, item))."""
    import pandas as pd

    from .io import write_parquet

    logger = logger or log
    frame = pd.read_parquet(item_table).sort_values("item").reset_index(drop=True)
    check_items(frame, item_table)
    net, tok, man = models.load_prepared(manifest, device=device)
    t0 = time.perf_counter()
    keys = compute(net, tok, frame.prompt.tolist(), frame.subject.tolist(), position=position,
                   templates=context_templates, batch_size=batch_size, device=device, where=f"{item_table}: ")
    L, N, f = keys.shape
    logger.info("keys: %d items × %d templates, %d layers, f=%d in %.1f s (position %s)", N,
                len(context_templates), L, f, time.perf_counter() - t0, position)
    meta = {"model": model, "source": man["source"], "position": position, "d_ff": f, "n_layers": L,
            "context_templates": list(context_templates), "n_items": N}
    write_parquet(to_frame(keys, frame.item.to_numpy(), frame.case_id.to_numpy()), table, metadata=meta)
