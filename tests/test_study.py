"""The editing study (issue 26): config/study.yaml plans one trajectory per model × method and the study target;
the same study settings run end to end on the tiny models, and the summary table equals the trajectory tables."""
import math
import os

import numpy as np
import pandas as pd
import pytest
import yaml

import wf
from kis import hparams, io, study, trajectory
from kis.figures import FigureError

STUDY = wf.REPO / "config" / "study.yaml"
META = {"corpus_id": "wiki-test"}


def _row(step, seconds, **kw):
    base = dict(step=step, model="m", method="rome", status="ok", reason="", efficacy=1.0, paraphrase=0.5,
                neighborhood=0.9, heldout_acc=0.8, heldout_p_true=0.3, fluency=6.0, delta_w_fro=2.0 * step,
                seconds=seconds)
    return {**base, **kw}


def test_summary_copies_the_table_and_divides_seconds_by_the_edits_of_each_row(tmp_path):
    rows = [_row(0, 0.0), _row(10, 30.0), _row(25, 45.0, status="diverged", reason="non-finite")]
    io.write_parquet(pd.DataFrame(rows), tmp_path / "rome.parquet", metadata=META)
    io.write_parquet(pd.DataFrame([_row(0, 0.0, method="least-interference"), _row(10, 5.0, method="least-interference")]),
                     tmp_path / "kis.parquet", metadata=META)
    got = study.summary([tmp_path / "rome.parquet", tmp_path / "kis.parquet"], labels={"m": "Model M"})
    assert got[["method", "step"]].values.tolist() == [["rome", 0], ["rome", 10], ["rome", 25], ["least-interference", 0],
                                                       ["least-interference", 10]]
    assert math.isnan(got.seconds_per_edit[0])
    np.testing.assert_allclose(got.seconds_per_edit[1:].to_numpy(), [30 / 10, 45 / 15, float("nan"), 5 / 10])
    assert (got.label == "Model M").all() and got.status.tolist()[2] == "diverged"
    md = study.markdown(got).splitlines()
    assert len(md) == 2 + 5 and md[0].startswith("| model | method | step | efficacy")
    assert md[4].endswith("| diverged: non-finite |") and "| Model M | rome | 10 | 1 | 0.5 | 0.9 | 0.8 | 0.3 | 6 | 20 | 3 |" in md[3]


def test_summary_names_a_bad_table(tmp_path):
    t = pd.DataFrame([_row(0, 0.0), _row(0, 1.0)])
    io.write_parquet(t, tmp_path / "dup.parquet", metadata=META)
    with pytest.raises(FigureError, match="dup.parquet: step 0 recorded twice"):
        study.summary([tmp_path / "dup.parquet"])
    io.write_parquet(t.drop(columns="fluency"), tmp_path / "nofl.parquet", metadata=META)
    with pytest.raises(FigureError, match=r"nofl.parquet: missing column\(s\) \['fluency'\]"):
        study.summary([tmp_path / "nofl.parquet"])


def test_explicit_steps_need_enough_known_facts():
    """A study's stream is as long as asked: with explicit steps, too few eligible facts is an error naming them;
    without, the stream shrinks with a warning as before."""
    s = {"n_edits": 100, "n_test": 100, "steps": [0, 10, 100]}
    trajectory.check_enough(200, s, "known.parquet: m")
    with pytest.raises(ValueError, match=r"known.parquet: m has 199 eligible facts, fewer than editing.n_edits \(100\) "
                                         r"\+ editing.n_test \(100\) = 200"):
        trajectory.check_enough(199, s, "known.parquet: m")
    trajectory.check_enough(5, {**s, "steps": None}, "m")


def test_the_study_config_plans_every_trajectory_and_the_study_target(tmp_path):
    """`snakemake --configfile config/study.yaml -n`: one trajectory per model × method, the summary and figures."""
    cfg = hparams.load_config(STUDY)
    ed = cfg["editing"]
    assert len(ed["methods"]) == 7 and ed["n_edits"] >= 100 and ed["n_test"] >= 100
    assert ed["steps"] == [0, 10, 25, 50, 100] and cfg["facts"]["max_records"] is None
    (tmp_path / "resources").symlink_to(wf.REPO / "resources", target_is_directory=True)
    for target in ((), ("study",)):
        jobs = wf.planned_jobs(STUDY, *target, extra=("--directory", str(tmp_path)))
        assert jobs["trajectory"] == len(cfg["models"]) * len(ed["methods"]) == 14, jobs
        for rule in ("study_summary", "fig_trajectories", "fig_forecast"):
            assert jobs[rule] == 1, (rule, jobs)


def test_a_recorded_step_past_the_stream_is_a_config_error(tmp_path):
    cfg = wf.tiny_config(tmp_path, overrides={"editing": {"n_edits": 3, "steps": [0, 2, 5]}})
    proc = wf.snakemake(cfg, "-n", "study", check=False)
    assert proc.returncode != 0
    assert "editing.steps: 5 is past the stream's end (editing.n_edits = 3)" in proc.stdout + proc.stderr


def test_a_resume_is_read_from_the_log_of_the_attempt_that_finished(tmp_path):
    """runs.csv's resumed_after: the last resume line of the job's log, "0" for a fresh start, "" when the log is
    missing or newer than the benchmark file (a later attempt's, killed before it finished)."""
    import os
    log_, bench = tmp_path / "m.log", tmp_path / "m.tsv"
    bench.write_text("s\n1\n")
    assert study.resumed_after(log_, bench) == ""
    log_.write_text("INFO kis: wilke on m: hyperparameters\n")
    os.utime(log_, (1, 1))
    assert study.resumed_after(log_, bench) == "0"
    log_.write_text("x: resumed from r/m.ckpt.pt after edit 20 of 100 (2 rows recorded)\n"
                    "x: resumed from r/m.ckpt.pt after edit 40 of 100 (3 rows recorded)\n")
    os.utime(log_, (1, 1))
    assert study.resumed_after(log_, bench) == "40"
    os.utime(log_, (bench.stat().st_mtime + 5,) * 2)
    assert study.resumed_after(log_, bench) == ""
    assert study._resumed_note("40") == " from a resume after edit 40" and study._resumed_note("0") == ""


def test_an_auc_cell_says_why_it_is_empty():
    """No AUC exists when every held-out fact or none is lost, or none was known: the cell says which."""
    nan = float("nan")
    assert study._interval(0.61234, 0.5, 0.7, 40, 100) == "0.61 [0.50, 0.70]"
    assert study._interval(nan, nan, nan, 100, 100) == "n/a: all lost"
    assert study._interval(nan, nan, nan, 0, 100) == "n/a: none lost"
    assert study._interval(nan, nan, nan, 0, 0) == "n/a: none known"  # a model that knows none of the facts
    assert study._interval(nan, nan, nan, 40, 100) == ""  # absent for another reason: left blank


def test_the_study_on_tiny_models_end_to_end(tmp_path):
    """The study config's editing section (all seven methods, explicit steps) on the tiny models with 3 edits: the
    summary has one row per model × method × recorded step and every value equals its trajectory table's."""
    ed = yaml.safe_load(STUDY.read_text())["editing"]
    ed.update(n_edits=3, n_test=4, steps=[0, 1, 3], require_known=False, fluency_max_len=12,
              overrides={m: {"least-interference": {"n_protected": 4}} for m in ("tiny-gpt2", "tiny-llama")})
    cfg = wf.tiny_config(tmp_path, families=("gpt2", "llama"), overrides={"editing": ed})
    wf.snakemake(cfg, "--cores", "2", "study", env={**os.environ, "OMP_NUM_THREADS": "1"})
    res = tmp_path / "results"
    got = pd.read_csv(res / "study" / "summary.csv", keep_default_na=False, na_values=[""])
    assert len(got) == 2 * 7 * 3
    for (model, method), g in got.groupby(["model", "method"]):
        t = pd.read_parquet(res / "trajectories" / model / f"{method}.parquet")
        assert g.step.tolist() == t.step.tolist() == [0, 1, 3], (model, method)
        assert g.label.iloc[0] == f"tiny {model.split('-')[1]}"
        for col in ("efficacy", "paraphrase", "neighborhood", "heldout_acc", "heldout_p_true", "fluency",
                    "delta_w_fro"):
            np.testing.assert_allclose(g[col].to_numpy(), t[col].to_numpy(), rtol=1e-12, equal_nan=True,
                                       err_msg=f"{model} {method} {col}")
        assert g.status.tolist() == t.status.tolist()
        np.testing.assert_allclose(g.seconds_per_edit.to_numpy()[1:], t.seconds.to_numpy()[1:] / [1, 2], rtol=1e-12)
    md = (res / "study" / "summary.md").read_text().splitlines()
    assert len(md) == 2 + 2 * 7 * 3
    for name in ("trajectories.png", "interference.png", "forecast.png", "forecast_auc.csv"):
        assert (res / "figures" / "trajectories" / name).exists(), name
    fig = pd.read_csv(res / "figures" / "trajectories" / "trajectories.csv")
    assert set(fig.method) == set(ed["methods"])
    _collected_study_renders_what_the_workflow_rendered(cfg, res, tmp_path / "docs")


def _collected_study_renders_what_the_workflow_rendered(cfg, res, docs):
    """`python -m kis.study collect` copies the finished jobs only (one whose benchmark file is missing is not
    finished) with their wall seconds; `render` of the copies gives the workflow's summary, forecast AUC and
    paper-P error tables."""
    bench = res / "benchmarks" / "trajectory" / "tiny-llama" / "wilke.tsv"
    kept = bench.read_text()
    bench.unlink()
    study.main(["collect", str(res), str(docs), "--config", str(cfg), "--command", "snakemake study", "--commit", "abc"])
    runs = pd.read_csv(docs / "runs.csv")
    assert len(runs) == 13 and not ((runs.model == "tiny-llama") & (runs.method == "wilke")).any()
    assert not (docs / "trajectories" / "tiny-llama" / "wilke.parquet").exists()
    r = runs[(runs.model == "tiny-gpt2") & (runs.method == "memit")].iloc[0]
    b = pd.read_csv(res / "benchmarks" / "trajectory" / "tiny-gpt2" / "memit.tsv", sep="\t")
    assert (r.commit, r.command, r.n_edits) == ("abc", "snakemake study", 3) and r.wall_s == round(b.s.iloc[-1])
    assert (runs.resumed_after == 0).all()  # every job's log shows a fresh start
    bench.write_text(kept)
    # tables of another stream length in the same results folder (a short study's) are not this study's
    assert study.collect(res, docs / "other", command="x", commit="y", machine="z", n_edits=5) == []
    assert hparams.merge({"editing": {"n_edits": 100, "n_test": 100}}, {"editing": {"n_edits": 10}}) == \
        {"editing": {"n_edits": 10, "n_test": 100}}  # --config study.yaml study-short.yaml
    overlay = docs.parent / "five-edits.yaml"  # the same through the command line: an overlay's n_edits wins
    overlay.write_text("editing:\n  n_edits: 5\n")
    study.main(["collect", str(res), str(docs), "--config", str(cfg), str(overlay), "--commit", "abx"])
    assert set(pd.read_csv(docs / "runs.csv").commit) == {"abc"}  # nothing of 3 edits collected for a 5-edit study
    # collected again: the 13 jobs whose tables are unchanged keep their row (the commit and command that ran them),
    # the newly finished one is added, and a job run again (its table rewritten, then its benchmark file) is replaced
    import pyarrow as pa
    import pyarrow.parquet as pq
    rerun = res / "trajectories" / "tiny-gpt2" / "rome.parquet"
    first, tab = rerun.read_bytes(), pq.read_table(rerun)
    t = tab.to_pandas()
    t.loc[t.step == 3, "fluency"] += 0.25
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False).replace_schema_metadata(tab.schema.metadata), rerun)
    rome_log = res / "logs" / "trajectory" / "tiny-gpt2" / "rome.log"  # that attempt resumed from a checkpoint
    rome_log.write_text(rome_log.read_text() + "INFO kis.trajectory: rome on tiny-gpt2: resumed from "
                        "results/trajectories/tiny-gpt2/rome.ckpt.pt after edit 2 of 3 (2 rows recorded)\n")
    (res / "benchmarks" / "trajectory" / "tiny-gpt2" / "rome.tsv").touch()
    study.main(["collect", str(res), str(docs), "--config", str(cfg), "--command", "snakemake study", "--commit", "abd"])
    runs = pd.read_csv(docs / "runs.csv")
    new = {("tiny-llama", "wilke"), ("tiny-gpt2", "rome")}
    assert len(runs) == 14
    for r in runs.itertuples():
        assert r.commit == ("abd" if (r.model, r.method) in new else "abc"), (r.model, r.method, r.commit)
        assert r.resumed_after == (2 if (r.model, r.method) == ("tiny-gpt2", "rome") else 0), (r.model, r.method)
    landed = study.landed_block(docs, 14)
    assert "tiny-gpt2/rome (" in landed and " s from a resume after edit 2, abd)" in landed
    pd.testing.assert_frame_equal(pd.read_parquet(docs / "trajectories" / "tiny-gpt2" / "rome.parquet"), t)
    rerun.write_bytes(first)  # back as the workflow wrote it, for the comparisons below
    (res / "benchmarks" / "trajectory" / "tiny-gpt2" / "rome.tsv").touch()
    study.main(["collect", str(res), str(docs), "--config", str(cfg), "--command", "snakemake study", "--commit", "abd"])
    assert (docs / "summary.md").read_text() == (res / "study" / "summary.md").read_text()
    for name, theirs in (("forecast_auc.csv", "forecast_auc.csv"), ("interference_paper_p.csv",
                                                                     "interference_paper_p.csv"),
                         ("forgetting_paired.csv", "forgetting_paired.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(docs / name), pd.read_csv(res / "figures" / "trajectories" / theirs))
    fc = pd.read_csv(docs / "forecast_auc.csv")
    md = (docs / "forecast_auc.md").read_text().splitlines()
    assert len(md) == 2 + len(fc.groupby(["model", "method", "step"]))
    paired = pd.read_csv(docs / "forgetting_paired.csv")
    assert len(paired) == 2 * 21 and set(paired.step) == {3}  # 7 methods: 21 pairs per model, at the last step
    assert len((docs / "forgetting_paired.md").read_text().splitlines()) == 2 + 2 * 21
    for name in ("trajectories.png", "interference.png", "forecast.png"):
        assert (docs / "figures" / name).read_bytes()[:4] == b"\x89PNG", name
    # `paste`: the rendered tables verbatim into a findings document's landed block, the rest of it untouched
    doc = docs.parent / "findings.md"
    doc.write_text("# F\n\nbefore\n<!-- landed -->\nold tables\n<!-- /landed -->\nafter\n")
    study.main(["paste", str(docs), str(doc), "--config", str(cfg)])
    text = doc.read_text()
    assert text.startswith("# F\n\nbefore\n<!-- landed -->\nLanded so far (14 of 14;") and "old tables" not in text
    assert text.endswith("<!-- /landed -->\nafter\n")
    for name in ("summary.md", "forecast_auc.md", "interference_paper_p.md", "forgetting_paired.md"):
        assert (docs / name).read_text() in text, name
    study.main(["paste", str(docs), str(doc), "--config", str(cfg)])
    assert doc.read_text() == text  # pasting again changes nothing
    doc.write_text("x\n<!-- /landed -->\n<!-- landed -->\n")
    with pytest.raises(ValueError, match="findings.md: needs one <!-- landed --> line"):
        study.main(["paste", str(docs), str(doc), "--config", str(cfg)])
    doc.write_text("no markers\n")
    with pytest.raises(ValueError, match="findings.md: has neither <!-- landed -->"):
        study.main(["paste", str(docs), str(doc), "--config", str(cfg)])
    assert doc.read_text() == "no markers\n"
    # the README's short block: each job's last row, and per job one row of last_step.md whose cells are the
    # forecast table's AUCs and the paper-P table's median error at that job's last step
    readme = docs.parent / "README.md"
    readme.write_text("# R\n<!-- study-short -->\n<!-- /study-short -->\nrest\n")
    study.main(["paste", str(docs), str(readme), "--config", str(cfg)])
    text = readme.read_text()
    assert text.startswith("# R\n<!-- study-short -->\nLanded: 14 of 14 jobs (") and text.endswith("rest\n")
    assert (docs / "summary_last.md").read_text() in text and (docs / "last_step.md").read_text() in text
    inter = pd.read_csv(docs / "interference_paper_p.csv")
    rows = [r.split(" | ") for r in (docs / "last_step.md").read_text().splitlines()[2:]]
    assert len(rows) == 14
    for r in rows:
        model = "tiny-" + r[0].lstrip("| ").split()[1]  # the label "tiny gpt2" of model tiny-gpt2
        method, step = r[1], int(r[2])
        g = fc[(fc.model == model) & (fc.method == method) & (fc.step == step)].set_index("score")
        assert step == fc[(fc.model == model) & (fc.method == method)].step.max() and len(g) == 5
        assert r[3] == f"{int(g.n_forgotten.iloc[0])} / {int(g.n_known.iloc[0])}"
        for cell, score in zip(r[4:8], ("risk", "confidence", "key_norm", "random")):
            lost, known = int(g.n_forgotten.iloc[0]), int(g.n_known.iloc[0])
            want = (f"{g.auc[score]:.2f} [{g.auc_lo[score]:.2f}, {g.auc_hi[score]:.2f}]" if not np.isnan(g.auc[score])
                    else "n/a: none known" if known == 0 else "n/a: all lost" if lost == known
                    else "n/a: none lost" if lost == 0 else "")
            assert cell == want, (model, method, score)  # the reason where no fact or every fact was forgotten
        e = inter[(inter.model == model) & (inter.method == method) & (inter.step == step)]
        assert r[8].rstrip(" |") == f"{float(e.rel_error_median.iloc[0]):.3g}"


def test_the_null_space_study_on_tiny_models_end_to_end(tmp_path):
    """`snakemake studies`: per model one table over AlphaEdit's window whose shares equal numpy's from the run's own
    C and keys (the threshold set per model so that the null space is neither empty nor everything)."""
    from kis import covariance, keys

    thr = 1e-3
    cfg = wf.tiny_config(tmp_path, families=("gpt2", "llama"), overrides={"editing": {
        "overrides": {m: {"alphaedit": {"nullspace_threshold": thr}} for m in ("tiny-gpt2", "tiny-llama")}}})
    wf.snakemake(cfg, "--cores", "1", "studies", env={**os.environ, "OMP_NUM_THREADS": "1"})
    res = tmp_path / "results"
    for model in ("tiny-gpt2", "tiny-llama"):
        got = pd.read_parquet(res / "studies" / "null_space" / f"{model}.parquet")
        meta = io.read_parquet_metadata(res / "studies" / "null_space" / f"{model}.parquet")
        assert got.layer.tolist() == meta["layers"] and len(got) >= 1 and meta["corpus_id"]
        K, _, _, _ = keys.read(res / "keys" / f"{model}.parquet")
        covs, _ = covariance.load(res / "covariance" / f"{model}.safetensors", layers=meta["layers"])
        for r in got.itertuples():
            C, Kl = covs[r.layer].numpy(), K[r.layer].astype(np.float64)
            ev, vec = np.linalg.eigh(C)
            low = vec[:, ev < thr]
            share = ((Kl @ low) ** 2).sum(1) / (Kl ** 2).sum(1)
            assert r.below == int((ev < thr).sum()) and r.f == C.shape[0] and r.threshold == thr
            assert r.corpus_share == pytest.approx(ev[ev < thr].sum() / ev.sum(), rel=1e-9)
            assert r.fact_share_median == pytest.approx(np.median(share), rel=1e-6)
            assert r.n_keys == len(Kl)
