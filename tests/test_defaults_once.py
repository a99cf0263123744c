"""Each default lives once, in config/schema.yaml (Snakefile's validate() fills it): the library called without a
setting fails naming it instead of falling back to a default of its own (issue 31)."""
from __future__ import annotations

import inspect
import re

import pytest

import wf
from kis import corpus, covariance, editing_figures, forecast, models, schema, trajectory


def corpus_settings(**kw):
    return schema.filled("corpus", {"source": "python_docs", "n_texts": 3, **kw})


@pytest.mark.parametrize("key", ["seed", "n_texts", "min_chars"])
def test_corpus_without_a_setting_raises_naming_it(key):
    cfg = corpus_settings()
    del cfg[key]
    with pytest.raises(corpus.CorpusError, match=rf"corpus: missing setting\(s\) \['{key}'\].*config/schema.yaml"):
        corpus.build(cfg)


@pytest.mark.parametrize("key", ["id_field", "text_field"])
def test_a_local_corpus_without_its_field_names_raises(tmp_path, key):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "some text"}\n')
    cfg = corpus_settings(source="local", path=str(path))
    del cfg[key]
    with pytest.raises(corpus.CorpusError, match=rf"corpus \(source: local\): missing setting\(s\) \['{key}'\]"):
        corpus.build(cfg)


@pytest.mark.parametrize("key", ["split", "text_field", "id_field", "buffer_size", "revision", "data_files"])
def test_an_hf_corpus_without_a_setting_raises(key):
    cfg = corpus_settings(source="hf", hf={"dataset": "parquet"})
    assert cfg["hf"] == {"dataset": "parquet", **schema.defaults("corpus.hf")}  # filled as validate() fills it
    del cfg["hf"][key]
    with pytest.raises(corpus.CorpusError, match=rf"corpus.hf: missing setting\(s\) \['{key}'\]"):
        corpus.build(cfg)


def test_the_schema_fills_the_corpus_defaults_the_sample_uses():
    frame, meta = corpus.build(corpus_settings())
    assert meta["seed"] == wf.defaults("corpus")["seed"] and len(frame) == 3


@pytest.mark.parametrize("key", ["dtype", "trust_remote_code", "revision"])
def test_a_model_entry_without_a_setting_raises(tmp_path, key):
    spec = schema.filled("models.*", {"local_dir": str(tmp_path / "m")})
    assert {k: spec[k] for k in ("dtype", "trust_remote_code", "revision")} == {
        "dtype": "float32", "trust_remote_code": False, "revision": None}  # the schema's
    del spec[key]
    with pytest.raises(ValueError, match=rf"model entry .*: missing setting\(s\) \['{key}'\]"):
        models.prepare(spec, tmp_path / "out")


def required_keywords(fn) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items()
            if p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


@pytest.mark.parametrize("fn, keys", [
    # covariance: checkpoint intervals and the device memory in the config's units, straight from the rule
    (covariance.run_rule, {"checkpoint_every", "checkpoint_minutes", "device_memory_mib", "batch_tokens"}),
    (trajectory.run_rule, {"checkpoint_every"}),  # edits between saved states, 0: none
    (editing_figures.run_forecast, {"labels", "dpi", "n_boot", "seed"}),
    (editing_figures.run_trajectories, {"labels", "dpi"}),
    (editing_figures.forecast_figure, {"n_boot", "seed"}),
    (forecast.step_table, {"n_boot", "seed"}),
    (forecast.forgetting_auc, {"n_boot", "seed"}),
])
def test_rule_functions_take_these_settings_without_a_default(fn, keys):
    assert keys <= required_keywords(fn)
    kwargs = {n: None for n in required_keywords(fn) - keys}
    with pytest.raises(TypeError, match="missing .*required"):
        fn(**kwargs)  # called without the settings: fails before doing anything


def test_a_trajectory_checkpoint_needs_its_interval():
    with pytest.raises(ValueError, match="checkpoint_every ≥ 1"):
        trajectory.run(None, None, None, [], [], eval_every=1, checkpoint="t.pt")
    with pytest.raises(ValueError, match="checkpoint_every ≥ 1"):
        trajectory.run(None, None, None, [], [], eval_every=1, checkpoint="t.pt", checkpoint_every=0)


def test_the_rules_hold_no_literal_setting():
    """n_boot / seed / the corpus size of the resources come from the config, not from a literal in a rule."""
    rules = {p.name: p.read_text() for p in (wf.REPO / "rules").glob("*.smk")}
    assert not any(re.search(r"n_texts\"\]\s*or\s*\d", t) for t in rules.values())
    assert not re.search(r"^\s+(n_boot|seed|dpi)=\d", rules["editing.smk"], flags=re.M)


def test_the_corpus_size_of_the_resources_is_the_configs(tmp_path):
    """corpus.n_texts null (every text): the corpus and covariance jobs are sized by covariance.expected_texts."""
    config = wf.tiny_config(tmp_path, overrides={"corpus": {"n_texts": None},
                                                 "covariance": {"expected_texts": 1_000_000}})
    dry = wf.snakemake(config, "-n", wf.target(config, "corpus", "texts.parquet")).stdout
    assert re.search(r"rule corpus:.*?mem_mb=22048\b", dry, flags=re.S), dry[-3000:]  # 2048 + 20 KB a text
