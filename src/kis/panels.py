"""S = Σ_t k_t k_tᵀ kept as its upper triangle in row panels: panel i = S[a_i:b_i, a_i:] in float64.

One GEMM per panel per token chunk: k[c, a_i:b_i]ᵀ · k[c, a_i:] (float32 result), folded into the float64 panel in
place. The panel layout depends on f alone (kis.plan.panel_bounds), so a layer's sums are bit-identical whatever group
it runs in. Products (named in the cache metadata):
  fp32-exact        fp32 keys, TF32 off (the caller holds kis.covariance.exact_fp32); one GEMM per batch
  half-fp32acc      fp16/bf16 keys multiplied on tensor cores with fp32 output (torch.mm(..., out_dtype=float32)),
                    one GEMM per chunk of TENSOR_CORE_CHUNK tokens
  half-as-fp32      fp16/bf16 keys cast to fp32 (exact), fp32 GEMM: the same arithmetic where no half GEMM with
                    fp32 output exists (CPU); one GEMM per batch
  half-tf32         as half-as-fp32 on a GPU whose torch lacks mm(..., out_dtype): TF32 is allowed for these products
                    only, one GEMM per chunk of TENSOR_CORE_CHUNK tokens
  fp64              fp64 keys, fp64 GEMM (a float64 model)

What is exact and what is bounded:
  exact     a product of two half numbers in fp32 (11 + 11 significand bits ≤ 24; 8 + 8 for bf16); a half or fp32
            key cast to fp32 / fp64; an fp32 GEMM result added to the float64 panel (float32 → float64 is exact, and
            the float64 sum over the run's chunks rounds at 2⁻⁵³ per addition)
  bounded   the fp32 sums INSIDE one GEMM. Tensor cores add the products in blocks (8 on Ampere/Hopper) into an fp32
            accumulator with truncation, a bias that does not average out: after n tokens the relative error of a
            positive sum (a diagonal entry) is at most (n/8)·2⁻²³ and about a quarter of that in practice (an
            emulation of truncated 8-product blocks on spiky keys, tests/test_products.py: ≈ 2.5e-9·n, i.e. 4.1e-5
            for one 16,384-token GEMM). Chunking the tokens bounds n per GEMM: TENSOR_CORE_CHUNK = 256 gives 6.8e-7 in
            that emulation (worst case 3.8e-6), whatever the batch; benchmarks/gpu_check.sh measures it on a GPU
            for a ladder of chunks (raise the constant to the largest chunk that measures below 1e-6: every chunk
            costs one float64 fold of the panels, 24 bytes per stored element). The fp32 GEMM of fp32-exact and
            half-as-fp32 rounds to nearest (on the CPU 0.5–1.5e-7 per 16,384-token batch) and is not chunked.
"""
from __future__ import annotations

import functools
import logging

import torch

from .plan import TENSOR_CORE_CHUNK, panel_bounds

log = logging.getLogger(__name__)
HALF = (torch.float16, torch.bfloat16)
TENSOR_CORE_MODES = ("half-fp32acc", "half-tf32")


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


def chunk_tokens(mode: str) -> int | None:
    """Tokens per GEMM for a product mode: TENSOR_CORE_CHUNK on tensor cores, None (the whole batch) otherwise."""
    return TENSOR_CORE_CHUNK if mode in TENSOR_CORE_MODES else None


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

    def add(self, k: torch.Tensor, mode: str, chunk: int | None = -1) -> None:
        """S += kᵀk for keys k (n × f): one GEMM per panel and chunk of `chunk` tokens (-1: chunk_tokens(mode);
        None: the whole batch), each folded into the float64 panel."""
        chunk = chunk_tokens(mode) if chunk == -1 else chunk
        x = _operand(k, mode)
        step = x.shape[0] if not chunk else int(chunk)
        for start in range(0, x.shape[0], max(step, 1)):
            xc = x[start:start + step]
            for (a, b), panel in zip(self.bounds, self.tensors):
                panel.add_(_product(xc, a, b, mode))  # float32 → float64 is exact; the sum is float64

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


def spiky_keys(n: int, f: int, *, seed: int = 0, dtype=torch.float16, device="cpu") -> torch.Tensor:
    """n keys of width f shaped like FFN keys for checking the products: per-dimension scales spread over e^±2
    (log-normal) and rare massive activations (2 % of the dimensions 20× larger on 5 % of the tokens)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, f), generator=g, dtype=torch.float64) * torch.exp(torch.randn(f, generator=g, dtype=torch.float64))
    dims = torch.randperm(f, generator=g)[:max(1, f // 50)]
    tokens = torch.rand(n, generator=g) < 0.05
    x[tokens.nonzero()[:, :1], dims] *= 20
    return x.to(dtype).to(device)
