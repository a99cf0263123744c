"""Rule fig_scaling_law: kurtosis of off-diagonal P against depth and model size (kis.figures.run_scaling_law)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_scaling_law)  # noqa: F821
