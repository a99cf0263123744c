# Knowledge in Superposition (Hu et al., AAAI 2025) — reproduced and extended.
# `snakemake --cores N` runs the config's default target; each figure family has its own target rule.
from snakemake.utils import min_version, validate

min_version("8.29")


# Each config file is complete: `--configfile config/paper.yaml` replaces the offline default, not merges into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/covariance.smk"
include: "rules/knowledge.smk"
include: "rules/superposition.smk"
include: "rules/figures.smk"
include: "rules/editing.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
