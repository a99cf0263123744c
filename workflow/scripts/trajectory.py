"""Rule trajectory: one method's lifelong editing trajectory on one model (kis.trajectory.run_rule)."""
from kis import trajectory
from kis.io import run

run(snakemake, trajectory.run_rule)  # noqa: F821
