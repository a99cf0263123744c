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
    layers = _checked(norm, templates, layers, hp)
    n_l, dev = len(layers), device_of(model)
    b = _batch(model, tok, prompt, subject, target, templates, kl_prompt, n_l, cache_prefix)
    d, _ = models.dims(model)
    deltas = [torch.zeros(d, device=dev, dtype=torch.float32, requires_grad=True) for _ in layers]
    v0 = [{} for _ in layers]  # copy l's FFN ("mlp") and block ("block") output at the bare prompt's subject token
    handles = _add_delta_hooks(model, b, layers, deltas, v0, norm)
    opts = [torch.optim.Adam([delta], lr=float(hp["v_lr"])) for delta in deltas]
    stop_loss, stop_prob = float(hp.get("stop_loss", 5e-2)), hp.get("stop_prob")
    n_steps, clamp = int(hp["v_num_grad_steps"]), float(hp["clamp_norm_factor"])
    kl0, steps, done = None, [0] * n_l, [None] * n_l  # done[l]: (NLL, exp(−NLL), KL) once δ_l has stopped
    try:
        with torch.enable_grad():
            for it in range(n_steps):
                for opt in opts:
                    opt.zero_grad()
                nll_each, kl_lp = _forward(model, b, n_l)
                if kl0 is None:  # p_0: the KL row's distribution at the first forward, δ = 0
                    kl0 = kl_lp.detach().clone()
                # the loss of copy l: (1/T) Σ_t NLL_l,t + kl_factor · KL(p_δ ‖ p_0) + wd · ‖δ_l‖ / ‖v_0‖²
                nll = nll_each.mean(1)
                # KL(p_δ ‖ p_0) per copy, as ROME's kl_div(init, current, log_target=True)
                kl = float(hp["kl_factor"]) * torch.nn.functional.kl_div(kl0, kl_lp, log_target=True,
                                                                         reduction="none").sum(-1)
                live = []  # (l, loss_l) of the δ_l that take another step
                for i in range(n_l):
                    if done[i] is not None:
                        continue
                    wd = float(hp["v_weight_decay"]) * deltas[i].norm() / (v0[i][norm].norm().float() ** 2)
                    loss = nll[i] + kl[i] + wd
                    prob = float(torch.exp(-nll_each[i].detach()).mean())
                    loss_value = float(loss.detach())
                    result = (float(nll[i].detach()), prob, float(kl[i].detach()))
                    # δ_l stops at a non-finite loss, a loss below stop_loss, exp(−NLL) above stop_prob or the last step
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
                # one Adam step per live δ_l on the summed loss (the copies are independent), then project and clamp
                sum(loss for _, loss in live).backward()
                for i, _ in live:
                    opts[i].step()
                    steps[i] += 1
                    _project_and_clamp(deltas[i], project, clamp * float(v0[i][norm].norm()))
    finally:
        for h in handles:
            h.remove()
    # the result per layer: δ_l, v_0 at both points, and the loss terms at its stopping step (v* = W k* + δ_l)
    return [DeltaResult(delta=deltas[i].detach().double(), v0_mlp=v0[i]["mlp"], v0_block=v0[i]["block"],
                        nll=done[i][0], prob=done[i][1], kl=done[i][2], steps=steps[i]) for i in range(n_l)]


def _checked(norm: str, templates, layers, hp: dict) -> list[int]:
    """The layers as ints, after refusing what optimize_deltas cannot run."""
    if norm not in ("mlp", "block"):
        raise ValueError(f"norm must be 'mlp' or 'block', got {norm!r}")
    if not templates or templates[0] != "{}":
        raise ValueError(f"context_templates must start with '{{}}' (v_0 and the KL term are read from the bare "
                         f"prompt, the first row), got {list(templates)[:1]}")
    layers = [int(x) for x in layers]
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct and at least one, got {layers}")
    if int(hp["v_num_grad_steps"]) < 1:
        raise ValueError(f"v_num_grad_steps must be ≥ 1 (the loss is read at the first step), got "
                         f"{hp['v_num_grad_steps']}")
    return layers


@dataclass
class _Batch:
    """The prompts of one fact as one batch: per copy (one per layer) the rewriting rows template_t ⊕ prompt(s) ⊕
    o*[:-1] (t = 1…T, T = n_rw) and the KL row kl_prompt(s), each from the subject's last token on (the tokens
    before it are in `past`)."""
    ids: torch.Tensor         # the rows' rest, right-padded
    mask: torch.Tensor        # attention mask over the cached prefix and the rest
    pos: torch.Tensor         # the rest's own positions
    past: object              # cached keys / values of the prefixes (None without a prefix cache)
    head_index: torch.Tensor  # per row the positions whose logits are used
    tgt: torch.Tensor         # o*'s token ids
    subj: torch.Tensor        # per row of one copy: the subject's last token in the rest
    n_rw: int                 # rewriting rows per copy (= templates)
    n_rows: int               # rows per copy (n_rw + the KL row)


def _batch(model, tok, prompt: str, subject: str, target: str, templates, kl_prompt: str, n_l: int,
           cache_prefix: bool) -> _Batch:
    """Tokenise the rows (module docstring), repeat them once per layer and run their prefixes once."""
    dev = device_of(model)
    tgt = target_ids(tok, prompt.format(subject), target)
    prompts, at, _ = keys.encode(tok, [prompt], [subject], templates=templates)  # the subject's last token
    starts = [len(ids) for ids in prompts]
    rows = [ids + tgt[:-1] for ids in prompts]
    kl_rows, kl_index, _ = keys.encode(tok, [kl_prompt], [subject])
    kl_at = kl_index[0]
    rows.append(kl_rows[0])
    at.append(kl_at)
    n_rw, n_rows = len(templates), len(rows)
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
    return _Batch(ids=ids, mask=mask if pre_mask is None else torch.cat([pre_mask, mask], 1), pos=rest_pos,
                  past=past, head_index=torch.tensor(head_rows), tgt=torch.tensor(tgt, device=dev),
                  subj=torch.tensor(at[:n_rows]) - torch.tensor(cut[:n_rows]), n_rw=n_rw, n_rows=n_rows)


def _add_delta_hooks(model, b: _Batch, layers: list[int], deltas, v0: list[dict], norm: str) -> list:
    """Forward hooks at each layer's FFN output and block output: h ← h + δ_i at copy i's subject token only (at the
    FFN output for norm "mlp", the block output for "block"); the first forward stores copy i's v_0 at both points
    (its first row: the bare prompt). Returns the handles."""
    dev = b.ids.device
    at0 = int(b.subj[0])

    def hooks(i: int):
        onehot = torch.zeros(b.ids.shape, device=dev)
        copy_i = torch.arange(i * b.n_rows, (i + 1) * b.n_rows)
        onehot[copy_i, b.subj] = 1.0
        first, delta, row0 = v0[i], deltas[i], i * b.n_rows

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
    return handles


def _forward(model, b: _Batch, n_l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward with the δ hooks: (NLL per copy and rewriting row, −(1/|o*|) Σ_j log p(o*_j | row, o*_<j),
    shape (n_l, n_rw); log p at the KL row's subject token, (n_l, V))."""
    with head_at(model, b.head_index):
        logits = model(input_ids=b.ids, attention_mask=b.mask, position_ids=b.pos,
                       past_key_values=copy.deepcopy(b.past), use_cache=b.past is not None
                       ).logits.float()  # (n_l · (n_rw + 1), |o*|, V)
    logits = logits.reshape(n_l, b.n_rows, *logits.shape[1:])
    logp = torch.log_softmax(logits[:, :b.n_rw], dim=-1)
    tok_lp = logp.gather(3, b.tgt.expand(n_l, b.n_rw, -1)[..., None])[..., 0]  # (n_l, n_rw, |o*|)
    return -tok_lp.mean(2), torch.log_softmax(logits[:, b.n_rw, 0], dim=-1)


@torch.no_grad()
def _project_and_clamp(delta: torch.Tensor, project, max_norm: float):
    """After an Adam step: δ ← P δ (when a projection is given), then δ ← δ · max_norm / ‖δ‖ when ‖δ‖ > max_norm
    (max_norm = clamp_norm_factor · ‖v_0‖)."""
    if project is not None:
        delta[...] = (project.to(delta.dtype) @ delta)
    if float(delta.norm()) > max_norm:
        delta[...] = delta * (max_norm / delta.norm())
