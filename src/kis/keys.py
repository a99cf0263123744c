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

from . import models
from .covariance import StopForward, exact_fp32, key_hooks, length_order, pad

log = logging.getLogger(__name__)

POSITIONS = ("subject_last", "subject_first", "last")


def fill(template: str, prompt: str, subject: str, *, where: str = "") -> tuple[str, int, int]:
    """(text, start, end): text = template.format(prompt.format(subject)); [start, end) is the subject in it."""
    for name, s in (("context template", template), ("prompt", prompt)):
        if s.count("{}") != 1:
            raise ValueError(f"{where}{name} {s!r} must contain exactly one '{{}}'")
    if not subject or not subject.strip():
        raise ValueError(f"{where}field 'subject' is empty")
    t_pre, t_post = template.split("{}")
    p_pre, p_post = prompt.split("{}")
    start = len(t_pre) + len(p_pre)
    return t_pre + p_pre + subject + p_post + t_post, start, start + len(subject)


BLANK = " \t\n▁ĠĊĉ"  # whitespace and the space / newline / tab markers of SentencePiece and byte-level BPE


def token_index(offsets, start: int, end: int, position: str, *, blank=None, where: str = "") -> int:
    """Index of the chosen token given per-token character offsets [(a, b), ...] (special tokens have a == b).

    A token belongs to the subject when it overlaps [start, end): a < end and b > start, and is not a bare
    space marker (`blank[t]`: SentencePiece's prepended "▁" before a text-initial subject claims its first
    character).
    """
    blank = blank or [False] * len(offsets)
    if position == "last":
        real = [t for t, (a, b) in enumerate(offsets) if b > a]
        if not real:
            raise ValueError(f"{where}text has no token")
        return real[-1]
    inside = [t for t, (a, b) in enumerate(offsets) if b > a and a < end and b > start and not blank[t]]
    if not inside:
        raise ValueError(f"{where}no token overlaps the subject span [{start}, {end}) (truncated text?)")
    if position == "subject_last":
        return inside[-1]
    if position == "subject_first":
        return inside[0]
    raise ValueError(f"unknown key position {position!r}; choose one of {', '.join(POSITIONS)}")


def encode(tokenizer, prompts, subjects, *, position: str = "subject_last", templates=("{}",), where: str = ""):
    """Token ids and the key's token index for every (item, template) pair, item-major: row = item·T + t."""
    if position not in POSITIONS:
        raise ValueError(f"unknown key position {position!r}; choose one of {', '.join(POSITIONS)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{where}the key position needs a fast tokenizer (offset mapping); "
                         f"{type(tokenizer).__name__} is not one")
    texts, spans = [], []
    for i, (prompt, subject) in enumerate(zip(prompts, subjects)):
        for template in templates:
            text, s, e = fill(template, prompt, subject, where=f"{where}item {i}: ")
            texts.append(text)
            spans.append((s, e))
    enc = tokenizer(texts, return_offsets_mapping=True, add_special_tokens=True)
    rows, index = [], []
    for r, (ids, offsets, (s, e)) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], spans)):
        rows.append(list(ids))
        blank = [not t.strip(BLANK) for t in tokenizer.convert_ids_to_tokens(ids)]
        index.append(token_index(offsets, s, e, position, blank=blank,
                                 where=f"{where}item {r // len(templates)} text {texts[r]!r}: "))
    return rows, index, texts


def at_index(model, tokenizer, rows, index, *, batch_size: int = 32, device="cpu") -> torch.Tensor:
    """Keys (L, R, f) in fp32: layer l's FFN-output input at token index[r] of row r. One forward per batch."""
    L = models.n_layers(model)
    _, f = models.dims(model)
    out = torch.zeros((L, len(rows), f), dtype=torch.float32)
    lengths = np.array([len(r) for r in rows])
    order = length_order(lengths)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with exact_fp32(), torch.no_grad():
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            ids, mask = pad([rows[r] for r in batch], pad_id)  # right padding: real tokens keep their positions
            where = torch.as_tensor([index[r] for r in batch], device=device)
            sel = torch.as_tensor(batch)

            def grab(layer, k):
                out[layer, sel] = k[torch.arange(len(batch), device=k.device), where].float().cpu()

            with key_hooks(model, grab):
                try:
                    model(input_ids=ids.to(device), attention_mask=mask.to(device))
                except StopForward:
                    pass
    return out


def compute(model, tokenizer, prompts, subjects, *, position: str = "subject_last", templates=("{}",),
            batch_size: int = 32, device="cpu", where: str = "") -> torch.Tensor:
    """Keys (L, N, f), fp32: k_i per layer, averaged over the context templates."""
    templates = list(templates)
    rows, index, _ = encode(tokenizer, prompts, subjects, position=position, templates=templates, where=where)
    k = at_index(model, tokenizer, rows, index, batch_size=batch_size, device=device)
    L, _, f = k.shape
    # k_i = (1/T) Σ_t k(template_t), summed in fp64
    return k.reshape(L, len(prompts), len(templates), f).double().mean(2).float()


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
        if not isinstance(r.prompt, str) or r.prompt.count("{}") != 1:
            raise ValueError(f"{where}field 'prompt' {r.prompt!r} must contain exactly one '{{}}'")
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
