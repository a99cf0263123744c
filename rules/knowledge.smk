# Known facts: CounterFact → validated facts → per-model known filter → the analysis set (N facts all models know).

FACTS = {"source": "local", "path": "resources/facts.json", "url": "https://rome.baulab.info/data/dsets/counterfact.json",
         "on_bad_record": "error", **config.get("facts", {})}
FACTS.setdefault("cache", f"{RESULTS}/facts/download/counterfact.json")
# only the keys of the chosen source go into params, so editing an unused one reruns nothing
FACTS_PARAMS = {k: FACTS[k] for k in {"local": ["source", "path"], "url": ["source", "url", "cache"],
                                     "hf": ["source", "hf"]}[FACTS["source"]] + ["on_bad_record", "max_records"]
                if k in FACTS}
ANALYSIS = {"n_items": 128, "selection": "first", "seed": 0, "require_known": True, "known_batch_size": 32,
            **config.get("analysis", {})}


rule facts:
    input:
        # the local facts file is an input (edits rerun the rule); url / hf sources have none
        lambda wc: [FACTS["path"]] if FACTS["source"] == "local" else [],
    output:
        facts=f"{RESULTS}/facts/facts.parquet",
    params:
        facts=FACTS_PARAMS,
    log:
        f"{LOGS}/facts/facts.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/facts.py"


rule known:
    input:
        manifest=manifest,
        facts=rules.facts.output.facts,
    output:
        known=f"{RESULTS}/knowledge/{{model}}/known.parquet",
    log:
        f"{LOGS}/known/{{model}}.log",
    benchmark:
        f"{BENCH}/known/{{model}}.tsv"
    threads: 2  # torch uses exactly these
    conda:
        "../envs/torch.yaml"
    resources:
        # batching never changes which facts are known; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: max(1, ANALYSIS["known_batch_size"] // 2 ** (attempt - 1)),
        gpu=1,
        gpu_model=lambda wc: model_gpu_model(wc.model),  # SLURM --gpus=<model>:1 when the config names one
        mem_mb=lambda wc: model_mem_mb(wc.model),
        runtime=lambda wc: model_runtime(wc.model),
    script:
        "../workflow/scripts/known.py"


rule select_items:
    localrule: True
    input:
        facts=rules.facts.output.facts,
        known=expand(rules.known.output.known, model=MODELS),
    output:
        table=f"{RESULTS}/knowledge/items.parquet",
    params:
        models=MODELS,
        analysis={k: ANALYSIS[k] for k in ("n_items", "selection", "seed", "require_known")},
    log:
        f"{LOGS}/select_items/select_items.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/select_items.py"


ALL_TARGETS += [rules.select_items.output.table]
