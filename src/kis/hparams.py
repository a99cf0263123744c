"""The editing hyperparameters live once: config/hparams.yaml (context templates, defaults, published tables, each
entry with its source). A config's `editing` section names only what it changes; the Snakefile merges it over the
table before the schema fills the remaining defaults: merged = table ⊕ config, dicts key by key, anything else
(lists, numbers, strings) replaced whole by the config's value."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

TABLE = Path(__file__).resolve().parents[2] / "config" / "hparams.yaml"
KEYS = ("context_templates", "defaults", "published")  # what the table may hold (the editing keys it sets)


def load(path: str | Path = TABLE) -> dict:
    """The table's `editing` section; an error naming the file and key when it holds anything but KEYS."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not a readable hyperparameter table ({type(e).__name__}: {e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("editing"), dict):
        raise ValueError(f"{path}: needs one top-level mapping `editing:`")
    if bad := sorted(set(doc) - {"editing"}) or sorted(set(doc["editing"]) - set(KEYS)):
        raise ValueError(f"{path}: unexpected key {bad[0]!r} (the table holds editing.{', editing.'.join(KEYS)})")
    return doc["editing"]


def merge(base, over):
    """base ⊕ over: dicts merged key by key (recursively), any other value of `over` replaces base's; new objects."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def with_table(config: dict, path: str | Path = TABLE) -> dict:
    """config with its editing section merged over the table (a config without `editing` is returned unchanged:
    it builds no trajectories)."""
    if "editing" not in config:
        return config
    editing = config["editing"] or {}
    for key in set(editing) & set(KEYS):
        log.info("config editing.%s changes the table %s", key, path)
    return {**config, "editing": merge(load(path), editing)}


def load_config(path: str | Path, table: str | Path = TABLE) -> dict:
    """A config file as the workflow reads it: the YAML with its editing section merged over the table (no schema
    defaults filled)."""
    return with_table(yaml.safe_load(Path(path).read_text()), table)


# ---------------------------------------------------------------- the methods and their resolved hyperparameters

METHODS = ("rome", "r-rome", "memit", "alphaedit", "deltaedit", "wilke", "least-interference")
ROME_FAMILY = ("rome", "r-rome")          # one layer, v* from the δ at the FFN output
LAYER_CHOOSING = ("wilke", "least-interference")         # a ROME-style edit at one layer per edit, chosen from a window
# a window of layers; the order says whose published window another method borrows
WINDOW_FAMILY = ("alphaedit", "memit", "deltaedit")
MEMIT_FAMILY = ("memit", "alphaedit", "deltaedit")  # MEMIT's compute_ks / compute_z and its templates (kis.templates)
# context templates (kis.templates): (seed prompts — None: the start-of-text token —, ((tokens in all, samples per
# prompt), ...))
ROME_RECIPE = (None, ((5, 10), (10, 10)))
MEMIT_RECIPE = (("The", "Therefore", "Because", "I", "You"), ((10, 1),))
# the hyperparameters kis.vstar.optimize_delta reads: with the layer, templates and KL prompt, all a v* depends on
VSTAR_KEYS = ("v_num_grad_steps", "v_lr", "v_weight_decay", "kl_factor", "clamp_norm_factor", "stop_loss", "stop_prob")


def recipe(method: str):
    """MEMIT's recipe for the MEMIT family (AlphaEdit and DeltaEdit keep MEMIT's code), ROME's for the others."""
    return MEMIT_RECIPE if method in MEMIT_FAMILY else ROME_RECIPE


def default_layer(n_layers: int, fraction: float) -> int:
    """The default ROME layer, and the last layer of the MEMIT range: round(fraction · L), within [0, L−1]."""
    return int(min(max(round(fraction * n_layers), 0), n_layers - 1))


def _entries(settings: dict, method: str, names) -> list[tuple[dict, str, str]]:
    """(values, source of the values, table label) of `method`, lowest precedence first: defaults, the published
    entry of the first of `names` found, the override of the first found. An entry's own `source` (the file its
    values come from) names it; else its place in the config."""
    out = []
    d = (settings.get("defaults") or {}).get(method)
    if d:
        out.append((d, d.get("source", f"editing.defaults.{method}"), "default rule"))
    for table, label in (("published", "published"), ("overrides", "override")):
        entries = settings.get(table) or {}
        for name in names:
            if name and method in (entries.get(name) or {}):
                e = entries[name][method] or {}
                out.append((e, e.get("source", f"editing.{table}[{name}].{method}"), f"{label} ({name})"))
                break
    return out


def _lookup(settings: dict, method: str, key: str, names):
    """(value, source) of `key` for `method` by precedence, or (None, None)."""
    found = (None, None)
    for values, source, _ in _entries(settings, method, names):
        if key in values:
            found = (values[key], source)
    return found


def resolve_hparams(settings: dict, method: str, n_layers: int, names=(), d_ff: int | None = None) -> dict:
    """Hyperparameters of `method` for a model: defaults[method] ⊕ published values for the first of `names`
    (config key, hub id) found in settings['published'] ⊕ settings['overrides'][name], each value with its source
    (hp['sources'][key]; hp['source'] summarises which tables applied).

    Comparable layers: ROME / r-ROME edit their own published layer, else ROME's, else round(layer_fraction · L).
    MEMIT / AlphaEdit / DeltaEdit edit their own published window, else the published window of the first of
    WINDOW_FAMILY that has one for this model (DeltaEdit on GPT-J: AlphaEdit's), else ONE default window of `span`
    layers ending at ROME's layer. MEMIT's λ (mom2_update_weight), when nothing sets it, is
    mom2_update_weight_per_ff · f: one edit writes the share kᵀC⁻¹k / (λ + kᵀC⁻¹k) of its residual per layer, and
    kᵀC⁻¹k grows with the FFN width f (E = f). WilKE scans layers 0 … scanning_ceiling − 1: its published ceiling, else
    round(scanning_ceiling_per_rome_layer · ROME's layer) (the published ceilings are 1.4 × ROME's layer)."""
    if method not in METHODS:
        raise ValueError(f"unknown editing method {method!r}; choose from {', '.join(METHODS)}")
    if method not in settings["defaults"]:  # settings: the editing section, its defaults filled (config/schema.yaml)
        raise ValueError(f"editing.defaults has no entry for method {method!r}")
    hp, sources, source = {}, {}, "default rule"
    for values, src, label in _entries(settings, method, names):
        for k, v in values.items():
            if k != "source":
                hp[k], sources[k] = v, src
        if label != "default rule":
            source = label
    fraction = float(settings["layer_fraction"])
    rome_layer, rome_src = _lookup(settings, "rome", "layer", names)
    if rome_layer is None:
        rome_layer, rome_src = default_layer(n_layers, fraction), f"default rule: round({fraction} · {n_layers} layers)"
    span = int(hp.pop("span", 5))
    sources.pop("span", None)
    if method in ROME_FAMILY:
        hp.pop("layers", None)
        if "layer" not in hp:
            hp["layer"], sources["layer"] = int(rome_layer), rome_src
    elif method == "wilke":
        hp.pop("layer", None)
        if "layers" in hp:
            raise ValueError(f"editing wilke: candidates are layers 0 … scanning_ceiling − 1 (the authors' "
                             f"wilke/wilke_main.py:49); set scanning_ceiling, not layers ({sources['layers']})")
        per_rome = hp.pop("scanning_ceiling_per_rome_layer", None)
        per_rome_src = sources.pop("scanning_ceiling_per_rome_layer", None)
        if "scanning_ceiling" not in hp:
            if per_rome is None:
                raise ValueError("editing wilke: neither scanning_ceiling nor scanning_ceiling_per_rome_layer is set "
                                 f"for this model (hyperparameters from {source})")
            # both published ceilings are 1.4 × ROME's published layer of the model, rounded (GPT-2-XL 17 → 24,
            # GPT-J 5 → 7) while their share of depth differs (24/48, 7/28): the rule kept for other models
            hp["scanning_ceiling"] = min(max(1, round(float(per_rome) * int(rome_layer))), n_layers)
            sources["scanning_ceiling"] = (f"default rule: round({per_rome} · ROME's layer {rome_layer}) "
                                           f"({per_rome_src}; ROME's layer: {rome_src})")
        hp["scanning_ceiling"] = int(hp["scanning_ceiling"])
        if not 1 <= hp["scanning_ceiling"] <= n_layers:
            raise ValueError(f"editing wilke: scanning_ceiling {hp['scanning_ceiling']} is not within 1 … "
                             f"{n_layers} ({sources['scanning_ceiling']})")
        hp["layers"] = list(range(hp["scanning_ceiling"]))
        sources["layers"] = sources["scanning_ceiling"]  # candidates 0 … scanning_ceiling − 1
    else:
        hp.pop("layer", None)
        if "layers" not in hp:
            for other in WINDOW_FAMILY:
                window, wsrc = _lookup(settings, other, "layers", names)
                if window is not None:
                    hp["layers"], sources["layers"] = list(window), f"{other}'s window: {wsrc}"
                    break
            else:
                hp["layers"] = list(range(max(0, int(rome_layer) - span + 1), int(rome_layer) + 1))
                sources["layers"] = f"default rule: {span} layers ending at ROME's layer ({rome_src})"
        hp["layers"] = sorted(set(int(x) for x in hp["layers"]))  # DeltaEdit's files repeat the last layer
    per_ff = hp.pop("mom2_update_weight_per_ff", None)  # from defaults, published or overrides, whichever is last
    per_ff_src = sources.pop("mom2_update_weight_per_ff", None)
    if per_ff is not None and "mom2_update_weight" not in hp:
        if d_ff is None:
            raise ValueError(f"editing {method}: mom2_update_weight_per_ff needs the model's FFN width d_ff")
        hp["mom2_update_weight"] = float(per_ff) * int(d_ff)
        sources["mom2_update_weight"] = f"{per_ff} · f ({per_ff_src})"
    if method in ROME_FAMILY:
        hp.setdefault("mom2_adjustment", True)
        sources.setdefault("mom2_adjustment", "ROME's default (u = C⁻¹k̄)")
    layers = [hp["layer"]] if method in ROME_FAMILY else list(hp["layers"])
    bad = [x for x in layers if not 0 <= int(x) < n_layers]
    if bad or not layers:
        raise ValueError(f"editing {method}: layers {layers} are not within the model's {n_layers} layers "
                         f"(hyperparameters from {source}: {sources.get('layer', sources.get('layers'))})")
    hp["source"], hp["sources"] = source, sources
    return hp


def measure_layer(method: str, hp: dict) -> int:
    """The layer whose keys no edit of `method` moves (its editor's measure_layer): ROME's layer, else the lowest of
    the window (MEMIT family; WilKE's and least-interference's candidates). The pre-edit forecast is taken there."""
    return int(hp["layer"]) if method in ROME_FAMILY else min(int(x) for x in hp["layers"])


def edited_layers(method: str, hp: dict) -> list[int]:
    """The layers `method` may write (ROME's one, else the window or the candidates), sorted."""
    return [int(hp["layer"])] if method in ROME_FAMILY else sorted(int(x) for x in hp["layers"])


def forecast_key(settings: dict, method: str, names=(), max_layers: int = 128) -> tuple:
    """What the pre-edit forecast's planned keys and v* shifts (kis.preedit.estimates) of `method` depend on, read
    from the editing settings alone, before any model is loaded: per layer count L = 1 … max_layers the measure
    layer, the edited layers and the v* hyperparameters (or the error resolving them gives), the template recipe, and
    the settings of the stream, the templates and the KL prompt. Two methods with equal keys get equal estimates on
    any model of at most max_layers layers (rules/common.smk forecast_leader; the trajectory re-checks the file)."""
    per_l = []
    for n_layers in range(1, max_layers + 1):
        try:
            hp = resolve_hparams(settings, method, n_layers, names, d_ff=1)  # d_ff: MEMIT's λ only
            per_l.append((measure_layer(method, hp), tuple(edited_layers(method, hp)),
                          tuple(hp.get(k) for k in VSTAR_KEYS)))
        except ValueError:  # no model of this depth can run the method (a published layer beyond it): nothing to share
            per_l.append(("error",))
    common = tuple(str(settings.get(k)) for k in ("n_edits", "n_test", "seed", "require_known", "kl_prompt",
                                                 "context_templates", "template_seed"))
    return tuple(per_l), str(recipe(method)), common
