"""The lake on disk: file names, atomic writes, the position file and the export lock.

A file is ``<lake>/<table>/<date|month>=<key>/<prefix>-<from>-<to>[.<n>].parquet``: the rows one
export run wrote for one partition, named by the range ``(from, to]`` of the source it read
(outbox sequence numbers, or ids of the table read by id). ``.<n>`` numbers the further files of
a very large run. Files are written under a temporary name, synced, and renamed into place.

``_position.json`` mirrors the committed position of the database (``lake_exports``): a file
whose range ends beyond it belongs to a run that has not committed (or never will) and readers
skip it; the next export deletes it before it writes anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_core.lake.errors import LakeBusy
from billing_core.lake.schemas import TABLES, LakeTable

POSITION_FILE = "_position.json"
LOCK_FILE = ".export.lock"
FILE_RE = re.compile(r"^(?P<prefix>[a-z]+)-(?P<lo>\d{12})-(?P<hi>\d{12})(?:\.(?P<n>\d+))?\.parquet$")
COMPRESSION = "zstd"


def file_name(prefix: str, lo: int, hi: int, n: int = 0) -> str:
    suffix = f".{n}" if n else ""
    return f"{prefix}-{lo:012d}-{hi:012d}{suffix}.parquet"


@dataclass(frozen=True, slots=True)
class LakeFile:
    path: Path
    table: LakeTable
    prefix: str
    lo: int
    hi: int

    @property
    def source(self) -> str:
        return self.table.sources[self.prefix]


def table_files(lake_dir: Path, table: LakeTable) -> list[LakeFile]:
    """Every parquet file of ``table`` on disk, committed or not, in name order."""
    root = lake_dir / table.name
    if not root.is_dir():
        return []
    found = []
    for partition in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(partition.iterdir()):
            match = FILE_RE.match(path.name)
            if match and match["prefix"] in table.sources:
                found.append(LakeFile(path, table, match["prefix"], int(match["lo"]), int(match["hi"])))
    return found


def read_position_file(lake_dir: Path) -> tuple[int, dict[str, int]] | None:
    """The committed export and its position as the lake directory records them, if it does."""
    path = lake_dir / POSITION_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return int(data["export"]), {str(k): int(v) for k, v in data["position"].items()}


def write_position_file(lake_dir: Path, export_id: int, position: Mapping[str, int]) -> None:
    """Record the committed position for readers (atomically; untouched when it already says so)."""
    body = (
        json.dumps({"export": export_id, "position": dict(position)}, indent=2, sort_keys=True) + "\n"
    ).encode()
    path = lake_dir / POSITION_FILE
    if path.exists() and path.read_bytes() == body:
        return
    _write_bytes_atomic(path, body)


def committed(file: LakeFile, position: Mapping[str, int] | None) -> bool:
    """Whether ``file`` belongs to a committed export run (everything counts without a position)."""
    return position is None or file.hi <= position.get(file.source, 0)


def committed_files(lake_dir: Path, table: LakeTable) -> list[Path]:
    """The files of ``table`` that committed export runs wrote, in name order."""
    recorded = read_position_file(lake_dir)
    position = recorded[1] if recorded else None
    return [f.path for f in table_files(lake_dir, table) if committed(f, position)]


def remove_uncommitted(lake_dir: Path, position: Mapping[str, int]) -> int:
    """Delete what a run that never committed left behind; returns how many files went."""
    removed = 0
    for table in TABLES.values():
        root = lake_dir / table.name
        if not root.is_dir():
            continue
        for partition in root.iterdir():
            if not partition.is_dir():
                continue
            for path in partition.iterdir():
                if path.name.endswith(".tmp"):
                    path.unlink()
                    removed += 1
        for f in table_files(lake_dir, table):
            if not committed(f, position):
                f.path.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def exclusive(lake_dir: Path) -> Iterator[None]:
    """Hold the lake's export lock (one export at a time per lake directory)."""
    lake_dir.mkdir(parents=True, exist_ok=True)
    handle = (lake_dir / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LakeBusy(lake_dir) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    """Write ``table`` to ``path``: a temporary name, synced, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        pq.write_table(table, handle, compression=COMPRESSION, write_statistics=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def partition_keys(table: LakeTable, data: pa.Table) -> pa.Array:
    column = data.column(table.partition_column)
    if pa.types.is_date32(column.type):
        keys = column.cast(pa.string())
        return keys if table.partitioning == "day" else pc.utf8_slice_codeunits(keys, 0, 7)
    fmt = "%Y-%m-%d" if table.partitioning == "day" else "%Y-%m"
    return pc.strftime(column, format=fmt)


def split_by_partition(table: LakeTable, data: pa.Table) -> list[tuple[str, pa.Table]]:
    """The rows of ``data`` per partition key, each part in the order the rows came."""
    if data.num_rows == 0:
        return []
    encoded = pc.dictionary_encode(partition_keys(table, data)).combine_chunks()
    keys = encoded.dictionary.to_pylist()
    if len(keys) == 1:
        return [(keys[0], data)]
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(indices, kind="stable")
    counts = np.bincount(indices, minlength=len(keys))
    ordered = data.take(pa.array(order))
    parts = []
    start = 0
    for code, count in enumerate(counts.tolist()):
        if count:
            parts.append((keys[code], ordered.slice(start, count)))
        start += count
    return parts


class Sink:
    """Collects one run's rows of one table from one source and writes them, one file per partition.

    Rows wait in memory until :meth:`flush` (the run flushes its largest sink when the rows it
    holds pass its budget) or :meth:`close`; each flush writes one more file per partition.
    """

    def __init__(self, lake_dir: Path, table: LakeTable, prefix: str, lo: int, hi: int) -> None:
        self.lake_dir = lake_dir
        self.table = table
        self.prefix = prefix
        self.lo = lo
        self.hi = hi
        self.rows = 0
        self.buffered = 0
        self.files: list[Path] = []
        self._buffers: dict[str, list[pa.Table]] = {}
        self._written: dict[str, int] = {}

    def add(self, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        for key, part in split_by_partition(self.table, data):
            self._buffers.setdefault(key, []).append(part)
        self.rows += data.num_rows
        self.buffered += data.num_rows

    def flush(self) -> None:
        for key in sorted(self._buffers):
            n = self._written.get(key, 0)
            self._written[key] = n + 1
            path = (
                self.lake_dir
                / self.table.name
                / f"{self.table.partition_key}={key}"
                / file_name(self.prefix, self.lo, self.hi, n)
            )
            data = pa.concat_tables(self._buffers[key]).combine_chunks()
            write_parquet_atomic(path, data)
            self.files.append(path)
        self._buffers.clear()
        self.buffered = 0

    def close(self) -> list[Path]:
        self.flush()
        for directory in sorted({p.parent for p in self.files}):
            _fsync_dir(directory)
        return self.files
