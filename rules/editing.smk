# Lifelong editing trajectories (ROME, r-ROME, MEMIT, AlphaEdit, DeltaEdit, WilKE, least-interference): a seeded stream of known facts is edited one
# at a time; every eval_every edits one row records held-out confidence, retention, CounterFact success and the
# interference on held-out keys, measured against the paper's closed form Σ_i r_i P_ij (kis.editing, kis.trajectory);
# before the first edit, the pre-edit forecast of forgetting (kis.preedit).
# Helpers edit_names / edit_settings (what a trajectory's params hold) are in rules/common.smk.
import re

EDIT_METHODS = config["editing"]["methods"] if "editing" in config else []  # no editing section: no trajectories
EDIT_FIG = f"{RESULTS}/figures/trajectories"


rule preedit:
    input:
        manifest=rules.prepare_model.output.manifest,
        known=rules.known.output.known,
        facts=rules.facts.output.facts,
    output:
        # per planned edit its key k̄_i and v* shift δ_i on the unedited model at the measure layer (kis.preedit)
        estimates_file=f"{RESULTS}/preedit/{{model}}/{{method}}.pt",
    params:
        settings=lambda wc: canonical(edit_settings(wc)),
        names=edit_names,
    wildcard_constraints:
        method="|".join(re.escape(m) for m in EDIT_METHODS) or "^$",
    log:
        f"{LOGS}/preedit/{{model}}/{{method}}.log",
    benchmark:
        f"{BENCH}/preedit/{{model}}/{{method}}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        batch_size=lambda wc, attempt: halved(config["editing"]["batch_size"], attempt),
        **gpu_resources(mem_factor=3),
    script:
        "../workflow/scripts/preedit.py"


rule trajectory:
    input:
        manifest=rules.prepare_model.output.manifest,
        cov=rules.covariance.output.cov,
        known=rules.known.output.known,
        facts=rules.facts.output.facts,
        # the forecast's planned keys and v* shifts, made once for the methods whose forecast agrees (forecast_leader)
        preedit=lambda wc: f"{RESULTS}/preedit/{wc.model}/{forecast_leader(wc)}.pt",
    output:
        table=f"{RESULTS}/trajectories/{{model}}/{{method}}.parquet",
        # per held-out fact and recorded step: pre-edit risk and baselines, measured displacement, Δ log P(true)
        # (kis.forecast)
        forecast=f"{RESULTS}/trajectories/{{model}}/{{method}}.forecast.parquet",
    params:
        settings=lambda wc: canonical(edit_settings(wc)),
        names=edit_names,
    wildcard_constraints:
        method="|".join(re.escape(m) for m in EDIT_METHODS) or "^$",  # the configured methods (schema enum)
    log:
        f"{LOGS}/trajectory/{{model}}/{{method}}.log",
    benchmark:
        f"{BENCH}/trajectory/{{model}}/{{method}}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        # evaluation batching never changes a metric; halved on each retry after an out-of-memory error
        batch_size=lambda wc, attempt: halved(config["editing"]["batch_size"], attempt),
        # a resumable state every n edits beside the table (a rerun after a kill goes on from it; never a metric)
        checkpoint_every=lambda wc: config["editing"]["checkpoint_every"],
        **gpu_resources(mem_factor=3, runtime_factor=2),
    script:
        "../workflow/scripts/trajectory.py"


rule fig_trajectories:
    localrule: True
    input:
        tables=expand(rules.trajectory.output.table, model=MODELS, method=EDIT_METHODS),
    output:
        png=report(f"{EDIT_FIG}/trajectories.png", caption="../report/trajectories.rst", category="editing"),
        csv=report(f"{EDIT_FIG}/trajectories.csv", caption="../report/trajectories.rst", category="editing"),
        interference_png=report(f"{EDIT_FIG}/interference.png", caption="../report/interference.rst",
                                category="editing"),
        interference_csv=report(f"{EDIT_FIG}/interference.csv", caption="../report/interference.rst",
                                category="editing"),
        # per (model, method, step): relative error of the paper's prediction (kis.editing_figures.interference_table)
        interference_table_csv=report(f"{EDIT_FIG}/interference_paper_p.csv", caption="../report/interference.rst",
                                      category="editing"),
    params:
        labels=canonical(LABELS),
        dpi=config["figures"]["dpi"],
    log:
        f"{LOGS}/fig_trajectories/trajectories.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_trajectories.py"


rule fig_forecast:
    localrule: True
    input:
        tables=expand(rules.trajectory.output.forecast, model=MODELS, method=EDIT_METHODS),
    output:
        png=report(f"{EDIT_FIG}/forecast.png", caption="../report/forecast.rst", category="editing"),
        csv=report(f"{EDIT_FIG}/forecast.csv", caption="../report/forecast.rst", category="editing"),
        summary_csv=report(f"{EDIT_FIG}/forecast_auc.csv", caption="../report/forecast.rst", category="editing"),
        # per model and pair of methods: the held-out facts only one of them forgot, exact McNemar test (kis.forecast)
        paired_csv=report(f"{EDIT_FIG}/forgetting_paired.csv", caption="../report/forecast.rst", category="editing"),
    params:
        labels=canonical(LABELS),
        dpi=config["figures"]["dpi"],
        n_boot=config["figures"]["forecast_n_boot"],
        seed=config["figures"]["forecast_seed"],
    log:
        f"{LOGS}/fig_forecast/forecast.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_forecast.py"


rule trajectories:
    localrule: True
    input:
        rules.fig_trajectories.output,
        rules.fig_forecast.output,


# The editing study (config/study.yaml, config/paper.yaml): from the trajectory tables only, a summary of every
# model × method × recorded step (kis.study), beside the trajectory and forecast figures of all methods.
rule study_summary:
    localrule: True
    input:
        tables=expand(rules.trajectory.output.table, model=MODELS, method=EDIT_METHODS),
    output:
        csv=report(f"{RESULTS}/study/summary.csv", caption="../report/study.rst", category="editing"),
        md=f"{RESULTS}/study/summary.md",
    params:
        labels=canonical(LABELS),
    log:
        f"{LOGS}/study_summary/summary.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/study_summary.py"


rule study:
    localrule: True
    input:
        rules.study_summary.output,
        rules.fig_trajectories.output,
        rules.fig_forecast.output,
