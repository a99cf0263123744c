"""Rule fig_kde: KDE of the off-diagonal P entries of one model, one panel per layer (kis.figures.run_kde)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_kde)  # noqa: F821
