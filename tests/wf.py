"""Helpers for end-to-end workflow tests on tiny random models (no download).

The tiny settings are those of the committed .test/config/config.yaml. `dot_test(root)` is a copy of .test with
its generated inputs, run as CI runs it; `tiny_config(tmp_path)` relocates the same settings to absolute paths
under tmp_path (other families, overrides). `snakemake(...)` runs the repo's Snakefile in the config's working
folder (its own .snakemake, so tests never share state with the repo or each other).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import tiny

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # read-only real data (../shared/README.md); tests skip when it is absent
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def facts_file() -> Path:
    own = REPO / "resources" / "facts.json"
    return own if own.exists() else SHARED / "data" / "counterfact" / "counterfact_sample.json"


def dot_test(root: Path) -> Path:
    """root/.test: the committed .test/config with its generated inputs, and root/resources beside it (the config's
    ../resources/facts.json); returns its config path (run in root/.test, as `snakemake --directory .test`)."""
    work = Path(root) / ".test"
    shutil.copytree(TEST_CONFIG.parent, work / "config")
    tiny.write_test_inputs(work)
    (Path(root) / "resources").symlink_to(REPO / "resources", target_is_directory=True)
    return work / "config" / "config.yaml"


def tiny_config(tmp_path: Path, families=("gpt2",), overrides: dict | None = None) -> Path:
    """The .test settings with tiny models of `families`, corpus and results under tmp_path (absolute paths);
    returns the config path."""
    tmp_path = Path(tmp_path)
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    models = {}
    for fam in families:
        d = tmp_path / "models" / fam
        if not (d / "config.json").exists():
            tiny.save(d, fam)
        models[f"tiny-{fam}".replace("_", "-")] = {"local_dir": str(d), "label": f"tiny {fam}", "size_gb": 0.001}
    cfg["results"], cfg["models"] = str(tmp_path / "results"), models
    cfg["corpus"]["path"] = str(tiny.corpus_file(tmp_path / "corpus.jsonl"))
    cfg["facts"]["path"] = str(facts_file())
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def workdir(config: Path) -> Path:
    """Where a config runs: its folder, or the folder above a config/ folder (the .test layout)."""
    folder = Path(config).parent
    return folder.parent if folder.name == "config" else folder


def results(config: Path) -> Path:
    """The results folder a config writes to."""
    return workdir(config) / yaml.safe_load(Path(config).read_text())["results"]  # an absolute path stays


def target(config: Path, *parts: str) -> str:
    """A results file as the rules name it (relative to the working folder when the config's results is), e.g. for
    --forcerun."""
    return str(Path(yaml.safe_load(Path(config).read_text())["results"], *parts))


def link_inputs(config: Path, run_dir: Path) -> None:
    """Let a copy of `config` run in run_dir: each relative input path (local_dir, corpus, facts) gets a symlink to
    its first folder under run_dir (or beside it, for ../), pointing where the config's own working folder has it."""
    cfg, base = yaml.safe_load(Path(config).read_text()), workdir(config)
    paths = [m.get("local_dir") for m in cfg["models"].values()]
    paths += [cfg["corpus"].get("path"), cfg.get("facts", {}).get("path")]
    for p in (Path(p) for p in paths if p and not Path(p).is_absolute()):
        up = p.parts[0] == ".."
        link = (run_dir.parent if up else run_dir) / p.parts[int(up)]
        if not link.exists():
            link.symlink_to((base.parent if up else base) / p.parts[int(up)], target_is_directory=True)


def variant(config: Path, name: str, change) -> Path:
    """A copy of a finished run's config with change(cfg) applied, beside it (same .snakemake, same results)."""
    cfg = yaml.safe_load(Path(config).read_text())
    change(cfg)
    path = Path(config).parent / f"config_{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(config: Path, *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None
              ) -> subprocess.CompletedProcess:
    """Run the repo's workflow with a config file, in cwd (default: wf.workdir(config))."""
    cwd = Path(cwd or workdir(config))
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


def bench_module(name: str):
    """benchmarks/<name>.py imported from its path (module name benchmarks.<name>), never by a bare name that a
    benchmark script could shadow; the scripts import bench_common beside them, so benchmarks/ joins sys.path."""
    import importlib.util

    folder = REPO / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
