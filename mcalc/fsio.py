"""Writing files safely: whole or not at all, with ordinary permissions, nothing left behind.

Every output of mcalc (manifest, exclusion and swaps reports, run records, feature files, cache
rows, the phantom's marker) is written through :func:`atomic_write`: the content goes to a
temporary file beside the target (``.<name>.<pid>-<random>.tmp``), created with mode 0666 so the
umask applies exactly as to any other new file, and is renamed onto the target only once complete;
on any failure the temporary file is removed and the target keeps its previous content.
:func:`write_new` writes a file only if it does not exist yet (the first of several writers wins);
:func:`write_files` writes several files as a set: all of them are replaced, or (when one fails)
none. :func:`sweep_stale_temporaries` removes the temporary files that a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

#: Name of a temporary file written by this module: ``.<target name>.<pid>-<random hex>.tmp``.
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{12}\.tmp$")
#: Legacy temporary names (``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")``), no writer pid.
LEGACY_TEMP_NAME = re.compile(r"^\..+\.tmp$")

Writer = Callable[[IO], None]


def _temp_path(path: Path) -> Path:
    """A fresh temporary file name beside path, naming this process as its writer."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


def _create(path: Path) -> tuple[Path, int]:
    """Create a new, empty temporary file beside path (mode 0666 less the umask); its path and fd."""
    for _ in range(100):
        tmp = _temp_path(path)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _discard(tmp: Path) -> None:
    """Remove a temporary file, ignoring that it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _stage(path: Path, write: Writer, binary: bool) -> Path:
    """Write a complete temporary file beside path with ``write(fh)``; removed again on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create(path)
    try:
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def atomic_write(path: str | Path, write: Writer, binary: bool = False) -> Path:
    """Write path atomically: ``write(fh)`` fills a temporary file that then replaces path."""
    path = Path(path)
    tmp = _stage(path, write, binary)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    return path


def write_new(path: str | Path, write: Writer, binary: bool = False) -> bool:
    """Write path atomically unless it exists (the first writer wins); True when this call wrote it."""
    path = Path(path)
    tmp = _stage(path, write, binary)
    try:
        os.link(tmp, path)  # atomic, and fails when another writer got there first
        return True
    except FileExistsError:
        return False
    finally:
        _discard(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8, line ends as given) to path atomically."""
    return atomic_write(path, lambda fh: fh.write(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to path atomically."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True)


@contextlib.contextmanager
def _backups(targets: list[Path]) -> Iterator[dict[Path, Path | None]]:
    """Hard links (or copies) of the targets that exist, removed when the block ends."""
    saved: dict[Path, Path | None] = {}
    try:
        for target in targets:
            if target.exists():
                backup = _temp_path(target)
                try:
                    os.link(target, backup)
                except OSError:
                    shutil.copy2(target, backup)
                saved[target] = backup
            else:
                saved[target] = None
        yield saved
    finally:
        for backup in saved.values():
            if backup is not None:
                _discard(backup)


def write_files(writers: dict[str | Path, Writer], binary: bool = False) -> list[Path]:
    """Write several files as a set: every one replaced, or (when any write fails) none changed."""
    targets = [Path(p) for p in writers]
    staged: list[Path] = []
    try:
        for target, write in zip(targets, writers.values()):
            staged.append(_stage(target, write, binary))
        with _backups(targets) as saved:
            done: list[Path] = []
            try:
                for tmp, target in zip(staged, targets):
                    os.replace(tmp, target)
                    done.append(target)
            except BaseException:
                for target in done:  # put back what this call replaced
                    if saved[target] is None:
                        _discard(target)
                    else:
                        os.replace(saved[target], target)
                raise
    finally:
        for tmp in staged:
            _discard(tmp)
    return targets


def _pid_running(pid: int) -> bool:
    """True when a process with this id exists on this machine (or cannot be probed)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def process_start_time() -> float:
    """When this process started (epoch seconds); the current time where the system cannot tell."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def sweep_stale_temporaries(folder: str | Path, pattern: str = "*.tmp") -> list[Path]:
    """Remove the temporary files under folder (glob pattern) left by writers that are gone; returns them.

    A temporary file is stale when it is older than this process and its writer (the pid in its
    name) no longer runs; one without a pid in its name (written before this module) only needs to
    be older than this process. A live writer's file is never touched.
    """
    started = process_start_time()
    removed = []
    for path in Path(folder).glob(pattern):
        match = TEMP_NAME.match(path.name)
        if match is None and not LEGACY_TEMP_NAME.match(path.name):
            continue
        try:
            if not path.is_file() or path.stat().st_mtime >= started:
                continue
            if match is not None and _pid_running(int(match.group("pid"))):
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
