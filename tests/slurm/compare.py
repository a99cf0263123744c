"""Compare two results folders numerically: every Parquet table and safetensors file must match.

`python tests/slurm/compare.py [--extra-ok] A B` prints one line per file (max |a − b|) and exits 1 on any mismatch
or on a file only one side has (--extra-ok: B may hold more files than A, e.g. a shared reference run).
Numbers match when |a − b| ≤ atol + rtol·|b| (runs on different CPUs may order float sums differently);
strings, booleans, integers and the kis.* metadata (minus machine-dependent keys) must be equal; wall-clock
timing columns are skipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SKIP_DIRS = {"logs", "benchmarks"}
META_IGNORE = {"location", "path", "elapsed_s", "device", "host", "created",
               "plan"}  # machine / run dependent (the covariance plan follows the node's free memory; C does not)
COLUMN_IGNORE = {"seconds"}  # wall-clock timings recorded beside results (trajectories)
RTOL, ATOL = 1e-6, 1e-9


def result_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not SKIP_DIRS & set(p.relative_to(root).parts) and not p.name.startswith(".")}


def _close(a, b) -> tuple[bool, float]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, float("inf")
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a, b = a.astype(np.float64), b.astype(np.float64)
        same_nan = np.array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(a) & np.isfinite(b)
        diff = float(np.max(np.abs(a[ok] - b[ok]), initial=0.0))
        return same_nan and bool(np.all(np.abs(a[ok] - b[ok]) <= ATOL + RTOL * np.abs(b[ok]))), diff
    return bool(np.array_equal(a, b)), 0.0


def compare_parquet(a: Path, b: Path) -> tuple[bool, float, str]:
    import pandas as pd

    from kis.io import read_parquet_metadata

    fa, fb = pd.read_parquet(a), pd.read_parquet(b)
    if list(fa.columns) != list(fb.columns) or len(fa) != len(fb):
        return False, float("inf"), f"columns/rows differ: {list(fa.columns)}×{len(fa)} vs {list(fb.columns)}×{len(fb)}"
    worst, bad = 0.0, []
    for col in fa.columns:
        if col in COLUMN_IGNORE:
            continue
        x, y = fa[col].to_numpy(), fb[col].to_numpy()
        if x.dtype == object and len(x) and isinstance(x[0], (list, np.ndarray)):  # list columns (keys)
            x, y = [np.asarray(v) for v in x], [np.asarray(v) for v in y]
            pairs = [_close(u, v) for u, v in zip(x, y)]
            ok, diff = all(p[0] for p in pairs), max((p[1] for p in pairs), default=0.0)
        else:
            ok, diff = _close(x, y)
        worst = max(worst, diff)
        if not ok:
            bad.append(f"{col} (max diff {diff:.3g})")
    ma, mb = read_parquet_metadata(a), read_parquet_metadata(b)
    for k in sorted(set(ma) | set(mb)):
        if k not in META_IGNORE and ma.get(k) != mb.get(k):
            bad.append(f"metadata {k}: {ma.get(k)!r} vs {mb.get(k)!r}")
    return not bad, worst, "; ".join(bad)


def compare_safetensors(a: Path, b: Path) -> tuple[bool, float, str]:
    from safetensors import safe_open

    with safe_open(str(a), "np") as ta, safe_open(str(b), "np") as tb:
        if set(ta.keys()) != set(tb.keys()):
            return False, float("inf"), f"tensor names differ: {sorted(set(ta.keys()) ^ set(tb.keys()))}"
        worst, bad = 0.0, []
        for k in ta.keys():
            ok, diff = _close(ta.get_tensor(k), tb.get_tensor(k))
            worst = max(worst, diff)
            if not ok:
                bad.append(f"{k} (max diff {diff:.3g})")
        ma = {k: v for k, v in (ta.metadata() or {}).items() if k not in META_IGNORE}
        mb = {k: v for k, v in (tb.metadata() or {}).items() if k not in META_IGNORE}
        if ma != mb:
            bad.append(f"metadata differs: {sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))}")
    return not bad, worst, "; ".join(bad)


def compare(a_root: Path, b_root: Path, extra_ok: bool = False) -> list[str]:
    """Problems found (empty: the folders hold the same results)."""
    fa, fb = result_files(a_root), result_files(b_root)
    problems = [f"only in {a_root}: {p}" for p in sorted(fa - fb)]
    if not extra_ok:
        problems += [f"only in {b_root}: {p}" for p in sorted(fb - fa)]
    n = 0
    for rel in sorted(fa & fb):
        kind = {".parquet": compare_parquet, ".safetensors": compare_safetensors}.get(Path(rel).suffix)
        if kind is None:
            continue
        ok, diff, why = kind(a_root / rel, b_root / rel)
        n += 1
        print(f"{'same' if ok else 'DIFF'} {rel} max|diff|={diff:.3g}{'' if ok else ' ' + why}")
        if not ok:
            problems.append(f"{rel}: {why}")
    if n == 0:
        problems.append("no Parquet or safetensors file to compare")
    print(f"compared {n} tables/tensor files, {len(problems)} problem(s)")
    return problems


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--extra-ok"]
    if len(args) != 2:
        sys.exit("usage: compare.py [--extra-ok] RESULTS_A RESULTS_B")
    found = compare(Path(args[0]), Path(args[1]), extra_ok="--extra-ok" in sys.argv[1:])
    for p in found:
        print("PROBLEM", p)
    sys.exit(1 if found else 0)
