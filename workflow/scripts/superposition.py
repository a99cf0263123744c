"""Rule superposition: P, Q and the whitening / activation cosines of the keys, every layer
(kis.superposition.run_rule)."""
from kis import superposition
from kis.io import run

run(snakemake, superposition.run_rule)  # noqa: F821
