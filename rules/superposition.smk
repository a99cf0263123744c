# Keys at the subject's last token (every layer, one pass), the superposition matrices P, Q and the cosines
# per layer, and the statistics table over all models (kurtosis of off-diagonal P: the paper's measure).

KEYS = {"position": "subject_last", "context_templates": ["{}"], "batch_size": 32, **config.get("keys", {})}
SUPERPOSITION = {"ridge": 0.0, **config.get("superposition", {})}


rule keys:
    input:
        manifest=manifest,
        analysis=f"{RESULTS}/knowledge/items.parquet",
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
    conda:
        "../envs/torch.yaml"
    resources:
        # batching never changes the keys; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: max(1, KEYS["batch_size"] // 2 ** (attempt - 1)),
        gpu=1,
        gpu_model=lambda wc: model_gpu_model(wc.model),  # SLURM --gpus=<model>:1 when the config names one
        mem_mb=lambda wc: model_mem_mb(wc.model),
        runtime=lambda wc: model_runtime(wc.model),
    script:
        "../workflow/scripts/keys.py"


rule superposition:
    input:
        key_table=rules.keys.output.table,
        cov=f"{RESULTS}/covariance/{{model}}.safetensors",
    output:
        table=f"{RESULTS}/superposition/{{model}}.parquet",
    params:
        ridge=SUPERPOSITION["ridge"],
        condition_warn=config["covariance"].get("condition_warn", 1e8),
    log:
        f"{LOGS}/superposition/{{model}}.log",
    benchmark:
        f"{BENCH}/superposition/{{model}}.tsv"
    threads: 2  # torch uses exactly these: more threads than free cores makes small forwards ~18x slower
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
        gpu_model=lambda wc: model_gpu_model(wc.model),  # SLURM --gpus=<model>:1 when the config names one
        mem_mb=lambda wc: model_mem_mb(wc.model),
        runtime=lambda wc: model_runtime(wc.model),
    script:
        "../workflow/scripts/superposition.py"


rule statistics:
    localrule: True
    input:
        tables=expand(rules.superposition.output.table, model=MODELS),
        manifests=expand(f"{RESULTS}/models/{{model}}/manifest.json", model=MODELS),
    output:
        table=f"{RESULTS}/statistics.parquet",
    params:
        models=MODELS,
        labels={m: config["models"][m].get("label", m) for m in MODELS},
    log:
        f"{LOGS}/statistics/statistics.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/statistics.py"


ALL_TARGETS += [rules.statistics.output.table]
