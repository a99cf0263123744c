"""I/O at the edges: atomic writes (no half-written output), logging for workflow scripts."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
import tempfile
from pathlib import Path


def jsonl_records(fh, where, error=ValueError) -> list:
    """The JSON records of a JSONL stream, one a line (blank lines skipped); a bad line raises error(message)."""
    import json

    out = []
    for lineno, line in enumerate(fh, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise error(f"{where}: line {lineno} is not valid JSON ({e.msg})") from None
    return out


def utf8_problem(path) -> str:
    """Where a (optionally gzipped) file stops being UTF-8: 'line L, byte offset O (b'\\xff')', for messages."""
    import gzip

    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        return f"line {line}, byte offset {e.start} ({data[e.start:e.start + 1]!r})"
    return "no invalid byte found on a second read"


# a run resumed from its checkpoint logs RESUMED (kis.trajectory); kis.study reads the edit back from the job's log
RESUMED = "resumed from %s after edit %d of %d"
RESUMED_EDIT = re.compile(r"resumed from .+ after edit (\d+) of \d+")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def first_difference(saved: dict, want: dict) -> str | None:
    """The first field of `want` whose value `saved` (a run's signature read back from disk) does not hold — a
    checkpoint of another run — as "'field' is <saved>, this run's is <want>", or None when every field agrees."""
    for key, value in want.items():
        if saved.get(key) != value:
            return f"{key!r} is {str(saved.get(key))[:120]}, this run's is {str(value)[:120]}"
    return None


def write_parquet(frame, path: str | Path, metadata: dict | None = None) -> None:
    """Atomically write a DataFrame to Parquet, with optional key/value metadata in the schema."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({f"kis.{k}".encode(): json.dumps(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet_metadata(path: str | Path) -> dict:
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {k.decode()[4:]: json.loads(v) for k, v in meta.items() if k.startswith(b"kis.")}


class LockedError(RuntimeError):
    """Another run (another working directory sharing this results folder) is making the same output."""


def _open_lock(lock: Path):
    """`lock` opened for reading and writing without following a link: a symbolic link, a hard link to another
    file, or anything but a plain file placed at the lock's path (anyone who can write to a shared results folder
    could) is refused, so taking a lock never writes into a file its holder does not own."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as e:
        kind = "a symbolic link" if lock.is_symlink() else type(e).__name__
        raise LockedError(f"{lock} is {kind} ({e.strerror}): a lock file must be a plain file this run can write; "
                          "refusing to follow or replace it — delete it if nothing else uses it") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a plain file" if not stat.S_ISREG(st.st_mode) else f"a hard link ({st.st_nlink} names)"
        raise LockedError(f"{lock} is {what}: refusing to take it as a lock (it could be another file's name); "
                          "delete it if nothing else uses it")
    return os.fdopen(fd, "r+", encoding="utf-8")


def _take(fh, lock: Path, busy: str):
    """flock the open lock file (non-blocking) and write this process's name into it; LockedError(busy) if held."""
    import fcntl
    import json
    import socket

    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = fh.read().strip() or "{}"
        raise LockedError(f"{busy}: {lock} is held by {holder}") from None
    old = fh.read().strip()
    if old:
        logging.getLogger("kis").warning("taking over the stale lock %s (its holder %s is gone)", lock, old)
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "workdir": os.getcwd()}))
    fh.flush()


@contextlib.contextmanager
def output_lock(path: str | Path):
    """Hold `<path>.lock` (an fcntl lock, released by the kernel if the process dies) while a job makes `path`.

    The file names the holder (host, pid, working directory); a second run making the same output — e.g. from
    another working directory sharing the results folder — fails at once with LockedError naming them. A lock file
    left by a dead process is taken over with a warning; a link or other non-plain file at its path is refused."""
    lock = Path(f"{path}.lock")
    fh = _open_lock(lock)
    try:
        _take(fh, lock, f"{path} is being made by another run. Wait for that run to finish (two working directories "
                        f"share this results folder?); if that process is gone (another host), delete {lock}")
        try:
            yield lock
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()  # still held: a waiting run finds no file or a fresh one of its own
    finally:
        fh.close()


_HELD = {}  # results folder → its open, locked lock file, for the life of the Snakemake process


def results_lock(results: str | Path) -> Path:
    """Lock the results folder for this Snakemake run (the Snakefile's onstart, before any job opens its log).

    Snakemake's own lock covers one working directory; a second working directory whose config names the same
    `results:` folder would otherwise start the same jobs, and Snakemake deletes a job's old log before the job
    runs — the first run's logs would be emptied. A shared results folder is therefore refused at start: the second
    run fails with LockedError naming the first (host, pid, working directory). The lock is released when the
    process exits (the kernel drops it, even after kill -9); a lock file left behind is taken over with a warning."""
    folder = Path(results).resolve()
    if folder in _HELD:
        return _HELD[folder][1]
    lock = folder / ".kis-run.lock"
    fh = _open_lock(lock)
    try:
        _take(fh, lock, f"the results folder {folder} is in use by another Snakemake run (another working directory "
                        "with the same `results:`); two runs sharing one results folder are refused — give this run "
                        "its own `results:`, or wait for that run to end")
    except BaseException:
        fh.close()
        raise
    _HELD[folder] = (fh, lock)
    import atexit

    atexit.register(_release, folder)  # a run that ends leaves no lock file (a killed one's is taken over)
    return lock


def _release(folder: Path) -> None:
    fh, lock = _HELD.pop(folder)
    with contextlib.suppress(OSError):
        lock.unlink()  # still held while unlinked: a run starting now makes a fresh file of its own
    fh.close()


def setup_logging(logfile: str | Path | None = None, level=logging.INFO) -> logging.Logger:
    """Send logging, warnings, progress bars and everything else on stderr to the rule's `log:` file."""
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(logfile, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 — lives as long as the job
    logging.captureWarnings(True)
    logging.basicConfig(level=level, handlers=[logging.StreamHandler(sys.stderr)], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("kis")


# Resources that tell the scheduler where and how long a job runs, never the function what to compute: Snakemake's
# own (_cores, _nodes, tmpdir, mem*, disk*, runtime), GPUs (profiles, rules/common.smk gpu_resources) and the
# SLURM executor's (slurm_partition, ... and the options it passes to sbatch). Any other resource is the function's.
SCHEDULER_RESOURCES = frozenset({
    "tmpdir", "mem", "mem_mb", "mem_mib", "mem_gb", "disk", "disk_mb", "disk_mib", "runtime", "walltime",
    "gpu", "gpus", "gpu_model", "gres", "nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "cpus_per_task",
    "cpus_per_gpu", "mem_mb_per_cpu", "mem_per_cpu", "constraint", "clusters", "qos", "reservation", "mpi",
})


def scheduler_resource(name: str) -> bool:
    """Whether a job's resource is only the scheduler's (SCHEDULER_RESOURCES, _*, slurm_*), not a function's."""
    return name in SCHEDULER_RESOURCES or name.startswith(("_", "slurm_"))


def run(smk, rule) -> None:
    """Run one Snakemake job: every workflow/scripts/*.py is `run(snakemake, <stage>.<function>)`.

    `rule` gets by keyword the job's named inputs, outputs, params and resources (each must be one of its
    arguments: a misspelt or unused one is an error, not silently dropped; scheduler resources such as mem_mb,
    runtime, gpu are exempt, SCHEDULER_RESOURCES) and the wildcards and threads that it takes; `logger` is the job's
    log; a `device` argument pins torch to the job's `threads:` and picks the device (KIS_DEVICE, else cuda when
    available; a GPU stage without CUDA fails at once unless the config says `run_on_cpu: true`).
    """
    with contextlib.ExitStack() as locks:
        for out in smk.output:  # before the log is opened: a second run must not overwrite the first one's log
            locks.enter_context(output_lock(out))
        _run(smk, rule)


def _run(smk, rule) -> None:
    import inspect

    logger = setup_logging(smk.log[0] if smk.log else None)
    takes = inspect.signature(rule).parameters
    where = f"rule {smk.rule}: {rule.__module__}.{rule.__name__}"
    given = {}
    for kind in ("input", "output", "params", "wildcards", "resources"):
        for name, value in getattr(smk, kind).items():
            if name not in takes:
                if kind in ("input", "output", "params") or (kind == "resources" and not scheduler_resource(name)):
                    raise TypeError(f"{where} takes no argument {name!r} for the rule's {kind} {name!r} (misspelt, "
                                    f"or no longer used: rename or remove it in the rule)")
                continue  # a wildcard that only names the files, or a scheduler resource (mem_mb, runtime, gpu)
            if name in given:
                raise TypeError(f"{where}: {name!r} is named twice in the rule (input/output/params/wildcards)")
            given[name] = list(value) if isinstance(value, list) else value
    if "threads" in takes:
        given["threads"] = smk.threads
    if "logger" in takes:
        given["logger"] = logger
    if "device" in takes:
        from . import models  # torch: only the stages that run a model take a device

        models.pin_threads(smk.threads)
        given["device"] = models.stage_device(smk.config, where)  # no CUDA and no run_on_cpu: fail now
    missing = [n for n, p in takes.items() if p.default is p.empty and n not in given
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise TypeError(f"{where} needs {missing}, which the rule does not name")
    rule(**given)
    logger.info("%s done: %s", where, ", ".join(map(str, smk.output)))
