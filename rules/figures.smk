# The paper's figures, from the Parquet tables only (no model is loaded): PNG + the CSV behind it, in the report.
# One target rule per family (heatmaps, kde, scaling_law, angles, convergence, case_study); `figures` builds all.
# Every setting that changes a figure is in that figure's params, so only that figure reruns when it changes.
import re

FIGURES = config["figures"]
FIG = f"{RESULTS}/figures"
FIG_COMPARE_LAYER = 0  # the paper's side-by-side of all models is at layer 0
FIG_MODEL = "|".join(re.escape(m) for m in MODELS)  # keeps {model} off the all-model file names
SUPERPOSITION_TABLE = rules.superposition.output.table
STATISTICS_TABLE = rules.statistics.output.table


rule fig_heatmap:
    localrule: True
    input:
        table=SUPERPOSITION_TABLE,
    output:
        png=report(f"{FIG}/heatmaps/heatmaps_{{model}}.png", caption="../report/heatmaps.rst",
                   category="heatmaps", subcategory="{model}"),
        # not in the report: a copy of every P entry, as large as the superposition table
        csv=f"{FIG}/heatmaps/heatmaps_{{model}}.csv",
    params:
        label=fig_label,
        layers=FIGURES["heatmap_layers"],
        dpi=FIGURES["dpi"],
    wildcard_constraints:
        model=FIG_MODEL,
    log:
        f"{LOGS}/fig_heatmap/{{model}}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_heatmap.py"


rule fig_heatmap_models:
    localrule: True
    input:
        tables=expand(SUPERPOSITION_TABLE, model=MODELS),
        statistics=STATISTICS_TABLE,
    output:
        png=report(f"{FIG}/heatmaps/heatmaps_all_models_layer{FIG_COMPARE_LAYER}.png",
                   caption="../report/heatmaps_models.rst", category="heatmaps", subcategory="all models"),
        csv=report(f"{FIG}/heatmaps/heatmaps_all_models_layer{FIG_COMPARE_LAYER}.csv",
                   caption="../report/heatmaps_models.rst", category="heatmaps", subcategory="all models"),
    params:
        models=MODELS,
        layer=FIG_COMPARE_LAYER,
        dpi=FIGURES["dpi"],
    log:
        f"{LOGS}/fig_heatmap_models/heatmap_models.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_heatmap_models.py"


rule fig_kde:
    localrule: True
    input:
        table=SUPERPOSITION_TABLE,
    output:
        png=report(f"{FIG}/kde/kde_{{model}}.png", caption="../report/kde.rst", category="kde",
                   subcategory="{model}"),
        csv=report(f"{FIG}/kde/kde_{{model}}.csv", caption="../report/kde.rst", category="kde",
                   subcategory="{model}"),
    params:
        label=fig_label,
        points=FIGURES["kde_points"],
        dpi=FIGURES["dpi"],
    wildcard_constraints:
        model=FIG_MODEL,
    log:
        f"{LOGS}/fig_kde/{{model}}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_kde.py"


rule fig_kde_models:
    localrule: True
    input:
        tables=expand(SUPERPOSITION_TABLE, model=MODELS),
        statistics=STATISTICS_TABLE,
    output:
        png=report(f"{FIG}/kde/kde_all_models_layer{FIG_COMPARE_LAYER}.png", caption="../report/kde_models.rst",
                   category="kde", subcategory="all models"),
        csv=report(f"{FIG}/kde/kde_all_models_layer{FIG_COMPARE_LAYER}.csv", caption="../report/kde_models.rst",
                   category="kde", subcategory="all models"),
    params:
        models=MODELS,
        layer=FIG_COMPARE_LAYER,
        points=FIGURES["kde_points"],
        dpi=FIGURES["dpi"],
    log:
        f"{LOGS}/fig_kde_models/kde_models.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_kde_models.py"


rule fig_scaling_law:
    localrule: True
    input:
        statistics=STATISTICS_TABLE,
    output:
        png=report(f"{FIG}/scaling_law/scaling_law.png", caption="../report/scaling_law.rst",
                   category="scaling law"),
        csv=report(f"{FIG}/scaling_law/scaling_law.csv", caption="../report/scaling_law.rst",
                   category="scaling law"),
    params:
        dpi=FIGURES["dpi"],
    log:
        f"{LOGS}/fig_scaling_law/scaling_law.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_scaling_law.py"


rule fig_angles:
    localrule: True
    input:
        table=SUPERPOSITION_TABLE,
    output:
        png=report(f"{FIG}/angles/angles_{{model}}.png", caption="../report/angles.rst", category="angles",
                   subcategory="{model}"),
        csv=report(f"{FIG}/angles/angles_{{model}}.csv", caption="../report/angles.rst", category="angles",
                   subcategory="{model}"),
    params:
        label=fig_label,
        layers=FIGURES["angle_layers"],
        dpi=FIGURES["dpi"],
    wildcard_constraints:
        model=FIG_MODEL,
    log:
        f"{LOGS}/fig_angles/{{model}}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_angles.py"


rule fig_convergence:
    localrule: True
    input:
        table=SUPERPOSITION_TABLE,
        statistics=STATISTICS_TABLE,
    output:
        png=report(f"{FIG}/convergence/convergence_{{model}}.png", caption="../report/convergence.rst",
                   category="convergence", subcategory="{model}"),
        csv=report(f"{FIG}/convergence/convergence_{{model}}.csv", caption="../report/convergence.rst",
                   category="convergence", subcategory="{model}"),
    params:
        label=fig_label,
        layer=FIGURES["convergence_layer"],
        points=FIGURES["kde_points"],
        dpi=FIGURES["dpi"],
    wildcard_constraints:
        model=FIG_MODEL,
    log:
        f"{LOGS}/fig_convergence/{{model}}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_convergence.py"


rule fig_case_study:
    localrule: True
    input:
        table=SUPERPOSITION_TABLE,
        item_table=rules.select_items.output.table,
    output:
        md=report(f"{FIG}/case_study/case_study_{{model}}.md", caption="../report/case_study.rst",
                  category="case study", subcategory="{model}"),
        csv=report(f"{FIG}/case_study/case_study_{{model}}.csv", caption="../report/case_study.rst",
                   category="case study", subcategory="{model}"),
    params:
        label=fig_label,
        layer=FIGURES["case_study_layer"],
        top=FIGURES["case_study_top"],
    wildcard_constraints:
        model=FIG_MODEL,
    log:
        f"{LOGS}/fig_case_study/{{model}}.log",
    conda:
        "../envs/figures.yaml"
    script:
        "../workflow/scripts/fig_case_study.py"


FIGURE_TARGETS = {
    "heatmaps": expand(rules.fig_heatmap.output, model=MODELS) + list(rules.fig_heatmap_models.output),
    "kde": expand(rules.fig_kde.output, model=MODELS) + list(rules.fig_kde_models.output),
    "scaling_law": list(rules.fig_scaling_law.output),
    "angles": expand(rules.fig_angles.output, model=MODELS),
    "convergence": expand(rules.fig_convergence.output, model=MODELS),
    "case_study": expand(rules.fig_case_study.output, model=MODELS),
}


rule heatmaps:
    localrule: True
    input:
        FIGURE_TARGETS["heatmaps"],


rule kde:
    localrule: True
    input:
        FIGURE_TARGETS["kde"],


rule scaling_law:
    localrule: True
    input:
        FIGURE_TARGETS["scaling_law"],


rule angles:
    localrule: True
    input:
        FIGURE_TARGETS["angles"],


rule convergence:
    localrule: True
    input:
        FIGURE_TARGETS["convergence"],


rule case_study:
    localrule: True
    input:
        FIGURE_TARGETS["case_study"],


rule figures:
    localrule: True
    input:
        [f for targets in FIGURE_TARGETS.values() for f in targets],
