# C_l = E[k kᵀ] for every layer of a model in one pass over the corpus (the paper's most expensive stage).


rule covariance:
    input:
        manifest=rules.prepare_model.output.manifest,
        texts=rules.corpus.output.texts,
    output:
        cov=protected(f"{RESULTS}/covariance/{{model}}.safetensors"),
    params:
        max_length=lambda wc: model_max_length(wc.model),  # models.<m>.covariance.max_length, else corpus
        # with max_length null, texts are cut at min(context, token_budget) as the reference code did: then (only)
        # the configured budget changes C
        batch_tokens=lambda wc: config["covariance"]["token_budget"] if model_max_length(wc.model) is None else None,
        store_dtype=config["covariance"]["store_dtype"],
    log:
        f"{LOGS}/covariance/{{model}}.log",
    benchmark:
        f"{BENCH}/covariance/{{model}}.tsv"
    threads: 8  # capped at --cores; torch uses exactly these (oversubscribed cores make forwards many times slower)
    # the longest chain is covariance → trajectory: start each C before any ready one-thread job, which would
    # otherwise fill the free cores and hold a many-thread covariance back (known: the same; benchmarks/RESULTS.md)
    priority: 10
    conda:
        "../envs/torch.yaml"
    resources:
        # the budget only changes batching, never C: halved on each retry after an out-of-memory error
        checkpoint_every=config["covariance"]["checkpoint_every"],  # never changes C: no rerun
        checkpoint_minutes=config["covariance"]["checkpoint_minutes"],
        device_memory_mib=config["covariance"]["device_memory_mib"],  # 0: the GPU's free memory
        token_budget=lambda wc, attempt: halved(config["covariance"]["token_budget"], attempt, floor=16),
        **{**gpu_resources(),  # memory and runtime from the model's shapes and the corpus tokens (kis.plan)
           "mem_mb": lambda wc, input: covariance_resources(wc.model, input.manifest)["mem_mb"],
           "runtime": lambda wc, input: covariance_resources(wc.model, input.manifest)["runtime"]},
    script:
        "../workflow/scripts/covariance.py"


rule covariance_diagnostics:
    input:
        cov=rules.covariance.output.cov,
    output:
        table=f"{RESULTS}/covariance/{{model}}.diagnostics.parquet",
    params:
        condition_warn=config["covariance"]["condition_warn"],
    log:
        f"{LOGS}/covariance_diagnostics/{{model}}.log",
    # one float64 eigvalsh per layer: 1–4 h on one core for f ≥ 10,240 (kis.plan.diagnostics_resources); torch uses
    # exactly these threads, and the runtime holds even with one core
    threads: 8
    priority: -1  # a summary of C that no figure reads: after the keys, P matrices and figures (default 0)
    resources:
        mem_mb=lambda wc: covariance_resources(wc.model, rules.prepare_model.output.manifest.format(model=wc.model))[
            "diagnostics_mem_mb"],
        runtime=lambda wc: covariance_resources(wc.model, rules.prepare_model.output.manifest.format(model=wc.model))[
            "diagnostics_runtime"],
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/covariance_diagnostics.py"
