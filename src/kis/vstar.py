"""v* = W k* + δ for one fact (s, r, o → o*) at one layer: the value shift δ that every editor (ROME, MEMIT,
AlphaEdit, DeltaEdit) writes, found by gradient descent. The key k* = (1/T) Σ_t k(template_t ⊕ prompt(s)) comes
from kis.keys (the FFN output projection's input at the subject's last token).

δ  = argmin_δ  NLL(o* | rewriting prompts) + kl_factor · KL(p_δ ‖ p_0)("{s} is a") + wd · ‖δ‖ / ‖v_0‖²
     with δ added to the FFN output at the subject's last token of every prompt, ‖δ‖ ≤ clamp · ‖v_0‖,
     Adam(lr), at most `steps` steps, stopping once the loss is below `stop_loss`.

The target value is then v* = W k* + δ (see kis.editing). δ is added where the editor's target lives: the FFN
output for ROME (norm "mlp", rome/compute_v.py), the block output for MEMIT's z (norm "block", memit/compute_z.py);
v_0 there scales the clamp and the weight decay. Without a norm after the FFN (all families but Gemma 2/3) the two
points coincide: the FFN output joins the residual stream as it is, in sequential and parallel blocks alike.

Tokenisation is kis.probe's: the prompt WITH the tokenizer's special tokens, then the target ids
probe.target_ids(tok, bare prompt, o) (the suffix of the joint tokenisation), used after every template; the
subject's last token from the fast tokenizer's character offsets. δ moves nothing before that token (attention is
causal), so each row's tokens before it run once, left-padded with their keys and values cached, and every step
runs only the rest of the rows (benchmarks/vstar.py: 2.2× faster on SmolLM2-135M, 1.8× on Gemma-3-270M; the same δ
to float32 rounding).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import torch

from . import keys, models
from .probe import StopForward, device_of, head_at, pad, pad_id, positions, run_until_stop, target_ids

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the block output

@torch.no_grad()
def _output_at(model, tok, prompt: str, subject: str, module) -> torch.Tensor:
    """(d,) float64: `module`'s output at the subject's last token of the bare prompt (the forward stops there)."""
    rows, index, _ = keys.encode(tok, [prompt], [subject])
    at = index[0]
    got = {}

    def hook(_m, _args, out):
        h = out[0] if isinstance(out, tuple) else out
        got["z"] = h[0, at].double()
        raise StopForward

    handle = module.register_forward_hook(hook)
    try:
        run_until_stop(model, torch.tensor(rows, device=device_of(model)))
    finally:
        handle.remove()
    return got["z"]


def block_output(model, tok, prompt: str, subject: str, layer: int) -> torch.Tensor:
    """(d,) float64: the residual stream after block `layer` at the subject's last token of the bare prompt."""
    return _output_at(model, tok, prompt, subject, models.blocks(model)[layer])


def ffn_output(model, tok, prompt: str, subject: str, layer: int) -> torch.Tensor:
    """(d,) float64: the FFN output W k of block `layer` there (before any post-FFN norm)."""
    return _output_at(model, tok, prompt, subject, models.ffn_out(model, layer))


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
                   kl_prompt: str = "{} is a", norm: str = "mlp", project=None,
                   cache_prefix: bool = True) -> DeltaResult:
    """δ for one fact at `layer` (module docstring). hp: v_num_grad_steps, v_lr, v_weight_decay, kl_factor,
    clamp_norm_factor, optional stop_loss (5e-2) and stop_prob. norm: "mlp" (ROME) or "block" (MEMIT) scales
    the clamp and the weight decay. project: optional (d × d) matrix applied to δ after every step."""
    return optimize_deltas(model, tok, prompt=prompt, subject=subject, target=target, layers=[layer],
                           templates=templates, hp=hp, kl_prompt=kl_prompt, norm=norm, project=project,
                           cache_prefix=cache_prefix)[0]


def optimize_deltas(model, tok, *, prompt: str, subject: str, target: str, layers, templates, hp: dict,
                    kl_prompt: str = "{} is a", norm: str = "mlp", project=None,
                    cache_prefix: bool = True) -> list[DeltaResult]:
    """[δ_l for l in layers]: optimize_delta at each layer alone, run as one batch (WilKE needs a δ at every
    candidate layer). The rows are repeated once per layer and copy l carries δ_l alone; copies never attend to
    each other, so the gradient of the summed loss in δ_l is copy l's own, and each δ_l has its own Adam, clamp
    and stopping step: the same δ_l as L separate calls, in one forward per step (benchmarks/vstar.py --layers)."""
    if norm not in ("mlp", "block"):
        raise ValueError(f"norm must be 'mlp' or 'block', got {norm!r}")
    if not templates or templates[0] != "{}":
        raise ValueError(f"context_templates must start with '{{}}' (v_0 and the KL term are read from the bare "
                         f"prompt, the first row), got {list(templates)[:1]}")
    layers = [int(x) for x in layers]
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct and at least one, got {layers}")
    if int(hp["v_num_grad_steps"]) < 1:
        raise ValueError(f"v_num_grad_steps must be ≥ 1 (the loss is read at the first step), got {hp['v_num_grad_steps']}")
    dev = device_of(model)
    tgt = target_ids(tok, prompt.format(subject), target)
    prompts, at, _ = keys.encode(tok, [prompt], [subject], templates=templates)  # the subject's last token
    starts = [len(ids) for ids in prompts]
    rows = [ids + tgt[:-1] for ids in prompts]
    kl_rows, kl_index, _ = keys.encode(tok, [kl_prompt], [subject])
    kl_at = kl_index[0]
    rows.append(kl_rows[0])
    at.append(kl_at)
    n_rw, n_rows, n_l = len(templates), len(rows), len(layers)
    # δ changes nothing before the subject's last token (causal attention): each row's tokens before it run once and
    # their keys / values are cached; every step runs only the rest (from the subject's last token) on a copy of
    # that cache, at the same positions. cache_prefix=False runs whole rows every step (the same numbers).
    cut = list(at) if cache_prefix else [0] * n_rows
    # the LM head runs only where a logit is used: the positions predicting o* in each rewriting row, the subject's
    # last token of the KL row
    head_rows = ([[s - 1 + j - c for j in range(len(tgt))] for s, c in zip(starts, cut)]
                 + [[kl_at - cut[-1]] * len(tgt)])
    rows, at, cut, head_rows = rows * n_l, at * n_l, cut * n_l, head_rows * n_l  # copy i: rows i·n_rows …
    past, pre_mask = None, None
    if max(cut) > 0:
        # left-padded: every row's cached tokens end in the same column and its rest follows at once, so the
        # distance between any two real tokens (a sliding window's measure) is that of the row alone
        pre_ids, pre_mask = pad([r[:c] for r, c in zip(rows, cut)], pad_id(tok), left=True)
        pre_ids, pre_mask = pre_ids.to(dev), pre_mask.to(dev)
        with torch.no_grad():
            past = model(input_ids=pre_ids, attention_mask=pre_mask, position_ids=positions(pre_mask),
                         use_cache=True).past_key_values
    ids, mask = pad([r[c:] for r, c in zip(rows, cut)], pad_id(tok))
    ids, mask = ids.to(dev), mask.to(dev)
    rest_pos = (torch.tensor(cut)[:, None] + torch.arange(ids.shape[1])[None]).to(dev)  # the rows' own positions
    full_mask = mask if pre_mask is None else torch.cat([pre_mask, mask], 1)
    at0 = at[0] - cut[0]
    head_index = torch.tensor(head_rows)
    tgt_t = torch.tensor(tgt, device=dev)

    d, _ = models.dims(model)
    deltas = [torch.zeros(d, device=dev, dtype=torch.float32, requires_grad=True) for _ in layers]
    firsts = [{} for _ in layers]

    def hooks(i: int):
        """Forward hooks at layer i's FFN output and block output: add δ_i to copy i's subject token only."""
        onehot = torch.zeros(ids.shape, device=dev)
        copy_i = torch.arange(i * n_rows, (i + 1) * n_rows)
        onehot[copy_i, torch.tensor(at[:n_rows]) - torch.tensor(cut[:n_rows])] = 1.0
        first, delta, row0 = firsts[i], deltas[i], i * n_rows

        def ffn_hook(_m, _args, out):
            if "mlp" not in first:
                first["mlp"] = out[row0, at0].detach().double().clone()
            if norm == "mlp":
                return out + onehot[..., None].to(out.dtype) * delta.to(out.dtype)

        def block_hook(_m, _args, out):
            h = out[0] if isinstance(out, tuple) else out
            if "block" not in first:
                first["block"] = h[row0, at0].detach().double().clone()
            if norm == "block":
                h = h + onehot[..., None].to(h.dtype) * delta.to(h.dtype)
                return (h, *out[1:]) if isinstance(out, tuple) else h
        return ffn_hook, block_hook

    handles = []
    for i, layer in enumerate(layers):
        ffn_hook, block_hook = hooks(i)
        handles += [models.ffn_out(model, layer).register_forward_hook(ffn_hook),
                    models.blocks(model)[layer].register_forward_hook(block_hook)]
    opts = [torch.optim.Adam([delta], lr=float(hp["v_lr"])) for delta in deltas]
    stop_loss, stop_prob = float(hp.get("stop_loss", 5e-2)), hp.get("stop_prob")
    n_steps, clamp = int(hp["v_num_grad_steps"]), float(hp["clamp_norm_factor"])
    kl0, steps, done = None, [0] * n_l, [None] * n_l
    try:
        with torch.enable_grad():
            for it in range(n_steps):
                for opt in opts:
                    opt.zero_grad()
                with head_at(model, head_index):
                    logits = model(input_ids=ids, attention_mask=full_mask, position_ids=rest_pos,
                                   past_key_values=copy.deepcopy(past), use_cache=past is not None
                                   ).logits.float()  # (n_l · (n_rw + 1), |o*|, V)
                logits = logits.reshape(n_l, n_rows, *logits.shape[1:])
                logp = torch.log_softmax(logits[:, :n_rw], dim=-1)
                tok_lp = logp.gather(3, tgt_t.expand(n_l, n_rw, -1)[..., None])[..., 0]  # (n_l, n_rw, |o*|)
                nll_each = -tok_lp.mean(2)
                nll = nll_each.mean(1)
                kl_lp = torch.log_softmax(logits[:, n_rw, 0], dim=-1)  # (n_l, V)
                if kl0 is None:
                    kl0 = kl_lp.detach().clone()
                # KL(p_δ ‖ p_0) per copy, as ROME's kl_div(init, current, log_target=True)
                kl = float(hp["kl_factor"]) * torch.nn.functional.kl_div(kl0, kl_lp, log_target=True,
                                                                         reduction="none").sum(-1)
                live = []
                for i in range(n_l):
                    if done[i] is not None:
                        continue
                    v0 = firsts[i][norm]
                    wd = float(hp["v_weight_decay"]) * deltas[i].norm() / (v0.norm().float() ** 2)
                    loss = nll[i] + kl[i] + wd
                    prob = float(torch.exp(-nll_each[i].detach()).mean())
                    loss_value = float(loss.detach())
                    result = (float(nll[i].detach()), prob, float(kl[i].detach()))
                    if not math.isfinite(loss_value):
                        log.warning("v* optimisation: non-finite loss at step %d for %r at layer %d", it, subject,
                                    layers[i])
                        done[i] = result
                    elif (loss_value < stop_loss or (stop_prob is not None and prob > float(stop_prob))
                          or it == n_steps - 1):
                        done[i] = result
                    else:
                        live.append((i, loss))
                if not live:
                    break
                sum(loss for _, loss in live).backward()
                for i, _ in live:
                    opts[i].step()
                    steps[i] += 1
                    with torch.no_grad():
                        delta = deltas[i]
                        if project is not None:
                            delta[...] = (project.to(delta.dtype) @ delta)
                        max_norm = clamp * float(firsts[i][norm].norm())
                        if float(delta.norm()) > max_norm:
                            delta[...] = delta * (max_norm / delta.norm())
    finally:
        for h in handles:
            h.remove()
    return [DeltaResult(delta=deltas[i].detach().double(), v0_mlp=firsts[i]["mlp"], v0_block=firsts[i]["block"],
                        nll=done[i][0], prob=done[i][1], kl=done[i][2], steps=steps[i]) for i in range(n_l)]
