"""config/README.md is generated from config/schema.yaml (python -m kis.schema): it lists every key, it is not
stale, and its "reruns" column agrees with the rules (a key marked `x-reruns: false` reaches no rule's params)."""
from __future__ import annotations

import copy
import re

import pytest

import wf
from kis import schema


def schema_keys(s: dict, prefix: str = "", seen=None) -> set[str]:
    """Every key of the schema, walked independently of the generator (a section reached again through a YAML
    alias: its own key only, its keys once where first met)."""
    seen = set() if seen is None else seen
    out = set()
    children = dict(s.get("properties", {}))
    if isinstance(s.get("additionalProperties"), dict):
        children["*"] = s["additionalProperties"]
    for name, sub in children.items():
        out.add(prefix + name)
        if id(sub) not in seen:
            seen.add(id(sub))
            out |= schema_keys(sub, f"{prefix}{name}.", seen)
    return out


def readme_keys(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))


def test_the_readme_lists_every_schema_key():
    listed = readme_keys(schema.README.read_text(encoding="utf-8"))
    missing = schema_keys(schema.load()) - listed
    assert not missing, f"config/README.md lacks {sorted(missing)}: run `make config-readme`"
    assert {"covariance.checkpoint_every", "editing.defaults.rome.per_layer_vstar", "models.*.dtype"} <= listed


def test_the_readme_is_what_the_generator_writes_now():
    assert schema.README.read_text(encoding="utf-8") == schema.markdown(), \
        "config/README.md is stale: run `make config-readme` (python -m kis.schema)"


def test_a_new_schema_key_fails_the_check(monkeypatch):
    grown = copy.deepcopy(schema.load())
    grown["properties"]["figures"]["properties"]["new_knob"] = {"type": "integer", "default": 3,
                                                                "description": "a new setting"}
    monkeypatch.setattr(schema, "load", lambda: grown)
    assert "figures.new_knob" in schema_keys(grown) - readme_keys(schema.README.read_text(encoding="utf-8"))
    assert schema.markdown() != schema.README.read_text(encoding="utf-8")
    assert "| `figures.new_knob` | integer | `3` | yes | a new setting |" in schema.markdown()


def test_every_row_has_a_type_and_a_description():
    for key, typ, _default, reruns, description in schema.rows():
        assert typ and description, key
        assert reruns in ("yes", "no")


def rule_blocks(directive: str) -> str:
    """The text of every rule's `directive:` block in rules/*.smk."""
    out = []
    for path in (wf.REPO / "rules").glob("*.smk"):
        for m in re.finditer(rf"^    {directive}:\n((?:        .*\n|\n)+)", path.read_text(), flags=re.M):
            out.append(m.group(1))
    return "\n".join(out)


def test_the_reruns_column_agrees_with_the_rules():
    params, resources = rule_blocks("params"), rule_blocks("resources")
    no = {k for k, *_, r, _d in schema.rows() if r == "no"}
    assert no, "no key is marked x-reruns: false"
    for key in no:
        name = key.rsplit(".", 1)[-1]
        assert f'["{name}"]' not in params, f"{key} is marked x-reruns: false but a rule's params read it"
    # a setting that a rule's resources read and no params do is marked as rerunning nothing
    last = r'\["(\w+)"\](?!\[)'  # the setting a chain of subscripts ends at
    for name in set(re.findall(last, resources)) - set(re.findall(last, params)):
        keys = [k for k in schema_keys(schema.load()) if k.rsplit(".", 1)[-1] == name]
        if keys:
            assert any(k in no for k in keys), f"{keys}: only resources read it — mark it x-reruns: false"


@pytest.mark.parametrize("key", ["covariance.checkpoint_every", "editing.batch_size", "models.*.size_gb"])
def test_resource_settings_are_marked_as_rerunning_nothing(key):
    assert dict((k, r) for k, _t, _d, r, _desc in schema.rows())[key] == "no"
