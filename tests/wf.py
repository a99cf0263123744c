"""Helpers for end-to-end workflow tests on tiny random models (no download).

`tiny_config(tmp_path)` writes tiny models, a small local corpus and a complete config; `snakemake(...)` runs the
repo's Snakefile in tmp_path (its own .snakemake, so tests never share state with the repo or each other).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import tiny

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # read-only real data (../shared/README.md); tests skip when it is absent


def facts_file() -> Path:
    own = REPO / "resources" / "facts.json"
    return own if own.exists() else SHARED / "data" / "counterfact" / "counterfact_sample.json"


def corpus_file(path: Path, n: int = 24) -> Path:
    """A small JSONL corpus from CPython's pydoc topics (exists everywhere)."""
    from pydoc_data.topics import topics

    with open(path, "w") as fh:
        for i, (k, v) in enumerate(sorted(topics.items())[:n]):
            fh.write(json.dumps({"id": k, "text": v[:1500]}) + "\n")
    return path


def tiny_config(tmp_path: Path, families=("gpt2",), overrides: dict | None = None) -> Path:
    """Write tiny models + corpus + config.yaml under tmp_path; returns the config path."""
    tmp_path = Path(tmp_path)
    models = {}
    for fam in families:
        d = tmp_path / "models" / fam
        if not (d / "config.json").exists():
            tiny.save(d, fam)
        models[f"tiny-{fam}".replace("_", "-")] = {"local_dir": str(d), "label": f"tiny {fam}", "size_gb": 0.001}
    cfg = {
        "results": str(tmp_path / "results"),
        "models": models,
        "corpus": {"name": "pydoc-sample", "source": "local", "path": str(corpus_file(tmp_path / "corpus.jsonl")),
                   "n_texts": 16, "max_length": 48, "seed": 0},
        "covariance": {"token_budget": 256, "checkpoint_every": 2, "store_dtype": "float64"},
    }
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # sections added by later stages: keep the default's settings, scaled down where a test config needs it
    for key, value in base.items():
        if key not in cfg:
            cfg[key] = value
    if "facts" in cfg:
        cfg["facts"] = {**cfg["facts"], "source": "local", "path": str(facts_file())}
    if "analysis" in cfg:
        cfg["analysis"] = {**cfg["analysis"], "n_items": 16, "require_known": False}
    if "editing" in cfg:  # random models know nothing: edit and hold out facts regardless, a short stream
        cfg["editing"] = {**cfg["editing"], "require_known": False, "n_edits": 4, "n_test": 4, "eval_every": 2}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def results(config: Path) -> Path:
    """The results folder a config writes to."""
    return Path(yaml.safe_load(Path(config).read_text())["results"])


def variant(config: Path, name: str, change) -> Path:
    """A copy of a finished run's config with change(cfg) applied, beside it (same .snakemake, same results)."""
    cfg = yaml.safe_load(Path(config).read_text())
    change(cfg)
    path = Path(config).parent / f"config_{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(config: Path, *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None
              ) -> subprocess.CompletedProcess:
    """Run the repo's workflow with a complete config file, in cwd (default: the config's folder)."""
    cwd = Path(cwd or Path(config).parent)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(cwd),
           "--configfile", str(config), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n--- stdout\n"
                             f"{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(config: Path, *targets: str, extra=()) -> dict[str, int]:
    """Dry run: {rule: number of jobs} that snakemake would run now."""
    proc = snakemake(config, "-n", *targets, *extra, "--quiet", "rules")  # --quiet takes several values: last
    counts, started = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            started = True
            continue
        if started and len(parts) == 2 and parts[1].isdigit() and not set(parts[0]) <= {"-"}:
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
    return counts


def defaults(section: str) -> dict:
    """The defaults of one config section's settings, from config/schema.yaml (the only place they live)."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}
