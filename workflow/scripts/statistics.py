"""Rule statistics: kurtosis and other moments of the off-diagonal entries, all models
(kis.superposition.run_statistics)."""
from kis import superposition
from kis.io import run

run(snakemake, superposition.run_statistics)  # noqa: F821
