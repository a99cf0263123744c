# Keys at the subject's last token of the analysis items, every layer in one pass (kis.keys).

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
