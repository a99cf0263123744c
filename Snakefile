# Knowledge in Superposition (Hu et al., AAAI 2025) — reproduced and extended.
# `snakemake --cores N` runs the config's default target; each figure family has its own target rule.
from snakemake.utils import min_version, validate

min_version("8.29")


# `--configfile config/paper.yaml` replaces the offline default, not merges into it; a setting a config leaves out
# takes its default from config/schema.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# the editing hyperparameters live once (config/hparams.yaml): a config's editing section is merged over them
if "editing" in config:
    from kis.hparams import with_table

    config["editing"] = with_table(config, f"{workflow.basedir}/config/hparams.yaml")["editing"]


validate(config, "config/schema.yaml")  # fills every default (config/schema.yaml is the only place they live)


report: "report/workflow.rst"  # the report's front page: what ran, on which models and corpus, the key numbers


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/corpus.smk"
include: "rules/covariance.smk"
include: "rules/knowledge.smk"
include: "rules/keys.smk"
include: "rules/superposition.smk"
include: "rules/statistics.smk"
include: "rules/figures.smk"
include: "rules/editing.smk"
include: "rules/studies.smk"


if workflow.is_main_process:  # not in every job: the front page reads the finished statistics table
    config["key_numbers"] = key_numbers()


rule all:
    default_target: True
    input:
        get_final_output(),


onstart:
    # a second run (another working directory) whose config names this results folder is refused before any job
    # opens its log: Snakemake deletes a job's old log first, which would empty the running job's log (kis.io)
    from kis.io import results_lock

    results_lock(RESULTS)
