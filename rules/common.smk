# Shared helpers for every rules/*.smk file. Conventions --
# - settings: config/schema.yaml holds every default and Snakefile's validate() fills them, so rules read
#   config[...] directly; the few defaults that depend on other settings are filled once below
# - outputs under RESULTS, logs under LOGS/<rule>/..., benchmarks under BENCH/<rule>/...
# - `params:` carries every setting that changes a result (so reruns trigger); resources carry the rest
# - a rule's input that another rule makes is `rules.<rule>.output.<name>`, never the path spelled again
# - scripts live in workflow/scripts/: three lines handing the job to one function of the `kis` package (kis.io.run)
import functools
import json
import sys
from pathlib import Path

def config_error(message):
    """A config the schema lets through but no run can use: stop while the DAG is built, naming the key."""
    raise ValueError(f"config: {message}")


# What the schema cannot say: model keys are names (YAML reads `1:` as a number), none may be taken for an
# all-models figure (heatmaps_{model}.png against heatmaps_all_models_layer0.png), and the results folder is a folder
if bad := [k for k in config["models"] if not isinstance(k, str)]:
    config_error(f"models: the key {bad[0]!r} is a {type(bad[0]).__name__}, not a name; quote it (\"{bad[0]}\")")
if bad := [k for k in config["models"] if k.startswith("all_models")]:
    config_error(f"models: the key {bad[0]!r} starts with 'all_models', the name of the all-model figures; its own "
                 "figures would be overwritten by them — rename it")
if not str(config["results"]).strip() or Path(config["results"]).resolve() == Path("/"):
    config_error(f"results: {config['results']!r} would put every output at the filesystem root; name a folder")
if "editing" in config and config["editing"]["steps"] and max(config["editing"]["steps"]) > config["editing"]["n_edits"]:
    config_error(f"editing.steps: {max(config['editing']['steps'])} is past the stream's end (editing.n_edits = "
                 f"{config['editing']['n_edits']})")
RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
MODELS = sorted(config["models"])  # key order: the order of a config's model entries changes no result (no rerun)

# Defaults that depend on other settings (the schema cannot state them): a model's label is its key; the CounterFact
# download is kept under the results folder.
for _name, _spec in config["models"].items():
    _spec.setdefault("label", _name)
config["facts"].setdefault("cache", f"{RESULTS}/facts/download/counterfact.json")
LABELS = {m: config["models"][m]["label"] for m in MODELS}


def canonical(obj):
    """obj with every dict's keys sorted, recursively: Snakemake compares params by their repr, so a config re-saved
    with its keys in another order (values unchanged) must give the same params. Every dict param goes through it."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(canonical(x) for x in obj)
    return obj


def get_final_output():
    """The default target (Snakefile, all): every model's covariance diagnostics, the analysis set, the statistics,
    every figure family, and the editing study's summary and figures when the config has an editing section."""
    final = expand(rules.covariance_diagnostics.output.table, model=MODELS)
    final += [rules.select_items.output.table, rules.statistics.output.table]
    final += [f for targets in FIGURE_TARGETS.values() for f in targets]
    if "editing" in config:  # e.g. the paper's superposition study has none: no trajectories
        final += list(rules.study_summary.output) + list(rules.fig_trajectories.output)
        final += list(rules.fig_forecast.output)
    return final


def key_numbers():
    """The report front page's numbers (report/workflow.rst): per model, the excess kurtosis of off-diagonal P with
    all N facts at layer 0, its mean over layers and its highest layer; {} while statistics.parquet does not exist."""
    import os

    import pandas as pd

    path = rules.statistics.output.table
    if not os.path.exists(path):
        return {}
    try:
        stat = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 — a damaged table must not block the DAG (its rule rebuilds it)
        print(f"WARNING: {path} is unreadable ({type(e).__name__}: {e}); the report front page has no key numbers "
              "until it is rebuilt (snakemake --forcerun statistics)", file=sys.stderr)
        return {}
    full = stat[(stat.kind == "P") & (stat.n == stat.groupby("model").n.transform("max"))]
    numbers = {}
    for model, g in full.groupby("model", sort=False):
        g = g.sort_values("layer")
        top = g.loc[g["kurtosis"].idxmax()]
        k = g["kurtosis"]
        numbers[model] = {"label": str(g.label.iloc[0]), "n": int(g.n.iloc[0]), "layers": len(g),
                          "first": round(float(k.iloc[0]), 2), "mean": round(float(k.mean()), 2),
                          "max": round(float(top["kurtosis"]), 2), "max_layer": int(top.layer)}
    return numbers


def model_shape(model):
    """The published shapes of a hub model (resources/model_shapes.yaml, kis.plan.load_shapes), None when unknown."""
    from kis import plan

    return plan.load_shapes().get(config["models"][model].get("hub_id"))


def model_size_gb(model):
    """Weight size for cluster resources: models.<m>.size_gb, else from the published shapes (kis.plan) in the run's
    dtype, else 1 GB."""
    from kis import plan

    size, shape = config["models"][model]["size_gb"], model_shape(model)
    if size is None and shape is not None:
        size = plan.count_params(shape) * plan.DTYPE_BYTES[config["models"][model]["dtype"]] / 1e9
    return 1.0 if size is None else float(size)


def model_load_mb(model):
    """Host memory (MB, with 25 % slack) of loading a model: weights + 2 GiB + a non-mmapped checkpoint
    (models.<m>.checkpoint_gb): kis.plan.load_host_bytes."""
    from kis import plan

    load = plan.load_host_bytes(int(model_size_gb(model) * 1e9), config["models"][model]["checkpoint_gb"])
    return int(1.25 * load / 2**20 + 1024)


# the least any queued job asks for: profiles/slurm's default-resources, which a --default-resources on the command
# line would replace
MIN_MEM_MB, MIN_RUNTIME = 4000, 60


def model_mem_mb(model, factor=2):
    return int(max(MIN_MEM_MB, 1024 * factor * model_size_gb(model) + 2000, model_load_mb(model)))


def model_runtime(model):
    """Minutes: generous for a cluster, scaled by model size."""
    return int(MIN_RUNTIME + 30 * model_size_gb(model))


def download_runtime(model):
    """Minutes of prepare_model: 30 + the model's files (checkpoint_gb, else size_gb) at 10 MB/s, at least 60."""
    gb = config["models"][model]["checkpoint_gb"] or model_size_gb(model)
    return int(max(60, 30 + gb * 1000 / 10 / 60))


def corpus_texts():
    """Texts of the corpus sample for sizing jobs: corpus.n_texts, or covariance.expected_texts when that is null
    (all texts of the source: their number is known only once the corpus rule has run)."""
    return config["corpus"]["n_texts"] or config["covariance"]["expected_texts"]


def covariance_resources(model, manifest_path):
    """{mem_mb, runtime, load_mb, diagnostics_mem_mb, diagnostics_runtime} of a model's covariance jobs from its
    shapes and the corpus's expected tokens (kis.plan.shape_resources, formula in kis.plan's docstring): the published
    shapes of a hub model (resources/model_shapes.yaml, so a dry run plans what the run will), else the prepared
    manifest; before that exists, the size_gb estimate. models.<m>.size_gb overrides the weight bytes."""
    from kis import plan

    spec, cov = config["models"][model], config["covariance"]
    common = dict(dtype=spec["dtype"], n_texts=corpus_texts(),
                  max_length=model_max_length(model), token_budget=cov["token_budget"],
                  store_dtype=cov["store_dtype"], size_gb=spec.get("size_gb"), checkpoint_gb=spec["checkpoint_gb"])
    shape = model_shape(model)
    if shape is not None:
        out = plan.shape_resources(shape, **common)
    else:
        try:
            man = json.loads(Path(manifest_path).read_text())
            man["n_layers"], man["d_model"], man["d_ff"], man["n_params"]  # noqa: B018 — the fields the plan needs
        except (TypeError, OSError, ValueError, KeyError) as e:  # not yet made, or damaged: the estimate
            if isinstance(manifest_path, str) and Path(manifest_path).exists():
                print(f"WARNING: {manifest_path} is damaged ({type(e).__name__}: {e}); {model}'s covariance "
                      "resources fall back to the size_gb estimate — rebuild it: snakemake --forcerun prepare_model",
                      file=sys.stderr)
            return {"mem_mb": model_mem_mb(model, factor=3), "runtime": model_runtime(model),
                    "load_mb": model_load_mb(model), "diagnostics_mem_mb": model_mem_mb(model),
                    "diagnostics_runtime": model_runtime(model)}
        out = plan.covariance_resources(n_layers=man["n_layers"], d_model=man["d_model"], d_ff=man["d_ff"],
                                        n_params=man["n_params"], family=man["family"], **common)
    floors = {"mem_mb": MIN_MEM_MB, "runtime": MIN_RUNTIME, "diagnostics_mem_mb": MIN_MEM_MB,
              "diagnostics_runtime": MIN_RUNTIME}
    return {k: max(v, floors.get(k, 0)) for k, v in out.items()}


def model_gpu_model(model):
    """SLURM gpu_model for a model's GPU jobs (config models.<m>.gpu_model, e.g. a100); "" asks for any GPU."""
    return config["models"][model]["gpu_model"] or ""


def gpu_resources(mem_factor=2, runtime_factor=1):
    """Resources of the jobs that run one model ({model} wildcard) on a GPU; use as `resources: **gpu_resources()`.

    gpu=1: locally `--resources gpu=N` caps concurrent GPU jobs; the SLURM plugin turns gpu + gpu_model into
    `--gpus=<gpu_model>:1` (or `--gpus=1`). Memory and runtime scale with the model's size_gb.
    """
    return {
        "gpu": 1,
        "gpu_model": lambda wc: model_gpu_model(wc.model),
        "mem_mb": lambda wc: model_mem_mb(wc.model, factor=mem_factor),
        "runtime": lambda wc: runtime_factor * model_runtime(wc.model),
    }


def halved(value, attempt, floor=1):
    """A batching setting halved on each retry after an out-of-memory error (never below floor)."""
    return max(floor, value // 2 ** (attempt - 1))


# Reruns (profiles/, tests/test_reruns.py): a model entry's keys that only place or label its jobs, never change a
# result — prepare_model's params leave them out, so editing them reruns no model job.
MODEL_RESULT_FREE = ("label", "size_gb", "checkpoint_gb", "gpu_model", "covariance")


def model_result_spec(wc):
    """The model entry minus MODEL_RESULT_FREE: what prepare_model's manifest (and everything after it) depends on."""
    return {k: v for k, v in config["models"][wc.model].items() if k not in MODEL_RESULT_FREE}


def model_max_length(model):
    """Tokens per corpus text for this model's C: models.<m>.covariance.max_length when given (null: the model's
    context), else corpus.max_length."""
    own = config["models"][model]["covariance"]
    return own["max_length"] if "max_length" in own else config["corpus"]["max_length"]


# Figures (rules/figures.smk): the label of a model. The corpus behind C is read by the figure scripts from the
# tables' metadata at run time: nothing reads a result file while the DAG is built (a damaged table blocks no rule).
def fig_label(wc):
    return LABELS[wc.model]


# Editing (rules/editing.smk): the names editing.published / overrides may give a model, and the settings of one
# (model, method) trajectory — only what changes it, so editing another method's entry reruns nothing here.
def edit_names(wc):
    spec = config["models"][wc.model]
    return [n for n in (wc.model, spec.get("hub_id"), spec.get("gguf"), spec.get("local_dir")) if n]


def edit_settings(wc):
    editing = config["editing"]
    common = ("n_edits", "n_test", "eval_every", "seed", "require_known", "max_neighborhood", "cov_ridge",
              "kl_prompt", "context_templates", "layer_fraction", "fluency_prompts", "fluency_max_len")
    out = {k: editing[k] for k in common}
    if editing["context_templates"] == "generated":  # sampled from the model (kis.templates): their seed
        out["template_seed"] = editing["template_seed"]
    if editing.get("steps") is not None:  # only when set: a config without it keeps its params (no rerun)
        out["steps"] = sorted(editing["steps"])
    out["defaults"] = {wc.method: editing["defaults"][wc.method]}
    # the layers a method may borrow (kis.editing.resolve_hparams): ROME's layer, the MEMIT family's windows
    borrow = {"rome", "alphaedit", "memit", "deltaedit"} - {wc.method}
    for table in ("published", "overrides"):
        entries = editing[table]
        out[table] = {}
        for n in edit_names(wc):
            got = {m: ({k: v for k, v in e.items() if k in ("layer", "layers", "source")} if m != wc.method else e)
                   for m, e in (entries.get(n) or {}).items() if m == wc.method or m in borrow}
            if got:
                out[table][n] = got
    return out


@functools.lru_cache(maxsize=None)
def _forecast_key(model, method):
    """kis.hparams.forecast_key of (model, method), once per pair while the DAG is built (the config does not change)."""
    from types import SimpleNamespace

    from kis.hparams import forecast_key

    w = SimpleNamespace(model=model, method=method)
    return forecast_key(edit_settings(w), method, edit_names(w))


def forecast_leader(wc):
    """The first configured method whose pre-edit forecast estimates equal {method}'s on {model} (kis.hparams.
    forecast_key, from the settings alone): its preedit file serves both (ROME and r-ROME, MEMIT and AlphaEdit in the
    study). The trajectory job checks the file's signature against its own before using it."""
    mine = _forecast_key(wc.model, wc.method)
    return next(m for m in config["editing"]["methods"] if m == wc.method or _forecast_key(wc.model, m) == mine)

