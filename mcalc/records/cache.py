"""Content-keyed, atomic on-disk cache of per-image feature rows.

Layout and granularity: one ``.npz`` file per image row, at ``<root>/<key[:2]>/<key>.npz``, where the
key is :func:`cache_key` of the image file's sha256, the preprocessing configuration, the backbone
weights' identity and the Keras / TensorFlow versions (built by :func:`mcalc.learn.features.extract_features`).
Per-row files mean that an interrupted run resumes where it stopped (every finished batch is already
on disk) and that changing one input file invalidates exactly its own row.

Each file holds ``data`` (the row), ``sha256`` (digest of the row's bytes, dtype and shape) and
``meta`` (a JSON string); it is written through :mod:`mcalc.records.fsio` (a temporary file in
the same directory, renamed into place; permissions follow the umask), so a reader never sees a
half-written file; of concurrent writers of one key (sweep tasks sharing the cache,
:func:`mcalc.records.fsio.write_new`) the first complete file wins and the others leave it alone, unless it is
corrupt. Opening a cache removes the temporary files of writers that were killed (older
than this process, their writer gone; never another live writer's). A file that cannot be read, has
the wrong shape or fails its checksum is reported with a warning and treated as missing; the caller
then recomputes and overwrites it. A row that is not finite (a ROI whose image could not be read) is
returned but never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.records.fsio import atomic_write, sweep_stale_temporaries, write_new

__all__ = [
    "file_digest",
    "cache_key",
    "array_digest",
    "cached_table",
    "FeatureCache",
    "CachedRows",
    "load_or_compute",
    "source_digest",
]

log = logging.getLogger(__name__)
_KEY_RE = re.compile(r"^[0-9a-f]{16,128}$")
_CHUNK = 1 << 20


def file_digest(path: str | Path, memo: dict[tuple[str, int, int], str] | None = None) -> str:
    """sha256 hex digest of a file's bytes; ``memo`` (keyed by path, size, mtime_ns) avoids rereads."""
    path = Path(path)
    st = path.stat()
    ident = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo is not None and ident in memo:
        return memo[ident]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        memo[ident] = digest
    return digest


def cache_key(*parts: object) -> str:
    """sha256 hex key of the given parts (their ``str``), order-sensitive and unambiguous."""
    h = hashlib.sha256()
    for part in parts:
        text = str(part).encode("utf-8")
        h.update(len(text).to_bytes(8, "little"))
        h.update(text)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 hex digest of an array's dtype, shape and bytes."""
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _reject_constant(name: str) -> None:
    """json.loads hook: a kept table holds finite numbers or null, never NaN / Infinity."""
    raise ValueError(f"non-finite value {name} in a kept table")


def _table_digest(body: dict) -> str:
    """sha256 of a kept table's body (its canonical JSON)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _table_json(table: pd.DataFrame) -> str:
    """A flat-indexed table as JSON (floats written by ``repr``, so they read back exactly) with its digest;
    ValueError for a non-finite number (a missing value is kept as null)."""
    if isinstance(table.index, pd.MultiIndex) or isinstance(table.columns, pd.MultiIndex):
        raise ValueError("cached_table keeps flat tables only (one index level, one column level)")
    body = {
        "index_name": table.index.name,
        "index": table.index.tolist(),
        "columns": table.columns.tolist(),
        "dtypes": [str(t) for t in table.dtypes],
        "rows": table.astype(object).where(table.notna(), None).to_numpy().tolist(),
    }
    return json.dumps({"sha256": _table_digest(body), "table": body}, allow_nan=False)


def _table_from_json(text: str) -> pd.DataFrame:
    """The table :func:`_table_json` wrote, with its index name and column dtypes; ValueError when the
    file is not exactly what was written (digest), or holds a non-finite number."""
    d = json.loads(text, parse_constant=_reject_constant)
    body = d["table"]
    if d["sha256"] != _table_digest(body):
        raise ValueError("its content does not match its digest (edited or damaged)")
    table = pd.DataFrame(
        body["rows"],
        index=pd.Index(body["index"], name=body["index_name"]),
        columns=body["columns"],
    )
    return table.astype(dict(zip(body["columns"], body["dtypes"])))


def cached_table(folder: str | Path, key: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()``'s table, kept as ``folder/<key>.json`` and read back while the key is unchanged
    (the key must name everything the table depends on). A copy that is unreadable, fails its digest
    or holds a non-finite number is computed again (with a warning naming it); a computed table with
    a non-finite number is returned but not kept."""
    from mcalc.records.fsio import write_text

    path = Path(folder) / f"{key}.json"
    if path.is_file():
        try:
            return _table_from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"kept table {path} unusable ({exc}): computed again", stacklevel=2)
    table = compute()
    try:
        text = _table_json(table)
    except ValueError as exc:
        warnings.warn(f"table for {path} not kept: {exc}", stacklevel=2)
        return table
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return table


@dataclass
class FeatureCache:
    """A directory of content-keyed ``.npz`` rows (see the module docstring for the layout)."""

    root: Path

    def __post_init__(self) -> None:
        """Normalise ``root`` to a Path and sweep the stale temporary files of killed writers."""
        self.root = Path(self.root)
        removed = self.sweep()
        if removed:
            log.info("removed %d stale temporary file(s) from %s", len(removed), self.root)

    def sweep(self) -> list[Path]:
        """Remove the temporary files that killed writers left in the cache; returns them."""
        if not self.root.is_dir():
            return []
        return sweep_stale_temporaries(self.root, "*/.*.tmp")

    def path_for(self, key: str) -> Path:
        """File that holds the entry for ``key`` (a lowercase hex string)."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(
                f"cache key must be a lowercase hex string (16-128 chars), got {key!r}"
            )
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The stored array for ``key``, or None when absent or corrupt (corruption warns)."""
        path = self.path_for(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = np.array(npz["data"])
                stored = str(npz["sha256"])
        except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
            warnings.warn(
                f"corrupt cache file {path} ({type(exc).__name__}: {exc}); it will be rebuilt",
                stacklevel=2,
            )
            return None
        if shape is not None and tuple(data.shape) != tuple(shape):
            warnings.warn(
                f"corrupt cache file {path}: shape {data.shape}, expected {tuple(shape)}; it will be rebuilt",
                stacklevel=2,
            )
            return None
        if array_digest(data) != stored:
            warnings.warn(
                f"corrupt cache file {path}: checksum mismatch; it will be rebuilt", stacklevel=2
            )
            return None
        return data

    def save(self, key: str, array: np.ndarray, meta: dict | None = None) -> Path:
        """Store ``array`` under ``key`` atomically, the first of concurrent writers winning; returns the file path."""
        path = self.path_for(key)
        arr = np.ascontiguousarray(array)
        meta_json = json.dumps(meta or {}, sort_keys=True, default=str)

        def write(fh) -> None:
            np.savez(fh, data=arr, sha256=np.array(array_digest(arr)), meta=np.array(meta_json))

        if not write_new(path, write, binary=True):  # another writer's row is there: keep it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                valid = self.load(key, shape=arr.shape) is not None
            if not valid:  # unless it is corrupt
                atomic_write(path, write, binary=True)
        return path

    def meta(self, key: str) -> dict | None:
        """The metadata stored with ``key``, or None when absent or unreadable."""
        try:
            with np.load(self.path_for(key), allow_pickle=False) as npz:
                return json.loads(str(npz["meta"]))
        except (FileNotFoundError, zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
            return None


@dataclass
class CachedRows:
    """Result of :func:`load_or_compute`: the stacked rows and which indices had to be computed."""

    array: np.ndarray
    computed: list[int] = field(default_factory=list)

    @property
    def n_cached(self) -> int:
        """Number of rows served from the cache."""
        return len(self.array) - len(self.computed)


def load_or_compute(
    keys: Sequence[str],
    compute: Callable[[list[int]], Iterable[tuple[Sequence[int], np.ndarray]]],
    cache: FeatureCache,
    row_shape: tuple[int, ...],
    meta: dict | None = None,
    dtype: np.dtype | type = np.float32,
) -> CachedRows:
    """Rows for ``keys``: cached rows are loaded, the rest come from ``compute`` and are saved as they arrive.

    ``compute(missing_indices)`` yields ``(indices, rows)`` chunks covering every missing index; each chunk
    is written to the cache before the next is requested, so an interrupted call resumes where it stopped.
    """
    out = np.empty((len(keys), *row_shape), dtype=dtype)
    missing: list[int] = []
    for i, key in enumerate(keys):
        row = cache.load(key, shape=row_shape)
        if row is None:
            missing.append(i)
        else:
            out[i] = row
    if missing:
        todo = set(missing)
        for indices, rows in compute(list(missing)):
            rows = np.asarray(rows)
            indices = list(indices)
            if rows.shape != (len(indices), *row_shape):
                raise ValueError(
                    f"compute returned rows of shape {rows.shape} for {len(indices)} indices, "
                    f"expected {(len(indices), *row_shape)}"
                )
            for idx, row in zip(indices, rows):
                if idx not in todo:
                    raise ValueError(
                        f"compute returned index {idx}, which was not requested or came twice"
                    )
                todo.discard(idx)
                out[idx] = row
                if np.all(np.isfinite(row)):  # a failed row (NaN) is recomputed next time
                    cache.save(keys[idx], row.astype(dtype, copy=False), meta)
        if todo:
            raise ValueError(f"compute did not return rows for indices {sorted(todo)[:10]}")
    return CachedRows(array=out, computed=missing)


def source_digest(package: Path | None = None) -> str:
    """A hash of the mcalc package's source files (paths and bytes): an edit of mcalc changes it."""
    root = Path(package or Path(__file__).resolve().parents[1])
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if path.suffix in (".pyc", ".pyo"):
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_digest(path).encode())
    return h.hexdigest()
