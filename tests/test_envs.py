"""One source of the version pins: pyproject.toml. envs/*.yaml (--use-conda) and the Makefile's torch install repeat
its exact pins, and the environment the tests run in has exactly those versions."""
import re
import tomllib
from importlib import metadata

import pytest
import yaml

from wf import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pins(requirements) -> dict[str, str]:
    """{normalised name: version} of `name==version` requirements; anything else is an error."""
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.+-]*)", req.split(";")[0].strip())
        assert m, f"not an exact pin: {req!r}"
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


PINS = pins(PROJECT["dependencies"] + [r for extra in PROJECT["optional-dependencies"].values() for r in extra])


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_conda_env_pins_are_pyprojects(env):
    spec = yaml.safe_load((REPO / "envs" / env).read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    got = pins(pip)
    assert got, env
    for name, version in got.items():
        assert PINS.get(name) == version, f"envs/{env}: {name}=={version}, pyproject.toml pins {PINS.get(name)}"
    python = next(d for d in spec["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert PROJECT["requires-python"] == f">={python.split('=')[1]}", f"envs/{env}: {python}"


def test_makefile_installs_the_pinned_torch_first():
    assert f"pip install -q torch=={PINS['torch']}\n" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("name", sorted(PINS))
def test_installed_version_is_the_pin(name):
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed here (an optional extra)")
    assert installed.split("+")[0] == PINS[name], f"{name}: installed {installed}, pyproject.toml pins {PINS[name]}"
