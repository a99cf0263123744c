"""Rule keys: every layer's key at the subject's last token for the analysis items, one pass (kis.keys.run_rule)."""
from kis import keys
from kis.io import run

run(snakemake, keys.run_rule)  # noqa: F821
