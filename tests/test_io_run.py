"""kis.io.run: a job's named inputs, outputs, params and resources reach the rule's function by keyword; one the
function does not take (a misspelt or stale param or resource) fails the job naming it, the rule and the function —
never silently dropped. Scheduler resources (mem_mb, runtime, gpu, slurm_*, Snakemake's _cores ...) are exempt."""
from __future__ import annotations

import pytest
from snakemake.iocontainers import Namedlist

from kis import io


class Job:
    """What a workflow script sees as `snakemake` (snakemake.iocontainers.Snakemake): named lists, the rule's name."""

    def __init__(self, tmp_path, params=None, resources=None, wildcards=None):
        self.input = Namedlist(fromdict={"table": str(tmp_path / "in.parquet")})
        self.output = Namedlist(fromdict={"out": str(tmp_path / "out.txt")})
        self.params = Namedlist(fromdict=params or {})
        self.wildcards = Namedlist(fromdict=wildcards or {})
        self.resources = Namedlist(fromdict={"_cores": 1, "_nodes": 1, "tmpdir": "/tmp", **(resources or {})})
        self.log = Namedlist(fromdict={"log": str(tmp_path / "job.log")})
        self.threads, self.rule, self.config = 1, "superposition", {}


def stage(*, table, out, ridge, batch_size, model="?", logger=None):
    """A rule's function: writes what it was given."""
    with open(out, "w") as fh:
        fh.write(f"{table}|{ridge}|{batch_size}|{model}")


def test_a_job_gets_its_params_resources_and_wildcards_by_keyword(tmp_path):
    job = Job(tmp_path, params={"ridge": 0.5}, wildcards={"model": "tiny", "unused_wildcard": "x"},
              resources={"batch_size": 8, "mem_mb": 4000, "mem_mib": 3815, "runtime": 60, "gpu": 1,
                         "gpu_model": "", "slurm_partition": "gpu", "disk_mb": 1000})
    io.run(job, stage)
    assert (tmp_path / "out.txt").read_text() == f"{tmp_path / 'in.parquet'}|0.5|8|tiny"


@pytest.mark.parametrize("kind", ["params", "resources"])
def test_a_param_or_resource_the_function_does_not_take_fails_naming_it(tmp_path, kind):
    given = {"params": {"ridge": 0.5}, "resources": {"batch_size": 8}}
    given[kind] = {**given[kind], "rigde": 0.1}  # misspelt: before, dropped without a word
    job = Job(tmp_path, **given)
    with pytest.raises(TypeError, match=rf"rule superposition: .*stage takes no argument 'rigde' for the rule's "
                                        rf"{kind} 'rigde'"):
        io.run(job, stage)
    assert not (tmp_path / "out.txt").exists()  # the function never ran


def test_scheduler_resources_are_not_the_functions():
    for name in ("mem_mb", "mem_mib", "runtime", "gpu", "gpu_model", "tmpdir", "_cores", "_nodes", "disk_mib",
                 "slurm_partition", "slurm_account", "cpus_per_task", "constraint"):
        assert io.scheduler_resource(name), name
    for name in ("batch_size", "token_budget", "checkpoint_every", "checkpoint_minutes", "device_memory_mib"):
        assert not io.scheduler_resource(name), name
