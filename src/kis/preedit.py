"""Forecast of forgetting made before any edit is applied, from the unedited model only, and its baselines.

risk_j(s) = ‖Σ_{i≤s} r̂_i P_ij‖,  P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i   (the paper's closed form, planned stream i ≤ s)

at the editor's measure layer: k_i the planned edits' keys (template mean k̄_i, as ROME's u = C⁻¹k̄), k_j the
held-out facts' keys (bare prompt, subject's last token, as the measured interference), r̂_i = δ_i = v*_i − W k₀,i the
value shift ROME's v* optimisation (vstar.optimize_delta, the method's v* hyperparameters, ROME's "mlp" objective at
the measure layer) asks for on the unedited model. Baselines that need no superposition: the fact's unedited
confidence margin (min over its target tokens of log p(true token) − max log p(other token), teacher-forced; > 0 iff
the fact is correct) and the norm of its key. Nothing here reads an edited weight: `compute` runs before the first
edit (kis.trajectory.run; tests/test_forecast.py checks the forecast is the same when the edits are not applied).

The planned keys and residual estimates (K_plan, R̂: 100 v* optimisations, about half of a CPU trajectory job) depend
only on the unedited model, the stream, the measure layer, the v* hyperparameters, the context templates and the KL
prompt, not on how a method writes: the `preedit` rule computes them once per model for the methods that agree on
all of these (rules/common.smk forecast_leader: ROME and r-ROME, MEMIT and AlphaEdit in the study) and every
trajectory job checks the file's signature against its own before using it (`load_estimates`).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

from . import editing, keys, probe, vstar
from .hparams import VSTAR_KEYS
from .io import atomic_path, first_difference

log = logging.getLogger(__name__)

# what the forecast is: part of a trajectory checkpoint's signature (another rule → another forecast → no resume)
RULE = ("risk ‖Σ_{i≤s} δ_i P_ij‖ at the measure layer, δ_i ROME v* (method's v* hp) on the unedited model, "
        "P from C⁻¹k̄_i, k_j bare prompt; baselines: confidence margin, key norm (v1)")


def cumulative_risk(L: torch.Tensor, K_plan: torch.Tensor, R_hat: torch.Tensor, K_test: torch.Tensor) -> np.ndarray:
    """(n + 1, m): row s = ‖Σ_{i≤s} r̂_i P_ij‖ for every held-out key j (row 0: no edit, zeros). L: Cholesky factor of
    C; K_plan (f × n) the planned keys in stream order; R_hat (d × n) their residual estimates; K_test (f × m)."""
    n, m = K_plan.shape[1], K_test.shape[1]
    out = np.zeros((n + 1, m))
    if n == 0:
        return out
    K_plan, K_test = K_plan.double(), K_test.double()
    P = editing.p_matrix(editing.whiten(L, K_plan), K_plan, K_test)       # n × m
    acc = torch.zeros(R_hat.shape[0], m, dtype=torch.float64, device=P.device)
    for s in range(n):  # Σ_{i≤s} r̂_i P_ij, one planned edit at a time
        acc += torch.outer(R_hat[:, s].double(), P[s])
        out[s + 1] = acc.norm(dim=0).cpu().numpy()
    return out


def residual_estimates(model, tok, edits: list[dict], layer: int, templates, hp: dict, kl_prompt: str) -> torch.Tensor:
    """R̂ (d × n) float64: δ_i = v*_i − W k₀,i of each planned edit at `layer`, optimised on the model as it is."""
    out = []
    for i, fact in enumerate(edits, 1):
        t0 = time.perf_counter()
        res = vstar.optimize_delta(model, tok, prompt=fact["prompt"], subject=fact["subject"],
                                   target=fact["target_new"], layer=layer, templates=templates, hp=hp,
                                   kl_prompt=kl_prompt, norm="mlp")
        if not bool(torch.isfinite(res.delta).all()):
            raise ValueError(f"pre-edit forecast: non-finite v* shift for case {fact['case_id']} at layer {layer}")
        out.append(res.delta.double())
        log.info("pre-edit v* %d/%d case %s at layer %d: %.1f s", i, len(edits), fact["case_id"], layer,
                 time.perf_counter() - t0)  # a long job's progress in its log
    return torch.stack(out, 1)


@torch.no_grad()
def confidence_margin(model, tok, facts: list[dict], batch_size: int = 32) -> np.ndarray:
    """Per fact: min over the tokens t_k of " " + target_true of log p(t_k) − max_{v ≠ t_k} log p(v), teacher-forced
    after the prompt (> 0 iff target_true is the argmax at every token: kis.trajectory.score's "correct")."""
    texts = [f["prompt"].format(f["subject"]) for f in facts]
    prompts = [probe.prompt_ids(tok, x) for x in texts]
    tgts = [probe.target_ids(tok, x, f["target_true"]) for x, f in zip(texts, facts)]
    return np.array(probe.teacher_forced(model, probe.pad_id(tok), prompts, tgts, batch_size=batch_size,
                                         order=np.arange(len(facts)), per_fact=_margin))


def _margin(lg, t: list[int]) -> float:
    """min_k log p(t_k) − max_{v ≠ t_k} log p(v), in fp64, from the logits at the fact's target positions (K × V)."""
    logp = torch.log_softmax(lg.double(), dim=-1)
    pos, tt = torch.arange(len(t), device=logp.device), torch.tensor(t, device=logp.device)
    own = logp[pos, tt]
    other = logp.clone()
    other[pos, tt] = -torch.inf
    return float((own - other.max(-1).values).min())


def estimates(model, tok, edits: list[dict], layer: int, templates, hp: dict, kl_prompt: str,
              batch_size: int = 32) -> dict:
    """{"K_plan": (f × n) the planned edits' template-mean keys, "R_hat": (d × n) their v* shifts}, float64 on the
    CPU, at `layer` of the model as it is (the unedited one)."""
    K_plan = keys.averaged(model, tok, [f["prompt"] for f in edits], [f["subject"] for f in edits], layers=[layer],
                           templates=templates, batch_size=batch_size, where="pre-edit forecast: ")[0].T
    R_hat = residual_estimates(model, tok, edits, layer, templates, hp, kl_prompt)
    return {"K_plan": K_plan.double().cpu(), "R_hat": R_hat.cpu()}


def signature(model, edits: list[dict], method: str, hp: dict, templates, kl_prompt: str) -> dict:
    """Everything `estimates` depends on, one field each (two methods whose signatures agree share the file): the
    unedited weights, the stream, the measure layer, the edited layers (kept in fp32: editing.keep_fp32), the v*
    hyperparameters, the templates and the KL prompt. Call it before any edit or upcast."""
    from . import models, trajectory

    return {"rule": RULE, "weights": models.weights_id(model), "edits": [str(f["case_id"]) for f in edits],
            "edit_facts": trajectory.content_hash(edits), "layer": editing.measure_layer(method, hp),
            "fp32_layers": editing.edited_layers(method, hp), "vstar": {k: hp.get(k) for k in VSTAR_KEYS},
            "templates": list(templates), "kl_prompt": kl_prompt}


def save_estimates(est: dict, sig: dict, path) -> None:
    with atomic_path(path) as tmp:
        torch.save({"signature": sig, "K_plan": est["K_plan"], "R_hat": est["R_hat"]}, tmp)


def load_estimates(path, sig: dict) -> dict:
    """The estimates at `path` after checking they were made for `sig` (the trajectory's own signature): another
    stream, layer, v* setting, template or model is an error naming the field."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable pre-edit estimates file ({type(e).__name__}: {e})") from e
    diff = first_difference(st.get("signature", {}) if isinstance(st, dict) else {}, sig)
    if diff:
        raise ValueError(f"{path}: pre-edit estimates field {diff}: made for another forecast (rules/common.smk "
                         f"forecast_leader paired methods that differ)")
    n = len(sig["edits"])
    for name in ("K_plan", "R_hat"):
        if st[name].ndim != 2 or st[name].shape[1] != n:
            raise ValueError(f"{path}: {name} has shape {tuple(st[name].shape)}, expected (·, {n}) for {n} edits")
    return {"K_plan": st["K_plan"], "R_hat": st["R_hat"]}


def compute(model, tok, editor, edits: list[dict], test: list[dict], K_test: torch.Tensor,
            batch_size: int = 32, planned: dict | None = None) -> dict:
    """The pre-edit forecast of one trajectory, from the model as it is (call it before the first edit):
    {"risk": (n + 1, m) cumulative_risk, "margin": (m,), "key_norm": (m,) ‖k_j‖} at editor.measure_layer, K_test
    (f × m) the held-out keys there. planned: the `estimates` of the stream when already made (the preedit rule's
    file, checked by the caller), else they are made here."""
    ml = editor.measure_layer
    m = K_test.shape[1]
    if edits:
        if planned is None:
            planned = estimates(model, tok, edits, ml, editor.templates, editor.hp, editor.kl_prompt, batch_size)
        risk = cumulative_risk(editor.chol[ml], planned["K_plan"].to(K_test.device),
                               planned["R_hat"].to(K_test.device), K_test)
    else:
        risk = np.zeros((1, m))
    margin = confidence_margin(model, tok, test, batch_size) if test else np.zeros(0)
    return {"risk": risk, "margin": margin, "key_norm": K_test.double().norm(dim=0).cpu().numpy()}


def run_rule(*, manifest, known, facts, estimates_file, model: str, method: str, settings: dict, names,
             batch_size: int, device="cpu", logger=None):
    """Rule `preedit`: the forecast's planned keys and v* shifts of `method`'s stream on the unedited model
    (`estimates`), with their signature, for every trajectory whose forecast agrees (kis.trajectory.run_rule checks
    it). The setup (split, hyperparameters, templates, fp32 layers) is the trajectory job's own."""
    from . import trajectory

    logger = logger or log
    st = trajectory.setup(manifest=manifest, known=known, facts=facts, model=model, method=method,
                          settings=settings, names=names, device=device, logger=logger)
    edits = trajectory.facts_by_id(st.frame, st.edit_ids)
    sig = signature(st.net, edits, method, st.hp, st.templates, settings["kl_prompt"])
    editing.keep_fp32(st.net, st.layers)  # as the trajectory's editor does before its forecast
    layer = editing.measure_layer(method, st.hp)
    logger.info("%s on %s: %d planned v* at layer %d", method, model, len(edits), layer)
    est = estimates(st.net, st.tok, edits, layer, st.templates, st.hp, settings["kl_prompt"], batch_size)
    save_estimates(est, sig, estimates_file)
    return est, sig
