"""The key products of the covariance stage (kis.panels): what is exact, what is bounded, and the token chunk that
bounds the tensor cores' truncated fp32 accumulation — checked on the CPU against an independent float64 numpy sum and
an emulation of a tensor-core GEMM (blocks of 8 exact products added to an fp32 accumulator with truncation)."""
import math

import numpy as np
import pytest
import torch

from kis import panels

BLOCK = 8  # products per tensor-core block (Ampere / Hopper)


def truncate_fp32(x: np.ndarray) -> np.ndarray:
    """float64 → float32 rounded toward zero (the accumulator's truncation)."""
    y = x.astype(np.float32)
    over = np.abs(y.astype(np.float64)) > np.abs(x)
    y[over] = np.nextafter(y[over], np.float32(0))
    return y


def tensor_core_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (r × n) · b (n × w) as a tensor core adds half products: 8 exact products at a time into an fp32
    accumulator, truncated after each block."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for s in range(0, a.shape[1], BLOCK):
        acc = truncate_fp32(acc.astype(np.float64) + a[:, s:s + BLOCK] @ b[s:s + BLOCK])
    return acc


@pytest.fixture
def emulated(monkeypatch):
    """panels' GEMM replaced by the tensor-core emulation; returns the list of token counts per GEMM."""
    calls = []

    def product(x, a, b, mode):
        x64 = x.double().numpy()
        calls.append(x.shape[0])
        return torch.from_numpy(tensor_core_mm(x64[:, a:b].T, x64[:, a:]))

    monkeypatch.setattr(panels, "_product", product)
    return calls


def rel_errors(got: torch.Tensor, k: torch.Tensor):
    k64 = k.double().numpy()
    ref = k64.T @ k64  # independent reference: numpy float64 of the same (exactly representable) half keys
    err = got.numpy() - ref
    return np.linalg.norm(err) / np.linalg.norm(ref), np.diag(err) / np.diag(ref)


def test_spiky_keys_are_half_and_heavy_tailed():
    k = panels.spiky_keys(4096, 64, seed=1)
    assert k.dtype == torch.float16 and torch.isfinite(k).all()
    scale = k.double().pow(2).mean(0).sqrt()
    assert scale.max() / scale.min() > 20  # per-dimension scales spread over orders of magnitude


def test_one_16k_token_gemm_on_tensor_cores_is_biased_beyond_1e6(emulated):
    """Without a chunk (the whole 16,384-token batch in one GEMM) the truncation bias is ~4e-5, every diagonal
    entry too small: the error the chunk removes."""
    k = panels.spiky_keys(16384, 48, seed=0)
    p = panels.Panels(48)
    p.add(k, "half-fp32acc", chunk=None)
    assert emulated == [16384]
    rel, diag = rel_errors(p.full(), k)
    assert rel > 1e-5
    assert np.all(diag < 0)  # truncation only loses: the bias does not average out


def test_tensor_core_chunk_bounds_the_error_below_1e6(emulated):
    """The default chunk on tensor cores: one GEMM per TENSOR_CORE_CHUNK tokens, each folded into float64; the
    relative error of S (Frobenius and every diagonal entry) is below 1e-6 for a 16,384-token batch, and every
    diagonal entry is within the worst-case bound (chunk/8)·2⁻²³ of a truncated positive sum."""
    chunk = panels.TENSOR_CORE_CHUNK
    assert panels.chunk_tokens("half-fp32acc") == panels.chunk_tokens("half-tf32") == chunk
    k = panels.spiky_keys(16384, 48, seed=0)
    p = panels.Panels(48)
    p.add(k, "half-fp32acc")
    assert emulated == [chunk] * (16384 // chunk)
    rel, diag = rel_errors(p.full(), k)
    assert rel < 1e-6 and np.all(np.abs(diag) < 1e-6)
    assert np.all(np.abs(diag) <= math.ceil(chunk / BLOCK) * 2.0 ** -23)


def test_chunks_cover_every_token_once_across_panels(emulated):
    """A batch that is no multiple of the chunk, a width of several panels: every token in exactly one GEMM per
    panel; the sums equal the float64 sums to the bound."""
    f, n = 600, 2 * panels.TENSOR_CORE_CHUNK + 37
    k = panels.spiky_keys(n, f, seed=2)
    p = panels.Panels(f)
    p.add(k, "half-fp32acc")
    n_panels = len(p.bounds)
    assert n_panels > 1
    assert sorted(emulated) == sorted([panels.TENSOR_CORE_CHUNK] * 2 * n_panels + [37] * n_panels)
    rel, _ = rel_errors(p.full(), k)
    assert rel < 1e-6


def test_cpu_products_of_half_keys_against_float64():
    """The real CPU path (half keys cast to fp32, one round-to-nearest GEMM per batch) on one 16,384-token batch."""
    assert panels.chunk_tokens("half-as-fp32") is None and panels.chunk_tokens("fp32-exact") is None
    k = panels.spiky_keys(16384, 64, seed=3)
    p = panels.Panels(64)
    p.add(k, "half-as-fp32")
    rel, diag = rel_errors(p.full(), k)
    assert rel < 1e-6 and np.all(np.abs(diag) < 1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tensor_core_products_on_cuda_with_the_default_chunk_stay_below_1e6(dtype):
    """The real tensor-core path (benchmarks/gpu_check.sh runs it): one 16,384-token batch of spiky half keys."""
    k = panels.spiky_keys(16384, 1024, seed=4, dtype=dtype, device="cuda")
    mode = panels.product_mode(dtype, "cuda")
    assert mode in panels.TENSOR_CORE_MODES
    p = panels.Panels(1024, "cuda")
    p.add(k, mode)
    rel, diag = rel_errors(p.full().cpu(), k.cpu())
    assert rel < 1e-6 and np.all(np.abs(diag) < 1e-6)
