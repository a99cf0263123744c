"""Rule preedit: the pre-edit forecast's planned keys and v* shifts of one stream (kis.preedit.run_rule)."""
from kis import preedit
from kis.io import run

run(snakemake, preedit.run_rule)  # noqa: F821
