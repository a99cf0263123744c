# Shared helpers for every rules/*.smk file. Conventions --
# - outputs under RESULTS, logs under LOGS/<rule>/..., benchmarks under BENCH/<rule>/...
# - `params:` carries every setting that changes a result (so reruns trigger); resources carry the rest
# - scripts live in workflow/scripts/ and call one function of the `kis` package (src/kis)
import json

RESULTS = config.get("results", "results")
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
MODELS = list(config["models"])
ALL_TARGETS = []  # each rules/*.smk appends its final outputs; `rule all` builds them


def model_spec(wc):
    return config["models"][wc.model]


def manifest(wc):
    return f"{RESULTS}/models/{wc.model}/manifest.json"


def model_size_gb(model):
    """Approximate weight size from the config (size_gb), for cluster resources; 1 GB when unknown."""
    return float(config["models"][model].get("size_gb", 1.0))


def model_mem_mb(model, factor=2):
    return int(max(4000, 1024 * factor * model_size_gb(model) + 2000))


def model_runtime(model):
    """Minutes: generous for a cluster, scaled by model size."""
    return int(60 + 30 * model_size_gb(model))


def model_gpu_model(model):
    """SLURM gpu_model for a model's GPU jobs (config models.<m>.gpu_model, e.g. a100); "" asks for any GPU.

    GPU rules declare `gpu=1, gpu_model=lambda wc: model_gpu_model(wc.model)`; the SLURM plugin turns this into
    `--gpus=<gpu_model>:1` (or `--gpus=1`); locally `--resources gpu=N` caps concurrent GPU jobs.
    """
    return config["models"][model].get("gpu_model") or ""


# Reruns (profiles/, tests/test_reruns.py): a model entry's keys that only place or label its jobs, never change a
# result — prepare_model's params leave them out, so editing them reruns no model job.
MODEL_RESULT_FREE = ("label", "size_gb", "gpu_model", "covariance")


def model_result_spec(wc):
    """The model entry minus MODEL_RESULT_FREE: what prepare_model's manifest (and everything after it) depends on."""
    return {k: v for k, v in config["models"][wc.model].items() if k not in MODEL_RESULT_FREE}


def model_max_length(model):
    """Tokens per corpus text for this model's C: models.<m>.covariance.max_length, else corpus.max_length."""
    own = config["models"][model].get("covariance") or {}
    return own["max_length"] if "max_length" in own else config["corpus"].get("max_length")


# Figures (rules/figures.smk): the label of a model, and the corpus behind C named in the figure captions.
def fig_label(wc):
    return config["models"][wc.model].get("label", wc.model)


def fig_corpus(*tables):
    """corpus_id of finished tables (metadata, else a corpus_id column), for captions; params derived from input
    are no rerun trigger, and before the tables exist this is a placeholder."""
    import os

    import pyarrow.parquet as pq

    ids = set()
    for t in tables:
        if not os.path.exists(t):
            return "(named in the figure once its tables exist)"
        schema = pq.read_schema(t)
        meta = schema.metadata or {}
        if b"kis.corpus_id" in meta:
            ids.add(json.loads(meta[b"kis.corpus_id"]))
        elif "corpus_id" in schema.names:
            ids.update(str(c) for c in pq.read_table(t, columns=["corpus_id"]).column(0).unique().to_pylist())
    return ", ".join(sorted(ids)) or "(no corpus_id in the tables)"


# Editing (rules/editing.smk): the names editing.published / overrides may give a model, and the settings of one
# (model, method) trajectory — only what changes it, so editing another method's entry reruns nothing here.
def edit_names(wc):
    spec = config["models"][wc.model]
    return [n for n in (wc.model, spec.get("hub_id"), spec.get("gguf"), spec.get("local_dir")) if n]


def edit_settings(wc):
    editing = config.get("editing", {})
    common = ("n_edits", "n_test", "eval_every", "seed", "require_known", "max_neighborhood", "cov_ridge",
              "kl_prompt", "context_templates", "layer_fraction", "fluency_prompts", "fluency_max_len")
    out = {k: editing[k] for k in common if k in editing}
    out["defaults"] = {wc.method: editing.get("defaults", {}).get(wc.method, {})}
    # the layers a method may borrow (kis.editing.resolve_hparams): ROME's layer, the MEMIT family's windows
    borrow = {"rome", "alphaedit", "memit", "deltaedit"} - {wc.method}
    for table in ("published", "overrides"):
        entries = editing.get(table) or {}
        out[table] = {}
        for n in edit_names(wc):
            got = {m: ({k: v for k, v in e.items() if k in ("layer", "layers", "source")} if m != wc.method else e)
                   for m, e in (entries.get(n) or {}).items() if m == wc.method or m in borrow}
            if got:
                out[table][n] = got
    return out
