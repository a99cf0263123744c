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
