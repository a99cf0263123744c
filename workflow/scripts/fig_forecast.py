"""Rule fig_forecast: AUC per recorded step of the pre-edit forecast of forgetting and its baselines
(kis.editing_figures.run_forecast)."""
from kis import editing_figures
from kis.io import run

run(snakemake, editing_figures.run_forecast)  # noqa: F821
