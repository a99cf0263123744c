# Known facts: CounterFact → validated facts → per-model known filter → the analysis set (N facts all models know).

FACTS = config["facts"]
# only the keys of the chosen source go into params, so editing an unused one reruns nothing
FACTS_PARAMS = {k: FACTS[k] for k in {"local": ["source", "path"], "url": ["source", "url", "cache"],
                                     "hf": ["source", "hf"]}[FACTS["source"]] + ["on_bad_record", "max_records"]}
ANALYSIS = config["analysis"]


rule facts:
    input:
        # the local facts file is an input (edits rerun the rule); url / hf sources have none
        lambda wc: [FACTS["path"]] if FACTS["source"] == "local" else [],
    output:
        facts=f"{RESULTS}/facts/facts.parquet",
    params:
        source=canonical(FACTS_PARAMS),  # kis.knowledge.load_facts
    log:
        f"{LOGS}/facts/facts.log",
    resources:
        mem_mb=MIN_MEM_MB,  # named here, not left to --default-resources (a command line that sets those drops the profile's)
        runtime=MIN_RUNTIME,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/facts.py"


rule known:
    input:
        manifest=rules.prepare_model.output.manifest,
        facts=rules.facts.output.facts,
    output:
        known=f"{RESULTS}/knowledge/{{model}}/known.parquet",
    log:
        f"{LOGS}/known/{{model}}.log",
    benchmark:
        f"{BENCH}/known/{{model}}.tsv"
    threads: 2  # torch uses exactly these
    priority: 10  # as covariance: a two-thread job is not held back behind one-thread trajectories
    conda:
        "../envs/torch.yaml"
    resources:
        # batching never changes which facts are known; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: halved(ANALYSIS["known_batch_size"], attempt),
        **gpu_resources(),
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
