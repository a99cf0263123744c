"""`snakemake --report` over the figure rules, opened in headless Debian chromium.

The repo's workflow runs only its figure rules (--allowed-rules) on the synthetic tables of tests/synth.py; the
report must open on the front page (report/workflow.rst: what ran, models, corpus, key numbers), load offline, group
the figures by category, list every registered file by name and show each caption with the corpus behind C.
"""
from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

import synth
import wf

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed "
                                                              "(apt-get install -y chromium)")
MODELS = ("small", "neo")  # two families, two sizes
CATEGORIES = ("heatmaps", "kde", "scaling law", "angles", "convergence", "case study")

# Types 're:.' into the report's search box (React listens to input + Enter), then optionally opens the info
# panel of one file: the dumped DOM then lists every result and that file's rendered caption.
PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const box = document.querySelector('input[placeholder="Search..."]');
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(box, 're:.');
  box.dispatchEvent(new Event('input', {bubbles: true}));
  box.dispatchEvent(new KeyboardEvent('keypress', {key: 'Enter', charCode: 13, keyCode: 13, which: 13,
                                                   bubbles: true}));
  setTimeout(() => {
    for (const td of document.querySelectorAll('td')) {
      if (td.textContent.endsWith('/%s')) td.parentElement.querySelector('a[iconname="%s"]').click();
    }
  }, 300);
}, 300));
</script>"""


def chromium(url: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", "--window-size=1400,1000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def probe(report: Path, tmp: Path, name: str, icon: str, dump: bool = True) -> str:
    html = report.read_text()
    cut = html.rfind("</body>")
    page = tmp / f"probe_{name}_{icon}.html"
    page.write_text(html[:cut] + PROBE % (name, icon) + html[cut:])
    if not dump:
        return str(page)
    return visible_text(chromium(page.as_uri(), tmp, "--dump-dom").stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("report_wf")
    synth.write_tables(work / "results", n_items=32, models=MODELS, ns=(16, 32))
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": "results", "models": {m: {"gguf": "none", "label": synth.MODELS[m][0]} for m in MODELS},
        "corpus": {"name": "synthetic corpus", "source": "python_docs", "n_texts": 7},
        "figures": {"dpi": 60, "kde_points": 64, "angle_layers": ["first", "last"]}}))
    # the synthetic tables stand in for the stages before the figures: those stages' outputs exist, each older
    # than what is made from it (mtime order = the DAG's order), so only the figure rules run
    order = {"resources/facts.json": 0, "results/corpus/texts.parquet": 0, "results/facts/facts.parquet": 1,
             "results/knowledge/items.parquet": 3, "results/statistics.parquet": 6}
    for m in MODELS:
        order.update({f"results/models/{m}/manifest.json": 0, f"results/covariance/{m}.safetensors": 1,
                      f"results/knowledge/{m}/known.parquet": 2, f"results/keys/{m}.parquet": 4,
                      f"results/superposition/{m}.parquet": 5})
    for path, level in order.items():
        if not (work / path).exists():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text("stand-in")
        os.utime(work / path, (1e9 + level, 1e9 + level))
    run = wf.snakemake(config, "--cores", "2", "--rerun-triggers", "mtime", "--", "figures")  # no job records
    assert "rule superposition" not in run.stdout + run.stderr  # only figure rules ran
    rep = wf.snakemake(config, "--report", str(work / "report.html"), "figures")
    assert "ERROR" not in rep.stderr, rep.stderr[-4000:]  # docutils errors in a caption
    return work


def front_page(report: Path) -> str:
    """The report's front page (report/workflow.rst rendered), as text."""
    found = re.search(r"workflow_desc[^=]*=\s*(\".*?(?<!\\)\")", report.read_text(), flags=re.S)
    assert found, "no workflow description in the report"
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", json.loads(found.group(1))))


def test_report_opens_on_what_the_workflow_did(built):
    text = re.sub(r"\s+", " ", front_page(built / "report.html"))
    assert "Knowledge in Superposition (Hu et al., AAAI 2025), reproduced" in text
    assert "Models (2):" in text and "Small-1M (config key small" in text and "Neo-3M (config key neo" in text
    assert "Corpus behind C: synthetic corpus (source python_docs , 7 texts" in text
    assert "N = 128 facts" in text  # the schema's default, filled by validate
    stat = pd.read_parquet(built / "results" / "statistics.parquet")
    for model in MODELS:  # the key numbers are the statistics table's, at all N, layer 0 and the mean
        p = stat[(stat.model == model) & (stat.kind == "P") & (stat.n == stat.n.max())].sort_values("layer")
        label, k = synth.MODELS[model][0], p["kurtosis"]
        assert (f"{label}: N = 32, {len(p)} layers; layer 0: {round(k.iloc[0], 2)}, "
                f"mean over layers: {round(k.mean(), 2)}") in text


def registered_files(work: Path) -> list[str]:
    """Every figure output the rules mark for the report (all but the per-model heatmap CSVs)."""
    figs = sorted(p.relative_to(work).as_posix() for p in (work / "results" / "figures").rglob("*")
                  if p.suffix in (".png", ".csv", ".md"))
    return [f for f in figs if not re.fullmatch(r"results/figures/heatmaps/heatmaps_(small|neo)\.csv", f)]


@needs_chromium
def test_report_loads_offline_with_categories(built, tmp_path):
    report = built / "report.html"
    html = report.read_text()
    assert not re.search(r'(src|href)="https?://', html), "the report must be self-contained"
    text = visible_text(chromium(report.as_uri(), tmp_path, "--dump-dom").stdout)
    assert "Snakemake Report" in text and "Results" in text
    for category in CATEGORIES:
        assert f" {category} " in text, f"category {category!r} missing from the navigation"
    shot = tmp_path / "report.png"
    chromium(report.as_uri(), tmp_path, f"--screenshot={shot}")
    from PIL import Image
    import numpy as np
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (1000, 1400) and img.std() > 10  # something was drawn, not a blank page


@needs_chromium
def test_report_lists_every_figure_by_name(built, tmp_path):
    text = probe(built / "report.html", tmp_path, "none", "eye")
    expected = registered_files(built)
    assert len(expected) == len(MODELS) * 9 + 3 * 2  # per model 5 families × 2 files but the heatmap CSV; 3 shared
    for name in expected:
        assert name in text, f"{name} not listed in the report"
    assert "heatmaps/heatmaps_small.csv" not in text  # a copy of P: kept beside the PNG, not in the report


@needs_chromium
@pytest.mark.parametrize("name", ["kde_small.png", "scaling_law.png", "case_study_neo.md"])
def test_caption_names_the_corpus(built, tmp_path, name):
    text = probe(built / "report.html", tmp_path, name, "information-circle")
    assert "Corpus behind C: named in the" in text  # the title / CSV: read at run time, not at DAG time
    assert "How to read it" in text


@needs_chromium
def test_report_shows_a_figure(built, tmp_path):
    page = probe(built / "report.html", tmp_path, "heatmaps_all_models_layer0.png", "eye", dump=False)
    text = visible_text(chromium(Path(page).as_uri(), tmp_path, "--dump-dom").stdout)
    assert "heatmaps_all_models_layer0.png" in text
    dom = chromium(Path(page).as_uri(), tmp_path, "--dump-dom").stdout
    assert re.search(r'<img[^>]+src="data:image/png;[^"]*heatmaps_all_models_layer0\.png', dom), \
        "the heatmap PNG is not displayed"


# The front page's lists --------------------------------------------------------------------------------------------

def list_items(html: str) -> list[str]:
    """The text of every <li> of an HTML page, whitespace collapsed."""
    from html.parser import HTMLParser

    class Items(HTMLParser):
        def __init__(self):
            super().__init__()
            self.items, self.depth = [], 0

        def handle_starttag(self, tag, attrs):
            if tag == "li":
                self.items.append("")
                self.depth += 1

        def handle_endtag(self, tag):
            if tag == "li":
                self.depth -= 1

        def handle_data(self, data):
            if self.depth:
                self.items[-1] += data

    parser = Items()
    parser.feed(html)
    return [re.sub(r"\s+", " ", i).strip() for i in parser.items]


def render_front_page(config: dict) -> str:
    """report/workflow.rst rendered as `snakemake --report` does (snakemake.report: Jinja with trim_blocks and
    lstrip_blocks, then docutils' html_body)."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    class Snakemake:
        pass

    Snakemake.config = config
    text = (wf.REPO / "report" / "workflow.rst").read_text()
    rst = Environment(trim_blocks=True, lstrip_blocks=True).from_string(text).render(snakemake=Snakemake)
    return publish_parts(rst, writer_name="html")["html_body"]


@pytest.mark.parametrize("with_numbers", [True, False])
def test_each_model_and_key_number_is_its_own_list_item(with_numbers):
    cfg = yaml.safe_load((wf.REPO / ".test" / "config" / "config.yaml").read_text())
    for key, spec in cfg["models"].items():
        spec.setdefault("dtype", "float32")
    cfg["key_numbers"] = {m: {"label": spec["label"], "n": 8, "layers": 3, "first": 1.5, "mean": 2.25, "max": 4.0,
                              "max_layer": 2} for m, spec in cfg["models"].items()} if with_numbers else {}
    items = list_items(render_front_page({**cfg, "corpus": wf.defaults("corpus") | cfg["corpus"],
                                          "analysis": wf.defaults("analysis"), "keys": wf.defaults("keys"),
                                          "superposition": wf.defaults("superposition"),
                                          "facts": wf.defaults("facts")}))
    labels = [spec["label"] for spec in cfg["models"].values()]
    assert len(labels) == 2
    for key, label in zip(cfg["models"], labels):
        assert f"{label} (config key {key}, from {cfg['models'][key]['local_dir']}, float32)" in items
    if with_numbers:
        for label in labels:
            assert f"{label}: N = 8, 3 layers; layer 0: 1.5, mean over layers: 2.25, highest: 4.0 (layer 2)" in items
        assert len(items) == 2 * len(labels)
    else:
        assert items[-1].startswith("(the statistics table does not exist yet")
        assert len(items) == len(labels) + 1


@needs_chromium
def test_the_report_front_page_shows_each_model_as_a_list_item(built, tmp_path):
    dom = chromium((built / "report.html").as_uri(), tmp_path, "--dump-dom").stdout
    items = list_items(dom)
    for model in MODELS:
        label = synth.MODELS[model][0]
        own = [i for i in items if i.startswith(f"{label} (config key {model},")]
        assert len(own) == 1, (label, items)
        assert all(synth.MODELS[other][0] not in own[0] for other in MODELS if other != model)  # not run together
        assert sum(i.startswith(f"{label}: N = 32,") for i in items) == 1  # its key numbers: one item too
