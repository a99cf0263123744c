# Lifelong editing trajectories (ROME, r-ROME, MEMIT, AlphaEdit, DeltaEdit): a seeded stream of known facts is edited one
# at a time; every eval_every edits one row records held-out confidence, retention, CounterFact success and the
# interference on held-out keys, measured against the closed form Σ_i r_i P_ij (kis.editing, kis.trajectory).
# Helpers edit_names / edit_settings (what a trajectory's params hold) are in rules/common.smk.
EDITING = config.get("editing", {})
EDIT_METHODS = list(EDITING.get("methods", ["rome", "memit", "alphaedit", "deltaedit"]))
TRAJECTORY = f"{RESULTS}/trajectories/{{model}}/{{method}}.parquet"
EDIT_FIG = f"{RESULTS}/figures/trajectories"


rule trajectory:
    input:
        manifest=manifest,
        cov=f"{RESULTS}/covariance/{{model}}.safetensors",
        known=f"{RESULTS}/knowledge/{{model}}/known.parquet",
        facts=f"{RESULTS}/facts/facts.parquet",
    output:
        table=TRAJECTORY,
    params:
        settings=edit_settings,
        names=edit_names,
    wildcard_constraints:
        method="rome|r-rome|memit|alphaedit|deltaedit",
    log:
        f"{LOGS}/trajectory/{{model}}/{{method}}.log",
    benchmark:
        f"{BENCH}/trajectory/{{model}}/{{method}}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        # evaluation batching never changes a metric; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: max(1, EDITING.get("batch_size", 32) // 2 ** (attempt - 1)),
        gpu=1,
        gpu_model=lambda wc: model_gpu_model(wc.model),  # SLURM --gpus=<model>:1 when the config names one
        mem_mb=lambda wc: model_mem_mb(wc.model, factor=3),
        runtime=lambda wc: 2 * model_runtime(wc.model),
    script:
        "../workflow/scripts/trajectory.py"


rule fig_trajectories:
    localrule: True
    input:
        tables=expand(TRAJECTORY, model=MODELS, method=EDIT_METHODS),
    output:
        png=report(f"{EDIT_FIG}/trajectories.png", caption="../report/trajectories.rst", category="editing"),
        csv=report(f"{EDIT_FIG}/trajectories.csv", caption="../report/trajectories.rst", category="editing"),
        interference_png=report(f"{EDIT_FIG}/interference.png", caption="../report/interference.rst",
                                category="editing"),
        interference_csv=report(f"{EDIT_FIG}/interference.csv", caption="../report/interference.rst",
                                category="editing"),
    params:
        labels={m: config["models"][m].get("label", m) for m in MODELS},
        dpi=config.get("figures", {}).get("dpi", 300),
    log:
        f"{LOGS}/fig_trajectories/trajectories.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_trajectories.py"


rule trajectories:
    localrule: True
    input:
        rules.fig_trajectories.output,


if EDITING:  # a config without an editing section (e.g. the paper's superposition study) builds no trajectories
    ALL_TARGETS += list(rules.fig_trajectories.output)
