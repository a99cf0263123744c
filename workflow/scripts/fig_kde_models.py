"""Rule fig_kde_models: KDE of off-diagonal P at one layer, all models on one axis (kis.figures.run_kde_models)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_kde_models)  # noqa: F821
