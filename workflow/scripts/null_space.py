"""Rule null_space: AlphaEdit's null space against the corpus and the fact keys, per layer of its window
(kis.null_space.run_rule)."""
from kis import null_space
from kis.io import run

run(snakemake, null_space.run_rule)  # noqa: F821
