# Lifelong editing trajectories (ROME, MEMIT, AlphaEdit, DeltaEdit): a seeded stream of known facts is edited one
# at a time; every eval_every edits one row records held-out confidence, retention, CounterFact success and the
# interference on held-out keys, measured against the closed form Σ_i r_i P_ij (kis.editing, kis.trajectory).
EDITING = config.get("editing", {})
EDIT_METHODS = list(EDITING.get("methods", ["rome", "memit", "alphaedit", "deltaedit"]))
EDIT_COMMON = ("n_edits", "n_test", "eval_every", "seed", "require_known", "max_neighborhood", "cov_ridge",
               "kl_prompt", "context_templates", "layer_fraction")
TRAJECTORY = f"{RESULTS}/trajectories/{{model}}/{{method}}.parquet"
EDIT_FIG = f"{RESULTS}/figures/trajectories"


def edit_names(wc):
    """Names under which `published` / `overrides` may list this model: config key, hub id, GGUF or directory."""
    spec = config["models"][wc.model]
    return [n for n in (wc.model, spec.get("hub_id"), spec.get("gguf"), spec.get("local_dir")) if n]


def edit_settings(wc):
    """Only what changes this (model, method) trajectory: the common settings and this method's entries."""
    out = {k: EDITING[k] for k in EDIT_COMMON if k in EDITING}
    out["defaults"] = {wc.method: EDITING.get("defaults", {}).get(wc.method, {})}
    for table in ("published", "overrides"):
        entries = EDITING.get(table) or {}
        out[table] = {n: {wc.method: entries[n][wc.method]} for n in edit_names(wc)
                      if wc.method in (entries.get(n) or {})}
    return out


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
        method="rome|memit|alphaedit|deltaedit",
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
        gpu_model=lambda wc: config["models"][wc.model].get("gpu_model") or "",  # SLURM --gpus=<model>:1
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
    script:
        "../workflow/scripts/fig_trajectories.py"


rule trajectories:
    localrule: True
    input:
        rules.fig_trajectories.output,


ALL_TARGETS += list(rules.fig_trajectories.output)
