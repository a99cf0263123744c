"""Rule study_summary: one row per model × method × recorded step from the trajectory tables (kis.study.run_summary)."""
from kis import study
from kis.io import run

run(snakemake, study.run_summary)  # noqa: F821
