"""Test setup in one place: the helper modules (tests/tiny.py, tests/wf.py, tests/synth.py, tests/slurm/compare.py)
are importable by name (a benchmark script is imported from its path: wf.bench_module); the session's tiny
end-to-end run is a fixture."""
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for folder in (TESTS, TESTS / "slurm"):
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


@pytest.fixture
def one_thread():
    """The test machine's 2 cores are shared: one torch thread is much faster than two fighting ones."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def covs():
    """C of every layer of editfix.peaked_tiny()."""
    import editfix

    return editfix.tiny_covs()
