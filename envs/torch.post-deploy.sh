#!/usr/bin/env bash
# Snakemake runs this in a new conda environment of envs/<name>.yaml: the workflow's scripts import the `kis`
# package, installed from this checkout (editable; its pinned dependencies come from the env file, not from here).
set -euo pipefail
python -m pip install --no-deps -e "$(dirname "$0")/.."
