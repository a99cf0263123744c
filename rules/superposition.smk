# The superposition matrices P, Q and the cosines per layer, from a model's keys and its C (kis.superposition).


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
