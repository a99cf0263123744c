"""Rule fig_heatmap: the P matrix of one model at every (configured) layer, one grid (kis.figures.run_heatmap)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_heatmap)  # noqa: F821
