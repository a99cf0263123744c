"""benchmarks/gpu_check.sh as a smoke check on the CPU (--device cpu --tiny): it runs, and its JSON holds the numbers
a GPU run reports (on a GPU the same script builds a float16 Llama-2-13B-shaped model; benchmarks/RESULTS.md)."""
import json
import os
import subprocess
import sys

from wf import REPO


def test_gpu_check_runs_on_the_cpu_with_a_tiny_model(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny",
                           "--batches", "2", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    prod = r["products"]
    assert prod["batch_tokens"] == 16384 and prod["mode"] == "half-as-fp32" and prod["default_chunk"] is None
    assert 0 < prod["default_rel_frobenius"] < 1e-6  # the CPU's fp32 GEMM of half keys
    assert [x["chunk"] for x in prod["ladder"]] == [16384, 4096, 1024, 512, 256, 128, 64]
    assert prod["largest_chunk_below_1e-6"] == 16384
    assert r["plan"]["passes"] == 1 and r["token_budget"] == 512 and r["seq"] == 128
    assert r["memory"]["plan_allocated"] > r["weights_bytes"] > 0
    assert r["memory"]["max_memory_allocated"] is None  # a CUDA number
    assert r["pass"]["tokens"] == 2 * 512 and r["pass"]["tokens_per_s"] > 0
    assert r["tests"] == {"skipped": "no CUDA device"}
    assert "largest chunk below 1e-6" in proc.stdout
