"""Rule corpus: the seeded text sample behind C (kis.corpus.run_rule)."""
from kis import corpus
from kis.io import run

run(snakemake, corpus.run_rule)  # noqa: F821
