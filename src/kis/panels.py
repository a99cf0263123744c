"""S = Σ_t k_t k_tᵀ kept as its upper triangle in row panels: panel i = S[a_i:b_i, a_i:] in float64.

One GEMM per panel per batch: k[:, a_i:b_i]ᵀ · k[:, a_i:] (float32 result), folded into the float64 panel in place.
The panel layout depends on f alone (kis.plan.panel_bounds), so a layer's sums are bit-identical whatever group
it runs in. Products (named in the cache metadata):
  fp32-exact        fp32 keys, TF32 off (the caller holds kis.covariance.exact_fp32)
  half-fp32acc      fp16/bf16 keys multiplied on tensor cores with fp32 output (torch.mm(..., out_dtype=float32)):
                    a product of two half numbers is exact in fp32, so only the fp32 accumulation rounds
  half-as-fp32      fp16/bf16 keys cast to fp32 (exact), fp32 GEMM: the same arithmetic where no half GEMM with
                    fp32 output exists (CPU)
  half-tf32         as half-as-fp32 on a GPU whose torch lacks mm(..., out_dtype): TF32 is allowed for these products
                    only, where it is exact (a half number's significand fits TF32's 10 bits)
  fp64              fp64 keys, fp64 GEMM (a float64 model)
"""
from __future__ import annotations

import functools
import logging

import torch

from .plan import panel_bounds

log = logging.getLogger(__name__)
HALF = (torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def _has_half_mm_fp32_out(device: str) -> bool:
    x = torch.ones((2, 2), dtype=torch.bfloat16, device=device)
    try:
        return torch.mm(x, x, out_dtype=torch.float32).dtype == torch.float32
    except (RuntimeError, TypeError, NotImplementedError) as e:
        log.warning("torch %s has no half matmul with float32 output on %s (%s): half keys are multiplied as "
                    "float32 with TF32 (exact for half inputs)", torch.__version__, device, e)
        return False


def product_mode(key_dtype: torch.dtype, device) -> str:
    """How keys of this dtype are multiplied on this device."""
    if key_dtype == torch.float64:
        return "fp64"
    if key_dtype in HALF:
        if torch.device(device).type != "cuda":
            return "half-as-fp32"
        return "half-fp32acc" if _has_half_mm_fp32_out(str(device)) else "half-tf32"
    return "fp32-exact"


def _operand(k: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "fp64":
        return k.double()
    if mode == "half-fp32acc":
        return k
    return k.float()


def _product(x: torch.Tensor, a: int, b: int, mode: str) -> torch.Tensor:
    """x[:, a:b]ᵀ · x[:, a:] with a float32 (float64 for fp64) result."""
    if mode == "half-fp32acc":
        return torch.mm(x[:, a:b].T, x[:, a:], out_dtype=torch.float32)
    if mode == "half-tf32":
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return x[:, a:b].T @ x[:, a:]
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    return x[:, a:b].T @ x[:, a:]


class Panels:
    """The packed float64 sums of one layer."""

    def __init__(self, f: int, device="cpu", tensors: list[torch.Tensor] | None = None):
        self.f = f
        self.bounds = panel_bounds(f)
        if tensors is None:
            tensors = [torch.zeros((b - a, f - a), dtype=torch.float64, device=device) for a, b in self.bounds]
        shapes = [tuple(t.shape) for t in tensors]
        if shapes != [(b - a, f - a) for a, b in self.bounds]:
            raise ValueError(f"panel shapes {shapes} do not match f = {f}")
        self.tensors = tensors

    def add(self, k: torch.Tensor, mode: str) -> None:
        """S += kᵀk for keys k (n × f)."""
        x = _operand(k, mode)
        for (a, b), panel in zip(self.bounds, self.tensors):
            panel.add_(_product(x, a, b, mode))  # float32 → float64 is exact; the sum is float64

    def row_block(self, i: int) -> torch.Tensor:
        """Rows a_i..b_i of the full symmetric S (float64): mirrored from earlier panels left of the diagonal, the
        diagonal block symmetrised ((D + Dᵀ)/2: fp32 products are symmetric only to rounding)."""
        a, b = self.bounds[i]
        out = torch.empty((b - a, self.f), dtype=torch.float64, device=self.tensors[i].device)
        for (aj, bj), panel in zip(self.bounds[:i], self.tensors[:i]):
            out[:, aj:bj] = panel[:, a - aj:b - aj].T
        diag = self.tensors[i][:, :b - a]
        out[:, a:b] = (diag + diag.T) / 2
        out[:, b:] = self.tensors[i][:, b - a:]
        return out

    def full(self) -> torch.Tensor:
        return torch.cat([self.row_block(i) for i in range(len(self.bounds))])
