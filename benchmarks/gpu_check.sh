#!/usr/bin/env bash
# The covariance plan checked on one GPU in ≤ 10 minutes (issue 29): peak memory against the plan, tokens/s and the
# fraction of the device's peak for a random float16 Llama-2-13B-shaped model built on the device, the products'
# relative error against float64 for one 16,384-token batch, and the CUDA-only tests; numbers in one JSON file.
#   bash benchmarks/gpu_check.sh [--out FILE] [--device cuda:0]    # default FILE: $OUT/gpu_check.json, else
#                                                                   # results/gpu_check.json
#   bash benchmarks/gpu_check.sh --device cpu --tiny                # smoke check on the CPU (seconds)
# What each number should be on an H100: benchmarks/RESULTS.md, "GPU check".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$here/../src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" "$here/gpu_check.py" "$@"
