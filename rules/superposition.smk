# Keys at the subject's last token (every layer, one pass), the superposition matrices P, Q and the cosines
# per layer, and the statistics table over all models (kurtosis of off-diagonal P: the paper's measure).

KEYS = config["keys"]


rule keys:
    input:
        manifest=rules.prepare_model.output.manifest,
        item_table=rules.select_items.output.table,
    output:
        table=f"{RESULTS}/keys/{{model}}.parquet",
    params:
        position=KEYS["position"],
        context_templates=KEYS["context_templates"],
    log:
        f"{LOGS}/keys/{{model}}.log",
    benchmark:
        f"{BENCH}/keys/{{model}}.tsv"
    threads: 2  # torch uses exactly these: more threads than free cores makes small forwards ~18x slower
    priority: 5  # before the one-thread trajectories: the figures then run beside them, not after them
    conda:
        "../envs/torch.yaml"
    resources:
        # batching never changes the keys; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: halved(KEYS["batch_size"], attempt),
        **gpu_resources(),
    script:
        "../workflow/scripts/keys.py"


rule superposition:
    input:
        key_table=rules.keys.output.table,
        cov=rules.covariance.output.cov,
    output:
        table=f"{RESULTS}/superposition/{{model}}.parquet",
    params:
        ridge=config["superposition"]["ridge"],
        condition_warn=config["covariance"]["condition_warn"],
    log:
        f"{LOGS}/superposition/{{model}}.log",
    benchmark:
        f"{BENCH}/superposition/{{model}}.tsv"
    threads: 2  # torch uses exactly these: more threads than free cores makes small forwards ~18x slower
    priority: 5  # before the one-thread trajectories: the figures then run beside them, not after them
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_resources(),
    script:
        "../workflow/scripts/superposition.py"


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
