"""Rule fig_heatmap_models: P at one layer for every model side by side, by size (kis.figures.run_heatmap_models)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_heatmap_models)  # noqa: F821
