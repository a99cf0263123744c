"""Closed-form knowledge editing of an FFN output projection W (d × f), and four lifelong editors.

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
DeltaEdit: AlphaEdit, plus, when the drift score s = ‖A k‖ of the accumulated update A on the new key leaves
    μ ± α·σ (EMA mean and deviation of earlier scores), δ is kept orthogonal to the column space of [A k, A].

Every editor edits W through kis.models.ffn_weight (in place) and reports, at its `measure_layer` (whose keys no
edit of the method moves), the key k_i it wrote and r_i = ΔW_i k_i, from which kis.trajectory predicts the
interference (kis.trajectory records it, with the columns of kis.trajectory.TRAJECTORY_COLUMNS).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from . import keys, models, vstar
from .probe import device_of

log = logging.getLogger(__name__)

METHODS = ("rome", "memit", "alphaedit", "deltaedit")


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


def memit_update(C: torch.Tensor, K: torch.Tensor, R: torch.Tensor, lam: float) -> torch.Tensor:
    """ΔW = R ((λC + K Kᵀ)⁻¹ K)ᵀ; K (f × n), R (d × n)."""
    K, R = K.double(), R.double()
    return R @ torch.linalg.solve(lam * C.double() + K @ K.T, K).T


def nullspace_projector(C: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """(U₀U₀ᵀ, dim): projector onto the eigenvectors of C with eigenvalue < threshold (AlphaEdit)."""
    ev, U = torch.linalg.eigh(C.double())
    U0 = U[:, ev < threshold]
    return U0 @ U0.T, int(U0.shape[1])


def alphaedit_update(P: torch.Tensor, K: torch.Tensor, R: torch.Tensor, G: torch.Tensor, l2: float) -> torch.Tensor:
    """ΔW = R ((P (K Kᵀ + G) + l2·I)⁻¹ P K)ᵀ; G = Σ of K Kᵀ over earlier edits."""
    K, R = K.double(), R.double()
    A = P @ (K @ K.T + G) + l2 * torch.eye(P.shape[0], dtype=P.dtype, device=P.device)
    return R @ torch.linalg.solve(A, P @ K).T


def orthogonal_complement(M: torch.Tensor, threshold: float, max_rank: int) -> tuple[torch.Tensor, int]:
    """(I − U Uᵀ, rank): U = left singular vectors of M (d × m) with σ² > threshold, at most max_rank of them."""
    U, S, _ = torch.linalg.svd(M.double(), full_matrices=False)
    keep = U[:, S ** 2 > threshold][:, :max_rank]
    eye = torch.eye(M.shape[0], dtype=torch.float64, device=M.device)
    return eye - keep @ keep.T, int(keep.shape[1])


@dataclass
class DriftMonitor:
    """EMA mean μ and variance σ² of a score; `check(s)` is True when |s − μ| > α·σ after `warmup` scores
    (DeltaEdit). Scores that trigger are not folded into the averages."""
    alpha: float
    decay: float = 0.9
    warmup: int = 20
    mean: float | None = None
    var: float = 0.0
    seen: int = 0

    def check(self, s: float) -> bool:
        self.seen += 1
        if self.mean is None:
            self.mean = s
            return False
        if self.seen > self.warmup and self.var > 0 and abs(s - self.mean) > self.alpha * self.var ** 0.5:
            return True
        self.mean = self.decay * self.mean + (1 - self.decay) * s
        self.var = self.decay * self.var + (1 - self.decay) * (s - self.mean) ** 2
        return False


# ---------------------------------------------------------------- hyperparameters

def default_layer(n_layers: int, fraction: float) -> int:
    """The default ROME layer, and the last layer of the MEMIT range: round(fraction · L), within [0, L−1]."""
    return int(min(max(round(fraction * n_layers), 0), n_layers - 1))


def resolve_hparams(settings: dict, method: str, n_layers: int, names=(), d_ff: int | None = None) -> dict:
    """Hyperparameters of `method` for a model: defaults[method] ⊕ the default layer rule ⊕ published values for
    the first of `names` (config key, hub id) found in settings['published'] ⊕ settings['overrides'][name].

    MEMIT's λ (mom2_update_weight), when nothing sets it, is mom2_update_weight_per_ff · f: one edit writes the
    share kᵀC⁻¹k / (λ + kᵀC⁻¹k) of its residual per layer, and kᵀC⁻¹k grows with the FFN width f (E = f)."""
    if method not in METHODS:
        raise ValueError(f"unknown editing method {method!r}; choose from {', '.join(METHODS)}")
    defaults = settings["defaults"]  # settings: the editing section, its defaults filled (config/schema.yaml)
    if method not in defaults:
        raise ValueError(f"editing.defaults has no entry for method {method!r}")
    hp = dict(defaults[method])
    last = default_layer(n_layers, float(settings["layer_fraction"]))
    if method == "rome":
        hp["layer"] = last
    else:
        span = int(hp.pop("span", 5))
        hp["layers"] = list(range(max(0, last - span + 1), last + 1))
    source = "default rule"
    for table, label in ((settings["published"], "published"), (settings["overrides"], "override")):
        for name in names:
            if name and name in table and method in (table[name] or {}):
                hp.update(table[name][method])
                source = f"{label} ({name})"
                break
    per_ff = hp.pop("mom2_update_weight_per_ff", None)  # from defaults, published or overrides, whichever is last
    if per_ff is not None and "mom2_update_weight" not in hp:
        if d_ff is None:
            raise ValueError(f"editing {method}: mom2_update_weight_per_ff needs the model's FFN width d_ff")
        hp["mom2_update_weight"] = float(per_ff) * int(d_ff)
    layers = [hp["layer"]] if method == "rome" else list(hp["layers"])
    bad = [x for x in layers if not 0 <= int(x) < n_layers]
    if bad or not layers:
        raise ValueError(f"editing {method}: layers {layers} are not within the model's {n_layers} layers "
                         f"(hyperparameters from {source})")
    hp["source"] = source
    return hp


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


def _apply(model, layer: int, dW: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(dW).all()):
        raise EditDiverged(f"{where}: non-finite update at layer {layer}")
    W = models.ffn_weight(model, layer)
    with torch.no_grad():
        W.add_(dW.to(device=W.device, dtype=W.dtype))
    if not bool(torch.isfinite(W).all()):
        raise EditDiverged(f"{where}: non-finite weight at layer {layer} after the update")


def fact_key(model, tok, fact: dict, layer: int, templates) -> torch.Tensor:
    """(1, f) float64 on the model's device: the fact's key at `layer`, averaged over the templates (kis.keys)."""
    k = keys.averaged(model, tok, [fact["prompt"]], [fact["subject"]], layers=[layer], templates=templates,
                      where=f"case {fact['case_id']}: ")
    return k[0].to(device_of(model))


class ROME:
    """u = C⁻¹k̄, k̄ the key averaged over the context templates. value_key "mean" (the default; the closed form
    above with k* = k̄, as r-ROME, Gupta et al. 2024): v* = W k̄ + δ, Λ = δ / (uᵀk̄). "prompt" (ROME's reference
    code): v* = W k₀ + δ written exactly at the bare prompt's key k₀, Λ = δ / (uᵀk₀). Both are rank one along
    C⁻¹k̄, so r_i = ΔW_i k̄_i and the interference formula is exact either way. When k₀ is far from k̄ (SmolLM2:
    a one-token subject as the prompt's first token, uᵀk₀ / uᵀk̄ ≈ 1e-3) "prompt" makes Λ a thousand times larger:
    the "disabling edit" that collapses ROME in sequential editing."""
    name = "rome"

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        self.model, self.tok, self.hp = model, tok, hp
        self.templates, self.kl_prompt = list(templates), kl_prompt
        self.layer = int(hp["layer"])
        self.layers = [self.layer]
        self.measure_layer = self.layer
        dev = device_of(model)
        self.chol = {self.layer: cholesky(covs[self.layer].to(dev), ridge, f"layer {self.layer}: ")}

    def edit(self, fact: dict) -> EditResult:
        t0 = time.perf_counter()
        where = f"rome case {fact['case_id']}"
        k = fact_key(self.model, self.tok, fact, self.layer, self.templates)[0]
        res = vstar.optimize_delta(self.model, self.tok, prompt=fact["prompt"], subject=fact["subject"],
                                  target=fact["target_new"], layer=self.layer, templates=self.templates, hp=self.hp,
                                  kl_prompt=self.kl_prompt, norm="mlp")
        if not bool(torch.isfinite(res.delta).all()):
            raise EditDiverged(f"{where}: non-finite δ")
        W = models.ffn_weight(self.model, self.layer).detach().double()
        value_key = self.hp.get("value_key", "mean")
        if value_key == "prompt":
            k0 = fact_key(self.model, self.tok, fact, self.layer, ["{}"])[0]
        elif value_key == "mean":
            k0 = k
        else:
            raise ValueError(f"rome value_key must be 'prompt' or 'mean', got {value_key!r}")
        v = W @ k0 + res.delta                                    # v* = W k₀ + δ
        _lam, _u, dW = rome_update(W, self.chol[self.layer], k0, v, k_dir=k)
        _apply(self.model, self.layer, dW, where)
        return EditResult(int(fact["case_id"]), k, dW @ k, res.prob, float(res.delta.norm()),
                          seconds=time.perf_counter() - t0, info={"steps": res.steps, "nll": res.nll})


class MEMIT:
    """z = block output of the last layer + δ, written into every layer of the range, residual shared out."""
    name = "memit"

    def __init__(self, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
        self.model, self.tok, self.hp = model, tok, hp
        self.templates, self.kl_prompt = list(templates), kl_prompt
        self.layers = sorted(int(x) for x in hp["layers"])
        self.z_layer = self.layers[-1]
        self.measure_layer = self.layers[0]   # no edit of the range moves its keys
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

    def layer_update(self, layer: int, K: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        return memit_update(self.covs[layer], K, R, float(self.hp["mom2_update_weight"]))

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
        key = resid = None
        for i, layer in enumerate(self.layers):
            k = fact_key(self.model, self.tok, fact, layer, self.templates)
            K = k.T                                                     # (f × 1)
            cur = vstar.block_output(self.model, self.tok, fact["prompt"], fact["subject"], self.z_layer)
            R = ((z - cur) / (len(self.layers) - i))[:, None]           # residual shared over the layers left
            dW = self.layer_update(layer, K, R)
            _apply(self.model, layer, dW, where)
            self.after_layer(layer, K, dW)
            if layer == self.measure_layer:
                key, resid = k[0], dW @ k[0]
        info.update(steps=res.steps, nll=res.nll)
        return EditResult(int(fact["case_id"]), key, resid, res.prob, float(res.delta.norm()), triggered=triggered,
                          seconds=time.perf_counter() - t0, info=info)


class AlphaEdit(MEMIT):
    """MEMIT with the update projected onto the null space of C and of the keys of earlier edits."""
    name = "alphaedit"

    def __init__(self, model, tok, covs, hp, templates, kl_prompt="{} is a", ridge: float = 0.0):
        super().__init__(model, tok, covs, hp, templates, kl_prompt, ridge)
        self.P, self.G = {}, {}
        for layer in self.layers:
            self.P[layer], dim = nullspace_projector(self.covs[layer], float(hp["nullspace_threshold"]))
            self.G[layer] = torch.zeros_like(self.covs[layer])
            log.info("%s layer %d: null space of C (eigenvalue < %g) has %d of %d dimensions", self.name, layer,
                     float(hp["nullspace_threshold"]), dim, self.covs[layer].shape[0])
            if dim == 0:
                log.warning("%s layer %d: the null space is empty, so every update is zero; raise "
                            "nullspace_threshold", self.name, layer)

    def layer_update(self, layer, K, R):
        return alphaedit_update(self.P[layer], K, R, self.G[layer], float(self.hp["L2"]))

    def after_layer(self, layer, K, dW):
        self.G[layer] += K.double() @ K.double().T


class DeltaEdit(AlphaEdit):
    """AlphaEdit + the dynamic orthogonal constraint on δ against the accumulated update of the z layer."""
    name = "deltaedit"

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
        if not self.monitor.check(score):
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


EDITORS = {cls.name: cls for cls in (ROME, MEMIT, AlphaEdit, DeltaEdit)}  # keyed as METHODS (tested)


def make_editor(method: str, model, tok, covs: dict, hp: dict, templates, kl_prompt="{} is a", ridge: float = 0.0):
    if method not in EDITORS:
        raise ValueError(f"unknown editing method {method!r}; choose from {', '.join(METHODS)}")
    return EDITORS[method](model, tok, covs, hp, templates, kl_prompt, ridge)
