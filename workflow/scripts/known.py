"""Rule known: which facts one model knows (teacher-forced exact match) (kis.knowledge.run_known)."""
from kis import knowledge
from kis.io import run

run(snakemake, knowledge.run_known)  # noqa: F821
