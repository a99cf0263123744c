"""ROME's two vectors for one fact (s, r, o → o*) at one layer: the key k* and the value shift δ.

k* = (1/T) Σ_t k(template_t ⊕ prompt(s))     the FFN output projection's input at the subject's last token
δ  = argmin_δ  NLL(o* | rewriting prompts) + kl_factor · KL(p_δ ‖ p_0)("{s} is a") + wd · ‖δ‖ / ‖v_0‖²
     with δ added to the FFN output at the subject's last token of every prompt, ‖δ‖ ≤ clamp · ‖v_0‖,
     Adam(lr), at most `steps` steps, stopping once the loss is below `stop_loss`.

The target value is then v* = W k* + δ (see kis.editing). Adding δ to the FFN output at a position is the same as
adding it to the block's output (residual stream) there, for sequential and parallel blocks alike, so MEMIT's z
(block output + δ) uses the same optimisation; only the norm v_0 that scales the clamp and the weight decay differs:
the FFN output for ROME ("mlp"), the block output for MEMIT ("block").

Tokenisation follows kis.knowledge: the prompt WITH the tokenizer's special tokens, then the target ids
target_ids(tok, bare prompt, o) (the suffix of the joint tokenisation), used after every template. The subject's
last token is found from the fast tokenizer's character offsets.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from . import models
from .covariance import StopForward, key_hooks, pad

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- tokens

def fill(template: str, prompt: str, subject: str) -> tuple[str, int, int]:
    """(text, start, end): text = template.format(prompt.format(subject)); [start, end) is the subject in it."""
    for name, s in (("context template", template), ("prompt", prompt)):
        if s.count("{}") != 1:
            raise ValueError(f"{name} {s!r} must contain exactly one '{{}}'")
    t_pre, t_post = template.split("{}")
    p_pre, p_post = prompt.split("{}")
    start = len(t_pre) + len(p_pre)
    return t_pre + p_pre + subject + p_post + t_post, start, start + len(subject)


def encode(tok, template: str, prompt: str, subject: str) -> tuple[list[int], int]:
    """(token ids, index of the subject's last token) of template.format(prompt.format(subject))."""
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"the subject position needs a fast tokenizer (offsets); {type(tok).__name__} is not one")
    text, start, end = fill(template, prompt, subject)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=True)
    inside = [t for t, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start]
    if not inside:
        raise ValueError(f"no token overlaps the subject {subject!r} in {text!r}")
    return list(enc["input_ids"]), inside[-1]


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
        raise ValueError(f"target {target!r} gives no token")
    return ids


def pad_id(tok) -> int:
    p = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if p is None:
        raise ValueError("tokenizer has neither a pad nor an eos token to pad with")
    return int(p)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


# ---------------------------------------------------------------- keys and block outputs

@torch.no_grad()
def keys(model, tok, facts: list[tuple[str, str]], layers, templates=("{}",), batch_size: int = 32
         ) -> dict[int, torch.Tensor]:
    """{layer: (n, f) float64}: k of each (prompt, subject) at its subject's last token, mean over templates."""
    layers = sorted(set(int(x) for x in layers))
    rows = [encode(tok, t, p, s) for p, s in facts for t in templates]  # fact-major: row = fact·T + t
    T = len(templates)
    _, f = models.dims(model)
    out = {layer: torch.zeros((len(rows), f), dtype=torch.float64) for layer in layers}
    dev = device_of(model)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids, mask = pad([r[0] for r in chunk], pad_id(tok))
        b = torch.arange(len(chunk))
        at = torch.tensor([r[1] for r in chunk])

        def grab(layer, k):
            out[layer][start:start + len(chunk)] = k[b.to(k.device), at.to(k.device)].double().cpu()

        with key_hooks(model, grab, layers):
            try:
                model(input_ids=ids.to(dev), attention_mask=mask.to(dev))
            except StopForward:
                pass
    return {layer: k.reshape(len(facts), T, f).mean(1).to(dev) for layer, k in out.items()}


class _Stop(Exception):
    pass


@torch.no_grad()
def block_output(model, tok, prompt: str, subject: str, layer: int) -> torch.Tensor:
    """(d,) float64: the residual stream after block `layer` at the subject's last token of the bare prompt."""
    ids, at = encode(tok, "{}", prompt, subject)
    got = {}

    def hook(_m, _args, out):
        h = out[0] if isinstance(out, tuple) else out
        got["z"] = h[0, at].double()
        raise _Stop

    handle = models.blocks(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=torch.tensor([ids], device=device_of(model)))
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["z"]


# ---------------------------------------------------------------- the value shift δ

@dataclass
class DeltaResult:
    delta: torch.Tensor      # (d,) float64
    v0_mlp: torch.Tensor     # FFN output at the subject's last token of the bare prompt, before the edit
    v0_block: torch.Tensor   # block output there
    nll: float               # final NLL of the new target (mean over rewriting prompts, per token)
    prob: float              # mean over rewriting prompts of exp(−NLL)
    kl: float
    steps: int               # optimiser steps taken


def optimize_delta(model, tok, *, prompt: str, subject: str, target: str, layer: int, templates, hp: dict,
                   kl_prompt: str = "{} is a", norm: str = "mlp", project=None) -> DeltaResult:
    """δ for one fact at `layer` (module docstring). hp: v_num_grad_steps, v_lr, v_weight_decay, kl_factor,
    clamp_norm_factor, optional stop_loss (5e-2) and stop_prob. norm: "mlp" (ROME) or "block" (MEMIT) scales
    the clamp and the weight decay. project: optional (d × d) matrix applied to δ after every step."""
    if norm not in ("mlp", "block"):
        raise ValueError(f"norm must be 'mlp' or 'block', got {norm!r}")
    if not templates or templates[0] != "{}":
        raise ValueError(f"context_templates must start with '{{}}' (v_0 and the KL term are read from the bare "
                         f"prompt, the first row), got {list(templates)[:1]}")
    dev = device_of(model)
    tgt = target_ids(tok, prompt.format(subject), target)
    rows, at, starts = [], [], []
    for t in templates:
        ids, i = encode(tok, t, prompt, subject)
        rows.append(ids + tgt[:-1])
        at.append(i)
        starts.append(len(ids))
    kl_ids, kl_at = encode(tok, "{}", kl_prompt, subject)
    rows.append(kl_ids)
    at.append(kl_at)
    ids, mask = pad(rows, pad_id(tok))
    ids, mask = ids.to(dev), mask.to(dev)
    n_rw = len(templates)
    onehot = torch.zeros(ids.shape, device=dev)
    onehot[torch.arange(len(rows)), torch.tensor(at)] = 1.0
    pos = torch.tensor([[s - 1 + j for j in range(len(tgt))] for s in starts], device=dev)  # predicting tgt
    tgt_t = torch.tensor(tgt, device=dev)

    d, _ = models.dims(model)
    delta = torch.zeros(d, device=dev, dtype=torch.float32, requires_grad=True)
    first = {}

    def ffn_hook(_m, _args, out):
        if "mlp" not in first:
            first["mlp"] = out[0, at[0]].detach().double().clone()
        return out + onehot[..., None].to(out.dtype) * delta.to(out.dtype)

    def block_hook(_m, _args, out):
        if "block" not in first:
            h = out[0] if isinstance(out, tuple) else out
            first["block"] = h[0, at[0]].detach().double().clone()

    handles = [models.ffn_out(model, layer).register_forward_hook(ffn_hook),
               models.blocks(model)[layer].register_forward_hook(block_hook)]
    opt = torch.optim.Adam([delta], lr=float(hp["v_lr"]))
    stop_loss, stop_prob = float(hp.get("stop_loss", 5e-2)), hp.get("stop_prob")
    kl0, steps = None, 0
    try:
        with torch.enable_grad():
            for it in range(int(hp["v_num_grad_steps"])):
                opt.zero_grad()
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits[:n_rw], dim=-1)
                tok_lp = logp[torch.arange(n_rw, device=dev)[:, None], pos, tgt_t[None, :]]  # (n_rw, |o*|)
                nll_each = -tok_lp.mean(1)
                nll = nll_each.mean()
                kl_lp = torch.log_softmax(logits[n_rw:, kl_at], dim=-1)
                if kl0 is None:
                    kl0 = kl_lp.detach().clone()
                # KL(p_δ ‖ p_0), as ROME's kl_div(init, current, log_target=True)
                kl = float(hp["kl_factor"]) * torch.nn.functional.kl_div(kl0, kl_lp, log_target=True,
                                                                         reduction="batchmean")
                v0 = first[norm]
                wd = float(hp["v_weight_decay"]) * delta.norm() / (v0.norm().float() ** 2)
                loss = nll + kl + wd
                prob = float(torch.exp(-nll_each.detach()).mean())
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    log.warning("v* optimisation: non-finite loss at step %d for %r", it, subject)
                    break
                if loss_value < stop_loss or (stop_prob is not None and prob > float(stop_prob)):
                    break
                if it == int(hp["v_num_grad_steps"]) - 1:
                    break
                loss.backward()
                opt.step()
                steps += 1
                with torch.no_grad():
                    if project is not None:
                        delta[...] = (project.to(delta.dtype) @ delta)
                    max_norm = float(hp["clamp_norm_factor"]) * float(v0.norm())
                    if float(delta.norm()) > max_norm:
                        delta[...] = delta * (max_norm / delta.norm())
    finally:
        for h in handles:
            h.remove()
    return DeltaResult(delta=delta.detach().double(), v0_mlp=first["mlp"], v0_block=first["block"],
                       nll=float(nll.detach()), prob=prob, kl=float(kl.detach()), steps=steps)
