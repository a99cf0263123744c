"""Closed-form knowledge editing of an FFN output projection W (d × f), and seven lifelong editors
(rome, r-rome, memit, alphaedit, deltaedit, wilke, least-interference).

ROME (one key k, value v, C = E[k kᵀ]):
    u = C⁻¹k,  Λ = (v − W k) / (uᵀk),  W ← W + Λ uᵀ                      → W' k = v exactly
After n edits an unrelated key k_j has moved by
    (W_n − W_0) k_j = Σ_i Λ_i u_iᵀ k_j = Σ_i r_i P_ij,   r_i = v_i − W_{i−1} k_i,  P_ij = u_iᵀk_j / u_iᵀk_i
(Hu et al. 2025; the paper writes this Σ_i Λ_i P_ij with Λ_i standing for the residual r_i, since P is already
normalised by u_iᵀk_i). P_ij = 0 for all i ≠ j (keys orthogonal in whitening space C^-1/2 k) is lossless editing.

MEMIT (keys K f×n, residuals R d×n, spread over layers): ΔW = R ((λC + K Kᵀ)⁻¹ K)ᵀ. For one key this is
    R (C⁻¹k)ᵀ / (λ + kᵀC⁻¹k) — the ROME form again, so the interference formula holds per layer.
AlphaEdit: P = U₀U₀ᵀ (eigenvectors of C with eigenvalue < threshold), G = Σ_prev K Kᵀ,
    ΔW = R ((P (K Kᵀ + G) + l2·I)⁻¹ P K)ᵀ — not of the ROME form: the formula becomes a prediction to test.
WilKE: per edit a full ROME edit at every layer 0 … scanning_ceiling − 1, LA = ‖ΔW_l‖_F / ‖W_l‖_F, the ROME edit of
    least LA kept (the authors' wilke/wilke_main.py). least-interference: per edit one layer of a candidate window, chosen by the
    predicted damage ‖r‖ Σ_j |P_ij| on protected known facts computed before writing, then the r-ROME update there
    (LayerChoosingROME); least-interference with protect_weight w turns u to A⁻¹k̄, A = C + (w/n) K_prot K_protᵀ.
DeltaEdit: AlphaEdit, plus, when the drift score s = ‖A k‖ of the accumulated update A on the new key leaves
    μ ± α·σ (EMA mean and deviation of earlier scores), δ is kept orthogonal to the column space of [A k, A].

Every editor update is rank one per layer, ΔW_i = ρ_i u_iᵀ, along the direction u_i it actually used: C⁻¹k̄ (ROME,
r-ROME, MEMIT, WilKE, least-interference), A⁻¹k̄ (least-interference with protect_weight), k̄ (ROME without mom2_adjustment), A_i⁻¹P k_i (AlphaEdit / DeltaEdit, A_i = P(k_i k_iᵀ + G) + l2·I).
So with r_i = ΔW_i k_i and P_ij = u_iᵀk_j / u_iᵀk_i the change of any key is Σ_i r_i P_ij exactly, for every method.
Every editor edits W through kis.models.ffn_weight (in place; the edited layers kept in fp32, keep_fp32) and reports,
at its `measure_layer` (whose keys no edit of the method moves), the key k_i it wrote, r_i and u_i, from which
kis.trajectory predicts the interference. Trajectory table columns (trajectories/{model}/{method}.parquet) are listed
in kis.trajectory.TRAJECTORY_COLUMNS.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import torch

from . import keys, models, vstar
from .probe import device_of

log = logging.getLogger(__name__)

# the methods and their hyperparameter resolution live in kis.hparams (read while the DAG is built, without torch)
from .hparams import (LAYER_CHOOSING, METHODS, ROME_FAMILY, WINDOW_FAMILY, default_layer, edited_layers,  # noqa: E402,F401
                      measure_layer, resolve_hparams)


class EditDiverged(RuntimeError):
    """An edit produced a non-finite update or weight; the trajectory records it and stops."""


# ---------------------------------------------------------------- closed forms (float64 tensors)

def cholesky(C: torch.Tensor, ridge: float = 0.0, where: str = "") -> torch.Tensor:
    """Lower Cholesky factor of C (+ ridge · tr(C)/f · I); a clear error when C is not positive definite."""
    C = C.double()
    if ridge:
        C = C + ridge * torch.trace(C) / C.shape[0] * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    L, info = torch.linalg.cholesky_ex(C)
    if int(info) != 0:
        raise ValueError(f"{where}C is not positive definite (Cholesky failed at column {int(info)}): the covariance "
                         "needs more tokens than the FFN width, or set editing.cov_ridge > 0")
    return L


def whiten(L: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u = C⁻¹k via the Cholesky factor (k: (f,) or (f, n))."""
    col = k.ndim == 1
    u = torch.cholesky_solve(k.double().reshape(k.shape[0], -1), L)
    return u[:, 0] if col else u


def rome_update(W: torch.Tensor, L: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_dir=None):
    """(Λ, u, ΔW): u = C⁻¹k_dir (k_dir = k by default), Λ = (v − W k)/(uᵀk), ΔW = Λ uᵀ — so W' k = v exactly."""
    W, k, v = W.double(), k.double(), v.double()
    u = whiten(L, k if k_dir is None else k_dir.double())
    lam = (v - W @ k) / (u @ k)
    return lam, u, torch.outer(lam, u)


def p_matrix(U: torch.Tensor, K_edit: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """P_ij = u_iᵀk_j / u_iᵀk_i with U (f × n) = C⁻¹K_edit, K_edit (f × n), K (f × m) → (n × m)."""
    return (U.T @ K) / (U * K_edit).sum(0)[:, None]


def predicted_change(R: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Σ_i r_i P_ij for every j: R (d × n), P (n × m) → (d × m)."""
    return R @ P


def memit_direction(C: torch.Tensor, K: torch.Tensor, lam: float) -> torch.Tensor:
    """U = (λC + K Kᵀ)⁻¹ K (f × n): the update directions of memit_update."""
    K = K.double()
    return torch.linalg.solve(lam * C.double() + K @ K.T, K)


def memit_update(C: torch.Tensor, K: torch.Tensor, R: torch.Tensor, lam: float) -> torch.Tensor:
    """ΔW = R ((λC + K Kᵀ)⁻¹ K)ᵀ; K (f × n), R (d × n)."""
    return R.double() @ memit_direction(C, K, lam).T


def per_layer(value, layer: int, name: str) -> float:
    """A hyperparameter given once (a number) or per layer ({layer: number}; keys may be strings, as in JSON)."""
    if not isinstance(value, dict):
        return float(value)
    for key in (layer, str(layer)):
        if key in value:
            return float(value[key])
    raise ValueError(f"{name} is given per layer ({', '.join(map(str, value))}) but not for layer {layer}")


def nullspace_projector(C: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """(U₀U₀ᵀ, dim): projector onto the eigenvectors of C with eigenvalue < threshold (AlphaEdit)."""
    ev, U = torch.linalg.eigh(C.double())
    U0 = U[:, ev < threshold]
    return U0 @ U0.T, int(U0.shape[1])


def alphaedit_direction(P: torch.Tensor, K: torch.Tensor, G: torch.Tensor, l2: float) -> torch.Tensor:
    """U = (P (K Kᵀ + G) + l2·I)⁻¹ P K (f × n): the update directions of alphaedit_update."""
    K = K.double()
    A = P @ (K @ K.T + G) + l2 * torch.eye(P.shape[0], dtype=P.dtype, device=P.device)
    return torch.linalg.solve(A, P @ K)


def alphaedit_update(P: torch.Tensor, K: torch.Tensor, R: torch.Tensor, G: torch.Tensor, l2: float) -> torch.Tensor:
    """ΔW = R ((P (K Kᵀ + G) + l2·I)⁻¹ P K)ᵀ; G = Σ of K Kᵀ over earlier edits."""
    return R.double() @ alphaedit_direction(P, K, G, l2).T


def orthogonal_complement(M: torch.Tensor, threshold: float, max_rank: int) -> tuple[torch.Tensor, int]:
    """(I − U Uᵀ, rank): U = left singular vectors of M (d × m) with σ² > threshold, at most max_rank of them."""
    U, S, _ = torch.linalg.svd(M.double(), full_matrices=False)
    keep = U[:, S ** 2 > threshold][:, :max_rank]
    eye = torch.eye(M.shape[0], dtype=torch.float64, device=M.device)
    return eye - keep @ keep.T, int(keep.shape[1])


@dataclass
class DriftMonitor:
    """EMA mean μ and variance σ² of a score; `check(s)` is True when |s − μ| > α·σ after `warmup` scores, or, given
    the edit number, from edit warmup + 1 on (DeltaEdit: `case_ids > 20`, CaoD-USTC/DeltaEdit DeltaEdit/compute_z.py:161,
    case_ids counting the edits so far including this one, :15, :28-29; its first edit has no score, so counting
    scores would start a step late). Scores that trigger are not folded into the averages."""
    alpha: float
    decay: float = 0.9
    warmup: int = 20
    mean: float | None = None
    var: float = 0.0
    seen: int = 0

    def check(self, s: float, edit: int | None = None) -> bool:
        self.seen += 1
        if self.mean is None:
            self.mean = s
            return False
        if (self.seen if edit is None else int(edit)) > self.warmup and self.var > 0 and abs(s - self.mean) > self.alpha * self.var ** 0.5:
            return True
        self.mean = self.decay * self.mean + (1 - self.decay) * s
        self.var = self.decay * self.var + (1 - self.decay) * (s - self.mean) ** 2
        return False


# ---------------------------------------------------------------- hyperparameters

TABLE_KEYS = ("layer", "layers", "mom2_update_weight", "v_lr", "v_num_grad_steps", "v_weight_decay",
              "clamp_norm_factor", "kl_factor", "mom2_adjustment", "nullspace_threshold", "L2", "var", "space",
              "n_protected", "per_layer_vstar", "scanning_ceiling")


def hparams_table(settings: dict, model_specs: dict) -> tuple[list[dict], list[str]]:
    """(rows, sources): one row per model × configured method with the TABLE_KEYS values, each "value [n]" with n
    the 1-based index of its source in `sources`. model_specs: {model: {names, n_layers, d_ff}}."""
    rows, sources = [], []
    for model, spec in model_specs.items():
        for method in settings.get("methods", METHODS):
            hp = resolve_hparams(settings, method, int(spec["n_layers"]), spec.get("names", [model]),
                                 int(spec["d_ff"]))
            row = {"model": model, "method": method}
            for key in TABLE_KEYS:
                if key not in hp:
                    continue
                src = hp["sources"].get(key, "")
                if src not in sources:
                    sources.append(src)
                v = hp[key]
                v = f"{v[0]}–{v[-1]}" if isinstance(v, list) and len(v) > 1 else v
                row["layers" if key == "layer" else key] = f"{v} [{sources.index(src) + 1}]"
            rows.append(row)
    return rows, sources


def hparams_markdown(settings: dict, model_specs: dict) -> str:
    """hparams_table as a Markdown table and its numbered sources."""
    rows, sources = hparams_table(settings, model_specs)
    cols = ["model", "method"] + [k for k in TABLE_KEYS if k != "layer" and any(k in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    lines += [""] + [f"[{i}] {s}  " for i, s in enumerate(sources, 1)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- precision and keys

def keep_fp32(model, layers) -> dict:
    """Keep the edited layers in fp32 whatever the model's dtype: each FFN output projection (nn.Linear or GPT-2's
    Conv1D) is upcast in place, a forward pre-hook casts its input to fp32 and a forward hook its output back to the
    model's dtype. Rounding each update into bf16 weights would make the change on held-out keys differ from the
    exact one by a large fraction (and leak out of AlphaEdit's null space). Idempotent. → precision record."""
    model_dtype = None
    for layer in sorted(set(int(x) for x in layers)):
        mod = models.ffn_out(model, layer)
        dt = getattr(mod, "_kis_out_dtype", None) or mod.weight.dtype
        model_dtype = model_dtype or dt
        if getattr(mod, "_kis_out_dtype", None) is not None or dt in (torch.float32, torch.float64):
            continue
        mod.float()
        mod.register_forward_pre_hook(lambda _m, args: (args[0].float(), *args[1:]))
        mod.register_forward_hook(lambda _m, _args, out, dt=dt: out.to(dt))
        mod._kis_out_dtype = dt
        log.info("layer %d: FFN output projection kept in float32 (model dtype %s)", layer, dt)
    edited = models.ffn_weight(model, max(int(x) for x in layers)).dtype
    return {"model_dtype": str(model_dtype).replace("torch.", ""), "edited_dtype": str(edited).replace("torch.", "")}


def template_groups(templates) -> list[list[str]]:
    """MEMIT's context-template groups (memit/compute_ks.py averages within each group, then over groups): the bare
    prompt "{}" alone, the other templates together (MEMIT: [["{}"], 5 generated prefixes of one length]), so the
    bare prompt weighs ½."""
    templates = list(templates)
    if not templates or templates[0] != "{}":
        raise ValueError(f"context_templates must start with '{{}}' (the bare prompt), got {templates[:1]}")
    return [["{}"]] + ([templates[1:]] if len(templates) > 1 else [])


def group_key(model, tok, fact: dict, layer: int, templates) -> torch.Tensor:
    """(f,) float64: the key of MEMIT's compute_ks: mean over template_groups of the mean within each group."""
    return torch.stack([fact_key(model, tok, fact, layer, g)[0] for g in template_groups(templates)]).mean(0)


# ---------------------------------------------------------------- editors

@dataclass
class EditResult:
    case_id: int
    key: torch.Tensor        # (f,) the key written at the measure layer
    residual: torch.Tensor   # (d,) r_i = ΔW_i k_i at the measure layer
    v_prob: float
    delta_norm: float
    triggered: bool = False
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    direction: torch.Tensor | None = None  # (f,) u_i: ΔW_i = ρ_i u_iᵀ at the measure layer
    layer: int | None = None               # the layer of key / residual / direction (None: the measure layer)


def _apply(model, layer: int, dW: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(dW).all()):
        raise EditDiverged(f"{where}: non-finite update at layer {layer}")
    W = models.ffn_weight(model, layer)
    with torch.no_grad():
        W.add_(dW.to(device=W.device, dtype=W.dtype))
    if not bool(torch.isfinite(W).all()):
        raise EditDiverged(f"{where}: non-finite weight at layer {layer} after the update")


def to_ffn_space(model, tok, fact: dict, layer: int, R: torch.Tensor, iters: int = 8) -> torch.Tensor:
    """Δm with norm(m + Δm) ≈ norm(m) + R, m the FFN output of the fact's bare prompt: the change of the FFN output
    that moves the block output by R (d × 1) where a norm sits between them (Gemma 2/3; MEMIT assumes none). Gauss-
    Newton, Δm ← Δm + J⁺ (norm(m) + R − norm(m + Δm)), J = ∂norm/∂m at m + Δm: least squares, since an RMS norm's
    output cannot change its own scale (beyond its ε). The norm's output is blind to the scale of m + Δm, so after
    every step m + Δm moves along its own ray to the point nearest m (x ← x ⟨x, m⟩/‖x‖², RMS kept ≥ 0.1·RMS(m) and
    ≥ 10√ε): the smallest Δm, hence the smallest ΔW, for the same output — without it each tangential step grows
    ‖m + Δm‖ and, over a stream, ‖ΔW‖ compounds (Gemma-3-270M: 99,278 after 100 MEMIT edits). RMS(m + Δm) ≤
    10·max(RMS(m), √ε) still caps it. R itself where the FFN output joins the residual stream as it is."""
    norm = models.post_ffn_norm(model, layer)
    if norm is None:
        return R
    dtype = next(norm.parameters()).dtype
    m = vstar.ffn_output(model, tok, fact["prompt"], fact["subject"], layer)

    def f(x):
        return norm(x.to(dtype)).double()

    def rms(x) -> float:
        return float(x.pow(2).mean().sqrt())

    with torch.no_grad():
        target = f(m) + R[:, 0]
    dm = torch.zeros_like(m)
    miss = R[:, 0].double()  # target − norm(m)
    eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))
    rms_m = rms(m)
    cap = 10 * max(rms_m, eps ** 0.5)  # largest RMS of m + Δm
    floor = max(0.1 * rms_m, 10 * eps ** 0.5)  # smallest RMS of m + Δm (below ~√ε the norm's ε moves the output)

    def nearest_on_ray(dm, miss):
        """(Δm, miss) with m + Δm moved along its ray to the point nearest m, if that misses no more."""
        x = m + dm
        size = rms(x)
        if size == 0.0:
            return dm, miss
        s = max(float(x @ m) / float(x @ x), floor / size)
        new_dm = s * x - m
        new_miss = target - f(m + new_dm).detach()
        ok = float(new_miss.norm()) <= float(miss.norm()) + 1e-6 * float(target.norm())  # float rounding only
        return (new_dm, new_miss) if ok else (dm, miss)

    capped = False
    for _ in range(iters):
        if float(miss.norm()) <= 1e-9 * float(target.norm()):
            break
        J = torch.autograd.functional.jacobian(f, m + dm).double()  # (d × d)
        # rtol 1e-3 drops the near-null radial direction (scale only moves the output through the norm's ε): a
        # target off the reachable set is met in least squares, not by blowing m up
        step = torch.linalg.pinv(J, rtol=1e-3) @ miss
        for _ in range(10):  # backtracking: take a step only where it lowers the miss
            new_miss = target - f(m + dm + step).detach()
            if float(new_miss.norm()) < float(miss.norm()):
                dm, miss = nearest_on_ray(dm + step, new_miss)
                break
            step = step / 2
        else:
            break
        size = rms(m + dm)
        if size > cap:  # past 10·√ε the output is saturated: more size only chases an asymptote (‖ΔW‖ → ∞)
            dm = (m + dm) * (cap / size) - m
            capped = True
            break
    if capped:
        with torch.no_grad():
            miss = target - f(m + dm)
    share = float(miss.norm()) / max(float(R.norm()), 1e-30)
    if capped or share > 1e-3:  # what MEMIT asked for is not what it writes: logged, never silent (the radial part
        # of R is out of reach at most layers of Gemma 3, so the plain miss is INFO; the cap is a fallback: WARNING)
        log.log(logging.WARNING if capped else logging.INFO,
                "case %s layer %d: the post-FFN norm cannot reach the block-output residual: met in least squares, "
                "%.1f %% of ‖R‖ missed%s", fact.get("case_id"), layer, 100 * share,
                f", RMS of the FFN output capped at 10× ({cap:.3g})" if capped else "")
    return dm[:, None]


def fact_key(model, tok, fact: dict, layer: int, templates) -> torch.Tensor:
    """(1, f) float64 on the model's device: the fact's key at `layer`, averaged over the templates (kis.keys)."""
    k = keys.averaged(model, tok, [fact["prompt"]], [fact["subject"]], layers=[layer], templates=templates,
                      where=f"case {fact['case_id']}: ")
    return k[0].to(device_of(model))


class ROME:
    """ROME (Meng et al. 2022; rome/compute_u.py, compute_v.py): u = C⁻¹k̄ (k̄: the key averaged over the context
    templates; u = k̄ when mom2_adjustment is false), v* = W k₀ + δ with k₀ the bare prompt's key, Λ = δ / (uᵀk₀):
    W' k₀ = v* exactly. When k₀ is far from k̄ (uᵀk₀ ≪ uᵀk̄) Λ is huge: the "disabling edit" that collapses ROME in
    sequential editing, recorded as the result it is.
    r-ROME (Gupta et al. 2024; rebuilding-rome rome/compute_v.py with random-prefix keys): Λ = (W k₀ + δ − W k̄) /
    (uᵀk̄): W' k̄ = v* exactly. Both are rank one along u, so r_i = ΔW_i k̄ and Σ r_i P_ij is exact."""
    name = "rome"

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        self.model, self.tok, self.hp = model, tok, hp
        self.templates, self.kl_prompt = list(templates), kl_prompt
        template_groups(self.templates)  # the first template must be the bare prompt
        self.layer = int(hp["layer"])
        self.layers = [self.layer]
        self.measure_layer = self.layer
        self.precision = keep_fp32(model, self.layers)
        dev = device_of(model)
        self.chol = {self.layer: cholesky(covs[self.layer].to(dev), ridge, f"layer {self.layer}: ")}
        f = covs[self.layer].shape[0]
        # the update direction u = C⁻¹k̄, or k̄ itself (cholesky_solve with L = I) without mom2_adjustment
        self.dir_chol = self.chol[self.layer] if hp.get("mom2_adjustment", True) else \
            torch.eye(f, dtype=torch.float64, device=dev)

    def edit(self, fact: dict) -> EditResult:
        t0 = time.perf_counter()
        where = f"{self.name} case {fact['case_id']}"
        k = fact_key(self.model, self.tok, fact, self.layer, self.templates)[0]      # k̄
        k0 = fact_key(self.model, self.tok, fact, self.layer, ["{}"])[0]             # the bare prompt's key
        res = vstar.optimize_delta(self.model, self.tok, prompt=fact["prompt"], subject=fact["subject"],
                                  target=fact["target_new"], layer=self.layer, templates=self.templates, hp=self.hp,
                                  kl_prompt=self.kl_prompt, norm="mlp")
        if not bool(torch.isfinite(res.delta).all()):
            raise EditDiverged(f"{where}: non-finite δ")
        W = models.ffn_weight(self.model, self.layer).detach().double()
        v = W @ k0 + res.delta                                    # v* = W k₀ + δ
        # ROME writes v* at k₀, r-ROME at k̄; both along u = C⁻¹k̄
        _lam, u, dW = rome_update(W, self.dir_chol, k0 if self.name == "rome" else k, v, k_dir=k)
        _apply(self.model, self.layer, dW, where)
        return EditResult(int(fact["case_id"]), k, dW @ k, res.prob, float(res.delta.norm()),
                          seconds=time.perf_counter() - t0, info={"steps": res.steps, "nll": res.nll}, direction=u)


class RROME(ROME):
    """r-ROME: v* written at the template-mean key k̄ (see ROME)."""
    name = "r-rome"


class MEMIT:
    """z = block output of the last layer + δ, written into every layer of the range, residual shared out."""
    name = "memit"

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        self.model, self.tok, self.hp = model, tok, hp
        self.templates, self.kl_prompt = list(templates), kl_prompt
        self.layers = sorted(int(x) for x in hp["layers"])
        self.z_layer = self.layers[-1]
        self.measure_layer = self.layers[0]   # no edit of the range moves its keys
        template_groups(self.templates)       # the first template must be the bare prompt
        self.precision = keep_fp32(model, self.layers)
        dev = device_of(model)
        self.covs = {layer: covs[layer].to(dev).double() for layer in self.layers}
        if ridge:
            for layer, C in self.covs.items():
                self.covs[layer] = C + ridge * torch.trace(C) / C.shape[0] * torch.eye(C.shape[0], dtype=C.dtype,
                                                                                      device=dev)
        self.chol = {self.measure_layer: cholesky(self.covs[self.measure_layer], 0.0,
                                                  f"layer {self.measure_layer}: ")}

    def project(self, fact: dict):
        return None, False, {}

    def layer_direction(self, layer: int, K: torch.Tensor) -> torch.Tensor:
        """U (f × n): the layer's update is ΔW = R Uᵀ."""
        return memit_direction(self.covs[layer], K, float(self.hp["mom2_update_weight"]))

    def after_layer(self, layer: int, K: torch.Tensor, dW: torch.Tensor) -> None:
        pass

    def edit(self, fact: dict) -> EditResult:
        t0 = time.perf_counter()
        where = f"{self.name} case {fact['case_id']}"
        proj, triggered, info = self.project(fact)
        res = vstar.optimize_delta(self.model, self.tok, prompt=fact["prompt"], subject=fact["subject"],
                                  target=fact["target_new"], layer=self.z_layer, templates=self.templates,
                                  hp=self.hp, kl_prompt=self.kl_prompt, norm="block", project=proj)
        if not bool(torch.isfinite(res.delta).all()):
            raise EditDiverged(f"{where}: non-finite δ")
        z = res.v0_block + res.delta
        key = resid = direction = None
        for i, layer in enumerate(self.layers):
            k = group_key(self.model, self.tok, fact, layer, self.templates)  # memit/compute_ks.py
            K = k[:, None]                                              # (f × 1)
            cur = vstar.block_output(self.model, self.tok, fact["prompt"], fact["subject"], self.z_layer)
            R = ((z - cur) / (len(self.layers) - i))[:, None]           # residual shared over the layers left
            R = to_ffn_space(self.model, self.tok, fact, layer, R)      # through a post-FFN norm (Gemma 2/3)
            U = self.layer_direction(layer, K)
            dW = R @ U.T
            _apply(self.model, layer, dW, where)
            self.after_layer(layer, K, dW)
            if layer == self.measure_layer:
                key, resid, direction = k, dW @ k, U[:, 0]
        info.update(steps=res.steps, nll=res.nll)
        return EditResult(int(fact["case_id"]), key, resid, res.prob, float(res.delta.norm()), triggered=triggered,
                          seconds=time.perf_counter() - t0, info=info, direction=direction)


class AlphaEdit(MEMIT):
    """MEMIT with the update projected onto the null space of C and of the keys of earlier edits."""
    name = "alphaedit"
    state_attrs = ("G",)  # what earlier edits leave behind (editor_state)

    def __init__(self, model, tok, covs, hp, templates, kl_prompt="{} is a", ridge: float = 0.0):
        super().__init__(model, tok, covs, hp, templates, kl_prompt, ridge)
        self.P, self.G = {}, {}
        for layer in self.layers:
            thr = per_layer(hp["nullspace_threshold"], layer, "nullspace_threshold")
            self.P[layer], dim = nullspace_projector(self.covs[layer], thr)
            self.G[layer] = torch.zeros_like(self.covs[layer])
            log.info("%s layer %d: null space of C (eigenvalue < %g) has %d of %d dimensions", self.name, layer,
                     thr, dim, self.covs[layer].shape[0])
            if dim == 0:
                log.warning("%s layer %d: the null space is empty, so every update is zero; raise "
                            "nullspace_threshold", self.name, layer)

    def layer_direction(self, layer, K):
        return alphaedit_direction(self.P[layer], K, self.G[layer], float(self.hp["L2"]))

    def after_layer(self, layer, K, dW):
        self.G[layer] += K.double() @ K.double().T


class DeltaEdit(AlphaEdit):
    """AlphaEdit + the dynamic orthogonal constraint on δ against the accumulated update of the z layer."""
    name = "deltaedit"
    state_attrs = ("G", "A", "monitor", "n_edits")

    def __init__(self, model, tok, covs, hp, templates, kl_prompt="{} is a", ridge: float = 0.0):
        super().__init__(model, tok, covs, hp, templates, kl_prompt, ridge)
        d, f = models.dims(model)
        self.A = torch.zeros((d, f), dtype=torch.float64, device=device_of(model))
        self.monitor = DriftMonitor(alpha=float(hp["var"]), decay=float(hp.get("ema_decay", 0.9)),
                                    warmup=int(hp.get("warmup", 20)))
        self.n_edits = 0

    def project(self, fact):
        self.n_edits += 1
        if self.n_edits == 1:  # no accumulated update yet
            return None, False, {}
        k = fact_key(self.model, self.tok, fact, self.z_layer, ["{}"])[0]
        noise = self.A @ k
        score = float(noise.norm())
        if not self.monitor.check(score, edit=self.n_edits):
            return None, False, {"drift": score}
        d = self.A.shape[0]
        M = torch.cat([noise[:, None], self.A], 1)                     # [A k, A]: d × (1 + f)
        P, rank = orthogonal_complement(M, float(self.hp.get("svd_threshold", 0.1)),
                                        max(1, int(round(float(self.hp["space"]) * d))))
        log.info("deltaedit case %s: drift %.4g outside %.4g ± %.3g·%.4g; δ kept orthogonal to %d directions",
                 fact["case_id"], score, self.monitor.mean, self.monitor.alpha, self.monitor.var ** 0.5, rank)
        return P, True, {"drift": score, "rank": rank}

    def after_layer(self, layer, K, dW):
        super().after_layer(layer, K, dW)
        if layer == self.z_layer:
            self.A += dW


# ---------------------------------------------------------------- one layer per edit, chosen from a window

def load_ratio(W: torch.Tensor, dW: torch.Tensor) -> float:
    """WilKE's LA of an update: ‖W' − W‖_F / ‖W‖_F (ChenhuiHu/WilKE wilke/wilke_main.py:63-64)."""
    return float(dW.double().norm() / W.double().norm())


def predicted_damage(r: torch.Tensor, u: torch.Tensor, k: torch.Tensor, K_prot: torch.Tensor) -> float:
    """Σ_j ‖r P_j‖ = ‖r‖ Σ_j |uᵀk_j| / |uᵀk| over protected keys K_prot (f × m): what a rank-one edit ΔW = ρ uᵀ
    with residual r = ΔW k moves the protected keys, summed (the paper's Σ_j |Λ_i P_ij|)."""
    P = (u.double() @ K_prot.double()) / (u.double() @ k.double())
    return float(r.double().norm() * P.abs().sum())


class LayerChoosingROME:
    """ROME-style editing at one layer per edit, chosen from hp['layers'] (every candidate needs its C) by the
    lowest `score` computed before writing; then the r-ROME closed form at that layer (v* = W k₀ + δ written at
    the template-mean key k̄, u = C⁻¹k̄; hp write_at: prompt writes at k₀ as ROME). Subclasses define score().
    per_layer_vstar (default true): δ optimised at every candidate layer, all in one batch (vstar.optimize_deltas; on
    a CPU still ≈ |window| ROME edits: 1.25× less than one layer at a time on Gemma-3-270M); false: one δ
    at the nominal layer (the window's last) scores every candidate (first order: W_l k₀ + δ is the value wanted at
    layer l), and δ is optimised again only at the chosen layer when it differs (≤ 2 ROME edits)."""

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        self.model, self.tok, self.hp = model, tok, hp
        self.templates, self.kl_prompt = list(templates), kl_prompt
        template_groups(self.templates)
        self.layers = sorted(int(x) for x in hp["layers"])
        self.measure_layers = list(self.layers)   # each edit lands in one of them: interference over all
        self.measure_layer = self.layers[0]
        self.nominal = self.layers[-1]
        self.precision = keep_fp32(model, self.layers)
        dev = device_of(model)
        self.chol = {layer: cholesky(covs[layer].to(dev), ridge, f"layer {layer}: ") for layer in self.layers}
        self.per_layer_vstar = bool(hp.get("per_layer_vstar", True))
        self.last_keys = None  # the keys the last edit wrote at, one per candidate layer (f,)

    def factor(self, layer: int) -> torch.Tensor:
        """Cholesky factor of the matrix whose inverse turns the key into the update direction (C: r-ROME)."""
        return self.chol[layer]

    def _deltas(self, fact, layers) -> dict:
        """{layer: v* result}: δ at each of `layers`, optimised side by side in one batch (vstar.optimize_deltas)."""
        res = vstar.optimize_deltas(self.model, self.tok, prompt=fact["prompt"], subject=fact["subject"],
                                    target=fact["target_new"], layers=layers, templates=self.templates, hp=self.hp,
                                    kl_prompt=self.kl_prompt, norm="mlp")
        for layer, r in zip(layers, res):
            if not bool(torch.isfinite(r.delta).all()):
                raise EditDiverged(f"{self.name} case {fact['case_id']}: non-finite δ at layer {layer}")
        return dict(zip(layers, res))

    def candidate(self, layer: int, k: torch.Tensor, k0: torch.Tensor, delta: torch.Tensor) -> dict:
        """The ROME-style update at `layer` (not applied): W, u, ΔW and the residual r = ΔW k̄."""
        W = models.ffn_weight(self.model, layer).detach().double()
        at = k0 if self.hp.get("write_at", "mean") == "prompt" else k
        _lam, u, dW = rome_update(W, self.factor(layer), at, W @ k0 + delta, k_dir=k)
        return {"layer": layer, "k": k, "k0": k0, "W": W, "u": u, "dW": dW, "r": dW @ k, "delta": delta}

    def score(self, cand: dict) -> float:
        raise NotImplementedError

    def edit(self, fact: dict) -> EditResult:
        t0 = time.perf_counter()
        where = f"{self.name} case {fact['case_id']}"
        kbar = keys.averaged(self.model, self.tok, [fact["prompt"]], [fact["subject"]], layers=self.layers,
                             templates=self.templates, where=f"case {fact['case_id']}: ")[:, 0]
        k0s = keys.averaged(self.model, self.tok, [fact["prompt"]], [fact["subject"]], layers=self.layers,
                            where=f"case {fact['case_id']}: ")[:, 0]
        dev = device_of(self.model)
        res = self._deltas(fact, self.layers if self.per_layer_vstar else [self.nominal])
        cands, scores = [], []
        for i, layer in enumerate(self.layers):
            delta = res[layer if self.per_layer_vstar else self.nominal].delta
            cands.append(self.candidate(layer, kbar[i].to(dev), k0s[i].to(dev), delta))
            scores.append(self.score(cands[-1]))
        best = min(range(len(cands)), key=lambda i: scores[i])
        c = cands[best]
        if c["layer"] not in res:  # shared δ: optimise the chosen layer's own
            res.update(self._deltas(fact, [c["layer"]]))
            c = self.candidate(c["layer"], c["k"], c["k0"], res[c["layer"]].delta)
        _apply(self.model, c["layer"], c["dW"], where)
        self.last_keys = [(k0s if self.hp.get("write_at", "mean") == "prompt" else kbar)[i].to(dev)
                          for i in range(len(self.layers))]
        r = res[c["layer"]]
        info = {"steps": r.steps, "nll": r.nll, "layer": c["layer"],
                "scores": {int(layer): float(s) for layer, s in zip(self.layers, scores)}}
        return EditResult(int(fact["case_id"]), c["k"], c["r"], r.prob, float(c["delta"].norm()),
                          seconds=time.perf_counter() - t0, info=info, direction=c["u"], layer=c["layer"])


class WilKE(LayerChoosingROME):
    """WilKE (Hu et al. 2024, arXiv 2402.10987) as the authors' code does it (github ChenhuiHu/WilKE, files cited
    at HEAD of its default branch):
    - candidates: layers 0 … scanning_ceiling − 1 — `for cur_layer in range(hparams.scanning_ceiling)`
      (wilke/wilke_main.py:49; the ceiling itself is not scanned); published ceilings 24 of GPT-2-XL's 48 layers
      (hparams/WilKE/gpt2-xl.json:2) and 7 of GPT-J's 28 (hparams/WilKE/EleutherAI_gpt-j-6B.json:2);
    - per candidate a full ROME edit there (wilke_main.py:50-60 → execute_wilke → get_deltas, :110-270: compute_u,
      compute_v, wilke/compute_u.py and wilke/compute_v.py, which equal rome/compute_u.py and rome/compute_v.py but
      for imports): u = C⁻¹k̄ (mom2_adjustment, k̄ over the context templates), v* = W k₀ + δ written at the bare
      prompt's key k₀ (compute_v's right vector (target − cur_output) / (cur_input · u), cur_input at the prompt);
    - LA_l = ‖W_l' − W_l‖_F / ‖W_l‖_F of that edit (wilke_main.py:61-66, load_ratio), then the layer restored (:68);
    - l* = the candidate of least LA, the first on ties (`LAs["LA"].index(min(LAs["LA"]))`, :89-91), and ROME
      applied at l* once more (:94-103).
    Here every candidate's δ is optimised on the same restored model, so all of them are found in one batch
    (vstar.optimize_deltas: the same δ_l as one call per layer — tests/test_knowledge.py; hp batched_vstar false:
    one call per layer); and the update written at l* is that candidate's own: ROME again at l* on the restored model
    finds the same δ (the optimisation is deterministic), which tests/test_wilke.py checks against a by-hand loop
    over full ROME edits (kis.editing.ROME) that does re-run it.
    Cost: scanning_ceiling full ROME edits (v* optimisations, one batch) per edit, and C at every candidate layer;
    the interference is measured over all candidate layers (measure_layers). The chosen layer of each edit is
    EditResult.layer (the trajectory's edit_layers column); info["scores"] holds every candidate's LA."""
    name = "wilke"

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        hp = dict(hp)
        ceiling = hp.get("scanning_ceiling")
        if ceiling is None:  # a caller that gives the candidates: they must be WilKE's 0 … ceiling − 1
            if "layers" not in hp:
                raise ValueError("wilke needs hp scanning_ceiling (candidates 0 … scanning_ceiling − 1)")
            ceiling = len(hp["layers"])
        ceiling = int(ceiling)
        want = list(range(ceiling))
        if ceiling < 1 or sorted(int(x) for x in hp.get("layers", want)) != want:
            raise ValueError(f"wilke scans layers 0 … scanning_ceiling − 1 (wilke/wilke_main.py:49): got "
                             f"scanning_ceiling {hp.get('scanning_ceiling')} and layers {hp.get('layers')}")
        if not hp.get("mom2_adjustment", True):
            raise ValueError("wilke: mom2_adjustment false (u = k̄) is not implemented; the published files set true")
        hp.update(layers=want, scanning_ceiling=ceiling, per_layer_vstar=True, write_at="prompt")
        super().__init__(model, tok, covs, hp, templates, kl_prompt, ridge)
        self.batched_vstar = bool(hp.get("batched_vstar", True))

    def _deltas(self, fact, layers) -> dict:
        if self.batched_vstar:
            return super()._deltas(fact, layers)
        out = {}
        for layer in layers:
            out.update(super()._deltas(fact, [layer]))
        return out

    def score(self, cand):
        return load_ratio(cand["W"], cand["dW"])


class LeastInterference(LayerChoosingROME):
    """Superposition-aware editing (this workflow): per edit, the candidate layer l of least predicted damage on a
    protected set of known facts (never the held-out ones), computed before writing:
        l* = argmin_l ‖r_l‖ Σ_j |P_lj|,  P_lj = u_lᵀk_j / u_lᵀk̄_l,  u_l = C_l⁻¹k̄_l,  r_l = ΔW_l k̄_l
    (the paper's Σ_j |Λ_i P_ij| of the update this edit needs at l), then the r-ROME update at l*. The protected
    keys k_j (bare prompt, subject's last token, every candidate layer) are taken once from the unedited model.
    hp protect_weight w > 0 also turns the direction within each layer away from the protected keys and from the
    keys every earlier edit wrote at (K, f × m; the earlier edits join the damage sum too):
        u_l = A_l⁻¹k̄_l,  A_l = C_l + (w / n_protected) K Kᵀ   — argmin uᵀC u + (w/n) Σ_j (uᵀk_j)² s.t. uᵀk̄ = 1
    (w = 1: the protected facts weigh as much as the corpus behind C; w → ∞: the update's direction is C-orthogonal
    to them, an exact null-space edit of those keys; w = 0: u = C⁻¹k̄ as above)."""
    name = "least-interference"
    state_attrs = ("K_done",)

    def __init__(self, model, tok, covs, hp, templates, kl_prompt="{} is a", ridge: float = 0.0, protected=None):
        super().__init__(model, tok, covs, hp, templates, kl_prompt, ridge)
        if not protected:
            raise ValueError("least-interference needs a protected set of known facts (disjoint from the edits and the held-out set)")
        self.protected_ids = [int(f["case_id"]) for f in protected]
        K = keys.averaged(model, tok, [f["prompt"] for f in protected], [f["subject"] for f in protected],
                          layers=self.layers, where="protected facts: ")
        dev = device_of(model)
        self.K_prot = {layer: K[i].to(dev).T for i, layer in enumerate(self.layers)}  # f × m
        self.protect_weight = float(hp.get("protect_weight", 0.0))
        if self.protect_weight < 0:
            raise ValueError(f"least-interference protect_weight must be ≥ 0, got {self.protect_weight}")
        self.ridge = ridge
        self.C = {layer: covs[layer].to(dev).double() for layer in self.layers} if self.protect_weight else {}
        self.K_done = {layer: [] for layer in self.layers}  # keys earlier edits wrote at (protect_weight > 0)
        self._factors = {}
        log.info("least-interference: %d protected facts, candidate layers %s, protect_weight %g", len(protected), self.layers,
                 self.protect_weight)

    def protected_keys(self, layer: int) -> torch.Tensor:
        """K (f × m): the protected facts' keys, and (protect_weight > 0) those earlier edits wrote at."""
        K = self.K_prot[layer]
        if self.K_done[layer]:
            K = torch.cat([K.double(), torch.stack(self.K_done[layer], 1).double()], 1)
        return K

    def factor(self, layer):
        if not self.protect_weight:
            return self.chol[layer]
        if layer not in self._factors:
            K = self.protected_keys(layer).double()
            C = self.C[layer]
            if self.ridge:  # the ridge of C alone, as in the r-ROME factor
                C = C + self.ridge * torch.trace(C) / C.shape[0] * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
            A = C + (self.protect_weight / len(self.protected_ids)) * (K @ K.T)
            self._factors[layer] = cholesky(A, 0.0, f"least-interference layer {layer}: ")
        return self._factors[layer]

    def score(self, cand):
        return predicted_damage(cand["r"], cand["u"], cand["k"], self.protected_keys(cand["layer"]))

    def edit(self, fact):
        res = super().edit(fact)
        if self.protect_weight:
            for layer, k in zip(self.layers, self.last_keys):
                self.K_done[layer].append(k.double())
            self._factors.clear()
        return res


def editor_state(editor) -> dict:
    """What earlier edits left in the editor besides the weights (its class's state_attrs: AlphaEdit's Σ K Kᵀ,
    DeltaEdit's accumulated update and drift monitor, least-interference's earlier keys), as tensors, lists and plain values that
    torch.load(weights_only=True) reads back. ROME, MEMIT and WilKE keep none: the weights are their whole state."""
    def plain(x):
        if dataclasses.is_dataclass(x):
            return dataclasses.asdict(x)
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().clone()
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list):
            return [plain(v) for v in x]
        return x
    return {a: plain(getattr(editor, a)) for a in getattr(editor, "state_attrs", ())}


def load_editor_state(editor, state: dict, where: str = "") -> None:
    """Put back what editor_state took (onto the editor's device); a missing or unknown entry is an error."""
    want = set(getattr(editor, "state_attrs", ()))
    if set(state) != want:
        raise ValueError(f"{where}{editor.name} keeps state {sorted(want)}, the checkpoint holds {sorted(state)}")
    dev = device_of(editor.model)

    def back(x, like):
        if dataclasses.is_dataclass(like):
            return type(like)(**x)
        if isinstance(x, torch.Tensor):
            return x.to(dev)
        if isinstance(x, dict):
            return {k: back(v, like.get(k) if isinstance(like, dict) else None) for k, v in x.items()}
        if isinstance(x, list):
            return [back(v, None) for v in x]
        return x
    for a, x in state.items():
        setattr(editor, a, back(x, getattr(editor, a)))
    if hasattr(editor, "_factors"):
        editor._factors.clear()  # a cache of the state just replaced


def check_protected(protected_ids, heldout_ids) -> None:
    """The protected set (least-interference tunes its layer choice on it) must never meet the held-out set (scored)."""
    both = sorted(set(int(i) for i in protected_ids) & set(int(i) for i in heldout_ids))
    if both:
        raise ValueError(f"the protected set and the held-out set share {len(both)} fact(s) (case ids {both[:5]}): "
                         "least-interference would be tuned on what is scored")


EDITORS = {cls.name: cls for cls in (ROME, RROME, MEMIT, AlphaEdit, DeltaEdit, WilKE, LeastInterference)}  # as METHODS (tested)


def make_editor(method: str, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0,
                protected=None):
    """The editor of `method`; protected: the known facts least-interference protects (other methods take none)."""
    if method not in EDITORS:
        raise ValueError(f"unknown editing method {method!r}; choose from {', '.join(METHODS)}")
    if method == "least-interference":
        return LeastInterference(model, tok, covs, hp, templates, kl_prompt, ridge, protected=protected)
    if protected:
        log.info("%s takes no protected set: %d protected facts ignored", method, len(protected))
    return EDITORS[method](model, tok, covs, hp, templates, kl_prompt, ridge)
