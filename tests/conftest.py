"""Test setup in one place: the helper modules (tests/tiny.py, tests/wf.py, tests/synth.py, tests/slurm/compare.py,
benchmarks/*.py) are importable by name; the session's tiny end-to-end run is a fixture."""
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for folder in (TESTS, TESTS / "slurm", TESTS.parent / "benchmarks"):
    sys.path.insert(0, str(folder))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The committed tiny end-to-end config (.test/config/config.yaml: tiny GPT-2 + Llama) run once as CI runs it,
    `snakemake --directory .test`, in a copy; returns the config path.

    Tests may dry-run against it with other configs pointing at the same results, but must not rebuild it.
    """
    import wf

    config = wf.dot_test(tmp_path_factory.mktemp("tiny_run"))
    wf.snakemake(config, "--cores", "2")
    return config
