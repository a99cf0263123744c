"""Rule fig_case_study: the most superposed fact pairs (largest off-diagonal |P_ij|) of one model
(kis.figures.run_case_study)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_case_study)  # noqa: F821
