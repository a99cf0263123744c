"""I/O at the edges: atomic writes (no half-written output), logging for workflow scripts."""
from __future__ import annotations

import contextlib
import logging
import os
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


def setup_logging(logfile: str | Path | None = None, level=logging.INFO) -> logging.Logger:
    """Send logging, warnings, progress bars and everything else on stderr to the rule's `log:` file."""
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(logfile, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 — lives as long as the job
    logging.captureWarnings(True)
    logging.basicConfig(level=level, handlers=[logging.StreamHandler(sys.stderr)], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("kis")
