"""Rule fig_angles: pairwise key angles in whitening vs activation space of one model (kis.figures.run_angles)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_angles)  # noqa: F821
