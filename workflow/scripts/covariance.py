"""Rule covariance: C_l = E[k kᵀ] for every layer in one pass, checkpointed, resumable (kis.covariance.run_rule)."""
from kis import covariance
from kis.io import run

run(snakemake, covariance.run_rule)  # noqa: F821
