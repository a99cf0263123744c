"""The editing study's findings are its committed tables (docs/study*/, collected job by job with
`python -m kis.study collect`): re-rendering those tables gives the committed summary, forecast AUC and paper-P error
files byte for byte, and docs/findings.md shows each rendered Markdown table verbatim — no number in the findings
that its tables do not give."""
import shutil

import pytest
import yaml

import wf
from kis import study

FOLDERS = sorted(p.parent for p in (wf.REPO / "docs").glob("study*/runs.csv"))
RENDERED = ("summary.csv", "summary.md", "summary_last.md", "last_step.md", "forecast_auc.csv", "forecast_auc.md",
            "interference_paper_p.csv", "interference_paper_p.md", "forgetting_paired.csv", "forgetting_paired.md")
README_ONLY = ("summary_last.md", "last_step.md")  # the README's short tables (the test below)


@pytest.mark.skipif(not FOLDERS, reason="no collected study under docs/ (docs/study*/runs.csv)")
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_study_tables_rerender_to_the_committed_findings(folder, tmp_path):
    copy = tmp_path / folder.name
    shutil.copytree(folder / "trajectories", copy / "trajectories")
    study.main(["render", str(copy), "--config", str(wf.REPO / "config" / "study.yaml")])
    findings = (wf.REPO / "docs" / "findings.md").read_text()
    for name in RENDERED:
        assert (copy / name).read_text() == (folder / name).read_text(), f"{folder.name}/{name} is stale: run " \
            f"`python -m kis.study render docs/{folder.name} --config config/study.yaml`"
        if name.endswith(".md") and name not in README_ONLY:
            assert (folder / name).read_text() in findings, f"docs/findings.md lacks {folder.name}/{name}"


@pytest.mark.skipif(not FOLDERS, reason="no collected study under docs/ (docs/study*/runs.csv)")
def test_the_readme_shows_a_collected_study_verbatim():
    readme = (wf.REPO / "README.md").read_text()
    for name in README_ONLY:
        assert any((f / name).read_text() in readme for f in FOLDERS), \
            f"README.md shows no docs/study*/{name} verbatim"
    full = wf.REPO / "docs" / "study"  # the 100-edit study's block is pasted (`make study-findings`), not hand-copied
    if (full / "runs.csv").exists():
        n_jobs = study.n_jobs(yaml.safe_load((wf.REPO / "config" / "study.yaml").read_text()))
        assert study.short_block(full, n_jobs, "docs/study") in readme, "README.md's study-short block is stale: run " \
            "`python -m kis.study paste docs/study README.md --config config/study.yaml`"
