# The statistics table over all models: kurtosis of off-diagonal P per layer and n, the paper's measure
# (kis.superposition.statistics_table).


rule statistics:
    localrule: True
    input:
        tables=expand(rules.superposition.output.table, model=MODELS),
        manifests=expand(rules.prepare_model.output.manifest, model=MODELS),
    output:
        table=f"{RESULTS}/statistics.parquet",
    params:
        models=MODELS,
        labels=LABELS,
    log:
        f"{LOGS}/statistics/statistics.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/statistics.py"
