"""Rule fig_trajectories: confidence / retention / efficacy against edits, and measured vs predicted interference
(kis.editing_figures.run_trajectories)."""
from kis import editing_figures
from kis.io import run

run(snakemake, editing_figures.run_trajectories)  # noqa: F821
