"""The pre-edit forecast's planned keys and v* shifts made once by the `preedit` rule (kis.preedit.run_rule) and
shared by the methods whose forecast agrees (kis.hparams.forecast_key, rules/common.smk forecast_leader): the
trajectory that reads the file writes the rows it writes when it makes them itself, a file made for another
forecast is refused naming the field, and the settings pair exactly the methods whose estimates are equal."""
import copy

import numpy as np
import pandas as pd
import pytest

import wf
from editfix import HP, TEMPLATES, tiny_facts
from kis import editing, hparams, preedit, schema, trajectory

STUDY = wf.REPO / "config" / "study.yaml"


def _settings(**kw):
    s = {**wf.defaults("editing"), "n_edits": 4, "n_test": 3, "eval_every": 2, "seed": 1, "require_known": False,
         "context_templates": TEMPLATES, "layer_fraction": 0.5, "fluency_prompts": 0,
         "defaults": {m: {**HP, "nullspace_threshold": 0.0, "v_num_grad_steps": 5} for m in editing.METHODS},
         "published": {}, "overrides": {}}
    return {**s, **kw}


@pytest.fixture
def inputs(tmp_path, covs):
    from test_trajectory import write_inputs

    write_inputs(tmp_path, tiny_facts(), covs)
    return dict(manifest=tmp_path / "prepared" / "manifest.json", known=tmp_path / "known.parquet",
                facts=tmp_path / "facts.parquet")


def _estimates(inputs, tmp_path, method, settings):
    out = tmp_path / "preedit" / f"{method}.pt"
    preedit.run_rule(**inputs, estimates_file=out, model="tiny-llama", method=method, settings=settings,
                     names=["tiny-llama"], batch_size=32)
    return out


def _trajectory(inputs, tmp_path, method, settings, pre=None, name="t"):
    out = tmp_path / name / f"{method}.parquet"
    rows, _ = trajectory.run_rule(**inputs, cov=tmp_path / "cov.safetensors", table=out, model="tiny-llama",
                                  method=method, settings=settings, names=["tiny-llama"], batch_size=32,
                                  checkpoint_every=0, forecast=out.with_suffix(".forecast.parquet"), preedit=pre)
    return rows, pd.read_parquet(out.with_suffix(".forecast.parquet"))


@pytest.mark.parametrize("leader, method", [("rome", "r-rome"), ("memit", "alphaedit")])
def test_a_trajectory_on_the_leaders_file_writes_the_rows_it_writes_alone(inputs, tmp_path, covs, leader, method):
    """r-ROME on ROME's file (and AlphaEdit on MEMIT's) gives, to the last bit, the trajectory and forecast tables
    it gives when it makes its own estimates before its first edit; the file holds one key and one shift per edit."""
    import torch

    s = _settings()
    for m in ("memit", "alphaedit"):  # a null space that is not empty (the smaller half of C's spectrum)
        s["defaults"][m]["nullspace_threshold"] = float(torch.linalg.eigvalsh(covs[0]).median())
    path = _estimates(inputs, tmp_path, leader, s)
    shared, shared_fc = _trajectory(inputs, tmp_path, method, s, pre=path, name="shared")
    alone, alone_fc = _trajectory(inputs, tmp_path, method, s, name="alone")
    assert shared["forecast_risk_facts"].map(max).max() > 0 and shared["efficacy"].iloc[-1] > 0
    _same(shared.drop(columns="seconds"), alone.drop(columns="seconds"))
    _same(shared_fc, alone_fc)


def _same(a: pd.DataFrame, b: pd.DataFrame):
    """Equal to the last bit, cell by cell (lists of floats included; NaN equals NaN)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        for x, y in zip(a[col], b[col]):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=col)


@pytest.mark.parametrize("change, field", [
    (lambda s: s["defaults"]["rome"].update(v_lr=0.4), "vstar"),
    (lambda s: s.update(seed=2), "edits"),
    (lambda s: s.update(kl_prompt="{} was a"), "kl_prompt"),
    (lambda s: s.update(context_templates=["{}", "Another fact. {}"]), "templates"),
    (lambda s: s["overrides"].update({"tiny-llama": {"rome": {"layer": 1}}}), "layer"),
])
def test_a_file_made_for_another_forecast_is_refused_naming_the_field(inputs, tmp_path, change, field):
    """ROME's file made under other settings (its v* learning rate, the stream's seed, the KL prompt, the templates,
    the layer) is refused by a ROME trajectory, naming the field, before any edit."""
    other = copy.deepcopy(_settings())
    change(other)
    path = _estimates(inputs, tmp_path, "rome", other)
    with pytest.raises(ValueError, match=rf"pre-edit estimates field '{field}'"):
        _trajectory(inputs, tmp_path, "rome", _settings(), pre=path)
    assert not (tmp_path / "t" / "rome.parquet").exists()


def test_the_job_logs_each_planned_v_star(inputs, tmp_path, caplog):
    """A preedit job runs for half an hour on a CPU: its log shows each v* as it is made, in stream order."""
    import logging
    import re
    caplog.set_level(logging.INFO, logger="kis.preedit")
    _estimates(inputs, tmp_path, "rome", _settings())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pre-edit v* ")]
    assert [re.match(r"pre-edit v\* (\d+)/4 case \S+ at layer \d+: [\d.]+ s$", m).group(1) for m in lines] == \
        ["1", "2", "3", "4"]


def test_a_damaged_file_is_named(inputs, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pt: not a readable pre-edit estimates file"):
        _trajectory(inputs, tmp_path, "rome", _settings(), pre=bad)


@pytest.mark.parametrize("method", editing.METHODS)
def test_measure_layer_is_the_editors(method, covs):
    """kis.hparams.measure_layer (what the preedit job uses, before C is loaded) is the editor's own."""
    from editfix import hp_for, peaked_tiny

    model, tok = peaked_tiny()
    hp = hp_for(method, covs, [0, 1] if method != "wilke" else [0, 1])
    ed = editing.make_editor(method, model, tok, covs, hp, TEMPLATES, protected=tiny_facts()[:2])
    assert ed.measure_layer == hparams.measure_layer(method, hp)
    assert sorted(ed.layers) == hparams.edited_layers(method, hp)


def _study_settings():
    return schema.filled("editing", hparams.load_config(STUDY)["editing"])


def test_the_study_settings_pair_rome_with_r_rome_and_memit_with_alphaedit():
    s = _settings_study = _study_settings()
    key = {m: hparams.forecast_key(s, m, ["smollm2-135m"]) for m in s["methods"]}
    groups = {frozenset(b for b in s["methods"] if key[b] == key[a]) for a in s["methods"]}
    assert groups == {frozenset({"rome", "r-rome"}), frozenset({"memit", "alphaedit"}), frozenset({"deltaedit"}),
                      frozenset({"wilke"}), frozenset({"least-interference"})}
    # DeltaEdit differs from AlphaEdit only by its v* stop (stop_prob 0.98): no sharing
    assert key["deltaedit"][0] != key["alphaedit"][0] and key["deltaedit"][1:] == key["alphaedit"][1:]
    # one v* setting of r-ROME changed, or a layer of r-ROME's own, parts the pair; a layer for ROME does not (r-ROME
    # without its own layer takes ROME's: kis.hparams.resolve_hparams)
    for change, parted in ((lambda t: t["overrides"].update({"smollm2-135m": {"r-rome": {"v_lr": 0.4}}}), True),
                           (lambda t: t["overrides"].update({"smollm2-135m": {"r-rome": {"layer": 3}}}), True),
                           (lambda t: t["overrides"].update({"smollm2-135m": {"rome": {"layer": 3}}}), False)):
        t = copy.deepcopy(_settings_study)
        change(t)
        assert (hparams.forecast_key(t, "rome", ["smollm2-135m"]) !=
                hparams.forecast_key(t, "r-rome", ["smollm2-135m"])) == parted


def test_equal_keys_mean_equal_resolved_forecast_settings_on_the_paper_models():
    """For every model of config/paper.yaml at its published depth: two methods whose forecast keys agree resolve to
    the same measure layer, fp32 layers and v* settings (what the trajectory's signature check compares)."""
    from kis import plan

    cfg = hparams.load_config(wf.REPO / "config" / "paper.yaml")
    s = schema.filled("editing", cfg["editing"])
    shapes = plan.load_shapes()
    shared = 0
    for name, spec in cfg["models"].items():
        names = [n for n in (name, spec.get("hub_id")) if n]
        shape = shapes[spec["hub_id"]]
        key = {m: hparams.forecast_key(s, m, names) for m in s["methods"]}
        for a in s["methods"]:
            for b in s["methods"]:
                if a < b and key[a] == key[b]:
                    shared += 1
                    ha, hb = (hparams.resolve_hparams(s, m, shape.n_layers, names, shape.d_ff) for m in (a, b))
                    assert hparams.measure_layer(a, ha) == hparams.measure_layer(b, hb), (name, a, b)
                    assert hparams.edited_layers(a, ha) == hparams.edited_layers(b, hb), (name, a, b)
                    assert [ha.get(k) for k in hparams.VSTAR_KEYS] == [hb.get(k) for k in hparams.VSTAR_KEYS]
        # published layers: at depths below them neither method can run, which must not part the pair
        assert key["rome"] == key["r-rome"] and key["memit"] == key["alphaedit"], name
    assert shared == 2 * len(cfg["models"])  # ROME with r-ROME and MEMIT with AlphaEdit on every model


def test_the_study_dag_runs_one_preedit_job_per_forecast(tmp_path):
    """The study's dry run: 5 preedit jobs per model (7 methods, two pairs), r-ROME's trajectory reads ROME's file
    and AlphaEdit's reads MEMIT's; the preedit jobs need no C."""
    (tmp_path / "resources").symlink_to(wf.REPO / "resources", target_is_directory=True)
    jobs = wf.planned_jobs(STUDY, extra=("--directory", str(tmp_path)))
    assert jobs["preedit"] == 2 * 5, jobs
    proc = wf.snakemake(STUDY, "-n", "results/study/trajectories/smollm2-135m/r-rome.parquet",
                        "results/study/trajectories/smollm2-135m/alphaedit.parquet", "--directory", str(tmp_path))
    text = proc.stdout + proc.stderr
    assert "results/study/preedit/smollm2-135m/rome.pt" in text and "results/study/preedit/smollm2-135m/memit.pt" in text
    assert "preedit/smollm2-135m/r-rome.pt" not in text and "preedit/smollm2-135m/alphaedit.pt" not in text
