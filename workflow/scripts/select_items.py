"""Rule select_items: the analysis set, N facts known by every model (kis.knowledge.run_select_items)."""
from kis import knowledge
from kis.io import run

run(snakemake, knowledge.run_select_items)  # noqa: F821
