"""Rule fig_trajectories: confidence / retention / efficacy against edits, and the measured interference against the
paper's prediction with its error per step (kis.editing_figures.run_trajectories)."""
from kis import editing_figures
from kis.io import run

run(snakemake, editing_figures.run_trajectories)  # noqa: F821
