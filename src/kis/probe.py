"""How a model reads text: templates, tokens, padding, FFN-key hooks and teacher-forced scoring.

Every stage that runs a model on prompts goes through here, so a fact is read the same way everywhere:
  * a prompt is a template with exactly one "{}" (the subject's slot);
  * the subject's token is found from the fast tokenizer's character offsets (the tokens overlapping its span);
  * a fact's target o is scored after the prompt as the ids of " " + o without special tokens (as ROME does),
    teacher-forced:  log p(o_j | prompt, o_<j) at the position before o_j;
  * batches are right-padded with the tokenizer's pad token (kis.models.load guarantees one) and masked;
  * the key k of layer l is the input of the FFN output projection, taken by a forward pre-hook.
"""
from __future__ import annotations

import logging

from contextlib import contextmanager

import numpy as np

log = logging.getLogger(__name__)

POSITIONS = ("subject_last", "subject_first", "last")
BLANK = " \t\n▁ĠĊĉ"  # whitespace and the space / newline / tab markers of SentencePiece and byte-level BPE


# ---------------------------------------------------------------- templates and the subject's token

def check_template(template, what: str = "template", error=ValueError) -> str:
    """`template` when it is a string with exactly one '{}' (the subject's slot); else raise error(message)."""
    if not isinstance(template, str):
        raise error(f"{what} must be a string with one '{{}}', got {type(template).__name__}".strip())
    n = template.count("{}")
    if n != 1:
        raise error(f"{what} must contain exactly one '{{}}', has {n}: {template!r}".strip())
    return template


def fill(template: str, prompt: str, subject: str, *, where: str = "") -> tuple[str, int, int]:
    """(text, start, end): text = template.format(prompt.format(subject)); [start, end) is the subject in it."""
    check_template(template, f"{where}context template")
    check_template(prompt, f"{where}prompt")
    if not subject or not subject.strip():
        raise ValueError(f"{where}field 'subject' is empty")
    t_pre, t_post = template.split("{}")
    p_pre, p_post = prompt.split("{}")
    start = len(t_pre) + len(p_pre)
    return t_pre + p_pre + subject + p_post + t_post, start, start + len(subject)


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


def locate(tokenizer, texts, spans, position: str = "subject_last", *, where=None) -> tuple[list, list]:
    """(token ids with special tokens, index of the chosen token) for each text; spans[r] = the subject's
    [start, end) in texts[r]. where(r) names row r in errors."""
    if position not in POSITIONS:
        raise ValueError(f"unknown key position {position!r}; choose one of {', '.join(POSITIONS)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{where(0) if where else ''}the key position needs a fast tokenizer (offset mapping); "
                         f"{type(tokenizer).__name__} is not one")
    enc = tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True)
    rows, index = [], []
    for r, (ids, offsets, (s, e)) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], spans)):
        rows.append(list(ids))
        blank = [not t.strip(BLANK) for t in tokenizer.convert_ids_to_tokens(ids)]
        index.append(token_index(offsets, s, e, position, blank=blank, where=where(r) if where else ""))
    return rows, index


# ---------------------------------------------------------------- prompt and target ids

def prompt_ids(tok, text: str) -> list[int]:
    """Ids of a prompt WITH the tokenizer's special tokens (a BOS where it adds one)."""
    ids = tok(text, add_special_tokens=True)["input_ids"]
    if not ids:
        raise ValueError(f"prompt {text!r} gives no token")
    return list(ids)


def target_ids(tok, prompt_text: str, target: str) -> list[int]:
    """Ids of " " + target as the tokenizer writes it after prompt_text: the suffix of
    tokenize(prompt_text + " " + target) (special tokens added) after the ids of tokenize(prompt_text). A
    SentencePiece tokenizer with a dummy prefix turns " Paris" tokenised alone into "▁" + "▁Paris"; the suffix is
    "▁Paris". Rule when the joint tokenisation merges across the boundary (the prompt's ids are not a prefix of the
    joint ids): " " + target tokenised alone, less a leading token that decodes to whitespace only (logged)."""
    p = list(tok(prompt_text, add_special_tokens=True)["input_ids"])
    joint = list(tok(prompt_text + " " + target, add_special_tokens=True)["input_ids"])
    if joint[:len(p)] == p and len(joint) > len(p):
        return joint[len(p):]
    ids = list(tok(" " + target, add_special_tokens=False)["input_ids"])
    if len(ids) > 1 and not tok.decode(ids[:1]).strip():
        ids = ids[1:]
    log.warning("target %r after %r: the joint tokenisation merges across the prompt boundary; using %r tokenised "
                "alone (leading whitespace-only token dropped): %s", target, prompt_text, " " + target, ids)
    if not ids:
        raise ValueError(f"target {target!r} (after prompt {prompt_text!r}) gives no token")
    return ids


# ---------------------------------------------------------------- batches

def pad_id(tok) -> int:
    """The tokenizer's pad id; kis.models.load sets a pad token on every tokenizer it returns."""
    if tok.pad_token_id is None:
        raise ValueError(f"tokenizer {type(tok).__name__} has no pad token: load it with kis.models.load "
                         "(which sets pad = eos) or set tok.pad_token")
    return int(tok.pad_token_id)


def pad(rows: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), right-padded: real tokens keep their positions; left=True: every row's last token sits in the
    last column (for decoding; positions must then be given from the mask)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, cols] = torch.tensor(r, dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of padded rows from their mask: each real token counts the real tokens before it (a left pad
    gets 0; its output is masked out)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def length_order(lengths) -> np.ndarray:
    """Longest first (an OOM shows at the first batch), ties by index: independent of the batch size."""
    lengths = np.asarray(lengths)
    return np.lexsort((np.arange(len(lengths)), -lengths))


def device_of(model) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def exact_fp32():
    """fp32 products without TF32 on GPUs."""
    import torch

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ---------------------------------------------------------------- keys: k = input of the FFN output projection

class StopForward(Exception):
    """Raised by the last hook: nothing after the last key is needed."""


@contextmanager
def key_hooks(model, on_key, layers=None, stop_after_last=True):
    """Call on_key(layer, k) with the input of each FFN output projection; stop after the last hooked layer."""
    from . import models

    layers = list(range(models.n_layers(model))) if layers is None else list(layers)
    last = max(layers)
    handles = []

    def make(layer):
        def hook(_module, args):
            on_key(layer, args[0])
            if stop_after_last and layer == last:
                raise StopForward
        return hook

    try:
        for layer in layers:
            handles.append(models.ffn_out(model, layer).register_forward_pre_hook(make(layer)))
        yield
    finally:
        for h in handles:
            h.remove()


def run_until_stop(model, ids, mask=None) -> None:
    """One forward that may be cut short by StopForward (raised by a hook). use_cache=False: a stage that only reads
    keys needs no KV cache (transformers' default keeps one, 2·L·tokens·d_kv·bytes: 12.5 GiB for one 16,384-token
    batch of Llama-2-13B)."""
    try:
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    except StopForward:
        pass


# ---------------------------------------------------------------- teacher-forced scoring

@contextmanager
def head_at(model, index):
    """Run the LM head only at index (B, K): its input h (B, T, d) becomes h[b, index[b]] (B, K, d). Logit
    soft-capping and the like act elementwise after the head, so they are unchanged (Gemma 3's head: 262k rows)."""
    def gather(_module, args):
        h = args[0]
        return (h.gather(1, index.to(h.device)[..., None].expand(-1, -1, h.shape[-1])), *args[1:])

    handle = model.get_output_embeddings().register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def logits(model, rows: list[list[int]], pad_id: int, device=None, positions=None) -> torch.Tensor:
    """fp32 logits of right-padded rows: (B, width, V), or (B, K, V) at `positions` (one list per row, K the
    longest, shorter lists repeat their last position): then the LM head runs only there."""
    import torch

    device = device_of(model) if device is None else device
    ids, mask = (t.to(device) for t in pad(rows, pad_id))
    with torch.no_grad():
        if positions is None:  # scoring reads logits once: no KV cache
            return model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        k = max(len(p) for p in positions)
        index = torch.tensor([list(p) + [p[-1]] * (k - len(p)) for p in positions], dtype=torch.long)
        with head_at(model, index):
            out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        if out.shape[1] != k:
            raise RuntimeError(f"{type(model).__name__}: the LM head did not run at the {k} positions asked for "
                               f"(logits have {out.shape[1]}); kis.probe.head_at needs a head called on hidden states")
        return out


def logp_and_argmax(lg, t: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """From the logits at one fact's target positions (K × V): (log p(t_j | prompt, t_<j), fp64; the argmax token)."""
    import torch

    pos = torch.arange(len(t), device=lg.device)
    return torch.log_softmax(lg, dim=-1)[pos, torch.tensor(t, device=lg.device)].double(), lg.argmax(-1)


def teacher_forced(model, pad_id: int, prompts: list[list[int]], targets: list[list[int]], *,
                   batch_size: int = 32, order=None, device=None, per_fact=logp_and_argmax) -> list:
    """Per fact, teacher-forced on prompt + target: per_fact(logits at the positions predicting each target token
    (K × V, fp32), target ids); by default (log p(t_j | prompt, t_<j), fp64; the argmax token at each of those
    positions). Batches take the facts in `order` (default: longest first)."""
    n = len(prompts)
    order = length_order([len(p) + len(t) for p, t in zip(prompts, targets)]) if order is None else order
    out = [None] * n
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        at = [range(len(prompts[i]) - 1, len(prompts[i]) + len(targets[i]) - 1) for i in idx]  # positions predicting t
        lg = logits(model, [prompts[i] + targets[i] for i in idx], pad_id, device, positions=at)  # (B, K, V)
        for b, i in enumerate(idx):
            out[i] = per_fact(lg[b, :len(targets[i])], targets[i])
    return out
