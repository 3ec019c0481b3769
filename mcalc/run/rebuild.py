"""Rebuild only what changed: each notebook execution keyed by the content of what it depends on.

Like jupyter-cache, an execution's key is a hash of its template's text, its injected parameters,
mcalc's own sources, the data root's listing and the bytes of the files of the results folder it
reads (its ``reads`` patterns: the manifest, the features, the upstream run records). The key is
recorded in the executed notebook's metadata (``metadata.mcalc.build_key``), and beside it the
digest of every file the execution wrote (its ``writes`` patterns, ``metadata.mcalc.outputs``). A
later build keeps the executed notebook when the key is unchanged and the files it wrote are still
there with the bytes it wrote, and reports it as up to date; an output that is missing, truncated
or edited means "re-run the writer" (and, through their keys, everything that reads it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from mcalc.records.cache import file_digest
from mcalc.records.fsio import LOCK_NAME

__all__ = [
    "KEY_FIELD",
    "OUTPUTS_FIELD",
    "CONTENT_SUFFIXES",
    "data_digest",
    "inputs_digest",
    "build_key",
    "recorded_key",
    "recorded_outputs",
    "record_key",
    "damaged_outputs",
    "up_to_date",
]

KEY_FIELD = "build_key"  # under the executed notebook's metadata.mcalc
OUTPUTS_FIELD = (
    "outputs"  # under metadata.mcalc: {file under results_dir: sha256} as the run wrote them
)
CONTENT_SUFFIXES = (".csv", ".json", ".yaml", ".yml", ".txt")  # data-root files hashed by content


def data_digest(data_root: Path) -> str:
    """A fingerprint of the data root: its tables' bytes, and every other file's path and size."""
    root = Path(data_root)
    h = hashlib.sha256()
    if not root.is_dir():
        return "absent"
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != LOCK_NAME):
        rel = path.relative_to(root).as_posix()
        mark = file_digest(path) if path.suffix.lower() in CONTENT_SUFFIXES else path.stat().st_size
        h.update(f"{rel}\0{mark}\n".encode())
    return h.hexdigest()


def _matching(root: Path, patterns: Iterable[str]) -> list[Path]:
    """The files under ``root`` matching any of the glob patterns, sorted and without repeats."""
    return sorted({p for pat in patterns for p in Path(root).glob(pat) if p.is_file()})


def inputs_digest(root: Path, patterns: Iterable[str]) -> dict[str, str]:
    """Each file read (matching ``patterns`` under ``root``) with the hash of its bytes."""
    return {p.relative_to(root).as_posix(): file_digest(p) for p in _matching(root, patterns)}


def build_key(template: Path, parameters: dict, sources: str, data: str, inputs: dict) -> str:
    """The content key of one execution: template text, parameters, mcalc sources, data, inputs read."""
    payload = {
        "template": file_digest(template),
        "parameters": parameters,
        "mcalc": sources,
        "data": data,
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _recorded(notebook: Path) -> dict:
    """The mcalc metadata of an executed notebook ({} when absent or unreadable)."""
    try:
        nb = json.loads(Path(notebook).read_text())
    except (OSError, ValueError):
        return {}
    meta = nb.get("metadata", {}).get("mcalc", {}) if isinstance(nb, dict) else {}
    return meta if isinstance(meta, dict) else {}


def recorded_key(notebook: Path) -> str | None:
    """The build key recorded in an executed notebook, or None (absent, unreadable or unrecorded)."""
    return _recorded(notebook).get(KEY_FIELD)


def recorded_outputs(notebook: Path) -> dict[str, str] | None:
    """The digests of the files the execution wrote, as recorded in its notebook (None: not recorded)."""
    outputs = _recorded(notebook).get(OUTPUTS_FIELD)
    return outputs if isinstance(outputs, dict) else None


def record_key(notebook: Path, key: str, outputs: dict[str, str] | None = None) -> None:
    """Write the build key (and the digests of the files the execution wrote) into the notebook's metadata."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    meta = nb.metadata.setdefault("mcalc", {})
    meta[KEY_FIELD] = key
    if outputs is not None:
        meta[OUTPUTS_FIELD] = outputs
    nbformat.write(nb, notebook)


def damaged_outputs(notebook: Path, results_dir: Path, writes: Iterable[str]) -> list[str]:
    """The files an execution wrote that are now missing or differ from the bytes it recorded ([] if none)."""
    recorded = recorded_outputs(notebook)
    if not recorded:
        return []
    now = inputs_digest(Path(results_dir), writes)
    return sorted(name for name, digest in recorded.items() if now.get(name) != digest)


def up_to_date(notebook: Path, key: str, results_dir: Path, writes: Iterable[str]) -> bool:
    """The executed notebook carries this key, every file pattern the execution writes still matches,
    and every file it wrote has the digest it recorded."""
    if recorded_key(notebook) != key:
        return False
    if not all(_matching(results_dir, [pattern]) for pattern in writes):
        return False
    return not damaged_outputs(notebook, results_dir, writes)
