"""config/schema.yaml, the one place every setting's default lives: its defaults for callers outside the workflow
(tests, benchmarks), and config/README.md generated from its descriptions (`python -m kis.schema`)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"
README = REPO / "config" / "README.md"


@lru_cache(maxsize=1)
def load() -> dict:
    import yaml

    if not SCHEMA.exists():
        raise FileNotFoundError(f"{SCHEMA}: the config schema is read from the repository (pip install -e .)")
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def node(path: str) -> dict:
    """The schema of a setting: "corpus", "corpus.hf", "models.*" (a model entry), "editing.defaults.rome"."""
    out = load()
    for part in path.split("."):
        out = out["additionalProperties"] if part == "*" else out["properties"][part]
    return out


def defaults(path: str) -> dict:
    """{key: default} of the settings directly under `path` that have one."""
    return {k: v["default"] for k, v in node(path).get("properties", {}).items() if "default" in v}


def filled(path: str, settings: dict) -> dict:
    """`settings` with the schema's defaults for the keys it leaves out, in nested sections too (as the workflow's
    validate() fills them)."""
    return _fill(node(path), settings)


def _fill(s: dict, settings: dict) -> dict:
    out = dict(settings)
    for key, sub in s.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if isinstance(out.get(key), dict) and "properties" in sub:
            out[key] = _fill(sub, out[key])
    return out


def require(settings: dict, keys, where: str, error=KeyError) -> None:
    """Fail naming the settings of `keys` that `settings` lacks: library code takes every setting from its caller
    (the workflow's config, filled by config/schema.yaml), never a default of its own."""
    if missing := [k for k in keys if k not in settings]:
        raise error(f"{where}: missing setting(s) {missing} — config/schema.yaml holds their defaults "
                    "(kis.schema.filled fills them outside the workflow)")


# --- config/README.md -------------------------------------------------------------------------------------------
# A setting reruns jobs when a rule's params carry it (rules/*.smk); the schema marks the rest `x-reruns: false`
# (where or how a job runs: batching, checkpoints, cluster resources). tests/test_config_readme.py checks both.

HEAD = """# Configuration keys

Generated from `config/schema.yaml` by `python -m kis.schema` (`make config-readme`); do not edit by hand —
a test fails when this file is stale. Every default lives in the schema only: Snakemake's `validate()` fills
it into the config. **Reruns**: whether changing the key reruns jobs (it reaches a rule's `params:`); "no"
keys only place, batch or checkpoint jobs. `*` stands for any name (a model key, a method).

| key | type | default | reruns | description |
|---|---|---|---|---|
"""


def _type(s: dict) -> str:
    if "enum" in s:
        return " | ".join(json.dumps(v) for v in s["enum"])
    if "const" in s:
        return json.dumps(s["const"])
    if "type" not in s and ("oneOf" in s or "anyOf" in s):
        return " or ".join(_type(x) for x in s.get("oneOf", s.get("anyOf")))
    t = s.get("type", "")
    t = " or ".join(t) if isinstance(t, list) else t
    if t == "array" and "items" in s:
        t = f"array of {_type(s['items']) or 'items'}"
    return t


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def rows(s: dict | None = None, prefix: str = "", reruns: bool = True, seen: dict | None = None) -> list[tuple]:
    """(key, type, default, reruns, description) of every setting in the schema, depth first in schema order. A
    section the schema repeats (a YAML alias, e.g. each editing method's hyperparameters) is listed once; its
    other places get one row that points there."""
    s = load() if s is None else s
    seen = {} if seen is None else seen
    out = []
    children = dict(s.get("properties", {}))
    if isinstance(s.get("additionalProperties"), dict):
        children["*"] = s["additionalProperties"]
    for name, sub in children.items():
        key = f"{prefix}{name}"
        here = bool(sub.get("x-reruns", reruns))
        default = json.dumps(sub["default"], ensure_ascii=False) if "default" in sub else ""
        description = sub.get("description", "")
        nested = "properties" in sub or isinstance(sub.get("additionalProperties"), dict)
        if nested and id(sub) in seen:
            description = f"{description}; " if description else ""
            out.append((key, _type(sub), default, "yes" if here else "no", f"{description}the keys of `{seen[id(sub)]}`"))
            continue
        seen[id(sub)] = key
        out.append((key, _type(sub), default, "yes" if here else "no", description))
        out += rows(sub, f"{key}.", here, seen)
    return out


def markdown() -> str:
    lines = [f"| `{k}` | {_cell(t)} | {f'`{_cell(d)}`' if d else ''} | {r} | {_cell(desc)} |"
             for k, t, d, r, desc in rows()]
    return HEAD + "\n".join(lines) + "\n"


def main() -> None:
    README.write_text(markdown(), encoding="utf-8")
    print(f"wrote {README} ({len(rows())} keys)")


if __name__ == "__main__":
    main()
