"""Rule covariance_diagnostics: condition number and rank of every layer's C (kis.covariance.run_diagnostics)."""
from kis import covariance
from kis.io import run

run(snakemake, covariance.run_diagnostics)  # noqa: F821
