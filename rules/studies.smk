# Studies beside the editing trajectories (`snakemake studies`): per model, tables under RESULTS/studies/ that read
# the workflow's own C and keys, no edit written. Null space: where AlphaEdit's absolute threshold leaves the corpus
# and the keys of facts (kis.null_space; docs/findings.md).
from types import SimpleNamespace


rule null_space:
    input:
        cov=rules.covariance.output.cov,
        key_table=rules.keys.output.table,
    output:
        table=f"{RESULTS}/studies/null_space/{{model}}.parquet",
    params:
        # AlphaEdit's window and threshold, resolved as its trajectory resolves them
        settings=lambda wc: canonical(edit_settings(SimpleNamespace(model=wc.model, method="alphaedit"))),
        names=edit_names,
    log:
        f"{LOGS}/null_space/{{model}}.log",
    benchmark:
        f"{BENCH}/null_space/{{model}}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wc: model_mem_mb(wc.model),
    script:
        "../workflow/scripts/null_space.py"


rule studies:
    localrule: True
    input:
        expand(rules.null_space.output.table, model=MODELS),
