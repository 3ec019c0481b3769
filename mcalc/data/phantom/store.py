"""Where a phantom lives and what identifies it: one folder per (layout, scale, seed) under a store, and
the digest of the code that writes it (a phantom written by other code is generated again)."""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from mcalc.data.calibration import SPLIT_FILES

__all__ = ["PHANTOM_STORE", "phantom_folder", "generator_modules", "generator_code"]

#: The folder under which the phantoms of the book (one per layout, scale and seed) are written.
PHANTOM_STORE = "data/phantom"

_MCALC = Path(__file__).resolve().parents[2]


def phantom_folder(store: str | Path, scale: float, seed: int = 0, layout: str = "uid") -> Path:
    """The folder of the phantom of this layout, scale and seed under ``store`` (e.g. ``uid-scale1-seed0``)."""
    return Path(store) / f"{layout}-scale{float(scale):g}-seed{int(seed)}"


def _module_file(name: str) -> Path | None:
    """The source file of an mcalc module name (a package's ``__init__.py``), None when there is none."""
    parts = name.split(".")[1:]
    base = _MCALC.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _mcalc_imports(path: Path) -> set[str]:
    """The mcalc modules a source file imports (``from mcalc.x import y`` may name a module y of package x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "mcalc"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "mcalc":
                names.add(node.module)
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if _module_file(n) is not None}


@functools.cache
def generator_modules() -> tuple[Path, ...]:
    """Every mcalc source file the phantom package imports, directly or not (and the package's parents)."""
    seen: dict[str, Path] = {}
    todo = ["mcalc.data.phantom"]
    todo += [f"mcalc.data.phantom.{p.stem}" for p in Path(__file__).parent.glob("*.py")]
    while todo:
        name = todo.pop()
        if name in seen or (path := _module_file(name)) is None:
            continue
        seen[name] = path
        todo += sorted(_mcalc_imports(path))
        todo += [".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)]
    return tuple(sorted(set(seen.values())))


@functools.cache
def generator_code() -> str:
    """sha256 of the phantom's code: the sources of :func:`generator_modules` and the calibration tables."""
    h = hashlib.sha256()
    tables = [_MCALC / "data" / name for name in SPLIT_FILES.values()]
    for path in (*generator_modules(), *tables):
        h.update(path.relative_to(_MCALC).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return h.hexdigest()
