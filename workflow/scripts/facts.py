"""Rule facts: CounterFact records → validated facts.parquet (kis.knowledge.run_facts)."""
from kis import knowledge
from kis.io import run

run(snakemake, knowledge.run_facts)  # noqa: F821
