"""Rule prepare_model: make one model loadable offline (kis.models.run_rule)."""
from kis import models
from kis.io import run

run(snakemake, models.run_rule)  # noqa: F821
