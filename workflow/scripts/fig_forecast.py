"""Rule fig_forecast: predicted displacement against Δ log P(true) of held-out facts, and the forecast AUC per method
(kis.editing_figures.run_forecast)."""
from kis import editing_figures
from kis.io import run

run(snakemake, editing_figures.run_forecast)  # noqa: F821
