"""Issue 25: a resumed job is the job it claims to be, and a shared results folder harms no one.

One test per defect: (1) a covariance checkpoint of other texts, (2) a trajectory checkpoint of other settings,
(3) a link at a lock's path, (4) a second run sharing the results folder, (5) evaluation prompts longer than the
context — each fails on the code before the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wf
from kis import io


# ------------------------------------------------------------ defect 3: the lock never follows a link

@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_a_link_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, how):
    """Anyone who can write to a shared results folder could put a link at <output>.lock pointing to a file another
    user owns; taking the lock must not truncate or write that file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's data\n")
    out = tmp_path / "results" / "covariance" / "m.safetensors"
    out.parent.mkdir(parents=True)
    lock = Path(f"{out}.lock")
    (os.symlink if how == "symlink" else os.link)(victim, lock)
    with pytest.raises(io.LockedError, match="link") as err:
        with io.output_lock(out):
            pass
    assert str(lock) in str(err.value)
    assert victim.read_text() == "the victim's data\n"


def test_the_results_lock_refuses_a_link_too(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".kis-run.lock").symlink_to(victim)
    with pytest.raises(io.LockedError, match="symbolic link"):
        io.results_lock(results)
    assert victim.read_text() == "mine"


# ------------------------------------------------------------ defect 4: a second run sharing the results folder

HOLDER = """
import sys, time
from kis import io
if hasattr(io, "results_lock"):  # a running workflow holds its results folder (the Snakefile's onstart)
    io.results_lock({results!r})
with io.output_lock({out!r}):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_sharing_the_results_folder_is_refused_before_it_touches_a_log(tmp_path):
    """Run 1 (here a process holding the results folder and its covariance output, as a running workflow does) has
    written its covariance log; run 2, from another working directory with the same absolute `results:`, must fail
    at start naming the folder and the holder — and leave run 1's log as it was (Snakemake deletes a job's log
    before the job starts, so a per-job lock comes too late)."""
    config = wf.tiny_config(tmp_path / "a")
    results = wf.results(config)
    log = results / "logs" / "covariance" / "tiny-gpt2.log"
    log.parent.mkdir(parents=True)
    log.write_text("run 1's covariance log: 663 bytes of progress\n")
    out = results / "covariance" / "tiny-gpt2.safetensors"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(results=str(results), out=str(out))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        other = tmp_path / "b"
        other.mkdir()
        proc = wf.snakemake(config, "--cores", "1", cwd=other, check=False)
        assert proc.returncode != 0
        said = proc.stdout + proc.stderr
        assert "results folder" in said and str(results.resolve()) in said and f'"pid": {holder.pid}' in said
        assert log.read_text() == "run 1's covariance log: 663 bytes of progress\n"
        assert not list(results.glob("knowledge/**/*.parquet")) and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # once run 1 is gone (killed: the kernel dropped its lock), the same run goes ahead: the stale lock is taken over
    proc = wf.snakemake(config, "--cores", "1", "-n", cwd=tmp_path / "b")
    assert proc.returncode == 0


def test_the_results_lock_is_held_for_the_process_and_released_when_it_dies(tmp_path):
    results = tmp_path / "results"
    code = f"from kis import io\nio.results_lock({str(results)!r})\nprint('ok', flush=True)\nimport time\ntime.sleep(60)"
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "ok"
        assert json.loads((results / ".kis-run.lock").read_text())["pid"] == first.pid
        second = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "")], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0 and "LockedError" in second.stderr and "in use by another" in second.stderr
    finally:
        first.kill()
        first.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        again = subprocess.run([sys.executable, "-c", code.replace("time.sleep(60)", "")], capture_output=True,
                               text=True, timeout=60)
        if again.returncode == 0:
            break
    assert again.returncode == 0, again.stderr
    assert "stale lock" in again.stderr  # the dead holder's file is taken over, with a warning
