"""Streamed safetensors writing: host memory holds only the piece being written, never the whole file.

Layout (the safetensors format, readable by safetensors.safe_open): 8-byte little-endian header length N, a JSON
header of N bytes (dtype, shape and data offsets of every tensor, plus string metadata), then the tensors' bytes.
Shapes are known up front, so the header is written first — padded with spaces to a reserved length so the metadata
can be filled in at the end — and each tensor's rows are written at their offset as they are produced.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

CODES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.int32: "I32"}
HEADER_RESERVE = 1 << 18  # 256 KiB: room for the header of a few thousand tensors and the metadata


class StreamWriter:
    """Write a safetensors file tensor by tensor (or row block by row block) at precomputed offsets."""

    def __init__(self, path: str | Path, specs: dict[str, tuple[torch.dtype, tuple]], reserve: int = HEADER_RESERVE):
        self.path = Path(path)
        self.specs = dict(specs)
        self.entries, offset = {}, 0
        for name, (dtype, shape) in self.specs.items():
            nbytes = int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
            self.entries[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        self.data_bytes = offset
        self.reserve = reserve - reserve % 8
        self.fh = open(self.path, "w+b")  # noqa: SIM115 — closed by close()
        self._write_header({})
        self.fh.truncate(8 + self.reserve + self.data_bytes)

    def _write_header(self, metadata: dict[str, str]) -> None:
        header = dict(self.entries)
        if metadata:
            header["__metadata__"] = metadata
        raw = json.dumps(header, separators=(",", ":")).encode()
        if len(raw) > self.reserve:
            raise ValueError(f"{self.path}: safetensors header of {len(raw)} bytes exceeds the reserved {self.reserve}")
        self.fh.seek(0)
        self.fh.write(struct.pack("<Q", self.reserve) + raw + b" " * (self.reserve - len(raw)))

    def write(self, name: str, tensor: torch.Tensor, row: int = 0) -> None:
        """Write `tensor` (rows `row`.. of tensor `name`, its dtype) into place."""
        dtype, shape = self.specs[name]
        if tensor.dtype != dtype or tuple(tensor.shape[1:]) != tuple(shape[1:]):
            raise ValueError(f"{self.path}: {name} expects {dtype} rows of shape {tuple(shape[1:])}, "
                             f"got {tensor.dtype} {tuple(tensor.shape)}")
        arr = np.ascontiguousarray(tensor.detach().cpu().numpy())
        row_bytes = arr.nbytes // max(arr.shape[0], 1) if arr.ndim else 0
        self.fh.seek(8 + self.reserve + self.entries[name]["data_offsets"][0] + row * row_bytes)
        self.fh.write(arr.data if arr.ndim else arr.tobytes())

    def close(self, metadata: dict[str, str] | None = None) -> None:
        """Fill in the metadata, flush to disk, close."""
        self._write_header(metadata or {})
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def abort(self) -> None:
        self.fh.close()
